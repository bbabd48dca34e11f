//! `GET /subscriptions/{s}/resources` and `…/resourceGroups/{rg}/resources` (Resources_List,
//! Resources_ListByResourceGroup, api-version 2021-04-01): the top-level resources of a scope,
//! with the `$filter` forms `provision` and the Azure CLI send (`tagName eq 'n'`, `tagName eq 'n'
//! and tagValue eq 'v'`, and `eq` on `resourceType`, `resourceGroup`, `name` and `location`, joined
//! by `and`: `az resource list -g RG` asks the subscription's list for `resourceGroup eq 'RG'`,
//! azure-cli `resource/custom.py` `_list_resources_odata_filter_builder`), `$top` and `nextLink`. Child resources (deployments, APIs) are
//! not listed, nor are resource groups, as in Azure.
//!
//! Source: azure-rest-api-specs `Microsoft.Resources/stable/2021-04-01/resources.json`, whose
//! `$filter` description says "When you filter by a tag name and value, the tags for each
//! resource are not returned in the results": the sandbox leaves them out too, so a client must
//! read a resource to see its tags.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ArmError, Call, Reply};

/// ARM's page size when `$top` is absent; also the largest `$top` honoured.
const PAGE: usize = 1000;

/// What a `$filter` keeps.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    tag_name: Option<String>,
    tag_value: Option<String>,
    resource_type: Option<String>,
    resource_group: Option<String>,
    name: Option<String>,
    location: Option<String>,
}

fn invalid_filter(filter: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidFilterInQueryString",
        format!(
            "The filter '{filter}' is not supported here: use tagName eq '…' [and tagValue eq '…'], or eq on resourceType, resourceGroup, name or location, joined by and."
        ),
    )
}

/// `field eq 'value'` clauses joined by `and`; quotes doubled inside a value, as OData writes
/// them.
fn parse_filter(filter: &str) -> Result<Filter, ArmError> {
    let mut parsed = Filter::default();
    let mut rest = filter.trim();
    loop {
        let (field, after) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid_filter(filter))?;
        let after = after.trim_start();
        let after = after
            .strip_prefix("eq")
            .filter(|a| a.starts_with(char::is_whitespace))
            .ok_or_else(|| invalid_filter(filter))?
            .trim_start();
        let body = after
            .strip_prefix('\'')
            .ok_or_else(|| invalid_filter(filter))?;
        let mut value = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    value.push('\'');
                    continue;
                }
                end = Some(i + 1);
                break;
            }
            value.push(c);
        }
        let end = end.ok_or_else(|| invalid_filter(filter))?;
        let slot = match field.to_ascii_lowercase().as_str() {
            "tagname" => &mut parsed.tag_name,
            "tagvalue" => &mut parsed.tag_value,
            "resourcetype" => &mut parsed.resource_type,
            "resourcegroup" => &mut parsed.resource_group,
            "name" => &mut parsed.name,
            "location" => &mut parsed.location,
            _ => return Err(invalid_filter(filter)),
        };
        if slot.replace(value).is_some() {
            return Err(invalid_filter(filter));
        }
        rest = body[end..].trim_start();
        if rest.is_empty() {
            break;
        }
        rest = rest
            .strip_prefix("and")
            .filter(|r| r.starts_with(char::is_whitespace))
            .ok_or_else(|| invalid_filter(filter))?
            .trim_start();
    }
    if parsed.tag_value.is_some() && parsed.tag_name.is_none() {
        return Err(invalid_filter(filter));
    }
    Ok(parsed)
}

impl Filter {
    fn keeps(&self, resource: &Value) -> bool {
        let tags = resource.get("tags").and_then(Value::as_object);
        let tag_ok = match (&self.tag_name, &self.tag_value) {
            (None, _) => true,
            // Tag names ignore case in ARM; values are compared as written, ignoring case.
            (Some(name), value) => tags.into_iter().flatten().any(|(k, v)| {
                k.eq_ignore_ascii_case(name)
                    && value
                        .as_ref()
                        .is_none_or(|want| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(want)))
            }),
        };
        // ARM compares these ignoring case, as it does every name in a resource id.
        let field_is = |want: &Option<String>, field: &str| {
            want.as_ref().is_none_or(|w| {
                resource
                    .get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(w))
            })
        };
        let group_ok = self.resource_group.as_ref().is_none_or(|g| {
            let id = resource
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            id.split('/')
                .skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups"))
                .nth(1)
                .is_some_and(|rg| rg.eq_ignore_ascii_case(g))
        });
        tag_ok
            && group_ok
            && field_is(&self.resource_type, "type")
            && field_is(&self.name, "name")
            && field_is(&self.location, "location")
    }
}

