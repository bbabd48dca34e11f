//! The APIM gateway's data plane: every APIM service of the ARM state answers at
//! `{base_url}/apim/{service name, lower case}` (its ARM `gatewayUrl`), routes a request to an
//! API and operation ([`routes`]), runs the service's stored policies through the project's
//! simulator, and on allow calls its backend over real loopback HTTP with a managed-identity
//! token ([`forward`]). The gateway's decision and why go into the request log
//! ([`GatewayRecord`]), so a test can see which policy refused a call.
//!
//! The policies are the ones stored through ARM, composed global → API → operation as APIM does
//! (products are not modelled by the sandbox's ARM, so they add nothing), and evaluated with the
//! keys APIM would fetch from each sandbox tenant's OpenID configuration, on the sandbox's clock.
//! An element the simulator cannot evaluate answers 500 naming it: the sandbox never guesses
//! that a policy it cannot run would have let a request through.

mod cache;
mod forward;
mod pipeline;
mod preflight;
pub(crate) mod routes;
mod service;
mod streamed;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::routing::any;
use serde_json::{Value, json};

use super::listener::Peer;
use super::{GatewayRecord, Shared};
use crate::cloud::Cloud;
use crate::policy::Document;
use crate::policy::model::PolicyDocument;
use crate::policy::simulator::{
    Context, DEFAULT_GLOBAL_POLICY, Decision, Outcome, Request as SimRequest, Simulator,
};
use crate::policy::token::{Jwks, KeySet};
pub(crate) use cache::Cache;
use routes::{NoRoute, Scope, Target};
use service::Service;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/apim/{service}", any(handle))
        .route("/apim/{service}/{*rest}", any(handle))
}

