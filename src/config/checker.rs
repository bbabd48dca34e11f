//! The diagnostics collector of validation: every rule reports through it, so that each problem
//! points at the file and line behind its key path and all of them are reported together.

use marked_yaml::Node;

use super::diagnostic::Diagnostic;
use super::tree::{self, KeyPath, Sources};

/// Collects diagnostics while converting, pointing each at the file and line behind its key path.
pub struct Checker<'a> {
    pub root: &'a Node,
    pub sources: &'a Sources,
    pub leaf_file: &'a str,
    /// Checks a directory against the file system (symbolic links), when resolving from disk.
    pub confine: &'a super::ConfineDir<'a>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn diagnostic(&self, path: &KeyPath, message: String) -> Diagnostic {
        let diagnostic = Diagnostic::new(message).path(path.to_string());
        // Point at the key when it exists, else at the nearest enclosing key; a key missing at the
        // top level has no line to point at, only the environment's own file.
        if existing_depth(self.root, path) > 0
            && let Some(location) = self.sources.location(tree::locate(self.root, path))
        {
            return diagnostic.at(Some(location));
        }
        diagnostic.in_file(self.leaf_file)
    }

    pub fn error(&mut self, path: &KeyPath, message: impl Into<String>) {
        let d = self.diagnostic(path, message.into());
        self.diagnostics.push(d);
    }

    pub fn error_hint(
        &mut self,
        path: &KeyPath,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let d = self.diagnostic(path, message.into()).with_hint(hint);
        self.diagnostics.push(d);
    }

    pub fn required<T>(&mut self, value: Option<T>, path: &KeyPath) -> Option<T> {
        if value.is_none() {
            let key = match path.0.last() {
                Some(tree::Segment::Key(k)) => k.clone(),
                _ => path.to_string(),
            };
            self.error(path, format!("missing required key `{key}`"));
        }
        value
    }

    pub fn rule(&mut self, path: &KeyPath, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => true,
            Err(message) => {
                self.error(path, message);
                false
            }
        }
    }
}

/// How many leading segments of `path` exist in the tree.
fn existing_depth(root: &Node, path: &KeyPath) -> usize {
    (1..=path.0.len())
        .rev()
        .find(|&n| tree::get(root, &KeyPath(path.0[..n].to_vec())).is_some())
        .unwrap_or(0)
}
