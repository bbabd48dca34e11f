//! Objects as Graph returns them and the rules a write must pass before anything is stored:
//! templates with Graph's defaults, read-only and mistyped properties, entitlements that can't
//! vanish, alternate keys that must stay unique (entra.md §1, §2.2).

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{
    APPLICATION_READ_ONLY, AUDIENCES, DEFAULT_AUDIENCE, Failure, SERVICE_PRINCIPAL_READ_ONLY,
    STRING_LISTS,
};
use crate::sandbox::state::{ObjectKind, State};

pub(super) fn application_template(
    id: &str,
    app_id: &str,
    publisher_domain: &str,
    created: &str,
    token_version: Value,
) -> Map<String, Value> {
    let value = json!({
        "id": id,
        "deletedDateTime": null,
        "appId": app_id,
        "applicationTemplateId": null,
        "createdDateTime": created,
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": "",
        "groupMembershipClaims": null,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "notes": null,
        "publisherDomain": publisher_domain,
        "serviceManagementReference": null,
        "signInAudience": DEFAULT_AUDIENCE,
        "tags": [],
        "tokenEncryptionKeyId": null,
        "uniqueName": null,
        "addIns": [],
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": token_version,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": {
            "logoUrl": null,
            "marketingUrl": null,
            "privacyStatementUrl": null,
            "supportUrl": null,
            "termsOfServiceUrl": null,
        },
        "keyCredentials": [],
        "optionalClaims": null,
        "parentalControlSettings": {
            "countriesBlockedForMinors": [],
            "legalAgeGroupRule": "Allow",
        },
        "passwordCredentials": [],
        "publicClient": { "redirectUris": [] },
        "requiredResourceAccess": [],
        "spa": { "redirectUris": [] },
        "verifiedPublisher": {
            "displayName": null,
            "verifiedPublisherId": null,
            "addedDateTime": null,
        },
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "redirectUriSettings": [],
            "implicitGrantSettings": {
                "enableAccessTokenIssuance": false,
                "enableIdTokenIssuance": false,
            },
        },
    });
    value.as_object().cloned().unwrap_or_default()
}

/// The properties of an SP that mirror its application; they follow the app's changes.
pub(super) fn mirrored_from(app: &Map<String, Value>) -> Map<String, Value> {
    let app_id = app.get("appId").and_then(Value::as_str).unwrap_or_default();
    let mut names = vec![json!(app_id)];
    names.extend(list(app, "identifierUris").iter().cloned());
    let mut mirrored = Map::new();
    mirrored.insert("appDisplayName".into(), app["displayName"].clone());
    mirrored.insert("displayName".into(), app["displayName"].clone());
    mirrored.insert("servicePrincipalNames".into(), Value::Array(names));
    mirrored.insert("signInAudience".into(), app["signInAudience"].clone());
    mirrored.insert("appRoles".into(), json!(list(app, "appRoles")));
    mirrored.insert("oauth2PermissionScopes".into(), json!(scopes(app)));
    mirrored.insert("info".into(), app["info"].clone());
    mirrored
}

pub(super) fn service_principal_template(
    id: &str,
    tenant: &str,
    publisher: &str,
    app: &Map<String, Value>,
) -> Map<String, Value> {
    let value = json!({
        "id": id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": [],
        "appDescription": null,
        "appId": app.get("appId").cloned().unwrap_or(Value::Null),
        "applicationTemplateId": null,
        "appOwnerOrganizationId": tenant,
        "appRoleAssignmentRequired": false,
        "description": null,
        "disabledByMicrosoftStatus": null,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "publisherName": publisher,
        "replyUrls": [],
        "samlSingleSignOnSettings": null,
        "servicePrincipalType": "Application",
        "tags": [],
        "tokenEncryptionKeyId": null,
        "addIns": [],
        "keyCredentials": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {
            "displayName": null,
            "verifiedPublisherId": null,
            "addedDateTime": null,
        },
    });
    let mut sp = value.as_object().cloned().unwrap_or_default();
    sp.extend(mirrored_from(app));
    sp
}

/// A template of each kind, for the property names and types a request may use.
pub(super) fn template_for(kind: ObjectKind) -> Map<String, Value> {
    let app = application_template("", "", "", "", Value::Null);
    match kind {
        ObjectKind::Application => app,
        ObjectKind::ServicePrincipal => service_principal_template("", "", "", &app),
    }
}

pub(super) fn list<'a>(body: &'a Map<String, Value>, name: &str) -> &'a [Value] {
    body.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn strings(values: &[Value]) -> impl Iterator<Item = &str> {
    values.iter().filter_map(Value::as_str)
}

/// Refuses properties the entity doesn't have, read-only ones being changed, and values of the
/// wrong shape, the way the directory does before it writes anything.
pub(super) fn check_properties(
    kind: ObjectKind,
    body: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), Failure> {
    let template = template_for(kind);
    let read_only: &[&str] = match kind {
        ObjectKind::Application => &APPLICATION_READ_ONLY,
        ObjectKind::ServicePrincipal => &SERVICE_PRINCIPAL_READ_ONLY,
    };
    for (name, value) in body {
        if name.starts_with('@') {
            continue;
        }
        if read_only.contains(&name.as_str()) {
            if current.and_then(|c| c.get(name)) == Some(value) {
                continue;
            }
            return Err(Failure::bad_request(format!(
                "Property '{name}' is read-only and cannot be set."
            )));
        }
        let Some(default) = template.get(name) else {
            return Err(Failure::bad_request(format!(
                "Property '{name}' does not exist as a declared property or extension property."
            )));
        };
        let fits = match default {
            Value::Array(_) => value.as_array().is_some_and(|items| {
                !STRING_LISTS.contains(&name.as_str()) || items.iter().all(Value::is_string)
            }),
            Value::Object(_) => value.is_object() || value.is_null(),
            Value::String(_) => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            Value::Bool(_) => value.is_boolean(),
            Value::Number(_) => value.is_number(),
            Value::Null => true,
        };
        let fits = fits
            && match name.as_str() {
                "signInAudience" => value.as_str().is_some_and(|a| AUDIENCES.contains(&a)),
                "uniqueName" => {
                    value.is_null() || value.as_str().is_some_and(|s| !s.trim().is_empty())
                }
                "api" => api_is_well_formed(value),
                _ => true,
            };
        if !fits {
            return Err(Failure::invalid_value(name, kind));
        }
    }
    Ok(())
}

