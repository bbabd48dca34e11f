//! APIM's request routing and policy scoping as pure functions over plain data, so the gateway's
//! router only has to copy its stored APIs into [`Api`] values and its stored policies into
//! [`Document`]s.
//!
//! Routing, in APIM's order:
//! - The API is the one whose `path` is the longest prefix of the request path **by whole
//!   segments**: `llm` owns `/llm` and `/llm/...`, never `/llmx`. Only APIs that list the request's
//!   scheme in `protocols` compete; a scheme mismatch is "no API": no capture of APIM answering
//!   plain HTTP to an HTTPS-only API was found, and the scheme is part of matching.
//! - Within that API, the operation whose `method` equals the request's and whose `urlTemplate`
//!   matches the rest of the path. A `{name}` segment takes one whole segment, as sent (not
//!   percent-decoded), so `%2F` never splits a deployment name; a final `{*name}` or `*` takes the
//!   rest, possibly empty. When several operations match, the one with a literal segment where the
//!   others have a parameter wins, then a parameter over a wildcard, left to right (the most
//!   specific route; APIM does not document its tie-break, so this is the usual router's rule).
//!   The query part of a template (`?api-version={v}`) requires each named query parameter, in any
//!   order, and captures its value.
//! - The API chosen by path is final: an unmatched operation is a 404 even when an API with a
//!   shorter path would have an operation for it (APIM picks the API before the operation).
//! - No API or no operation: 404 `{ "statusCode": 404, "message": "Resource not found" }`, as
//!   captured from APIM-fronted services (the public body does not carry the LastError message);
//!   LastError reason `OperationNotFound` ("Predefined errors for built-in steps",
//!   api-management-error-handling-policies on Microsoft Learn).
//! - Case: the API path and the literal segments of a template compare ASCII-case-insensitively
//!   and captured values keep the caller's case. Looked for and not found in Microsoft's pages or
//!   any capture; APIM itself treats certificate ids and query arguments of templates
//!   case-insensitively (Azure/API-Management changelog; a support answer quoted on Stack
//!   Overflow 54871618), and the sandbox's ARM layer already compares template parameter names
//!   that way. Methods compare exactly (RFC 9110 §9.1: the method token is case-sensitive).
//!
//! Policy scoping ([`compose`]): global → product → API → operation, broad to narrow. In each
//! section of a narrower scope, `<base />` is replaced by the same section of everything broader,
//! at its position. A section **without** `<base />` stops inheritance: what broader scopes put
//! there is not run ("Policies in Azure API Management", Microsoft Learn), so an API policy whose
//! `<inbound>` forgets `<base />` drops a global token check. A section the narrower document
//! leaves out entirely counts as a section without `<base />` (Azure/PSRule.Rules.Azure#3413: its
//! `Azure.APIM.PolicyBase` rule wants every section present with `<base />` for this reason). A
//! scope with no policy at all inherits every section unchanged (APIM gives a fresh API
//! `<base />` in all four). `<base />` at the broadest scope has nothing to insert and is dropped.

use crate::policy::{Document, Element, Node, Position};

/// One API as the gateway routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub id: String,
    /// The API URL suffix, without the leading `/` (ARM's `properties.path`); may be empty.
    pub path: String,
    /// `http`, `https` (ARM's `properties.protocols`).
    pub protocols: Vec<String>,
    pub operations: Vec<Operation>,
}

/// One operation of an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub id: String,
    pub method: String,
    /// ARM's `properties.urlTemplate`, e.g. `/deployments/{deployment-id}/chat/completions`.
    pub url_template: String,
}

/// The request line as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    pub method: &'a str,
    /// The path as sent, starting with `/`, without the query.
    pub path: &'a str,
    /// The query string without the `?`, as sent; empty when there is none.
    pub query: &'a str,
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub api: &'a Api,
    pub operation: &'a Operation,
    /// Template parameters by name, in template order, values as sent
    /// (`context.Request.MatchedParameters`).
    pub parameters: Vec<(String, String)>,
}

/// Why no operation was matched; both answer the same 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No API owns the path (or none for the request's scheme).
    Api,
    /// The API was found, none of its operations matches the method and path.
    Operation,
}

impl NoRoute {
    pub const STATUS: u16 = 404;
    /// APIM's body, spacing included, as every capture shows it.
    pub const BODY: &'static str = r#"{ "statusCode": 404, "message": "Resource not found" }"#;
    /// `context.LastError.Reason` and `.Message` for `on-error`.
    pub const REASON: &'static str = "OperationNotFound";
    pub const MESSAGE: &'static str = "Unable to match incoming request to an operation.";
}

/// Routes one request over the APIs of one service.
pub fn route<'a>(apis: &'a [Api], target: &Target) -> Result<Route<'a>, NoRoute> {
    let request: Vec<&str> = segments(target.path);
    let api = apis
        .iter()
        .filter(|api| {
            api.protocols
                .iter()
                .any(|p| p.eq_ignore_ascii_case(target.scheme))
        })
        .filter_map(|api| {
            let prefix = segments(&api.path);
            let owns = request.len() >= prefix.len()
                && prefix
                    .iter()
                    .zip(&request)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b));
            owns.then_some((prefix.len(), api))
        })
        .max_by_key(|(len, _)| *len);
    let Some((prefix_len, api)) = api else {
        return Err(NoRoute::Api);
    };
    let rest = &request[prefix_len..];
    let query = query_pairs(target.query);
    api.operations
        .iter()
        .filter(|op| op.method == target.method)
        .filter_map(|op| {
            let (parameters, rank) = match_template(&op.url_template, rest, &query)?;
            Some((
                rank,
                Route {
                    api,
                    operation: op,
                    parameters,
                },
            ))
        })
        // The most specific wins; among equals, the first declared.
        .reduce(|best, next| if next.0 > best.0 { next } else { best })
        .map(|(_, route)| route)
        .ok_or(NoRoute::Operation)
}

