//! Hostile and broken YAML inputs through the real binary: environment files, `--cases` files and
//! fault scripts all go through one door, and every one of these must end in exit 1 with a message
//! that says what and where, never in a truncated read, a silently dropped document or a crash.

use crate::project::{Project, manifest_dir};

/// What one run of the binary did: exit code, stdout, stderr.
fn run(project: &Project, args: &[&str]) -> (Option<i32>, String, String) {
    let out = project.provision().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn validate(project: &Project, env: &str) -> (Option<i32>, String, String) {
    run(project, &["validate", "--env", env])
}

fn shipped_cases(env: &str) -> String {
    std::fs::read_to_string(manifest_dir().join(format!("tests/policy-cases/{env}.yaml"))).unwrap()
}

/// `validate`'s report for one failed environment with one error.
fn failed(error: &str, excerpt: &str, hint: &str) -> String {
    format!("error: {error}\n{excerpt}\nhint: {hint}\ndev: failed (1 error(s), 0 warning(s))\n")
}

#[test]
fn nul_byte_in_environment_file_is_refused() {
    let project = Project::new();
    let text = format!(
        "{}# reviewed\0\nprotected: true\n",
        project.read("environments/dev.yaml")
    );
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        failed(
            "environments/dev.yaml:27:11: the file contains a NUL byte",
            "27 | # reviewed␀\n   |           ^",
            "YAML files are text; remove the NUL byte (an editor or a bad copy put it there): everything after it would be lost",
        )
    );
}

#[test]
fn nul_byte_in_a_comment_cannot_drop_a_policy_vars_override() {
    let project = Project::new();
    let text = project.read("environments/dev.yaml").replace(
        "policy:\n",
        "# limits\0 agreed with the platform team\npolicy:\n",
    );
    project.write("environments/dev.yaml", &text);
    let (code, _, stderr) = run(&project, &["render", "--env", "dev", "--offline"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(
            "error: environments/dev.yaml:24:9: the file contains a NUL byte\n24 | # limits␀ agreed"
        ),
        "{stderr}"
    );
}

#[test]
fn nul_byte_in_cases_file_is_refused() {
    let project = Project::new();
    let cases = shipped_cases("dev").replacen("cases:\n", "cases:\n  # extra\0\n", 1);
    project.write("cases.yaml", &cases);
    let (code, stdout, stderr) = run(
        &project,
        &["policy", "test", "--env", "dev", "--cases", "cases.yaml"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("error: cases.yaml:3:10: the file contains a NUL byte\n3 |   # extra␀\n  |          ^\nhint: YAML files are text"),
        "{stderr}"
    );
}

#[test]
fn nul_byte_in_fault_script_is_refused_before_the_sandbox_listens() {
    let project = Project::new();
    project.write("faults.yaml", "faults:\n  - path: /x\0\n    status: 500\n");
    let (code, _, stderr) = run(
        &project,
        &[
            "sandbox",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--faults",
            "faults.yaml",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: faults.yaml:2:13: the file contains a NUL byte\n"),
        "{stderr}"
    );
}

#[test]
fn second_yaml_document_is_refused_naming_its_line() {
    let project = Project::new();
    let text = format!(
        "{}---\nprotected: true\n",
        project.read("environments/dev.yaml")
    );
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        failed(
            "environments/dev.yaml:27:1: a second YAML document starts here",
            "27 | ---\n   | ^",
            "a file holds one document; remove the `---` (or `...`) line and what follows it, or merge the two",
        )
    );
}

#[test]
fn byte_order_mark_is_accepted_and_skipped() {
    let project = Project::new();
    let text = format!("\u{feff}{}", project.read("environments/dev.yaml"));
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("dev: ok"), "{stdout}");
}

#[test]
fn environment_file_nested_50000_deep_is_refused_not_a_stack_overflow() {
    let project = Project::new();
    let text = format!(
        "{}deep: {}{}\n",
        project.read("environments/dev.yaml"),
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(text.len() > 100_000);
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(
        code,
        Some(1),
        "exit 134 is the stack overflow this guards against"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "error: environments/dev.yaml:27:70: nesting deeper than 64 levels"
    );
    assert_eq!(
        lines[3],
        "hint: no input of provision nests anywhere near this deep; check for runaway brackets or indentation"
    );
}

#[test]
fn cases_file_nested_50000_deep_is_refused_not_a_stack_overflow() {
    let project = Project::new();
    let cases = format!("cases:\n{}x\n", "- ".repeat(50_000));
    project.write("cases.yaml", &cases);
    let (code, _, stderr) = run(
        &project,
        &["policy", "test", "--env", "dev", "--cases", "cases.yaml"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cases.yaml:2:127: nesting deeper than 64 levels\n"),
        "{stderr}"
    );
}

#[test]
fn environment_file_over_one_mebibyte_is_refused_with_its_size() {
    let project = Project::new();
    let text = format!(
        "{}# {}\n",
        project.read("environments/dev.yaml"),
        "x".repeat(1 << 20)
    );
    project.write("environments/dev.yaml", &text);
    let (code, _, stderr) = run(&project, &["render", "--env", "dev", "--offline"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: environments/dev.yaml: the file is {} bytes; the limit is 1048576 bytes (1 MiB)\nhint: environment files are UTF-8 text of at most 1 MiB; check the file\n",
            text.len()
        )
    );
}

#[test]
fn cases_file_over_one_mebibyte_is_refused_with_its_size() {
    let project = Project::new();
    let cases = format!("{}# {}\n", shipped_cases("dev"), "x".repeat(1 << 20));
    project.write("cases.yaml", &cases);
    let (code, _, stderr) = run(
        &project,
        &["policy", "test", "--env", "dev", "--cases", "cases.yaml"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: cannot read cases.yaml: the file is {} bytes; the limit is 1048576 bytes (1 MiB)\n",
            cases.len()
        )
    );
}

#[test]
fn missing_colon_is_reported_on_its_own_line() {
    let project = Project::new();
    let text =
        project
            .read("environments/dev.yaml")
            .replacen("subscription_id: ", "subscription_id ", 1);
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        failed(
            "environments/dev.yaml:5:1: invalid YAML: could not find expected ':'",
            "5 | subscription_id 5b0b0000-0000-4000-8000-0000000000d1\n  | ^",
            "a key and its value are written `key: value`, with a space after the colon",
        )
    );
}

#[test]
fn unclosed_bracket_is_reported_at_the_bracket() {
    let project = Project::new();
    let text = project.read("environments/dev.yaml").replacen(
        "resource_group: rg-llm-gateway-dev",
        "resource_group: [rg-llm-gateway-dev",
        1,
    );
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        failed(
            "environments/dev.yaml:6:17: invalid YAML: this `[` is never closed",
            "6 | resource_group: [rg-llm-gateway-dev\n  |                 ^",
            "close it with `]`; the parser gave up at 8:6 (illegal placement of ':' indicator)",
        )
    );
}

#[test]
fn templates_dir_outside_the_project_is_refused_at_its_line() {
    let hint =
        "`templates_dir` is a directory inside the project, relative to it, e.g. templates/prod";
    for (dir, message) in [
        ("/", "`/` is not a relative path"),
        (
            "../templates",
            "`../templates` leaves the project directory (`..`)",
        ),
        (
            "templates/../../x",
            "`templates/../../x` leaves the project directory (`..`)",
        ),
    ] {
        let project = Project::new();
        let text = project
            .read("environments/dev.yaml")
            .replace("policy:\n", &format!("policy:\n  templates_dir: '{dir}'\n"));
        project.write("environments/dev.yaml", &text);
        let (code, stdout, _) = validate(&project, "dev");
        assert_eq!(code, Some(1));
        assert_eq!(
            stdout,
            format!(
                "error: environments/dev.yaml:25:3: policy.templates_dir: {message}\nhint: {hint}\ndev: failed (1 error(s), 0 warning(s))\n"
            )
        );
    }
}

#[cfg(unix)]
#[test]
fn templates_dir_symlinked_outside_the_project_is_refused() {
    let project = Project::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), project.path("linked")).unwrap();
    let text = project
        .read("environments/dev.yaml")
        .replace("policy:\n", "policy:\n  templates_dir: linked\n");
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with(
            "error: environments/dev.yaml:25:3: policy.templates_dir: `linked` resolves to "
        ) && first.contains("(through a symbolic link), outside the project directory"),
        "{stdout}"
    );
}

