//! How a teardown reads: the preview (`plan --destroy`, and `down` before it acts) in the plan's
//! shape — `-` delete, `x` purge, `!` left alone with the reason — and `down`'s closing summary,
//! which names what stays soft-deleted, until when, and the command that purges it.

use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::Printer;
use super::events::{Action, JsonLine, SoftDeleted};
use crate::engine::{Survey, TornDown};

const DELETE: Style = AnsiColor::Red.on_default();
const SKIP: Style = AnsiColor::Yellow.on_default();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Counts of a preview: (delete, purge, skipped).
fn counts(survey: &Survey, purge: bool) -> (usize, usize, usize) {
    let delete = survey.doomed.iter().filter(|d| d.removal.is_some()).count();
    let purges = if purge {
        survey.doomed.iter().filter(|d| d.purge.is_some()).count()
    } else {
        0
    };
    (delete, purges, survey.skipped.len())
}

/// Prints the preview: on stdout for `plan --destroy` (`on_stdout`), on stderr for `down`.
pub fn preview(printer: &Printer, env: &str, survey: &Survey, purge: bool, on_stdout: bool) {
    if printer.json() {
        for line in json_lines(env, survey, purge) {
            printer.emit(&line);
        }
        return;
    }
    let mut out = String::new();
    for d in &survey.doomed {
        if d.removal.is_some() {
            out.push_str(&format!("{} {}\n", paint(DELETE, "  -"), d.address));
        }
        if purge && d.purge.is_some() {
            out.push_str(&format!(
                "{} {} (soft-deleted copy)\n",
                paint(DELETE, "  x"),
                d.address
            ));
        }
    }
    for s in &survey.skipped {
        out.push_str(&format!(
            "{} {}: left alone, {}\n",
            paint(SKIP, "  !"),
            s.address,
            s.reason
        ));
    }
    let (delete, purges, skipped) = counts(survey, purge);
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "{delete} to delete, {purges} to purge, {skipped} left alone."
    ));
    if on_stdout {
        printer.out(&out);
    } else {
        printer.note(&out);
    }
}

/// One line per resource (`delete`, `purge`, `skip`), then the plan summary.
pub fn json_lines(env: &str, survey: &Survey, purge: bool) -> Vec<JsonLine> {
    let line = |address: &crate::resources::Address, action: Action, reason: Option<String>| {
        JsonLine::Resource {
            env: env.to_owned(),
            kind: address.kind,
            name: address.name.clone(),
            action,
            changes: Vec::new(),
            reason,
            findings: Vec::new(),
        }
    };
    let mut lines = Vec::new();
    for d in &survey.doomed {
        if d.removal.is_some() {
            lines.push(line(&d.address, Action::Delete, None));
        }
        if purge && d.purge.is_some() {
            lines.push(line(&d.address, Action::Purge, d.held_until.clone()));
        }
    }
    for s in &survey.skipped {
        lines.push(line(&s.address, Action::Skip, Some(s.reason.clone())));
    }
    let (delete, purges, _) = counts(survey, purge);
    lines.push(JsonLine::PlanSummary {
        env: env.to_owned(),
        create: 0,
        update: 0,
        replace: 0,
        delete,
        purge: purges,
        unchanged: 0,
        findings: 0,
        changes: delete + purges > 0,
    });
    lines
}

/// The command that purges what a `down` without `--purge` left.
pub fn purge_command(env: &str) -> String {
    format!("provision down --env {env} --purge")
}

/// `down`'s last words.
pub fn summary(printer: &Printer, env: &str, torn: &TornDown, elapsed: Duration) {
    let left: Vec<SoftDeleted> = torn
        .left
        .iter()
        .map(|(address, _, until)| SoftDeleted {
            kind: address.kind,
            name: address.name.clone(),
            until: until.clone(),
        })
        .collect();
    let command = (!left.is_empty()).then(|| purge_command(env));
    if printer.json() {
        printer.emit(&JsonLine::Down {
            env: env.to_owned(),
            removed: torn.removed,
            purged: torn.purged,
            writes: torn.writes,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            soft_deleted: left,
            purge_command: command,
            purge_refused: torn.refused.clone(),
        });
        return;
    }
    let mut out = format!(
        "environment {env} torn down: {} removed, {} purged, in {}.",
        torn.removed,
        torn.purged,
        crate::clock::format_duration(elapsed)
    );
    if let Some(command) = command {
        out.push_str("\nleft soft-deleted, holding their names:");
        for s in &left {
            let label = s.kind_label();
            match &s.until {
                Some(until) => out.push_str(&format!("\n  {label} {} until {until}", s.name)),
                None => out.push_str(&format!("\n  {label} {}", s.name)),
            }
        }
        out.push_str(&format!("\nto free the names now: {command}"));
    }
    printer.out(&out);
    for reason in &torn.refused {
        printer.note(&format!(
            "warning: {reason}\n  hint: purging needs rights at the subscription (API Management \
             Service Contributor, Cognitive Services Contributor) or in the directory; run the \
             command above as such an identity, or let the names free themselves"
        ));
    }
}

impl SoftDeleted {
    fn kind_label(&self) -> &'static str {
        self.kind.label()
    }
}
