//! Role assignment conditions (ABAC, `conditionVersion` 2.0): the subset that constrains which
//! roles a delegated role-assignment administrator may assign and remove, as Azure's "Delegate
//! Azure role assignment management to others with conditions" examples write it:
//!
//! ```text
//! ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR
//!  (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId]
//!   ForAnyOfAnyValues:GuidEquals {5e0bd9bd-7b93-4f28-af87-19fc36ad61bd}))
//! AND
//! ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR
//!  (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId]
//!   ForAnyOfAnyValues:GuidEquals {5e0bd9bd-7b93-4f28-af87-19fc36ad61bd}))
//! ```
//!
//! `!`, `AND`/`&&`, `OR`/`||` and parentheses combine `ActionMatches{'…'}` and the role
//! definition id of the request or of the stored assignment compared with
//! `ForAnyOfAnyValues:GuidEquals {…}`. Anything else is refused when the assignment is written
//! ([`parse`] fails), never ignored: a condition the sandbox cannot evaluate would otherwise
//! grant more than Azure does.

/// What a condition is judged on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts<'a> {
    /// The action being performed, e.g. `Microsoft.Authorization/roleAssignments/write`.
    pub action: &'a str,
    /// The role definition GUID the request assigns (`@Request[…:RoleDefinitionId]`).
    pub request_role: Option<&'a str>,
    /// The role definition GUID of the assignment acted on (`@Resource[…:RoleDefinitionId]`).
    pub resource_role: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    ActionMatches(String),
    RoleIn { request: bool, guids: Vec<String> },
}

const ROLE_ATTRIBUTE: &str = "Microsoft.Authorization/roleAssignments:RoleDefinitionId";
const OPERATOR: &str = "ForAnyOfAnyValues:GuidEquals";
/// A condition longer than this is not one the sandbox writes or reads.
const MAX_LEN: usize = 8192;
/// Parenthesis depth limit: no stack overflow from a hostile condition.
const MAX_DEPTH: usize = 32;

impl Condition {
    pub(crate) fn holds(&self, facts: &Facts<'_>) -> bool {
        match self {
            Condition::Not(inner) => !inner.holds(facts),
            Condition::And(all) => all.iter().all(|c| c.holds(facts)),
            Condition::Or(any) => any.iter().any(|c| c.holds(facts)),
            Condition::ActionMatches(pattern) => wildcard(pattern, facts.action),
            Condition::RoleIn { request, guids } => {
                let value = if *request {
                    facts.request_role
                } else {
                    facts.resource_role
                };
                value.is_some_and(|v| guids.iter().any(|g| g.eq_ignore_ascii_case(v)))
            }
        }
    }
}

