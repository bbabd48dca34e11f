//! Every resource `provision` manages, as data: where to read it, what it should look like, how it
//! differs from what was read, and the next request that brings it closer. Pure: no I/O, no
//! clock. The engine sends the requests and feeds the answers back.
//!
//! A resource converges step by step: [`Managed::next_write`] looks at what is observed now and
//! returns the one request that moves it on (or nothing when it is done). Multi-step resources —
//! an API app needs its own `appId` in its identifier URI, so it is created first and patched
//! second — are just resources whose next write changes after the first one lands. `plan` shows
//! the first step's changes; `up` runs steps until there are none.

pub mod apim;
pub mod diff;
pub mod entra;
pub mod federation;
pub mod fingerprint;
pub mod foundry;
pub mod models;
pub mod ownership;
pub mod preflight;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::access::Service;

pub use diff::{FieldChange, UNKNOWN, has_unknown, is_unknown, subset_diff, unknowns};

/// What a request does, and to which API. Graph upserts (`PATCH` with `Prefer:
/// create-if-missing`) are their own verb because they may be repeated safely and answer 201 or
/// 204.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    ArmPut,
    ArmPatch,
    ArmDelete,
    GraphUpsert,
    GraphPatch,
}

impl Verb {
    pub fn service(self) -> Service {
        match self {
            Verb::ArmPut | Verb::ArmPatch | Verb::ArmDelete => Service::Arm,
            Verb::GraphUpsert | Verb::GraphPatch => Service::Graph,
        }
    }
}

/// One write a resource needs, as data. `path` is an ARM id (the client adds the api-version)
/// or a Graph path under `/v1.0`.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    pub verb: Verb,
    pub path: String,
    pub body: Option<Value>,
}

impl WriteRequest {
    fn new(verb: Verb, path: impl Into<String>, body: Option<Value>) -> WriteRequest {
        WriteRequest {
            verb,
            path: path.into(),
            body,
        }
    }

    pub fn arm_put(path: impl Into<String>, body: Value) -> WriteRequest {
        WriteRequest::new(Verb::ArmPut, path, Some(body))
    }

    pub fn arm_patch(path: impl Into<String>, body: Value) -> WriteRequest {
        WriteRequest::new(Verb::ArmPatch, path, Some(body))
    }

    pub fn arm_delete(path: impl Into<String>) -> WriteRequest {
        WriteRequest::new(Verb::ArmDelete, path, None)
    }

    pub fn graph_upsert(path: impl Into<String>, body: Value) -> WriteRequest {
        WriteRequest::new(Verb::GraphUpsert, path, Some(body))
    }

    pub fn graph_patch(path: impl Into<String>, body: Value) -> WriteRequest {
        WriteRequest::new(Verb::GraphPatch, path, Some(body))
    }
}

