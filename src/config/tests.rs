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

#[test]
fn nul_byte_in_a_comment_is_refused_not_taken_for_the_end_of_the_file() {
    let child = format!("{CHILD}# reviewed\0\nprotected: true\n");
    assert_eq!(
        errors(&files(&[("child", &child)]), "child"),
        ["environments/child.yaml:5:11: the file contains a NUL byte"]
    );
}

#[test]
fn forty_thousand_policy_vars_are_refused_in_linear_time() {
    let vars: String = (0..40_000).map(|i| format!("    v{i}: {i}\n")).collect();
    let child = format!("{CHILD}policy:\n  vars:\n{vars}");
    let started = std::time::Instant::now();
    let errs = errors(&files(&[("child", &child)]), "child");
    let elapsed = started.elapsed();
    assert_eq!(
        errs,
        [
            "environments/child.yaml:6:3: policy.vars: 40000 template variables; at most 256 are allowed"
        ]
    );
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
}

#[test]
fn two_hundred_policy_vars_are_each_looked_up_once() {
    let vars: String = (0..200).map(|i| format!("    v{i}: {i}\n")).collect();
    let child = format!("{CHILD}policy:\n  vars:\n{vars}");
    let b = target(&files(&[("child", &child)]), "child");
    assert_eq!(b.policy.vars.len(), 200);
    assert_eq!(b.policy.vars["v199"], PolicyValue::Integer(199));
}

#[test]
fn cases_files_and_fault_scripts_share_the_input_checks() {
    type Doc = BTreeMap<String, serde_json::Value>;
    let err = |text: &str| parse_yaml_document::<Doc>("c.yaml", text).unwrap_err();
    assert_eq!(
        err("cases: []\n# x\0\n"),
        "c.yaml:2:4: the file contains a NUL byte\n2 | # x␀\n  |    ^\nhint: YAML files are text; remove the NUL byte (an editor or a bad copy put it there): everything after it would be lost"
    );
    assert!(
        err("cases: []\n---\ncases: [x]\n")
            .starts_with("c.yaml:2:1: a second YAML document starts here\n")
    );
    assert!(
        err(&format!("cases: {}\n", "[".repeat(100_000)))
            .starts_with("c.yaml:1:71: nesting deeper than 64 levels\n")
    );
    let doc: Doc = parse_yaml_document("c.yaml", "\u{feff}# c\ncases: []\n").unwrap();
    assert_eq!(doc.len(), 1);
}

#[test]
fn a_secret_on_a_broken_line_is_masked_in_the_quoted_line() {
    type Doc = BTreeMap<String, serde_json::Value>;
    let err = parse_yaml_document::<Doc>("c.yaml", "a: 1\nclient_secret s3cr3t-value\nb: 2\n")
        .unwrap_err();
    assert_eq!(
        err,
        "c.yaml:2:1: invalid YAML: could not find expected ':'\n2 | client_secret ************\n  | ^\nhint: a key and its value are written `key: value`, with a space after the colon"
    );
}

mod properties {
    //! Random and adversarial inputs for the environment loader and the shared YAML parser: no
    //! panic, an answer (Ok, or Err with a message) for every input, and quickly.

    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use marked_yaml::{LoaderOptions, Node};
    use proptest::prelude::*;

    use super::*;

    /// Far above what any of these inputs needs (milliseconds), far below a hang.
    const PER_CASE: Duration = Duration::from_secs(3);

    fn check_both(text: &str) {
        let started = Instant::now();
        let mut map = files(&[]);
        map.insert("fuzz".to_owned(), text.to_owned());
        match resolve_in(&map, "fuzz") {
            Ok(_) => {}
            Err(e) => assert!(
                !e.diagnostics.is_empty() && e.diagnostics.iter().all(|d| !d.message.is_empty())
            ),
        }
        let parsed = parse_yaml_document::<BTreeMap<String, serde_json::Value>>("fuzz.yaml", text);
        if let Err(message) = parsed {
            assert!(!message.is_empty());
        }
        let elapsed = started.elapsed();
        assert!(elapsed < PER_CASE, "{elapsed:?} for {} bytes", text.len());
    }

    fn adversarial() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                1usize..20_000,
                prop::sample::select(vec!["[", "{", "- ", "a:\n ", "? "])
            )
                .prop_map(|(n, unit)| format!("k: {}", unit.repeat(n))),
            (1usize..3_000).prop_map(|n| (0..n)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect()),
            (1usize..200_000).prop_map(|n| format!("k: {}\n", "x".repeat(n))),
            (1usize..5_000).prop_map(|n| format!("{}: v\n", "k".repeat(n))),
            (0usize..200, any::<String>()).prop_map(|(at, s)| {
                let mut t = format!("{CHILD}{s}");
                let at = (0..=at.min(t.len()))
                    .rev()
                    .find(|i| t.is_char_boundary(*i))
                    .unwrap_or(0);
                t.insert(at, '\0');
                t
            }),
            any::<String>().prop_map(|s| format!("\u{feff}{s}")),
            (1usize..500).prop_map(|n| "a: 1\n---\n".repeat(n)),
            (1usize..12).prop_map(|n| {
                // A "billion laughs": each level aliases the previous one ten times.
                let mut t = String::from("l0: &l0 [lol]\n");
                for i in 1..=n {
                    let refs = vec![format!("*l{}", i - 1); 10].join(", ");
                    t.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
                }
                t
            }),
            "[ \\[\\]{}:,#&*!|>'\"\\-?\\n a-z0-9\\x00\\t]{0,400}",
        ]
    }

    /// The nesting of a parsed tree, without recursion.
    fn depth(root: &Node) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(root, 1)];
        while let Some((node, d)) = stack.pop() {
            match node {
                Node::Mapping(m) => {
                    deepest = deepest.max(d);
                    stack.extend(m.values().map(|v| (v, d + 1)));
                }
                Node::Sequence(s) => {
                    deepest = deepest.max(d);
                    stack.extend(s.iter().map(|v| (v, d + 1)));
                }
                Node::Scalar(_) => {}
            }
        }
        deepest
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_get_an_answer_quickly(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
            check_both(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn adversarial_inputs_get_an_answer_quickly(text in adversarial()) {
            check_both(&text);
        }

        /// The pre-scan stands between deep inputs and the recursive parser, so it must never
        /// measure less than the parser builds.
        #[test]
        fn the_pre_scan_never_underestimates_the_depth(
            tokens in prop::collection::vec(
                prop::sample::select(vec![
                    "- ", "? ", ": ", "a: ", "b: ", "[", "]", "{", "}", ", ", "\n", "  ", " ",
                    "'", "\"", "x", " #", "|", ">", "&a ", "*a", "---\n", "k:\n", "\n- ", "\n    ", "\n  - ", "- - ", "a: b\n",
                ]),
                0..60,
            )
        ) {
            let text: String = tokens.concat();
            let options = LoaderOptions::default().prevent_coercion(true);
            if let Ok(node) = marked_yaml::parse_yaml_with_options(0, &text, options) {
                let scanned = super::super::shape::scan(&text, usize::MAX);
                if let Ok(shape) = scanned {
                    // An empty text is an empty top-level mapping: depth 1 with nothing to scan.
                    prop_assert!(shape.depth.max(1) >= depth(&node), "{text:?}: scanned {} < {}", shape.depth, depth(&node));
                }
            }
        }
    }
}
