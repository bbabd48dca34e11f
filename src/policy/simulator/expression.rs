//! The few policy expressions the simulator evaluates: the ones gateway policies use to read the
//! request and the validated token (`context.Request.IpAddress`, a header, a claim of the `Jwt` in
//! a variable). Anything else is C# the simulator does not run; callers report it as not simulated
//! rather than guess.

use serde_json::Value as Json;

use super::Context;

/// Evaluates `@( … )`; `None` when the expression is outside the supported set.
pub fn evaluate(expression: &str, ctx: &Context) -> Option<String> {
    let body = expression.trim().strip_prefix("@(")?.strip_suffix(')')?;
    let code: String = strip_whitespace(body);
    let mut p = Parser { rest: &code };
    let value = p.expression(ctx)?;
    p.rest.is_empty().then_some(value)
}

/// Removes whitespace outside string literals, so `GetValueOrDefault( "a" , "b" )` reads as one form.
fn strip_whitespace(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in code.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn string(&mut self) -> Option<String> {
        let r = self.rest.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = r.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => {
                    self.rest = &r[i + 1..];
                    return Some(out);
                }
                c => out.push(c),
            }
        }
        None
    }

    /// `("name")` or `("name","default")`.
    fn name_and_default(&mut self) -> Option<(String, Option<String>)> {
        if !self.eat("(") {
            return None;
        }
        let name = self.string()?;
        let default = if self.eat(",") {
            Some(self.string()?)
        } else {
            None
        };
        self.eat(")").then_some((name, default))
    }

    fn expression(&mut self, ctx: &Context) -> Option<String> {
        self.eat("(string)");
        if self.eat("context.Request.IpAddress") {
            return Some(ctx.request.ip.clone());
        }
        if self.eat("context.Request.Method") {
            return Some(ctx.request.method.clone());
        }
        if self.eat("context.Request.Url.Path") {
            return Some(ctx.request.path.clone());
        }
        if self.eat("context.Request.Headers.GetValueOrDefault") {
            let (name, default) = self.name_and_default()?;
            return ctx
                .request
                .header(&name)
                .map(str::to_owned)
                .or(default)
                .or(Some(String::new()));
        }
        if self.eat("((Jwt)context.Variables[") {
            let variable = self.string()?;
            if !(self.eat("]).Claims.GetValueOrDefault")
                || self.eat("]).Claims?.GetValueOrDefault"))
            {
                return None;
            }
            let (claim, default) = self.name_and_default()?;
            let claims = ctx.jwt_variable(&variable)?;
            return Some(match claims.get(&claim) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Array(items)) => {
                    items.iter().map(json_text).collect::<Vec<_>>().join(",")
                }
                Some(other) => json_text(other),
                None => default.unwrap_or_default(),
            });
        }
        if self.eat("context.Variables[") {
            let variable = self.string()?;
            return self
                .eat("]")
                .then(|| ctx.text_variable(&variable))
                .flatten();
        }
        None
    }
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::simulator::{Context, Request, Variable};

    fn ctx() -> Context {
        let mut request = Request::new("POST", "/llm/chat");
        request.headers.push(("X-Caller".into(), "tests".into()));
        let mut ctx = Context::new(request, 0);
        let claims = serde_json::json!({"oid": "o-1", "roles": ["a", "b"]});
        ctx.variables.insert(
            "jwt".into(),
            Variable::Jwt(claims.as_object().unwrap().clone()),
        );
        ctx.variables
            .insert("plain".into(), Variable::Text("p".into()));
        ctx
    }

    #[test]
    fn supported_forms() {
        let c = ctx();
        assert_eq!(
            evaluate("@(context.Request.IpAddress)", &c).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            evaluate(
                "@( context.Request.Headers.GetValueOrDefault(\"x-caller\", \"none\") )",
                &c
            )
            .as_deref(),
            Some("tests")
        );
        assert_eq!(
            evaluate(
                "@(context.Request.Headers.GetValueOrDefault(\"x-other\",\"none\"))",
                &c
            )
            .as_deref(),
            Some("none")
        );
        assert_eq!(
            evaluate("@(((Jwt)context.Variables[\"jwt\"]).Claims.GetValueOrDefault(\"oid\", \"anonymous\"))", &c).as_deref(),
            Some("o-1")
        );
        assert_eq!(
            evaluate("@(((Jwt)context.Variables[\"jwt\"]).Claims.GetValueOrDefault(\"missing\", \"anonymous\"))", &c).as_deref(),
            Some("anonymous")
        );
        assert_eq!(
            evaluate("@((string)context.Variables[\"plain\"])", &c).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn anything_else_is_not_evaluated() {
        let c = ctx();
        assert_eq!(evaluate("@(context.Subscription.Id)", &c), None);
        assert_eq!(evaluate("@(context.Request.IpAddress + \"x\")", &c), None);
        assert_eq!(evaluate("@{ return 1; }", &c), None);
        assert_eq!(
            evaluate(
                "@(((Jwt)context.Variables[\"nope\"]).Claims.GetValueOrDefault(\"oid\", \"a\"))",
                &c
            ),
            None
        );
    }
}
