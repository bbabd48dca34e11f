//! `provision schema`: the environment files' JSON Schema, checked in at
//! schema/environment.schema.json and referenced from every shipped environment file, so editors
//! complete and check keys. Regenerate with `EXPECTORATE=overwrite cargo test`, then review the diff.

use assert_cmd::Command;
use marked_yaml::{LoaderOptions, Node};
use serde_json::{Value, json};

use crate::project::{Project, manifest_dir};

const MODELINE: &str = "# yaml-language-server: $schema=../schema/environment.schema.json";

fn schema_output(args: &[&str]) -> String {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .current_dir(manifest_dir())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The checked-in schema, compiled.
fn validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(manifest_dir().join("schema/environment.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// A YAML document as an editor's YAML language server hands it to the schema: plain `true`,
/// `false` and integers are typed, everything else (and anything quoted) is a string.
fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "true" | "false") => {
            json!(s.as_str() == "true")
        }
        Node::Scalar(s) if s.may_coerce() && s.as_str().parse::<i64>().is_ok() => {
            json!(s.as_str().parse::<i64>().unwrap())
        }
        Node::Scalar(s) => json!(s.as_str()),
        Node::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

fn yaml(text: &str) -> Value {
    let options = LoaderOptions::default()
        .prevent_coercion(true)
        .toplevel_mapping();
    to_json(&marked_yaml::parse_yaml_with_options(0, text, options).unwrap())
}

/// Every schema error, as `instance path: message`.
fn errors(instance: &Value) -> Vec<String> {
    validator()
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn shipped_environment_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(manifest_dir().join("environments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn checked_in_schema_is_what_provision_schema_prints() {
    let printed = schema_output(&["schema"]);
    expectorate::assert_contents("schema/environment.schema.json", &printed);
    assert_eq!(
        schema_output(&["schema", "environment"]),
        printed,
        "`environment` is the default kind"
    );
}

#[test]
fn every_shipped_environment_file_references_the_schema_on_its_first_line() {
    let files = shipped_environment_files();
    assert_eq!(files.len(), 4);
    for (name, text) in files {
        assert_eq!(text.lines().next(), Some(MODELINE), "{name}");
    }
}

#[test]
fn every_shipped_environment_file_passes_the_schema() {
    for (name, text) in shipped_environment_files() {
        assert_eq!(errors(&yaml(&text)), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn typo_in_a_key_is_rejected_by_the_schema() {
    let (_, text) = shipped_environment_files()
        .into_iter()
        .find(|(n, _)| n == "base.yaml")
        .unwrap();
    let text = text.replacen(
        "\nlocation: swedencentral\n",
        "\nlocaton: swedencentral\n",
        1,
    );
    assert_eq!(
        errors(&yaml(&text)),
        [": Additional properties are not allowed ('locaton' was unexpected)"]
    );
}

#[test]
fn wrong_typed_and_unknown_template_variables_are_rejected_by_the_schema() {
    let (_, text) = shipped_environment_files()
        .into_iter()
        .find(|(n, _)| n == "prod.yaml")
        .unwrap();
    let text = text
        .replacen(
            "tokens_per_minute: 50000",
            "tokens_per_minute: \"50000\"",
            1,
        )
        .replacen(
            "token_quota_period: Monthly",
            "token_quota_period: Montly",
            1,
        )
        .replacen(
            "token_quota: 5000000",
            "token_quota: 5000000\n    tokens_per_minut: 1",
            1,
        );
    assert_eq!(
        errors(&yaml(&text)),
        [
            "/policy/vars/token_quota_period: \"Montly\" is not one of \"Hourly\", \"Daily\" or 3 other candidates",
            "/policy/vars/tokens_per_minute: \"50000\" is not of type \"integer\"",
            "/policy/vars: Additional properties are not allowed ('tokens_per_minut' was unexpected)",
        ]
    );
}

/// A project's own templates describe its own variables: the schema follows --templates-dir.
#[test]
fn schema_describes_the_variables_of_the_templates_in_templates_dir() {
    let project = Project::new();
    let file = "templates/policies/llm-api.vars.yaml";
    project.write(
        file,
        &format!(
            "{}\nmax_tokens:\n  type: integer\n  description: The largest completion.\n",
            project.read(file)
        ),
    );
    let out = project.provision().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["definitions"]["Policy"]["properties"]["vars"]["properties"]["max_tokens"],
        json!({ "type": "integer", "description": "The largest completion." })
    );
}

#[test]
fn schema_of_an_unknown_kind_is_a_usage_error() {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .current_dir(manifest_dir())
        .args(["--color", "never", "schema", "policy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "error: invalid value 'policy' for '[KIND]'\n  [possible values: environment, events]\n"
        ),
        "{stderr}"
    );
}
