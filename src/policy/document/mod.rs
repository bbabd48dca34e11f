//! A policy document as a tree of elements that remember where they were in the text. Entity
//! references are resolved, so `&quot;` and `"` read the same; comments are dropped from the tree
//! because APIM drops them too.
//!
//! Every policy text is untrusted input (a file, a template's output, ARM's echo), so the parser
//! bounds what it builds: the text's size, nesting depth, attributes per element and elements in
//! all. The tree is therefore never deeper than [`MAX_DEPTH`], which is what lets canonical form,
//! diff, lint and even `Drop` recurse over it without overflowing a thread's stack.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::hint::Remedy;

/// APIM's own limit on one policy document ("Policy document size: 256 KiB", Azure API
/// Management gateway runtime limits); a larger policy would be refused at deployment anyway.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Nesting depth, the root being 1. Real policies nest a handful of levels (`choose`/`when`
/// inside a section); 256 is far beyond any of them and far below what recursion can take.
pub const MAX_DEPTH: usize = 256;

/// Attributes on one element. The widest APIM policies (`validate-jwt`, `llm-token-limit`) take
/// about a dozen.
pub const MAX_ATTRIBUTES: usize = 256;

/// Elements in one document. A 256 KiB policy written sensibly holds a few thousand; the cap
/// keeps the worst case (`<a/>` repeated) to a size every later phase handles at once.
pub const MAX_ELEMENTS: usize = 16_384;

/// 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Node>,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data (text and CDATA), entities resolved.
    Text(String),
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attribute(name).map(|a| a.value.as_str())
    }

    pub fn elements(&self) -> impl DoubleEndedIterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The element's text content, trimmed: what APIM reads from `<application-id>` and friends.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out.trim().to_owned()
    }

    /// Every element below this one, depth first, each with the name of the child of this
    /// element that it is in (for a policy's root, its section), or `""` for this element's own
    /// children. Linear: copying each element's whole ancestry made a deep tree quadratic.
    pub fn descendants(&self) -> Vec<(&str, &Element)> {
        let mut out = Vec::new();
        let mut pending: Vec<(&str, &Element)> =
            self.elements().rev().map(|child| ("", child)).collect();
        while let Some((branch, element)) = pending.pop() {
            out.push((branch, element));
            let branch = if branch.is_empty() {
                element.name.as_str()
            } else {
                branch
            };
            pending.extend(element.elements().rev().map(|child| (branch, child)));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub root: Element,
}

/// The document is not well-formed XML, or is over one of the limits above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct ParseError {
    pub position: Position,
    pub message: String,
    /// For a document refused for a limit rather than for its syntax: what to do about it.
    pub limit_hint: Option<&'static str>,
}

impl ParseError {
    fn malformed(position: Position, message: String) -> ParseError {
        ParseError {
            position,
            message,
            limit_hint: None,
        }
    }

    /// The message as a person reads it: syntax errors say that the XML is not well-formed, a
    /// limit speaks for itself.
    pub fn describe(&self) -> String {
        match self.limit_hint {
            Some(_) => self.message.clone(),
            None => format!("not well-formed XML: {}", self.message),
        }
    }
}

/// A limit names its own remedy; a syntax error points at the linter.
impl Remedy for ParseError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.limit_hint.unwrap_or(
            "fix the XML; `provision validate` lints rendered policies",
        )))
    }
}

const SIZE_HINT: &str = "APIM refuses a policy document over 256 KiB; move shared parts into policy fragments (<include-fragment>)";
const SHAPE_HINT: &str =
    "no APIM policy is shaped like this; check that the file is the policy you meant";

/// Refuses a text over [`MAX_POLICY_BYTES`], pointing at the first byte past the limit. Takes
/// bytes so that a caller can check a bounded read before decoding it.
pub fn check_size(bytes: &[u8]) -> Result<(), ParseError> {
    if bytes.len() <= MAX_POLICY_BYTES {
        return Ok(());
    }
    let before = &bytes[..MAX_POLICY_BYTES];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = before[line_start..]
        .iter()
        .filter(|&&b| !is_continuation(b))
        .count()
        + 1;
    Err(ParseError {
        position: Position { line, column },
        message: format!(
            "the policy is larger than {MAX_POLICY_BYTES} bytes (256 KiB), the most APIM accepts in one policy document"
        ),
        limit_hint: Some(SIZE_HINT),
    })
}

