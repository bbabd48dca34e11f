//! Entra ID sign-in as `provision` and the people it serves meet it: OpenID metadata and signing
//! keys, client credentials for the operator, and the device code flow with its browser page.
//!
//! Errors carry Entra's full body (`error_codes`, `trace_id`, `timestamp`…) because clients branch
//! on those fields, not only on `error`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::admin::{self, DecisionError};
use super::auth;
use super::state::{DeviceCode, DeviceCodeStatus, DirectoryObject, State, User};
use super::{Shared, new_guid, now_ms};

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
            get(post_only).post(|s, p, f| token(s, p, f, true)),
        )
        .route(
            "/{tenant}/oauth2/token",
            get(post_only).post(|s, p, f| token(s, p, f, false)),
        )
        .route(
            "/devicelogin",
            get(devicelogin_page).post(devicelogin_submit),
        )
}

// ---------------------------------------------------------------------------------------------
// Entra errors

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
    let timestamp = entra_timestamp(now_ms());
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

// ---------------------------------------------------------------------------------------------
// Metadata and keys

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

// ---------------------------------------------------------------------------------------------
// Resources and scopes

/// An API registered in the tenant, as one token request addresses it.
#[derive(Debug, Clone)]
struct Api {
    app_id: String,
    /// The resource as the client wrote it (`api://{appId}`, the appId or an identifier URI):
    /// v1 tokens carry it as `aud`.
    resource: String,
    v2: bool,
    /// Scope values the API exposes and has enabled.
    enabled: Vec<String>,
}

impl Api {
    fn of(app: &DirectoryObject, resource: &str) -> Api {
        let api = app.body.get("api");
        let scopes = api
            .and_then(|a| a.get("oauth2PermissionScopes"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Api {
            app_id: app.str("appId").unwrap_or_default().to_owned(),
            resource: resource.to_owned(),
            v2: api
                .and_then(|a| a.get("requestedAccessTokenVersion"))
                .and_then(Value::as_i64)
                == Some(2),
            enabled: scopes
                .iter()
                .filter(|s| s.get("isEnabled").and_then(Value::as_bool).unwrap_or(true))
                .filter_map(|s| s.get("value").and_then(Value::as_str))
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Objects still replicating are invisible to the token service too, as in Entra right after
/// creation.
fn visible<'a>(
    shared: &Shared,
    object: Option<&'a DirectoryObject>,
) -> Option<&'a DirectoryObject> {
    object.filter(|o| !shared.replicating(o.created_ms))
}

/// The live application a resource names: its appId, `api://{appId}` or one of its identifier URIs.
fn application_by_resource<'a>(
    shared: &Shared,
    state: &'a State,
    tid: &'a str,
    resource: &str,
) -> Option<&'a DirectoryObject> {
    let wanted = resource.trim_end_matches('/');
    state
        .live(tid, super::state::ObjectKind::Application)
        .filter(|app| !shared.replicating(app.created_ms))
        .find(|app| {
            let app_id = app.str("appId").unwrap_or_default();
            let uris = app
                .body
                .get("identifierUris")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            !app_id.is_empty()
                && (wanted.eq_ignore_ascii_case(app_id)
                    || wanted.eq_ignore_ascii_case(&format!("api://{app_id}"))
                    || uris
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|uri| wanted.eq_ignore_ascii_case(uri.trim_end_matches('/'))))
        })
}

fn no_service_principal(state: &State, tid: &str, resource: &str) -> Failure {
    Failure::new(
        "invalid_resource",
        500_011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            tenant_name(state, tid)
        ),
    )
}

