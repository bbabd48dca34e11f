use std::process::ExitCode;

use clap::Parser;
use std::io::IsTerminal;

use provision::cli::{Cli, ColorChoice};
use provision::commands::{self, ExitStatus};
use provision::output::Printer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; usage errors exit 1, never 2, because 2 means
            // "changes present" to pipelines gating on `plan --detailed-exitcode`.
            return ExitCode::from(u8::from(e.use_stderr()));
        }
    };
    init_tracing(cli.global.verbose, cli.global.quiet, cli.global.color);
    let printer = Printer::new(cli.global.output, cli.global.color, cli.global.quiet);
    let status = match commands::run(cli, &printer) {
        Ok(status) => status,
        Err(error) => {
            printer.error(&error);
            ExitStatus::Failure
        }
    };
    ExitCode::from(status.code() as u8)
}

/// Diagnostics go to stderr; `-v` shows debug, `-vv` trace, `-q` only errors. `RUST_LOG` wins.
fn init_tracing(verbose: u8, quiet: bool, color: ColorChoice) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "provision=debug",
        (false, _) => "provision=trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let ansi = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}
