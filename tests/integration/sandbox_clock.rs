//! The sandbox's clock: moving it forward is exactly as if that much time had passed (tokens
//! expire, operations end, retention runs out), in-process, over `/_sandbox/clock` and from the
//! command line; and nothing here waits on the wall clock.

use std::io::{BufRead, BufReader};

use provision::clock::SignedDuration;
use provision::sandbox::{LatencyProfile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::sandbox_support::{Arm, SUBSCRIPTION, client, default_sandbox, group_path, start};

const HOUR: i64 = 3600;

fn with_token(sandbox: &Sandbox, token: String) -> Arm {
    let mut arm = Arm::new(sandbox);
    arm.token = Some(token);
    arm
}

#[tokio::test]
async fn moving_the_clock_an_hour_expires_a_token_for_graph_and_arm() {
    let sandbox = default_sandbox().await;
    // Thirty minutes left, five minutes of allowed skew: valid now, expired an hour from now.
    let arm_token =
        crate::sandbox_support::token_for(&sandbox, 0, "https://management.azure.com/", 30 * 60);
    let graph_token =
        crate::sandbox_support::token_for(&sandbox, 0, "https://graph.microsoft.com", 30 * 60);
    let subscription = format!("/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01");
    let arm = with_token(&sandbox, arm_token);
    let graph = with_token(&sandbox, graph_token);
    assert_eq!(arm.get(&subscription).await.status, 200);
    assert_eq!(graph.get("/v1.0/applications").await.status, 200);

    sandbox.advance(SignedDuration::from_hours(1)).unwrap();

    let refused = arm.get(&subscription).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.body,
        json!({"error": {
            "code": "ExpiredAuthenticationToken",
            "message": "The access token expiry UTC time is earlier than current UTC time.",
        }})
    );
    assert_eq!(
        refused.header("www-authenticate").unwrap(),
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", \
             error_description=\"Lifetime validation failed, the token is expired.\"",
            sandbox.base_url(),
            provision::sandbox::DEFAULT_TENANT
        )
    );
    let refused = graph.get("/v1.0/applications").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "InvalidAuthenticationToken");
    assert_eq!(
        refused.message(),
        "Lifetime validation failed, the token is expired."
    );
}

fn account_path(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{name}?api-version=2025-06-01",
        group_path("rg")
    )
}

fn account(subdomain: &str) -> Value {
    json!({
        "location": "westus",
        "kind": "AIServices",
        "sku": { "name": "S0" },
        "properties": { "customSubDomainName": subdomain }
    })
}

async fn deleted_accounts(arm: &Arm) -> Value {
    arm.get(&format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/deletedAccounts?api-version=2025-06-01"
    ))
    .await
    .body["value"]
        .clone()
}

#[tokio::test]
async fn moving_the_clock_48_hours_frees_a_soft_deleted_account_name() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let created = arm.put(&account_path("kept"), &account("kept-sub")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let operation = created.header("azure-asyncoperation").unwrap().to_owned();
    assert_eq!(arm.wait_async(&operation).await.body["status"], "Succeeded");
    let deleting = arm.delete(&account_path("kept")).await;
    assert_eq!(deleting.status, 202);
    let operation = deleting.header("azure-asyncoperation").unwrap().to_owned();
    assert_eq!(arm.wait_async(&operation).await.body["status"], "Succeeded");
    assert_eq!(deleted_accounts(&arm).await.as_array().unwrap().len(), 1);
    let blocked = arm.put(&account_path("kept"), &account("kept-sub")).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (409, "FlagMustBeSetForRestore")
    );

    sandbox.advance(SignedDuration::from_hours(48)).unwrap();
    // The old token would have expired with the move; a new one is minted on the moved clock.
    let arm = Arm::new(&sandbox);
    assert_eq!(deleted_accounts(&arm).await, json!([]));
    let again = arm.put(&account_path("kept"), &account("kept-sub")).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

