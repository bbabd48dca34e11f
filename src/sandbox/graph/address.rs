//! How a request names what it wants: the collection, the object by id or alternate key
//! (`applications(uniqueName='x')`), the deleted-items bin, and the `$select` a client asked for.

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use serde_json::{Map, Value, json};

use super::{Failure, collection, template_for, type_name};
use crate::sandbox::state::{DirectoryObject, ObjectKind};

/// How a request names an object.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Key {
    Id(String),
    AppId(String),
    UniqueName(String),
}

impl Key {
    pub(super) fn value(&self) -> &str {
        match self {
            Key::Id(v) | Key::AppId(v) | Key::UniqueName(v) => v,
        }
    }

    pub(super) fn is_alternate(&self) -> bool {
        !matches!(self, Key::Id(_))
    }

    pub(super) fn matches(&self, object: &DirectoryObject) -> bool {
        let property = match self {
            Key::Id(_) => "id",
            Key::AppId(_) => "appId",
            Key::UniqueName(_) => "uniqueName",
        };
        object
            .str(property)
            .is_some_and(|v| v.eq_ignore_ascii_case(self.value()))
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum Target {
    Collection(ObjectKind),
    Item(ObjectKind, Key),
    Deleted(ObjectKind),
    DeletedItem(String),
    Restore(String),
    /// `applications/{key}/federatedIdentityCredentials[/{id} | (name='…')]`.
    Federated(Key, Option<CredentialKey>),
    /// `servicePrincipals/{key}/appRoleAssignments`: the app roles granted to a principal.
    AppRoleAssignments(Key),
    /// `applications/{key}/owners` (the list), `…/owners/$ref` (add one) and
    /// `…/owners/{id}/$ref` (remove one).
    Owners(Key, OwnersPath),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum OwnersPath {
    List,
    Add,
    Remove(String),
}

/// How a request names one federated identity credential: by id, or by its `name`, the
/// alternate key Graph gives it (federatedidentitycredential-get: "`{federatedIdentityCredentialId}`
/// or `(name='{name}')`").
#[derive(Debug, Clone, PartialEq)]
pub(super) enum CredentialKey {
    Id(String),
    Name(String),
}

const FEDERATED: &str = "federatedIdentityCredentials";

/// The credential segment after the app: `federatedIdentityCredentials`, `…/{id}`, or
/// `federatedIdentityCredentials(name='x')`.
fn credential_target(app: Key, rest: &[String]) -> Result<Target, Failure> {
    let Some((head, tail)) = rest.split_first() else {
        return Err(Failure::method_not_allowed());
    };
    if head.eq_ignore_ascii_case("owners") {
        return match tail {
            [] => Ok(Target::Owners(app, OwnersPath::List)),
            [r] if r == "$ref" => Ok(Target::Owners(app, OwnersPath::Add)),
            [id, r] if r == "$ref" => Ok(Target::Owners(app, OwnersPath::Remove(id.clone()))),
            [.., last] => Err(Failure::unknown_segment(last)),
        };
    }
    let (name, key) = match head.find('(') {
        Some(open) => {
            let inner = head[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| Failure::unknown_segment(head))?;
            let value = match inner.split_once('=') {
                Some((p, v)) if p.trim().eq_ignore_ascii_case("name") => v,
                Some(_) => return Err(Failure::unknown_segment(head)),
                None => inner,
            };
            let value = literal(value).ok_or_else(|| Failure::unknown_segment(head))?;
            let key = if inner.contains('=') {
                CredentialKey::Name(value)
            } else {
                CredentialKey::Id(value)
            };
            (&head[..open], Some(key))
        }
        None => (head.as_str(), None),
    };
    if !name.eq_ignore_ascii_case(FEDERATED) {
        return Err(Failure::unknown_segment(head));
    }
    match (key, tail) {
        (key, []) => Ok(Target::Federated(app, key)),
        (None, [id]) => Ok(Target::Federated(app, Some(CredentialKey::Id(id.clone())))),
        (_, [.., last]) => Err(Failure::unknown_segment(last)),
    }
}

pub(super) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An OData string literal (`'it''s'`) or a bare token; `None` when a quote is left open.
pub(super) fn literal(text: &str) -> Option<String> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('\'') else {
        return Some(text.to_owned());
    };
    let inner = inner.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// `applications(appId='…')` → (`applications`, the key); a plain segment has no key.
pub(super) fn split_key(segment: &str) -> Result<(&str, Option<Key>), Failure> {
    let Some(open) = segment.find('(') else {
        return Ok((segment, None));
    };
    let inner = segment[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| Failure::unknown_segment(segment))?;
    let (property, value) = match inner.split_once('=') {
        Some((p, v)) if !p.contains('\'') => (p.trim(), v),
        _ => ("id", inner),
    };
    let value = literal(value).ok_or_else(|| Failure::unknown_segment(segment))?;
    let key = if property.eq_ignore_ascii_case("id") {
        Key::Id(value)
    } else if property.eq_ignore_ascii_case("appId") {
        Key::AppId(value)
    } else if property.eq_ignore_ascii_case("uniqueName") {
        Key::UniqueName(value)
    } else {
        return Err(Failure::unknown_segment(segment));
    };
    Ok((&segment[..open], Some(key)))
}

pub(super) fn kind_of_collection(name: &str) -> Option<ObjectKind> {
    [ObjectKind::Application, ObjectKind::ServicePrincipal]
        .into_iter()
        .find(|k| collection(*k).eq_ignore_ascii_case(name))
}

/// `microsoft.graph.application` → the kind it casts to.
pub(super) fn kind_of_cast(name: &str) -> Option<ObjectKind> {
    [ObjectKind::Application, ObjectKind::ServicePrincipal]
        .into_iter()
        .find(|k| format!("microsoft.graph.{}", type_name(*k)).eq_ignore_ascii_case(name))
}

pub(super) fn parse_target(path: &str) -> Result<Target, Failure> {
    let rest = path
        .strip_prefix("/v1.0/")
        .unwrap_or_default()
        .trim_end_matches('/');
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let (head, key) = split_key(&segments[0])?;
    if let Some(kind) = kind_of_collection(head) {
        if kind == ObjectKind::ServicePrincipal && matches!(key, Some(Key::UniqueName(_))) {
            return Err(Failure::unknown_segment(&segments[0]));
        }
        return match (key, &segments[1..]) {
            (None, []) => Ok(Target::Collection(kind)),
            (None, [id]) => Ok(Target::Item(kind, Key::Id(id.clone()))),
            (Some(key), []) => Ok(Target::Item(kind, key)),
            (None, [id, what])
                if kind == ObjectKind::ServicePrincipal
                    && what.eq_ignore_ascii_case("appRoleAssignments") =>
            {
                Ok(Target::AppRoleAssignments(Key::Id(id.clone())))
            }
            (Some(key), [what])
                if kind == ObjectKind::ServicePrincipal
                    && what.eq_ignore_ascii_case("appRoleAssignments") =>
            {
                Ok(Target::AppRoleAssignments(key))
            }
            (None, [id, rest @ ..]) if kind == ObjectKind::Application => {
                credential_target(Key::Id(id.clone()), rest)
            }
            (Some(key), rest) if kind == ObjectKind::Application => credential_target(key, rest),
            (_, [.., last]) => Err(Failure::unknown_segment(last)),
        };
    }
    let deleted_items = head.eq_ignore_ascii_case("directory")
        && key.is_none()
        && segments
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case("deletedItems"));
    if deleted_items {
        if let [cast] = &segments[2..]
            && let Some(kind) = kind_of_cast(cast)
        {
            return Ok(Target::Deleted(kind));
        }
        return match &segments[2..] {
            [id] => Ok(Target::DeletedItem(id.clone())),
            [id, action]
                if action.eq_ignore_ascii_case("restore")
                    || action.eq_ignore_ascii_case("microsoft.graph.restore") =>
            {
                Ok(Target::Restore(id.clone()))
            }
            [] => Err(Failure::method_not_allowed()),
            [.., last] => Err(Failure::unknown_segment(last)),
        };
    }
    Err(Failure::unknown_segment(head))
}

/// The query options the sandbox honours; other `$` options are ignored.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) filter: Option<String>,
    pub(super) select: Option<Vec<String>>,
}

impl Options {
    pub(super) fn parse(uri: &Uri) -> Result<Options, Failure> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Invalid query: {e}"),
            )
        })?;
        let mut options = Options::default();
        for (name, value) in pairs {
            if name.eq_ignore_ascii_case("$filter") {
                options.filter = Some(value);
            } else if name.eq_ignore_ascii_case("$select") {
                options.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
        }
        Ok(options)
    }

    /// The selected properties, by their proper names; all when there is no `$select`.
    pub(super) fn selection(&self, kind: ObjectKind) -> Result<Option<Vec<String>>, Failure> {
        let Some(names) = &self.select else {
            return Ok(None);
        };
        let template = template_for(kind);
        names
            .iter()
            .map(|name| {
                template
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .cloned()
                    .ok_or_else(|| {
                        Failure::new(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!(
                                "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                                type_name(kind)
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

pub(super) fn project(body: &Map<String, Value>, selection: Option<&[String]>) -> Value {
    match selection {
        None => Value::Object(body.clone()),
        Some(names) => Value::Object(
            names
                .iter()
                .map(|n| (n.clone(), body.get(n).cloned().unwrap_or(Value::Null)))
                .collect(),
        ),
    }
}

/// The object preceded by its `@odata` annotations.
pub(super) fn annotated(annotations: &[(&str, String)], body: &Map<String, Value>) -> Value {
    let mut out: Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    out.extend(body.clone());
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_keys_and_deleted_items() {
        use ObjectKind::{Application, ServicePrincipal};
        let t = |p: &str| parse_target(p).map_err(|f| (f.code, f.message));
        assert_eq!(t("/v1.0/applications"), Ok(Target::Collection(Application)));
        assert_eq!(
            t("/v1.0/applications/abc/"),
            Ok(Target::Item(Application, Key::Id("abc".into())))
        );
        assert_eq!(
            t("/v1.0/applications(uniqueName='it''s%20x')"),
            Ok(Target::Item(Application, Key::UniqueName("it's x".into())))
        );
        assert_eq!(
            t("/v1.0/servicePrincipals(appId=%27a%27)"),
            Ok(Target::Item(ServicePrincipal, Key::AppId("a".into())))
        );
        assert_eq!(
            t("/v1.0/directory/deletedItems/microsoft.graph.application"),
            Ok(Target::Deleted(Application))
        );
        assert_eq!(
            t("/v1.0/directory/deletedItems/x/restore"),
            Ok(Target::Restore("x".into()))
        );
        assert_eq!(
            t("/v1.0/me"),
            Err((
                "BadRequest",
                "Resource not found for the segment 'me'.".to_owned()
            ))
        );
        assert!(t("/v1.0/servicePrincipals(uniqueName='x')").is_err());
        assert_eq!(
            t("/v1.0/applications/a/federatedIdentityCredentials"),
            Ok(Target::Federated(Key::Id("a".into()), None))
        );
        assert_eq!(
            t("/v1.0/applications(appId='b')/federatedIdentityCredentials/c"),
            Ok(Target::Federated(
                Key::AppId("b".into()),
                Some(CredentialKey::Id("c".into()))
            ))
        );
        assert_eq!(
            t("/v1.0/applications/a/federatedIdentityCredentials(name='gh-prod')"),
            Ok(Target::Federated(
                Key::Id("a".into()),
                Some(CredentialKey::Name("gh-prod".into()))
            ))
        );
        assert_eq!(
            t("/v1.0/applications/a/owners/$ref"),
            Ok(Target::Owners(Key::Id("a".into()), OwnersPath::Add))
        );
        assert_eq!(
            t("/v1.0/applications/a/owners/b/$ref"),
            Ok(Target::Owners(
                Key::Id("a".into()),
                OwnersPath::Remove("b".into())
            ))
        );
        assert!(t("/v1.0/applications/a/owners/b").is_err());
        assert!(t("/v1.0/applications/a/members").is_err());
        assert!(t("/v1.0/servicePrincipals/a/federatedIdentityCredentials").is_err());
        assert!(t("/v1.0/applications(appId='x)").is_err());
    }
}
