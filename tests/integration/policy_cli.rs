//! `provision policy test|eval|diff` through the binary.

use serde_json::{Value, json};

use crate::project::{Project, manifest_dir};
use provision::policy::token::{Jwks, TokenSigner};

fn run(project: &Project, args: &[&str]) -> (i32, String, String) {
    let out = project.provision().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn with_cases(project: &Project) {
    for env in ["dev", "local", "prod"] {
        let text =
            std::fs::read_to_string(manifest_dir().join(format!("tests/policy-cases/{env}.yaml")))
                .unwrap();
        project.write(&format!("cases/{env}.yaml"), &text);
    }
}

#[test]
fn matrix_and_shipped_cases_pass_on_every_shipped_environment() {
    let project = Project::new();
    with_cases(&project);
    for (env, expected) in [
        ("dev", "17 passed, 0 failed"),
        ("local", "17 passed, 0 failed"),
        ("prod", "20 passed, 0 failed"),
    ] {
        let (code, stdout, stderr) = run(
            &project,
            &[
                "policy",
                "test",
                "--env",
                env,
                "--cases",
                &format!("cases/{env}.yaml"),
            ],
        );
        assert_eq!(code, 0, "{env}: {stdout}{stderr}");
        assert_eq!(stdout.lines().last(), Some(expected), "{env}: {stdout}");
        assert!(stdout.contains("token from another tenant"), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

#[test]
fn a_weak_policy_fails_the_matrix() {
    let project = Project::new();
    let weak =
        std::fs::read_to_string(manifest_dir().join("tests/lint/weak/policies/llm-api.xml.tera"))
            .unwrap();
    project.write("templates/policies/llm-api.xml.tera", &weak);
    let (code, stdout, _) = run(&project, &["policy", "test", "--env", "prod"]);
    assert_eq!(code, 1, "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 2, "{stdout}");
    assert!(
        failed[0].contains("token from another tenant")
            && failed[0].contains("expected 500 deny TokenIssuerNotAllowed, got 200 allow"),
        "{stdout}"
    );
    assert!(
        failed[1].contains("token for another audience (Microsoft Graph)"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("12 passed, 2 failed"));
}

#[test]
fn json_output_has_one_line_per_case_and_a_summary() {
    let project = Project::new();
    let (code, stdout, _) = run(
        &project,
        &["policy", "test", "--env", "dev", "--output", "json"],
    );
    assert_eq!(code, 0);
    let lines = crate::output_contract::lines(&stdout);
    assert_eq!(lines.len(), 14);
    let expired = lines.iter().find(|l| l["name"] == "expired token").unwrap();
    assert_eq!(expired["actual"]["reason"], "TokenExpired");
    assert_eq!(
        expired["expected"],
        json!({"decision": "deny", "status": 401, "reason": "TokenExpired"})
    );
    assert_eq!(
        lines[13],
        json!({"type": "summary", "env": "dev", "passed": 13, "failed": 0})
    );
}

#[test]
fn bad_case_files_say_where() {
    let project = Project::new();
    project.write(
        "cases.yaml",
        "cases:\n  - name: x\n    tokn: {}\n    expect: {status: 200}\n",
    );
    let (code, _, stderr) = run(
        &project,
        &["policy", "test", "--env", "dev", "--cases", "cases.yaml"],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cases.yaml:") && stderr.contains("tokn"),
        "{stderr}"
    );
}

struct EvalFixture {
    project: Project,
}

const TENANT: &str = "7e5a0000-0000-4000-8000-000000000a01";
const API: &str = "0a1a0000-0000-4000-8000-0000000000a1";
const CLIENT: &str = "0c1c0000-0000-4000-8000-0000000000c1";
/// 2026-11-28T16:00:00Z
const NOW: i64 = 1_795_881_600;

fn eval_fixture() -> EvalFixture {
    let project = Project::new();
    let signer = TokenSigner::generate(&mut getrandom::SysRng, "eval-kid").unwrap();
    project.write(
        "jwks.json",
        &serde_json::to_string_pretty(&Jwks {
            keys: vec![signer.jwk()],
        })
        .unwrap(),
    );
    let out = project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let claims = json!({
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"), "aud": API, "tid": TENANT, "azp": CLIENT,
        "ver": "2.0", "oid": "o", "nbf": NOW - 60, "iat": NOW - 60, "exp": NOW + 3600,
    });
    project.write("token.txt", &signer.sign(&claims));
    EvalFixture { project }
}

#[test]
fn eval_prints_one_decision_object() {
    let f = eval_fixture();
    let args = [
        "policy",
        "eval",
        "--policy",
        "rendered/prod/llm.policy.xml",
        "--token-file",
        "token.txt",
        "--jwks",
        "jwks.json",
    ];
    let (code, stdout, _) = run(
        &f.project,
        &[
            &args[..],
            &[
                "--now",
                "2026-11-28T16:00:00Z",
                "--method",
                "POST",
                "--path",
                "/llm/x",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0);
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(out["decision"], "allow");
    assert_eq!(out["status"], 200);
    assert_eq!(out["reason"], Value::Null);
    assert_eq!(
        out["effects"][0],
        json!({"policy": "set-backend-service", "backend_id": "foundry-openai"})
    );
    assert_eq!(out["not_simulated"], json!([]));

    let (code, stdout, _) = run(
        &f.project,
        &[&args[..], &["--now", "2026-11-28T18:00:00Z"]].concat(),
    );
    assert_eq!(code, 0, "a denial is still an evaluation");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            out["decision"].as_str(),
            out["status"].as_u64(),
            out["reason"].as_str(),
            out["message"].as_str(),
            out["policy"].as_str()
        ),
        (
            Some("deny"),
            Some(401),
            Some("TokenExpired"),
            Some("Unauthorized. Access token is missing or invalid."),
            Some("validate-azure-ad-token")
        )
    );
}

#[test]
fn eval_never_prints_the_token() {
    let f = eval_fixture();
    let token = f.project.read("token.txt");
    // Flip one character in the middle of the signature.
    let at = token.len() - 10;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    let out = f
        .project
        .provision()
        .args([
            "-vv",
            "policy",
            "eval",
            "--policy",
            "rendered/prod/llm.policy.xml",
            "--token",
            &tampered,
            "--jwks",
            "jwks.json",
            "--now",
            "2026-11-28T16:00:00Z",
        ])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("TokenSignatureInvalid"), "{all}");
    for part in token.split('.') {
        assert!(!all.contains(part), "a token part leaked: {all}");
    }
}

#[test]
fn malformed_jwks_and_policy_give_positions() {
    let f = eval_fixture();
    f.project.write(
        "bad.json",
        "{\n  \"keys\": [\n    {\"kty\": \"RSA\", \"kid\": 1}\n  ]\n}\n",
    );
    let (code, _, stderr) = run(
        &f.project,
        &[
            "policy",
            "eval",
            "--policy",
            "rendered/prod/llm.policy.xml",
            "--token-file",
            "token.txt",
            "--jwks",
            "bad.json",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: bad.json:3:"), "{stderr}");
    f.project.write(
        "bad.xml",
        "<policies>\n  <inbound>\n    <base>\n  </inbound>\n</policies>\n",
    );
    let (code, _, stderr) = run(
        &f.project,
        &[
            "policy",
            "eval",
            "--policy",
            "bad.xml",
            "--token-file",
            "token.txt",
            "--jwks",
            "jwks.json",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: bad.xml:4:"), "{stderr}");
}

/// The APIM example where the service echoes a `rawxml` policy re-serialised.
fn apim_echo() -> (String, String) {
    let path = manifest_dir().join(
        "tests/fixtures/azure-rest-api-specs/specification/apimanagement/resource-manager/Microsoft.ApiManagement/stable/2024-05-01/examples/ApiManagementCreateApiPolicyNonXmlEncoded.json",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} is required: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    (
        json["parameters"]["parameters"]["properties"]["value"]
            .as_str()
            .unwrap()
            .to_owned(),
        json["responses"]["201"]["body"]["properties"]["value"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[test]
fn diff_treats_the_services_echo_as_equal() {
    let project = Project::new();
    let (sent, stored) = apim_echo();
    project.write("sent.xml", &sent);
    project.write("stored.xml", &stored);
    let (code, stdout, stderr) = run(&project, &["policy", "diff", "stored.xml", "sent.xml"]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    project.write(
        "edited.xml",
        &sent.replace("h.Ke==\"Via\"", "h.Ke==\"X-Via\""),
    );
    let (code, stdout, _) = run(&project, &["policy", "diff", "stored.xml", "edited.xml"]);
    assert_eq!(code, 2);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("inbound/set-header/value: "), "{stdout}");
}

#[test]
fn diff_names_a_removed_client_by_path() {
    let project = Project::new();
    project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered"])
        .assert()
        .code(0);
    let policy = project.read("rendered/prod/llm.policy.xml");
    // What APIM would return: CRLF, other indentation, entity-encoded quotes spelled differently.
    let stored = policy.replace('\n', "\r\n    ").replace("&quot;", "&#34;");
    project.write("stored.xml", &stored);
    let (code, stdout, _) = run(
        &project,
        &[
            "policy",
            "diff",
            "stored.xml",
            "rendered/prod/llm.policy.xml",
        ],
    );
    assert_eq!((code, stdout.as_str()), (0, ""));
    let fewer = policy.replace(
        "        <application-id>0c1c0000-0000-4000-8000-0000000000c2</application-id>\n",
        "",
    );
    project.write("fewer.xml", &fewer);
    let (code, stdout, _) = run(
        &project,
        &[
            "policy",
            "diff",
            "rendered/prod/llm.policy.xml",
            "fewer.xml",
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(
        stdout,
        "inbound/validate-azure-ad-token/client-application-ids: - 0c1c0000-0000-4000-8000-0000000000c2\n"
    );
    let (code, stdout, _) = run(
        &project,
        &[
            "policy",
            "diff",
            "rendered/prod/llm.policy.xml",
            "fewer.xml",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 2);
    let line = crate::output_contract::lines(&stdout).remove(0);
    assert_eq!(
        line,
        json!({
            "type": "difference", "path": "inbound/validate-azure-ad-token/client-application-ids", "attribute": null,
            "change": "removed", "old": "0c1c0000-0000-4000-8000-0000000000c2", "new": null,
        })
    );
}

#[test]
fn diff_of_a_malformed_file_is_an_error() {
    let project = Project::new();
    project.write("a.xml", "<policies />");
    project.write("b.xml", "<policies>\n  <inbound>\n</policies>");
    let (code, _, stderr) = run(&project, &["policy", "diff", "a.xml", "b.xml"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: b.xml:3:"), "{stderr}");
}

/// Regression: `policy eval` required `--token`, so the most basic case — a request with no token
/// at all — could not be expressed, nor a token carried by `--header` alone.
#[test]
fn eval_without_a_token_evaluates_a_request_that_has_none() {
    let f = eval_fixture();
    let policy = ["policy", "eval", "--policy", "rendered/prod/llm.policy.xml"];
    let (code, stdout, stderr) = run(
        &f.project,
        &[&policy[..], &["--now", "2026-11-28T16:00:00Z"]].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            out["decision"].as_str(),
            out["status"].as_u64(),
            out["reason"].as_str()
        ),
        (Some("deny"), Some(401), Some("TokenNotPresent"))
    );

    let token = f.project.read("token.txt");
    let header = format!("Authorization: Bearer {token}");
    let (code, stdout, stderr) = run(
        &f.project,
        &[
            &policy[..],
            &[
                "--jwks",
                "jwks.json",
                "--header",
                &header,
                "--now",
                "2026-11-28T16:00:00Z",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["decision"], "allow", "{out}");

    // A token to verify needs the keys to verify it with.
    let (code, _, stderr) = run(
        &f.project,
        &[&policy[..], &["--token-file", "token.txt"]].concat(),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("--jwks <FILE>"), "{stderr}");
}

/// Regression: a multi-byte character in `--now` panicked (exit 101) in a hand-written parser.
#[test]
fn eval_with_a_malformed_now_names_the_value() {
    let f = eval_fixture();
    let (code, stdout, stderr) = run(
        &f.project,
        &[
            "policy",
            "eval",
            "--policy",
            "rendered/prod/llm.policy.xml",
            "--now",
            "2026-11-28T16:00:00+0€0",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "error: --now: `2026-11-28T16:00:00+0€0` is not an RFC 3339 instant (write e.g. 2026-11-28T16:00:00Z or 2026-11-28T17:00:00+01:00): "
        ),
        "{stderr}"
    );
}
