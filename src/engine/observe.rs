//! One GET per resource, concurrently, in waves: a resource whose identity comes from another's
//! outputs (a service principal is read by its app's `appId`) is read in the wave after.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::task::JoinSet;

use super::{EngineError, outputs_of};
use crate::access::Service;
use crate::azure::Azure;
use crate::azure::session::WireError;
use crate::resources::{Address, Kind, Managed, Outputs, Read};

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Every resource that could be read: `Some` if it exists, `None` if the GET said 404.
    /// Resources whose identity is not known yet (and so do not exist yet) are absent from the map.
    pub observed: BTreeMap<Address, Option<Value>>,
    /// Outputs of everything that exists.
    pub known: Outputs,
    /// How many GETs were sent.
    pub reads: usize,
    /// The version ARM gave each resource that has one (its `ETag`), for a saved plan to tell
    /// later whether the resource changed since.
    pub etags: BTreeMap<Address, String>,
}

impl Observation {
    pub fn observed(&self, address: &Address) -> Option<&Value> {
        self.observed.get(address).and_then(Option::as_ref)
    }

    /// Whether the resource was read at all (it may have been absent).
    pub fn was_read(&self, address: &Address) -> bool {
        self.observed.contains_key(address)
    }
}

/// Sends one read. ARM and Graph both answer 404 for "not there".
pub(crate) async fn read(azure: &Azure, read: &Read) -> Result<Option<Value>, WireError> {
    match read.service {
        Service::Arm => azure.arm.get(&read.path).await,
        Service::Graph => azure.graph.get(&read.path).await,
    }
}

/// One read with the resource's version where the service gives one: ARM's `ETag`. Graph
/// v1.0 gives none on applications and service principals (no `@odata.etag` on directory
/// objects), so those are fingerprinted by their content instead.
async fn read_versioned(
    azure: &Azure,
    read: &Read,
) -> Result<(Option<Value>, Option<String>), WireError> {
    match read.service {
        Service::Arm => Ok(match azure.arm.get_versioned(&read.path).await? {
            Some((body, etag)) => (Some(body), etag),
            None => (None, None),
        }),
        Service::Graph => Ok((azure.graph.get(&read.path).await?, None)),
    }
}

/// Reads every resource, then checks what would stop a plan: a resource that can not become
/// what is desired without deleting it, one that must exist and does not, or a name held by a
/// soft-deleted resource.
pub async fn observe(
    azure: &Azure,
    resources: &[Box<dyn Managed>],
) -> Result<Observation, EngineError> {
    let mut observation = read_all(azure, resources).await?;
    blockers(azure, resources, &mut observation).await?;
    Ok(observation)
}

/// Reads every resource whose identity is known, in waves; nothing judged.
pub(crate) async fn read_all(
    azure: &Azure,
    resources: &[Box<dyn Managed>],
) -> Result<Observation, EngineError> {
    let mut observation = Observation::default();
    loop {
        type Versioned = (Option<Value>, Option<String>);
        let mut wave: JoinSet<(Address, Result<Versioned, WireError>)> = JoinSet::new();
        for r in resources {
            let address = r.address();
            if observation.was_read(&address) {
                continue;
            }
            let Some(what) = r.read(&observation.known) else {
                continue;
            };
            let azure = azure.clone();
            wave.spawn(async move {
                let result = read_versioned(&azure, &what).await;
                (address, result)
            });
        }
        if wave.is_empty() {
            break;
        }
        while let Some(joined) = wave.join_next().await {
            let (address, result) = joined.expect("a read task does not panic");
            observation.reads += 1;
            let (value, etag) = result.map_err(|error| EngineError::Wire {
                address: address.clone(),
                error,
            })?;
            if let Some(etag) = etag {
                observation.etags.insert(address.clone(), etag);
            }
            observation.observed.insert(address, value);
        }
        let existing: Vec<(Address, Value)> = observation
            .observed
            .iter()
            .filter_map(|(a, v)| v.clone().map(|v| (a.clone(), v)))
            .collect();
        observation.known = outputs_of(resources, &existing);
    }
    Ok(observation)
}

async fn blockers(
    azure: &Azure,
    resources: &[Box<dyn Managed>],
    observation: &mut Observation,
) -> Result<(), EngineError> {
    for r in resources {
        let address = r.address();
        if let Some(observed) = observation.observed(&address) {
            if let Some((message, hint)) = r.conflict(observed) {
                return Err(EngineError::Blocked { message, hint });
            }
            continue;
        }
        if let Some((message, hint)) = r.absent_error() {
            return Err(EngineError::Blocked { message, hint });
        }
        let Some(tombstone) = r.tombstone() else {
            continue;
        };
        observation.reads += 1;
        let deleted = read(azure, &tombstone)
            .await
            .map_err(|error| EngineError::Wire {
                address: address.clone(),
                error,
            })?;
        if let Some(deleted) = deleted {
            return Err(soft_deleted(&address, &deleted));
        }
    }
    Ok(())
}

fn soft_deleted(address: &Address, deleted: &Value) -> EngineError {
    debug_assert_eq!(address.kind, Kind::Account);
    let (message, hint) = crate::resources::foundry::soft_deleted(&address.to_string(), deleted);
    EngineError::Blocked { message, hint }
}
