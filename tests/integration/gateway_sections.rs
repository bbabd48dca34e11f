//! The gateway past `<inbound>`: `<backend>` (forward-request, set-header), `<outbound>`
//! (set-header, set-status, set-body, return-response) and `<on-error>` composed with `<base />`
//! across the stored scopes, an element the sandbox cannot run answered 500 naming it, and
//! streamed completions: relayed frame by frame and charged to `llm-token-limit` by APIM's
//! documented estimate. Set up as `gateway.rs` sets up its service.

use serde_json::{Value, json};

use crate::gateway::{CHAT, Gateway, put_done, service_path};

/// Stores `xml` as the service's global policy.
async fn global_policy(gw: &Gateway, xml: &str) {
    put_done(
        &gw.arm,
        &service_path("/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": xml } }),
    )
    .await;
}

/// Stores an operation policy with the given sections (each composed after `<base />`).
async fn operation_sections(gw: &Gateway, backend: &str, outbound: &str, on_error: &str) {
    let policy = format!(
        "<policies>\n  <inbound><base /></inbound>\n  <backend><base />{backend}</backend>\n  <outbound><base />\n    {outbound}\n  </outbound>\n  <on-error><base />{on_error}</on-error>\n</policies>"
    );
    put_done(
        &gw.arm,
        &service_path("/apis/llm/operations/chat/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": policy } }),
    )
    .await;
}

/// The 1-based line of `needle` in the operation policy as the sandbox stored it.
async fn stored_line(gw: &Gateway, needle: &str) -> usize {
    let path = service_path("/apis/llm/operations/chat/policies/policy");
    let stored = gw.arm.get(&format!("{path}&format=rawxml")).await;
    let text = stored.body["properties"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} in {text}"))
}

fn bearer(gw: &Gateway) -> String {
    format!("Bearer {}", gw.token(0, json!({})))
}

#[tokio::test]
async fn outbound_rewrites_the_backends_answer_and_backend_rewrites_its_request() {
    let gw = Gateway::new().await;
    let token = bearer(&gw);
    // Without outbound statements the backend's answer passes as it is.
    let plain = gw.call(Some(&token)).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("x-model"), Some("stub"));
    assert_eq!(plain.header("x-served-by"), None);
    operation_sections(
        &gw,
        r#"<set-header name="x-from-gateway" exists-action="override"><value>backend-section</value></set-header>"#,
        r#"<set-header name="x-served-by" exists-action="override"><value>sandbox-apim</value></set-header>
    <set-header name="x-model" exists-action="delete" />
    <set-status code="203" reason="Rewritten" />
    <set-body>rewritten by outbound</set-body>"#,
        "",
    )
    .await;
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 203, "{}", answer.body);
    assert_eq!(answer.header("x-served-by"), Some("sandbox-apim"));
    assert_eq!(answer.header("x-model"), None);
    assert_eq!(answer.body, json!("rewritten by outbound"));
    let seen = gw.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.headers["x-from-gateway"], "backend-section");
    let record = gw.last_record();
    assert_eq!(record["decision"], "allow", "{record}");
    assert_eq!(record["status"], 203);
    assert_eq!(record["backend"]["status"], 200);
}

#[tokio::test]
async fn without_forward_request_the_backend_is_not_called_and_outbound_still_runs() {
    let gw = Gateway::new().await;
    let token = bearer(&gw);
    // A global policy whose backend section has no forward-request (APIM's default has one).
    global_policy(
        &gw,
        r#"<policies><inbound /><backend /><outbound><set-header name="x-global" exists-action="override"><value>out</value></set-header></outbound><on-error /></policies>"#,
    )
    .await;
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("x-global"), Some("out"));
    assert_eq!(answer.body, json!(""));
    assert!(gw.seen.lock().unwrap().is_empty());
    assert_eq!(gw.last_record()["backend"], Value::Null);
    // With forward-request back in the global backend section the model is called again.
    global_policy(
        &gw,
        r#"<policies><inbound /><backend><forward-request /></backend><outbound /><on-error /></policies>"#,
    )
    .await;
    assert_eq!(gw.call(Some(&token)).await.status, 200);
    assert_eq!(gw.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn on_error_runs_over_a_refusal_and_an_unreachable_backend() {
    let gw = Gateway::new().await;
    operation_sections(
        &gw,
        "",
        "",
        r#"<set-header name="x-error-handled" exists-action="override"><value>yes</value></set-header>"#,
    )
    .await;
    let refused = gw.call(Some("Bearer not-a-token")).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-error-handled"), Some("yes"));
    assert_eq!(
        refused.body,
        json!({ "statusCode": 401, "message": "Unauthorized. Access token is missing or invalid." })
    );
    assert_eq!(gw.last_record()["reason"], "JwtInvalid");
    // An allowed call does not run on-error.
    let token = bearer(&gw);
    let allowed = gw.call(Some(&token)).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-error-handled"), None);
    // An unreachable backend is an error too.
    put_done(
        &gw.arm,
        &service_path("/backends/foundry"),
        &json!({ "properties": { "url": "http://127.0.0.1:9/openai", "protocol": "http" } }),
    )
    .await;
    let unreachable = gw.call(Some(&token)).await;
    assert_eq!(unreachable.status, 500, "{}", unreachable.body);
    assert_eq!(unreachable.header("x-error-handled"), Some("yes"));
    assert_eq!(gw.last_record()["reason"], "BackendConnectionFailure");
}

#[tokio::test]
async fn return_response_in_on_error_replaces_the_refusal() {
    let gw = Gateway::new().await;
    operation_sections(
        &gw,
        "",
        "",
        r#"<return-response><set-status code="403" reason="Forbidden" /><set-body>{"error":"sign in first"}</set-body></return-response>"#,
    )
    .await;
    let answer = gw.call(None).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body, json!({ "error": "sign in first" }));
    assert_eq!(gw.last_record()["reason"], "TokenNotPresent");
}

