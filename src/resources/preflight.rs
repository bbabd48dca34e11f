//! Preflight: the checks `provision doctor` runs, and `up` runs first, so that what fails on
//! Azure only after API Management took its 30-45 minutes fails in seconds instead. Each check
//! is judged here from what was read (pure); the engine does the reading.
//!
//! Sources: the Providers API and `az provider register` (learn.microsoft.com/azure/
//! azure-resource-manager/management/resource-providers-and-types), the Permissions API
//! (`Permissions_ListForResourceGroup`, azure-rest-api-specs Microsoft.Authorization 2022-04-01;
//! wildcards as in learn.microsoft.com/azure/role-based-access-control/role-definitions#actions),
//! the name checks (`Accounts_CheckDomainAvailability`, `ApiManagementService_CheckNameAvailability`,
//! examples copied to tests/fixtures/azure-rest-api-specs/), models and quota (dataplane.md §4.4-4.5).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::models::{Catalog, Quota, judge};
use crate::config::{ApimService, Blueprint};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

/// One check and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A stable name: `identity`, `provider`, `permissions`, `graph`, `model`, `quota`,
    /// `foundry-name`, `apim-name`.
    pub check: &'static str,
    pub outcome: Outcome,
    pub message: String,
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(check: &'static str, message: impl Into<String>) -> Check {
        Check {
            check,
            outcome: Outcome::Pass,
            message: message.into(),
            hint: None,
        }
    }

    pub fn fail(check: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            check,
            outcome: Outcome::Fail,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn warn(check: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Warn,
            ..Check::fail(check, message, hint)
        }
    }
}

/// The resource providers `up` creates resources of.
pub const PROVIDERS: [&str; 2] = ["Microsoft.ApiManagement", "Microsoft.CognitiveServices"];

pub fn provider_path(blueprint: &Blueprint, namespace: &str) -> String {
    format!(
        "/subscriptions/{}/providers/{namespace}",
        blueprint.subscription_id
    )
}

/// `GET /subscriptions/{s}/providers/{namespace}`: registered or not.
pub fn provider(blueprint: &Blueprint, namespace: &str, body: Option<&Value>) -> Check {
    let state = body
        .and_then(|b| b.get("registrationState"))
        .and_then(Value::as_str)
        .unwrap_or("NotRegistered");
    let subscription = &blueprint.subscription_id;
    if state == "Registered" {
        return Check::pass(
            "provider",
            format!("{namespace} is registered in subscription {subscription}"),
        );
    }
    let hint = if state == "Registering" {
        // Creates are refused until the registration completes, so `up` would fail now too.
        format!(
            "the registration is under way (a minute or two): wait for it with `az provider \
             register --namespace {namespace} --subscription {subscription} --wait`, then run \
             doctor again"
        )
    } else {
        format!(
            "register it (once per subscription, takes a minute or two): `az provider register \
             --namespace {namespace} --subscription {subscription} --wait`"
        )
    };
    Check::fail(
        "provider",
        format!("resource provider {namespace} is {state} in subscription {subscription}"),
        hint,
    )
}

/// What `up` writes, as ARM actions: the permissions API is asked for these.
pub const ACTIONS: [&str; 8] = [
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.CognitiveServices/accounts/write",
    "Microsoft.CognitiveServices/accounts/deployments/write",
    "Microsoft.ApiManagement/service/write",
    "Microsoft.ApiManagement/service/apis/write",
    "Microsoft.ApiManagement/service/namedValues/write",
    "Microsoft.ApiManagement/service/backends/write",
    "Microsoft.Authorization/roleAssignments/write",
];

/// `true` when an action pattern (`*`, `*/read`, `Microsoft.Authorization/*/Write`) covers
/// `action`; ARM compares actions ignoring case, and `*` stands for any run of characters.
pub fn covers(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = a.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    rest.is_empty()
}