/// A UTF-8 continuation byte: not the start of a character.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Maps byte offsets to positions in logarithmic time: counting characters from the start of
/// the line instead made a one-line document with many elements quadratic.
struct Lines {
    starts: Vec<usize>,
    /// Offsets of UTF-8 continuation bytes; a column is the bytes since the line start minus
    /// these. Empty for ASCII text.
    continuations: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let continuations = if text.is_ascii() {
            Vec::new()
        } else {
            (0..text.len())
                .filter(|&i| is_continuation(text.as_bytes()[i]))
                .collect()
        };
        Lines {
            starts,
            continuations,
        }
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let inside = self.continuations.partition_point(|&c| c < offset)
            - self.continuations.partition_point(|&c| c < start);
        Position {
            line,
            column: offset - start - inside + 1,
        }
    }
}

impl Document {
    /// Parses a policy the way APIM reads both of its formats. An attribute value that starts
    /// with `@(` or `@{` is a policy expression and runs to its matching bracket, as in APIM's
    /// `rawxml` format, so its C# may hold the raw `"`, `<` and `&&` that XML forbids there;
    /// positions still point into `text`.
    ///
    /// This is not "strict XML first, lenient on failure": `condition="@(x == ">")">…` is
    /// well-formed XML that means something else (an attribute `@(x == ` and text `")">…`).
    /// Reading expressions by their brackets changes the tree of a well-formed document only when
    /// one of its expression attributes, read as XML, is not complete C# (no matching close, an
    /// unterminated string literal), which APIM rejects anyway; a well-formed policy whose
    /// expressions are valid parses exactly as strict XML, positions included.
    ///
    /// Refuses a text over the limits at the top of this module with an error at the place that
    /// crosses one.
    pub fn parse(text: &str) -> Result<Document, ParseError> {
        check_size(text.as_bytes())?;
        let lines = Lines::new(text);
        let as_written = Origin {
            original: text,
            lines: &lines,
            edits: &[],
        };
        // Fast path: without an attribute value starting like an expression there is nothing to
        // re-encode, and the text is read as it is.
        let expressions = ["\"@(", "\"@{", "'@(", "'@{"];
        if expressions.iter().any(|e| text.contains(e))
            && let Some((encoded, edits)) = encode_raw_expressions(text)
        {
            let lenient = parse_xml(
                &encoded,
                &Origin {
                    edits: &edits,
                    ..as_written
                },
            );
            // A broken expression (say, an unterminated string) reads past its attribute and
            // breaks the markup; if the text is well-formed as it stands, that reading is the
            // better guess. Otherwise the bracket reading's error is the one about the raw text.
            return lenient.or_else(|e| parse_xml(text, &as_written).map_err(|_| e));
        }
        parse_xml(text, &as_written)
    }
}

