//! The Foundry inference data plane over HTTP: an account, its deployment and role assignments
//! made through ARM, then chat completions called the way an SDK (or the APIM gateway) calls
//! them, judged by exact status, headers and bodies and by the sandbox's request log.

use provision::clock::SignedDuration;
use provision::sandbox::inference::model::{complete, parse_request};
use provision::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::sandbox_support::{Arm, SUBSCRIPTION, client, group_path, start, token_with};

const API: &str = "2025-06-01";
const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";
const COGNITIVE: &str = "https://cognitiveservices.azure.com";
/// The sandbox's replication lag in these tests.
const LAG_S: i64 = 10;

/// A sandbox with an account (`disableLocalAuth` as given) and a `gpt-5.6-luna` deployment of
/// `capacity`, made through ARM.
struct Foundry {
    sandbox: Sandbox,
    arm: Arm,
    account: String,
    endpoint: String,
    /// The account's system-assigned identity: a principal a managed-identity token can carry.
    identity: String,
}

async fn foundry(local_auth: bool, capacity: u64) -> Foundry {
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(LAG_S as u64 * 1000),
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let account = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/llm",
        group_path("rg")
    );
    let body = json!({
        "location": "westus", "kind": "AIServices", "sku": { "name": "S0" },
        "identity": { "type": "SystemAssigned" },
        "properties": { "customSubDomainName": "LLM-Foundry", "disableLocalAuth": !local_auth }
    });
    let put = arm
        .put(&format!("{account}?api-version={API}"), &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    arm.wait_async(put.header("azure-asyncoperation").unwrap())
        .await;
    let deployment = json!({
        "sku": { "name": "GlobalStandard", "capacity": capacity },
        "properties": { "model": { "format": "OpenAI", "name": "gpt-5.6-luna", "version": "2026-07-09" } }
    });
    let put = arm
        .put(
            &format!("{account}/deployments/chat?api-version={API}"),
            &deployment,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    arm.wait_async(put.header("azure-asyncoperation").unwrap())
        .await;
    let got = arm.get(&format!("{account}?api-version={API}")).await;
    let endpoint = got.body["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        endpoint,
        format!("{}/foundry/llm-foundry/", sandbox.base_url())
    );
    assert_eq!(
        got.body["properties"]["endpoints"]["OpenAI Language Model Instance API"],
        endpoint.as_str()
    );
    let identity = got.body["identity"]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    // New principals become visible to ARM after the replication lag.
    sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    Foundry {
        sandbox,
        arm,
        account,
        endpoint,
        identity,
    }
}

impl Foundry {
    /// A managed-identity-like (app-only) token for the cognitive audience.
    fn app_token(&self, oid: &str) -> String {
        token_with(
            &self.sandbox,
            0,
            json!({ "aud": COGNITIVE, "oid": oid, "sub": oid, "idtyp": "app",
                    "appid": "0c1d0000-0000-4000-8000-0000000000a1" }),
        )
    }

    async fn assign(&self, principal: &str, role: &str) {
        self.assign_at(&self.account, principal, role).await;
    }

    async fn assign_at(&self, scope: &str, principal: &str, role: &str) {
        self.assign_typed(scope, principal, "ServicePrincipal", role)
            .await;
    }

    async fn assign_typed(&self, scope: &str, principal: &str, kind: &str, role: &str) {
        let answer = self
            .arm
            .put(
                &format!(
                    "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
                    uuid::Uuid::new_v4()
                ),
                &json!({ "properties": {
                    "roleDefinitionId": format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                    "principalId": principal,
                    "principalType": kind
                }}),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }

    /// POSTs `body` to `path` under the endpoint with the given headers; the body as text.
    async fn call(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut request = client().post(format!("{}{path}", self.endpoint)).json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn chat(&self, token: &str, body: &Value) -> Reply {
        self.call(CHAT, &[("authorization", &format!("Bearer {token}"))], body)
            .await
    }

    /// The last request the sandbox logged: method, path and status.
    fn last_logged(&self) -> (String, String, u16) {
        let last = self.sandbox.requests().pop().unwrap();
        (last.method, last.path, last.status)
    }
}

const CHAT: &str = "openai/deployments/chat/chat/completions?api-version=2024-10-21";

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

fn hello() -> Value {
    json!({ "messages": [{ "role": "user", "content": "Hello, world!" }] })
}

/// The stub's exact answer to `body` now, as the deployment's model.
/// The completion the sandbox gives for `body`, created at the `created` of `answer` once that
/// is checked to be the sandbox's time (within the second that may have begun since).
fn expected(sandbox: &Sandbox, answer: &Value, body: &Value) -> Value {
    let created = answer["created"]
        .as_i64()
        .expect("a completion has `created`");
    let now = sandbox.now().as_second();
    assert!(
        (now - 1..=now).contains(&created),
        "created {created}, now {now}"
    );
    let request = parse_request(body.to_string().as_bytes()).unwrap();
    let completion = complete(&request, "gpt-5.6-luna-2026-07-09", created);
    serde_json::from_slice(&completion.response()).unwrap()
}

#[tokio::test]
async fn keys_are_refused_when_local_auth_is_disabled_and_checked_when_not() {
    let locked = foundry(false, 10).await;
    let answer = locked
        .call(CHAT, &[("api-key", "0123456789abcdef")], &hello())
        .await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            403,
            json!({ "error": { "code": "AuthenticationTypeDisabled",
                "message": "Key based authentication is disabled for this resource." } })
        )
    );

    let open = foundry(true, 10).await;
    let keys = open
        .arm
        .send(
            "POST",
            &format!("{}/listKeys?api-version={API}", open.account),
            None,
            &[],
        )
        .await;
    let key2 = keys.body["key2"].as_str().unwrap();
    let wrong = open
        .call(CHAT, &[("api-key", "not-the-key")], &hello())
        .await;
    assert_eq!(
        (wrong.status, wrong.json()),
        (
            401,
            json!({ "error": { "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource." } })
        )
    );
    let right = open.call(CHAT, &[("api-key", key2)], &hello()).await;
    assert_eq!(right.status, 200, "{}", right.text);
    assert_eq!(
        right.json(),
        expected(&open.sandbox, &right.json(), &hello())
    );
}

#[tokio::test]
async fn a_user_without_a_data_role_is_denied_naming_the_principal_and_action() {
    let f = foundry(false, 10).await;
    let user = f.sandbox.state().tenants[0].users[0].id.clone();
    let token = token_with(
        &f.sandbox,
        0,
        json!({ "aud": format!("{COGNITIVE}/"), "oid": user, "idtyp": "user", "upn": "someone" }),
    );
    let answer = f.chat(&token, &hello()).await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            401,
            json!({ "error": { "code": "PermissionDenied", "message": format!(
                "The principal {user} lacks the required data action Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action to perform POST /openai/deployments/{{deployment-id}}/chat/completions operation."
            ) } })
        )
    );
    // A control-plane role grants no data action.
    f.assign(&user, "b24988ac-6180-42a0-ab88-20f7382dd24c")
        .await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    assert_eq!(f.chat(&token, &hello()).await.status, 401);
}

