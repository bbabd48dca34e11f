//! The gateway side: the API Management service (existing, or created for a demo environment),
//! named values, the backend that points at the Foundry account, the API with its operations,
//! the API policy, and the role assignment that lets the gateway's identity call the model.

use std::sync::Arc;

use serde_json::{Value, json};

use super::entra::{APP_ID, ApiApp, ClientApp};
use super::foundry::{self, Account, ENDPOINT, RESOURCE_ID};
use super::{
    Address, FieldChange, Finding, Kind, Managed, Outputs, Read, UNKNOWN, WriteRequest,
    has_unknown, put_unless_converged, stable_guid,
};
use crate::access::Service;
use crate::config::{ApimService as ServiceSpec, Blueprint, Guid};
use crate::policy::{Change as PolicyChange, Document, diff as policy_diff};
use crate::render::{self, ResolvedAppIds, TemplateSet};

/// Outputs of the service.
pub const PRINCIPAL_ID: &str = "principalId";
pub const GATEWAY_URL: &str = "gatewayUrl";

/// "Cognitive Services OpenAI User": call deployments, nothing else (no keys, no management).
pub const OPENAI_USER_ROLE: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

fn arm_read(path: &str) -> Option<Read> {
    Some(Read {
        service: Service::Arm,
        path: path.to_owned(),
    })
}

pub fn service_id(blueprint: &Blueprint) -> String {
    let group = match &blueprint.apim.service {
        ServiceSpec::Existing { resource_group, .. } => resource_group.as_str(),
        ServiceSpec::Create { .. } => blueprint.resource_group.as_str(),
    };
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ApiManagement/service/{}",
        blueprint.subscription_id,
        blueprint.apim.service.name()
    )
}

fn api_id(blueprint: &Blueprint) -> String {
    format!("{}/apis/{}", service_id(blueprint), blueprint.api.id)
}

/// Whether an identity `type` (`SystemAssigned`, `SystemAssigned, UserAssigned`…) includes the
/// system-assigned identity.
fn has_system_identity(observed: &Value) -> bool {
    observed
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.to_ascii_lowercase().contains("systemassigned"))
}

/// The API Management service.
pub struct ApimService {
    id: String,
    spec: ServiceSpec,
    group: Address,
    location: String,
    tags: Value,
}

impl ApimService {
    pub fn new(blueprint: &Blueprint) -> ApimService {
        ApimService {
            id: service_id(blueprint),
            spec: blueprint.apim.service.clone(),
            group: foundry::ResourceGroup::address_of(blueprint),
            location: blueprint.location.clone(),
            tags: foundry::tags(blueprint),
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::ApimService, blueprint.apim.service.name())
    }
}

impl Managed for ApimService {
    fn address(&self) -> Address {
        Address::new(Kind::ApimService, self.spec.name())
    }

    fn depends_on(&self) -> Vec<Address> {
        match self.spec {
            ServiceSpec::Existing { .. } => Vec::new(),
            ServiceSpec::Create { .. } => vec![self.group.clone()],
        }
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, _known: &Outputs) -> Value {
        match &self.spec {
            ServiceSpec::Existing { .. } => json!({"identity": {"type": "SystemAssigned"}}),
            ServiceSpec::Create {
                sku,
                capacity,
                publisher_email,
                publisher_name,
                ..
            } => json!({
                "location": self.location,
                "sku": {"name": sku, "capacity": capacity},
                "identity": {"type": "SystemAssigned"},
                "tags": self.tags,
                "properties": {"publisherEmail": publisher_email, "publisherName": publisher_name},
            }),
        }
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        let mut changes: Vec<FieldChange> = super::subset_diff(desired, observed)
            .into_iter()
            .filter(|c| c.path != "identity.type" && c.path != "location")
            .collect();
        if !has_system_identity(observed) {
            changes.push(FieldChange {
                path: "identity.type".into(),
                old: observed.pointer("/identity/type").cloned(),
                new: Some(json!("SystemAssigned")),
            });
        }
        changes
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        match &self.spec {
            ServiceSpec::Create { .. } => put_unless_converged(self, &self.id, observed, known),
            ServiceSpec::Existing { .. } => {
                let observed = observed?;
                if has_system_identity(observed) {
                    return None;
                }
                // Keep a user-assigned identity the gateway already has.
                let current = observed
                    .pointer("/identity/type")
                    .and_then(Value::as_str)
                    .unwrap_or("None");
                let kind = if current.to_ascii_lowercase().contains("userassigned") {
                    "SystemAssigned, UserAssigned"
                } else {
                    "SystemAssigned"
                };
                Some(WriteRequest::arm_patch(
                    &self.id,
                    json!({"identity": {"type": kind}}),
                ))
            }
        }
    }

