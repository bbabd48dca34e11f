//! The command line, as clap types only. Resolving flags into settings happens in `commands`.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::access::AuthChoice;

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

/// Flags every command takes; listed under their own heading in each command's help.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// JSON lines, one object per result (schema in docs/json-output.md).
    Json,
    /// A comment-ready Markdown summary for a pull request (`plan`, `render --check`, `policy
    /// test`).
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

// Parsed once per run: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render an environment's APIM policy XML from its templates.
    Render(RenderArgs),
    /// Check environments and lint their rendered policies.
    Validate(ValidateArgs),
    /// Test, evaluate and compare policies offline.
    Policy(PolicyArgs),
    /// Show what `up` would change, Entra ID and Azure together.
    Plan(PlanArgs),
    /// Create or update everything an environment needs, in one idempotent run.
    Up(UpArgs),
    /// Tear an environment down: everything carrying its marks, dependents first.
    Down(DownArgs),
    /// Sign in to an environment's cloud and show who you are there (checks credentials).
    #[command(mut_arg("timeout", |arg| arg
        .help("Give up after this long, sign-in and the subscription read included (e.g. 30s, 2m)")
        .default_value("2m")))]
    Whoami(WhoamiArgs),
    /// Check, read-only and in seconds, what `up` needs: sign-in, providers, permissions, model,
    /// quota and names; says what to do for each.
    #[command(mut_arg("timeout", |arg| arg
        .help("Give up after this long, sign-in and every read included (e.g. 30s, 2m)")
        .default_value("2m")))]
    Doctor(DoctorArgs),
    /// Sign in as the environment's client app (device code flow) and show or print the token.
    #[command(mut_arg("timeout", |arg| arg.default_value("15m")))]
    Token(TokenArgs),
    /// Call the environment's model through the gateway, signed in as its client app.
    #[command(mut_arg("timeout", |arg| arg.default_value("15m")))]
    Call(CallArgs),
    /// Prove the boundary holds: a good token passes, every other call is refused.
    #[command(mut_arg("timeout", |arg| arg.default_value("15m")))]
    Verify(VerifyArgs),
    /// List the model versions an environment's location offers: lifecycle, retirement date,
    /// SKUs with default and maximum capacity, and the quota left.
    Models(ModelsArgs),
    /// Create the identity a pipeline deploys an environment with: an app registration, a
    /// federated credential for the CI's OIDC tokens and least-privilege roles; no secret.
    #[command(subcommand)]
    Bootstrap(BootstrapCommand),
    /// Run the local Azure emulator (Entra ID login, Microsoft Graph, Resource Manager).
    Sandbox(SandboxArgs),
    /// Print the JSON Schema of environment files (for editors).
    Schema(SchemaArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// How commands that talk to Azure sign in and how long they may take.
#[derive(Debug, Clone, Args)]
pub struct AzureArgs {
    /// How to sign in: auto, cli, workload-identity, managed-identity, client-secret, github-oidc
    /// or sandbox. Overrides the environment file's `auth:`.
    #[arg(long, value_name = "METHOD", env = "PROVISION_AUTH", value_parser = auth_choices())]
    pub auth: Option<AuthChoice>,
    /// Give up after this long, including every retry and wait (e.g. 90s, 20m, 1h). Creating an
    /// API Management service takes 30 to 45 minutes in Azure, hence the default.
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

fn auth_choices() -> impl clap::builder::TypedValueParser<Value = AuthChoice> {
    clap::builder::PossibleValuesParser::new(AuthChoice::ALL.map(AuthChoice::name))
        .map(|name| name.parse::<AuthChoice>().expect("a possible value parses"))
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let duration = crate::clock::parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "`{text}` is no time at all: give a duration longer than zero"
        ));
    }
    Ok(duration)
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Environment to plan.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Exit 2 when there are changes and 0 when there are none (1 stays an error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Preview what `down` would delete (and leave alone) instead of what `up` would change.
    #[arg(long)]
    pub destroy: bool,
    /// With --destroy: also preview the purge of soft-deleted copies (`down --purge`).
    #[arg(long, requires = "destroy")]
    pub purge: bool,
    /// Also save the plan to FILE (JSON, with a fingerprint of everything it read), for
    /// `up --plan FILE` to apply exactly it, or nothing if anything changed since.
    #[arg(long, value_name = "FILE", conflicts_with = "destroy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Environment to tear down.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Also purge what Azure and Entra keep soft-deleted (Foundry account, API Management
    /// service, app registrations), so the names can be used again at once.
    #[arg(long)]
    pub purge: bool,
    /// Needed to tear down a protected environment.
    #[arg(long)]
    pub force: bool,
    /// Tear down every environment in ENV's subscription and tenant whose expiry mark
    /// (`lifetime:`, `up --ttl`) has passed, found from the marks alone, each with --purge. ENV
    /// only says where to look and how to sign in.
    #[arg(long)]
    pub expired: bool,
    /// Do not ask (pipelines); a protected environment still needs --force.
    #[arg(long)]
    pub yes: bool,
    /// Resources worked on at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Environment to bring up (with --plan: the plan's, which it must match if given).
    #[arg(long, value_name = "ENV", required_unless_present = "plan")]
    pub env: Option<String>,
    /// Apply the plan `plan --out FILE` saved, and only if nothing it was made from changed
    /// since (else exit 1, writing nothing). A reviewed plan is the approval: no prompt.
    #[arg(long, value_name = "FILE", conflicts_with = "ttl")]
    pub plan: Option<PathBuf>,
    /// Apply without asking, also for a protected environment.
    #[arg(long)]
    pub yes: bool,
    /// Print each resource's start and end, and the critical path.
    #[arg(long)]
    pub timings: bool,
    /// Mark what this run creates to expire after this long (e.g. 8h), over the file's
    /// `lifetime:`; `down --expired` tears it down then.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub ttl: Option<std::time::Duration>,
    /// Resources worked on at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Apply without running `doctor`'s checks first.
    #[arg(long)]
    pub skip_preflight: bool,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Environment to check before `up`.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Environment whose cloud, tenant and subscription to check.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    #[command(flatten)]
    pub azure: AzureArgs,
}

