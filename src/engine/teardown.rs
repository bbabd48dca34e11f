//! `down`: find everything of an environment from its marks (no state file), then remove it in
//! reverse dependency order, independent branches concurrently, and purge what Azure and Entra
//! keep soft-deleted so the names are free at once. What is ours is decided in
//! [`crate::resources::ownership`]; this module only reads and sends.
//!
//! Crash safety comes from the same place as `up`'s: nothing is remembered between runs. A run
//! killed part-way leaves fewer resources (or their soft-deleted copies) carrying the
//! environment's marks, and the next run finds and finishes those.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::observe::read_all;
use super::{EngineError, Event};
use crate::azure::Azure;
use crate::azure::session::WireError;
use crate::config::{ApimService as ServiceSpec, Blueprint};
use crate::resources::ownership::{
    self, Doomed, Purge, Removal, Skipped, app_is_ours, arm_is_ours, kind_of_type, name_of,
    tombstone_of,
};
use crate::resources::{Address, Kind, Managed, apim, entra, foundry};

/// How long Entra keeps a deleted application in deleted items (GD directory-deleteditems).
const DIRECTORY_RETENTION_DAYS: i64 = 30;

/// Where and whose: enough to find an environment from its marks alone, with or without its
/// file (`down --expired` has only the marks).
#[derive(Debug, Clone)]
pub struct Scope {
    pub env: String,
    pub subscription: String,
    /// The APIM service id the file says provision creates (a deleted service keeps no tags).
    pub own_service: Option<String>,
    /// The API app's unique name, to label a deleted app as the API's.
    pub api_app: Option<String>,
}

impl Scope {
    pub fn of(blueprint: &Blueprint) -> Scope {
        Scope {
            env: blueprint.env.clone(),
            subscription: blueprint.subscription_id.to_string(),
            own_service: match &blueprint.apim.service {
                ServiceSpec::Create { .. } => Some(apim::service_id(blueprint)),
                ServiceSpec::Existing { .. } => None,
            },
            api_app: Some(blueprint.entra.api.unique_name.clone()),
        }
    }

    /// Only the marks: an environment known by name.
    pub fn marks_only(env: &str, subscription: &str) -> Scope {
        Scope {
            env: env.to_owned(),
            subscription: subscription.to_owned(),
            own_service: None,
            api_app: None,
        }
    }

    fn label(&self, kind: Kind) -> Address {
        Address::new(kind, format!("of {}", self.env))
    }
}

/// What `down` would remove and purge, and what it leaves alone.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub doomed: Vec<Doomed>,
    pub skipped: Vec<Skipped>,
    /// How many reads the survey took.
    pub reads: usize,
}

pub(super) fn wire(address: &Address) -> impl Fn(WireError) -> EngineError + '_ {
    move |error| EngineError::Wire {
        address: address.clone(),
        error,
    }
}

/// The parent whose ownership a child without tags of its own follows.
fn parent_of(kind: Kind, blueprint: &Blueprint) -> Option<Address> {
    match kind {
        Kind::Deployment | Kind::RoleAssignment => Some(foundry::Account::address_of(blueprint)),
        Kind::NamedValue | Kind::Backend | Kind::Api | Kind::Operation | Kind::Policy => {
            Some(apim::ApimService::address_of(blueprint))
        }
        Kind::ApiServicePrincipal => Some(entra::ApiApp::address_of(blueprint)),
        _ => None,
    }
}

