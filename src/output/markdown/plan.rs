//! `plan --output markdown` and `plan --destroy --output markdown`: the counts, security
//! findings most severe first, then one collapsible section per resource that changes, the
//! policy's change as a semantic diff (element paths, from `policy::diff`) in a `diff` block.

use serde_json::Value;

use super::{COMMENT_LIMIT, Comment, Context, cell, code, count, details, fenced, html, text};
use crate::engine::{Plan, Planned, Survey};
use crate::output::plan::{leaves, short};
use crate::resources::diff::show;
use crate::resources::{Change, FieldChange, Finding, Kind, UNKNOWN};

/// Most severe first; a rule not listed here (a newer finding) comes after the known ones, so
/// an addition shows without this list in step. Severity follows what a finding lets through:
/// no token check lets anyone call the model, keys bypass the gateway, an unpinned client is
/// refused outright, the rest break one flow.
const SEVERITY: &[(&str, &str)] = &[
    ("no-token-check", "critical"),
    ("local-auth-enabled", "high"),
    ("client-not-pinned", "high"),
    ("v1-access-tokens", "medium"),
    ("client-not-public", "medium"),
];

fn severity(rule: &str) -> (usize, &'static str) {
    SEVERITY
        .iter()
        .position(|(r, _)| *r == rule)
        .map_or((SEVERITY.len(), "medium"), |i| (i, SEVERITY[i].1))
}

/// The plan as a pull-request comment.
pub fn plan(ctx: &Context, plan: &Plan) -> String {
    plan_within(ctx, plan, COMMENT_LIMIT)
}

fn plan_within(ctx: &Context, plan: &Plan, limit: usize) -> String {
    let env = &ctx.env;
    let mut doc = Comment::new("plan", format!("provision plan --env {env}"));
    let s = plan.summary();
    let mut head = format!("### `provision plan`: environment {}\n\n", code(env));
    head.push_str(&format!(
        "**{} to create, {} to update, {} to replace, {} to delete**, {} unchanged.\n",
        s.create, s.update, s.replace, s.delete, s.unchanged
    ));
    if !plan.has_changes() {
        head.push_str("\nNo changes: Azure and Entra ID match the environment file.\n");
    }
    doc.head(head);
    let (mut security, mut models): (Vec<_>, Vec<_>) = plan
        .findings()
        .partition(|(_, f)| !f.rule.starts_with("model-"));
    security.sort_by_key(|(a, f)| (severity(f.rule).0, (*a).clone(), f.rule, f.message.clone()));
    models.sort_by_key(|(a, f)| ((*a).clone(), f.rule, f.message.clone()));
    // Every row is a section of its own, the heading riding on the first: a plan with more
    // findings than a comment holds is cut between rows, keeping the most severe.
    let mut heading = Some(format!(
        "\n#### Security findings ({})\n\n| severity | resource | finding |\n|---|---|---|\n",
        security.len()
    ));
    for (address, f) in &security {
        let row = finding_row(severity(f.rule).1, &address.to_string(), f);
        doc.section(format!("{}{row}", heading.take().unwrap_or_default()));
    }
    let mut heading = Some(format!(
        "\n#### Model findings ({})\n\n| resource | finding |\n|---|---|\n",
        models.len()
    ));
    for (address, f) in &models {
        doc.section(format!(
            "{}| {} | {} {} |\n",
            heading.take().unwrap_or_default(),
            cell(&code(&address.to_string())),
            text(&f.message),
            cell(&code(f.rule))
        ));
    }
    let changed: Vec<&Planned> = plan
        .resources
        .iter()
        .filter(|r| r.change != Change::NoOp)
        .collect();
    let mut heading = Some(format!("\n#### Changes ({})\n", changed.len()));
    for r in changed {
        let heading = heading.take().unwrap_or_default();
        doc.section(format!("{heading}\n{}", section(r)));
    }
    doc.finish(ctx, limit)
}

fn finding_row(severity: &str, address: &str, f: &Finding) -> String {
    format!(
        "| **{severity}** | {} | {} {} |\n",
        cell(&code(address)),
        text(&f.message),
        cell(&code(f.rule))
    )
}

