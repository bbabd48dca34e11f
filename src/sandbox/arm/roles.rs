//! Microsoft.Authorization role definitions: the built-in roles `provision` and the Azure CLI
//! name, readable at any scope. `az role assignment create --role NAME` resolves the name with
//! `GET {scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'NAME'`,
//! and `az role assignment list` maps every assignment's `roleDefinitionId` back to a name by
//! listing them (azure-cli `command_modules/role/custom.py`, `_resolve_role_id` and
//! `list_role_assignments`); az's recovery from `RoleAssignmentExists` goes through the same list.
//!
//! Built-in roles are tenant-wide: whatever the scope they are read at, their id is the
//! subscription's (`/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`)
//! and `assignableScopes` is `["/"]`, as ARM answers them (GetRoleDefinitionByName.json,
//! Authorization 2022-04-01). Custom roles are not emulated: PUT and DELETE are 405.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ArmError, Call, Reply};

const TYPE: &str = "Microsoft.Authorization/roleDefinitions";

/// A built-in role: its GUID, name, description, and its permissions as the built-in roles page
/// lists them (learn.microsoft.com/azure/role-based-access-control/built-in-roles; the
/// Cognitive Services ones abridged to the actions the sandbox enforces or reports).
struct BuiltIn {
    guid: &'static str,
    name: &'static str,
    description: &'static str,
    actions: &'static [&'static str],
    not_actions: &'static [&'static str],
    data_actions: &'static [&'static str],
}

const BUILT_IN: [BuiltIn; 7] = [
    BuiltIn {
        guid: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name: "Owner",
        description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltIn {
        guid: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        name: "Contributor",
        description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ],
        data_actions: &[],
    },
    BuiltIn {
        guid: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        name: "Reader",
        description: "View all resources, but does not allow you to make any changes.",
        actions: &["*/read"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltIn {
        guid: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        name: "User Access Administrator",
        description: "Lets you manage user access to Azure resources.",
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
        data_actions: &[],
    },
    BuiltIn {
        guid: "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
        name: "Cognitive Services OpenAI User",
        description: "Read access to view files, models, deployments. The ability to create completion and chat calls.",
        actions: &[
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleDefinitions/read",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.CognitiveServices/accounts/OpenAI/*/read",
            "Microsoft.CognitiveServices/accounts/OpenAI/engines/completions/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/engines/search/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/engines/generate/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/search/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/completions/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/extensions/chat/completions/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action",
            "Microsoft.CognitiveServices/accounts/OpenAI/images/generations/action",
        ],
    },
    BuiltIn {
        guid: "a001fd3d-188f-4b5d-821b-7da978bf7442",
        name: "Cognitive Services OpenAI Contributor",
        description: "Full access including the ability to fine-tune, deploy and generate text",
        actions: &[
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.CognitiveServices/accounts/deployments/write",
            "Microsoft.CognitiveServices/accounts/deployments/delete",
            "Microsoft.CognitiveServices/accounts/raiPolicies/read",
            "Microsoft.CognitiveServices/accounts/raiPolicies/write",
            "Microsoft.CognitiveServices/accounts/raiPolicies/delete",
            "Microsoft.CognitiveServices/accounts/commitmentplans/read",
            "Microsoft.CognitiveServices/accounts/commitmentplans/write",
            "Microsoft.CognitiveServices/accounts/commitmentplans/delete",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleDefinitions/read",
            "Microsoft.Insights/alertRules/read",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.CognitiveServices/accounts/OpenAI/*"],
    },
    BuiltIn {
        guid: "a97b65f3-24c7-4388-baec-2e87135dc908",
        name: "Cognitive Services User",
        description: "Lets you read and list keys of Cognitive Services.",
        actions: &[
            "Microsoft.CognitiveServices/*/read",
            "Microsoft.CognitiveServices/accounts/listkeys/action",
            "Microsoft.Insights/alertRules/read",
            "Microsoft.Insights/diagnosticSettings/read",
            "Microsoft.Insights/logDefinitions/read",
            "Microsoft.Insights/metricdefinitions/read",
            "Microsoft.Insights/metrics/read",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/operations/read",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.CognitiveServices/*"],
    },
];

impl BuiltIn {
    fn body(&self, subscription: &str) -> Value {
        json!({
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole",
                "description": self.description,
                "assignableScopes": ["/"],
                "permissions": [{
                    "actions": self.actions,
                    "notActions": self.not_actions,
                    "dataActions": self.data_actions,
                    "notDataActions": [],
                }],
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2024-04-16T18:41:07.2264474Z",
                "createdBy": null,
                "updatedBy": null,
            },
            "id": format!("/subscriptions/{subscription}/providers/{TYPE}/{}", self.guid),
            "type": TYPE,
            "name": self.guid,
        })
    }
}

/// `at` is the index of the `providers` segment that starts `Microsoft.Authorization/roleDefinitions`.
pub(super) fn handle(call: &mut Call<'_>, at: usize) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    let scope = format!("/{}", segments[..at].join("/"));
    super::authorization::check_scope(call, &scope)?;
    let subscription = segments.get(1).cloned().unwrap_or_default();
    if call.request.method != Method::GET {
        return Err(ArmError::method_not_allowed_on(
            &call.request.method,
            "a built-in role definition (the sandbox has no custom roles)",
        ));
    }
    match segments.len() - at {
        3 => list(call, &subscription),
        4 => {
            let wanted = &segments[at + 3];
            BUILT_IN
                .iter()
                .find(|r| r.guid.eq_ignore_ascii_case(wanted))
                .map(|r| Reply::ok(r.body(&subscription)))
                .ok_or_else(|| {
                    ArmError::new(
                        StatusCode::NOT_FOUND,
                        "RoleDefinitionDoesNotExist",
                        format!("The specified role definition with ID '{wanted}' does not exist."),
                    )
                })
        }
        _ => Err(ArmError::bad_request(
            "InvalidResourceType",
            "The resource type could not be found in the namespace 'Microsoft.Authorization'.",
        )),
    }
}

/// The list, whole or by `$filter=roleName eq '…'` (matched ignoring case, as ARM does) or
/// `type eq 'BuiltInRole'`.
fn list(call: &Call<'_>, subscription: &str) -> Result<Reply, ArmError> {
    let filter = call.request.query("$filter").map(str::trim);
    let quoted = |f: &str, key: &str| {
        f.strip_prefix(key)
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix("eq"))
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('\''))
            .and_then(|rest| rest.strip_suffix('\''))
            .map(|v| v.replace("''", "'"))
    };
    let keep: Box<dyn Fn(&BuiltIn) -> bool> = match filter {
        None | Some("") => Box::new(|_| true),
        Some(f) => {
            if let Some(name) = quoted(f, "roleName") {
                Box::new(move |r| r.name.eq_ignore_ascii_case(&name))
            } else if let Some(kind) = quoted(f, "type") {
                let built_in = kind.eq_ignore_ascii_case("BuiltInRole");
                Box::new(move |_| built_in)
            } else {
                return Err(ArmError::bad_request(
                    "UnsupportedQuery",
                    format!(
                        "The filter '{f}' is not supported. Supported filters are 'roleName eq '{{name}}'' and 'type eq '{{type}}''."
                    ),
                ));
            }
        }
    };
    let value: Vec<Value> = BUILT_IN
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.body(subscription))
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}