/// Finds what is ours: the environment file's resources by name (each kept only with the
/// marks), then everything else carrying the marks (a renamed account, a removed client), then
/// the soft-deleted copies earlier runs left.
pub async fn survey(
    azure: &Azure,
    blueprint: &Blueprint,
    resources: &[Box<dyn Managed>],
) -> Result<Survey, EngineError> {
    let env = blueprint.env.as_str();
    let observation = read_all(azure, resources).await?;
    let mut survey = Survey {
        reads: observation.reads,
        ..Survey::default()
    };
    let mut ours: BTreeSet<Address> = BTreeSet::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    for r in resources {
        let address = r.address();
        let Some(observed) = observation.observed(&address) else {
            continue;
        };
        let path = r.read(&observation.known).map(|read| read.path);
        let client_app = address.kind == Kind::ClientApp;
        let verdict = match address.kind {
            Kind::ResourceGroup | Kind::Account | Kind::ApimService => arm_is_ours(observed, env),
            Kind::ApiApp | Kind::ClientApp => app_is_ours(observed, env),
            Kind::ClientServicePrincipal => {
                let app = Address::new(Kind::ClientApp, address.name.clone());
                verdict_of_parent(&ours, &app)
            }
            Kind::ApiPreAuthorization => continue,
            kind => match parent_of(kind, blueprint) {
                Some(parent) => verdict_of_parent(&ours, &parent),
                None => continue,
            },
        };
        if let Err(reason) = verdict {
            survey.skipped.push(Skipped { address, reason });
            continue;
        }
        let id = observed
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (removal, purge) = match address.kind {
            Kind::ApiApp | Kind::ClientApp => (
                Removal::Application(id.to_owned()),
                Some(Purge::Directory(id.to_owned())),
            ),
            Kind::ApiServicePrincipal | Kind::ClientServicePrincipal => (
                Removal::ServicePrincipal(id.to_owned()),
                Some(Purge::Directory(id.to_owned())),
            ),
            kind => {
                let Some(path) = path else { continue };
                seen_ids.insert(path.to_ascii_lowercase());
                let purge = tombstone_of(kind, &path, observed).map(Purge::Arm);
                (Removal::Arm(path), purge)
            }
        };
        if client_app || address.kind == Kind::ApiApp {
            seen_ids.insert(id.to_ascii_lowercase());
        }
        ours.insert(address.clone());
        survey.doomed.push(Doomed {
            address,
            removal: Some(removal),
            purge,
            held_until: None,
        });
    }
    let scope = Scope::of(blueprint);
    marked_elsewhere(azure, &scope, &mut survey, &mut seen_ids).await?;
    leftovers(azure, &scope, &mut survey, &seen_ids).await?;
    keep_group_with_strangers(azure, &mut survey).await?;
    Ok(survey)
}

/// The survey of an environment known only by its marks (`down --expired`).
pub async fn survey_marks(azure: &Azure, scope: &Scope) -> Result<Survey, EngineError> {
    let mut survey = Survey::default();
    let mut seen = BTreeSet::new();
    marked_elsewhere(azure, scope, &mut survey, &mut seen).await?;
    leftovers(azure, scope, &mut survey, &seen).await?;
    keep_group_with_strangers(azure, &mut survey).await?;
    Ok(survey)
}

fn verdict_of_parent(ours: &BTreeSet<Address>, parent: &Address) -> Result<(), String> {
    if ours.contains(parent) {
        Ok(())
    } else {
        Err(format!(
            "it is inside {parent}, which is not this environment's"
        ))
    }
}

