//! Gateway requests per second through the sandbox's whole APIM pipeline, next to its plain ARM
//! GET rate in the same run (issue 12's target: ≥ 1,500 allowed requests/s and ≥ 0.3 × the ARM
//! rate on a 2-core machine).
//!
//! Set up through ARM as `tests/integration/gateway.rs` does: an APIM service with a
//! system-assigned identity, its backend, the `llm` API and its chat operation, and as the API's
//! policy the shipped `llm-api` template rendered for `environments/local.yaml` (the sandbox's
//! own address put in, `tokens_per_minute` raised so that the run measures allowed calls, not
//! 429s; the `llm-token-limit` still runs and is charged on every call). Each gateway call then
//! carries a v2 user token of the sandbox's tenant that the policy must verify (RS256, warm key
//! set), passes the token limit, gets a managed-identity token for the backend, and is forwarded
//! to a loopback model stub ([`provision::sandbox::inference::model`]'s answer, built once), whose
//! answer's `usage` is read back for the limit. 16 concurrent clients on keep-alive connections,
//! for a fixed time per phase, everything on 127.0.0.1.
//!
//! Run: `cargo bench --bench gateway` (`SECONDS=5` per phase by default). The last line is the
//! ratio; print `uptime` next to it, the machine is shared.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use provision::config::{self, Environment, Guid, PolicyValue};
use provision::policy::token::TokenSigner;
use provision::render::{ResolvedAppIds, TemplateSet, render};
use provision::sandbox::inference::model::{complete, parse_request};
use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const API_APP: &str = "a9100000-0000-4000-8000-0000000000a1";
const CLIENT_APP: &str = "c1100000-0000-4000-8000-0000000000c1";
const APIM: &str = "2024-05-01";
const CHAT: &str = "/llm/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21";
const BODY: &str = r#"{"messages":[{"role":"user","content":"Summarise the incident in one line."}],"max_tokens":16}"#;

/// A loopback model stub: the sandbox model's answer to [`BODY`], computed once.
async fn stub() -> String {
    let answer = complete(
        &parse_request(BODY.as_bytes()).unwrap(),
        "gpt-4o-mini-2024-07-18",
        1_800_000_000,
    )
    .response();
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move { ([("content-type", "application/json")], answer) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/openai")
}

/// The shipped policy for the local environment, pointing at `sandbox`.
fn shipped_policy(sandbox: &Sandbox) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Environment::Target(mut blueprint) =
        config::load(&root.join("environments"), "local").unwrap()
    else {
        panic!("local is deployable")
    };
    blueprint.sandbox_address = sandbox.addr().to_string();
    blueprint.policy.vars.insert(
        "tokens_per_minute".into(),
        PolicyValue::Integer(1_000_000_000),
    );
    let templates = TemplateSet::load(&root.join("templates")).unwrap();
    let ids = ResolvedAppIds {
        api: Guid::parse(API_APP).unwrap(),
        clients: vec![Guid::parse(CLIENT_APP).unwrap()],
    };
    render(&blueprint, &templates, &ids)
        .unwrap()
        .xml()
        .to_owned()
}

fn user_token(sandbox: &Sandbox) -> String {
    let signer = sandbox_signer(sandbox);
    let now = sandbox.now().as_second();
    signer.sign(&json!({
        "aud": API_APP, "iss": format!("{}/{DEFAULT_TENANT}/v2.0", sandbox.base_url()),
        "tid": DEFAULT_TENANT, "oid": "0c1d0000-0000-4000-8000-0000000000aa", "azp": CLIENT_APP,
        "scp": "llm.invoke", "ver": "2.0", "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
    }))
}

fn sandbox_signer(sandbox: &Sandbox) -> TokenSigner {
    use base64::Engine;
    let state = sandbox.state();
    let tenant = state
        .tenants
        .iter()
        .find(|t| t.id == DEFAULT_TENANT)
        .unwrap();
    let key = &tenant.keys[0];
    let der = base64::engine::general_purpose::STANDARD
        .decode(&key.pkcs8)
        .unwrap();
    TokenSigner::from_pkcs8_der(&der, &key.kid).unwrap()
}

type Make = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