/// How a command signs in as the environment's client app.
#[derive(Debug, Clone, Args)]
pub struct SignInArgs {
    /// Environment whose client app signs in.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The client app (its `unique_name` in the environment file; default: the first).
    #[arg(long, value_name = "NAME", value_parser = bounded_name)]
    pub client: Option<String>,
    /// Sign in again, even with a good saved token.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub sign_in: SignInArgs,
    /// A scope to ask for instead of the API's (repeatable; `offline_access` is added).
    #[arg(long = "scope", value_name = "SCOPE", value_parser = bounded_scope)]
    pub scopes: Vec<String>,
    /// Print the access token alone on stdout (for `Authorization: Bearer $(…)`).
    #[arg(long, conflicts_with_all = ["logout", "snippet"])]
    pub print: bool,
    /// Remove the saved sign-in of the environment's client.
    #[arg(long, conflicts_with_all = ["force", "scopes", "snippet"])]
    pub logout: bool,
    /// Print a ready-to-run device-flow client for the environment instead of signing in.
    #[arg(long, value_enum, value_name = "LANGUAGE")]
    pub snippet: Option<SnippetLanguage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnippetLanguage {
    /// MSAL for Python (`pip install msal requests`).
    Python,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub sign_in: SignInArgs,
    /// The user message to send.
    #[arg(long, value_name = "TEXT", conflicts_with = "body", value_parser = bounded_message)]
    pub message: Option<String>,
    /// A file holding the whole chat completions request body (JSON), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// Print the answer as it arrives (server-sent events).
    #[arg(long)]
    pub stream: bool,
    /// The model deployment (default: the environment's first).
    #[arg(long, value_name = "NAME", value_parser = bounded_name)]
    pub deployment: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub sign_in: SignInArgs,
    /// A good token obtained elsewhere (a file, or `-` for stdin), so no one needs to sign in.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A token of another tenant, for the foreign-tenant case on Azure.
    #[arg(long, value_name = "FILE")]
    pub foreign_token_file: Option<PathBuf>,
    /// An expired token, for the expired case on Azure.
    #[arg(long, value_name = "FILE")]
    pub expired_token_file: Option<PathBuf>,
    /// A YAML file of your own gateway cases, in `policy test`'s format (repeatable).
    #[arg(long = "cases", value_name = "FILE")]
    pub cases: Vec<PathBuf>,
}

/// The pipelines `bootstrap` makes an identity for.
#[derive(Debug, Subcommand)]
pub enum BootstrapCommand {
    /// For GitHub Actions (`azure/login` with OIDC, or `--auth github-oidc`).
    Github(BootstrapGithubArgs),
    /// For an Azure DevOps workload-identity-federation service connection.
    #[command(name = "azure-devops")]
    AzureDevops(BootstrapDevopsArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("trigger").args(["environment", "pull_request", "branch"])))]
