//! The parser's positions, rawxml reading and limits.

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
    let err = Document::parse("<policies>\n  <inbound>\n  </outbound>\n</policies>").unwrap_err();
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
    let raw = r#"<a v="@{ var s = &quot;}&quot; + "{"; return s.Length > 0 && '}' != '{'; }" />"#;
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
        err.hint().unwrap(),
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
    assert!(err.hint().unwrap().contains("policy fragments"));
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