/// Whatever else carries the environment's marks: ARM by tag over the subscription, Entra apps
/// by Graph tag (a renamed client, an account whose name changed in the file).
async fn marked_elsewhere(
    azure: &Azure,
    scope: &Scope,
    survey: &mut Survey,
    seen: &mut BTreeSet<String>,
) -> Result<(), EngineError> {
    let env = scope.env.as_str();
    let filter = crate::access::query_value(&ownership::arm_filter(env));
    let subscription = format!("/subscriptions/{}", scope.subscription);
    let here = scope.label(Kind::ResourceGroup);
    let mut listed = azure
        .arm
        .list(&format!("{subscription}/resources?$filter={filter}"))
        .await
        .map_err(wire(&here))?;
    listed.extend(
        azure
            .arm
            .list(&format!("{subscription}/resourcegroups?$filter={filter}"))
            .await
            .map_err(wire(&here))?,
    );
    survey.reads += 2;
    for item in listed {
        let (Some(id), Some(kind)) = (
            item.get("id").and_then(Value::as_str),
            item.get("type")
                .and_then(Value::as_str)
                .and_then(kind_of_type),
        ) else {
            continue;
        };
        if !seen.insert(id.to_ascii_lowercase()) {
            continue;
        }
        let address = Address::new(kind, name_of(id));
        // The list leaves the tags out when filtering by value: read the resource to judge it.
        survey.reads += 1;
        let Some(observed) = azure.arm.get(id).await.map_err(wire(&address))? else {
            continue;
        };
        match arm_is_ours(&observed, env) {
            Ok(()) => survey.doomed.push(Doomed {
                purge: tombstone_of(kind, id, &observed).map(Purge::Arm),
                address,
                removal: Some(Removal::Arm(id.to_owned())),
                held_until: None,
            }),
            Err(reason) => survey.skipped.push(Skipped { address, reason }),
        }
    }
    let here = scope.label(Kind::ClientApp);
    let apps = azure
        .graph
        .applications(&ownership::graph_filter(env))
        .await
        .map_err(wire(&here))?;
    survey.reads += 1;
    for app in apps {
        let Some(id) = app.get("id").and_then(Value::as_str) else {
            continue;
        };
        if !seen.insert(id.to_ascii_lowercase()) || app_is_ours(&app, env).is_err() {
            continue;
        }
        let name = ownership::app_label(&app, id);
        if let Some(app_id) = app.get("appId").and_then(Value::as_str) {
            let sp = Address::new(Kind::ClientServicePrincipal, name.clone());
            survey.reads += 1;
            if let Some(principal) = azure
                .graph
                .service_principal_by_app_id(app_id)
                .await
                .map_err(wire(&sp))?
                && let Some(sp_id) = principal.get("id").and_then(Value::as_str)
            {
                survey.doomed.push(Doomed {
                    address: sp,
                    removal: Some(Removal::ServicePrincipal(sp_id.to_owned())),
                    purge: Some(Purge::Directory(sp_id.to_owned())),
                    held_until: None,
                });
            }
        }
        survey.doomed.push(Doomed {
            address: Address::new(Kind::ClientApp, name),
            removal: Some(Removal::Application(id.to_owned())),
            purge: Some(Purge::Directory(id.to_owned())),
            held_until: None,
        });
    }
    Ok(())
}

