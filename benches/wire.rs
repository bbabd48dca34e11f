//! The wire layer (`src/azure`) against an in-process sandbox on loopback, two figures:
//!
//! 1. Client overhead per call: the median wall time of `azure.arm.get(<resource group>)` through
//!    [`Azure`] (token cached, so one HTTP exchange) against the same GET sent with a bare
//!    `reqwest::Client` and a pre-fetched bearer token. Three more variants split the difference:
//!    the bare GET with the JSON body parsed, the bare GET with the client's extra headers, and
//!    `ReqwestTransport::send` alone. All variants run once per iteration in a random order, so
//!    load from elsewhere on the machine hits them alike.
//! 2. LRO poll overshoot: the wall time from the initial PUT to `ArmClient::put` returning, for an
//!    operation the sandbox runs for exactly 2 s, against the poll interval the sandbox advertised
//!    (`Retry-After` / `retry-after-ms`). Targets: overshoot ≤ one advertised poll interval, and
//!    total ≤ 1.1 × 2 s. Two runs of it, both through `ArmClient::put`:
//!    - an API Management service create (201 with the same URL as `Location` and
//!      `Azure-AsyncOperation`, which answers as a Location): latency profile `instant` (no added
//!      latency) with `apim_create_ms = 2000`;
//!    - a Foundry account create (201 with `Azure-AsyncOperation`, then a final GET): latency
//!      profile `realistic`, whose account create takes 30 s of sandbox time, at `time_scale` 15.
//!
//! Run: `cargo bench --bench wire`. `WIRE_ITERATIONS` (default 2,000) and `WIRE_RUNS` (default 10;
//! 0 skips figure 2) change the sample sizes. Nothing fails the run; each target prints "target
//! met" or "target MISSED".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provision::azure::Azure;
use provision::azure::credential::CredentialPlan;
use provision::azure::lro;
use provision::azure::retry::{self, Deadline};
use provision::azure::transport::{
    Method, ReqwestTransport, SendFuture, Transport, WireRequest, WireResponse,
};
use provision::clock::{Clock, SystemClock};
use provision::cloud::{Cloud, CloudEndpoints};
use provision::dice::Dice;
use provision::sandbox::{DEFAULT_SUBSCRIPTION, LatencyProfile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// How long the sandbox runs the measured operations.
const OPERATION: Duration = Duration::from_secs(2);
/// `SandboxConfig::operation_ms(OperationKind::AccountCreate)` under the `realistic` profile
/// (`OperationKind` is private to the sandbox).
const REALISTIC_ACCOUNT_CREATE_MS: u64 = 30_000;
/// GETs per variant before measuring (connections, allocator, caches).
const WARM_UP: usize = 200;

fn main() {
    let iterations = env_or("WIRE_ITERATIONS", 2_000);
    let runs = env_or("WIRE_RUNS", 10);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        client_overhead(iterations).await;
        if runs == 0 {
            return;
        }
        println!();
        let apim = SandboxConfig {
            apim_create_ms: Some(duration_ms(OPERATION)),
            ..SandboxConfig::default()
        };
        poll_overshoot(
            "API Management service create through ArmClient::put (profile instant, \
             apim_create_ms 2000)",
            apim,
            runs,
            apim_service,
        )
        .await;
        println!();
        poll_overshoot(
            "Foundry account create through ArmClient::put (Azure-AsyncOperation, then a final GET; \
             profile realistic, time_scale 15)",
            SandboxConfig {
                latency: LatencyProfile::Realistic,
                // 30 s of sandbox time in 2 s of wall time.
                time_scale: REALISTIC_ACCOUNT_CREATE_MS as f64 / OPERATION.as_millis() as f64,
                ..SandboxConfig::default()
            },
            runs,
            |group, i| {
                (
                    format!("{group}/providers/Microsoft.CognitiveServices/accounts/wireacct{i}"),
                    json!({ "location": "eastus", "kind": "AIServices", "sku": { "name": "S0" } }),
                )
            },
        )
        .await;
    });
}

/// The i-th API Management service in `group`, and its body.
fn apim_service(group: &str, i: usize) -> (String, Value) {
    (
        format!("{group}/providers/Microsoft.ApiManagement/service/wire-apim-{i}"),
        json!({
            "location": "westus",
            "sku": { "name": "Developer", "capacity": 1 },
            "properties": {
                "publisherEmail": "ops@contoso.example",
                "publisherName": "wire bench"
            }
        }),
    )
}

