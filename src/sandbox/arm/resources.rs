//! Microsoft.Resources: subscriptions (what `az login` lists), resource groups, and the cloud
//! metadata document that lets Azure clients register the sandbox as a custom cloud.

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ArmError, Call, OperationKind, OperationSpec, Reply, capture, group_id, only, tags};
use crate::sandbox::Shared;
use crate::sandbox::state::arm::{Pending, PendingAction, Resource};

const GROUP_TYPE: &str = "Microsoft.Resources/resourceGroups";

/// ARM's 404 for a missing group, recorded with `x-ms-failure-cause: gateway` (foundry-arm.md §2.3).
pub(super) fn group_not_found(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{name}' could not be found."),
    )
    .gateway()
}

fn subscription(call: &Call<'_>, id: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{id}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": id,
        "tenantId": call.state.operator.tenant_id,
        "displayName": "Sandbox",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        }
    })
}

pub(super) fn list_subscriptions(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    only(&call.request.method, Method::GET)?;
    let caller_tenant = &call.request.caller.tenant;
    let value: Vec<Value> = if caller_tenant.eq_ignore_ascii_case(&call.state.operator.tenant_id) {
        call.state
            .subscriptions
            .iter()
            .map(|s| subscription(call, s))
            .collect()
    } else {
        Vec::new()
    };
    let count = value.len();
    Ok(Reply::ok(
        json!({ "value": value, "count": { "type": "Total", "value": count } }),
    ))
}

/// `/subscriptions/{s}`, `/subscriptions/{s}/resourcegroups` and `/subscriptions/{s}/resourcegroups/{rg}`.
pub(super) fn handle(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    let method = call.request.method.clone();
    if let Some(c) = capture(&segments, "subscriptions/{}") {
        only(&method, Method::GET)?;
        let id = call
            .state
            .subscriptions
            .iter()
            .find(|s| s.eq_ignore_ascii_case(c[0]))
            .cloned()
            .unwrap_or_else(|| c[0].to_owned());
        return Ok(Reply::ok(subscription(call, &id)));
    }
    if let Some(c) = capture(&segments, "subscriptions/{}/resourceGroups") {
        only(&method, Method::GET)?;
        let prefix = format!("/subscriptions/{}", c[0]);
        let tag = tag_filter(call)?;
        let value: Vec<Value> = call
            .state
            .arm
            .children(&prefix, "resourceGroups")
            .map(super::view)
            .filter(|g| {
                tag.as_ref()
                    .is_none_or(|(n, v)| has_tag(g, n, v.as_deref()))
            })
            .collect();
        return Ok(Reply::ok(json!({ "value": value })));
    }
    let Some(c) = capture(&segments, "subscriptions/{}/resourceGroups/{}") else {
        return Err(ArmError::bad_request(
            "InvalidResourceType",
            "The resource type could not be found in the namespace 'Microsoft.Resources'.",
        ));
    };
    let (subscription, name) = (c[0].to_owned(), c[1].to_owned());
    let id = group_id(&subscription, &name);
    match method {
        Method::PUT => put_group(call, &id, &name),
        Method::PATCH => patch_group(call, &id, &name),
        Method::GET => call
            .state
            .arm
            .get(&id)
            .map(|g| Reply::ok(super::view(g)))
            .ok_or_else(|| group_not_found(&name)),
        Method::HEAD => Ok(Reply::empty(if call.state.arm.get(&id).is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        })),
        Method::DELETE => delete_group(call, &id, &name, &subscription),
        other => Err(ArmError::method_not_allowed(&other)),
    }
}

