//! The sandbox: a local, faithful emulator of the Azure surfaces `provision` talks to (Entra ID
//! login, Microsoft Graph, Azure Resource Manager), with fault and latency profiles and persisted state.
//! It is the embedded default environment, the test double of every wire test and the stage for
//! fault and performance tests.
//!
//! Tests start it in-process with [`Sandbox::start`] on an ephemeral loopback port; `provision
//! sandbox serve` runs the same server in the foreground.
//!
//! Time. Everything the sandbox answers that depends on "now" (tokens' `iat`/`nbf`/`exp` and
//! their validation, device codes, async operations, soft-delete retention, replication lag,
//! `createdDateTime`, `systemData`…) reads one clock, `Shared::clock`: the system clock plus an
//! offset that only moves forward (`/_sandbox/clock/advance`, `provision sandbox clock advance
//! 48h`, [`Sandbox::advance`] in tests). The offset is kept in the state, so runs from the same
//! state agree on the time. Nothing happens on a timer: each request compares the records' instants
//! with the clock, so moving it forward is exactly as if that much time had passed.
//!
//! `--time-scale F` does not make the clock run faster: sandbox now = system now + offset, always.
//! It shortens what the sandbox simulates — operation durations, replication lag, device codes'
//! lifetime and poll interval, added latency — to 1/F of their nominal length on that clock.
//! Lifetimes Azure itself fixes (tokens: 60-90 minutes; deleted accounts: 48 h; deleted
//! directory items: 30 days) are not scaled: clients and real verifiers compare them with their
//! own clocks.

mod admin;
mod arm;
mod auth;
mod config;
mod faults;
mod files;
mod gateway;
mod graph;
mod guard;
pub mod inference;
mod listener;
mod login;
mod state;
mod time;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

pub use config::{LatencyProfile, SandboxConfig};
pub use faults::{Fault, FaultProfile, FaultScript};
pub use files::StateDirError;
pub use state::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, FOREIGN_TENANT, State};

use crate::clock::{Clock, ClockError, OffsetClock, SignedDuration, Timestamp};
use crate::policy::token::TokenSigner;
use faults::FaultEngine;
use state::{KeyRecord, Operator, Tenant, User};

/// One request as the sandbox answered it: what tests and benchmarks count and time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub status: u16,
    pub duration_ms: f64,
    /// The injected fault, if any (`script[0] call 2`, `profile: throttled`…).
    pub fault: Option<String>,
    /// For a request to an APIM gateway (`/apim/…`): what the gateway decided and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRecord>,
    /// For a POST to the `/devicelogin` page: what the page made of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devicelogin: Option<DeviceLoginRecord>,
}

/// What one POST to the `/devicelogin` page decided: the page's decisions are as visible to a
/// test as those of `POST /_sandbox/device-codes/{code}/approve`, whose path says it all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceLoginRecord {
    /// The step the POST answered (`code`, `account`, `consent`); none for a refused form.
    pub step: Option<String>,
    /// The user code the flow is about, normalized, once one was typed.
    pub user_code: Option<String>,
    /// `next`, `approved`, `declined`, or why not: `forbidden` (no or a wrong anti-forgery
    /// token), `invalid_code`, `expired_code`, `used_code`, `unknown_user`, `no_choice`.
    pub outcome: String,
    /// The user principal name chosen or asked for.
    pub user: Option<String>,
}

/// What the APIM gateway made of one request: enough for a test to see why it was let through
/// or refused without reading the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GatewayRecord {
    /// The service name as the URL has it.
    pub service: String,
    /// The API and operation ids (ARM names), when routing found them.
    pub api: Option<String>,
    pub operation: Option<String>,
    /// `allow`, `deny`, `respond`, `unknown` (the simulator's decision), or `no-route`.
    pub decision: String,
    /// The status the gateway answered the caller with.
    pub status: u16,
    /// The machine-readable reason of a refusal (`TokenClientApplicationNotAllowed`,
    /// `OperationNotFound`…) or of a 500 (`NotSimulated`, `BackendUnreachable`).
    pub reason: Option<String>,
    /// The policy element that decided, with its line where known.
    pub detail: Option<String>,
    pub backend: Option<BackendRecord>,
}

