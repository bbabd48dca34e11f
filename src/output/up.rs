//! How `up` ends: how to call what was built (a few lines for people, an `outputs` line for
//! pipelines) and, with `--timings`, when each resource ran and which chain decided the total.

use std::time::Duration;

use super::Printer;
use super::events::{ClientApp, JsonLine};
use crate::clock::format_duration;
use crate::config::Blueprint;
use crate::engine::{Applied, Endpoint};
use crate::resources::Address;

/// What `up` did, in numbers.
pub struct Done {
    pub resources: usize,
    pub writes: usize,
    pub elapsed: Duration,
    /// The state directory of the sandbox this run started itself (none was listening): it
    /// stops with the run, so the URL above answers only while one is served from that state.
    pub sandbox_started: Option<String>,
}

/// How to call what was built.
pub fn summary(printer: &Printer, blueprint: &Blueprint, endpoint: &Endpoint, done: &Done) {
    let b = blueprint;
    if printer.json() {
        printer.emit(&JsonLine::Outputs {
            env: b.env.clone(),
            writes: done.writes,
            elapsed_ms: u64::try_from(done.elapsed.as_millis()).unwrap_or(u64::MAX),
            gateway_url: endpoint.gateway_url.clone(),
            api_path: b.api.path.clone(),
            api_url: endpoint.api_url.clone(),
            tenant_id: b.tenant_id.as_str().to_owned(),
            api_app_id: endpoint.api_app_id.clone(),
            scope: endpoint.scope.clone(),
            clients: endpoint
                .clients
                .iter()
                .map(|(unique_name, app_id)| ClientApp {
                    unique_name: unique_name.clone(),
                    app_id: app_id.clone(),
                })
                .collect(),
        });
        return;
    }
    let state = if done.writes == 0 {
        format!(
            "{} is up to date ({} resources, no changes, {})",
            b.env,
            done.resources,
            format_duration(done.elapsed)
        )
    } else {
        format!(
            "{} is up ({} resources, {} writes, {})",
            b.env,
            done.resources,
            done.writes,
            format_duration(done.elapsed)
        )
    };
    let (url, scope) = (&endpoint.api_url, &endpoint.scope);
    let mut text = format!(
        "{state}.\n\n  api url   {url}\n  tenant    {}\n  scope     {scope}\n",
        b.tenant_id,
    );
    for (name, id) in &endpoint.clients {
        text.push_str(&format!("  client    {id}  ({name})\n"));
    }
    text.push_str(&format!(
        "\nA client signs in with the device code flow as one of the clients above, asking for {scope}, \
         and sends the token as `Authorization: Bearer …` to {url}."
    ));
    text.push_str(&format!(
        "\n\nNext: sign in, call the model and prove the boundary holds:\n  provision token --env {env}\n  \
         provision call --env {env} --message hello\n  provision verify --env {env}",
        env = b.env
    ));
    if let Some(state) = &done.sandbox_started {
        text.push_str(&format!(
            "\n\nThis run started the sandbox and it stops with the run; to call {url}, keep one \
             running with the same state: `provision sandbox serve --state {state}`."
        ));
    }
    printer.out(&text);
}

/// Each resource's start and end, and the chain of dependencies that decided the total.
pub fn timings(printer: &Printer, applied: &Applied, critical_path: &[Address]) {
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
    text.push_str("critical path:\n");
    for address in critical_path {
        if let Some((start, end)) = applied.timings.get(address) {
            text.push_str(&format!(
                "  {address} ({})\n",
                format_duration(*end - *start)
            ));
        }
    }
    printer.note(text.trim_end());
}
