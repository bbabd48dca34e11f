//! `policy.vars` against the template's declarations (templates/policies/llm-api.vars.yaml),
//! through the real binary: a typo or a wrong type is an error at the line the user wrote, for every
//! command that renders, and a template may read only what it declares.

use crate::project::Project;

/// `file:line:col` of the one occurrence of `needle` in `text`.
fn at(file: &str, text: &str, needle: &str) -> String {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "`{needle}` must occur once"
    );
    let before = &text[..text.find(needle).unwrap()];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |n| n + 1)..]
        .chars()
        .count()
        + 1;
    format!("{file}:{line}:{column}")
}

/// `file:line:col` just after the one occurrence of `prefix` in `text` (a value after its key).
fn after(file: &str, text: &str, prefix: &str) -> String {
    let (line, column) = {
        let found = at(file, text, prefix);
        let mut parts = found.rsplit(':');
        let column: usize = parts.next().unwrap().parse().unwrap();
        let line: usize = parts.next().unwrap().parse().unwrap();
        (line, column)
    };
    format!("{file}:{line}:{}", column + prefix.chars().count())
}

/// Replaces the one occurrence of `from` in a project file; returns the new text.
fn replace(project: &Project, file: &str, from: &str, to: &str) -> String {
    let text = project.read(file);
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in {file}"
    );
    let text = text.replacen(from, to, 1);
    project.write(file, &text);
    text
}

/// (exit code, stdout, stderr) of `provision <args>` in the project.
fn run(project: &Project, args: &[&str]) -> (Option<i32>, String, String) {
    let out = project.provision().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const DEV: &str = "environments/dev.yaml";
const BASE: &str = "environments/base.yaml";
const PROD: &str = "environments/prod.yaml";

#[test]
fn typo_in_policy_vars_is_an_unknown_template_variable_for_every_command() {
    let project = Project::new();
    let text = replace(
        &project,
        DEV,
        "    tokens_per_minute: 5000\n",
        "    tokens_per_minut: 5000\n",
    );
    let expected = format!(
        "error: {}: policy.vars.tokens_per_minut: unknown template variable\nhint: did you mean `tokens_per_minute`?\n",
        at(DEV, &text, "tokens_per_minut:")
    );
    for args in [
        &["render", "--env", "dev", "--offline"][..],
        &["plan", "--env", "dev"],
        &["up", "--env", "dev", "--yes"],
        &["policy", "test", "--env", "dev"],
    ] {
        assert_eq!(
            run(&project, args),
            (Some(1), String::new(), expected.clone()),
            "{args:?}"
        );
    }
    // `validate` reports findings on stdout, every one of them, with the hint indented.
    let (code, stdout, _) = run(&project, &["validate", "--env", "dev"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        format!(
            "error: {}: policy.vars.tokens_per_minut: unknown template variable\nhint: did you mean `tokens_per_minute`?\ndev: failed (1 error(s), 0 warning(s))\n",
            at(DEV, &text, "tokens_per_minut:")
        )
    );
}

#[test]
fn unknown_template_variable_unlike_any_declared_one_lists_the_declared_ones() {
    let project = Project::new();
    let text = replace(
        &project,
        DEV,
        "    tokens_per_minute: 5000\n",
        "    tokens_per_minute: 5000\n    colour: blue\n",
    );
    let (code, _, stderr) = run(&project, &["render", "--env", "dev", "--offline"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}: policy.vars.colour: unknown template variable\nhint: `llm-api` declares: estimate_prompt_tokens, failed_validation_message, required_roles, token_limit_counter, token_quota, token_quota_period, tokens_per_minute (templates/policies/llm-api.vars.yaml)\n",
            at(DEV, &text, "colour:")
        )
    );
}

/// `local` inherits `tokens_per_minute` from base.yaml: the error points into base.yaml, at the
/// value, not at local.yaml and not at the rendered XML.
#[test]
fn wrong_type_through_extends_is_reported_at_the_value_in_the_parent_file() {
    let project = Project::new();
    let text = replace(
        &project,
        BASE,
        "    tokens_per_minute: 20000\n",
        "    tokens_per_minute: \"20000\"\n",
    );
    let (code, stdout, stderr) = run(&project, &["render", "--env", "local", "--offline"]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert_eq!(
        stderr,
        format!(
            "error: {}: policy.vars.tokens_per_minute: expected an integer, found a string (\"20000\")\nhint: quoted values are text; write 20000 without quotes\n",
            at(BASE, &text, "\"20000\"")
        )
    );
}

#[test]
fn quota_period_outside_the_llm_token_limit_values_is_refused_with_a_did_you_mean() {
    let project = Project::new();
    let text = replace(
        &project,
        PROD,
        "    token_quota_period: Monthly\n",
        "    token_quota_period: Montly\n",
    );
    let (code, _, stderr) = run(&project, &["render", "--env", "prod"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}: policy.vars.token_quota_period: expected one of Hourly, Daily, Weekly, Monthly, Yearly, found a string (\"Montly\")\nhint: did you mean `Monthly`?\n",
            at(PROD, &text, "Montly")
        )
    );
}

#[test]
fn zero_tokens_per_minute_is_refused_instead_of_silently_dropping_the_limit() {
    let project = Project::new();
    let text = replace(
        &project,
        PROD,
        "    tokens_per_minute: 50000\n",
        "    tokens_per_minute: 0\n",
    );
    let (code, _, stderr) = run(&project, &["render", "--env", "prod"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}: policy.vars.tokens_per_minute: expected an integer of at least 1, found 0\nhint: `tokens_per_minute`: Tokens (prompt and completion) one caller may use per minute; beyond it the gateway answers 429 with Retry-After (llm-token-limit tokens-per-minute). Unset: no rate limit. (templates/policies/llm-api.vars.yaml)\n",
            after(PROD, &text, "tokens_per_minute: ")
        )
    );
}

#[test]
fn every_variable_problem_is_reported_at_once_in_reading_order() {
    let project = Project::new();
    let text = replace(
        &project,
        PROD,
        "    tokens_per_minute: 50000\n    token_quota: 5000000\n",
        "    tokens_per_minute: lots\n    token_quota: 5000000\n    estimate_prompt_tokens: \"true\"\n",
    );
    let (code, stdout, _) = run(&project, &["validate", "--env", "prod", "--output", "json"]);
    assert_eq!(code, Some(1));
    let findings: Vec<serde_json::Value> = crate::output_contract::lines(&stdout)
        .into_iter()
        .filter(|v| v["type"] == "finding")
        .collect();
    let (lots, quoted) = (at(PROD, &text, "lots"), at(PROD, &text, "\"true\""));
    let summary: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}: {}: {} [{}]",
                f["file"].as_str().unwrap(),
                f["line"],
                f["column"],
                f["path"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
                f["rule"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            format!(
                "{lots}: policy.vars.tokens_per_minute: expected an integer, found a string (\"lots\") [environment]"
            ),
            format!(
                "{quoted}: policy.vars.estimate_prompt_tokens: expected `true` or `false`, found a string (\"true\") [environment]"
            ),
        ]
    );
}