/// `*` matches any run of characters; the rest compares ignoring case, as ARM's actions do.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !t.starts_with(first) || t.len() < first.len() + last.len() || !t.ends_with(last) {
        return false;
    }
    let mut rest = &t[first.len()..t.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Parses a condition of the subset, or says where it leaves it.
pub(crate) fn parse(text: &str) -> Result<Condition, String> {
    if text.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} characters"));
    }
    let mut parser = Parser { text, at: 0 };
    let condition = parser.or(0)?;
    parser.skip_space();
    if parser.at != text.len() {
        return Err(parser.unexpected());
    }
    Ok(condition)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let matches = self
            .rest()
            .get(..token.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(token));
        if matches {
            self.at += token.len();
        }
        matches
    }

    fn unexpected(&self) -> String {
        let shown: String = self.rest().chars().take(40).collect();
        format!("at character {}: `{shown}`", self.at + 1)
    }

    fn or(&mut self, depth: usize) -> Result<Condition, String> {
        let mut terms = vec![self.and(depth)?];
        while self.eat("OR") || self.eat("||") {
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Condition, String> {
        let mut terms = vec![self.unary(depth)?];
        while self.eat("AND") || self.eat("&&") {
            terms.push(self.unary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::And(terms)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Condition, String> {
        if depth > MAX_DEPTH {
            return Err(format!("it nests deeper than {MAX_DEPTH} levels"));
        }
        if self.eat("!") {
            return Ok(Condition::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat("(") {
            let inner = self.or(depth + 1)?;
            if !self.eat(")") {
                return Err(self.unexpected());
            }
            return Ok(inner);
        }
        if self.eat("ActionMatches{") {
            let inner = self.until('}')?;
            let action = inner
                .trim()
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .filter(|s| !s.contains('\''))
                .ok_or_else(|| format!("ActionMatches takes one quoted action, not `{inner}`"))?;
            return Ok(Condition::ActionMatches(action.to_owned()));
        }
        let request = if self.eat("@Request[") {
            true
        } else if self.eat("@Resource[") {
            false
        } else {
            return Err(self.unexpected());
        };
        let attribute = self.until(']')?;
        if !attribute.trim().eq_ignore_ascii_case(ROLE_ATTRIBUTE) {
            return Err(format!("the attribute `{attribute}` is not evaluated"));
        }
        if !self.eat(OPERATOR) {
            return Err(format!(
                "only {OPERATOR} is evaluated, {}",
                self.unexpected()
            ));
        }
        if !self.eat("{") {
            return Err(self.unexpected());
        }
        let list = self.until('}')?;
        let guids = list
            .split(',')
            .map(|g| {
                let g = g.trim();
                uuid::Uuid::parse_str(g)
                    .map(|_| g.to_ascii_lowercase())
                    .map_err(|_| format!("`{g}` is not a GUID"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Condition::RoleIn { request, guids })
    }

    /// The text up to `end`, consuming `end`.
    fn until(&mut self, end: char) -> Result<String, String> {
        let found = self
            .rest()
            .find(end)
            .ok_or_else(|| format!("`{end}` is missing"))?;
        let inner = self.rest()[..found].to_owned();
        self.at += found + end.len_utf8();
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";
    const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

    fn constrained() -> String {
        format!(
            "((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/write'}})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{OPENAI_USER}}})) AND ((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/delete'}})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{OPENAI_USER}}}))"
        )
    }

    #[test]
    fn the_delegation_condition_allows_only_its_roles() {
        let condition = parse(&constrained()).unwrap();
        let write = "Microsoft.Authorization/roleAssignments/write";
        let delete = "Microsoft.Authorization/roleAssignments/delete";
        let facts = |action, request_role, resource_role| Facts {
            action,
            request_role,
            resource_role,
        };
        assert!(condition.holds(&facts(write, Some(OPENAI_USER), None)));
        assert!(!condition.holds(&facts(write, Some(OWNER), None)));
        assert!(condition.holds(&facts(delete, None, Some(OPENAI_USER))));
        assert!(!condition.holds(&facts(delete, None, Some(OWNER))));
        // Actions the condition does not name are not constrained by it.
        assert!(condition.holds(&facts("Microsoft.Support/tickets/write", None, None)));
    }

    #[test]
    fn anything_outside_the_subset_is_refused() {
        for bad in [
            "",
            "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'x'",
            "ActionMatches{Microsoft.Authorization/roleAssignments/write}",
            &format!("@Request[{ROLE_ATTRIBUTE}] ForAnyOfAnyValues:GuidEquals {{not-a-guid}}"),
            &format!("@Request[{ROLE_ATTRIBUTE}] GuidEquals {{{OWNER}}}"),
            "(ActionMatches{'a'}",
            &"(".repeat(100),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_match_as_arm_actions_do() {
        assert!(wildcard("*", "Microsoft.Anything/x/write"));
        assert!(wildcard(
            "Microsoft.Authorization/*/Write",
            "microsoft.authorization/roleAssignments/write"
        ));
        assert!(wildcard("*/read", "Microsoft.Resources/subscriptions/read"));
        assert!(!wildcard(
            "*/read",
            "Microsoft.Resources/subscriptions/write"
        ));
        assert!(!wildcard("Microsoft.Support/*", "Microsoft.Supported/x"));
        assert!(wildcard("a*b*c", "aXbYc") && !wildcard("a*b*c", "aXcYb"));
    }
}
