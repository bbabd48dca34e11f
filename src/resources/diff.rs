//! Field-level comparison of a desired JSON state with an observed one.
//!
//! Only what the desired state names is compared: Azure adds server-side fields (ids, etags,
//! timestamps, provisioning state) that are nobody's business in a plan. A desired value that is
//! [`UNKNOWN`] (an `appId` that does not exist yet) is a change shown as `(known after apply)`.

use serde_json::Value;

/// Marks a value known only after apply. A string no service ever returns.
pub const UNKNOWN: &str = "\u{1}(known after apply)";

pub fn is_unknown(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains(UNKNOWN))
}

/// Whether any value inside `value` is known only after apply (such a state can not be sent).
pub fn has_unknown(value: &Value) -> bool {
    !unknowns(value).is_empty()
}

/// Where in `value` the unknowns are (dotted paths), each with what its marker carries, such as
/// a render error.
pub fn unknowns(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknowns("", value, &mut out);
    out
}

fn collect_unknowns(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains(UNKNOWN) => {
            let why = s.replace(UNKNOWN, "").trim().to_owned();
            out.push(if why.is_empty() {
                path.to_owned()
            } else {
                format!("{path} {why}")
            });
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_unknowns(&format!("{path}[{i}]"), item, out);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_unknowns(&child, v, out);
            }
        }
        _ => {}
    }
}

/// One differing field: its dotted path (`properties.disableLocalAuth`, `api.oauth2PermissionScopes[0].value`),
/// what was observed (absent: `None`) and what is desired.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl FieldChange {
    /// The desired value as a plan prints it.
    pub fn new_display(&self) -> String {
        self.new
            .as_ref()
            .map_or_else(|| "(absent)".to_owned(), show)
    }

    pub fn old_display(&self) -> String {
        self.old
            .as_ref()
            .map_or_else(|| "(absent)".to_owned(), show)
    }
}

/// A value for humans: strings unquoted where that is unambiguous, unknowns as
/// `(known after apply)`.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) if s.contains(UNKNOWN) => s.replace(UNKNOWN, "(known after apply)"),
        Value::String(s) => format!("{s:?}"),
        other => {
            // Inside JSON text the marker's control character is escaped.
            let escaped = Value::String(UNKNOWN.to_owned()).to_string();
            other
                .to_string()
                .replace(escaped.trim_matches('"'), "(known after apply)")
        }
    }
}

/// Every field of `desired` whose value `observed` does not have.
pub fn subset_diff(desired: &Value, observed: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    walk("", desired, Some(observed), &mut changes);
    changes
}

fn walk(path: &str, desired: &Value, observed: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (desired, observed) {
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let found = have.get(key).or_else(|| {
                    have.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                });
                walk(&child, value, found, out);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => {
            // Element by element, each element compared as a subset; a length change is one
            // change of the whole list (below), which reads better than n element changes.
            let mut inner = Vec::new();
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                walk(&format!("{path}[{i}]"), w, Some(h), &mut inner);
            }
            out.extend(inner);
        }
        (Value::Null, None | Some(Value::Null)) => {}
        (want, Some(have)) if matches(want, have) => {}
        (want, have) => out.push(FieldChange {
            path: path.to_owned(),
            old: have.cloned(),
            new: Some(want.clone()),
        }),
    }
}

/// Scalar (or whole-list) equality; numbers by value so `10` equals `10.0`.
fn matches(want: &Value, have: &Value) -> bool {
    if is_unknown(want) {
        return false;
    }
    match (want, have) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(w, h)| {
                    let mut inner = Vec::new();
                    walk("", w, Some(h), &mut inner);
                    inner.is_empty()
                })
        }
        _ => want == have,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_named_fields_count() {
        let desired =
            json!({"location": "swedencentral", "properties": {"disableLocalAuth": true}});
        let observed = json!({"id": "/x", "location": "swedencentral",
            "properties": {"disableLocalAuth": false, "provisioningState": "Succeeded"}});
        assert_eq!(
            subset_diff(&desired, &observed),
            [FieldChange {
                path: "properties.disableLocalAuth".into(),
                old: Some(json!(false)),
                new: Some(json!(true)),
            }]
        );
        assert!(subset_diff(&json!({"location": "swedencentral"}), &observed).is_empty());
    }

    #[test]
    fn lists_compare_by_element_and_length() {
        let desired = json!({"uris": ["a", "b"], "scopes": [{"value": "x", "isEnabled": true}]});
        let same =
            json!({"uris": ["a", "b"], "scopes": [{"id": "1", "value": "x", "isEnabled": true}]});
        assert!(subset_diff(&desired, &same).is_empty());
        let shorter = json!({"uris": ["a"], "scopes": [{"value": "y", "isEnabled": true}]});
        let changes = subset_diff(&desired, &shorter);
        assert_eq!(
            changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            // Keys in JSON object order (sorted).
            ["scopes[0].value", "uris"]
        );
    }

    #[test]
    fn unknown_values_are_always_changes_and_print_as_such() {
        let desired = json!({"identifierUris": [format!("api://{UNKNOWN}")]});
        let changes = subset_diff(&desired, &json!({"identifierUris": []}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].new_display(), r#"["api://(known after apply)"]"#);
        assert_eq!(changes[0].old_display(), "[]");
        assert_eq!(show(&json!(UNKNOWN)), "(known after apply)");
    }

    #[test]
    fn unknowns_are_found_with_their_reason() {
        let value = json!({"a": [1, format!("api://{UNKNOWN}")], "b": {"c": format!("{UNKNOWN} (does not render)")}});
        assert_eq!(unknowns(&value), ["a[1] api://", "b.c (does not render)"]);
        assert!(has_unknown(&value));
        assert!(!has_unknown(&json!({"a": "x"})));
    }

    #[test]
    fn numbers_compare_by_value_and_missing_fields_are_changes() {
        assert!(subset_diff(&json!({"capacity": 10}), &json!({"capacity": 10.0})).is_empty());
        let changes = subset_diff(&json!({"tags": {"a": "1"}}), &json!({}));
        assert_eq!(changes[0].path, "tags");
        assert_eq!(changes[0].old, None);
    }
}
