//! The test-facing `/_sandbox/` endpoints, the request log, faults and persistence.

use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, FOREIGN_TENANT, SandboxConfig};
use serde_json::Value;

use crate::sandbox_support::{client, default_sandbox, start};

#[tokio::test]
async fn info_names_tenants_subscriptions_urls_and_the_operator() {
    let sandbox = default_sandbox().await;
    let info: Value = client()
        .get(format!("{}/_sandbox/info", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["base_url"], sandbox.base_url());
    assert_eq!(info["graph"], format!("{}/v1.0", sandbox.base_url()));
    assert_eq!(info["default_tenant"], DEFAULT_TENANT);
    let tenants: Vec<&str> = info["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, [DEFAULT_TENANT, FOREIGN_TENANT]);
    assert_eq!(
        info["subscriptions"],
        serde_json::json!([DEFAULT_SUBSCRIPTION])
    );
    assert_eq!(
        info["operator"]["client_secret"].as_str().unwrap().len(),
        40
    );
    assert!(sandbox.base_url().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn the_request_log_records_method_path_status_and_faults() {
    let script = provision::sandbox::FaultScript::parse(
        "f.yaml",
        "faults:\n  - method: GET\n    path: /nowhere*\n    calls: [2]\n    status: 429\n    headers: {Retry-After: \"7\"}\n",
    )
    .unwrap();
    let sandbox = start(SandboxConfig {
        fault_script: Some(script),
        ..SandboxConfig::default()
    })
    .await;
    let c = client();
    let first = c
        .get(format!("{}/nowhere?x=1", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    let second = c
        .get(format!("{}/nowhere", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 404);
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "7");
    let log: Value = c
        .get(format!("{}/_sandbox/requests", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(
        log.len(),
        2,
        "the log request itself is recorded after it answers: {log:?}"
    );
    assert_eq!(
        (
            log[0]["method"].as_str(),
            log[0]["path"].as_str(),
            log[0]["status"].as_u64()
        ),
        (Some("GET"), Some("/nowhere?x=1"), Some(404))
    );
    assert_eq!(log[0]["fault"], Value::Null);
    assert_eq!(log[1]["fault"], "script[0] call 2");
    assert_eq!(sandbox.requests().len(), 3);
}

#[tokio::test]
async fn a_reset_fault_drops_the_connection() {
    let script = provision::sandbox::FaultScript::parse(
        "f.yaml",
        "faults:\n  - path: /boom\n    reset: true\n",
    )
    .unwrap();
    let sandbox = start(SandboxConfig {
        fault_script: Some(script),
        ..SandboxConfig::default()
    })
    .await;
    let err = client()
        .get(format!("{}/boom", sandbox.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("connection"),
        "{err:?}"
    );
    assert_eq!(sandbox.requests()[0].status, 0);
    assert_eq!(
        sandbox.requests()[0].fault.as_deref(),
        Some("script[0] call 1")
    );
}

#[tokio::test]
async fn state_persists_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let first = start(config.clone()).await;
    let secret = first.state().operator.client_secret.clone();
    let kid = first.state().tenants[0].keys[0].kid.clone();
    first.shutdown().await;
    let second = start(config).await;
    assert_eq!(second.state().operator.client_secret, secret);
    assert_eq!(second.state().tenants[0].keys[0].kid, kid);
    assert!(dir.path().join("state.json").exists());
}

#[tokio::test]
async fn keys_rotate_on_demand() {
    let sandbox = default_sandbox().await;
    let before = sandbox.state().tenants[0].keys.len();
    let r: Value = client()
        .post(format!(
            "{}/_sandbox/tenants/{DEFAULT_TENANT}/keys/rotate",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sandbox.state().tenants[0].keys.len(), before + 1);
    assert_eq!(
        r["kid"],
        sandbox.state().tenants[0].keys.last().unwrap().kid.as_str()
    );
}

#[tokio::test]
async fn non_loopback_addresses_are_refused_without_the_flag() {
    let config = SandboxConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..SandboxConfig::default()
    };
    let err = provision::sandbox::Sandbox::start(config)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("is not a loopback address"),
        "{err}"
    );
}
