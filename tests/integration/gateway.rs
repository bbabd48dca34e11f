//! The APIM gateway of the sandbox, over HTTP: a service, API, operation, backend and policy
//! written through ARM, then called at its `gatewayUrl`. Every refusal is checked by status,
//! body and the reason the request log gives; an allowed call is checked at a loopback backend
//! that records what reached it (the caller's token must not; the service's managed identity's
//! must).

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use provision::clock::SignedDuration;
use provision::policy::token::TokenSigner;
use provision::sandbox::{DEFAULT_TENANT, Sandbox};
use serde_json::{Map, Value, json};

use crate::sandbox_support::{Answer, Arm, client, default_sandbox, group_path};

const VERSION: &str = "2024-05-01";
const GROUP: &str = "rg-gw";
const SERVICE: &str = "apim-GW";
const AUDIENCE: &str = "api://llm-gateway";
pub(crate) const CLIENT: &str = "c11e0000-0000-4000-8000-000000000001";
const OTHER_CLIENT: &str = "c11e0000-0000-4000-8000-000000000002";
const STRANGER: &str = "c11e0000-0000-4000-8000-0000000000ff";
const COGNITIVE: &str = "https://cognitiveservices.azure.com";
pub(crate) const CHAT: &str =
    "/llm/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21";

pub(crate) fn service_path(rest: &str) -> String {
    format!(
        "{}/providers/Microsoft.ApiManagement/service/{SERVICE}{rest}?api-version={VERSION}",
        group_path(GROUP)
    )
}

/// Writes through ARM and follows the write's async operation, if any, to its end.
pub(crate) async fn put_done(arm: &Arm, path: &str, body: &Value) -> Answer {
    let answer = arm.put(path, body).await;
    assert!(
        [200, 201, 202].contains(&answer.status),
        "{path}: {}",
        answer.body
    );
    match answer.header("location").map(str::to_owned) {
        Some(location) if answer.status != 200 => {
            let done = arm.wait_location(&location).await;
            assert!([200, 201].contains(&done.status), "{}", done.body);
            done
        }
        _ => answer,
    }
}

pub(crate) fn policy(clients: &[&str]) -> String {
    let ids: String = clients
        .iter()
        .map(|c| format!("<application-id>{c}</application-id>"))
        .collect();
    format!(
        r#"<policies>
  <inbound>
    <base />
    <validate-azure-ad-token tenant-id="{DEFAULT_TENANT}" header-name="Authorization" failed-validation-httpcode="401" failed-validation-error-message="Unauthorized. Access token is missing or invalid." output-token-variable-name="jwt">
      <client-application-ids>{ids}</client-application-ids>
      <audiences><audience>{AUDIENCE}</audience></audiences>
      <required-claims><claim name="scp" match="any"><value>chat</value></claim></required-claims>
    </validate-azure-ad-token>
    <llm-token-limit counter-key="@(context.Request.IpAddress)" tokens-per-minute="100" estimate-prompt-tokens="false" remaining-tokens-header-name="x-ratelimit-remaining-tokens" />
    <set-backend-service backend-id="foundry" />
    <authentication-managed-identity resource="{COGNITIVE}" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#
    )
}

/// What the stub streams for a `"stream":true` request.
pub(crate) const STREAM: &str =
    "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";

/// What the loopback backend saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// A stand-in model: records each request and answers a chat completion that used 60 tokens.
pub(crate) async fn backend() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            log.lock().unwrap().push(Seen {
                path: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            if body.starts_with(br#"{"stream":true"#) {
                return (
                    [("content-type", "text/event-stream"), ("x-model", "stub")],
                    STREAM.to_owned(),
                );
            }
            (
                [("content-type", "application/json"), ("x-model", "stub")],
                json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60}})
                .to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/openai"), seen)
}

pub(crate) struct Gateway {
    pub(crate) sandbox: Sandbox,
    pub(crate) http: reqwest::Client,
    pub(crate) arm: Arm,
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    pub(crate) backend_url: String,
    pub(crate) principal: String,
}

impl Gateway {
    pub(crate) async fn new() -> Gateway {
        Gateway::with(default_sandbox().await, client()).await
    }

