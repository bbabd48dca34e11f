//! API Management soft delete, as Azure does it since api-version 2020-06-01-preview: a deleted
//! service (by itself or with its resource group) is kept 48 hours in `deletedservices` of its
//! location, where it can be read, listed and purged; meanwhile its name cannot be used for a new
//! service (409 `ServiceAlreadyExistsInSoftDeletedState`) unless the PUT says `restore: true`.
//!
//! Sources: learn.microsoft.com/azure/api-management/soft-delete (the operations, the 48-hour
//! retention, the minimum api-version); azure-rest-api-specs
//! `Microsoft.ApiManagement/stable/2024-05-01/apimdeletedservices.json` and its examples
//! `ApiManagementGetDeletedServiceByName.json`, `ApiManagementDeletedServicesPurge.json` (shapes,
//! purge answers 200/202/204); the create error's code and message as users report them
//! (hashicorp/terraform-provider-azurerm#11580, Azure-Samples/azure-health-data-and-ai-samples#96).
//! The status of that error is not recorded; 409 is our choice, as for a name already in use.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::resources::normalize_location;
use super::super::{ArmError, Call, Reply, capture, segments_of};
use super::NAMESPACE;
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::{ArmState, Resource};

const DELETED_TYPE: &str = "Microsoft.ApiManagement/deletedservices";

/// APIM keeps a soft-deleted service 48 hours, then purges it by itself.
const RETENTION_MS: u64 = 48 * 60 * 60 * 1000;

/// `/subscriptions/{s}/providers/Microsoft.ApiManagement/locations/{l}/deletedservices/{name}`.
pub(crate) fn deleted_id(subscription: &str, location: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/{NAMESPACE}/locations/{}/deletedservices/{name}",
        normalize_location(location)
    )
}

/// What a removed resource leaves behind: a deleted service for a service, nothing for its
/// children (they go with it).
pub(crate) fn soft_deleted(resource: &Resource, now_ms: u64) -> Option<Resource> {
    let segments = segments_of(&resource.id);
    let c = capture(
        &segments,
        "subscriptions/{}/resourceGroups/{}/providers/Microsoft.ApiManagement/service/{}",
    )?;
    let location = resource
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = deleted_id(c[0], &location, c[2]);
    let mut body = serde_json::Map::new();
    body.insert("id".into(), json!(id));
    body.insert("name".into(), json!(c[2]));
    body.insert("type".into(), json!(DELETED_TYPE));
    body.insert("location".into(), json!(location));
    body.insert(
        "properties".into(),
        json!({
            "serviceId": resource.id,
            "scheduledPurgeDate": format_utc_millis(now_ms + RETENTION_MS),
            "deletionDate": format_utc_millis(now_ms),
        }),
    );
    // Kept for a restore: the service as it was.
    body.insert(super::PRIVATE.into(), Value::Object(resource.body.clone()));
    Some(Resource::new(id, body, resource.etag.clone(), now_ms))
}

/// Drops the soft-deleted services whose retention ran out; part of `arm::settle`.
pub(crate) fn purge_due(arm: &mut ArmState, now_ms: u64) {
    arm.deleted_services
        .retain(|_, r| now_ms < r.created_ms + RETENTION_MS);
}

/// The soft-deleted service of this name in the subscription, any location.
pub(super) fn find(arm: &ArmState, subscription: &str, name: &str) -> Option<String> {
    let prefix = format!("/subscriptions/{subscription}/").to_ascii_lowercase();
    let suffix = format!("/deletedservices/{name}").to_ascii_lowercase();
    arm.deleted_services
        .keys()
        .find(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
        .cloned()
}

pub(super) fn in_soft_deleted_state(name: &str) -> ArmError {
    ArmError::conflict(
        "ServiceAlreadyExistsInSoftDeletedState",
        format!(
            "Api service {name} was soft-deleted. In order to create the new service with the same name, you have to either undelete the service or purge it. See https://aka.ms/apimsoftdelete."
        ),
    )
}

/// Takes a soft-deleted service out of `deletedservices`: the service as it was when deleted.
pub(super) fn take(arm: &mut ArmState, key: &str) -> Option<serde_json::Map<String, Value>> {
    let deleted = arm.deleted_services.remove(key)?;
    deleted
        .body
        .get(super::PRIVATE)
        .and_then(Value::as_object)
        .cloned()
}

fn view(resource: &Resource) -> Value {
    let mut body = resource.body.clone();
    body.remove(super::PRIVATE);
    Value::Object(body)
}

/// `GET …/deletedservices` (subscription), `GET|DELETE …/locations/{l}/deletedservices/{name}`.
pub(super) fn handle(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    let method = call.request.method.clone();
    if let Some(c) = capture(
        &segments,
        "subscriptions/{}/providers/Microsoft.ApiManagement/deletedservices",
    ) {
        if method != axum::http::Method::GET {
            return Err(ArmError::method_not_supported(&method));
        }
        let prefix = format!("/subscriptions/{}/", c[0]).to_ascii_lowercase();
        let value: Vec<Value> = call
            .state
            .arm
            .deleted_services
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| view(r))
            .collect();
        return Ok(Reply::ok(json!({ "value": value })));
    }
    let Some(c) = capture(
        &segments,
        "subscriptions/{}/providers/Microsoft.ApiManagement/locations/{}/deletedservices/{}",
    ) else {
        return Err(ArmError::bad_request(
            "InvalidResourceType",
            "The resource type could not be found in the namespace 'Microsoft.ApiManagement'.",
        ));
    };
    let key = deleted_id(c[0], c[1], c[2]).to_ascii_lowercase();
    let name = c[2].to_owned();
    match method {
        axum::http::Method::GET => call
            .state
            .arm
            .deleted_services
            .get(&key)
            .map(|r| Reply::ok(view(r)))
            .ok_or_else(|| {
                ArmError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!("Deleted service {name} not found."),
                )
            }),
        // The purge example's synchronous 200; 204 when there is nothing to purge.
        axum::http::Method::DELETE => Ok(Reply::empty(
            if call.state.arm.deleted_services.remove(&key).is_some() {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            },
        )),
        other => Err(ArmError::method_not_supported(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_service_becomes_a_deleted_service_and_its_children_do_not() {
        let id =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/Apim1";
        let mut body = serde_json::Map::new();
        body.insert("location".into(), json!("West US"));
        let service = Resource::new(id.into(), body.clone(), "e".into(), 0);
        let deleted = soft_deleted(&service, 1_000).expect("a service");
        assert_eq!(
            deleted.id,
            "/subscriptions/s/providers/Microsoft.ApiManagement/locations/westus/deletedservices/Apim1"
        );
        assert_eq!(deleted.body["properties"]["serviceId"], id);
        assert_eq!(
            deleted.body["properties"]["scheduledPurgeDate"],
            "1970-01-03T00:00:01Z"
        );
        assert!(view(&deleted).get(super::super::PRIVATE).is_none());
        let api = Resource::new(format!("{id}/apis/a"), body, "e".into(), 0);
        assert!(soft_deleted(&api, 0).is_none());
        let mut arm = ArmState::default();
        arm.deleted_services.insert(deleted.key(), deleted);
        purge_due(&mut arm, RETENTION_MS);
        assert_eq!(arm.deleted_services.len(), 1);
        purge_due(&mut arm, RETENTION_MS + 1_000);
        assert!(arm.deleted_services.is_empty());
    }
}
