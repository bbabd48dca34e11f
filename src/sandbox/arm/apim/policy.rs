//! Policy documents (`…/policies/policy` of the service, an API or an operation): validated on
//! PUT as APIM does (well-formed XML for `xml`, expressions read by their brackets for `rawxml`,
//! a `<policies>` root, every `{{named-value}}` defined), stored, and echoed re-serialised the way
//! APIM does (CRLF, two-space indent, XML-encoded), which is why `provision` compares policies by
//! meaning (apim.md §3.5).

use axum::http::{Method, StatusCode};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde_json::{Map, Value, json};

use super::super::{ArmError, Call, Reply, check_if_match};
use super::{PRIVATE, properties_of, require_if_match, type_of, validation, view};
use crate::policy::{Document, Element, Node, Position};
use crate::sandbox::state::arm::Resource;

fn not_found() -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "Policy not found.",
    )
}

pub(super) fn handle(call: &mut Call<'_>, service_id: &str, id: &str) -> Result<Reply, ArmError> {
    match call.request.method.clone() {
        Method::GET | Method::HEAD => get(call, id),
        Method::PUT => put(call, service_id, id),
        Method::DELETE => {
            require_if_match(call)?;
            let Some(existing) = call.state.arm.get(id) else {
                return Ok(Reply::empty(StatusCode::NO_CONTENT));
            };
            check_if_match(call.request, Some(&existing.etag), true)?;
            call.state.arm.remove_tree(id);
            Ok(Reply::empty(StatusCode::OK))
        }
        other => Err(ArmError::method_not_supported(&other)),
    }
}

/// How a document is written: `xml` is plain XML; `rawxml` leaves policy expressions as C#.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Xml,
    RawXml,
}

fn format(value: Option<&str>, target: &str) -> Result<Format, ArmError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("xml") => Ok(Format::Xml),
        Some("rawxml") => Ok(Format::RawXml),
        Some(link @ ("xml-link" | "rawxml-link")) => Err(validation(
            target,
            format!(
                "The sandbox cannot fetch '{link}' documents; send the policy inline as xml or rawxml."
            ),
        )),
        Some(other) => Err(validation(
            target,
            format!("'{other}' is not a policy format: use xml, xml-link, rawxml or rawxml-link."),
        )),
    }
}

fn get(call: &mut Call<'_>, id: &str) -> Result<Reply, ArmError> {
    let format = format(call.request.query("format"), "format")?;
    let resource = call.state.arm.get(id).ok_or_else(not_found)?;
    let mut body = view(resource);
    if format == Format::RawXml
        && let Some(raw) = resource.body.get(PRIVATE).and_then(|p| p.get("raw"))
    {
        body["properties"]["value"] = raw.clone();
    }
    Ok(Reply::ok(body).etag(&resource.etag))
}

fn put(call: &mut Call<'_>, service_id: &str, id: &str) -> Result<Reply, ArmError> {
    let existing = call.state.arm.get(id).cloned();
    if let Some(existing) = &existing {
        check_if_match(call.request, Some(&existing.etag), false)?;
    }
    let body = call.request.body_object()?;
    let props = properties_of(&body)?;
    let format = format(props.get("format").and_then(Value::as_str), "format")?;
    let text = props
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("value", "'value' is required."))?;
    let document = parse(text, format)?;
    check_named_values(call, service_id, &document.root)?;
    let stored_id = existing
        .as_ref()
        .map_or_else(|| id.to_owned(), |e| e.id.clone());
    let mut stored = Map::new();
    stored.insert("id".into(), json!(stored_id));
    stored.insert("type".into(), json!(type_of(&stored_id)));
    stored.insert("name".into(), json!("policy"));
    stored.insert(
        "properties".into(),
        json!({ "value": serialize(&document.root, Format::Xml) }),
    );
    stored.insert(
        PRIVATE.into(),
        json!({ "raw": serialize(&document.root, Format::RawXml) }),
    );
    let etag = call.state.arm.next_etag();
    let mut resource = Resource::new(stored_id, stored, etag, call.now_ms);
    let status = match &existing {
        Some(e) => {
            resource.created_ms = e.created_ms;
            StatusCode::OK
        }
        None => StatusCode::CREATED,
    };
    let reply = Reply::new(status, Some(view(&resource))).etag(&resource.etag);
    call.state.arm.insert(resource);
    Ok(reply)
}

