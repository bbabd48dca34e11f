//! `provision completions <shell>`.

use clap::CommandFactory;

use super::ExitStatus;
use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "provision",
        &mut std::io::stdout(),
    );
    Ok(ExitStatus::Success)
}
