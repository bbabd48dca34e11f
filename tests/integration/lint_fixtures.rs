//! `validate` over deliberately weak, broken and malformed templates (tests/lint/*): the exact
//! findings, in order, are reviewed golden files under tests/golden/lint/.

use assert_cmd::Command;

use crate::project::manifest_dir;

fn validate(args: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .current_dir(manifest_dir())
        .args(["--color", "never", "validate"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn shipped_environments_validate_clean() {
    let (code, stdout) = validate(&["--all"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        stdout,
        "base: ok (abstract: checked through the environments that extend it)\ndev: ok\nlocal: ok\nprod: ok\n"
    );
}

#[test]
fn weak_template_gives_exactly_its_warnings() {
    let (code, stdout) = validate(&["--env", "prod", "--templates-dir", "tests/lint/weak"]);
    assert_eq!(code, 0, "warnings alone do not fail validation");
    expectorate::assert_contents("tests/golden/lint/weak.txt", &stdout);
}

#[test]
fn broken_template_gives_exactly_its_errors() {
    let (code, stdout) = validate(&["--env", "prod", "--templates-dir", "tests/lint/broken"]);
    assert_eq!(code, 1);
    expectorate::assert_contents("tests/golden/lint/broken.txt", &stdout);
}

#[test]
fn malformed_template_gives_one_positioned_error() {
    let (code, stdout) = validate(&["--env", "prod", "--templates-dir", "tests/lint/malformed"]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "prod/llm.policy.xml:4:3: error: not well-formed XML: ill-formed document: expected `</inbound>`, but `</outbound>` was found [well-formed]\nprod: failed (1 error(s), 0 warning(s))\n"
    );
}

#[test]
fn json_findings_are_one_object_per_line() {
    let (code, stdout) = validate(&[
        "--env",
        "prod",
        "--templates-dir",
        "tests/lint/weak",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let lines = crate::output_contract::lines(&stdout);
    let findings: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "finding").collect();
    assert_eq!(findings.len(), 5);
    let tenant = findings
        .iter()
        .find(|f| f["rule"] == "token-check-tenant")
        .unwrap();
    assert_eq!(tenant["severity"], "warning");
    assert_eq!(tenant["file"], "prod/llm.policy.xml");
    assert_eq!(
        (tenant["line"].as_u64(), tenant["column"].as_u64()),
        (Some(7), Some(30))
    );
    assert_eq!(
        tenant["template"]["file"],
        "tests/lint/weak/policies/llm-api.xml.tera"
    );
    assert_eq!(tenant["template"]["line"], 8);
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert_eq!(lines.last().unwrap()["warnings"], 5);
}

#[test]
fn template_errors_are_findings_of_the_environment() {
    let project = crate::project::Project::new();
    project.write(
        "templates/policies/llm-api.xml.tera",
        "<policies>\n  {% if vars.x %}\n</policies>\n",
    );
    let out = project
        .provision()
        .args(["validate", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("error: templates/policies/llm-api.xml.tera:"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("hint: "), "{stdout}");
    assert_eq!(lines[2], "dev: failed (1 error(s), 0 warning(s))");
}
