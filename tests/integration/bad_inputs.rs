//! One bad input per test, through the real binary: exit code 1 and a message that says where
//! (`file:line:col`), what (the key path and the rule) and, where we know it, what to do (`hint:`).
//! Every test starts from a fresh copy of the shipped environments and templates and breaks exactly
//! one thing in it; expected lines and columns are computed from the text the test wrote.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// A throw-away working directory holding copies of `environments/` and `templates/`.
struct Workspace {
    dir: TempDir,
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

impl Workspace {
    fn new() -> Workspace {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &shipped.join("environments"),
            &dir.path().join("environments"),
        );
        copy_dir(&shipped.join("templates"), &dir.path().join("templates"));
        Workspace { dir }
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).unwrap()
    }

    fn write(&self, relative: &str, text: &str) {
        std::fs::write(self.dir.path().join(relative), text).unwrap();
    }

    /// Replaces the one occurrence of `from` in a file; returns the file's new text.
    fn replace(&self, relative: &str, from: &str, to: &str) -> String {
        let text = self.read(relative);
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur exactly once in {relative}"
        );
        let text = text.replacen(from, to, 1);
        self.write(relative, &text);
        text
    }

    /// Runs `provision --color never <args>` in the workspace.
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::cargo_bin("provision")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .args(["--color", "never"])
            .args(args)
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Run {
    /// Exit 1, nothing on stdout, and exactly `stderr` on stderr.
    fn fails_with(&self, stderr: &str) {
        assert_eq!(self.code, Some(1), "stderr: {}", self.stderr);
        assert_eq!(self.stdout, "", "nothing may reach stdout on failure");
        assert_eq!(self.stderr, stderr);
    }
}

/// 1-based `(line, column)` of the one occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "`{needle}` must occur exactly once"
    );
    let at = text.find(needle).unwrap();
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |n| n + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

/// `file:line:col` of `needle` in `text`, the file being `file`.
fn at(file: &str, text: &str, needle: &str) -> String {
    let (line, column) = position(text, needle);
    format!("{file}:{line}:{column}")
}

const BASE: &str = "environments/base.yaml";
const DEV: &str = "environments/dev.yaml";
const PROD: &str = "environments/prod.yaml";
const POLICY_TEMPLATE: &str = "templates/policies/llm-api.xml.tera";

const SECRET_HINT: &str = "hint: remove it; provision authenticates through the credential chain (Azure CLI login, workload identity, managed identity, or AZURE_CLIENT_SECRET in the environment)\n";

#[test]
fn unknown_key_with_a_typo_suggests_the_known_one() {
    let ws = Workspace::new();
    let text = ws.replace(
        BASE,
        "\nlocation: swedencentral\n",
        "\nlocaton: swedencentral\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: locaton: unknown key `locaton`\nhint: did you mean `location`?\n",
        at(BASE, &text, "locaton:")
    ));
}

#[test]
fn unknown_key_in_a_list_item_names_the_item_index() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "      display_name: LLM Gateway notebooks\n",
        "      display_nam: LLM Gateway notebooks\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: entra.clients[0].display_nam: unknown key `display_nam`\nhint: did you mean `display_name`?\n",
        at(PROD, &text, "display_nam:")
    ));
}

#[test]
fn unknown_key_unlike_any_known_one_lists_the_known_keys() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "      display_name: LLM Gateway scripts & batch jobs\n",
        "      display_name: LLM Gateway scripts & batch jobs\n      colour: blue\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: entra.clients[1].colour: unknown key `colour`\nhint: known keys here: unique_name, display_name, redirect_uris, app_id\n",
        at(PROD, &text, "colour:")
    ));
}

#[test]
fn tenant_id_that_is_not_a_guid_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(
        BASE,
        "tenant_id: 7e5a0000-0000-4000-8000-000000000a01\n",
        "tenant_id: 7e5a0000-0000-4000-8000-000000000a0\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: tenant_id: `7e5a0000-0000-4000-8000-000000000a0` is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n",
        at(BASE, &text, "tenant_id:")
    ));
}