/// The one API that the non-OIDC scopes of a delegated request address, with a service principal.
fn api_of_scopes(
    shared: &Shared,
    state: &State,
    tid: &str,
    scopes: &[String],
) -> Result<(Api, Vec<String>), Failure> {
    let mut found: Option<Api> = None;
    let mut values = Vec::new();
    for scope in scopes.iter().filter(|s| !OIDC_SCOPES.contains(&s.as_str())) {
        let app = scope
            .rsplit_once('/')
            .filter(|(_, value)| !value.is_empty())
            .and_then(|(resource, value)| {
                let app = application_by_resource(shared, state, tid, resource)?;
                Some((Api::of(app, resource.trim_end_matches('/')), value))
            });
        let Some((api, value)) = app else {
            return Err(Failure::new(
                "invalid_scope",
                70_011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not name an API registered in tenant '{tid}': ask for api://{{appId}}/{{scope}}, {{appId}}/{{scope}} or {{identifierUri}}/{{scope}} of an application there (the sandbox issues delegated tokens for such APIs only)."
                ),
            ));
        };
        match &found {
            Some(first) if first.app_id != api.app_id => {
                return Err(Failure::new(
                    "invalid_scope",
                    28_000,
                    format!(
                        "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {} is not valid.",
                        scopes.join(" ")
                    ),
                ));
            }
            Some(_) => {}
            None => found = Some(api),
        }
        values.push(value.to_owned());
    }
    let api = found.ok_or_else(|| {
        Failure::new(
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{}' names no API: add a scope of an API registered in the tenant, e.g. api://{{appId}}/{{scope}}.",
                scopes.join(" ")
            ),
        )
    })?;
    if visible(shared, state.service_principal_by_app_id(tid, &api.app_id)).is_none() {
        return Err(no_service_principal(state, tid, &api.resource));
    }
    Ok((api, values))
}

/// The client application of a delegated request, once Entra would know it.
fn client_app<'a>(
    shared: &Shared,
    state: &'a State,
    tid: &'a str,
    client_id: &str,
) -> Result<&'a DirectoryObject, Failure> {
    visible(shared, state.application_by_app_id(tid, client_id))
        .ok_or_else(|| unknown_client(state, tid, client_id))
}

fn unknown_client(state: &State, tid: &str, client_id: &str) -> Failure {
    Failure::new(
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            tenant_name(state, tid)
        ),
    )
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Failure> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| server_error())?;
    Ok(bytes)
}

/// Nine characters from A-Z and 0-9, like Entra's user codes; unbiased, and unique among
/// the codes the sandbox remembers, since users type only this part.
fn new_user_code(state: &State) -> Result<String, Failure> {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    loop {
        let mut code = String::with_capacity(9);
        while code.len() < 9 {
            for b in random_bytes::<16>()? {
                // 252 = 7 × 36: larger bytes would favour the first letters.
                if b < 252 && code.len() < 9 {
                    code.push(char::from(ALPHABET[usize::from(b % 36)]));
                }
            }
        }
        if !state.device_codes.iter().any(|d| d.user_code == code) {
            return Ok(code);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Device authorization

#[derive(Debug, Default, Deserialize)]
struct DeviceCodeForm {
    client_id: Option<String>,
    scope: Option<String>,
}

async fn devicecode(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<DeviceCodeForm>, FormRejection>,
) -> Response {
    // An unreadable body is read as empty, as Entra does: the answer names the missing parameter.
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result = issue_device_code(&shared, &tenant, &form)
        .map(|body| entra_json(StatusCode::OK, &body, "no-store, no-cache"));
    respond(&shared, result)
}

fn issue_device_code(
    shared: &Shared,
    tenant: &str,
    form: &DeviceCodeForm,
) -> Result<Value, Failure> {
    let tid = tenant_id(shared, tenant)?;
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    let scopes: Vec<String> = form
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut state = shared.state();
    let client_id = client_app(shared, &state, &tid, client_id)?
        .str("appId")
        .unwrap_or(client_id)
        .to_owned();
    if scopes.is_empty() {
        return Err(missing("scope"));
    }
    api_of_scopes(shared, &state, &tid, &scopes)?;
    let device_code = URL_SAFE_NO_PAD.encode(random_bytes::<96>()?);
    let user_code = new_user_code(&state)?;
    let verification_uri = format!("{}/devicelogin", shared.base_url);
    let (interval, expires_in) = (
        shared.config.device_code_interval,
        shared.config.device_code_expires_in,
    );
    state.device_codes.push(DeviceCode {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        tenant_id: tid,
        client_id,
        scopes,
        issued_ms: now_ms(),
        interval,
        expires_in,
        last_poll_ms: None,
        status: DeviceCodeStatus::Pending,
    });
    shared.persist(&state);
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": expires_in,
        "interval": interval,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    }))
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    device_code: Option<String>,
    /// The v1 endpoint's names for `device_code` and for the resource of `scope`.
    code: Option<String>,
    resource: Option<String>,
}

impl TokenForm {
    /// Reads a v1 request (`resource=`, `grant_type=device_code`, `code=`) as its v2 equivalent.
    fn into_v2(mut self) -> TokenForm {
        if self.grant_type.as_deref() == Some("device_code") {
            self.grant_type = Some(DEVICE_CODE_GRANT.to_owned());
        }
        self.device_code = self.device_code.or(self.code.take());
        if self.scope.is_none() {
            self.scope = self.resource.take().map(|r| format!("{r}/.default"));
        }
        self
    }
}

