//! `provision plan --env <name>`: what `up` would change, read from Azure and Entra (no state
//! file), with security findings, as a tree or JSON lines.

use super::ExitStatus;
use super::target::{connect, observe_and_plan, prepare, runtime};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::output::Printer;

pub fn run(global: &GlobalArgs, args: PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let prepared = prepare(global, &args.env, &args.azure)?;
    runtime()?.block_on(async {
        let target = connect(prepared, &args.azure, printer).await?;
        let (_, plan) = observe_and_plan(&target, printer, true).await?;
        Ok(if args.detailed_exitcode && plan.has_changes() {
            ExitStatus::Changes
        } else {
            ExitStatus::Success
        })
    })
}