pub struct BootstrapGithubArgs {
    /// Environment the pipeline deploys.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The repository whose workflows sign in, as OWNER/REPO (case-sensitive, as GitHub's
    /// tokens carry it).
    #[arg(long, value_name = "OWNER/REPO", value_parser = repository)]
    pub repo: String,
    /// Trust jobs that run in this GitHub environment (subject `repo:O/R:environment:NAME`).
    #[arg(long, value_name = "NAME", value_parser = bounded_name)]
    pub environment: Option<String>,
    /// Trust pull-request jobs (subject `repo:O/R:pull_request`) with a separate, read-only
    /// identity (`…-plan`: Reader, Graph Application.Read.All) that can plan, not apply.
    #[arg(long)]
    pub pull_request: bool,
    /// Trust jobs on this branch (subject `repo:O/R:ref:refs/heads/BRANCH`; default `main`).
    #[arg(long, value_name = "BRANCH", value_parser = branch)]
    pub branch: Option<String>,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct BootstrapDevopsArgs {
    /// Environment the pipeline deploys.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The Azure DevOps organization.
    #[arg(long, value_name = "ORG", value_parser = organization)]
    pub org: String,
    /// The organization's id (a GUID; needed on Azure: the token issuer names it).
    #[arg(long, value_name = "GUID", value_parser = guid)]
    pub org_id: Option<String>,
    /// The project that holds the service connection.
    #[arg(long, value_name = "PROJECT", value_parser = devops_name)]
    pub project: String,
    /// The service connection's name.
    #[arg(long, value_name = "NAME", value_parser = devops_name)]
    pub service_connection: String,
    #[command(flatten)]
    pub azure: AzureArgs,
}

/// OWNER/REPO: GitHub's characters for both, at most 100 each.
fn repository(text: &str) -> Result<String, String> {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match text.split_once('/') {
        Some((owner, repo)) if part(owner) && part(repo) => Ok(text.to_owned()),
        _ => Err(format!(
            "`{}` is not OWNER/REPO: letters, digits, `-`, `_`, `.` on each side of one `/`",
            text.chars().take(64).collect::<String>()
        )),
    }
}

/// A branch name as a subject carries it: letters, digits, `-`, `_`, `.`, `/`, no `..`.
fn branch(text: &str) -> Result<String, String> {
    let fits = !text.is_empty()
        && text.len() <= 200
        && !text.contains("..")
        && !text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if fits {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{}` is not a branch name: 1 to 200 of a-z, A-Z, 0-9, `-`, `_`, `.`, `/`",
            text.chars().take(64).collect::<String>()
        ))
    }
}

/// An Azure DevOps organization name: letters, digits and `-`, at most 50.
fn organization(text: &str) -> Result<String, String> {
    if !text.is_empty()
        && text.len() <= 50
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{}` is not an organization name: 1 to 50 of a-z, A-Z, 0-9, `-`",
            text.chars().take(64).collect::<String>()
        ))
    }
}