/// The `$filter=tagName eq 'n' [and tagValue eq 'v']` of a group list (ResourceGroups_List,
/// resources.json 2021-04-01: "You can filter by tag names and values").
fn tag_filter(call: &Call<'_>) -> Result<Option<(String, Option<String>)>, ArmError> {
    let Some((_, filter)) = call
        .request
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$filter"))
    else {
        return Ok(None);
    };
    let invalid = || {
        ArmError::bad_request(
            "InvalidFilterInQueryString",
            format!(
                "The filter '{filter}' is not supported: use tagName eq '…' [and tagValue eq '…']."
            ),
        )
    };
    let quoted = |clause: &str, field: &str| -> Option<String> {
        let (f, rest) = clause.trim().split_once(" eq ")?;
        let v = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        f.trim()
            .eq_ignore_ascii_case(field)
            .then(|| v.replace("''", "'"))
    };
    let (name, value) = match filter.split_once(" and ") {
        Some((a, b)) => (
            quoted(a, "tagName").ok_or_else(invalid)?,
            Some(quoted(b, "tagValue").ok_or_else(invalid)?),
        ),
        None => (quoted(filter, "tagName").ok_or_else(invalid)?, None),
    };
    Ok(Some((name, value)))
}

fn has_tag(group: &Value, name: &str, value: Option<&str>) -> bool {
    group
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .any(|(k, v)| {
            k.eq_ignore_ascii_case(name)
                && value.is_none_or(|want| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(want)))
        })
}

/// ARM normalises locations (`West US` → `westus`).
pub(super) fn normalize_location(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn put_group(call: &mut Call<'_>, id: &str, name: &str) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let Some(location) = body.get("location").and_then(Value::as_str) else {
        return Err(ArmError::location_required());
    };
    let location = normalize_location(location);
    let tags = tags(&body)?;
    if let Some(existing) = call.state.arm.get(id) {
        let current = existing
            .body
            .get("location")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if current != location {
            return Err(ArmError::conflict(
                "InvalidResourceGroupLocation",
                format!(
                    "Invalid resource group location '{location}'. The Resource group already exists in location '{current}'."
                ),
            ));
        }
        if existing.provisioning_state() == Some("Deleting") {
            return Err(ArmError::conflict(
                "ResourceGroupBeingDeleted",
                format!(
                    "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
                ),
            ));
        }
    }
    let created = call.state.arm.get(id).is_none();
    let stored_id = call
        .state
        .arm
        .get(id)
        .map_or_else(|| id.to_owned(), |g| g.id.clone());
    let stored_name = stored_id.rsplit('/').next().unwrap_or(name).to_owned();
    let mut group = Map::new();
    group.insert("id".into(), json!(stored_id));
    group.insert("name".into(), json!(stored_name));
    group.insert("type".into(), json!(GROUP_TYPE));
    group.insert("location".into(), json!(location));
    if let Some(tags) = tags {
        group.insert("tags".into(), tags);
    }
    if let Some(managed_by) = body.get("managedBy").and_then(Value::as_str) {
        group.insert("managedBy".into(), json!(managed_by));
    }
    group.insert(
        "properties".into(),
        json!({ "provisioningState": "Succeeded" }),
    );
    let etag = call.state.arm.next_etag();
    let created_ms = call.state.arm.get(id).map_or(call.now_ms, |g| g.created_ms);
    let mut resource = Resource::new(stored_id, group, etag, call.now_ms);
    resource.created_ms = created_ms;
    let view = super::view(&resource);
    call.state.arm.insert(resource);
    Ok(Reply::new(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Some(view),
    ))
}

/// PATCH replaces the tags as a whole (RPC-RES) and nothing else may change.
fn patch_group(call: &mut Call<'_>, id: &str, name: &str) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let tags = tags(&body)?;
    let etag = call.state.arm.next_etag();
    let group = call
        .state
        .arm
        .get_mut(id)
        .ok_or_else(|| group_not_found(name))?;
    if let Some(tags) = tags {
        group.body.insert("tags".into(), tags);
    }
    group.etag = etag;
    Ok(Reply::ok(super::view(group)))
}

