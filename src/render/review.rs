//! The policy as `render` hands it on and `validate` lints it, and `render --check`: whether the
//! committed files of an environment are what its templates give today (a GitOps gate). Reading
//! the committed directory is this module's one piece of I/O, an explicit loader like
//! [`super::TemplateSet::load`].

use std::path::Path;

use super::{RenderError, ResolvedAppIds, TemplateSet, output_file, render, render_preview};
use crate::config::Blueprint;

/// The rendered text and the placeholders it holds (empty unless offline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub xml: String,
    pub placeholders: Vec<String>,
}

/// Deployable when every app id is pinned, a preview with placeholders when `offline` allows it.
pub fn for_review(
    blueprint: &Blueprint,
    templates: &TemplateSet,
    offline: bool,
) -> Result<Rendered, RenderError> {
    match ResolvedAppIds::pinned(blueprint) {
        Some(ids) => Ok(Rendered {
            xml: render(blueprint, templates, &ids)?.xml().to_owned(),
            placeholders: Vec::new(),
        }),
        None if offline => {
            let preview = render_preview(blueprint, templates)?;
            Ok(Rendered {
                xml: preview.xml().to_owned(),
                placeholders: preview.placeholders,
            })
        }
        None => Err(RenderError::Unpinned {
            file: blueprint.file.clone(),
            missing: ResolvedAppIds::missing(blueprint)
                .into_iter()
                .map(|(path, name)| format!("{path} ({name})"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A committed file that is not what the templates give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub file: String,
    /// The first differing line, `missing: …` or `stale: …`.
    pub detail: String,
    /// The committed text of a file that should hold the render and does not, for a semantic
    /// diff against it.
    pub committed: Option<String>,
}

/// Compares the committed files of this environment under `dir` with a fresh render; returns
/// the file that should hold it, and every drift.
pub fn drift(dir: &Path, blueprint: &Blueprint, fresh: &str) -> (String, Vec<Drift>) {
    let mut drifts = Vec::new();
    let expected = dir.join(output_file(blueprint));
    match std::fs::read_to_string(&expected) {
        Ok(committed) if committed == fresh => {}
        Ok(committed) => drifts.push(Drift {
            file: expected.display().to_string(),
            detail: first_difference(&committed, fresh),
            committed: Some(committed),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => drifts.push(Drift {
            file: expected.display().to_string(),
            detail: "missing: not rendered yet".to_owned(),
            committed: None,
        }),
        // Unreadable is not "missing": say what stood in the way.
        Err(e) => drifts.push(Drift {
            file: expected.display().to_string(),
            detail: format!("unreadable: {e}"),
            committed: None,
        }),
    }
    // Files for this environment that the templates no longer produce (e.g. a renamed API id).
    if let Ok(entries) = std::fs::read_dir(dir.join(&blueprint.env)) {
        let mut stale: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml") && *p != expected)
            .map(|p| p.display().to_string())
            .collect();
        stale.sort();
        drifts.extend(stale.into_iter().map(|file| Drift {
            file,
            detail: "stale: no longer produced by the templates".to_owned(),
            committed: None,
        }));
    }
    (expected.display().to_string(), drifts)
}

/// The first differing line, so a CI log shows what changed without a diff tool.
fn first_difference(committed: &str, fresh: &str) -> String {
    let mut old = committed.lines();
    let mut new = fresh.lines();
    let mut line = 1;
    loop {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (None, None) => return "line endings or trailing newline differ".to_owned(),
            (a, b) => {
                return format!(
                    "line {line}: committed {:?}, templates give {:?}",
                    a.unwrap_or("<end of file>").trim(),
                    b.unwrap_or("<end of file>").trim()
                );
            }
        }
    }
}
