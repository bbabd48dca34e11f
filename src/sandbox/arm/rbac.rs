//! Azure RBAC on ARM writes: every PUT, PATCH, DELETE and POST needs a role, held by the caller
//! (its `oid`, or a group in its `groups` claim) at the target's scope or above, whose `actions`
//! match the request's action and whose `notActions` do not, and whose assignment's condition
//! (`condition.rs`) holds. The operator holds its configured built-in role on the subscription
//! (`state.arm.operator_role`, Owner unless a test says otherwise). Reads are not checked: every
//! role the sandbox knows may read.
//!
//! A refusal is ARM's, word for word: 403 `AuthorizationFailed` "The client '{id}' with object id
//! '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the
//! scope is invalid. If access was recently granted, please refresh your credentials."
//! (learn.microsoft.com/azure/role-based-access-control/troubleshooting, "Symptom - Authorization
//! failed"). A condition that fails is the same refusal with the "…perform action … over scope …
//! because no role assignment with a condition that evaluates to true…" wording left out: Azure
//! words that case as `AuthorizationFailed` too.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::condition::{self, Facts};
use super::providers::role_actions;
use super::{ArmError, Call};

const ROLE_ASSIGNMENTS: &str = "Microsoft.Authorization/roleAssignments";

/// What a write asks for: the action and the scope it is checked over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub action: String,
    pub scope: String,
}

/// The action and scope of a write to `segments` (`subscriptions/{s}/…`), ARM's way:
/// `{namespace}/{type}[/{child type}…]/write|delete`, and for a POST to `{resource}/{verb}`
/// `{namespace}/{type}/{verb}/action` over the resource.
pub(super) fn wanted(method: &Method, segments: &[String]) -> Wanted {
    let last_provider = segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"));
    let (namespace, types_from) = match last_provider {
        Some(at) if at + 1 < segments.len() => (segments[at + 1].clone(), at + 2),
        _ => ("Microsoft.Resources".to_owned(), 0),
    };
    let rest = &segments[types_from.min(segments.len())..];
    // Type, name, type, name…; a POST's odd segment out is its verb.
    let (pairs, verb) = if *method == Method::POST && rest.len() % 2 == 1 {
        (&rest[..rest.len() - 1], rest.last())
    } else {
        (rest, None)
    };
    let mut types: Vec<&str> = pairs.iter().step_by(2).map(String::as_str).collect();
    if types.is_empty() && last_provider.is_none() {
        types.push("subscriptions");
    }
    let mut action = namespace;
    for t in types {
        action.push('/');
        action.push_str(t);
    }
    let suffix = match (method, verb) {
        (_, Some(verb)) => format!("/{verb}/action"),
        (&Method::DELETE, None) => "/delete".to_owned(),
        (&Method::POST, None) => "/action".to_owned(),
        _ => "/write".to_owned(),
    };
    action.push_str(&suffix);
    let scope_segments = match verb {
        Some(_) => &segments[..segments.len() - 1],
        None => segments,
    };
    Wanted {
        action,
        scope: format!("/{}", scope_segments.join("/")),
    }
}

/// The role definition GUID at the end of a role definition id.
fn role_guid(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

/// Refuses a write the caller's roles do not allow.
pub(super) fn authorize(call: &Call<'_>) -> Result<(), ArmError> {
    let method = &call.request.method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let wanted = wanted(method, &call.request.segments);
    let caller = &call.request.caller;
    let oid = caller.object_id.clone().unwrap_or_default();
    let is_assignment = wanted
        .action
        .to_ascii_lowercase()
        .starts_with(&ROLE_ASSIGNMENTS.to_ascii_lowercase());
    let request_role = is_assignment
        .then(|| {
            call.request
                .body
                .as_ref()
                .and_then(|b| b.pointer("/properties/roleDefinitionId"))
                .and_then(Value::as_str)
                .map(role_guid)
        })
        .flatten();
    let resource_role = is_assignment
        .then(|| {
            call.state
                .arm
                .get(&wanted.scope)
                .and_then(|r| r.property_str("roleDefinitionId"))
                .map(|id| role_guid(id).to_owned())
        })
        .flatten();
    let facts = Facts {
        action: &wanted.action,
        request_role,
        resource_role: resource_role.as_deref(),
    };
    let allows = |role: &str| {
        role_actions(role).is_some_and(|(actions, not_actions)| {
            actions
                .iter()
                .any(|a| condition::wildcard(a, &wanted.action))
                && !not_actions
                    .iter()
                    .any(|a| condition::wildcard(a, &wanted.action))
        })
    };
    if oid.eq_ignore_ascii_case(&call.state.operator.object_id) {
        let role = call.state.arm.operator_role.as_deref().unwrap_or("Owner");
        if allows(role) {
            return Ok(());
        }
    }
    let target = format!("{}/", wanted.scope.to_ascii_lowercase());
    let granted = call.state.arm.resources.values().any(|r| {
        // Only a role assignment grants: other resources may carry look-alike properties
        // (an APIM policy keeps what it is sent).
        let is_assignment = r
            .body
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(ROLE_ASSIGNMENTS));
        let Some(p) = r.properties().filter(|_| is_assignment) else {
            return false;
        };
        let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let principal = field("principalId");
        let mine = (!oid.is_empty() && principal.eq_ignore_ascii_case(&oid))
            || caller
                .groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(principal));
        let scope = field("scope");
        let covers =
            !scope.is_empty() && target.starts_with(&format!("{}/", scope.to_ascii_lowercase()));
        let holds = match p.get("condition").and_then(Value::as_str) {
            None => true,
            // Stored only when it parsed (`authorization.rs`); one that no longer does grants nothing.
            Some(text) => condition::parse(text).is_ok_and(|c| c.holds(&facts)),
        };
        mine && covers && allows(role_guid(field("roleDefinitionId"))) && holds
    });
    if granted {
        return Ok(());
    }
    let client = caller.client.clone().unwrap_or_else(|| oid.clone());
    Err(ArmError::new(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{client}' with object id '{oid}' does not have authorization to perform action '{}' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            wanted.action, wanted.scope
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str) -> (String, String) {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let w = wanted(&method, &segments);
        (w.action, w.scope)
    }

    #[test]
    fn actions_are_named_as_arm_names_them() {
        let rg = "/subscriptions/s/resourceGroups/rg";
        assert_eq!(
            of(Method::PUT, rg),
            (
                "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
                rg.into()
            )
        );
        assert_eq!(
            of(Method::DELETE, rg).0,
            "Microsoft.Resources/subscriptions/resourceGroups/delete"
        );
        let policy =
            format!("{rg}/providers/Microsoft.ApiManagement/service/gw/apis/llm/policies/policy");
        assert_eq!(
            of(Method::PUT, &policy),
            (
                "Microsoft.ApiManagement/service/apis/policies/write".into(),
                policy.clone()
            )
        );
        let account = format!("{rg}/providers/Microsoft.CognitiveServices/accounts/a");
        assert_eq!(
            of(Method::POST, &format!("{account}/listKeys")),
            (
                "Microsoft.CognitiveServices/accounts/listKeys/action".into(),
                account.clone()
            )
        );
        let assignment = format!("{account}/providers/Microsoft.Authorization/roleAssignments/x");
        assert_eq!(
            of(Method::PUT, &assignment),
            (
                "Microsoft.Authorization/roleAssignments/write".into(),
                assignment.clone()
            )
        );
        assert_eq!(
            of(
                Method::POST,
                "/subscriptions/s/providers/Microsoft.CognitiveServices/register"
            )
            .0,
            "Microsoft.CognitiveServices/register/action"
        );
    }
}