/// One resource's collapsible section: what happens to it and each field that changes.
fn section(r: &Planned) -> String {
    let address = format!("<code>{}</code>", html(&r.address.to_string()));
    let (summary, body) = match &r.change {
        Change::Create if r.address.kind == Kind::Policy => {
            (("+ create", String::new()), created_policy(&r.desired))
        }
        Change::Create => {
            let fields = leaves("", &r.desired);
            let mut body = "| field | value |\n|---|---|\n".to_owned();
            for (path, value) in &fields {
                body.push_str(&format!(
                    "| {} | {} |\n",
                    cell(&code(path)),
                    cell(&code(&short(value)))
                ));
            }
            (("+ create", count(fields.len(), "field", "fields")), body)
        }
        Change::Update(changes) if r.address.kind == Kind::Policy => (
            (
                "~ update",
                count(
                    changes.len(),
                    "difference in meaning",
                    "differences in meaning",
                ),
            ),
            policy_diff(changes),
        ),
        Change::Update(changes) => {
            let mut body = "| field | now | after |\n|---|---|---|\n".to_owned();
            for c in changes {
                let value = |v: &Option<Value>| {
                    v.as_ref()
                        .map_or("(absent)".to_owned(), |v| cell(&code(&short(v))))
                };
                body.push_str(&format!(
                    "| {} | {} | {} |\n",
                    cell(&code(&c.path)),
                    value(&c.old),
                    value(&c.new)
                ));
            }
            (("~ update", count(changes.len(), "field", "fields")), body)
        }
        Change::Replace { reason } => (
            ("-/+ replace", String::new()),
            format!("Replaced: {}\n", text(reason)),
        ),
        Change::Delete { reason } => (
            ("- delete", String::new()),
            format!("Deleted: {}\n", text(reason)),
        ),
        Change::NoOp => unreachable!("only changed resources get a section"),
    };
    let (action, what) = summary;
    let what = if what.is_empty() {
        what
    } else {
        format!(": {what}")
    };
    details(&format!("<b>{action}</b> {address}{what}"), &body)
}

/// The policy's differences in meaning, one line per side, element paths first.
fn policy_diff(changes: &[FieldChange]) -> String {
    let mut lines = Vec::new();
    for c in changes {
        let path = c.path.strip_prefix("policy ").unwrap_or(&c.path);
        if let Some(old) = &c.old {
            lines.push(format!("- {path}: {}", diff_value(old)));
        }
        if let Some(new) = &c.new {
            lines.push(format!("+ {path}: {}", diff_value(new)));
        }
    }
    fenced("diff", &lines)
}

/// A policy value on one line (an element's XML may span several).
fn diff_value(value: &Value) -> String {
    match value {
        Value::String(s) => super::one_line(&s.replace(UNKNOWN, "(known after apply)")),
        other => show(other),
    }
}

/// A policy to be created: the whole document, every line added, or a note when its app ids
/// come from apps this same run creates.
fn created_policy(desired: &Value) -> String {
    let xml = desired
        .pointer("/properties/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if xml.contains(UNKNOWN) {
        return "The policy is rendered once the app registrations exist: (known after apply). \
                `provision render --env ENV --offline` shows it with placeholders.\n"
            .to_owned();
    }
    let lines: Vec<String> = xml.lines().map(|l| format!("+ {l}")).collect();
    fenced("diff", &lines)
}

