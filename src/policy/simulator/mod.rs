//! The offline simulator: evaluates a policy's inbound section for one request at one instant.
//!
//! It decides what APIM would decide for the policies it models (token checks, header checks,
//! rate and token limits, CORS, return-response) and reports what the others would do as effects
//! (backend selection, managed identity). Whatever it cannot evaluate — an unknown policy, a C#
//! expression outside the supported set, a named value it was not given — is listed under
//! `not_simulated` with its position; it is never taken silently as true or false.

mod expression;
mod limits;
mod sections;
mod token_check;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use super::document::Position;
use super::model::{Cors, Policy, PolicyDocument, Value};
use super::token::KeySet;
use crate::cloud::{Cloud, DEFAULT_SANDBOX_ADDRESS};

pub use limits::Counters;
pub use sections::{BackendPlan, DEFAULT_GLOBAL_POLICY, Flow, Reply};
pub use token_check::AZURE_AD_CLOCK_SKEW_SECONDS;

/// An incoming request as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// The caller's address, for `context.Request.IpAddress`.
    pub ip: String,
    /// Tokens the model will report for this request, counted by `llm-token-limit` when it passes.
    pub llm_tokens: u64,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            query: Vec::new(),
            ip: "127.0.0.1".to_owned(),
            llm_tokens: 0,
        }
    }

    /// Header lookup, case-insensitive as HTTP says.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A policy variable: text, or the claims of a validated token (`output-token-variable-name`).
#[derive(Debug, Clone)]
pub enum Variable {
    Text(String),
    Jwt(Map<String, Json>),
}

/// What evaluation knows about the request so far.
#[derive(Debug, Clone)]
pub struct Context {
    pub request: Request,
    pub variables: BTreeMap<String, Variable>,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

impl Context {
    pub fn new(request: Request, now: i64) -> Context {
        Context {
            request,
            variables: BTreeMap::new(),
            now,
        }
    }

    fn jwt_variable(&self, name: &str) -> Option<&Map<String, Json>> {
        match self.variables.get(name)? {
            Variable::Jwt(claims) => Some(claims),
            Variable::Text(_) => None,
        }
    }

