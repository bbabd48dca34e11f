//! `provision down --env <name>`: find everything carrying the environment's marks, show it as a
//! preview, ask where the environment is protected, then remove it dependents first (and purge
//! the soft-deleted copies with `--purge`).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::{ExitStatus, checked, runtime};
use crate::cli::{DownArgs, GlobalArgs};
use crate::embedded;
use crate::engine;
use crate::hint::Hinted;
use crate::output::progress::Progress;
use crate::output::{Printer, down as show};

pub fn run(global: &GlobalArgs, args: DownArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let checked = checked(global, &args.env, &args.azure)?;
    if checked.blueprint.protected && !args.force && !args.expired {
        return Err(Hinted::error(
            format!(
                "environment {} is protected: `down` would delete it",
                checked.blueprint.env
            ),
            "nothing was read or changed; to tear it down anyway, run again with --force (and \
             --yes in a pipeline)",
        ));
    }
    runtime()?.block_on(async {
        let started = tokio::time::Instant::now();
        let timeout = args.azure.timeout;
        let _sandbox = embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let connected = engine::connect(checked, timeout).await?;
        if args.expired {
            return expired(&connected, &args, printer).await;
        }
        let env = connected.blueprint.env.clone();
        let survey =
            engine::survey(&connected.azure, &connected.blueprint, &connected.resources).await?;
        show::preview(printer, &env, &survey, args.purge, false);
        if connected.blueprint.protected && !args.yes {
            confirm(&env, printer)?;
        }
        let progress = Arc::new(Progress::new(printer.json(), printer.quiet()));
        let events = progress.clone();
        let torn = engine::teardown(
            &connected.azure,
            &survey,
            args.purge,
            usize::from(args.concurrency),
            move |e| events.event(&e),
        )
        .await
        .map_err(|e| {
            Hinted::error(
                format!("{e}\n  what was removed stays removed"),
                format!(
                    "run `provision down --env {env}` again: it finds what is left from the marks"
                ),
            )
        })?;
        show::summary(printer, &env, &torn, started.elapsed());
        // `--purge` was asked for and not all of it could be done: an error, in every format.
        match torn.refused.len() {
            0 => Ok(ExitStatus::Success),
            n => Err(Hinted::error(
                format!("{n} purge(s) refused; everything else was torn down"),
                "purging needs rights at the subscription (API Management Service Contributor, \
                 Cognitive Services Contributor) or in the directory: run `down --purge` again \
                 as such an identity, or let the names free themselves",
            )),
        }
    })
}

/// `down --expired`: every environment whose expiry mark has passed, from the marks alone, each
/// torn down with a purge.
async fn expired(
    connected: &engine::Connected,
    args: &DownArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let now = connected.clock.now();
    let subscription = connected.blueprint.subscription_id.to_string();
    let found = engine::expired(&connected.azure, &subscription, now).await?;
    printer.note(&format!("{} expired environment(s) at {now}", found.len()));
    for e in &found {
        printer.note(&format!("  {} expired at {}", e.env, e.expires));
    }
    for e in found {
        let started = tokio::time::Instant::now();
        let scope = engine::Scope::marks_only(&e.env, &subscription);
        let survey = engine::survey_marks(&connected.azure, &scope).await?;
        show::preview(printer, &e.env, &survey, true, false);
        let progress = Arc::new(Progress::new(printer.json(), printer.quiet()));
        let events = progress.clone();
        let concurrency = usize::from(args.concurrency);
        let torn = engine::teardown(&connected.azure, &survey, true, concurrency, move |ev| {
            events.event(&ev)
        })
        .await?;
        show::summary(printer, &e.env, &torn, started.elapsed());
    }
    Ok(ExitStatus::Success)
}

/// A protected environment goes only when its name is typed at a terminal, or with `--yes`.
fn confirm(env: &str, printer: &Printer) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() || printer.json() {
        return Err(Hinted::error(
            format!("environment {env} is protected, and `down` would delete it"),
            "review the preview above and run again with --force --yes",
        ));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "environment {env} is protected. Type its name to delete everything above: "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == env {
        Ok(())
    } else {
        Err(Hinted::error(
            "not torn down: the answer was not the environment's name",
            "nothing was changed",
        ))
    }
}