#[test]
fn forty_thousand_tags_are_refused() {
    // Added to the two that dev inherits from base.
    let project = Project::new();
    let tags: String = (0..40_000).map(|i| format!("  t{i}: v\n")).collect();
    let text = format!("{}tags:\n{tags}", project.read("environments/dev.yaml"));
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        "error: environments/dev.yaml:27:1: tags: 40002 tags; at most 50 are allowed\nhint: remove 39952\ndev: failed (1 error(s), 0 warning(s))\n"
    );
}

#[test]
fn api_path_climbing_out_with_dot_dot_is_refused() {
    let project = Project::new();
    let text =
        project
            .read("environments/base.yaml")
            .replacen("  path: llm", "  path: ../../admin", 1);
    project.write("environments/base.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert!(
        stdout
            .contains(": api.path: API path `../../admin` must not contain `.` or `..` segments\n"),
        "{stdout}"
    );
}

#[test]
fn one_megabyte_display_name_is_refused_without_echoing_it() {
    let project = Project::new();
    let text = project.read("environments/dev.yaml").replacen(
        "display_name: LLM Gateway API (dev)",
        &format!("display_name: {}", "n".repeat(1_000_000)),
        1,
    );
    project.write("environments/dev.yaml", &text);
    let (code, stdout, _) = validate(&project, "dev");
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        "error: environments/dev.yaml:11:5: entra.api.display_name: the display name is 1000000 characters long; at most 256 are allowed\ndev: failed (1 error(s), 0 warning(s))\n"
    );
}
