//! Resource provider registration and the caller's permissions: what `provision doctor` reads
//! before `up` spends 30-45 minutes on API Management.
//!
//! - `GET /subscriptions/{s}/providers[/{namespace}]`, `POST …/providers/{namespace}/register`
//!   and `…/unregister` (Microsoft.Resources Providers API, azure-rest-api-specs
//!   `specification/resources/resource-manager/Microsoft.Resources/stable/2021-04-01/resources.json`:
//!   `Providers_Get`, `Providers_Register`, `Providers_Unregister`). Registering an unregistered
//!   provider passes through `Registering` for [`REGISTRATION_MS`] of sandbox time, as Azure does
//!   for a minute or so ("Registration can take a few minutes", learn.microsoft.com/azure/
//!   azure-resource-manager/management/resource-providers-and-types); unregistering is at once.
//! - `GET {scope}/providers/Microsoft.Authorization/permissions` (`Permissions_ListForResourceGroup`,
//!   `…/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json`): one
//!   `{actions, notActions, dataActions, notDataActions}` per role the caller holds at or above the
//!   scope, from its role assignments and the operator's own role on the subscription. The actions
//!   of the built-in roles are those of learn.microsoft.com/azure/role-based-access-control/built-in-roles.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ArmError, Call, Reply};

/// Providers a subscription knows, with the resource types the sandbox serves.
const PROVIDERS: [(&str, &[&str]); 3] = [
    (
        "Microsoft.ApiManagement",
        &["service", "deletedservices", "checkNameAvailability"],
    ),
    (
        "Microsoft.CognitiveServices",
        &[
            "accounts",
            "deletedAccounts",
            "locations",
            "checkDomainAvailability",
        ],
    ),
    (
        "Microsoft.Authorization",
        &["roleAssignments", "permissions"],
    ),
];

/// A built-in role: name, GUID, `actions`, `notActions`.
type Role = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const ROLES: [Role; 6] = [
    ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", &["*"], &[]),
    (
        "Contributor",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        &["*"],
        &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    ),
    (
        "Reader",
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        &["*/read"],
        &[],
    ),
    (
        "User Access Administrator",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        &[],
    ),
    (
        "Role Based Access Control Administrator",
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        &[],
    ),
    (
        "Cognitive Services OpenAI User",
        "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
        &[
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleDefinitions/read",
        ],
        &[],
    ),
];

/// The `actions` and `notActions` of a built-in role, by name or GUID (`rbac.rs` judges writes
/// with them). A role the sandbox does not know grants nothing.
pub(super) fn role_actions(
    role: &str,
) -> Option<(&'static [&'static str], &'static [&'static str])> {
    ROLES
        .iter()
        .find(|r| r.0.eq_ignore_ascii_case(role) || r.1.eq_ignore_ascii_case(role))
        .map(|r| (r.2, r.3))
}

/// `Some` when the path is the provider registration API.
pub(super) fn handle(call: &mut Call<'_>) -> Option<Result<Reply, ArmError>> {
    let segments = call.request.segments.clone();
    if segments.len() < 3 || segments.len() > 5 || !segments[2].eq_ignore_ascii_case("providers") {
        return None;
    }
    let subscription = segments[1].clone();
    let method = call.request.method.clone();
    Some(match segments.get(3) {
        None => super::only(&method, Method::GET).map(|()| {
            let value: Vec<Value> = PROVIDERS
                .iter()
                .map(|(ns, types)| provider(call, &subscription, ns, types))
                .collect();
            Reply::ok(json!({ "value": value }))
        }),
        Some(ns) => {
            let known = PROVIDERS.iter().find(|(n, _)| n.eq_ignore_ascii_case(ns));
            let Some((ns, types)) = known else {
                return Some(Err(not_found(ns)));
            };
            match segments.get(4).map(|s| s.to_ascii_lowercase()).as_deref() {
                None => super::only(&method, Method::GET)
                    .map(|()| Reply::ok(provider(call, &subscription, ns, types))),
                Some(verb @ ("register" | "unregister")) => {
                    super::only(&method, Method::POST).map(|()| {
                        let key = format!("{subscription}/{ns}").to_ascii_lowercase();
                        let arm = &mut call.state.arm;
                        if verb == "register" {
                            if arm.unregistered.remove(&key) {
                                arm.registering.insert(key, call.now_ms + REGISTRATION_MS);
                            }
                        } else {
                            arm.registering.remove(&key);
                            arm.unregistered.insert(key);
                        }
                        Reply::ok(provider(call, &subscription, ns, types))
                    })
                }
                // Anything else under a provider is one of its resource types.
                Some(_) => return None,
            }
        }
    })
}

