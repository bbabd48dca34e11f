//! `provision up --env <name>`: plan, confirm where the environment is protected, apply as a
//! dependency graph, and say how to call the result.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::ExitStatus;
use super::target::{Target, connect, observe_and_plan, prepare, runtime};
use crate::azure::retry::format_duration;
use crate::cli::{GlobalArgs, UpArgs};
use crate::engine::{self, Applied};
use crate::hint::Hinted;
use crate::output::Printer;
use crate::output::progress::Progress;
use crate::resources::apim::{ApimService, GATEWAY_URL};
use crate::resources::entra::{APP_ID, ApiApp, ClientApp};
use crate::resources::{Address, Managed};

pub fn run(global: &GlobalArgs, args: UpArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let prepared = prepare(global, &args.env, &args.azure)?;
    runtime()?.block_on(async {
        let started = tokio::time::Instant::now();
        let target = connect(prepared, &args.azure, printer).await?;
        let (observation, plan) = observe_and_plan(&target, printer, false).await?;
        if !plan.has_changes() {
            if args.timings {
                printer.note(&format!(
                    "timings: nothing to apply; reading {} resources took {}",
                    target.resources.len(),
                    format_duration(started.elapsed())
                ));
            }
            let applied = Applied {
                outputs: observation.known.clone(),
                ..Applied::default()
            };
            summary(&target, &applied, started.elapsed(), printer);
            return Ok(ExitStatus::Success);
        }
        if target.blueprint.protected && !args.yes {
            confirm(&target, printer)?;
        }
        let progress = Arc::new(Progress::new(printer.json(), printer.quiet()));
        let events = progress.clone();
        let applied = engine::apply(
            &target.azure,
            target.resources.clone(),
            &observation,
            usize::from(args.concurrency),
            move |event| events.event(&event),
        )
        .await
        .map_err(engine::Stopped)?;
        if args.timings {
            timings(&target, &applied, printer);
        }
        summary(&target, &applied, started.elapsed(), printer);
        Ok(ExitStatus::Success)
    })
}

/// A protected environment changes only with a yes: typed at a terminal, or `--yes`.
fn confirm(target: &Target, printer: &Printer) -> anyhow::Result<()> {
    let env = &target.blueprint.env;
    if !std::io::stdin().is_terminal() || printer.json() {
        return Err(Hinted::error(
            format!("environment {env} is protected, and `up` would change it"),
            "review the plan above and run again with --yes",
        ));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "environment {env} is protected. Apply these changes? [y/N] "
    );
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

/// How to call what was built.
fn summary(target: &Target, applied: &Applied, elapsed: Duration, printer: &Printer) {
    let b = &target.blueprint;
    let known = &applied.outputs;
    let gateway = known
        .get(&ApimService::address_of(b), GATEWAY_URL)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let api_app = known
        .get(&ApiApp::address_of(b), APP_ID)
        .unwrap_or_default()
        .to_owned();
    let scope = format!("api://{api_app}/{}", b.entra.api.scope);
    let clients: Vec<(String, String)> = b
        .entra
        .clients
        .iter()
        .map(|c| {
            let id = known
                .get(&ClientApp::address_of(c), APP_ID)
                .unwrap_or_default();
            (c.unique_name.clone(), id.to_owned())
        })
        .collect();
    let url = format!("{gateway}/{}", b.api.path);
    if printer.json() {
        printer.emit(&json!({
            "type": "outputs",
            "env": b.env,
            "writes": applied.writes,
            "elapsed_ms": elapsed.as_millis() as u64,
            "gateway_url": gateway,
            "api_path": b.api.path,
            "api_url": url,
            "tenant_id": b.tenant_id.as_str(),
            "api_app_id": api_app,
            "scope": scope,
            "clients": clients.iter().map(|(n, id)| json!({"unique_name": n, "app_id": id})).collect::<Vec<_>>(),
        }));
        return;
    }
    let state = if applied.writes == 0 {
        format!(
            "{} is up to date ({} resources, no changes, {})",
            b.env,
            target.resources.len(),
            format_duration(elapsed)
        )
    } else {
        format!(
            "{} is up ({} resources, {} writes, {})",
            b.env,
            target.resources.len(),
            applied.writes,
            format_duration(elapsed)
        )
    };
    let mut text = format!(
        "{state}.\n\n  api url   {url}\n  tenant    {}\n  scope     {scope}\n",
        b.tenant_id,
    );
    for (name, id) in &clients {
        text.push_str(&format!("  client    {id}  ({name})\n"));
    }
    text.push_str(&format!(
        "\nA client signs in with the device code flow as one of the clients above, asking for {scope}, \
         and sends the token as `Authorization: Bearer …` to {url}."
    ));
    printer.out(&text);
}

/// Each resource's start and end, and the chain of dependencies that decided the total.
fn timings(target: &Target, applied: &Applied, printer: &Printer) {
    let mut rows: Vec<(&Address, &(Duration, Duration))> = applied.timings.iter().collect();
    rows.sort_by_key(|(_, (start, _))| *start);
    let mut text = String::from("timings (start → end):\n");
    for (address, (start, end)) in &rows {
        text.push_str(&format!(
            "  {:>8} → {:>8}  {address}\n",
            format_duration(*start),
            format_duration(*end)
        ));
    }
    let path = critical_path(&target.resources, applied);
    text.push_str("critical path:\n");
    for address in &path {
        let (start, end) = applied.timings[address];
        text.push_str(&format!("  {address} ({})\n", format_duration(end - start)));
    }
    printer.note(text.trim_end());
}

/// From the resource that ended last, back through the dependency that ended last each time.
fn critical_path(resources: &[Box<dyn Managed>], applied: &Applied) -> Vec<Address> {
    let end = |a: &Address| applied.timings.get(a).map(|t| t.1);
    let mut path = Vec::new();
    let mut current = applied
        .timings
        .iter()
        .max_by_key(|(_, (_, end))| *end)
        .map(|(a, _)| a.clone());
    while let Some(address) = current {
        let deps = resources
            .iter()
            .find(|r| r.address() == address)
            .map(|r| r.depends_on())
            .unwrap_or_default();
        current = deps
            .into_iter()
            .filter(|d| end(d).is_some())
            .max_by_key(|d| end(d));
        path.push(address);
    }
    path.reverse();
    path
}
