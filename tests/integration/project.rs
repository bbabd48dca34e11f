//! A throw-away copy of the shipped environments and templates, to run the binary against.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A temporary working directory holding copies of `environments/` and `templates/`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &manifest_dir().join("environments"),
            &dir.path().join("environments"),
        );
        copy_tree(
            &manifest_dir().join("templates"),
            &dir.path().join("templates"),
        );
        Project { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    /// The binary, run in this project with colour off.
    pub fn provision(&self) -> Command {
        let mut cmd = Command::cargo_bin("provision").unwrap();
        cmd.current_dir(self.dir.path())
            .arg("--color")
            .arg("never")
            .env_remove("RUST_LOG");
        cmd
    }
}
