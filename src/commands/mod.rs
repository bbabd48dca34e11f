//! One file per subcommand: the glue between the CLI, the pure core and the printer.

mod completions;
mod plan;
mod policy;
mod render;
mod sandbox;
mod sandbox_clock;
mod schema;
mod target;
mod up;
mod validate;
mod whoami;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::config::{self, Blueprint, Environment};
use crate::output::{Hinted, Printer};
use crate::render::TemplateSet;

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
        Command::Whoami(args) => whoami::run(&cli.global, args, printer),
        Command::Sandbox(args) => sandbox::run(args, printer),
        Command::Schema(args) => schema::run(&cli.global, args, printer),
        Command::Completions(args) => completions::run(args, printer),
    }
}

/// The engine's error as the printer shows it: message and hint.
fn engine_error(error: crate::engine::EngineError) -> anyhow::Error {
    match error.hint() {
        Some(hint) => Hinted::error(error.to_string(), hint),
        None => anyhow::Error::new(error),
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

/// The environment's own template directory wins over `--templates-dir`.
pub(super) fn templates_dir(global_dir: &Path, blueprint: &Blueprint) -> PathBuf {
    blueprint
        .policy
        .templates_dir
        .as_ref()
        .map_or_else(|| global_dir.to_path_buf(), PathBuf::from)
}

fn load_templates(global_dir: &Path, blueprint: &Blueprint) -> anyhow::Result<TemplateSet> {
    let dir = templates_dir(global_dir, blueprint);
    let templates = TemplateSet::load(&dir)?;
    tracing::debug!(dir = %dir.display(), templates = templates.sources().count(), "templates loaded");
    Ok(templates)
}
