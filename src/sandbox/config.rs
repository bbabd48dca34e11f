//! How a sandbox runs: where it listens, what it remembers, how slow and how unreliable it is.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::faults::{FaultProfile, FaultScript};

/// Named latency profiles: durations in sandbox time, divided by the time scale on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyProfile {
    /// No added latency, no replication lag: for tests.
    #[default]
    Instant,
    /// Azure-like: tens of milliseconds per call, 10 s of directory replication lag.
    Realistic,
}

impl LatencyProfile {
    pub fn parse(name: &str) -> Option<LatencyProfile> {
        match name {
            "instant" => Some(LatencyProfile::Instant),
            "realistic" => Some(LatencyProfile::Realistic),
            _ => None,
        }
    }

    /// Added to every response, in sandbox milliseconds.
    pub fn request_ms(self) -> u64 {
        match self {
            LatencyProfile::Instant => 0,
            LatencyProfile::Realistic => 80,
        }
    }

    /// Between two frames of a streamed completion, in sandbox milliseconds: 20 ms a token is
    /// the 50 tokens/s a small GPT-4o-class deployment streams at.
    pub fn stream_frame_ms(self) -> u64 {
        match self {
            LatencyProfile::Instant => 0,
            LatencyProfile::Realistic => 20,
        }
    }

    /// How long a new app or service principal stays invisible to reads by alternate key.
    pub fn replication_lag_ms(self) -> u64 {
        match self {
            LatencyProfile::Instant => 0,
            LatencyProfile::Realistic => 10_000,
        }
    }
}

/// The async operations whose duration the latency profile sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    AccountCreate,
    AccountDelete,
    AccountPurge,
    DeploymentWrite,
    DeploymentDelete,
    ApimServiceCreate,
    ApimApiWrite,
    ApimNamedValueWrite,
    ResourceGroupDelete,
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one (tests).
    pub addr: SocketAddr,
    /// Listening beyond loopback needs this, and prints a warning.
    pub allow_non_loopback: bool,
    /// Persist state here (atomically, after every change) so separate runs share a sandbox.
    pub state_dir: Option<PathBuf>,
    pub faults: FaultProfile,
    pub fault_script: Option<FaultScript>,
    pub latency: LatencyProfile,
    /// What the sandbox simulates (operation durations, replication lag, device codes, latency)
    /// takes 1/`time_scale` of its nominal time; the clock itself keeps the system's pace.
    pub time_scale: f64,
    /// Seeds the fault dice, so a failure reproduces from its seed.
    pub seed: u64,
    /// Serve HTTPS with a self-signed certificate kept in the state directory.
    pub tls: bool,
    /// Overrides the profile's replication lag (sandbox ms).
    pub replication_lag_ms: Option<u64>,
    /// How long creating an APIM service takes (sandbox ms) under the `realistic` profile; real
    /// classic tiers take 30-45 minutes, which few demos want to wait for.
    pub apim_create_ms: Option<u64>,
    /// The device code poll interval the sandbox asks for (seconds, sandbox time).
    pub device_code_interval: u64,
    /// Device codes expire after this many seconds (sandbox time).
    pub device_code_expires_in: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            state_dir: None,
            faults: FaultProfile::None,
            fault_script: None,
            latency: LatencyProfile::Instant,
            time_scale: 1.0,
            seed: 1,
            tls: false,
            replication_lag_ms: None,
            apim_create_ms: None,
            device_code_interval: 5,
            device_code_expires_in: 900,
        }
    }
}

impl SandboxConfig {
    /// The replication lag in effect: explicit, else the fault profile's, else the latency profile's.
    pub fn replication_lag_ms(&self) -> u64 {
        self.replication_lag_ms.unwrap_or(match self.faults {
            FaultProfile::Flaky | FaultProfile::Hostile => {
                2_000.max(self.latency.replication_lag_ms())
            }
            FaultProfile::None => self.latency.replication_lag_ms(),
        })
    }

    /// How long an async operation takes, in sandbox milliseconds. `instant` makes every
    /// operation complete by the first poll (the first answer still shows it running, as Azure's
    /// does); `realistic` uses durations observed on Azure (foundry-arm.md §1.4, §1.5).
    pub fn operation_ms(&self, kind: OperationKind) -> u64 {
        if self.latency == LatencyProfile::Instant {
            return self
                .apim_create_ms
                .filter(|_| kind == OperationKind::ApimServiceCreate)
                .unwrap_or(0);
        }
        match kind {
            OperationKind::AccountCreate => 30_000,
            OperationKind::AccountDelete => 5_000,
            OperationKind::AccountPurge => 10_000,
            OperationKind::DeploymentWrite => 60_000,
            OperationKind::DeploymentDelete => 10_000,
            OperationKind::ApimServiceCreate => self.apim_create_ms.unwrap_or(60_000),
            OperationKind::ApimApiWrite | OperationKind::ApimNamedValueWrite => 5_000,
            OperationKind::ResourceGroupDelete => 15_000,
        }
    }

    pub fn state_file(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join("state.json"))
    }
}