/// DELETE is an LRO answered by `Location`; the group shows `Deleting` until it is gone, and the
/// resources inside go with it (Cognitive Services accounts into soft delete).
fn delete_group(
    call: &mut Call<'_>,
    id: &str,
    name: &str,
    subscription: &str,
) -> Result<Reply, ArmError> {
    let Some(group) = call.state.arm.get(id) else {
        return Err(group_not_found(name));
    };
    if let Some(pending) = &group.pending {
        // A second delete while the first runs is answered with the same operation.
        let operation = call.state.arm.operations.get(&pending.operation).cloned();
        if let Some(operation) = operation {
            return Ok(accepted(call, &operation.status_path, operation.until_ms));
        }
    }
    let stored_id = group.id.clone();
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &stored_id,
            running_status: "Deleting",
            kind: OperationKind::ResourceGroupDelete,
            final_status: 200,
            final_body: false,
            location_only: true,
        },
        |op| format!("/subscriptions/{subscription}/operationresults/{op}"),
    );
    let group = call.state.arm.get_mut(id).expect("checked above");
    group.set_provisioning_state("Deleting");
    group.pending = Some(Pending::new(&operation, PendingAction::Delete));
    Ok(accepted(call, &operation.status_path, operation.until_ms))
}

fn accepted(call: &Call<'_>, status_path: &str, until_ms: u64) -> Reply {
    let location = call.url(&format!(
        "{status_path}?api-version={}",
        call.request.api_version
    ));
    Reply::empty(StatusCode::ACCEPTED)
        .header("location", location)
        .poll_hint(until_ms, call.now_ms)
}

#[derive(serde::Deserialize)]
pub(super) struct MetadataQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

/// `GET /metadata/endpoints`: the cloud description `az cloud register --endpoint-resource-manager`
/// and the SDKs read. Only 2020-06-01 answers the list of every cloud (msrestazure PR #165,
/// "populate from 2020-06-01 metadata"); every other version answers the one cloud the endpoint
/// belongs to, and clients index it as an object: azure-cli 2.91 asks for 2022-09-01
/// (`command_modules/cloud/custom.py`, `_populate_from_metadata_endpoint`, azure-cli PR #30682)
/// and reads `arm_dict['name']` in `core/cloud.py` `_arm_to_cli_mapper`, which crashes on a list
/// (azure-cli issue #31547).
///
/// `microsoftGraphResourceId` is the sandbox's origin: azure-cli uses it both as Graph's base URL
/// (`+ 'v1.0'`) and as the token resource (`role/_msgrpah/_graph_client.py`, `GraphClient`), so
/// the token endpoint takes that origin as Graph's resource (`login::token::app_only_audience`).
pub(super) async fn metadata_endpoints(
    AxumState(shared): AxumState<Arc<Shared>>,
    Query(query): Query<MetadataQuery>,
) -> Response {
    let Some(version) = query.api_version.filter(|v| !v.is_empty()) else {
        let e = ArmError::missing_api_version();
        return (e.status, axum::Json(e.body())).into_response();
    };
    let base = &shared.base_url;
    let cloud = json!({
        "name": "Sandbox",
        "portal": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "media": base,
        "graphAudience": "https://graph.microsoft.com/",
        "graph": format!("{base}/"),
        "microsoftGraphResourceId": format!("{base}/"),
        "resourceManager": format!("{base}/"),
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "batch": "https://batch.core.windows.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "vmImageAliasDoc": "",
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        "suffixes": {
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "acrLoginServer": "azurecr.io",
            "sqlServerHostname": "database.windows.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "storageSyncEndpointSuffix": "afs.azure.net",
            "mhsmDns": "managedhsm.azure.net",
            "mysqlServerEndpoint": "mysql.database.azure.com",
            "postgresqlServerEndpoint": "postgres.database.azure.com",
            "mariadbServerEndpoint": "mariadb.database.azure.com",
            "synapseAnalytics": "dev.azuresynapse.net",
            "attestationEndpoint": "attest.azure.net"
        }
    });
    if version == "2020-06-01" {
        axum::Json(json!([cloud])).into_response()
    } else {
        axum::Json(cloud).into_response()
    }
}