/// The gateway's own answers: `{"statusCode": N, "message": "…"}`, APIM's shape for every
/// error it produces itself (dataplane.md §1.2-§1.5).
fn apim_error(status: u16, message: &str) -> Response<Body> {
    let body = json!({ "statusCode": status, "message": message }).to_string();
    json_response(status, body)
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn with_record(mut response: Response<Body>, mut record: GatewayRecord) -> Response<Body> {
    record.status = response.status().as_u16();
    response.extensions_mut().insert(record);
    response
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
) -> Response<Body> {
    let full = request.uri().path().to_owned();
    let below = full.strip_prefix("/apim/").unwrap_or_default();
    let (name, path) = match below.find('/') {
        Some(at) => (&below[..at], &below[at..]),
        None => (below, "/"),
    };
    let name = name.to_owned();
    let path = path.to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let mut record = GatewayRecord {
        service: name.clone(),
        ..GatewayRecord::default()
    };
    let loaded = Service::load(&shared.settled_state(), &name);
    let Some(service) = loaded else {
        // No such gateway: its host name would not resolve; the nearest answer is APIM's 404.
        record.decision = "no-route".into();
        record.reason = Some("ServiceNotFound".into());
        return with_record(
            json_response(NoRoute::STATUS, NoRoute::BODY.to_owned()),
            record,
        );
    };
    // The sandbox's origin stands for Azure's HTTPS front door everywhere (login, ARM, Graph),
    // plain HTTP included, so an API that accepts only `https` is still reached through it.
    let scheme = "https";
    let method = request.method().as_str().to_owned();
    let target = Target {
        scheme,
        method: &method,
        path: &path,
        query: &query,
    };
    // A browser's preflight that no OPTIONS operation takes is matched to the operation it asks
    // about (`Access-Control-Request-Method`), where only `cors` runs (see `preflight`).
    let requested = preflight::requested_method(request.method(), request.headers());
    let routed = routes::route(&service.apis, &target).map(|r| (r, false));
    let routed = match (routed, &requested) {
        (Err(_), Some(asked)) => routes::route(
            &service.apis,
            &Target {
                method: asked,
                ..target
            },
        )
        .map(|r| (r, true)),
        (routed, _) => routed,
    };
    let (route, is_preflight) = match routed {
        Ok(routed) => routed,
        Err(_) => {
            record.decision = "no-route".into();
            record.reason = Some(NoRoute::REASON.into());
            record.detail = Some(NoRoute::MESSAGE.into());
            return with_record(
                json_response(NoRoute::STATUS, NoRoute::BODY.to_owned()),
                record,
            );
        }
    };
    record.api = Some(route.api.id.clone());
    record.operation = Some(route.operation.id.clone());
    let texts = [
        service.global_policy.clone(),
        service.api_policy(&route.api.id).map(str::to_owned),
        service
            .operation_policy(&route.api.id, &route.operation.id)
            .map(str::to_owned),
    ];
    let policy = shared.gateway_cache.policy(texts, effective_policy);
    let policy = match policy.as_ref() {
        Ok(policy) => policy,
        Err(message) => {
            record.decision = "unknown".into();
            record.reason = Some("PolicyNotUsable".into());
            record.detail = Some(message.clone());
            return with_record(apim_error(500, message), record);
        }
    };
    // A preflight an OPTIONS operation took runs that operation's pipeline without the cors
    // policy's preflight logic (see `preflight`).
    let without_cors;
    let policy = if requested.is_some() && !is_preflight {
        without_cors = preflight::without_cors(policy);
        &without_cors
    } else {
        policy
    };
    let sim_request = SimRequest {
        method: method.clone(),
        path: path.clone(),
        headers: request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        ip: peer.ip().to_string(),
        llm_tokens: 0,
    };
    if is_preflight {
        let Some(cors) = preflight::cors_only(policy) else {
            record.decision = "no-route".into();
            record.reason = Some(NoRoute::REASON.into());
            record.detail = Some(NoRoute::MESSAGE.into());
            return with_record(
                json_response(NoRoute::STATUS, NoRoute::BODY.to_owned()),
                record,
            );
        };
        let (outcome, ..) = evaluate(&shared, &name, &service, &cors, &sim_request);
        let response = preflight::answer(&outcome, &mut record);
        return with_record(response, record);
    }
    let (outcome, token_keys, simulator, ctx) =
        evaluate(&shared, &name, &service, policy, &sim_request);
    record.decision = decision_name(outcome.decision).into();
    record.reason.clone_from(&outcome.reason);
    record.detail = outcome
        .policy
        .as_ref()
        .map(|p| format!("{p}: {}", outcome.detail.as_deref().unwrap_or("")));
    if let Some(unknown) = outcome.not_simulated.first() {
        let response = pipeline::not_simulated(unknown, &mut record);
        return with_record(response, record);
    }
    let sections = pipeline::Sections {
        simulator: &simulator,
        policy,
        ctx: &ctx,
    };
    match outcome.decision {
        Decision::Allow => {}
        Decision::Deny => {
            let body = outcome.body().unwrap_or_default();
            let response = add_headers(json_response(outcome.status, body), &outcome);
            let response = sections.on_error(response, &mut record);
            return with_record(response, record);
        }
        Decision::Respond => return with_record(respond(&outcome), record),
        // Never without a `not_simulated` entry (answered above); kept total all the same.
        Decision::Unknown => {
            let message = "The sandbox's gateway cannot decide this request.";
            return with_record(apim_error(500, message), record);
        }
    }
    let plan = match simulator.run_backend(&policy.backend, &ctx) {
        Ok(plan) => plan,
        Err(unknown) => {
            let response = pipeline::not_simulated(&unknown, &mut record);
            return with_record(response, record);
        }
    };
    if !plan.forward {
        // No forward-request: "Policies in the outbound section are evaluated immediately".
        let response = add_headers(Response::new(Body::empty()), &outcome);
        let response = sections.outbound(response, &mut record);
        return with_record(response, record);
    }
    let remainder = remainder(&path, &route.api.path);
    let charge = streamed::Charge {
        shared: shared.clone(),
        service: name.to_ascii_lowercase(),
        keys: token_keys,
    };
    let forwarded = forward::forward(
        &shared,
        &service,
        &route.api.id,
        &outcome,
        forward::Call {
            request,
            remainder,
            query,
            charge,
            plan,
        },
    )
    .await;
    record.backend = Some(forwarded.backend.clone());
    let response = add_headers(forwarded.response, &outcome);
    let response = if let Some(reason) = &forwarded.failure {
        record.reason = Some(reason.clone());
        sections.on_error(response, &mut record)
    } else {
        sections.outbound(response, &mut record)
    };
    with_record(response, record)
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::Respond => "respond",
        Decision::Unknown => "unknown",
    }
}

