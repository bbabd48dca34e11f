//! The environment file schema, as written by users. Every key is optional here because a parent
//! (`extends:`) may leave things for its children; `blueprint` decides what a target environment
//! must have. Unknown keys are errors (`deny_unknown_fields`) so a typo never silently falls back to
//! a default. `extends:` and `abstract:` are about the file itself; the loader takes them out first.
//!
//! The same types generate the environment file's JSON Schema (`provision schema`), so the doc
//! comments on fields are written for the people editing environment files: editors show them as
//! the keys' descriptions. A key documented here and accepted by the loader cannot disagree.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::access::AuthChoice;
use crate::cloud::Cloud;

/// An environment of `provision`: one Entra ID + API Management + Azure AI Foundry deployment.
/// Keys may be left to a parent named by `extends:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Environment")]
pub struct RawEnvironment {
    /// The Azure cloud: public, usgov (Azure Government), china (21Vianet) or sandbox (the local
    /// emulator that ships with provision).
    #[schemars(with = "Option<CloudName>")]
    pub cloud: Option<Cloud>,
    /// The Entra ID tenant (a GUID): tokens from any other tenant are refused by the policy.
    pub tenant_id: Option<String>,
    /// The Azure subscription (a GUID) that holds the resource group.
    pub subscription_id: Option<String>,
    /// The Azure region of the resource group and the Foundry account, e.g. swedencentral.
    pub location: Option<String>,
    /// The resource group of the Foundry account (and of a created API Management service).
    pub resource_group: Option<String>,
    /// Tags on every resource that has tags; provision sets managed-by and provision-env itself.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Destructive commands on a protected environment need --force, and `up` asks first.
    pub protected: Option<bool>,
    /// A demo environment's lifetime (e.g. 8h, 2d): `up` marks what it creates with the instant
    /// it expires (tag provision-expires), and `down --expired` tears it down once that has
    /// passed. Not with protected: protected environments never expire.
    pub lifetime: Option<String>,
    /// How to sign in unless --auth says otherwise: auto (default), cli, workload-identity,
    /// managed-identity, client-secret, github-oidc, or sandbox (cloud: sandbox only).
    #[schemars(with = "Option<AuthName>")]
    pub auth: Option<AuthChoice>,
    /// The local sandbox (cloud: sandbox only).
    pub sandbox: Option<RawSandbox>,
    /// The Entra ID app registrations: the API and its client apps.
    pub entra: Option<RawEntra>,
    /// The Azure AI Foundry account and its model deployments.
    pub foundry: Option<RawFoundry>,
    /// The API Management service in front of the model.
    pub apim: Option<RawApim>,
    /// The API in API Management.
    pub api: Option<RawApi>,
    /// The API's policy, rendered from a template.
    pub policy: Option<RawPolicy>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Sandbox")]
pub struct RawSandbox {
    /// Loopback host:port the sandbox listens on (default 127.0.0.1:7171).
    pub address: Option<String>,
    /// The sandbox at `address` serves HTTPS (`provision sandbox serve --tls`); `ca_file` says
    /// which certificate to trust. Default false: plain HTTP.
    pub tls: Option<bool>,
    /// With `tls: true`: the PEM certificate the sandbox serves (`sandbox-cert.pem` in its
    /// `--state` directory), trusted for this sandbox besides the platform's roots. A relative
    /// path is read from the current directory, as `--state` is.
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Entra")]
pub struct RawEntra {
    /// The app registration that represents the API (the audience of the tokens).
    pub api: Option<RawApiApp>,
    /// The client apps allowed to call the API; the policy pins their app ids.
    pub clients: Option<Vec<RawClientApp>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ApiApp")]
pub struct RawApiApp {
    /// The app registration's uniqueName: how provision finds it again.
    pub unique_name: Option<String>,
    /// The name shown in the Entra admin center (default: unique_name).
    pub display_name: Option<String>,
    /// The delegated scope clients request (default llm.invoke).
    pub scope: Option<String>,
    /// The app id (a GUID), for an app that already exists; otherwise learnt from Microsoft Graph.
    pub app_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClientApp")]
pub struct RawClientApp {
    /// The app registration's uniqueName: how provision finds it again.
    pub unique_name: Option<String>,
    /// The name shown in the Entra admin center (default: unique_name).
    pub display_name: Option<String>,
    /// Redirect URIs of the public client (default [http://localhost]); http for loopback only.
    pub redirect_uris: Option<Vec<String>>,
    /// The app id (a GUID), for an app that already exists; otherwise learnt from Microsoft Graph.
    pub app_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Foundry")]
pub struct RawFoundry {
    /// The account name, also its custom subdomain.
    pub account: Option<String>,
    /// The account kind (default AIServices).
    pub kind: Option<String>,
    /// The account SKU (default S0).
    pub sku: Option<String>,
    /// The model deployments (at least one).
    pub deployments: Option<Vec<RawDeployment>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Deployment")]
pub struct RawDeployment {
    /// The deployment name, used in request paths.
    pub name: Option<String>,
    /// The model deployed.
    pub model: Option<RawModel>,
    /// The deployment SKU and capacity.
    pub sku: Option<RawDeploymentSku>,
    /// How the deployment follows new model versions: on-expiry (default: keep the version until
    /// Azure retires it, then move to the default one), when-default-changes, or never.
    pub upgrade: Option<super::Upgrade>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Model")]
pub struct RawModel {
    /// The model name, e.g. gpt-4o-mini.
    pub name: Option<String>,
    /// The model version; quote dates ("2024-07-18"). Omitted or `default`: the location's
    /// default version, resolved from Azure's model catalog at plan time.
    pub version: Option<String>,
    /// The model format (default OpenAI).
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DeploymentSku")]
pub struct RawDeploymentSku {
    /// The SKU, e.g. GlobalStandard.
    pub name: Option<String>,
    /// Capacity, in thousands of tokens per minute for Standard and GlobalStandard (at least 1).
    pub capacity: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Apim")]
pub struct RawApim {
    /// A shared API Management service that provision only adds the API to.
    pub existing: Option<RawApimExisting>,
    /// An API Management service created for this environment (demo environments).
    pub create: Option<RawApimCreate>,
    /// The backend entity that points at the Foundry account (default foundry).
    pub backend_id: Option<String>,
    /// Named values to create in API Management (not secrets).
    #[serde(default)]
    pub named_values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ApimExisting")]
pub struct RawApimExisting {
    /// The service name.
    pub name: Option<String>,
    /// The service's resource group.
    pub resource_group: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ApimCreate")]
pub struct RawApimCreate {
    /// The service name (globally unique: it is a host name).
    pub name: Option<String>,
    /// The tier (default Developer): Developer, Basic, Standard, Premium, Consumption, BasicV2,
    /// StandardV2 or PremiumV2.
    pub sku: Option<String>,
    /// Scale units (default 1; 0 for Consumption).
    pub capacity: Option<i64>,
    /// The publisher's e-mail address (required by Azure).
    pub publisher_email: Option<String>,
    /// The publisher's name (default provision).
    pub publisher_name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Api")]
pub struct RawApi {
    /// The API id in API Management.
    pub id: Option<String>,
    /// The URL path suffix of the API on the gateway.
    pub path: Option<String>,
    /// The name shown in the Azure portal (default: id).
    pub display_name: Option<String>,
    /// Whether callers also need an API Management subscription key (default false).
    pub subscription_required: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Policy")]
pub struct RawPolicy {
    /// The policy template, templates/policies/<template>.xml.tera (default llm-api).
    pub template: Option<String>,
    /// This environment's own template directory, relative to the working directory.
    pub templates_dir: Option<String>,
    /// Values of the variables the template declares (templates/policies/<template>.vars.yaml).
    #[serde(default)]
    pub vars: BTreeMap<String, RawVar>,
}

/// A template variable as read. Scalars are typed later (`blueprint`), from the YAML node itself,
/// because only the node knows whether `true` was written plain (a boolean) or quoted (a string).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawVar {
    Scalar(String),
    List(Vec<String>),
}

/// How a [`Cloud`] is written, for the schema: from the list the loader accepts, so the two agree
/// without the cloud table knowing about schemas.
struct CloudName;

impl JsonSchema for CloudName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cloud".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Cloud::ALL.iter().map(|c| c.name()).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

/// How an [`AuthChoice`] is written, for the schema (as [`CloudName`]).
struct AuthName;

impl JsonSchema for AuthName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Auth".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = AuthChoice::ALL.iter().map(|a| a.name()).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

/// The JSON Schema of an environment file, with `policy.vars` described by `vars` (the properties
/// of the declared template variables; only declared names are allowed). Draft 7, which every
/// YAML-aware editor understands.
pub fn environment_schema(vars: Map<String, Value>) -> Value {
    let settings = schemars::generate::SchemaSettings::draft07();
    let schema = settings
        .into_generator()
        .into_root_schema_for::<RawEnvironment>();
    let mut schema = schema.to_value();
    schema["title"] = "provision environment".into();
    // The loader takes these two out before the rest is read, so they are not fields.
    schema["properties"]["extends"] = serde_json::json!({
        "description": "The environment this file extends: its keys are merged under this file's (maps key by key; lists and scalars replace).",
        "type": "string",
    });
    schema["properties"]["abstract"] = serde_json::json!({
        "description": "Marks a file that exists only to be extended (it cannot be deployed).",
        "type": "boolean",
    });
    let description = schema["definitions"]["Policy"]["properties"]["vars"]["description"].clone();
    schema["definitions"]["Policy"]["properties"]["vars"] = serde_json::json!({
        "description": description,
        "type": "object",
        "properties": vars,
        "additionalProperties": false,
    });
    if let Some(definitions) = schema["definitions"].as_object_mut() {
        definitions.remove("RawVar");
    }
    unwrap_descriptions(&mut schema);
    refuse_null(&mut schema);
    schema
}

/// Every key is optional, but a key written without a value is refused by the loader
/// (`protected:` is not "unset"), so the schema must not offer `null` the way schemars does for
/// an `Option`.
fn refuse_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if let Some(Value::Array(options)) = map.get_mut("anyOf") {
                options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
                if options.len() == 1 {
                    // Draft 7 ignores keywords beside `$ref`, so the description stays outside.
                    let only = options.remove(0);
                    map.remove("anyOf");
                    map.insert("allOf".to_owned(), Value::Array(vec![only]));
                }
            }
            map.values_mut().for_each(refuse_null);
        }
        Value::Array(items) => items.iter_mut().for_each(refuse_null),
        _ => {}
    }
}

/// Doc comments wrap at 100 columns; an editor's hover wraps by itself.
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        *text = text.replace('\n', " ");
                    }
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}