/// The gateway's call to its backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendRecord {
    pub url: String,
    /// 0 when the backend could not be reached.
    pub status: u16,
    /// `managed-identity` when `authentication-managed-identity` set the Authorization header,
    /// `none` otherwise.
    pub auth: String,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub base_url: String,
    /// Where the listener is bound (the configured address with its port filled in).
    pub addr: SocketAddr,
    state: Mutex<State>,
    /// Decoded signing keys by kid (decoding RSA keys per request would be slow).
    signers: Mutex<BTreeMap<String, Arc<TokenSigner>>>,
    log: Mutex<Vec<RequestRecord>>,
    faults: Mutex<FaultEngine>,
    /// Peers whose connection is to be dropped instead of answered.
    pub(crate) resets: Mutex<HashSet<SocketAddr>>,
    /// Client connections open now: whether anyone still uses the sandbox.
    pub(crate) connections: AtomicUsize,
    /// The sandbox's wall clock: the only source of "now" for everything it answers.
    pub(crate) clock: OffsetClock,
    /// `rate-limit-by-key` and `llm-token-limit` counters of each APIM gateway, by lower-cased
    /// service name: they outlive a request, as the real gateway's do (not persisted: a restarted
    /// gateway starts with fresh counters too).
    pub(crate) gateway_counters: Mutex<BTreeMap<String, crate::policy::simulator::Counters>>,
    /// Sign-ins open on the `/devicelogin` page (in memory, like a browser session).
    login_flows: Mutex<login::Flows>,
    /// What the gateways keep between requests (composed policies, key sets, managed-identity
    /// tokens), each keyed so that it cannot go stale.
    pub(crate) gateway_cache: gateway::Cache,
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state with every ending due on the sandbox's clock applied: operations, purges,
    /// retention, and the directory objects that go with them (the managed identity of a purged
    /// account, deleted items past their 30 days). Every data-plane and control-plane handler
    /// reads through this, so what a request sees never depends on which kind of request came
    /// first after the clock moved.
    pub(crate) fn settled_state(&self) -> MutexGuard<'_, State> {
        let now_ms = self.now_ms();
        let mut state = self.state();
        let principals = arm::settle_state(&mut state, now_ms);
        let expired = graph::purge_expired(&mut state, now_ms);
        if principals || expired {
            self.persist(&state);
        }
        state
    }

    /// The `/devicelogin` page's open sign-ins. Hold the guard briefly.
    pub(crate) fn login_flows(&self) -> MutexGuard<'_, login::Flows> {
        self.login_flows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the Unix epoch on the sandbox's clock: the unit its records keep.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now_millis()).unwrap_or(0)
    }

    /// Seconds since the Unix epoch on the sandbox's clock: the unit of token claims.
    pub fn now_s(&self) -> i64 {
        self.clock.now_seconds()
    }

    /// Simulated milliseconds elapsed since an instant of the sandbox's clock: the clock's
    /// milliseconds times the time scale (see the module doc).
    pub fn elapsed_sandbox_ms(&self, since_ms: u64) -> u64 {
        (self.now_ms().saturating_sub(since_ms) as f64 * self.config.time_scale) as u64
    }

    /// Whether an object created at `created_ms` is still inside its replication window.
    pub fn replicating(&self, created_ms: u64) -> bool {
        self.elapsed_sandbox_ms(created_ms) < self.config.replication_lag_ms()
    }

    /// Saves the state after a change, atomically (write then rename), when persisting.
    pub fn persist(&self, state: &State) {
        let Some(file) = self.config.state_file() else {
            return;
        };
        let result = serde_json::to_vec_pretty(state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| files::write_private(&file, &bytes));
        if let Err(e) = result {
            tracing::warn!(file = %file.display(), error = %e, "cannot persist sandbox state");
        }
    }

    /// The newest signing key of a tenant.
    pub fn signer(&self, tenant: &str) -> Option<Arc<TokenSigner>> {
        let record = self.state().tenant(tenant)?.keys.last()?.clone();
        self.signer_for(&record)
    }

    fn signer_for(&self, record: &KeyRecord) -> Option<Arc<TokenSigner>> {
        let mut signers = self.signers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = signers.get(&record.kid) {
            return Some(s.clone());
        }
        let der = STANDARD.decode(&record.pkcs8).ok()?;
        let signer = Arc::new(TokenSigner::from_pkcs8_der(&der, &record.kid).ok()?);
        signers.insert(record.kid.clone(), signer.clone());
        Some(signer)
    }

    /// All published keys of a tenant, oldest first.
    pub fn signers(&self, tenant: &str) -> Vec<Arc<TokenSigner>> {
        let records = self
            .state()
            .tenant(tenant)
            .map(|t| t.keys.clone())
            .unwrap_or_default();
        records.iter().filter_map(|r| self.signer_for(r)).collect()
    }

    /// The signing key of a CI issuer (`github-actions`, `azure-devops`), made and kept on first
    /// use: only tests that sign in from a pipeline pay for the RSA key.
    pub(crate) fn issuer_signer(&self, issuer: &str) -> Option<Arc<TokenSigner>> {
        let mut state = self.state();
        if let Some(found) = state.issuer_keys.iter().find(|k| k.issuer == issuer) {
            let record = found.key.clone();
            drop(state);
            return self.signer_for(&record);
        }
        let signer = new_key()?;
        let record = KeyRecord {
            kid: signer.kid.clone(),
            pkcs8: STANDARD.encode(signer.to_pkcs8_der()),
        };
        state.issuer_keys.push(state::IssuerKey {
            issuer: issuer.to_owned(),
            key: record.clone(),
        });
        self.persist(&state);
        drop(state);
        let signer = Arc::new(signer);
        self.signers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.kid, signer.clone());
        Some(signer)
    }

    /// Adds a new signing key to a tenant; tokens are signed with it from now on.
    pub fn rotate_key(&self, tenant: &str) -> Option<String> {
        let signer = new_key()?;
        let record = KeyRecord {
            kid: signer.kid.clone(),
            pkcs8: STANDARD.encode(signer.to_pkcs8_der()),
        };
        let kid = record.kid.clone();
        self.signers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kid.clone(), Arc::new(signer));
        let mut state = self.state();
        state.tenant_mut(tenant)?.keys.push(record);
        self.persist(&state);
        Some(kid)
    }
}

