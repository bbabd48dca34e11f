//! The command line, as clap types only. Resolving flags into settings happens in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about = "Puts an LLM on Azure behind an enterprise security boundary (API Management + Entra ID), as code",
    after_help = "Exit codes: 0 success, 1 error or failed check, 2 changes present."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding the environment files (<name>.yaml).
    #[arg(
        long,
        global = true,
        default_value = "environments",
        value_name = "DIR"
    )]
    pub env_dir: PathBuf,
    /// Directory holding the policy templates.
    #[arg(long, global = true, default_value = "templates", value_name = "DIR")]
    pub templates_dir: PathBuf,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Output format of results on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// When to colour human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    /// JSON lines, one object per result (schema in the README).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render an environment's APIM policy XML from its templates.
    Render(RenderArgs),
    /// Check environments and lint their rendered policies.
    Validate(ValidateArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The environment (environments/<ENV>.yaml).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Write to DIR/<env>/<api-id>.policy.xml instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Compare the files in DIR (--out) with a fresh render; exit 1 listing every difference.
    #[arg(long, requires = "out")]
    pub check: bool,
    /// Render app ids that are not pinned in the environment file as placeholders.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The environment to validate.
    #[arg(
        long,
        value_name = "ENV",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub env: Option<String>,
    /// Validate every environment in --env-dir.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
