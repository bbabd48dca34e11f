//! What every command that works on an environment does first: load it (and what it extends),
//! its templates, and the credential it signs in with; and the expiry `lifetime:` gives it.

use std::path::Path;

use crate::cli::{AzureArgs, GlobalArgs};
use crate::config::{self, Blueprint, Environment};
use crate::engine;
use crate::hint::Hinted;
use crate::output::Printer;
use crate::render::{TemplateSet, templates_dir};

/// Loads a target environment; an abstract one is an error here because it cannot be deployed.
pub(super) fn load_target(env_dir: &Path, name: &str) -> anyhow::Result<Blueprint> {
    Ok(load_recorded(env_dir, name)?.0)
}

/// [`load_target`], with every file it read: what a saved plan is bound to.
pub(super) fn load_recorded(
    env_dir: &Path,
    name: &str,
) -> anyhow::Result<(Blueprint, Vec<(String, String)>)> {
    match config::load_recorded(env_dir, name)? {
        (Environment::Target(b), files) => {
            tracing::debug!(env = %b.env, file = %b.file, cloud = %b.cloud, "environment resolved");
            Ok((*b, files))
        }
        (Environment::Abstract { file, .. }, _) => Err(Hinted::error(
            format!(
                "{file}: environment `{name}` is abstract (`abstract: true`): it exists to be extended"
            ),
            "name an environment that extends it, e.g. --env dev",
        )),
    }
}

pub(super) fn load_templates(
    global_dir: &Path,
    blueprint: &Blueprint,
) -> anyhow::Result<TemplateSet> {
    let dir = templates_dir(global_dir, blueprint);
    let templates = TemplateSet::load(&dir)?;
    tracing::debug!(dir = %dir.display(), templates = templates.sources().count(), "templates loaded");
    Ok(templates)
}

/// An environment ready to sign in to: loaded, its templates rendered once, its credential
/// chosen (`--auth` over the file's `auth:`).
pub(super) fn checked(
    global: &GlobalArgs,
    env: &str,
    azure: &AzureArgs,
) -> anyhow::Result<engine::Checked> {
    Ok(checked_bound(global, env, azure)?.0)
}

/// [`checked`], with every file it read and its SHA-256 (the environment file, those it
/// extends, the templates): what a saved plan is bound to.
pub(super) fn checked_bound(
    g: &GlobalArgs,
    env: &str,
    azure: &AzureArgs,
) -> anyhow::Result<Checked> {
    let (blueprint, files) = load_recorded(&g.env_dir, env)?;
    let templates = load_templates(&g.templates_dir, &blueprint)?;
    let inputs = engine::saved::inputs(&files, &templates);
    Ok((engine::check(blueprint, templates, azure.auth)?, inputs))
}

/// An environment ready to sign in to, and the files it was made from.
pub(super) type Checked = (engine::Checked, Vec<engine::saved::Input>);

/// The expiry `lifetime` (or `--ttl`) gives, on the cloud's clock; a protected environment
/// never expires.
pub(super) async fn with_lifetime(
    checked: engine::Checked,
    ttl: Option<std::time::Duration>,
) -> anyhow::Result<engine::Checked> {
    let Some(lifetime) = ttl.or(checked.blueprint.lifetime) else {
        return Ok(checked);
    };
    if checked.blueprint.protected {
        return Err(Hinted::error(
            format!(
                "environment {} is protected, and a protected environment never expires",
                checked.blueprint.env
            ),
            "drop --ttl",
        ));
    }
    let now = engine::clock_for(&checked.blueprint).await?.now();
    let expires = now + jiff::SignedDuration::try_from(lifetime)?;
    Ok(checked.with_expiry(crate::clock::format_utc_seconds(expires)))
}

/// The policy of a deployed environment and the one its APIM stores, read after signing in the
/// way `plan` does (`render --live`, `policy diff --env`).
pub(super) fn live_policy(
    global: &GlobalArgs,
    env: &str,
    azure: &AzureArgs,
    printer: &Printer,
) -> anyhow::Result<(std::sync::Arc<Blueprint>, engine::LivePolicy)> {
    let checked = checked(global, env, azure)?;
    super::runtime()?.block_on(async {
        let timeout = azure.timeout;
        let _sandbox = crate::embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let connected = engine::connect(checked, timeout).await?;
        let live = engine::live_policy(&connected).await?;
        Ok((connected.blueprint, live))
    })
}