#[test]
fn client_app_id_that_is_not_a_guid_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "app_id: 0c1c0000-0000-4000-8000-0000000000c1\n",
        "app_id: 0c1c0000-0000-4000-8000-0000000000cg\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: entra.clients[0].app_id: `0c1c0000-0000-4000-8000-0000000000cg` is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n",
        at(PROD, &text, "app_id: 0c1c0000-0000-4000-8000-0000000000cg")
    ));
}

#[test]
fn account_name_starting_with_a_hyphen_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(PROD, "  account: llmgw-foundry-prod\n", "  account: -bad\n");
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: foundry.account: Cognitive Services account name `-bad` must start with a letter or digit and contain only letters, digits, `_`, `.` and `-`\n",
        at(PROD, &text, "account:")
    ));
}

#[test]
fn account_name_with_an_underscore_is_not_a_valid_subdomain() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "  account: llmgw-foundry-prod\n",
        "  account: llmgw_foundry_prod\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: foundry.account: account name `llmgw_foundry_prod` is also its custom subdomain, a DNS label: only letters, digits and inner `-`\n",
        at(PROD, &text, "account:")
    ));
}

#[test]
fn resource_group_ending_with_a_dot_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "resource_group: rg-llm-gateway-prod\n",
        "resource_group: rg-llm-gateway-prod.\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: resource_group: resource group name `rg-llm-gateway-prod.` must not end with `.`\n",
        at(PROD, &text, "resource_group: rg-llm-gateway-prod.")
    ));
}

#[test]
fn api_id_with_a_hash_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(BASE, "  id: llm\n", "  id: llm#1\n");
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: api.id: API id `llm#1` must not contain `#` (forbidden: * # & + : < > ? / and spaces)\n",
        at(BASE, &text, "id: llm#1")
    ));
}

#[test]
fn api_path_starting_with_a_slash_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(BASE, "  path: llm\n", "  path: /llm\n");
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: api.path: API path `/llm` is relative to the gateway URL: no leading, trailing or doubled `/`\n",
        at(BASE, &text, "path: /llm")
    ));
}

#[test]
fn apim_service_name_ending_with_a_hyphen_is_refused() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "    name: apim-platform-prod\n",
        "    name: apim-platform-prod-\n",
    );
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: apim.existing.name: API Management service name `apim-platform-prod-` must start with a letter, contain only letters, digits and `-`, and not end with `-`\n",
        at(PROD, &text, "name: apim-platform-prod-")
    ));
}

#[test]
fn extends_cycle_names_the_cycle_at_the_extends_that_closes_it() {
    let ws = Workspace::new();
    let text = ws.replace(BASE, "abstract: true\n", "abstract: true\nextends: dev\n");
    let (line, column) = position(&text, "extends: dev");
    ws.run(&["render", "--env", "dev"]).fails_with(&format!(
        "error: {BASE}:{line}:{}: extends: `extends` cycle: dev → base → dev\nhint: an environment cannot extend itself, directly or through its parents; remove one `extends:`\n",
        column + "extends: ".len()
    ));
}

#[test]
fn missing_parent_points_at_the_extends_value() {
    let ws = Workspace::new();
    let text = ws.replace(DEV, "extends: base\n", "extends: nope\n");
    ws.run(&["render", "--env", "dev", "--offline"])
        .fails_with(&format!(
            "error: {}: extends: parent environment `nope` does not exist\nhint: create environments/nope.yaml or fix the name after `extends:`\n",
            at(DEV, &text, "nope")
        ));
}

#[test]
fn secret_key_is_refused_with_the_credential_chain_hint() {
    let ws = Workspace::new();
    let text = ws.replace(
        PROD,
        "      display_name: LLM Gateway notebooks\n",
        "      display_name: LLM Gateway notebooks\n      client_secret: s3cr3t-VALUE\n",
    );
    let run = ws.run(&["render", "--env", "prod"]);
    run.fails_with(&format!(
        "error: {}: entra.clients[0].client_secret: `client_secret` looks like a secret; secrets do not belong in environment files\n{SECRET_HINT}",
        at(PROD, &text, "client_secret:")
    ));
    assert!(!run.stderr.contains("s3cr3t-VALUE"), "the secret is echoed");
}

