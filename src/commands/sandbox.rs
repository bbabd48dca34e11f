//! `provision sandbox serve`: the local emulator in the foreground (`sandbox clock`: `sandbox_clock`).

use std::path::Path;

use super::ExitStatus;
use crate::cli::{SandboxArgs, SandboxCommand, SandboxServeArgs};
use crate::hint::Hinted;
use crate::output::{JsonLine, Printer, WARNING};
use crate::sandbox::{
    FaultProfile, FaultScript, LatencyProfile, Sandbox, SandboxConfig, StateDirError,
};

pub fn run(args: SandboxArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match args.command {
        SandboxCommand::Serve(a) => serve(a, printer),
        SandboxCommand::Clock(a) => super::sandbox_clock::run(a, printer),
    }
}

/// Settings from flags, checked before anything listens.
fn config(args: &SandboxServeArgs) -> anyhow::Result<SandboxConfig> {
    let (faults, fault_script) = match FaultProfile::parse(&args.faults) {
        Some(profile) => (profile, None),
        None if Path::new(&args.faults).is_file() => {
            let text = crate::config::read_yaml_file(Path::new(&args.faults))
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.faults))?;
            (
                FaultProfile::None,
                Some(FaultScript::parse(&args.faults, &text).map_err(anyhow::Error::msg)?),
            )
        }
        None => {
            return Err(Hinted::error(
                format!("--faults {}: not a profile and not a file", args.faults),
                "profiles are none, flaky and hostile; or give a YAML file of scripted faults",
            ));
        }
    };
    let latency = LatencyProfile::parse(&args.latency).ok_or_else(|| {
        Hinted::error(
            format!("--latency {}: unknown profile", args.latency),
            "profiles are instant and realistic",
        )
    })?;
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err(Hinted::error(
            format!(
                "--time-scale {}: must be a positive number",
                args.time_scale
            ),
            "e.g. --time-scale 10 runs ten times faster",
        ));
    }
    if args.tls && args.state.is_none() {
        return Err(Hinted::error(
            "--tls needs --state DIR",
            "the self-signed certificate is written to the state directory so clients can trust it",
        ));
    }
    Ok(SandboxConfig {
        addr: args.addr,
        allow_non_loopback: args.allow_non_loopback,
        state_dir: args.state.clone(),
        faults,
        fault_script,
        latency,
        time_scale: args.time_scale,
        seed: args.seed,
        tls: args.tls,
        apim_create_ms: args.apim_create_seconds.map(|s| s.saturating_mul(1000)),
        ..SandboxConfig::default()
    })
}

fn serve(args: SandboxServeArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let config = config(&args)?;
    if !args.addr.ip().is_loopback() && args.allow_non_loopback {
        printer.note(&printer.paint(
            WARNING,
            &format!("warning: listening on {}: anyone who can reach it gets the sandbox's test credentials", args.addr),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut sandbox = Sandbox::start(config).await.map_err(|e| {
            if let Some(dir) = e.downcast_ref::<StateDirError>() {
                let hint = dir.hint.clone().unwrap_or_default();
                return Hinted::error(format!("cannot start the sandbox: {dir}"), hint);
            }
            let hint = if crate::embedded::address_taken(&e) {
                "another process listens there: pick --addr 127.0.0.1:PORT"
            } else {
                "check --addr and --state"
            };
            Hinted::error(format!("cannot start the sandbox: {e}"), hint)
        })?;
        let info = sandbox.info();
        if printer.json() {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            printer.emit(&JsonLine::Sandbox {
                base_url: text(&info["base_url"]),
                login: text(&info["login"]),
                graph: text(&info["graph"]),
                arm: text(&info["arm"]),
                default_tenant: text(&info["default_tenant"]),
                subscriptions: info["subscriptions"]
                    .as_array()
                    .map(|s| s.iter().map(text).collect())
                    .unwrap_or_default(),
                operator_client_id: text(&info["operator"]["client_id"]),
            });
        } else {
            printer.out(&format!("sandbox listening on {}", sandbox.base_url()));
            printer.out(&format!(
                "  login:  {}/{}/v2.0",
                info["login"].as_str().unwrap_or_default(),
                info["default_tenant"].as_str().unwrap_or_default()
            ));
            printer.out(&format!(
                "  graph:  {}",
                info["graph"].as_str().unwrap_or_default()
            ));
            printer.out(&format!(
                "  arm:    {}",
                info["arm"].as_str().unwrap_or_default()
            ));
            printer.out(&format!(
                "  info:   {}/_sandbox/info (operator credentials for tests)",
                sandbox.base_url()
            ));
            if let Some(dir) = &args.state {
                printer.out(&format!("  state:  {}", dir.display()));
            }
        }
        printer.note("press Ctrl-C to stop");
        let stop = sandbox.stopper();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
        });
        sandbox.wait().await;
        printer.note("sandbox stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitStatus::Success)
}
