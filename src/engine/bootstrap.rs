//! `bootstrap`: the identity a pipeline deploys an environment with, made idempotently like
//! everything `up` makes: an app registration and its service principal, a federated credential
//! for the CI's tokens, and least-privilege role assignments on the environment's resource
//! group (`resources::federation` says which), and ownership of the environment's Entra apps.
//! Everything is read first and written only when
//! missing or different, so a second run writes nothing.
//!
//! The deployment app carries no environment marks: it is the pipeline's, not the
//! environment's, so `plan` never takes it for an orphan and `down` leaves it standing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::azure::credential::CredentialPlan;
use crate::azure::graph::Upserted;
use crate::azure::retry::Deadline;
use crate::cloud::Cloud;
use crate::config::Blueprint;
use crate::resources::federation::{self, Issuers, Pipeline, Trust};
use crate::resources::foundry::ResourceGroup;
use crate::resources::{Managed, Outputs};

/// What bootstrap made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrapped {
    pub client_id: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub principal_id: String,
    pub trust: Trust,
    /// What this run changed, in words (empty when everything was in place).
    pub changes: Vec<String>,
    /// What it could not do, and what someone must do instead.
    pub notes: Vec<String>,
}

pub async fn bootstrap(
    blueprint: &Blueprint,
    credential: &CredentialPlan,
    timeout: Duration,
    pipeline: &Pipeline,
) -> anyhow::Result<Bootstrapped> {
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let issuers = match blueprint.cloud {
        Cloud::Sandbox => Issuers::Sandbox {
            origin: &endpoints.login,
        },
        _ => Issuers::Azure,
    };
    let trust = pipeline.trust(issuers)?;
    let azure = super::sign_in(blueprint, credential, Deadline::after(timeout, "bootstrap"))?;
    let mut changes = Vec::new();

    let group = format!(
        "/subscriptions/{}/resourceGroups/{}",
        blueprint.subscription_id, blueprint.resource_group
    );
    let plans_only = pipeline.plans_only();
    let unique_name = federation::deploy_app_name(&blueprint.entra.api.unique_name, plans_only);
    let display_name = format!(
        "{} {}",
        blueprint.entra.api.display_name,
        if plans_only { "plans" } else { "deployments" }
    );
    let app = match azure.graph.application_by_unique_name(&unique_name).await? {
        Some(app) if app.get("displayName").and_then(Value::as_str) == Some(&display_name) => app,
        _ => {
            let body = json!({ "displayName": display_name, "signInAudience": "AzureADMyOrg" });
            changes.push(format!("application {unique_name}"));
            match azure.graph.upsert_application(&unique_name, &body).await? {
                Upserted::Created(app) => app,
                Upserted::Updated => azure
                    .graph
                    .get(&format!("/applications(uniqueName='{unique_name}')"))
                    .await?
                    .unwrap_or_default(),
            }
        }
    };
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // bootstrap never gives its app a secret or a certificate: one that has them was made or
    // changed by someone else, who could sign in as it with the rights granted below.
    let has_credentials = ["passwordCredentials", "keyCredentials"].iter().any(|k| {
        app.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    });
    if has_credentials {
        return Err(crate::hint::Hinted::error(
            format!(
                "application {unique_name} already exists with a client secret or certificate, \
                 which bootstrap never adds: whoever holds it could sign in with the rights \
                 bootstrap grants"
            ),
            "remove its secrets and certificates (or delete the app) after checking who made \
             them, then run bootstrap again",
        ));
    }
    let (object_id, client_id) = (text(&app, "id"), text(&app, "appId"));

    let principal = match azure.graph.service_principal_by_app_id(&client_id).await? {
        Some(sp) => sp,
        None => {
            changes.push(format!("service principal of {unique_name}"));
            match azure
                .graph
                .upsert_service_principal(&client_id, &json!({}))
                .await?
            {
                Upserted::Created(sp) => sp,
                Upserted::Updated => azure
                    .graph
                    .service_principal_by_app_id(&client_id)
                    .await?
                    .unwrap_or_default(),
            }
        }
    };
    let principal_id = text(&principal, "id");

    let credentials = azure
        .graph
        .get(&format!(
            "/applications/{object_id}/federatedIdentityCredentials"
        ))
        .await?
        .unwrap_or_default();
    let trusted = credentials
        .get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            text(c, "issuer") == trust.issuer
                && text(c, "subject") == trust.subject
                && c.get("audiences") == Some(&json!([trust.audience]))
        });
    if !trusted {
        changes.push(format!("federated credential for {}", trust.subject));
        azure
            .graph
            .upsert(
                &format!(
                    "/applications/{object_id}/federatedIdentityCredentials(name='{}')",
                    trust.name
                ),
                &json!({
                    "issuer": trust.issuer,
                    "subject": trust.subject,
                    "audiences": [trust.audience],
                    "description": format!("provision bootstrap: {} deploys {}", trust.subject, blueprint.env),
                }),
            )
            .await?;
    }

    // The roles are granted on the group, so a first bootstrap makes it, exactly as `up` would
    // (with the environment's marks): the pipeline's first `up` then finds it its own.
    if azure.arm.get(&group).await?.is_none() {
        let made = ResourceGroup::new(blueprint);
        azure
            .arm
            .put(&group, &made.desired(&Outputs::default()))
            .await?;
        changes.push(format!("resource group {}", blueprint.resource_group));
    }

    let assignments = azure
        .arm
        .list(&format!(
            "{group}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '{principal_id}'"
        ))
        .await?;
    for grant in federation::grants(plans_only) {
        let held = assignments.iter().any(|a| {
            let p = |k: &str| {
                a.pointer(&format!("/properties/{k}"))
                    .and_then(Value::as_str)
            };
            p("scope").is_some_and(|s| s.eq_ignore_ascii_case(&group))
                && p("roleDefinitionId")
                    .is_some_and(|r| r.to_ascii_lowercase().ends_with(grant.role))
                && p("condition") == grant.condition.as_deref()
        });
        if held {
            continue;
        }
        changes.push(format!(
            "{} on {}",
            grant.role_name, blueprint.resource_group
        ));
        let mut properties = json!({
            "roleDefinitionId": format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
                blueprint.subscription_id, grant.role
            ),
            "principalId": principal_id,
            // A new principal may not have replicated to ARM yet; naming its type lets ARM
            // take the assignment anyway (https://aka.ms/docs-principaltype).
            "principalType": "ServicePrincipal",
        });
        if let Some(condition) = &grant.condition {
            properties["condition"] = json!(condition);
            properties["conditionVersion"] = json!("2.0");
        }
        let name = federation::assignment_name(&group, &principal_id, grant.role);
        azure
            .arm
            .put(
                &format!("{group}/providers/Microsoft.Authorization/roleAssignments/{name}"),
                &json!({ "properties": properties }),
            )
            .await?;
    }

    // Owner of the environment's apps, so that with Application.ReadWrite.OwnedBy it may update
    // them and nothing else in the directory; an identity that only plans reads them with
    // Application.Read.All and owns nothing.
    let mut notes = Vec::new();
    let named = std::iter::once(&blueprint.entra.api.unique_name)
        .chain(blueprint.entra.clients.iter().map(|c| &c.unique_name))
        .filter(|_| !plans_only);
    for name in named {
        let Some(owned) = azure.graph.application_by_unique_name(name).await? else {
            notes.push(format!(
                "application {name} does not exist yet: run bootstrap again after `provision up \
                 --env {}` to make the deployment identity its owner",
                blueprint.env
            ));
            continue;
        };
        let id = text(&owned, "id");
        if !azure
            .graph
            .owners(&id)
            .await?
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&principal_id))
        {
            changes.push(format!("owner of application {name}"));
            azure.graph.add_owner(&id, &principal_id).await?;
        }
    }
    let permission = if plans_only {
        "Application.Read.All"
    } else {
        "Application.ReadWrite.OwnedBy"
    };
    if let Some(note) = grant_graph(&azure, &principal_id, permission, &mut changes).await? {
        let until = if plans_only {
            "the pipeline cannot read the environment's Entra apps to plan them"
        } else {
            "the pipeline can plan but not change Entra apps"
        };
        notes.push(format!(
            "{note}: until an administrator grants it (Entra admin center > App registrations > \
             {unique_name} > API permissions > Add > Microsoft Graph > Application permissions \
             > {permission} > Grant admin consent), {until}"
        ));
    }
    Ok(Bootstrapped {
        client_id,
        tenant_id: blueprint.tenant_id.as_str().to_owned(),
        subscription_id: blueprint.subscription_id.as_str().to_owned(),
        principal_id,
        trust,
        changes,
        notes,
    })
}

