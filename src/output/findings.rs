//! What `validate` finds, as it reads: problems with an environment or a template printed like
//! errors, lint findings as `file:line:col: severity: message [rule]` with the template line that
//! wrote them; `finding` lines with `--output json`.

use super::events::{JsonLine, TemplateLine};
use super::{DIM, ERROR, Printer, Problem, WARNING};
use crate::policy::Severity;
use crate::policy::validation::{InputProblem, TracedFinding};

/// A problem that is not a lint finding, printed like an error: on stdout, because findings are
/// what `validate` produces.
pub fn problem(printer: &Printer, env: &str, p: &InputProblem) {
    if !printer.json() {
        printer.out(&printer.problem_text(&Problem {
            message: p.located_message(),
            excerpt: p.excerpt.clone(),
            hint: p.hint.clone(),
        }));
        return;
    }
    printer.emit(&JsonLine::InputFinding {
        env: env.to_owned(),
        file: p.file.clone(),
        line: p.line,
        column: p.column,
        severity: Severity::Error,
        rule: p.rule.to_owned(),
        path: p.path.clone(),
        message: p.message.clone(),
        hint: p.hint.clone(),
    });
}

pub fn lint(printer: &Printer, env: &str, file: &str, traced: &TracedFinding) {
    let f = &traced.finding;
    if printer.json() {
        printer.emit(&JsonLine::PolicyFinding {
            env: env.to_owned(),
            file: file.to_owned(),
            line: f.line,
            column: f.column,
            severity: f.severity,
            rule: f.rule.to_owned(),
            message: f.message.clone(),
            template: traced
                .template
                .clone()
                .map(|(file, line)| TemplateLine { file, line }),
        });
        return;
    }
    let style = if f.severity == Severity::Error {
        ERROR
    } else {
        WARNING
    };
    let severity = printer.paint(style, &f.severity.to_string());
    printer.out(&format!(
        "{file}:{}:{}: {severity}: {} [{}]",
        f.line, f.column, f.message, f.rule
    ));
    if let Some((template, line)) = &traced.template {
        let arrow = printer.paint(DIM, "--> template");
        printer.out(&format!("  {arrow} {template}:{line}"));
    }
}
