//! Starting an in-process sandbox and talking to it over HTTP.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provision::policy::token::TokenSigner;
use provision::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

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

/// A client that trusts only `pem`: a `--tls` sandbox's own certificate.
pub fn trusting(pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
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

/// A v1 app-only token of the tenant at `tenant_index`, signed with its stored key.
pub fn token(sandbox: &Sandbox, tenant_index: usize, audience: &str) -> String {
    token_for(sandbox, tenant_index, audience, 3600)
}

/// A token like [`token`] that expires `lifetime_s` seconds from now on the sandbox's clock.
pub fn token_for(
    sandbox: &Sandbox,
    tenant_index: usize,
    audience: &str,
    lifetime_s: i64,
) -> String {
    let (tenant, der, kid, operator) = {
        let state = sandbox.state();
        let tenant = &state.tenants[tenant_index];
        let key = &tenant.keys[0];
        (
            tenant.id.clone(),
            STANDARD.decode(&key.pkcs8).unwrap(),
            key.kid.clone(),
            state.operator.clone(),
        )
    };
    let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
    // The sandbox's clock, not the system's: a test may have moved it.
    let now = sandbox.now().as_second();
    // The operator's identity: the principal that holds its role (Owner) on the subscription,
    // since ARM authorizes every write (src/sandbox/arm/rbac.rs).
    signer.sign(&json!({
        "aud": audience,
        "iss": format!("{}/{tenant}/", sandbox.base_url()),
        "tid": tenant,
        "oid": operator.object_id,
        "appid": operator.client_id,
        "ver": "1.0",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime_s,
    }))
}

/// One HTTP exchange, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an ARM or Graph error body ("" when there is none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// An ARM caller: the sandbox's default tenant, with an ARM token unless told otherwise.
pub struct Arm {
    client: reqwest::Client,
    base: String,
    pub token: Option<String>,
}

/// The sandbox's subscription, and paths under it.
pub const SUBSCRIPTION: &str = provision::sandbox::DEFAULT_SUBSCRIPTION;

pub fn group_path(group: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}")
}

impl Arm {
    pub fn new(sandbox: &Sandbox) -> Arm {
        Arm {
            client: client(),
            base: sandbox.base_url().to_owned(),
            token: Some(token(sandbox, 0, "https://management.azure.com/")),
        }
    }

    /// Like [`Arm::new`], through `client` (one that trusts a `--tls` sandbox's certificate).
    pub fn with_client(sandbox: &Sandbox, client: reqwest::Client) -> Arm {
        Arm {
            client,
            ..Arm::new(sandbox)
        }
    }

    pub fn anonymous(sandbox: &Sandbox) -> Arm {
        Arm {
            token: None,
            ..Arm::new(sandbox)
        }
    }

    /// Sends `method path` (a path and query on the sandbox, or an absolute URL it handed out).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.try_send(method, path, body, headers)
            .await
            .expect("the sandbox answers")
    }

    /// Like [`Arm::send`], but a dropped connection is `None` instead of a panic.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<Answer> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.ok()?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send("PUT", path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None, &[]).await
    }

    /// Polls an `Azure-AsyncOperation` URL until its status is terminal; returns the last answer.
    pub async fn wait_async(&self, url: &str) -> Answer {
        for _ in 0..200 {
            let answer = self.get(url).await;
            let status = answer.body["status"].as_str().unwrap_or_default();
            if answer.status != 200 || ["Succeeded", "Failed", "Canceled"].contains(&status) {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{url} never finished");
    }

    /// Polls a `Location` URL until it stops answering 202; returns the last answer.
    pub async fn wait_location(&self, url: &str) -> Answer {
        for _ in 0..200 {
            let answer = self.get(url).await;
            if answer.status != 202 {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{url} never finished");
    }

    /// Creates a resource group in `westus`.
    pub async fn group(&self, name: &str) {
        let answer = self
            .put(
                &format!("{}?api-version=2025-04-01", group_path(name)),
                &json!({ "location": "westus" }),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
}

/// A v1 token of the tenant at `tenant_index` like [`token`], with `claims` laid over the
/// defaults (`oid`, `idtyp`, `aud`…): a managed identity's or a user's token for a data plane.
pub fn token_with(sandbox: &Sandbox, tenant_index: usize, claims: Value) -> String {
    let (tenant, der, kid) = {
        let state = sandbox.state();
        let tenant = &state.tenants[tenant_index];
        let key = &tenant.keys[0];
        (
            tenant.id.clone(),
            STANDARD.decode(&key.pkcs8).unwrap(),
            key.kid.clone(),
        )
    };
    let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
    let now = sandbox.now().as_second();
    let mut all = json!({
        "iss": format!("{}/{tenant}/", sandbox.base_url()),
        "tid": tenant,
        "ver": "1.0",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
    });
    for (k, v) in claims.as_object().expect("claims are an object") {
        all[k] = v.clone();
    }
    signer.sign(&all)
}
