//! Model deployments under an account: their spec, rate limits and the writes the service
//! serialises per account.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{ArmError, Call, OperationKind, OperationSpec, Reply, check_if_match, tags};
use super::accounts::live_account;
use super::{
    ACCOUNT_TYPE, AccountPath, DEPLOYMENT_TYPE, accepted, account_location, catalog, check_name,
    invalid_content, mark_deleting, quoted, start_delete, status_path, system_data, view,
    with_operation,
};
use crate::sandbox::state::arm::{ArmState, Pending, PendingAction, Resource};

const DEPLOYMENT_READ_ONLY: [&str; 7] = [
    "provisioningState",
    "capabilities",
    "rateLimits",
    "callRateLimit",
    "currentCapacity",
    "capacitySettings",
    "dynamicThrottlingEnabled",
];

/// A deployment write while another write on the same account runs: 409 `RequestConflict`
/// with this message (Azure/Vector-Search-AI-Assistant#11, Azure/azure-dev#9398,
/// Azure/terraform-azurerm-avm-res-cognitiveservices-account#125).
fn parent_busy(account_id: &str) -> ArmError {
    ArmError::conflict(
        "RequestConflict",
        format!(
            "Another operation is being performed on the parent resource '{account_id}'. Please try again later."
        ),
    )
}

struct DeploymentSpec {
    sku: Value,
    tags: Option<Value>,
    properties: Map<String, Value>,
    capacity: u64,
    model_name: String,
}

impl DeploymentSpec {
    fn parse(arm: &ArmState, body: &Map<String, Value>) -> Result<DeploymentSpec, ArmError> {
        let sku = body
            .get("sku")
            .and_then(Value::as_object)
            .filter(|s| s.get("name").and_then(Value::as_str).is_some())
            .ok_or_else(|| invalid_content("'sku.name' is required."))?;
        // ARM's JSON reader converts a string of digits to the integer the schema asks for, and
        // `az cognitiveservices account deployment create --sku-capacity 10` (az 2.91) sends
        // `"capacity": "10"`, which Azure accepts (seen on the wire, issue 17 item 7). Stored
        // and answered as the integer, as Azure answers it.
        let capacity = match sku.get("capacity") {
            None | Some(Value::Null) => 1,
            Some(c) => c
                .as_u64()
                .or_else(|| {
                    c.as_str()
                        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|t| t.parse().ok())
                })
                .filter(|c| *c > 0)
                .ok_or_else(|| invalid_content("'sku.capacity' must be a positive integer."))?,
        };
        let mut sku = sku.clone();
        sku.insert("capacity".into(), json!(capacity));
        let mut properties = body
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        properties.retain(|k, v| !DEPLOYMENT_READ_ONLY.contains(&k.as_str()) && !v.is_null());
        let model = properties
            .get_mut("model")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid_content("'properties.model' is required."))?;
        let (Some(format), Some(name)) = (
            model
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_owned),
            model.get("name").and_then(Value::as_str).map(str::to_owned),
        ) else {
            return Err(invalid_content(
                "'properties.model.format' and 'properties.model.name' are required.",
            ));
        };
        model
            .entry("version")
            .or_insert_with(|| json!(catalog::default_version(arm, &format, &name)));
        properties
            .entry("versionUpgradeOption")
            .or_insert_with(|| json!(catalog::DEFAULT_UPGRADE));
        Ok(DeploymentSpec {
            sku: Value::Object(sku),
            tags: tags(body)?,
            properties,
            capacity,
            model_name: name,
        })
    }
}

/// What the model can be called for, by family.
fn model_capabilities(model: &str) -> Value {
    let model = model.to_ascii_lowercase();
    if model.contains("embedding") || model == "ada" {
        json!({ "embeddings": "true" })
    } else if model.contains("dall-e") {
        json!({ "imageGenerations": "true" })
    } else if model.contains("whisper") {
        json!({ "audio": "true" })
    } else {
        json!({ "completion": "true", "chatCompletion": "true" })
    }
}

