//! Durations on the command line: one parser (`clock::parse_duration`) for every flag that takes
//! one, and an error that names the value and the form to write.

use crate::project::Project;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Project::new().provision().args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// Regression: `--timeout 5x` printed humantime's words without the value or the form.
#[test]
fn a_timeout_that_is_not_a_duration_names_the_value_and_the_form() {
    let (code, stderr) = run(&["plan", "--env", "local", "--timeout", "5x"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.lines().next(),
        Some(
            "error: invalid value '5x' for '--timeout <DURATION>': `5x` is not a duration (write \
             e.g. 90s, 20m, 1h30m or PT1H30M): failed to parse input in the \"friendly\" duration \
             format: expected to find unit designator suffix (e.g., `years` or `secs`) after \
             parsing integer"
        ),
        "{stderr}"
    );
}

#[test]
fn a_zero_timeout_is_refused_by_name() {
    let (code, stderr) = run(&["whoami", "--env", "local", "--timeout", "PT0S"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.lines().next(),
        Some(
            "error: invalid value 'PT0S' for '--timeout <DURATION>': `PT0S` is no time at all: \
             give a duration longer than zero"
        ),
        "{stderr}"
    );
}
