//! What is *ours*: the one place that decides, from marks alone, whether a resource belongs to an
//! environment, and what tearing it down takes. Pure: the engine reads, this module judges.
//!
//! The marks (no state file anywhere):
//! - ARM resources and resource groups carry the tags `managed-by: provision` and
//!   `provision-env: <env>` (the tags the Foundry module writes on everything it creates); both
//!   must be there.
//! - Entra applications carry the Graph `tags` `provision` and `provision-env:<env>`; Graph
//!   filters them with `tags/any(t:t eq 'provision-env:<env>')` (Graph documents `any` on the
//!   `tags` collection of applications and service principals: learn.microsoft.com/graph/aad-advanced-queries,
//!   "applications … tags … eq, not, any"). A service principal is ours when its application is.
//! - Children without tags of their own (deployments, APIs, operations, policies, backends, named
//!   values, role assignments at the account's scope) are ours when their parent is.
//! - A soft-deleted API Management service keeps no tags (`DeletedServiceContract` has only
//!   `serviceId`, dates and location), so its mark is its `serviceId`: the id of a service this
//!   environment's file names and that `down` saw carrying the environment's tags, or the id the
//!   file names for a service provision creates (never an `existing:` one).

use serde_json::Value;

use super::{Address, Kind};

pub const MANAGED_BY: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "provision";
pub const ENV_TAG: &str = "provision-env";
/// When a demo environment expires (RFC 3339): an ARM tag, and a Graph tag `provision-expires:…`.
pub const EXPIRES_TAG: &str = "provision-expires";

/// An environment found expired from its marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub env: String,
    pub expires: String,
}

/// The environments whose expiry mark has passed at `now`, from ARM resources (tags an object)
/// and applications (tags a list), each environment once, with its earliest expiry. Only what
/// also carries `managed-by: provision` (ARM) or `provision` (Graph) counts.
pub fn expired(arm: &[Value], apps: &[Value], now: jiff::Timestamp) -> Vec<Expired> {
    let mut found: std::collections::BTreeMap<String, jiff::Timestamp> = Default::default();
    let mut note = |env: &str, at: &str| {
        if let Ok(at) = at.parse::<jiff::Timestamp>()
            && at <= now
        {
            let slot = found.entry(env.to_owned()).or_insert(at);
            *slot = (*slot).min(at);
        }
    };
    for r in arm {
        let Some(tags) = r.get("tags").and_then(Value::as_object) else {
            continue;
        };
        let tag = |name: &str| tags.get(name).and_then(Value::as_str);
        if let (Some(MANAGED_BY_VALUE), Some(env), Some(at)) =
            (tag(MANAGED_BY), tag(ENV_TAG), tag(EXPIRES_TAG))
        {
            note(env, at);
        }
    }
    for app in apps {
        let tags: Vec<&str> = app
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let value = |name: &str| {
            tags.iter()
                .find_map(|t| t.strip_prefix(name)?.strip_prefix(':'))
        };
        if tags.contains(&MANAGED_BY_VALUE)
            && let (Some(env), Some(at)) = (value(ENV_TAG), value(EXPIRES_TAG))
        {
            note(env, at);
        }
    }
    found
        .into_iter()
        .map(|(env, at)| Expired {
            env,
            expires: at.to_string(),
        })
        .collect()
}

/// The Graph tag that marks an application as the environment's.
pub fn app_tag(env: &str) -> String {
    format!("{ENV_TAG}:{env}")
}

/// OData string literal: a quote is doubled.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The ARM `$filter` that lists what carries the environment's tag (Resources_List,
/// ResourceGroups_List).
pub fn arm_filter(env: &str) -> String {
    format!(
        "tagName eq {} and tagValue eq {}",
        literal(ENV_TAG),
        literal(env)
    )
}

/// The Graph `$filter` that lists the environment's applications.
pub fn graph_filter(env: &str) -> String {
    format!("tags/any(t:t eq {})", literal(&app_tag(env)))
}

/// The Graph `$filter` that finds the service principals of these applications (by `appId`),
/// or `None` when there are none to find.
pub fn app_id_filter(app_ids: &[&str]) -> Option<String> {
    (!app_ids.is_empty()).then(|| {
        app_ids
            .iter()
            .map(|id| format!("appId eq {}", literal(id)))
            .collect::<Vec<_>>()
            .join(" or ")
    })
}

/// `Ok` when an ARM resource (or group) carries both of the environment's tags; else why not.
pub fn arm_is_ours(observed: &Value, env: &str) -> Result<(), String> {
    let tags = observed.get("tags").and_then(Value::as_object);
    let tag = |name: &str| {
        tags.and_then(|t| t.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, v)| v.as_str())
    };
    match (tag(MANAGED_BY), tag(ENV_TAG)) {
        (Some(m), Some(e)) if m == MANAGED_BY_VALUE && e == env => Ok(()),
        (Some(m), Some(e)) if m == MANAGED_BY_VALUE => Err(format!(
            "it belongs to environment `{e}` (tag {ENV_TAG}: {e})"
        )),
        _ => Err(format!(
            "it does not carry the tags {MANAGED_BY}: {MANAGED_BY_VALUE} and {ENV_TAG}: {env}"
        )),
    }
}

