//! `provision validate`: load and check environments, render their policies, lint the result.

use std::borrow::Cow;

use serde_json::json;

use super::{ExitStatus, load_templates, render::render_blueprint};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::config::{self, Blueprint, Environment};
use crate::hint::Remedy;
use crate::output::{DIM, ERROR, GOOD, Printer, WARNING};
use crate::policy::{Finding, LintContext, Severity, lint};
use crate::render::{self, RenderError, TemplateSet};

#[derive(Default)]
struct Tally {
    errors: usize,
    warnings: usize,
}

pub fn run(
    global: &GlobalArgs,
    args: ValidateArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let names = match (&args.env, args.all) {
        (Some(env), _) => vec![env.clone()],
        (None, _) => config::list(&global.env_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot list environments in {}: {e}",
                global.env_dir.display()
            )
        })?,
    };
    if names.is_empty() {
        return Err(crate::hint::Hinted::error(
            format!("no environments in {}", global.env_dir.display()),
            "environments are files named <name>.yaml; see --env-dir",
        ));
    }
    let mut total = Tally::default();
    for name in &names {
        let tally = validate_one(global, name, printer);
        total.errors += tally.errors;
        total.warnings += tally.warnings;
    }
    if printer.json() {
        printer.emit(&json!({
            "type": "summary",
            "environments": names.len(),
            "errors": total.errors,
            "warnings": total.warnings,
        }));
    } else if names.len() > 1 {
        printer.note(&format!(
            "{} environments: {} error(s), {} warning(s)",
            names.len(),
            total.errors,
            total.warnings
        ));
    }
    Ok(if total.errors > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn validate_one(global: &GlobalArgs, name: &str, printer: &Printer) -> Tally {
    let mut tally = Tally::default();
    let file = match check_one(global, name, printer, &mut tally) {
        Some(file) => file,
        None => return tally,
    };
    if printer.json() {
        printer.emit(&json!({
            "type": "environment", "env": name, "file": file,
            "status": if tally.errors > 0 { "failed" } else { "ok" },
            "errors": tally.errors, "warnings": tally.warnings,
        }));
    } else if tally.errors == 0 {
        let detail = if tally.warnings > 0 {
            format!(" ({} warning(s))", tally.warnings)
        } else {
            String::new()
        };
        printer.out(&format!("{name}: {}{detail}", printer.paint(GOOD, "ok")));
    } else {
        printer.out(&format!(
            "{name}: {} ({} error(s), {} warning(s))",
            printer.paint(ERROR, "failed"),
            tally.errors,
            tally.warnings
        ));
    }
    tally
}

/// A problem that is not a lint finding (environment or template), printed like one: on stdout,
/// because findings are what `validate` produces.
struct Problem<'a> {
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    rule: &'static str,
    path: Option<&'a str>,
    message: String,
    hint: Option<String>,
    /// The quoted source line under the message (YAML syntax errors).
    excerpt: Option<&'a str>,
}

fn report_problem(printer: &Printer, env: &str, p: &Problem<'_>) {
    if printer.json() {
        printer.emit(&json!({
            "type": "finding", "env": env, "file": p.file, "line": p.line, "column": p.column,
            "severity": "error", "rule": p.rule, "path": p.path, "message": p.message, "hint": p.hint,
        }));
        return;
    }
    let mut location = String::new();
    if let Some(f) = &p.file {
        location.push_str(f);
        if let (Some(l), Some(c)) = (p.line, p.column) {
            location.push_str(&format!(":{l}:{c}"));
        }
        location.push_str(": ");
    }
    if let Some(path) = p.path {
        location.push_str(&format!("{path}: "));
    }
    printer.out(&printer.problem_text(&crate::output::Problem {
        message: format!("{location}{}", p.message),
        excerpt: p.excerpt.map(str::to_owned),
        hint: p.hint.clone(),
    }));
}

