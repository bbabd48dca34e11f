//! `provision doctor --env <name>`: the checks `up` runs before its first write, read-only and in
//! seconds, each with what to do. Exit 1 when one fails; warnings pass.

use super::{ExitStatus, load_target, runtime};
use crate::cli::{DoctorArgs, GlobalArgs};
use crate::engine;
use crate::output::events::JsonLine;
use crate::output::{ERROR, GOOD, Printer, WARNING};
use crate::resources::preflight::{Check, Outcome};

pub fn run(global: &GlobalArgs, args: DoctorArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let credential = engine::credential_plan(args.azure.auth, &blueprint)?;
    let (_, checks) =
        runtime()?.block_on(engine::doctor(&blueprint, &credential, args.azure.timeout))?;
    let count = |o: Outcome| checks.iter().filter(|c| c.outcome == o).count();
    let (passed, warnings, failed) = (
        count(Outcome::Pass),
        count(Outcome::Warn),
        count(Outcome::Fail),
    );
    let env = blueprint.env.clone();
    for check in &checks {
        print(printer, &env, check);
    }
    if printer.json() {
        printer.emit(&JsonLine::DoctorSummary {
            env,
            passed,
            warnings,
            failed,
        });
    } else {
        printer.out(&format!(
            "{env}: {passed} passed, {warnings} warning(s), {failed} failed"
        ));
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn print(printer: &Printer, env: &str, check: &Check) {
    if printer.json() {
        printer.emit(&JsonLine::PreflightCheck {
            env: env.to_owned(),
            check: check.check.to_owned(),
            status: check.outcome,
            message: check.message.clone(),
            hint: check.hint.clone(),
        });
        return;
    }
    let status = match check.outcome {
        Outcome::Pass => printer.paint(GOOD, "ok     "),
        Outcome::Warn => printer.paint(WARNING, "warning"),
        Outcome::Fail => printer.paint(ERROR, "error  "),
    };
    let mut text = format!("{status} {}: {}", check.check, check.message);
    if let (Some(hint), false) = (&check.hint, check.outcome == Outcome::Pass) {
        text.push_str(&format!("\n        {}", printer.hint_text(hint)));
    }
    printer.out(&text);
}
