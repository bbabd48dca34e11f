//! The sandbox's own security: what it keeps on disk, which hosts and origins it answers, and
//! the lifetime of the tokens it accepts.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provision::policy::token::TokenSigner;
use provision::sandbox::{DEFAULT_TENANT, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::project::Project;
use crate::sandbox_support::{Arm, SUBSCRIPTION, client, default_sandbox, start};

// ---------------------------------------------------------------------------------------------
// Files

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn state_and_tls_key_are_owner_only_in_an_owner_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = root.path().join("fresh/sandbox");
    let sandbox = start(SandboxConfig {
        state_dir: Some(fresh.clone()),
        tls: true,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("state.json")), 0o600);
    assert_eq!(mode(&fresh.join("sandbox-key.pem")), 0o600);
    sandbox.shutdown().await;

    // What an earlier version left behind (directory 0755, files 0644) is narrowed on start.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["state.json", "sandbox-key.pem"] {
        std::fs::set_permissions(fresh.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let again = start(SandboxConfig {
        state_dir: Some(fresh.clone()),
        tls: true,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("state.json")), 0o600);
    assert_eq!(mode(&fresh.join("sandbox-key.pem")), 0o600);
    again.shutdown().await;
}

#[cfg(unix)]
#[test]
fn a_state_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    let shared = project.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = project
        .provision()
        .args(["sandbox", "serve", "--addr", "127.0.0.1:0", "--state"])
        .arg(&shared)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let dir = shared.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: cannot start the sandbox: {dir}: the sandbox state directory is writable by \
             others (mode 777); anyone who can write there can replace the sandbox's signing \
             keys and operator secret\nhint: make it yours alone (`chmod 700 {dir}`), or give \
             --state another directory\n"
        )
    );
    assert!(!shared.join("state.json").exists());
    assert_eq!(mode(&shared), 0o777);
}

// ---------------------------------------------------------------------------------------------
// Host and Origin

async fn raw(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", sandbox.base_url()));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_rebinding_host_cannot_read_the_operator_secret() {
    let sandbox = default_sandbox().await;
    let port = sandbox.addr().port();
    let host = format!("rebind.attacker.example:{port}");
    let (status, body) = raw(
        &sandbox,
        reqwest::Method::GET,
        "/_sandbox/info",
        &[("host", &host)],
        None,
    )
    .await;
    assert_eq!(status, 421);
    assert_eq!(
        body,
        json!({"error": {"code": "MisdirectedRequest", "message": format!(
            "the sandbox refused a request with Host `{host}`: it answers only to localhost, \
             127.0.0.0/8 and [::1], so that a web page cannot reach it under a name of its own \
             (DNS rebinding); use http://127.0.0.1:{port}"
        )}})
    );
    // Every surface, not only the admin one.
    for path in [
        format!("/{DEFAULT_TENANT}/v2.0/.well-known/openid-configuration"),
        "/v1.0/applications".to_owned(),
        format!("/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01"),
    ] {
        let (status, _) = raw(
            &sandbox,
            reqwest::Method::GET,
            &path,
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(status, 421, "{path}");
    }
    // Loopback names are answered.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = raw(
            &sandbox,
            reqwest::Method::GET,
            "/_sandbox/info",
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(status, 200, "{host}");
        assert!(body["operator"]["client_secret"].is_string());
    }
    let refused = sandbox.requests()[0].clone();
    assert_eq!(
        (
            refused.method.as_str(),
            refused.path.as_str(),
            refused.status
        ),
        ("GET", "/_sandbox/info", 421)
    );
}

