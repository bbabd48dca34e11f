//! The sandbox's Entra sign-in over HTTP: metadata and keys, client credentials, the device code
//! flow from both the client's and the user's side, and the error bodies clients branch on.

use provision::clock::SignedDuration;
use provision::policy::token::{Jwt, KeySet};
use provision::sandbox::{DEFAULT_TENANT, FOREIGN_TENANT, Sandbox, SandboxConfig};
use serde_json::{Map, Value, json};

use crate::sandbox_support::{client, default_sandbox, operator, start};

/// Sandbox time runs 10 times faster: the 5 s poll interval is 500 ms of wall time, wide enough
/// for an immediate second poll to land inside it on a loaded machine, short enough to wait out.
const TIME_SCALE: f64 = 10.0;

async fn flow_sandbox() -> Sandbox {
    start(SandboxConfig {
        time_scale: TIME_SCALE,
        ..SandboxConfig::default()
    })
    .await
}

/// Sleeps through `seconds` of sandbox time, with a margin.
/// Lets `seconds` of simulated time pass by moving the sandbox's clock, not by waiting.
fn wait_sandbox(sandbox: &Sandbox, seconds: u64) {
    let ms = (seconds as f64 * 1000.0 / TIME_SCALE) as i64 + 40;
    sandbox.advance(SignedDuration::from_millis(ms)).unwrap();
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Stores a directory object as Graph would (Graph itself is tested elsewhere).
fn store(sandbox: &Sandbox, kind: &str, tenant: &str, body: Value) {
    let object = json!({
        "kind": kind, "tenant_id": tenant, "created_ms": 0, "deleted_ms": null, "body": body,
    });
    sandbox
        .state()
        .objects
        .push(serde_json::from_value(object).unwrap());
}

/// Registers an application with `extra` merged into its body, and a service principal if asked;
/// returns the appId.
fn register(sandbox: &Sandbox, extra: Value, service_principal: bool) -> String {
    let app_id = guid();
    let mut body = json!({ "id": guid(), "appId": app_id, "displayName": "llm-gw-test" });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    store(sandbox, "application", DEFAULT_TENANT, body);
    if service_principal {
        store(
            sandbox,
            "servicePrincipal",
            DEFAULT_TENANT,
            json!({ "id": guid(), "appId": app_id, "displayName": "llm-gw-test" }),
        );
    }
    app_id
}

/// An API exposing `llm.invoke` (enabled) and `llm.admin` (disabled), in the given token version.
fn api(version: Value) -> Value {
    json!({
        "requestedAccessTokenVersion": version,
        "oauth2PermissionScopes": [
            { "id": guid(), "value": "llm.invoke", "type": "User", "isEnabled": true },
            { "id": guid(), "value": "llm.admin", "type": "Admin", "isEnabled": false },
        ],
    })
}

/// Option A of the wire reference: one public client that is also the v2 API it calls.
fn register_public_api(sandbox: &Sandbox) -> String {
    register(
        sandbox,
        json!({ "isFallbackPublicClient": true, "api": api(json!(2)) }),
        true,
    )
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post_form(url: String, form: &[(&str, &str)]) -> Reply {
    let response = client().post(url).form(form).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get_json(url: String) -> Reply {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

async fn devicecode(sandbox: &Sandbox, client_id: &str, scope: &str) -> Reply {
    post_form(
        format!(
            "{}/{DEFAULT_TENANT}/oauth2/v2.0/devicecode",
            sandbox.base_url()
        ),
        &[("client_id", client_id), ("scope", scope)],
    )
    .await
}

async fn poll(sandbox: &Sandbox, client_id: &str, device_code: &str) -> Reply {
    post_form(
        format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", sandbox.base_url()),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ],
    )
    .await
}

async fn client_credentials(sandbox: &Sandbox, id: &str, secret: &str, scope: &str) -> Reply {
    post_form(
        format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", sandbox.base_url()),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await
}

async fn decide(sandbox: &Sandbox, user_code: &str, verb: &str, body: Value) {
    let response = client()
        .post(format!(
            "{}/_sandbox/device-codes/{user_code}/{verb}",
            sandbox.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{verb}: {}",
        response.text().await.unwrap()
    );
}

/// Asserts Entra's whole error shape: status, `error`, the AADSTS code in every place it appears,
/// the trace fields repeated in the description, and the headers.
fn assert_entra_error(sandbox: &Sandbox, reply: &Reply, status: u16, error: &str, code: u64) {
    let body = &reply.body;
    assert_eq!(
        (reply.status, body["error"].as_str()),
        (status, Some(error)),
        "{body:#}"
    );
    assert_eq!(body["error_codes"], json!([code]), "{body:#}");
    let (trace, correlation, timestamp) = (
        body["trace_id"].as_str().unwrap(),
        body["correlation_id"].as_str().unwrap(),
        body["timestamp"].as_str().unwrap(),
    );
    assert!(uuid::Uuid::parse_str(trace).is_ok(), "{trace}");
    assert!(uuid::Uuid::parse_str(correlation).is_ok(), "{correlation}");
    let shape: String = timestamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'n' } else { c })
        .collect();
    assert_eq!(shape, "nnnn-nn-nn nn:nn:nnZ");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(
        description.ends_with(&format!(
            "\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
        )),
        "{description}"
    );
    assert_eq!(
        body["error_uri"],
        format!("{}/error?code={code}", sandbox.base_url())
    );
    assert_eq!(
        reply.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(reply.headers["cache-control"], "no-store, no-cache");
}

fn description(reply: &Reply) -> &str {
    reply.body["error_description"].as_str().unwrap()
}

/// Parses a token and verifies its signature against the JWKS the sandbox serves.
async fn verified_claims(sandbox: &Sandbox, token: &str) -> Map<String, Value> {
    let jwks = client()
        .get(format!(
            "{}/{DEFAULT_TENANT}/discovery/v2.0/keys",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys = KeySet::from_json(&jwks).unwrap();
    let jwt = Jwt::parse(token).unwrap();
    assert_eq!(jwt.alg, "RS256");
    keys.verify_rs256(
        jwt.kid.as_deref().unwrap(),
        jwt.signing_input(),
        jwt.signature(),
    )
    .expect("the token verifies against the served JWKS");
    jwt.claims
}

fn user_id(sandbox: &Sandbox, upn: &str) -> String {
    let state = sandbox.state();
    let tenant = state.tenant(DEFAULT_TENANT).unwrap();
    tenant
        .users
        .iter()
        .find(|u| u.upn == upn)
        .unwrap()
        .id
        .clone()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_configuration_is_served_in_both_versions_by_guid_or_domain() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url();
    let v2 = get_json(format!(
        "{base}/{DEFAULT_TENANT}/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(v2.status, 200);
    let t = DEFAULT_TENANT;
    assert_eq!(v2.body["issuer"], format!("{base}/{t}/v2.0"));
    assert_eq!(
        v2.body["jwks_uri"],
        format!("{base}/{t}/discovery/v2.0/keys")
    );
    assert_eq!(
        v2.body["token_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/token")
    );
    assert_eq!(
        v2.body["device_authorization_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/devicecode")
    );
    assert_eq!(
        v2.body["authorization_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        v2.body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    for field in [
        "response_types_supported",
        "subject_types_supported",
        "token_endpoint_auth_methods_supported",
        "scopes_supported",
        "claims_supported",
    ] {
        assert!(v2.body[field].is_array(), "{field}");
    }
    assert!(v2.body["tenant_region_scope"].is_string());

    // The domain names the same tenant; URLs use its GUID, as Entra's do.
    let v1 = get_json(format!(
        "{base}/sandbox.onmicrosoft.com/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body["issuer"], format!("{base}/{t}/"));
    assert_eq!(v1.body["jwks_uri"], format!("{base}/{t}/discovery/keys"));
    assert_eq!(
        v1.body["token_endpoint"],
        format!("{base}/{t}/oauth2/token")
    );

    let unknown = get_json(format!(
        "{base}/nowhere.example/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_entra_error(&sandbox, &unknown, 400, "invalid_request", 90002);
    assert!(
        description(&unknown).starts_with("AADSTS90002: Tenant 'nowhere.example' not found."),
        "{}",
        description(&unknown)
    );
}

#[tokio::test]
async fn jwks_publishes_every_key_of_the_tenant_on_both_paths() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url();
    let rotated = client()
        .post(format!(
            "{base}/_sandbox/tenants/{DEFAULT_TENANT}/keys/rotate"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let kids: Vec<String> = sandbox.state().tenants[0]
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .collect();
    assert_eq!(kids.len(), 2);

    let v2 = get_json(format!("{base}/{DEFAULT_TENANT}/discovery/v2.0/keys")).await;
    assert_eq!(v2.status, 200);
    let keys = v2.body["keys"].as_array().unwrap();
    let served: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(served, kids);
    for key in keys {
        assert_eq!(
            (key["kty"].as_str(), key["use"].as_str(), key["e"].as_str()),
            (Some("RSA"), Some("sig"), Some("AQAB"))
        );
        assert_eq!(key["x5t"], key["kid"]);
        assert_eq!(key["issuer"], format!("{base}/{DEFAULT_TENANT}/v2.0"));
    }
    let set = KeySet::from_json(&v2.body.to_string()).unwrap();
    assert!(kids.iter().all(|k| set.contains(k)));

    let v1 = get_json(format!("{base}/sandbox.onmicrosoft.com/discovery/keys")).await;
    assert_eq!(v1.status, 200);
    let keys = v1.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.get("issuer").is_none()));

    let foreign = get_json(format!("{base}/{FOREIGN_TENANT}/discovery/v2.0/keys")).await;
    let foreign_kid = foreign.body["keys"][0]["kid"].as_str().unwrap();
    assert!(!kids.iter().any(|k| k == foreign_kid));
}

#[tokio::test]
async fn client_credentials_mint_arm_and_graph_tokens_that_verify() {
    let sandbox = default_sandbox().await;
    let (id, secret) = operator(&sandbox).await;
    let object_id = sandbox.state().operator.object_id.clone();
    for (scope, aud) in [
        (
            "https://management.azure.com/.default",
            "https://management.azure.com/",
        ),
        (
            "https://management.azure.com//.default",
            "https://management.azure.com/",
        ),
        (
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.com",
        ),
    ] {
        let reply = client_credentials(&sandbox, &id, &secret, scope).await;
        assert_eq!(reply.status, 200, "{scope}: {:#}", reply.body);
        assert_eq!(reply.body["token_type"], "Bearer");
        let expires_in = reply.body["expires_in"].as_i64().unwrap();
        assert!((3600..5400).contains(&expires_in), "{expires_in}");
        assert_eq!(reply.body["ext_expires_in"], expires_in);
        assert_eq!(reply.headers["cache-control"], "no-store, no-cache");
        let claims = verified_claims(&sandbox, reply.body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["aud"], aud);
        assert_eq!(
            claims["iss"],
            format!("{}/{DEFAULT_TENANT}/", sandbox.base_url())
        );
        assert_eq!(claims["appid"], id.as_str());
        assert_eq!(claims["ver"], "1.0");
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["tid"], DEFAULT_TENANT);
        assert_eq!(claims["oid"], object_id.as_str());
    }

    // The v1 endpoint takes `resource` instead of a scope.
    let v1 = post_form(
        format!("{}/{DEFAULT_TENANT}/oauth2/token", sandbox.base_url()),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("resource", "https://management.azure.com/"),
        ],
    )
    .await;
    assert_eq!(v1.status, 200, "{:#}", v1.body);
}

#[tokio::test]
async fn client_credentials_for_a_registered_api_need_its_service_principal() {
    let sandbox = default_sandbox().await;
    let (id, secret) = operator(&sandbox).await;
    let with_sp = register(&sandbox, json!({ "api": api(json!(2)) }), true);
    let reply =
        client_credentials(&sandbox, &id, &secret, &format!("api://{with_sp}/.default")).await;
    assert_eq!(reply.status, 200, "{:#}", reply.body);
    let claims = verified_claims(&sandbox, reply.body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (&claims["aud"], &claims["ver"], &claims["azp"]),
        (&json!(with_sp), &json!("2.0"), &json!(id))
    );
    assert_eq!(
        claims["iss"],
        format!("{}/{DEFAULT_TENANT}/v2.0", sandbox.base_url())
    );

    let without_sp = register(&sandbox, json!({ "api": api(Value::Null) }), false);
    let resource = format!("api://{without_sp}");
    let reply = client_credentials(&sandbox, &id, &secret, &format!("{resource}/.default")).await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_resource", 500011);

    let reply = client_credentials(&sandbox, &id, &secret, "https://management.azure.com/").await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_scope", 1002012);
}

#[tokio::test]
async fn a_wrong_secret_is_401_invalid_client_and_an_unknown_client_is_unauthorized() {
    let sandbox = default_sandbox().await;
    let (id, _) = operator(&sandbox).await;
    let scope = "https://management.azure.com/.default";
    let reply = client_credentials(&sandbox, &id, "not-the-secret", scope).await;
    assert_entra_error(&sandbox, &reply, 401, "invalid_client", 7000215);
    assert!(
        description(&reply).starts_with("AADSTS7000215: Invalid client secret provided."),
        "{}",
        description(&reply)
    );

    let stranger = guid();
    let reply = client_credentials(&sandbox, &stranger, "whatever", scope).await;
    assert_entra_error(&sandbox, &reply, 400, "unauthorized_client", 700016);
    assert!(
        description(&reply).starts_with(&format!(
            "AADSTS700016: Application with identifier '{stranger}' was not found in the directory 'Sandbox'."
        )),
        "{}",
        description(&reply)
    );
}

#[tokio::test]
async fn the_device_code_flow_issues_a_v2_token_for_the_api() {
    let sandbox = flow_sandbox().await;
    let app = register_public_api(&sandbox);
    let started = devicecode(
        &sandbox,
        &app,
        &format!("api://{app}/llm.invoke openid profile offline_access"),
    )
    .await;
    assert_eq!(started.status, 200, "{:#}", started.body);
    assert_eq!(
        started.headers["content-type"],
        "application/json; charset=utf-8"
    );
    let body = started.body.as_object().unwrap();
    let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "device_code",
            "expires_in",
            "interval",
            "message",
            "user_code",
            "verification_uri"
        ]
    );
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert!(
        user_code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{user_code}"
    );
    let device_code = body["device_code"].as_str().unwrap();
    assert!(device_code.len() >= 100, "{device_code}");
    let verification_uri = format!("{}/devicelogin", sandbox.base_url());
    assert_eq!(body["verification_uri"], verification_uri.as_str());
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["interval"], 5);
    assert_eq!(
        body["message"],
        format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        )
    );

    let pending = poll(&sandbox, &app, device_code).await;
    assert_entra_error(&sandbox, &pending, 400, "authorization_pending", 70016);
    let hurried = poll(&sandbox, &app, device_code).await;
    assert_entra_error(&sandbox, &hurried, 400, "slow_down", 70016);
    assert_eq!(sandbox.state().device_codes[0].interval, 10);

    decide(
        &sandbox,
        user_code,
        "approve",
        json!({ "user": "ada@sandbox.onmicrosoft.com" }),
    )
    .await;
    wait_sandbox(&sandbox, 10);
    let token = poll(&sandbox, &app, device_code).await;
    assert_eq!(token.status, 200, "{:#}", token.body);
    assert_eq!(token.body["token_type"], "Bearer");
    assert_eq!(token.body["scope"], format!("api://{app}/llm.invoke"));
    let expires_in = token.body["expires_in"].as_i64().unwrap();
    assert!((3600..5400).contains(&expires_in), "{expires_in}");
    assert_eq!(token.body["ext_expires_in"], expires_in);
    assert!(token.body["refresh_token"].as_str().unwrap().len() > 40);

    let claims = verified_claims(&sandbox, token.body["access_token"].as_str().unwrap()).await;
    let ada = user_id(&sandbox, "ada@sandbox.onmicrosoft.com");
    assert_eq!(claims["aud"], app.as_str());
    assert_eq!(
        claims["iss"],
        format!("{}/{DEFAULT_TENANT}/v2.0", sandbox.base_url())
    );
    assert_eq!(claims["azp"], app.as_str());
    assert_eq!(claims["azpacr"], "0");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["tid"], DEFAULT_TENANT);
    assert_eq!(claims["oid"], ada.as_str());
    assert_eq!(claims["scp"], "llm.invoke");
    assert_eq!(claims["preferred_username"], "ada@sandbox.onmicrosoft.com");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(claims.get("appid").is_none());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat);

    let id_token = verified_claims(&sandbox, token.body["id_token"].as_str().unwrap()).await;
    assert_eq!(id_token["aud"], app.as_str());
    assert_eq!(id_token["oid"], ada.as_str());
    assert_eq!(id_token["sub"], claims["sub"]);

    let again = poll(&sandbox, &app, device_code).await;
    assert_entra_error(&sandbox, &again, 400, "invalid_grant", 70000);
}

#[tokio::test]
async fn the_device_code_flow_issues_a_v1_token_to_a_separate_client() {
    let sandbox = flow_sandbox().await;
    let resource_app = register(&sandbox, json!({ "api": api(Value::Null) }), true);
    let client_app = register(&sandbox, json!({ "isFallbackPublicClient": true }), false);
    let started = devicecode(
        &sandbox,
        &client_app,
        &format!("api://{resource_app}/llm.invoke api://{resource_app}/llm.admin"),
    )
    .await;
    assert_eq!(started.status, 200, "{:#}", started.body);
    let device_code = started.body["device_code"].as_str().unwrap();
    let user_code = started.body["user_code"].as_str().unwrap();
    decide(
        &sandbox,
        user_code,
        "approve",
        json!({ "user": "grace@sandbox.onmicrosoft.com" }),
    )
    .await;
    let token = poll(&sandbox, &client_app, device_code).await;
    assert_eq!(token.status, 200, "{:#}", token.body);
    // The disabled scope is not granted, and neither refresh nor ID token was asked for.
    assert_eq!(
        token.body["scope"],
        format!("api://{resource_app}/llm.invoke")
    );
    assert!(token.body.get("refresh_token").is_none());
    assert!(token.body.get("id_token").is_none());

    let claims = verified_claims(&sandbox, token.body["access_token"].as_str().unwrap()).await;
    let grace = user_id(&sandbox, "grace@sandbox.onmicrosoft.com");
    assert_eq!(claims["aud"], format!("api://{resource_app}"));
    assert_eq!(
        claims["iss"],
        format!("{}/{DEFAULT_TENANT}/", sandbox.base_url())
    );
    assert_eq!(claims["appid"], client_app.as_str());
    assert_eq!(claims["appidacr"], "0");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["unique_name"], "grace@sandbox.onmicrosoft.com");
    assert_eq!(claims["upn"], "grace@sandbox.onmicrosoft.com");
    assert_eq!(claims["oid"], grace.as_str());
    assert_eq!(claims["tid"], DEFAULT_TENANT);
    assert_eq!(claims["scp"], "llm.invoke");
    assert_eq!(claims["name"], "Grace Hopper");
    assert!(claims.get("azp").is_none());
}

#[tokio::test]
async fn only_disabled_scopes_end_in_invalid_scope() {
    let sandbox = flow_sandbox().await;
    let app = register_public_api(&sandbox);
    let started = devicecode(&sandbox, &app, &format!("api://{app}/llm.admin")).await;
    assert_eq!(started.status, 200, "{:#}", started.body);
    let user_code = started.body["user_code"].as_str().unwrap();
    decide(&sandbox, user_code, "approve", json!({})).await;
    let reply = poll(
        &sandbox,
        &app,
        started.body["device_code"].as_str().unwrap(),
    )
    .await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_scope", 70011);
}

#[tokio::test]
async fn a_declined_code_ends_in_authorization_declined() {
    let sandbox = flow_sandbox().await;
    let app = register_public_api(&sandbox);
    let started = devicecode(&sandbox, &app, &format!("api://{app}/llm.invoke")).await;
    decide(
        &sandbox,
        started.body["user_code"].as_str().unwrap(),
        "decline",
        json!({}),
    )
    .await;
    let reply = poll(
        &sandbox,
        &app,
        started.body["device_code"].as_str().unwrap(),
    )
    .await;
    assert_entra_error(&sandbox, &reply, 400, "authorization_declined", 65004);
}

#[tokio::test]
async fn an_expired_code_ends_in_expired_token() {
    let sandbox = start(SandboxConfig {
        time_scale: TIME_SCALE,
        device_code_expires_in: 1,
        ..SandboxConfig::default()
    })
    .await;
    let app = register_public_api(&sandbox);
    let started = devicecode(&sandbox, &app, &format!("api://{app}/llm.invoke")).await;
    assert_eq!(started.body["expires_in"], 1);
    wait_sandbox(&sandbox, 1);
    let reply = poll(
        &sandbox,
        &app,
        started.body["device_code"].as_str().unwrap(),
    )
    .await;
    assert_entra_error(&sandbox, &reply, 400, "expired_token", 70020);
    assert!(
        description(&reply).contains("This device code has expired."),
        "{}",
        description(&reply)
    );
}

#[tokio::test]
async fn an_unknown_device_code_is_a_bad_verification_code() {
    let sandbox = flow_sandbox().await;
    let app = register_public_api(&sandbox);
    let reply = poll(&sandbox, &app, "DAQABAAEAAAD-not-issued").await;
    assert_entra_error(&sandbox, &reply, 400, "bad_verification_code", 70018);
}

#[tokio::test]
async fn a_confidential_client_polls_into_401_invalid_client() {
    let sandbox = flow_sandbox().await;
    let app = register(&sandbox, json!({ "api": api(json!(2)) }), true);
    let started = devicecode(&sandbox, &app, &format!("api://{app}/llm.invoke")).await;
    assert_eq!(started.status, 200, "{:#}", started.body);
    let reply = poll(
        &sandbox,
        &app,
        started.body["device_code"].as_str().unwrap(),
    )
    .await;
    assert_entra_error(&sandbox, &reply, 401, "invalid_client", 7000218);
    assert!(
        description(&reply).starts_with(
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
        ),
        "{}",
        description(&reply)
    );
}

#[tokio::test]
async fn device_code_requests_are_checked_for_client_scope_and_service_principal() {
    let sandbox = flow_sandbox().await;
    let no_sp = register(
        &sandbox,
        json!({ "isFallbackPublicClient": true, "api": api(json!(2)) }),
        false,
    );
    let reply = devicecode(&sandbox, &no_sp, &format!("api://{no_sp}/llm.invoke")).await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_resource", 500011);
    assert!(
        description(&reply).starts_with(&format!(
            "AADSTS500011: The resource principal named api://{no_sp} was not found in the tenant named Sandbox."
        )),
        "{}",
        description(&reply)
    );

    let stranger = guid();
    let reply = devicecode(&sandbox, &stranger, &format!("api://{stranger}/x")).await;
    assert_entra_error(&sandbox, &reply, 400, "unauthorized_client", 700016);

    let app = register_public_api(&sandbox);
    let reply = devicecode(&sandbox, &app, "api://not-registered/llm.invoke openid").await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_scope", 70011);
    assert!(
        description(&reply).contains("'api://not-registered/llm.invoke'"),
        "{}",
        description(&reply)
    );

    let reply = post_form(
        format!(
            "{}/{DEFAULT_TENANT}/oauth2/v2.0/devicecode",
            sandbox.base_url()
        ),
        &[("scope", "openid")],
    )
    .await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_request", 900144);
    assert!(description(&reply).contains("'client_id'"));
    assert!(sandbox.state().device_codes.is_empty());
}

#[tokio::test]
async fn the_token_endpoint_refuses_other_grants_and_methods() {
    let sandbox = default_sandbox().await;
    let url = format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", sandbox.base_url());
    let reply = post_form(url.clone(), &[("grant_type", "password")]).await;
    assert_entra_error(&sandbox, &reply, 400, "unsupported_grant_type", 70003);
    let reply = post_form(url.clone(), &[("client_id", "x")]).await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_request", 900144);
    let reply = get_json(url).await;
    assert_entra_error(&sandbox, &reply, 400, "invalid_request", 900561);
}

#[tokio::test]
async fn a_device_code_expires_when_the_sandbox_clock_passes_its_expires_in() {
    let sandbox = start(SandboxConfig::default()).await;
    let app = register_public_api(&sandbox);
    let started = devicecode(&sandbox, &app, &format!("api://{app}/llm.invoke")).await;
    assert_eq!(started.body["expires_in"], 900);
    let device_code = started.body["device_code"].as_str().unwrap();
    sandbox.advance(SignedDuration::from_secs(898)).unwrap();
    let pending = poll(&sandbox, &app, device_code).await;
    assert_entra_error(&sandbox, &pending, 400, "authorization_pending", 70016);
    sandbox.advance(SignedDuration::from_secs(3)).unwrap();
    let expired = poll(&sandbox, &app, device_code).await;
    assert_entra_error(&sandbox, &expired, 400, "expired_token", 70020);
    assert!(
        description(&expired).starts_with(
            "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. \
             This device code has expired.\r\n"
        ),
        "{}",
        description(&expired)
    );
}