fn not_found(ns: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "InvalidResourceNamespace",
        format!("The resource namespace '{ns}' is invalid."),
    )
}

/// How long a registration stays `Registering`, in sandbox milliseconds.
pub(crate) const REGISTRATION_MS: u64 = 60_000;

/// `namespace`'s `registrationState` in `subscription` at `now_ms`.
pub(crate) fn registration(
    arm: &crate::sandbox::state::ArmState,
    subscription: &str,
    ns: &str,
    now_ms: u64,
) -> &'static str {
    let key = format!("{subscription}/{ns}").to_ascii_lowercase();
    if arm.unregistered.contains(&key) {
        "NotRegistered"
    } else if arm
        .registering
        .get(&key)
        .is_some_and(|&until| now_ms < until)
    {
        "Registering"
    } else {
        "Registered"
    }
}

/// Whether `namespace` is registered in `subscription` at `now_ms` (not while `Registering`).
pub(crate) fn registered(
    arm: &crate::sandbox::state::ArmState,
    subscription: &str,
    ns: &str,
    now_ms: u64,
) -> bool {
    registration(arm, subscription, ns, now_ms) == "Registered"
}

fn provider(call: &Call<'_>, subscription: &str, ns: &str, types: &[&str]) -> Value {
    let state = registration(&call.state.arm, subscription, ns, call.now_ms);
    json!({
        "id": format!("/subscriptions/{subscription}/providers/{ns}"),
        "namespace": ns,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types.iter().map(|t| json!({
            "resourceType": t,
            "locations": [],
            "apiVersions": super::accepted_versions(ns).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })
}

/// `GET {scope}/providers/Microsoft.Authorization/permissions` for the caller.
pub(super) fn permissions(call: &Call<'_>, scope: &str) -> Result<Reply, ArmError> {
    super::only(&call.request.method, Method::GET)?;
    let caller = call.request.caller.object_id.clone().unwrap_or_default();
    let mut principals = vec![caller.clone()];
    principals.extend(call.request.caller.groups.iter().cloned());
    let mut roles: Vec<&Role> = Vec::new();
    if caller.eq_ignore_ascii_case(&call.state.operator.object_id) {
        let name = call.state.arm.operator_role.as_deref().unwrap_or("Owner");
        roles.extend(ROLES.iter().find(|r| r.0.eq_ignore_ascii_case(name)));
    }
    let scope_lower = format!("{}/", scope.to_ascii_lowercase());
    for r in call.state.arm.resources.values() {
        // Only role assignments grant (other resources may carry look-alike properties).
        let assignment = r.body.get("type").and_then(Value::as_str)
            == Some("Microsoft.Authorization/roleAssignments");
        let Some(p) = r.properties().filter(|_| assignment) else {
            continue;
        };
        let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let assigned = format!("{}/", field("scope").to_ascii_lowercase());
        let mine = principals
            .iter()
            .any(|id| id.eq_ignore_ascii_case(field("principalId")));
        let role = field("roleDefinitionId")
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if mine && !field("scope").is_empty() && scope_lower.starts_with(&assigned) {
            roles.extend(ROLES.iter().find(|r| r.1.eq_ignore_ascii_case(role)));
        }
    }
    let value: Vec<Value> = roles
        .iter()
        .map(|(_, _, actions, not_actions)| {
            json!({
                "actions": actions,
                "notActions": not_actions,
                "dataActions": [],
                "notDataActions": [],
            })
        })
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}
