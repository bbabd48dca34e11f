//! Azure Resource Manager, the part `provision` drives: subscriptions, resource groups, API
//! Management, Cognitive Services (Foundry) and role assignments, with RBAC on every write
//! (`rbac.rs`), ARM's async-operation protocol, entity tags, soft delete and the error codes users trip over (foundry-arm.md §1–§2,
//! apim.md §3).
//!
//! One catch-all route parses the path itself: ARM matches path segments case-insensitively
//! (`resourcegroups` and `resourceGroups` both arrive), and a role assignment's scope is any
//! resource id. Every request is authenticated, versioned and dispatched under one lock of the
//! sandbox state, so each request sees and leaves a consistent world.

mod apim;
mod authorization;
mod call;
mod cognitive;
mod condition;
mod listing;
mod operations;
mod protocol;
mod providers;
mod rbac;
mod resources;
mod roles;
mod settle;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::Value;

use super::auth::{self, AuthError};
pub(crate) use super::config::OperationKind;
use super::state::State;
use super::state::arm::Resource;
use super::{Shared, new_guid};
pub(crate) use call::{Call, OperationSpec};
/// What the inference data plane reads of ARM: the keys of an account, and time passing.
pub(crate) use cognitive::account_keys;
/// …and whether a deployment's model is retired (inference answers 410 then).
pub(crate) use cognitive::retired_deployment;
pub(crate) use protocol::{ArmError, ArmRequest, Reply, capture, check_if_match, only, tags};
pub(crate) use settle::settle_state;

/// Audiences ARM accepts (the list its own 401 message quotes).
const ARM_AUDIENCES: [&str; 4] = [
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/subscriptions", any(handle))
        .route("/subscriptions/{*rest}", any(handle))
        .route("/metadata/endpoints", get(resources::metadata_endpoints))
        // `az cloud register --endpoint-resource-manager https://host:port/` appends
        // `/metadata/endpoints` to the URL as typed (azure-cli `cloud/custom.py`,
        // `_populate_from_metadata_endpoint`), and ARM's front door folds the empty segment.
        .route("//metadata/endpoints", get(resources::metadata_endpoints))
}

/// The `api-version`s each provider accepts: the pinned one, the stable ones around it, and the
/// previews current clients send (foundry-arm.md §1.1, apim.md §3.1). `None` for a namespace
/// the sandbox does not serve, which ARM answers with `InvalidResourceNamespace` whatever the
/// version.
fn accepted_versions(namespace: &str) -> Option<&'static [&'static str]> {
    Some(match namespace.to_ascii_lowercase().as_str() {
        "microsoft.apimanagement" => &[
            "2021-08-01",
            "2022-08-01",
            "2023-03-01-preview",
            "2023-05-01-preview",
            "2023-09-01-preview",
            "2024-05-01",
            "2024-06-01-preview",
            "2024-10-01-preview",
        ],
        "microsoft.cognitiveservices" => &[
            "2017-04-18",
            "2021-04-30",
            "2021-10-01",
            "2022-03-01",
            "2022-10-01",
            "2022-12-01",
            "2023-05-01",
            "2024-10-01",
            "2025-06-01",
            "2025-09-01",
            "2026-03-01",
            "2026-05-01",
            "2026-05-15-preview",
        ],
        "microsoft.authorization" => &[
            "2015-07-01",
            "2018-01-01-preview",
            "2020-04-01-preview",
            "2020-10-01-preview",
            "2022-04-01",
            "2022-05-01-preview",
        ],
        "microsoft.resources" => &[
            "2016-06-01",
            "2019-10-01",
            "2020-01-01",
            "2020-06-01",
            "2021-01-01",
            "2021-04-01",
            "2022-09-01",
            "2022-12-01",
            "2023-07-01",
            "2024-03-01",
            "2024-07-01",
            "2024-11-01",
            "2025-01-01",
            "2025-03-01",
            "2025-04-01",
        ],
        _ => return None,
    })
}