#[tokio::test]
async fn an_operation_completes_when_the_clock_passes_its_duration() {
    // `realistic`: an account takes 30 s to create, at the system clock's pace.
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let created = arm.put(&account_path("slow"), &account("slow-sub")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let operation = created.header("azure-asyncoperation").unwrap().to_owned();
    let running = arm.get(&operation).await;
    assert_eq!(running.body["status"], "Creating");
    assert_eq!(running.header("retry-after"), Some("30"));

    sandbox.advance(SignedDuration::from_secs(30)).unwrap();
    let done = arm.get(&operation).await;
    assert_eq!(done.body["status"], "Succeeded");
    let account = arm.get(&account_path("slow")).await;
    assert_eq!(account.body["properties"]["provisioningState"], "Succeeded");
}

#[tokio::test]
async fn a_deleted_application_is_purged_after_30_days_and_frees_its_identifier_uri() {
    let sandbox = default_sandbox().await;
    let graph = with_token(
        &sandbox,
        crate::sandbox_support::token(&sandbox, 0, "https://graph.microsoft.com"),
    );
    let body = json!({"displayName": "old", "identifierUris": ["api://old"]});
    let app = graph
        .send("POST", "/v1.0/applications", Some(&body), &[])
        .await;
    assert_eq!(app.status, 201, "{}", app.body);
    let id = app.body["id"].as_str().unwrap();
    assert_eq!(
        graph
            .delete(&format!("/v1.0/applications/{id}"))
            .await
            .status,
        204
    );
    let again = graph
        .send("POST", "/v1.0/applications", Some(&body), &[])
        .await;
    assert_eq!(
        again.status, 400,
        "a deleted app keeps its URI: {}",
        again.body
    );

    sandbox
        .advance(SignedDuration::from_hours(30 * 24))
        .unwrap();
    let graph = with_token(
        &sandbox,
        crate::sandbox_support::token(&sandbox, 0, "https://graph.microsoft.com"),
    );
    let bin = graph
        .get("/v1.0/directory/deletedItems/microsoft.graph.application")
        .await;
    assert_eq!(bin.body["value"], json!([]));
    let reused = graph
        .send("POST", "/v1.0/applications", Some(&body), &[])
        .await;
    assert_eq!(reused.status, 201, "{}", reused.body);
}

#[tokio::test]
async fn a_moved_clock_is_kept_in_the_state_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        state_dir: Some(dir.path().to_owned()),
        ..SandboxConfig::default()
    };
    let first = start(config()).await;
    let moved = first.advance(SignedDuration::from_hours(48)).unwrap();
    first.shutdown().await;
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["clock_offset_ms"], 48 * HOUR * 1000);

    let second = start(config()).await;
    let now = second.now();
    assert!(now >= moved, "{now} is before {moved}");
    assert!(
        now.duration_since(moved) < SignedDuration::from_mins(5),
        "{now}"
    );
}

