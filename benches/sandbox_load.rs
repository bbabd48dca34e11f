//! A bounded load test of the sandbox on loopback: client-credentials token requests, Graph GETs by
//! alternate key and ARM GETs of a resource group, each from 16 concurrent clients for a fixed time (target: ≥ 2,000
//! requests/s on a 2-core machine). Everything runs on 127.0.0.1 and stops by itself.
//!
//! Run: `cargo bench --bench sandbox_load` (SECONDS=5 by default per phase).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const CLIENTS: usize = 16;

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
        let (id, secret) = (
            info["operator"]["client_id"].as_str().unwrap().to_owned(),
            info["operator"]["client_secret"].as_str().unwrap().to_owned(),
        );
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CLIENTS).build().unwrap();
        let token_url = format!("{base}/{DEFAULT_TENANT}/oauth2/v2.0/token");
        let form = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), id),
            ("client_secret".to_owned(), secret),
            ("scope".to_owned(), "https://graph.microsoft.com/.default".to_owned()),
        ];
        let token: Value = client.post(&token_url).form(&form).send().await.unwrap().json().await.unwrap();
        let bearer = format!("Bearer {}", token["access_token"].as_str().expect("a Graph token"));
        let app: Value = client
            .post(format!("{base}/v1.0/applications"))
            .header("authorization", &bearer)
            .json(&json!({ "displayName": "load test" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let arm_form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.clone(), if k == "scope" { "https://management.azure.com/.default".to_owned() } else { v.clone() }))
            .collect();
        let arm_token: Value = client.post(&token_url).form(&arm_form).send().await.unwrap().json().await.unwrap();
        let arm_bearer = format!("Bearer {}", arm_token["access_token"].as_str().expect("an ARM token"));
        let group_url = format!("{base}/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/load?api-version=2025-04-01");
        let created = client
            .put(&group_url)
            .header("authorization", &arm_bearer)
            .json(&json!({ "location": "westus" }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let app_url = format!("{base}/v1.0/applications(appId='{}')", app["appId"].as_str().unwrap());

        let phase = |name: &'static str, request: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>| {
            let client = client.clone();
            async move {
                let ok = Arc::new(AtomicU64::new(0));
                let failed = Arc::new(AtomicU64::new(0));
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let started = Instant::now();
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|_| {
                        let (client, request, ok, failed) = (client.clone(), request.clone(), ok.clone(), failed.clone());
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
                println!("{name}: {:.0} requests/s ({ok} answered 2xx, {failed} failed, {CLIENTS} clients, {elapsed:.1} s)", ok as f64 / elapsed);
            }
        };
        let form = Arc::new(form);
        phase("token (client credentials)", Arc::new(move |c: &reqwest::Client| c.post(&token_url).form(&*form))).await;
        let bearer = Arc::new(bearer);
        phase("Graph GET application by appId", Arc::new(move |c: &reqwest::Client| c.get(&app_url).header("authorization", bearer.as_str()))).await;
        let arm_bearer = Arc::new(arm_bearer);
        phase("ARM GET resource group", Arc::new(move |c: &reqwest::Client| c.get(&group_url).header("authorization", arm_bearer.as_str()))).await;
        sandbox.shutdown().await;
    });
}