/// The path's segments: `/a/b` → `[a, b]`, `/` and `` → `[]`, `a/` → `[a, ""]` (a trailing slash
/// is an empty last segment, so `/x/` does not match a template `/x`).
fn segments(path: &str) -> Vec<&str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    }
}

fn query_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// How specific a match is, segment by segment: larger is more specific.
type Rank = Vec<u8>;
const LITERAL: u8 = 2;
const PARAMETER: u8 = 1;
const WILDCARD: u8 = 0;

fn match_template(
    template: &str,
    path: &[&str],
    query: &[(&str, &str)],
) -> Option<(Vec<(String, String)>, Rank)> {
    let (template_path, template_query) = template.split_once('?').unwrap_or((template, ""));
    let pattern = segments(template_path);
    let mut parameters = Vec::new();
    let mut rank = Vec::with_capacity(pattern.len());
    let mut i = 0;
    for (n, piece) in pattern.iter().enumerate() {
        let last = n + 1 == pattern.len();
        if let Some(name) = parameter_name(piece) {
            if let Some(name) = name.strip_prefix('*').filter(|_| last) {
                parameters.push((name.to_owned(), path.get(i..)?.join("/")));
                rank.push(WILDCARD);
                i = path.len();
                continue;
            }
            let value = path.get(i)?;
            if value.is_empty() {
                return None;
            }
            parameters.push((name.to_owned(), (*value).to_owned()));
            rank.push(PARAMETER);
        } else if *piece == "*" && last {
            rank.push(WILDCARD);
            i = path.len();
            continue;
        } else {
            if !path.get(i)?.eq_ignore_ascii_case(piece) {
                return None;
            }
            rank.push(LITERAL);
        }
        i += 1;
    }
    if i != path.len() {
        return None;
    }
    for (key, value) in query_pairs(template_query) {
        let (_, sent) = query.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))?;
        match parameter_name(value) {
            Some(name) => parameters.push((name.to_owned(), (*sent).to_owned())),
            None if sent == &value => {}
            None => return None,
        }
    }
    Some((parameters, rank))
}

/// `{name}` → `name`.
fn parameter_name(piece: &str) -> Option<&str> {
    piece.strip_prefix('{')?.strip_suffix('}')
}

/// A policy scope, broad to narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Global,
    #[allow(
        dead_code,
        reason = "the sandbox's ARM has no products yet; composition already places their scope"
    )]
    Product,
    Api,
    Operation,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Global => "global",
            Scope::Product => "product",
            Scope::Api => "API",
            Scope::Operation => "operation",
        })
    }
}

const SECTIONS: [&str; 4] = ["inbound", "backend", "outbound", "on-error"];

/// A policy document that cannot take part in composition, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scope} policy {position}: {message}")]
pub struct ComposeError {
    pub scope: Scope,
    pub position: Position,
    pub message: String,
}

/// The effective policy of one request: `scopes` broad to narrow, `None` where a scope has no
/// policy. The result is one `<policies>` document whose elements keep their positions in their
/// own documents; `PolicyDocument::from_document` turns it into what the simulator evaluates.
pub fn compose(scopes: &[(Scope, Option<&Document>)]) -> Result<Document, ComposeError> {
    // Empty until the broadest scope with a policy, so its `<base />` inserts nothing.
    let mut effective: [Vec<Node>; 4] = Default::default();
    for (scope, document) in scopes {
        let Some(document) = document else {
            continue;
        };
        let error = |position: Position, message: String| ComposeError {
            scope: *scope,
            position,
            message,
        };
        let root = &document.root;
        if root.name != "policies" {
            return Err(error(
                root.position,
                format!("the root element is <{}>, not <policies>", root.name),
            ));
        }
        let mut sections: [Option<&Element>; 4] = [None; 4];
        for section in root.elements() {
            let Some(index) = SECTIONS.iter().position(|s| *s == section.name) else {
                return Err(error(
                    section.position,
                    format!(
                        "<{}> is not a policy section (inbound, backend, outbound, on-error)",
                        section.name
                    ),
                ));
            };
            if sections[index].is_some() {
                return Err(error(
                    section.position,
                    format!("<{}> appears twice", section.name),
                ));
            }
            sections[index] = Some(section);
        }
        for (index, section) in sections.iter().enumerate() {
            let mut composed = Vec::new();
            let mut based: Option<Position> = None;
            for node in section.map(|s| s.children.as_slice()).unwrap_or_default() {
                match node {
                    Node::Element(e) if e.name == "base" => {
                        if let Some(first) = based {
                            return Err(error(
                                e.position,
                                format!(
                                    "<base /> appears twice in <{}> (first at {first}); APIM allows it once per section",
                                    SECTIONS[index]
                                ),
                            ));
                        }
                        based = Some(e.position);
                        composed.extend(effective[index].iter().cloned());
                    }
                    Node::Element(_) => composed.push(node.clone()),
                    // Whitespace between statements carries nothing once composed.
                    Node::Text(_) => {}
                }
            }
            effective[index] = composed;
        }
    }
    let children = SECTIONS
        .iter()
        .zip(effective)
        .map(|(name, children)| {
            Node::Element(Element {
                name: (*name).to_owned(),
                attributes: Vec::new(),
                children,
                position: Position::default(),
            })
        })
        .collect();
    Ok(Document {
        root: Element {
            name: "policies".to_owned(),
            attributes: Vec::new(),
            children,
            position: Position::default(),
        },
    })
}

#[cfg(test)]
mod tests;