/// Capacity is in units of 1K tokens per minute. The recording for capacity 1 shows 2 requests
/// per 10 s and 1,000 tokens per 60 s (foundry-arm.md §1.5); requests grow with capacity at
/// Azure's published 6 per minute per unit (1 per 10 s), never below the recorded 2.
fn rate_limits(capacity: u64) -> Value {
    json!([
        { "key": "request", "renewalPeriod": 10, "count": capacity.max(2) },
        { "key": "token", "renewalPeriod": 60, "count": capacity * 1000 },
    ])
}

fn deployment_body(
    call: &Call<'_>,
    id: &str,
    name: &str,
    spec: &DeploymentSpec,
    previous: Option<&Map<String, Value>>,
    provisioning_state: &str,
) -> Map<String, Value> {
    let mut properties = spec.properties.clone();
    properties.insert("capabilities".into(), model_capabilities(&spec.model_name));
    properties.insert("rateLimits".into(), rate_limits(spec.capacity));
    properties.insert("currentCapacity".into(), json!(spec.capacity));
    properties.insert("provisioningState".into(), json!(provisioning_state));
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("name".into(), json!(name));
    body.insert("type".into(), json!(DEPLOYMENT_TYPE));
    body.insert("sku".into(), spec.sku.clone());
    if let Some(tags) = &spec.tags {
        body.insert("tags".into(), tags.clone());
    }
    body.insert("properties".into(), Value::Object(properties));
    body.insert("systemData".into(), system_data(call, previous));
    body
}

/// Same sku, tags and settings: a re-PUT that changes nothing.
fn same_deployment(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let settings = |m: &Map<String, Value>| {
        let mut p = m
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        p.remove("provisioningState");
        (m.get("sku").cloned(), m.get("tags").cloned(), p)
    };
    settings(a) == settings(b)
}

/// Deployment writes need a healthy account with no other write running on it (the service
/// serialises writes per account; see [`parent_busy`]).
fn check_parent_ready(arm: &ArmState, account: &Resource, deleting: bool) -> Result<(), ArmError> {
    let busy = account.pending.is_some()
        || arm
            .children(&account.id, "deployments")
            .any(|d| d.pending.is_some());
    if busy {
        return Err(parent_busy(&account.id));
    }
    match account.provisioning_state() {
        Some("Succeeded") | None => Ok(()),
        _ if deleting => Ok(()),
        // The code and message other RPs report for an account that is not ready
        // (hashicorp/terraform-provider-azurerm#31712); the status is our choice.
        Some(state) => Err(ArmError::bad_request(
            "AccountProvisioningStateInvalid",
            format!(
                "Call to Microsoft.CognitiveServices/accounts failed. Error message: Account {} in state {state}",
                account.id
            ),
        )),
    }
}

/// PUT: 201 `Accepted` with `azure-asyncoperation` for a new deployment (the fixture's state),
/// 200 for a change (also polled), 200 with nothing started when nothing changes (recorded).
pub(super) fn put_deployment(
    call: &mut Call<'_>,
    path: &AccountPath,
    name: &str,
) -> Result<Reply, ArmError> {
    check_name(name, "deployment")?;
    let spec = DeploymentSpec::parse(&call.state.arm, &call.request.body_object()?)?;
    let account = live_account(call, path)?;
    let id = format!("{}/deployments/{name}", account.id);
    let existing = call.state.arm.get(&id).cloned();
    check_if_match(
        call.request,
        existing.as_ref().map(|e| e.etag.as_str()),
        false,
    )?;
    check_parent_ready(&call.state.arm, &account, false)?;
    let id = existing.as_ref().map_or(id, |e| e.id.clone());
    let stored_name = id.rsplit('/').next().unwrap_or(name).to_owned();
    let previous = existing.as_ref().map(|e| &e.body);
    if let Some(existing) = &existing {
        let unchanged = deployment_body(call, &id, &stored_name, &spec, previous, "Succeeded");
        if existing.provisioning_state() == Some("Succeeded")
            && same_deployment(&existing.body, &unchanged)
        {
            return Ok(Reply::ok(view(existing)).etag(&existing.etag));
        }
    }
    let model = spec.properties.get("model").and_then(Value::as_object);
    let sku = spec
        .sku
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    catalog::check_deployable(call, &path.subscription, model.unwrap_or(&Map::new()), sku)?;
    let mut body = deployment_body(call, &id, &stored_name, &spec, previous, "Accepted");
    let etag = call.state.arm.next_etag();
    body.insert("etag".into(), quoted(&etag));
    let location = account_location(&account);
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &id,
            running_status: "Accepted",
            kind: OperationKind::DeploymentWrite,
            final_status: 200,
            final_body: true,
            location_only: false,
        },
        |op| status_path(&path.subscription, &location, op),
    );
    let mut resource = Resource::new(id, body, etag.clone(), call.now_ms);
    if let Some(existing) = &existing {
        resource.created_ms = existing.created_ms;
    }
    resource.pending = Some(Pending::new(&operation, PendingAction::Provision));
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let reply = Reply::new(status, Some(view(&resource))).etag(&etag);
    call.state.arm.insert(resource);
    Ok(with_operation(call, reply, &operation))
}

