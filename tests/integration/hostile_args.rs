//! No panic on any input: every subcommand, each of its arguments given hostile values, must end
//! with an exit code of its own (0, 1 or 2) — never 101 (a panic) and never a signal (an abort, a
//! stack overflow). The commands and their arguments are read from the CLI definition itself, so a
//! new subcommand or flag is covered the day it is added.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use provision::cli::Cli;

use crate::project::Project;

/// Longest a command may take with a hostile argument before it counts as hung. A served sandbox
/// runs until stopped: once it says it listens, it has taken its arguments, and is stopped.
const PATIENCE: Duration = Duration::from_secs(20);

/// One leaf subcommand: its words (`["policy", "eval"]`) and its own value-taking arguments.
struct Leaf {
    words: Vec<String>,
    args: Vec<(String, bool)>,
}

fn leaves(cmd: &clap::Command, words: &mut Vec<String>, out: &mut Vec<Leaf>) {
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            words.push(sub.get_name().to_owned());
            leaves(sub, words, out);
            words.pop();
        }
        return;
    }
    let args = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_action().takes_values())
        .filter(|a| !["help", "version"].contains(&a.get_id().as_str()))
        .map(|a| {
            let name = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), |l| format!("--{l}"));
            (name, a.is_positional())
        })
        .collect();
    out.push(Leaf {
        words: words.clone(),
        args,
    });
}

/// A well-formed value for every argument, so that each run fails (if at all) on the one hostile
/// value under test. Files named here exist in the project.
fn good_value(arg: &str) -> &'static str {
    match arg {
        "--env" => "dev",
        "--policy" | "old" | "new" => "policy.xml",
        "--jwks" => "jwks.json",
        "--cases" => "tests/cases.yaml",
        "shell" => "bash",
        "--addr" => "127.0.0.1:0",
        "--timeout" => "5s",
        _ => "x",
    }
}

/// Required arguments of a leaf, filled with good values, except `skip`.
fn required(leaf: &[String], skip: &str) -> Vec<OsString> {
    let mut cmd = Cli::command();
    let mut node = &mut cmd;
    for word in leaf {
        node = node.find_subcommand_mut(word).unwrap();
    }
    let mut out = Vec::new();
    for arg in node.get_arguments() {
        let long = arg.get_long().map(|l| format!("--{l}"));
        let name = long.clone().unwrap_or_else(|| arg.get_id().to_string());
        if !arg.is_required_set() || name == skip {
            continue;
        }
        if let Some(long) = long {
            out.push(long.into());
        }
        out.push(good_value(&name).into());
    }
    // `validate` needs one of --env and --all; a served sandbox must not take the shared port.
    if leaf == ["validate"] && skip != "--env" {
        out.extend(["--env".into(), "dev".into()]);
    }
    if leaf == ["sandbox", "serve"] && skip != "--addr" {
        out.extend(["--addr".into(), "127.0.0.1:0".into()]);
    }
    out
}

fn hostile_values() -> Vec<OsString> {
    let mut values: Vec<OsString> = [
        "",
        "-",
        "--",
        "0",
        "-1",
        "18446744073709551616",
        "-9223372036854775809",
        "1e308",
        "1e-300",
        "NaN",
        "inf",
        "€",
        "e\u{301}\u{202e}\u{0}x",
        ".",
        "/",
        "/dev/zero",
        "/dev/null",
        "9999999999h",
        "2026-11-28T16:00:00+0€0",
        "9999-12-30T00:00:00Z",
    ]
    .iter()
    .map(|s| OsString::from(s.replace('\u{0}', "")))
    .collect();
    values.push(OsString::from_vec(vec![0xff, 0xfe, b'a']));
    values.push(OsString::from("x".repeat(100_000)));
    values
}

/// A date with a multi-byte character at every position, for arguments that take instants.
fn hostile_dates() -> Vec<OsString> {
    let date = "2026-11-28T16:00:00+01:00";
    (0..=date.len())
        .flat_map(|i| {
            ["€", "é"].map(|c| OsString::from(format!("{}{c}{}", &date[..i], &date[i..])))
        })
        .collect()
}