    fn outputs(&self, observed: &Value) -> Outputs {
        let mut outputs = Outputs::default();
        let me = self.address();
        if let Some(p) = observed
            .pointer("/identity/principalId")
            .and_then(Value::as_str)
        {
            outputs.set(&me, PRINCIPAL_ID, p);
        }
        if let Some(g) = observed
            .pointer("/properties/gatewayUrl")
            .and_then(Value::as_str)
        {
            outputs.set(&me, GATEWAY_URL, g);
        }
        outputs.set(&me, RESOURCE_ID, self.id.clone());
        outputs
    }

    fn absent_error(&self) -> Option<(String, String)> {
        match &self.spec {
            ServiceSpec::Existing {
                name,
                resource_group,
            } => Some((
                format!(
                    "the API Management service {name} in resource group {resource_group} does not \
                     exist (apim.existing)"
                ),
                "provision adds its API to an existing gateway: check apim.existing.name and \
                 resource_group, or use apim.create for a gateway of this environment's own"
                    .to_owned(),
            )),
            ServiceSpec::Create { .. } => None,
        }
    }
}

/// A plain (non-secret) named value the policy may reference as `{{name}}`.
pub struct NamedValue {
    id: String,
    name: String,
    value: String,
    service: Address,
}

impl NamedValue {
    pub fn all(blueprint: &Blueprint) -> Vec<NamedValue> {
        blueprint
            .apim
            .named_values
            .iter()
            .map(|(name, value)| NamedValue {
                id: format!("{}/namedValues/{name}", service_id(blueprint)),
                name: name.clone(),
                value: value.clone(),
                service: ApimService::address_of(blueprint),
            })
            .collect()
    }
}