#[tokio::test]
async fn a_cross_site_key_rotation_is_refused() {
    let sandbox = default_sandbox().await;
    let port = sandbox.addr().port();
    let path = format!("/_sandbox/tenants/{DEFAULT_TENANT}/keys/rotate");
    let keys = || sandbox.state().tenants[0].keys.len();
    let before = keys();

    let (status, body) = raw(
        &sandbox,
        reqwest::Method::POST,
        &path,
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({
            "error": format!(
                "POST {path}: refused a cross-site request from Origin `https://evil.example`; \
                 the sandbox's admin requests are accepted from its own origin \
                 (http://127.0.0.1:{port}) or from clients that send no Origin (curl, tests)"
            ),
            "hint": "send the request from a client such as curl, not from a web page",
        })
    );

    // A simple content type is refused even without an Origin (some clients strip it).
    let (status, body) = raw(
        &sandbox,
        reqwest::Method::POST,
        &path,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("a=b"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({
            "error": format!(
                "POST {path}: refused Content-Type `application/x-www-form-urlencoded`: any web \
                 page may send that type to any site without asking, so the sandbox's admin \
                 requests take a JSON body or none"
            ),
            "hint": "send `Content-Type: application/json` with a body, or no body at all",
        })
    );
    // `Origin: null` (a sandboxed frame, a data: URL) is foreign too.
    let (status, _) = raw(
        &sandbox,
        reqwest::Method::POST,
        &path,
        &[("origin", "null")],
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(keys(), before, "nothing was rotated");

    // The sandbox's own origin, JSON, or no body at all: accepted.
    let own = format!("http://127.0.0.1:{port}");
    let (status, _) = raw(
        &sandbox,
        reqwest::Method::POST,
        &path,
        &[("origin", &own), ("content-type", "application/json")],
        Some("{}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = raw(&sandbox, reqwest::Method::POST, &path, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(keys(), before + 2);
}

#[tokio::test]
async fn a_cross_site_device_code_approval_is_refused() {
    let sandbox = default_sandbox().await;
    let port = sandbox.addr().port();
    let (status, body) = raw(
        &sandbox,
        reqwest::Method::POST,
        "/_sandbox/device-codes/ABCD1234/approve",
        &[
            ("content-type", "text/plain"),
            ("origin", "http://localhost:3000"),
        ],
        Some(r#"{"user":"ada@sandbox.onmicrosoft.com"}"#),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        format!(
            "POST /_sandbox/device-codes/ABCD1234/approve: refused a cross-site request from \
             Origin `http://localhost:3000`; the sandbox's admin requests are accepted from its \
             own origin (http://127.0.0.1:{port}) or from clients that send no Origin (curl, \
             tests)"
        )
    );
    // The sign-in page's own form posts urlencoded from its own origin: that reaches the page
    // (which refuses a form without its anti-forgery token, in HTML); the same form from another
    // origin is stopped before the page by the guard (JSON).
    let form = "user_code=ABCD1234&user=&action=accept";
    let urlencoded = ("content-type", "application/x-www-form-urlencoded");
    let own = format!("http://127.0.0.1:{port}");
    let (status, page) = raw(
        &sandbox,
        reqwest::Method::POST,
        "/devicelogin",
        &[urlencoded, ("origin", &own)],
        Some(form),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        page.as_str().unwrap().contains("Nothing was decided."),
        "{page}"
    );
    let (status, body) = raw(
        &sandbox,
        reqwest::Method::POST,
        "/devicelogin",
        &[urlencoded, ("origin", "https://evil.example")],
        Some(form),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["error"].as_str().unwrap().starts_with(
            "POST /devicelogin: refused a cross-site request from Origin `https://evil.example`"
        ),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Token lifetime

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A v1 app-only token of the default tenant valid from `nbf` to `exp`.
fn token_valid(sandbox: &Sandbox, audience: &str, nbf: i64, exp: i64) -> String {
    let (der, kid, operator) = {
        let state = sandbox.state();
        let key = &state.tenants[0].keys[0];
        (
            STANDARD.decode(&key.pkcs8).unwrap(),
            key.kid.clone(),
            state.operator.object_id.clone(),
        )
    };
    let signer = TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
    signer.sign(&json!({
        "aud": audience,
        "iss": format!("{}/{DEFAULT_TENANT}/", sandbox.base_url()),
        "tid": DEFAULT_TENANT,
        "oid": operator,
        "appid": "0c1d0000-0000-4000-8000-000000000002",
        "ver": "1.0",
        "iat": nbf,
        "nbf": nbf,
        "exp": exp,
    }))
}

#[tokio::test]
async fn a_token_valid_only_in_100_days_is_refused_by_arm_and_graph() {
    let sandbox = default_sandbox().await;
    let later = now() + 100 * 86_400;
    let subscription = format!("/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01");
    let arm = |token: String| {
        let mut arm = Arm::new(&sandbox);
        arm.token = Some(token);
        arm
    };
    let future = arm(token_valid(
        &sandbox,
        "https://management.azure.com/",
        later,
        later + 3600,
    ));
    let answer = future.get(&subscription).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        json!({"error": {
            "code": "InvalidAuthenticationToken",
            "message": "The access token is not yet valid: its 'nbf' (not before) time is later than current UTC time.",
        }})
    );
    assert_eq!(
        answer.header("www-authenticate").unwrap(),
        format!(
            "Bearer authorization_uri=\"{}/{DEFAULT_TENANT}\", error=\"invalid_token\", \
             error_description=\"Lifetime validation failed, the token is not yet valid.\"",
            sandbox.base_url()
        )
    );

    let graph = |token: String| {
        let mut graph = Arm::new(&sandbox);
        graph.token = Some(token);
        graph
    };
    let answer = graph(token_valid(
        &sandbox,
        "https://graph.microsoft.com",
        later,
        later + 3600,
    ))
    .get("/v1.0/applications")
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.code(), "InvalidAuthenticationToken");
    assert_eq!(
        answer.message(),
        "Lifetime validation failed, the token is not yet valid."
    );
    // The same shape as for an expired token.
    let expired = graph(token_valid(
        &sandbox,
        "https://graph.microsoft.com",
        now() - 7200,
        now() - 3600,
    ))
    .get("/v1.0/applications")
    .await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "InvalidAuthenticationToken");
    assert_eq!(
        expired.message(),
        "Lifetime validation failed, the token is expired."
    );
    let keys = |v: &Value| {
        v["error"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&answer.body), keys(&expired.body));

    // Five minutes of skew, as Microsoft.IdentityModel allows: a minute inside it is accepted,
    // a minute past it is not.
    let inside = arm(token_valid(
        &sandbox,
        "https://management.azure.com/",
        now() + 240,
        now() + 3600,
    ));
    assert_eq!(inside.get(&subscription).await.status, 200);
    let past = arm(token_valid(
        &sandbox,
        "https://management.azure.com/",
        now() + 360,
        now() + 3600,
    ));
    assert_eq!(past.get(&subscription).await.status, 401);
}
