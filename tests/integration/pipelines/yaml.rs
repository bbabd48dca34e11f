//! Workflow files as a small ordered tree, and GitHub's `${{ … }}` expressions: only the part of
//! the language the examples use, so an example that reaches for more fails here instead of
//! rotting unnoticed.
//!
//! Expression rules follow GitHub's "Evaluate expressions in workflows and actions" page
//! (docs.github.com/actions/reference/workflows-and-actions/expressions): string comparison
//! ignores case, `''` is the only falsy string, an `if:` may omit the `${{ }}` wrapper, and an
//! `if:` without a status function is `success() && …`.

use std::path::Path;

/// The most a workflow file may hold: the examples are a few kilobytes.
const MAX_BYTES: u64 = 64 * 1024;

/// A YAML node, keys in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Y {
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

impl Y {
    pub fn get(&self, key: &str) -> Option<&Y> {
        match self {
            Y::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Y::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Y)] {
        match self {
            Y::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Y] {
        match self {
            Y::Seq(items) => items,
            _ => &[],
        }
    }

    /// Every string under this node with its key path, for checking expressions up front.
    pub fn walk<'a>(&'a self, path: &str, out: &mut Vec<(String, &'a str)>) {
        match self {
            Y::Str(s) => out.push((path.to_owned(), s)),
            Y::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.walk(&format!("{path}[{i}]"), out);
                }
            }
            Y::Map(entries) => {
                for (k, v) in entries {
                    v.walk(&format!("{path}.{k}"), out);
                }
            }
        }
    }
}

/// Reads a workflow file, refusing one that is too large, malformed, or repeats a key.
pub fn load(path: &Path) -> Result<Y, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_BYTES {
        return Err(format!(
            "{}: {size} bytes, more than the {MAX_BYTES} a workflow may have",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Y, String> {
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| e.to_string())?;
    Ok(convert(&node))
}

fn convert(node: &marked_yaml::Node) -> Y {
    match node {
        marked_yaml::Node::Scalar(s) => Y::Str(s.as_str().to_owned()),
        marked_yaml::Node::Sequence(items) => Y::Seq(items.iter().map(convert).collect()),
        marked_yaml::Node::Mapping(map) => Y::Map(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), convert(v)))
                .collect(),
        ),
    }
}

/// What an expression can see: context values by path, and the job's status so far.
pub trait Scope {
    /// The value at `path` (`["vars", "AZURE_CLIENT_ID"]`), `Ok("")` when unset; `Err` when the
    /// runner does not know that part of the context at all.
    fn lookup(&self, path: &[&str]) -> Result<String, String>;
    /// Whether an earlier step of the job failed.
    fn failed(&self) -> bool;
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Not,
    And,
    Or,
    Eq,
    Ne,
    Open,
    Close,
    Lit(String),
    Path(String),
    Call(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        match c {
            ' ' | '\t' | '\n' => i += 1,
            _ if two == "&&" => (out.push(Token::And), i += 2).1,
            _ if two == "||" => (out.push(Token::Or), i += 2).1,
            _ if two == "==" => (out.push(Token::Eq), i += 2).1,
            _ if two == "!=" => (out.push(Token::Ne), i += 2).1,
            '!' => (out.push(Token::Not), i += 1).1,
            '(' => (out.push(Token::Open), i += 1).1,
            ')' => (out.push(Token::Close), i += 1).1,
            '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string in `{text}`")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            lit.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Lit(lit));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_-.".contains(chars[i]))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'(') && chars.get(i + 1) == Some(&')') {
                    i += 2;
                    out.push(Token::Call(word));
                } else if chars.get(i) == Some(&'(') {
                    return Err(format!("the function `{word}` is not supported"));
                } else {
                    out.push(Token::Path(word));
                }
            }
            other => return Err(format!("`{other}` is not understood in `{text}`")),
        }
    }
    Ok(out)
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>, bool),
    Lit(String),
    Path(Vec<String>),
    Status(String),
}

const STATUS_FUNCTIONS: [&str; 4] = ["success", "failure", "always", "cancelled"];

pub fn parse_expr(text: &str) -> Result<Expr, String> {
    let tokens = tokens(text)?;
    let mut at = 0;
    let expr = or(&tokens, &mut at, text)?;
    if at != tokens.len() {
        return Err(format!("unexpected `{:?}` in `{text}`", tokens[at]));
    }
    Ok(expr)
}

fn or(t: &[Token], at: &mut usize, text: &str) -> Result<Expr, String> {
    let mut left = and(t, at, text)?;
    while t.get(*at) == Some(&Token::Or) {
        *at += 1;
        left = Expr::Or(Box::new(left), Box::new(and(t, at, text)?));
    }
    Ok(left)
}