async fn token(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<TokenForm>, FormRejection>,
    v2: bool,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let form = if v2 { form } else { form.into_v2() };
    let result = tenant_id(&shared, &tenant).and_then(|tid| match form.grant_type.as_deref() {
        None => Err(missing("grant_type")),
        Some("client_credentials") => client_credentials(&shared, &tid, &form),
        Some(DEVICE_CODE_GRANT) => redeem_device_code(&shared, &tid, &form),
        Some(other) => Err(Failure::new(
            "unsupported_grant_type",
            70_003,
            format!(
                "The app requested an unsupported grant type '{other}'. The sandbox supports client_credentials and {DEVICE_CODE_GRANT}."
            ),
        )),
    });
    respond(&shared, result)
}

fn token_response(access_token: &str, lifetime: i64, extra: Map<String, Value>) -> Response {
    let mut body = Map::new();
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(lifetime));
    body.insert("ext_expires_in".into(), json!(lifetime));
    body.insert("access_token".into(), json!(access_token));
    body.extend(extra);
    entra_json(StatusCode::OK, &Value::Object(body), "no-store, no-cache")
}

fn no_secret() -> Failure {
    Failure::new(
        "invalid_client",
        7_000_218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
    .unauthorized()
}

fn wrong_secret(client_id: &str) -> Failure {
    Failure::new(
        "invalid_client",
        7_000_215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
    .unauthorized()
}

/// `aud` of an app-only token, and whether the resource asks for v2 tokens (first-party
/// resources take v1).
fn app_only_audience(
    shared: &Shared,
    state: &State,
    tid: &str,
    resource: &str,
) -> Result<(String, bool), Failure> {
    let trimmed = resource.trim_end_matches('/');
    for arm in [
        "https://management.azure.com",
        "https://management.core.windows.net",
    ] {
        if trimmed.eq_ignore_ascii_case(arm) {
            return Ok((format!("{arm}/"), false));
        }
    }
    if trimmed.eq_ignore_ascii_case("https://graph.microsoft.com")
        || trimmed.eq_ignore_ascii_case(GRAPH_APP_ID)
    {
        return Ok(("https://graph.microsoft.com".to_owned(), false));
    }
    let app = application_by_resource(shared, state, tid, trimmed)
        .filter(|app| {
            visible(
                shared,
                state.service_principal_by_app_id(tid, app.str("appId").unwrap_or_default()),
            )
            .is_some()
        })
        .ok_or_else(|| no_service_principal(state, tid, trimmed))?;
    let api = Api::of(app, trimmed);
    Ok(if api.v2 {
        (api.app_id, true)
    } else {
        (api.resource, false)
    })
}

fn client_credentials(shared: &Shared, tid: &str, form: &TokenForm) -> Result<Response, Failure> {
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    let (operator, audience, v2) = {
        let state = shared.state();
        let operator = &state.operator;
        if !(operator.client_id.eq_ignore_ascii_case(client_id) && operator.tenant_id == tid) {
            // Sandbox applications have no secrets, so no secret can be right for them.
            return Err(
                match (
                    state.application_by_app_id(tid, client_id),
                    &form.client_secret,
                ) {
                    (None, _) => unknown_client(&state, tid, client_id),
                    (Some(_), None) => no_secret(),
                    (Some(_), Some(_)) => wrong_secret(client_id),
                },
            );
        }
        match &form.client_secret {
            None => return Err(no_secret()),
            Some(secret) if *secret != operator.client_secret => {
                return Err(wrong_secret(client_id));
            }
            Some(_) => {}
        }
        let scope = form
            .scope
            .as_deref()
            .ok_or_else(|| missing("scope"))?
            .trim();
        let resource = scope
            .strip_suffix("/.default")
            .filter(|r| !r.is_empty() && !r.contains(char::is_whitespace))
            .ok_or_else(|| {
                Failure::new(
                    "invalid_scope",
                    1_002_012,
                    format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                )
            })?;
        let (audience, v2) = app_only_audience(shared, &state, tid, resource)?;
        (operator.clone(), audience, v2)
    };
    let mut claims = auth::app_only_claims(
        shared,
        tid,
        &audience,
        &operator.client_id,
        &operator.object_id,
    );
    if v2 {
        for v1_only in ["appid", "appidacr"] {
            claims.remove(v1_only);
        }
        claims.insert("iss".into(), json!(auth::issuer_v2(shared, tid)));
        claims.insert("azp".into(), json!(operator.client_id));
        claims.insert("azpacr".into(), json!("1"));
        claims.insert("ver".into(), json!("2.0"));
    }
    let (access_token, lifetime) = auth::mint(shared, tid, claims).ok_or_else(server_error)?;
    Ok(token_response(&access_token, lifetime, Map::new()))
}

/// What an approved device code entitles its client to.
struct Grant {
    tenant: String,
    client_id: String,
    user: User,
    api: Api,
    /// Granted scope values, without the resource.
    granted: Vec<String>,
    refresh: bool,
    id_token: bool,
}

fn redeem_device_code(shared: &Shared, tid: &str, form: &TokenForm) -> Result<Response, Failure> {
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    let device_code = form
        .device_code
        .as_deref()
        .ok_or_else(|| missing("device_code"))?;
    let grant = poll(shared, tid, client_id, device_code)?;
    mint_user_tokens(shared, &grant)
}

/// One poll: judges the code under the state lock, records the poll and consumes an approved
/// code, so two racing polls cannot both get a token.
fn poll(shared: &Shared, tid: &str, client_id: &str, device_code: &str) -> Result<Grant, Failure> {
    let mut state = shared.state();
    let app = client_app(shared, &state, tid, client_id)?;
    if app
        .body
        .get("isFallbackPublicClient")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return Err(no_secret());
    }
    let index = state
        .device_codes
        .iter()
        .position(|d| {
            d.device_code == device_code
                && d.tenant_id == tid
                && d.client_id.eq_ignore_ascii_case(client_id)
        })
        .ok_or_else(|| {
            Failure::new(
                "bad_verification_code",
                70_018,
                "The provided value for the input parameter 'device_code' is not valid: no such device code was issued to this client in this tenant.",
            )
        })?;
    let last_poll = state.device_codes[index].last_poll_ms.replace(now_ms());
    let code = state.device_codes[index].clone();
    let result = if shared.elapsed_sandbox_ms(code.issued_ms) >= code.expires_in * 1000 {
        Err(Failure::new(
            "expired_token",
            70_020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        ))
    } else {
        match &code.status {
            DeviceCodeStatus::Pending
                if last_poll
                    .is_some_and(|t| shared.elapsed_sandbox_ms(t) < code.interval * 1000) =>
            {
                state.device_codes[index].interval += 5;
                Err(Failure::new(
                    "slow_down",
                    70_016,
                    format!(
                        "Pending end-user authorization, and the client polls faster than the interval: wait at least {} seconds between polls.",
                        code.interval + 5
                    ),
                ))
            }
            DeviceCodeStatus::Pending => Err(Failure::new(
                "authorization_pending",
                70_016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )),
            DeviceCodeStatus::Declined => Err(Failure::new(
                "authorization_declined",
                65_004,
                "User declined to consent to access the app.",
            )),
            DeviceCodeStatus::Redeemed => Err(Failure::new(
                "invalid_grant",
                70_000,
                "The provided value for the input parameter 'device_code' is not valid. The code has already been redeemed.",
            )),
            DeviceCodeStatus::Approved { user_id } => grant(shared, &state, &code, user_id)
                .inspect(|_| state.device_codes[index].status = DeviceCodeStatus::Redeemed),
        }
    };
    shared.persist(&state);
    result
}

fn grant(
    shared: &Shared,
    state: &State,
    code: &DeviceCode,
    user_id: &str,
) -> Result<Grant, Failure> {
    let user = state
        .tenant(&code.tenant_id)
        .and_then(|t| t.users.iter().find(|u| u.id == user_id))
        .cloned()
        .ok_or_else(|| {
            Failure::new(
                "invalid_grant",
                50_034,
                "The user account does not exist in the directory.",
            )
        })?;
    let (api, asked) = api_of_scopes(shared, state, &code.tenant_id, &code.scopes)?;
    let mut granted: Vec<String> = Vec::new();
    for value in &asked {
        let values = if value == ".default" {
            api.enabled.clone()
        } else {
            api.enabled
                .iter()
                .filter(|v| *v == value)
                .cloned()
                .collect()
        };
        for v in values {
            if !granted.contains(&v) {
                granted.push(v);
            }
        }
    }
    if granted.is_empty() {
        return Err(Failure::new(
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. None of the scopes '{}' exists and is enabled in the oauth2PermissionScopes of {}.",
                asked.join(" "),
                api.resource
            ),
        ));
    }
    let has = |s: &str| code.scopes.iter().any(|c| c == s);
    Ok(Grant {
        tenant: code.tenant_id.clone(),
        client_id: code.client_id.clone(),
        user,
        refresh: has("offline_access"),
        id_token: has("openid"),
        api,
        granted,
    })
}