/// `plan --destroy` as a pull-request comment: what `down` would delete and purge, and what it
/// leaves alone and why.
pub fn destroy(ctx: &Context, survey: &Survey, purge: bool) -> String {
    let env = &ctx.env;
    let mut doc = Comment::new(
        "plan-destroy",
        format!("provision plan --env {env} --destroy"),
    );
    let delete = survey.doomed.iter().filter(|d| d.removal.is_some()).count();
    let purges = if purge {
        survey.doomed.iter().filter(|d| d.purge.is_some()).count()
    } else {
        0
    };
    let mut head = format!(
        "### `provision plan --destroy`: environment {}\n\n**{delete} to delete, {purges} to \
         purge**, {} left alone.\n",
        code(env),
        survey.skipped.len()
    );
    if delete + purges == 0 {
        head.push_str("\nNothing of this environment's would go.\n");
    }
    doc.head(head);
    let mut rows = String::new();
    for d in &survey.doomed {
        let address = cell(&code(&d.address.to_string()));
        if d.removal.is_some() {
            rows.push_str(&format!("| **- delete** | {address} | |\n"));
        }
        if purge && d.purge.is_some() {
            let until = d
                .held_until
                .as_deref()
                .map(|u| format!("soft-deleted copy, held until {}", text(u)))
                .unwrap_or_else(|| "soft-deleted copy".to_owned());
            rows.push_str(&format!("| **x purge** | {address} | {} |\n", until));
        }
    }
    for s in &survey.skipped {
        rows.push_str(&format!(
            "| **! left alone** | {} | {} |\n",
            cell(&code(&s.address.to_string())),
            text(&s.reason)
        ));
    }
    if !rows.is_empty() {
        doc.section(format!(
            "\n| action | resource | note |\n|---|---|---|\n{rows}"
        ));
    }
    doc.finish(ctx, COMMENT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Address;
    use serde_json::json;

    fn ctx() -> Context {
        Context {
            env: "dev".to_owned(),
            sandbox_address: None,
            expires: None,
        }
    }

    fn planned(kind: Kind, name: &str, change: Change, findings: Vec<Finding>) -> Planned {
        Planned {
            address: Address::new(kind, name),
            change,
            desired: json!({"properties": {"value": "x"}}),
            findings,
        }
    }

    #[test]
    fn findings_come_first_most_severe_first_and_values_are_escaped() {
        let plan = Plan {
            resources: vec![
                planned(
                    Kind::ApiApp,
                    "api",
                    Change::NoOp,
                    vec![Finding {
                        rule: "v1-access-tokens",
                        message: "issues v1 tokens".to_owned(),
                    }],
                ),
                planned(
                    Kind::Account,
                    "acc|ount",
                    Change::Update(vec![FieldChange {
                        path: "properties.disableLocalAuth".to_owned(),
                        old: Some(json!(false)),
                        new: Some(json!(true)),
                    }]),
                    vec![Finding {
                        rule: "local-auth-enabled",
                        message: "accepts <keys>".to_owned(),
                    }],
                ),
                planned(
                    Kind::Policy,
                    "llm",
                    Change::Update(vec![FieldChange {
                        path: "policy inbound/set-header@name".to_owned(),
                        old: Some(json!("a```b")),
                        new: Some(json!("c")),
                    }]),
                    Vec::new(),
                ),
            ],
            orphans: Vec::new(),
        };
        let text = plan_within(&ctx(), &plan, COMMENT_LIMIT);
        let high = text.find("| **high** | `foundry account acc\\|ount` | accepts \\<keys\\>");
        let medium = text.find("| **medium** | `entra api app api` | issues v1 tokens");
        assert!(
            high.is_some() && medium.is_some() && high < medium,
            "{text}"
        );
        assert!(
            text.contains(
                "\n````diff\n- inbound/set-header@name: a```b\n+ inbound/set-header@name: c\n````\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("<b>~ update</b> <code>foundry account acc|ount</code>"),
            "{text}"
        );
        assert!(text.starts_with("<!-- provision plan: dev -->\n### `provision plan`: environment `dev`\n\n**0 to create, 2 to update, 0 to replace, 0 to delete**, 1 unchanged.\n"), "{text}");
    }

    #[test]
    fn replacements_and_deletions_say_why() {
        let plan = Plan {
            resources: vec![
                planned(
                    Kind::RoleAssignment,
                    "gw",
                    Change::Replace {
                        reason: "its principal changed".to_owned(),
                    },
                    Vec::new(),
                ),
                planned(
                    Kind::ClientApp,
                    "old_client",
                    Change::Delete {
                        reason: "ours, and no longer in environments/dev.yaml".to_owned(),
                    },
                    Vec::new(),
                ),
            ],
            orphans: Vec::new(),
        };
        let text = plan_within(&ctx(), &plan, COMMENT_LIMIT);
        assert!(
            text.ends_with(
                "\n#### Changes (2)\n\n<details><summary><b>-/+ replace</b> <code>role \
                 assignment gw</code></summary>\n\nReplaced: its principal changed\n\n</details>\n\
                 \n<details><summary><b>- delete</b> <code>entra client app old_client</code>\
                 </summary>\n\nDeleted: ours, and no longer in environments/dev.yaml\n\n</details>\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn more_findings_than_a_comment_holds_are_cut_keeping_the_most_severe() {
        let finding = |rule: &'static str| Finding {
            rule,
            message: "m".repeat(200),
        };
        let resources = (0..400)
            .map(|i| {
                let rule = if i == 399 {
                    "no-token-check"
                } else {
                    "client-not-public"
                };
                planned(
                    Kind::ClientApp,
                    &format!("c{i:03}"),
                    Change::NoOp,
                    vec![finding(rule)],
                )
            })
            .collect();
        let plan = Plan {
            resources,
            orphans: Vec::new(),
        };
        let text = plan_within(&ctx(), &plan, COMMENT_LIMIT);
        assert!(text.chars().count() <= COMMENT_LIMIT);
        let critical = text
            .find("| **critical** | `entra client app c399`")
            .unwrap();
        assert!(
            critical < text.find("c000").unwrap(),
            "the most severe first"
        );
        assert!(!text.contains("c398"), "cut");
        assert!(
            text.contains("\n\n> [!NOTE]\n> Cut to fit in one comment:"),
            "{}",
            &text[text.len() - 300..]
        );
    }

    #[test]
    fn a_policy_to_create_shows_every_line_added_once_its_app_ids_are_known() {
        let known = json!({"properties": {"value": "<policies>\n  <inbound />\n</policies>"}});
        assert_eq!(
            created_policy(&known),
            "```diff\n+ <policies>\n+   <inbound />\n+ </policies>\n```\n"
        );
        let unknown = json!({"properties": {"value": UNKNOWN}});
        assert!(created_policy(&unknown).contains("(known after apply)"));
    }

    #[test]
    fn a_plan_too_long_for_a_comment_is_cut_and_says_how_to_see_it_all() {
        let resources = (0..400)
            .map(|i| {
                planned(
                    Kind::NamedValue,
                    &format!("value-{i:03}"),
                    Change::Update(vec![FieldChange {
                        path: "properties.value".to_owned(),
                        old: Some(json!("o".repeat(90))),
                        new: Some(json!("n".repeat(90))),
                    }]),
                    Vec::new(),
                )
            })
            .collect();
        let plan = Plan {
            resources,
            orphans: Vec::new(),
        };
        let text = plan_within(&ctx(), &plan, COMMENT_LIMIT);
        assert!(text.chars().count() <= COMMENT_LIMIT);
        assert!(
            text.contains("`provision plan --env dev` shows everything."),
            "{}",
            &text[text.len() - 400..]
        );
        assert!(text.contains("value-000") && !text.contains("value-399"));
        assert_eq!(text, plan_within(&ctx(), &plan, COMMENT_LIMIT));
    }
}