fn deployment_not_found(path: &AccountPath, name: &str) -> ArmError {
    ArmError::resource_not_found(
        &format!("{ACCOUNT_TYPE}/{}/deployments", path.name),
        name,
        &path.group,
    )
}

pub(super) fn get_deployment(
    call: &Call<'_>,
    path: &AccountPath,
    name: &str,
) -> Result<Reply, ArmError> {
    let account = live_account(call, path)?;
    call.state
        .arm
        .get(&format!("{}/deployments/{name}", account.id))
        .map(|d| Reply::ok(view(d)).etag(&d.etag))
        .ok_or_else(|| deployment_not_found(path, name))
}

pub(super) fn list_deployments(call: &Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let account = live_account(call, path)?;
    let value: Vec<Value> = call
        .state
        .arm
        .children(&account.id, "deployments")
        .map(view)
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}

/// DELETE: 202 with the operation URLs, `Deleting` until gone; 204 for a deployment (or an
/// account) that does not exist ("The deployment does not exist", CS25).
pub(super) fn delete_deployment(
    call: &mut Call<'_>,
    path: &AccountPath,
    name: &str,
) -> Result<Reply, ArmError> {
    let Some(account) = call.state.arm.get(&path.id()).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    let id = format!("{}/deployments/{name}", account.id);
    let Some(deployment) = call.state.arm.get(&id).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    check_if_match(call.request, Some(&deployment.etag), false)?;
    if let Some(pending) = deployment
        .pending
        .as_ref()
        .filter(|p| p.action == PendingAction::Delete)
        && let Some(operation) = call.state.arm.operations.get(&pending.operation).cloned()
    {
        return Ok(accepted(call, &operation));
    }
    check_parent_ready(&call.state.arm, &account, true)?;
    let location = account_location(&account);
    let operation = start_delete(
        call,
        &deployment.id,
        OperationKind::DeploymentDelete,
        &path.subscription,
        &location,
    );
    mark_deleting(call.state.arm.get_mut(&deployment.id), &operation);
    Ok(accepted(call, &operation))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ID, account};
    use super::*;

    #[test]
    fn a_failed_account_takes_no_deployments_and_a_busy_one_conflicts() {
        let arm = ArmState::default();
        let failed = account(ID, json!({ "provisioningState": "Failed" }));
        let e = check_parent_ready(&arm, &failed, false).unwrap_err();
        assert_eq!(&*e.code, "AccountProvisioningStateInvalid");
        assert!(check_parent_ready(&arm, &failed, true).is_ok());
        let mut busy = account(ID, json!({ "provisioningState": "Creating" }));
        busy.pending = Some(Pending {
            operation: "op".into(),
            until_ms: 1,
            action: PendingAction::Provision,
        });
        let e = check_parent_ready(&arm, &busy, false).unwrap_err();
        assert_eq!((e.status.as_u16(), &*e.code), (409, "RequestConflict"));
        assert!(e.message.contains(ID));
    }

    #[test]
    fn rate_limits_grow_with_capacity() {
        assert_eq!(
            rate_limits(1),
            json!([
                { "key": "request", "renewalPeriod": 10, "count": 2 },
                { "key": "token", "renewalPeriod": 60, "count": 1000 }
            ])
        );
        assert_eq!(rate_limits(30)[1]["count"], 30_000);
    }
}