    pub(crate) async fn with(sandbox: Sandbox, http: reqwest::Client) -> Gateway {
        let arm = Arm::with_client(&sandbox, http.clone());
        arm.group(GROUP).await;
        put_done(
            &arm,
            &service_path(""),
            &json!({
                "location": "West Europe",
                "sku": { "name": "Developer", "capacity": 1 },
                "identity": { "type": "SystemAssigned" },
                "properties": { "publisherEmail": "ops@contoso.example", "publisherName": "gw" }
            }),
        )
        .await;
        let service = arm.get(&service_path("")).await;
        assert_eq!(service.status, 200, "{}", service.body);
        let principal = service.body["identity"]["principalId"]
            .as_str()
            .unwrap()
            .to_owned();
        let url = service.body["properties"]["gatewayUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let (backend_url, seen) = backend().await;
        put_done(
            &arm,
            &service_path("/backends/foundry"),
            &json!({ "properties": { "url": &backend_url, "protocol": "http" } }),
        )
        .await;
        put_done(
            &arm,
            &service_path("/apis/llm"),
            &json!({ "properties": { "displayName": "LLM", "path": "llm", "protocols": ["https"] } }),
        )
        .await;
        put_done(
            &arm,
            &service_path("/apis/llm/operations/chat"),
            &json!({ "properties": {
                "displayName": "Chat", "method": "POST",
                "urlTemplate": "/deployments/{deployment-id}/chat/completions",
                "templateParameters": [{ "name": "deployment-id", "type": "string", "required": true }]
            } }),
        )
        .await;
        let gateway = Gateway {
            sandbox,
            http,
            arm,
            url,
            seen,
            backend_url,
            principal,
        };
        gateway.set_policy(&[CLIENT, OTHER_CLIENT]).await;
        gateway
    }

    pub(crate) async fn set_policy(&self, clients: &[&str]) {
        put_done(
            &self.arm,
            &service_path("/apis/llm/policies/policy"),
            &json!({ "properties": { "format": "rawxml", "value": policy(clients) } }),
        )
        .await;
    }

    /// A token of the tenant at `tenant_index` signed with its stored key; `claims` override the
    /// defaults (a valid user token for our API from [`CLIENT`]).
    pub(crate) fn token(&self, tenant_index: usize, claims: Value) -> String {
        let (tenant, der, kid) = {
            let state = self.sandbox.state();
            let tenant = &state.tenants[tenant_index];
            let key = &tenant.keys[0];
            (
                tenant.id.clone(),
                STANDARD.decode(&key.pkcs8).unwrap(),
                key.kid.clone(),
            )
        };
        let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
        let now = self.sandbox.now().as_second();
        let mut all: Map<String, Value> = json!({
            "aud": AUDIENCE,
            "iss": format!("{}/{tenant}/", self.sandbox.base_url()),
            "tid": tenant,
            "oid": "0c1d0000-0000-4000-8000-0000000000aa",
            "appid": CLIENT,
            "scp": "chat",
            "ver": "1.0",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
        })
        .as_object()
        .unwrap()
        .clone();
        all.extend(claims.as_object().unwrap().clone());
        signer.sign(&Value::Object(all))
    }

    pub(crate) async fn call(&self, authorization: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{CHAT}", self.url))
            .header("content-type", "application/json")
            .body(r#"{"messages":[{"role":"user","content":"hi"}]}"#);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The gateway record of the last request to the gateway.
    pub(crate) fn last_record(&self) -> Value {
        let record = self
            .sandbox
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.gateway.is_some())
            .expect("a gateway request was logged");
        serde_json::to_value(record.gateway).unwrap()
    }

    /// A refused call: its status, APIM's body, the logged reason, and nothing reached the model.
    pub(crate) async fn assert_refused(
        &self,
        authorization: Option<&str>,
        status: u16,
        reason: &str,
    ) {
        let before = self.seen.lock().unwrap().len();
        let answer = self.call(authorization).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        let record = self.last_record();
        assert_eq!(record["decision"], "deny", "{record}");
        assert_eq!(record["reason"], reason, "{record}");
        assert_eq!(record["status"], status);
        assert_eq!(record["backend"], Value::Null);
        assert_eq!(self.seen.lock().unwrap().len(), before);
        let message = if status == 401 {
            "Unauthorized. Access token is missing or invalid."
        } else {
            answer.body["message"].as_str().unwrap()
        };
        assert_eq!(
            answer.body,
            json!({ "statusCode": status, "message": message })
        );
    }
}

pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn the_gateway_url_is_the_sandbox_origin_and_the_lower_case_name() {
    let gw = Gateway::new().await;
    assert_eq!(gw.url, format!("{}/apim/apim-gw", gw.sandbox.base_url()));
}

#[tokio::test]
async fn an_allowed_call_reaches_the_backend_as_the_services_identity() {
    let gw = Gateway::new().await;
    let token = gw.token(0, json!({}));
    let answer = gw.call(Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["usage"]["total_tokens"], 60);
    assert_eq!(answer.header("x-model"), Some("stub"));
    assert_eq!(answer.header("x-ratelimit-remaining-tokens"), Some("100"));

    let seen = gw.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        seen.body,
        r#"{"messages":[{"role":"user","content":"hi"}]}"#
    );
    assert_eq!(seen.headers["content-type"], "application/json");
    let sent = seen.headers["authorization"].to_str().unwrap();
    let backend_token = sent.strip_prefix("Bearer ").unwrap();
    assert_ne!(
        backend_token, token,
        "the caller's token must not reach the model"
    );
    let claims = claims_of(backend_token);
    assert_eq!(claims["aud"], COGNITIVE);
    assert_eq!(claims["oid"], gw.principal.as_str());
    assert_eq!(claims["sub"], gw.principal.as_str());
    assert_eq!(claims["tid"], DEFAULT_TENANT);
    assert_eq!(claims["idtyp"], "app");
    // Signed with the default tenant's key, like every sandbox token.
    let (der, kid) = {
        let state = gw.sandbox.state();
        let key = &state.tenants[0].keys[0];
        (STANDARD.decode(&key.pkcs8).unwrap(), key.kid.clone())
    };
    let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
    let (input, signature) = backend_token.rsplit_once('.').unwrap();
    assert!(signer.verify_rs256(
        input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap()
    ));

    let record = gw.last_record();
    assert_eq!(
        record,
        json!({
            "service": "apim-gw",
            "api": "llm",
            "operation": "chat",
            "decision": "allow",
            "status": 200,
            "reason": null,
            "detail": null,
            "backend": {
                "url": format!("{}/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21",
                    gw.backend_url),
                "status": 200,
                "auth": "managed-identity",
            },
        })
    );
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let gw = Gateway::new().await;
    let valid = gw.token(0, json!({}));
    gw.assert_refused(None, 401, "TokenNotPresent").await;
    gw.assert_refused(Some("Basic dXNlcjpwYXNz"), 401, "TokenSchemeInvalid")
        .await;
    gw.assert_refused(Some("Bearer not-a-jwt"), 401, "JwtInvalid")
        .await;
    // The signature of another payload: the claims were changed after signing.
    let other = gw.token(0, json!({ "oid": "0c1d0000-0000-4000-8000-0000000000bb" }));
    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged_signature = other.split('.').nth(2).unwrap();
    parts[2] = forged_signature;
    gw.assert_refused(
        Some(&format!("Bearer {}", parts.join("."))),
        401,
        "TokenSignatureInvalid",
    )
    .await;
    let foreign = gw.token(1, json!({}));
    gw.assert_refused(
        Some(&format!("Bearer {foreign}")),
        401,
        "TokenIssuerNotAllowed",
    )
    .await;
    let graph = gw.token(0, json!({ "aud": "https://graph.microsoft.com" }));
    gw.assert_refused(
        Some(&format!("Bearer {graph}")),
        401,
        "TokenAudienceNotAllowed",
    )
    .await;
    let stranger = gw.token(0, json!({ "appid": STRANGER }));
    gw.assert_refused(
        Some(&format!("Bearer {stranger}")),
        401,
        "TokenClientApplicationNotAllowed",
    )
    .await;
    let now = gw.sandbox.now().as_second();
    let expired = gw.token(
        0,
        json!({ "iat": now - 7200, "nbf": now - 7200, "exp": now - 600 }),
    );
    gw.assert_refused(Some(&format!("Bearer {expired}")), 401, "TokenExpired")
        .await;
    let no_scope = gw.token(0, json!({ "scp": "read" }));
    gw.assert_refused(
        Some(&format!("Bearer {no_scope}")),
        401,
        "TokenClaimValueNotAllowed",
    )
    .await;
    assert!(gw.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_expires_on_the_sandbox_clock() {
    let gw = Gateway::new().await;
    let token = format!("Bearer {}", gw.token(0, json!({})));
    assert_eq!(gw.call(Some(&token)).await.status, 200);
    gw.sandbox
        .advance(SignedDuration::from_secs(2 * 3600))
        .unwrap();
    gw.assert_refused(Some(&token), 401, "TokenExpired").await;
}

#[tokio::test]
async fn a_client_removed_from_the_stored_policy_is_refused_on_the_next_request() {
    let gw = Gateway::new().await;
    let other = format!("Bearer {}", gw.token(0, json!({ "appid": OTHER_CLIENT })));
    assert_eq!(gw.call(Some(&other)).await.status, 200);
    gw.set_policy(&[CLIENT]).await;
    gw.assert_refused(Some(&other), 401, "TokenClientApplicationNotAllowed")
        .await;
    let mine = format!("Bearer {}", gw.token(0, json!({})));
    assert_eq!(gw.call(Some(&mine)).await.status, 200);
}

#[tokio::test]
async fn a_token_burst_is_throttled_until_the_minute_has_passed() {
    let gw = Gateway::new().await;
    let token = format!("Bearer {}", gw.token(0, json!({})));
    // 100 tokens a minute, 60 a call: the first two pass (the budget is checked before the call).
    let first = gw.call(Some(&token)).await;
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), Some("100"));
    let second = gw.call(Some(&token)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-ratelimit-remaining-tokens"), Some("40"));
    let third = gw.call(Some(&token)).await;
    assert_eq!(third.status, 429, "{}", third.body);
    // The window started with the first call; the sandbox clock runs with the wall clock, so
    // a second may have passed since.
    let retry: i64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(
        third.body,
        json!({ "statusCode": 429, "message": format!("Token limit is exceeded. Try again in {retry} seconds.") })
    );
    assert_eq!(gw.last_record()["reason"], "TokenLimitExceeded");
    assert_eq!(gw.seen.lock().unwrap().len(), 2);
    gw.sandbox.advance(SignedDuration::from_secs(61)).unwrap();
    let after = gw.call(Some(&token)).await;
    assert_eq!(after.status, 200, "{}", after.body);
}

#[tokio::test]
async fn no_operation_answers_apims_404() {
    let gw = Gateway::new().await;
    for path in ["/nope", "/llm/deployments/x/embeddings"] {
        let answer = client()
            .post(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
        assert_eq!(
            answer.text().await.unwrap(),
            r#"{ "statusCode": 404, "message": "Resource not found" }"#
        );
        assert_eq!(gw.last_record()["reason"], "OperationNotFound");
    }
}

#[tokio::test]
async fn a_policy_the_simulator_cannot_run_is_a_500_naming_it() {
    let gw = Gateway::new().await;
    let policy = r#"<policies>
  <inbound>
    <base />
    <send-request mode="new" response-variable-name="r" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;
    put_done(
        &gw.arm,
        &service_path("/apis/llm/operations/chat/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": policy } }),
    )
    .await;
    let token = format!("Bearer {}", gw.token(0, json!({})));
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The sandbox's gateway cannot simulate <send-request> at line 4,"),
        "{message}"
    );
    assert_eq!(gw.last_record()["reason"], "NotSimulated");
    assert!(gw.seen.lock().unwrap().is_empty());
}