/// The ways figure 1 sends the same GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `Azure::arm.get`: session, token cache, retry, transport, JSON parse.
    Client,
    /// `ReqwestTransport::send` with the token already in the request: the transport alone.
    Transport,
    /// reqwest with the headers the client sends (`user-agent`, a fresh `x-ms-client-request-id`),
    /// so the server's share of handling them is not counted as client overhead.
    BareWithHeaders,
    /// reqwest, body parsed as JSON (as the client does).
    BareParsed,
    /// reqwest, body read.
    Bare,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Client,
        Variant::Transport,
        Variant::BareWithHeaders,
        Variant::BareParsed,
        Variant::Bare,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Client => "Azure::arm.get (provision::azure)",
            Variant::Transport => "ReqwestTransport::send (transport only)",
            Variant::BareWithHeaders => "bare reqwest GET + client's headers",
            Variant::BareParsed => "bare reqwest GET, body parsed as JSON",
            Variant::Bare => "bare reqwest GET, body read",
        }
    }
}

/// What figure 1's GETs share.
struct Get {
    azure: Azure,
    transport: ReqwestTransport,
    bare: reqwest::Client,
    group: String,
    url: String,
    bearer: String,
}

impl Get {
    async fn once(&self, variant: Variant) -> Duration {
        let started = Instant::now();
        match variant {
            Variant::Client => {
                let found = self.azure.arm.get(&self.group).await.unwrap();
                let elapsed = started.elapsed();
                assert!(found.is_some(), "the resource group exists");
                return elapsed;
            }
            Variant::Transport => {
                let request =
                    WireRequest::new(Method::Get, &self.url).header("authorization", &self.bearer);
                let response = self.transport.send(&request).await.unwrap();
                assert!(response.is_success(), "HTTP {}", response.status);
            }
            Variant::BareWithHeaders | Variant::BareParsed | Variant::Bare => {
                let mut request = self
                    .bare
                    .get(&self.url)
                    .header("authorization", &self.bearer);
                if matches!(variant, Variant::BareWithHeaders) {
                    request = request
                        .header(
                            "user-agent",
                            concat!("provision/", env!("CARGO_PKG_VERSION")),
                        )
                        .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
                }
                let response = request.send().await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let body = response.bytes().await.unwrap();
                if matches!(variant, Variant::BareParsed) {
                    let value: Value = serde_json::from_slice(&body).unwrap();
                    assert!(value.is_object());
                }
            }
        }
        started.elapsed()
    }
}

/// Figure 1: `Azure::arm.get` against a bare reqwest GET of the same URL with the same token.
async fn client_overhead(iterations: usize) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let endpoints = Cloud::Sandbox.endpoints(&sandbox.addr().to_string());
    let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new().unwrap());
    let azure = connect(&endpoints, transport);
    let group = group_id("wire-bench");
    // Creating the group also signs in: every GET below finds its token in the cache.
    azure
        .arm
        .put(&group, &json!({ "location": "westus" }))
        .await
        .unwrap();
    let bearer = azure
        .session
        .credentials()
        .token(&endpoints.arm_scope())
        .await
        .unwrap()
        .bearer();
    let get = Get {
        url: azure.arm.url(&group),
        azure,
        transport: ReqwestTransport::new().unwrap(),
        bare: reqwest::Client::builder().no_proxy().build().unwrap(),
        group,
        bearer,
    };

    for _ in 0..WARM_UP {
        for variant in Variant::ALL {
            get.once(variant).await;
        }
    }
    let n = Variant::ALL.len();
    let mut samples = vec![Vec::with_capacity(iterations); n];
    let mut paired = Vec::with_capacity(iterations);
    let mut dice = Dice::new(1);
    let started = Instant::now();
    for i in 0..iterations {
        // A fresh random order each time, so that no variant always follows the same other one
        // (a warm connection or cache left by its predecessor would bias it).
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, dice.below(k + 1));
        }
        for which in order {
            samples[which].push(get.once(Variant::ALL[which]).await);
        }
        let (client, bare) = (samples[0][i], samples[n - 1][i]);
        paired.push(client.as_secs_f64() - bare.as_secs_f64());
    }
    let wall = started.elapsed();
    sandbox.shutdown().await;

    let stats: Vec<Stats> = samples.into_iter().map(Stats::of).collect();
    paired.sort_by(f64::total_cmp);
    let paired_median = paired[paired.len() / 2];
    println!(
        "== Client overhead: ARM GET of a resource group, sandbox on loopback (profile instant), \
         {iterations} iterations of each variant after {WARM_UP} warm-up, {:.1} s",
        wall.as_secs_f64()
    );
    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>10}",
        "variant", "median", "p90", "min", "mean"
    );
    for (variant, s) in Variant::ALL.iter().zip(&stats) {
        println!(
            "{:<42} {:>10} {:>10} {:>10} {:>10}",
            variant.name(),
            micros(s.median),
            micros(s.p90),
            micros(s.min),
            micros(s.mean)
        );
    }
    let median = |v: Variant| {
        stats[Variant::ALL
            .iter()
            .position(|w| w.name() == v.name())
            .unwrap()]
        .median
        .as_secs_f64()
    };
    let client = median(Variant::Client);
    println!(
        "client overhead (median − median): {} vs bare body read, {} vs bare + JSON parse, {} vs \
         bare + client's headers",
        signed_micros(client - median(Variant::Bare)),
        signed_micros(client - median(Variant::BareParsed)),
        signed_micros(client - median(Variant::BareWithHeaders)),
    );
    println!(
        "client overhead (median of paired differences vs bare body read): {} ({:.1}% of the bare \
         call)",
        signed_micros(paired_median),
        100.0 * paired_median / median(Variant::Bare)
    );
    println!(
        "of which transport (ReqwestTransport − bare + client's headers): {}; above the transport \
         (session, token cache, retry, JSON): {}",
        signed_micros(median(Variant::Transport) - median(Variant::BareWithHeaders)),
        signed_micros(client - median(Variant::Transport)),
    );
}