fn guid(text: &str) -> Result<String, String> {
    match uuid::Uuid::parse_str(text) {
        Ok(id) if text.len() == 36 => Ok(id.to_string()),
        _ => Err(format!(
            "`{}` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            text.chars().take(64).collect::<String>()
        )),
    }
}

/// A project or service connection name: printable, no `/` (it separates them in the subject).
fn devops_name(text: &str) -> Result<String, String> {
    if !text.trim().is_empty()
        && text.len() <= 128
        && !text.chars().any(|c| c.is_control() || c == '/')
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{}` is not a name: 1 to 128 printable characters, no `/`",
            text.chars().take(64).collect::<String>()
        ))
    }
}

/// Names on the command line are short and printable: they end up in file names and messages.
fn bounded_name(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 128
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{}` is not a name: 1 to 128 of a-z, A-Z, 0-9, `-`, `_`, `.`",
            text.chars().take(64).collect::<String>()
        ));
    }
    Ok(text.to_owned())
}

/// A scope is one OAuth scope value: printable, no spaces (RFC 6749 §3.3), and short.
fn bounded_scope(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 512
        || !text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return Err(format!(
            "`{}` is not a scope: 1 to 512 printable ASCII characters without spaces, e.g. api://<app id>/llm.invoke",
            text.chars().take(64).collect::<String>()
        ));
    }
    Ok(text.to_owned())
}

/// A message fits in one request: at most 100 000 characters, no NUL.
fn bounded_message(text: &str) -> Result<String, String> {
    if text.is_empty() || text.chars().count() > 100_000 || text.contains('\0') {
        return Err("a message is 1 to 100000 characters, without NUL".to_owned());
    }
    Ok(text.to_owned())
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Environment whose location (and subscription, for the quota) to list.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    #[command(flatten)]
    pub azure: AzureArgs,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Serve the sandbox in the foreground until Ctrl-C.
    Serve(SandboxServeArgs),
    /// Show a running sandbox's clock, or move it forward (tokens expire, operations end,
    /// retention runs out, as if that much time had passed).
    Clock(SandboxClockArgs),
}

#[derive(Debug, Args)]
pub struct SandboxClockArgs {
    /// Where the sandbox listens.
    #[arg(long, global = true, default_value = crate::cloud::DEFAULT_SANDBOX_ADDRESS, value_name = "HOST:PORT")]
    pub addr: String,
    #[command(subcommand)]
    pub action: Option<SandboxClockAction>,
}