/// Soft-deleted copies an earlier `down` (or a crash) left: deleted accounts carrying the tags,
/// the deleted APIM service the file names (deleted services keep no tags), deleted apps
/// carrying the Graph tags, and the deleted service principals of those apps. The three lists
/// are independent, so they are read at once: the survey is on the critical path of every
/// `down`.
async fn leftovers(
    azure: &Azure,
    scope: &Scope,
    survey: &mut Survey,
    seen: &BTreeSet<String>,
) -> Result<(), EngineError> {
    let env = scope.env.as_str();
    let subscription = format!("/subscriptions/{}", scope.subscription);
    let account = scope.label(Kind::Account);
    let service = scope.label(Kind::ApimService);
    let client = scope.label(Kind::ClientApp);
    let accounts_path =
        format!("{subscription}/providers/Microsoft.CognitiveServices/deletedAccounts");
    let services_path = format!("{subscription}/providers/Microsoft.ApiManagement/deletedservices");
    let app_filter = ownership::graph_filter(env);
    let (deleted_accounts, deleted_services, deleted_apps) = tokio::try_join!(
        async { azure.arm.list(&accounts_path).await.map_err(wire(&account)) },
        async { azure.arm.list(&services_path).await.map_err(wire(&service)) },
        async {
            azure
                .graph
                .deleted_applications(Some(&app_filter))
                .await
                .map_err(wire(&client))
        },
    )?;
    survey.reads += 3;
    let deleted_apps: Vec<Value> = deleted_apps
        .into_iter()
        .filter(|d| app_is_ours(d, env).is_ok())
        .collect();
    let app_ids: Vec<&str> = deleted_apps
        .iter()
        .filter_map(|d| d.get("appId").and_then(Value::as_str))
        .collect();
    let deleted_principals = match ownership::app_id_filter(&app_ids) {
        Some(filter) => {
            survey.reads += 1;
            azure
                .graph
                .deleted_service_principals(&filter)
                .await
                .map_err(wire(&client))?
        }
        None => Vec::new(),
    };
    let already: BTreeSet<String> = survey
        .doomed
        .iter()
        .filter_map(|d| match &d.purge {
            Some(Purge::Arm(p) | Purge::Directory(p)) => Some(p.to_ascii_lowercase()),
            None => None,
        })
        .collect();
    let mut add = |address: Address, purge: Purge, until: Option<String>| {
        let key = match &purge {
            Purge::Arm(p) | Purge::Directory(p) => p.to_ascii_lowercase(),
        };
        if !already.contains(&key) {
            survey.doomed.push(Doomed {
                address,
                removal: None,
                purge: Some(purge),
                held_until: until,
            });
        }
    };
    for d in deleted_accounts {
        let Some(id) = d.get("id").and_then(Value::as_str) else {
            continue;
        };
        if arm_is_ours(&d, env).is_ok() {
            let until = d
                .pointer("/properties/scheduledPurgeDate")
                .and_then(Value::as_str);
            add(
                Address::new(Kind::Account, name_of(id)),
                Purge::Arm(id.to_owned()),
                until.map(str::to_owned),
            );
        }
    }
    let own_service = scope.own_service.as_ref().map(|s| s.to_ascii_lowercase());
    for d in deleted_services {
        let (Some(id), Some(service_id)) = (
            d.get("id").and_then(Value::as_str),
            d.pointer("/properties/serviceId").and_then(Value::as_str),
        ) else {
            continue;
        };
        let service_id = service_id.to_ascii_lowercase();
        if own_service.as_ref() == Some(&service_id) || seen.contains(&service_id) {
            let until = d
                .pointer("/properties/scheduledPurgeDate")
                .and_then(Value::as_str);
            add(
                Address::new(Kind::ApimService, name_of(id)),
                Purge::Arm(id.to_owned()),
                until.map(str::to_owned),
            );
        }
    }
    for d in &deleted_apps {
        let Some(id) = d.get("id").and_then(Value::as_str) else {
            continue;
        };
        let name = d
            .get("uniqueName")
            .or_else(|| d.get("displayName"))
            .and_then(Value::as_str)
            .unwrap_or(id);
        let until = directory_until(d);
        let api = scope.api_app.as_deref() == Some(name);
        let kind = if api { Kind::ApiApp } else { Kind::ClientApp };
        add(
            Address::new(kind, name),
            Purge::Directory(id.to_owned()),
            until,
        );
        let app_id = d.get("appId").and_then(Value::as_str);
        for p in deleted_principals
            .iter()
            .filter(|p| app_id.is_some_and(|a| p.get("appId").and_then(Value::as_str) == Some(a)))
        {
            let Some(sp_id) = p.get("id").and_then(Value::as_str) else {
                continue;
            };
            let kind = if api {
                Kind::ApiServicePrincipal
            } else {
                Kind::ClientServicePrincipal
            };
            add(
                Address::new(kind, name),
                Purge::Directory(sp_id.to_owned()),
                directory_until(p),
            );
        }
    }
    Ok(())
}

/// When Entra purges a deleted directory object by itself: 30 days after `deletedDateTime`.
fn directory_until(deleted: &Value) -> Option<String> {
    deleted
        .get("deletedDateTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| {
            t.checked_add(jiff::SignedDuration::from_hours(
                24 * DIRECTORY_RETENTION_DAYS,
            ))
            .ok()
        })
        .map(|t| t.to_string())
}

/// A resource group of ours that holds anything that is not ours stays, with a reason.
async fn keep_group_with_strangers(azure: &Azure, survey: &mut Survey) -> Result<(), EngineError> {
    let ours: BTreeSet<String> = survey
        .doomed
        .iter()
        .filter_map(|d| match &d.removal {
            Some(Removal::Arm(id)) => Some(id.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let groups: Vec<(usize, String)> = survey
        .doomed
        .iter()
        .enumerate()
        .filter(|(_, d)| d.address.kind == Kind::ResourceGroup)
        .filter_map(|(i, d)| match &d.removal {
            Some(Removal::Arm(id)) => Some((i, id.clone())),
            _ => None,
        })
        .collect();
    let mut keep = Vec::new();
    let mut gone = Vec::new();
    for (i, group) in groups {
        let address = survey.doomed[i].address.clone();
        survey.reads += 1;
        let inside = match azure.arm.list(&format!("{group}/resources")).await {
            Ok(inside) => inside,
            // Gone since it was read (an earlier run's delete ending): nothing left to delete.
            Err(e) if e.status() == Some(404) => {
                gone.push(i);
                continue;
            }
            Err(e) => return Err(wire(&address)(e)),
        };
        let strangers: Vec<String> = inside
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str))
            .filter(|id| !ours.contains(&id.to_ascii_lowercase()))
            .map(|id| name_of(id).to_owned())
            .collect();
        if !strangers.is_empty() {
            keep.push((
                i,
                format!(
                    "it holds resources that are not this environment's: {}",
                    strangers.join(", ")
                ),
            ));
        }
    }
    let mut drop: Vec<(usize, Option<String>)> =
        keep.into_iter().map(|(i, r)| (i, Some(r))).collect();
    drop.extend(gone.into_iter().map(|i| (i, None)));
    drop.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, reason) in drop {
        let d = survey.doomed.remove(i);
        if let Some(reason) = reason {
            survey.skipped.push(Skipped {
                address: d.address,
                reason,
            });
        }
    }
    Ok(())
}