/// Reads well-formed XML into a tree; `origin` turns offsets in `text` into positions in what the
/// user wrote, which differ when `text` is the pre-pass's re-encoding.
fn parse_xml(text: &str, origin: &Origin<'_>) -> Result<Document, ParseError> {
    let error =
        |offset: usize, message: String| ParseError::malformed(origin.position(offset), message);
    let over_limit = |offset: usize, message: String| ParseError {
        position: origin.position(offset),
        message,
        limit_hint: Some(SHAPE_HINT),
    };
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            error(
                usize::try_from(reader.error_position()).unwrap_or(start),
                e.to_string(),
            )
        })?;
        let text_node = |s: String, stack: &mut Vec<Element>| -> Result<(), ParseError> {
            match stack.last_mut() {
                Some(parent) => {
                    if let Some(Node::Text(prev)) = parent.children.last_mut() {
                        prev.push_str(&s);
                    } else {
                        parent.children.push(Node::Text(s));
                    }
                    Ok(())
                }
                None if s.trim().is_empty() => Ok(()),
                None => Err(error(start, "text outside the root element".to_owned())),
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                // Checked before the element exists: nothing deeper than the limit is ever built.
                if stack.len() >= MAX_DEPTH {
                    return Err(over_limit(
                        start,
                        format!("<{name}> is nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(over_limit(
                        start,
                        format!(
                            "<{name}> is element number {elements}; a policy may hold at most {MAX_ELEMENTS}"
                        ),
                    ));
                }
                let tag_end = usize::try_from(reader.buffer_position())
                    .unwrap_or(text.len())
                    .min(text.len());
                let mut offsets = attribute_offsets(&text.as_bytes()[start..tag_end]).into_iter();
                let mut attributes = Vec::new();
                let mut seen = HashSet::new();
                // quick-xml's own duplicate check compares each attribute with every earlier one;
                // a set keeps a wide element linear.
                for attr in e.attributes().with_checks(false) {
                    let attr = attr.map_err(|err| error(start, err.to_string()))?;
                    let offset = offsets.next().map_or(start, |o| start + o);
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    if attributes.len() == MAX_ATTRIBUTES {
                        return Err(over_limit(
                            offset,
                            format!("<{name}> has more than {MAX_ATTRIBUTES} attributes"),
                        ));
                    }
                    if !seen.insert(key.clone()) {
                        return Err(error(
                            start,
                            format!("attribute `{key}` appears twice on <{name}>"),
                        ));
                    }
                    let value = attr
                        .unescape_value()
                        .map_err(|err| error(start, err.to_string()))?
                        .into_owned();
                    attributes.push(Attribute {
                        name: key,
                        value,
                        position: origin.position(offset),
                    });
                }
                let element = Element {
                    name,
                    attributes,
                    children: Vec::new(),
                    position: origin.position(start),
                };
                if root.is_some() && stack.is_empty() {
                    return Err(error(
                        start,
                        format!("a second root element <{}>", element.name),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(element, &mut stack, &mut root);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| error(start, "closing tag without an opening tag".to_owned()))?;
                close(element, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| error(start, e.to_string()))?
                    .into_owned();
                text_node(s, &mut stack)?;
            }
            Event::CData(c) => {
                let s = c
                    .decode()
                    .map_err(|e| error(start, e.to_string()))?
                    .into_owned();
                text_node(s, &mut stack)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| error(start, e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| error(start, e.to_string()))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| error(start, format!("unknown entity `&{name};`")))?
                            .to_owned()
                    }
                };
                text_node(resolved, &mut stack)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::DocType(_) => {
                return Err(error(
                    start,
                    "DOCTYPE is not allowed in a policy".to_owned(),
                ));
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(ParseError::malformed(
            open.position,
            format!("<{}> is never closed", open.name),
        ));
    }
    root.map(|root| Document { root })
        .ok_or_else(|| error(0, "the document has no root element".to_owned()))
}

/// Where the text that quick-xml reads came from. The pre-pass re-encodes single characters as
/// entities, so every later offset shifts; `edits` undoes that so errors and elements point at the
/// characters the user wrote.
#[derive(Clone, Copy)]
struct Origin<'a> {
    original: &'a str,
    lines: &'a Lines,
    edits: &'a [Edit],
}

/// One original character (always ASCII, one byte) that the pre-pass replaced with an entity of
/// `len` bytes starting at `parsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    parsed: usize,
    original: usize,
    len: usize,
}

impl Origin<'_> {
    fn position(&self, parsed: usize) -> Position {
        self.lines
            .position(self.original, self.original_offset(parsed))
    }

    fn original_offset(&self, parsed: usize) -> usize {
        let before = self.edits.partition_point(|e| e.parsed <= parsed);
        let Some(edit) = before.checked_sub(1).map(|i| self.edits[i]) else {
            return parsed;
        };
        if parsed < edit.parsed + edit.len {
            edit.original
        } else {
            edit.original + 1 + (parsed - edit.parsed - edit.len)
        }
    }
}

