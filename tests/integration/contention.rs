//! Robustness under contention: a service that is busy for a while (409 `ServiceLocked` /
//! `RequestConflict`) is waited out, and two `up --env local` started together share one
//! sandbox instead of one failing on the taken address.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use provision::azure::Azure;
use provision::azure::credential::CredentialPlan;
use provision::azure::retry::{Deadline, RetryPolicy};
use provision::azure::session::Session;
use provision::azure::sign_in::Credentials;
use provision::azure::transport::{ReqwestTransport, Transport};
use provision::cloud::Cloud;
use provision::sandbox::{
    DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, FaultScript, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

use crate::project::Project;
use crate::sandbox_support::start;

const SUB: &str = DEFAULT_SUBSCRIPTION;

fn apim(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{name}"
    )
}

/// A client over the sandbox with quick retries (tens of milliseconds), so the test waits little.
fn azure(sandbox: &Sandbox) -> Azure {
    let endpoints = Cloud::Sandbox.endpoints(&sandbox.addr().to_string());
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
        Deadline::after(Duration::from_secs(60), "the test"),
    )
    .with_retry_policy(RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        max_attempts: 5,
    })
    .with_seed(7);
    Azure::with_session(session, &endpoints)
}

/// `METHOD status fault` of every request whose path contains `infix`.
fn log_of(sandbox: &Sandbox, infix: &str) -> Vec<(String, u16, Option<String>)> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(infix))
        .map(|r| (r.method, r.status, r.fault))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_locked_and_request_conflict_are_waited_out() {
    let script = FaultScript::parse(
        "contention.yaml",
        &r#"
faults:
  - method: PUT
    path: {APIM}/namedValues/tenant-id*
    calls: [1, 2]
    status: 409
    body: { error: { code: ServiceLocked, message: "The API Service gw is transitioning at this time. Please try the request again later." } }
  - method: PUT
    path: {APIM}/backends/foundry*
    calls: [1]
    status: 409
    body: { error: { code: RequestConflict, message: "Another operation is being performed on the parent resource. Please try again later." } }
  - method: PUT
    path: {APIM}/namedValues/other*
    status: 409
    body: { error: { code: Conflict, message: "Something else." } }
"#
        .replace("{APIM}", &apim("gw")),
    )
    .unwrap();
    let sandbox = start(SandboxConfig {
        fault_script: Some(script),
        ..SandboxConfig::default()
    })
    .await;
    let azure = azure(&sandbox);
    azure
        .arm
        .put(
            &format!("/subscriptions/{SUB}/resourceGroups/rg"),
            &json!({"location": "westeurope"}),
        )
        .await
        .unwrap();
    azure
        .arm
        .put(
            &apim("gw"),
            &json!({
                "location": "West Europe",
                "sku": { "name": "Developer", "capacity": 1 },
                "properties": { "publisherEmail": "ops@contoso.example", "publisherName": "Contoso" }
            }),
        )
        .await
        .unwrap();

    let named = azure
        .arm
        .put(
            &format!("{}/namedValues/tenant-id", apim("gw")),
            &json!({ "properties": { "displayName": "tenant-id", "value": DEFAULT_TENANT } }),
        )
        .await
        .unwrap();
    assert_eq!(named["properties"]["value"], DEFAULT_TENANT);
    let puts: Vec<_> = log_of(&sandbox, "/namedValues/tenant-id")
        .into_iter()
        .filter(|(method, ..)| method == "PUT")
        .collect();
    assert_eq!(
        puts,
        [
            ("PUT".to_owned(), 409, Some("script[0] call 1".to_owned())),
            ("PUT".to_owned(), 409, Some("script[0] call 2".to_owned())),
            ("PUT".to_owned(), 201, None),
        ]
    );

    let backend = azure
        .arm
        .put(
            &format!("{}/backends/foundry", apim("gw")),
            &json!({ "properties": { "url": "https://x.openai.azure.com/openai", "protocol": "http" } }),
        )
        .await
        .unwrap();
    assert_eq!(backend["properties"]["protocol"], "http");
    assert_eq!(
        log_of(&sandbox, "/backends/foundry"),
        [
            ("PUT".to_owned(), 409, Some("script[1] call 1".to_owned())),
            ("PUT".to_owned(), 201, None),
        ]
    );

    // Any other 409 is an answer: sent once, and returned whole.
    let error = azure
        .arm
        .put(
            &format!("{}/namedValues/other", apim("gw")),
            &json!({ "properties": { "displayName": "other", "value": "x" } }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string().lines().next().unwrap(),
        format!(
            "PUT {}/namedValues/other: ARM error Conflict (HTTP 409): Something else.",
            apim("gw")
        )
    );
    assert_eq!(
        log_of(&sandbox, "/namedValues/other"),
        [("PUT".to_owned(), 409, Some("script[2] call 1".to_owned()))]
    );
}

// ---------------------------------------------------------------------------------------------
// Two runs at once

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ups_at_once_share_one_sandbox() {
    let project = Project::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let local = project
        .read("environments/local.yaml")
        .replace("address: 127.0.0.1:7171", &format!("address: {addr}"));
    project.write("environments/local.yaml", &local);

    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("provision"));
            cmd.current_dir(project.dir.path())
                .args(["--color", "never", "up", "--env", "local"])
                .env_remove("RUST_LOG")
                .env_remove("PROVISION_AUTH")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let outs: Vec<Output> = tokio::task::spawn_blocking(move || {
        runs.into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap();
    for out in &outs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let started =
        format!("started the sandbox on {addr} for this command (state in .provision/sandbox/)");
    let joined = format!("connected to the sandbox another run started on {addr} a moment ago");
    let notes: Vec<String> = outs.iter().map(|o| text(&o.stderr)).collect();
    let first_lines: Vec<&str> = notes
        .iter()
        .map(|n| n.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(
        first_lines.iter().filter(|l| **l == started).count(),
        1,
        "exactly one run starts the sandbox: {notes:#?}"
    );
    // The other lost the race to bind and says whose sandbox it uses (or, started a little
    // later, found it listening and says nothing).
    assert!(
        first_lines
            .iter()
            .all(|l| *l == started || *l == joined || !l.contains("sandbox")),
        "{notes:#?}"
    );

    // One of everything, in the one state file.
    let sandbox = start(SandboxConfig {
        state_dir: Some(project.path(".provision/sandbox")),
        ..SandboxConfig::default()
    })
    .await;
    let state = sandbox.state();
    let mut apps: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.deleted_ms.is_none() && o.tenant_id == DEFAULT_TENANT)
        .filter(|o| serde_json::to_value(o.kind).unwrap() == "application")
        .map(|o| o.body["uniqueName"].as_str().unwrap_or("(none)").to_owned())
        .collect();
    apps.sort();
    assert_eq!(
        apps,
        ["llm-gateway-api-local", "llm-gateway-notebooks-local"]
    );
    let mut principals: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.deleted_ms.is_none() && o.tenant_id == DEFAULT_TENANT)
        .filter(|o| serde_json::to_value(o.kind).unwrap() == "servicePrincipal")
        .map(|o| o.body["appId"].as_str().unwrap().to_owned())
        .collect();
    let all = principals.len();
    principals.dedup();
    principals.sort();
    principals.dedup();
    assert_eq!((all, principals.len()), (4, 4), "one per app and identity");
    let mut types: Vec<String> = state
        .arm
        .resources
        .values()
        .filter_map(|r| {
            r.body
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    types.sort();
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    for (kind, n) in [
        ("Microsoft.Resources/resourceGroups", 1),
        ("Microsoft.CognitiveServices/accounts", 1),
        ("Microsoft.CognitiveServices/accounts/deployments", 1),
        ("Microsoft.ApiManagement/service", 1),
        ("Microsoft.ApiManagement/service/apis", 1),
        ("Microsoft.ApiManagement/service/apis/operations", 3),
        ("Microsoft.ApiManagement/service/backends", 1),
        ("Microsoft.Authorization/roleAssignments", 1),
    ] {
        assert_eq!(count(kind), n, "{kind}: {types:#?}");
    }
}
