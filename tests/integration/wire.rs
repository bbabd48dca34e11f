//! The wire layer (`src/azure`) against the in-process sandbox on loopback: every LRO shape driven
//! to the end, retries on throttling, 5xx and resets (and no retry where a request may have been
//! carried out), ARM errors printed whole, Graph and ARM replication lag absorbed, deadlines that
//! say what they were waiting for, and no credential in a TRACE log.
//!
//! Outcomes are checked on both sides: what the client returned, and what the sandbox answered
//! (its request log, as `METHOD path status`, with the subscription as `~`, GUIDs as `{id}` and the
//! api-version dropped).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provision::azure::Azure;
use provision::azure::arm::Deleted;
use provision::azure::credential::CredentialPlan;
use provision::azure::graph::Upserted;
use provision::azure::retry::{Deadline, Replay, RetryPolicy};
use provision::azure::session::{ConsistencyPolicy, Session, WireError};
use provision::azure::sign_in::Credentials;
use provision::azure::transport::{ReqwestTransport, Transport, TransportError};
use provision::cloud::{Cloud, CloudEndpoints};
use provision::hint::Remedy;
use provision::sandbox::{
    DEFAULT_SUBSCRIPTION, FaultScript, LatencyProfile, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};
use tracing::instrument::WithSubscriber;

use crate::sandbox_support::{default_sandbox, start};

const SUB: &str = DEFAULT_SUBSCRIPTION;
/// Cognitive Services OpenAI User.
const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

// ---------------------------------------------------------------------------------------------
// Clients and resources

fn endpoints(sandbox: &Sandbox) -> CloudEndpoints {
    Cloud::Sandbox.endpoints(&sandbox.addr().to_string())
}

/// Fast retries (tens of milliseconds) so that 5xx and reset tests stay quick.
const FAST_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(20),
    cap: Duration::from_millis(200),
    max_attempts: 5,
};

/// Clients over a session with [`FAST_RETRY`], `consistency`, a fixed jitter seed, and a deadline
/// `budget` from now.
fn azure_with(sandbox: &Sandbox, budget: Duration, consistency: ConsistencyPolicy) -> Azure {
    let endpoints = endpoints(sandbox);
    let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new().unwrap());
    let credentials = Credentials::from_plan(
        &CredentialPlan::Sandbox,
        Cloud::Sandbox,
        &endpoints,
        transport.clone(),
    )
    .unwrap();
    let session = Session::new(
        transport,
        Arc::new(credentials),
        Deadline::after(budget, "the test"),
    )
    .with_retry_policy(FAST_RETRY)
    .with_consistency(consistency)
    .with_seed(7);
    Azure::with_session(session, &endpoints)
}

/// [`azure_with`] with a minute's deadline and quick consistency waits.
fn azure(sandbox: &Sandbox) -> Azure {
    azure_with(
        sandbox,
        Duration::from_secs(60),
        ConsistencyPolicy {
            first: Duration::from_millis(100),
            cap: Duration::from_millis(400),
        },
    )
}

/// Signs in for ARM and Graph up front, so a later measurement times requests, not sign-in.
async fn sign_in(azure: &Azure, sandbox: &Sandbox) {
    let endpoints = endpoints(sandbox);
    for scope in [endpoints.arm_scope(), endpoints.graph_scope()] {
        azure.session.credentials().token(&scope).await.unwrap();
    }
}

fn group(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{name}")
}

fn account(group_name: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{name}",
        group(group_name)
    )
}

fn apim(group_name: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ApiManagement/service/{name}",
        group(group_name)
    )
}

fn assignment(scope: &str, name: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

/// An AI Foundry account as `provision` asks for one.
fn foundry(subdomain: &str, local_auth: bool) -> Value {
    json!({
        "location": "westus",
        "kind": "AIServices",
        "sku": { "name": "S0" },
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "customSubDomainName": subdomain,
            "disableLocalAuth": !local_auth,
            "publicNetworkAccess": "Enabled"
        }
    })
}

