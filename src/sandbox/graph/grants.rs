//! Who may write to the directory, and the application permissions that decide it.
//!
//! - Microsoft Graph's own service principal (`servicePrincipals(appId='00000003-0000-0000-c000-
//!   000000000000')`) is answered for every tenant with the three app roles the sandbox knows
//!   (`Application.ReadWrite.All`, `Application.ReadWrite.OwnedBy`, `Application.Read.All`, with
//!   Graph's role ids), so a
//!   client resolves the permission as it would on Azure. It is not stored: lists do not show it.
//! - `POST /servicePrincipals/{id}/appRoleAssignments` grants an app role (admin consent) and
//!   `GET` lists them (learn.microsoft.com/graph/api/serviceprincipal-post-approleassignments);
//!   only the directory's administrator (the operator) may grant: anyone else gets 403
//!   `Authorization_RequestDenied` "Insufficient privileges to complete the operation.", Graph's
//!   words. Granting the same role twice is 400 "Permission being assigned already exists on
//!   the object".
//! - Writes: the operator may write anything; an app holding `Application.ReadWrite.All` too; an
//!   app holding `Application.ReadWrite.OwnedBy` may create applications (becoming their owner:
//!   "allows the calling app to create other applications, and fully manage those
//!   applications", Graph permissions reference) and change only the applications it owns, their
//!   federated credentials, owners and service principals. Anyone else: 403.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::address::{Key, Target};
use super::answer::timestamp;
use super::{Failure, annotated};
use crate::sandbox::new_guid;
use crate::sandbox::state::{ObjectKind, State};

use super::objects::Call;

pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The object id the sandbox gives Microsoft Graph's service principal in every tenant.
pub(crate) const GRAPH_PRINCIPAL_ID: &str = "5a4d0000-0000-4000-8000-00000000a9a0";
pub(crate) const OWNED_BY: &str = "18a4783c-866b-4cc7-a460-3d5e5662c884";
pub(crate) const READ_WRITE_ALL: &str = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9";
/// Reads every application, writes none: what a pull request's plan-only identity holds.
pub(crate) const READ_ALL: &str = "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30";

/// What a caller may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Access {
    /// The tenant's operator: everything, granting app roles included (AppRoleAssignment.
    /// ReadWrite.All, which no app gets through the sandbox).
    Operator,
    /// `Application.ReadWrite.All`: every application, but not app role grants.
    All,
    /// `Application.ReadWrite.OwnedBy`, as this service principal.
    OwnedBy(String),
    None,
}

/// Microsoft Graph's service principal, as the sandbox answers it.
pub(super) fn graph_principal() -> Map<String, Value> {
    let role = |id: &str, value: &str, name: &str| {
        json!({
            "id": id, "value": value, "displayName": name, "description": name,
            "allowedMemberTypes": ["Application"], "isEnabled": true, "origin": "Application",
        })
    };
    let body = json!({
        "id": GRAPH_PRINCIPAL_ID,
        "appId": GRAPH_APP_ID,
        "displayName": "Microsoft Graph",
        "appDisplayName": "Microsoft Graph",
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "servicePrincipalType": "Application",
        "accountEnabled": true,
        "tags": [],
        "appRoles": [
            role(READ_WRITE_ALL, "Application.ReadWrite.All", "Read and write all applications"),
            role(OWNED_BY, "Application.ReadWrite.OwnedBy", "Manage apps that this app creates or owns"),
            role(READ_ALL, "Application.Read.All", "Read all applications"),
        ],
        "servicePrincipalNames": [GRAPH_APP_ID, "https://graph.microsoft.com"],
        "signInAudience": "AzureADMultipleOrgs",
        "deletedDateTime": null,
    });
    body.as_object().cloned().unwrap_or_default()
}