/// A pairwise subject: stable for one user and one client app, different across apps.
fn pairwise_sub(tenant: &str, user_id: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{tenant}|{user_id}|{client_id}")))
}

fn mint_user_tokens(shared: &Shared, grant: &Grant) -> Result<Response, Failure> {
    let Grant {
        tenant,
        client_id,
        user,
        api,
        granted,
        ..
    } = grant;
    let sub = pairwise_sub(tenant, &user.id, client_id);
    let mut claims = Map::new();
    claims.insert("oid".into(), json!(user.id));
    claims.insert("sub".into(), json!(sub));
    claims.insert("scp".into(), json!(granted.join(" ")));
    claims.insert("name".into(), json!(user.display_name));
    if api.v2 {
        claims.insert("aud".into(), json!(api.app_id));
        claims.insert("iss".into(), json!(auth::issuer_v2(shared, tenant)));
        claims.insert("azp".into(), json!(client_id));
        claims.insert("azpacr".into(), json!("0"));
        claims.insert("preferred_username".into(), json!(user.upn));
        claims.insert("ver".into(), json!("2.0"));
    } else {
        claims.insert("aud".into(), json!(api.resource));
        claims.insert("iss".into(), json!(auth::issuer_v1(shared, tenant)));
        claims.insert("appid".into(), json!(client_id));
        claims.insert("appidacr".into(), json!("0"));
        claims.insert("unique_name".into(), json!(user.upn));
        claims.insert("upn".into(), json!(user.upn));
        claims.insert("ver".into(), json!("1.0"));
    }
    let (access_token, lifetime) = auth::mint(shared, tenant, claims).ok_or_else(server_error)?;
    let mut extra = Map::new();
    let scope: Vec<String> = granted
        .iter()
        .map(|v| format!("{}/{v}", api.resource))
        .collect();
    extra.insert("scope".into(), json!(scope.join(" ")));
    if grant.refresh {
        // Opaque, like Entra's; the sandbox does not redeem refresh tokens.
        let token = format!("1.A{}", URL_SAFE_NO_PAD.encode(random_bytes::<64>()?));
        extra.insert("refresh_token".into(), json!(token));
    }
    if grant.id_token {
        let mut id = Map::new();
        id.insert("aud".into(), json!(client_id));
        id.insert("iss".into(), json!(auth::issuer_v2(shared, tenant)));
        id.insert("sub".into(), json!(sub));
        id.insert("oid".into(), json!(user.id));
        id.insert("name".into(), json!(user.display_name));
        id.insert("preferred_username".into(), json!(user.upn));
        id.insert("ver".into(), json!("2.0"));
        let (id_token, _) = auth::mint(shared, tenant, id).ok_or_else(server_error)?;
        extra.insert("id_token".into(), json!(id_token));
    }
    Ok(token_response(&access_token, lifetime, extra))
}