/// Figure 2: `runs` creates through `ArmClient::put`, each of an operation the sandbox runs for
/// [`OPERATION`]; `resource(group, i)` names the i-th resource and its body.
async fn poll_overshoot(
    title: &str,
    config: SandboxConfig,
    runs: usize,
    resource: impl Fn(&str, usize) -> (String, Value),
) {
    let sandbox = Sandbox::start(config).await.unwrap();
    let endpoints = Cloud::Sandbox.endpoints(&sandbox.addr().to_string());
    let recorder = Arc::new(Recorder::new());
    let azure = connect(&endpoints, recorder.clone());
    let group = group_id("wire-lro");
    azure
        .arm
        .put(&group, &json!({ "location": "westus" }))
        .await
        .unwrap();

    println!(
        "== LRO poll overshoot: {title}, operation {} ms, {runs} runs",
        OPERATION.as_millis()
    );
    println!(
        "{:>4} {:>10} {:>10} {:>6}  exchanges (status, advertised wait → client wait; t = start, ms)",
        "run", "total", "overshoot", "polls"
    );
    let mut totals = Vec::new();
    let mut advertised = Vec::new();
    let mut failure = None;
    for i in 0..runs {
        let (id, body) = resource(&group, i);
        recorder.clear();
        let started = Instant::now();
        let outcome = azure.arm.put(&id, &body).await.map(drop);
        let total = started.elapsed();
        let exchanges = recorder.take();
        let timeline: Vec<String> = exchanges.iter().map(|e| e.describe(started)).collect();
        let polls = exchanges.iter().filter(|e| e.method == Method::Get).count();
        if let Err(error) = outcome {
            println!(
                "{i:>4} {:>10} {:>10} {polls:>6}  {}",
                millis(total),
                "-",
                timeline.join("; ")
            );
            failure = Some(error.to_string());
            break;
        }
        // The wait the sandbox asked for before the poll that found the operation done.
        if let Some(hint) = exchanges.iter().rev().skip(1).find_map(|e| e.advertised) {
            advertised.push(hint);
        }
        println!(
            "{i:>4} {:>10} {:>10} {polls:>6}  {}",
            millis(total),
            signed_millis(total.as_secs_f64() - OPERATION.as_secs_f64()),
            timeline.join("; ")
        );
        totals.push(total);
    }
    sandbox.shutdown().await;

    if let Some(error) = failure {
        println!("ArmClient::put failed: {error}");
        println!("target MISSED: overshoot ≤ one poll interval (the operation did not complete)");
        println!(
            "target MISSED: total ≤ {} (the operation did not complete)",
            millis(OPERATION.mul_f64(1.1))
        );
        return;
    }
    let totals = Stats::of(totals);
    let overshoot = totals.median.as_secs_f64() - OPERATION.as_secs_f64();
    let p90_overshoot = totals.p90.as_secs_f64() - OPERATION.as_secs_f64();
    println!(
        "total: median {}, p90 {}, min {}, max {}",
        millis(totals.median),
        millis(totals.p90),
        millis(totals.min),
        millis(totals.max)
    );
    println!(
        "overshoot (total − {} ms): median {}, p90 {}",
        OPERATION.as_millis(),
        signed_millis(overshoot),
        signed_millis(p90_overshoot)
    );
    let interval = Stats::of(advertised);
    println!(
        "advertised poll interval (before the last poll): median {}, min {}, max {}",
        millis(interval.median),
        millis(interval.min),
        millis(interval.max)
    );
    let verdict = |met: bool| if met { "target met" } else { "target MISSED" };
    println!(
        "{}: overshoot ≤ one poll interval ({} ≤ {})",
        verdict(overshoot <= interval.median.as_secs_f64()),
        signed_millis(overshoot),
        millis(interval.median)
    );
    let limit = OPERATION.mul_f64(1.1);
    println!(
        "{}: total ≤ 1.1 × {} ms ({} ≤ {})",
        verdict(totals.median <= limit),
        OPERATION.as_millis(),
        millis(totals.median),
        millis(limit)
    );
}

