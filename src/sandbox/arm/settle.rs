//! Time passing over ARM: nothing runs in the background. An operation records when it ends,
//! and [`settle`] applies every ending that is due at the start of each ARM request, on the
//! sandbox's clock. The outcome is the same as a timer's, a persisted sandbox picks up where it
//! stopped, and moving the sandbox's clock forward ends operations and retention exactly as
//! waiting would.

use serde_json::{Value, json};

use super::{apim, cognitive};
use crate::sandbox::state::arm::{ArmState, Pending, PendingAction};

/// Applies every pending ending that is due; soft-deletes Cognitive Services accounts that
/// a delete removes (directly or with their resource group).
pub(super) fn settle(arm: &mut ArmState, now_ms: u64) -> Vec<String> {
    let due: Vec<(String, Pending)> = arm
        .resources
        .iter()
        .filter_map(|(k, r)| {
            r.pending
                .as_ref()
                .filter(|p| p.until_ms <= now_ms)
                .map(|p| (k.clone(), p.clone()))
        })
        .collect();
    for (key, pending) in due {
        let failed = arm
            .operations
            .get(&pending.operation)
            .is_some_and(|op| op.error.is_some());
        match pending.action {
            PendingAction::Provision => {
                if let Some(resource) = arm.resources.get_mut(&key) {
                    resource.pending = None;
                    resource.set_provisioning_state(if failed { "Failed" } else { "Succeeded" });
                    if let Some(props) = resource
                        .body
                        .get_mut("properties")
                        .and_then(Value::as_object_mut)
                        && props.contains_key("targetProvisioningState")
                    {
                        props.insert("targetProvisioningState".into(), json!(""));
                    }
                }
            }
            PendingAction::Delete if failed => {
                if let Some(resource) = arm.resources.get_mut(&key) {
                    resource.pending = None;
                    resource.set_provisioning_state("Succeeded");
                }
            }
            PendingAction::Delete => {
                let id = arm.resources.get(&key).map(|r| r.id.clone());
                if let Some(id) = id {
                    for removed in arm.remove_tree(&id) {
                        if let Some(deleted) = apim::deleted::soft_deleted(&removed, now_ms) {
                            arm.deleted_services.insert(deleted.key(), deleted);
                        }
                        if let Some(deleted) = cognitive::soft_deleted(removed, now_ms) {
                            arm.deleted_accounts.insert(deleted.key(), deleted);
                        }
                    }
                }
            }
        }
    }
    let principals = cognitive::purge_due(arm, now_ms);
    apim::deleted::purge_due(arm, now_ms);
    cognitive::upgrade_due(arm, now_ms);
    // Operation records are kept a while for late pollers, then dropped.
    const KEEP_MS: u64 = 60 * 60 * 1000;
    arm.operations
        .retain(|_, op| op.until_ms + KEEP_MS > now_ms);
    principals
}

/// [`settle`], then the service principals of managed identities whose account was purged (by
/// a purge or at the end of its retention) leave the directory: a system-assigned identity lives
/// and dies with its resource.
/// `true` when a principal left. The only way in: the ARM-only [`settle`] would drop the
/// principal ids it returns.
pub(crate) fn settle_state(state: &mut crate::sandbox::state::State, now_ms: u64) -> bool {
    let principals = settle(&mut state.arm, now_ms);
    if principals.is_empty() {
        return false;
    }
    state
        .objects
        .retain(|o| !principals.iter().any(|p| o.id().eq_ignore_ascii_case(p)));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::state::arm::Resource;
    use serde_json::Map;

    fn resource(id: &str) -> Resource {
        Resource::new(id.to_owned(), Map::new(), "e".into(), 0)
    }

    #[test]
    fn a_due_delete_removes_the_whole_tree_and_nothing_else() {
        let mut arm = ArmState::default();
        for id in ["/rg/a", "/rg/a/x", "/rg/a/x/y", "/rg/ab"] {
            arm.insert(resource(id));
        }
        arm.get_mut("/rg/a").expect("inserted").pending = Some(Pending {
            operation: "op".into(),
            until_ms: 10,
            action: PendingAction::Delete,
        });
        let _ = settle(&mut arm, 9);
        assert_eq!(arm.resources.len(), 4);
        let _ = settle(&mut arm, 10);
        assert_eq!(arm.resources.keys().collect::<Vec<_>>(), ["/rg/ab"]);
    }
}
