//! `render --out` and `render --check`, the GitOps gate.

use crate::project::Project;

#[test]
fn out_writes_env_and_api_id_file_and_check_passes_on_it() {
    let project = Project::new();
    project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered"])
        .assert()
        .code(0);
    let written = project.read("rendered/prod/llm.policy.xml");
    let stdout = project
        .provision()
        .args(["render", "--env", "prod"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(written.as_bytes(), stdout.as_slice());
    project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered", "--check"])
        .assert()
        .code(0);
}

#[test]
fn check_lists_every_differing_file_and_exits_1() {
    let project = Project::new();
    project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered"])
        .assert()
        .code(0);
    let edited = project
        .read("rendered/prod/llm.policy.xml")
        .replace("tokens-per-minute=\"50000\"", "tokens-per-minute=\"1\"");
    project.write("rendered/prod/llm.policy.xml", &edited);
    project.write("rendered/prod/old-api.policy.xml", "<policies />\n");
    let out = project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("rendered/prod/llm.policy.xml: differs: line 13:"),
        "{stdout}"
    );
    assert!(lines[0].contains("tokens-per-minute=\\\"1\\\""), "{stdout}");
    assert_eq!(
        lines[1],
        "rendered/prod/old-api.policy.xml: differs: stale: no longer produced by the templates"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let project = Project::new();
    let out = project
        .provision()
        .args(["render", "--env", "prod", "--out", "rendered", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "rendered/prod/llm.policy.xml: differs: missing: not rendered yet\n"
    );
}

#[test]
fn json_output_carries_the_policy() {
    let project = Project::new();
    let out = project
        .provision()
        .args(["render", "--env", "dev", "--offline", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = crate::output_contract::lines(&String::from_utf8(out.stdout).unwrap()).remove(0);
    assert_eq!(line["type"], "policy");
    assert_eq!(line["file"], "dev/llm.policy.xml");
    assert_eq!(line["placeholders"].as_array().unwrap().len(), 2);
    assert!(line["xml"].as_str().unwrap().starts_with("<policies>\n"));
}

#[test]
fn an_environment_may_bring_its_own_templates() {
    let project = Project::new();
    project.write(
        "custom/policies/llm-api.xml.tera",
        "<policies><inbound><base /></inbound></policies>\n",
    );
    // The environment's `policy.vars` must be declared by the template it uses.
    project.write(
        "custom/policies/llm-api.vars.yaml",
        &project.read("templates/policies/llm-api.vars.yaml"),
    );
    let prod = project
        .read("environments/prod.yaml")
        .replace("policy:\n", "policy:\n  templates_dir: custom\n");
    project.write("environments/prod.yaml", &prod);
    let out = project
        .provision()
        .args(["render", "--env", "prod"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "<policies><inbound><base /></inbound></policies>\n"
    );
}
