//! Entra ID sign-in as `provision` and the people it serves meet it: OpenID metadata and signing
//! keys, client credentials for the operator (and for apps, with a CI's token: `assertion.rs`,
//! from the sandbox's CI issuers in `ci.rs`), and the device code flow with its browser page.
//!
//! Errors carry Entra's full body (`error_codes`, `trace_id`, `timestamp`…) because clients branch
//! on those fields, not only on `error`.

mod assertion;
mod ci;
mod device;
mod devicelogin;
mod flows;
mod mint;
mod pages;
mod scopes;
mod token;

pub(crate) use flows::Flows;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::auth;
use super::state::State;
use super::{Shared, new_guid};

use device::devicecode;
use devicelogin::{devicelogin_page, devicelogin_submit};
use scopes::{
    Api, api_of_scopes, application_by_resource, client_app, new_user_code, no_service_principal,
    random_bytes, unknown_client, visible,
};
use token::token;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Scopes that ask for sign-in artefacts rather than naming an API.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(|s, p| metadata(s, p, true)),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(|s, p| metadata(s, p, false)),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            get(|s, p| keys(s, p, true)),
        )
        .route("/{tenant}/discovery/keys", get(|s, p| keys(s, p, false)))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            get(post_only).post(devicecode),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            get(post_only).post(|s, p, f| token(s, p, f, true, assertion::exchange)),
        )
        .route(
            "/{tenant}/oauth2/token",
            get(post_only).post(|s, p, f| token(s, p, f, false, assertion::exchange)),
        )
        .route("/_sandbox/tokens", axum::routing::post(mint::mint_handler))
        .merge(ci::routes())
        .route(
            "/devicelogin",
            get(devicelogin_page).post(devicelogin_submit),
        )
}

/// An Entra error before it gets its trace ids: `error`, the AADSTS number and its text.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    error: &'static str,
    code: u32,
    text: String,
}

impl Failure {
    fn new(error: &'static str, code: u32, text: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            text: text.into(),
        }
    }

    fn unauthorized(mut self) -> Failure {
        self.status = StatusCode::UNAUTHORIZED;
        self
    }
}

/// The one place Entra's error body is built, so every endpoint answers in the same shape.
fn entra_error(shared: &Shared, failure: &Failure) -> Response {
    let trace_id = new_guid();
    let correlation_id = new_guid();
    let timestamp = entra_timestamp(shared.now_ms());
    let body = json!({
        "error": failure.error,
        "error_description": format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            failure.code, failure.text
        ),
        "error_codes": [failure.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{}/error?code={}", shared.base_url, failure.code),
    });
    entra_json(failure.status, &body, "no-store, no-cache")
}

/// JSON as the token service sends it: with a charset, and never cached (tokens, codes, errors).
fn entra_json(status: StatusCode, body: &Value, cache_control: &'static str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if cache_control.starts_with("no-store") {
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// `2016-04-08 07:21:58Z`, Entra's own format (not RFC 3339).
fn entra_timestamp(ms: u64) -> String {
    crate::clock::format_utc_millis(ms).replacen('T', " ", 1)
}

fn respond(shared: &Shared, result: Result<Response, Failure>) -> Response {
    result.unwrap_or_else(|failure| entra_error(shared, &failure))
}

fn missing(parameter: &str) -> Failure {
    Failure::new(
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

fn server_error() -> Failure {
    let mut failure = Failure::new(
        "server_error",
        50_000,
        "There was an error issuing a token or an issue with our sign-in service.",
    );
    failure.status = StatusCode::INTERNAL_SERVER_ERROR;
    failure
}

async fn post_only(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let failure = Failure::new(
        "invalid_request",
        900_561,
        "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
    );
    entra_error(&shared, &failure)
}

/// The tenant's GUID, whether the path names it by GUID or by domain.
fn tenant_id(shared: &Shared, segment: &str) -> Result<String, Failure> {
    shared.state().tenant(segment).map(|t| t.id.clone()).ok_or_else(|| {
        Failure::new(
            "invalid_request",
            90_002,
            format!(
                "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    })
}

fn tenant_name(state: &State, tid: &str) -> String {
    state
        .tenant(tid)
        .map_or_else(|| tid.to_owned(), |t| t.display_name.clone())
}

async fn metadata(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    v2: bool,
) -> Response {
    respond(
        &shared,
        tenant_id(&shared, &tenant).map(|tid| {
            entra_json(
                StatusCode::OK,
                &openid_configuration(&shared, &tid, v2),
                "max-age=86400, private",
            )
        }),
    )
}

fn openid_configuration(shared: &Shared, tid: &str, v2: bool) -> Value {
    let base = format!("{}/{tid}", shared.base_url);
    if v2 {
        json!({
            "issuer": auth::issuer_v2(shared, tid),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username",
                "name", "tid", "ver", "oid", "email"
            ],
            "request_uri_parameter_supported": false,
            "tenant_region_scope": "WW",
        })
    } else {
        json!({
            "issuer": auth::issuer_v1(shared, tid),
            "authorization_endpoint": format!("{base}/oauth2/authorize"),
            "token_endpoint": format!("{base}/oauth2/token"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "jwks_uri": format!("{base}/discovery/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "email",
                "given_name", "family_name", "unique_name", "upn", "oid", "tid", "ver"
            ],
            "microsoft_multi_refresh_token": true,
            "tenant_region_scope": "WW",
        })
    }
}

async fn keys(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    v2: bool,
) -> Response {
    let result = tenant_id(&shared, &tenant).map(|tid| {
        let keys: Vec<Value> = shared
            .signers(&tid)
            .iter()
            .map(|signer| {
                let mut jwk = serde_json::to_value(signer.jwk()).unwrap_or_default();
                if let Value::Object(fields) = &mut jwk {
                    fields.insert("x5t".into(), json!(signer.kid));
                    if v2 {
                        fields.insert("issuer".into(), json!(auth::issuer_v2(&shared, &tid)));
                    }
                }
                jwk
            })
            .collect();
        entra_json(
            StatusCode::OK,
            &json!({ "keys": keys }),
            "max-age=86400, private",
        )
    });
    respond(&shared, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_in_entras_format() {
        assert_eq!(entra_timestamp(1_460_100_118_000), "2016-04-08 07:21:58Z");
    }
}
