//! The whole boundary after `up --env local`, on real loopback HTTP: the gateway in front, the
//! Foundry endpoint behind it, and nothing re-pointed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provision::clock::SignedDuration;
use provision::policy::token::TokenSigner;
use provision::sandbox::{DEFAULT_TENANT, Sandbox};
use serde_json::{Value, json};

use crate::gateway::CHAT;
use crate::sandbox_support::client;

const HELLO: &str = r#"{"messages":[{"role":"user","content":"hello"}]}"#;

/// After `up --env local`: `token` crosses the gateway's chat completions to a 200 with the model
/// stub's answer, the Foundry endpoint was called, and the gateway's log record shows that call
/// made with the APIM service's managed-identity token, not with a key or the caller's token.
pub(crate) async fn assert_chat_reaches_the_model(sandbox: &Sandbox, token: &str) {
    let answer = client()
        .post(format!(
            "{}/apim/apim-llmgw-local{CHAT}",
            sandbox.base_url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(HELLO)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["content"], "You said: hello");
    let log = sandbox.requests();
    let to_model = log
        .iter()
        .find(|r| {
            r.path.starts_with(
                "/foundry/llmgw-foundry-local/openai/deployments/gpt-5.6-luna/chat/completions",
            )
        })
        .expect("the gateway called the Foundry endpoint");
    assert_eq!(to_model.status, 200);
    let record = serde_json::to_value(log.last().unwrap().gateway.clone()).unwrap();
    assert_eq!(
        (
            &record["decision"],
            &record["backend"]["auth"],
            &record["backend"]["status"]
        ),
        (&json!("allow"), &json!("managed-identity"), &json!(200)),
        "{record}"
    );
}

/// The whole boundary, end to end on real loopback HTTP, with nothing re-pointed: after
/// `up --env local`, a token of the registered client crosses the gateway, which calls the
/// Foundry endpoint as the APIM service's managed identity and gets the model's answer; the same
/// token sent straight to the Foundry endpoint is refused, as the user holds no data role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_up_a_client_token_reaches_the_model_through_the_gateway_only() {
    let world = crate::up_e2e::World::default().await;
    world.up().await;
    let sandbox = &world.sandbox;
    // The gateway's role assignment takes effect after the replication lag, as RBAC does.
    sandbox.advance(SignedDuration::from_mins(10)).unwrap();
    let api_id = world.app("llm-gateway-api-local")["appId"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_id = world.app("llm-gateway-notebooks-local")["appId"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = {
        let (der, kid) = {
            let state = sandbox.state();
            let key = &state.tenants[0].keys[0];
            (STANDARD.decode(&key.pkcs8).unwrap(), key.kid.clone())
        };
        let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
        let now = sandbox.now().as_second();
        signer.sign(&json!({
            "aud": api_id,
            "iss": format!("{}/{DEFAULT_TENANT}/v2.0", sandbox.base_url()),
            "tid": DEFAULT_TENANT,
            "oid": "0c1d0000-0000-4000-8000-0000000000ab",
            "azp": client_id,
            "scp": "llm.invoke",
            "ver": "2.0",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
        }))
    };
    assert_chat_reaches_the_model(sandbox, &token).await;

    // Straight to the model with the same token: not for the Cognitive Services audience.
    let direct = format!(
        "{}/foundry/llmgw-foundry-local/openai/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21",
        sandbox.base_url()
    );
    let refused = client()
        .post(&direct)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // And with a key: local auth is disabled on the account `up` made.
    let refused = client()
        .post(&direct)
        .header("api-key", "any")
        .header("content-type", "application/json")
        .body(HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "AuthenticationTypeDisabled"
    );
}
