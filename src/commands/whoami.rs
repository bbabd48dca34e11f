//! `provision whoami --env <name>`: signs in the way `plan` and `up` will, reads the
//! environment's subscription, and says who the tool is in that tenant. The first thing to run in
//! a new pipeline.

use super::{ExitStatus, load_target, runtime};
use crate::cli::{GlobalArgs, WhoamiArgs};
use crate::config::Blueprint;
use crate::engine::{self, Identity};
use crate::output::Printer;
use crate::output::events::{JsonLine, Subscription};

pub fn run(global: &GlobalArgs, args: WhoamiArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let credential = engine::credential_plan(args.azure.auth, &blueprint)?;
    let identity =
        runtime()?.block_on(engine::whoami(&blueprint, &credential, args.azure.timeout))?;
    print(printer, &blueprint, identity);
    Ok(ExitStatus::Success)
}

fn print(printer: &Printer, blueprint: &Blueprint, identity: Identity) {
    if let Some(tenant) = &identity.tenant_id
        && !tenant.eq_ignore_ascii_case(blueprint.tenant_id.as_str())
    {
        printer.note(&format!(
            "warning: signed in to tenant {tenant}, but {} names tenant {}",
            blueprint.file, blueprint.tenant_id
        ));
    }
    if printer.json() {
        printer.emit(&JsonLine::Whoami {
            env: blueprint.env.clone(),
            cloud: blueprint.cloud,
            credential: identity.credential,
            tenant_id: identity.tenant_id,
            object_id: identity.object_id,
            app_id: identity.app_id,
            subscription: Subscription {
                id: blueprint.subscription_id.as_str().to_owned(),
                display_name: identity.subscription_name,
                state: identity.subscription_state,
            },
        });
        return;
    }
    let dash = || "-".to_owned();
    printer.out(&format!(
        "environment   {} (cloud {})\nsigned in     {}\ntenant        {}\nprincipal     {}{}\nsubscription  {} ({}, {})",
        blueprint.env,
        blueprint.cloud,
        identity.credential,
        identity.tenant_id.unwrap_or_else(dash),
        identity.object_id.unwrap_or_else(dash),
        identity.app_id.map(|a| format!(" (app {a})")).unwrap_or_default(),
        identity.subscription_name,
        blueprint.subscription_id,
        identity.subscription_state,
    ));
}
