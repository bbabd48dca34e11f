//! The sandbox's own security: what it keeps on disk.

use provision::sandbox::SandboxConfig;

use crate::project::Project;
use crate::sandbox_support::start;

// ---------------------------------------------------------------------------------------------
// Files

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn state_and_tls_key_are_owner_only_in_an_owner_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = root.path().join("fresh/sandbox");
    let sandbox = start(SandboxConfig {
        state_dir: Some(fresh.clone()),
        tls: true,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("state.json")), 0o600);
    assert_eq!(mode(&fresh.join("sandbox-key.pem")), 0o600);
    sandbox.shutdown().await;

    // What an earlier version left behind (directory 0755, files 0644) is narrowed on start.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["state.json", "sandbox-key.pem"] {
        std::fs::set_permissions(fresh.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let again = start(SandboxConfig {
        state_dir: Some(fresh.clone()),
        tls: true,
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("state.json")), 0o600);
    assert_eq!(mode(&fresh.join("sandbox-key.pem")), 0o600);
    again.shutdown().await;
}

#[cfg(unix)]
#[test]
fn a_state_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    let shared = project.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = project
        .provision()
        .args(["sandbox", "serve", "--addr", "127.0.0.1:0", "--state"])
        .arg(&shared)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let dir = shared.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: cannot start the sandbox: {dir}: the sandbox state directory is writable by \
             others (mode 777); anyone who can write there can replace the sandbox's signing \
             keys and operator secret\nhint: make it yours alone (`chmod 700 {dir}`), or give \
             --state another directory\n"
        )
    );
    assert!(!shared.join("state.json").exists());
    assert_eq!(mode(&shared), 0o777);
}