/// `Ok` when an application carries the environment's Graph tags; else why not.
pub fn app_is_ours(observed: &Value, env: &str) -> Result<(), String> {
    let tags: Vec<&str> = observed
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let want = app_tag(env);
    if tags.contains(&MANAGED_BY_VALUE) && tags.contains(&want.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "it does not carry the tags `{MANAGED_BY_VALUE}` and `{want}`"
        ))
    }
}

/// The kind of a top-level ARM resource type that provision makes.
pub fn kind_of_type(resource_type: &str) -> Option<Kind> {
    match resource_type.to_ascii_lowercase().as_str() {
        "microsoft.cognitiveservices/accounts" => Some(Kind::Account),
        "microsoft.apimanagement/service" => Some(Kind::ApimService),
        "microsoft.resources/resourcegroups" => Some(Kind::ResourceGroup),
        _ => None,
    }
}

/// How a resource is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// An ARM DELETE of this id.
    Arm(String),
    /// A Graph DELETE of the application with this object id (it goes to deleted items).
    Application(String),
    /// A Graph DELETE of the service principal with this object id.
    ServicePrincipal(String),
}

/// How what a removal leaves soft-deleted is purged, so its name is free at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// An ARM DELETE of a `deletedAccounts` or `deletedservices` id.
    Arm(String),
    /// A Graph DELETE of `/directory/deletedItems/{object id}`.
    Directory(String),
}

/// One thing `down` removes (or, when `removal` is `None`, only purges: it was deleted before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub address: Address,
    pub removal: Option<Removal>,
    pub purge: Option<Purge>,
    /// Until when a soft-deleted copy holds the name, when known (RFC 3339).
    pub held_until: Option<String>,
}

/// Something that matched the environment by name and was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub address: Address,
    pub reason: String,
}

/// The kinds that must be gone before a resource of `kind` is removed: dependents first (the
/// policy and API before the service, the role assignment before the account, service
/// principals before apps, everything before its resource group).
pub fn waits_for(kind: Kind) -> &'static [Kind] {
    use Kind::*;
    match kind {
        Policy
        | RoleAssignment
        | Deployment
        | ApiServicePrincipal
        | ClientServicePrincipal
        | ApiPreAuthorization => &[],
        Operation => &[Policy],
        Api => &[Policy, Operation],
        Backend | NamedValue => &[Policy],
        ApimService => &[Policy, Operation, Api, Backend, NamedValue, RoleAssignment],
        Account => &[Deployment, RoleAssignment, Backend],
        ClientApp => &[ClientServicePrincipal, ApiPreAuthorization],
        ApiApp => &[ApiServicePrincipal, ClientApp, ApiPreAuthorization],
        ResourceGroup => &[
            Policy,
            Operation,
            Api,
            Backend,
            NamedValue,
            ApimService,
            RoleAssignment,
            Deployment,
            Account,
        ],
    }
}

