//! One file per subcommand: the glue between the CLI, the pure core and the printer.

mod bootstrap;
mod call;
mod completions;
mod doctor;
mod down;
mod models;
mod plan;
mod policy;
mod render;
mod sandbox;
mod sandbox_clock;
mod schema;
mod token;
mod up;
mod validate;
mod verify;
mod whoami;

use std::path::Path;

use crate::cli::{AzureArgs, Cli, Command, GlobalArgs};
use crate::config::{self, Blueprint, Environment};
use crate::engine;
use crate::hint::Hinted;
use crate::output::Printer;
use crate::render::{TemplateSet, templates_dir};

/// The exit-code contract: 0 success or in sync, 1 error or failed check, 2 changes present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Changes,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Changes => 2,
        }
    }
}

pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Render(args) => render::run(&cli.global, args, printer),
        Command::Validate(args) => validate::run(&cli.global, args, printer),
        Command::Policy(args) => policy::run(&cli.global, args, printer),
        Command::Plan(args) => plan::run(&cli.global, args, printer),
        Command::Up(args) => up::run(&cli.global, args, printer),
        Command::Down(args) => down::run(&cli.global, args, printer),
        Command::Whoami(args) => whoami::run(&cli.global, args, printer),
        Command::Doctor(args) => doctor::run(&cli.global, args, printer),
        Command::Token(args) => token::run(&cli.global, args, printer),
        Command::Call(args) => call::run(&cli.global, args, printer),
        Command::Verify(args) => verify::run(&cli.global, args, printer),
        Command::Models(args) => models::run(&cli.global, args, printer),
        Command::Bootstrap(command) => bootstrap::run(&cli.global, command, printer),
        Command::Sandbox(args) => sandbox::run(args, printer),
        Command::Schema(args) => schema::run(&cli.global, args, printer),
        Command::Completions(args) => completions::run(args, printer),
    }
}

/// Loads a target environment; an abstract one is an error here because it cannot be deployed.
fn load_target(env_dir: &Path, name: &str) -> anyhow::Result<Blueprint> {
    match config::load(env_dir, name)? {
        Environment::Target(b) => {
            tracing::debug!(env = %b.env, file = %b.file, cloud = %b.cloud, "environment resolved");
            Ok(*b)
        }
        Environment::Abstract { file, .. } => Err(Hinted::error(
            format!(
                "{file}: environment `{name}` is abstract (`abstract: true`): it exists to be extended"
            ),
            "name an environment that extends it, e.g. --env dev",
        )),
    }
}

fn load_templates(global_dir: &Path, blueprint: &Blueprint) -> anyhow::Result<TemplateSet> {
    let dir = templates_dir(global_dir, blueprint);
    let templates = TemplateSet::load(&dir)?;
    tracing::debug!(dir = %dir.display(), templates = templates.sources().count(), "templates loaded");
    Ok(templates)
}

/// An environment ready to sign in to: loaded, its templates rendered once, its credential
/// chosen (`--auth` over the file's `auth:`).
fn checked(global: &GlobalArgs, env: &str, azure: &AzureArgs) -> anyhow::Result<engine::Checked> {
    let blueprint = load_target(&global.env_dir, env)?;
    let templates = load_templates(&global.templates_dir, &blueprint)?;
    engine::check(blueprint, templates, azure.auth)
}

/// The expiry `lifetime` (or `--ttl`) gives, on the cloud's clock; a protected environment
/// never expires.
async fn with_lifetime(
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
    let now = crate::embedded::cloud_now(&checked.blueprint).await?;
    let expires = now + jiff::SignedDuration::try_from(lifetime)?;
    Ok(checked.with_expiry(crate::clock::format_utc_seconds(expires)))
}

/// A runtime for one command: two workers, so an embedded sandbox answers while the command
/// waits on it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
