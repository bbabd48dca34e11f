//! The token endpoint: client credentials for the operator and apps (a secret, or a CI's token
//! as `client_assertion`: `assertion.rs`), the refresh-token grant, the device code grant as a
//! client polls it (`authorization_pending`, `slow_down`, `expired_token`…), and the tokens
//! minted for a signed-in user.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    Api, DEVICE_CODE_GRANT, Failure, GRAPH_APP_ID, api_of_scopes, application_by_resource,
    client_app, entra_json, missing, no_service_principal, random_bytes, respond, server_error,
    tenant_id, unknown_client, visible,
};
use crate::sandbox::Shared;
use crate::sandbox::auth;
use crate::sandbox::state::{DeviceCode, DeviceCodeStatus, RefreshGrant, State, User};

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenForm {
    pub(super) grant_type: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) device_code: Option<String>,
    pub(super) refresh_token: Option<String>,
    /// The v1 endpoint's names for `device_code` and for the resource of `scope`.
    pub(super) code: Option<String>,
    pub(super) resource: Option<String>,
    /// A federated credential's token in place of a secret (`assertion.rs`).
    pub(super) client_assertion_type: Option<String>,
    pub(super) client_assertion: Option<String>,
}

impl TokenForm {
    /// Reads a v1 request (`resource=`, `grant_type=device_code`, `code=`) as its v2 equivalent.
    pub(super) fn into_v2(mut self) -> TokenForm {
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

/// The token endpoint. `client_credentials` takes a secret (`client_credentials`) or a CI's
/// token (`assertion`), told apart by the form.
pub(super) async fn token(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<TokenForm>, FormRejection>,
    v2: bool,
    assertion: fn(&Shared, &str, &TokenForm) -> Result<Response, Failure>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let form = if v2 { form } else { form.into_v2() };
    let federated = form.client_assertion_type.is_some() || form.client_assertion.is_some();
    let result = tenant_id(&shared, &tenant).and_then(|tid| match form.grant_type.as_deref() {
        None => Err(missing("grant_type")),
        Some("client_credentials") if federated => assertion(&shared, &tid, &form),
        Some("client_credentials") => client_credentials(&shared, &tid, &form),
        Some(DEVICE_CODE_GRANT) => redeem_device_code(&shared, &tid, &form),
        Some("refresh_token") => redeem_refresh_token(&shared, &tid, &form),
        Some(other) => Err(Failure::new(
            "unsupported_grant_type",
            70_003,
            format!(
                "The app requested an unsupported grant type '{other}'. The sandbox supports client_credentials, refresh_token and {DEVICE_CODE_GRANT}."
            ),
        )),
    });
    respond(&shared, result)
}

pub(super) fn token_response(
    access_token: &str,
    lifetime: i64,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(lifetime));
    body.insert("ext_expires_in".into(), json!(lifetime));
    body.insert("access_token".into(), json!(access_token));
    body.extend(extra);
    entra_json(StatusCode::OK, &Value::Object(body), "no-store, no-cache")
}

pub(super) fn no_secret() -> Failure {
    Failure::new(
        "invalid_client",
        7_000_218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
    .unauthorized()
}

pub(super) fn wrong_secret(client_id: &str) -> Failure {
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
pub(super) fn app_only_audience(
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
    // Azure AI services (Foundry, Azure OpenAI) take v1 tokens for their resource; any principal
    // of the tenant gets one, and the account's RBAC decides what it may do.
    if trimmed.eq_ignore_ascii_case("https://cognitiveservices.azure.com") {
        return Ok(("https://cognitiveservices.azure.com".to_owned(), false));
    }
    // The sandbox's own origin is where it serves Graph, and what its cloud metadata advertises
    // as `microsoftGraphResourceId`; clients configured from that metadata ask for it as the
    // resource (`arm::resources::metadata_endpoints`). The token names Graph as Entra's do.
    if trimmed.eq_ignore_ascii_case("https://graph.microsoft.com")
        || trimmed.eq_ignore_ascii_case(GRAPH_APP_ID)
        || trimmed.eq_ignore_ascii_case(shared.base_url.trim_end_matches('/'))
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

pub(super) fn client_credentials(
    shared: &Shared,
    tid: &str,
    form: &TokenForm,
) -> Result<Response, Failure> {
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
        let (audience, v2) = scope_audience(shared, &state, tid, form)?;
        (operator.clone(), audience, v2)
    };
    app_only_token(
        shared,
        tid,
        (&audience, v2),
        &operator.client_id,
        &operator.object_id,
        "1",
    )
}

/// The audience a client-credentials `scope` (`{resource}/.default`) asks for, and whether it
/// takes v2 tokens.
pub(super) fn scope_audience(
    shared: &Shared,
    state: &State,
    tid: &str,
    form: &TokenForm,
) -> Result<(String, bool), Failure> {
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
    app_only_audience(shared, state, tid, resource)
}

/// An app-only token for `(audience, v2)`; `credential` is `appidacr`/`azpacr`: "1" for a
/// secret, "2" for a certificate or a client assertion (Entra's access-token claims reference).
pub(super) fn app_only_token(
    shared: &Shared,
    tid: &str,
    (audience, v2): (&str, bool),
    client_id: &str,
    object_id: &str,
    credential: &str,
) -> Result<Response, Failure> {
    let mut claims = auth::app_only_claims(shared, tid, audience, client_id, object_id);
    claims.insert("appidacr".into(), json!(credential));
    // Entra lists the application permissions granted to the app in `roles`; Graph's decide what
    // it may do in the directory, and `provision doctor` reads them from the token.
    if auth::GRAPH_AUDIENCES.contains(&audience) {
        let roles = crate::sandbox::graph::granted_roles(&shared.state(), tid, object_id);
        if !roles.is_empty() {
            claims.insert("roles".into(), json!(roles));
        }
    }
    if v2 {
        for v1_only in ["appid", "appidacr"] {
            claims.remove(v1_only);
        }
        claims.insert("iss".into(), json!(auth::issuer_v2(shared, tid)));
        claims.insert("azp".into(), json!(client_id));
        claims.insert("azpacr".into(), json!(credential));
        claims.insert("ver".into(), json!("2.0"));
    }
    let (access_token, lifetime) = auth::mint(shared, tid, claims).ok_or_else(server_error)?;
    Ok(token_response(&access_token, lifetime, Map::new()))
}

/// What an approved device code entitles its client to.
pub(super) struct Grant {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) user: User,
    pub(super) api: Api,
    /// Granted scope values, without the resource.
    pub(super) granted: Vec<String>,
    /// The scopes asked for, as sent: a refresh token redeems them again.
    pub(super) scopes: Vec<String>,
    pub(super) refresh: bool,
    pub(super) id_token: bool,
}

pub(super) fn redeem_device_code(
    shared: &Shared,
    tid: &str,
    form: &TokenForm,
) -> Result<Response, Failure> {
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
pub(super) fn poll(
    shared: &Shared,
    tid: &str,
    client_id: &str,
    device_code: &str,
) -> Result<Grant, Failure> {
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
    let last_poll = state.device_codes[index]
        .last_poll_ms
        .replace(shared.now_ms());
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

pub(super) fn grant(
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
        scopes: code.scopes.clone(),
    })
}

/// A pairwise subject: stable for one user and one client app, different across apps.
pub(super) fn pairwise_sub(tenant: &str, user_id: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{tenant}|{user_id}|{client_id}")))
}

pub(super) fn mint_user_tokens(shared: &Shared, grant: &Grant) -> Result<Response, Failure> {
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
        // Opaque, like Entra's; only its hash is kept, to redeem it (`refresh`).
        let token = format!("1.A{}", URL_SAFE_NO_PAD.encode(random_bytes::<64>()?));
        remember(shared, grant, &token);
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

// The refresh-token grant (`grant_type=refresh_token`), as a public client redeems it: the
// sign-in's grant again, for the scopes it had (or those asked), with a new refresh token. Entra
// keeps a refresh token valid until 90 days of disuse and does not revoke it when it is redeemed
// ("Refresh tokens replace themselves with a fresh token upon every use";
// learn.microsoft.com/entra/identity-platform/refresh-tokens), so neither does the sandbox.

/// Entra's inactivity limit for refresh tokens.
const REFRESH_LIFETIME_MS: u64 = 90 * 24 * 3600 * 1000;
/// Refresh tokens remembered at most; the oldest are forgotten first.
const REMEMBERED: usize = 1000;

fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Keeps what `token` may be redeemed for.
pub(super) fn remember(shared: &Shared, grant: &Grant, token: &str) {
    let mut state = shared.state();
    if state.refresh_tokens.len() >= REMEMBERED {
        state.refresh_tokens.remove(0);
    }
    state.refresh_tokens.push(RefreshGrant {
        token_hash: hash(token),
        tenant_id: grant.tenant.clone(),
        client_id: grant.client_id.clone(),
        user_id: grant.user.id.clone(),
        scopes: grant.scopes.clone(),
        issued_ms: shared.now_ms(),
    });
    shared.persist(&state);
}

pub(super) fn redeem_refresh_token(
    shared: &Shared,
    tid: &str,
    form: &TokenForm,
) -> Result<Response, Failure> {
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    let token = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| missing("refresh_token"))?;
    let grant = {
        let state = shared.state();
        let app = client_app(shared, &state, tid, client_id)?;
        if app
            .body
            .get("isFallbackPublicClient")
            .and_then(serde_json::Value::as_bool)
            != Some(true)
        {
            return Err(no_secret());
        }
        let wanted = hash(token);
        let record = state
            .refresh_tokens
            .iter()
            .rev()
            .find(|r| r.token_hash == wanted && r.tenant_id == tid)
            .ok_or_else(|| {
                Failure::new(
                    "invalid_grant",
                    9_002_313,
                    "Invalid request. Request is malformed or invalid: the refresh token is not one this tenant issued.",
                )
            })?;
        if !record.client_id.eq_ignore_ascii_case(client_id) {
            return Err(Failure::new(
                "invalid_grant",
                70_000,
                "The provided value for the input parameter 'refresh_token' is not valid: it was issued to a different client.",
            ));
        }
        if shared.elapsed_sandbox_ms(record.issued_ms) >= REFRESH_LIFETIME_MS {
            return Err(Failure::new(
                "invalid_grant",
                700_082,
                "The refresh token has expired due to inactivity. The token was issued and was inactive for 90.00:00:00.",
            ));
        }
        // Asking for scopes is optional; asking for more than the sign-in had needs a new one.
        let scopes = match form.scope.as_deref().map(str::split_whitespace) {
            Some(asked) => asked.map(str::to_owned).collect(),
            None => record.scopes.clone(),
        };
        let code = DeviceCode {
            device_code: String::new(),
            user_code: String::new(),
            tenant_id: record.tenant_id.clone(),
            client_id: record.client_id.clone(),
            scopes,
            issued_ms: record.issued_ms,
            interval: 0,
            expires_in: 0,
            last_poll_ms: None,
            status: DeviceCodeStatus::Redeemed,
        };
        grant(shared, &state, &code, &record.user_id)?
    };
    mint_user_tokens(shared, &grant)
}
