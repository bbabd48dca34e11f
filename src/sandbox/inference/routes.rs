//! The inference endpoint of every Cognitive Services account with a custom subdomain, at
//! `{base}/foundry/{subdomain}/` (its ARM `properties.endpoint`): chat completions on the
//! versioned route `openai/deployments/{deployment}/chat/completions?api-version=…` and on the
//! v1 route `openai/v1/chat/completions` (deployment name in the body's `model`; no
//! api-version), as foundry-arm.md §1.8 and dataplane.md §2.1 describe them.
//!
//! The checks run in Azure's order as far as captures show it: route (a versioned call without
//! `api-version` is a plain 404, MicrosoftDocs/azure-docs#114602), caller ([`super::caller`]),
//! deployment (404 `DeploymentNotFound` unless it exists and is `Succeeded`), body (the model
//! stub's 400s), rate limits ([`super::limits`]), and then the stub's answer, whole or as
//! server-sent events. Everything reads the sandbox's clock; the limits live with the router,
//! one set per sandbox.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::routing::any;
use axum::{Extension, Router};
use serde_json::Value;

use super::caller::{Credentials, admit};
use super::limits::{Exceeded, Limits, Remaining, Rule, Verdict};
use super::model::{InvalidRequest, complete, parse_request};
use super::reply::{self, Refusal, azure_error, not_found};
use crate::sandbox::arm::retired_deployment;
use crate::sandbox::state::State;
use crate::sandbox::state::arm::Resource;
use crate::sandbox::{Shared, new_guid};

const ACCOUNT_TYPE: &str = "Microsoft.CognitiveServices/accounts";
const DEPLOYMENT_TYPE: &str = "Microsoft.CognitiveServices/accounts/deployments";

const DEPLOYMENT_NOT_FOUND: &str = "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/foundry/{subdomain}/{*rest}", any(serve))
        .layer(Extension(Arc::new(Limits::default())))
}

/// A chat completions route.
enum Route {
    Versioned {
        deployment: String,
        api_version: String,
    },
    V1,
}

impl Route {
    fn parse(method: &Method, rest: &str, query: Option<&str>) -> Option<Route> {
        if method != Method::POST {
            return None;
        }
        if rest == "openai/v1/chat/completions" {
            return Some(Route::V1);
        }
        let deployment = rest
            .strip_prefix("openai/deployments/")?
            .strip_suffix("/chat/completions")?;
        if deployment.is_empty() || deployment.contains('/') {
            return None;
        }
        let api_version = query?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "api-version")
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())?;
        Some(Route::Versioned {
            deployment: deployment.to_owned(),
            api_version,
        })
    }

    /// The path as Azure's `PermissionDenied` message names it (templated, dataplane.md §2.6).
    fn template(&self) -> &'static str {
        match self {
            Route::Versioned { .. } => "/openai/deployments/{deployment-id}/chat/completions",
            Route::V1 => "/openai/v1/chat/completions",
        }
    }

    /// What the 429 message names as the API version.
    fn version_label(&self) -> &str {
        match self {
            Route::Versioned { api_version, .. } => api_version,
            Route::V1 => "v1",
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(limits): Extension<Arc<Limits>>,
    Path((subdomain, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let call = Call {
        shared: &shared,
        limits: &limits,
        subdomain: &subdomain,
        rest: &rest,
        method: &method,
        query: uri.query(),
        headers: &headers,
        body: &body,
    };
    call.answer().unwrap_or_else(Refusal::into_response)
}

/// One inference request.
struct Call<'a> {
    shared: &'a Shared,
    limits: &'a Limits,
    subdomain: &'a str,
    rest: &'a str,
    method: &'a Method,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// What the answer needs of the deployment, read under the state's lock.
struct Target {
    id: String,
    model: String,
    capacity: u64,
    tier: String,
    region: String,
}

impl Call<'_> {
    fn answer(&self) -> Result<Response<Body>, Refusal> {
        let credentials = Credentials::read(self.shared, self.headers);
        let now_ms = self.shared.now_ms();
        let (route, target) = {
            let state = self.shared.settled_state();
            let account = account(&state, self.subdomain).ok_or_else(not_found)?;
            let route = Route::parse(self.method, self.rest, self.query).ok_or_else(not_found)?;
            admit(self.shared, &state, credentials, account, route.template())?;
            let name = match &route {
                Route::Versioned { deployment, .. } => deployment.clone(),
                Route::V1 => model_in(self.body)?,
            };
            let target = target(&state, account, &name)
                .ok_or_else(|| azure_error(404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND))?;
            if let Some((code, message)) = retired_deployment(&state.arm, &target.id, now_ms) {
                return Err(azure_error(410, code, message));
            }
            (route, target)
        };
        let request = parse_request(self.body).map_err(invalid)?;
        let completion = complete(&request, &target.model, self.shared.now_s());
        let cost = completion.prompt_tokens + completion.completion_tokens;
        let scale = |ms: u64| (ms as f64 / self.shared.config.time_scale.max(1e-9)) as u64;
        let rules = (
            Rule {
                count: target.capacity.max(2),
                period_ms: scale(10_000),
            },
            Rule {
                count: target.capacity * 1000,
                period_ms: scale(60_000),
            },
        );
        let remaining = match self.limits.charge(&target.id, rules, cost, now_ms) {
            Verdict::Allowed(remaining) => remaining,
            Verdict::Throttled {
                exceeded,
                retry_after_ms,
                remaining,
            } => {
                return Err(throttled(
                    &route,
                    &target,
                    exceeded,
                    retry_after_ms,
                    remaining,
                ));
            }
        };
        let (content_type, body) = if request.stream {
            let frames = completion.stream(request.include_usage);
            let pause = self.shared.config.latency.stream_frame_ms();
            let pause = scale(pause);
            (
                "text/event-stream; charset=utf-8",
                reply::streamed(frames, pause),
            )
        } else {
            ("application/json", Body::from(completion.response()))
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in rate_headers(remaining).into_iter().chain([
            ("apim-request-id", new_guid()),
            ("x-ms-region", target.region),
        ]) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        Ok(response)
    }
}

fn invalid(error: InvalidRequest) -> Refusal {
    Refusal {
        status: InvalidRequest::STATUS,
        body: error.body(),
        headers: Vec::new(),
    }
}

/// The v1 route's deployment: the body's `model`.
fn model_in(body: &[u8]) -> Result<String, Refusal> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: the stub says so in OpenAI's words.
        return Err(parse_request(body).map_or_else(invalid, |_| not_found()));
    };
    match fields.get("model") {
        Some(Value::String(model)) if !model.is_empty() => Ok(model.clone()),
        _ => Err(invalid(InvalidRequest {
            message: "Missing required parameter: 'model'.".to_owned(),
            param: Some("model".to_owned()),
            code: Some("missing_required_parameter"),
        })),
    }
}

/// The live account whose custom subdomain is `subdomain` (subdomains ignore case, as hosts do).
fn account<'s>(state: &'s State, subdomain: &str) -> Option<&'s Resource> {
    state.arm.resources.values().find(|r| {
        r.body.get("type").and_then(Value::as_str) == Some(ACCOUNT_TYPE)
            && r.property_str("customSubDomainName")
                .is_some_and(|s| s.eq_ignore_ascii_case(subdomain))
    })
}

