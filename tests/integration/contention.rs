//! Robustness under contention: a service that is busy for a while (409 `ServiceLocked` /
//! `RequestConflict`) is waited out.

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
use serde_json::json;

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
