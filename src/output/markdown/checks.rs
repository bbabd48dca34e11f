//! `render --check --output markdown` and `policy test --output markdown`: what fails first,
//! what passes folded away.

use super::{
    COMMENT_LIMIT, Comment, Context, cell, code, count, details, fenced, html, one_line, text,
};
use crate::policy::harness::CaseRun;
use crate::policy::simulator::Decision;
use crate::policy::{Change, Document, diff};
use crate::render::Drift;

/// `render --check`: in sync, or every committed file that is not what the templates give,
/// and the command that fixes it; for the file that should hold the render, what changes in
/// meaning when it is rendered again.
pub fn render_check(
    ctx: &Context,
    expected: &str,
    drifts: &[Drift],
    fresh: &str,
    fix: &str,
) -> String {
    let env = &ctx.env;
    let mut doc = Comment::new(
        "render-check",
        format!("provision render --env {env} --out DIR --check"),
    );
    let mut head = format!(
        "### `provision render --check`: environment {}\n\n",
        code(env)
    );
    if drifts.is_empty() {
        head.push_str(&format!(
            "**In sync**: {} is what the templates give.\n",
            code(expected)
        ));
        doc.head(head);
        return doc.finish(ctx, COMMENT_LIMIT);
    }
    head.push_str(&format!(
        "**{} from what the templates give.** To fix: {}, then commit the result.\n\n\
         | file | difference |\n|---|---|\n",
        count(
            drifts.len(),
            "committed file differs",
            "committed files differ"
        ),
        code(fix)
    ));
    doc.head(head);
    for d in drifts {
        doc.section(format!(
            "| {} | {} |\n",
            cell(&code(&d.file)),
            text(&d.detail)
        ));
    }
    for d in drifts {
        if let Some(committed) = &d.committed {
            doc.section(format!("\n{}", rerendered(&d.file, committed, fresh)));
        }
    }
    doc.finish(ctx, COMMENT_LIMIT)
}

/// What a fresh render changes in a committed file, by meaning, as `policy diff` sees it.
fn rerendered(file: &str, committed: &str, fresh: &str) -> String {
    let summary = format!("<code>{}</code> rendered again", html(file));
    let (Ok(old), Ok(new)) = (Document::parse(committed), Document::parse(fresh)) else {
        return details(&summary, "The committed file is not well-formed XML.\n");
    };
    let differences = diff(&old, &new);
    if differences.is_empty() {
        return details(
            &summary,
            "The same in meaning: only formatting differs (whitespace, attribute order, \
             quoting, comments).\n",
        );
    }
    let mut lines = Vec::new();
    for d in &differences {
        let path = &d.path;
        match &d.change {
            Change::Added(v) => lines.push(format!("+ {path}: {}", one_line(v))),
            Change::Removed(v) => lines.push(format!("- {path}: {}", one_line(v))),
            Change::Changed { old, new } => {
                lines.push(format!("- {path}: {}", one_line(old)));
                lines.push(format!("+ {path}: {}", one_line(new)));
            }
        }
    }
    details(
        &format!(
            "{summary}: {}",
            count(
                differences.len(),
                "difference in meaning",
                "differences in meaning"
            )
        ),
        &fenced("diff", &lines),
    )
}

/// `policy test`: the counts, failing cases in a table, passing ones folded.
pub fn policy_test(ctx: &Context, runs: &[CaseRun]) -> String {
    let env = &ctx.env;
    let mut doc = Comment::new("policy-test", format!("provision policy test --env {env}"));
    let failed: Vec<&CaseRun> = runs.iter().filter(|r| !r.passed).collect();
    let passed: Vec<&CaseRun> = runs.iter().filter(|r| r.passed).collect();
    let verdict = if failed.is_empty() {
        "every case passes"
    } else {
        "cases fail"
    };
    doc.head(format!(
        "### `provision policy test`: environment {}\n\n**{} passed, {} failed**: {verdict}.\n",
        code(env),
        passed.len(),
        failed.len()
    ));
    if !failed.is_empty() {
        doc.head(
            "\n#### Failing cases\n\n| case | source | expected | got | why |\n|---|---|---|---|---|\n"
                .to_owned(),
        );
        for run in &failed {
            let expected = expectation(run);
            let why = run.outcome.detail.as_deref().map(text).unwrap_or_default();
            doc.section(format!(
                "| {} | {} | {} | {} | {} |\n",
                text(&run.case.name),
                cell(&code(&run.source)),
                cell(&code(&expected)),
                cell(&code(&actual(run))),
                why
            ));
        }
    }
    if !passed.is_empty() {
        let mut body = "| case | source | result |\n|---|---|---|\n".to_owned();
        for run in &passed {
            body.push_str(&format!(
                "| {} | {} | {} |\n",
                text(&run.case.name),
                cell(&code(&run.source)),
                cell(&code(&actual(run)))
            ));
        }
        doc.section(format!(
            "\n{}",
            details(
                &format!("{} passing", count(passed.len(), "case", "cases")),
                &body
            )
        ));
    }
    doc.finish(ctx, COMMENT_LIMIT)
}

fn actual(run: &CaseRun) -> String {
    let o = &run.outcome;
    let mut out = format!("{} {}", o.status, decision(Some(o.decision)));
    if let Some(reason) = &o.reason {
        out.push(' ');
        out.push_str(reason);
    }
    out
}

fn expectation(run: &CaseRun) -> String {
    let e = &run.case.expect;
    let parts: Vec<String> = [
        e.status.map(|s| s.to_string()),
        Some(decision(e.decision)).filter(|d| !d.is_empty()),
        e.reason.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.join(" ")
}

/// A decision as its JSON name (`allow`, `deny`…).
fn decision(d: Option<Decision>) -> String {
    d.and_then(|d| serde_json::to_value(d).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