/// APIM's `rawxml` leniency as a pre-pass: inside start tags, an attribute value that is a policy
/// expression runs to its matching `)`/`}` (C# string and char literals skipped), not to the next
/// quote, and the characters in it that XML forbids there are encoded. Returns the re-encoded text
/// and its edits, or `None` when there is nothing to encode and the text can be read as it is.
///
/// Finding an expression's end may read far ahead, and an expression that never closes reads to
/// the end of the text; many of those would make the pre-pass quadratic. The reading is bounded
/// to a few times the text's length in all: past that, the remaining expressions are left as
/// they are, to be read as strict XML (real policies need about one pass).
fn encode_raw_expressions(text: &str) -> Option<(String, Vec<Edit>)> {
    let bytes = text.as_bytes();
    let mut budget = 4 * text.len() + 4096;
    let mut out = String::with_capacity(text.len() + 64);
    let mut edits = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let skip_to = |end: &str| rest.find(end).map_or(bytes.len(), |e| i + e + end.len());
        if rest.starts_with("<!--") {
            i = skip_to("-->");
        } else if rest.starts_with("<![CDATA[") {
            i = skip_to("]]>");
        } else if rest.starts_with("<?") {
            i = skip_to("?>");
        } else if rest.starts_with("<!") || rest.starts_with("</") {
            i = skip_to(">");
        } else {
            i = start_tag(bytes, i + 1, &mut budget, &mut |from, to, quote| {
                out.push_str(&text[copied..from]);
                encode_expression(text, from, to, quote, &mut out, &mut edits);
                copied = to;
            });
        }
    }
    if edits.is_empty() {
        return None;
    }
    out.push_str(&text[copied..]);
    Some((out, edits))
}

/// Walks one start tag from just after its `<`, calling `expression(from, to, quote)` for each
/// attribute value that is a complete policy expression ending right at its closing quote; returns
/// the offset after the tag. Anything malformed ends the walk early and is left for the XML parser
/// to report.
fn start_tag(
    bytes: &[u8],
    mut i: usize,
    budget: &mut usize,
    expression: &mut dyn FnMut(usize, usize, u8),
) -> usize {
    let is_space = |b: u8| b.is_ascii_whitespace();
    let name_end = |b: u8| is_space(b) || b == b'=' || b == b'/' || b == b'>';
    while i < bytes.len() && !name_end(bytes[i]) {
        i += 1;
    }
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        match bytes.get(i) {
            None => return i,
            Some(b'>') => return i + 1,
            Some(b'/') => return i + 1,
            Some(_) => {}
        }
        while i < bytes.len() && !name_end(bytes[i]) {
            i += 1;
        }
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return i;
        }
        i += 1;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let Some(&quote) = bytes.get(i).filter(|&&b| b == b'"' || b == b'\'') else {
            return i;
        };
        let value = i + 1;
        let opens_expression =
            bytes.get(value) == Some(&b'@') && matches!(bytes.get(value + 1), Some(b'(' | b'{'));
        match opens_expression
            .then(|| expression_end(bytes, value, budget))
            .flatten()
            .filter(|&end| bytes.get(end) == Some(&quote))
        {
            Some(end) => {
                expression(value, end, quote);
                i = end + 1;
            }
            None => match bytes[value..].iter().position(|&b| b == quote) {
                Some(close) => i = value + close + 1,
                None => return bytes.len(),
            },
        }
    }
}

/// One character of an expression as C# sees it: entities already in the text count as the
/// character they stand for, so `&quot;x&quot;` is a string literal just like `"x"`.
fn logical_char(bytes: &[u8], i: usize) -> (u8, usize) {
    if bytes[i] == b'&'
        && let Some(len) = entity_len(&bytes[i..])
    {
        let entity = &bytes[i + 1..i + len - 1];
        let c = match entity {
            b"quot" => b'"',
            b"apos" => b'\'',
            b"lt" => b'<',
            b"gt" => b'>',
            b"amp" => b'&',
            _ => std::str::from_utf8(entity)
                .ok()
                .and_then(|e| e.strip_prefix('#'))
                .and_then(|n| match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                })
                .and_then(|n| u8::try_from(n).ok())
                .filter(u8::is_ascii)
                .unwrap_or(b'_'),
        };
        return (c, len);
    }
    (bytes[i], 1)
}