#[tokio::test]
async fn a_managed_identity_is_served_once_its_role_assignment_has_replicated() {
    let f = foundry(false, 10).await;
    let token = f.app_token(&f.identity);
    assert_eq!(f.chat(&token, &hello()).await.status, 401);

    f.assign(&f.identity, OPENAI_USER).await;
    f.sandbox
        .advance(SignedDuration::from_secs(LAG_S - 1))
        .unwrap();
    let token = f.app_token(&f.identity);
    let early = f.chat(&token, &hello()).await;
    assert_eq!(
        (early.status, early.json()["error"]["code"].as_str()),
        (401, Some("PermissionDenied"))
    );

    f.sandbox.advance(SignedDuration::from_secs(1)).unwrap();
    let answer = f.chat(&token, &hello()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body, expected(&f.sandbox, &body, &hello()));
    assert_eq!(body["model"], "gpt-5.6-luna-2026-07-09");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: Hello, world!"
    );
    // Prompt: 3 to prime + (3 + 4 tokens) for the message; reply: `You` ` said` `:` and 4.
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"],
            &body["usage"]["total_tokens"]
        ),
        (&json!(10), &json!(7), &json!(17))
    );
    assert_eq!(answer.header("x-ratelimit-remaining-requests"), Some("9"));
    assert_eq!(answer.header("x-ratelimit-remaining-tokens"), Some("9983"));
    assert_eq!(
        f.last_logged(),
        (
            "POST".to_owned(),
            format!("/foundry/llm-foundry/{CHAT}"),
            200
        )
    );

    // The v1 route: the deployment in the body's `model`, no api-version.
    let mut v1 = hello();
    v1["model"] = json!("chat");
    let answer = f
        .call(
            "openai/v1/chat/completions",
            &[("authorization", &format!("Bearer {token}"))],
            &v1,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        expected(&f.sandbox, &answer.json(), &hello())
    );
}

