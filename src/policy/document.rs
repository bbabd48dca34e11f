//! A policy document as a tree of elements that remember where they were in the text. Entity
//! references are resolved, so `&quot;` and `"` read the same; comments are dropped from the tree
//! because APIM drops them too.
//!
//! Every policy text is untrusted input (a file, a template's output, ARM's echo), so the parser
//! bounds what it builds: the text's size, nesting depth, attributes per element and elements in
//! all. The tree is therefore never deeper than [`MAX_DEPTH`], which is what lets canonical form,
//! diff, lint and even `Drop` recurse over it without overflowing a thread's stack.

use std::collections::HashSet;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

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

    /// The remedy to print under the error.
    pub fn hint(&self) -> &'static str {
        self.limit_hint
            .unwrap_or("fix the XML; `provision validate` lints rendered policies")
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
mod tests {
    use super::*;

    #[test]
    fn positions_and_entities() {
        let doc = Document::parse("<policies>\n  <inbound>\n    <x a=\"&quot;1&quot;\"  b='2'>&gt;t</x>\n  </inbound>\n</policies>").unwrap();
        let inbound = doc.root.child("inbound").unwrap();
        let x = inbound.child("x").unwrap();
        assert_eq!(x.position, Position { line: 3, column: 5 });
        assert_eq!(x.attr("a"), Some("\"1\""));
        assert_eq!(
            x.attribute("b").unwrap().position,
            Position {
                line: 3,
                column: 27
            }
        );
        assert_eq!(x.text(), ">t");
    }

    #[test]
    fn malformed_documents_say_where() {
        let err =
            Document::parse("<policies>\n  <inbound>\n  </outbound>\n</policies>").unwrap_err();
        assert_eq!(err.position.line, 3);
        let err = Document::parse("<policies>\n  <inbound>\n").unwrap_err();
        assert_eq!(err.message, "<inbound> is never closed");
        assert!(Document::parse("<a/><b/>").is_err());
    }

    /// Everything but positions, which legitimately differ when an entity is longer than the
    /// character it encodes.
    fn shape(e: &Element) -> String {
        let attributes: Vec<String> = e
            .attributes
            .iter()
            .map(|a| format!("{}={:?}", a.name, a.value))
            .collect();
        let children: Vec<String> = e
            .children
            .iter()
            .map(|n| match n {
                Node::Element(c) => shape(c),
                Node::Text(t) => format!("{t:?}"),
            })
            .collect();
        format!(
            "<{} {}>{}</>",
            e.name,
            attributes.join(" "),
            children.join("")
        )
    }

    #[test]
    fn raw_expressions_parse_like_encoded_ones() {
        let raw = "<policies>\n  <inbound>\n    <set-variable name=\"v\" value=\"@(context.Request.Headers.GetValueOrDefault(\"x\", \"\"))\" />\n    <set-variable name=\"w\" value=\"@(a < b && c > d)\" />\n  </inbound>\n</policies>";
        let encoded = "<policies>\n  <inbound>\n    <set-variable name=\"v\" value=\"@(context.Request.Headers.GetValueOrDefault(&quot;x&quot;, &quot;&quot;))\" />\n    <set-variable name=\"w\" value=\"@(a &lt; b &amp;&amp; c &gt; d)\" />\n  </inbound>\n</policies>";
        let raw = Document::parse(raw).unwrap();
        let encoded = Document::parse(encoded).unwrap();
        // The expressions end their lines, so even the positions agree.
        assert_eq!(raw, encoded);
        let inbound = raw.root.child("inbound").unwrap();
        let values: Vec<&str> = inbound.elements().filter_map(|e| e.attr("value")).collect();
        assert_eq!(
            values,
            [
                "@(context.Request.Headers.GetValueOrDefault(\"x\", \"\"))",
                "@(a < b && c > d)"
            ]
        );
    }

    #[test]
    fn positions_after_a_raw_expression_point_into_the_original_text() {
        let text = "<policies>\n  <x v=\"@(f(\"a\") && g('\"'))\" w='@(h(\"(\", 'x'))' z=\"1\"><y/>\n  </x>\n</policies>";
        let doc = Document::parse(text).unwrap();
        let x = doc.root.child("x").unwrap();
        assert_eq!(x.attr("v"), Some("@(f(\"a\") && g('\"'))"));
        assert_eq!(x.attr("w"), Some("@(h(\"(\", 'x'))"));
        let column = |needle: &str| text.lines().nth(1).unwrap().find(needle).unwrap() + 1;
        assert_eq!(x.attribute("w").unwrap().position.column, column("w='"));
        assert_eq!(
            x.attribute("z").unwrap().position,
            Position {
                line: 2,
                column: column("z=")
            }
        );
        assert_eq!(
            x.child("y").unwrap().position,
            Position {
                line: 2,
                column: column("<y/>")
            }
        );
    }