fn denied() -> Failure {
    Failure::new(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// The `roles` claim of an app-only Graph token for `oid`: the values of the Graph application
/// permissions granted to it (admin consent), as Entra puts them in the token. The operator is
/// the tenant's all-powerful automation identity: `Application.ReadWrite.All`.
pub(crate) fn granted_roles(state: &State, tenant: &str, oid: &str) -> Vec<&'static str> {
    if oid.eq_ignore_ascii_case(&state.operator.object_id) {
        return vec!["Application.ReadWrite.All"];
    }
    let values = [
        (READ_WRITE_ALL, "Application.ReadWrite.All"),
        (OWNED_BY, "Application.ReadWrite.OwnedBy"),
        (READ_ALL, "Application.Read.All"),
    ];
    values
        .into_iter()
        .filter(|(id, _)| {
            state.app_role_assignments.iter().any(|a| {
                let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
                field("principalId").eq_ignore_ascii_case(oid)
                    && field("resourceId") == GRAPH_PRINCIPAL_ID
                    && field("appRoleId") == *id
                    && a.get("_tenant").and_then(Value::as_str) == Some(tenant)
            })
        })
        .map(|(_, value)| value)
        .collect()
}

/// The caller's write access, from its object id.
pub(super) fn access(state: &State, tenant: &str, caller: Option<&str>) -> Access {
    let Some(oid) = caller else {
        return Access::None;
    };
    if oid.eq_ignore_ascii_case(&state.operator.object_id) {
        return Access::Operator;
    }
    let holds = |role: &str| {
        state.app_role_assignments.iter().any(|a| {
            let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
            field("principalId").eq_ignore_ascii_case(oid)
                && field("resourceId") == GRAPH_PRINCIPAL_ID
                && field("appRoleId") == role
                && a.get("_tenant").and_then(Value::as_str) == Some(tenant)
        })
    };
    if holds(READ_WRITE_ALL) {
        Access::All
    } else if holds(OWNED_BY) {
        Access::OwnedBy(oid.to_owned())
    } else {
        Access::None
    }
}

fn owns(state: &State, tenant: &str, owner: &str, application_id: &str) -> bool {
    state.owners.iter().any(|o| {
        o.tenant_id == tenant
            && o.application_id.eq_ignore_ascii_case(application_id)
            && o.owner_id.eq_ignore_ascii_case(owner)
    })
}

/// Refuses a write the caller may not make. Reads pass.
pub(super) fn authorize(
    call: &Call<'_>,
    method: &str,
    target: &Target,
    access: &Access,
) -> Result<(), Failure> {
    if method == "GET" {
        return Ok(());
    }
    let owner = match access {
        Access::Operator | Access::All => return Ok(()),
        Access::None => return Err(denied()),
        Access::OwnedBy(owner) => owner,
    };
    let state = call.shared.state();
    let tenant = call.tenant.as_str();
    let app_of = |key: &Key| {
        state
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Application && o.tenant_id == tenant && key.matches(o))
            .map(|o| o.id().to_owned())
    };
    let allowed = match target {
        Target::Collection(ObjectKind::Application) => true,
        // An upsert by unique name creates (and then owns) or updates (if owned).
        Target::Item(ObjectKind::Application, key) => {
            app_of(key).is_none_or(|id| owns(&state, tenant, owner, &id))
                && (matches!(key, Key::UniqueName(_)) || app_of(key).is_some())
        }
        Target::Federated(key, _) | Target::Owners(key, _) => {
            app_of(key).is_some_and(|id| owns(&state, tenant, owner, &id))
        }
        Target::Collection(ObjectKind::ServicePrincipal) => {
            let body: Value = serde_json::from_slice(call.body).unwrap_or_default();
            let app_id = body
                .get("appId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            app_of(&Key::AppId(app_id.to_owned()))
                .is_some_and(|id| owns(&state, tenant, owner, &id))
        }
        Target::Item(ObjectKind::ServicePrincipal, key) => {
            let app_id = match key {
                Key::AppId(app_id) => Some(app_id.clone()),
                _ => state
                    .objects
                    .iter()
                    .find(|o| o.tenant_id == tenant && key.matches(o))
                    .and_then(|o| o.str("appId").map(str::to_owned)),
            };
            app_id
                .and_then(|a| app_of(&Key::AppId(a)))
                .is_some_and(|id| owns(&state, tenant, owner, &id))
        }
        Target::DeletedItem(id) | Target::Restore(id) => owns(&state, tenant, owner, id),
        _ => false,
    };
    if allowed { Ok(()) } else { Err(denied()) }
}

impl Call<'_> {
    /// `GET servicePrincipals(appId='00000003-…')`: Microsoft Graph's, whatever the tenant.
    pub(super) fn graph_service_principal(&self) -> Response {
        self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[(
                    "@odata.context",
                    self.entity_context(ObjectKind::ServicePrincipal),
                )],
                &graph_principal(),
            )),
        )
    }

    pub(super) fn app_role_assignments(
        &self,
        method: &str,
        principal: &Key,
        access: &Access,
    ) -> Result<Response, Failure> {
        Self::check_object_id(principal)?;
        let mut state = self.shared.state();
        let index = self
            .find(&state, ObjectKind::ServicePrincipal, principal, false)
            .ok_or_else(|| Failure::not_found(principal.value()))?;
        let principal_id = state.objects[index].id().to_owned();
        let principal_name = state.objects[index]
            .str("displayName")
            .unwrap_or_default()
            .to_owned();
        let mine = |a: &Map<String, Value>| {
            a.get("principalId").and_then(Value::as_str) == Some(principal_id.as_str())
                && a.get("_tenant").and_then(Value::as_str) == Some(self.tenant.as_str())
        };
        let public = |a: &Map<String, Value>| {
            let mut a = a.clone();
            a.remove("_tenant");
            Value::Object(a)
        };
        match method {
            "GET" => {
                let value: Vec<Value> = state
                    .app_role_assignments
                    .iter()
                    .filter(|a| mine(a))
                    .map(public)
                    .collect();
                Ok(self.exchange.answer(
                    StatusCode::OK,
                    Some(json!({
                        "@odata.context": self.exchange.context(&format!("servicePrincipals('{principal_id}')/appRoleAssignments")),
                        "value": value,
                    })),
                ))
            }
            "POST" => {
                // Granting app roles needs AppRoleAssignment.ReadWrite.All, not an
                // application permission on apps: only the operator holds it here.
                if *access != Access::Operator {
                    return Err(denied());
                }
                let body = self.json_body()?;
                let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
                if !text("principalId").eq_ignore_ascii_case(&principal_id) {
                    return Err(Failure::bad_request(
                        "The principalId in the request body must be the service principal in the URL.",
                    ));
                }
                if text("resourceId") != GRAPH_PRINCIPAL_ID
                    || ![OWNED_BY, READ_WRITE_ALL, READ_ALL].contains(&text("appRoleId"))
                {
                    return Err(Failure::bad_request(
                        "Permission entry does not exist: the sandbox grants Microsoft Graph's Application.ReadWrite.OwnedBy, Application.ReadWrite.All and Application.Read.All only.",
                    ));
                }
                if state
                    .app_role_assignments
                    .iter()
                    .any(|a| mine(a) && a.get("appRoleId") == body.get("appRoleId"))
                {
                    return Err(Failure::bad_request(
                        "Permission being assigned already exists on the object",
                    ));
                }
                let now = self.shared.now_ms();
                let mut assignment = Map::new();
                assignment.insert("id".into(), json!(new_guid()));
                assignment.insert("deletedDateTime".into(), Value::Null);
                assignment.insert("appRoleId".into(), json!(text("appRoleId")));
                assignment.insert("createdDateTime".into(), json!(timestamp(now)));
                assignment.insert("principalDisplayName".into(), json!(principal_name));
                assignment.insert("principalId".into(), json!(principal_id));
                assignment.insert("principalType".into(), json!("ServicePrincipal"));
                assignment.insert("resourceDisplayName".into(), json!("Microsoft Graph"));
                assignment.insert("resourceId".into(), json!(GRAPH_PRINCIPAL_ID));
                let body = assignment.clone();
                assignment.insert("_tenant".into(), json!(self.tenant));
                state.app_role_assignments.push(assignment);
                self.shared.persist(&state);
                Ok(self.exchange.answer(
                    StatusCode::CREATED,
                    Some(annotated(
                        &[(
                            "@odata.context",
                            self.exchange.context(&format!(
                                "servicePrincipals('{principal_id}')/appRoleAssignments/$entity"
                            )),
                        )],
                        &body,
                    )),
                ))
            }
            _ => Err(Failure::method_not_allowed()),
        }
    }
}
