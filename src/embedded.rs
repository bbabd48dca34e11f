//! The sandbox a command starts for itself: with `cloud: sandbox` and nothing listening at the
//! environment's address, `plan` and `up` start one in this process and stop it when they end.
//! Entry layer: it talks to the terminal while it waits, and the engine must not know that the
//! cloud it signs in to is an emulator.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::config::Blueprint;
use crate::hint::{Hinted, Remedy};
use crate::output::Printer;
use crate::sandbox::{Sandbox, SandboxConfig, StateDirError};

/// Where the embedded sandbox keeps its state, so `up` and a later `plan` see the same one.
pub const EMBEDDED_STATE_DIR: &str = ".provision/sandbox";

/// How long the embedded sandbox must go without a client connection before it stops: long
/// enough to bridge another run's gap between one connection closing and the next opening.
const QUIET: Duration = Duration::from_millis(300);
/// How often a run that finds the address taken asks it for `/_sandbox/info`, and for how long.
const INFO_POLL: Duration = Duration::from_millis(100);
const INFO_WAIT: Duration = Duration::from_secs(5);

/// A sandbox this command started. Hold it until the command's clients are dropped. Another run started at the same moment connects to it
/// instead of starting its own (one process writes the state file), so it is not stopped under
/// that run: dropping waits until no client connection has been open for [`QUIET`], up to the
/// command's `--timeout`.
pub struct Embedded {
    sandbox: Sandbox,
    quiet: bool,
    linger: Duration,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Called on the thread that drives the command's future, not on a runtime worker, so
        // the sandbox keeps answering the other run while this waits.
        let started = std::time::Instant::now();
        let mut idle_since: Option<std::time::Instant> = None;
        let mut told = false;
        while started.elapsed() < self.linger {
            if self.sandbox.open_connections() == 0 {
                if idle_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= QUIET
                {
                    return;
                }
            } else {
                idle_since = None;
                if !told && !self.quiet && started.elapsed() >= QUIET {
                    eprintln!(
                        "waiting for another run using the sandbox on {} to finish before \
                         stopping it",
                        self.sandbox.addr()
                    );
                    told = true;
                }
            }
            // Real time on purpose: the other run is another process, on the system's clock.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// For `cloud: sandbox`, a sandbox at the environment's address: the one already listening, or
/// one started here with its state under [`EMBEDDED_STATE_DIR`], lingering up to `linger` for
/// other runs when dropped. When another run started one there a moment ago (the address turned
/// out taken), that one is used. Other clouds need none.
pub async fn sandbox_for(
    blueprint: &Blueprint,
    printer: &Printer,
    linger: Duration,
) -> anyhow::Result<Option<Embedded>> {
    if blueprint.cloud != Cloud::Sandbox {
        return Ok(None);
    }
    // A `--tls` sandbox (`sandbox.tls: true`) is served on its own, from the state directory its
    // certificate lives in: one started here would serve plain HTTP under another certificate.
    let (address, tls) = match blueprint.sandbox_address.strip_prefix("https://") {
        Some(address) => (address, true),
        None => (blueprint.sandbox_address.as_str(), false),
    };
    let addr: SocketAddr = address.parse().map_err(|e| {
        Hinted::error(
            format!("{}: sandbox.address {address}: {e}", blueprint.file),
            "write a loopback HOST:PORT, e.g. 127.0.0.1:7171",
        )
    })?;
    let listening = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if listening {
        return Ok(None);
    }
    if tls {
        return Err(Hinted::error(
            format!(
                "{}: no sandbox listens on {addr}, and `sandbox.tls: true` names one served \
                 separately",
                blueprint.file
            ),
            format!(
                "start it with `provision sandbox serve --tls --addr {addr} --state DIR` (its \
                 certificate is DIR/sandbox-cert.pem, the `sandbox.ca_file`)"
            ),
        ));
    }
    let started = Sandbox::start(SandboxConfig {
        addr,
        state_dir: Some(PathBuf::from(EMBEDDED_STATE_DIR)),
        ..SandboxConfig::default()
    })
    .await;
    let sandbox = match started {
        Ok(sandbox) => sandbox,
        Err(e) if address_taken(&e) => {
            if answers_as_sandbox(addr).await {
                printer.note(&format!(
                    "connected to the sandbox another run started on {addr} a moment ago"
                ));
                return Ok(None);
            }
            return Err(Hinted::error(
                format!(
                    "no sandbox listens on {addr}, and starting one failed: {e}; what holds the \
                     address did not answer /_sandbox/info within {}",
                    crate::clock::format_duration(INFO_WAIT)
                ),
                "start one with `provision sandbox serve`, or free the address",
            ));
        }
        Err(e) => {
            let hint = match e.downcast_ref::<StateDirError>() {
                Some(dir) => Remedy::hint(dir).map(Cow::into_owned).unwrap_or_default(),
                None => "start one with `provision sandbox serve`, or free the address".to_owned(),
            };
            return Err(Hinted::error(
                format!("no sandbox listens on {addr}, and starting one failed: {e}"),
                hint,
            ));
        }
    };
    printer.note(&format!(
        "started the sandbox on {addr} for this command (state in {EMBEDDED_STATE_DIR}/)"
    ));
    Ok(Some(Embedded {
        sandbox,
        quiet: printer.quiet(),
        linger,
    }))
}

/// Whether starting a sandbox failed because something already listens at its address (by the
/// error's kind: its text depends on the OS and the locale).
pub fn address_taken(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Whether `addr` answers `GET /_sandbox/info` within [`INFO_WAIT`]: the run that took the
/// address a moment ago may still be starting its sandbox.
async fn answers_as_sandbox(addr: SocketAddr) -> bool {
    // reqwest is built without a crypto provider; the transport installs the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(INFO_POLL * 5)
        .build()
    else {
        return false;
    };
    let url = format!("http://{addr}/_sandbox/info");
    let until = tokio::time::Instant::now() + INFO_WAIT;
    loop {
        let answered = client
            .get(&url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(response) = answered
            && response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|info| info.get("base_url").is_some())
        {
            return true;
        }
        if tokio::time::Instant::now() + INFO_POLL > until {
            return false;
        }
        // Real time on purpose: the sandbox being waited for is another process's.
        tokio::time::sleep(INFO_POLL).await;
    }
}
