//! `provision up --env <name>`: plan, confirm where the environment is protected, apply as a
//! dependency graph, and say how to call the result. `up --plan FILE` applies a saved plan only
//! if nothing it was made from changed since.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::{ExitStatus, checked_bound, runtime};
use crate::cli::{GlobalArgs, UpArgs};
use crate::clock::format_duration;
use crate::engine::{self, Applied};
use crate::hint::Hinted;
use crate::output::progress::Progress;
use crate::output::{Printer, plan as show, up as done};
use crate::{embedded, input};

pub fn run(global: &GlobalArgs, args: UpArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    // `--plan`: the saved plan, its environment, and the same inputs it was made from.
    let saved = args.plan.as_deref().map(input::read_plan_file);
    let saved = saved.transpose()?;
    let env = match &saved {
        Some(saved) => saved.env_for(args.env.as_deref())?,
        None => args.env.clone().unwrap_or_default(),
    };
    let (checked, inputs) = checked_bound(global, &env, &args.azure)?;
    if let Some(saved) = &saved {
        saved.refuse_changed_inputs(&inputs)?;
    }
    runtime()?.block_on(async {
        let started = tokio::time::Instant::now();
        let timeout = args.azure.timeout;
        let sandbox = embedded::sandbox_for(&checked.blueprint, printer, timeout).await?;
        let checked = match &saved {
            Some(saved) => saved.bind(checked),
            None => super::with_lifetime(checked, args.ttl).await?,
        };
        let connected = engine::connect(checked, timeout).await?;
        if let Some(saved) = &saved {
            saved.refuse_expired(connected.clock.now())?;
        }
        let (observation, plan) = connected.plan().await?;
        if let Some(saved) = &saved {
            let stale = saved.stale_now(&plan, &observation);
            show::stale(printer, &env, &saved.file, &stale);
            saved.refuse_stale(&stale)?;
        }
        if !args.skip_preflight {
            let existing = engine::Existing::observed(&observation);
            let (azure, blueprint) = (&connected.azure, &connected.blueprint);
            let (catalog, now) = (connected.catalog.as_ref(), connected.clock.now());
            let checks = engine::preflight(azure, blueprint, catalog, &existing, now);
            if let Some(failed) = engine::first_failure(&checks.await) {
                return Err(failed);
            }
        }
        show::print(printer, &connected.blueprint.env, &plan, false);
        let applied = if !plan.has_changes() {
            if args.timings {
                printer.note(&format!(
                    "timings: nothing to apply; reading {} resources took {}",
                    connected.resources.len(),
                    format_duration(started.elapsed())
                ));
            }
            Applied {
                outputs: observation.known.clone(),
                ..Applied::default()
            }
        } else {
            let destructive = plan.summary().replace > 0;
            // Applying a reviewed plan is the approval.
            if (connected.blueprint.protected || destructive) && !args.yes && saved.is_none() {
                confirm(&connected.blueprint.env, destructive, printer)?;
            }
            let progress = Arc::new(Progress::new(printer.json(), printer.quiet()));
            let concurrency = usize::from(args.concurrency);
            let resources = connected.resources.clone();
            let events = progress.clone();
            let mut applied = engine::apply(
                &connected.azure,
                resources,
                &observation,
                concurrency,
                move |e| events.event(&e),
            )
            .await
            .map_err(engine::Stopped)?;
            if !plan.orphans.is_empty() {
                let orphans = engine::Survey {
                    doomed: plan.orphans.clone(),
                    ..engine::Survey::default()
                };
                let events = progress.clone();
                let removed =
                    engine::teardown(&connected.azure, &orphans, false, concurrency, move |e| {
                        events.event(&e)
                    })
                    .await
                    .map_err(engine::Stopped)?;
                applied.writes += removed.writes;
            }
            if args.timings {
                let path = engine::critical_path(&connected.resources, &applied);
                done::timings(printer, &applied, &path);
            }
            applied
        };
        let endpoint = engine::endpoint(&connected.blueprint, &applied.outputs);
        let numbers = done::Done {
            resources: connected.resources.len(),
            writes: applied.writes,
            elapsed: started.elapsed(),
            sandbox_started: sandbox
                .is_some()
                .then(|| embedded::EMBEDDED_STATE_DIR.to_owned()),
        };
        done::summary(printer, &connected.blueprint, &endpoint, &numbers);
        Ok(ExitStatus::Success)
    })
}

/// A protected environment, or a destructive change (a replacement), goes ahead only with a
/// yes: typed at a terminal, or `--yes`.
fn confirm(env: &str, destructive: bool, printer: &Printer) -> anyhow::Result<()> {
    let why = if destructive {
        format!("`up` would replace resources of environment {env} (see `replaced:` above)")
    } else {
        format!("environment {env} is protected, and `up` would change it")
    };
    if !std::io::stdin().is_terminal() || printer.json() {
        return Err(Hinted::error(
            why,
            "review the plan above and run again with --yes",
        ));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{why}. Apply these changes? [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Hinted::error(
            "not applied: the answer was not yes",
            "nothing was changed",
        ))
    }
}
