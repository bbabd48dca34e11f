//! What `up` reports once it is done: how a client calls what was built, and which chain of
//! dependencies decided how long applying took.

use crate::config::Blueprint;
use crate::resources::apim::{ApimService, GATEWAY_URL};
use crate::resources::entra::{APP_ID, ApiApp, ClientApp};
use crate::resources::{Address, Managed, Outputs};

use super::Applied;

/// What a script or notebook needs to sign in and call the model through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub gateway_url: String,
    pub api_url: String,
    pub api_app_id: String,
    /// What a client asks for when signing in, `api://<api app id>/<scope>`.
    pub scope: String,
    /// Each client app's unique name and app id.
    pub clients: Vec<(String, String)>,
}

/// Read from the outputs of an apply (or of the observation, when nothing changed). A value not
/// known is empty rather than an error: the report still says what is known.
pub fn endpoint(blueprint: &Blueprint, known: &Outputs) -> Endpoint {
    let gateway_url = known
        .get(&ApimService::address_of(blueprint), GATEWAY_URL)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let api_app_id = known
        .get(&ApiApp::address_of(blueprint), APP_ID)
        .unwrap_or_default()
        .to_owned();
    let clients = blueprint
        .entra
        .clients
        .iter()
        .map(|c| {
            let id = known
                .get(&ClientApp::address_of(c), APP_ID)
                .unwrap_or_default();
            (c.unique_name.clone(), id.to_owned())
        })
        .collect();
    Endpoint {
        api_url: format!("{gateway_url}/{}", blueprint.api.path),
        scope: format!("api://{api_app_id}/{}", blueprint.entra.api.scope),
        gateway_url,
        api_app_id,
        clients,
    }
}

/// From the resource that ended last, back through the dependency that ended last each time.
pub fn critical_path(resources: &[Box<dyn Managed>], applied: &Applied) -> Vec<Address> {
    let end = |a: &Address| applied.timings.get(a).map(|t| t.1);
    let mut path = Vec::new();
    let mut current = applied
        .timings
        .iter()
        .max_by_key(|(_, (_, end))| *end)
        .map(|(a, _)| a.clone());
    while let Some(address) = current {
        let deps = resources
            .iter()
            .find(|r| r.address() == address)
            .map(|r| r.depends_on())
            .unwrap_or_default();
        current = deps
            .into_iter()
            .filter(|d| end(d).is_some())
            .max_by_key(|d| end(d));
        path.push(address);
    }
    path.reverse();
    path
}
