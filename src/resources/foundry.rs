//! The resource group, the Foundry (Cognitive Services) account and its model deployments.

use serde_json::{Map, Value, json};

use super::{
    Address, FieldChange, Finding, Kind, Managed, Outputs, Read, WriteRequest, put_unless_converged,
};
use crate::access::Service;
use std::collections::BTreeMap;

use super::models::ModelFacts;
use crate::config::{Blueprint, Deployment};

/// `managed-by: provision`, `provision-env: <env>` and the environment's own tags: how teardown
/// finds what this tool made for this environment, and nothing else.
pub fn tags(blueprint: &Blueprint) -> Value {
    let mut tags: Map<String, Value> = blueprint
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    tags.insert("managed-by".into(), json!("provision"));
    tags.insert("provision-env".into(), json!(blueprint.env));
    if let Some(expires) = &blueprint.expires {
        tags.insert(super::ownership::EXPIRES_TAG.into(), json!(expires));
    }
    Value::Object(tags)
}

pub fn group_id(blueprint: &Blueprint) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}",
        blueprint.subscription_id, blueprint.resource_group
    )
}

pub fn account_id(blueprint: &Blueprint) -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{}",
        group_id(blueprint),
        blueprint.foundry.account
    )
}

/// Where a soft-deleted account of this name would be (deleted accounts live under the location).
pub fn deleted_account_id(blueprint: &Blueprint) -> String {
    format!(
        "/subscriptions/{}/providers/Microsoft.CognitiveServices/locations/{}/resourceGroups/{}/deletedAccounts/{}",
        blueprint.subscription_id,
        blueprint.location,
        blueprint.resource_group,
        blueprint.foundry.account
    )
}

/// What to say of a soft-deleted account holding the name `what` names (`foundry account x`, or
/// the name alone), with the purge and recover commands: message and hint.
pub fn soft_deleted(what: &str, deleted: &Value) -> (String, String) {
    let at = deleted
        .pointer("/properties/deletionDate")
        .and_then(Value::as_str)
        .map(|d| format!(" on {d}"))
        .unwrap_or_default();
    let location = deleted
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("<location>");
    let id = deleted
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // …/locations/{l}/resourceGroups/{group}/deletedAccounts/{name}
    let segments: Vec<&str> = id.split('/').collect();
    let after = |key: &str| {
        let at = segments.iter().position(|s| s.eq_ignore_ascii_case(key))?;
        segments.get(at + 1).copied()
    };
    let group = after("resourceGroups").unwrap_or("<resource-group>");
    let name = after("deletedAccounts").unwrap_or(what);
    (
        format!(
            "{what} was deleted{at} and is soft-deleted: Azure keeps its name for 48 hours, and \
             creating it again fails with FlagMustBeSetForRestore"
        ),
        format!(
            "purge it to free the name (`az cognitiveservices account purge --name {name} \
             --resource-group {group} --location {location}`), or restore it (`az \
             cognitiveservices account recover --name {name} --resource-group {group} --location \
             {location}`) and run again"
        ),
    )
}

/// ARM writes locations lower-case without spaces ("Sweden Central" → "swedencentral").
fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
    norm(a) == norm(b)
}

/// Drops a `location` change that is only a spelling difference.
fn without_location_spelling(changes: Vec<FieldChange>) -> Vec<FieldChange> {
    changes
        .into_iter()
        .filter(|c| {
            !(c.path == "location"
                && matches!((&c.old, &c.new), (Some(Value::String(a)), Some(Value::String(b))) if same_location(a, b)))
        })
        .collect()
}

fn arm_read(path: String) -> Option<Read> {
    Some(Read {
        service: Service::Arm,
        path,
    })
}

/// The environment's resource group. A group that exists without the environment's marks was
/// not made by `up` (a platform team's landing zone, say): it is used as is and never written,
/// so its tags stay theirs and `down` leaves it, as the issue asks ("deletes the resource group
/// only if `provision` created it").
pub struct ResourceGroup {
    id: String,
    name: String,
    env: String,
    location: String,
    tags: Value,
}

impl ResourceGroup {
    pub fn new(blueprint: &Blueprint) -> ResourceGroup {
        ResourceGroup {
            id: group_id(blueprint),
            name: blueprint.resource_group.clone(),
            env: blueprint.env.clone(),
            location: blueprint.location.clone(),
            tags: tags(blueprint),
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::ResourceGroup, blueprint.resource_group.clone())
    }

    /// Someone else's group: present and without this environment's marks.
    fn is_theirs(&self, observed: &Value) -> bool {
        super::ownership::arm_is_ours(observed, &self.env).is_err()
    }
}

