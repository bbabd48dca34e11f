//! The state directory's files hold the operator secret and every tenant's private signing keys,
//! so they are readable by their owner only, whatever the umask: files 0600, the directory 0700.
//!
//! A directory that others may write to is refused rather than repaired: whoever can write there
//! can replace `state.json` with keys of their own (and so mint tokens the sandbox accepts), and
//! such a directory may be shared (`/tmp`), so changing its mode would break others. A directory
//! that others may only read (0755, what earlier versions created) is narrowed to 0700: it is the
//! sandbox's own, and narrowing it costs nobody anything.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a state directory cannot be used; commands print `hint` on its own line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StateDirError {
    pub message: String,
    pub hint: Option<String>,
}

impl crate::hint::Remedy for StateDirError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.hint.as_deref().map(std::borrow::Cow::Borrowed)
    }
}

impl StateDirError {
    fn io(dir: &Path, what: &str, e: &io::Error) -> StateDirError {
        StateDirError {
            message: format!("{}: cannot {what}: {e}", dir.display()),
            hint: Some("give --state a directory you own".to_owned()),
        }
    }
}

/// Creates the directory (and its parents) owner-only, or checks and narrows an existing one.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), StateDirError> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| StateDirError::io(dir, "create the state directory", &e))?;
    }
    check_dir(dir)
}

#[cfg(unix)]
fn check_dir(dir: &Path) -> Result<(), StateDirError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir)
        .map_err(|e| StateDirError::io(dir, "read the state directory", &e))?;
    if !meta.is_dir() {
        return Err(StateDirError {
            message: format!("{}: not a directory", dir.display()),
            hint: Some("give --state a directory".to_owned()),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(StateDirError {
            message: format!(
                "{}: the sandbox state directory is writable by others (mode {mode:03o}); anyone \
                 who can write there can replace the sandbox's signing keys and operator secret",
                dir.display()
            ),
            hint: Some(format!(
                "make it yours alone (`chmod 700 {}`), or give --state another directory",
                dir.display()
            )),
        });
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StateDirError::io(dir, "make the state directory owner-only", &e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_dir(_dir: &Path) -> Result<(), StateDirError> {
    Ok(())
}

/// Writes `bytes` to `file` atomically (a temporary file renamed over it), the temporary file
/// created owner-only before the first byte is written, so no reader ever sees the secrets under
/// a wider mode, not even briefly.
pub(crate) fn write_private(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary(file);
    // A temporary file left by a crash may have any mode; a fresh one gets ours.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, file)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Narrows a file written by an earlier version (with the umask) to owner-only.
pub(crate) fn make_private(file: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

fn temporary(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    file.with_file_name(name)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The umask is process-wide, so the umask-000 case runs in a child process: this test
    /// binary again, told by an environment variable to do only the writing.
    #[test]
    fn secrets_are_owner_only_under_umask_000() {
        const CHILD: &str = "PROVISION_FILES_TEST_DIR";
        if let Ok(dir) = std::env::var(CHILD) {
            let dir = PathBuf::from(dir).join("nested/state");
            unsafe_umask_000();
            prepare_dir(&dir).unwrap();
            write_private(&dir.join("state.json"), b"{}").unwrap();
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::files::tests::secrets_are_owner_only_under_umask_000",
                "--test-threads=1",
            ])
            .env(CHILD, root.path())
            .status()
            .unwrap();
        assert!(status.success());
        let dir = root.path().join("nested/state");
        assert_eq!(mode(&root.path().join("nested")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("state.json")), 0o600);
        assert_eq!(std::fs::read(dir.join("state.json")).unwrap(), b"{}");
        assert!(!dir.join("state.json.tmp").exists());
    }

    fn unsafe_umask_000() {
        // SAFETY: umask only swaps the process's file mode mask; the child process runs this one
        // test on one thread.
        unsafe {
            libc_umask(0);
        }
    }

    unsafe extern "C" {
        #[link_name = "umask"]
        fn libc_umask(mask: u32) -> u32;
    }

    #[test]
    fn a_state_file_is_replaced_owner_only_even_over_a_wider_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let tmp = dir.path().join("state.json.tmp");
        std::fs::write(&tmp, b"stale").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&file, b"new").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert!(!tmp.exists());
    }

    #[test]
    fn a_readable_state_directory_is_narrowed_to_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_state_directory_writable_by_others_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = prepare_dir(&dir).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "{}: the sandbox state directory is writable by others (mode 777); anyone who can \
                 write there can replace the sandbox's signing keys and operator secret",
                dir.display()
            )
        );
        assert_eq!(
            error.hint.unwrap(),
            format!(
                "make it yours alone (`chmod 700 {}`), or give --state another directory",
                dir.display()
            )
        );
        assert_eq!(mode(&dir), 0o777, "refused, not changed");
    }

    #[test]
    fn a_key_file_written_with_the_umask_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sandbox-key.pem");
        std::fs::write(&file, b"k").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
