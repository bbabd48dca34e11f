//! `provision verify --cases FILE`: the user's own gateway cases, in `policy test`'s format, sent
//! to the live gateway of a sandbox after `up`, their tokens signed by the sandbox tenant's key,
//! each judged against what it expects and against the simulator's prediction.

use serde_json::{Value, json};

use crate::client::{Boundary, Decision, stderr};

const CASES: &str = "\
cases:
  - name: the notebook client reaches the model
    token: { client: llm-gateway-notebooks-local }
    expect: { status: 200, decision: allow }
  - name: a client nobody registered gets through
    token: { client: 0dd0c11e-0000-4000-8000-0000000000ff }
    expect: { status: 200 }
";

/// The user's cases' verdicts from `verify --output json`: (case, expected, held, status,
/// predicted reason, drift); the matrix's twelve come first.
fn user_verdicts(stdout: &[u8]) -> Vec<(String, String, bool, Value, Value, Value)> {
    let lines = crate::output_contract::lines(std::str::from_utf8(stdout).unwrap());
    let cases: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "boundary_case")
        .collect();
    assert!(
        cases[..12].iter().all(|c| c["held"] == true),
        "the matrix held"
    );
    cases[12..]
        .iter()
        .map(|l| {
            (
                l["case"].as_str().unwrap().to_owned(),
                l["expected"].as_str().unwrap().to_owned(),
                l["held"].as_bool().unwrap(),
                l["status"].clone(),
                l["predicted_reason"].clone(),
                l["drift"].clone(),
            )
        })
        .collect()
}

