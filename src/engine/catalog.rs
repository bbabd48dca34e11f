//! The model catalog of an environment's location, read once before anything is planned: which
//! versions exist, which is the default, which retire when (research/dataplane.md §4.4). `plan`
//! and `up` judge each deployment by it, so a retired version stops `up` before its first write
//! instead of failing at the deployment after API Management took its 30-45 minutes.

use crate::azure::Azure;
use crate::config::Blueprint;
use crate::resources::models::Catalog;
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
