//! The sandbox's `/devicelogin` page: Entra's steps (code, account, consent, result), its errors,
//! its anti-forgery tokens and its escaping over plain HTTP, and the whole sign-in driven in a
//! real headless Chromium up to a call through the gateway after `up --env local`.

use provision::clock::SignedDuration;
use provision::policy::token::Jwt;
use provision::sandbox::{DEFAULT_TENANT, DeviceLoginRecord, Sandbox};
use serde_json::{Value, json};

use crate::boundary::assert_chat_reaches_the_model;
use crate::browser::{drive, screenshot_path};
use crate::sandbox_support::{client, default_sandbox};

const MODULE: &str = "login_page";
const GRACE: &str = "grace@sandbox.onmicrosoft.com";

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn store(sandbox: &Sandbox, kind: &str, body: Value) {
    let object = json!({
        "kind": kind, "tenant_id": DEFAULT_TENANT, "created_ms": 0, "deleted_ms": null, "body": body,
    });
    sandbox
        .state()
        .objects
        .push(serde_json::from_value(object).unwrap());
}

/// An API app exposing `llm.invoke` and a public client app named `client_name` that calls it;
/// returns (client appId, the scope to ask for).
fn register(sandbox: &Sandbox, client_name: &str) -> (String, String) {
    let api = guid();
    store(
        sandbox,
        "application",
        json!({
            "id": guid(), "appId": api, "displayName": "Gateway <API>",
            "identifierUris": [format!("api://{api}")],
            "api": { "requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [{
                "id": guid(), "value": "llm.invoke", "type": "User", "isEnabled": true,
                "userConsentDisplayName": "Invoke the <b>model</b>",
            }]},
        }),
    );
    store(
        sandbox,
        "servicePrincipal",
        json!({ "id": guid(), "appId": api, "displayName": "Gateway <API>" }),
    );
    let client_id = guid();
    store(
        sandbox,
        "application",
        json!({
            "id": guid(), "appId": client_id, "displayName": client_name,
            "isFallbackPublicClient": true,
        }),
    );
    (client_id, format!("api://{api}/llm.invoke"))
}

