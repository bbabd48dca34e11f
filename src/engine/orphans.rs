//! Orphans: resources that carry the environment's marks but that its file no longer names (a
//! renamed or removed client, a removed deployment, named value, backend or API). `plan` shows
//! them as `- delete`, and `up` deletes them once everything the file names has converged, so a
//! rename never leaves a gap. Found from the marks alone, as `down` finds everything.

use std::collections::BTreeSet;

use serde_json::Value;

use super::EngineError;
use super::observe::Observation;
use super::teardown::wire;
use crate::azure::Azure;
use crate::config::{ApimService as ServiceSpec, Blueprint};
use crate::resources::ownership::{
    self, Doomed, Purge, Removal, app_is_ours, arm_is_ours, kind_of_type, name_of,
};
use crate::resources::{Address, Kind, Managed, apim, entra, foundry};

/// What carries the marks and is not in the file. Costs a fixed handful of list reads: ARM by
/// tag, Graph apps by tag, and the children of the account and the APIM service when ours.
pub async fn orphans(
    azure: &Azure,
    blueprint: &Blueprint,
    resources: &[Box<dyn Managed>],
    observation: &Observation,
) -> Result<(Vec<Doomed>, usize), EngineError> {
    let env = blueprint.env.as_str();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for r in resources {
        if let Some(read) = r.read(&observation.known) {
            known.insert(read.path.to_ascii_lowercase());
        }
        if let Some(id) = observation
            .observed(&r.address())
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
        {
            known.insert(id.to_ascii_lowercase());
        }
    }
    // Apps the file names, by unique name: never orphans, even when this run read them as absent
    // (another run creating them meanwhile, or a replica behind).
    let named_apps: BTreeSet<String> = resources
        .iter()
        .map(|r| r.address())
        .filter(|a| matches!(a.kind, Kind::ApiApp | Kind::ClientApp))
        .map(|a| a.name.to_ascii_lowercase())
        .collect();
    let mut found = Vec::new();
    let mut reads = 0;
    let subscription = format!("/subscriptions/{}", blueprint.subscription_id);
    let filter = crate::access::query_value(&ownership::arm_filter(env));
    let group = Address::new(Kind::ResourceGroup, blueprint.resource_group.clone());
    let listed = azure
        .arm
        .list(&format!("{subscription}/resources?$filter={filter}"))
        .await
        .map_err(wire(&group))?;
    reads += 1;
    for item in listed {
        let (Some(id), Some(kind)) = (
            item.get("id").and_then(Value::as_str),
            item.get("type")
                .and_then(Value::as_str)
                .and_then(kind_of_type),
        ) else {
            continue;
        };
        if known.contains(&id.to_ascii_lowercase()) {
            continue;
        }
        let address = Address::new(kind, name_of(id));
        reads += 1;
        if let Some(observed) = azure.arm.get(id).await.map_err(wire(&address))?
            && arm_is_ours(&observed, env).is_ok()
        {
            found.push(doomed(address, Removal::Arm(id.to_owned())));
        }
    }
    let api = entra::ApiApp::address_of(blueprint);
    let apps = azure
        .graph
        .applications(&ownership::graph_filter(env))
        .await
        .map_err(wire(&api))?;
    reads += 1;
    for app in apps {
        let Some(id) = app.get("id").and_then(Value::as_str) else {
            continue;
        };
        let unique_name = app.get("uniqueName").and_then(Value::as_str);
        if known.contains(&id.to_ascii_lowercase())
            || unique_name.is_some_and(|n| named_apps.contains(&n.to_ascii_lowercase()))
            || app_is_ours(&app, env).is_err()
        {
            continue;
        }
        let name = ownership::app_label(&app, id);
        if let Some(app_id) = app.get("appId").and_then(Value::as_str) {
            let sp = Address::new(Kind::ClientServicePrincipal, name.clone());
            reads += 1;
            if let Some(principal) = azure
                .graph
                .service_principal_by_app_id(app_id)
                .await
                .map_err(wire(&sp))?
                && let Some(sp_id) = principal.get("id").and_then(Value::as_str)
            {
                found.push(doomed(sp, Removal::ServicePrincipal(sp_id.to_owned())));
            }
        }
        let mut app_doomed = doomed(
            Address::new(Kind::ClientApp, name),
            Removal::Application(id.to_owned()),
        );
        app_doomed.purge = Some(Purge::Directory(id.to_owned()));
        found.push(app_doomed);
    }
    let account = foundry::Account::address_of(blueprint);
    let mut parents = Vec::new();
    if observation
        .observed(&account)
        .is_some_and(|o| arm_is_ours(o, env).is_ok())
    {
        parents.push((
            foundry::account_id(blueprint),
            "deployments",
            Kind::Deployment,
        ));
    }
    let service = apim::ApimService::address_of(blueprint);
    let created = matches!(blueprint.apim.service, ServiceSpec::Create { .. });
    if created
        && observation
            .observed(&service)
            .is_some_and(|o| arm_is_ours(o, env).is_ok())
    {
        let id = apim::service_id(blueprint);
        for (collection, kind) in [
            ("namedValues", Kind::NamedValue),
            ("backends", Kind::Backend),
            ("apis", Kind::Api),
        ] {
            parents.push((id.clone(), collection, kind));
        }
    }
    for (parent, collection, kind) in parents {
        let address = Address::new(kind, collection);
        reads += 1;
        for child in azure
            .arm
            .list(&format!("{parent}/{collection}"))
            .await
            .map_err(wire(&address))?
        {
            let Some(id) = child.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !known.contains(&id.to_ascii_lowercase()) {
                found.push(doomed(
                    Address::new(kind, name_of(id)),
                    Removal::Arm(id.to_owned()),
                ));
            }
        }
    }
    Ok((found, reads))
}

fn doomed(address: Address, removal: Removal) -> Doomed {
    Doomed {
        address,
        removal: Some(removal),
        purge: None,
        held_until: None,
    }
}