#[tokio::test]
async fn bad_tokens_unknown_routes_and_deployments_get_azures_answers() {
    let f = foundry(false, 10).await;
    f.assign(&f.identity, OPENAI_USER).await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let token = f.app_token(&f.identity);
    let not_found = json!({ "error": { "code": "404", "message": "Resource not found" } });

    let unknown = f
        .call(
            "openai/deployments/nope/chat/completions?api-version=2024-10-21",
            &[("authorization", &format!("Bearer {token}"))],
            &hello(),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (
            404,
            json!({ "error": { "code": "DeploymentNotFound",
                "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again." } })
        )
    );
    // A deployment still being written is not there yet for inference.
    let chat = format!("{}/deployments/chat", f.account).to_ascii_lowercase();
    f.sandbox
        .state()
        .arm
        .resources
        .get_mut(&chat)
        .unwrap()
        .set_provisioning_state("Updating");
    let updating = f.chat(&token, &hello()).await;
    assert_eq!(
        (updating.status, updating.json()["error"]["code"].as_str()),
        (404, Some("DeploymentNotFound"))
    );
    f.sandbox
        .state()
        .arm
        .resources
        .get_mut(&chat)
        .unwrap()
        .set_provisioning_state("Succeeded");
    assert_eq!(f.chat(&token, &hello()).await.status, 200);

    let unversioned = f
        .call(
            "openai/deployments/chat/chat/completions",
            &[("authorization", &format!("Bearer {token}"))],
            &hello(),
        )
        .await;
    assert_eq!(
        (unversioned.status, unversioned.json()),
        (404, not_found.clone())
    );
    let elsewhere = client()
        .post(format!(
            "{}/foundry/no-such-account/{CHAT}",
            f.sandbox.base_url()
        ))
        .bearer_auth(&token)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404);
    assert_eq!(elsewhere.json::<Value>().await.unwrap(), not_found);

    let invalid_token = json!({ "statusCode": 401, "message": "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired." });
    let arm_token = token_with(
        &f.sandbox,
        0,
        json!({ "aud": "https://management.azure.com/", "oid": f.identity }),
    );
    let wrong_audience = f.chat(&arm_token, &hello()).await;
    assert_eq!(
        (wrong_audience.status, wrong_audience.json()),
        (401, invalid_token.clone())
    );
    f.sandbox
        .advance(SignedDuration::from_secs(3600 + 301))
        .unwrap();
    let expired = f.chat(&token, &hello()).await;
    assert_eq!((expired.status, expired.json()), (401, invalid_token));

    let (foreign_tenant, foreign) = {
        let state = f.sandbox.state();
        (state.tenants[1].id.clone(), 1)
    };
    let stranger = token_with(
        &f.sandbox,
        foreign,
        json!({ "aud": COGNITIVE, "oid": f.identity }),
    );
    let answer = f.chat(&stranger, &hello()).await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            400,
            json!({ "error": { "code": "Tenant provided in token does not match resource token",
                "message": format!("Token tenant {foreign_tenant} does not match resource tenant.") } })
        )
    );

    let anonymous = f.call(CHAT, &[], &hello()).await;
    assert_eq!(
        (anonymous.status, anonymous.json()["error"]["code"].as_str()),
        (401, Some("401"))
    );
    assert_eq!(
        f.last_logged(),
        (
            "POST".to_owned(),
            format!("/foundry/llm-foundry/{CHAT}"),
            401
        )
    );

    let fresh = f.app_token(&f.identity);
    let invalid = f.chat(&fresh, &json!({ "messages": [] })).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["error"]["code"], "empty_array");
}

