//! The model catalog of an environment's location, read once before anything is planned: which
//! versions exist, which is the default, which retire when (research/dataplane.md §4.4). `plan`
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

/// Reads the location's catalog; a location that answers nothing has an empty one.
pub async fn read_catalog(azure: &Azure, blueprint: &Blueprint) -> Result<Catalog, EngineError> {
    let path = location_models_path(blueprint);
    let body = azure
        .arm
        .get(&path)
        .await
        .map_err(|error| EngineError::Wire {
            address: Address::new(
                Kind::Account,
                format!("model catalog of {}", blueprint.location),
            ),
            error,
        })?;
    Ok(body.map(|b| Catalog::parse(&b)).unwrap_or_default())
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
    let catalog = read_catalog(&azure, blueprint).await?;
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