/// The usual ARM convergence: PUT the whole desired body unless what is observed already has it
/// (ARM's PUT replaces the resource, so one request does any create or update).
pub fn put_unless_converged<M: Managed + ?Sized>(
    resource: &M,
    id: &str,
    observed: Option<&Value>,
    known: &Outputs,
) -> Option<WriteRequest> {
    let mut desired = resource.desired(known);
    if let Some(observed) = observed {
        keep_first_expiry(&mut desired, observed);
    }
    let failed = observed
        .and_then(|o| o.pointer("/properties/provisioningState"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("Failed"));
    match observed {
        // A resource whose last operation failed is written again, as the portal's "retry" does.
        Some(o) if !failed && resource.compare(o, &desired).is_empty() => None,
        _ => Some(WriteRequest::arm_put(
            id,
            with_their_tags(desired, observed),
        )),
    }
}

/// The expiry mark is written once, by the `up` that creates the resource: a later `up` keeps
/// the instant the resource already carries instead of moving it (which would also make every
/// run a change). ARM tags are an object, Graph tags a list of `name:value` strings.
pub fn keep_first_expiry(desired: &mut Value, observed: &Value) {
    use ownership::EXPIRES_TAG;
    match (desired.get_mut("tags"), observed.get("tags")) {
        (Some(Value::Object(ours)), Some(Value::Object(theirs))) => {
            if ours.contains_key(EXPIRES_TAG)
                && let Some(kept) = theirs.get(EXPIRES_TAG)
            {
                ours.insert(EXPIRES_TAG.to_owned(), kept.clone());
            }
        }
        (Some(Value::Array(ours)), Some(Value::Array(theirs))) => {
            let prefix = format!("{EXPIRES_TAG}:");
            let is_expiry = |v: &Value| v.as_str().is_some_and(|t| t.starts_with(&prefix));
            if let Some(kept) = theirs.iter().find(|v| is_expiry(v)).cloned()
                && let Some(slot) = ours.iter_mut().find(|v| is_expiry(v))
            {
                *slot = kept;
            }
        }
        _ => {}
    }
}

/// ARM's PUT replaces the tags whole: keep the tags someone else put on the resource, with ours
/// (and the environment's) on top.
fn with_their_tags(mut desired: Value, observed: Option<&Value>) -> Value {
    let theirs = observed
        .and_then(|o| o.get("tags"))
        .and_then(Value::as_object);
    if let (Some(theirs), Some(Value::Object(ours))) = (theirs, desired.get_mut("tags")) {
        for (k, v) in theirs {
            ours.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    desired
}

/// Where a resource is read from: one GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub service: Service,
    pub path: String,
}

/// The kinds, in the order plans list them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ApiApp,
    ApiServicePrincipal,
    ClientApp,
    ClientServicePrincipal,
    ApiPreAuthorization,
    ResourceGroup,
    Account,
    Deployment,
    ApimService,
    NamedValue,
    Backend,
    Api,
    Operation,
    Policy,
    RoleAssignment,
}

impl Kind {
    /// How plans and progress lines name the kind.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ApiApp => "entra api app",
            Kind::ApiServicePrincipal => "entra api service principal",
            Kind::ClientApp => "entra client app",
            Kind::ClientServicePrincipal => "entra client service principal",
            Kind::ApiPreAuthorization => "entra api pre-authorization",
            Kind::ResourceGroup => "resource group",
            Kind::Account => "foundry account",
            Kind::Deployment => "foundry deployment",
            Kind::ApimService => "apim service",
            Kind::NamedValue => "apim named value",
            Kind::Backend => "apim backend",
            Kind::Api => "apim api",
            Kind::Operation => "apim operation",
            Kind::Policy => "apim api policy",
            Kind::RoleAssignment => "role assignment",
        }
    }
}

/// A resource's identity in a plan: its kind and its name (unique per kind in an environment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Address {
    pub kind: Kind,
    pub name: String,
}

impl Address {
    pub fn new(kind: Kind, name: impl Into<String>) -> Address {
        Address {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.name)
    }
}

/// Values learnt from Azure that other resources need (`appId`, `principalId`, `endpoint`…),
/// by resource and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs(BTreeMap<(Address, &'static str), String>);

impl Outputs {
    pub fn set(&mut self, address: &Address, name: &'static str, value: impl Into<String>) {
        self.0.insert((address.clone(), name), value.into());
    }

    pub fn get(&self, address: &Address, name: &'static str) -> Option<&str> {
        self.0.get(&(address.clone(), name)).map(String::as_str)
    }

    /// The value, or [`UNKNOWN`] for the plan to show as `(known after apply)`.
    pub fn or_unknown(&self, address: &Address, name: &'static str) -> String {
        self.get(address, name).unwrap_or(UNKNOWN).to_owned()
    }

    pub fn merge(&mut self, other: Outputs) {
        self.0.extend(other.0);
    }
}

/// Something a plan should point out whether or not it changes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// A stable identifier (`local-auth-enabled`…).
    pub rule: &'static str,
    pub message: String,
}

/// What a resource needs to reach its desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create,
    Update(Vec<FieldChange>),
    /// Azure forbids changing this in place; the resource is deleted and created again.
    Replace {
        reason: String,
    },
    /// Ours by its marks and no longer in the environment file: `up` deletes it once what the
    /// file names has converged.
    Delete {
        reason: String,
    },
    NoOp,
}

/// One managed resource. Implementations are pure; `known` carries outputs of resources applied
/// (or observed) before this one.
pub trait Managed: Send + Sync {
    fn address(&self) -> Address;

    /// Resources whose outputs this one needs, or that must exist first.
    fn depends_on(&self) -> Vec<Address>;

    /// The GET that observes it, or `None` when its identity is not known yet (the service
    /// principal of an app that does not exist yet does not exist either).
    fn read(&self, known: &Outputs) -> Option<Read>;