/// The provider namespace a path is served by (`Microsoft.Resources` for subscriptions and
/// groups); role assignments win over the resource they are scoped to.
fn namespace_of(segments: &[String]) -> String {
    // `/subscriptions/{s}/providers/{namespace}[/register]` is Microsoft.Resources' own API.
    let registration = segments
        .get(2)
        .is_some_and(|s| s.eq_ignore_ascii_case("providers"))
        && (segments.len() == 4
            || (segments.len() == 5
                && ["register", "unregister"]
                    .iter()
                    .any(|v| segments[4].eq_ignore_ascii_case(v))));
    if registration {
        return "Microsoft.Resources".to_owned();
    }
    let mut namespace = "Microsoft.Resources".to_owned();
    for pair in segments.windows(2) {
        if pair[0].eq_ignore_ascii_case("providers") {
            namespace.clone_from(&pair[1]);
        }
    }
    namespace
}

fn check_api_version(segments: &[String], version: Option<&str>) -> Result<String, ArmError> {
    let Some(version) = version.filter(|v| !v.is_empty()) else {
        return Err(ArmError::missing_api_version());
    };
    // Operation results answer whatever version a client rewrites their URL to (the .NET SDK
    // does); the status belongs to the operation, not to a version of the API.
    if segments
        .iter()
        .rev()
        .nth(1)
        .is_some_and(|s| s.eq_ignore_ascii_case("operationResults"))
    {
        return Ok(version.to_owned());
    }
    let namespace = namespace_of(segments);
    // A namespace no provider serves is ARM's routing error, not a version error: ARM answers
    // `InvalidResourceNamespace` for it (azure-cli and Azure PowerShell users see "The resource
    // namespace '…' is invalid."), which `dispatch` gives.
    let Some(accepted) = accepted_versions(&namespace) else {
        return Ok(version.to_owned());
    };
    if accepted.contains(&version) {
        return Ok(version.to_owned());
    }
    let mut listed: Vec<&str> = accepted.to_vec();
    listed.reverse();
    Err(ArmError::bad_request(
        "InvalidApiVersionParameter",
        format!(
            "The api-version '{version}' is invalid. The supported versions are '{}'.",
            listed.join(",")
        ),
    ))
}

fn unauthorized(shared: &Shared, error: &AuthError) -> ArmError {
    let (code, message) = match error {
        AuthError::Missing => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".to_owned(),
        ),
        AuthError::Expired => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.".to_owned(),
        ),
        // No public record of ARM's words for a token used before `nbf` was found; the code is
        // the one ARM gives every token defect that has no code of its own.
        AuthError::NotYetValid => (
            "InvalidAuthenticationToken",
            "The access token is not yet valid: its 'nbf' (not before) time is later than current UTC time.".to_owned(),
        ),
        AuthError::WrongAudience(aud) => (
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences '{}'.",
                ARM_AUDIENCES.join("','")
            ),
        ),
        AuthError::Invalid(_) => (
            "InvalidAuthenticationToken",
            "The access token is invalid.".to_owned(),
        ),
    };
    let mut e = ArmError::new(StatusCode::UNAUTHORIZED, code, message);
    e.headers.push((
        header::WWW_AUTHENTICATE,
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{}\"",
            shared.base_url,
            super::DEFAULT_TENANT,
            error.message().replace('"', "'")
        ),
    ));
    e
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(k).to_ascii_lowercase(),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// The router matches `/subscriptions` exactly; ARM matches every segment ignoring case, so
/// paths the router misses come here and are served when they are ARM's.
pub(crate) async fn fallback(
    shared: AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let first = uri.path().split('/').nth(1).unwrap_or_default();
    if first.eq_ignore_ascii_case("subscriptions") {
        handle(shared, method, uri, headers, body).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let correlation = headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(new_guid, str::to_owned);
    let client_request_id = headers
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|_| {
            headers
                .get("x-ms-return-client-request-id")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
        })
        .map(str::to_owned);
    let write = !matches!(method, Method::GET | Method::HEAD);
    let (reply, extra) = match serve(&shared, method.clone(), &uri, headers, &body) {
        Ok(reply) => (reply, Vec::new()),
        Err(e) => {
            let body = e.body();
            (
                Reply {
                    status: e.status,
                    headers: Vec::new(),
                    body: Some(body),
                },
                e.headers,
            )
        }
    };
    let mut response = match (&reply.body, method == Method::HEAD) {
        (Some(body), false) => (reply.status, axum::Json(body.clone())).into_response(),
        _ => reply.status.into_response(),
    };
    let h = response.headers_mut();
    for (name, value) in reply.headers.into_iter().chain(extra) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        h.insert("x-ms-correlation-request-id", v);
    }
    if let Some(Ok(v)) = client_request_id.map(|c| HeaderValue::from_str(&c)) {
        h.insert("x-ms-client-request-id", v);
    }
    // The hourly budgets of the recordings (foundry-arm.md §2.4); the sandbox does not count.
    let (name, remaining) = match method {
        Method::DELETE => ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
        _ if write => ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
        _ => ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    };
    h.insert(name, HeaderValue::from_static(remaining));
    response
}