#[tokio::test]
async fn an_element_outbound_cannot_run_is_a_500_naming_it_and_its_line() {
    let gw = Gateway::new().await;
    let token = bearer(&gw);
    operation_sections(
        &gw,
        "",
        r#"<find-and-replace from="stub" to="model" />"#,
        "",
    )
    .await;
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 500);
    // The line is the stored document's: APIM (and the sandbox) keep policies re-serialized.
    let line = stored_line(&gw, "<find-and-replace").await;
    let message = format!(
        "The sandbox's gateway cannot simulate <find-and-replace> at line {line}, column 5: <find-and-replace> is not run in <outbound>"
    );
    assert_eq!(
        answer.body,
        json!({ "statusCode": 500, "message": &message })
    );
    let record = gw.last_record();
    assert_eq!(record["reason"], "NotSimulated");
    assert_eq!(record["detail"], message);
    // The backend was called (outbound runs on its answer), but its answer never left.
    assert_eq!(gw.seen.lock().unwrap().len(), 1);
    // And in the backend section, before any call.
    operation_sections(&gw, r#"<send-one-way-request mode="new" />"#, "", "").await;
    let answer = gw.call(Some(&token)).await;
    assert_eq!(answer.status, 500);
    let line = stored_line(&gw, "<send-one-way-request").await;
    let expected = format!(
        "The sandbox's gateway cannot simulate <send-one-way-request> at line {line}, column "
    );
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .starts_with(&expected),
        "{}",
        answer.body
    );
    assert_eq!(gw.seen.lock().unwrap().len(), 1);
}

/// Sends a streamed chat request and reads the whole stream: its status and the chunks.
async fn stream(gw: &Gateway, token: &str) -> (u16, Vec<Vec<u8>>) {
    let mut response = gw
        .http
        .post(format!("{}{CHAT}", gw.url))
        .header("authorization", token)
        .header("content-type", "application/json")
        .body(r#"{"stream":true,"messages":[{"role":"user","content":"one two three"}]}"#)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push(chunk.to_vec());
    }
    (status, chunks)
}

/// APIM estimates a streamed call's prompt and completion tokens: here 3 + 3 + 3 for the prompt
/// (`one two three`, see inference::model) and 1 for the stub's `hi`, so the policy's 100 tokens
/// a minute last exactly ten streams, and the eleventh is refused.
#[tokio::test]
async fn streamed_answers_are_charged_to_the_token_limit() {
    let gw = Gateway::new().await;
    let token = bearer(&gw);
    for n in 1..=10 {
        let (status, chunks) = stream(&gw, &token).await;
        assert_eq!(status, 200, "stream {n}");
        assert_eq!(
            chunks.concat(),
            crate::gateway::STREAM.as_bytes(),
            "stream {n}"
        );
    }
    let (status, _) = stream(&gw, &token).await;
    assert_eq!(status, 429);
    let record = gw.last_record();
    assert_eq!(record["reason"], "TokenLimitExceeded", "{record}");
    assert_eq!(
        record["detail"],
        "llm-token-limit: 100 of 100 tokens per minute used for this key"
    );
}

