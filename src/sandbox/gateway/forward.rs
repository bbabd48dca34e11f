//! The gateway's call to its backend once the policies allowed a request: where
//! (`set-backend-service`, else the API's `serviceUrl`), with which credentials
//! (`authentication-managed-identity`: a real sandbox token for the service's system-assigned
//! identity), and what comes back (status, headers and body, as the backend sent them).
//!
//! APIM appends the request's path below the API path, and its query, to the backend URL
//! ("set-backend-service", Microsoft Learn: the base URL replaces the API's `serviceUrl`; the
//! operation's path is kept). The caller's `Authorization` header does not reach the backend
//! when the managed identity sets its own (`authentication-managed-identity` "uses the managed
//! identity to obtain an access token … and sets it in the Authorization header", overriding
//! what was there); without that policy APIM forwards headers as they came, and so does the
//! sandbox.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::Value;

use super::service::Service;
use super::streamed::{self, Charge};
use crate::policy::simulator::{BackendPlan, Outcome};
use crate::sandbox::{BackendRecord, Shared, auth, tls};

/// Largest request body the gateway relays (Azure OpenAI's own request limit is far below).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the client library sets itself.
const NOT_FORWARDED: [&str; 9] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

pub(super) struct Call {
    pub request: Request,
    /// The path below the API path, starting with `/` (or empty).
    pub remainder: String,
    /// The query as sent, without `?`.
    pub query: String,
    /// The token-limit counters the request passed, charged with what the answer used.
    pub charge: Charge,
    /// What `<backend>` decided: the request headers to send, a backend it set.
    pub plan: BackendPlan,
}

pub(super) struct Forwarded {
    pub response: Response<Body>,
    pub backend: BackendRecord,
    /// Why the gateway answered instead of the backend (`BackendUnreachable`…).
    pub failure: Option<String>,
}

/// The client the gateway calls backends with, one per sandbox so that its keep-alive
/// connections are reused across requests. Under `--tls` the sandbox's own endpoints (the
/// inference endpoint among them) present its self-signed certificate, which that client
/// trusts besides the usual roots, as a client told about the sandbox's CA would.
fn client(shared: &Shared) -> reqwest::Client {
    shared
        .gateway_cache
        .client
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let builder = reqwest::Client::builder().no_proxy();
            let sandbox_ca = tls::certificate_pem(shared)
                .and_then(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).ok());
            match sandbox_ca {
                Some(ca) => builder.add_root_certificate(ca),
                None => builder,
            }
            .build()
            .unwrap_or_default()
        })
        .clone()
}

/// The part of a JSON answer `llm-token-limit` reads; the rest is skipped, not built.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(default)]
    total_tokens: Option<u64>,
}

fn effect<'a>(outcome: &'a Outcome, key: &str) -> Option<&'a str> {
    outcome
        .effects
        .iter()
        .rev()
        .find_map(|e| e.get(key).and_then(Value::as_str))
}

fn failed(url: String, auth: &str, status: u16, reason: &str, message: &str) -> Forwarded {
    Forwarded {
        response: super::apim_error(status, message),
        backend: BackendRecord {
            url,
            status: 0,
            auth: auth.to_owned(),
        },
        failure: Some(reason.to_owned()),
    }
}

pub(super) async fn forward(
    shared: &Shared,
    service: &Service,
    api: &str,
    outcome: &Outcome,
    call: Call,
) -> Forwarded {
    // `<backend>`'s set-backend-service runs after `<inbound>`'s, so it wins.
    let chosen = match &call.plan.backend {
        Some(("backend_id", id)) => (Some(id.as_str()), None),
        Some((_, url)) => (None, Some(url.as_str())),
        None => (effect(outcome, "backend_id"), effect(outcome, "base_url")),
    };
    let base = match chosen {
        (Some(id), _) => service.backend_url(id).map(str::to_owned),
        (None, Some(url)) => Some(url.to_owned()),
        (None, None) => service.service_url(api).map(str::to_owned),
    };
    let resource = effect(outcome, "resource").map(str::to_owned);
    let auth = if resource.is_some() {
        "managed-identity"
    } else {
        "none"
    };
    let Some(base) = base else {
        let message = match chosen.0 {
            Some(id) => format!("Backend '{id}' is not defined on this service."),
            None => {
                "The API has no backend: neither set-backend-service nor a service URL.".to_owned()
            }
        };
        return failed(String::new(), auth, 500, "BackendNotFound", &message);
    };
    let mut url = format!("{}{}", base.trim_end_matches('/'), call.remainder);
    if !call.query.is_empty() {
        url = format!("{url}?{}", call.query);
    }
    let token = match &resource {
        Some(resource) => {
            let principal = service.principal_id.as_deref().unwrap_or_default();
            let minted = (!principal.is_empty())
                .then(|| {
                    shared
                        .gateway_cache
                        .token(principal, resource, shared.now_s(), || {
                            auth::managed_identity_token(shared, principal, resource)
                        })
                })
                .flatten();
            match minted {
                Some(token) => Some(token),
                None => {
                    let message = "Managed identity is not enabled on this service: authentication-managed-identity cannot get a token.";
                    return failed(url, auth, 500, "ManagedIdentityNotEnabled", message);
                }
            }
        }
        None => None,
    };
    let (parts, body) = call.request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return failed(
            url,
            auth,
            413,
            "RequestBodyTooLarge",
            "The request body is too large.",
        );
    };
    let streamed_prompt = streamed::streamed_prompt(&body);
    if let Some(prompt) = streamed_prompt {
        call.charge.apply(prompt);
    }
    let mut builder = client(shared).request(parts.method.clone(), &url);
    // The request's headers as the inbound and backend sections left them (set-header).
    for (name, value) in &call.plan.headers {
        let lower = name.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || (token.is_some() && lower == "authorization")
        {
            continue;
        }
        builder = builder.header(name, value);
    }
    if let Some(token) = &token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let answer = match builder.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            // APIM's answer when the backend cannot be reached (error source `forward-request`).
            let message = format!("Backend service is unreachable: {e}");
            return failed(url, auth, 500, "BackendConnectionFailure", &message);
        }
    };
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    // A JSON answer is read whole for its `usage`; anything else (a `text/event-stream` of
    // chunks) passes through as it arrives, as APIM relays streamed completions, its tokens
    // estimated on the way when the request asked for a stream (see `streamed`).
    let body = if json {
        let bytes = answer.bytes().await.unwrap_or_default();
        if streamed_prompt.is_none() {
            let tokens = serde_json::from_slice::<Answer>(&bytes)
                .ok()
                .and_then(|a| a.usage?.total_tokens);
            call.charge.apply(tokens.unwrap_or(0));
        }
        Body::from(bytes)
    } else if streamed_prompt.is_some() {
        streamed::counted(Body::new(reqwest::Body::from(answer)), call.charge)
    } else {
        Body::new(reqwest::Body::from(answer))
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in &headers {
        if NOT_FORWARDED.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Forwarded {
        response,
        backend: BackendRecord {
            url,
            status,
            auth: auth.to_owned(),
        },
        failure: None,
    }
}
