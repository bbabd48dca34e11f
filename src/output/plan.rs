//! How a plan reads: a tree of resources with their field changes and a summary line for people,
//! JSON lines for pipelines (schema in docs/json-output.md).

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use super::Printer;
use super::events::{Action, FieldChange, JsonLine, ResourceFinding};
use crate::engine::saved::{SavedPlan, Stale};
use crate::engine::{Plan, Planned};
use crate::resources::diff::show;
use crate::resources::{Change, UNKNOWN};

const CREATE: Style = AnsiColor::Green.on_default();
const UPDATE: Style = AnsiColor::Yellow.on_default();
const REPLACE: Style = AnsiColor::Red.on_default();

/// Longest value shown inline; longer ones (a policy document) show their first line.
const INLINE: usize = 100;

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints a plan: JSON lines with `--output json`, else the human tree, on stdout for `plan`
/// (`on_stdout`) and on stderr for `up`, whose result is what it did. An empty plan prints
/// nothing for `up`.
pub fn print(printer: &Printer, env: &str, plan: &Plan, on_stdout: bool) {
    if printer.json() {
        for line in json_lines(env, plan) {
            printer.emit(&line);
        }
    } else if on_stdout {
        printer.out(&human(plan));
    } else if plan.has_changes() {
        printer.note(&human(plan));
    }
}

/// Says where the plan was saved: a note on stderr (stdout holds the plan itself), or a
/// `plan_saved` line.
pub fn saved(printer: &Printer, path: &std::path::Path, plan: &SavedPlan) {
    if printer.json() {
        printer.emit(&JsonLine::PlanSaved {
            env: plan.env.clone(),
            path: path.display().to_string(),
            format: plan.format.clone(),
            resources: plan.resources.len(),
            changes: plan.changes,
        });
    } else {
        printer.note(&format!(
            "plan saved to {0}: `provision up --plan {0}` applies exactly it, or nothing if \
             anything changed since",
            path.display()
        ));
    }
}

/// The `stale` lines of `up --plan`, in JSON; people read them in the error that follows. A
/// plan still current says so in the log, as what a pipeline's reviewer approved is applied.
pub fn stale(printer: &Printer, env: &str, file: &std::path::Path, stale: &[Stale]) {
    if stale.is_empty() && !printer.json() {
        printer.note(&format!(
            "{} is current: nothing it was made from changed since; applying it to {env}",
            file.display()
        ));
    }
    if printer.json() {
        for s in stale {
            printer.emit(&JsonLine::Stale {
                env: env.to_owned(),
                kind: s.address.kind,
                name: s.address.name.clone(),
                saved: s.saved.as_ref().map(|f| f.show()),
                found: s.found.as_ref().map(|f| f.show()),
                message: s.line(),
            });
        }
    }
}

/// The human plan; the printer strips the styles when colour is off.
pub fn human(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.resources {
        match &r.change {
            Change::NoOp => {}
            Change::Create => {
                out.push_str(&format!("{} {}\n", paint(CREATE, "  +"), r.address));
                for (path, value) in leaves("", &r.desired) {
                    out.push_str(&format!("      {path}: {}\n", short(&value)));
                }
            }
            Change::Update(changes) => {
                out.push_str(&format!("{} {}\n", paint(UPDATE, "  ~"), r.address));
                for c in changes {
                    let line = match (&c.old, &c.new) {
                        (None, Some(new)) => format!("{}: + {}", c.path, short(new)),
                        (Some(old), None) => format!("{}: - {}", c.path, short(old)),
                        _ => format!(
                            "{}: {} → {}",
                            c.path,
                            c.old.as_ref().map_or("(absent)".into(), short),
                            c.new.as_ref().map_or("(absent)".into(), short)
                        ),
                    };
                    out.push_str(&format!("      {line}\n"));
                }
            }
            Change::Replace { reason } => {
                out.push_str(&format!("{} {}\n", paint(REPLACE, "-/+"), r.address));
                out.push_str(&format!("      replaced: {reason}\n"));
            }
            Change::Delete { reason } => {
                out.push_str(&format!("{} {}\n", paint(REPLACE, "  -"), r.address));
                out.push_str(&format!("      deleted: {reason}\n"));
            }
        }
    }
    // Model lifecycle findings (`model-…`) are not about security: they get their own heading.
    for (heading, models) in [("security findings:", false), ("model findings:", true)] {
        let findings: Vec<String> = plan
            .findings()
            .filter(|(_, f)| f.rule.starts_with("model-") == models)
            .map(|(address, f)| format!("  ! {address}: {} [{}]\n", f.message, f.rule))
            .collect();
        if !findings.is_empty() {
            out.push_str(&format!("\n{}\n", paint(REPLACE, heading)));
            for f in findings {
                out.push_str(&f);
            }
        }
    }
    let s = plan.summary();
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "{} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.unchanged
    ));
    out
}