/// Whether one permission entry (`{actions, notActions}`) allows `action`.
fn allows(entry: &Value, action: &str) -> bool {
    let list = |k: &str| -> Vec<&str> {
        entry
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    list("actions").iter().any(|p| covers(p, action))
        && !list("notActions").iter().any(|p| covers(p, action))
}

/// What the identity's Graph token says it may do with app registrations, which `up` creates and
/// updates. Entra lists an app's application permissions in `roles` and a user's delegated ones
/// in `scp` (learn.microsoft.com/entra/identity-platform/access-token-claims-reference); for a
/// user, the directory role then decides, which no token tells without a write.
pub fn graph(env: &str, roles: &[String], scopes: Option<&str>) -> Check {
    const USER_WRITES: [&str; 3] = [
        "Application.ReadWrite.All",
        "Directory.AccessAsUser.All",
        "Directory.ReadWrite.All",
    ];
    if let Some(scopes) = scopes {
        let writing: Vec<&str> = scopes
            .split_whitespace()
            .filter(|s| USER_WRITES.iter().any(|w| s.eq_ignore_ascii_case(w)))
            .collect();
        if writing.is_empty() {
            return Check::fail(
                "graph",
                format!(
                    "the signed-in user's Graph token has no scope that writes app registrations \
                     (it has: {scopes})"
                ),
                "sign in with the Azure CLI (`az login`: its Graph token carries \
                 Directory.AccessAsUser.All), or consent Application.ReadWrite.All for the app you \
                 sign in through",
            );
        }
        return Check::pass(
            "graph",
            format!(
                "the signed-in user may write app registrations through Graph ({}); the user's \
                 directory role decides which",
                writing.join(", ")
            ),
        );
    }
    let has = |r: &str| roles.iter().any(|x| x.eq_ignore_ascii_case(r));
    if has("Application.ReadWrite.All") {
        return Check::pass(
            "graph",
            "the identity may create and change every app registration (Graph \
             Application.ReadWrite.All)",
        );
    }
    if has("Application.ReadWrite.OwnedBy") {
        return Check::pass(
            "graph",
            "the identity may create app registrations and change those it owns (Graph \
             Application.ReadWrite.OwnedBy)",
        );
    }
    let bootstrap = format!(
        "run `up` as a deployment identity: `provision bootstrap github --env {env} --repo \
         OWNER/REPO --environment NAME` makes one, with Graph's Application.ReadWrite.OwnedBy"
    );
    if has("Application.Read.All") {
        return Check::fail(
            "graph",
            "the identity may read app registrations but not write them (Graph \
             Application.Read.All only): it can plan, not apply",
            bootstrap,
        );
    }
    Check::fail(
        "graph",
        "the identity holds no Graph application permission on app registrations (its token has \
         no `roles`)",
        format!(
            "grant it Microsoft Graph's Application.ReadWrite.OwnedBy with admin consent, or {bootstrap}"
        ),
    )
}

/// The answer of `GET {scope}/providers/Microsoft.Authorization/permissions`: every action `up`
/// needs must be allowed by one of the entries (ARM grants the union of the roles).
pub fn permissions(scope: &str, body: &Value) -> Check {
    let entries: Vec<&Value> = body
        .get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let missing: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|a| !entries.iter().any(|e| allows(e, a)))
        .collect();
    if missing.is_empty() {
        return Check::pass(
            "permissions",
            format!(
                "the identity may do all {} writes `up` needs at {scope}",
                ACTIONS.len()
            ),
        );
    }
    let grant = if missing
        .iter()
        .all(|a| a.starts_with("Microsoft.Authorization/"))
    {
        "Role Based Access Control Administrator (or Owner)"
    } else {
        "Owner, or Contributor and Role Based Access Control Administrator,"
    };
    Check::fail(
        "permissions",
        format!(
            "the identity may not {} at {scope}: `up` would fail there after creating what comes \
             before",
            missing.join(", ")
        ),
        format!(
            "ask for {grant} on {scope}: `az role assignment create --assignee <object id> \
             --role \"<role>\" --scope {scope}`"
        ),
    )
}

/// Capacity a deployment of the environment already holds, by deployment name: it counts
/// against the quota already and is not asked again.
pub type Held = BTreeMap<String, u64>;

/// The model, version and SKU of each deployment, and the quota for its capacity.
pub fn models(
    blueprint: &Blueprint,
    catalog: &Catalog,
    quota: Option<&Quota>,
    held: &Held,
    now: Timestamp,
) -> Vec<Check> {
    let facts = judge(blueprint, catalog, now);
    let mut checks = Vec::new();
    for d in &blueprint.foundry.deployments {
        let Some(f) = facts.get(&d.name) else {
            continue;
        };
        let name = &d.model.name;
        let version = f.version.clone().unwrap_or_default();
        // A deployment that exists may run another version than the file names (Azure upgrades
        // it); the plan judges it by what it runs, so this check is for new ones.
        if held.contains_key(&d.name) {
            checks.push(Check::pass(
                "model",
                format!(
                    "deployment {} exists; `plan` judges its model version",
                    d.name
                ),
            ));
        } else if let Some((message, hint)) = &f.error {
            checks.push(Check::fail(
                "model",
                format!("deployment {}: {message}", d.name),
                hint,
            ));
            continue;
        } else {
            checks.push(Check::pass(
                "model",
                format!(
                    "deployment {}: model {name} version {version} is offered as {} in {}",
                    d.name, d.sku.name, blueprint.location
                ),
            ));
        }
        let usage = catalog
            .find(&d.model.format, name, &version)
            .and_then(|m| {
                m.skus
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&d.sku.name))
            })
            .and_then(|s| s.usage_name.clone())
            .unwrap_or_else(|| format!("{}.{}.{name}", d.model.format, d.sku.name));
        let Some(&(current, limit)) = quota.and_then(|q| q.get(&usage)) else {
            checks.push(Check::warn(
                "quota",
                format!("deployment {}: no quota for {usage} could be read", d.name),
                "the identity needs Microsoft.CognitiveServices/locations/usages/read on the \
                 subscription (e.g. Reader) for this check",
            ));
            continue;
        };
        let free = limit.saturating_sub(current);
        let asked =
            u64::from(d.sku.capacity).saturating_sub(held.get(&d.name).copied().unwrap_or(0));
        let numbers = format!(
            "quota {usage} in {}: limit {limit}, {current} in use, {free} free; {asked} asked",
            blueprint.location
        );
        if asked <= free {
            checks.push(Check::pass(
                "quota",
                format!("deployment {}: {numbers}", d.name),
            ));
        } else {
            checks.push(Check::fail(
                "quota",
                format!("deployment {}: {numbers}", d.name),
                format!(
                    "lower `sku.capacity` to {} or less, free capacity held by other deployments, \
                     or request more quota (https://aka.ms/oai/quotaincrease)",
                    free + held.get(&d.name).copied().unwrap_or(0)
                ),
            ));
        }
    }
    checks
}