    /// The desired state, as the JSON the service shows; unknown values are [`UNKNOWN`].
    fn desired(&self, known: &Outputs) -> Value;

    /// How `observed` differs from `desired`. The default compares every field the desired state
    /// names and ignores the rest (server-side fields).
    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        subset_diff(desired, observed)
    }

    /// A reason Azure forbids changing `observed` into `desired` in place.
    fn replace_reason(&self, _observed: &Value, _desired: &Value) -> Option<String> {
        None
    }

    /// The request that moves it on, or `None` when `observed` is as desired.
    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest>;

    /// Outputs readable from the observed (or written) resource.
    fn outputs(&self, observed: &Value) -> Outputs;

    /// An error to stop the plan with when what exists can not become what is desired and must
    /// not be deleted for it (the message and the hint).
    fn conflict(&self, _observed: &Value) -> Option<(String, String)> {
        None
    }

    /// An error to stop the plan with when the resource is absent and can not be created here
    /// (an existing gateway that is not there): the message and the hint.
    fn absent_error(&self) -> Option<(String, String)> {
        None
    }

    /// An error code that, answered to this resource's write, means its purpose is already
    /// served, so the resource counts as converged.
    fn satisfied_by_error(&self) -> Option<&'static str> {
        None
    }

    /// Where a soft-deleted copy would be that keeps the name taken while the resource is
    /// absent (a deleted Cognitive Services account holds its name for 48 hours).
    fn tombstone(&self) -> Option<Read> {
        None
    }

    /// Security findings about what is observed (`known`: outputs of the rest, such as app ids).
    fn findings(&self, _observed: &Value, _known: &Outputs) -> Vec<Finding> {
        Vec::new()
    }

    /// What a plan should point out about a resource that does not exist yet (a model version
    /// that retires soon).
    fn findings_when_absent(&self) -> Vec<Finding> {
        Vec::new()
    }

    /// The change a plan shows.
    fn change(&self, observed: Option<&Value>, known: &Outputs) -> Change {
        let Some(observed) = observed else {
            return Change::Create;
        };
        let mut desired = self.desired(known);
        keep_first_expiry(&mut desired, observed);
        if let Some(reason) = self.replace_reason(observed, &desired) {
            return Change::Replace { reason };
        }
        let changes = self.compare(observed, &desired);
        if changes.is_empty() && self.next_write(Some(observed), known).is_none() {
            Change::NoOp
        } else {
            Change::Update(changes)
        }
    }
}

/// Every resource of an environment, dependencies before dependents.
pub fn inventory(
    blueprint: std::sync::Arc<crate::config::Blueprint>,
    templates: std::sync::Arc<crate::render::TemplateSet>,
    models: &BTreeMap<String, models::ModelFacts>,
) -> Vec<Box<dyn Managed>> {
    let b = &*blueprint;
    let mut all: Vec<Box<dyn Managed>> = vec![
        Box::new(entra::ApiApp::new(b)),
        Box::new(entra::ServicePrincipal::of_api(b)),
    ];
    for client in entra::ClientApp::all(b) {
        all.push(Box::new(client));
    }
    for spec in &b.entra.clients {
        all.push(Box::new(entra::ServicePrincipal::of_client(spec)));
    }
    all.push(Box::new(entra::PreAuthorization::new(b)));
    all.push(Box::new(foundry::ResourceGroup::new(b)));
    all.push(Box::new(foundry::Account::new(b)));
    for deployment in foundry::ModelDeployment::all(b, models) {
        all.push(Box::new(deployment));
    }
    all.push(Box::new(apim::ApimService::new(b)));
    for value in apim::NamedValue::all(b) {
        all.push(Box::new(value));
    }
    all.push(Box::new(apim::Backend::new(b)));
    all.push(Box::new(apim::Api::new(b)));
    for operation in apim::Operation::all(b) {
        all.push(Box::new(operation));
    }
    all.push(Box::new(apim::Policy::new(blueprint.clone(), templates)));
    all.push(Box::new(apim::RoleAssignment::new(b)));
    all
}

/// A GUID that is the same on every run for the same `parts` (a scope id, a role assignment
/// name): SHA-256 of the parts, shaped as an RFC 9562 version 8 UUID. What lets a re-run find what
/// an earlier run made, with no state file.
pub fn stable_guid(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

#[cfg(test)]
mod tests;