/// APIM's policy errors: `Error in element '…' on line N, column M: …` (apim.md §3.5, §3.11).
fn element_error(element: &str, at: Position, message: &str) -> ArmError {
    validation(
        element,
        format!(
            "Error in element '{element}' on line {}, column {}: {message}",
            at.line, at.column
        ),
    )
}

fn parse(text: &str, format: Format) -> Result<Document, ArmError> {
    if format == Format::Xml {
        well_formed(text)?;
    }
    let document = Document::parse(text).map_err(|e| {
        validation(
            "value",
            format!(
                "{} Line {}, position {}.",
                e.message, e.position.line, e.position.column
            ),
        )
    })?;
    if document.root.name != "policies" {
        return Err(element_error(
            &document.root.name,
            document.root.position,
            "The root element of a policy document must be 'policies'.",
        ));
    }
    Ok(document)
}

/// `format: xml` is XML as written: an expression holding a raw `"` or `<` breaks it, as it does
/// on APIM (only `rawxml` reads expressions by their brackets).
fn well_formed(text: &str) -> Result<(), ArmError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<String> = Vec::new();
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(0);
        let event = reader.read_event();
        let failure = match &event {
            Err(e) => Some((
                usize::try_from(reader.error_position()).unwrap_or(start),
                e.to_string(),
            )),
            Ok(Event::Start(tag) | Event::Empty(tag)) => {
                let name = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
                let bad = tag
                    .attributes()
                    .find_map(|a| a.err().map(|e| e.to_string()));
                if bad.is_none() && matches!(event, Ok(Event::Start(_))) {
                    open.push(name.clone());
                }
                bad.map(|message| {
                    open.push(name);
                    (start, message)
                })
            }
            Ok(Event::End(_)) => {
                open.pop();
                None
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => None,
        };
        if let Some((offset, message)) = failure {
            let at = position(text, offset);
            return Err(match open.last() {
                Some(element) => element_error(element, at, &message),
                None => validation(
                    "value",
                    format!("{message} Line {}, position {}.", at.line, at.column),
                ),
            });
        }
    }
}

fn position(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Position { line, column }
}

/// The `{{name}}` references of a text (names as APIM allows them: letters, digits, `-._`).
fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        let name = &after[..close];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            out.push(name);
        }
        rest = &after[close..];
    }
    out
}

/// Every `{{name}}` in an attribute or text must be a named value of the service, by display
/// name: APIM refuses the policy otherwise (Azure/apiops#36).
fn check_named_values(call: &Call<'_>, service_id: &str, root: &Element) -> Result<(), ArmError> {
    let defined: Vec<String> = call
        .state
        .arm
        .children(service_id, "namedValues")
        .filter_map(|r| r.property_str("displayName"))
        .map(str::to_ascii_lowercase)
        .collect();
    let mut elements = vec![root];
    elements.extend(root.descendants().into_iter().map(|(_, e)| e));
    for element in elements {
        let texts = element.attributes.iter().map(|a| a.value.as_str()).chain(
            element.children.iter().filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            }),
        );
        for text in texts {
            if let Some(missing) = references(text)
                .into_iter()
                .find(|r| !defined.contains(&r.to_ascii_lowercase()))
            {
                return Err(element_error(
                    &element.name,
                    element.position,
                    &format!("Property '{missing}' not found."),
                ));
            }
        }
    }
    Ok(())
}

/// The document as APIM writes it back: CRLF, two spaces per level, `<a />` for empty elements,
/// elements holding text written inline with their text as it was. `Xml` encodes what XML would
/// (`=>` becomes `=&gt;`, as ApiManagementCreateApiPolicyNonXmlEncoded.json shows); `RawXml`
/// leaves expression attributes as C#.
fn serialize(root: &Element, format: Format) -> String {
    let mut out = String::new();
    write_element(root, 0, format, &mut out);
    out
}

fn is_expression(value: &str) -> bool {
    value.starts_with("@(") || value.starts_with("@{")
}

fn write_start(element: &Element, format: Format, out: &mut String) {
    out.push('<');
    out.push_str(&element.name);
    for attribute in &element.attributes {
        out.push(' ');
        out.push_str(&attribute.name);
        out.push_str("=\"");
        if format == Format::RawXml && is_expression(&attribute.value) {
            out.push_str(&attribute.value);
        } else {
            escape_attribute(&attribute.value, out);
        }
        out.push('"');
    }
}

fn has_text(element: &Element) -> bool {
    element
        .children
        .iter()
        .any(|n| matches!(n, Node::Text(t) if !t.trim().is_empty()))
}

