//! One APIM service as its gateway needs it, copied out of the ARM state per request: its APIs
//! and operations in the shape [`routes::route`] takes, the raw text of its policies, its
//! backends' URLs, its named values and its system-assigned identity. Copying (rather than
//! holding the state's lock) lets the gateway call its backend without blocking ARM, and a
//! policy written through ARM takes effect on the very next request, as the real gateway's
//! does once the write has returned.

use std::collections::BTreeMap;

use serde_json::Value;

use super::routes::{Api, Operation};
use crate::sandbox::state::State;
use crate::sandbox::state::arm::Resource;

const PROVIDER: &str = "/providers/microsoft.apimanagement/service/";

pub(super) struct Service {
    /// The system-assigned identity's principal id, when the service has one.
    pub principal_id: Option<String>,
    pub apis: Vec<Api>,
    /// The raw XML of the service-level (global) policy, if any.
    pub global_policy: Option<String>,
    /// API policies by API id, lower case.
    api_policies: BTreeMap<String, String>,
    /// Operation policies by (API id, operation id), lower case.
    operation_policies: BTreeMap<(String, String), String>,
    /// Backend URLs by backend id, lower case.
    backends: BTreeMap<String, String>,
    /// Backend URL of each API without `set-backend-service` (its `serviceUrl`), by API id.
    service_urls: BTreeMap<String, String>,
    pub named_values: BTreeMap<String, String>,
}

fn name_of(resource: &Resource) -> String {
    resource
        .id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The policy's text as it was written (`_sandbox.raw` keeps it; `properties.value` is the
/// XML-escaped form GET shows).
fn policy_text(resource: &Resource) -> Option<String> {
    resource
        .body
        .get("_sandbox")
        .and_then(|p| p.get("raw"))
        .or_else(|| resource.properties().and_then(|p| p.get("value")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn policy_of(state: &State, parent: &str) -> Option<String> {
    state
        .arm
        .children(parent, "policies")
        .find(|r| name_of(r).eq_ignore_ascii_case("policy"))
        .and_then(policy_text)
}

impl Service {
    /// The service whose name is `name` (any resource group, any subscription; names are global
    /// because the gateway's host name is).
    pub fn load(state: &State, name: &str) -> Option<Service> {
        let suffix = format!("{PROVIDER}{}", name.to_ascii_lowercase());
        let service = state
            .arm
            .resources
            .iter()
            .find(|(key, _)| key.ends_with(&suffix))
            .map(|(_, r)| r)?;
        let id = service.id.clone();
        let principal_id = service
            .body
            .get("identity")
            .and_then(|i| i.get("principalId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut apis = Vec::new();
        let mut api_policies = BTreeMap::new();
        let mut operation_policies = BTreeMap::new();
        let mut service_urls = BTreeMap::new();
        for api in state.arm.children(&id, "apis") {
            let api_name = name_of(api);
            let key = api_name.to_ascii_lowercase();
            let props = api.properties();
            let text = |field: &str| {
                props
                    .and_then(|p| p.get(field))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let protocols = props
                .and_then(|p| p.get("protocols"))
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_else(|| vec!["https".to_owned()]);
            let mut operations = Vec::new();
            for op in state.arm.children(&api.id, "operations") {
                let op_name = name_of(op);
                let field = |f: &str| op.property_str(f).unwrap_or_default().to_owned();
                operations.push(Operation {
                    id: op_name.clone(),
                    method: field("method"),
                    url_template: field("urlTemplate"),
                });
                if let Some(policy) = policy_of(state, &op.id) {
                    operation_policies.insert((key.clone(), op_name.to_ascii_lowercase()), policy);
                }
            }
            if let Some(policy) = policy_of(state, &api.id) {
                api_policies.insert(key.clone(), policy);
            }
            let service_url = text("serviceUrl");
            if !service_url.is_empty() {
                service_urls.insert(key.clone(), service_url);
            }
            apis.push(Api {
                id: api_name,
                path: text("path"),
                protocols,
                operations,
            });
        }
        let backends = state
            .arm
            .children(&id, "backends")
            .filter_map(|b| {
                let url = b.property_str("url")?.to_owned();
                Some((name_of(b).to_ascii_lowercase(), url))
            })
            .collect();
        let mut named_values = BTreeMap::new();
        for nv in state.arm.children(&id, "namedValues") {
            // A Key Vault named value has no value the sandbox could resolve: left out, so a
            // policy using it is reported as not simulated rather than given a made-up value.
            let Some(value) = nv.property_str("value") else {
                continue;
            };
            named_values.insert(name_of(nv), value.to_owned());
            if let Some(display) = nv.property_str("displayName") {
                named_values.insert(display.to_owned(), value.to_owned());
            }
        }
        Some(Service {
            global_policy: policy_of(state, &id),
            principal_id,
            apis,
            api_policies,
            operation_policies,
            backends,
            service_urls,
            named_values,
        })
    }

    pub fn api_policy(&self, api: &str) -> Option<&str> {
        self.api_policies
            .get(&api.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn operation_policy(&self, api: &str, operation: &str) -> Option<&str> {
        self.operation_policies
            .get(&(api.to_ascii_lowercase(), operation.to_ascii_lowercase()))
            .map(String::as_str)
    }

    pub fn backend_url(&self, backend: &str) -> Option<&str> {
        self.backends
            .get(&backend.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn service_url(&self, api: &str) -> Option<&str> {
        self.service_urls
            .get(&api.to_ascii_lowercase())
            .map(String::as_str)
    }
}
