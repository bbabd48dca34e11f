//! `--output markdown`: one comment-ready document per command, for a pull request (GitHub,
//! Azure DevOps). What a reviewer must not miss comes first (security findings, failing checks);
//! the rest folds into `<details>` sections. The text depends on nothing but what the command
//! found: no timestamps, no colour, no temporary paths, and the sandbox's address (a random port
//! in tests, a different one on each laptop) shown as `{sandbox.address}`, so posting the same
//! plan twice gives the same bytes and a bot can skip an unchanged comment.
//!
//! Everything interpolated is escaped for where it lands: Markdown text, a table cell, a code
//! span, HTML inside `<summary>`, or a fenced block whose fence is longer than any run of
//! backticks inside it. GitHub refuses a comment over 65,536 characters
//! (<https://github.com/orgs/community/discussions/27190>); a longer document is cut at a
//! section boundary with a line saying how much was left out and which command shows it all.

mod checks;
mod plan;

pub use checks::{policy_test, render_check};
pub use plan::{destroy, plan};

/// GitHub's limit on an issue or pull-request comment, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// What every document needs besides its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub env: String,
    /// The sandbox's `host:port`, replaced by `{sandbox.address}` wherever it appears (`None`
    /// for Azure's clouds, whose addresses are the same everywhere).
    pub sandbox_address: Option<String>,
    /// The expiry a `lifetime:` gives what the plan creates, and what to show instead: it is
    /// computed from the moment of planning, so shown as is it would change every comment.
    pub expires: Option<(String, String)>,
}

impl Context {
    /// For an environment: its sandbox's address is hidden when its cloud is the sandbox.
    pub fn of(blueprint: &crate::config::Blueprint) -> Context {
        Context {
            env: blueprint.env.clone(),
            sandbox_address: (blueprint.cloud == crate::cloud::Cloud::Sandbox)
                .then(|| blueprint.sandbox_address.clone()),
            expires: blueprint.expires.clone().map(|at| {
                let shown = match blueprint.lifetime {
                    Some(lifetime) => format!(
                        "(time of planning + {})",
                        crate::clock::format_duration(lifetime)
                    ),
                    None => "(set at planning)".to_owned(),
                };
                (at, shown)
            }),
        }
    }
}

/// A document being written: a head that always stays, then sections that may be left out
/// from the end when the whole would not fit in a comment. Blocks are concatenated as they are:
/// each ends with a line break and brings the blank lines it needs before it (a table's rows
/// must not be separated by any).
struct Comment {
    /// Which comment this is (`plan`, `render-check`…), for the hidden first line.
    kind: &'static str,
    head: Vec<String>,
    sections: Vec<String>,
    /// The command that shows everything, for the line under a cut document.
    full: String,
}

impl Comment {
    fn new(kind: &'static str, full: String) -> Comment {
        Comment {
            kind,
            head: Vec::new(),
            sections: Vec::new(),
            full,
        }
    }

    fn head(&mut self, block: String) {
        self.head.push(block);
    }

    fn section(&mut self, block: String) {
        self.sections.push(block);
    }

    /// The text, within `limit` characters.
    fn finish(self, ctx: &Context, limit: usize) -> String {
        let hide = |block: &str| {
            let block = match &ctx.sandbox_address {
                Some(address) if !address.is_empty() => block.replace(address, "{sandbox.address}"),
                _ => block.to_owned(),
            };
            match &ctx.expires {
                Some((at, shown)) if !at.is_empty() => block.replace(at, shown),
                _ => block,
            }
        };
        // A hidden first line a pipeline can find the previous comment by, to update it in
        // place rather than add another (as sticky-comment actions do with a header).
        let marker = format!("<!-- provision {}: {} -->\n", self.kind, ctx.env);
        let blocks: Vec<String> = std::iter::once(marker)
            .chain(self.head.iter().map(|b| hide(b)))
            .collect();
        let sections: Vec<String> = self.sections.iter().map(|b| hide(b)).collect();
        let join = |blocks: &[String]| blocks.concat();
        let all: Vec<String> = blocks.iter().chain(&sections).cloned().collect();
        let whole = join(&all);
        if whole.chars().count() <= limit {
            return whole;
        }
        let mut kept = blocks;
        let mut used = join(&kept).chars().count();
        let mut left = sections.len();
        // Room for the closing line whatever the counts are.
        let reserve = 400 + self.full.len();
        for s in &sections {
            let size = s.chars().count();
            if used + size + reserve > limit {
                break;
            }
            used += size;
            kept.push(s.clone());
            left -= 1;
        }
        let omitted: usize = sections[sections.len() - left..]
            .iter()
            .map(|s| s.chars().count())
            .sum();
        kept.push(format!(
            "\n> [!NOTE]\n> Cut to fit in one comment: {left} of {} sections ({omitted} characters) \
             left out. `{}` shows everything.\n",
            sections.len(),
            self.full
        ));
        let text = join(&kept);
        // A head alone over the limit (never with what `provision` prints) is cut hard.
        if text.chars().count() > limit {
            return text.chars().take(limit).collect();
        }
        text
    }
}

