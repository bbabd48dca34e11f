//! Saved plans and their files: bound to the environment file, its templates, the tool's version
//! and the environment; refused when not a plan of this version; holding no secret; written
//! atomically. The stale resources and the applying are in `saved_plan`.

use serde_json::json;

use crate::project::Project;
use crate::sandbox_support::operator;
use crate::saved_plan::{World, assert_exit, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_environment_file_template_or_version_is_named_and_nothing_is_read() {
    let world = World::new().await;
    world.plan_out(2).await;
    let original = world.project.read("environments/local.yaml");
    let plan = world.project.read("plan.json");

    world.project.write(
        "environments/local.yaml",
        &format!("{original}# reviewed\n"),
    );
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: stale plan: environments/local.yaml changed since the plan (SHA-256 "
        ),
        "{err}"
    );
    assert!(
        err.ends_with(
            "hint: nothing was written; run `provision plan --env local --out plan.json` again \
             and review it\n"
        ),
        "{err}"
    );
    assert_eq!(world.requests_since(from), Vec::<String>::new());
    world.project.write("environments/local.yaml", &original);

    let template = world.saved()["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap().to_owned())
        .find(|f| f.starts_with("templates/"))
        .unwrap();
    let text = world.project.read(&template);
    world.project.write(&template, &format!("{text}\n"));
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: stale plan: {template} changed since the plan (SHA-256 "
        )),
        "{}",
        stderr(&out)
    );
    world.project.write(&template, &text);

    let version = format!("\"tool_version\": \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(plan.contains(&version));
    world.project.write(
        "plan.json",
        &plan.replace(&version, "\"tool_version\": \"0.0.1\""),
    );
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: stale plan: the plan was made by provision 0.0.1, and this is provision {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        stderr(&out)
    );

    // Restored, it applies.
    world.project.write("plan.json", &plan);
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_another_environment_is_refused() {
    let world = World::new().await;
    world.plan_out(2).await;
    let from = world.sandbox.requests().len();
    let out = world
        .run(&["up", "--plan", "plan.json", "--env", "dev"])
        .await;
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "error: plan.json is a plan of environment local, not of dev\n\
         hint: drop --env (the plan names its environment), or save a plan of dev with \
         `provision plan --env dev --out FILE`\n"
    );
    assert!(world.requests_since(from).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_file_holds_no_secret_or_token_and_is_replaced_whole() {
    let world = World::new().await;
    world.up().await;
    world.plan_out(0).await;
    let text = world.project.read("plan.json");
    let (_, secret) = operator(&world.sandbox).await;
    assert!(
        !text.contains(&secret),
        "the operator's secret is in the plan"
    );
    // Every JWT starts with a base64url `{"` header: none is in the file.
    assert!(!text.contains("eyJ"), "a token is in the plan:\n{text}");

    // A second plan replaces the file whole and leaves no temporary file beside it.
    world.project.write("plan.json", "old");
    world.plan_out(0).await;
    assert_eq!(world.project.read("plan.json"), text);
    let mut names: Vec<String> = std::fs::read_dir(world.project.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["environments", "plan.json", "templates"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(world.project.path("plan.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

/// Files that are not a plan this version wrote: each refused with what is wrong and a hint,
/// before any sign-in.
#[test]
fn hostile_plan_files_are_refused() {
    let project = Project::new();
    let valid = {
        // The shape of a real plan, to break one thing at a time.
        json!({"format": "provision-plan/1", "env": "local", "tool_version": env!("CARGO_PKG_VERSION"),
               "inputs": [], "expires": null, "changes": false, "resources": []})
    };
    let mut unknown = valid.clone();
    unknown["approved_by"] = json!("me");
    let mut format = valid.clone();
    format["format"] = json!("terraform-plan/4");
    let mut bad_env = valid.clone();
    bad_env["env"] = json!("../../etc/passwd");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge.json",
            vec![b' '; 4 * 1024 * 1024 + 1],
            "huge.json: larger than 4194304 bytes, which no plan file is",
        ),
        (
            "nul.json",
            b"{\"format\": \"provision-plan/1\"\0}".to_vec(),
            "nul.json: a NUL byte at offset 29: a plan file is JSON text",
        ),
        (
            "text.json",
            b"plan: yes\n".to_vec(),
            "text.json: 1:1: not JSON: ",
        ),
        (
            "format.json",
            format.to_string().into_bytes(),
            "format.json: `format` is \"terraform-plan/4\", and this version reads \"provision-plan/1\"",
        ),
        (
            "unknown.json",
            unknown.to_string().into_bytes(),
            "unknown.json: not a plan file of this version: unknown field `approved_by`",
        ),
        (
            "env.json",
            bad_env.to_string().into_bytes(),
            "`../../etc/passwd` is not a valid environment name",
        ),
    ];
    for (name, bytes, expected) in cases {
        std::fs::write(project.path(name), bytes).unwrap();
        let out = project
            .provision()
            .args(["up", "--plan", name])
            .output()
            .unwrap();
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains("\nhint: "), "{name}: {err}");
    }
    for (path, expected) in [
        ("missing.json", "cannot read missing.json: "),
        ("/dev/zero", "/dev/zero: larger than 4194304 bytes"),
    ] {
        let out = project
            .provision()
            .args(["up", "--plan", path])
            .output()
            .unwrap();
        assert_exit(&out, 1);
        assert!(stderr(&out).contains(expected), "{path}: {}", stderr(&out));
    }
    // `--out` is checked before any sign-in.
    for (path, expected) in [
        (
            "environments",
            "--out environments: a directory, not a file",
        ),
        (
            "nowhere/plan.json",
            "--out nowhere/plan.json: no directory nowhere",
        ),
    ] {
        let out = project
            .provision()
            .args(["plan", "--env", "local", "--out", path])
            .output()
            .unwrap();
        assert_exit(&out, 1);
        assert!(stderr(&out).contains(expected), "{path}: {}", stderr(&out));
        assert!(stderr(&out).contains("\nhint: "), "{}", stderr(&out));
    }
    // Neither --env nor --plan: a usage error.
    let out = project.provision().args(["up"]).output().unwrap();
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("--env <ENV>"), "{}", stderr(&out));
}

/// `plan --out` killed at any moment leaves the previous file whole or the new one whole, never
/// half a plan: the plan goes to a temporary file that is renamed over the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_plan_never_leaves_half_a_plan() {
    let world = World::new().await;
    world.up().await;
    // Kills spread over one and a half times a whole run, as measured here, whatever the load.
    let began = std::time::Instant::now();
    world.plan_out(0).await;
    let whole = began.elapsed().as_millis() as u64 * 3 / 2 + 1;
    let mut dice = provision::dice::Dice::new(11);
    let mut outcomes = std::collections::BTreeSet::new();
    for _ in 0..20 {
        world.project.write("plan.json", "previous\n");
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("provision"))
            .current_dir(world.project.dir.path())
            .args(["plan", "--env", "local", "--out", "plan.json"])
            .env_remove("RUST_LOG")
            .env_remove("PROVISION_AUTH")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Real time on purpose: the point is to kill a separate process at an unforeseen moment
        // of its wall-clock run, which no move of the sandbox's clock can stand in for.
        let delay = std::time::Duration::from_millis(dice.roll() % whole);
        tokio::time::sleep(delay).await;
        let _ = child.kill();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        let text = world.project.read("plan.json");
        if text == "previous\n" {
            outcomes.insert("previous");
        } else {
            let plan: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("half a plan after a kill at {delay:?}: {e}\n{text}"));
            assert_eq!(plan["format"], "provision-plan/1");
            outcomes.insert("new");
        }
    }
    // Both ends were seen: some kills came before the rename, some after.
    assert_eq!(
        outcomes.into_iter().collect::<Vec<_>>(),
        ["new", "previous"]
    );
}
