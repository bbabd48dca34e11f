//! Which API a sign-in is for: resources named by URI or app id, the scopes asked of them, and
//! the client app asking, with Entra's refusals when one of them is unknown to the tenant.

use serde_json::Value;

use super::{Failure, OIDC_SCOPES, server_error, tenant_name};
use crate::sandbox::Shared;
use crate::sandbox::state::{DirectoryObject, State};

/// An API registered in the tenant, as one token request addresses it.
#[derive(Debug, Clone)]
pub(super) struct Api {
    pub(super) app_id: String,
    /// The resource as the client wrote it (`api://{appId}`, the appId or an identifier URI):
    /// v1 tokens carry it as `aud`.
    pub(super) resource: String,
    pub(super) v2: bool,
    /// Scope values the API exposes and has enabled.
    pub(super) enabled: Vec<String>,
}

impl Api {
    pub(super) fn of(app: &DirectoryObject, resource: &str) -> Api {
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
pub(super) fn visible<'a>(
    shared: &Shared,
    object: Option<&'a DirectoryObject>,
) -> Option<&'a DirectoryObject> {
    object.filter(|o| !shared.replicating(o.created_ms))
}

/// The live application a resource names: its appId, `api://{appId}` or one of its identifier URIs.
pub(super) fn application_by_resource<'a>(
    shared: &Shared,
    state: &'a State,
    tid: &'a str,
    resource: &str,
) -> Option<&'a DirectoryObject> {
    let wanted = resource.trim_end_matches('/');
    state
        .live(tid, crate::sandbox::state::ObjectKind::Application)
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

pub(super) fn no_service_principal(state: &State, tid: &str, resource: &str) -> Failure {
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
pub(super) fn api_of_scopes(
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
pub(super) fn client_app<'a>(
    shared: &Shared,
    state: &'a State,
    tid: &'a str,
    client_id: &str,
) -> Result<&'a DirectoryObject, Failure> {
    visible(shared, state.application_by_app_id(tid, client_id))
        .ok_or_else(|| unknown_client(state, tid, client_id))
}

pub(super) fn unknown_client(state: &State, tid: &str, client_id: &str) -> Failure {
    Failure::new(
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            tenant_name(state, tid)
        ),
    )
}

pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], Failure> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| server_error())?;
    Ok(bytes)
}

/// Nine characters from A-Z and 0-9, like Entra's user codes; unbiased, and unique among
/// the codes the sandbox remembers, since users type only this part.
pub(super) fn new_user_code(state: &State) -> Result<String, Failure> {
    pub(super) const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
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
