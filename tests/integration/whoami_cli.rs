//! `provision whoami`: the binary signs in to an in-process sandbox the way `plan` and `up` will.

use crate::project::Project;
use crate::sandbox_support::{default_sandbox, info, operator};

/// A project whose `local` environment points at `address`.
fn project_at(address: &str) -> Project {
    let project = Project::new();
    let local = project
        .read("environments/local.yaml")
        .replace("address: 127.0.0.1:7171", &format!("address: {address}"));
    project.write("environments/local.yaml", &local);
    project
}

/// Runs the binary off the async runtime's threads (the sandbox answers on them).
async fn run(project: &Project, args: &[&str]) -> std::process::Output {
    let mut cmd = project.provision();
    cmd.args(args).env_remove("PROVISION_AUTH");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_signs_in_and_reads_the_subscription() {
    let sandbox = default_sandbox().await;
    let project = project_at(&sandbox.addr().to_string());
    let info = info(&sandbox).await;
    let out = run(&project, &["whoami", "--env", "local", "--output", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = crate::output_contract::lines(&String::from_utf8(out.stdout).unwrap()).remove(0);
    assert_eq!(shown["type"], "whoami");
    assert_eq!(shown["credential"], "sandbox client credentials");
    assert_eq!(shown["tenant_id"], info["operator"]["tenant_id"]);
    assert_eq!(shown["app_id"], info["operator"]["client_id"]);
    assert_eq!(
        shown["subscription"],
        serde_json::json!({"id": "5a4d0000-0000-4000-8000-0000000000b1",
                           "display_name": "Sandbox", "state": "Enabled"})
    );
    let paths: Vec<String> = sandbox
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            // The test's own look at the operator, then the binary's.
            "GET /_sandbox/info".to_owned(),
            "GET /_sandbox/info".to_owned(),
            format!(
                "POST /{}/oauth2/v2.0/token",
                info["operator"]["tenant_id"].as_str().unwrap()
            ),
            "GET /subscriptions/5a4d0000-0000-4000-8000-0000000000b1".to_owned(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_the_highest_verbosity() {
    let sandbox = default_sandbox().await;
    let project = project_at(&sandbox.addr().to_string());
    let (_, client_secret) = operator(&sandbox).await;
    let out = run(&project, &["whoami", "--env", "local", "-vv"]).await;
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("TRACE sending method=GET"), "{log}");
    assert!(log.contains("\"authorization\": \"<redacted>\""), "{log}");
    // Every token the sandbox issues is a JWT, and a JWT's header always encodes to `eyJ…`.
    assert!(!log.contains("eyJ"), "a token reached the log");
    assert!(
        !log.contains(&client_secret),
        "the operator's secret reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_is_not_running_is_named_with_the_remedy() {
    // Bind and drop a listener: a loopback port that nothing serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let project = project_at(&format!("127.0.0.1:{port}"));
    let out = run(&project, &["whoami", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: could not get a token for https://management.azure.com/.default with sandbox \
             client credentials: could not connect to http://127.0.0.1:{port}/_sandbox/info"
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "hint: start the sandbox (`provision sandbox serve`), or point the environment's \
             sandbox address at it\n"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_must_fit_the_cloud() {
    let project = Project::new();
    let out = run(&project, &["whoami", "--env", "local", "--auth", "cli"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --auth cli: `cli` can not sign in to the sandbox (`cloud: sandbox`)\n\
         hint: leave `auth:` out, or use `auth: sandbox`: the sandbox issues tokens to its own \
         operator\n"
    );
    project.write(
        "environments/dev.yaml",
        &format!("{}auth: sandbox\n", project.read("environments/dev.yaml")),
    );
    let out = run(&project, &["validate", "--env", "dev"]).await;
    assert_eq!(out.status.code(), Some(1));
    // `validate` reports on stdout: it is the command's result, not a failure to run it.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(
            "error: environments/dev.yaml:27:1: auth: `sandbox` signs in to the local sandbox only, and \
             this environment is `cloud: public`\nhint: use `auto` (or leave `auth:` out)"
        ),
        "{stdout}"
    );
}
