//! `provision plan --env <name>`: what `up` would change, read from Azure and Entra (no state
//! file), with security findings, as a tree or JSON lines.

use super::{ExitStatus, checked, runtime};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::output::{Printer, plan as show};
use crate::{embedded, engine};

pub fn run(global: &GlobalArgs, args: PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let checked = checked(global, &args.env, &args.azure)?;
    runtime()?.block_on(async {
        let timeout = args.azure.timeout;
        let _sandbox = embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let connected = engine::connect(checked, timeout).await?;
        let (_, plan) = connected.plan().await?;
        show::print(printer, &connected.blueprint.env, &plan, true);
        Ok(if args.detailed_exitcode && plan.has_changes() {
            ExitStatus::Changes
        } else {
            ExitStatus::Success
        })
    })
}
