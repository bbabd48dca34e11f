//! What `plan` and `up` share: the environment resolved, its templates loaded, signed in, the
//! inventory of resources built, and for `cloud: sandbox` a sandbox to talk to (started in this
//! process when none listens at the environment's address).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{load_target, load_templates};
use crate::azure::Azure;
use crate::azure::credential::{self, AuthChoice, CredentialPlan};
use crate::azure::retry::Deadline;
use crate::azure::transport::{ReqwestTransport, Transport};
use crate::cli::{AzureArgs, GlobalArgs};
use crate::cloud::Cloud;
use crate::config::{Blueprint, auth_fits_cloud};
use crate::engine::{self, Observation, Plan};
use crate::hint::Hinted;
use crate::output::{Printer, plan as show};
use crate::render::{self, TemplateSet};
use crate::resources::{self, Managed};
use crate::sandbox::{Sandbox, SandboxConfig, StateDirError};

/// Where the embedded sandbox keeps its state, so `up` and a later `plan` see the same one.
pub const EMBEDDED_STATE_DIR: &str = ".provision/sandbox";

pub(super) struct Target {
    pub blueprint: Arc<Blueprint>,
    pub azure: Azure,
    pub resources: Arc<Vec<Box<dyn Managed>>>,
    /// The sandbox this process started: held, not read; dropping it stops the sandbox once no
    /// other run uses it. Declared last, so the clients above close their connections first.
    pub _sandbox: Option<Embedded>,
}

/// How long the embedded sandbox must go without a client connection before it stops: long
/// enough to bridge another run's gap between one connection closing and the next opening.
const QUIET: Duration = Duration::from_millis(300);
/// How often a run that finds the address taken asks it for `/_sandbox/info`, and for how long.
const INFO_POLL: Duration = Duration::from_millis(100);
const INFO_WAIT: Duration = Duration::from_secs(5);