/// Length of the predefined entity or character reference at the start of `bytes`, if there is
/// one: those are left alone, every other `&` is a C# operator to encode.
fn entity_len(bytes: &[u8]) -> Option<usize> {
    let end = bytes.iter().take(12).position(|&b| b == b';')?;
    let name = &bytes[1..end];
    let valid = match name {
        b"quot" | b"apos" | b"lt" | b"gt" | b"amp" => true,
        [b'#', b'x', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    valid.then_some(end + 1)
}

/// The offset just after the `)`/`}` that closes the expression opened by `@(`/`@{` at `start`,
/// counting nesting of that bracket and skipping string literals (`"…"` with backslash escapes,
/// verbatim `@"…"` with doubled quotes) and char literals, whose brackets do not count. Each
/// character read spends one unit of `budget`; `None` when it runs out.
fn expression_end(bytes: &[u8], start: usize, budget: &mut usize) -> Option<usize> {
    let (open, close) = match bytes.get(start + 1)? {
        b'(' => (b'(', b')'),
        _ => (b'{', b'}'),
    };
    let mut depth = 0usize;
    let mut i = start + 1;
    let mut previous = b'@';
    while i < bytes.len() {
        *budget = budget.checked_sub(1)?;
        let (c, len) = logical_char(bytes, i);
        i += len;
        match c {
            b'"' | b'\'' => {
                let verbatim = c == b'"' && previous == b'@';
                loop {
                    if i >= bytes.len() {
                        return None;
                    }
                    *budget = budget.checked_sub(1)?;
                    let (d, len) = logical_char(bytes, i);
                    i += len;
                    if d == b'\\' && !verbatim {
                        if i >= bytes.len() {
                            return None;
                        }
                        i += logical_char(bytes, i).1;
                    } else if d == c {
                        if verbatim && i < bytes.len() && logical_char(bytes, i).0 == b'"' {
                            i += logical_char(bytes, i).1;
                        } else {
                            break;
                        }
                    }
                }
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        previous = c;
    }
    None
}

/// Copies `bytes[from..to]` (one expression) to `out`, encoding the attribute's own quote, `<`,
/// `>` and every `&` that does not already start an entity.
fn encode_expression(
    text: &str,
    from: usize,
    to: usize,
    quote: u8,
    out: &mut String,
    edits: &mut Vec<Edit>,
) {
    let bytes = text.as_bytes();
    let mut plain = from;
    let mut i = from;
    while i < to {
        let entity = match bytes[i] {
            b'&' if entity_len(&bytes[i..to]).is_some() => None,
            b'&' => Some("&amp;"),
            b'<' => Some("&lt;"),
            b'>' => Some("&gt;"),
            b'"' if quote == b'"' => Some("&quot;"),
            b'\'' if quote == b'\'' => Some("&apos;"),
            _ => None,
        };
        if let Some(entity) = entity {
            out.push_str(&text[plain..i]);
            edits.push(Edit {
                parsed: out.len(),
                original: i,
                len: entity.len(),
            });
            out.push_str(entity);
            plain = i + 1;
        }
        i += 1;
    }
    out.push_str(&text[plain..to]);
}

fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Offsets of the attribute names in a start tag (from its `<`) that quick-xml accepted, in
/// order and in one pass; searching the tag for each name instead was quadratic in the number of
/// attributes, and could find a name inside an earlier value.
fn attribute_offsets(tag: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let name_end = |b: u8| b.is_ascii_whitespace() || b == b'/' || b == b'>';
    let mut i = 1;
    while i < tag.len() && !name_end(tag[i]) {
        i += 1;
    }
    loop {
        while i < tag.len() && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= tag.len() || tag[i] == b'/' || tag[i] == b'>' {
            return out;
        }
        out.push(i);
        while i < tag.len() && tag[i] != b'"' && tag[i] != b'\'' {
            i += 1;
        }
        let Some(&quote) = tag.get(i) else {
            return out;
        };
        match tag[i + 1..].iter().position(|&b| b == quote) {
            Some(close) => i += close + 2,
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests;
