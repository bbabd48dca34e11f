//! Resolution on in-memory files: inheritance, positions and rules, without touching the disk.

use std::collections::BTreeMap;
use std::io;

use super::*;

const BASE: &str = "abstract: true
cloud: public
tenant_id: 7e5a0000-0000-4000-8000-000000000a01
location: swedencentral
tags: {team: ai, tier: gold}
entra:
  api: {unique_name: api}
  clients:
    - unique_name: notebooks
foundry:
  account: foundry-x
  deployments:
    - name: gpt-4o-mini
      model: {name: gpt-4o-mini}
      sku: {name: GlobalStandard, capacity: 1}
apim:
  existing: {name: apim-x, resource_group: rg-x}
api: {id: llm, path: llm}
";

const CHILD: &str = "extends: base
subscription_id: 5b0b0000-0000-4000-8000-0000000000d1
resource_group: rg-child
tags: {tier: silver}
";

fn files(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = [("base", BASE), ("child", CHILD)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    map
}

fn resolve_in(files: &BTreeMap<String, String>, name: &str) -> Result<Environment, ConfigError> {
    let read = |env: &str| match files.get(env) {
        Some(text) => Ok((format!("environments/{env}.yaml"), text.clone())),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
    };
    resolve(name, &read)
}

fn target(files: &BTreeMap<String, String>, name: &str) -> Blueprint {
    match resolve_in(files, name) {
        Ok(Environment::Target(b)) => *b,
        other => panic!("expected a target, got {other:?}"),
    }
}

fn errors(files: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    match resolve_in(files, name) {
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
        Ok(other) => panic!("expected errors, got {other:?}"),
    }
}

#[test]
fn child_merges_over_parent_maps_by_key() {
    let b = target(&files(&[]), "child");
    assert_eq!(b.tags.get("team").map(String::as_str), Some("ai"));
    assert_eq!(b.tags.get("tier").map(String::as_str), Some("silver"));
    assert_eq!(b.resource_group, "rg-child");
    assert_eq!(b.foundry.kind, "AIServices");
    assert_eq!(b.apim.backend_id, "foundry");
    assert!(!b.api.subscription_required);
    assert_eq!(b.entra.api.scope, "llm.invoke");
}

#[test]
fn lists_replace_instead_of_merging() {
    let child = format!("{CHILD}entra:\n  clients:\n    - unique_name: scripts\n");
    let b = target(&files(&[("child", &child)]), "child");
    let names: Vec<&str> = b
        .entra
        .clients
        .iter()
        .map(|c| c.unique_name.as_str())
        .collect();
    assert_eq!(names, ["scripts"]);
    assert_eq!(
        b.entra.api.unique_name, "api",
        "maps still merge around the replaced list"
    );
}

#[test]
fn abstract_is_not_inherited() {
    assert!(matches!(
        resolve_in(&files(&[]), "base"),
        Ok(Environment::Abstract { .. })
    ));
    assert!(matches!(
        resolve_in(&files(&[]), "child"),
        Ok(Environment::Target(_))
    ));
}

#[test]
fn a_value_set_in_the_parent_is_reported_in_the_parent() {
    let base = BASE.replace("capacity: 1", "capacity: 0");
    assert_eq!(
        errors(&files(&[("base", &base)]), "child"),
        [
            "environments/base.yaml:15:35: foundry.deployments[0].sku.capacity: expected a positive integer"
        ]
    );
}

#[test]
fn missing_top_level_keys_name_the_environment_file() {
    let child = CHILD.replace("resource_group: rg-child\n", "");
    assert_eq!(
        errors(&files(&[("child", &child)]), "child"),
        ["environments/child.yaml: resource_group: missing required key `resource_group`"]
    );
}

#[test]
fn cycles_name_every_environment_on_them() {
    let base = format!("extends: child\n{BASE}");
    let errs = errors(&files(&[("base", &base)]), "child");
    assert_eq!(
        errs,
        ["environments/base.yaml:1:10: extends: `extends` cycle: child → base → child"]
    );
}

#[test]
fn all_rule_violations_are_reported_together() {
    let child = format!("{CHILD}tenant_id: nope\napi: {{id: 'a#b', path: /llm}}\n");
    let errs = errors(&files(&[("child", &child)]), "child");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("environments/child.yaml:5:1: tenant_id: `nope` is not a GUID"));
    assert!(errs[1].contains("api.id: API id `a#b` must not contain `#`"));
    assert!(errs[2].contains("api.path: API path `/llm` is relative"));
}

#[test]
fn existing_and_create_are_exclusive() {
    let child = format!("{CHILD}apim:\n  create: {{name: apim-demo, publisher_email: a@b.c}}\n");
    let errs = errors(&files(&[("child", &child)]), "child");
    assert_eq!(
        errs,
        [
            "environments/child.yaml:6:3: apim.create: `existing` and `create` are mutually exclusive"
        ]
    );
}

#[test]
fn reserved_tags_are_refused() {
    let child = CHILD.replace("tier: silver", "managed-by: me");
    let errs = errors(&files(&[("child", &child)]), "child");
    assert_eq!(
        errs,
        ["environments/child.yaml:4:8: tags.managed-by: tag `managed-by` is reserved"]
    );
}

#[test]
fn sandbox_address_must_be_loopback() {
    let child = format!("{CHILD}cloud: sandbox\nsandbox: {{address: '10.0.0.5:7171'}}\n");
    let errs = errors(&files(&[("child", &child)]), "child");
    assert_eq!(
        errs,
        ["environments/child.yaml:6:11: sandbox.address: `10.0.0.5` is not a loopback address"]
    );
}

#[test]
fn plain_scalars_are_typed_and_quoted_ones_are_text() {
    let child = format!("{CHILD}policy:\n  vars: {{a: 5000, b: true, c: '5000', d: [x, y]}}\n");
    let b = target(&files(&[("child", &child)]), "child");
    assert_eq!(b.policy.vars["a"], PolicyValue::Integer(5000));
    assert_eq!(b.policy.vars["b"], PolicyValue::Bool(true));
    assert_eq!(b.policy.vars["c"], PolicyValue::Text("5000".into()));
    assert_eq!(
        b.policy.vars["d"],
        PolicyValue::List(vec!["x".into(), "y".into()])
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let child = format!("{CHILD}resource_group: again\n");
    let errs = errors(&files(&[("child", &child)]), "child");
    assert_eq!(
        errs,
        ["environments/child.yaml:5:1: key `resource_group` appears twice"]
    );
}

#[test]
fn environment_names_are_checked_before_any_file_is_read() {
    let errs = errors(&files(&[]), "../etc/passwd");
    assert_eq!(errs, ["`../etc/passwd` is not a valid environment name"]);
}
