//! What a saved plan remembers about each resource it read, so that `up --plan` can tell whether
//! anything changed since: the version the service gives (ARM's `ETag`, which changes on every
//! write), else a SHA-256 of the fields the plan compared. Graph v1.0 gives no version on
//! applications and service principals, and ARM none on resource groups and role assignments
//! (their REST specs have no `etag`), so those are hashed.
//!
//! Only the compared fields are hashed: a change to a field `provision` does not manage cannot
//! change what `up` would do, and must not make a reviewed plan stale.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One resource's state as the plan saw it. The file says which kind of fingerprint it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fingerprint {
    /// The service's version of the resource, as it sent it (quotes included).
    Etag { etag: String },
    /// SHA-256 (hex) of the canonical JSON of the fields the plan compared.
    Sha256 { sha256: String },
    /// The read answered 404.
    Absent,
    /// Not read: its identity comes from a resource that does not exist yet.
    NotRead,
    /// An orphan, found by its marks; it stays current while the search still finds it.
    Listed,
}

impl Fingerprint {
    /// The fingerprint of a read: `etag` when the service gave one, else the hash of what
    /// `observed` holds at the paths `desired` names.
    pub fn of(observed: Option<&Value>, etag: Option<&str>, desired: &Value) -> Fingerprint {
        match (observed, etag) {
            (None, _) => Fingerprint::Absent,
            (Some(_), Some(etag)) => Fingerprint::Etag {
                etag: etag.to_owned(),
            },
            (Some(observed), None) => Fingerprint::Sha256 {
                sha256: sha256_hex(canonical(&compared(desired, observed)).as_bytes()),
            },
        }
    }

    /// How it reads in a stale-plan message: `ETag "a"`, `SHA-256 0123456789ab…`, `absent`.
    pub fn show(&self) -> String {
        match self {
            Fingerprint::Etag { etag } => format!("ETag {etag}"),
            Fingerprint::Sha256 { sha256 } => {
                format!("SHA-256 {}…", sha256.chars().take(12).collect::<String>())
            }
            Fingerprint::Absent => "absent".to_owned(),
            Fingerprint::NotRead => "not read".to_owned(),
            Fingerprint::Listed => "listed".to_owned(),
        }
    }

    /// What happened between `self` (saved) and `now` (read again), for `stale plan: <address>
    /// <what>`; `None` when nothing did.
    pub fn change_since(&self, now: &Fingerprint) -> Option<String> {
        if self == now {
            return None;
        }
        Some(match (self, now) {
            (Fingerprint::Absent | Fingerprint::NotRead, _) => "was created since the plan".into(),
            (_, Fingerprint::Absent | Fingerprint::NotRead) => "was deleted since the plan".into(),
            (Fingerprint::Etag { etag: a }, Fingerprint::Etag { etag: b }) => {
                format!("changed (ETag {a} → {b})")
            }
            (a, b) => format!("changed ({} → {})", a.show(), b.show()),
        })
    }
}

/// `observed` cut down to the shape of `desired`: the value at every key `desired` names (null
/// where `observed` has none); lists and leaves whole.
fn compared(desired: &Value, observed: &Value) -> Value {
    match (desired, observed) {
        (Value::Object(wanted), Value::Object(have)) => Value::Object(
            wanted
                .iter()
                .map(|(k, d)| {
                    let o = have.get(k).map_or(Value::Null, |o| compared(d, o));
                    (k.clone(), o)
                })
                .collect::<Map<String, Value>>(),
        ),
        (_, other) => other.clone(),
    }
}

/// JSON with every object's keys sorted and no whitespace: the same value always gives the
/// same text, whatever order the service sent its fields in.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&fields[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// SHA-256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_compared_fields_count() {
        let desired = json!({"properties": {"a": 1}, "tags": {"x": "1"}});
        let one =
            json!({"id": "1", "properties": {"a": 1, "state": "Creating"}, "tags": {"x": "1"}});
        let two =
            json!({"tags": {"x": "1"}, "id": "2", "properties": {"state": "Succeeded", "a": 1}});
        assert_eq!(
            Fingerprint::of(Some(&one), None, &desired),
            Fingerprint::of(Some(&two), None, &desired)
        );
        let changed = json!({"properties": {"a": 2}, "tags": {"x": "1"}});
        let (a, b) = (
            Fingerprint::of(Some(&one), None, &desired),
            Fingerprint::of(Some(&changed), None, &desired),
        );
        assert_ne!(a, b);
        assert!(a.change_since(&b).unwrap().starts_with("changed (SHA-256 "));
    }

    #[test]
    fn an_etag_wins_and_says_what_changed() {
        let body = json!({"etag": "ignored"});
        let a = Fingerprint::of(Some(&body), Some("\"a\""), &json!({}));
        let b = Fingerprint::of(Some(&body), Some("\"b\""), &json!({}));
        assert_eq!(
            a.change_since(&b).as_deref(),
            Some("changed (ETag \"a\" → \"b\")")
        );
        assert_eq!(a.change_since(&a), None);
        assert_eq!(
            Fingerprint::Absent.change_since(&a).as_deref(),
            Some("was created since the plan")
        );
        assert_eq!(
            a.change_since(&Fingerprint::Absent).as_deref(),
            Some("was deleted since the plan")
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        assert_eq!(
            canonical(&json!({"b": [{"d": 1, "c": "x"}], "a": null})),
            r#"{"a":null,"b":[{"c":"x","d":1}]}"#
        );
    }
}
