//! Rendering the APIM policy XML from Tera templates and a Blueprint.
//!
//! Two products, two types: a [`DeployablePolicy`] can only be built from [`ResolvedAppIds`], where
//! every app id is a real GUID, while `render --offline` yields a [`PreviewPolicy`] whose unknown app
//! ids are placeholders. Nothing converts a preview into a deployable policy, so the compiler, not a
//! review, keeps a placeholder from ever reaching Azure.

mod review;
pub mod snippet;
mod templates;
pub mod vars;

use serde_json::{Value, json};

pub use review::{Drift, Rendered, drift, for_review};
pub use templates::{RenderError, TemplateSet};

use crate::config::{Blueprint, Guid};

/// Placeholders start with this, which is neither a GUID nor anything Azure would accept.
pub const PLACEHOLDER_PREFIX: &str = "PLACEHOLDER(";

/// Whether a value in rendered XML is an offline placeholder.
pub fn is_placeholder(value: &str) -> bool {
    value.starts_with(PLACEHOLDER_PREFIX) && value.ends_with(')')
}

fn placeholder(unique_name: &str) -> String {
    format!("{PLACEHOLDER_PREFIX}appId of {unique_name})")
}

/// The app ids of every app registration in an environment, all known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAppIds {
    pub api: Guid,
    /// In the order of `entra.clients`.
    pub clients: Vec<Guid>,
}

impl ResolvedAppIds {
    /// The ids pinned in the environment file, if every app has one.
    pub fn pinned(blueprint: &Blueprint) -> Option<ResolvedAppIds> {
        Some(ResolvedAppIds {
            api: blueprint.entra.api.app_id.clone()?,
            clients: blueprint
                .entra
                .clients
                .iter()
                .map(|c| c.app_id.clone())
                .collect::<Option<_>>()?,
        })
    }

    /// Unique names of the apps whose id is not pinned, for "cannot render" messages.
    pub fn missing(blueprint: &Blueprint) -> Vec<(String, String)> {
        let mut missing = Vec::new();
        if blueprint.entra.api.app_id.is_none() {
            missing.push((
                "entra.api.app_id".to_owned(),
                blueprint.entra.api.unique_name.clone(),
            ));
        }
        for (i, c) in blueprint.entra.clients.iter().enumerate() {
            if c.app_id.is_none() {
                missing.push((format!("entra.clients[{i}].app_id"), c.unique_name.clone()));
            }
        }
        missing
    }
}

/// A policy with real app ids: the only kind that may be sent to Azure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployablePolicy {
    xml: String,
}

impl DeployablePolicy {
    pub fn xml(&self) -> &str {
        &self.xml
    }
}

/// A policy for review, where unknown app ids are placeholders. It has no way to become deployable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewPolicy {
    xml: String,
    /// The placeholder values it contains.
    pub placeholders: Vec<String>,
}

impl PreviewPolicy {
    pub fn xml(&self) -> &str {
        &self.xml
    }
}

/// The template name for an environment's policy.
pub fn template_name(blueprint: &Blueprint) -> String {
    format!("policies/{}.xml.tera", blueprint.policy.template)
}

/// The directory of an environment's templates: its own `policy.templates_dir` wins over the
/// default (`--templates-dir`).
pub fn templates_dir(default: &std::path::Path, blueprint: &Blueprint) -> std::path::PathBuf {
    blueprint
        .policy
        .templates_dir
        .as_ref()
        .map_or_else(|| default.to_path_buf(), std::path::PathBuf::from)
}

/// The file a rendered policy is written to under `render --out DIR`.
pub fn output_file(blueprint: &Blueprint) -> String {
    format!("{}/{}.policy.xml", blueprint.env, blueprint.api.id)
}

/// Renders the deployable policy.
pub fn render(
    blueprint: &Blueprint,
    templates: &TemplateSet,
    ids: &ResolvedAppIds,
) -> Result<DeployablePolicy, RenderError> {
    let api = ids.api.to_string();
    let clients: Vec<String> = ids.clients.iter().map(Guid::to_string).collect();
    let xml = templates.render(
        &template_name(blueprint),
        &context(blueprint, templates, &api, &clients)?,
    )?;
    Ok(DeployablePolicy { xml })
}

/// The app ids a preview renders: pinned ids where known, placeholders elsewhere, as
/// (API app, clients in order).
pub fn preview_app_ids(blueprint: &Blueprint) -> (String, Vec<String>) {
    let id = |id: &Option<Guid>, unique_name: &str| {
        id.as_ref()
            .map_or_else(|| placeholder(unique_name), Guid::to_string)
    };
    let api = id(
        &blueprint.entra.api.app_id,
        &blueprint.entra.api.unique_name,
    );
    let clients = blueprint
        .entra
        .clients
        .iter()
        .map(|c| id(&c.app_id, &c.unique_name))
        .collect();
    (api, clients)
}

/// Renders for review: pinned ids where known, placeholders elsewhere.
pub fn render_preview(
    blueprint: &Blueprint,
    templates: &TemplateSet,
) -> Result<PreviewPolicy, RenderError> {
    let (api, clients) = preview_app_ids(blueprint);
    let placeholders: Vec<String> = std::iter::once(&api)
        .chain(&clients)
        .filter(|id| is_placeholder(id))
        .cloned()
        .collect();
    let xml = templates.render(
        &template_name(blueprint),
        &context(blueprint, templates, &api, &clients)?,
    )?;
    Ok(PreviewPolicy { xml, placeholders })
}

/// What templates see, once the template's variable reads and the environment's `policy.vars`
/// have been checked against its declarations. Documented in templates/README.md; keep the two
/// in step.
fn context(
    blueprint: &Blueprint,
    templates: &TemplateSet,
    api_app_id: &str,
    client_app_ids: &[String],
) -> Result<Value, RenderError> {
    let name = template_name(blueprint);
    templates.check_reads(&name)?;
    let vars = vars::resolve(
        templates.declarations(&name),
        templates.path(&name)?,
        blueprint,
    )
    .map_err(RenderError::Vars)?;
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let clients: Vec<Value> = blueprint
        .entra
        .clients
        .iter()
        .zip(client_app_ids)
        .map(|(c, id)| json!({ "unique_name": c.unique_name, "display_name": c.display_name, "app_id": id }))
        .collect();
    Ok(json!({
        "env": blueprint.env,
        "cloud": blueprint.cloud.name(),
        "tenant_id": blueprint.tenant_id.as_str(),
        "authentication_endpoint": endpoints.apim_authentication_endpoint,
        "cognitive_services_resource": endpoints.cognitive_services_resource,
        "api": {
            "id": blueprint.api.id,
            "path": blueprint.api.path,
            "display_name": blueprint.api.display_name,
        },
        "api_app": {
            "unique_name": blueprint.entra.api.unique_name,
            "display_name": blueprint.entra.api.display_name,
            "scope": blueprint.entra.api.scope,
            "app_id": api_app_id,
            // v2 tokens (requestedAccessTokenVersion = 2) carry the API's client id as `aud`.
            "audience": api_app_id,
        },
        "clients": clients,
        "backend_id": blueprint.apim.backend_id,
        "foundry": {
            "account": blueprint.foundry.account,
            "deployments": blueprint.foundry.deployments.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        },
        "vars": vars,
    }))
}