/// A Graph application permission for the pipeline identity (an app role assignment on Microsoft
/// Graph's service principal: admin consent). `Some(why)` when it could not be granted: the
/// signed-in identity may not grant app roles (403), which is for an administrator to do.
async fn grant_graph(
    azure: &crate::azure::Azure,
    principal_id: &str,
    permission: &str,
    changes: &mut Vec<String>,
) -> anyhow::Result<Option<String>> {
    let graph = azure
        .graph
        .service_principal_by_app_id("00000003-0000-0000-c000-000000000000")
        .await?;
    let role = graph.as_ref().and_then(|sp| {
        sp.get("appRoles")?
            .as_array()?
            .iter()
            .find(|r| r.get("value").and_then(Value::as_str) == Some(permission))?
            .get("id")?
            .as_str()
            .map(str::to_owned)
    });
    let (Some(graph), Some(role)) = (graph, role) else {
        return Ok(Some(format!(
            "Microsoft Graph's service principal or its {permission} role is not visible, so \
             the permission is not granted"
        )));
    };
    let resource = graph.get("id").and_then(Value::as_str).unwrap_or_default();
    let path = format!("/servicePrincipals/{principal_id}/appRoleAssignments");
    let held = azure.graph.get(&path).await?.unwrap_or_default();
    let granted = held
        .get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|a| {
            a.get("resourceId").and_then(Value::as_str) == Some(resource)
                && a.get("appRoleId").and_then(Value::as_str) == Some(role.as_str())
        });
    if granted {
        return Ok(None);
    }
    let body = json!({ "principalId": principal_id, "resourceId": resource, "appRoleId": role });
    match azure.graph.create(&path, &body).await {
        Ok(_) => {
            changes.push(format!("Microsoft Graph {permission} (admin consent)"));
            Ok(None)
        }
        Err(e) if e.status() == Some(403) => Ok(Some(format!(
            "the signed-in identity may not grant Microsoft Graph's {permission}"
        ))),
        Err(e) => Err(e.into()),
    }
}