/// One line per resource, then the summary.
pub fn json_lines(env: &str, plan: &Plan) -> Vec<JsonLine> {
    let mut lines: Vec<JsonLine> = plan.resources.iter().map(|r| resource(env, r)).collect();
    let s = plan.summary();
    lines.push(JsonLine::PlanSummary {
        env: env.to_owned(),
        create: s.create,
        update: s.update,
        replace: s.replace,
        delete: s.delete,
        purge: 0,
        unchanged: s.unchanged,
        findings: plan.findings().count(),
        changes: plan.has_changes(),
    });
    lines
}

fn resource(env: &str, r: &Planned) -> JsonLine {
    let (action, changes, reason) = match &r.change {
        Change::Create => (
            Action::Create,
            leaves("", &r.desired)
                .into_iter()
                .map(|(path, new)| FieldChange {
                    path,
                    old: None,
                    new: Some(unknown_as_null(&new)),
                })
                .collect(),
            None,
        ),
        Change::Update(changes) => (
            Action::Update,
            changes
                .iter()
                .map(|c| FieldChange {
                    path: c.path.clone(),
                    old: c.old.clone(),
                    new: c.new.as_ref().map(unknown_as_null),
                })
                .collect(),
            None,
        ),
        Change::Replace { reason } => (Action::Replace, Vec::new(), Some(reason.clone())),
        Change::Delete { reason } => (Action::Delete, Vec::new(), Some(reason.clone())),
        Change::NoOp => (Action::NoOp, Vec::new(), None),
    };
    JsonLine::Resource {
        env: env.to_owned(),
        kind: r.address.kind,
        name: r.address.name.clone(),
        action,
        changes,
        reason,
        findings: r
            .findings
            .iter()
            .map(|f| ResourceFinding {
                rule: f.rule.to_owned(),
                message: f.message.clone(),
            })
            .collect(),
    }
}

/// In JSON, a value known only after apply is `null`.
fn unknown_as_null(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains(UNKNOWN) => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(unknown_as_null).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), unknown_as_null(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Leaf paths of a JSON value, lists kept whole.
pub(crate) fn leaves(prefix: &str, value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::Object(fields) if !fields.is_empty() => fields
            .iter()
            .flat_map(|(k, v)| {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v)
            })
            .collect(),
        other => vec![(prefix.to_owned(), other.clone())],
    }
}

/// A value on one line: long ones cut at [`INLINE`] characters, multi-line ones (a policy
/// document) as their first non-blank line and a line count.
pub(crate) fn short(value: &Value) -> String {
    let text = show(value);
    let lines: Vec<&str> = text.split("\\n").collect();
    if lines.len() == 1 {
        if text.chars().count() <= INLINE {
            return text;
        }
        let cut: String = text.chars().take(INLINE).collect();
        return format!("{cut}…");
    }
    let first = lines
        .iter()
        .map(|l| l.trim_matches(|c: char| c == '"' || c.is_whitespace()))
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let first: String = first.chars().take(60).collect();
    format!("\"{first}…\" ({} lines)", lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_values_are_cut_and_documents_counted() {
        let long = json!("x".repeat(120));
        assert_eq!(short(&long), format!("\"{}…", "x".repeat(99)));
        assert_eq!(short(&json!("\n   abc\n  ")), "\"abc…\" (3 lines)");
        assert_eq!(short(&json!("short")), "\"short\"");
    }
}