/// The request path below the API's path: what APIM appends to the backend URL
/// (`/llm/deployments/d/chat/completions` under API path `llm` → `/deployments/d/chat/completions`).
fn remainder(path: &str, api_path: &str) -> String {
    let skip = api_path.split('/').filter(|s| !s.is_empty()).count();
    let rest: Vec<&str> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .skip(skip)
        .collect();
    let joined = rest.join("/");
    if joined.is_empty() {
        String::new()
    } else {
        format!("/{joined}")
    }
}

/// The stored policies of the three scopes the sandbox models (global, API, operation texts),
/// composed into one document.
fn effective_policy(texts: &cache::PolicyTexts) -> Result<PolicyDocument, String> {
    let parse = |scope: Scope, text: Option<&str>| -> Result<Option<Document>, String> {
        text.map(|t| Document::parse(t).map_err(|e| format!("the stored {scope} policy: {e}")))
            .transpose()
    };
    // A service without a stored global policy has APIM's default one, which forwards requests
    // ("By default, API Management sets up this policy at the global scope", forward-request).
    let global = parse(
        Scope::Global,
        Some(texts[0].as_deref().unwrap_or(DEFAULT_GLOBAL_POLICY)),
    )?;
    let api_policy = parse(Scope::Api, texts[1].as_deref())?;
    let op_policy = parse(Scope::Operation, texts[2].as_deref())?;
    let composed = routes::compose(&[
        (Scope::Global, global.as_ref()),
        (Scope::Api, api_policy.as_ref()),
        (Scope::Operation, op_policy.as_ref()),
    ])
    .map_err(|e| e.to_string())?;
    PolicyDocument::from_document(&composed).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Runs the simulator with what APIM would know: each tenant's published keys, the service's
/// named values, the sandbox's clock and the service's counters (kept across requests). Returns
/// the inbound outcome, the token-limit counters to charge, and the simulator and context the
/// later sections run with.
fn evaluate(
    shared: &Shared,
    name: &str,
    service: &Service,
    policy: &PolicyDocument,
    request: &SimRequest,
) -> (Outcome, Vec<String>, Simulator, Context) {
    let mut simulator = Simulator::new(Cloud::Sandbox);
    // The whole origin, scheme included: a `--tls` sandbox's tokens name `https://` issuers.
    simulator.sandbox_address = shared.base_url.clone();
    let ids: Vec<String> = shared
        .state()
        .tenants
        .iter()
        .flat_map(|t| t.keys.iter().map(|k| format!("{}:{}", t.id, k.kid)))
        .collect();
    let sets = shared.gateway_cache.keys(ids, || {
        let tenants: Vec<String> = shared
            .state()
            .tenants
            .iter()
            .map(|t| t.id.clone())
            .collect();
        tenants
            .into_iter()
            .filter_map(|tenant| {
                let keys = shared.signers(&tenant).iter().map(|s| s.jwk()).collect();
                Some((tenant, KeySet::from_jwks(Jwks { keys }).ok()?))
            })
            .collect()
    });
    for (tenant, set) in sets.iter() {
        simulator = simulator.with_tenant_keys(tenant, set.clone());
    }
    simulator.named_values = service.named_values.clone();
    let mut all = shared
        .gateway_counters
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let counters = all.entry(name.to_ascii_lowercase()).or_default();
    simulator.counters = std::mem::take(counters);
    let (outcome, keys, ctx) = simulator.evaluate_inbound(policy, request, shared.now_s());
    *counters = std::mem::take(&mut simulator.counters);
    drop(all);
    (outcome, keys, simulator, ctx)
}

pub(super) fn add_headers(mut response: Response<Body>, outcome: &Outcome) -> Response<Body> {
    for (name, value) in &outcome.response_headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The gateway answering by itself (CORS preflight, `return-response`).
pub(super) fn respond(outcome: &Outcome) -> Response<Body> {
    let body = outcome
        .effects
        .last()
        .and_then(|e| e.get("body"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    add_headers(response, outcome)
}

#[cfg(test)]
mod tests {
    use super::remainder;

    #[test]
    fn the_backend_gets_the_path_below_the_api() {
        assert_eq!(
            remainder("/llm/deployments/d/chat/completions", "llm"),
            "/deployments/d/chat/completions"
        );
        assert_eq!(remainder("/a/b/c", "a/b"), "/c");
        assert_eq!(remainder("/llm", "llm"), "");
        assert_eq!(remainder("/x/y", ""), "/x/y");
    }
}