/// After a real `up --env local`, the policy `up` rendered and stored is what guards the model:
/// a token of the registered client app passes, the same token from an unregistered app does
/// not. The backend entity is pointed at the loopback stub (the account's inference endpoint is
/// not what this test is about).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_up_the_rendered_policy_guards_the_model() {
    let world = crate::up_e2e::World::default().await;
    world.up().await;
    let sandbox = &world.sandbox;
    let (stub, seen) = backend().await;
    let (backend_id, mut body) = {
        let state = sandbox.state();
        let backend = state
            .arm
            .resources
            .values()
            .find(|r| r.id.to_ascii_lowercase().contains("/backends/"))
            .expect("up wrote a backend");
        (backend.id.clone(), backend.body.clone())
    };
    body["properties"]["url"] = json!(stub);
    let arm = Arm::new(sandbox);
    put_done(
        &arm,
        &format!("{backend_id}?api-version={VERSION}"),
        &json!({ "properties": body["properties"] }),
    )
    .await;
    let api_app = world.app("llm-gateway-api-local");
    let client_app = world.app("llm-gateway-notebooks-local");
    let api_id = api_app["appId"].as_str().unwrap();
    let client_id = client_app["appId"].as_str().unwrap();
    let url = format!("{}/apim/apim-llmgw-local{CHAT}", sandbox.base_url());
    let call = |azp: String| {
        let (der, kid) = {
            let state = sandbox.state();
            let key = &state.tenants[0].keys[0];
            (STANDARD.decode(&key.pkcs8).unwrap(), key.kid.clone())
        };
        let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
        let now = sandbox.now().as_second();
        let token = signer.sign(&json!({
            "aud": api_id,
            "iss": format!("{}/{DEFAULT_TENANT}/v2.0", sandbox.base_url()),
            "tid": DEFAULT_TENANT,
            "oid": "0c1d0000-0000-4000-8000-0000000000aa",
            "azp": azp,
            "scp": "user_impersonation",
            "ver": "2.0",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
        }));
        client()
            .post(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let allowed = call(client_id.to_owned()).await.unwrap();
    let status = allowed.status().as_u16();
    assert_eq!(status, 200, "{}", allowed.text().await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 1);
    let refused = call(STRANGER.to_owned()).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let record = serde_json::to_value(sandbox.requests().last().unwrap().gateway.clone()).unwrap();
    assert_eq!(
        record["reason"], "TokenClientApplicationNotAllowed",
        "{record}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_streamed_answer_passes_through() {
    let gw = Gateway::new().await;
    let token = gw.token(0, json!({}));
    let answer = client()
        .post(format!("{}{CHAT}", gw.url))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"stream":true,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    assert_eq!(answer.text().await.unwrap(), STREAM);
    assert_eq!(gw.last_record()["backend"]["status"], 200);
}

/// Writes an operation-scope policy whose inbound section is `inbound` (after `<base />`).
pub(crate) async fn operation_policy(gw: &Gateway, inbound: &str) {
    let policy = format!(
        "<policies>\n  <inbound>\n    <base />\n    {inbound}\n  </inbound>\n  <backend><base /></backend>\n  <outbound><base /></outbound>\n  <on-error><base /></on-error>\n</policies>"
    );
    put_done(
        &gw.arm,
        &service_path("/apis/llm/operations/chat/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": policy } }),
    )
    .await;
}