fn new_key() -> Option<TokenSigner> {
    let kid = new_guid().replace('-', "")[..20].to_owned();
    TokenSigner::generate(&mut getrandom::SysRng, &kid).ok()
}

/// The operator's client secret. Without the system's randomness there is no secret worth the
/// name: an all-zero one would be guessable, so the sandbox does not start.
/// URL-safe base64 that never starts with `-` or `_`: a secret starting with `-` is read as an
/// option by command lines (`az login --service-principal -p SECRET` fails on it).
fn new_secret() -> anyhow::Result<String> {
    loop {
        let mut bytes = [0u8; 30];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("no randomness for the operator secret: {e}"))?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if secret.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Ok(secret);
        }
    }
}

/// A fresh sandbox world: the default and the foreign tenant, each with a key and users, and the
/// operator identity. RSA key generation dominates start-up, so the two keys are made in parallel.
fn initial_state() -> anyhow::Result<State> {
    let (default_key, foreign_key) = std::thread::scope(|scope| {
        let other = scope.spawn(new_key);
        (new_key(), other.join().ok().flatten())
    });
    let tenant = |id: &str,
                  name: &str,
                  domain: &str,
                  key: Option<TokenSigner>,
                  users: Vec<(&str, &str)>|
     -> anyhow::Result<Tenant> {
        let signer = key.ok_or_else(|| anyhow::anyhow!("cannot generate a signing key"))?;
        Ok(Tenant {
            id: id.to_owned(),
            display_name: name.to_owned(),
            domain: domain.to_owned(),
            keys: vec![KeyRecord {
                kid: signer.kid.clone(),
                pkcs8: STANDARD.encode(signer.to_pkcs8_der()),
            }],
            users: users
                .into_iter()
                .map(|(upn, display)| User {
                    id: new_guid(),
                    upn: upn.to_owned(),
                    display_name: display.to_owned(),
                })
                .collect(),
        })
    };
    Ok(State {
        tenants: vec![
            tenant(
                DEFAULT_TENANT,
                "Sandbox",
                "sandbox.onmicrosoft.com",
                default_key,
                vec![
                    ("ada@sandbox.onmicrosoft.com", "Ada Lovelace"),
                    ("grace@sandbox.onmicrosoft.com", "Grace Hopper"),
                ],
            )?,
            tenant(
                FOREIGN_TENANT,
                "Foreign",
                "foreign.onmicrosoft.com",
                foreign_key,
                vec![("mallory@foreign.onmicrosoft.com", "Mallory")],
            )?,
        ],
        subscriptions: vec![DEFAULT_SUBSCRIPTION.to_owned()],
        operator: Operator {
            tenant_id: DEFAULT_TENANT.to_owned(),
            client_id: new_guid(),
            client_secret: new_secret()?,
            object_id: new_guid(),
        },
        objects: Vec::new(),
        device_codes: Vec::new(),
        refresh_tokens: Vec::new(),
        arm: state::ArmState::default(),
        clock_offset_ms: 0,
        federated_credentials: Vec::new(),
        issuer_keys: Vec::new(),
        ci_jobs: Vec::new(),
        owners: Vec::new(),
        app_role_assignments: Vec::new(),
    })
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Starts the server on the configured address (loopback unless allowed otherwise).
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        if !config.addr.ip().is_loopback() && !config.allow_non_loopback {
            anyhow::bail!(
                "{} is not a loopback address; the sandbox hands out test credentials and listens on loopback only",
                config.addr
            );
        }
        // The directory is vetted before its state is trusted: a state file others could have
        // written may carry their signing keys.
        if let Some(dir) = &config.state_dir {
            files::prepare_dir(dir)?;
        }
        let mut state: State = match config.state_file() {
            Some(file) if file.exists() => {
                let text = std::fs::read_to_string(&file)?;
                serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: not a sandbox state file: {e}", file.display())
                })?
            }
            _ => initial_state()?,
        };
        // A state saved before secrets were kept from starting with `-` gets a usable one; its
        // clients read the secret from `/_sandbox/info` anyway.
        if !state
            .operator
            .client_secret
            .starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            state.operator.client_secret = new_secret()?;
        }
        let clock_offset = SignedDuration::from_millis(state.clock_offset_ms);
        let tcp = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = tcp.local_addr()?;
        let scheme = if config.tls { "https" } else { "http" };
        let host = if addr.ip().is_loopback() && addr.is_ipv4() {
            addr.to_string()
        } else {
            format!("{addr}")
        };
        let faults = FaultEngine::new(config.faults, config.fault_script.clone(), config.seed);
        let shared = Arc::new(Shared {
            base_url: format!("{scheme}://{host}"),
            addr,
            config,
            state: Mutex::new(state),
            signers: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(faults),
            resets: Mutex::new(HashSet::new()),
            connections: AtomicUsize::new(0),
            clock: OffsetClock::new(clock_offset),
            gateway_counters: Mutex::new(BTreeMap::new()),
            login_flows: Mutex::new(login::Flows::default()),
            gateway_cache: gateway::Cache::default(),
        });
        shared.persist(&shared.state());
        let app = router(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let make = app.into_make_service_with_connect_info::<listener::Peer>();
        let listener = listener::Listener::new(tcp, shared.clone(), tls::acceptor(&shared)?);
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, make).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or https with `--tls`): login, Graph and ARM share this origin.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// What `GET /_sandbox/info` returns.
    pub fn info(&self) -> serde_json::Value {
        admin::info(&self.shared)
    }

    /// The request log so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Client connections open now (idle keep-alive ones included): a process that started a
    /// sandbox others have connected to can tell whether it is still in use.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The sandbox's state, for assertions. Hold the guard briefly: handlers wait for it.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// The time on the sandbox's clock: what its tokens, operations and timestamps are made of.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Moves the sandbox's clock forward by `by`, as `POST /_sandbox/clock/advance` does: for
    /// everything the sandbox answers, exactly as if that much time had passed.
    pub fn advance(&self, by: SignedDuration) -> Result<Timestamp, ClockError> {
        time::move_clock(&self.shared, |clock| clock.advance(by))
    }

    /// The PEM of the self-signed certificate (with `tls`).
    pub fn certificate_pem(&self) -> Option<String> {
        tls::certificate_pem(&self.shared)
    }

    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server task ends (it ends on shutdown).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// A handle that stops the server from elsewhere (Ctrl-C).
    pub fn stopper(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(login::routes())
        .merge(graph::routes())
        .merge(arm::routes())
        .merge(admin::routes())
        .merge(time::routes())
        .merge(gateway::routes())
        .merge(inference::routes())
        .fallback(arm::fallback)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            observe,
        ))
        .with_state(shared)
}

