//! `provision render`: the policy XML for review, to stdout or files, and `--check` as a GitOps gate.

use std::path::Path;

use serde_json::json;

use super::{ExitStatus, load_target, load_templates};
use crate::cli::{GlobalArgs, RenderArgs};
use crate::config::Blueprint;
use crate::hint::Hinted;
use crate::output::{DIM, ERROR, Printer};
use crate::policy::Document;
use crate::render::{self, RenderError, ResolvedAppIds};

/// The rendered text and the placeholders it holds (empty unless offline).
pub(super) struct Rendered {
    pub xml: String,
    pub placeholders: Vec<String>,
}

/// Renders an environment's policy: deployable when every app id is pinned, a preview with
/// placeholders when `offline` allows it.
pub(super) fn render_blueprint(
    global: &GlobalArgs,
    blueprint: &Blueprint,
    offline: bool,
) -> anyhow::Result<Rendered> {
    let templates = load_templates(&global.templates_dir, blueprint)?;
    let rendered = match ResolvedAppIds::pinned(blueprint) {
        Some(ids) => Rendered {
            xml: render::render(blueprint, &templates, &ids)?
                .xml()
                .to_owned(),
            placeholders: Vec::new(),
        },
        None if offline => {
            let preview = render::render_preview(blueprint, &templates)?;
            Rendered {
                xml: preview.xml().to_owned(),
                placeholders: preview.placeholders,
            }
        }
        None => {
            let missing = ResolvedAppIds::missing(blueprint)
                .into_iter()
                .map(|(path, name)| format!("{path} ({name})"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Hinted::error(
                format!(
                    "{}: the policy pins app ids that are not known: {missing}",
                    blueprint.file
                ),
                "pass --offline to render them as placeholders for review, or pin `app_id:` for apps that already exist",
            ));
        }
    };
    Ok(rendered)
}

pub fn run(global: &GlobalArgs, args: RenderArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let rendered = render_blueprint(global, &blueprint, args.offline)?;
    // Values are escaped, so only a template can break the XML; refuse to hand it on.
    if let Err(e) = Document::parse(&rendered.xml) {
        let template = super::templates_dir(&global.templates_dir, &blueprint)
            .join(render::template_name(&blueprint));
        return Err(RenderError::Malformed {
            file: template.display().to_string(),
            message: format!("rendered line {}: {}", e.position, e.message),
        }
        .into());
    }
    if !rendered.placeholders.is_empty() {
        let note = format!(
            "note: {} app id(s) rendered as placeholders; this policy is for review only",
            rendered.placeholders.len()
        );
        printer.note(&printer.paint(DIM, &note));
    }
    let relative = render::output_file(&blueprint);
    match (&args.out, args.check) {
        (None, _) => {
            if printer.json() {
                printer.emit(&json!({
                    "type": "policy",
                    "env": blueprint.env,
                    "api_id": blueprint.api.id,
                    "file": relative,
                    "placeholders": rendered.placeholders,
                    "xml": rendered.xml,
                }));
            } else {
                printer.out_raw(&rendered.xml);
            }
            Ok(ExitStatus::Success)
        }
        (Some(dir), false) => {
            let path = dir.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, &rendered.xml)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            if printer.json() {
                printer.emit(&json!({ "type": "written", "env": blueprint.env, "path": path.display().to_string() }));
            } else {
                printer.note(&format!("wrote {}", path.display()));
            }
            Ok(ExitStatus::Success)
        }
        (Some(dir), true) => check(dir, &blueprint, &relative, &rendered.xml, printer),
    }
}

/// Compares the committed files of this environment with a fresh render.
fn check(
    dir: &Path,
    blueprint: &Blueprint,
    relative: &str,
    fresh: &str,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let expected = dir.join(relative);
    match std::fs::read_to_string(&expected) {
        Ok(committed) if committed == fresh => {}
        Ok(committed) => problems.push((
            expected.display().to_string(),
            first_difference(&committed, fresh),
        )),
        Err(_) => problems.push((
            expected.display().to_string(),
            "missing: not rendered yet".to_owned(),
        )),
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
        problems.extend(
            stale
                .into_iter()
                .map(|p| (p, "stale: no longer produced by the templates".to_owned())),
        );
    }
    for (file, what) in &problems {
        if printer.json() {
            printer.emit(&json!({ "type": "difference", "env": blueprint.env, "file": file, "detail": what }));
        } else {
            printer.out(&format!(
                "{file}: {} {what}",
                printer.paint(ERROR, "differs:")
            ));
        }
    }
    if problems.is_empty() {
        if printer.json() {
            printer.emit(&json!({ "type": "in_sync", "env": blueprint.env, "file": expected.display().to_string() }));
        } else {
            printer.note(&format!(
                "{}: in sync with the templates",
                expected.display()
            ));
        }
        Ok(ExitStatus::Success)
    } else {
        printer.note(&printer.hint_text(&format!(
            "run `provision render --env {} --out {}` and commit the result",
            blueprint.env,
            dir.display()
        )));
        Ok(ExitStatus::Failure)
    }
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
