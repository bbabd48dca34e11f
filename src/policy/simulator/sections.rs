//! The sections after `<inbound>`: `<backend>`, `<outbound>` and `<on-error>`, run over a reply
//! the caller (the sandbox's gateway) holds. Pure like the rest of the simulator: the gateway
//! does the HTTP, this decides what the policies do to the request it sends and to the answer.
//!
//! What APIM documents, and so what runs here:
//! - `<backend>`: `forward-request` sends the request to the backend; without it "the request
//!   [is] not being forwarded to the backend service. Policies in the outbound section are
//!   evaluated immediately" (forward-request policy, Microsoft Learn), and APIM puts it at the
//!   global scope by default ([`DEFAULT_GLOBAL_POLICY`]). `set-header` changes the request the
//!   backend receives, `set-backend-service` where it goes.
//! - `<outbound>` runs on the backend's answer: `set-header`, `set-status`, `set-body` (literal
//!   text, named values and the supported expressions; a Liquid template is not simulated) and
//!   `return-response`, which replaces the answer and ends the pipeline ("The return-response
//!   policy cancels pipeline execution", return-response policy, Microsoft Learn).
//! - `<on-error>` runs, with the same statements, when an earlier step raised an error: a
//!   policy's denial (validate-azure-ad-token, rate and token limits: their errors are listed
//!   under "Predefined errors for policies" in API Management error handling) or the backend
//!   being unreachable; "any remaining steps in the inbound, backend, or outbound sections are
//!   skipped and execution jumps to the statements in the on-error section" (same page).
//!
//! Any other element in these sections is reported as not simulated with its position, and the
//! gateway answers 500 naming it: never a silent pass.

use super::{Context, NotSimulated, Simulator};
use crate::policy::document::Position;
use crate::policy::model::{Policy, SetHeader, Statement, Value};

/// The global policy APIM gives a new service: every request is forwarded.
pub const DEFAULT_GLOBAL_POLICY: &str = "<policies><inbound /><backend><forward-request /></backend><outbound /><on-error /></policies>";

/// An HTTP answer as the outbound and on-error sections see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `Some` once `set-body` or `return-response` replaced the body; `None` keeps the one the
    /// gateway holds (which may still be streaming).
    pub body: Option<String>,
}

/// What the backend section decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendPlan {
    pub forward: bool,
    /// The request headers after the section's `set-header`s.
    pub headers: Vec<(String, String)>,
    /// `("backend_id" | "base_url", value)` when the section set the backend.
    pub backend: Option<(&'static str, String)>,
}

/// Whether a section ran to its end or a `return-response` ended the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Returned,
}

impl Simulator {
    /// Runs `<backend>` for the request as the inbound section left it.
    pub fn run_backend(
        &self,
        statements: &[Statement],
        ctx: &Context,
    ) -> Result<BackendPlan, NotSimulated> {
        let mut plan = BackendPlan {
            headers: ctx.request.headers.clone(),
            ..BackendPlan::default()
        };
        for statement in statements {
            let name = statement.policy.name();
            match &statement.policy {
                Policy::Base => {}
                Policy::Opaque(e) if e.name == "forward-request" => plan.forward = true,
                Policy::SetHeader(set) => {
                    let values = self.values_of(&set.values, ctx, name)?;
                    set_header(&mut plan.headers, set, values);
                }
                Policy::SetBackendService {
                    backend_id,
                    base_url,
                } => {
                    let (key, value) = match (backend_id, base_url) {
                        (Some(id), _) => ("backend_id", id),
                        (None, Some(url)) => ("base_url", url),
                        (None, None) => continue,
                    };
                    plan.backend = Some((key, self.resolve(value, ctx, name)?));
                }
                other => return Err(unsupported(other, statement.position, "backend")),
            }
        }
        Ok(plan)
    }

    /// Runs `<outbound>` or `<on-error>` (`section` names which, for messages) over `reply`.
    pub fn run_reply_section(
        &self,
        section: &str,
        statements: &[Statement],
        ctx: &Context,
        reply: &mut Reply,
    ) -> Result<Flow, NotSimulated> {
        for statement in statements {
            let name = statement.policy.name();
            match &statement.policy {
                Policy::Base => {}
                Policy::SetHeader(set) => {
                    let values = self.values_of(&set.values, ctx, name)?;
                    set_header(&mut reply.headers, set, values);
                }
                Policy::ReturnResponse(r) => {
                    let mut headers = Vec::new();
                    for (header, values) in &r.headers {
                        headers
                            .push((header.clone(), self.values_of(values, ctx, name)?.join(",")));
                    }
                    let body = match &r.body {
                        Some(b) => Some(self.resolve(b, ctx, name)?),
                        None => Some(String::new()),
                    };
                    *reply = Reply {
                        status: r.status,
                        headers,
                        body,
                    };
                    return Ok(Flow::Returned);
                }
                Policy::Opaque(e) if e.name == "set-status" => {
                    let code = e.attribute("code").map(|a| Value {
                        text: a.value.clone(),
                        position: a.position,
                    });
                    let code = match code {
                        Some(code) => self.resolve(&code, ctx, "set-status")?,
                        None => String::new(),
                    };
                    reply.status = code
                        .trim()
                        .parse()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .ok_or_else(|| NotSimulated {
                            policy: "set-status".to_owned(),
                            line: e.position.line,
                            column: e.position.column,
                            what: format!("`{code}` is not an HTTP status code"),
                        })?;
                }
                Policy::Opaque(e) if e.name == "set-body" => {
                    if e.attribute("template").is_some() {
                        return Err(NotSimulated {
                            policy: "set-body".to_owned(),
                            line: e.position.line,
                            column: e.position.column,
                            what: "a Liquid template body is not simulated".to_owned(),
                        });
                    }
                    let text = Value {
                        text: e.text(),
                        position: e.position,
                    };
                    reply.body = Some(self.resolve(&text, ctx, "set-body")?);
                }
                other => return Err(unsupported(other, statement.position, section)),
            }
        }
        Ok(Flow::Continue)
    }

    fn values_of(
        &self,
        values: &[Value],
        ctx: &Context,
        policy: &str,
    ) -> Result<Vec<String>, NotSimulated> {
        values
            .iter()
            .map(|v| self.resolve(v, ctx, policy))
            .collect()
    }
}

fn unsupported(policy: &Policy, position: Position, section: &str) -> NotSimulated {
    NotSimulated {
        policy: policy.name().to_owned(),
        line: position.line,
        column: position.column,
        what: format!("<{}> is not run in <{section}>", policy.name()),
    }
}

/// `set-header` over a header list, with APIM's `exists-action`s (default `override`).
pub(super) fn set_header(
    headers: &mut Vec<(String, String)>,
    set: &SetHeader,
    values: Vec<String>,
) {
    let exists = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(&set.name));
    match set.exists_action.as_str() {
        "skip" if exists => {}
        "delete" => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&set.name)),
        "append" => headers.extend(values.into_iter().map(|v| (set.name.clone(), v))),
        _ => {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&set.name));
            headers.push((set.name.clone(), values.join(",")));
        }
    }
}