/// Whether `id` is a top-level resource (`…/providers/{ns}/{type}/{name}`) below `scope`.
fn top_level_below(id: &str, scope: &str) -> bool {
    let lower = id.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(scope) else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let groups = scope.matches("/resourcegroups/").count() == 0;
    let offset = if groups { 2 } else { 0 };
    segments.len() == offset + 4
        && (!groups || segments[0] == "resourcegroups")
        && segments[offset] == "providers"
}

/// Lists the top-level resources of `scope` (a lower-cased subscription or group id).
pub(super) fn list(call: &mut Call<'_>, scope: &str) -> Result<Reply, ArmError> {
    if call.request.method != Method::GET {
        return Err(ArmError::method_not_supported(&call.request.method));
    }
    let query = |name: &str| {
        call.request
            .query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let filter = query("$filter")
        .map(|f| parse_filter(&f))
        .transpose()?
        .unwrap_or_default();
    let top = match query("$top") {
        None => PAGE,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidTopInQueryString",
                    format!("The value '{t}' of $top is not a positive integer."),
                )
            })?
            .min(PAGE),
    };
    let skip: usize = query("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let scope = format!("{scope}/");
    let all: Vec<Value> = call
        .state
        .arm
        .resources
        .values()
        .filter(|r| top_level_below(&r.id, &scope))
        .map(super::view)
        .filter(|v| filter.keeps(v))
        .collect();
    let hide_tags = filter.tag_value.is_some();
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(top)
        .map(|v| summary(v, hide_tags))
        .collect();
    let mut body = json!({ "value": page });
    if skip + top < all.len() {
        let path = format!("/{}", call.request.segments.join("/"));
        let mut next = format!(
            "{path}?api-version={}&$top={top}&$skiptoken={}",
            call.request.api_version,
            skip + top
        );
        if let Some(f) = query("$filter") {
            next.push_str("&$filter=");
            next.push_str(&urlencoding(&f));
        }
        body["nextLink"] = json!(call.url(&next));
    }
    Ok(Reply::new(StatusCode::OK, Some(body)))
}

/// The generic resource shape the list gives: identity fields, no `properties`.
fn summary(resource: &Value, hide_tags: bool) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "id",
        "name",
        "type",
        "location",
        "kind",
        "sku",
        "identity",
        "managedBy",
    ] {
        if let Some(v) = resource.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if !hide_tags && let Some(tags) = resource.get("tags") {
        out.insert("tags".into(), tags.clone());
    }
    Value::Object(out)
}

fn urlencoding(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_forms_provision_sends_and_refuse_the_rest() {
        assert_eq!(
            parse_filter("tagName eq 'provision-env' and tagValue eq 'O''Brien'").ok(),
            Some(Filter {
                tag_name: Some("provision-env".into()),
                tag_value: Some("O'Brien".into()),
                ..Filter::default()
            })
        );
        let az = parse_filter("resourceGroup eq 'rg-az' and name eq 'a'").unwrap();
        assert_eq!(
            (az.resource_group.as_deref(), az.name.as_deref()),
            (Some("rg-az"), Some("a"))
        );
        let account = json!({
            "id": "/subscriptions/s/resourceGroups/RG-AZ/providers/Microsoft.X/accounts/a",
            "name": "a", "type": "Microsoft.X/accounts", "location": "swedencentral",
        });
        assert!(az.keeps(&account));
        assert!(
            !parse_filter("resourceGroup eq 'other'")
                .unwrap()
                .keeps(&account)
        );
        assert!(
            !parse_filter("location eq 'westus'")
                .unwrap()
                .keeps(&account)
        );
        assert!(parse_filter("tagValue eq 'x'").is_err());
        assert!(parse_filter("identity eq 'x'").is_err());
        assert!(parse_filter("tagName eq 'x' or tagName eq 'y'").is_err());
        assert!(parse_filter("tagName eq 'x").is_err());
    }

    #[test]
    fn only_top_level_resources_of_the_scope_are_listed() {
        let sub = "/subscriptions/s/";
        assert!(top_level_below(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.x/accounts/a",
            sub
        ));
        assert!(!top_level_below(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.x/accounts/a/deployments/d",
            sub
        ));
        assert!(!top_level_below("/subscriptions/s/resourcegroups/rg", sub));
        let group = "/subscriptions/s/resourcegroups/rg/";
        assert!(top_level_below(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.x/accounts/a",
            group
        ));
        assert!(!top_level_below(
            "/subscriptions/s/resourcegroups/rg2/providers/microsoft.x/accounts/a",
            group
        ));
    }
}