async fn admin(sandbox: &Sandbox, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", sandbox.base_url());
    let request = match body {
        Some(body) => client().post(url).json(&body),
        None => client().get(url),
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_clock_endpoints_read_advance_set_and_refuse_going_back() {
    let sandbox = default_sandbox().await;
    let (status, reading) = admin(&sandbox, "/_sandbox/clock", None).await;
    assert_eq!((status, &reading["offset_seconds"]), (200, &json!(0)));
    assert!(reading["now"].as_str().unwrap().ends_with('Z'), "{reading}");

    let (status, moved) = admin(
        &sandbox,
        "/_sandbox/clock/advance",
        Some(json!({"by": "PT90M"})),
    )
    .await;
    assert_eq!((status, &moved["offset_seconds"]), (200, &json!(5400)));

    let (status, set) = admin(
        &sandbox,
        "/_sandbox/clock/set",
        Some(json!({"to": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        set["now"]
            .as_str()
            .unwrap()
            .starts_with("2999-01-01T00:00:0"),
        "{set}"
    );

    let (status, refused) = admin(
        &sandbox,
        "/_sandbox/clock/set",
        Some(json!({"to": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["error"],
        "set to 2000-01-01T00:00:00Z: the sandbox's clock only moves forward (tokens, operations \
         and retention periods already handed out would stop making sense); to start over at the \
         system's time, stop the sandbox and delete its state"
    );
    let (status, refused) = admin(
        &sandbox,
        "/_sandbox/clock/advance",
        Some(json!({"by": "soon"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("`soon` is not a duration (write e.g. 90s, 20m, 1h30m or PT1H30M): "),
        "{refused}"
    );
    let (status, refused) = admin(&sandbox, "/_sandbox/clock/advance", Some(json!({}))).await;
    assert_eq!(
        (status, &refused["error"]),
        (
            400,
            &json!(r#"expected a JSON object with a string `by`, e.g. {"by": "48h"}"#)
        )
    );
}

#[tokio::test]
async fn a_cross_site_clock_move_is_refused_like_every_admin_request() {
    let sandbox = default_sandbox().await;
    let refused = client()
        .post(format!("{}/_sandbox/clock/advance", sandbox.base_url()))
        .header("content-type", "text/plain")
        .body(r#"{"by": "48h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let (_, reading) = admin(&sandbox, "/_sandbox/clock", None).await;
    assert_eq!(reading["offset_seconds"], 0, "the clock did not move");
}

/// `provision sandbox serve` on a free loopback port, as a child process; its base URL. The
/// reader of its stdout is handed back too: dropping it would close the pipe and end the child
/// at its next line.
fn serve() -> (std::process::Child, impl BufRead, String) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("provision"))
        .args([
            "--color",
            "never",
            "sandbox",
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .trim()
        .strip_prefix("sandbox listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    (child, stdout, base)
}

fn provision(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .args(["--color", "never"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn sandbox_clock_advance_moves_a_served_sandbox_from_the_command_line() {
    let (mut child, _stdout, base) = serve();
    let addr = base.strip_prefix("http://").unwrap().to_owned();

    let moved = provision(&["sandbox", "clock", "advance", "48h", "--addr", &addr]);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert_eq!(
        moved.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(
        stdout.ends_with(" (172800 s ahead of the system clock)\n")
            && stdout.starts_with("sandbox clock: "),
        "{stdout}"
    );
    let shown = provision(&["--output", "json", "sandbox", "clock", "--addr", &addr]);
    assert_eq!(shown.status.code(), Some(0));
    let line: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(line["type"], "sandbox_clock");
    assert_eq!(line["offset_seconds"], 172_800);
    let reading: Value = client()
        .get(format!("{base}/_sandbox/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reading["offset_seconds"], 172_800);

    let bad = provision(&["sandbox", "clock", "advance", "48x", "--addr", &addr]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.starts_with(
            "error: sandbox clock advance: `48x` is not a duration (write e.g. 90s, 20m, 1h30m or \
             PT1H30M): "
        ) && stderr.ends_with(
            "\nhint: durations are jiff's friendly form (48h, 1h30m, 90s) or ISO 8601 (PT90M)\n"
        ),
        "{stderr}"
    );
    let negative = provision(&["sandbox", "clock", "advance", "-1h", "--addr", &addr]);
    assert_eq!(negative.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&negative.stderr).starts_with(
            "error: sandbox clock advance: `-1h` is negative: a duration only runs forward"
        ),
        "{}",
        String::from_utf8_lossy(&negative.stderr)
    );
    let back = provision(&[
        "sandbox",
        "clock",
        "set",
        "2000-01-01T00:00:00Z",
        "--addr",
        &addr,
    ]);
    assert_eq!(back.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&back.stderr);
    assert!(
        stderr.starts_with(
            "error: sandbox clock: set to 2000-01-01T00:00:00Z: the sandbox's clock only moves forward"
        ) && stderr.ends_with(&format!(
            "\nhint: `provision sandbox clock --addr {addr}` shows its time now\n"
        )),
        "{stderr}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sandbox_clock_with_nothing_listening_exits_1_with_a_hint() {
    // A port that was free a moment ago: bound, then released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = provision(&["sandbox", "clock", "--addr", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: no sandbox answered at http://{addr}/_sandbox/clock: "
        )) && stderr.ends_with(
            "\nhint: start one with `provision sandbox serve`, or pass --addr HOST:PORT where it \
             listens\n"
        ),
        "{stderr}"
    );
}