fn apim_body() -> Value {
    json!({
        "location": "West Europe",
        "sku": { "name": "Developer", "capacity": 1 },
        "properties": { "publisherEmail": "ops@contoso.example", "publisherName": "Contoso" }
    })
}

fn api_body() -> Value {
    json!({ "properties": { "displayName": "LLM", "path": "llm", "protocols": ["https"] } })
}

fn role_assignment_body(principal: &str, principal_type: &str) -> Value {
    json!({ "properties": {
        "roleDefinitionId": format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}"
        ),
        "principalId": principal,
        "principalType": principal_type
    }})
}

fn script(yaml: &str) -> Option<FaultScript> {
    Some(FaultScript::parse("wire-faults.yaml", &yaml.replace("{SUB}", SUB)).unwrap())
}

/// A sandbox with `realistic` latency at `time_scale`, plus `tune`.
async fn realistic(time_scale: f64, tune: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut config = SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale,
        ..SandboxConfig::default()
    };
    tune(&mut config);
    start(config).await
}

// ---------------------------------------------------------------------------------------------
// The sandbox's request log

fn is_guid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A logged path, readable: `~` for the subscription, `{id}` for GUIDs, no api-version.
fn short(path: &str) -> String {
    let path = path.replace(&format!("/subscriptions/{SUB}"), "~");
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("api-version="))
        .collect();
    let text = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_guid(&bytes[i..i + 36]) {
            out.push_str("{id}");
            i += 36;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// The ARM and Graph requests the sandbox answered after the first `from`, as `METHOD path
/// status` (a reset connection is status 0). Sign-in requests are left out.
fn calls(sandbox: &Sandbox, from: usize) -> Vec<String> {
    sandbox.requests()[from..]
        .iter()
        .filter(|r| !r.path.starts_with("/_sandbox/") && !r.path.contains("/oauth2/"))
        .map(|r| format!("{} {} {}", r.method, short(&r.path), r.status))
        .collect()
}

/// The injected fault of every ARM or Graph request after the first `from`.
fn faults(sandbox: &Sandbox, from: usize) -> Vec<Option<String>> {
    sandbox.requests()[from..]
        .iter()
        .filter(|r| !r.path.starts_with("/_sandbox/") && !r.path.contains("/oauth2/"))
        .map(|r| r.fault.clone())
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Times {
    Once,
    /// As many as timing made it, at least this many.
    AtLeast(usize),
}

/// Asserts that `actual` is exactly `pattern`: each entry once, or repeated as often as timing
/// made it (polls, consistency probes).
fn assert_calls(actual: &[String], pattern: &[(&str, Times)]) {
    let shown = || actual.join("\n  ");
    let mut i = 0;
    for (entry, times) in pattern {
        let mut n = 0;
        while i < actual.len()
            && actual[i] == *entry
            && (matches!(times, Times::AtLeast(_)) || n == 0)
        {
            n += 1;
            i += 1;
        }
        let ok = match times {
            Times::Once => n == 1,
            Times::AtLeast(min) => n >= *min,
        };
        assert!(
            ok,
            "expected `{entry}` {times:?}, found it {n} times before entry {i}; calls:\n  {}",
            shown()
        );
    }
    assert_eq!(
        i,
        actual.len(),
        "calls after the expected ones:\n  {}",
        shown()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Every LRO shape, followed to the end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_operation_create_polls_the_status_then_gets_the_resource() {
    // An account create takes 30 s of sandbox time: 300 ms here.
    let sandbox = realistic(100.0, |_| {}).await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westus"}))
        .await
        .unwrap();
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let created = azure
        .arm
        .put(&account("rg", "ai"), &foundry("wire-ai", false))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    assert_eq!(created["name"], "ai");
    assert!(
        elapsed >= Duration::from_millis(300),
        "returned after {elapsed:?}, before the 300 ms operation ended"
    );
    assert_calls(
        &calls(&sandbox, mark),
        &[
            (
                "PUT ~/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai 201",
                Times::Once,
            ),
            (
                "GET ~/providers/Microsoft.CognitiveServices/locations/westus/operationResults/{id} 200",
                Times::AtLeast(1),
            ),
            (
                "GET ~/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai 200",
                Times::Once,
            ),
        ],
    );

    // Both headers on a DELETE (202 + Azure-AsyncOperation + Location): the status is polled and
    // there is no final GET, neither of the resource nor of the Location.
    let mark = sandbox.requests().len();
    assert_eq!(
        azure.arm.delete(&account("rg", "ai")).await.unwrap(),
        Deleted::Removed
    );
    assert_calls(
        &calls(&sandbox, mark),
        &[
            (
                "DELETE ~/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai 202",
                Times::Once,
            ),
            (
                "GET ~/providers/Microsoft.CognitiveServices/locations/westus/operationResults/{id} 200",
                Times::AtLeast(1),
            ),
        ],
    );
    assert_eq!(azure.arm.get(&account("rg", "ai")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_delete_polls_until_the_location_stops_answering_202() {
    // A group delete takes 15 s of sandbox time: 300 ms here.
    let sandbox = realistic(50.0, |_| {}).await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("doomed"), &json!({"location": "westus"}))
        .await
        .unwrap();
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let deleted = azure.arm.delete(&group("doomed")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(deleted, Deleted::Removed);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // No final GET: the Location's last answer is the result.
    assert_calls(
        &calls(&sandbox, mark),
        &[
            ("DELETE ~/resourceGroups/doomed 202", Times::Once),
            ("GET ~/operationresults/{id} 202", Times::AtLeast(0)),
            ("GET ~/operationresults/{id} 200", Times::Once),
        ],
    );
    assert_eq!(azure.arm.get(&group("doomed")).await.unwrap(), None);
    assert_eq!(
        azure.arm.delete(&group("doomed")).await.unwrap(),
        Deleted::Absent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apim_writes_with_both_headers_are_followed_to_the_resource() {
    // The service create takes 100 ms, an API write 5 s of sandbox time: 50 ms. The client polls
    // when the sandbox says the operation ends, so it would never see the service running: the
    // first poll is scripted to answer 202 (as a poll that came early would be).
    let sandbox = realistic(100.0, |c| {
        c.apim_create_ms = Some(10_000);
        c.fault_script = script(
            r#"
faults:
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw/operationresults/*
    calls: [1]
    status: 202
    headers:
      retry-after-ms: "50"
"#,
        );
    })
    .await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westeurope"}))
        .await
        .unwrap();

    // The service: one `operationresults` URL, under `Location` only as real service creation
    // gives it, answering as a Location does (202, then 200 with the service, which is the
    // result: no GET of the resource after it).
    let mark = sandbox.requests().len();
    let service = azure
        .arm
        .put(&apim("rg", "gw"), &apim_body())
        .await
        .unwrap();
    assert_eq!(service["properties"]["provisioningState"], "Succeeded");
    let gw = "~/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw";
    assert_eq!(
        calls(&sandbox, mark),
        [
            format!("PUT {gw} 201"),
            format!("GET {gw}/operationresults/{{id}}?asyncResponse 202"),
            format!("GET {gw}/operationresults/{{id}}?asyncResponse 200"),
        ]
    );
    assert_eq!(
        faults(&sandbox, mark),
        [None, Some("script[0] call 1".to_owned()), None]
    );

    // An API: 201 with a Location and an Azure-AsyncOperation that differ. The status resource
    // is polled, then the resource is read; the Location (`?asyncId=…`) is never used.
    let mark = sandbox.requests().len();
    let api = azure
        .arm
        .put(&format!("{}/apis/llm", apim("rg", "gw")), &api_body())
        .await
        .unwrap();
    assert_eq!(api["properties"]["provisioningState"], "Succeeded");
    assert_eq!(api["properties"]["path"], "llm");
    assert_calls(
        &calls(&sandbox, mark),
        &[
            (&format!("PUT {gw}/apis/llm 201"), Times::Once),
            (
                &format!("GET {gw}/tenant/operationResults/{{id}} 200"),
                Times::AtLeast(1),
            ),
            (&format!("GET {gw}/apis/llm 200"), Times::Once),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_answers_and_provisioning_state_polls_need_no_headers() {
    // No sandbox resource answers a write with a running `provisioningState` and neither header,
    // so that shape is scripted: the second PUT of the group answers 201 `Accepted`, and the first
    // poll `Updating`; the sandbox itself answers the last poll.
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: PUT
    path: /subscriptions/{SUB}/resourceGroups/polled
    calls: [2]
    status: 201
    headers:
      retry-after-ms: "100"
    body:
      name: polled
      properties:
        provisioningState: Accepted
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/polled
    calls: [1]
    status: 200
    headers:
      retry-after-ms: "100"
    body:
      name: polled
      properties:
        provisioningState: Updating
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);

    // Synchronous: a group and a role assignment, one request each.
    let mark = sandbox.requests().len();
    let created = azure
        .arm
        .put(&group("polled"), &json!({"location": "westus"}))
        .await
        .unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    let user = sandbox.state().tenants[0].users[0].id.clone();
    let name = "11111111-1111-4111-8111-111111111111";
    let assigned = azure
        .arm
        .put(
            &assignment(&group("polled"), name),
            &role_assignment_body(&user, "User"),
        )
        .await
        .unwrap();
    assert_eq!(assigned["name"], name);
    assert_eq!(assigned["properties"]["principalId"], user.as_str());
    assert_eq!(
        calls(&sandbox, mark),
        [
            "PUT ~/resourceGroups/polled 201",
            "PUT ~/resourceGroups/polled/providers/Microsoft.Authorization/roleAssignments/{id} 201",
        ]
    );

    // Polled by provisioningState until it is terminal.
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let settled = azure
        .arm
        .put(&group("polled"), &json!({"location": "westus"}))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(settled["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        settled["id"],
        format!("/subscriptions/{SUB}/resourceGroups/polled")
    );
    assert_eq!(
        calls(&sandbox, mark),
        [
            "PUT ~/resourceGroups/polled 201",
            "GET ~/resourceGroups/polled 200",
            "GET ~/resourceGroups/polled 200",
        ]
    );
    assert_eq!(
        faults(&sandbox, mark),
        [
            Some("script[0] call 2".to_owned()),
            Some("script[1] call 1".to_owned()),
            None
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 2-5. Retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_exactly_when_retry_after_says() {
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/rg
    calls: [1]
    status: 429
    headers:
      Retry-After: "2"
    body:
      error:
        code: TooManyRequests
        message: The request is being throttled.
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    sign_in(&azure, &sandbox).await;
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westus"}))
        .await
        .unwrap();
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let got = azure.arm.get(&group("rg")).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(got["name"], "rg");
    assert!(
        (Duration::from_millis(2000)..=Duration::from_millis(2200)).contains(&elapsed),
        "Retry-After: 2 was honoured as {elapsed:?}"
    );
    assert_eq!(
        calls(&sandbox, mark),
        ["GET ~/resourceGroups/rg 429", "GET ~/resourceGroups/rg 200"]
    );
    assert_eq!(
        faults(&sandbox, mark),
        [Some("script[0] call 1".to_owned()), None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_on_get_and_put() {
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: PUT
    path: /subscriptions/{SUB}/resourceGroups/rg
    calls: [1]
    status: 503
    body:
      error:
        code: ServiceUnavailable
        message: The service is temporarily unavailable.
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/rg
    calls: [1, 2]
    status: 503
    headers:
      retry-after-ms: "50"
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    let mark = sandbox.requests().len();
    let created = azure
        .arm
        .put(
            &group("rg"),
            &json!({"location": "westus", "tags": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(created["tags"], json!({"k": "v"}));
    let got = azure.arm.get(&group("rg")).await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(
        calls(&sandbox, mark),
        [
            "PUT ~/resourceGroups/rg 503",
            "PUT ~/resourceGroups/rg 201",
            "GET ~/resourceGroups/rg 503",
            "GET ~/resourceGroups/rg 503",
            "GET ~/resourceGroups/rg 200",
        ]
    );
    let groups = azure
        .arm
        .list(&format!("/subscriptions/{SUB}/resourcegroups"))
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_on_get_and_put_are_retried_and_create_one_resource() {
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: PUT
    path: /subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai
    calls: [1]
    reset: true
  - method: GET
    path: /subscriptions/{SUB}/providers/Microsoft.CognitiveServices/locations/westus/operationResults/*
    calls: [1]
    reset: true
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai
    calls: [2]
    reset: true
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westus"}))
        .await
        .unwrap();
    let mark = sandbox.requests().len();
    let created = azure
        .arm
        .put(&account("rg", "ai"), &foundry("wire-reset", false))
        .await
        .unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    // The LRO's final GET is the account's first GET; this one is its second.
    let got = azure.arm.get(&account("rg", "ai")).await.unwrap().unwrap();
    assert_eq!(
        got["properties"]["internalId"],
        created["properties"]["internalId"]
    );
    let ai = "~/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai";
    let status = "~/providers/Microsoft.CognitiveServices/locations/westus/operationResults/{id}";
    assert_eq!(
        calls(&sandbox, mark),
        [
            format!("PUT {ai} 0"),
            format!("PUT {ai} 201"),
            format!("GET {status} 0"),
            format!("GET {status} 200"),
            format!("GET {ai} 200"),
            format!("GET {ai} 0"),
            format!("GET {ai} 200"),
        ]
    );
    let accounts = azure
        .arm
        .list(&format!(
            "{}/providers/Microsoft.CognitiveServices/accounts",
            group("rg")
        ))
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let in_state = sandbox
        .state()
        .arm
        .resources
        .values()
        .filter(|r| r.body["type"] == "Microsoft.CognitiveServices/accounts")
        .count();
    assert_eq!(in_state, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_repeated_after_a_reset_unless_it_is_safe() {
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: POST
    path: /subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai/listKeys
    calls: [1, 2]
    reset: true
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westus"}))
        .await
        .unwrap();
    azure
        .arm
        .put(&account("rg", "ai"), &foundry("wire-keys", true))
        .await
        .unwrap();
    let list_keys = format!("{}/listKeys", account("rg", "ai"));
    let mark = sandbox.requests().len();
    let error = azure
        .arm
        .post(&list_keys, None, Replay::ByMethod)
        .await
        .unwrap_err();
    let url = format!("{}{list_keys}?api-version=2025-06-01", sandbox.base_url());
    assert!(
        matches!(&error, WireError::Transport(TransportError::Ambiguous { url: u, .. }) if *u == url),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "lost the connection to {url} after sending the request, so it may have reached the \
             server: "
        )),
        "{text}"
    );
    assert_eq!(
        error.hint().as_deref(),
        Some(
            "the request may have been carried out; run the command again: it reads what exists \
             before writing"
        )
    );
    assert_eq!(error.status(), None);
    let ai = "~/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai";
    assert_eq!(calls(&sandbox, mark), [format!("POST {ai}/listKeys 0")]);

    // The same action vouched for as safe to repeat (it only reads): retried, and answered.
    let mark = sandbox.requests().len();
    let keys = azure
        .arm
        .post(&list_keys, None, Replay::Safe)
        .await
        .unwrap();
    assert_eq!(keys["key1"].as_str().map(str::len), Some(32), "{keys}");
    assert_eq!(
        calls(&sandbox, mark),
        [
            format!("POST {ai}/listKeys 0"),
            format!("POST {ai}/listKeys 200"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. ARM errors, whole

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_validation_error_is_printed_with_every_detail() {
    let sandbox = default_sandbox().await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westeurope"}))
        .await
        .unwrap();
    azure
        .arm
        .put(&apim("rg", "gw"), &apim_body())
        .await
        .unwrap();
    let api = format!("{}/apis/llm", apim("rg", "gw"));
    azure.arm.put(&api, &api_body()).await.unwrap();
    let policy = format!("{api}/policies/policy");
    let broken = "<policies>\r\n  <inbound>\r\n    <set-header name=\"a\" exists-action=override />\r\n  </inbound>\r\n</policies>";
    let mark = sandbox.requests().len();
    let error = azure
        .arm
        .put(&policy, &json!({ "properties": { "value": broken } }))
        .await
        .unwrap_err();
    let api_error = error.api().expect("an ARM error");
    let request_id = api_error.request_id.clone().expect("x-ms-request-id");
    let correlation_id = api_error
        .correlation_id
        .clone()
        .expect("x-ms-correlation-request-id");
    // Echoed because the client asks for it (x-ms-return-client-request-id).
    let client_request_id = api_error
        .client_request_id
        .clone()
        .expect("x-ms-client-request-id");
    assert_eq!(
        error.to_string(),
        format!(
            "PUT {policy}: ARM error ValidationError (HTTP 400): One or more fields contain \
             incorrect values:\n  \
             - set-header: Error in element 'set-header' on line 3, column 5: position 34: attribute value must be enclosed in `\"` or `'` (ValidationError)\n  \
             request id {request_id}, correlation id {correlation_id}, client request id \
             {client_request_id}"
        )
    );
    assert_eq!(
        error.hint().as_deref(),
        Some(
            "each line above names a rejected field (target) and why; fix it in the environment \
             file, or in the policy template for policy XML errors (`provision render` shows the \
             XML sent)"
        )
    );
    assert_eq!(error.status(), Some(400));
    assert!(error.has_code("ValidationError"));
    // A 400 is final: not retried, and nothing was polled.
    assert_eq!(
        calls(&sandbox, mark),
        [
            "PUT ~/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw/apis/llm/policies/policy 400"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 7-8. Replication lag

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_replication_lag_is_waited_out() {
    // A lag of several retry intervals, so that a loaded machine that delays one retry still
    // sees at least two misses before the replica catches up.
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(2500),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure_with(
        &sandbox,
        Duration::from_secs(60),
        ConsistencyPolicy {
            first: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
    );
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let Upserted::Created(app) = azure
        .graph
        .upsert_application("wire-lag", &json!({"displayName": "wire lag"}))
        .await
        .unwrap()
    else {
        panic!("a new application is created");
    };
    let app_id = app["appId"].as_str().unwrap().to_owned();
    // Both at once, as soon as the application exists on the primary.
    let empty = json!({});
    let (readable, sp) = tokio::join!(
        azure
            .graph
            .app_is_readable(&app_id, Duration::from_secs(10)),
        azure.graph.upsert_service_principal(&app_id, &empty)
    );
    let elapsed = started.elapsed();
    let readable = readable.unwrap();
    assert_eq!(readable["id"], app["id"]);
    assert_eq!(readable["uniqueName"], "wire-lag");
    let Upserted::Created(sp) = sp.unwrap() else {
        panic!("a new service principal is created");
    };
    assert_eq!(sp["appId"], app_id.as_str());
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");

    let all = calls(&sandbox, mark);
    assert_eq!(
        all[0],
        "PATCH /v1.0/applications(uniqueName='wire-lag') 201"
    );
    let of = |prefix: &str| -> Vec<String> {
        all.iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    };
    assert_calls(
        &of("GET /v1.0/applications(appId="),
        &[
            (
                "GET /v1.0/applications(appId='{id}') 404",
                Times::AtLeast(2),
            ),
            ("GET /v1.0/applications(appId='{id}') 200", Times::Once),
        ],
    );
    assert_calls(
        &of("PATCH /v1.0/servicePrincipals(appId="),
        &[
            (
                "PATCH /v1.0/servicePrincipals(appId='{id}') 400",
                Times::AtLeast(2),
            ),
            (
                "PATCH /v1.0/servicePrincipals(appId='{id}') 201",
                Times::Once,
            ),
        ],
    );
    assert_eq!(
        all.len(),
        1 + of("GET /v1.0/applications(appId=").len()
            + of("PATCH /v1.0/servicePrincipals(appId=").len()
    );
    let objects = sandbox.state().objects.len();
    assert_eq!(objects, 2, "one application and one service principal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_assignment_waits_for_a_new_principal_to_reach_arm() {
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(600),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westus"}))
        .await
        .unwrap();
    let Upserted::Created(app) = azure
        .graph
        .upsert_application("wire-role", &json!({"displayName": "wire role"}))
        .await
        .unwrap()
    else {
        panic!("a new application is created");
    };
    let app_id = app["appId"].as_str().unwrap();
    let Upserted::Created(sp) = azure
        .graph
        .upsert_service_principal(app_id, &json!({}))
        .await
        .unwrap()
    else {
        panic!("a new service principal is created");
    };
    let principal = sp["id"].as_str().unwrap();
    let mark = sandbox.requests().len();
    let started = Instant::now();
    let name = "33333333-3333-4333-8333-333333333333";
    let assigned = azure
        .arm
        .put(
            &assignment(&group("rg"), name),
            &role_assignment_body(principal, "ServicePrincipal"),
        )
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(assigned["name"], name);
    assert_eq!(assigned["properties"]["principalId"], principal);
    assert_calls(
        &calls(&sandbox, mark),
        &[
            (
                "PUT ~/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/{id} 400",
                Times::AtLeast(2),
            ),
            (
                "PUT ~/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/{id} 201",
                Times::Once,
            ),
        ],
    );
    let assignments = azure
        .arm
        .list(&format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            group("rg")
        ))
        .await
        .unwrap();
    assert_eq!(assignments.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 9. Deadlines

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_names_what_it_was_waiting_for() {
    // An APIM service create takes 60 s of sandbox time: 3 s here, against a 1 s deadline.
    let sandbox = realistic(20.0, |_| {}).await;
    let azure = azure_with(
        &sandbox,
        Duration::from_secs(1),
        ConsistencyPolicy::default(),
    );
    azure
        .arm
        .put(&group("rg"), &json!({"location": "westeurope"}))
        .await
        .unwrap();
    let started = Instant::now();
    let error = azure
        .arm
        .put(&apim("rg", "gw"), &apim_body())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let status_path = sandbox
        .state()
        .arm
        .operations
        .values()
        .find(|o| o.resource_id.ends_with("/service/gw"))
        .expect("the create started")
        .status_path
        .clone();
    // It gives up before the deadline (the poll asked for would pass it), after however many ms.
    assert_eq!(
        without_elapsed(&error.to_string()),
        format!(
            "gave up after … of 1s waiting for API Management service gw (last: still running; \
             next poll of {}{}?api-version=2024-05-01&asyncResponse in 3s)",
            sandbox.base_url(),
            status_path
        )
    );
    assert!(matches!(error, WireError::Deadline(_)), "{error:?}");
    assert_eq!(
        error.hint().as_deref(),
        Some("raise --timeout, or run the command again: it picks up what already exists")
    );
    // The poll the server asked for would end past the deadline: the client says so at once
    // instead of sleeping into it.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_wait_that_expires_names_its_condition() {
    let sandbox = default_sandbox().await;
    let azure = azure_with(
        &sandbox,
        Duration::from_secs(60),
        ConsistencyPolicy {
            first: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
    );
    sign_in(&azure, &sandbox).await;
    let app_id = "0c1d0000-0000-4000-8000-00000000beef";
    let mark = sandbox.requests().len();
    let error = azure
        .graph
        .app_is_readable(app_id, Duration::from_secs(1))
        .await
        .unwrap_err();
    // Probes at 0, 0.2 and 0.6 s; the next would come at 1.4 s, past the timeout.
    assert_eq!(
        without_elapsed(&error.to_string()),
        format!(
            "gave up after … of 1s waiting for application {app_id} to be readable in Microsoft \
             Graph (last: HTTP 404 Request_ResourceNotFound, after 3 tries)"
        )
    );
    assert_eq!(
        error.hint().as_deref(),
        Some("raise --timeout, or run the command again: it picks up what already exists")
    );
    assert_eq!(
        calls(&sandbox, mark),
        ["GET /v1.0/applications(appId='{id}') 404"; 3]
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Logs

/// A tracing writer into memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Runs in a process of its own: tracing caches per call site whether anyone listens, and a call
/// site first reached by a test on another thread while this test's subscriber is being set up
/// can be cached as silent, so under load the capture missed lines that were logged.
#[test]
fn no_credential_reaches_a_trace_log() {
    const CHILD: &str = "PROVISION_TRACE_CAPTURE_TEST";
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(trace_log_holds_no_credential());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wire::no_credential_reaches_a_trace_log",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn trace_log_holds_no_credential() {
    let sandbox = start(SandboxConfig {
        fault_script: script(
            r#"
faults:
  - method: GET
    path: /subscriptions/{SUB}/resourceGroups/rg
    calls: [1]
    status: 503
    headers:
      Retry-After: "0"
"#,
        ),
        ..SandboxConfig::default()
    })
    .await;
    let endpoints = endpoints(&sandbox);
    let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new().unwrap());
    // As the CLI does it: default retry and consistency policies.
    let azure = Azure::connect(
        Cloud::Sandbox,
        &endpoints,
        &CredentialPlan::Sandbox,
        transport,
        Deadline::after(Duration::from_secs(60), "the test"),
    )
    .unwrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(false)
        .finish();
    async {
        // Sign-in (ARM), a write, a retried read, an LRO, and Graph (a second sign-in).
        azure
            .arm
            .put(&group("rg"), &json!({"location": "westus"}))
            .await
            .unwrap();
        azure.arm.get(&group("rg")).await.unwrap().unwrap();
        azure
            .arm
            .put(&account("rg", "ai"), &foundry("wire-logs", false))
            .await
            .unwrap();
        azure
            .graph
            .upsert_application("wire-logs", &json!({"displayName": "wire logs"}))
            .await
            .unwrap();
    }
    .with_subscriber(subscriber)
    .await;

    let logged = capture.text();
    assert!(
        logged.contains("retrying after HTTP 503"),
        "the retry is logged:\n{logged}"
    );
    assert!(
        logged.contains("operationResults/"),
        "the LRO polls are logged:\n{logged}"
    );
    assert!(
        logged.contains("\"authorization\": \"<redacted>\""),
        "request headers are logged, redacted:\n{logged}"
    );
    let mut secrets = Vec::new();
    for scope in [endpoints.arm_scope(), endpoints.graph_scope()] {
        let token = azure.session.credentials().token(&scope).await.unwrap();
        let token = token.expose().to_owned();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT");
        // The claims and the signature each on their own: a log that cut the token would still
        // carry one of them.
        secrets.extend([token.clone(), parts[1].to_owned(), parts[2].to_owned()]);
    }
    let secret = sandbox.info()["operator"]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 32);
    secrets.push(secret);
    for secret in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "a credential is in the log:\n{logged}"
        );
    }
}

/// "gave up after 612ms of 1s …" → "gave up after … of 1s …": the time used varies by run.
fn without_elapsed(message: &str) -> String {
    match message
        .strip_prefix("gave up after ")
        .and_then(|rest| rest.split_once(" of "))
    {
        Some((_, rest)) => format!("gave up after … of {rest}"),
        None => message.to_owned(),
    }
}
