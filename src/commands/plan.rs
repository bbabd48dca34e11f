//! `provision plan --env <name>`: what `up` would change, read from Azure and Entra (no state
//! file), with security findings, as a tree or JSON lines.

use super::target::{connect, prepare, runtime};
use super::{ExitStatus, engine_error};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::engine;
use crate::output::{Printer, plan as show};

pub fn run(global: &GlobalArgs, args: PlanArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let prepared = prepare(global, &args.env, &args.azure)?;
    runtime()?.block_on(async {
        let target = connect(prepared, &args.azure, printer).await?;
        let observation = engine::observe(&target.azure, &target.resources)
            .await
            .map_err(engine_error)?;
        let plan = engine::plan(&target.resources, &observation);
        if printer.json() {
            for line in show::json_lines(&target.blueprint.env, &plan) {
                printer.emit(&line);
            }
        } else {
            printer.out(&show::human(&plan));
        }
        Ok(if args.detailed_exitcode && plan.has_changes() {
            ExitStatus::Changes
        } else {
            ExitStatus::Success
        })
    })
}
