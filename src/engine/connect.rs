//! What `plan`, `up` and `whoami` do before reading any resource: the credential chosen and
//! checked against the cloud, the templates rendered once with stand-in ids (so a template error
//! stops the command before any request), signed in, the signed-in tenant checked against the
//! environment's, and the inventory of resources built.

use std::sync::Arc;
use std::time::Duration;

use crate::access::AuthChoice;
use crate::azure::Azure;
use crate::azure::credential::{self, CredentialPlan};
use crate::azure::retry::Deadline;
use crate::azure::transport::{ReqwestTransport, Transport};
use crate::clock::{Clock, OffsetClock, SignedDuration, SystemClock};
use crate::cloud::Cloud;
use crate::config::{Blueprint, auth_fits_cloud};
use crate::hint::Hinted;
use crate::render::{self, TemplateSet};
use crate::resources::{self, Managed};

/// An environment, checked before the network: its templates render, its credential fits.
#[derive(Clone)]
pub struct Checked {
    pub blueprint: Arc<Blueprint>,
    templates: Arc<TemplateSet>,
    credential: CredentialPlan,
}

/// An environment signed in to, with the resources it manages.
pub struct Connected {
    pub blueprint: Arc<Blueprint>,
    pub azure: Azure,
    pub resources: Arc<Vec<Box<dyn Managed>>>,
    /// The location's model catalog, as read for the plan (`None`: refused), for the preflight.
    pub catalog: Option<resources::models::Catalog>,
    /// The environment's wall clock (the sandbox's own for the sandbox cloud).
    pub clock: Arc<dyn Clock>,
}

/// Everything that can be checked before the network; `auth` overrides the environment's.
pub fn check(
    blueprint: Blueprint,
    templates: TemplateSet,
    auth: Option<AuthChoice>,
) -> anyhow::Result<Checked> {
    render::render_preview(&blueprint, &templates)?;
    let credential = credential_plan(auth, &blueprint)?;
    Ok(Checked {
        blueprint: Arc::new(blueprint),
        templates: Arc::new(templates),
        credential,
    })
}

impl Checked {
    /// Marks what `up` creates to expire at `expires` (RFC 3339).
    pub fn with_expiry(self, expires: String) -> Checked {
        let mut blueprint = Arc::unwrap_or_clone(self.blueprint);
        blueprint.expires = Some(expires);
        Checked {
            blueprint: Arc::new(blueprint),
            ..self
        }
    }
}

/// Signs in (within `timeout`, retries included) and builds the inventory.
pub async fn connect(checked: Checked, timeout: Duration) -> anyhow::Result<Connected> {
    let Checked {
        blueprint,
        templates,
        credential,
    } = checked;
    let deadline = Deadline::after(timeout, format!("environment {}", blueprint.env));
    let azure = sign_in(&blueprint, &credential, deadline)?;
    let scope = blueprint
        .cloud
        .endpoints(&blueprint.sandbox_address)
        .arm_scope();
    same_tenant(&azure, &blueprint, &scope).await?;
    let catalog = super::read_catalog(&azure, &blueprint).await?;
    // Retirement is judged on the environment's clock: a sandbox moved past a retirement date
    // must see the model retired, as its inference endpoint already does.
    let clock = clock_for(&blueprint).await?;
    let models = match &catalog {
        Some(catalog) => resources::models::judge(&blueprint, catalog, clock.now()),
        None => {
            tracing::warn!(
                location = %blueprint.location,
                "the model catalog could not be read (403): model versions are not checked \
                 for retirement; grant Reader on the subscription to check them"
            );
            Default::default()
        }
    };
    let resources = Arc::new(resources::inventory(blueprint.clone(), templates, &models));
    Ok(Connected {
        blueprint,
        azure,
        resources,
        catalog,
        clock,
    })
}

/// The Azure clients for the environment's cloud, signing in with `credential`.
pub fn sign_in(
    blueprint: &Blueprint,
    credential: &CredentialPlan,
    deadline: Deadline,
) -> anyhow::Result<Azure> {
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let transport: Arc<dyn Transport> = Arc::new(transport(blueprint)?);
    Ok(Azure::connect(
        blueprint.cloud,
        &endpoints,
        credential,
        transport,
        deadline,
    )?)
}

/// The HTTP client for the environment's cloud: the platform's roots, and for a `--tls` sandbox
/// also the certificate its `sandbox.ca_file` names. Verification is never turned off: a
/// sandbox that serves another certificate is refused like any other host would be.
pub fn transport(blueprint: &Blueprint) -> anyhow::Result<ReqwestTransport> {
    let Some(pem) = sandbox_root(blueprint)? else {
        return Ok(ReqwestTransport::new()?);
    };
    ReqwestTransport::with_extra_root(&pem)
        .map_err(|e| Hinted::error(format!("{}: sandbox.ca_file: {e}", blueprint.file), CA_HINT))
}

