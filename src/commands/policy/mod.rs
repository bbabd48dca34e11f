//! `provision policy test|eval|diff`: the policy engine from the command line. `policy diff
//! --env` is the drift gate for the policy alone: what APIM stores against a fresh live render.

mod eval;
mod test;

use super::ExitStatus;
use crate::cli::{GlobalArgs, PolicyArgs, PolicyCommand, PolicyDiffArgs};
use crate::hint::Hinted;
use crate::input;
use crate::output::Printer;
use crate::output::events::{ChangeKind, JsonLine};
use crate::policy::Change;
use crate::policy::Document;

pub fn run(global: &GlobalArgs, args: PolicyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match args.command {
        PolicyCommand::Test(a) => test::run(global, a, printer),
        PolicyCommand::Eval(a) => eval::run(a, printer),
        PolicyCommand::Diff(a) => diff(global, a, printer),
    }
}

fn diff(
    global: &GlobalArgs,
    args: PolicyDiffArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let (old, new) = match (&args.env, &args.old, &args.new) {
        (Some(env), _, _) => live(global, env, &args, printer)?,
        (None, Some(old), Some(new)) => {
            (input::policy_document(old)?, input::policy_document(new)?)
        }
        // clap requires OLD and NEW without --env.
        _ => anyhow::bail!("give OLD and NEW policy files, or --env ENV"),
    };
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
        let what = match &args.env {
            Some(env) => format!(
                "the policy stored in {env}'s API Management is a fresh render's, in meaning"
            ),
            None => "the policies are equal in meaning".to_owned(),
        };
        printer.note(&what);
        Ok(ExitStatus::Success)
    } else {
        if let Some(env) = &args.env {
            printer.note(&printer.hint_text(&format!(
                "`provision up --env {env}` stores the fresh render; `provision plan --env {env}` \
                 shows this with the rest of the environment"
            )));
        }
        Ok(ExitStatus::Changes)
    }
}

/// The stored policy (old) and a fresh live render (new) of an environment.
fn live(
    global: &GlobalArgs,
    env: &str,
    args: &PolicyDiffArgs,
    printer: &Printer,
) -> anyhow::Result<(Document, Document)> {
    let (blueprint, live) = super::live_policy(global, env, &args.azure, printer)?;
    let Some(stored) = live.stored else {
        return Err(Hinted::error(
            format!(
                "environment {env}: API Management holds no policy for API {}",
                blueprint.api.id
            ),
            format!("run `provision up --env {env}`: it stores the policy"),
        ));
    };
    let parse = |what: &'static str, xml: &str| {
        Document::parse(xml).map_err(|e| anyhow::Error::new(e).context(what))
    };
    Ok((
        parse("the stored policy", &stored)?,
        parse("the rendered policy", &live.rendered)?,
    ))
}