fn write_element(element: &Element, depth: usize, format: Format, out: &mut String) {
    write_start(element, format, out);
    if !element.children.iter().any(|n| match n {
        Node::Element(_) => true,
        Node::Text(t) => !t.trim().is_empty(),
    }) {
        out.push_str(" />");
        return;
    }
    out.push('>');
    if has_text(element) {
        write_inline(element, format, out);
    } else {
        for child in element.elements() {
            out.push_str("\r\n");
            out.push_str(&"  ".repeat(depth + 1));
            write_element(child, depth + 1, format, out);
        }
        out.push_str("\r\n");
        out.push_str(&"  ".repeat(depth));
    }
    out.push_str("</");
    out.push_str(&element.name);
    out.push('>');
}

/// Mixed content keeps its text exactly (line ends as CRLF) and gets no indentation.
fn write_inline(element: &Element, format: Format, out: &mut String) {
    for child in &element.children {
        match child {
            Node::Text(t) => escape_text(t, format, out),
            Node::Element(e) => {
                write_start(e, format, out);
                if e.children.is_empty() {
                    out.push_str(" />");
                } else {
                    out.push('>');
                    write_inline(e, format, out);
                    out.push_str("</");
                    out.push_str(&e.name);
                    out.push('>');
                }
            }
        }
    }
}

fn escape_text(text: &str, format: Format, out: &mut String) {
    let text = text.replace("\r\n", "\n");
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' if format == Format::Xml => out.push_str("&gt;"),
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
}

fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::canonical::canonical;

    fn echo(text: &str, format: Format) -> String {
        serialize(&parse(text, format).expect("valid").root, Format::Xml)
    }

    #[test]
    fn documents_come_back_as_the_examples_show() {
        assert_eq!(
            echo(
                "<policies> <inbound /> <backend>    <forward-request />  </backend>  <outbound /></policies>",
                Format::Xml
            ),
            "<policies>\r\n  <inbound />\r\n  <backend>\r\n    <forward-request />\r\n  </backend>\r\n  <outbound />\r\n</policies>"
        );
        assert_eq!(
            echo(
                "<policies>\r\n     <inbound>\r\n     <base />\r\n  <set-header name=\"newvalue\" exists-action=\"override\">\r\n   <value>\"@(context.Request.Headers.FirstOrDefault(h => h.Ke==\"Via\"))\" </value>\r\n    </set-header>\r\n  </inbound>\r\n      </policies>",
                Format::RawXml
            ),
            "<policies>\r\n  <inbound>\r\n    <base />\r\n    <set-header name=\"newvalue\" exists-action=\"override\">\r\n      <value>\"@(context.Request.Headers.FirstOrDefault(h =&gt; h.Ke==\"Via\"))\" </value>\r\n    </set-header>\r\n  </inbound>\r\n</policies>"
        );
    }

    #[test]
    fn raw_expressions_survive_the_raw_form_and_mean_the_same() {
        let text = r#"<policies><inbound><set-variable name="v" value="@(context.Request.Headers.GetValueOrDefault("a", "") != "")" /></inbound></policies>"#;
        let document = parse(text, Format::RawXml).expect("rawxml reads expressions");
        let raw = serialize(&document.root, Format::RawXml);
        assert!(
            raw.contains(r#"value="@(context.Request.Headers.GetValueOrDefault("a", "") != "")""#)
        );
        let encoded = serialize(&document.root, Format::Xml);
        assert!(encoded.contains("&quot;a&quot;"));
        for form in [raw, encoded] {
            let again = Document::parse(&form).expect("parses back");
            assert_eq!(canonical(&again), canonical(&document));
        }
        assert!(parse(text, Format::Xml).is_err(), "xml is strict");
    }

    #[test]
    fn broken_xml_names_the_element_and_position() {
        let e = parse("<policies>\n  <inbound>\n    <set-header name=\"a\" exists-action=override />\n  </inbound>\n</policies>", Format::Xml)
            .expect_err("unquoted attribute");
        let message = e.details[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Error in element 'set-header' on line 3, column 5: "),
            "{message}"
        );
        let e = parse("<inbound />", Format::Xml).expect_err("wrong root");
        assert_eq!(e.details[0]["target"], "inbound");
    }

    #[test]
    fn references_are_named_values_only() {
        assert_eq!(
            references("Bearer {{tenant-id}} and {{ not one }} {{a.b_c}}"),
            ["tenant-id", "a.b_c"]
        );
    }
}