fn summary(stdout: &[u8]) -> Value {
    crate::output_contract::lines(std::str::from_utf8(stdout).unwrap())
        .pop()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_cases_run_live_and_the_failing_one_is_named() {
    let b = Boundary::up().await;
    b.project.write("cases.yaml", CASES);
    let mark = b.sandbox.requests().len();
    let args = [
        "verify",
        "--env",
        "local",
        "--cases",
        "cases.yaml",
        "--output",
        "json",
    ];
    let out = b.run_signing_in(&args, Decision::Approve).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let verdicts = user_verdicts(&out.stdout);
    assert_eq!(
        verdicts,
        vec![
            (
                "the notebook client reaches the model".to_owned(),
                "200 allow".to_owned(),
                true,
                json!(200),
                Value::Null,
                Value::Null
            ),
            (
                "a client nobody registered gets through".to_owned(),
                "200".to_owned(),
                false,
                json!(401),
                json!("TokenClientApplicationNotAllowed"),
                Value::Null
            ),
        ],
        "{}",
        stderr(&out)
    );
    assert_eq!(
        summary(&out.stdout),
        json!({"type": "summary", "env": "local", "cases": 14, "held": 13, "failed": 1,
               "skipped": 0, "drifted": 0})
    );
    // Both went to the API's real operation for the environment's deployment, and the gateway
    // refused the second for the reason the simulator predicted.
    let gateway: Vec<(String, String, Value)> = b.sandbox.requests()[mark..]
        .iter()
        .filter(|r| r.gateway.is_some())
        .map(|r| {
            let g = serde_json::to_value(r.gateway.clone()).unwrap();
            (r.method.clone(), r.path.clone(), g["reason"].clone())
        })
        .collect();
    let operation = "/apim/apim-llmgw-local/llm/deployments/gpt-5.6-luna/chat/completions?api-version=2024-10-21";
    let tail: Vec<_> = gateway[gateway.len() - 2..].to_vec();
    assert_eq!(
        tail,
        vec![
            ("POST".to_owned(), operation.to_owned(), Value::Null),
            (
                "POST".to_owned(),
                operation.to_owned(),
                json!("TokenClientApplicationNotAllowed")
            ),
        ]
    );

    // In words: the failing case by name, what it expected and got, and why.
    let out = b
        .run(&["verify", "--env", "local", "--cases", "cases.yaml"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let failing: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(
        failing[0].starts_with(
            "FAIL  a client nobody registered gets through expected 200      got 401: "
        ),
        "{text}"
    );
    assert!(
        failing[0].ends_with(" [TokenClientApplicationNotAllowed]"),
        "{text}"
    );
    assert!(
        text.ends_with("local: 13 held, 1 failed, 0 skipped; 0 where the simulator's prediction differs from the gateway\n"),
        "{text}"
    );

    // The case fixed, and every kind of token a case can describe: each minted by the sandbox
    // tenant (or the other one), refused live for the reason the simulator gives, no drift.
    let fixed = CASES.replace(
        "    expect: { status: 200 }\n",
        "    expect: { status: 401, reason: TokenClientApplicationNotAllowed }\n",
    ) + "  - name: another tenant's token
    token: { tenant: foreign }
    expect: { status: 401, reason: TokenIssuerNotAllowed }
  - name: expired
    token: { expires_in: -3600, not_before_in: -7200 }
    expect: { status: 401, reason: TokenExpired }
  - name: unsigned
    token: { signature: unsigned }
    expect: { status: 401, reason: TokenSignatureInvalid }
  - name: tampered
    token: { signature: tampered }
    expect: { status: 401, reason: TokenSignatureInvalid }
  - name: keyed with the public key
    token: { signature: hmac }
    expect: { status: 401, reason: TokenSignatureInvalid }
  - name: a key nobody published
    token: { signature: unknown-kid }
    expect: { status: 401, reason: TokenSignatureKeyNotFound }
  - name: no expiry at all
    token: { claims: { exp: ~ } }
    expect: { status: 401, reason: JwtInvalid }
  - name: not a token
    raw_token: not-a-jwt
    expect: { status: 401 }
  - name: the signed-in token with a body of my own
    good_token: true
    path: /llm/deployments/gpt-5.6-luna/chat/completions
    headers: { x-trace: case-11 }
    body: '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'
    expect: { status: 200, decision: allow }
";
    b.project.write("cases.yaml", &fixed);
    let out = b
        .run(&[
            "verify",
            "--env",
            "local",
            "--cases",
            "cases.yaml",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let verdicts = user_verdicts(&out.stdout);
    assert_eq!(verdicts.len(), 11);
    for (name, _, held, _, _, drift) in &verdicts {
        assert!(*held && drift.is_null(), "{name}: {verdicts:?}");
    }
    assert_eq!(
        summary(&out.stdout),
        json!({"type": "summary", "env": "local", "cases": 23, "held": 23, "failed": 0,
               "skipped": 0, "drifted": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cases_file_stops_verify_before_any_request() {
    let b = Boundary::up().await;
    let run = |text: &'static str| {
        let b = &b;
        async move {
            b.project.write("bad.yaml", text);
            let mark = b.sandbox.requests().len();
            let out = b
                .run(&["verify", "--env", "local", "--cases", "bad.yaml"])
                .await;
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert_eq!(b.requests_since(mark), Vec::<String>::new());
            assert!(out.stdout.is_empty());
            stderr(&out)
        }
    };
    let text = run("cases:\n  - name: typo\n    expct: { status: 200 }\n").await;
    assert!(text.starts_with("error: bad.yaml:3:5: "), "{text}");
    assert!(text.contains("\nhint: "), "{text}");
    let text = run(
        "cases:\n  - name: elsewhere\n    path: https://example.com/llm/x\n    expect: { status: 401 }\n",
    )
    .await;
    assert_eq!(
        text,
        "error: bad.yaml:3:5: cases[0].path: `https://example.com/llm/x` is not a path under the API: start it with `/llm/` (no host, query or `..`; query parameters go in `query:`)\nhint: the case file format is in docs/policy.md (\"Case files\")\n"
    );
    let text =
        run("cases:\n  - name: v3\n    token: { version: 3 }\n    expect: { status: 401 }\n").await;
    assert_eq!(
        text,
        "error: bad.yaml:3:14: cases[0].token.version: 3 is not 1 or 2\nhint: the case file format is in docs/policy.md (\"Case files\")\n"
    );
    let text = run(
        "cases:\n  - name: out of the API\n    path: /llm/%2e%2e/admin\n    expect: { status: 401 }\n",
    )
    .await;
    assert!(text.contains("is not a path under the API"), "{text}");
}