#[test]
fn declared_default_fills_a_variable_the_environment_leaves_unset() {
    let project = Project::new();
    replace(
        &project,
        DEV,
        "    tokens_per_minute: 5000\n",
        "    tokens_per_minute: 5000\n    token_quota: 100000\n",
    );
    let (code, stdout, _) = run(&project, &["render", "--env", "dev", "--offline"]);
    assert_eq!(code, Some(0));
    let line = stdout
        .lines()
        .find(|l| l.contains("<llm-token-limit"))
        .unwrap();
    assert_eq!(
        line,
        "    <llm-token-limit counter-key=\"@(((Jwt)context.Variables[&quot;jwt&quot;]).Claims.GetValueOrDefault(&quot;oid&quot;, &quot;anonymous&quot;))\" tokens-per-minute=\"5000\" token-quota=\"100000\" token-quota-period=\"Monthly\" estimate-prompt-tokens=\"false\" remaining-tokens-header-name=\"x-ratelimit-remaining-tokens\" />"
    );
}

#[test]
fn template_reading_an_undeclared_variable_is_refused_at_the_template_line() {
    let project = Project::new();
    let partial = "templates/policies/partials/backend.xml.tera";
    let text = format!(
        "{}{{% if vars.max_tokens %}}<set-header name=\"x-max\" exists-action=\"override\" />{{% endif %}}\n",
        project.read(partial)
    );
    project.write(partial, &text);
    let (code, stdout, _) = run(&project, &["validate", "--env", "prod"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        format!(
            "error: {}: the template reads `vars.max_tokens`, which templates/policies/llm-api.vars.yaml does not declare\nhint: declare `max_tokens` in templates/policies/llm-api.vars.yaml (type, description, and a default or `required: true`)\nprod: failed (1 error(s), 0 warning(s))\n",
            at(partial, &text, "vars.max_tokens")
        )
    );
}

#[test]
fn declarations_file_with_a_bad_default_is_refused_at_its_line() {
    let project = Project::new();
    let file = "templates/policies/llm-api.vars.yaml";
    let text = replace(
        &project,
        file,
        "  default: Monthly\n",
        "  default: Fortnightly\n",
    );
    let (code, _, stderr) = run(&project, &["render", "--env", "prod"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}: token_quota_period.default: expected one of Hourly, Daily, Weekly, Monthly, Yearly, found a string (\"Fortnightly\")\n",
            at(file, &text, "Fortnightly")
        )
    );
}