/// Every environment in the subscription and tenant whose expiry mark has passed at `now`:
/// ARM resources and groups by the tag's name (their tags come with such a list), applications
/// by a Graph filter on the tag's prefix.
pub async fn expired(
    azure: &Azure,
    subscription: &str,
    now: jiff::Timestamp,
) -> Result<Vec<ownership::Expired>, EngineError> {
    let here = Address::new(Kind::ResourceGroup, "(expiry search)");
    let filter = crate::access::query_value(&format!("tagName eq '{}'", ownership::EXPIRES_TAG));
    let mut arm = azure
        .arm
        .list(&format!(
            "/subscriptions/{subscription}/resources?$filter={filter}"
        ))
        .await
        .map_err(wire(&here))?;
    arm.extend(
        azure
            .arm
            .list(&format!(
                "/subscriptions/{subscription}/resourcegroups?$filter={filter}"
            ))
            .await
            .map_err(wire(&here))?,
    );
    let apps = azure
        .graph
        .applications(&format!(
            "tags/any(t:startswith(t,'{}:'))",
            ownership::EXPIRES_TAG
        ))
        .await
        .map_err(wire(&here))?;
    Ok(ownership::expired(&arm, &apps, now))
}

/// What `down` did.
#[derive(Debug, Clone, Default)]
pub struct TornDown {
    pub removed: usize,
    pub purged: usize,
    /// Soft-deleted copies left (without `--purge`): what, where, and until when.
    pub left: Vec<(Address, Purge, Option<String>)>,
    /// Purges the identity was not allowed to make (they are in `left` too), with the reason.
    pub refused: Vec<String>,
    pub writes: usize,
}

