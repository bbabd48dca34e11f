//! `provision render`: the policy XML for review, to stdout or files, and `--check` as a GitOps
//! gate; `--live` renders with the deployed environment's app ids, as `up` stores it.

use std::path::Path;

use super::{ExitStatus, load_target, load_templates};
use crate::cli::{GlobalArgs, RenderArgs};
use crate::config::Blueprint;
use crate::output::{DIM, ERROR, JsonLine, Printer, markdown};
use crate::policy::Document;
use crate::render::{self, RenderError};

pub fn run(global: &GlobalArgs, args: RenderArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if args.live {
        let (blueprint, live) = super::live_policy(global, &args.env, &args.azure, printer)?;
        if printer.json() {
            printer.emit(&JsonLine::Policy {
                env: blueprint.env.clone(),
                api_id: blueprint.api.id.clone(),
                file: render::output_file(&blueprint),
                placeholders: Vec::new(),
                xml: live.rendered,
            });
        } else {
            printer.out_raw(&live.rendered);
        }
        return Ok(ExitStatus::Success);
    }
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let templates = load_templates(&global.templates_dir, &blueprint)?;
    let rendered = render::for_review(&blueprint, &templates, args.offline)?;
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
    let env = blueprint.env.clone();
    match (&args.out, args.check) {
        (None, _) if printer.json() => printer.emit(&JsonLine::Policy {
            env,
            api_id: blueprint.api.id.clone(),
            file: render::output_file(&blueprint),
            placeholders: rendered.placeholders,
            xml: rendered.xml,
        }),
        (None, _) => printer.out_raw(&rendered.xml),
        (Some(dir), false) => {
            let path = dir.join(render::output_file(&blueprint));
            write(&path, &rendered.xml)?;
            let path = path.display().to_string();
            if printer.json() {
                printer.emit(&JsonLine::Written { env, path });
            } else {
                printer.note(&format!("wrote {path}"));
            }
        }
        (Some(dir), true) => return Ok(check(dir, &blueprint, &rendered.xml, printer)),
    }
    Ok(ExitStatus::Success)
}

fn write(path: &Path, xml: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, xml).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Compares the committed files of this environment with a fresh render.
fn check(dir: &Path, blueprint: &Blueprint, fresh: &str, printer: &Printer) -> ExitStatus {
    let env = &blueprint.env;
    let (expected, drifts) = render::drift(dir, blueprint, fresh);
    let fix = format!("provision render --env {env} --out {}", dir.display());
    if printer.markdown() {
        let ctx = markdown::Context::of(blueprint);
        printer.out_raw(&markdown::render_check(
            &ctx, &expected, &drifts, fresh, &fix,
        ));
        return if drifts.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        };
    }
    for d in &drifts {
        if printer.json() {
            printer.emit(&JsonLine::FileDifference {
                env: env.clone(),
                file: d.file.clone(),
                detail: d.detail.clone(),
            });
        } else {
            let differs = printer.paint(ERROR, "differs:");
            printer.out(&format!("{}: {differs} {}", d.file, d.detail));
        }
    }
    if drifts.is_empty() {
        if printer.json() {
            printer.emit(&JsonLine::InSync {
                env: env.clone(),
                file: expected,
            });
        } else {
            printer.note(&format!("{expected}: in sync with the templates"));
        }
        return ExitStatus::Success;
    }
    printer.note(&printer.hint_text(&format!("run `{fix}` and commit the result")));
    ExitStatus::Failure
}
