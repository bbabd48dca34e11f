//! Microsoft.Authorization role assignments at any scope, with the two errors that make
//! automation flaky elsewhere: `PrincipalNotFound` while a new principal replicates, and
//! `RoleAssignmentExists` when the same grant exists under another name (foundry-arm.md §2.6).
//!
//! Assignments are stored with the other resources under their scope's id, so deleting the scope
//! (or its resource group) takes them along.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{ArmError, Call, Reply, principal_visible};
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::Resource;

const TYPE: &str = "Microsoft.Authorization/roleAssignments";
const PRINCIPAL_TYPES: [&str; 5] = [
    "User",
    "Group",
    "ServicePrincipal",
    "ForeignGroup",
    "Device",
];

fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok() && text.len() == 36
}

/// The role definition GUID at the end of a `…/roleDefinitions/{guid}` id.
fn role_guid(id: &str) -> Option<&str> {
    let (path, guid) = id.rsplit_once('/')?;
    (path
        .to_ascii_lowercase()
        .ends_with("/providers/microsoft.authorization/roledefinitions")
        && is_guid(guid))
    .then_some(guid)
}

/// `at` is the index of the `providers` segment that starts `Microsoft.Authorization/roleAssignments`.
pub(super) fn handle(call: &mut Call<'_>, at: usize) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    let scope = format!("/{}", segments[..at].join("/"));
    check_scope(call, &scope)?;
    let name = match segments.len() - at {
        3 => None,
        4 => Some(segments[at + 3].clone()),
        _ => {
            return Err(ArmError::bad_request(
                "InvalidResourceType",
                "The resource type could not be found in the namespace 'Microsoft.Authorization'.",
            ));
        }
    };
    let method = call.request.method.clone();
    let Some(name) = name else {
        return if method == Method::GET {
            list(call, &scope)
        } else {
            Err(ArmError::method_not_allowed_on(
                &method,
                "a role assignment list",
            ))
        };
    };
    if !is_guid(&name) {
        return Err(ArmError::bad_request(
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ));
    }
    let id = format!("{scope}/providers/{TYPE}/{name}");
    match method {
        Method::PUT => put(call, &scope, &id, &name),
        Method::GET => call
            .state
            .arm
            .get(&id)
            .map(|r| Reply::ok(Value::Object(r.body.clone())))
            .ok_or_else(|| {
                ArmError::new(
                    StatusCode::NOT_FOUND,
                    "RoleAssignmentNotFound",
                    format!("The role assignment '{name}' is not found."),
                )
            }),
        Method::DELETE => Ok(match call.state.arm.remove_tree(&id).into_iter().next() {
            Some(removed) => Reply::ok(Value::Object(removed.body)),
            None => Reply::empty(StatusCode::NO_CONTENT),
        }),
        other => Err(ArmError::method_not_allowed_on(&other, "a role assignment")),
    }
}

/// A scope is the subscription, a resource group, or a resource the sandbox holds.
pub(super) fn check_scope(call: &Call<'_>, scope: &str) -> Result<(), ArmError> {
    let parts: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() <= 2 {
        return Ok(());
    }
    if parts.len() < 4 || !parts[2].eq_ignore_ascii_case("resourceGroups") {
        return Err(ArmError::bad_request(
            "InvalidScope",
            format!("The scope '{scope}' is not a subscription, resource group or resource id."),
        ));
    }
    let group = super::group_id(parts[1], parts[3]);
    if call.state.arm.get(&group).is_none() {
        return Err(super::resources::group_not_found(parts[3]));
    }
    if parts.len() > 4 && call.state.arm.get(scope).is_none() {
        let resource_type = parts
            .get(5..parts.len() - 1)
            .map(|p| p.iter().step_by(2).copied().collect::<Vec<_>>().join("/"))
            .unwrap_or_default();
        return Err(ArmError::resource_not_found(
            &resource_type,
            parts.last().copied().unwrap_or_default(),
            parts[3],
        ));
    }
    Ok(())
}