#[test]
fn jwt_value_is_refused_whatever_its_key() {
    let ws = Workspace::new();
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl";
    let text = ws.replace(
        PROD,
        "  environment: production\n",
        &format!("  environment: {jwt}\n"),
    );
    let run = ws.run(&["render", "--env", "prod"]);
    run.fails_with(&format!(
        "error: {}: tags.environment: this value is a JSON Web Token; tokens do not belong in environment files\n{SECRET_HINT}",
        at(PROD, &text, jwt)
    ));
    assert!(!run.stderr.contains(jwt), "the token is echoed");
}

#[test]
fn zero_deployment_capacity_is_not_a_positive_integer() {
    let ws = Workspace::new();
    let text = ws.replace(PROD, "        capacity: 50\n", "        capacity: 0\n");
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: foundry.deployments[0].sku.capacity: expected a positive integer\n",
        at(PROD, &text, "capacity: 0")
    ));
}

#[test]
fn negative_deployment_capacity_is_not_a_positive_integer() {
    let ws = Workspace::new();
    let text = ws.replace(PROD, "        capacity: 50\n", "        capacity: -5\n");
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: foundry.deployments[0].sku.capacity: expected a positive integer\n",
        at(PROD, &text, "capacity: -5")
    ));
}

#[test]
fn empty_client_list_is_refused() {
    let ws = Workspace::new();
    let prod = ws.read(PROD);
    let start = prod.find("  clients:\n").unwrap();
    let end = prod.find("\nfoundry:").unwrap();
    let text = format!("{}  clients: []\n{}", &prod[..start], &prod[end..]);
    ws.write(PROD, &text);
    ws.run(&["render", "--env", "prod"]).fails_with(&format!(
        "error: {}: entra.clients: at least one client application is required\nhint: the policy pins client application ids, and APIM rejects validate-azure-ad-token without one\n",
        at(PROD, &text, "clients:")
    ));
}

#[test]
fn template_syntax_error_names_the_template_file_and_line() {
    let ws = Workspace::new();
    let template = "<policies>\n  <inbound>\n    <base />\n    <check tenant=\"{{ tenant_id \" />\n  </inbound>\n</policies>\n";
    ws.write(POLICY_TEMPLATE, template);
    let (line, _) = position(template, "{{ tenant_id");
    let run = ws.run(&["render", "--env", "prod"]);
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    let prefix = format!("error: {POLICY_TEMPLATE}:{line}:");
    assert!(lines[0].starts_with(&prefix), "{}", run.stderr);
    assert!(
        lines[0].contains(": template syntax error: "),
        "{}",
        run.stderr
    );
    assert_eq!(
        lines[1],
        "hint: check the tag at that position; if it is an APIM named value `{{name}}`, wrap it in {% raw %}…{% endraw %} (Tera uses the same braces)"
    );
}

#[test]
fn xml_special_characters_in_a_value_are_escaped() {
    let ws = Workspace::new();
    ws.replace(
        BASE,
        "failed_validation_message: \"Unauthorized. Access token is missing or invalid.\"",
        "failed_validation_message: \"Denied <&\\\"'> here\"",
    );
    let run = ws.run(&["render", "--env", "prod"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(
        run.stdout.contains(
            " failed-validation-error-message=\"Denied &lt;&amp;&quot;&apos;&gt; here\" "
        ),
        "{}",
        run.stdout
    );
    // Well-formed from the first byte to the last.
    let mut reader = quick_xml::Reader::from_str(&run.stdout);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("rendered policy is not well-formed: {e}\n{}", run.stdout),
        }
    }
}

