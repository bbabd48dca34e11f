//! What a new user meets first: usage lines, help layout, and a command that ends politely when
//! its reader goes away. Each test is named after what tripped someone up.

use std::process::Stdio;

use crate::project::Project;

fn run(project: &Project, args: &[&str]) -> (Option<i32>, String, String) {
    let out = project.provision().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn validate_without_arguments_names_both_env_and_all() {
    let (code, _, stderr) = run(&Project::new(), &["validate"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("Usage: provision validate <--env <ENV>|--all>"),
        "{stderr}"
    );
}

#[test]
fn global_flags_have_their_own_heading_in_help() {
    let (code, stdout, _) = run(&Project::new(), &["plan", "--help"]);
    assert_eq!(code, Some(0));
    let (own, global) = stdout
        .split_once("Global options:\n")
        .unwrap_or_else(|| panic!("no Global options heading:\n{stdout}"));
    assert!(own.contains("--detailed-exitcode"), "{stdout}");
    for flag in [
        "--env-dir",
        "--templates-dir",
        "--verbose",
        "--quiet",
        "--output",
        "--color",
    ] {
        assert!(
            global.contains(flag),
            "{flag} under Global options:\n{stdout}"
        );
        assert!(
            !own.contains(flag),
            "{flag} not among plan's own options:\n{stdout}"
        );
    }
}

#[test]
fn whoami_help_explains_its_own_timeout() {
    let (code, stdout, _) = run(&Project::new(), &["whoami", "--help"]);
    assert_eq!(code, Some(0));
    assert!(!stdout.contains("API Management"), "{stdout}");
    assert!(
        stdout.contains("sign-in and the subscription read included"),
        "{stdout}"
    );
    assert!(stdout.contains("[default: 2m]"), "{stdout}");
    // `up` keeps the long default that APIM creation needs.
    let (_, up, _) = run(&Project::new(), &["up", "--help"]);
    assert!(up.contains("[default: 60m]"), "{up}");
}

/// `provision completions bash | head -3` panicked (exit 101) on the closed pipe.
#[test]
fn a_closed_stdout_ends_a_command_quietly_with_exit_0() {
    let project = Project::new();
    for args in [
        &["completions", "bash"][..],
        &["render", "--env", "prod"],
        &["validate", "--all", "--output", "json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        // Closed before the child writes a byte: every write sees EPIPE, deterministically.
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("provision"))
            .current_dir(project.dir.path())
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

/// Regression: `up --env nonexistent` did not say which environments exist.
#[test]
fn an_unknown_environment_lists_the_ones_that_exist() {
    let project = Project::new();
    let (code, stdout, stderr) = run(&project, &["up", "--env", "prd"]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: environment `prd` does not exist\n\
         hint: did you mean `prod`? the environments here are base, dev, local, prod (files <name>.yaml in --env-dir)\n"
    );
    let (code, _, stderr) = run(&project, &["plan", "--env", "nonexistent"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.ends_with("hint: the environments here are base, dev, local, prod (files <name>.yaml in --env-dir)\n"),
        "{stderr}"
    );
}

/// An address already taken is recognised by the error's kind, not by its (OS- and
/// locale-dependent) text.
#[test]
fn sandbox_serve_on_a_taken_address_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = run(&Project::new(), &["sandbox", "serve", "--addr", &addr]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: cannot start the sandbox: "),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("\nhint: another process listens there: pick --addr 127.0.0.1:PORT\n"),
        "{stderr}"
    );
}