pub(super) fn api_is_well_formed(api: &Value) -> bool {
    let Some(api) = api.as_object() else {
        return api.is_null();
    };
    let guid = |v: &Value| v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok());
    let objects = |name: &str| match api.get(name) {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Value::as_object).collect(),
        Some(_) => None,
    };
    let version_ok = api
        .get("requestedAccessTokenVersion")
        .is_none_or(|v| v.is_null() || v == &json!(1) || v == &json!(2));
    let scopes_ok = objects("oauth2PermissionScopes").is_some_and(|scopes| {
        scopes
            .iter()
            .all(|s| s.get("id").is_some_and(guid) && s.get("value").is_some_and(Value::is_string))
    });
    let preauth_ok = objects("preAuthorizedApplications").is_some_and(|entries| {
        entries.iter().all(|p| {
            p.get("appId").is_some_and(Value::is_string)
                && p.get("delegatedPermissionIds")
                    .is_none_or(|ids| ids.as_array().is_some_and(|ids| ids.iter().all(guid)))
        })
    });
    version_ok && scopes_ok && preauth_ok
}

/// Writes the request's properties over the object. Properties replace whole, nested objects
/// included (a partial `api` drops its siblings, entra.md §2.2); what a nested object leaves out
/// comes back with Graph's defaults.
pub(super) fn merge(
    object: &mut Map<String, Value>,
    body: Map<String, Value>,
    template: &Map<String, Value>,
) {
    for (name, value) in body {
        if !name.starts_with('@') {
            object.insert(name, value);
        }
    }
    for (name, default) in template {
        let Value::Object(defaults) = default else {
            continue;
        };
        match object.get_mut(name) {
            Some(Value::Object(given)) => {
                for (k, v) in defaults {
                    given.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            _ => {
                object.insert(name.clone(), default.clone());
            }
        }
    }
}

pub(super) fn scopes(app: &Map<String, Value>) -> &[Value] {
    app.get("api")
        .and_then(Value::as_object)
        .map_or(&[], |api| list(api, "oauth2PermissionScopes"))
}

/// Ids (lowercase) of scopes or roles, with whether each is enabled.
pub(super) fn entitlements(items: &[Value]) -> Vec<(String, bool)> {
    items
        .iter()
        .filter_map(|item| {
            let id = item.get("id")?.as_str()?.to_ascii_lowercase();
            Some((id, item.get("isEnabled") != Some(&Value::Bool(false))))
        })
        .collect()
}

pub(super) fn ids(items: &[Value]) -> HashSet<String> {
    entitlements(items).into_iter().map(|(id, _)| id).collect()
}

/// The rules Graph applies between the stored app and the one a write would leave: an enabled
/// scope or role can't vanish, and a preauthorization may only name scopes the app already had.
pub(super) fn check_entitlements(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Result<(), Failure> {
    let pairs = [
        (scopes(before), scopes(after)),
        (list(before, "appRoles"), list(after, "appRoles")),
    ];
    for (old, new) in pairs {
        let kept = ids(new);
        if entitlements(old)
            .iter()
            .any(|(id, enabled)| *enabled && !kept.contains(id))
        {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "CannotDeleteOrUpdateEnabledEntitlement",
                "Permission (scope or role) cannot be deleted or updated unless disabled first.",
            ));
        }
    }
    let (stored, kept) = (ids(scopes(before)), ids(scopes(after)));
    let preauthorized = after
        .get("api")
        .and_then(Value::as_object)
        .map_or(&[][..], |api| list(api, "preAuthorizedApplications"));
    let unknown = preauthorized
        .iter()
        .filter_map(|p| p.get("delegatedPermissionIds").and_then(Value::as_array))
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_ascii_lowercase))
        .any(|id| !stored.contains(&id) || !kept.contains(&id));
    if unknown {
        return Err(Failure::bad_request(
            "delegatedPermissionIds has a Permission Id that cannot be found",
        ));
    }
    Ok(())
}

/// Alternate keys are unique in the tenant: `uniqueName` among live apps, identifier URIs among
/// live and soft-deleted ones alike (a deleted app keeps its URIs until purged, entra.md §1.1).
pub(super) fn check_unique(
    state: &State,
    tenant: &str,
    app: &Map<String, Value>,
    own_id: &str,
) -> Result<(), Failure> {
    let others = || {
        state.objects.iter().filter(|o| {
            o.kind == ObjectKind::Application
                && o.tenant_id == tenant
                && !o.id().eq_ignore_ascii_case(own_id)
        })
    };
    if let Some(name) = app.get("uniqueName").and_then(Value::as_str)
        && others().any(|o| {
            o.deleted_ms.is_none()
                && o.str("uniqueName")
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    {
        return Err(Failure::already_exists("uniqueName"));
    }
    for uri in strings(list(app, "identifierUris")) {
        if others()
            .any(|o| strings(list(&o.body, "identifierUris")).any(|u| u.eq_ignore_ascii_case(uri)))
        {
            return Err(Failure::already_exists("identifierUris"));
        }
    }
    Ok(())
}
