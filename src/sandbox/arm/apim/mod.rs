//! Microsoft.ApiManagement: the service and its APIs, operations, policies, backends and named
//! values, with the wire shapes of the official examples (apim.md §3).
//!
//! Choices where Azure is not documented or not reproducible here:
//! - Child writes while the service is still activating answer 409 `ServiceLocked` with the
//!   message APIM records for its own transitions (an azure-sdk-for-js nock recording shows it for
//!   DELETE and PATCH of a service "transitioning at this time").
//! - Service DELETE is synchronous (the swagger's 200 with the deleted service) and soft: the
//!   service waits 48 hours in `deletedservices` (see [`deleted`]).
//! - A second service with a name already used anywhere (its gateway host is a global DNS name)
//!   is refused with 409 `ServiceAlreadyExists`; the code is our choice, not a recorded one.
//! - Child 404s are the provider's own (`ResourceNotFound`, "Api not found."), not ARM's gateway
//!   message; a missing service is ARM's.

pub(super) mod deleted;
mod descriptions;
mod entities;
mod policy;
mod service;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::{ArmError, Call, Reply, capture, group_id};
use crate::sandbox::state::arm::Resource;

pub(super) const NAMESPACE: &str = "Microsoft.ApiManagement";

/// Where the sandbox keeps what a GET never shows (a policy's raw text); [`view`] strips it.
const PRIVATE: &str = "_sandbox";

pub(super) fn handle(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    if let Some(c) = capture(
        &segments,
        "subscriptions/{}/providers/Microsoft.ApiManagement/service",
    ) {
        let prefix = format!("/subscriptions/{}/", c[0]).to_ascii_lowercase();
        return service::list(call, &prefix);
    }
    let at_provider = segments
        .get(2)
        .is_some_and(|s| s.eq_ignore_ascii_case("providers"));
    let deleted_at = |i: usize| {
        segments
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case("deletedservices"))
    };
    if at_provider && (deleted_at(4) || deleted_at(6)) {
        return deleted::handle(call);
    }
    if capture(
        &segments,
        "subscriptions/{}/providers/Microsoft.ApiManagement/checkNameAvailability",
    )
    .is_some()
    {
        return service::check_name(call);
    }
    let Some(c) = segments
        .get(..7)
        .and_then(|s| capture(s, "subscriptions/{}/resourceGroups/{}/providers/{}/service"))
    else {
        // ARM answers a type its provider does not have with 404 `InvalidResourceType` (its
        // words, as clients quote them); a 400 would read as a bad request, not as "no such route".
        return Err(ArmError::new(
            axum::http::StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "The resource type could not be found in the namespace '{NAMESPACE}' for api version '{}'.",
                call.request.api_version
            ),
        ));
    };
    let group = c[1].to_owned();
    let groups = group_id(c[0], c[1]);
    let Some(name) = segments.get(7).cloned() else {
        let prefix = format!("{groups}/providers/{NAMESPACE}/service/").to_ascii_lowercase();
        return service::list(call, &prefix);
    };
    let id = format!("{groups}/providers/{NAMESPACE}/service/{name}");
    if segments.len() == 8 {
        return service::handle(call, &id, &name, &group);
    }
    let service = call
        .state
        .arm
        .get(&id)
        .ok_or_else(|| service::not_found(&name, &group))?;
    let (service_id, service_state) = (
        service.id.clone(),
        service.provisioning_state().map(str::to_owned),
    );
    if let [only] = &segments[8..]
        && only.eq_ignore_ascii_case("policyDescriptions")
    {
        return descriptions::list(call, &service_id);
    }
    let write = !matches!(call.request.method, Method::GET | Method::HEAD);
    if write && service_state.as_deref() != Some("Succeeded") {
        return Err(service::locked(&name));
    }
    entities::handle(call, &service_id, &segments[8..])
}

/// The JSON a GET of this resource returns: never a secret named value's value, never what the
/// sandbox keeps for itself.
/// APIM's PATCH and DELETE refuse a request without `If-Match` before looking at the entity
/// (entities and policies alike).
fn require_if_match(call: &Call<'_>) -> Result<(), ArmError> {
    if call.request.if_match().is_none() {
        super::check_if_match(call.request, None, true)?;
    }
    Ok(())
}

pub(super) fn view(resource: &Resource) -> Value {
    let mut body = resource.body.clone();
    body.remove(PRIVATE);
    let secret = resource
        .properties()
        .and_then(|p| p.get("secret"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if secret
        && entities::Kind::of_id(&resource.id) == Some(entities::Kind::NamedValue)
        && let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut)
    {
        props.remove("value");
    }
    Value::Object(body)
}

/// `{"error":{"code":"ValidationError","message":"One or more fields contain incorrect values:",
/// "details":[…]}}`: APIM's shape for every field it rejects (apim.md §3.11).
fn validation(target: &str, message: impl Into<String>) -> ArmError {
    ArmError::bad_request(
        "ValidationError",
        "One or more fields contain incorrect values:",
    )
    .detail("ValidationError", target, message)
}

/// The `properties` object of a write (absent means empty; anything else is a 400).
fn properties_of(body: &Map<String, Value>) -> Result<Map<String, Value>, ArmError> {
    match body.get("properties") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(_) => Err(validation("properties", "properties must be an object.")),
    }
}

/// The resource type of an id below the provider: `Microsoft.ApiManagement/service/apis/…`.
fn type_of(id: &str) -> String {
    let lower = id.to_ascii_lowercase();
    let marker = format!("/providers/{}/", NAMESPACE.to_ascii_lowercase());
    let Some(at) = lower.find(&marker) else {
        return NAMESPACE.to_owned();
    };
    let rest = &id[at + marker.len()..];
    let types: Vec<&str> = rest.split('/').step_by(2).collect();
    format!("{NAMESPACE}/{}", types.join("/"))
}

/// The answer to a read or write of an entity: its view and its ETag.
fn entity_reply(status: StatusCode, resource: &Resource) -> Reply {
    Reply::new(status, Some(view(resource))).etag(&resource.etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_id() {
        assert_eq!(
            type_of(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/a/apis/b/operations/c"
            ),
            "Microsoft.ApiManagement/service/apis/operations"
        );
        assert_eq!(
            type_of(
                "/subscriptions/s/resourceGroups/rg/providers/microsoft.apimanagement/service/a"
            ),
            "Microsoft.ApiManagement/service"
        );
    }
}