#[tokio::test]
async fn return_response_answers_from_the_gateway() {
    let gw = Gateway::new().await;
    operation_policy(
        &gw,
        r#"<return-response><set-status code="418" reason="Teapot" /><set-header name="x-from" exists-action="override"><value>gateway</value></set-header><set-body>short and stout</set-body></return-response>"#,
    )
    .await;
    let token = format!("Bearer {}", gw.token(0, json!({})));
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 418);
    assert_eq!(answer.header("x-from"), Some("gateway"));
    assert_eq!(answer.body, json!("short and stout"));
    let record = gw.last_record();
    assert_eq!(record["decision"], "respond");
    assert_eq!(record["backend"], Value::Null);
    assert!(gw.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn rate_limit_by_key_counts_across_requests_on_the_sandbox_clock() {
    let gw = Gateway::new().await;
    operation_policy(
        &gw,
        r#"<rate-limit-by-key calls="1" renewal-period="30" counter-key="@(context.Request.IpAddress)" />"#,
    )
    .await;
    let token = format!("Bearer {}", gw.token(0, json!({})));
    assert_eq!(gw.call(Some(&token)).await.status, 200);
    let refused = gw.call(Some(&token)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(
        refused.body,
        json!({ "statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {retry} seconds.") })
    );
    assert_eq!(gw.last_record()["reason"], "RateLimitExceeded");
    gw.sandbox.advance(SignedDuration::from_secs(31)).unwrap();
    assert_eq!(gw.call(Some(&token)).await.status, 200);
}

/// Under `--tls` the gateway reaches a backend on the sandbox's own HTTPS origin, trusting the
/// sandbox's certificate, and checks tokens against the `https://` issuer that sandbox signs
/// (a token naming the `http://` form of the same origin is another issuer's). (The sandbox has
/// no route below `/_sandbox/info`, so it answers 404: what matters is that the TLS connection
/// was made and the backend's status came back.)
#[tokio::test]
async fn over_tls_the_gateway_checks_https_issuers_and_trusts_the_sandboxs_certificate() {
    let sandbox = crate::sandbox_support::start(provision::sandbox::SandboxConfig {
        tls: true,
        ..provision::sandbox::SandboxConfig::default()
    })
    .await;
    let pem = sandbox.certificate_pem().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let gw = Gateway::with(sandbox, https).await;
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let info = format!("{}/_sandbox/info", gw.sandbox.base_url());
    put_done(
        &gw.arm,
        &service_path("/backends/foundry"),
        &json!({ "properties": { "url": info, "protocol": "http" } }),
    )
    .await;
    let token = gw.token(0, json!({}));
    assert!(
        claims_of(&token)["iss"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{token}"
    );
    let answer = gw.call(Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let record = gw.last_record();
    assert_eq!(record["decision"], "allow", "{record}");
    assert_eq!(record["backend"]["status"], 404);
    assert_eq!(record["backend"]["auth"], "managed-identity");

    let http_issuer = gw.sandbox.base_url().replacen("https://", "http://", 1);
    let tenant = DEFAULT_TENANT;
    let plain = gw.token(0, json!({ "iss": format!("{http_issuer}/{tenant}/") }));
    gw.assert_refused(
        Some(&format!("Bearer {plain}")),
        401,
        "TokenIssuerNotAllowed",
    )
    .await;
}