/// Removes (and with `purge`, purges) what the survey found, dependents first; at most
/// `concurrency` at a time. On the first failure nothing new starts.
pub async fn teardown<F>(
    azure: &Azure,
    survey: &Survey,
    purge: bool,
    concurrency: usize,
    events: F,
) -> Result<TornDown, EngineError>
where
    F: Fn(Event) + Send + Sync + 'static,
{
    let events = Arc::new(events);
    let mut pending: Vec<Doomed> = survey.doomed.clone();
    let mut running: JoinSet<Removed> = JoinSet::new();
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let mut done = TornDown::default();
    let mut failure = None;
    let mut next_key = 0usize;
    let mut keys: Vec<(usize, Doomed)> = pending
        .drain(..)
        .map(|d| {
            next_key += 1;
            (next_key, d)
        })
        .collect();
    loop {
        if failure.is_none() {
            let waiting: Vec<Doomed> = keys.iter().map(|(_, d)| d.clone()).collect();
            let ready: Vec<Address> = ownership::ready(&waiting)
                .into_iter()
                .map(|d| d.address.clone())
                .collect();
            for (key, d) in &keys {
                if running.len() >= concurrency.max(1) {
                    break;
                }
                if started.contains(key) || !ready.contains(&d.address) {
                    continue;
                }
                started.insert(*key);
                events(Event::Started {
                    address: d.address.clone(),
                });
                let (azure, d, events) = (azure.clone(), d.clone(), events.clone());
                running.spawn(async move {
                    let began = Instant::now();
                    let result = remove(&azure, &d, purge, &*events).await;
                    (d, result, began.elapsed())
                });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (d, result, elapsed) = joined.expect("a removal task does not panic");
        keys.retain(|(_, k)| k != &d);
        match result {
            Ok((writes, held_until)) => {
                done.writes += writes;
                if d.removal.is_some() {
                    done.removed += 1;
                }
                match (&d.purge, purge) {
                    // The purge is a step of its own: what waited for the removal (the
                    // resource group for its account) starts now, beside the purge.
                    (Some(_), true) if d.removal.is_some() => {
                        next_key += 1;
                        keys.push((
                            next_key,
                            Doomed {
                                removal: None,
                                ..d.clone()
                            },
                        ));
                    }
                    (Some(_), true) => done.purged += 1,
                    (Some(p), false) => {
                        let until = held_until.or(d.held_until.clone());
                        done.left.push((d.address.clone(), p.clone(), until));
                    }
                    _ => {}
                }
                events(Event::Done {
                    address: d.address,
                    writes,
                    elapsed,
                });
            }
            // The removal is done; only the purge was refused: the copy stays soft-deleted, said
            // in the summary, and the rest of the teardown goes on.
            Err(error @ EngineError::PurgeRefused { .. }) => {
                if let Some(p) = &d.purge {
                    done.left
                        .push((d.address.clone(), p.clone(), d.held_until.clone()));
                }
                events(Event::Failed {
                    address: d.address,
                    error: error.to_string(),
                });
                done.refused.push(error.to_string());
            }
            Err(error) => {
                events(Event::Failed {
                    address: d.address,
                    error: error.to_string(),
                });
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(done),
    }
}

/// A removal task's end: what, how it went (writes, until when a copy holds the name), how long.
type Removed = (
    Doomed,
    Result<(usize, Option<String>), EngineError>,
    Duration,
);

/// Removes one resource, then purges what it left when asked; the count of writes and, without
/// a purge, until when the soft-deleted copy holds the name.
async fn remove(
    azure: &Azure,
    d: &Doomed,
    purge: bool,
    events: &(dyn Fn(Event) + Send + Sync),
) -> Result<(usize, Option<String>), EngineError> {
    let fail = wire(&d.address);
    let mut writes = 0;
    let say = |what: &str| {
        events(Event::Writing {
            address: d.address.clone(),
            what: what.to_owned(),
        })
    };
    match &d.removal {
        Some(Removal::Arm(id)) => {
            say("ARM DELETE");
            let apim_entity = matches!(
                d.address.kind,
                Kind::Api | Kind::Operation | Kind::Policy | Kind::Backend | Kind::NamedValue
            );
            if apim_entity {
                azure.arm.delete_any_version(id).await.map_err(&fail)?;
            } else {
                azure.arm.delete(id).await.map_err(&fail)?;
            }
            writes += 1;
        }
        Some(Removal::Application(id)) => {
            say("Graph DELETE");
            azure.graph.delete_application(id).await.map_err(&fail)?;
            writes += 1;
        }
        Some(Removal::ServicePrincipal(id)) => {
            say("Graph DELETE");
            azure
                .graph
                .delete_service_principal(id)
                .await
                .map_err(&fail)?;
            writes += 1;
        }
        None => {}
    }
    let Some(what) = &d.purge else {
        return Ok((writes, None));
    };
    if !purge {
        let until = match what {
            Purge::Arm(id) => azure.arm.get(id).await.map_err(&fail)?.and_then(|t| {
                t.pointer("/properties/scheduledPurgeDate")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            Purge::Directory(id) => azure
                .graph
                .get(&format!("/directory/deletedItems/{id}"))
                .await
                .map_err(&fail)?
                .as_ref()
                .and_then(directory_until),
        };
        return Ok((writes, until));
    }
    if d.removal.is_some() {
        // Purged as a step of its own, queued when this one ends.
        return Ok((writes, None));
    }
    let refused = |error: WireError| match error.status() {
        Some(403) => EngineError::PurgeRefused {
            address: d.address.clone(),
            error,
        },
        _ => fail(error),
    };
    match what {
        Purge::Arm(id) => {
            say("purge");
            azure.arm.delete(id).await.map_err(refused)?;
        }
        Purge::Directory(id) => {
            say("purge");
            azure.graph.purge_deleted(id).await.map_err(refused)?;
        }
    }
    Ok((writes + 1, None))
}