fn and(t: &[Token], at: &mut usize, text: &str) -> Result<Expr, String> {
    let mut left = compare(t, at, text)?;
    while t.get(*at) == Some(&Token::And) {
        *at += 1;
        left = Expr::And(Box::new(left), Box::new(compare(t, at, text)?));
    }
    Ok(left)
}

fn compare(t: &[Token], at: &mut usize, text: &str) -> Result<Expr, String> {
    let left = unary(t, at, text)?;
    match t.get(*at) {
        Some(Token::Eq) | Some(Token::Ne) => {
            let equal = t[*at] == Token::Eq;
            *at += 1;
            let right = unary(t, at, text)?;
            Ok(Expr::Eq(Box::new(left), Box::new(right), equal))
        }
        _ => Ok(left),
    }
}

fn unary(t: &[Token], at: &mut usize, text: &str) -> Result<Expr, String> {
    let token = t
        .get(*at)
        .ok_or_else(|| format!("`{text}` ends too early"))?;
    *at += 1;
    match token {
        Token::Not => Ok(Expr::Not(Box::new(unary(t, at, text)?))),
        Token::Open => {
            let inner = or(t, at, text)?;
            if t.get(*at) != Some(&Token::Close) {
                return Err(format!("a `(` is not closed in `{text}`"));
            }
            *at += 1;
            Ok(inner)
        }
        Token::Lit(s) => Ok(Expr::Lit(s.clone())),
        Token::Path(p) => Ok(Expr::Path(p.split('.').map(str::to_owned).collect())),
        Token::Call(f) if STATUS_FUNCTIONS.contains(&f.as_str()) => Ok(Expr::Status(f.clone())),
        Token::Call(f) => Err(format!("the function `{f}()` is not supported")),
        other => Err(format!("unexpected `{other:?}` in `{text}`")),
    }
}

impl Expr {
    /// Whether a status function appears (else an `if:` means `success() && …`).
    pub fn has_status(&self) -> bool {
        match self {
            Expr::Status(_) => true,
            Expr::Not(e) => e.has_status(),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Eq(a, b, _) => {
                a.has_status() || b.has_status()
            }
            Expr::Lit(_) | Expr::Path(_) => false,
        }
    }

    /// Every context path in the expression.
    pub fn paths(&self, out: &mut Vec<Vec<String>>) {
        match self {
            Expr::Path(p) => out.push(p.clone()),
            Expr::Not(e) => e.paths(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Eq(a, b, _) => {
                a.paths(out);
                b.paths(out);
            }
            Expr::Lit(_) | Expr::Status(_) => {}
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match self {
            Expr::Lit(s) => Value::Str(s.clone()),
            Expr::Path(p) => {
                let parts: Vec<&str> = p.iter().map(String::as_str).collect();
                Value::Str(scope.lookup(&parts)?)
            }
            Expr::Status(f) => Value::Bool(match f.as_str() {
                "success" => !scope.failed(),
                "failure" => scope.failed(),
                "always" => true,
                // The runner never cancels a run.
                _ => false,
            }),
            Expr::Not(e) => Value::Bool(!e.eval(scope)?.truthy()),
            Expr::And(a, b) => Value::Bool(a.eval(scope)?.truthy() && b.eval(scope)?.truthy()),
            Expr::Or(a, b) => Value::Bool(a.eval(scope)?.truthy() || b.eval(scope)?.truthy()),
            Expr::Eq(a, b, equal) => {
                let same = a
                    .eval(scope)?
                    .text()
                    .eq_ignore_ascii_case(&b.eval(scope)?.text());
                Value::Bool(same == *equal)
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// The `${{ … }}` parts of a string, as (start, end, inner text).
pub fn placeholders(text: &str) -> Result<Vec<(usize, usize, &str)>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("${{").map(|i| i + from) {
        let end = text[start..]
            .find("}}")
            .map(|i| i + start)
            .ok_or_else(|| format!("`${{{{` without `}}}}` in `{text}`"))?;
        out.push((start, end + 2, &text[start + 3..end]));
        from = end + 2;
    }
    Ok(out)
}

/// `text` with every `${{ … }}` replaced by its value.
pub fn substitute(text: &str, scope: &dyn Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut last = 0;
    for (start, end, inner) in placeholders(text)? {
        out.push_str(&text[last..start]);
        out.push_str(&parse_expr(inner)?.eval(scope)?.text());
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// An `if:` condition: with or without the wrapper, `success() && …` unless it names a status.
pub fn condition(text: &str, scope: &dyn Scope) -> Result<bool, String> {
    let expr = parse_expr(unwrap(text))?;
    let value = expr.eval(scope)?.truthy();
    Ok(if expr.has_status() {
        value
    } else {
        value && !scope.failed()
    })
}

pub fn unwrap(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("${{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(t)
}