fn serve(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: &[u8],
) -> Result<Reply, ArmError> {
    let caller = auth::verify_bearer(shared, &headers, &ARM_AUDIENCES)
        .map_err(|e| unauthorized(shared, &e))?;
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = parse_query(uri);
    let version = query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str());
    let api_version = check_api_version(&segments, version)?;
    let body = if body.is_empty() {
        None
    } else {
        Some(serde_json::from_slice::<Value>(body).map_err(|e| {
            ArmError::bad_request(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })?)
    };
    let request = ArmRequest {
        method,
        segments,
        query,
        api_version,
        headers,
        body,
        caller,
    };
    let now_ms = shared.now_ms();
    let mut state = shared.settled_state();
    let write = !matches!(request.method, Method::GET | Method::HEAD);
    let mut call = Call {
        shared,
        state: &mut state,
        request: &request,
        now_ms,
    };
    let result = dispatch(&mut call);
    if write {
        shared.persist(&state);
    }
    result
}

fn dispatch(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let segments = &call.request.segments;
    if segments.len() == 1 {
        return resources::list_subscriptions(call);
    }
    let subscription = segments[1].clone();
    let tenant_owns = call
        .state
        .subscriptions
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&subscription));
    if !tenant_owns {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{subscription}' could not be found."),
        )
        .gateway());
    }
    if !call
        .request
        .caller
        .tenant
        .eq_ignore_ascii_case(&call.state.operator.tenant_id)
    {
        return Err(ArmError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            format!(
                "The access token is from the wrong issuer. It must match the tenant '{}' associated with this subscription.",
                call.state.operator.tenant_id
            ),
        ));
    }
    // Azure authorizes before it looks: a caller without the right learns nothing of the target.
    rbac::authorize(call)?;
    if let Some(at) = segments.windows(3).position(|w| {
        w[0].eq_ignore_ascii_case("providers")
            && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
            && w[2].eq_ignore_ascii_case("roleAssignments")
    }) {
        return authorization::handle(call, at);
    }
    if let Some(at) = segments.windows(3).position(|w| {
        w[0].eq_ignore_ascii_case("providers")
            && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
            && w[2].eq_ignore_ascii_case("roleDefinitions")
    }) {
        return roles::handle(call, at);
    }
    if let Some(at) = segments.windows(3).position(|w| {
        w[0].eq_ignore_ascii_case("providers")
            && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
            && w[2].eq_ignore_ascii_case("permissions")
    }) && at + 3 == segments.len()
    {
        let scope = format!("/{}", segments[..at].join("/"));
        return providers::permissions(call, &scope);
    }
    if let Some(reply) = providers::handle(call) {
        return reply;
    }
    if segments
        .iter()
        .rev()
        .nth(1)
        .is_some_and(|s| s.eq_ignore_ascii_case("operationResults"))
    {
        return operations::handle(call);
    }
    if segments.len() == 3 && segments[2].eq_ignore_ascii_case("resources") {
        let scope = format!("/subscriptions/{subscription}").to_ascii_lowercase();
        return listing::list(call, &scope);
    }
    if segments.len() == 5
        && segments[2].eq_ignore_ascii_case("resourceGroups")
        && segments[4].eq_ignore_ascii_case("resources")
    {
        let group = group_id(&subscription, &segments[3]);
        if call.state.arm.get(&group).is_none() {
            return Err(resources::group_not_found(&segments[3]));
        }
        return listing::list(call, &group.to_ascii_lowercase());
    }
    if segments.len() <= 4
        && segments
            .get(2)
            .is_none_or(|s| s.eq_ignore_ascii_case("resourceGroups"))
    {
        return resources::handle(call);
    }
    if segments.len() > 4
        && segments[2].eq_ignore_ascii_case("resourceGroups")
        && segments[4].eq_ignore_ascii_case("providers")
    {
        let group_id = format!(
            "/subscriptions/{subscription}/resourceGroups/{}",
            segments[3]
        );
        if call.state.arm.get(&group_id).is_none() {
            return Err(resources::group_not_found(&segments[3]));
        }
    }
    let namespace = namespace_of(segments);
    let write = !matches!(call.request.method, Method::GET | Method::HEAD);
    if write && !providers::registered(&call.state.arm, &subscription, &namespace, call.now_ms) {
        // The words of learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
        // error-register-resource-provider.
        return Err(ArmError::conflict(
            "MissingSubscriptionRegistration",
            format!(
                "The subscription is not registered to use namespace '{namespace}'. See \
                 https://aka.ms/rps-not-found for how to register subscriptions."
            ),
        ));
    }
    match namespace.to_ascii_lowercase().as_str() {
        "microsoft.cognitiveservices" => cognitive::handle(call),
        "microsoft.apimanagement" => apim::handle(call),
        _ => Err(ArmError::bad_request(
            "InvalidResourceNamespace",
            format!("The resource namespace '{namespace}' is invalid."),
        )),
    }
}

