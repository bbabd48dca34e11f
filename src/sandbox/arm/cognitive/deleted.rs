//! Soft delete: what a removed account leaves behind, the `deletedAccounts` it can be listed,
//! restored and purged as, and the retention that purges it in the end.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::resources::normalize_location;
use super::super::{ArmError, Call, OperationKind, Reply, capture, segments_of};
use super::{
    ACCOUNTS, AccountPath, DELETED_TYPE, PROVIDER, accepted, account_location, mark_deleting,
    start_delete, view,
};
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::{ArmState, Resource};

/// The service purges a soft-deleted account by itself 48 hours after deletion.
const RETENTION_MS: u64 = 48 * 60 * 60 * 1000;

/// What a removed resource leaves behind: a soft-deleted account for an account (deleted by
/// itself or with its resource group), nothing for anything else (deployments go with their
/// account).
pub(in super::super) fn soft_deleted(resource: Resource, now_ms: u64) -> Option<Resource> {
    let segments = segments_of(&resource.id);
    let c = capture(&segments, &format!("{ACCOUNTS}/{{}}"))?;
    let location = normalize_location(&account_location(&resource));
    let id = deleted_id(c[0], &location, c[1], c[2]);
    let mut deleted = Resource {
        id: id.clone(),
        body: resource.body,
        etag: resource.etag,
        created_ms: now_ms,
        pending: None,
    };
    deleted.body.insert("id".into(), json!(id));
    deleted.body.insert("type".into(), json!(DELETED_TYPE));
    let properties = deleted.properties_mut();
    properties.insert("provisioningState".into(), json!("Succeeded"));
    properties.insert("deletionDate".into(), json!(format_utc_millis(now_ms)));
    properties.insert(
        "scheduledPurgeDate".into(),
        json!(format_utc_millis(now_ms + RETENTION_MS)),
    );
    Some(deleted)
}

/// Ends the purges that are due, and the soft-deleted accounts whose retention ran out; part of
/// `arm::settle`.
/// Returns the managed identities' principal ids of the accounts gone for good: their service
/// principals leave the directory with them.
pub(in super::super) fn purge_due(arm: &mut ArmState, now_ms: u64) -> Vec<String> {
    let mut gone = Vec::new();
    let mut failed = Vec::new();
    for (key, deleted) in &arm.deleted_accounts {
        if now_ms >= deleted.created_ms + RETENTION_MS {
            gone.push(key.clone());
        } else if let Some(pending) = deleted.pending.as_ref().filter(|p| p.until_ms <= now_ms) {
            let error = arm
                .operations
                .get(&pending.operation)
                .is_some_and(|op| op.error.is_some());
            if error {
                failed.push(key.clone());
            } else {
                gone.push(key.clone());
            }
        }
    }
    let mut principals = Vec::new();
    for key in gone {
        if let Some(account) = arm.deleted_accounts.remove(&key)
            && let Some(principal) = account
                .body
                .get("identity")
                .and_then(|i| i.get("principalId"))
                .and_then(Value::as_str)
        {
            principals.push(principal.to_owned());
        }
    }
    for key in failed {
        if let Some(deleted) = arm.deleted_accounts.get_mut(&key) {
            deleted.pending = None;
            deleted.set_provisioning_state("Succeeded");
        }
    }
    principals
}

pub(super) fn deleted_id(subscription: &str, location: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/resourceGroups/{group}/deletedAccounts/{name}"
    )
}

/// foundry-arm.md §1.6 (azure-cli#18146).
pub(super) fn flag_must_be_set(account_id: &str) -> ArmError {
    ArmError::conflict(
        "FlagMustBeSetForRestore",
        format!(
            "An existing resource with ID '{account_id}' has been soft-deleted. To restore the resource, you must specify 'restore' to be 'true' in the property. If you don't want to restore existing resource, please purge it first."
        ),
    )
}

