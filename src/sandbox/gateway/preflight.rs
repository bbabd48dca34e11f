//! CORS preflights that no `OPTIONS` operation takes. APIM's cors policy page: "Only the `cors`
//! policy is evaluated on the `OPTIONS` request during preflight. Remaining configured policies
//! are evaluated on the approved request", and "If a request matches an operation with an
//! `OPTIONS` method defined in the API, preflight request processing logic associated with the
//! `cors` policy will not be executed" (cors policy, Microsoft Learn, "Usage notes" and
//! "`cors` policy scenarios"). So a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is first routed as it is; when no `OPTIONS` operation
//! matches, it is routed to the operation of the method it asks about, and only the `cors`
//! statements of that operation's effective `<inbound>` run: no token check, no limit, no backend.
//!
//! A preflight that an `OPTIONS` operation does take runs that operation's whole pipeline
//! without the `cors` statements ([`without_cors`]): its own policies (a token check among them)
//! decide, as on APIM, where such an operation is how custom preflight logic is written.
//!
//! Their answer: the allowed preflight's 200 with the `Access-Control-*` headers, or, for an
//! origin, method or header the policy does not allow, the empty 200 without them
//! (`terminate-unmatched-request`, default `true`; with `false` and no other `cors` to apply, "terminate the
//! request with an empty 200 OK response" as well). With no `cors` statement at all there is
//! nothing to answer the preflight, and it is the `OPTIONS` request it is: no operation, 404.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response};

use super::respond;
use crate::policy::model::{Policy, PolicyDocument};
use crate::policy::simulator::{Decision, Outcome};
use crate::sandbox::GatewayRecord;

/// The method a browser's preflight asks about, when the request is one.
pub(super) fn requested_method(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method != Method::OPTIONS || !headers.contains_key("origin") {
        return None;
    }
    let asked = headers
        .get("access-control-request-method")?
        .to_str()
        .ok()?;
    let asked = asked.trim();
    (!asked.is_empty()).then(|| asked.to_owned())
}

/// The effective policy reduced to its `<inbound>` `cors` statements, or `None` without any.
pub(super) fn cors_only(policy: &PolicyDocument) -> Option<PolicyDocument> {
    let inbound: Vec<_> = policy
        .inbound
        .iter()
        .filter(|s| matches!(s.policy, Policy::Cors(_)))
        .cloned()
        .collect();
    (!inbound.is_empty()).then(|| PolicyDocument {
        inbound,
        ..PolicyDocument::default()
    })
}

/// The effective policy without its `<inbound>` `cors` statements: what a preflight that an
/// `OPTIONS` operation took runs ("preflight request processing logic associated with the
/// `cors` policy will not be executed"), so the operation's own policies decide.
pub(super) fn without_cors(policy: &PolicyDocument) -> PolicyDocument {
    let mut policy = policy.clone();
    policy
        .inbound
        .retain(|s| !matches!(s.policy, Policy::Cors(_)));
    policy
}

/// The preflight's answer from the `cors` statements' outcome.
pub(super) fn answer(outcome: &Outcome, record: &mut GatewayRecord) -> Response<Body> {
    record.decision = "respond".into();
    record.reason = None;
    record.detail = Some(match outcome.decision {
        Decision::Respond if !outcome.response_headers.is_empty() => {
            "cors: preflight allowed".to_owned()
        }
        _ => "cors: preflight not allowed (no CORS headers)".to_owned(),
    });
    match outcome.decision {
        Decision::Respond => respond(outcome),
        _ => Response::new(Body::empty()),
    }
}