#[tokio::test]
async fn streaming_answers_with_the_stubs_events_ending_in_done() {
    let f = foundry(false, 10).await;
    // Cognitive Services User on the resource group covers the account.
    f.assign_at(
        &group_path("rg"),
        &f.identity,
        "a97b65f3-24c7-4388-baec-2e87135dc908",
    )
    .await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let answer = f.chat(&f.app_token(&f.identity), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let request = parse_request(body.to_string().as_bytes()).unwrap();
    let frames = complete(
        &request,
        "gpt-5.6-luna-2026-07-09",
        f.sandbox.now().as_second(),
    )
    .stream(true);
    assert_eq!(answer.text.as_bytes(), frames.concat().as_slice());
    assert!(answer.text.ends_with("\n\ndata: [DONE]\n\n"));
}

#[tokio::test]
async fn past_the_deployments_token_rate_it_is_429_until_the_minute_is_over() {
    let f = foundry(false, 1).await;
    f.assign(&f.identity, "a001fd3d-188f-4b5d-821b-7da978bf7442")
        .await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let token = f.app_token(&f.identity);
    // 600 words: 600 + 3 + 3 prompt tokens, 20 reply tokens (16 echoed, the ellipsis and 3).
    let big = json!({ "messages": [{ "role": "user", "content": "word ".repeat(600) }] });
    let first = f.chat(&token, &big).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["usage"]["total_tokens"], 626);
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), Some("374"));
    assert_eq!(first.header("x-ratelimit-remaining-requests"), Some("1"));

    f.sandbox.advance(SignedDuration::from_secs(15)).unwrap();
    let second = f.chat(&token, &big).await;
    assert_eq!(second.status, 429, "{}", second.text);
    assert_eq!(
        second.json(),
        json!({ "error": { "code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after 45 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit." } })
    );
    assert_eq!(
        [
            "retry-after",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens"
        ]
        .map(|h| second.header(h)),
        [Some("45"), Some("2"), Some("374")]
    );
    // The sandbox's clock runs on between the two requests: less than a second of it.
    let wait_ms: u64 = second.header("retry-after-ms").unwrap().parse().unwrap();
    assert!((44_001..=45_000).contains(&wait_ms), "{wait_ms}");
    assert_eq!(f.last_logged().2, 429);

    f.sandbox.advance(SignedDuration::from_secs(60)).unwrap();
    let again = f.chat(&token, &big).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("x-ratelimit-remaining-tokens"), Some("374"));
}

#[tokio::test]
async fn past_the_deployments_request_rate_it_is_429_for_the_rest_of_ten_seconds() {
    let f = foundry(false, 1).await;
    f.assign(&f.identity, OPENAI_USER).await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let token = f.app_token(&f.identity);
    for left in ["1", "0"] {
        let ok = f.chat(&token, &hello()).await;
        assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some(left));
    }
    f.sandbox.advance(SignedDuration::from_secs(3)).unwrap();
    let refused = f.chat(&token, &hello()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("7"));
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("have exceeded call rate limit of your current AIServices S0 pricing tier. Please retry after 7 seconds.")
    );
    f.sandbox.advance(SignedDuration::from_secs(7)).unwrap();
    assert_eq!(f.chat(&token, &hello()).await.status, 200);
}

/// A role assigned to a group reaches the members the token says are in it (its `groups` claim),
/// after replication; a token without that group, or naming another one, still gets 401.
#[tokio::test]
async fn a_role_assigned_to_a_group_grants_its_members() {
    let f = foundry(false, 10).await;
    let user = f.sandbox.state().tenants[0].users[0].id.clone();
    let group = "9a0b0000-0000-4000-8000-0000000000ab";
    let member = |groups: Value| {
        token_with(
            &f.sandbox,
            0,
            json!({ "aud": COGNITIVE, "oid": user, "idtyp": "user", "groups": groups }),
        )
    };
    f.assign_typed(&f.account, group, "Group", OPENAI_USER)
        .await;
    assert_eq!(f.chat(&member(json!([group])), &hello()).await.status, 401);
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let answer = f
        .chat(
            &member(json!(["5e1f0000-0000-4000-8000-000000000001", group])),
            &hello(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        expected(&f.sandbox, &answer.json(), &hello())
    );
    let outsider = f
        .chat(
            &member(json!(["5e1f0000-0000-4000-8000-000000000001"])),
            &hello(),
        )
        .await;
    assert_eq!(outsider.status, 401, "{}", outsider.text);
    assert_eq!(outsider.json()["error"]["code"], "PermissionDenied");
    assert_eq!(f.chat(&member(json!(null)), &hello()).await.status, 401);
}

/// A streamed answer leaves as one chunk per SSE frame, not one buffered body: no
/// `content-length`, and the client reads the frames one by one.
#[tokio::test]
async fn a_streamed_answer_is_sent_frame_by_frame() {
    let f = foundry(false, 10).await;
    f.assign(&f.identity, OPENAI_USER).await;
    f.sandbox.advance(SignedDuration::from_secs(LAG_S)).unwrap();
    let mut body = hello();
    body["stream"] = json!(true);
    let mut response = client()
        .post(format!("{}{CHAT}", f.endpoint))
        .header(
            "authorization",
            format!("Bearer {}", f.app_token(&f.identity)),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-length"), None);
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push(chunk.to_vec());
    }
    let request = parse_request(body.to_string().as_bytes()).unwrap();
    let frames = complete(
        &request,
        "gpt-5.6-luna-2026-07-09",
        f.sandbox.now().as_second(),
    )
    .stream(false);
    assert!(frames.len() > 3, "{frames:?}");
    assert_eq!(chunks, frames);
}