pub(super) fn find_deleted(arm: &ArmState, path: &AccountPath) -> Option<String> {
    let prefix = format!("/subscriptions/{}/", path.subscription).to_ascii_lowercase();
    let suffix = format!(
        "/resourcegroups/{}/deletedaccounts/{}",
        path.group, path.name
    )
    .to_ascii_lowercase();
    arm.deleted_accounts
        .keys()
        .find(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
        .cloned()
}

pub(super) fn list_deleted(call: &Call<'_>, subscription: &str) -> Reply {
    let prefix = format!("/subscriptions/{subscription}/").to_ascii_lowercase();
    let value: Vec<Value> = call
        .state
        .arm
        .deleted_accounts
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, r)| view(r))
        .collect();
    Reply::ok(json!({ "value": value }))
}

pub(super) fn get_deleted(
    call: &Call<'_>,
    id: &str,
    group: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    call.state
        .arm
        .deleted_accounts
        .get(&id.to_ascii_lowercase())
        .map(|r| Reply::ok(view(r)))
        .ok_or_else(|| ArmError::resource_not_found(DELETED_TYPE, name, group))
}

/// Purge: 202 with `Location` (`operationResultResponseType=Location`) and
/// `azure-asyncoperation`, as recorded; 204 when there is nothing to purge. Works after the
/// resource group itself is gone.
pub(super) fn purge(
    call: &mut Call<'_>,
    id: &str,
    subscription: &str,
    location: &str,
) -> Result<Reply, ArmError> {
    let key = id.to_ascii_lowercase();
    let Some(deleted) = call.state.arm.deleted_accounts.get(&key).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    if let Some(pending) = &deleted.pending
        && let Some(operation) = call.state.arm.operations.get(&pending.operation).cloned()
    {
        return Ok(accepted(call, &operation));
    }
    let operation = start_delete(
        call,
        &deleted.id,
        OperationKind::AccountPurge,
        subscription,
        location,
    );
    mark_deleting(call.state.arm.deleted_accounts.get_mut(&key), &operation);
    Ok(accepted(call, &operation))
}

#[cfg(test)]
mod tests {
    use super::super::PRIVATE;
    use super::super::tests::{ID, account};
    use super::*;
    use crate::sandbox::state::arm::{Pending, PendingAction};

    #[test]
    fn a_removed_account_becomes_a_deleted_account_and_nothing_else_does() {
        let deleted = soft_deleted(account(ID, json!({})), 1_000).expect("an account");
        assert_eq!(
            deleted.id,
            "/subscriptions/s/providers/Microsoft.CognitiveServices/locations/westus/resourceGroups/rg/deletedAccounts/Acc"
        );
        assert_eq!(deleted.body["type"], DELETED_TYPE);
        assert_eq!(
            deleted.body["properties"]["deletionDate"],
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            deleted.body["properties"]["scheduledPurgeDate"],
            "1970-01-03T00:00:01Z"
        );
        assert!(view(&deleted).get(PRIVATE).is_none());
        let deployment = account(&format!("{ID}/deployments/d"), json!({}));
        assert!(soft_deleted(deployment, 1_000).is_none());
    }

    #[test]
    fn due_purges_and_expired_retention_remove_deleted_accounts() {
        let mut arm = ArmState::default();
        let mut kept = soft_deleted(account(ID, json!({})), 0).unwrap();
        kept.pending = Some(Pending {
            operation: "op".into(),
            until_ms: 50,
            action: PendingAction::Delete,
        });
        arm.deleted_accounts.insert(kept.key(), kept);
        let _ = purge_due(&mut arm, 49);
        assert_eq!(arm.deleted_accounts.len(), 1);
        let _ = purge_due(&mut arm, 50);
        assert!(arm.deleted_accounts.is_empty());
        let old = soft_deleted(account(ID, json!({})), 0).unwrap();
        arm.deleted_accounts.insert(old.key(), old);
        let _ = purge_due(&mut arm, RETENTION_MS);
        assert!(arm.deleted_accounts.is_empty());
    }
}