fn put(call: &mut Call<'_>, scope: &str, id: &str, name: &str) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let props = body
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let role = props
        .get("roleDefinitionId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: 'properties.roleDefinitionId' is required.",
            )
        })?
        .to_owned();
    let role_id = role_guid(&role)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRoleDefinitionId",
                format!("The role definition ID '{role}' is not valid."),
            )
        })?
        .to_ascii_lowercase();
    let principal = props
        .get("principalId")
        .and_then(Value::as_str)
        .filter(|p| is_guid(p))
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidPrincipalId",
                "A valid principal ID must be provided for role assignment.",
            )
        })?
        .to_owned();
    let principal_type = props.get("principalType").and_then(Value::as_str);
    if let Some(t) = principal_type
        && !PRINCIPAL_TYPES.contains(&t)
    {
        return Err(ArmError::bad_request(
            "InvalidPrincipalType",
            format!(
                "The principal type '{t}' is not valid. Use one of {}.",
                PRINCIPAL_TYPES.join(", ")
            ),
        ));
    }
    let same_grant = |r: &Resource| {
        let p = r.properties();
        let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
        field("scope").is_some_and(|s| s.eq_ignore_ascii_case(scope))
            && field("principalId").is_some_and(|s| s.eq_ignore_ascii_case(&principal))
            && field("roleDefinitionId")
                .and_then(role_guid)
                .is_some_and(|g| g.eq_ignore_ascii_case(&role_id))
    };
    if let Some(existing) = call.state.arm.get(id) {
        if same_grant(existing) {
            return Ok(Reply::ok(Value::Object(existing.body.clone())));
        }
        return Err(ArmError::bad_request(
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        ));
    }
    if call
        .state
        .arm
        .resources
        .values()
        .any(|r| r.body.get("type").and_then(Value::as_str) == Some(TYPE) && same_grant(r))
    {
        return Err(ArmError::conflict(
            "RoleAssignmentExists",
            "The role assignment already exists.",
        ));
    }
    // The sandbox's directory holds no groups, so a group cannot be looked up: an assignment
    // that says it is for one is taken as it is (data planes then honour it for tokens whose
    // `groups` claim names the group; src/sandbox/inference/caller.rs).
    let group = principal_type == Some("Group");
    if !group && !principal_visible(call.shared, call.state, &principal) {
        return Err(ArmError::bad_request(
            "PrincipalNotFound",
            format!(
                "Principal {principal} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                call.state.operator.tenant_id
            ),
        ));
    }
    let now = format_utc_millis(call.now_ms);
    let mut properties = Map::new();
    properties.insert("roleDefinitionId".into(), json!(role));
    properties.insert("principalId".into(), json!(principal));
    if let Some(t) = principal_type {
        properties.insert("principalType".into(), json!(t));
    }
    properties.insert("scope".into(), json!(scope));
    if let Some(v) = props.get("description").filter(|v| !v.is_null()) {
        properties.insert("description".into(), v.clone());
    }
    if let Some(condition) = checked_condition(&props)? {
        properties.insert("condition".into(), json!(condition));
        properties.insert("conditionVersion".into(), json!("2.0"));
    }
    properties.insert("createdOn".into(), json!(now));
    properties.insert("updatedOn".into(), json!(now));
    let by = call
        .request
        .caller
        .object_id
        .clone()
        .unwrap_or_else(|| call.state.operator.object_id.clone());
    properties.insert("createdBy".into(), json!(by));
    properties.insert("updatedBy".into(), json!(by));
    let mut stored = Map::new();
    stored.insert("properties".into(), Value::Object(properties));
    stored.insert("id".into(), json!(id));
    stored.insert("type".into(), json!(TYPE));
    stored.insert("name".into(), json!(name));
    let etag = call.state.arm.next_etag();
    call.state.arm.insert(Resource::new(
        id.to_owned(),
        stored.clone(),
        etag,
        call.now_ms,
    ));
    Ok(Reply::new(StatusCode::CREATED, Some(Value::Object(stored))))
}

/// The assignment's condition, when it has one the sandbox can evaluate (`condition.rs`); one it
/// cannot is refused rather than stored and ignored, which would grant more than Azure does.
/// Azure takes conditions of `conditionVersion` 2.0 only ("1.0" was the preview's).
fn checked_condition(props: &Map<String, Value>) -> Result<Option<String>, ArmError> {
    let Some(text) = props.get("condition").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = text.as_str().unwrap_or_default();
    let version = props.get("conditionVersion").and_then(Value::as_str);
    if version.is_some_and(|v| v != "2.0") {
        return Err(ArmError::bad_request(
            "InvalidConditionVersion",
            "The conditionVersion of a role assignment condition must be '2.0'.",
        ));
    }
    super::condition::parse(text)
        .map(|_| Some(text.to_owned()))
        .map_err(|why| {
            ArmError::bad_request(
                "InvalidRoleAssignmentCondition",
                format!(
                    "The sandbox does not evaluate this role assignment condition ({why}): it evaluates ActionMatches, and @Request/@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals, combined with !, AND, OR and parentheses."
                ),
            )
        })
}

/// Assignments that apply at `scope`: at it, above it and below it, optionally for one principal
/// (`$filter=principalId eq '…'`).
fn list(call: &mut Call<'_>, scope: &str) -> Result<Reply, ArmError> {
    let filter = call.request.query("$filter").map(str::trim);
    let principal = match filter {
        None | Some("atScope()") => None,
        Some(f) => {
            let wanted = f
                .strip_prefix("principalId eq '")
                .and_then(|rest| rest.strip_suffix('\''));
            match wanted {
                Some(p) => Some(p.to_owned()),
                None => {
                    return Err(ArmError::bad_request(
                        "UnsupportedQuery",
                        format!(
                            "The filter '{f}' is not supported. Supported filters are 'atScope()' and 'principalId eq '{{id}}''."
                        ),
                    ));
                }
            }
        }
    };
    let scope_lower = scope.to_ascii_lowercase();
    let value: Vec<Value> = call
        .state
        .arm
        .resources
        .values()
        .filter(|r| r.body.get("type").and_then(Value::as_str) == Some(TYPE))
        .filter(|r| {
            let s = r
                .property_str("scope")
                .unwrap_or_default()
                .to_ascii_lowercase();
            s == scope_lower
                || scope_lower.starts_with(&format!("{s}/"))
                || s.starts_with(&format!("{scope_lower}/"))
        })
        .filter(|r| {
            principal.as_ref().is_none_or(|p| {
                r.property_str("principalId")
                    .is_some_and(|q| q.eq_ignore_ascii_case(p))
            })
        })
        .map(|r| Value::Object(r.body.clone()))
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_definition_ids_end_in_a_guid_under_authorization() {
        let g = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";
        assert_eq!(
            role_guid(&format!(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{g}"
            )),
            Some(g)
        );
        assert_eq!(
            role_guid(&format!(
                "/providers/microsoft.authorization/roledefinitions/{g}"
            )),
            Some(g)
        );
        assert_eq!(
            role_guid("/providers/Microsoft.Authorization/roleDefinitions/owner"),
            None
        );
        assert_eq!(role_guid(g), None);
    }
}