/// The JSON a GET of this resource returns (the provider may hide or shape stored fields).
pub(crate) fn view(resource: &Resource) -> Value {
    match namespace_of(&segments_of(&resource.id))
        .to_ascii_lowercase()
        .as_str()
    {
        "microsoft.apimanagement" => apim::view(resource),
        "microsoft.cognitiveservices" => cognitive::view(resource),
        _ => Value::Object(resource.body.clone()),
    }
}

/// The segments of a resource id, as [`capture`] matches them.
pub(crate) fn segments_of(id: &str) -> Vec<String> {
    id.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The id a resource group's resources are built on, with ARM's canonical segment casing.
pub(crate) fn group_id(subscription: &str, group: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}")
}

/// `true` when `state` knows a principal (user or service principal) with this object id that has
/// replicated to ARM's view of the directory.
pub(crate) fn principal_visible(shared: &Shared, state: &State, object_id: &str) -> bool {
    let tenant = &state.operator.tenant_id;
    let object = state
        .objects
        .iter()
        .filter(|o| o.deleted_ms.is_none() && o.tenant_id.eq_ignore_ascii_case(tenant))
        .find(|o| o.id().eq_ignore_ascii_case(object_id));
    if let Some(object) = object {
        return !shared.replicating(object.created_ms);
    }
    state.operator.object_id.eq_ignore_ascii_case(object_id)
        || state
            .tenant(tenant)
            .is_some_and(|t| t.users.iter().any(|u| u.id.eq_ignore_ascii_case(object_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_ignoring_case_and_capture_names() {
        let s = segments_of("/subscriptions/S/resourcegroups/My-RG");
        assert_eq!(
            capture(&s, "subscriptions/{}/resourceGroups/{}"),
            Some(vec!["S", "My-RG"])
        );
        assert_eq!(capture(&s, "subscriptions/{}/resourceGroups"), None);
    }

    #[test]
    fn api_versions_are_required_and_checked_per_provider() {
        let rg = segments_of("/subscriptions/s/resourcegroups/rg");
        assert_eq!(
            check_api_version(&rg, None).map_err(|e| e.code.to_string()),
            Err("MissingApiVersionParameter".to_owned())
        );
        assert!(check_api_version(&rg, Some("2025-04-01")).is_ok());
        let e = check_api_version(&rg, Some("2099-01-01")).expect_err("unknown");
        assert_eq!(&*e.code, "InvalidApiVersionParameter");
        assert!(e.message.starts_with("The api-version '2099-01-01' is invalid. The supported versions are '2025-04-01,2025-03-01,"));
        let account = segments_of(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a",
        );
        assert!(check_api_version(&account, Some("2025-06-01")).is_ok());
        assert!(check_api_version(&account, Some("2024-05-01")).is_err());
        let operation = segments_of(
            "/subscriptions/s/providers/Microsoft.CognitiveServices/locations/x/operationResults/1",
        );
        assert!(check_api_version(&operation, Some("2023-05-01")).is_ok());
        // Left to the router, which names the unknown namespace.
        let elsewhere =
            segments_of("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Nowhere/x/y");
        assert!(check_api_version(&elsewhere, Some("2099-01-01")).is_ok());
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(percent_decode("echo-api%3Brev%3D3"), "echo-api;rev=3");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
