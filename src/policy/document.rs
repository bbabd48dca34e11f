//! A policy document as a tree of elements that remember where they were in the text. Entity
//! references are resolved, so `&quot;` and `"` read the same; comments are dropped from the tree
//! because APIM drops them too.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

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

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
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

    /// Every element below this one, depth first, with its ancestors' names.
    pub fn descendants(&self) -> Vec<(Vec<&str>, &Element)> {
        let mut out = Vec::new();
        fn walk<'a>(
            e: &'a Element,
            path: &mut Vec<&'a str>,
            out: &mut Vec<(Vec<&'a str>, &'a Element)>,
        ) {
            for child in e.elements() {
                out.push((path.clone(), child));
                path.push(&child.name);
                walk(child, path, out);
                path.pop();
            }
        }
        let mut path = vec![self.name.as_str()];
        walk(self, &mut path, &mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub root: Element,
}

/// The document is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct ParseError {
    pub position: Position,
    pub message: String,
}

/// Maps byte offsets to positions.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Position { line, column }
    }
}

impl Document {
    pub fn parse(text: &str) -> Result<Document, ParseError> {
        let lines = Lines::new(text);
        let error = |offset: usize, message: String| ParseError {
            position: lines.position(text, offset),
            message,
        };
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
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
                    let mut attributes = Vec::new();
                    let tag_text = &text[start
                        ..usize::try_from(reader.buffer_position())
                            .unwrap_or(text.len())
                            .min(text.len())];
                    for attr in e.attributes() {
                        let attr = attr.map_err(|err| error(start, err.to_string()))?;
                        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                        if attributes.iter().any(|a: &Attribute| a.name == key) {
                            return Err(error(
                                start,
                                format!("attribute `{key}` appears twice on <{name}>"),
                            ));
                        }
                        let value = attr
                            .unescape_value()
                            .map_err(|err| error(start, err.to_string()))?
                            .into_owned();
                        let offset = find_attribute(tag_text, &key).map_or(start, |o| start + o);
                        attributes.push(Attribute {
                            name: key,
                            value,
                            position: lines.position(text, offset),
                        });
                    }
                    let element = Element {
                        name,
                        attributes,
                        children: Vec::new(),
                        position: lines.position(text, start),
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
                    let element = stack.pop().ok_or_else(|| {
                        error(start, "closing tag without an opening tag".to_owned())
                    })?;
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
            return Err(ParseError {
                position: open.position,
                message: format!("<{}> is never closed", open.name),
            });
        }
        root.map(|root| Document { root })
            .ok_or_else(|| error(0, "the document has no root element".to_owned()))
    }
}

fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Offset of `key=` inside a start tag, for pointing findings at the attribute itself.
fn find_attribute(tag: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(key) {
        let at = from + i;
        let before_ok = tag[..at].ends_with(|c: char| c.is_whitespace());
        let after = tag[at + key.len()..].trim_start();
        if before_ok && after.starts_with('=') {
            return Some(at);
        }
        from = at + key.len();
    }
    None
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
}