/// Every request passes here: faults and latency are applied, and the outcome is logged.
async fn observe(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(listener::Peer(peer)): ConnectInfo<listener::Peer>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let front = guard::Front {
        addr: shared.addr,
        tls: shared.config.tls,
    };
    if let Some(refused) = guard::check(front, &request) {
        record(
            &shared,
            started,
            method,
            path,
            refused.status().as_u16(),
            None,
            Extra::default(),
        );
        return refused;
    }
    let fault = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decide(&method, request.uri().path());
    let scale = |ms: u64| {
        Duration::from_secs_f64(
            ms as f64 / 1000.0 / shared.config.time_scale.max(f64::MIN_POSITIVE),
        )
    };
    let latency = shared.config.latency.request_ms();
    if latency > 0 && !request.uri().path().starts_with("/_sandbox/") {
        tokio::time::sleep(scale(latency)).await;
    }
    let response = match &fault {
        Some(Fault::Respond {
            status,
            headers,
            body,
            ..
        }) => {
            let mut r = match body {
                Some(b) => (
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    axum::Json(b.clone()),
                )
                    .into_response(),
                None => StatusCode::from_u16(*status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response(),
            };
            for (k, v) in headers {
                if let (Ok(name), Ok(value)) = (
                    axum::http::HeaderName::try_from(k.as_str()),
                    HeaderValue::from_str(v),
                ) {
                    r.headers_mut().insert(name, value);
                }
            }
            r
        }
        Some(Fault::Reset { .. }) => {
            shared
                .resets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(peer);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Some(Fault::Delay { ms, .. }) => {
            tokio::time::sleep(scale(*ms)).await;
            next.run(request).await
        }
        None => next.run(request).await,
    };
    let mut response = response;
    // A handler that quotes its request id in the body (Graph's innerError) has set it already.
    let request_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(new_guid, str::to_owned);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-ms-request-id", v.clone());
        response.headers_mut().insert("request-id", v);
    }
    let status = if matches!(fault, Some(Fault::Reset { .. })) {
        0
    } else {
        response.status().as_u16()
    };
    let extra = Extra {
        gateway: response.extensions_mut().remove::<GatewayRecord>(),
        devicelogin: response.extensions_mut().remove::<DeviceLoginRecord>(),
    };
    record(
        &shared,
        started,
        method,
        path,
        status,
        fault.map(|f| f.label().to_owned()),
        extra,
    );
    response
}

/// What a handler told the log about its request, beyond method, path and status.
#[derive(Default)]
struct Extra {
    gateway: Option<GatewayRecord>,
    devicelogin: Option<DeviceLoginRecord>,
}

fn record(
    shared: &Shared,
    started: Instant,
    method: String,
    path: String,
    status: u16,
    fault: Option<String>,
    extra: Extra,
) {
    let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
    let seq = log.len() as u64 + 1;
    log.push(RequestRecord {
        seq,
        method,
        path,
        status,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        fault,
        gateway: extra.gateway,
        devicelogin: extra.devicelogin,
    });
}

#[cfg(test)]
mod tests {
    /// One secret in 32 would start with `-` or `_` unchecked; among 4,096 none may.
    #[test]
    fn operator_secrets_start_with_a_letter_or_digit() {
        for _ in 0..4096 {
            let secret = super::new_secret().unwrap();
            assert!(
                secret.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{secret}"
            );
            assert_eq!(secret.len(), 40);
        }
    }
}