/// Which of `pending` may start now: none of the others still pending is something it waits for.
pub fn ready(pending: &[Doomed]) -> Vec<&Doomed> {
    pending
        .iter()
        .filter(|d| {
            let waits = waits_for(d.address.kind);
            !pending.iter().any(|o| {
                o.address != d.address && o.removal.is_some() && waits.contains(&o.address.kind)
            })
        })
        .collect()
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}` → (subscription, group,
/// name), ignoring case in the fixed segments.
fn parts(id: &str) -> Option<(&str, &str, &str)> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [sub_kw, s, rg_kw, g, p, _, _, name]
            if sub_kw.eq_ignore_ascii_case("subscriptions")
                && rg_kw.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers") =>
        {
            Some((s, g, name))
        }
        _ => None,
    }
}

fn location_of(observed: &Value) -> String {
    observed
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Where the soft-deleted copy of a deleted account or APIM service will be (foundry-arm.md
/// §1.6 for `deletedAccounts`; apimdeletedservices.json for `deletedservices`).
pub fn tombstone_of(kind: Kind, id: &str, observed: &Value) -> Option<String> {
    let (s, g, name) = parts(id)?;
    let location = location_of(observed);
    match kind {
        Kind::Account => Some(format!(
            "/subscriptions/{s}/providers/Microsoft.CognitiveServices/locations/{location}/resourceGroups/{g}/deletedAccounts/{name}"
        )),
        Kind::ApimService => Some(format!(
            "/subscriptions/{s}/providers/Microsoft.ApiManagement/locations/{location}/deletedservices/{name}"
        )),
        _ => None,
    }
}

/// The name in an ARM id: its last segment.
pub fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The name an app is shown and addressed by in plans and teardowns: its `uniqueName`, else its
/// `displayName`, else its object id.
pub fn app_label(app: &Value, id: &str) -> String {
    app.get("uniqueName")
        .or_else(|| app.get("displayName"))
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doomed(kind: Kind, name: &str) -> Doomed {
        Doomed {
            address: Address::new(kind, name),
            removal: Some(Removal::Arm(name.to_owned())),
            purge: None,
            held_until: None,
        }
    }

    #[test]
    fn arm_resources_are_ours_only_with_both_tags_of_the_environment() {
        let ours = json!({"tags": {"managed-by": "provision", "provision-env": "demo"}});
        assert_eq!(arm_is_ours(&ours, "demo"), Ok(()));
        assert_eq!(
            arm_is_ours(&ours, "prod"),
            Err("it belongs to environment `demo` (tag provision-env: demo)".to_owned())
        );
        let half = json!({"tags": {"provision-env": "demo"}});
        assert!(arm_is_ours(&half, "demo").is_err());
        assert!(arm_is_ours(&json!({}), "demo").is_err());
    }

    #[test]
    fn apps_are_ours_only_with_both_graph_tags() {
        let ours = json!({"tags": ["provision", "provision-env:demo"]});
        assert_eq!(app_is_ours(&ours, "demo"), Ok(()));
        assert!(app_is_ours(&ours, "demo2").is_err());
        assert!(app_is_ours(&json!({"tags": ["provision-env:demo"]}), "demo").is_err());
    }

    #[test]
    fn only_passed_expiries_of_our_resources_count_and_each_environment_once() {
        let now: jiff::Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let arm = [
            json!({"tags": {"managed-by": "provision", "provision-env": "old", "provision-expires": "2026-12-03T11:00:00Z"}}),
            json!({"tags": {"managed-by": "provision", "provision-env": "old", "provision-expires": "2026-12-03T10:00:00Z"}}),
            json!({"tags": {"managed-by": "provision", "provision-env": "young", "provision-expires": "2026-12-03T13:00:00Z"}}),
            json!({"tags": {"provision-env": "stranger", "provision-expires": "2026-12-01T00:00:00Z"}}),
        ];
        let apps = [
            json!({"tags": ["provision", "provision-env:app-only", "provision-expires:2026-12-03T12:00:00Z"]}),
            json!({"tags": ["provision-env:no-mark", "provision-expires:2026-12-01T00:00:00Z"]}),
        ];
        let found = expired(&arm, &apps, now);
        assert_eq!(
            found,
            [
                Expired {
                    env: "app-only".into(),
                    expires: "2026-12-03T12:00:00Z".into()
                },
                Expired {
                    env: "old".into(),
                    expires: "2026-12-03T10:00:00Z".into()
                },
            ]
        );
    }

    #[test]
    fn filters_quote_the_environment_name() {
        assert_eq!(
            arm_filter("o'k"),
            "tagName eq 'provision-env' and tagValue eq 'o''k'"
        );
        assert_eq!(
            graph_filter("demo"),
            "tags/any(t:t eq 'provision-env:demo')"
        );
    }

    #[test]
    fn dependents_go_first_and_independent_branches_together() {
        let all = vec![
            doomed(Kind::ApimService, "apim"),
            doomed(Kind::Api, "llm"),
            doomed(Kind::Policy, "llm"),
            doomed(Kind::Account, "ai"),
            doomed(Kind::RoleAssignment, "ra"),
            doomed(Kind::ResourceGroup, "rg"),
            doomed(Kind::ClientServicePrincipal, "c"),
            doomed(Kind::ClientApp, "c"),
        ];
        let first: Vec<Kind> = ready(&all).iter().map(|d| d.address.kind).collect();
        assert_eq!(
            first,
            [
                Kind::Policy,
                Kind::RoleAssignment,
                Kind::ClientServicePrincipal
            ]
        );
    }

    #[test]
    fn tombstones_live_under_the_location() {
        let id =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim1";
        assert_eq!(
            tombstone_of(Kind::ApimService, id, &json!({"location": "West Europe"})).as_deref(),
            Some(
                "/subscriptions/s/providers/Microsoft.ApiManagement/locations/westeurope/deletedservices/apim1"
            )
        );
        let id =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai";
        assert_eq!(
            tombstone_of(Kind::Account, id, &json!({"location": "eastus"})).as_deref(),
            Some(
                "/subscriptions/s/providers/Microsoft.CognitiveServices/locations/eastus/resourceGroups/rg/deletedAccounts/ai"
            )
        );
        assert_eq!(tombstone_of(Kind::Api, id, &json!({})), None);
    }
}