impl Managed for NamedValue {
    fn address(&self) -> Address {
        Address::new(Kind::NamedValue, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.service.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, _known: &Outputs) -> Value {
        json!({"properties": {"displayName": self.name, "value": self.value, "secret": false}})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}

/// The backend entity the policy routes to: the account's OpenAI endpoint, read from the account,
/// never built from its name.
pub struct Backend {
    id: String,
    name: String,
    service: Address,
    account: Address,
}

impl Backend {
    pub fn new(blueprint: &Blueprint) -> Backend {
        Backend {
            id: format!(
                "{}/backends/{}",
                service_id(blueprint),
                blueprint.apim.backend_id
            ),
            name: blueprint.apim.backend_id.clone(),
            service: ApimService::address_of(blueprint),
            account: Account::address_of(blueprint),
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::Backend, blueprint.apim.backend_id.clone())
    }
}

impl Managed for Backend {
    fn address(&self) -> Address {
        Address::new(Kind::Backend, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.service.clone(), self.account.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, known: &Outputs) -> Value {
        let url = match known.get(&self.account, ENDPOINT) {
            Some(endpoint) => format!("{}/openai", endpoint.trim_end_matches('/')),
            None => format!("{UNKNOWN}/openai"),
        };
        json!({"properties": {
            "url": url,
            "protocol": "http",
            "description": format!("Foundry account {} (managed by provision)", self.account.name),
        }})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}

/// The API: its path on the gateway, and whether a subscription key is also required.
pub struct Api {
    id: String,
    name: String,
    service: Address,
    display_name: String,
    path: String,
    subscription_required: bool,
}

impl Api {
    pub fn new(blueprint: &Blueprint) -> Api {
        Api {
            id: api_id(blueprint),
            name: blueprint.api.id.clone(),
            service: ApimService::address_of(blueprint),
            display_name: blueprint.api.display_name.clone(),
            path: blueprint.api.path.clone(),
            subscription_required: blueprint.api.subscription_required,
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::Api, blueprint.api.id.clone())
    }
}

impl Managed for Api {
    fn address(&self) -> Address {
        Address::new(Kind::Api, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.service.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, _known: &Outputs) -> Value {
        json!({"properties": {
            "displayName": self.display_name,
            "path": self.path,
            "protocols": ["https"],
            "subscriptionRequired": self.subscription_required,
        }})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}

/// The operations the API exposes: Azure OpenAI's chat completions and embeddings (by
/// deployment) and the Responses API.
const OPERATIONS: [(&str, &str, &str); 3] = [
    (
        "chat-completions",
        "Chat completions",
        "/deployments/{deployment-id}/chat/completions",
    ),
    (
        "embeddings",
        "Embeddings",
        "/deployments/{deployment-id}/embeddings",
    ),
    ("responses", "Responses", "/responses"),
];

pub struct Operation {
    id: String,
    name: String,
    api: Address,
    display_name: &'static str,
    url_template: &'static str,
}

impl Operation {
    pub fn all(blueprint: &Blueprint) -> Vec<Operation> {
        OPERATIONS
            .iter()
            .map(|(op, display_name, url_template)| Operation {
                id: format!("{}/operations/{op}", api_id(blueprint)),
                name: format!("{}/{op}", blueprint.api.id),
                api: Api::address_of(blueprint),
                display_name,
                url_template,
            })
            .collect()
    }
}

impl Managed for Operation {
    fn address(&self) -> Address {
        Address::new(Kind::Operation, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.api.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, _known: &Outputs) -> Value {
        let parameters: Vec<Value> = self
            .url_template
            .contains("{deployment-id}")
            .then(|| json!({"name": "deployment-id", "type": "string", "required": true}))
            .into_iter()
            .collect();
        json!({"properties": {
            "displayName": self.display_name,
            "method": "POST",
            "urlTemplate": self.url_template,
            "templateParameters": parameters,
        }})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}

/// The API policy, rendered with the real app ids and compared by meaning: APIM re-serialises
/// what it stores, so bytes never match and only the canonical diff counts.
pub struct Policy {
    id: String,
    name: String,
    api: Address,
    api_app: Address,
    clients: Vec<Address>,
    after: Vec<Address>,
    blueprint: Arc<Blueprint>,
    templates: Arc<TemplateSet>,
}

impl Policy {
    pub fn new(blueprint: Arc<Blueprint>, templates: Arc<TemplateSet>) -> Policy {
        let mut after = vec![Backend::address_of(&blueprint)];
        after.extend(
            blueprint
                .apim
                .named_values
                .keys()
                .map(|n| Address::new(Kind::NamedValue, n.clone())),
        );
        Policy {
            id: format!("{}/policies/policy", api_id(&blueprint)),
            name: blueprint.api.id.clone(),
            api: Api::address_of(&blueprint),
            api_app: ApiApp::address_of(&blueprint),
            clients: blueprint
                .entra
                .clients
                .iter()
                .map(ClientApp::address_of)
                .collect(),
            after,
            blueprint,
            templates,
        }
    }

    /// The app ids, if every app's is known.
    fn app_ids(&self, known: &Outputs) -> Option<ResolvedAppIds> {
        let guid = |a: &Address| known.get(a, APP_ID).and_then(|id| Guid::parse(id).ok());
        Some(ResolvedAppIds {
            api: guid(&self.api_app)?,
            clients: self.clients.iter().map(guid).collect::<Option<_>>()?,
        })
    }

    fn xml(&self, known: &Outputs) -> String {
        match self.app_ids(known) {
            Some(ids) => match render::render(&self.blueprint, &self.templates, &ids) {
                Ok(policy) => policy.xml().to_owned(),
                Err(e) => format!("{UNKNOWN} (the policy does not render: {e})"),
            },
            None => UNKNOWN.to_owned(),
        }
    }
}

impl Managed for Policy {
    fn address(&self) -> Address {
        Address::new(Kind::Policy, self.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        let mut deps = vec![self.api.clone(), self.api_app.clone()];
        deps.extend(self.clients.iter().cloned());
        deps.extend(self.after.iter().cloned());
        deps
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, known: &Outputs) -> Value {
        json!({"properties": {"format": "rawxml", "value": self.xml(known)}})
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        let new = desired
            .pointer("/properties/value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let old = observed
            .pointer("/properties/value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let whole = || {
            vec![FieldChange {
                path: "properties.value".into(),
                old: Some(json!(old)),
                new: Some(json!(new)),
            }]
        };
        let (Ok(old_doc), Ok(new_doc)) = (Document::parse(old), Document::parse(new)) else {
            return whole();
        };
        policy_diff(&old_doc, &new_doc)
            .into_iter()
            .map(|d| {
                let (old, new) = match d.change {
                    PolicyChange::Added(v) => (None, Some(json!(v))),
                    PolicyChange::Removed(v) => (Some(json!(v)), None),
                    PolicyChange::Changed { old, new } => (Some(json!(old)), Some(json!(new))),
                };
                FieldChange {
                    path: format!("policy {}", d.path),
                    old,
                    new,
                }
            })
            .collect()
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        let desired = self.desired(known);
        if has_unknown(&desired) {
            return None;
        }
        match observed {
            Some(o) if self.compare(o, &desired).is_empty() => None,
            _ => Some(WriteRequest::arm_put(&self.id, desired)),
        }
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }

    fn findings(&self, observed: &Value, known: &Outputs) -> Vec<Finding> {
        let xml = observed
            .pointer("/properties/value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !(xml.contains("validate-azure-ad-token") || xml.contains("validate-jwt")) {
            return vec![Finding {
                rule: "no-token-check",
                message:
                    "checks no token (no validate-azure-ad-token or validate-jwt): anyone who \
                          can reach the gateway can call the model"
                        .to_owned(),
            }];
        }
        // Each registered client's app id must be among the allowed ones; one that is not can
        // not call the API, and usually means the policy pins an app from somewhere else.
        let lower = xml.to_ascii_lowercase();
        self.clients
            .iter()
            .filter_map(|client| {
                let app_id = known.get(client, APP_ID)?;
                (!lower.contains(&app_id.to_ascii_lowercase())).then(|| Finding {
                    rule: "client-not-pinned",
                    message: format!(
                        "does not allow client app {} ({app_id}): its tokens are refused",
                        client.name
                    ),
                })
            })
            .collect()
    }
}

/// The gateway's identity may call the account's deployments. The assignment's name is derived
/// from the account, the role and the gateway, so a re-run finds it instead of making another.
pub struct RoleAssignment {
    id: String,
    role_definition_id: String,
    account: Address,
    service: Address,
}

impl RoleAssignment {
    pub fn new(blueprint: &Blueprint) -> RoleAssignment {
        let scope = foundry::account_id(blueprint);
        let name = stable_guid(&[
            "roleAssignment",
            &scope.to_ascii_lowercase(),
            OPENAI_USER_ROLE,
            &service_id(blueprint).to_ascii_lowercase(),
        ]);
        RoleAssignment {
            id: format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            role_definition_id: format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER_ROLE}",
                blueprint.subscription_id
            ),
            account: Account::address_of(blueprint),
            service: ApimService::address_of(blueprint),
        }
    }
}

impl Managed for RoleAssignment {
    fn address(&self) -> Address {
        Address::new(
            Kind::RoleAssignment,
            format!("{} → {}", self.service.name, self.account.name),
        )
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.account.clone(), self.service.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        arm_read(&self.id)
    }

    fn desired(&self, known: &Outputs) -> Value {
        json!({"properties": {
            "roleDefinitionId": self.role_definition_id,
            "principalId": known.or_unknown(&self.service, PRINCIPAL_ID),
            "principalType": "ServicePrincipal",
        }})
    }

    fn compare(&self, observed: &Value, desired: &Value) -> Vec<FieldChange> {
        // ARM answers ids in its own casing, and a role definition id in more than one form
        // (`/subscriptions/{s}/providers/…/roleDefinitions/{guid}` or `/providers/…/{guid}`):
        // what identifies the role is the GUID at the end.
        let last = |v: &str| v.rsplit('/').next().unwrap_or(v).to_ascii_lowercase();
        super::subset_diff(desired, observed)
            .into_iter()
            .filter(|c| {
                !matches!((&c.old, &c.new), (Some(Value::String(a)), Some(Value::String(b)))
                    if a.eq_ignore_ascii_case(b)
                        || (c.path == "properties.roleDefinitionId" && last(a) == last(b)))
            })
            .collect()
    }

    /// The same (scope, role, principal) granted under a name provision did not choose (by hand,
    /// or by another tool): the access is in place.
    fn satisfied_by_error(&self) -> Option<&'static str> {
        Some("RoleAssignmentExists")
    }

    fn replace_reason(&self, observed: &Value, desired: &Value) -> Option<String> {
        let have = observed.pointer("/properties/principalId")?.as_str()?;
        let want = desired.pointer("/properties/principalId")?.as_str()?;
        (want != UNKNOWN && !have.eq_ignore_ascii_case(want)).then(|| {
            format!(
                "the assignment is for principal {have}, and an assignment can not change its \
                 principal (the gateway's identity is now {want})"
            )
        })
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        put_unless_converged(self, &self.id, observed, known)
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}