/// The Foundry account's name, which is also its custom subdomain (`{name}.openai.azure.com`),
/// unique across Azure. `ours`: the environment's account exists already.
/// `deleted`: a soft-deleted account of the name, as `deletedAccounts` answers it.
/// `availability`: the answer of `checkDomainAvailability`.
pub fn foundry_name(
    blueprint: &Blueprint,
    ours: bool,
    deleted: Option<&Value>,
    availability: Option<&Value>,
) -> Check {
    let name = &blueprint.foundry.account;
    if ours {
        return Check::pass(
            "foundry-name",
            format!("subdomain {name} is this environment's Foundry account already"),
        );
    }
    if let Some(deleted) = deleted {
        let (message, hint) = super::foundry::soft_deleted(name, deleted);
        return Check::fail("foundry-name", message, hint);
    }
    let available = availability
        .and_then(|a| a.get("isSubdomainAvailable"))
        .and_then(Value::as_bool);
    match available {
        Some(false) => {
            let reason = availability
                .and_then(|a| a.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            Check::fail(
                "foundry-name",
                format!("the Foundry custom subdomain {name} is taken: {reason}"),
                "set `foundry.account` to another name: it is the subdomain \
                 <name>.openai.azure.com, unique across all of Azure",
            )
        }
        _ => Check::pass("foundry-name", format!("subdomain {name} is available")),
    }
}

/// The API Management service name (`{name}.azure-api.net`, unique across Azure). A service the
/// environment only uses (`mode: existing`) must exist, which the plan checks.
pub fn apim_name(
    blueprint: &Blueprint,
    ours: bool,
    deleted: Option<&Value>,
    availability: Option<&Value>,
) -> Check {
    let name = blueprint.apim.service.name();
    if ours || matches!(blueprint.apim.service, ApimService::Existing { .. }) {
        return Check::pass(
            "apim-name",
            format!("API Management service {name} is this environment's already"),
        );
    }
    let location = &blueprint.location;
    if deleted.is_some() {
        return Check::fail(
            "apim-name",
            format!(
                "API Management service {name} is soft-deleted: Azure keeps its name for 48 \
                 hours, and creating it again fails"
            ),
            format!(
                "purge it (`az apim deletedservice purge --service-name {name} --location \
                 {location}`), or restore it by creating it with `restore: true`"
            ),
        );
    }
    match availability
        .and_then(|a| a.get("nameAvailable"))
        .and_then(Value::as_bool)
    {
        Some(false) => {
            let message = availability
                .and_then(|a| a.get("message"))
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or("no reason given");
            Check::fail(
                "apim-name",
                format!("the API Management service name {name} is taken: {message}"),
                "set `apim.create.name` to another name: it is the host <name>.azure-api.net, \
                 unique across all of Azure",
            )
        }
        _ => Check::pass(
            "apim-name",
            format!("API Management name {name} is available"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn graph_rights_are_read_from_the_tokens_roles_or_scopes() {
        let owned = vec!["Application.ReadWrite.OwnedBy".to_owned()];
        assert_eq!(graph("dev", &owned, None).outcome, Outcome::Pass);
        let none = graph("dev", &[], None);
        assert_eq!(
            (none.outcome, none.message.as_str()),
            (
                Outcome::Fail,
                "the identity holds no Graph application permission on app registrations (its \
                 token has no `roles`)"
            )
        );
        assert!(none.hint.unwrap().starts_with(
            "grant it Microsoft Graph's Application.ReadWrite.OwnedBy with admin consent, or run"
        ));
        // A user: the delegated scopes, as the Azure CLI's Graph token carries them.
        let cli = graph(
            "dev",
            &[],
            Some("AuditLog.Read.All Directory.AccessAsUser.All email"),
        );
        assert_eq!(
            (cli.outcome, cli.message.as_str()),
            (
                Outcome::Pass,
                "the signed-in user may write app registrations through Graph \
                 (Directory.AccessAsUser.All); the user's directory role decides which"
            )
        );
        let reader = graph("dev", &[], Some("User.Read"));
        assert_eq!(reader.outcome, Outcome::Fail);
        assert_eq!(
            reader.message,
            "the signed-in user's Graph token has no scope that writes app registrations (it has: \
             User.Read)"
        );
    }

    fn local() -> Blueprint {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        match crate::config::load(&root.join("environments"), "local").unwrap() {
            crate::config::Environment::Target(b) => *b,
            crate::config::Environment::Abstract { .. } => unreachable!("local is a target"),
        }
    }

    /// The local environment's model (capacity 10), offered in its location.
    fn offered() -> Catalog {
        Catalog::parse(&json!({"value": [{"model": {
            "format": "OpenAI", "name": "gpt-5.6-luna", "version": "2026-07-09",
            "isDefaultVersion": true, "lifecycleStatus": "GenerallyAvailable",
            "skus": [{"name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-5.6-luna"}]
        }}]}))
    }

    fn now() -> Timestamp {
        "2026-12-03T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn quota_counts_what_an_existing_deployment_holds_and_warns_when_unread() {
        let b = local();
        let quota: Quota = [("OpenAI.GlobalStandard.gpt-5.6-luna".to_owned(), (995, 1000))]
            .into_iter()
            .collect();
        let outcomes = |held: &Held, quota: Option<&Quota>| -> Vec<(Outcome, String)> {
            models(&b, &offered(), quota, held, now())
                .into_iter()
                .map(|c| (c.outcome, c.message))
                .collect()
        };
        // 5 free, 10 asked: fails.
        let fresh = outcomes(&Held::new(), Some(&quota));
        assert_eq!(fresh[1].0, Outcome::Fail);
        assert_eq!(
            fresh[1].1,
            "deployment gpt-5.6-luna: quota OpenAI.GlobalStandard.gpt-5.6-luna in swedencentral: \
             limit 1000, 995 in use, 5 free; 10 asked"
        );
        // The deployment exists with 8 of those 995: 2 more asked, which fit.
        let held: Held = [("gpt-5.6-luna".to_owned(), 8)].into_iter().collect();
        let existing = outcomes(&held, Some(&quota));
        assert_eq!(
            existing,
            [
                (
                    Outcome::Pass,
                    "deployment gpt-5.6-luna exists; `plan` judges its model version".to_owned()
                ),
                (
                    Outcome::Pass,
                    "deployment gpt-5.6-luna: quota OpenAI.GlobalStandard.gpt-5.6-luna in \
                     swedencentral: limit 1000, 995 in use, 5 free; 2 asked"
                        .to_owned()
                ),
            ]
        );
        // No usages read: a warning, not a failure.
        let unread = outcomes(&Held::new(), None);
        assert_eq!(unread[1].0, Outcome::Warn);
        assert_eq!(
            unread[1].1,
            "deployment gpt-5.6-luna: no quota for OpenAI.GlobalStandard.gpt-5.6-luna could be read"
        );
    }

    #[test]
    fn wildcards_cover_actions_ignoring_case() {
        assert!(covers("*", "Microsoft.Authorization/roleAssignments/write"));
        assert!(covers(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(covers("*/read", "Microsoft.Foo/bars/read"));
        assert!(!covers("*/read", "Microsoft.Foo/bars/write"));
        assert!(!covers("Microsoft.Foo/*", "Microsoft.Bar/x/write"));
        assert!(covers(
            "Microsoft.Foo/bars/write",
            "microsoft.foo/BARS/write"
        ));
    }

    #[test]
    fn contributor_may_not_write_role_assignments_and_owner_may() {
        let contributor = json!({"value": [{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]}]});
        let check = permissions("/s", &contributor);
        assert_eq!(check.outcome, Outcome::Fail);
        assert!(check.message.starts_with(
            "the identity may not Microsoft.Authorization/roleAssignments/write at /s"
        ));
        let both = json!({"value": [
            {"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]},
            {"actions": ["Microsoft.Authorization/roleAssignments/write"], "notActions": []}
        ]});
        assert_eq!(permissions("/s", &both).outcome, Outcome::Pass);
        assert_eq!(
            permissions("/s", &json!({"value": []})).outcome,
            Outcome::Fail
        );
    }
}
