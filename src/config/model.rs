//! The environment file schema, as written by users. Every key is optional here because a parent
//! (`extends:`) may leave things for its children; `blueprint` decides what a target environment
//! must have. Unknown keys are errors (`deny_unknown_fields`) so a typo never silently falls back to
//! a default. `extends:` and `abstract:` are about the file itself; the loader takes them out first.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::azure::credential::AuthChoice;
use crate::cloud::Cloud;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub cloud: Option<Cloud>,
    pub tenant_id: Option<String>,
    pub subscription_id: Option<String>,
    pub location: Option<String>,
    pub resource_group: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub protected: Option<bool>,
    pub auth: Option<AuthChoice>,
    pub sandbox: Option<RawSandbox>,
    pub entra: Option<RawEntra>,
    pub foundry: Option<RawFoundry>,
    pub apim: Option<RawApim>,
    pub api: Option<RawApi>,
    pub policy: Option<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntra {
    pub api: Option<RawApiApp>,
    pub clients: Option<Vec<RawClientApp>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiApp {
    pub unique_name: Option<String>,
    pub display_name: Option<String>,
    pub scope: Option<String>,
    pub app_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientApp {
    pub unique_name: Option<String>,
    pub display_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub app_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFoundry {
    pub account: Option<String>,
    pub kind: Option<String>,
    pub sku: Option<String>,
    pub deployments: Option<Vec<RawDeployment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub name: Option<String>,
    pub model: Option<RawModel>,
    pub sku: Option<RawDeploymentSku>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: Option<String>,
    pub version: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploymentSku {
    pub name: Option<String>,
    pub capacity: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApim {
    pub existing: Option<RawApimExisting>,
    pub create: Option<RawApimCreate>,
    pub backend_id: Option<String>,
    #[serde(default)]
    pub named_values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApimExisting {
    pub name: Option<String>,
    pub resource_group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApimCreate {
    pub name: Option<String>,
    pub sku: Option<String>,
    pub capacity: Option<i64>,
    pub publisher_email: Option<String>,
    pub publisher_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub id: Option<String>,
    pub path: Option<String>,
    pub display_name: Option<String>,
    pub subscription_required: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub template: Option<String>,
    pub templates_dir: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, RawVar>,
}

/// A template variable as read. Scalars are typed later (`blueprint`), from the YAML node itself,
/// because only the node knows whether `true` was written plain (a boolean) or quoted (a string).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawVar {
    Scalar(String),
    List(Vec<String>),
}