/// Text that Markdown prints as is: every ASCII punctuation that could start markup is
/// backslash-escaped (CommonMark §2.4), line breaks become spaces.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span holding `value` verbatim: delimited by one backtick more than its longest run
/// of backticks (CommonMark §6.1), padded when it starts or ends with one. Inside a table, a
/// `|` must still be escaped (GFM §4.10), so [`cell`] comes after.
fn code(value: &str) -> String {
    let value = one_line(value);
    let ticks = "`".repeat(longest_run(&value, '`') + 1);
    let pad = if value.starts_with('`') || value.ends_with('`') || value.is_empty() {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{value}{pad}{ticks}")
}

/// A code span in a table cell: `|` escaped inside it too, as GFM requires. Text for a cell
/// comes from [`text`], which escapes `|` already.
fn cell(markdown: &str) -> String {
    markdown.replace('|', "\\|")
}

/// Text inside an HTML element (`<summary>`), where Markdown escapes do not apply.
fn html(value: &str) -> String {
    one_line(value)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fenced block: the fence is longer than any run of backticks in the content (CommonMark
/// §4.5), so a value holding "```" cannot close it early.
fn fenced(info: &str, lines: &[String]) -> String {
    let longest = lines.iter().map(|l| longest_run(l, '`')).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{fence}{info}\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// One line: line breaks and tabs shown escaped, as `policy diff` shows them.
fn one_line(value: &str) -> String {
    value
        .replace('\r', "\\r")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// A collapsible section: `summary` is HTML (escape with [`html`]), `body` Markdown. The blank
/// lines let GitHub render the body as Markdown.
fn details(summary: &str, body: &str) -> String {
    format!("<details><summary>{summary}</summary>\n\n{body}\n</details>\n")
}

/// `n thing` or `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_cannot_break_out() {
        assert_eq!(text("a|b <x> `c` *d*"), "a\\|b \\<x\\> \\`c\\` \\*d\\*");
        assert_eq!(code("a``b"), "```a``b```");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(cell(&code("a|b")), "`a\\|b`");
        assert_eq!(
            html("<b>&\"x\"</b>"),
            "&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"
        );
        let block = fenced("diff", &["+ ```".to_owned(), "- ````x".to_owned()]);
        assert!(block.starts_with("`````diff\n"), "{block}");
        assert!(block.ends_with("\n`````\n"), "{block}");
        assert_eq!(code("a\nb"), "`a\\nb`");
    }

    #[test]
    fn a_long_document_is_cut_at_a_section_with_a_line_saying_so() {
        let ctx = Context {
            env: "dev".to_owned(),
            sandbox_address: None,
            expires: None,
        };
        let build = || {
            let mut doc = Comment::new("plan", "provision plan --env dev".to_owned());
            doc.head("# head\n".to_owned());
            for i in 0..100 {
                doc.section(format!("section {i}\n{}\n", "x".repeat(1000)));
            }
            doc
        };
        let text = build().finish(&ctx, 10_000);
        assert!(text.chars().count() <= 10_000, "{}", text.len());
        assert!(text.contains("section 8\n"), "{text}");
        assert!(!text.contains("section 9\n"), "{text}");
        assert!(
            text.ends_with(
                "\n> [!NOTE]\n> Cut to fit in one comment: 91 of 100 sections (92091 characters) \
                 left out. `provision plan --env dev` shows everything.\n"
            ),
            "{}",
            &text[text.len() - 300..]
        );
        assert_eq!(text, build().finish(&ctx, 10_000));
        let whole = build().finish(&ctx, COMMENT_LIMIT * 2);
        assert!(whole.contains("section 99\n") && !whole.contains("Cut to fit"));
    }

    #[test]
    fn the_sandbox_address_is_hidden() {
        let ctx = Context {
            env: "local".to_owned(),
            sandbox_address: Some("127.0.0.1:41234".to_owned()),
            expires: None,
        };
        let mut doc = Comment::new("plan", String::new());
        doc.head("http://127.0.0.1:41234/tenant\n".to_owned());
        assert_eq!(
            doc.finish(&ctx, COMMENT_LIMIT),
            "<!-- provision plan: local -->\nhttp://{sandbox.address}/tenant\n"
        );
    }
}