impl Managed for ResourceGroup {
    fn address(&self) -> Address {
        Address::new(Kind::ResourceGroup, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        Vec::new()
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(self.id.clone())
    }

    fn desired(&self, _known: &Outputs) -> Value {
        json!({"location": self.location, "tags": self.tags})
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        if self.is_theirs(observed) {
            return Vec::new();
        }
        without_location_spelling(super::subset_diff(desired, observed))
    }

    /// Never replaced: deleting a resource group deletes everything in it, whoever made it.
    fn conflict(&self, observed: &Value) -> Option<(String, String)> {
        let location = observed.get("location")?.as_str()?;
        (!same_location(location, &self.location)).then(|| {
            (
                format!(
                    "resource group {} exists in {location}, and the environment says {}; a \
                     resource group can not move",
                    self.name, self.location
                ),
                "set `location` to where the group is, or name another `resource_group`".to_owned(),
            )
        })
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        if observed.is_some_and(|o| self.is_theirs(o)) {
            return None;
        }
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}

/// The Foundry account: `disableLocalAuth` so nothing can call the model with a key, bypassing
/// the gateway; a system-assigned identity; a custom subdomain (Entra auth needs one).
pub struct Account {
    id: String,
    deleted_id: String,
    name: String,
    group: Address,
    location: String,
    kind: String,
    sku: String,
    tags: Value,
}

impl Account {
    pub fn new(blueprint: &Blueprint) -> Account {
        Account {
            id: account_id(blueprint),
            deleted_id: deleted_account_id(blueprint),
            name: blueprint.foundry.account.clone(),
            group: ResourceGroup::address_of(blueprint),
            location: blueprint.location.clone(),
            kind: blueprint.foundry.kind.clone(),
            sku: blueprint.foundry.sku.clone(),
            tags: tags(blueprint),
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::Account, blueprint.foundry.account.clone())
    }
}

/// Outputs of an account.
pub const ENDPOINT: &str = "endpoint";
pub const RESOURCE_ID: &str = "id";

/// The endpoint the gateway's backend points at: the OpenAI-compatible one from the `endpoints`
/// map, else the account's main endpoint. Never built from the name: the host differs by kind
/// and cloud.
pub fn openai_endpoint(account: &Value) -> Option<&str> {
    let properties = account.get("properties")?;
    properties
        .pointer("/endpoints/OpenAI Language Model Instance API")
        .and_then(Value::as_str)
        .or_else(|| properties.get("endpoint").and_then(Value::as_str))
}

impl Managed for Account {
    fn address(&self) -> Address {
        Address::new(Kind::Account, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.group.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(self.id.clone())
    }

    fn desired(&self, _known: &Outputs) -> Value {
        json!({
            "location": self.location,
            "kind": self.kind,
            "sku": {"name": self.sku},
            "identity": {"type": "SystemAssigned"},
            "tags": self.tags,
            "properties": {
                "customSubDomainName": self.name,
                "disableLocalAuth": true,
                "publicNetworkAccess": "Enabled",
            },
        })
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        without_location_spelling(super::subset_diff(desired, observed))
            .into_iter()
            // Subdomains come back lower-cased.
            .filter(|c| {
                !(c.path == "properties.customSubDomainName"
                    && c.old
                        .as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|o| o.eq_ignore_ascii_case(&self.name)))
            })
            .collect()
    }

    /// Never replaced: a deleted account keeps its name for 48 hours (soft delete), so a
    /// replacement could not be created under it anyway, and the account may hold other
    /// deployments than ours.
    fn conflict(&self, observed: &Value) -> Option<(String, String)> {
        let kind = observed.get("kind").and_then(Value::as_str)?;
        let subdomain = observed
            .pointer("/properties/customSubDomainName")
            .and_then(Value::as_str);
        let problem = if !kind.eq_ignore_ascii_case(&self.kind) {
            format!(
                "account {} is of kind {kind}, and the environment says {}; an account can not \
                 change its kind",
                self.name, self.kind
            )
        } else if let Some(sub) = subdomain.filter(|s| !s.eq_ignore_ascii_case(&self.name)) {
            format!(
                "account {} has the custom subdomain {sub}; a subdomain can not change once set",
                self.name
            )
        } else {
            return None;
        };
        Some((
            problem,
            "set `foundry.kind` to match, or name another `foundry.account` (an account is never \
             deleted for you: delete and purge it yourself if it should go)"
                .to_owned(),
        ))
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, observed: &Value) -> Outputs {
        let mut outputs = Outputs::default();
        let me = self.address();
        if let Some(endpoint) = openai_endpoint(observed) {
            outputs.set(&me, ENDPOINT, endpoint);
        }
        outputs.set(&me, RESOURCE_ID, self.id.clone());
        outputs
    }

    fn tombstone(&self) -> Option<Read> {
        arm_read(self.deleted_id.clone())
    }

    fn findings(&self, observed: &Value, _known: &Outputs) -> Vec<Finding> {
        let local_auth = observed
            .pointer("/properties/disableLocalAuth")
            .and_then(Value::as_bool)
            != Some(true);
        if local_auth {
            vec![Finding {
                rule: "local-auth-enabled",
                message: "accepts API keys (disableLocalAuth is not true): anyone with a key can \
                          call the model without passing the gateway"
                    .to_owned(),
            }]
        } else {
            Vec::new()
        }
    }
}

/// One model deployment. Deployments of an account are written one at a time (the service
/// answers 409 to a second write while one runs), so each depends on the one before it.
pub struct ModelDeployment {
    id: String,
    name: String,
    account: Address,
    previous: Option<Address>,
    spec: Deployment,
    /// What the location's model catalog says about it; `None` when it was not read.
    facts: Option<ModelFacts>,
}

impl ModelDeployment {
    /// The deployments of an environment, chained in file order, with the catalog's facts.
    pub fn all(
        blueprint: &Blueprint,
        facts: &BTreeMap<String, ModelFacts>,
    ) -> Vec<ModelDeployment> {
        let account = Account::address_of(blueprint);
        let mut previous = None;
        blueprint
            .foundry
            .deployments
            .iter()
            .map(|spec| {
                let d = ModelDeployment {
                    id: format!("{}/deployments/{}", account_id(blueprint), spec.name),
                    name: spec.name.clone(),
                    account: account.clone(),
                    previous: previous.clone(),
                    spec: spec.clone(),
                    facts: facts.get(&spec.name).cloned(),
                };
                previous = Some(d.address());
                d
            })
            .collect()
    }

    /// The version asked for: the file's, else the catalog's default.
    fn version(&self) -> Option<&str> {
        self.spec
            .model
            .version
            .as_deref()
            .or_else(|| self.facts.as_ref()?.version.as_deref())
    }

    /// The newer, still served version Azure moved the deployment to, when its `upgrade`
    /// setting lets Azure do that: policy, not drift.
    fn moved_by_azure<'a>(&self, observed: &'a Value) -> Option<&'a str> {
        let now = observed.pointer("/properties/model/version")?.as_str()?;
        let asked = self.version()?;
        let facts = self.facts.as_ref()?;
        let served = facts.retired.get(now) == Some(&false);
        (self.spec.upgrade.lets_azure_move() && served && newer(now, asked)).then_some(now)
    }
}

