//! What ARM holds: resources by id, soft-deleted Cognitive Services accounts, and the async
//! operations clients poll. Serialisable with the rest of the sandbox state.
//!
//! Only records live here; what happens to them as time passes (an operation ending, a retention
//! running out) is the ARM emulation's business (`sandbox::arm::settle`), so the state depends on
//! nothing above it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArmState {
    /// Live resources (and resource groups) by lower-cased id.
    pub resources: BTreeMap<String, Resource>,
    /// Soft-deleted Cognitive Services accounts by lower-cased `deletedAccounts` id.
    pub deleted_accounts: BTreeMap<String, Resource>,
    /// Soft-deleted API Management services by lower-cased `deletedservices` id. Absent from
    /// states written before APIM soft delete was modelled.
    #[serde(default)]
    pub deleted_services: BTreeMap<String, Resource>,
    /// Async operations by id.
    pub operations: BTreeMap<String, Operation>,
    /// Bumped with every entity-tag handed out, so ETags never repeat.
    pub etag_counter: u64,
    /// Model versions published after the built-in model catalog was taken (its entries' JSON):
    /// how a test makes a new default version appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog_additions: Vec<Value>,
    /// Resource providers unregistered from a subscription, as `{subscription}/{namespace}`
    /// lower-cased; every other provider is registered (a new subscription has the common ones).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub unregistered: std::collections::BTreeSet<String>,
    /// Providers whose registration is under way, with the sandbox instant (ms) it completes:
    /// Azure answers `Registering` for a minute or so after `register`, and refuses creates
    /// meanwhile.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub registering: std::collections::BTreeMap<String, u64>,
    /// The built-in role the operator holds on every subscription, by name (`Owner` when unset):
    /// how a test makes the operator a principal that may not write role assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_role: Option<String>,
}

/// One ARM resource: the JSON a GET returns, plus what the sandbox tracks about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    /// The id with the casing of its creation (ARM preserves it; lookups ignore case).
    pub id: String,
    pub body: Map<String, Value>,
    /// The current entity tag, without quotes.
    pub etag: String,
    pub created_ms: u64,
    /// The operation still running on this resource, if any.
    pub pending: Option<Pending>,
}

impl Resource {
    pub fn new(id: String, body: Map<String, Value>, etag: String, now_ms: u64) -> Resource {
        Resource {
            id,
            body,
            etag,
            created_ms: now_ms,
            pending: None,
        }
    }

    pub fn properties(&self) -> Option<&Map<String, Value>> {
        self.body.get("properties").and_then(Value::as_object)
    }

    pub fn properties_mut(&mut self) -> &mut Map<String, Value> {
        let slot = self
            .body
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot.as_object_mut().expect("just made an object")
    }

    pub fn property_str(&self, key: &str) -> Option<&str> {
        self.properties()?.get(key)?.as_str()
    }

    pub fn provisioning_state(&self) -> Option<&str> {
        self.property_str("provisioningState")
    }

    pub fn set_provisioning_state(&mut self, state: &str) {
        self.properties_mut()
            .insert("provisioningState".into(), json!(state));
    }

    /// The lower-cased id: the map key.
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
}

/// Work in progress on a resource, ending at `until_ms` (wall clock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub operation: String,
    pub until_ms: u64,
    pub action: PendingAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PendingAction {
    /// A create or update: ends with `provisioningState` `Succeeded` (or `Failed`).
    Provision,
    /// A delete: ends with the resource (and everything under it) gone.
    Delete,
}

/// An ARM async operation: what its `Azure-AsyncOperation` and `Location` URLs answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    /// The resource the operation works on.
    pub resource_id: String,
    /// The status the operation resource shows while running (`Creating`, `InProgress`…): the
    /// resource provider's own word, which clients must treat as "not terminal".
    pub running_status: String,
    /// The path of the operation resource (its `id` field).
    pub status_path: String,
    pub started_ms: u64,
    pub until_ms: u64,
    /// Set when the operation ends `Failed`: the ARM error detail.
    pub error: Option<Value>,
    /// What a poll of the `Location` URL answers once the operation succeeded.
    pub final_status: u16,
    /// Whether that final answer carries the resource's body.
    pub final_body: bool,
    /// The operation URL answers as a `Location` whatever its query says.
    #[serde(default)]
    pub location_only: bool,
}

impl Operation {
    pub fn done(&self, now_ms: u64) -> bool {
        now_ms >= self.until_ms
    }

    /// `Succeeded`, `Failed` or the running status, as the operation resource reports it.
    pub fn status(&self, now_ms: u64) -> &str {
        match (self.done(now_ms), &self.error) {
            (false, _) => &self.running_status,
            (true, None) => "Succeeded",
            (true, Some(_)) => "Failed",
        }
    }
}

impl Pending {
    pub fn new(operation: &Operation, action: PendingAction) -> Pending {
        Pending {
            operation: operation.id.clone(),
            until_ms: operation.until_ms,
            action,
        }
    }
}

impl ArmState {
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.get(&id.to_ascii_lowercase())
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Resource> {
        self.resources.get_mut(&id.to_ascii_lowercase())
    }

    pub fn insert(&mut self, resource: Resource) {
        self.resources.insert(resource.key(), resource);
    }

    /// A fresh opaque entity tag.
    pub fn next_etag(&mut self) -> String {
        self.etag_counter += 1;
        let bytes = self.etag_counter.to_be_bytes();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The resources directly under `parent` whose id continues with `/{segment}/{name}`.
    pub fn children<'a>(
        &'a self,
        parent: &str,
        segment: &str,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        let prefix = format!(
            "{}/{}/",
            parent.to_ascii_lowercase(),
            segment.to_ascii_lowercase()
        );
        let len = prefix.len();
        let bound = prefix.clone();
        self.resources
            .range(prefix..)
            .take_while(move |(k, _)| k.starts_with(&bound))
            .filter(move |(k, _)| !k[len..].contains('/'))
            .map(|(_, r)| r)
    }

    /// Removes a resource and every resource below it; returns them, parent first.
    pub fn remove_tree(&mut self, id: &str) -> Vec<Resource> {
        let key = id.to_ascii_lowercase();
        let prefix = format!("{key}/");
        let keys: Vec<String> = self
            .resources
            .keys()
            .filter(|k| **k == key || k.starts_with(&prefix))
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|k| self.resources.remove(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str) -> Resource {
        Resource::new(id.to_owned(), Map::new(), "e".into(), 0)
    }

    #[test]
    fn children_are_direct_and_case_insensitive() {
        let mut arm = ArmState::default();
        for id in [
            "/s/x/rg/p/service/a",
            "/s/x/rg/p/service/a/apis/one",
            "/s/x/rg/p/service/a/apis/Two",
            "/s/x/rg/p/service/a/apis/one/operations/op",
            "/s/x/rg/p/service/ab/apis/three",
        ] {
            arm.insert(resource(id));
        }
        let names: Vec<&str> = arm
            .children("/S/X/rg/p/service/A", "APIS")
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "/s/x/rg/p/service/a/apis/one",
                "/s/x/rg/p/service/a/apis/Two"
            ]
        );
    }

    #[test]
    fn etags_never_repeat() {
        let mut arm = ArmState::default();
        let a = arm.next_etag();
        let b = arm.next_etag();
        assert_ne!(a, b);
        assert_eq!(a, "AAAAAAAAAAE=");
    }
}
