use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;
use crate::hint::Remedy;
use crate::render::TemplateSet;

fn shipped_templates() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn parse_err(text: &str) -> String {
    let e = parse("d.vars.yaml", text).unwrap_err();
    match &e {
        RenderError::Variable { hint, .. } => match hint {
            Some(h) => format!("{e}\nhint: {h}"),
            None => e.to_string(),
        },
        RenderError::Vars(config) => config
            .diagnostics
            .iter()
            .map(|d| match d.hint() {
                Some(h) => format!("{d}\nhint: {h}"),
                None => d.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn declarations_read_types_defaults_and_bounds() {
    let d = parse(
        "d.vars.yaml",
        "n:\n  type: integer\n  minimum: 1\n  description: a number\np:\n  type: enum\n  values: [A, B]\n  default: B\n  description: one of two\nr:\n  type: list\n  required: true\n  description: some\n",
    )
    .unwrap();
    assert_eq!(
        d.vars["n"],
        Declaration {
            ty: VarType::Integer { minimum: Some(1) },
            description: "a number".into(),
            default: None,
            required: false
        }
    );
    assert_eq!(d.vars["p"].default, Some(PolicyValue::Text("B".into())));
    assert_eq!(d.vars["p"].ty, VarType::Enum(vec!["A".into(), "B".into()]));
    assert!(d.vars["r"].required);
}

#[test]
fn declaration_default_of_the_wrong_type_is_refused_at_its_line() {
    assert_eq!(
        parse_err("n:\n  type: integer\n  description: a number\n  default: \"5\"\n"),
        "d.vars.yaml:4:12: n.default: expected an integer, found a string (\"5\")\nhint: quoted values are text; write 5 without quotes"
    );
}

#[test]
fn declaration_with_an_unknown_type_suggests_the_known_one() {
    assert_eq!(
        parse_err("n:\n  type: integr\n  description: a number\n"),
        "d.vars.yaml:2:9: n.type: expected one of integer, string, boolean, list, enum\nhint: did you mean `integer`?"
    );
}

#[test]
fn declaration_with_an_unknown_key_suggests_the_known_one() {
    assert_eq!(
        parse_err("n:\n  type: integer\n  descripton: a number\n"),
        "d.vars.yaml:3:3: n.descripton: unknown key `descripton`\nhint: did you mean `description`?"
    );
}

#[test]
fn declaration_without_a_description_is_refused() {
    assert_eq!(
        parse_err("n:\n  type: integer\n"),
        "d.vars.yaml:1:1: n: missing `description`\nhint: say what the variable does in the policy; editors show it"
    );
}

#[test]
fn enum_declaration_without_values_is_refused() {
    assert_eq!(
        parse_err("p:\n  type: enum\n  description: one of some\n"),
        "d.vars.yaml:1:1: p: `type: enum` needs `values`"
    );
}

#[test]
fn required_variable_with_a_default_is_refused() {
    assert_eq!(
        parse_err("n:\n  type: string\n  required: true\n  default: x\n  description: d\n"),
        "d.vars.yaml:4:12: n.default: a required variable has no default\nhint: remove `default:` or `required: true`"
    );
}

#[test]
fn variable_declared_twice_is_refused() {
    assert_eq!(
        parse_err("n:\n  type: string\n  description: d\nn:\n  type: string\n  description: d\n"),
        "d.vars.yaml:4:1: key `n` appears twice"
    );
}

/// Regression: declarations files skipped the checks every other YAML input gets, so a NUL byte
/// cut them short and deep nesting reached the recursive parser.
#[test]
fn declarations_files_go_through_the_same_yaml_checks() {
    assert!(
        parse_err("n:\n  type: string\0\n")
            .starts_with("d.vars.yaml:2:15: the file contains a NUL byte"),
        "{}",
        parse_err("n:\n  type: string\0\n")
    );
    let deep = format!("n: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    assert!(
        parse_err(&deep).starts_with("d.vars.yaml:1:"),
        "{}",
        parse_err(&deep).chars().take(200).collect::<String>()
    );
    assert!(parse_err(&deep).contains("nesting deeper than 64 levels"));
}

#[test]
fn scan_finds_reads_in_code_only() {
    let text = "{# vars.in_comment #}<a x=\"vars.literal\">{{ vars.a }}</a>{% if vars[\"b\"] and not vars.c %}{% endif %}{% raw %}{{ vars.raw }}{% endraw %}{{ \"vars.string\" }}{{ other.vars.d }}";
    let scan = scan(text);
    let names: Vec<Option<&str>> = scan.reads.iter().map(|r| r.name.as_deref()).collect();
    assert_eq!(names, [Some("a"), Some("b"), Some("c")]);
    assert_eq!(
        &text[scan.reads[0].offset..scan.reads[0].offset + 6],
        "vars.a"
    );
}

#[test]
fn scan_reports_vars_read_as_a_whole_and_references() {
    let scan = scan(
        "{% for k, v in vars %}{% endfor %}{% include \"policies/partials/x.xml.tera\" %}{%- include 'y' -%}",
    );
    assert_eq!(
        scan.reads,
        [Read {
            name: None,
            offset: 15
        }]
    );
    assert_eq!(
        scan.references.into_iter().collect::<Vec<_>>(),
        ["policies/partials/x.xml.tera", "y"]
    );
}

#[test]
fn template_reading_an_undeclared_variable_through_an_include_is_refused() {
    let set = TemplateSet::from_sources(
        Path::new("t"),
        vec![
            (
                "policies/p.xml.tera".into(),
                "t/policies/p.xml.tera".into(),
                "<p>{% include \"policies/partials/q.xml.tera\" %}</p>".into(),
            ),
            (
                "policies/partials/q.xml.tera".into(),
                "t/policies/partials/q.xml.tera".into(),
                "<q>\n  {% if vars.tokens_per_minut %}{{ vars.tokens_per_minute }}{% endif %}</q>"
                    .into(),
            ),
            (
                "policies/p.vars.yaml".into(),
                "t/policies/p.vars.yaml".into(),
                "tokens_per_minute:\n  type: integer\n  description: d\n".into(),
            ),
        ],
    )
    .unwrap();
    let err = set.check_reads("policies/p.xml.tera").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t/policies/partials/q.xml.tera:2:9: the template reads `vars.tokens_per_minut`, which t/policies/p.vars.yaml does not declare"
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("did you mean `vars.tokens_per_minute`?")
    );
}

#[test]
fn declarations_without_their_template_are_refused() {
    let err = TemplateSet::from_sources(
        Path::new("t"),
        vec![(
            "policies/gone.vars.yaml".into(),
            "t/policies/gone.vars.yaml".into(),
            "".into(),
        )],
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "t/policies/gone.vars.yaml:1:1: declares the variables of policies/gone.xml.tera, which does not exist"
    );
}

/// The shipped templates read exactly what they declare: nothing undeclared (render refuses that
/// anyway) and nothing declared but never read (a declaration nobody uses misleads the reader).
#[test]
fn every_declared_variable_of_the_shipped_templates_is_read_and_every_read_one_declared() {
    let set = TemplateSet::load(&shipped_templates()).unwrap();
    let mut checked = 0;
    for name in set.names() {
        if !name.starts_with("policies/") || name.starts_with("policies/partials/") {
            continue;
        }
        set.check_reads(name).unwrap();
        let declared: BTreeSet<&String> = set.declarations(name).unwrap().vars.keys().collect();
        let mut read = BTreeSet::new();
        let mut pending = vec![name.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(t) = pending.pop() {
            if seen.insert(t.clone())
                && let Some(text) = set.source(&t)
            {
                let scan = scan(text);
                read.extend(scan.reads.into_iter().filter_map(|r| r.name));
                pending.extend(scan.references);
            }
        }
        assert_eq!(
            declared,
            read.iter().collect::<BTreeSet<_>>(),
            "declared vs read in {name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 1, "the shipped policy templates");
}

/// templates/README.md lists each shipped variable with its declared type and default, so the
/// page people read cannot drift from the declarations the code enforces. The table between the
/// markers is generated; `EXPECTORATE=overwrite cargo test` rewrites it.
#[test]
fn templates_readme_lists_every_declared_variable_as_declared() {
    const BEGIN: &str = "<!-- generated from policies/llm-api.vars.yaml -->\n";
    const END: &str = "<!-- end of generated table -->\n";
    let set = TemplateSet::load(&shipped_templates()).unwrap();
    let path = shipped_templates().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = readme.find(END).expect("the end marker");
    let declarations = set.declarations("policies/llm-api.xml.tera").unwrap();
    let expected = format!(
        "{}{}{}",
        &readme[..start],
        readme_table(declarations),
        &readme[end..]
    );
    if std::env::var("EXPECTORATE").as_deref() == Ok("overwrite") {
        std::fs::write(&path, &expected).unwrap();
    }
    assert_eq!(
        readme, expected,
        "regenerate with EXPECTORATE=overwrite cargo test"
    );
}

fn readme_table(declarations: &Declarations) -> String {
    let mut out = String::from("| variable | type | default | what it does |\n|---|---|---|---|\n");
    for (name, d) in &declarations.vars {
        let default = match (&d.default, d.required) {
            (_, true) => "required".to_owned(),
            (Some(PolicyValue::Text(t)), _) => format!("`{t}`"),
            (Some(v), _) => format!("`{}`", to_json(v)),
            (None, _) => "unset".to_owned(),
        };
        out.push_str(&format!(
            "| `{name}` | {} | {default} | {} |\n",
            d.ty.expected(),
            d.description
        ));
    }
    out
}
