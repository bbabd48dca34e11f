//! `provision policy test --env <name>`: the environment's rendered policy against the built-in
//! token matrix and the given case files, offline.

use crate::cli::{GlobalArgs, PolicyTestArgs};
use crate::clock::{Clock as _, SystemClock};
use crate::commands::{ExitStatus, load_target, load_templates};
use crate::output::events::{Actual, Expected, JsonLine};
use crate::output::{ERROR, GOOD, Printer, markdown};
use crate::policy::harness::{self, CaseRun};
use crate::policy::simulator::Decision;
use crate::{input, render};

pub fn run(
    global: &GlobalArgs,
    args: PolicyTestArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let ids = harness::app_ids(&blueprint);
    let templates = load_templates(&global.templates_dir, &blueprint)?;
    let policy = render::render(&blueprint, &templates, &ids)?;
    let name = format!("{} (rendered)", render::output_file(&blueprint));
    let (_, model) = input::parse_policy(&name, policy.xml())?;
    let mut case_files = Vec::new();
    for file in &args.cases {
        let text = crate::config::read_yaml_file(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        case_files.push((file.display().to_string(), text));
    }
    let now = SystemClock.now_seconds();
    let runs = harness::run(
        &blueprint,
        &ids,
        &model,
        &case_files,
        &mut getrandom::SysRng,
        now,
    )
    .map_err(anyhow::Error::msg)?;
    let passed = runs.iter().filter(|r| r.passed).count();
    let failed = runs.len() - passed;
    if printer.markdown() {
        let ctx = markdown::Context::of(&blueprint);
        printer.out_raw(&markdown::policy_test(&ctx, &runs));
    } else if printer.json() {
        for run in &runs {
            report(printer, &blueprint.env, run);
        }
        let env = blueprint.env.clone();
        printer.emit(&JsonLine::TestSummary {
            env,
            passed,
            failed,
        });
    } else {
        for run in &runs {
            report(printer, &blueprint.env, run);
        }
        printer.out(&format!("{passed} passed, {failed} failed"));
    }
    Ok(if failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn report(printer: &Printer, env: &str, run: &CaseRun) {
    let (case, outcome) = (&run.case, &run.outcome);
    if printer.json() {
        printer.emit(&JsonLine::Case {
            env: env.to_owned(),
            source: run.source.clone(),
            name: case.name.clone(),
            passed: run.passed,
            expected: Expected {
                decision: case.expect.decision,
                status: case.expect.status,
                reason: case.expect.reason.clone(),
            },
            actual: Actual {
                decision: outcome.decision,
                status: outcome.status,
                reason: outcome.reason.clone(),
                detail: outcome.detail.clone(),
            },
        });
        return;
    }
    let actual = format!(
        "{} {}{}",
        outcome.status,
        decision(Some(outcome.decision)),
        with_space(&outcome.reason)
    );
    if run.passed {
        let pass = printer.paint(GOOD, "PASS");
        printer.out(&format!("{pass}  {:<52} {actual}", case.name));
        return;
    }
    let expected = format!(
        "{}{}{}",
        case.expect
            .status
            .map(|s| format!("{s} "))
            .unwrap_or_default(),
        decision(case.expect.decision),
        with_space(&case.expect.reason)
    );
    let fail = printer.paint(ERROR, "FAIL");
    printer.out(&format!(
        "{fail}  {:<52} expected {expected}, got {actual}",
        case.name
    ));
    if let Some(detail) = &outcome.detail {
        printer.out(&format!("      {detail} ({})", run.source));
    }
}

/// A decision as its JSON name (`allow`, `deny`…).
fn decision(d: Option<Decision>) -> String {
    d.and_then(|d| serde_json::to_value(d).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn with_space(reason: &Option<String>) -> String {
    reason.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
}
