//! `provision plan --env <name>`: what `up` would change, read from Azure and Entra (no state
//! file), with security findings, as a tree or JSON lines. With `--destroy`, what `down` would
//! delete, purge and leave alone.

use super::{ExitStatus, checked, runtime};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::output::{Printer, down, markdown, plan as show};
use crate::{embedded, engine};

pub fn run(global: &GlobalArgs, args: PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let checked = checked(global, &args.env, &args.azure)?;
    runtime()?.block_on(async {
        let timeout = args.azure.timeout;
        let _sandbox = embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let checked = super::with_lifetime(checked, None).await?;
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
            let (_, plan) = connected.plan().await?;
            if printer.markdown() {
                let ctx = markdown::Context::of(&connected.blueprint);
                printer.out_raw(&markdown::plan(&ctx, &plan));
            } else {
                show::print(printer, &connected.blueprint.env, &plan, true);
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
