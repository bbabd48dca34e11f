//! The printer: results on stdout (human text or JSON lines), progress and notes on stderr, colour
//! only where wanted. Commands describe what to print; this module decides how.

pub mod plan;
pub mod progress;

use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::cli::{ColorChoice, OutputFormat};
use crate::config::ConfigError;
use crate::render::RenderError;

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

    /// A result line on stdout; styles are stripped when colour is off.
    pub fn out(&self, text: &str) {
        let mut stdout = anstream::AutoStream::new(std::io::stdout().lock(), self.color);
        stdout_written(writeln!(stdout, "{text}"));
    }

    /// Raw bytes on stdout, exactly as given (rendered XML must not gain or lose a byte).
    pub fn out_raw(&self, text: &str) {
        stdout_written(std::io::stdout().lock().write_all(text.as_bytes()));
    }

    /// One JSON object on its own line on stdout.
    pub fn emit(&self, value: &Value) {
        stdout_written(writeln!(std::io::stdout().lock(), "{value}"));
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

    /// Prints an error with its hints: on stderr always, and as a JSON line on stdout for `--output json`.
    pub fn error(&self, error: &anyhow::Error) {
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        let mut excerpts: Vec<Option<String>> = Vec::new();
        let config = error
            .downcast_ref::<ConfigError>()
            .or(match error.downcast_ref() {
                Some(RenderError::Vars(config)) => Some(config),
                _ => None,
            });
        if let Some(config) = config {
            entries.extend(
                config
                    .diagnostics
                    .iter()
                    .map(|d| (d.to_string(), d.hint.clone())),
            );
            excerpts.extend(config.diagnostics.iter().map(|d| d.excerpt.clone()));
        } else if let Some(render) = error.downcast_ref::<RenderError>() {
            entries.push((render.to_string(), render.hint()));
        } else {
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            let hint = error.chain().find_map(hint_of);
            entries.push((message, hint));
        }
        let mut stderr = anstream::AutoStream::new(std::io::stderr().lock(), self.color);
        for (i, (message, hint)) in entries.iter().enumerate() {
            let _ = writeln!(stderr, "{}: {message}", self.paint(ERROR, "error"));
            if let Some(Some(excerpt)) = excerpts.get(i) {
                let _ = writeln!(stderr, "{excerpt}");
            }
            if let Some(hint) = hint {
                let _ = writeln!(stderr, "{}: {hint}", self.paint(GOOD, "hint"));
            }
            if self.json() {
                self.emit(
                    &serde_json::json!({ "type": "error", "message": message, "hint": hint }),
                );
            }
        }
    }
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

/// The `hint:` line of an error from anywhere in the program that knows its remedy.
fn hint_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    use crate::azure::{credential::CredentialError, session::WireError, sign_in::SignInError};
    if let Some(h) = error.downcast_ref::<Hinted>() {
        return Some(h.hint.clone());
    }
    if let Some(e) = error.downcast_ref::<WireError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<SignInError>() {
        return Some(e.hint());
    }
    error
        .downcast_ref::<CredentialError>()
        .map(|e| e.hint().to_owned())
}

/// An error that knows what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl Hinted {
    /// An `anyhow::Error` carrying a hint line.
    pub fn error(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Hinted {
            message: message.into(),
            hint: hint.into(),
        })
    }
}