/// The client for gateway and Foundry calls, trusting what [`transport`] trusts.
pub fn data_plane(blueprint: &Blueprint) -> anyhow::Result<crate::dataplane::DataPlane> {
    let pem = sandbox_root(blueprint)?;
    Ok(crate::dataplane::DataPlane::new(pem.as_deref())?)
}

const CA_HINT: &str = "point `sandbox.ca_file` at the `sandbox-cert.pem` in the `--state` \
                       directory of the `provision sandbox serve --tls` that listens at \
                       `sandbox.address`";

/// The PEM of `sandbox.ca_file`, when the environment trusts a TLS sandbox's certificate.
fn sandbox_root(blueprint: &Blueprint) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(ca_file) = &blueprint.sandbox_ca_file else {
        return Ok(None);
    };
    let hint = CA_HINT;
    let pem = std::fs::read(ca_file).map_err(|e| {
        Hinted::error(
            format!(
                "{}: sandbox.ca_file {}: {e}",
                blueprint.file,
                ca_file.display()
            ),
            hint,
        )
    })?;
    // reqwest takes a file without a certificate as an empty set of roots; saying so here beats
    // a TLS failure on the first request.
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Hinted::error(
            format!(
                "{}: sandbox.ca_file {}: no PEM certificate in the file",
                blueprint.file,
                ca_file.display()
            ),
            hint,
        ));
    }
    Ok(Some(pem))
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
        Some(_) => Ok(()),
        // Entra's ARM tokens are JWTs with a `tid`; one without cannot be checked, and saying so
        // beats passing in silence. ARM itself still refuses a token of another tenant.
        None => {
            tracing::warn!(
                "the ARM token carries no tenant (`tid`): cannot check that it is {}'s tenant {}",
                blueprint.env,
                blueprint.tenant_id
            );
            Ok(())
        }
    }
}

/// The credential this run uses: `auth` (from `--auth`), else the environment's `auth:`, checked
/// against the cloud, then resolved against the process environment.
pub fn credential_plan(
    auth: Option<AuthChoice>,
    blueprint: &Blueprint,
) -> anyhow::Result<CredentialPlan> {
    let choice: AuthChoice = auth.unwrap_or(blueprint.auth);
    if let Err((message, hint)) = auth_fits_cloud(choice, blueprint.cloud) {
        return Err(Hinted::error(format!("--auth {choice}: {message}"), hint));
    }
    Ok(credential::plan(
        Some(choice),
        &credential::process_environment(),
    )?)
}

impl Connected {
    /// Reads every resource (one GET each, concurrently) and plans what `up` would change.
    pub async fn plan(&self) -> Result<(super::Observation, super::Plan), super::EngineError> {
        let mut observation = super::observe(&self.azure, &self.resources).await?;
        let plan = super::plan(&self.resources, &observation);
        let (orphans, reads) =
            super::orphans(&self.azure, &self.blueprint, &self.resources, &observation).await?;
        observation.reads += reads;
        Ok((
            observation,
            super::with_orphans(plan, orphans, &self.blueprint.file),
        ))
    }
}

/// The environment's wall clock: the system's, or for the sandbox the sandbox's own (which
/// tests and operators move forward), so token expiry is judged on the clock that issued them.
pub async fn clock_for(blueprint: &Blueprint) -> anyhow::Result<Arc<dyn Clock>> {
    if blueprint.cloud != Cloud::Sandbox {
        return Ok(Arc::new(SystemClock));
    }
    let url = format!(
        "{}/_sandbox/clock",
        crate::cloud::sandbox_origin(&blueprint.sandbox_address)
    );
    let transport = transport(blueprint)?;
    let request =
        crate::azure::transport::WireRequest::new(crate::azure::transport::Method::Get, &url);
    let unreachable = |reason: String| {
        Hinted::error(
            format!("no sandbox answered at {url}: {reason}"),
            "start it with `provision sandbox serve`, or point the environment's sandbox.address at it",
        )
    };
    let response = transport
        .send(&request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let offset = response
        .body_json()
        .ok()
        .and_then(|b| b.get("offset_seconds").and_then(serde_json::Value::as_i64))
        .ok_or_else(|| {
            unreachable(format!(
                "HTTP {} without the sandbox's clock",
                response.status
            ))
        })?;
    Ok(Arc::new(OffsetClock::new(SignedDuration::from_secs(
        offset,
    ))))
}
