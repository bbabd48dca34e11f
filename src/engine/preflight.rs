//! Reads what the preflight checks judge (resources/preflight.rs), concurrently: provider
//! registrations, the caller's permissions, the location's usages, the name checks and the
//! soft-deleted names. `doctor` reads what exists itself; `up` passes what its observation
//! found, so a second `up` adds four reads and no POST (the name checks are for names not ours).

use std::time::Duration;

use serde_json::{Value, json};

use crate::azure::Azure;
use crate::azure::credential::CredentialPlan;
use crate::azure::retry::{Deadline, Replay};
use crate::azure::session::WireError;
use crate::clock::Timestamp;
use crate::config::Blueprint;
use crate::resources::models::{Catalog, parse_usages};
use crate::resources::preflight::{self as judge, Check, Held, Outcome};
use crate::resources::{Kind, apim, foundry};

use super::{Identity, Observation};

/// What of the environment exists already: its names are then ours, not taken.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub group: bool,
    pub account: bool,
    pub service: bool,
    pub held: Held,
}

fn capacity(deployment: &Value) -> u64 {
    deployment
        .pointer("/sku/capacity")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

impl Existing {
    /// From what `up` observed.
    pub fn observed(observation: &Observation) -> Existing {
        let mut existing = Existing::default();
        for (address, value) in &observation.observed {
            let Some(value) = value else { continue };
            match address.kind {
                Kind::ResourceGroup => existing.group = true,
                Kind::Account => existing.account = true,
                Kind::ApimService => existing.service = true,
                Kind::Deployment => {
                    existing.held.insert(address.name.clone(), capacity(value));
                }
                _ => {}
            }
        }
        existing
    }

    /// `doctor`'s own reads of the group, the account (with its deployments) and the service.
    async fn read(azure: &Azure, blueprint: &Blueprint) -> Result<Existing, WireError> {
        let account = foundry::account_id(blueprint);
        let (group_id, service_id) = (foundry::group_id(blueprint), apim::service_id(blueprint));
        let (group, found, service) = tokio::join!(
            azure.arm.get(&group_id),
            azure.arm.get(&account),
            azure.arm.get(&service_id),
        );
        let mut existing = Existing {
            group: group?.is_some(),
            account: found?.is_some(),
            service: service?.is_some(),
            held: Held::new(),
        };
        if existing.account {
            for d in azure.arm.list(&format!("{account}/deployments")).await? {
                if let Some(name) = d.get("name").and_then(Value::as_str) {
                    existing.held.insert(name.to_owned(), capacity(&d));
                }
            }
        }
        Ok(existing)
    }
}

fn unreadable(check: &'static str, what: &str, e: &WireError) -> Check {
    // A least-privilege identity (a pipeline's, with roles on the resource group only) may not
    // make the subscription-wide reads and name checks: that leaves the check undecided, not
    // failed, and `up` goes on to find out by doing.
    if e.status() == Some(403) {
        return Check::warn(
            check,
            format!("{what} could not be checked: the identity may not read it (403)"),
            "run `provision doctor` as an identity with Reader on the subscription (and, for the \
             name checks, the providers' checkNameAvailability actions) to check it",
        );
    }
    Check::fail(
        check,
        format!("{what} could not be read: {e}"),
        "run `provision doctor -v` to see the request; the identity may need Reader on the subscription",
    )
}

/// The checks that read ARM, in a stable order.
pub async fn preflight(
    azure: &Azure,
    blueprint: &Blueprint,
    catalog: Option<&Catalog>,
    existing: &Existing,
    now: Timestamp,
) -> Vec<Check> {
    let subscription = format!("/subscriptions/{}", blueprint.subscription_id);
    let scope = if existing.group {
        foundry::group_id(blueprint)
    } else {
        subscription.clone()
    };
    let permissions_path = format!("{scope}/providers/Microsoft.Authorization/permissions");
    let usages = format!(
        "{subscription}/providers/Microsoft.CognitiveServices/locations/{}/usages",
        blueprint.location
    );
    let name = blueprint.apim.service.name();
    // API Management's soft-deleted services: a sandbox without the route answers 404, read as
    // none, as Azure answers for a name nobody deleted.
    let apim_deleted = format!(
        "{subscription}/providers/Microsoft.ApiManagement/locations/{}/deletedservices/{name}",
        blueprint.location
    );
    // A service the environment only uses (`mode: existing`) is someone's by design.
    let service_named = existing.service
        || matches!(
            blueprint.apim.service,
            crate::config::ApimService::Existing { .. }
        );
    let apim_provider = judge::provider_path(blueprint, judge::PROVIDERS[0]);
    let cog_provider = judge::provider_path(blueprint, judge::PROVIDERS[1]);
    let (
        apim_provider,
        cog_provider,
        permissions,
        usages,
        domain,
        apim_free,
        cog_deleted,
        apim_gone,
    ) = tokio::join!(
        azure.arm.get(&apim_provider),
        azure.arm.get(&cog_provider),
        // Paged like every ARM list (`nextLink`), though one page is the rule.
        azure.arm.list(&permissions_path),
        azure.arm.get(&usages),
        async {
            if existing.account {
                return Ok(None);
            }
            let body = json!({"subdomainName": blueprint.foundry.account, "type": "Microsoft.CognitiveServices/accounts"});
            let path = format!(
                "{subscription}/providers/Microsoft.CognitiveServices/checkDomainAvailability"
            );
            azure
                .arm
                .post(&path, Some(&body), Replay::Safe)
                .await
                .map(Some)
        },
        async {
            if service_named {
                return Ok(None);
            }
            let path =
                format!("{subscription}/providers/Microsoft.ApiManagement/checkNameAvailability");
            azure
                .arm
                .post(&path, Some(&json!({"name": name})), Replay::Safe)
                .await
                .map(Some)
        },
        async {
            if existing.account {
                Ok(None)
            } else {
                azure.arm.get(&foundry::deleted_account_id(blueprint)).await
            }
        },
        async {
            if service_named {
                Ok(None)
            } else {
                azure.arm.get(&apim_deleted).await
            }
        },
    );
    let mut checks = Vec::new();
    for (ns, read) in judge::PROVIDERS.iter().zip([apim_provider, cog_provider]) {
        checks.push(match read {
            Ok(body) => judge::provider(blueprint, ns, body.as_ref()),
            Err(e) => unreadable("provider", &format!("the registration of {ns}"), &e),
        });
    }
    checks.push(match permissions {
        Ok(items) => judge::permissions(&scope, &json!({ "value": items })),
        Err(e) => unreadable("permissions", &format!("the permissions at {scope}"), &e),
    });
    let quota = usages.ok().flatten().map(|b| parse_usages(&b));
    match catalog {
        Some(catalog) => checks.extend(judge::models(
            blueprint,
            catalog,
            quota.as_ref(),
            &existing.held,
            now,
        )),
        None => checks.push(Check::warn(
            "model",
            format!(
                "the model catalog of {} could not be read (403): models and quota are not checked",
                blueprint.location
            ),
            "grant the identity Reader on the subscription",
        )),
    }
    checks.push(match (domain, cog_deleted) {
        (Err(e), _) | (_, Err(e)) => {
            unreadable("foundry-name", "the Foundry name's availability", &e)
        }
        (Ok(domain), Ok(deleted)) => {
            let taken = unavailable(domain.as_ref(), "isSubdomainAvailable");
            let ours = existing.account
                || (taken && created_since(azure, &foundry::account_id(blueprint)).await);
            judge::foundry_name(blueprint, ours, deleted.as_ref(), domain.as_ref())
        }
    });
    checks.push(match (apim_free, apim_gone) {
        (Err(e), _) | (_, Err(e)) => {
            unreadable("apim-name", "the API Management name's availability", &e)
        }
        (Ok(free), Ok(gone)) => {
            let taken = unavailable(free.as_ref(), "nameAvailable");
            let ours = existing.service
                || (taken && created_since(azure, &apim::service_id(blueprint)).await);
            judge::apim_name(blueprint, ours, gone.as_ref(), free.as_ref())
        }
    });
    checks
}

/// Whether a name-availability answer says the name is taken.
fn unavailable(answer: Option<&Value>, field: &str) -> bool {
    answer.and_then(|a| a.get(field)).and_then(Value::as_bool) == Some(false)
}

/// A name found taken may have been taken by this environment itself since `up` looked (another
/// run of `up` for the same environment, started at the same moment): the resource at this
/// environment's own id is then ours, not someone else's.
async fn created_since(azure: &Azure, id: &str) -> bool {
    matches!(azure.arm.get(id).await, Ok(Some(_)))
}

/// The first failing check, as the error `up` stops with.
pub fn first_failure(checks: &[Check]) -> Option<anyhow::Error> {
    let failed = checks.iter().find(|c| c.outcome == Outcome::Fail)?;
    let hint = format!(
        "{}; `provision doctor` shows every check (`up --skip-preflight` skips them)",
        failed.hint.as_deref().unwrap_or("see `provision doctor`")
    );
    Some(crate::hint::Hinted::error(
        format!("preflight: {}", failed.message),
        hint,
    ))
}

/// `provision doctor`: who is signed in, then every check.
pub async fn doctor(
    blueprint: &Blueprint,
    credential: &CredentialPlan,
    timeout: Duration,
) -> anyhow::Result<(Identity, Vec<Check>)> {
    let deadline = Deadline::after(timeout, format!("environment {}", blueprint.env));
    let azure = super::sign_in(blueprint, credential, deadline)?;
    let identity = super::whoami::identify(&azure, blueprint).await?;
    let mut checks = vec![identity_check(blueprint, &identity)];
    let catalog = super::read_catalog(&azure, blueprint).await?;
    let existing = Existing::read(&azure, blueprint).await?;
    let now = super::connect::clock_for(blueprint).await?.now();
    checks.extend(preflight(&azure, blueprint, catalog.as_ref(), &existing, now).await);
    // What the identity may do in the directory is in its Graph token: `roles` for an app,
    // `scp` for a user.
    let scope = blueprint
        .cloud
        .endpoints(&blueprint.sandbox_address)
        .graph_scope();
    let token = azure.session.credentials().token(&scope).await?;
    let claims = crate::policy::token::Jwt::parse(token.expose()).ok();
    let roles: Vec<String> = claims
        .as_ref()
        .and_then(|c| c.claims.get("roles"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let scopes = claims.as_ref().and_then(|c| c.claim_str("scp"));
    checks.push(judge::graph(&blueprint.env, &roles, scopes));
    Ok((identity, checks))
}

fn identity_check(blueprint: &Blueprint, identity: &Identity) -> Check {
    let tenant = identity.tenant_id.clone().unwrap_or_else(|| "-".to_owned());
    let message = format!(
        "signed in with {} as {} in tenant {tenant}; subscription {} ({}, {})",
        identity.credential,
        identity.object_id.as_deref().unwrap_or("-"),
        identity.subscription_name,
        blueprint.subscription_id,
        identity.subscription_state
    );
    if !tenant.eq_ignore_ascii_case(blueprint.tenant_id.as_str()) {
        return Check::fail(
            "identity",
            message,
            format!(
                "{} names tenant {}: sign in to that tenant",
                blueprint.file, blueprint.tenant_id
            ),
        );
    }
    if identity.subscription_state != "Enabled" {
        return Check::fail(
            "identity",
            message,
            "the subscription must be Enabled for `up` to create anything",
        );
    }
    Check::pass("identity", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(tenant: &str, state: &str) -> Identity {
        Identity {
            credential: "sandbox client credentials".to_owned(),
            tenant_id: Some(tenant.to_owned()),
            object_id: Some("o".to_owned()),
            app_id: None,
            subscription_name: "Sandbox".to_owned(),
            subscription_state: state.to_owned(),
        }
    }

    #[test]
    fn the_identity_fails_in_another_tenant_or_a_disabled_subscription() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let crate::config::Environment::Target(b) =
            crate::config::load(&root.join("environments"), "local").unwrap()
        else {
            unreachable!("local is a target")
        };
        let tenant = b.tenant_id.as_str().to_owned();
        assert_eq!(
            identity_check(&b, &identity(&tenant, "Enabled")).outcome,
            Outcome::Pass
        );
        let other = identity_check(
            &b,
            &identity("f0f0f0f0-0000-4000-8000-00000000f0f0", "Enabled"),
        );
        assert_eq!(other.outcome, Outcome::Fail);
        assert_eq!(
            other.hint.as_deref(),
            Some(format!("{} names tenant {tenant}: sign in to that tenant", b.file).as_str())
        );
        let disabled = identity_check(&b, &identity(&tenant, "Disabled"));
        assert_eq!(
            (disabled.outcome, disabled.hint.as_deref()),
            (
                Outcome::Fail,
                Some("the subscription must be Enabled for `up` to create anything")
            )
        );
    }
}
