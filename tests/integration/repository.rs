//! Properties of the repository itself that CI must hold.

use std::path::Path;

use crate::project::manifest_dir;

/// Every `.rs` file below `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Regression: in a clone with nothing beside it, `cargo test` failed because two tests read the
/// REST API examples from a directory outside the repository. Test data lives in `tests/fixtures`.
#[test]
fn tests_read_no_files_outside_the_repository() {
    let outside = ["..", "/shared/"].concat();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&manifest_dir().join(dir), &mut files);
    }
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(&outside))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
    assert!(
        manifest_dir()
            .join("tests/fixtures/azure-rest-api-specs/README.md")
            .is_file(),
        "the fixtures' source and licence note"
    );
}