// ---------------------------------------------------------------------------------------------
// The user's side: /devicelogin

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around already-escaped body HTML.
fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f3f4f6; color: #1f2937; margin: 0; }}
  main {{ max-width: 26rem; margin: 4rem auto; background: #fff; border-radius: 8px; padding: 2rem 2.25rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .25rem; }}
  p.note {{ color: #6b7280; font-size: .9rem; margin: 0 0 1.5rem; }}
  label {{ display: block; font-weight: 600; margin: 1rem 0 .35rem; }}
  input, select {{ width: 100%; box-sizing: border-box; padding: .55rem .65rem; font-size: 1rem; border: 1px solid #d1d5db; border-radius: 6px; }}
  input[name=user_code] {{ letter-spacing: .2em; text-transform: uppercase; font-family: ui-monospace, monospace; }}
  .actions {{ display: flex; gap: .75rem; margin-top: 1.5rem; }}
  button {{ flex: 1; padding: .6rem; font-size: 1rem; border-radius: 6px; border: 1px solid #0f6cbd; cursor: pointer; }}
  button.approve {{ background: #0f6cbd; color: #fff; }}
  button.decline {{ background: #fff; color: #0f6cbd; }}
  .ok {{ color: #166534; }}
  .error {{ color: #b91c1c; }}
  a {{ color: #0f6cbd; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

async fn devicelogin_page(
    AxumState(shared): AxumState<Arc<Shared>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Html<String> {
    let code = query
        .ok()
        .and_then(|Query(q)| q.get("code").cloned())
        .unwrap_or_default();
    let mut options = String::new();
    for tenant in &shared.state().tenants {
        options.push_str(&format!(
            "<optgroup label=\"{}\">",
            escape(&format!("{} ({})", tenant.display_name, tenant.domain))
        ));
        for user in &tenant.users {
            options.push_str(&format!(
                "<option value=\"{}\">{}</option>",
                escape(&user.upn),
                escape(&format!("{} <{}>", user.display_name, user.upn))
            ));
        }
        options.push_str("</optgroup>");
    }
    let body = format!(
        r#"<h1>Sign in to the sandbox</h1>
<p class="note">Enter the code shown by the application, pick who you are, and approve or decline its sign-in. Sandbox users have no passwords.</p>
<form method="post" action="/devicelogin">
  <label for="user_code">Code</label>
  <input id="user_code" name="user_code" value="{code}" maxlength="20" autocomplete="off" required autofocus>
  <label for="user">User</label>
  <select id="user" name="user">{options}</select>
  <div class="actions">
    <button class="approve" type="submit" name="action" value="approve">Approve</button>
    <button class="decline" type="submit" name="action" value="decline">Decline</button>
  </div>
</form>"#,
        code = escape(&code),
    );
    Html(page("Sandbox device login", &body))
}

#[derive(Debug, Default, Deserialize)]
struct DeviceLoginForm {
    user_code: Option<String>,
    user: Option<String>,
    action: Option<String>,
}

/// The display name of the application a user code was issued to, for the result page.
fn app_name_of(shared: &Shared, user_code: &str) -> Option<String> {
    let normalized: String = user_code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    let state = shared.state();
    let code = state
        .device_codes
        .iter()
        .find(|d| d.user_code == normalized)?;
    let app = state.application_by_app_id(&code.tenant_id, &code.client_id)?;
    Some(app.str("displayName").unwrap_or(&code.client_id).to_owned())
}

async fn devicelogin_submit(
    AxumState(shared): AxumState<Arc<Shared>>,
    form: Result<Form<DeviceLoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result_page = |status: StatusCode, class: &str, heading: &str, text: &str| {
        let body = format!(
            "<h1 class=\"{class}\">{}</h1>\n<p>{}</p>\n<p><a href=\"/devicelogin\">Enter another code</a></p>",
            escape(heading),
            escape(text)
        );
        (status, Html(page(heading, &body))).into_response()
    };
    let code = form.user_code.unwrap_or_default();
    let user = form.user.filter(|u| !u.trim().is_empty());
    let approve = match form.action.as_deref() {
        Some("approve") => Some(user.clone()),
        Some("decline") => None,
        _ => {
            return result_page(
                StatusCode::BAD_REQUEST,
                "error",
                "Nothing was decided",
                "Choose Approve or Decline.",
            );
        }
    };
    let app = app_name_of(&shared, &code).unwrap_or_else(|| "the application".to_owned());
    match admin::decide(&shared, &code, approve) {
        Ok(DeviceCodeStatus::Approved { .. }) => result_page(
            StatusCode::OK,
            "ok",
            "You are signed in",
            &format!(
                "{} signed in to {app}. You can close this page and return to the application.",
                user.as_deref().unwrap_or("The tenant's first user")
            ),
        ),
        Ok(_) => result_page(
            StatusCode::OK,
            "ok",
            "Sign-in declined",
            &format!("{app} will not get a token. You can close this page."),
        ),
        Err(e) => {
            let status = match e {
                DecisionError::UnknownCode => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            // `decide` does not know which user was asked for; the page does.
            let message = match (&e, &user) {
                (DecisionError::UnknownUser(_), Some(u)) => {
                    DecisionError::UnknownUser(u.clone()).message()
                }
                _ => e.message(),
            };
            let sentence = match message.split_at_checked(1) {
                Some((first, rest)) => format!("{}{rest}.", first.to_ascii_uppercase()),
                None => message,
            };
            result_page(status, "error", "Sign-in failed", &sentence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_in_entras_format() {
        assert_eq!(entra_timestamp(1_460_100_118_000), "2016-04-08 07:21:58Z");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