#[test]
fn missing_environment_is_refused() {
    let ws = Workspace::new();
    ws.run(&["render", "--env", "nope"]).fails_with(
        "error: environment `nope` does not exist\nhint: the environments here are base, dev, local, prod (files <name>.yaml in --env-dir)\n",
    );
    // With no environment files at all, the hint says what one is.
    ws.run(&["render", "--env", "nope", "--env-dir", "templates"])
        .fails_with(
            "error: environment `nope` does not exist\nhint: environments are files named environments/<name>.yaml; see --env-dir\n",
        );
}

#[test]
fn abstract_environment_cannot_be_rendered() {
    let ws = Workspace::new();
    ws.run(&["render", "--env", "base"]).fails_with(&format!(
        "error: {BASE}: environment `base` is abstract (`abstract: true`): it exists to be extended\nhint: name an environment that extends it, e.g. --env dev\n"
    ));
}

#[test]
fn unpinned_app_ids_need_offline_to_render() {
    let ws = Workspace::new();
    ws.run(&["render", "--env", "dev"]).fails_with(&format!(
        "error: {DEV}: the policy pins app ids that are not known: entra.api.app_id (llm-gateway-api-dev), entra.clients[0].app_id (llm-gateway-notebooks-dev)\nhint: once `provision up` has run, pass --live to render with the deployed apps' ids (the policy `up` stores); else --offline to render them as placeholders for review, or pin `app_id:` for apps that already exist\n"
    ));
    let offline = ws.run(&["render", "--env", "dev", "--offline"]);
    assert_eq!(offline.code, Some(0), "stderr: {}", offline.stderr);
}

#[test]
fn usage_errors_exit_1_not_2() {
    let ws = Workspace::new();
    for args in [
        &["render"][..],
        &["render", "--env", "prod", "--no-such-flag"],
        &["render", "--env", "prod", "--check"],
        &["validate"],
        &["no-such-command"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("\nUsage: provision"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = ws.run(&["render"]);
    assert!(
        run.stderr.starts_with(
            "error: the following required arguments were not provided:\n  --env <ENV>\n"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn help_is_not_a_usage_error() {
    let run = Workspace::new().run(&["render", "--help"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("--offline"), "{}", run.stdout);
}

/// The JSON lines `validate --output json` prints on stdout.
fn json_lines(run: &Run) -> Vec<Value> {
    crate::output_contract::lines(&run.stdout)
}

#[test]
fn validate_json_reports_an_unknown_key_as_an_error_finding() {
    let ws = Workspace::new();
    let text = ws.replace(
        BASE,
        "\nlocation: swedencentral\n",
        "\nlocaton: swedencentral\n",
    );
    let (line, column) = position(&text, "locaton:");
    let run = ws.run(&["validate", "--output", "json", "--env", "prod"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let lines = json_lines(&run);
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let finding = &lines[0];
    assert_eq!(finding["type"], "finding");
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["env"], "prod");
    assert_eq!(finding["path"], "locaton");
    assert_eq!(finding["file"], BASE);
    assert_eq!(finding["line"], line);
    assert_eq!(finding["column"], column);
    assert_eq!(finding["message"], "unknown key `locaton`");
    assert_eq!(finding["hint"], "did you mean `location`?");
    assert_eq!(lines[1]["type"], "environment");
    assert_eq!(lines[1]["status"], "failed");
    assert_eq!(lines[2]["type"], "summary");
    assert_eq!(lines[2]["errors"], 1);
}

#[test]
fn validate_json_reports_a_bad_nested_value_with_its_key_path() {
    let ws = Workspace::new();
    let text = ws.replace(PROD, "        capacity: 50\n", "        capacity: 0\n");
    let (line, column) = position(&text, "capacity: 0");
    let run = ws.run(&["validate", "--output", "json", "--env", "prod"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let lines = json_lines(&run);
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let finding = &lines[0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["path"], "foundry.deployments[0].sku.capacity");
    assert_eq!(finding["file"], PROD);
    assert_eq!(finding["line"], line);
    assert_eq!(finding["column"], column);
    assert_eq!(finding["message"], "expected a positive integer");
    assert_eq!(finding["hint"], Value::Null);
    assert_eq!(lines[1]["errors"], 1);
}
