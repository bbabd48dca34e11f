//! `provision whoami --env <name>`: signs in the way `plan` and `up` will, reads the
//! environment's subscription, and says who the tool is in that tenant. The first thing to run in
//! a new pipeline: a wrong credential fails here, in seconds, with the reason.

use std::sync::Arc;

use serde_json::json;

use super::target::{credential_plan, runtime};
use super::{ExitStatus, load_target};
use crate::azure::Azure;
use crate::azure::credential::CredentialPlan;
use crate::azure::retry::Deadline;
use crate::azure::transport::{ReqwestTransport, Transport};
use crate::cli::{AzureArgs, GlobalArgs, WhoamiArgs};
use crate::config::Blueprint;
use crate::hint::Hinted;
use crate::output::Printer;
use crate::policy::token::Jwt;

pub fn run(global: &GlobalArgs, args: WhoamiArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let plan = credential_plan(&args.azure, &blueprint)?;
    runtime()?.block_on(whoami(&blueprint, &plan, &args.azure, printer))
}

async fn whoami(
    blueprint: &Blueprint,
    plan: &CredentialPlan,
    args: &AzureArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new()?);
    let azure = Azure::connect(
        blueprint.cloud,
        &endpoints,
        plan,
        transport,
        Deadline::after(args.timeout, "sign-in"),
    )?;
    let token = azure
        .session
        .credentials()
        .token(&endpoints.arm_scope())
        .await?;
    // The claims say who we are; the token itself is never printed.
    let claims = Jwt::parse(token.expose()).ok();
    let claim = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.claim_str(name))
            .map(str::to_owned)
    };
    let subscription_id = format!("/subscriptions/{}", blueprint.subscription_id);
    let subscription = azure.arm.get(&subscription_id).await?.ok_or_else(|| {
        Hinted::error(
            format!(
                "{}: subscription {} is not visible to this identity",
                blueprint.file, blueprint.subscription_id
            ),
            "check `subscription_id` in the environment file, and that the identity has a role \
             on the subscription",
        )
    })?;
    let tenant = claim("tid");
    let object_id = claim("oid");
    let app_id = claim("appid").or_else(|| claim("azp"));
    let name = subscription
        .get("displayName")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let state = subscription
        .get("state")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if tenant
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case(blueprint.tenant_id.as_str()))
    {
        printer.note(&format!(
            "warning: signed in to tenant {}, but {} names tenant {}",
            tenant.as_deref().unwrap_or_default(),
            blueprint.file,
            blueprint.tenant_id
        ));
    }
    if printer.json() {
        printer.emit(&json!({
            "type": "whoami",
            "env": blueprint.env,
            "cloud": blueprint.cloud,
            "credential": azure.session.credentials().method(),
            "tenant_id": tenant,
            "object_id": object_id,
            "app_id": app_id,
            "subscription": {
                "id": blueprint.subscription_id.as_str(),
                "display_name": name,
                "state": state,
            },
        }));
    } else {
        let dash = || "-".to_owned();
        printer.out(&format!(
            "environment   {} (cloud {})\nsigned in     {}\ntenant        {}\nprincipal     {}{}\nsubscription  {} ({}, {})",
            blueprint.env,
            blueprint.cloud,
            azure.session.credentials().method(),
            tenant.unwrap_or_else(dash),
            object_id.unwrap_or_else(dash),
            app_id.map(|a| format!(" (app {a})")).unwrap_or_default(),
            name,
            blueprint.subscription_id,
            state,
        ));
    }
    Ok(ExitStatus::Success)
}