/// Checks one environment; returns its file for the summary, or `None` for an abstract one.
fn check_one(
    global: &GlobalArgs,
    name: &str,
    printer: &Printer,
    tally: &mut Tally,
) -> Option<String> {
    let blueprint = match config::load(&global.env_dir, name) {
        Ok(Environment::Target(b)) => *b,
        Ok(Environment::Abstract { file, .. }) => {
            if printer.json() {
                printer.emit(&json!({ "type": "environment", "env": name, "file": file, "status": "abstract" }));
            } else {
                printer.out(&format!(
                    "{name}: {} (abstract: checked through the environments that extend it)",
                    printer.paint(GOOD, "ok")
                ));
            }
            return None;
        }
        Err(e) => {
            report_environment(printer, name, &e, tally);
            return Some(
                global
                    .env_dir
                    .join(format!("{name}.yaml"))
                    .display()
                    .to_string(),
            );
        }
    };
    let rendered = match render_blueprint(global, &blueprint, true) {
        Ok(r) => r.xml,
        Err(e) => {
            if let Some(RenderError::Vars(config)) = e.downcast_ref::<RenderError>() {
                report_environment(printer, name, config, tally);
                return Some(blueprint.file);
            }
            tally.errors += 1;
            let problem = match e.downcast_ref::<RenderError>() {
                Some(RenderError::Variable {
                    file,
                    line,
                    column,
                    message,
                    hint,
                }) => Problem {
                    file: Some(file.clone()),
                    line: Some(*line),
                    column: Some(*column),
                    rule: "template",
                    path: None,
                    message: message.clone(),
                    hint: hint.clone(),
                    excerpt: None,
                },
                Some(RenderError::Syntax {
                    file,
                    line,
                    column,
                    message,
                }) => Problem {
                    file: Some(file.clone()),
                    line: Some(*line),
                    column: Some(*column),
                    rule: "template",
                    path: None,
                    message: format!("template syntax error: {message}"),
                    hint: e
                        .downcast_ref::<RenderError>()
                        .and_then(|e| e.hint().map(Cow::into_owned)),
                    excerpt: None,
                },
                Some(other) => Problem {
                    file: None,
                    line: None,
                    column: None,
                    rule: "template",
                    path: None,
                    message: other.to_string(),
                    hint: other.hint().map(Cow::into_owned),
                    excerpt: None,
                },
                None => Problem {
                    file: None,
                    line: None,
                    column: None,
                    rule: "template",
                    path: None,
                    message: e.to_string(),
                    hint: None,
                    excerpt: None,
                },
            };
            report_problem(printer, name, &problem);
            return Some(blueprint.file);
        }
    };
    let templates = load_templates(&global.templates_dir, &blueprint).ok();
    let file = render::output_file(&blueprint);
    let findings = lint_rendered(&blueprint, &rendered);
    for finding in &findings {
        match finding.severity {
            Severity::Error => tally.errors += 1,
            Severity::Warning => tally.warnings += 1,
        }
        let origin = templates.as_ref().and_then(|t| template_origin(t, finding));
        if printer.json() {
            printer.emit(&json!({
                "type": "finding", "env": name, "file": file, "line": finding.line, "column": finding.column,
                "severity": finding.severity, "rule": finding.rule, "message": finding.message,
                "template": origin.as_ref().map(|(f, l)| json!({ "file": f, "line": l })),
            }));
        } else {
            let style = if finding.severity == Severity::Error {
                ERROR
            } else {
                WARNING
            };
            printer.out(&format!(
                "{file}:{}:{}: {}: {} [{}]",
                finding.line,
                finding.column,
                printer.paint(style, &finding.severity.to_string()),
                finding.message,
                finding.rule
            ));
            if let Some((f, l)) = origin {
                printer.out(&format!("  {} {f}:{l}", printer.paint(DIM, "--> template")));
            }
        }
    }
    Some(blueprint.file)
}

/// Every problem with an environment's values, as `rule: environment` findings.
fn report_environment(
    printer: &Printer,
    env: &str,
    error: &config::ConfigError,
    tally: &mut Tally,
) {
    for d in &error.diagnostics {
        tally.errors += 1;
        let (file, line, column) = match &d.location {
            Some(l) => (Some(l.file.clone()), Some(l.line), Some(l.column)),
            None => (d.file.clone(), None, None),
        };
        let problem = Problem {
            file,
            line,
            column,
            rule: "environment",
            path: d.path.as_deref(),
            message: d.message.clone(),
            hint: d.hint.clone(),
            excerpt: d.excerpt.as_deref(),
        };
        report_problem(printer, env, &problem);
    }
}

/// Lints a rendered policy against the environment it was rendered for.
pub(super) fn lint_rendered(blueprint: &Blueprint, xml: &str) -> Vec<Finding> {
    let (api, clients) = render::preview_app_ids(blueprint);
    let ctx = LintContext {
        tenant_id: blueprint.tenant_id.as_str(),
        api_app_id: &api,
        client_app_ids: &clients,
    };
    lint(xml, &ctx)
}

/// The template line that wrote the element a finding is about, when exactly one template line
/// opens that element. Tera keeps no source map, so this is a search, and says nothing when unsure.
fn template_origin(templates: &TemplateSet, finding: &Finding) -> Option<(String, usize)> {
    let element = finding.element.as_ref()?;
    let opening = format!("<{element}");
    let mut hits = Vec::new();
    for (file, text) in templates.sources() {
        for (i, line) in text.lines().enumerate() {
            if let Some(at) = line.find(&opening) {
                let next = line[at + opening.len()..].chars().next();
                if next.is_none_or(|c| c.is_whitespace() || c == '>' || c == '/') {
                    hits.push((file.to_owned(), i + 1));
                }
            }
        }
    }
    (hits.len() == 1).then(|| hits.remove(0))
}
