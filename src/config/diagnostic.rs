//! Errors about environment files. Every one says what is wrong, where (file:line:col and key path)
//! and, when we know it, what to do about it.

use std::borrow::Cow;
use std::fmt;

use crate::hint::Remedy;

/// A position in a source file, 1-based like every editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem found in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is, when it can be pointed at.
    pub location: Option<Location>,
    /// The file alone, when no line is known (a missing file, a missing key in a file).
    pub file: Option<String>,
    /// The key path in the resolved environment, e.g. `foundry.deployments[0].sku.capacity`.
    pub path: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the location points into, ready to print under the message with a caret:
    /// for YAML syntax errors the position alone rarely shows what is wrong.
    pub excerpt: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            location: None,
            file: None,
            path: None,
            message: message.into(),
            hint: None,
            excerpt: None,
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Quotes line `line` of `text` under the message, with a caret under `column` (1-based, in
    /// characters), as rustc does.
    pub fn quoting(mut self, text: &str, line: usize, column: usize) -> Self {
        self.excerpt = text
            .lines()
            .nth(line.saturating_sub(1))
            .map(|source| excerpt(source, line, column));
        self
    }
}

/// Characters of a quoted line shown either side of the caret; a minified one-line file must not
/// flood the terminal.
const EXCERPT_REACH: usize = 60;

/// Words that, in a key, mean the rest of the line may be a credential (the secret scan's words,
/// loosely: a false alarm only masks a line).
const MASKED_WORDS: [&str; 8] = [
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "token",
    "credential",
    "connectionstring",
];

/// Two lines: ` N | source` and `   | ^`. Control characters are shown as their Unicode pictures
/// (one column each, so the caret stays aligned), and on a line that looks like it holds a
/// secret everything after the key is masked: an error must not print the credential it is about.
fn excerpt(source: &str, line: usize, column: usize) -> String {
    let chars: Vec<char> = source.trim_end_matches('\r').chars().collect();
    let caret = column.saturating_sub(1).min(chars.len());
    let start = caret.saturating_sub(EXCERPT_REACH);
    let end = (caret + EXCERPT_REACH).min(chars.len());
    let lower = source.to_ascii_lowercase();
    let secret_like = MASKED_WORDS.iter().any(|w| lower.contains(w)) || source.contains("eyJ");
    let key_end = chars.iter().position(|&c| c == ':').unwrap_or_else(|| {
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        chars[indent..]
            .iter()
            .position(|c| c.is_whitespace())
            .map_or(chars.len(), |p| indent + p)
    });
    let mut shown = String::new();
    let mut pad = String::new();
    if start > 0 {
        shown.push('…');
        pad.push(' ');
    }
    for (i, &c) in chars.iter().enumerate().take(end).skip(start) {
        let c = match c {
            '\t' => '\t',
            c if secret_like && i > key_end && !c.is_whitespace() => '*',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
            '\u{7f}' => '\u{2421}',
            c if c.is_control() => '\u{fffd}',
            c => c,
        };
        shown.push(c);
        if i < caret {
            pad.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if end < chars.len() {
        shown.push('…');
    }
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    format!("{number} | {shown}\n{gutter} | {pad}^")
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.location, &self.file) {
            (Some(location), _) => write!(f, "{location}: ")?,
            (None, Some(file)) => write!(f, "{file}: ")?,
            (None, None) => {}
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Remedy for Diagnostic {
    fn hint(&self) -> Option<Cow<'_, str>> {
        self.hint.as_deref().map(Cow::Borrowed)
    }
}

/// Everything wrong with one environment. Loading reports all problems it can find at once, so a
/// user fixes a file in one round trip instead of one error per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub fn one(diagnostic: Diagnostic) -> Self {
        ConfigError {
            diagnostics: vec![diagnostic],
        }
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(d: Diagnostic) -> Self {
        ConfigError::one(d)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