/// Versions are dates (`2024-07-18`) or numbers (`2`): numbers compare as numbers.
fn newer(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

impl Managed for ModelDeployment {
    fn address(&self) -> Address {
        Address::new(Kind::Deployment, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        let mut deps = vec![self.account.clone()];
        deps.extend(self.previous.clone());
        deps
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(self.id.clone())
    }

    fn desired(&self, _known: &Outputs) -> Value {
        let mut model = json!({"format": self.spec.model.format, "name": self.spec.model.name});
        if let Some(version) = self.version() {
            model["version"] = json!(version);
        }
        json!({
            "sku": {"name": self.spec.sku.name, "capacity": self.spec.sku.capacity},
            "properties": {
                "model": model,
                "versionUpgradeOption": self.spec.upgrade.option(),
            },
        })
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        let moved = self.moved_by_azure(observed).is_some();
        super::subset_diff(desired, observed)
            .into_iter()
            .filter(|c| !(moved && c.path == "properties.model.version"))
            .collect()
    }

    /// A retired version (or one the location does not offer) stops the plan before any write.
    fn absent_error(&self) -> Option<(String, String)> {
        self.facts.as_ref()?.error.clone()
    }

    /// The same, unless Azure already moved the deployment on to a served version.
    fn conflict(&self, observed: &Value) -> Option<(String, String)> {
        if self.moved_by_azure(observed).is_some() {
            return None;
        }
        self.absent_error()
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        let write = put_unless_converged(self, &self.id, observed, known)?;
        // Azure's move stays: a write carries the version Azure moved the deployment to.
        match (observed.and_then(|o| self.moved_by_azure(o)), write.body) {
            (Some(version), Some(mut body)) => {
                body["properties"]["model"]["version"] = json!(version);
                Some(WriteRequest::arm_put(write.path, body))
            }
            (_, body) => Some(WriteRequest { body, ..write }),
        }
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }

    fn findings(&self, observed: &Value, _known: &Outputs) -> Vec<Finding> {
        if let (Some(now), Some(asked)) = (self.moved_by_azure(observed), self.version()) {
            return vec![Finding {
                rule: "model-upgraded",
                message: format!(
                    "upgraded by Azure from {asked} to {now} (upgrade: {}); set `model.version: \
                     \"{now}\"` to record it",
                    self.spec.upgrade.name()
                ),
            }];
        }
        self.facts
            .as_ref()
            .map(|f| f.warnings.clone())
            .unwrap_or_default()
    }

    fn findings_when_absent(&self) -> Vec<Finding> {
        let Some(facts) = &self.facts else {
            return Vec::new();
        };
        facts
            .warnings
            .iter()
            .chain(&facts.closed)
            .cloned()
            .collect()
    }
}