    fn text_variable(&self, name: &str) -> Option<String> {
        match self.variables.get(name)? {
            Variable::Text(t) => Some(t.clone()),
            Variable::Jwt(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The request reaches the backend.
    Allow,
    /// The gateway answered with an error.
    Deny,
    /// The gateway answered by itself (CORS preflight, `return-response`).
    Respond,
    /// Something the decision depends on was not simulated (see `not_simulated`).
    Unknown,
}

/// Something the simulator could not evaluate, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NotSimulated {
    pub policy: String,
    pub line: usize,
    pub column: usize,
    pub what: String,
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub decision: Decision,
    pub status: u16,
    /// Machine-readable reason of a denial, e.g. `TokenExpired`.
    pub reason: Option<String>,
    /// The message the caller sees in `{"statusCode":N,"message":"…"}`.
    pub message: Option<String>,
    /// The policy that decided (or the last one evaluated).
    pub policy: Option<String>,
    /// Why, for people: which claim, which key, which value. Never contains the token.
    pub detail: Option<String>,
    pub effects: Vec<Json>,
    pub not_simulated: Vec<NotSimulated>,
    /// Headers the gateway adds to its own answer (`Retry-After`, CORS headers).
    pub response_headers: Vec<(String, String)>,
}

impl Outcome {
    /// The JSON body APIM sends with an error.
    pub fn body(&self) -> Option<String> {
        let message = self.message.as_ref()?;
        Some(json!({ "statusCode": self.status, "message": message }).to_string())
    }
}

/// A denial produced by one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
    pub detail: String,
    pub headers: Vec<(String, String)>,
}

/// The result of evaluating one statement.
enum Step {
    Continue,
    Deny(Denial),
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        effect: Json,
    },
    Unknown(NotSimulated),
}

/// The simulator's configuration and its counters (which persist across requests).
#[derive(Debug, Clone)]
pub struct Simulator {
    pub cloud: Cloud,
    pub sandbox_address: String,
    /// Signing keys per tenant (lower-case GUID).
    tenant_keys: BTreeMap<String, KeySet>,
    /// Keys for a tenant without its own entry (`--jwks`).
    default_keys: Option<KeySet>,
    pub named_values: BTreeMap<String, String>,
    pub counters: Counters,
}

impl Simulator {
    pub fn new(cloud: Cloud) -> Simulator {
        Simulator {
            cloud,
            sandbox_address: DEFAULT_SANDBOX_ADDRESS.to_owned(),
            tenant_keys: BTreeMap::new(),
            default_keys: None,
            named_values: BTreeMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn with_tenant_keys(mut self, tenant: &str, keys: KeySet) -> Simulator {
        self.tenant_keys.insert(tenant.to_ascii_lowercase(), keys);
        self
    }

    pub fn with_default_keys(mut self, keys: KeySet) -> Simulator {
        self.default_keys = Some(keys);
        self
    }

    pub(crate) fn keys_for(&self, tenant: &str) -> Option<&KeySet> {
        self.tenant_keys
            .get(&tenant.to_ascii_lowercase())
            .or(self.default_keys.as_ref())
    }

    /// Evaluates the inbound section for `request` at `now` (Unix seconds).
    pub fn evaluate(&mut self, policy: &PolicyDocument, request: &Request, now: i64) -> Outcome {
        let (outcome, token_keys) = self.evaluate_deferred(policy, request, now);
        // The request passed: its tokens now count against every token limit it went through.
        for key in token_keys {
            self.counters.record_tokens(&key, now, request.llm_tokens);
        }
        outcome
    }

    /// Like [`Simulator::evaluate`], but an allowed request's tokens are not counted: the
    /// returned keys are the token-limit counters it passed, for the caller to charge with
    /// [`Counters::record_tokens`] once the backend has said how many tokens it used (a gateway
    /// only knows them from the answer's `usage`).
    pub fn evaluate_deferred(
        &mut self,
        policy: &PolicyDocument,
        request: &Request,
        now: i64,
    ) -> (Outcome, Vec<String>) {
        let (outcome, keys, _) = self.evaluate_inbound(policy, request, now);
        (outcome, keys)
    }

    /// Like [`Simulator::evaluate_deferred`], and also the context the inbound section left (the
    /// request as rewritten, the variables set), which the later sections read.
    pub fn evaluate_inbound(
        &mut self,
        policy: &PolicyDocument,
        request: &Request,
        now: i64,
    ) -> (Outcome, Vec<String>, Context) {
        let mut ctx = Context::new(request.clone(), now);
        let mut outcome = Outcome {
            decision: Decision::Allow,
            status: 200,
            reason: None,
            message: None,
            policy: None,
            detail: None,
            effects: Vec::new(),
            not_simulated: Vec::new(),
            response_headers: Vec::new(),
        };
        let mut pending_tokens: Vec<String> = Vec::new();
        for statement in &policy.inbound {
            let name = statement.policy.name().to_owned();
            let step = self.step(
                &statement.policy,
                statement.position,
                &mut ctx,
                &mut outcome,
                &mut pending_tokens,
            );
            match step {
                Step::Continue => {}
                Step::Deny(d) => {
                    outcome.decision = Decision::Deny;
                    outcome.status = d.status;
                    outcome.reason = Some(d.reason.to_owned());
                    outcome.message = Some(d.message);
                    outcome.detail = Some(d.detail);
                    outcome.policy = Some(name);
                    outcome.response_headers.extend(d.headers);
                    return (outcome, Vec::new(), ctx);
                }
                Step::Respond {
                    status,
                    headers,
                    effect,
                } => {
                    outcome.decision = Decision::Respond;
                    outcome.status = status;
                    outcome.policy = Some(name);
                    outcome.response_headers.extend(headers);
                    outcome.effects.push(effect);
                    return (outcome, Vec::new(), ctx);
                }
                Step::Unknown(ns) => {
                    outcome.decision = Decision::Unknown;
                    outcome.status = 0;
                    outcome.policy = Some(name);
                    outcome.detail = Some(format!("cannot decide: {}", ns.what));
                    outcome.not_simulated.push(ns);
                    return (outcome, Vec::new(), ctx);
                }
            }
        }
        (outcome, pending_tokens, ctx)
    }

    fn step(
        &mut self,
        policy: &Policy,
        position: Position,
        ctx: &mut Context,
        outcome: &mut Outcome,
        pending_tokens: &mut Vec<String>,
    ) -> Step {
        let name = policy.name().to_owned();
        let not_simulated = |what: String| NotSimulated {
            policy: name.clone(),
            line: position.line,
            column: position.column,
            what,
        };
        match policy {
            Policy::Base => Step::Continue,
            Policy::ValidateAzureAdToken(check) => match self.check_azure_ad_token(check, ctx) {
                Ok(()) => Step::Continue,
                Err(token_check::Failure::Denied(d)) => Step::Deny(d),
                Err(token_check::Failure::NotSimulated(ns)) => Step::Unknown(ns),
            },
            Policy::ValidateJwt(check) => match self.check_jwt(check, ctx, position) {
                Ok(()) => Step::Continue,
                Err(token_check::Failure::Denied(d)) => Step::Deny(d),
                Err(token_check::Failure::NotSimulated(ns)) => Step::Unknown(ns),
            },
            Policy::CheckHeader(check) => {
                let status = match self.resolve(&check.status, ctx, &name) {
                    Ok(s) => s.trim().parse().unwrap_or(401),
                    Err(ns) => return Step::Unknown(ns),
                };
                let message = match self.resolve(&check.message, ctx, &name) {
                    Ok(m) => m,
                    Err(ns) => return Step::Unknown(ns),
                };
                let Some(actual) = ctx.request.header(&check.name).map(str::to_owned) else {
                    return Step::Deny(Denial {
                        status,
                        reason: "HeaderNotFound",
                        message,
                        detail: format!("header `{}` is missing", check.name),
                        headers: Vec::new(),
                    });
                };
                if check.values.is_empty() {
                    return Step::Continue;
                }
                let mut allowed = Vec::new();
                for v in &check.values {
                    match self.resolve(v, ctx, &name) {
                        Ok(v) => allowed.push(v),
                        Err(ns) => return Step::Unknown(ns),
                    }
                }
                let ok = allowed.iter().any(|v| {
                    if check.ignore_case {
                        v.eq_ignore_ascii_case(&actual)
                    } else {
                        *v == actual
                    }
                });
                if ok {
                    Step::Continue
                } else {
                    Step::Deny(Denial {
                        status,
                        reason: "HeaderValueNotAllowed",
                        message,
                        detail: format!("header `{}` has a value that is not allowed", check.name),
                        headers: Vec::new(),
                    })
                }
            }
            Policy::SetHeader(set) => {
                let mut values = Vec::new();
                for v in &set.values {
                    match self.resolve(v, ctx, &name) {
                        Ok(v) => values.push(v),
                        Err(ns) => {
                            // The header's value is unknown; later policies reading it may be wrong.
                            outcome.not_simulated.push(ns);
                            return Step::Continue;
                        }
                    }
                }
                sections::set_header(&mut ctx.request.headers, set, values);
                outcome.effects.push(
                    json!({ "policy": name, "header": set.name, "action": set.exists_action }),
                );
                Step::Continue
            }
            Policy::SetVariable {
                name: variable,
                value,
            } => {
                match self.resolve(value, ctx, &name) {
                    Ok(v) => {
                        ctx.variables.insert(variable.clone(), Variable::Text(v));
                    }
                    Err(ns) => outcome.not_simulated.push(ns),
                }
                Step::Continue
            }
            Policy::RateLimitByKey(limit) => match self.rate_limit(limit, ctx, &name, position) {
                Ok(None) => Step::Continue,
                Ok(Some(d)) => Step::Deny(d),
                Err(ns) => Step::Unknown(ns),
            },
            Policy::LlmTokenLimit(limit) => match self.token_limit(limit, ctx, &name, position) {
                Ok((None, key, headers)) => {
                    pending_tokens.push(key);
                    outcome.response_headers.extend(headers);
                    Step::Continue
                }
                Ok((Some(d), _, _)) => Step::Deny(d),
                Err(ns) => Step::Unknown(ns),
            },
            Policy::Cors(cors) => cors_step(cors, ctx, outcome),
            Policy::ReturnResponse(r) => {
                let mut headers = Vec::new();
                for (header, values) in &r.headers {
                    let mut resolved = Vec::new();
                    for v in values {
                        match self.resolve(v, ctx, &name) {
                            Ok(v) => resolved.push(v),
                            Err(ns) => outcome.not_simulated.push(ns),
                        }
                    }
                    headers.push((header.clone(), resolved.join(",")));
                }
                let body = r.body.as_ref().map(|b| self.resolve(b, ctx, &name));
                let body = match body {
                    Some(Ok(b)) => Some(b),
                    Some(Err(ns)) => {
                        outcome.not_simulated.push(ns);
                        None
                    }
                    None => None,
                };
                Step::Respond {
                    status: r.status,
                    headers,
                    effect: json!({ "policy": name, "status": r.status, "reason": r.reason, "body": body }),
                }
            }
            Policy::SetBackendService {
                backend_id,
                base_url,
            } => {
                let (key, value) = match (backend_id, base_url) {
                    (Some(id), _) => ("backend_id", id),
                    (None, Some(url)) => ("base_url", url),
                    (None, None) => return Step::Continue,
                };
                match self.resolve(value, ctx, &name) {
                    Ok(v) => outcome.effects.push(json!({ "policy": name, key: v })),
                    Err(ns) => outcome.not_simulated.push(ns),
                }
                Step::Continue
            }
            Policy::AuthenticationManagedIdentity {
                resource,
                client_id,
            } => {
                match self.resolve(resource, ctx, &name) {
                    Ok(r) => outcome.effects.push(json!({
                        "policy": name,
                        "resource": r,
                        "identity": client_id.as_deref().unwrap_or("system-assigned"),
                        "sets": "Authorization: Bearer <managed identity token>",
                    })),
                    Err(ns) => outcome.not_simulated.push(ns),
                }
                Step::Continue
            }
            Policy::Opaque(_) => {
                outcome
                    .not_simulated
                    .push(not_simulated("this policy is not simulated".to_owned()));
                Step::Continue
            }
        }
    }

    /// A value as APIM would see it: named values substituted, supported expressions evaluated.
    pub(crate) fn resolve(
        &self,
        value: &Value,
        ctx: &Context,
        policy: &str,
    ) -> Result<String, NotSimulated> {
        let not_simulated = |what: String| NotSimulated {
            policy: policy.to_owned(),
            line: value.position.line,
            column: value.position.column,
            what,
        };
        if value.is_expression() {
            return expression::evaluate(&value.text, ctx)
                .ok_or_else(|| not_simulated(format!("expression `{}`", value.text.trim())));
        }
        let mut out = String::new();
        let mut rest = value.text.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start..].find("}}") else {
                break;
            };
            let name = &rest[start + 2..start + end];
            let resolved = self.named_values.get(name).ok_or_else(|| {
                not_simulated(format!("named value `{{{{{name}}}}}` was not given"))
            })?;
            out.push_str(&rest[..start]);
            out.push_str(resolved);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn cors_step(cors: &Cors, ctx: &Context, outcome: &mut Outcome) -> Step {
    let Some(origin) = ctx.request.header("Origin").map(str::to_owned) else {
        return Step::Continue;
    };
    let origin_ok = cors.origins.iter().any(|o| {
        o == "*"
            || o.trim_end_matches('/')
                .eq_ignore_ascii_case(origin.trim_end_matches('/'))
    });
    let preflight = ctx.request.method.eq_ignore_ascii_case("OPTIONS")
        && ctx
            .request
            .header("Access-Control-Request-Method")
            .is_some();
    let allow_origin = if cors.origins.iter().any(|o| o == "*") && !cors.allow_credentials {
        "*".to_owned()
    } else {
        origin.clone()
    };
    if !preflight {
        if origin_ok {
            outcome
                .response_headers
                .push(("Access-Control-Allow-Origin".to_owned(), allow_origin));
        }
        return Step::Continue;
    }
    let method = ctx
        .request
        .header("Access-Control-Request-Method")
        .unwrap_or_default()
        .to_owned();
    let method_ok = match &cors.methods {
        None => ["GET", "POST"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&method)),
        Some(list) => list
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(&method)),
    };
    let requested: Vec<String> = ctx
        .request
        .header("Access-Control-Request-Headers")
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let headers_ok = requested.iter().all(|h| {
        cors.headers
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(h))
    });
    if origin_ok && method_ok && headers_ok {
        let mut headers = vec![
            ("Access-Control-Allow-Origin".to_owned(), allow_origin),
            ("Access-Control-Allow-Methods".to_owned(), method),
        ];
        if !requested.is_empty() {
            headers.push((
                "Access-Control-Allow-Headers".to_owned(),
                requested.join(","),
            ));
        }
        if cors.allow_credentials {
            headers.push((
                "Access-Control-Allow-Credentials".to_owned(),
                "true".to_owned(),
            ));
        }
        if let Some(age) = &cors.preflight_max_age {
            headers.push(("Access-Control-Max-Age".to_owned(), age.clone()));
        }
        Step::Respond {
            status: 200,
            headers,
            effect: json!({ "policy": "cors", "preflight": "allowed" }),
        }
    } else if cors.terminate_unmatched_request {
        // APIM ends an unmatched preflight with an empty 200 and no CORS headers; the browser blocks.
        Step::Respond {
            status: 200,
            headers: Vec::new(),
            effect: json!({ "policy": "cors", "preflight": "rejected" }),
        }
    } else {
        Step::Continue
    }
}

#[cfg(test)]
mod tests;
