//! `$filter`: the part of OData that directory objects support and `provision` uses, with
//! Graph's own refusals for the rest.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::{Failure, filterable, list, resource, strings};
use crate::sandbox::state::ObjectKind;

/// A parsed `$filter`: the part of OData that directory objects support and `provision` uses.
#[derive(Debug)]
pub(super) enum Filter {
    Property(String, Test),
    Any(String, Test),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Directory string comparisons ignore case.
#[derive(Debug)]
pub(super) enum Test {
    Eq(String),
    StartsWith(String),
}

impl Test {
    pub(super) fn passes(&self, value: &str) -> bool {
        let value = value.to_lowercase();
        match self {
            Test::Eq(x) => value == x.to_lowercase(),
            Test::StartsWith(x) => value.starts_with(&x.to_lowercase()),
        }
    }
}

impl Filter {
    pub(super) fn matches(&self, body: &Map<String, Value>) -> bool {
        match self {
            Filter::Property(p, test) => body
                .get(p)
                .and_then(Value::as_str)
                .is_some_and(|v| test.passes(v)),
            Filter::Any(p, test) => strings(list(body, p)).any(|v| test.passes(v)),
            Filter::And(a, b) => a.matches(body) && b.matches(body),
            Filter::Or(a, b) => a.matches(body) || b.matches(body),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
    Colon,
}

#[derive(Debug)]
pub(super) enum FilterError {
    Syntax(String),
    Unsupported(String),
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            ',' => tokens.push(Token::Comma),
            ':' => tokens.push(Token::Colon),
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError::Syntax(format!(
                                "unterminated string literal in '{text}'"
                            )));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Text(s));
            }
            c if c.is_alphanumeric() || "_./-$".contains(c) => {
                let mut word = c.to_string();
                while let Some(&c) = chars.get(i) {
                    if !(c.is_alphanumeric() || "_./-$".contains(c)) {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                return Err(FilterError::Syntax(format!(
                    "syntax error at position {} in '{text}'",
                    i - 1
                )));
            }
        }
    }
    Ok(tokens)
}

pub(super) struct FilterParser {
    pub(super) tokens: Vec<Token>,
    pub(super) at: usize,
    pub(super) scalars: &'static [&'static str],
    pub(super) lists: &'static [&'static str],
}

impl FilterParser {
    pub(super) fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    pub(super) fn expect(&mut self, token: Token) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(FilterError::Syntax(format!(
                "expected {token:?}, found {other:?}"
            ))),
        }
    }

    pub(super) fn word(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(FilterError::Syntax(format!(
                "expected a name, found {other:?}"
            ))),
        }
    }

    pub(super) fn text(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some(Token::Text(s)) => Ok(s),
            Some(Token::Word(w)) => Err(FilterError::Unsupported(format!(
                "only string literals are supported, not `{w}`"
            ))),
            other => Err(FilterError::Syntax(format!(
                "expected a literal, found {other:?}"
            ))),
        }
    }

    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            return true;
        }
        false
    }

    pub(super) fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    pub(super) fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.primary()?;
        while self.eat_word("and") {
            left = Filter::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    pub(super) fn primary(&mut self) -> Result<Filter, FilterError> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        let lambda = match self.peek() {
            Some(Token::Word(w)) => w
                .len()
                .checked_sub(4)
                .filter(|&cut| w.is_char_boundary(cut) && w[cut..].eq_ignore_ascii_case("/any"))
                .map(|cut| w[..cut].to_owned()),
            _ => None,
        };
        if let Some(collection) = lambda {
            self.at += 1;
            self.expect(Token::Open)?;
            let variable = self.word()?;
            self.expect(Token::Colon)?;
            let (subject, test) = self.comparison()?;
            self.expect(Token::Close)?;
            if subject != variable {
                return Err(FilterError::Unsupported(format!(
                    "`{subject}` is not the lambda variable `{variable}`"
                )));
            }
            return Ok(Filter::Any(property(self.lists, &collection)?, test));
        }
        let (subject, test) = self.comparison()?;
        Ok(Filter::Property(property(self.scalars, &subject)?, test))
    }

    /// `path eq 'text'` or `startswith(path,'text')`.
    pub(super) fn comparison(&mut self) -> Result<(String, Test), FilterError> {
        let word = self.word()?;
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            if !word.eq_ignore_ascii_case("startswith") {
                return Err(FilterError::Unsupported(format!("function `{word}`")));
            }
            let subject = self.word()?;
            self.expect(Token::Comma)?;
            let text = self.text()?;
            self.expect(Token::Close)?;
            return Ok((subject, Test::StartsWith(text)));
        }
        let operator = self.word()?;
        if !operator.eq_ignore_ascii_case("eq") {
            return Err(FilterError::Unsupported(format!("operator `{operator}`")));
        }
        Ok((word, Test::Eq(self.text()?)))
    }
}

pub(super) fn property(allowed: &[&str], name: &str) -> Result<String, FilterError> {
    allowed
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .map(|p| (*p).to_owned())
        .ok_or_else(|| FilterError::Unsupported(format!("property:{name}")))
}

pub(super) fn parse_filter(text: &str, kind: ObjectKind) -> Result<Filter, Failure> {
    let (scalars, lists) = filterable(kind);
    let parsed = tokenize(text).and_then(|tokens| {
        let mut parser = FilterParser {
            tokens,
            at: 0,
            scalars,
            lists,
        };
        let filter = parser.or()?;
        match parser.peek() {
            None => Ok(filter),
            Some(extra) => Err(FilterError::Syntax(format!("unexpected {extra:?}"))),
        }
    });
    parsed.map_err(|e| match e {
        FilterError::Syntax(why) => Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid filter clause: {why}"),
        ),
        FilterError::Unsupported(what) => Failure::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            match what.strip_prefix("property:") {
                Some(name) => format!(
                    "Unsupported or invalid query filter clause specified for property '{name}' of resource '{}'.",
                    resource(kind)
                ),
                None => format!("Unsupported query: {what}."),
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_the_supported_forms_only() {
        let app: Map<String, Value> = json!({
            "appId": "A1", "displayName": "Gateway One", "identifierUris": ["api://x"],
        })
        .as_object()
        .cloned()
        .unwrap();
        let ok = |f: &str| {
            parse_filter(f, ObjectKind::Application)
                .unwrap()
                .matches(&app)
        };
        assert!(ok("appId eq 'a1'"));
        assert!(ok("startswith(displayName,'gate')"));
        assert!(ok("identifierUris/any(x:x eq 'api://x')"));
        assert!(ok(
            "(appId eq 'no' or displayName eq 'Gateway One') and appId eq 'A1'"
        ));
        assert!(!ok("displayName eq 'Gateway'"));
        let code = |f: &str| parse_filter(f, ObjectKind::Application).unwrap_err().code;
        assert_eq!(
            code("identifierUris eq 'api://x'"),
            "Request_UnsupportedQuery"
        );
        assert_eq!(code("notes eq 'x'"), "Request_UnsupportedQuery");
        assert_eq!(code("displayName ne 'x'"), "Request_UnsupportedQuery");
        assert_eq!(
            code("contains(displayName,'x')"),
            "Request_UnsupportedQuery"
        );
        assert_eq!(code("appId eq 'x"), "BadRequest");
        assert_eq!(code("appId eq 'x' extra"), "BadRequest");
    }
}