    #[test]
    fn mixed_encodings_and_braces_in_one_expression() {
        let raw =
            r#"<a v="@{ var s = &quot;}&quot; + "{"; return s.Length > 0 && '}' != '{'; }" />"#;
        let encoded = r#"<a v="@{ var s = &quot;}&quot; + &quot;{&quot;; return s.Length &gt; 0 &amp;&amp; '}' != '{'; }" />"#;
        let raw = Document::parse(raw).unwrap();
        assert_eq!(
            shape(&raw.root),
            shape(&Document::parse(encoded).unwrap().root)
        );
        assert_eq!(
            raw.root.attr("v"),
            Some(r#"@{ var s = "}" + "{"; return s.Length > 0 && '}' != '{'; }"#)
        );
        let verbatim = r#"<a v="@(@"a""b)" + "\")")" />"#;
        assert_eq!(
            Document::parse(verbatim).unwrap().root.attr("v"),
            Some(r#"@(@"a""b)" + "\")")"#)
        );
    }

    #[test]
    fn errors_after_a_raw_expression_point_into_the_original_text() {
        let text = "<policies>\n  <x v=\"@(f(\"a\"))\" w=\"1\">\n  </y>\n</policies>";
        let err = Document::parse(text).unwrap_err();
        assert_eq!(err.position, Position { line: 3, column: 3 });
        // An expression that never closes is not guessed at: the strict error stands.
        let err = Document::parse("<a v=\"@(f(\"a\")\" />").unwrap_err();
        assert_eq!(err.position.line, 1);
    }

    #[test]
    fn a_string_that_looks_like_the_end_of_the_tag_stays_in_the_expression() {
        // Also well-formed XML, as `condition="@(x == "` followed by text `")">1`.
        let doc = Document::parse(r#"<when condition="@(x == ">")">1</when>"#).unwrap();
        assert_eq!(doc.root.attr("condition"), Some(r#"@(x == ">")"#));
        assert_eq!(doc.root.text(), "1");
    }

    #[test]
    fn well_formed_expressions_parse_exactly_as_xml() {
        let text = "<a v=\"@(f(&quot;)&quot;) &gt; 1)\" w='@{ return \"a\"; }' x=\"@(y)\">\n  <b c=\"@(1)\"/></a>";
        let doc = Document::parse(text).unwrap();
        assert_eq!(
            doc,
            parse_xml(
                text,
                &Origin {
                    original: text,
                    lines: &Lines::new(text),
                    edits: &[]
                }
            )
            .unwrap()
        );
        assert_eq!(doc.root.attr("v"), Some("@(f(\")\") > 1)"));
        // An unbalanced expression (invalid for APIM either way) is read to its bracket.
        let doc = Document::parse(r#"<a v="@(x" w=")" />"#).unwrap();
        assert_eq!(doc.root.attr("v"), Some(r#"@(x" w=")"#));
    }

    /// `depth` elements nested in one another, on one line.
    fn nested(depth: usize) -> String {
        format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
    }

    #[test]
    fn thirty_thousand_nested_elements_are_refused_at_the_first_too_deep() {
        // (40,000 levels take 280,000 bytes at the least, over the size limit.)
        let err = Document::parse(&nested(30_000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1:769: <a> is nested deeper than 256 levels"
        );
        assert_eq!(
            err.hint(),
            "no APIM policy is shaped like this; check that the file is the policy you meant"
        );
        // An empty element counts as a level too; one level less is fine.
        let empty = format!("{}<b/>{}", "<a>".repeat(256), "</a>".repeat(256));
        assert_eq!(
            Document::parse(&empty).unwrap_err().to_string(),
            "1:769: <b> is nested deeper than 256 levels"
        );
        assert!(Document::parse(&nested(256)).is_ok());
    }

    #[test]
    fn a_policy_over_256_kib_is_refused_where_it_crosses_the_limit() {
        let line = format!("{}\n", "x".repeat(1023));
        let text = format!("<a>{}</a>", line.repeat(256));
        let err = Document::parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "256:1022: the policy is larger than 262144 bytes (256 KiB), the most APIM accepts in one policy document"
        );
        assert_eq!(
            err.describe(),
            "the policy is larger than 262144 bytes (256 KiB), the most APIM accepts in one policy document"
        );
        assert!(err.hint().contains("policy fragments"));
        // Exactly at the limit is allowed.
        let fits = format!("<a>{}</a>", "x".repeat(MAX_POLICY_BYTES - 7));
        assert_eq!(fits.len(), MAX_POLICY_BYTES);
        assert!(Document::parse(&fits).is_ok());
        // Columns count characters, even when the limit falls inside one.
        let wide = format!("é{}", "x".repeat(MAX_POLICY_BYTES));
        assert_eq!(
            check_size(wide.as_bytes()).unwrap_err().position,
            Position {
                line: 1,
                column: MAX_POLICY_BYTES
            }
        );
    }

    #[test]
    fn twenty_thousand_attributes_are_refused_at_the_first_over_the_limit() {
        let attributes: String = (0..20_000).map(|i| format!(" a{i}=\"v\"")).collect();
        let started = std::time::Instant::now();
        let err = Document::parse(&format!("<p{attributes}/>")).unwrap_err();
        assert_eq!(err.to_string(), "1:2198: <p> has more than 256 attributes");
        assert_eq!(attributes.find(" a256=").map(|i| i + 4), Some(2198));
        // Exactly at the limit: parsed, every attribute where it was written.
        let attributes: String = (0..256).map(|i| format!(" a{i:03}=\"a{i:03}=\"")).collect();
        let doc = Document::parse(&format!("<p{attributes}/>")).unwrap();
        assert_eq!(doc.root.attributes.len(), 256);
        assert_eq!(doc.root.attributes[255].position.column, 4 + 255 * 13);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_duplicate_attribute_among_many_is_found() {
        let mut attributes: Vec<String> = (0..200).map(|i| format!("a{i}=\"1\"")).collect();
        attributes.push("a7='2'".to_owned());
        let err = Document::parse(&format!("<p {} />", attributes.join(" "))).unwrap_err();
        assert_eq!(err.to_string(), "1:1: attribute `a7` appears twice on <p>");
    }

    #[test]
    fn more_than_16384_elements_are_refused() {
        let text = format!("<p>{}</p>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(
            Document::parse(&text).unwrap_err().to_string(),
            "1:65536: <a> is element number 16385; a policy may hold at most 16384"
        );
        let fits = format!("<p>{}</p>", "<a/>".repeat(MAX_ELEMENTS - 1));
        assert_eq!(Document::parse(&fits).unwrap().root.children.len(), 16_383);
    }

    #[test]
    fn a_billion_laughs_doctype_is_refused_and_custom_entities_are_not_expanded() {
        let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n<policies>&lol3;</policies>";
        assert_eq!(
            Document::parse(laughs).unwrap_err().to_string(),
            "2:1: DOCTYPE is not allowed in a policy"
        );
        assert_eq!(
            Document::parse("<policies a=\"&lol;\">x</policies>")
                .unwrap_err()
                .position,
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Document::parse("<policies>&lol;</policies>")
                .unwrap_err()
                .to_string(),
            "1:11: unknown entity `&lol;`"
        );
    }

    #[test]
    fn columns_count_characters_after_non_ascii_text() {
        let doc = Document::parse("<a>\n  <b v=\"é→\" w=\"1\"/>é<c/></a>").unwrap();
        let b = doc.root.child("b").unwrap();
        assert_eq!(
            b.attribute("w").unwrap().position,
            Position {
                line: 2,
                column: 13
            }
        );
        assert_eq!(
            doc.root.child("c").unwrap().position,
            Position {
                line: 2,
                column: 21
            }
        );
    }

    #[test]
    fn many_unclosed_expressions_are_read_in_linear_time() {
        // Each `@(` that never closes reads on to the end of the text.
        let text = format!("<p>{}</p>", "<a v=\"@(\" />".repeat(16_000));
        let started = std::time::Instant::now();
        let doc = Document::parse(&text).unwrap();
        assert_eq!(doc.root.children.len(), 16_000);
        assert_eq!(doc.root.child("a").unwrap().attr("v"), Some("@("));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
