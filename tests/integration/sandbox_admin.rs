//! The test-facing `/_sandbox/` endpoints, the request log, faults and persistence.

use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, FOREIGN_TENANT, SandboxConfig};
use serde_json::Value;

use crate::sandbox_support::{client, default_sandbox, info, start};

#[tokio::test]
async fn info_names_tenants_subscriptions_urls_and_the_operator() {
    let sandbox = default_sandbox().await;
    let info = info(&sandbox).await;
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

#[tokio::test]
async fn serve_prints_its_url_answers_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("provision"))
        .args([
            "--color",
            "never",
            "sandbox",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--state",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .trim()
        .strip_prefix("sandbox listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let info: Value = client()
        .get(format!("{base}/_sandbox/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["default_tenant"], DEFAULT_TENANT);
    let mut rest = String::new();
    for _ in 0..4 {
        stdout.read_line(&mut rest).unwrap();
    }
    assert!(
        !rest.contains(info["operator"]["client_secret"].as_str().unwrap()),
        "the secret stays off stdout"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("sandbox stopped"), "{stderr}");
    assert!(dir.path().join("state.json").exists());
}

#[tokio::test]
async fn serve_refuses_bad_settings_before_listening() {
    let out = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .args([
            "--color",
            "never",
            "sandbox",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--latency",
            "glacial",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --latency glacial: unknown profile\nhint: profiles are instant and realistic\n"
    );
}

#[tokio::test]
async fn tls_serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        tls: true,
        state_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let sandbox = start(config).await;
    assert!(sandbox.base_url().starts_with("https://127.0.0.1:"));
    let pem = std::fs::read_to_string(dir.path().join("sandbox-cert.pem")).unwrap();
    assert_eq!(sandbox.certificate_pem().as_deref(), Some(pem.as_str()));
    let _ = client();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let info: Value = trusting
        .get(format!("{}/_sandbox/info", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["config"]["tls"], true);
    // A client that does not trust the certificate is refused.
    let strict = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        strict
            .get(format!("{}/_sandbox/info", sandbox.base_url()))
            .send()
            .await
            .is_err()
    );
    // The same URL over https with "localhost".
    let localhost = sandbox.base_url().replace("127.0.0.1", "localhost");
    assert!(
        trusting
            .get(format!("{localhost}/_sandbox/info"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test]
async fn the_flaky_profile_throttles_about_one_request_in_ten_and_reproduces_from_its_seed() {
    let run = |seed: u64| async move {
        let sandbox = start(SandboxConfig {
            faults: provision::sandbox::FaultProfile::Flaky,
            seed,
            ..SandboxConfig::default()
        })
        .await;
        let c = client();
        let mut statuses = Vec::new();
        for _ in 0..100 {
            statuses.push(
                c.get(format!("{}/anything", sandbox.base_url()))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        statuses
    };
    let first = run(42).await;
    assert_eq!(first, run(42).await, "same seed, same faults");
    let faulted = first.iter().filter(|s| **s == 429 || **s == 503).count();
    assert!((3..=20).contains(&faulted), "{faulted} of 100");
    assert_eq!(first.iter().filter(|s| **s == 404).count(), 100 - faulted);
}

#[tokio::test]
async fn the_hostile_profile_also_resets_and_stalls() {
    let sandbox = start(SandboxConfig {
        faults: provision::sandbox::FaultProfile::Hostile,
        seed: 9,
        time_scale: 1000.0,
        ..SandboxConfig::default()
    })
    .await;
    let c = client();
    let mut resets = 0;
    for _ in 0..200 {
        if c.get(format!("{}/anything", sandbox.base_url()))
            .send()
            .await
            .is_err()
        {
            resets += 1;
        }
    }
    let log = sandbox.requests();
    let label = |l: &str| log.iter().filter(|r| r.fault.as_deref() == Some(l)).count();
    assert_eq!(label("hostile: connection reset"), resets);
    assert!(resets > 0, "some connections are reset");
    assert!(label("hostile: slow response") > 0, "some answers are late");
    assert!(label("profile: throttled") > 0 && label("profile: unavailable") > 0);
    let faulted = log.iter().filter(|r| r.fault.is_some()).count();
    assert!((20..=70).contains(&faulted), "about 20% of 200: {faulted}");
}
