//! `provision plan --env <name>`: what `up` would change, read from Azure and Entra (no state
//! file), with security findings, as a tree or JSON lines. With `--destroy`, what `down` would
//! delete, purge and leave alone. With `--out FILE`, the plan is also saved for `up --plan`.

use super::{ExitStatus, checked_bound, runtime};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::engine::saved::SavedPlan;
use crate::output::{Printer, down, markdown, plan as show};
use crate::{embedded, engine, input};

pub fn run(global: &GlobalArgs, args: PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let (checked, inputs) = checked_bound(global, &args.env, &args.azure)?;
    if let Some(out) = &args.out {
        input::check_plan_out(out)?;
    }
    runtime()?.block_on(async {
        let timeout = args.azure.timeout;
        let _sandbox = embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let checked = super::with_lifetime(checked, None).await?;
        let expires = checked.blueprint.expires.clone();
        let connected = engine::connect(checked, timeout).await?;
        let changes = if args.destroy {
            let survey =
                engine::survey(&connected.azure, &connected.blueprint, &connected.resources)
                    .await?;
            if printer.markdown() {
                let ctx = markdown::Context::of(&connected.blueprint);
                printer.out_raw(&markdown::destroy(&ctx, &survey, args.purge));
            } else {
                down::preview(printer, &connected.blueprint.env, &survey, args.purge, true);
            }
            survey
                .doomed
                .iter()
                .any(|d| d.removal.is_some() || args.purge)
        } else {
            let (observation, plan) = connected.plan().await?;
            if printer.markdown() {
                let ctx = markdown::Context::of(&connected.blueprint);
                printer.out_raw(&markdown::plan(&ctx, &plan));
            } else {
                show::print(printer, &connected.blueprint.env, &plan, true);
            }
            if let Some(out) = &args.out {
                let env = &connected.blueprint.env;
                let saved = SavedPlan::new(env, inputs, expires, &plan, &observation);
                input::write_plan_file(out, &saved)?;
                show::saved(printer, out, &saved);
            }
            plan.has_changes()
        };
        Ok(if args.detailed_exitcode && changes {
            ExitStatus::Changes
        } else {
            ExitStatus::Success
        })
    })
}
