//! What `plan` and `up` share: the environment resolved, its templates loaded, signed in, the
//! inventory of resources built, and for `cloud: sandbox` a sandbox to talk to (started in this
//! process when none listens at the environment's address).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{engine_error, load_target, load_templates};
use crate::azure::Azure;
use crate::azure::credential::{self, AuthChoice, CredentialPlan};
use crate::azure::retry::Deadline;
use crate::azure::transport::{ReqwestTransport, Transport};
use crate::cli::{AzureArgs, GlobalArgs};
use crate::cloud::Cloud;
use crate::config::{Blueprint, auth_fits_cloud};
use crate::engine::{self, Observation, Plan};
use crate::output::{Hinted, Printer, plan as show};
use crate::render::{self, TemplateSet};
use crate::resources::{self, Managed};
use crate::sandbox::{Sandbox, SandboxConfig};

/// Where the embedded sandbox keeps its state, so `up` and a later `plan` see the same one.
pub const EMBEDDED_STATE_DIR: &str = ".provision/sandbox";

pub(super) struct Target {
    pub blueprint: Arc<Blueprint>,
    pub azure: Azure,
    pub resources: Arc<Vec<Box<dyn Managed>>>,
    /// The sandbox this process started: held, not read; dropping it stops the sandbox.
    pub _sandbox: Option<Sandbox>,
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
        Cloud::Sandbox => ensure_sandbox(&blueprint, printer).await?,
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
    let observation = engine::observe(&target.azure, &target.resources)
        .await
        .map_err(engine_error)?;
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
/// its state under [`EMBEDDED_STATE_DIR`].
async fn ensure_sandbox(
    blueprint: &Blueprint,
    printer: &Printer,
) -> anyhow::Result<Option<Sandbox>> {
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
    let sandbox = Sandbox::start(SandboxConfig {
        addr,
        state_dir: Some(PathBuf::from(EMBEDDED_STATE_DIR)),
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| {
        Hinted::error(
            format!("no sandbox listens on {addr}, and starting one failed: {e}"),
            "start one with `provision sandbox serve`, or free the address",
        )
    })?;
    printer.note(&format!(
        "started the sandbox on {addr} for this command (state in {EMBEDDED_STATE_DIR}/)"
    ));
    Ok(Some(sandbox))
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
