//! The sandbox as real clients find it: `provision up` against a `--tls` sandbox served on its
//! own, and the requests the Azure CLI 2.91 sends when pointed at `sandbox serve --tls` as a
//! custom cloud (each test sends the CLI's request, cited from azure-cli's source, and asserts
//! the answer the CLI reads).

use std::process::Output;

use provision::clock::SignedDuration;
use provision::sandbox::{Sandbox, SandboxConfig};

use crate::project::Project;
use crate::sandbox_support::start;

/// A `--tls` sandbox with its certificate in a state directory, and a project whose `local`
/// environment points at it with `extra` as the rest of its `sandbox:` mapping (`{ca}` there
/// stands for the certificate's path).
async fn tls_world(extra: &str) -> (Sandbox, Project, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let sandbox = start(SandboxConfig {
        tls: true,
        state_dir: Some(state.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await;
    let project = Project::new();
    let local = project.read("environments/local.yaml").replace(
        "address: 127.0.0.1:7171",
        &format!(
            "address: {}{}",
            sandbox.addr(),
            extra.replace(
                "{ca}",
                &state.path().join("sandbox-cert.pem").display().to_string()
            )
        ),
    );
    project.write("environments/local.yaml", &local);
    (sandbox, project, state)
}

async fn run(project: &Project, args: &[&str]) -> Output {
    let mut cmd = project.provision();
    cmd.args(args).env_remove("PROVISION_AUTH");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_converges_against_a_tls_sandbox_trusting_its_certificate() {
    let (sandbox, project, _state) = tls_world("\n  tls: true\n  ca_file: {ca}").await;
    let up = run(&project, &["up", "--env", "local"]).await;
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}\n{}",
        text(&up.stdout),
        text(&up.stderr)
    );
    let api_url = format!("https://{}/apim/apim-llmgw-local/llm", sandbox.addr());
    assert!(text(&up.stdout).contains(&api_url), "{}", text(&up.stdout));
    // The policy pins the sandbox's https authority: its tokens' issuer.
    let policy = {
        let state = sandbox.state();
        state
            .arm
            .resources
            .values()
            .find(|r| {
                r.id.to_ascii_lowercase()
                    .ends_with("/apis/llm/policies/policy")
            })
            .map(|r| serde_json::Value::Object(r.body.clone()))
            .unwrap()
    };
    let xml = policy["properties"]["value"].as_str().unwrap();
    assert!(
        xml.contains(&format!(
            "authentication-endpoint=\"https://{}\"",
            sandbox.addr()
        )),
        "{xml}"
    );

    let lag = SandboxConfig::default().replication_lag_ms();
    sandbox
        .advance(SignedDuration::from_millis(lag as i64 + 1))
        .unwrap();
    let plan = run(&project, &["plan", "--env", "local", "--detailed-exitcode"]).await;
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
    assert_eq!(
        text(&plan.stdout),
        "0 to create, 0 to update, 0 to replace, 0 to delete, 16 unchanged.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sandbox_with_another_certificate_is_refused() {
    let other = tempfile::tempdir().unwrap();
    // Another sandbox's certificate: valid PEM, not the one served.
    let decoy = start(SandboxConfig {
        tls: true,
        state_dir: Some(other.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await;
    let ca = other.path().join("sandbox-cert.pem");
    assert!(decoy.certificate_pem().is_some());
    let (sandbox, project, _state) =
        tls_world(&format!("\n  tls: true\n  ca_file: {}", ca.display())).await;
    let out = run(&project, &["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    // Nothing was asked of the sandbox: the handshake failed first.
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_are_checked_before_the_network() {
    for (extra, expected) in [
        (
            "\n  tls: true",
            "error: environments/local.yaml:13:3: sandbox.tls: `tls: true` needs `ca_file:`, the certificate the sandbox serves\n",
        ),
        (
            "\n  ca_file: cert.pem",
            "error: environments/local.yaml:13:3: sandbox.ca_file: `ca_file:` applies to a sandbox that serves HTTPS\n",
        ),
    ] {
        let (_sandbox, project, _state) = tls_world(extra).await;
        let out = run(&project, &["validate", "--env", "local"]).await;
        assert_eq!(out.status.code(), Some(1), "{extra}");
        // `validate` reports on stdout, as its findings are its output.
        let err = text(&out.stdout);
        assert!(err.starts_with(expected), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
    }
    let (_sandbox, project, _state) = tls_world("\n  tls: true\n  ca_file: missing.pem").await;
    let out = run(&project, &["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: environments/local.yaml: sandbox.ca_file missing.pem: "),
        "{err}"
    );
    assert!(err.contains("\nhint: point `sandbox.ca_file` at"), "{err}");
}