/// Requests/s answered 2xx by `CLIENTS` concurrent clients during `seconds`.
async fn phase(name: &str, client: &reqwest::Client, seconds: u64, request: Make) -> f64 {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            let (ok, failed) = (ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match request(&client).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rate = ok as f64 / elapsed;
    println!(
        "{name}: {rate:.0} requests/s ({ok} answered 2xx, {failed} failed, {CLIENTS} clients, {elapsed:.1} s)"
    );
    assert_eq!(failed, 0, "{name}: every request must succeed");
    rate
}

fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let base = sandbox.base_url().to_owned();
        let info = sandbox.info();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(CLIENTS)
            .build()
            .unwrap();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", info["operator"]["client_id"].as_str().unwrap()),
            ("client_secret", info["operator"]["client_secret"].as_str().unwrap()),
            ("scope", "https://management.azure.com/.default"),
        ];
        let token: Value = client
            .post(format!("{base}/{DEFAULT_TENANT}/oauth2/v2.0/token"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let arm = Arc::new(format!("Bearer {}", token["access_token"].as_str().unwrap()));
        let group = format!("{base}/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-bench");
        let put = |path: String, body: Value| {
            let (client, arm) = (client.clone(), arm.clone());
            async move {
                let sep = if path.contains('?') { '&' } else { '?' };
                let version = if path.contains("ApiManagement") { APIM } else { "2025-04-01" };
                let r = client
                    .put(format!("{path}{sep}api-version={version}"))
                    .header("authorization", arm.as_str())
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.text().await.unwrap());
            }
        };
        put(group.clone(), json!({ "location": "swedencentral" })).await;
        let service = format!("{group}/providers/Microsoft.ApiManagement/service/apim-bench");
        put(
            service.clone(),
            json!({
                "location": "swedencentral", "sku": { "name": "Developer", "capacity": 1 },
                "identity": { "type": "SystemAssigned" },
                "properties": { "publisherEmail": "ops@example.com", "publisherName": "bench" }
            }),
        )
        .await;
        let gateway_url = loop {
            let got: Value = client
                .get(format!("{service}?api-version={APIM}"))
                .header("authorization", arm.as_str())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if got["properties"]["provisioningState"] == "Succeeded" {
                break got["properties"]["gatewayUrl"].as_str().unwrap().to_owned();
            }
            sandbox.advance(provision::clock::SignedDuration::from_secs(3600)).unwrap();
        };
        let backend = stub().await;
        put(
            format!("{service}/backends/foundry-openai"),
            json!({ "properties": { "url": backend, "protocol": "http" } }),
        )
        .await;
        put(
            format!("{service}/apis/llm"),
            json!({ "properties": { "displayName": "LLM", "path": "llm", "protocols": ["https"] } }),
        )
        .await;
        put(
            format!("{service}/apis/llm/operations/chat-completions"),
            json!({ "properties": {
                "displayName": "Chat", "method": "POST",
                "urlTemplate": "/deployments/{deployment-id}/chat/completions",
                "templateParameters": [{ "name": "deployment-id", "type": "string", "required": true }]
            } }),
        )
        .await;
        put(
            format!("{service}/apis/llm/policies/policy"),
            json!({ "properties": { "format": "rawxml", "value": shipped_policy(&sandbox) } }),
        )
        .await;
        let bearer = Arc::new(format!("Bearer {}", user_token(&sandbox)));
        let url = Arc::new(format!("{gateway_url}{CHAT}"));
        let once = client
            .post(url.as_str())
            .header("authorization", bearer.as_str())
            .header("content-type", "application/json")
            .body(BODY)
            .send()
            .await
            .unwrap();
        assert_eq!(once.status(), 200, "{}", once.text().await.unwrap());
        let record = sandbox.requests().into_iter().rev().find_map(|r| r.gateway).unwrap();
        let record = serde_json::to_value(record).unwrap();
        assert_eq!(record["decision"], "allow", "{record}");
        assert_eq!(record["backend"]["auth"], "managed-identity", "{record}");

        let group_get = Arc::new(format!("{group}?api-version=2025-04-01"));
        let arm_rate = phase(
            "ARM GET resource group",
            &client,
            seconds,
            Arc::new(move |c: &reqwest::Client| c.get(group_get.as_str()).header("authorization", arm.as_str())),
        )
        .await;
        let gateway_rate = phase(
            "gateway POST chat completion (token check, token limit, managed identity, backend)",
            &client,
            seconds,
            Arc::new(move |c: &reqwest::Client| {
                c.post(url.as_str())
                    .header("authorization", bearer.as_str())
                    .header("content-type", "application/json")
                    .body(BODY)
            }),
        )
        .await;
        println!(
            "gateway/ARM = {:.2} (targets: gateway >= 1500/s, ratio >= 0.30)",
            gateway_rate / arm_rate
        );
        sandbox.shutdown().await;
    });
}
