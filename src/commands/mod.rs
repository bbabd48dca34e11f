//! One file per subcommand: the glue between the CLI, the pure core and the printer.

mod bootstrap;
mod call;
mod completions;
mod doctor;
mod down;
mod environment;
mod formats;
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

use crate::cli::{Cli, Command};
use crate::output::Printer;
use crate::render::templates_dir;

use environment::{
    checked, checked_bound, live_policy, load_target, load_templates, with_lifetime,
};

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
    formats::supported(&cli)?;
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

/// A runtime for one command: two workers, so an embedded sandbox answers while the command
/// waits on it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