/// A backend that streams its frames as separate chunks reaches the caller chunk by chunk
/// through the gateway (relayed as they arrive, not gathered into one body), and the stream's
/// tokens are still counted.
#[tokio::test]
async fn a_stream_is_relayed_frame_by_frame() {
    let gw = Gateway::new().await;
    let frames: Vec<&'static str> = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\" two\"}}]}\n\n",
        "data: [DONE]\n\n",
    ];
    let sent = frames.clone();
    let app = axum::Router::new().fallback(move || {
        let frames = sent.clone();
        async move {
            let stream = futures_util::stream::iter(
                frames
                    .into_iter()
                    .map(|f| Ok::<_, std::convert::Infallible>(f.as_bytes().to_vec())),
            );
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(stream),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    put_done(
        &gw.arm,
        &service_path("/backends/foundry"),
        &json!({ "properties": { "url": format!("http://{addr}/openai"), "protocol": "http" } }),
    )
    .await;
    let (status, chunks) = stream(&gw, &bearer(&gw)).await;
    assert_eq!(status, 200);
    let expected: Vec<Vec<u8>> = frames.iter().map(|f| f.as_bytes().to_vec()).collect();
    assert_eq!(chunks, expected);
}

/// A browser's preflight, as Chrome sends it before a cross-origin POST with a bearer token.
async fn preflight(gw: &Gateway, origin: &str) -> crate::sandbox_support::Answer {
    let response = gw
        .http
        .request(reqwest::Method::OPTIONS, format!("{}{CHAT}", gw.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    crate::sandbox_support::Answer {
        status,
        headers,
        body: Value::String(text),
    }
}

/// The API's cors policy answers a preflight though the API has no OPTIONS operation: only
/// `cors` runs on it (no token is asked for, the model is not called); an allowed origin gets
/// the CORS headers, a foreign one the empty 200 without them; the real call then carries
/// `Access-Control-Allow-Origin` for the allowed origin.
#[tokio::test]
async fn a_preflight_is_answered_by_the_apis_cors_policy_without_an_options_operation() {
    let gw = Gateway::new().await;
    // Without a cors policy a preflight is the OPTIONS request it is: no operation takes it.
    let bare = preflight(&gw, "https://app.contoso.example").await;
    assert_eq!(bare.status, 404, "{}", bare.body);
    let cors = r#"<cors allow-credentials="true">
      <allowed-origins><origin>https://app.contoso.example</origin></allowed-origins>
      <allowed-methods preflight-result-max-age="300"><method>POST</method></allowed-methods>
      <allowed-headers><header>authorization</header><header>content-type</header></allowed-headers>
    </cors>"#;
    let with_cors = crate::gateway::policy(&[crate::gateway::CLIENT]).replacen(
        "<inbound>\n    <base />",
        &format!("<inbound>\n    <base />\n    {cors}"),
        1,
    );
    assert!(with_cors.contains("<cors"), "{with_cors}");
    put_done(
        &gw.arm,
        &service_path("/apis/llm/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": with_cors } }),
    )
    .await;
    let allowed = preflight(&gw, "https://app.contoso.example").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.contoso.example")
    );
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        allowed.header("access-control-allow-headers"),
        Some("authorization,content-type")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("300"));
    let record = gw.last_record();
    assert_eq!(record["decision"], "respond", "{record}");
    assert_eq!(record["operation"], "chat");
    assert_eq!(record["backend"], Value::Null);

    let foreign = preflight(&gw, "https://evil.example").await;
    assert_eq!(foreign.status, 200);
    assert_eq!(foreign.body, json!(""));
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    assert_eq!(foreign.header("access-control-allow-methods"), None);
    assert!(gw.seen.lock().unwrap().is_empty());

    let call = gw
        .http
        .post(format!("{}{CHAT}", gw.url))
        .header("origin", "https://app.contoso.example")
        .header("authorization", bearer(&gw))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    assert_eq!(
        call.headers()["access-control-allow-origin"],
        "https://app.contoso.example"
    );
    assert_eq!(gw.seen.lock().unwrap().len(), 1);
}

/// With an OPTIONS operation of its own, a preflight is that operation's request: the cors
/// policy's preflight logic does not run, the rest of the pipeline does (here the token check
/// refuses the browser's token-less preflight).
#[tokio::test]
async fn a_preflight_an_options_operation_takes_runs_that_operations_policies() {
    let gw = Gateway::new().await;
    let cors = r#"<cors><allowed-origins><origin>https://app.contoso.example</origin></allowed-origins><allowed-methods><method>POST</method></allowed-methods><allowed-headers><header>authorization</header><header>content-type</header></allowed-headers></cors>"#;
    let with_cors = crate::gateway::policy(&[crate::gateway::CLIENT]).replacen(
        "<inbound>\n    <base />",
        &format!("<inbound>\n    <base />\n    {cors}"),
        1,
    );
    put_done(
        &gw.arm,
        &service_path("/apis/llm/policies/policy"),
        &json!({ "properties": { "format": "rawxml", "value": with_cors } }),
    )
    .await;
    assert_eq!(
        preflight(&gw, "https://app.contoso.example").await.status,
        200
    );
    put_done(
        &gw.arm,
        &service_path("/apis/llm/operations/chat-preflight"),
        &json!({ "properties": {
            "displayName": "Chat preflight", "method": "OPTIONS",
            "urlTemplate": "/deployments/{deployment-id}/chat/completions",
            "templateParameters": [{ "name": "deployment-id", "type": "string", "required": true }]
        } }),
    )
    .await;
    let answer = preflight(&gw, "https://app.contoso.example").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let record = gw.last_record();
    assert_eq!(record["operation"], "chat-preflight", "{record}");
    assert_eq!(record["reason"], "TokenNotPresent", "{record}");
}