fn spawn(project: &Project, words: &[String], args: &[OsString]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin!("provision"))
        .current_dir(project.dir.path())
        .args(words)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PROVISION_AUTH")
        // No credential can be found: commands that would sign in to Azure fail fast, offline.
        .env("PATH", "/nonexistent")
        .env("HOME", project.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How a run ended.
enum End {
    Exited(std::process::ExitStatus),
    /// A sandbox said it listens (and was stopped).
    Listening,
    /// Still running after [`PATIENCE`] (and stopped).
    Hung,
}

fn finish(mut child: Child) -> End {
    use std::io::BufRead as _;
    let started = Instant::now();
    // Reading stdout as it comes keeps a chatty command from blocking on a full pipe, and tells
    // when a sandbox is up.
    let stdout = child.stdout.take().unwrap();
    let (tx, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            match line {
                Ok(l) if l.starts_with("sandbox listening on ") => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return End::Exited(status);
        }
        let up = listening.try_recv().is_ok();
        if up || started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            return if up { End::Listening } else { End::Hung };
        }
        // Real time on purpose: the run is a child process; this only paces the polling.
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn project() -> Project {
    let project = Project::new();
    let out = project
        .provision()
        .args(["render", "--env", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success());
    project.write("policy.xml", &String::from_utf8(out.stdout).unwrap());
    project.write("jwks.json", r#"{"keys": []}"#);
    project.write("tests/cases.yaml", "cases: []\n");
    project
}

#[test]
fn no_subcommand_panics_or_dies_on_hostile_arguments() {
    let project = project();
    let mut all = Vec::new();
    leaves(&Cli::command(), &mut Vec::new(), &mut all);
    assert!(all.len() >= 10, "{} subcommands", all.len());

    // (words, args) of every run: each argument of each leaf with each hostile value, and the
    // global flags once, on `render`.
    let mut runs: Vec<(Vec<String>, Vec<OsString>)> = Vec::new();
    for leaf in &all {
        for (arg, positional) in &leaf.args {
            let mut values = hostile_values();
            if arg == "--now" {
                values.extend(hostile_dates());
            }
            for value in values {
                let mut args = required(&leaf.words, arg);
                // A positional argument takes the value in its own place.
                if !*positional {
                    args.push(arg.into());
                }
                args.push(value);
                if *positional {
                    args.retain(|a| a != good_value(arg));
                    args.push(good_value(if arg == "old" { "new" } else { "old" }).into());
                }
                runs.push((leaf.words.clone(), args));
            }
        }
    }
    for global in ["--env-dir", "--templates-dir", "--output", "--color"] {
        for value in hostile_values() {
            runs.push((
                vec!["render".to_owned()],
                vec!["--env".into(), "dev".into(), global.into(), value],
            ));
        }
    }

    let mut failures = Vec::new();
    // Four at a time: most runs end in milliseconds, and much of a run is waiting on the
    // process to start and exit.
    for batch in runs.chunks(4) {
        let children: Vec<Child> = batch
            .iter()
            .map(|(words, args)| spawn(&project, words, args))
            .collect();
        for ((words, args), child) in batch.iter().zip(children) {
            let served = words == &["sandbox", "serve"];
            let mut shown = format!("provision {} {:?}", words.join(" "), args);
            if shown.len() > 300 {
                shown = format!("{}…", shown.chars().take(300).collect::<String>());
            }
            match finish(child) {
                End::Listening if served => {}
                End::Listening | End::Hung => {
                    failures.push(format!("{shown}: still running after {PATIENCE:?}"))
                }
                End::Exited(status) => match status.code() {
                    Some(0..=2) => {}
                    Some(code) => failures.push(format!("{shown}: exit {code}")),
                    None => failures.push(format!("{shown}: killed by a signal ({status})")),
                },
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}
