//! Starting an in-process sandbox and talking to it over HTTP.

use provision::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

/// A sandbox on an ephemeral loopback port with the given configuration.
pub async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("the sandbox starts")
}

/// A sandbox with the test defaults: instant latency, no faults.
pub async fn default_sandbox() -> Sandbox {
    start(SandboxConfig::default()).await
}

/// A plain HTTP client for loopback (TLS uses ring, the one crypto provider in the tree).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `GET /_sandbox/info`.
pub async fn info(sandbox: &Sandbox) -> Value {
    client()
        .get(format!("{}/_sandbox/info", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The operator's client id and secret from `/_sandbox/info`.
pub async fn operator(sandbox: &Sandbox) -> (String, String) {
    let info = info(sandbox).await;
    (
        info["operator"]["client_id"].as_str().unwrap().to_owned(),
        info["operator"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}