/// The account's deployment `name`, when it is `Succeeded`.
fn target(state: &State, account: &Resource, name: &str) -> Option<Target> {
    let id = format!("{}/deployments/{name}", account.id).to_ascii_lowercase();
    let deployment = state.arm.resources.get(&id)?;
    if deployment.body.get("type").and_then(Value::as_str) != Some(DEPLOYMENT_TYPE)
        || deployment.provisioning_state() != Some("Succeeded")
    {
        return None;
    }
    // Azure answers with the model and its version (`gpt-4.1-2025-04-14`), not the deployment.
    let spec = deployment.properties().and_then(|p| p.get("model"));
    let field = |key: &str| spec.and_then(|m| m.get(key)).and_then(Value::as_str);
    let model = match (field("name"), field("version")) {
        (Some(model), Some(version)) => format!("{model}-{version}"),
        (Some(model), None) => model.to_owned(),
        (None, _) => name.to_owned(),
    };
    let capacity = deployment
        .body
        .get("sku")
        .and_then(|s| s.get("capacity"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let tier = format!(
        "{} {}",
        text(account.body.get("kind")),
        text(account.body.get("sku").and_then(|s| s.get("name")))
    );
    Some(Target {
        id,
        model,
        capacity,
        tier,
        region: text(account.body.get("location")),
    })
}

fn rate_headers(remaining: Remaining) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-ratelimit-remaining-requests",
            remaining.requests.to_string(),
        ),
        ("x-ratelimit-remaining-tokens", remaining.tokens.to_string()),
    ]
}

/// 429 in Azure OpenAI's classic wording ("call rate limit" for requests, "token rate limit"
/// for tokens), with `retry-after` in whole seconds rounded up and `retry-after-ms`
/// (dataplane.md §2.8).
fn throttled(
    route: &Route,
    target: &Target,
    exceeded: Exceeded,
    retry_after_ms: u64,
    remaining: Remaining,
) -> Refusal {
    let seconds = retry_after_ms.div_ceil(1000).max(1);
    let which = match exceeded {
        Exceeded::Requests => "call rate limit",
        Exceeded::Tokens => "token rate limit",
    };
    let message = format!(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {} have exceeded {which} of your current {} pricing tier. Please retry after {seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.",
        route.version_label(),
        target.tier
    );
    let mut refusal = azure_error(429, "429", &message);
    refusal.headers = vec![
        ("retry-after", seconds.to_string()),
        ("retry-after-ms", retry_after_ms.to_string()),
    ];
    refusal.headers.extend(rate_headers(remaining));
    refusal
}
