//! `provision token`, `call` and `verify`: the real binary as the environment's client app
//! against an in-process sandbox after `up`, the device code approved (or declined) through the
//! sandbox's admin endpoint as the binary prints it, and judged by the sandbox's request log.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use provision::clock::SignedDuration;
use provision::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::project::Project;
use crate::sandbox_support::{client, start};

const CLIENT_APP: &str = "llm-gateway-notebooks-local";
const API_APP: &str = "llm-gateway-api-local";

/// What the user does at the device login page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    Decline,
    /// Lets the code run out: the sandbox's clock moves past its lifetime.
    LetExpire,
}

/// A sandbox after `up --env local`, a project pointing at it, and a token cache of its own.
pub(crate) struct Boundary {
    pub(crate) sandbox: Sandbox,
    pub(crate) project: Project,
    cache: tempfile::TempDir,
}

impl Boundary {
    pub(crate) async fn up() -> Boundary {
        // Poll every second instead of Entra's five: the binary waits in real time.
        let sandbox = start(SandboxConfig {
            device_code_interval: 1,
            ..SandboxConfig::default()
        })
        .await;
        let project = Project::new();
        let local = project.read("environments/local.yaml").replace(
            "address: 127.0.0.1:7171",
            &format!("address: {}", sandbox.addr()),
        );
        project.write("environments/local.yaml", &local);
        let boundary = Boundary {
            sandbox,
            project,
            cache: tempfile::tempdir().unwrap(),
        };
        let out = boundary.run(&["up", "--env", "local"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        // up's summary ends with what to run next.
        let summary = String::from_utf8(out.stdout).unwrap();
        assert!(
            summary.ends_with(
                "\n\nNext: sign in, call the model and prove the boundary holds:\n  provision token \
                 --env local\n  provision call --env local --message hello\n  provision verify \
                 --env local\n"
            ),
            "{summary}"
        );
        // The gateway's role assignment takes effect after the replication lag, as RBAC does.
        boundary
            .sandbox
            .advance(SignedDuration::from_mins(10))
            .unwrap();
        boundary
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("provision"));
        cmd.current_dir(self.project.dir.path())
            .args(["--color", "never"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("PROVISION_AUTH")
            .env("PROVISION_CACHE_DIR", self.cache.path());
        cmd
    }

    /// Runs the binary off the runtime's threads (the sandbox answers on them).
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs the binary through a device code sign-in: reads the code from its stderr as a user
    /// would, and decides on it at the sandbox. Returns the output with the whole stderr.
    pub(crate) async fn run_signing_in(&self, args: &[&str], decision: Decision) -> Output {
        let (child, rx, reader) = spawn_awaiting_code(self.command(args));
        if let Ok(code) = rx.await {
            let base = self.sandbox.base_url();
            match decision {
                Decision::Approve => {
                    let answer = client()
                        .post(format!("{base}/_sandbox/device-codes/{code}/approve"))
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status().as_u16(), 200);
                }
                Decision::Decline => {
                    let answer = client()
                        .post(format!("{base}/_sandbox/device-codes/{code}/decline"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status().as_u16(), 200);
                }
                Decision::LetExpire => {
                    self.sandbox.advance(SignedDuration::from_mins(16)).unwrap();
                }
            }
        }
        finish(child, reader).await
    }

    pub(crate) fn cache_file(&self) -> PathBuf {
        self.cache
            .path()
            .join("tokens")
            .join(format!("local.{CLIENT_APP}.json"))
    }

    pub(crate) fn app_id(&self, unique_name: &str) -> String {
        let state = self.sandbox.state();
        state
            .objects
            .iter()
            .find(|o| o.body.get("uniqueName").and_then(Value::as_str) == Some(unique_name))
            .and_then(|o| o.body.get("appId").and_then(Value::as_str))
            .unwrap()
            .to_owned()
    }

    /// `METHOD path` (without the query) of every request the sandbox saw after `from`.
    pub(crate) fn requests_since(&self, from: usize) -> Vec<String> {
        self.sandbox.requests()[from..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
            .collect()
    }
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_line(out: &Output) -> Value {
    crate::output_contract::lines(&String::from_utf8(out.stdout.clone()).unwrap()).remove(0)
}

fn login_requests(requests: &[String]) -> Vec<&String> {
    requests.iter().filter(|r| r.contains("/oauth2/")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_signed_in_once_then_reused_then_refreshed_once() {
    let b = Boundary::up().await;
    let args = ["token", "--env", "local", "--output", "json"];
    let out = b.run_signing_in(&args, Decision::Approve).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/devicelogin and enter the code "),
        "{}",
        stderr(&out)
    );
    let shown = json_line(&out);
    let api = b.app_id(API_APP);
    assert_eq!(shown["type"], "token");
    assert_eq!(shown["source"], "device-code");
    assert_eq!(shown["client"], CLIENT_APP);
    assert_eq!(shown["client_id"], b.app_id(CLIENT_APP));
    assert_eq!(shown["audience"], api);
    assert_eq!(shown["scopes"], "llm.invoke");
    assert_eq!(shown["cache_file"], b.cache_file().display().to_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b.cache_file()), 0o600);
        assert_eq!(mode(b.cache_file().parent().unwrap()), 0o700);
    }

    // Within the token's lifetime: no request to the login endpoint at all.
    let mark = b.sandbox.requests().len();
    let out = b.run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_line(&out)["source"], "cache");
    assert_eq!(b.requests_since(mark), ["GET /_sandbox/clock"]);

    // Expired on the sandbox's clock: exactly one refresh-token request.
    b.sandbox.advance(SignedDuration::from_hours(2)).unwrap();
    let mark = b.sandbox.requests().len();
    let out = b.run(&[&args[..], &["-vv"]].concat()).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_line(&out)["source"], "refresh");
    let log = stderr(&out);
    assert!(log.contains("TRACE sending"), "{log}");
    assert!(
        !log.contains("eyJ") && !log.contains("1.A"),
        "a token reached the log: {log}"
    );
    let tenant = provision::sandbox::DEFAULT_TENANT;
    assert_eq!(
        login_requests(&b.requests_since(mark)),
        [&format!("POST /{tenant}/oauth2/v2.0/token")]
    );

    // --print: the token alone, the one in the cache; nothing token-shaped anywhere else.
    let out = b.run(&["token", "--env", "local", "--print", "-vv"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout.clone()).unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(b.cache_file()).unwrap()).unwrap();
    assert_eq!(
        printed,
        format!("{}\n", saved["access_token"].as_str().unwrap())
    );
    assert!(!stderr(&out).contains("eyJ"), "a token reached the log");

    // --logout forgets it; a second logout says there was nothing.
    let out = b
        .run(&["token", "--env", "local", "--logout", "--output", "json"])
        .await;
    assert_eq!(
        json_line(&out),
        json!({"type": "signed_out", "env": "local", "client": CLIENT_APP, "removed": true})
    );
    assert!(!b.cache_file().exists());
    let out = b.run(&["token", "--env", "local", "--logout"]).await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("no saved sign-in for local as {CLIENT_APP}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_the_device_flow_says_what_happened_and_what_to_do() {
    let b = Boundary::up().await;
    let args = ["token", "--env", "local"];

    let out = b.run_signing_in(&args, Decision::Decline).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("error: waiting for the sign-in: Entra ID answered HTTP 400 authorization_declined: AADSTS65004: User declined to consent to access the app."),
        "{text}"
    );
    assert!(
        text.contains("hint: the sign-in was declined at the device login page"),
        "{text}"
    );

    let out = b.run_signing_in(&args, Decision::LetExpire).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("Entra ID answered HTTP 400 expired_token: AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired."),
        "{text}"
    );
    assert!(
        text.contains("hint: the code expired before the sign-in was completed"),
        "{text}"
    );

    // A confidential client: the app no longer allows public client flows.
    {
        let client_id = b.app_id(CLIENT_APP);
        let mut state = b.sandbox.state();
        let app = state
            .objects
            .iter_mut()
            .find(|o| o.body.get("appId").and_then(Value::as_str) == Some(&client_id))
            .unwrap();
        app.body
            .insert("isFallbackPublicClient".into(), json!(false));
    }
    let out = b.run_signing_in(&args, Decision::Approve).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("Entra ID answered HTTP 401 invalid_client: AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
        "{text}"
    );
    assert!(
        text.contains("hint: the app is not a public client"),
        "{text}"
    );
    assert!(!b.cache_file().exists(), "a refused sign-in saves nothing");
}

impl Boundary {
    /// Takes `app_id` out of the stored policy, as someone editing it by hand would.
    pub(crate) fn remove_from_policy(&self, app_id: &str) {
        let mut state = self.sandbox.state();
        let policy = state
            .arm
            .resources
            .iter_mut()
            .find(|(id, _)| id.ends_with("/apis/llm/policies/policy"))
            .map(|(_, r)| r)
            .unwrap();
        // Both the text as sent (`_sandbox.raw`) and `properties.value`.
        let text = serde_json::to_string(&policy.body).unwrap();
        assert!(text.contains(app_id), "{text}");
        policy.body =
            serde_json::from_str(&text.replace(app_id, "00000000-0000-4000-8000-00000000dead"))
                .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_answers_through_the_gateway_and_says_why_when_refused() {
    let b = Boundary::up().await;
    let out = b
        .run_signing_in(
            &["call", "--env", "local", "--message", "hello"],
            Decision::Approve,
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "You said: hello\n");
    let log = b.sandbox.requests();
    let call = log.last().unwrap();
    assert_eq!(
        call.path,
        "/apim/apim-llmgw-local/llm/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(call.status, 200);

    // Streamed, from the saved sign-in: no prompt this time.
    let out = b
        .run(&[
            "call",
            "--env",
            "local",
            "--message",
            "hi there",
            "--stream",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "You said: hi there\n"
    );

    let out = b
        .run(&[
            "call",
            "--env",
            "local",
            "--message",
            "hello",
            "--output",
            "json",
        ])
        .await;
    let line = json_line(&out);
    assert_eq!(
        (
            &line["type"],
            &line["status"],
            &line["content"],
            &line["deployment"]
        ),
        (
            &json!("answer"),
            &json!(200),
            &json!("You said: hello"),
            &json!("gpt-5.6-luna")
        )
    );

    // The client taken out of the stored policy: the gateway's 401 and what to do.
    b.remove_from_policy(&b.app_id(CLIENT_APP));
    let out = b
        .run(&["call", "--env", "local", "--message", "hello"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("the gateway answered HTTP 401: "), "{text}");
    assert!(
        text.contains("hint: the gateway refused the token: sign in again with `provision token --env local --force`"),
        "{text}"
    );
    assert!(String::from_utf8(out.stdout).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_snippet_is_filled_in_and_compiles() {
    let b = Boundary::up().await;
    let out = b
        .run(&["token", "--env", "local", "--snippet", "python"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let base = b.sandbox.base_url();
    let tenant = provision::sandbox::DEFAULT_TENANT;
    for line in [
        format!("AUTHORITY = \"{base}/{tenant}\""),
        format!("CLIENT_ID = \"{}\"", b.app_id(CLIENT_APP)),
        format!("SCOPES = [\"api://{}/llm.invoke\"]", b.app_id(API_APP)),
        format!("API_URL = \"{base}/apim/apim-llmgw-local/llm\""),
        "DEPLOYMENT = \"gpt-5.6-luna\"".to_owned(),
        "    instance_discovery=False,".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    assert!(!b.cache_file().exists(), "a snippet signs no one in");
    let file = b.project.path("client.py");
    std::fs::write(&file, &text).unwrap();
    // Where Python exists, the snippet must compile; the lines above are checked either way.
    if let Ok(compiled) = Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&file)
        .output()
    {
        assert!(
            compiled.status.success(),
            "{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
    }
}

/// The device code a running command prints on stderr.
pub(crate) type CodeReceiver = tokio::sync::oneshot::Receiver<String>;

/// Starts `cmd` with its output piped, and hands over the device code it prints ("enter the code
/// X") as soon as it is printed, while the rest of stderr is kept for [`finish`].
pub(crate) fn spawn_awaiting_code(
    mut cmd: Command,
) -> (
    std::process::Child,
    CodeReceiver,
    std::thread::JoinHandle<String>,
) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(code) = line.split("enter the code ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(code.split_whitespace().next().unwrap().to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (child, rx, reader)
}

/// Waits for a command started by [`spawn_awaiting_code`], off the runtime's threads.
pub(crate) async fn finish(
    child: std::process::Child,
    reader: std::thread::JoinHandle<String>,
) -> Output {
    let mut output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    output.stderr = reader.join().unwrap().into_bytes();
    output
}

/// Every case's verdict from `verify --output json`: (case, held, status, skipped, drift).
fn verdicts(out: &Output) -> Vec<(String, bool, Value, Value, Value)> {
    crate::output_contract::lines(&String::from_utf8(out.stdout.clone()).unwrap())
        .into_iter()
        .filter(|l| l["type"] == "boundary_case")
        .map(|l| {
            (
                l["case"].as_str().unwrap().to_owned(),
                l["held"].as_bool().unwrap(),
                l["status"].clone(),
                l["skipped"].clone(),
                l["drift"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_holds_on_the_sandbox_and_names_the_case_that_breaks() {
    let b = Boundary::up().await;
    let args = ["verify", "--env", "local", "--output", "json"];
    let out = b.run_signing_in(&args, Decision::Approve).await;
    let all = verdicts(&out);
    let expected: Vec<(String, bool, Value, Value, Value)> = [
        ("good-token", 200),
        ("no-token", 401),
        ("malformed-token", 401),
        ("tampered-signature", 401),
        ("other-audience", 401),
        ("unlisted-client", 401),
        ("foreign-tenant", 401),
        ("expired-token", 401),
        ("foundry-with-key", 403),
        ("foundry-list-keys", 400),
        ("foundry-own-token", 401),
        ("gateway-plain-http", 404),
    ]
    .into_iter()
    .map(|(case, status)| {
        (
            case.to_owned(),
            true,
            json!(status),
            Value::Null,
            Value::Null,
        )
    })
    .collect();
    assert_eq!(all, expected, "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = crate::output_contract::lines(&String::from_utf8(out.stdout).unwrap())
        .pop()
        .unwrap();
    assert_eq!(
        summary,
        json!({"type": "summary", "env": "local", "cases": 12, "held": 12, "failed": 0,
               "skipped": 0, "drifted": 0})
    );

    // In a pipeline: a token from elsewhere, no one signs in, nothing token-shaped in the log.
    let saved: Value = serde_json::from_slice(&std::fs::read(b.cache_file()).unwrap()).unwrap();
    std::fs::remove_file(b.cache_file()).unwrap();
    b.project.write(
        "token.txt",
        &format!("{}\n", saved["access_token"].as_str().unwrap()),
    );
    let mark = b.sandbox.requests().len();
    let out = b
        .run(&[
            "verify",
            "--env",
            "local",
            "--token-file",
            "token.txt",
            "-vv",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !b.requests_since(mark)
            .iter()
            .any(|r| r.ends_with("/devicecode")),
        "no device code was asked for"
    );
    assert!(!stderr(&out).contains("eyJ"), "a token reached the log");
    assert!(!b.cache_file().exists());

    // The registered client taken out of the stored policy: the good token is refused, and
    // `verify` says which case broke, with the simulator agreeing.
    b.remove_from_policy(&b.app_id(CLIENT_APP));
    let out = b
        .run(&["verify", "--env", "local", "--token-file", "token.txt"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("FAIL  good-token           expected 200      got 401: "),
        "{text}"
    );
    assert!(
        first.ends_with(" [TokenClientApplicationNotAllowed]"),
        "{text}"
    );
    assert!(
        text.ends_with("local: 11 held, 1 failed, 0 skipped; 0 where the simulator's prediction differs from the gateway\n"),
        "{text}"
    );
}

/// The sandbox's refresh-token grant refuses what Entra refuses, and its mint endpoint says what
/// it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_are_bound_to_their_client_and_test_tokens_to_a_tenant() {
    let b = Boundary::up().await;
    let out = b
        .run_signing_in(&["token", "--env", "local"], Decision::Approve)
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved: Value = serde_json::from_slice(&std::fs::read(b.cache_file()).unwrap()).unwrap();
    let refresh_token = saved["refresh_token"].as_str().unwrap();
    let tenant = provision::sandbox::DEFAULT_TENANT;
    let url = format!("{}/{tenant}/oauth2/v2.0/token", b.sandbox.base_url());
    let redeem = |client_id: String, token: String| {
        let url = url.clone();
        async move {
            let answer = client()
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = redeem(b.app_id(CLIENT_APP), refresh_token.to_owned()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("1.A"));
    let claims = crate::gateway::claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["azp"], b.app_id(CLIENT_APP).as_str());
    assert_eq!(claims["scp"], "llm.invoke");

    let (status, body) = redeem(b.app_id(CLIENT_APP), "1.Anot-one-we-issued".to_owned()).await;
    assert_eq!(
        (status, &body["error"], &body["error_codes"]),
        (400, &json!("invalid_grant"), &json!([9002313]))
    );
    // Another app of the tenant, and not a public client: refused before the token is looked at.
    let api = b.app_id(API_APP);
    let (status, body) = redeem(api, refresh_token.to_owned()).await;
    assert_eq!(
        (status, &body["error"], &body["error_codes"]),
        (401, &json!("invalid_client"), &json!([7000218]))
    );

    let mint_url = format!("{}/_sandbox/tokens", b.sandbox.base_url());
    let mint = |body: Value| {
        let url = mint_url.clone();
        async move {
            let answer = client().post(url).json(&body).send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = mint(json!({"tenant": tenant, "claims": {"aud": "x", "exp": 1}})).await;
    assert_eq!(status, 200, "{body}");
    let claims = crate::gateway::claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        (&claims["aud"], &claims["exp"], &claims["tid"]),
        (&json!("x"), &json!(1), &json!(tenant))
    );
    let (status, body) = mint(json!({"tenant": "nowhere", "claims": {}})).await;
    assert_eq!((status, body), (404, json!({"error": "no such tenant"})));
    let (status, _) = mint(json!({"claims": {}})).await;
    assert_eq!(status, 400);
}

/// Bad inputs stop before any request, saying what and where, with a hint.
#[test]
fn bad_client_inputs_are_refused_with_a_hint_before_any_request() {
    let project = Project::new();
    project.write("body.json", "{\"messages\": [\n  oops]}");
    project.write("list.json", "[1, 2]");
    let run = |args: &[&str]| {
        let out = project
            .provision()
            .args(args)
            .env_remove("PROVISION_AUTH")
            .env("PROVISION_CACHE_DIR", project.path("cache"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(
        run(&["call", "--env", "dev"]),
        "error: call: nothing to send\nhint: pass --message TEXT, or --body FILE with a chat completions request\n"
    );
    let text = run(&["call", "--env", "dev", "--body", "body.json"]);
    assert!(
        text.starts_with("error: body.json:2:3: not JSON: "),
        "{text}"
    );
    assert!(
        text.contains("\nhint: write a chat completions request"),
        "{text}"
    );
    let text = run(&["call", "--env", "dev", "--body", "list.json"]);
    assert!(
        text.starts_with("error: list.json: not a JSON object\n"),
        "{text}"
    );
    assert_eq!(
        run(&["token", "--env", "dev", "--client", "nobody"]),
        "error: --client nobody: environments/dev.yaml registers no client app of that name\nhint: name one of: llm-gateway-notebooks-dev\n"
    );
    let text = run(&["token", "--env", "dev", "--scope", "two words"]);
    assert!(text.contains("is not a scope"), "{text}");
    assert!(
        !project.path("cache").exists(),
        "nothing was signed in or cached"
    );
}
