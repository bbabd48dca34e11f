//! The printer: results on stdout (human text or JSON lines), progress and notes on stderr, colour
//! only where wanted. Commands describe what to print; this module decides how.

pub mod down;
pub mod events;
pub mod findings;
pub mod markdown;
pub mod plan;
pub mod problem;
pub mod progress;
pub mod up;

use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

pub use events::JsonLine;
pub use problem::{Problem, problems};

use crate::cli::{ColorChoice, OutputFormat};

pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub const GOOD: Style = AnsiColor::Green.on_default();
pub const DIM: Style = Style::new().dimmed();

pub struct Printer {
    pub format: OutputFormat,
    color: anstream::ColorChoice,
    quiet: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, color: ColorChoice, quiet: bool) -> Printer {
        let color = match color {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        Printer {
            format,
            color,
            quiet,
        }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// `--output markdown`: the command prints one comment-ready document on stdout.
    pub fn markdown(&self) -> bool {
        self.format == OutputFormat::Markdown
    }

    /// A result line on stdout; styles are stripped when colour is off.
    pub fn out(&self, text: &str) {
        let mut stdout = anstream::AutoStream::new(std::io::stdout().lock(), self.color);
        stdout_written(writeln!(stdout, "{text}"));
    }

    /// Raw bytes on stdout, exactly as given (rendered XML must not gain or lose a byte).
    pub fn out_raw(&self, text: &str) {
        stdout_written(std::io::stdout().lock().write_all(text.as_bytes()));
    }

    /// One `--output json` line on stdout.
    pub fn emit(&self, line: &JsonLine) {
        self.json_object(line);
    }

    /// One JSON object on its own line on stdout: an event, or a command's single answer
    /// (`policy eval`).
    pub fn json_object(&self, value: &impl Serialize) {
        stdout_written(writeln!(std::io::stdout().lock(), "{}", json_text(value)));
    }

    /// A note on stderr, silenced by `--quiet`.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let mut stderr = anstream::AutoStream::new(std::io::stderr().lock(), self.color);
            let _ = writeln!(stderr, "{text}");
        }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        format!("{style}{text}{style:#}")
    }

    /// `error: …`, the quoted source line, `hint: …`: how every problem reads, on stderr for a
    /// command's error and on stdout for `validate`'s findings.
    pub fn problem_text(&self, problem: &Problem) -> String {
        let mut text = format!("{}: {}", self.paint(ERROR, "error"), problem.message);
        if let Some(excerpt) = &problem.excerpt {
            text.push_str(&format!("\n{excerpt}"));
        }
        if let Some(hint) = &problem.hint {
            text.push_str(&format!("\n{}", self.hint_text(hint)));
        }
        text
    }

    /// A `hint:` line, as under an error.
    pub fn hint_text(&self, hint: &str) -> String {
        format!("{}: {hint}", self.paint(GOOD, "hint"))
    }

    /// Prints an error with its hints: on stderr always, and as a JSON line on stdout for `--output json`.
    pub fn error(&self, error: &anyhow::Error) {
        let mut stderr = anstream::AutoStream::new(std::io::stderr().lock(), self.color);
        for problem in problems(error) {
            let _ = writeln!(stderr, "{}", self.problem_text(&problem));
            if self.json() {
                self.emit(&JsonLine::Error {
                    message: problem.message,
                    hint: problem.hint,
                });
            }
        }
    }
}

/// A value as one line of JSON, keys in alphabetical order at every level, as lines have always
/// been printed (pipelines diff them). Serializing these types cannot fail: every map key is a
/// string.
fn json_text(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// A reader that closed stdout (`provision … | head -3`) has all it wants: the command ends
/// quietly with exit 0, as `cat` and `grep` do. Any other write error is not worth failing a run
/// over: results are also in Azure, and stderr may still carry the story.
fn stdout_written(result: std::io::Result<()>) {
    if let Err(e) = result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}
