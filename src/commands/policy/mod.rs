//! `provision policy test|eval|diff`: the policy engine from the command line.

mod eval;
mod test;

use super::ExitStatus;
use crate::cli::{GlobalArgs, PolicyArgs, PolicyCommand, PolicyDiffArgs};
use crate::input;
use crate::output::Printer;
use crate::output::events::{ChangeKind, JsonLine};
use crate::policy::Change;

pub fn run(global: &GlobalArgs, args: PolicyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match args.command {
        PolicyCommand::Test(a) => test::run(global, a, printer),
        PolicyCommand::Eval(a) => eval::run(a, printer),
        PolicyCommand::Diff(a) => diff(a, printer),
    }
}

fn diff(args: PolicyDiffArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let old = input::policy_document(&args.old)?;
    let new = input::policy_document(&args.new)?;
    let differences = crate::policy::diff(&old, &new);
    for d in &differences {
        if !printer.json() {
            printer.out(&d.to_string());
            continue;
        }
        let (change, old, new) = match &d.change {
            Change::Added(v) => (ChangeKind::Added, None, Some(v.clone())),
            Change::Removed(v) => (ChangeKind::Removed, Some(v.clone()), None),
            Change::Changed { old, new } => {
                (ChangeKind::Changed, Some(old.clone()), Some(new.clone()))
            }
        };
        printer.emit(&JsonLine::PolicyDifference {
            path: d.path.clone(),
            attribute: d.attribute().map(str::to_owned),
            change,
            old,
            new,
        });
    }
    if differences.is_empty() {
        printer.note("the policies are equal in meaning");
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::Changes)
    }
}
