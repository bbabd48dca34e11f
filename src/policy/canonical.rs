//! A policy's meaning as APIM sees it, separated from how it happens to be written. APIM echoes a
//! policy back re-indented, with CRLF line ends, entities re-encoded, `<a></a>` as `<a />` and
//! comments gone, so comparing text would report changes on every deploy; comparing canonical
//! forms reports only what would change what the gateway does.

use std::fmt;

use super::document::{Document, Element, Node};

/// An element in canonical form: attributes sorted by name, line endings as LF, whitespace-only
/// text and comments gone, adjacent text merged. Two canonical forms are equal exactly when their
/// documents differ only in how they are written; text that is not whitespace-only is kept as is,
/// leading and trailing spaces included, because APIM keeps them (`<value>"@(…)" </value>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Canonical {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<CanonicalNode>,
}

/// A child of a canonical element. Text is never empty nor whitespace-only, and never next to
/// other text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CanonicalNode {
    Element(Canonical),
    Text(String),
}

/// The canonical form of a whole document (its root element).
pub fn canonical(doc: &Document) -> Canonical {
    Canonical::of(&doc.root)
}

impl Canonical {
    /// The canonical form of one element and everything below it.
    pub fn of(element: &Element) -> Canonical {
        let mut attributes: Vec<(String, String)> = element
            .attributes
            .iter()
            .map(|a| (a.name.clone(), normalize_line_endings(&a.value)))
            .collect();
        attributes.sort();
        let mut children = Vec::new();
        let mut text = String::new();
        for node in &element.children {
            match node {
                // Runs of text are merged before judging whitespace: a document built by hand may
                // hold `"a"`, `" "` as two nodes, and the space is part of `"a "`.
                Node::Text(t) => text.push_str(t),
                Node::Element(e) => {
                    push_text(&mut children, &mut text);
                    children.push(CanonicalNode::Element(Canonical::of(e)));
                }
            }
        }
        push_text(&mut children, &mut text);
        Canonical {
            name: element.name.clone(),
            attributes,
            children,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attributes as `(name, value)`, sorted by name.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn children(&self) -> &[CanonicalNode] {
        &self.children
    }

    /// The text of an element that holds text and nothing else (no attributes, no elements), like
    /// `<application-id>GUID</application-id>`: such an element is its value, and a diff shows it
    /// that way.
    pub fn only_text(&self) -> Option<&str> {
        match self.children.as_slice() {
            [CanonicalNode::Text(t)] if self.attributes.is_empty() => Some(t),
            _ => None,
        }
    }

    /// A compact, deterministic serialization: no whitespace between elements, attributes sorted
    /// and double-quoted, `<a />` for an empty element. It parses back to an equal canonical form,
    /// so it can be stored or hashed in place of the document.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (name, value) in &self.attributes {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_attribute(value, out);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        for child in &self.children {
            match child {
                CanonicalNode::Element(e) => e.write(out),
                CanonicalNode::Text(t) => escape_text(t, out),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

fn push_text(children: &mut Vec<CanonicalNode>, text: &mut String) {
    let t = std::mem::take(text);
    if !t.chars().all(is_xml_whitespace) {
        children.push(CanonicalNode::Text(normalize_line_endings(&t)));
    }
}

/// Only XML's own whitespace is insignificant between elements; a no-break or ideographic space
/// is content.
fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// CRLF and lone CR become LF, as an XML processor (and so APIM) reads them.
fn normalize_line_endings(s: &str) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_owned()
    }
}

/// Attribute values escape `&`, `<`, `>` and `"`, and also line feeds and tabs as character
/// references: an XML reader turns a literal newline in an attribute into a space, so writing it
/// raw would change a multi-line expression for any reader but ours.
fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::{Index, select};

    use super::*;
    use crate::policy::diff::{Change, diff};

    fn parse(text: &str) -> Document {
        Document::parse(text).unwrap_or_else(|e| panic!("{e} in:\n{text}"))
    }

    #[test]
    fn spelling_does_not_matter() {
        let a = parse(
            "<?xml version=\"1.0\"?>\r\n<!-- c --><policies>\r\n  <inbound>\r\n    <x b='&quot;1&quot;' a=\"&#60;\">&gt;t\r\nu</x>\r\n    <y></y><z> \n </z><!-- c -->\r\n  </inbound>\r\n</policies>\r\n",
        );
        let b = parse(
            r#"<policies><inbound><x a="&lt;" b='"1"'>&#62;t
u</x><y /><z/></inbound></policies>"#,
        );
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a).to_xml(),
            "<policies><inbound><x a=\"&lt;\" b=\"&quot;1&quot;\">&gt;t\nu</x><y /><z /></inbound></policies>"
        );
    }

    #[test]
    fn meaningful_text_is_kept_exactly() {
        let a = parse(r#"<value>"@(x)" </value>"#);
        let b = parse(r#"<value>"@(x)"</value>"#);
        assert_ne!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a).only_text(), Some(r#""@(x)" "#));
        // A no-break space is content, not layout.
        assert_ne!(
            canonical(&parse("<a>\u{a0}</a>")),
            canonical(&parse("<a/>"))
        );
    }

    #[test]
    fn attribute_line_breaks_survive_serialization() {
        let c = canonical(&parse("<a v=\"@{\r\n\treturn 1;\r\n}\" />"));
        assert_eq!(c.attr("v"), Some("@{\n\treturn 1;\n}"));
        assert_eq!(c.to_xml(), "<a v=\"@{&#10;&#9;return 1;&#10;}\" />");
        assert_eq!(canonical(&parse(&c.to_xml())), c);
    }

    // ---- Property tests: random policy trees, written cleanly and with every kind of noise that
    // must not matter.

    /// A generated policy tree. Attribute values carry whether they are a whole policy expression,
    /// the only values that may be written in `rawxml`'s raw form.
    #[derive(Debug, Clone)]
    enum Tree {
        Element {
            name: &'static str,
            attributes: Vec<(&'static str, String, bool)>,
            children: Vec<Tree>,
        },
        Text(String),
    }

    const NAMES: [&str; 7] = [
        "policies",
        "inbound",
        "outbound",
        "set-header",
        "value",
        "application-id",
        "base",
    ];
    const ATTRIBUTES: [&str; 5] = ["name", "exists-action", "value", "id", "condition"];

    /// C#-looking expression bodies: identifiers, operators XML forbids raw, string literals
    /// (regular and verbatim) and char literals holding brackets and quotes, nested parentheses.
    fn expression() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "[a-z]{1,4}",
            Just(" && ".to_owned()),
            Just(" < ".to_owned()),
            Just(" > ".to_owned()),
            Just(" == ".to_owned()),
            Just(".".to_owned()),
            r#"([a-z<>&'(){} ]|\\"){0,6}"#.prop_map(|s| format!("\"{s}\"")),
            r#"([a-z<>&'(){} ]|""){0,4}"#.prop_map(|s| format!("@\"{s}\"")),
            select(vec!["(", ")", "{", "}", "\"", "\\'", "<", "&", "a"])
                .prop_map(|c| format!("'{c}'")),
        ];
        let body = atom.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| v.join(" ")),
                prop::collection::vec(inner, 0..3).prop_map(|v| format!("({})", v.join(" "))),
            ]
        });
        (any::<bool>(), body).prop_map(|(braces, body)| {
            if braces {
                format!("@{{{body}}}")
            } else {
                format!("@({body})")
            }
        })
    }

    fn attribute_value() -> impl Strategy<Value = (String, bool)> {
        prop_oneof![
            "[a-zé \"'<>&\n\t]{0,8}".prop_map(|v| (v, false)),
            expression().prop_map(|v| (v, true)),
        ]
    }

    /// Text with at least one character that is not whitespace, since whitespace-only text is
    /// layout by definition.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ \n]?[a-zé \"'<>&\n\t]{0,6}[a-z\"'<>&→][ \n]?",
            expression(),
            expression().prop_map(|e| format!("\"{e}\" ")),
        ]
    }

    fn element(children: impl Strategy<Value = Vec<Tree>>) -> impl Strategy<Value = Tree> {
        let attributes =
            prop::collection::btree_map(select(&ATTRIBUTES[..]), attribute_value(), 0..3);
        (select(&NAMES[..]), attributes, children).prop_map(|(name, attributes, children)| {
            Tree::Element {
                name,
                attributes: attributes
                    .into_iter()
                    .map(|(n, (v, expression))| (n, v, expression))
                    .collect(),
                children: merge_texts(children),
            }
        })
    }

    fn document() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![text().prop_map(Tree::Text), element(Just(Vec::new())),];
        let node = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![inner.clone(), element(prop::collection::vec(inner, 0..4)),]
        });
        element(prop::collection::vec(node, 0..4))
    }

    /// The parser merges adjacent text, so the model does too.
    fn merge_texts(children: Vec<Tree>) -> Vec<Tree> {
        let mut out: Vec<Tree> = Vec::new();
        for child in children {
            match (out.last_mut(), child) {
                (Some(Tree::Text(prev)), Tree::Text(t)) => prev.push_str(&t),
                (_, child) => out.push(child),
            }
        }
        out
    }

    /// The canonical XML the tree must come out as, written independently of `to_xml`.
    fn expected(tree: &Tree, out: &mut String) {
        match tree {
            Tree::Text(t) => escape_text(t, out),
            Tree::Element {
                name,
                attributes,
                children,
            } => {
                let mut sorted = attributes.clone();
                sorted.sort();
                out.push_str(&format!("<{name}"));
                for (n, v, _) in &sorted {
                    let v = v
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&quot;")
                        .replace('\n', "&#10;")
                        .replace('\t', "&#9;");
                    out.push_str(&format!(" {n}=\"{v}\""));
                }
                if children.is_empty() {
                    out.push_str(" />");
                } else {
                    out.push('>');
                    children.iter().for_each(|c| expected(c, out));
                    out.push_str(&format!("</{name}>"));
                }
            }
        }
    }

    /// The tree written plainly: double quotes, minimal escaping, no layout.
    fn clean(tree: &Tree, out: &mut String) {
        match tree {
            Tree::Text(t) => escape_text(t, out),
            Tree::Element {
                name,
                attributes,
                children,
            } => {
                out.push_str(&format!("<{name}"));
                for (n, v, _) in attributes {
                    let v = v
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('"', "&quot;");
                    out.push_str(&format!(" {n}=\"{v}\""));
                }
                out.push('>');
                children.iter().for_each(|c| clean(c, out));
                out.push_str(&format!("</{name}>"));
            }
        }
    }

    /// Noise from one seed that proptest picks, so a failing case reproduces from its inputs.
    struct Noise(crate::dice::Dice);

    impl Noise {
        fn below(&mut self, n: usize) -> usize {
            self.0.below(n)
        }

        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }

        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            options[self.below(options.len())]
        }
    }

    /// Layout that must not matter: only between elements, never next to text, where it would be
    /// part of the text.
    fn layout(noise: &mut Noise, out: &mut String) {
        out.push_str(noise.pick(&[
            "",
            " ",
            "\n  ",
            "\r\n    ",
            "\t",
            "\n<!-- a < & > comment -->\n",
        ]));
    }

    /// One character of text or of an attribute value, in any spelling XML allows there.
    fn noisy_char(
        c: char,
        next: Option<char>,
        quote: Option<char>,
        noise: &mut Noise,
        out: &mut String,
    ) {
        let reference = |c: char, noise: &mut Noise| {
            if noise.one_in(2) {
                format!("&#{};", u32::from(c))
            } else {
                format!("&#x{:X};", u32::from(c))
            }
        };
        match c {
            '&' => out.push_str(noise.pick(&["&amp;", "&#38;", "&#x26;"])),
            '<' => out.push_str(noise.pick(&["&lt;", "&#60;"])),
            '>' => out.push_str(noise.pick(&[">", "&gt;", "&#62;"])),
            '"' if quote == Some('"') => out.push_str(noise.pick(&["&quot;", "&#34;", "&#x22;"])),
            '\'' if quote == Some('\'') => out.push_str(noise.pick(&["&apos;", "&#39;"])),
            '"' => out.push_str(noise.pick(&["\"", "&quot;"])),
            '\'' => out.push_str(noise.pick(&["'", "&apos;"])),
            // A lone CR followed by a LF would read as one line break, not two.
            '\n' if next == Some('\n') => out.push_str(noise.pick(&["\n", "\r\n", "&#10;"])),
            '\n' => out.push_str(noise.pick(&["\n", "\r\n", "\r", "&#10;"])),
            c if noise.one_in(8) => out.push_str(&reference(c, noise)),
            c => out.push(c),
        }
    }

    fn noisy_text(t: &str, noise: &mut Noise, out: &mut String) {
        // Sometimes split by a comment, which the parser joins again.
        let chars: Vec<char> = t.chars().collect();
        let split = if noise.one_in(6) {
            noise.below(chars.len() + 1)
        } else {
            chars.len()
        };
        for range in [0..split, split..chars.len()] {
            if range.start == split && split < chars.len() {
                out.push_str("<!-- split -->");
            }
            if noise.one_in(5) {
                out.push_str("<![CDATA[");
                for &c in &chars[range] {
                    match c {
                        '\n' => out.push_str(noise.pick(&["\n", "\r\n"])),
                        c => out.push(c),
                    }
                }
                out.push_str("]]>");
            } else {
                for i in range {
                    // The next character even across the split: the parser joins the two parts.
                    noisy_char(chars[i], chars.get(i + 1).copied(), None, noise, out);
                }
            }
        }
    }

    fn noisy(tree: &Tree, noise: &mut Noise, out: &mut String) {
        let (name, attributes, children) = match tree {
            Tree::Text(t) => return noisy_text(t, noise, out),
            Tree::Element {
                name,
                attributes,
                children,
            } => (name, attributes, children),
        };
        out.push_str(&format!("<{name}"));
        let mut attributes = attributes.clone();
        for i in (1..attributes.len()).rev() {
            attributes.swap(i, noise.below(i + 1));
        }
        for (n, v, expression) in &attributes {
            out.push_str(noise.pick(&[" ", "  ", "\n    ", "\r\n\t"]));
            out.push_str(n);
            out.push_str(noise.pick(&["=", "=", " = ", "=\n"]));
            let quote = if noise.one_in(2) { '"' } else { '\'' };
            out.push(quote);
            let chars: Vec<char> = v.chars().collect();
            let raw = *expression && noise.one_in(2);
            for (i, &c) in chars.iter().enumerate() {
                if raw && (i < 2 || !noise.one_in(4)) {
                    // rawxml: an expression's characters as they are, quotes and all, but for
                    // some entities; its opening `@(` is what marks it, so that stays literal.
                    out.push(c);
                } else {
                    noisy_char(c, chars.get(i + 1).copied(), Some(quote), noise, out);
                }
            }
            out.push(quote);
        }
        out.push_str(noise.pick(&["", "", " ", "\n"]));
        if children.is_empty() {
            let close = format!("</{name}>");
            let empty = [
                "/>",
                &format!(">{close}"),
                &format!(">  \r\n  {close}"),
                &format!("><!-- nothing -->{close}"),
            ];
            out.push_str(noise.pick(&empty));
            return;
        }
        out.push('>');
        let is_element = |t: &Tree| matches!(t, Tree::Element { .. });
        for (i, child) in children.iter().enumerate() {
            let after_element = i == 0 || is_element(&children[i - 1]);
            if after_element && is_element(child) {
                layout(noise, out);
            }
            noisy(child, noise, out);
        }
        if children.last().is_some_and(is_element) {
            layout(noise, out);
        }
        out.push_str(&format!("</{name}{}>", noise.pick(&["", " ", "\n"])));
    }

    fn noisy_document(tree: &Tree, seed: u64) -> String {
        let mut noise = Noise(crate::dice::Dice::new(seed));
        let mut out = String::new();
        out.push_str(noise.pick(&["", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"]));
        out.push_str(noise.pick(&["", "<!-- header -->\n"]));
        noisy(tree, &mut noise, &mut out);
        out.push_str(noise.pick(&["", "\n", "\r\n"]));
        out
    }

    fn clean_document(tree: &Tree) -> String {
        let mut out = String::new();
        clean(tree, &mut out);
        out
    }

    /// How many attribute values and texts the tree has: the places a single edit can go.
    fn edit_sites(tree: &Tree) -> usize {
        match tree {
            Tree::Text(_) => 1,
            Tree::Element {
                attributes,
                children,
                ..
            } => attributes.len() + children.iter().map(edit_sites).sum::<usize>(),
        }
    }

    /// Inserts `Z` into the `site`-th attribute value or text; returns the attribute's name if the
    /// edit went into one.
    fn edit(tree: &mut Tree, site: &mut usize, at: Index) -> Option<Option<&'static str>> {
        let insert = |s: &mut String| {
            let chars = s.chars().count();
            let at = s
                .char_indices()
                .nth(at.index(chars + 1))
                .map_or(s.len(), |(i, _)| i);
            s.insert(at, 'Z');
        };
        match tree {
            Tree::Text(t) => {
                if *site == 0 {
                    insert(t);
                    return Some(None);
                }
                *site -= 1;
                None
            }
            Tree::Element {
                attributes,
                children,
                ..
            } => {
                if let Some((name, value, expression)) = attributes.get_mut(*site) {
                    if *expression {
                        // Keep it valid for APIM: in front, it is no longer an expression; just
                        // inside the opening bracket, it still is one.
                        let inside = at.index(2) == 1;
                        value.insert(if inside { 2 } else { 0 }, 'Z');
                        *expression = inside;
                    } else {
                        insert(value);
                    }
                    return Some(Some(*name));
                }
                *site -= attributes.len();
                children.iter_mut().find_map(|c| edit(c, site, at))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn noise_does_not_change_the_canonical_form(tree in document(), seed in any::<u64>()) {
            let clean = parse(&clean_document(&tree));
            let noisy_text = noisy_document(&tree, seed);
            let noisy = parse(&noisy_text);
            let c = canonical(&clean);
            let mut want = String::new();
            expected(&tree, &mut want);
            prop_assert_eq!(c.to_xml(), want);
            prop_assert_eq!(&canonical(&noisy), &c, "noisy text:\n{}", noisy_text);
            prop_assert!(diff(&clean, &noisy).is_empty());
        }

        #[test]
        fn canonical_xml_round_trips(tree in document(), seed in any::<u64>()) {
            let c = canonical(&parse(&noisy_document(&tree, seed)));
            let again = canonical(&parse(&c.to_xml()));
            prop_assert_eq!(again.to_xml(), c.to_xml());
            prop_assert_eq!(again, c);
        }

        #[test]
        fn any_single_edit_is_one_difference(
            mut tree in document(),
            seeds in any::<(u64, u64)>(),
            site in any::<Index>(),
            at in any::<Index>(),
        ) {
            if edit_sites(&tree) == 0 {
                // Nothing to edit: give the root an attribute rather than reject the case.
                if let Tree::Element { attributes, .. } = &mut tree {
                    attributes.push(("id", "x".to_owned(), false));
                }
            }
            let sites = edit_sites(&tree);
            let mut edited = tree.clone();
            let attribute = edit(&mut edited, &mut site.index(sites), at)
                .expect("the site is in the tree");
            let old = parse(&noisy_document(&tree, seeds.0));
            let new = parse(&noisy_document(&edited, seeds.1));
            prop_assert_ne!(canonical(&old), canonical(&new));
            let differences = diff(&old, &new);
            prop_assert_eq!(differences.len(), 1, "{:?}", differences);
            let d = &differences[0];
            prop_assert!(matches!(d.change, Change::Changed { .. }), "{}", d);
            prop_assert_eq!(d.attribute(), attribute);
        }
    }
}
