//! The gateway's answer after `<inbound>`: `<outbound>` over the backend's answer and
//! `<on-error>` over an error's, as the simulator's section runner decides
//! (`policy::simulator::sections` has the rules and their sources). An element it cannot run is
//! a 500 naming it, as in `<inbound>`.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};

use super::apim_error;
use crate::policy::model::{PolicyDocument, Statement};
use crate::policy::simulator::{Context, NotSimulated, Reply, Simulator};
use crate::sandbox::GatewayRecord;

/// What the later sections need from the inbound evaluation.
pub(super) struct Sections<'a> {
    pub simulator: &'a Simulator,
    pub policy: &'a PolicyDocument,
    pub ctx: &'a Context,
}

/// The 500 for an element the sandbox cannot run, recorded as `NotSimulated`.
pub(super) fn not_simulated(unknown: &NotSimulated, record: &mut GatewayRecord) -> Response<Body> {
    let message = format!(
        "The sandbox's gateway cannot simulate <{}> at line {}, column {}: {}",
        unknown.policy, unknown.line, unknown.column, unknown.what
    );
    record.decision = "unknown".into();
    record.reason = Some("NotSimulated".into());
    record.detail = Some(message.clone());
    apim_error(500, &message)
}

impl Sections<'_> {
    /// `<outbound>` over the backend's answer (or the empty 200 of a request not forwarded).
    pub fn outbound(&self, response: Response<Body>, record: &mut GatewayRecord) -> Response<Body> {
        self.run("outbound", &self.policy.outbound, response, record)
    }

    /// `<on-error>` over the answer an error produced (a policy's denial, an unreachable
    /// backend).
    pub fn on_error(&self, response: Response<Body>, record: &mut GatewayRecord) -> Response<Body> {
        self.run("on-error", &self.policy.on_error, response, record)
    }

    fn run(
        &self,
        section: &str,
        statements: &[Statement],
        response: Response<Body>,
        record: &mut GatewayRecord,
    ) -> Response<Body> {
        // Nothing to run (the common case): the answer passes untouched, a stream still streaming.
        if statements.is_empty() {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let mut reply = Reply {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: None,
        };
        if let Err(unknown) = self
            .simulator
            .run_reply_section(section, statements, self.ctx, &mut reply)
        {
            return not_simulated(&unknown, record);
        }
        parts.status = StatusCode::from_u16(reply.status).unwrap_or(parts.status);
        // Headers that were not text are kept as they were; the others as the section left them.
        let binary: Vec<(HeaderName, HeaderValue)> = parts
            .headers
            .iter()
            .filter(|(_, v)| v.to_str().is_err())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parts.headers.clear();
        for (name, value) in binary {
            parts.headers.append(name, value);
        }
        for (name, value) in &reply.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(value),
            ) {
                parts.headers.append(name, value);
            }
        }
        let body = match reply.body {
            Some(text) => {
                parts.headers.remove("content-length");
                Body::from(text)
            }
            None => body,
        };
        Response::from_parts(parts, body)
    }
}
