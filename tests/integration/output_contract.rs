//! What every command owes its reader, whichever command it is: `--output json` lines that fit
//! their schema, schema/events.schema.json (generated from `provision::output::events::JsonLine`
//! and checked in; regenerate with `EXPECTORATE=overwrite cargo test`, then review the diff),
//! hints printed one way, and commands that are glue. Every test that reads JSON lines reads them
//! through [`lines`], so every line the suite sees is checked against the schema.

use std::sync::OnceLock;

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::project::{Project, manifest_dir};

/// The checked-in schema, compiled once.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let text =
            std::fs::read_to_string(manifest_dir().join("schema/events.schema.json")).unwrap();
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    })
}

/// Why `line` does not fit the schema, or `None` when it does.
fn violations(line: &Value) -> Option<String> {
    let errors: Vec<String> = validator()
        .iter_errors(line)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("\n"))
}

/// The lines of a command's `--output json` stdout, each parsed and checked against the schema.
pub fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| {
            let value: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if let Some(why) = violations(&value) {
                panic!("a line does not fit schema/events.schema.json:\n{l}\n{why}");
            }
            value
        })
        .collect()
}

fn stdout_of(project: &Project, args: &[&str]) -> (Option<i32>, String) {
    let out = project.provision().args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn events_schema_is_generated_from_the_code() {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .current_dir(manifest_dir())
        .args(["schema", "events"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    expectorate::assert_contents(
        "schema/events.schema.json",
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn a_line_missing_a_field_or_of_an_unknown_type_does_not_fit_the_schema() {
    let error = json!({"type": "error", "message": "m", "hint": null});
    assert_eq!(violations(&error), None);
    // Every field is printed, null when it has no value.
    assert!(violations(&json!({"type": "error", "message": "m"})).is_some());
    assert!(violations(&json!({"type": "error", "message": "m", "hint": null, "x": 1})).is_some());
    assert!(violations(&json!({"type": "errors", "message": "m", "hint": null})).is_some());
    let clock =
        json!({"type": "sandbox_clock", "now": "2025-01-01T00:00:00Z", "offset_seconds": 60});
    assert_eq!(violations(&clock), None);
}

/// Regression: the generated schema allowed no `event` beside a progress line's shared fields,
/// so no progress line fitted it.
#[test]
fn progress_lines_fit_the_schema_of_their_event() {
    let started = json!({"type": "progress", "event": "started", "kind": "api_app",
                         "name": "a", "at_ms": 0});
    assert_eq!(violations(&started), None);
    let done = json!({"type": "progress", "event": "done", "kind": "api_app", "name": "a",
                      "at_ms": 9, "writes": 2, "elapsed_ms": 9});
    assert_eq!(violations(&done), None);
    let mut started_with_writes = started.clone();
    started_with_writes["writes"] = json!(2);
    assert!(violations(&started_with_writes).is_some());
    let mut done_without_writes = done.clone();
    done_without_writes
        .as_object_mut()
        .unwrap()
        .remove("writes");
    assert!(violations(&done_without_writes).is_some());
}

#[test]
fn every_offline_command_prints_lines_that_fit_the_schema() {
    let project = Project::new();
    let out = project.path("out").display().to_string();
    let runs: [(&[&str], Option<i32>, &[&str]); 9] = [
        (
            &["render", "--env", "dev", "--offline"],
            Some(0),
            &["policy"],
        ),
        (
            &["render", "--env", "prod", "--out", &out],
            Some(0),
            &["written"],
        ),
        (
            &["render", "--env", "prod", "--out", &out, "--check"],
            Some(0),
            &["in_sync"],
        ),
        (
            &[
                "render",
                "--env",
                "dev",
                "--offline",
                "--out",
                &out,
                "--check",
            ],
            Some(1),
            &["difference"],
        ),
        (
            &["validate", "--all"],
            Some(0),
            &[
                "environment",
                "environment",
                "environment",
                "environment",
                "summary",
            ],
        ),
        (&["policy", "test", "--env", "dev"], Some(0), &["case"]),
        (&["plan", "--env", "nonexistent"], Some(1), &["error"]),
        (
            &["validate", "--env", "nonexistent"],
            Some(1),
            &["finding", "environment", "summary"],
        ),
        (&["whoami", "--env", "base"], Some(1), &["error"]),
    ];
    for (args, code, types) in runs {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let (status, stdout) = stdout_of(&project, &args);
        assert_eq!(status, code, "{args:?}: {stdout}");
        let seen: Vec<String> = lines(&stdout)
            .iter()
            .map(|l| l["type"].as_str().unwrap().to_owned())
            .collect();
        for t in types {
            assert!(
                seen.iter().any(|s| s == t),
                "{args:?}: no `{t}` line in {seen:?}"
            );
        }
    }
}

#[test]
fn policy_diff_lines_fit_the_schema() {
    let project = Project::new();
    project.write("a.xml", "<policies><inbound><base /></inbound></policies>");
    project.write(
        "b.xml",
        "<policies><inbound><base /><set-header name=\"x\" exists-action=\"override\"><value>1</value></set-header></inbound></policies>",
    );
    let (status, stdout) = stdout_of(
        &project,
        &["policy", "diff", "a.xml", "b.xml", "--output", "json"],
    );
    assert_eq!(status, Some(2));
    let lines = lines(&stdout);
    assert_eq!(lines[0]["type"], "difference");
    assert_eq!(lines[0]["change"], "added");
}

/// Rust files below `dir`, with their text up to the unit tests.
fn code_below(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![manifest_dir().join(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap().to_owned();
                out.push((path.display().to_string(), code));
            }
        }
    }
    out
}

/// Regression: commands held the policy test harness, the critical-path report and the sign-in
/// preamble; a command file now parses, calls and prints.
#[test]
fn no_command_file_is_over_150_lines() {
    let long: Vec<String> = code_below("src/commands")
        .into_iter()
        .filter(|(_, code)| code.lines().count() > 150)
        .map(|(file, code)| format!("{file}: {} lines", code.lines().count()))
        .collect();
    assert_eq!(long, Vec::<String>::new());
}

/// Regression: output lines were `json!` literals in six files, each documenting its own fields.
#[test]
fn no_output_line_is_a_json_literal() {
    let mut literals: Vec<String> = Vec::new();
    for dir in ["src/commands", "src/output"] {
        for (file, code) in code_below(dir) {
            if code.contains("json!(") {
                literals.push(file);
            }
        }
    }
    assert_eq!(literals, Vec::<String>::new());
}

/// Regression: `validate` printed its hints indented (`  hint:`), every other command not.
#[test]
fn validate_prints_its_hints_as_every_error_is_printed() {
    let project = Project::new();
    let base = project.read("environments/base.yaml");
    project.write(
        "environments/base.yaml",
        &base.replace("\nlocation:", "\nlocaton:"),
    );
    let line = base
        .lines()
        .position(|l| l.starts_with("location:"))
        .unwrap()
        + 1;
    let error = format!(
        "error: environments/base.yaml:{line}:1: locaton: unknown key `locaton`\n\
         hint: did you mean `location`?\n"
    );
    let out = project
        .provision()
        .args(["validate", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{error}dev: failed (1 error(s), 0 warning(s))\n")
    );
    let out = project
        .provision()
        .args(["plan", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), error);
}

/// Regression: `render --check` wrote its `hint:` line by hand, apart from every other hint.
#[test]
fn render_check_ends_with_the_same_hint_line() {
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
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "hint: run `provision render --env prod --out rendered` and commit the result\n"
    );
}
