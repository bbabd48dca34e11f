//! Which commands print which `--output` formats. Markdown is a pull-request comment, so only
//! the commands whose result a reviewer reads print it; every other command refuses it before it
//! reads a file or signs in, rather than printing something no one can post.

use crate::cli::{Cli, Command, OutputFormat, PolicyCommand};
use crate::hint::Hinted;

/// The commands that print `--output markdown`, as the error lists them.
pub const MARKDOWN_COMMANDS: &str =
    "`plan` (also `plan --destroy`), `render --out DIR --check` and `policy test`";

/// Refuses a format the command does not print.
pub fn supported(cli: &Cli) -> anyhow::Result<()> {
    if cli.global.output != OutputFormat::Markdown {
        return Ok(());
    }
    let refused = match &cli.command {
        Command::Plan(_) => return Ok(()),
        Command::Render(args) if args.check => return Ok(()),
        Command::Policy(args) if matches!(args.command, PolicyCommand::Test(_)) => return Ok(()),
        Command::Render(_) => "`render` without `--out DIR --check`".to_owned(),
        Command::Policy(args) if matches!(args.command, PolicyCommand::Eval(_)) => {
            "`policy eval`".to_owned()
        }
        Command::Policy(_) => "`policy diff`".to_owned(),
        command => name(command),
    };
    Err(Hinted::error(
        format!(
            "--output markdown: {refused} does not print markdown; only {MARKDOWN_COMMANDS} do"
        ),
        "use --output human or --output json for this command",
    ))
}

/// The subcommand's name as typed (`up`, `whoami`…): every top-level command is one word, its
/// variant's name. Read from the variant so that a command added later is named without a list
/// to keep in step.
fn name(command: &Command) -> String {
    let variant = format!("{command:?}");
    let word = variant.split('(').next().unwrap_or_default();
    format!("`{}`", word.to_ascii_lowercase())
}