/// A client for the sandbox, giving up after ten minutes.
fn connect(endpoints: &CloudEndpoints, transport: Arc<dyn Transport>) -> Azure {
    Azure::connect(
        Cloud::Sandbox,
        endpoints,
        &CredentialPlan::Sandbox,
        transport,
        Deadline::after(Duration::from_secs(600), "the benchmark"),
    )
    .unwrap()
}

fn group_id(name: &str) -> String {
    format!("/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{name}")
}

/// The real transport, noting when each exchange went out and came back and the poll hint it
/// carried.
struct Recorder {
    inner: ReqwestTransport,
    log: Mutex<Vec<Exchange>>,
}

struct Exchange {
    method: Method,
    sent: Instant,
    answered: Instant,
    status: Option<u16>,
    /// `Retry-After: 2`, `retry-after-ms: 480`… as sent.
    hint: Option<String>,
    /// The wait the server asked for.
    advertised: Option<Duration>,
    /// The wait the LRO driver derives from this answer.
    client_wait: Duration,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            inner: ReqwestTransport::new().unwrap(),
            log: Mutex::new(Vec::new()),
        }
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    fn take(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Transport for Recorder {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        Box::pin(async move {
            let sent = Instant::now();
            let outcome = self.inner.send(request).await;
            let answered = Instant::now();
            let now = SystemClock.now();
            let response = outcome.as_ref().ok();
            let hint = response.and_then(|r| {
                ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"]
                    .iter()
                    .find_map(|name| r.headers.get(name).map(|v| format!("{name}: {v}")))
            });
            self.log.lock().unwrap().push(Exchange {
                method: request.method,
                sent,
                answered,
                status: response.map(|r| r.status),
                hint,
                advertised: response.and_then(|r| retry::server_delay(&r.headers, now)),
                client_wait: response
                    .map_or(Duration::ZERO, |r: &WireResponse| lro::poll_delay(r, now)),
            });
            outcome
        })
    }
}

impl Exchange {
    fn describe(&self, start: Instant) -> String {
        let at = |t: Instant| t.duration_since(start).as_secs_f64() * 1000.0;
        let status = self
            .status
            .map_or_else(|| "failed".to_owned(), |s| s.to_string());
        let hint = match (&self.hint, self.advertised) {
            (Some(text), Some(_)) => format!(" [{text} → {}]", millis(self.client_wait)),
            _ => String::new(),
        };
        format!(
            "{} {status} t={:.1}..{:.1}{hint}",
            self.method,
            at(self.sent),
            at(self.answered)
        )
    }
}

struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
    mean: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        if samples.is_empty() {
            samples.push(Duration::ZERO);
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stats {
            median: at(0.5),
            p90: at(0.9),
            min: samples[0],
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<Duration>() / samples.len() as u32,
        }
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn signed_micros(seconds: f64) -> String {
    format!("{:+.1} µs", seconds * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn signed_millis(seconds: f64) -> String {
    format!("{:+.1} ms", seconds * 1e3)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
