//! The one door every YAML input comes through: environment files, `--cases` files and fault
//! scripts. Before the parser sees a text it is checked for what the parser mishandles: a NUL byte
//! (the parser takes it for the end of the input and drops the rest without a word), a byte-order
//! mark (taken for part of the first key), a size or a nesting depth that would exhaust memory or
//! the stack, and a second document (silently ignored). The parser's own errors are re-pointed at
//! the line the mistake is on, and every error quotes that line.

use marked_yaml::{LoadError, LoaderOptions, Node};

use super::diagnostic::{ConfigError, Diagnostic, Location};
use super::shape::{self, ShapeError};

/// The largest YAML input accepted, in bytes. Environment files, cases files and fault scripts are
/// written by hand and run to a few kilobytes; a megabyte is far past any real one and still cheap
/// to parse.
pub const MAX_BYTES: usize = 1 << 20;

/// The deepest nesting accepted (the top-level mapping is 1). An environment nests five deep; the
/// limit leaves room for any hand-written file and keeps every recursive walk of the tree shallow.
pub const MAX_DEPTH: usize = 64;

const BYTE_ORDER_MARK: char = '\u{feff}';

/// Parses `text`, read from `file`, into a tree whose markers carry `source`.
pub fn parse(
    source: usize,
    file: &str,
    text: &str,
    options: LoaderOptions,
) -> Result<Node, ConfigError> {
    check_and_parse(source, file, text, options).map_err(ConfigError::one)
}

#[allow(clippy::result_large_err)] // one error, on the way out
fn check_and_parse(
    source: usize,
    file: &str,
    text: &str,
    options: LoaderOptions,
) -> Result<Node, Diagnostic> {
    let at = |line: usize, column: usize| Location {
        file: file.to_owned(),
        line,
        column,
    };
    if text.len() > MAX_BYTES {
        return Err(too_large(file, text.len() as u64));
    }
    if let Some(offset) = text.find('\0') {
        let (line, column) = position(text, offset);
        return Err(Diagnostic::new("the file contains a NUL byte")
            .at(Some(at(line, column)))
            .quoting(text, line, column)
            .with_hint("YAML files are text; remove the NUL byte (an editor or a bad copy put it there): everything after it would be lost"));
    }
    let text = text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(text);
    let shape = match shape::scan(text, MAX_DEPTH) {
        Ok(shape) => shape,
        Err(ShapeError::TooDeep((line, column))) => {
            return Err(Diagnostic::new(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            ))
            .at(Some(at(line, column)))
            .quoting(text, line, column)
            .with_hint("no input of provision nests anywhere near this deep; check for runaway brackets or indentation"));
        }
        Err(ShapeError::SecondDocument(line)) => {
            return Err(Diagnostic::new("a second YAML document starts here")
                .at(Some(at(line, 1)))
                .quoting(text, line, 1)
                .with_hint("a file holds one document; remove the `---` (or `...`) line and what follows it, or merge the two"));
        }
    };
    marked_yaml::parse_yaml_with_options(source, text, options)
        .map_err(|e| load_error(file, text, &shape, e))
}

/// The error for a file over [`MAX_BYTES`], for loaders that see the size before the text.
pub fn too_large(file: &str, size: u64) -> Diagnostic {
    Diagnostic::new(format!(
        "the file is {size} bytes; the limit is {MAX_BYTES} bytes (1 MiB)"
    ))
    .in_file(file)
    .with_hint("this is not a hand-written provision file; check the path")
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

fn load_error(file: &str, text: &str, shape: &shape::Shape, error: LoadError) -> Diagnostic {
    let (marker, message, hint) = match &error {
        LoadError::TopLevelMustBeMapping(m) => (
            *m,
            "the file must be a mapping of keys to values".to_owned(),
            None,
        ),
        LoadError::TopLevelMustBeSequence(m) => {
            (*m, "unexpected top-level sequence".to_owned(), None)
        }
        LoadError::UnexpectedAnchor(m) => (
            *m,
            "YAML anchors and aliases are not supported".to_owned(),
            Some("write the value out; environments share settings through `extends:`"),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (*m, "keys must be plain names".to_owned(), None),
        LoadError::UnexpectedTag(m) => (*m, "YAML tags are not supported".to_owned(), None),
        LoadError::ScanError(m, e) => {
            let (line, column) = (m.line(), m.column());
            if let Some(((l, c), bracket)) = unclosed_before(shape, line, column) {
                let close = if bracket == '[' { ']' } else { '}' };
                return syntax_error(
                    file,
                    text,
                    (l, c),
                    format!("invalid YAML: this `{bracket}` is never closed"),
                    format!(
                        "close it with `{close}`; the parser gave up at {line}:{column} ({})",
                        e.info()
                    ),
                );
            }
            if e.info().contains("expect ':'") {
                let at = key_without_colon(text, line, column);
                return syntax_error(
                    file,
                    text,
                    at,
                    "invalid YAML: could not find expected ':'".to_owned(),
                    "a key and its value are written `key: value`, with a space after the colon"
                        .to_owned(),
                );
            }
            (*m, format!("invalid YAML: {}", e.info()), None)
        }
        LoadError::DuplicateKey(d) => match d.key.span().start() {
            Some(m) => (*m, format!("key `{}` appears twice", d.key.as_str()), None),
            None => {
                return Diagnostic::new(format!("key `{}` appears twice", d.key.as_str()))
                    .in_file(file);
            }
        },
    };
    let mut d = Diagnostic::new(message)
        .at(Some(Location {
            file: file.to_owned(),
            line: marker.line(),
            column: marker.column(),
        }))
        .quoting(text, marker.line(), marker.column());
    if let Some(hint) = hint {
        d = d.with_hint(hint);
    }
    d
}

fn syntax_error(
    file: &str,
    text: &str,
    (line, column): (usize, usize),
    message: String,
    hint: String,
) -> Diagnostic {
    Diagnostic::new(message)
        .at(Some(Location {
            file: file.to_owned(),
            line,
            column,
        }))
        .quoting(text, line, column)
        .with_hint(hint)
}

/// The innermost flow collection left open that starts before the parser's error position: the
/// parser only notices a missing `]` where the next key no longer fits, often lines later.
fn unclosed_before(
    shape: &shape::Shape,
    line: usize,
    column: usize,
) -> Option<(shape::Position, char)> {
    shape
        .unclosed
        .iter()
        .rev()
        .find(|((l, c), _)| (*l, *c) < (line, column))
        .copied()
}

/// Where a key lacking its `:` is. The parser notices at the next token, which is on a later line
/// unless the key ran past its 1024-character limit on the same one; the key is the start of the
/// last line with content before that token.
fn key_without_colon(text: &str, line: usize, column: usize) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let content_start = |l: &str| {
        let trimmed = l.trim_start_matches(' ');
        (!trimmed.trim().is_empty() && !trimmed.starts_with('#'))
            .then(|| l.chars().count() - trimmed.chars().count() + 1)
    };
    if let Some(current) = lines.get(line.saturating_sub(1))
        && let Some(start) = content_start(current)
        && start < column
    {
        return (line, start);
    }
    (1..line)
        .rev()
        .find_map(|l| content_start(lines.get(l - 1)?).map(|c| (l, c)))
        .unwrap_or((line, column))
}