/// `POST /devicecode`: (user_code, device_code, verification_uri).
async fn start_code(sandbox: &Sandbox, client_id: &str, scope: &str) -> (String, String, String) {
    let answer: Value = client()
        .post(format!(
            "{}/{DEFAULT_TENANT}/oauth2/v2.0/devicecode",
            sandbox.base_url()
        ))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |k: &str| {
        answer[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: {answer}"))
            .to_owned()
    };
    (
        field("user_code"),
        field("device_code"),
        field("verification_uri"),
    )
}

/// One poll of the token endpoint: (status, body).
async fn poll(sandbox: &Sandbox, client_id: &str, device_code: &str) -> (u16, Value) {
    let response = client()
        .post(format!(
            "{}/{DEFAULT_TENANT}/oauth2/v2.0/token",
            sandbox.base_url()
        ))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A page as a browser without scripts would hold it: its HTML and the hidden fields to post back.
struct Page {
    status: u16,
    html: String,
}

impl Page {
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').unwrap();
        self.html[start..start + end].to_owned()
    }

    fn ticket(&self) -> Vec<(String, String)> {
        vec![
            ("flow".into(), self.hidden("flow")),
            ("csrf".into(), self.hidden("csrf")),
        ]
    }
}

async fn get_page(sandbox: &Sandbox) -> Page {
    let response = client()
        .get(format!("{}/devicelogin", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none';")
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    Page {
        status: response.status().as_u16(),
        html: response.text().await.unwrap(),
    }
}

/// POSTs the page's form: its ticket plus `fields`.
async fn submit(sandbox: &Sandbox, ticket: Vec<(String, String)>, fields: &[(&str, &str)]) -> Page {
    let mut form = ticket;
    form.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let response = client()
        .post(format!("{}/devicelogin", sandbox.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    Page {
        status: response.status().as_u16(),
        html: response.text().await.unwrap(),
    }
}

/// What the page recorded for each POST so far, in order.
fn page_records(sandbox: &Sandbox) -> Vec<DeviceLoginRecord> {
    sandbox
        .requests()
        .into_iter()
        .filter_map(|r| r.devicelogin)
        .collect()
}

fn record(
    step: Option<&str>,
    code: Option<&str>,
    outcome: &str,
    user: Option<&str>,
) -> DeviceLoginRecord {
    DeviceLoginRecord {
        step: step.map(str::to_owned),
        user_code: code.map(str::to_owned),
        outcome: outcome.to_owned(),
        user: user.map(str::to_owned),
    }
}

fn status_of(sandbox: &Sandbox, user_code: &str) -> String {
    let state = sandbox.state();
    let code = state
        .device_codes
        .iter()
        .find(|d| d.user_code == user_code)
        .unwrap();
    format!("{:?}", code.status)
}

// ---------------------------------------------------------------------------------------------
// Over plain HTTP

#[tokio::test]
async fn the_page_walks_entras_steps_escapes_names_and_logs_each_post() {
    let sandbox = default_sandbox().await;
    let (client_id, scope) = register(&sandbox, "<script>alert('pwned')</script> notebooks");
    let (user_code, device_code, _) = start_code(&sandbox, &client_id, &scope).await;

    let page = get_page(&sandbox).await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("<h1 id=\"title\">Enter code</h1>"),
        "{}",
        page.html
    );

    let page = submit(&sandbox, page.ticket(), &[("user_code", "<ZZZ>")]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains(
        "<p class=\"error\" id=\"error\" role=\"alert\">That code didn&#39;t work. Check the code and try again.</p>"
    ), "{}", page.html);
    assert!(page.html.contains("AADSTS70018") && page.html.contains("value=\"&lt;ZZZ&gt;\""));

    // Users type codes in any case and with separators.
    let typed = format!("{}-{}", &user_code[..4], &user_code[4..]).to_ascii_lowercase();
    let page = submit(&sandbox, page.ticket(), &[("user_code", &typed)]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.html.contains("Pick an account")
            && page.html.contains("Sandbox (sandbox.onmicrosoft.com)")
    );
    assert!(
        page.html.contains("value=\"ada@sandbox.onmicrosoft.com\"")
            && page.html.contains(&format!("value=\"{GRACE}\""))
    );
    assert!(
        !page.html.contains("mallory@"),
        "only the code's tenant's users"
    );

    let page = submit(
        &sandbox,
        page.ticket(),
        &[("user", "mallory@foreign.onmicrosoft.com")],
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("AADSTS50034"), "{}", page.html);

    let page = submit(&sandbox, page.ticket(), &[("user", GRACE)]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let html = &page.html;
    assert!(html.contains("Permissions requested"));
    assert!(
        html.contains(
            "<strong>&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; notebooks</strong>"
        ),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<b>model</b>"),
        "{html}"
    );
    assert!(html.contains(&format!("App ID {client_id}")));
    assert!(
        html.contains("Invoke the &lt;b&gt;model&lt;/b&gt;"),
        "{html}"
    );
    assert!(
        html.contains(&format!("Gateway &lt;API&gt; · {scope}")),
        "{html}"
    );
    assert!(html.contains("Organization: <strong>Sandbox</strong> (sandbox.onmicrosoft.com)"));
    assert!(html.contains(&format!("Tenant ID {DEFAULT_TENANT}")));
    assert!(html.contains("Grace Hopper (grace@sandbox.onmicrosoft.com)"));
    assert_eq!(
        status_of(&sandbox, &user_code),
        "Pending",
        "nothing decided before Accept"
    );
    // The old page's verb is no choice here: the consent screen again.
    let page = submit(&sandbox, page.ticket(), &[("action", "approve")]).await;
    assert_eq!(page.status, 400);
    assert!(
        page.html.contains("Choose Accept or Cancel.")
            && page.html.contains("Permissions requested")
    );
    assert_eq!(status_of(&sandbox, &user_code), "Pending");

    let page = submit(&sandbox, page.ticket(), &[("action", "accept")]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(
        "You have signed in to the &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; notebooks application on your device. You may now close this window."
    ), "{}", page.html);

    let (status, token) = poll(&sandbox, &client_id, &device_code).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], scope);
    let claims = Jwt::parse(token["access_token"].as_str().unwrap())
        .unwrap()
        .claims;
    let grace = sandbox.state().tenant(DEFAULT_TENANT).unwrap().users[1].clone();
    assert_eq!(
        (grace.upn.as_str(), &claims["oid"]),
        (GRACE, &json!(grace.id))
    );

    // The same code once more, in a new flow: used.
    let page = get_page(&sandbox).await;
    let page = submit(&sandbox, page.ticket(), &[("user_code", &user_code)]).await;
    assert_eq!(page.status, 400);
    assert!(
        page.html.contains("That code was already used."),
        "{}",
        page.html
    );

    let code = Some(user_code.as_str());
    assert_eq!(
        page_records(&sandbox),
        vec![
            record(Some("code"), Some("ZZZ"), "invalid_code", None),
            record(Some("code"), code, "next", None),
            record(
                Some("account"),
                code,
                "unknown_user",
                Some("mallory@foreign.onmicrosoft.com")
            ),
            record(Some("account"), code, "next", Some(GRACE)),
            record(Some("consent"), code, "no_choice", Some(GRACE)),
            record(Some("consent"), code, "approved", Some(GRACE)),
            record(Some("code"), code, "used_code", None),
        ]
    );
}

#[tokio::test]
async fn a_post_without_the_pages_token_is_403_and_decides_nothing() {
    let sandbox = default_sandbox().await;
    let (client_id, scope) = register(&sandbox, "Notebooks");
    let (user_code, device_code, _) = start_code(&sandbox, &client_id, &scope).await;
    let page = get_page(&sandbox).await;
    let page = submit(&sandbox, page.ticket(), &[("user_code", &user_code)]).await;
    let page = submit(&sandbox, page.ticket(), &[("user", GRACE)]).await;
    assert!(page.html.contains("Permissions requested"));
    let flow = page.hidden("flow");

    // No token, then a wrong one: 403, and the code is still pending.
    for ticket in [
        vec![("flow".to_owned(), flow.clone())],
        vec![
            ("flow".to_owned(), flow.clone()),
            ("csrf".to_owned(), "x".repeat(43)),
        ],
        vec![],
    ] {
        let refused = submit(&sandbox, ticket, &[("action", "accept")]).await;
        assert_eq!(refused.status, 403, "{}", refused.html);
        assert!(refused.html.contains("Nothing was decided."));
        assert_eq!(status_of(&sandbox, &user_code), "Pending");
    }
    // A forged attempt spends the page's token: the genuine form must be loaded again.
    let stale = submit(&sandbox, page.ticket(), &[("action", "accept")]).await;
    assert_eq!(stale.status, 403);
    let (status, pending) = poll(&sandbox, &client_id, &device_code).await;
    assert_eq!(
        (status, pending["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    // A foreign Origin is stopped before the page by the sandbox's guard.
    let fresh = get_page(&sandbox).await;
    let response = client()
        .post(format!("{}/devicelogin", sandbox.base_url()))
        .header("origin", "https://evil.example")
        .form(&[
            ("flow", fresh.hidden("flow")),
            ("csrf", fresh.hidden("csrf")),
            ("user_code", user_code.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(status_of(&sandbox, &user_code), "Pending");
    let forbidden = record(None, None, "forbidden", None);
    assert_eq!(
        page_records(&sandbox)[2..],
        [
            forbidden.clone(),
            forbidden.clone(),
            forbidden.clone(),
            forbidden
        ]
    );
}

#[tokio::test]
async fn an_expired_code_is_an_error_on_the_page() {
    let sandbox = default_sandbox().await;
    let (client_id, scope) = register(&sandbox, "Notebooks");
    let (user_code, _, _) = start_code(&sandbox, &client_id, &scope).await;
    let page = get_page(&sandbox).await;
    let page = submit(&sandbox, page.ticket(), &[("user_code", &user_code)]).await;
    assert_eq!(page.status, 200);
    // 900 s is the code's lifetime; the page's flow outlives it by a moment here.
    sandbox.advance(SignedDuration::from_secs(901)).unwrap();
    let page = submit(&sandbox, page.ticket(), &[("user", GRACE)]).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.html.contains("That code has expired.") && page.html.contains("AADSTS70019"));
    assert!(
        page.html.contains("<h1 id=\"title\">Enter code</h1>"),
        "back to the first step"
    );
    // Typed again at the first step: the same error.
    let page = submit(&sandbox, page.ticket(), &[("user_code", &user_code)]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("AADSTS70019"), "{}", page.html);
    let outcomes: Vec<_> = page_records(&sandbox)
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, ["next", "expired_code", "expired_code"]);
}

#[tokio::test]
async fn a_code_decided_elsewhere_while_the_page_is_open_is_an_error_on_accept() {
    let sandbox = default_sandbox().await;
    let (client_id, scope) = register(&sandbox, "Notebooks");
    let scope = format!("{scope} openid offline_access");
    let (user_code, _, _) = start_code(&sandbox, &client_id, &scope).await;
    let page = get_page(&sandbox).await;
    let page = submit(&sandbox, page.ticket(), &[("user_code", &user_code)]).await;
    let page = submit(&sandbox, page.ticket(), &[("user", GRACE)]).await;
    assert!(page.html.contains("Permissions requested"));
    // OpenID scopes in the words of Entra's consent screen.
    for words in [
        "Sign you in<br><span class=\"note\">OpenID Connect · openid</span>",
        "Maintain access to data you have given it access to<br><span class=\"note\">OpenID Connect · offline_access</span>",
    ] {
        assert!(page.html.contains(words), "{words} in {}", page.html);
    }
    // The admin endpoint, unchanged, declines it meanwhile.
    let declined = client()
        .post(format!(
            "{}/_sandbox/device-codes/{user_code}/decline",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(declined.status(), 200);
    let page = submit(&sandbox, page.ticket(), &[("action", "accept")]).await;
    assert_eq!(page.status, 400);
    assert!(
        page.html.contains("That code was already used."),
        "{}",
        page.html
    );
    assert_eq!(
        status_of(&sandbox, &user_code),
        "Declined",
        "Accept changed nothing"
    );
    assert_eq!(
        page_records(&sandbox).last().unwrap(),
        &record(Some("consent"), Some(&user_code), "used_code", Some(GRACE))
    );
}

#[tokio::test]
async fn hostile_forms_and_queries_are_answered_without_echoing_them_whole() {
    let sandbox = default_sandbox().await;
    let url = format!("{}/devicelogin", sandbox.base_url());
    // Not a form, invalid UTF-8, a JSON body: read as an empty form, so refused as forged.
    for (kind, body) in [
        (
            "application/x-www-form-urlencoded",
            b"flow=%FF%FE&csrf=\xff".to_vec(),
        ),
        ("application/json", br#"{"flow":"x","csrf":"y"}"#.to_vec()),
        ("text/plain", vec![0u8; 4096]),
    ] {
        let response = client()
            .post(&url)
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{kind}");
    }
    // A huge code is refused and echoed (and logged) only up to 64 characters.
    let long = "A".repeat(100_000);
    let response = client()
        .get(format!("{url}?code={}", "<b>".repeat(1000)))
        .send()
        .await
        .unwrap();
    let page = Page {
        status: response.status().as_u16(),
        html: response.text().await.unwrap(),
    };
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains(&format!("value=\"{}\"", "&lt;b&gt;".repeat(21) + "&lt;"))
    );
    let page = submit(&sandbox, page.ticket(), &[("user_code", &long)]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains(&format!("value=\"{}\"", &long[..64])));
    assert!(!page.html.contains(&long[..65]));
    let records = page_records(&sandbox);
    let last = records.last().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.user_code.as_deref()),
        ("invalid_code", Some(&long[..64]))
    );
}

// ---------------------------------------------------------------------------------------------
// In a real headless Chromium

/// The acceptance test of the login page: after `up --env local`, a person signs in on the page
/// in Chromium; the device-code token the registered client then polls for crosses the gateway
/// to the model, which the gateway called as its managed identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_signed_in_device_code_token_reaches_the_model() {
    let world = crate::up_e2e::World::default().await;
    world.up().await;
    // The gateway's role assignment takes effect after the replication lag, as RBAC does.
    world
        .sandbox
        .advance(SignedDuration::from_mins(10))
        .unwrap();
    let api = world.app("llm-gateway-api-local");
    let client_app = world.app("llm-gateway-notebooks-local");
    let client_id = client_app["appId"].as_str().unwrap().to_owned();
    let scope = format!("api://{}/llm.invoke", api["appId"].as_str().unwrap());
    let (user_code, device_code, verification_uri) =
        start_code(&world.sandbox, &client_id, &scope).await;

    let app_name = client_app["displayName"].as_str().unwrap().to_owned();
    let api_name = api["displayName"].as_str().unwrap().to_owned();
    let want_scope = scope.clone();
    drive(MODULE, "in_chromium_a_signed_in_device_code_token_reaches_the_model", move |b| async move {
        b.goto(&verification_uri).await;
        b.expect_text("#title", "Enter code").await;
        b.type_into("#otc", &user_code).await;
        b.click("#next").await;
        b.click(&format!("button[value='{GRACE}']")).await;
        // The consent screen: the app, what it asks for, and the tenant.
        b.expect_text("#title", "Permissions requested").await;
        assert_eq!(b.text("#app strong").await, app_name);
        let scopes = b.text("#scopes").await;
        assert!(scopes.contains(&format!("{api_name} · {want_scope}")), "{scopes}");
        let tenant = b.text("#tenant").await;
        assert!(
            tenant.contains("Organization: Sandbox (sandbox.onmicrosoft.com)")
                && tenant.contains(DEFAULT_TENANT),
            "{tenant}"
        );
        b.click("#accept").await;
        assert_eq!(
            b.text("#result").await,
            format!("You have signed in to the {app_name} application on your device. You may now close this window.")
        );
    })
    .await;

    let (status, token) = poll(&world.sandbox, &client_id, &device_code).await;
    assert_eq!(status, 200, "{token}");
    let token = token["access_token"].as_str().unwrap();
    assert_chat_reaches_the_model(&world.sandbox, token).await;
}

/// In Chromium: a wrong code is an error on the page; Cancel on the consent screen ends the
/// client's poll in `authorization_declined` (Entra's name for RFC 8628's `access_denied`); and
/// the decided code, entered again, is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_wrong_and_used_codes_are_errors_and_cancel_declines() {
    let sandbox = default_sandbox().await;
    let (client_id, scope) = register(&sandbox, "Notebooks");
    let (user_code, device_code, verification_uri) = start_code(&sandbox, &client_id, &scope).await;
    let url = verification_uri.clone();
    let code = user_code.clone();
    drive(MODULE, "in_chromium_wrong_and_used_codes_are_errors_and_cancel_declines", move |b| async move {
        b.goto(&url).await;
        b.type_into("#otc", "WRONGCODE").await;
        b.click("#next").await;
        assert_eq!(b.text("#error").await, "That code didn't work. Check the code and try again.");
        b.type_into("#otc", &code).await;
        b.click("#next").await;
        b.click(&format!("button[value='{GRACE}']")).await;
        b.click("#cancel").await;
        assert_eq!(
            b.text("#result").await,
            "You have declined to sign in to the Notebooks application on your device. You may now close this window."
        );
        b.goto(&url).await;
        b.type_into("#otc", &code).await;
        b.click("#next").await;
        assert!(b.text("#error").await.starts_with("That code was already used."));
    })
    .await;
    let (status, declined) = poll(&sandbox, &client_id, &device_code).await;
    assert_eq!(
        (status, declined["error"].as_str()),
        (400, Some("authorization_declined")),
        "{declined}"
    );
    assert_eq!(declined["error_codes"], json!([65004]));
}

/// A failing browser test leaves a PNG of the page it failed on where it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_browser_test_leaves_a_screenshot() {
    let sandbox = default_sandbox().await;
    let path = screenshot_path(MODULE, "deliberately_failing");
    let _ = std::fs::remove_file(&path);
    let url = format!("{}/devicelogin", sandbox.base_url());
    let failed = tokio::spawn(drive(MODULE, "deliberately_failing", move |b| async move {
        b.goto(&url).await;
        b.find("#otc").await;
        panic!("deliberately");
    }))
    .await;
    assert!(failed.unwrap_err().is_panic());
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_file(&path).unwrap();
}
