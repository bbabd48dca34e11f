//! `provision completions <shell>`.

use clap::CommandFactory;

use super::ExitStatus;
use crate::cli::{Cli, CompletionsArgs};
use crate::output::Printer;

pub fn run(args: CompletionsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    // Generated into memory: the generator panics on a write error, and the printer ends quietly
    // on a closed stdout (`provision completions bash | head -3`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "provision", &mut script);
    printer.out_raw(&String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}