#[derive(Debug, Subcommand)]
pub enum SandboxClockAction {
    /// Move the clock forward by a duration: 48h, 1h30m, 90s or ISO 8601 (PT90M).
    Advance {
        #[arg(value_name = "DURATION", allow_hyphen_values = true)]
        by: String,
    },
    /// Move the clock forward to an instant (RFC 3339, e.g. 2030-01-01T00:00:00Z).
    Set {
        #[arg(value_name = "RFC3339")]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct SandboxServeArgs {
    /// Address to listen on (loopback only, unless --allow-non-loopback).
    #[arg(long, default_value = crate::cloud::DEFAULT_SANDBOX_ADDRESS, value_name = "HOST:PORT")]
    pub addr: std::net::SocketAddr,
    /// Persist state in DIR so separate runs see the same sandbox (default: in memory).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Fault profile (none, flaky, hostile) or a YAML file of scripted faults.
    #[arg(long, default_value = "none", value_name = "PROFILE|FILE")]
    pub faults: String,
    /// Latency profile: instant or realistic.
    #[arg(long, default_value = "instant", value_name = "PROFILE")]
    pub latency: String,
    /// Make what the sandbox simulates (operations, replication lag, device codes, latency) this
    /// many times shorter; the sandbox's clock keeps the system's pace.
    #[arg(long, default_value_t = 1.0, value_name = "F", value_parser = parse_time_scale)]
    pub time_scale: f64,
    /// Seed of the fault dice (a failure reproduces from its seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long creating an API Management service takes, in sandbox seconds (default: 60 under
    /// the realistic profile, 0 under instant).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub apim_create_seconds: Option<u64>,
    /// Serve HTTPS with a self-signed certificate written to the state directory.
    #[arg(long)]
    pub tls: bool,
    /// Listen on a non-loopback address (the sandbox hands out test credentials).
    #[arg(long)]
    pub allow_non_loopback: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the built-in token matrix and your cases against an environment's rendered policy.
    Test(PolicyTestArgs),
    /// Evaluate one request against a policy file; prints one JSON object.
    Eval(PolicyEvalArgs),
    /// Compare two policy files, or an environment's stored policy with a fresh live render
    /// (--env), by meaning; exit 0 when equal, 2 when different.
    Diff(PolicyDiffArgs),
}

#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The environment whose policy is tested.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// A YAML file of extra cases (repeatable).
    #[arg(long = "cases", value_name = "FILE")]
    pub cases: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// The policy XML file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The token, sent as `Authorization: Bearer <JWT>` (visible to other local users in the
    /// process list: prefer --token-file). Without a token, the request carries none.
    #[arg(
        long,
        value_name = "JWT",
        conflicts_with = "token_file",
        requires = "jwks"
    )]
    pub token: Option<String>,
    /// A file holding the token, or `-` for standard input.
    #[arg(long, value_name = "FILE", requires = "jwks")]
    pub token_file: Option<PathBuf>,
    /// Signing keys (JWKS) of the policy's tenant; needed to verify a token.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Signing keys of another tenant, as TENANT=FILE (repeatable).
    #[arg(long = "tenant-jwks", value_name = "TENANT=FILE")]
    pub tenant_jwks: Vec<String>,
    /// The instant to evaluate at (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// A request header, 'Name: value' (repeatable). An Authorization header given here is sent
    /// as is, instead of one made from --token.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A query parameter, name=value (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    pub query: Vec<String>,
    /// An APIM named value, name=value (repeatable).
    #[arg(long = "named-value", value_name = "NAME=VALUE")]
    pub named_values: Vec<String>,
    #[arg(long, default_value = "GET")]
    pub method: String,
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The cloud whose issuers apply (default: from the policy's authentication-endpoint, else public).
    #[arg(long, value_enum)]
    pub cloud: Option<CloudArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudArg {
    Public,
    Usgov,
    China,
}

/// Two files, or an environment's stored policy against its live render: the group makes the
/// usage line show both.
#[derive(Debug, Args)]
#[group(id = "policies", required = true, multiple = false, args = ["old", "env"])]
pub struct PolicyDiffArgs {
    /// The policy as it is (e.g. what APIM returns).
    #[arg(requires = "new")]
    pub old: Option<PathBuf>,
    /// The policy as it should be (e.g. a fresh render).
    #[arg(conflicts_with = "env")]
    pub new: Option<PathBuf>,
    /// Compare the policy stored in the environment's API Management with a fresh render (the
    /// drift gate for the policy alone), instead of two files.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub azure: AzureArgs,
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
    #[arg(long, conflicts_with = "live")]
    pub offline: bool,
    /// Sign in and render with the app ids of the deployed environment: the document `up`
    /// stores (--auth and --timeout apply only here).
    #[arg(long, conflicts_with = "out")]
    pub live: bool,
    #[command(flatten)]
    pub azure: AzureArgs,
}

/// One of `--env` and `--all`: the group makes the usage line show both.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ValidateArgs {
    /// The environment to validate.
    #[arg(long, value_name = "ENV")]
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

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The kind of file whose schema to print.
    #[arg(value_enum, default_value_t = SchemaKind::Environment)]
    pub kind: SchemaKind,
}

/// Each kind of file `provision` reads or writes that has a schema; one value per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// An environment file (environments/<name>.yaml); `policy.vars` from --templates-dir.
    Environment,
    /// The lines `--output json` prints (one JSON object per line, told apart by `type`).
    Events,
}

/// Time scales from a thousand times slower to a million times faster: beyond them the sandbox's
/// simulated durations overflow or round to nothing.
fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if (1e-3..=1e6).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{text}` is not a time scale from 0.001 to 1000000 (e.g. 10 runs ten times faster)"
        )),
    }
}