/// A sandbox this command started. Another run started at the same moment connects to it
/// instead of starting its own (one process writes the state file), so it is not stopped under
/// that run: dropping waits until no client connection has been open for [`QUIET`], up to the
/// command's `--timeout`.
pub(super) struct Embedded {
    sandbox: Sandbox,
    quiet: bool,
    linger: Duration,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Called on the thread that drives the command's future, not on a runtime worker, so
        // the sandbox keeps answering the other run while this waits.
        let started = std::time::Instant::now();
        let mut idle_since: Option<std::time::Instant> = None;
        let mut told = false;
        while started.elapsed() < self.linger {
            if self.sandbox.open_connections() == 0 {
                if idle_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= QUIET
                {
                    return;
                }
            } else {
                idle_since = None;
                if !told && !self.quiet && started.elapsed() >= QUIET {
                    eprintln!(
                        "waiting for another run using the sandbox on {} to finish before \
                         stopping it",
                        self.sandbox.addr()
                    );
                    told = true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Everything that can be checked before the network: the environment, the templates (rendered
/// once with stand-in ids, so a template error stops the command before any request), and the
/// credential choice.
pub(super) struct Prepared {
    blueprint: Arc<Blueprint>,
    templates: Arc<TemplateSet>,
    plan: CredentialPlan,
}

pub(super) fn prepare(
    global: &GlobalArgs,
    env: &str,
    azure: &AzureArgs,
) -> anyhow::Result<Prepared> {
    let blueprint = load_target(&global.env_dir, env)?;
    let templates = load_templates(&global.templates_dir, &blueprint)?;
    render::render_preview(&blueprint, &templates)?;
    let plan = credential_plan(azure, &blueprint)?;
    Ok(Prepared {
        blueprint: Arc::new(blueprint),
        templates: Arc::new(templates),
        plan,
    })
}

pub(super) async fn connect(
    prepared: Prepared,
    azure_args: &AzureArgs,
    printer: &Printer,
) -> anyhow::Result<Target> {
    let Prepared {
        blueprint,
        templates,
        plan,
    } = prepared;
    let deadline = Deadline::after(azure_args.timeout, format!("environment {}", blueprint.env));
    let embedded = match blueprint.cloud {
        Cloud::Sandbox => ensure_sandbox(&blueprint, printer, azure_args.timeout).await?,
        _ => None,
    };
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new()?);
    let azure = Azure::connect(blueprint.cloud, &endpoints, &plan, transport, deadline)?;
    same_tenant(&azure, &blueprint, &endpoints.arm_scope()).await?;
    let resources = Arc::new(resources::inventory(blueprint.clone(), templates));
    Ok(Target {
        blueprint,
        azure,
        resources,
        _sandbox: embedded,
    })
}

/// Observes every resource and plans, printing the plan: JSON lines with `--output json`,
/// else the human tree, on stdout for `plan` (`on_stdout`) and on stderr for `up`, whose result
/// is what it did. An empty plan prints nothing for `up`.
pub(super) async fn observe_and_plan(
    target: &Target,
    printer: &Printer,
    on_stdout: bool,
) -> anyhow::Result<(Observation, Plan)> {
    let observation = engine::observe(&target.azure, &target.resources).await?;
    let plan = engine::plan(&target.resources, &observation);
    if printer.json() {
        for line in show::json_lines(&target.blueprint.env, &plan) {
            printer.emit(&line);
        }
    } else if on_stdout {
        printer.out(&show::human(&plan));
    } else if plan.has_changes() {
        printer.note(&show::human(&plan));
    }
    Ok((observation, plan))
}

/// Apps registered in the wrong tenant would refuse every token at the gateway (the policy pins
/// the environment's tenant): the signed-in tenant must be the environment's, checked before any
/// request.
async fn same_tenant(azure: &Azure, blueprint: &Blueprint, scope: &str) -> anyhow::Result<()> {
    let deadline = azure.session.deadline();
    let token = tokio::time::timeout_at(deadline.at(), azure.session.credentials().token(scope))
        .await
        .map_err(|_| deadline.exceeded(Some(format!("no token for {scope}"))))??;
    let tenant = crate::policy::token::Jwt::parse(token.expose())
        .ok()
        .and_then(|jwt| jwt.claim_str("tid").map(str::to_owned));
    match tenant {
        Some(tid) if !tid.eq_ignore_ascii_case(blueprint.tenant_id.as_str()) => Err(Hinted::error(
            format!(
                "signed in to tenant {tid}, and {} names tenant {}",
                blueprint.file, blueprint.tenant_id
            ),
            format!(
                "sign in to the environment's tenant (`az login --tenant {}`), or correct \
                 `tenant_id` in {}",
                blueprint.tenant_id, blueprint.file
            ),
        )),
        _ => Ok(()),
    }
}

/// A sandbox at the environment's address: the one already listening, or one started here with
/// its state under [`EMBEDDED_STATE_DIR`]. When another run started one there a moment ago (the
/// address turned out taken), that one is used.
async fn ensure_sandbox(
    blueprint: &Blueprint,
    printer: &Printer,
    linger: Duration,
) -> anyhow::Result<Option<Embedded>> {
    let addr: SocketAddr = blueprint.sandbox_address.parse().map_err(|e| {
        Hinted::error(
            format!(
                "{}: sandbox.address {}: {e}",
                blueprint.file, blueprint.sandbox_address
            ),
            "write a loopback HOST:PORT, e.g. 127.0.0.1:7171",
        )
    })?;
    let listening = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if listening {
        return Ok(None);
    }
    let started = Sandbox::start(SandboxConfig {
        addr,
        state_dir: Some(PathBuf::from(EMBEDDED_STATE_DIR)),
        ..SandboxConfig::default()
    })
    .await;
    let sandbox = match started {
        Ok(sandbox) => sandbox,
        Err(e) if address_taken(&e) => {
            if answers_as_sandbox(addr).await {
                printer.note(&format!(
                    "connected to the sandbox another run started on {addr} a moment ago"
                ));
                return Ok(None);
            }
            return Err(Hinted::error(
                format!(
                    "no sandbox listens on {addr}, and starting one failed: {e}; what holds the \
                     address did not answer /_sandbox/info within {}",
                    crate::azure::retry::format_duration(INFO_WAIT)
                ),
                "start one with `provision sandbox serve`, or free the address",
            ));
        }
        Err(e) => {
            let hint = match e.downcast_ref::<StateDirError>() {
                Some(dir) => dir.hint.clone().unwrap_or_default(),
                None => "start one with `provision sandbox serve`, or free the address".to_owned(),
            };
            return Err(Hinted::error(
                format!("no sandbox listens on {addr}, and starting one failed: {e}"),
                hint,
            ));
        }
    };
    printer.note(&format!(
        "started the sandbox on {addr} for this command (state in {EMBEDDED_STATE_DIR}/)"
    ));
    Ok(Some(Embedded {
        sandbox,
        quiet: printer.quiet(),
        linger,
    }))
}

fn address_taken(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Whether `addr` answers `GET /_sandbox/info` within [`INFO_WAIT`]: the run that took the
/// address a moment ago may still be starting its sandbox.
async fn answers_as_sandbox(addr: SocketAddr) -> bool {
    // reqwest is built without a crypto provider; the transport installs the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(INFO_POLL * 5)
        .build()
    else {
        return false;
    };
    let url = format!("http://{addr}/_sandbox/info");
    let until = tokio::time::Instant::now() + INFO_WAIT;
    loop {
        let answered = client
            .get(&url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(response) = answered
            && response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|info| info.get("base_url").is_some())
        {
            return true;
        }
        if tokio::time::Instant::now() + INFO_POLL > until {
            return false;
        }
        tokio::time::sleep(INFO_POLL).await;
    }
}

/// The credential this run uses: `--auth`, else the environment's `auth:`, checked against the
/// cloud, then resolved against the process environment.
pub(super) fn credential_plan(
    azure: &AzureArgs,
    blueprint: &Blueprint,
) -> anyhow::Result<CredentialPlan> {
    let choice: AuthChoice = azure.auth.unwrap_or(blueprint.auth);
    if let Err((message, hint)) = auth_fits_cloud(choice, blueprint.cloud) {
        return Err(Hinted::error(format!("--auth {choice}: {message}"), hint));
    }
    Ok(credential::plan(
        Some(choice),
        &credential::process_environment(),
    )?)
}

/// A runtime for one command: two workers, so an embedded sandbox answers while the command
/// waits on it.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
