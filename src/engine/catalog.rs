//! The model catalog of an environment's location, read once before anything is planned: which
//! versions exist, which is the default, which retire when (docs/reference/dataplane.md §4.4). `plan`
//! and `up` judge each deployment by it, so a retired version stops `up` before its first write
//! instead of failing at the deployment after API Management took its 30-45 minutes.

use std::time::Duration;

use crate::azure::Azure;
use crate::azure::credential::CredentialPlan;
use crate::azure::retry::Deadline;
use crate::config::Blueprint;
use crate::resources::models::{Catalog, Quota, parse_usages};
use crate::resources::{Address, Kind};

use super::EngineError;

/// `GET /subscriptions/{s}/providers/Microsoft.CognitiveServices/locations/{l}/models`.
pub fn location_models_path(blueprint: &Blueprint) -> String {
    format!(
        "/subscriptions/{}/providers/Microsoft.CognitiveServices/locations/{}/models",
        blueprint.subscription_id, blueprint.location
    )
}

/// Reads the location's catalog; a location that answers nothing has an empty one. The Models
/// API is read at the subscription; an identity with rights on the resource group only is refused
/// there (403), and reads the account's own list instead once the account exists. `None`: no
/// catalog could be read, and the deployments are planned without it (with a warning).
pub async fn read_catalog(
    azure: &Azure,
    blueprint: &Blueprint,
) -> Result<Option<Catalog>, EngineError> {
    let wire = |error| EngineError::Wire {
        address: Address::new(
            Kind::Account,
            format!("model catalog of {}", blueprint.location),
        ),
        error,
    };
    let refused = |e: &crate::azure::session::WireError| e.status() == Some(403);
    match azure.arm.get(&location_models_path(blueprint)).await {
        Ok(body) => return Ok(Some(body.map(|b| Catalog::parse(&b)).unwrap_or_default())),
        Err(e) if refused(&e) => {}
        Err(e) => return Err(wire(e)),
    }
    let account = format!(
        "{}/models",
        crate::resources::foundry::account_id(blueprint)
    );
    match azure.arm.get(&account).await {
        Ok(Some(body)) => Ok(Some(Catalog::parse(&body))),
        Ok(None) => Ok(None),
        Err(e) if refused(&e) => Ok(None),
        Err(e) => Err(wire(e)),
    }
}

/// What an environment's location offers, and the quota left where the usages API answers.
pub struct Offer {
    pub catalog: Catalog,
    /// `None` when the usages could not be read (no permission): the catalog still shows.
    pub quota: Option<Quota>,
}

/// Signs in and reads the location's catalog and usages (`provision models`).
pub async fn offer(
    blueprint: &Blueprint,
    credential: &CredentialPlan,
    timeout: Duration,
) -> anyhow::Result<Offer> {
    let deadline = Deadline::after(timeout, format!("environment {}", blueprint.env));
    let azure = super::sign_in(blueprint, credential, deadline)?;
    let catalog = read_catalog(&azure, blueprint).await?.ok_or_else(|| {
        crate::hint::Hinted::error(
            format!(
                "the model catalog of {} could not be read: Azure refused it (403)",
                blueprint.location
            ),
            "the identity needs Microsoft.CognitiveServices/locations/models/read on the \
             subscription (e.g. Reader), or read access to an existing Foundry account",
        )
    })?;
    let usages = format!(
        "/subscriptions/{}/providers/Microsoft.CognitiveServices/locations/{}/usages",
        blueprint.subscription_id, blueprint.location
    );
    let quota = match azure.arm.get(&usages).await {
        Ok(body) => body.map(|b| parse_usages(&b)),
        Err(e) => {
            tracing::warn!(error = %e, "the usages of the location could not be read: no quota shown");
            None
        }
    };
    Ok(Offer { catalog, quota })
}
