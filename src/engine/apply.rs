//! Applying a plan: resources as a dependency graph, each started as soon as everything it
//! depends on is done, at most `concurrency` at a time. A resource converges in steps (see
//! [`Managed::next_write`]); each write's answer is what the next step looks at, so no resource
//! is read twice unless it has to be.
//!
//! On the first failure nothing new starts, what is running finishes, and the error names the
//! resource; everything done so far stays done, and running `up` again picks up from there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::EngineError;
use super::observe::{Observation, read};
use crate::access::Service;
use crate::azure::Azure;
use crate::azure::graph::{REPLICATION_TIMEOUT, Upserted};
use crate::azure::session::{Probe, WireError};
use crate::resources::{
    Address, Change, Managed, Outputs, Verb, WriteRequest, has_unknown, unknowns,
};

/// Writes a resource may take to converge before the engine calls it a loop.
const MAX_WRITES: usize = 6;

/// Progress, for the printer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        address: Address,
    },
    /// A request is about to be sent (`PUT`, `upsert`…).
    Writing {
        address: Address,
        what: String,
    },
    Done {
        address: Address,
        writes: usize,
        elapsed: Duration,
    },
    Failed {
        address: Address,
        error: String,
    },
}

/// What `up` did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Outputs of every resource, for the summary.
    pub outputs: Outputs,
    /// Start and end of each resource, from the start of apply.
    pub timings: BTreeMap<Address, (Duration, Duration)>,
    /// Requests that changed something.
    pub writes: usize,
}

/// Applies what `observation` shows is missing or different.
pub async fn apply<F>(
    azure: &Azure,
    resources: Arc<Vec<Box<dyn Managed>>>,
    observation: &Observation,
    concurrency: usize,
    events: F,
) -> Result<Applied, EngineError>
where
    F: Fn(Event) + Send + Sync + 'static,
{
    let events = Arc::new(events);
    let start = Instant::now();
    let index: BTreeMap<Address, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.address(), i))
        .collect();
    let mut known = observation.known.clone();
    let mut done: BTreeSet<Address> = BTreeSet::new();
    // Resources that wrote in this run: what depends on them is read again, not taken from the
    // plan's snapshot (the API app and its pre-authorization are one Graph object).
    let mut wrote: BTreeSet<Address> = BTreeSet::new();
    let mut started: BTreeSet<Address> = BTreeSet::new();
    let mut applied = Applied::default();
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut failure: Option<EngineError> = None;
    loop {
        if failure.is_none() {
            for r in resources.iter() {
                let address = r.address();
                if running.len() >= concurrency.max(1) {
                    break;
                }
                if started.contains(&address)
                    || !r
                        .depends_on()
                        .iter()
                        // A dependency outside this inventory counts as done.
                        .all(|d| done.contains(d) || !index.contains_key(d))
                {
                    continue;
                }
                started.insert(address.clone());
                let began = start.elapsed();
                events(Event::Started {
                    address: address.clone(),
                });
                let stale = r.depends_on().iter().any(|d| wrote.contains(d));
                let initial = if stale {
                    None
                } else {
                    observation.observed.get(&address).cloned()
                };
                let change = observation
                    .observed(&address)
                    .map(|o| r.change(Some(o), &known));
                let azure = azure.clone();
                let resources = resources.clone();
                let i = index[&address];
                let known = known.clone();
                let events = events.clone();
                running.spawn(async move {
                    let result =
                        converge(&azure, &*resources[i], initial, change, known, &*events).await;
                    Finished {
                        address,
                        result,
                        began,
                    }
                });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Finished {
            address,
            result,
            began,
        } = joined.expect("a resource task does not panic");
        match result {
            Ok(Converged { observed, writes }) => {
                let r = &resources[index[&address]];
                known.merge(r.outputs(&observed));
                applied.writes += writes;
                if writes > 0 {
                    wrote.insert(address.clone());
                }
                let end = start.elapsed();
                applied.timings.insert(address.clone(), (began, end));
                events(Event::Done {
                    address: address.clone(),
                    writes,
                    elapsed: end - began,
                });
                done.insert(address);
            }
            Err(error) => {
                events(Event::Failed {
                    address: address.clone(),
                    error: error.to_string(),
                });
                failure.get_or_insert(error);
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    applied.outputs = known;
    Ok(applied)
}

/// A resource task's end.
struct Finished {
    address: Address,
    result: Result<Converged, EngineError>,
    /// When it started, from the start of apply.
    began: Duration,
}

/// How a resource ended, and how many writes that took.
struct Converged {
    observed: Value,
    writes: usize,
}

/// Brings one resource to its desired state.
async fn converge(
    azure: &Azure,
    r: &dyn Managed,
    initial: Option<Option<Value>>,
    change: Option<Change>,
    known: Outputs,
    events: &(dyn Fn(Event) + Send + Sync),
) -> Result<Converged, EngineError> {
    let address = r.address();
    let wire = |error: WireError| EngineError::Wire {
        address: address.clone(),
        error,
    };
    // Not read during observation (its identity was unknown then), or read before something it
    // depends on wrote (the caller passes `None` then): read it now. What the plan read, present
    // or absent, is not read again.
    let mut observed = match initial {
        Some(seen) => seen,
        None => match r.read(&known) {
            Some(what) => read(azure, &what).await.map_err(wire)?,
            None => None,
        },
    };
    // Still being created or updated (by an earlier, interrupted run, or by someone else):
    // wait for Azure to finish before judging it.
    if observed.as_ref().is_some_and(transitional)
        && let Some(what) = r.read(&known)
    {
        events(Event::Writing {
            address: address.clone(),
            what: "waiting for a running operation".to_owned(),
        });
        observed = settled(azure, &what).await.map_err(wire)?;
    }
    let mut writes = 0;
    // Graph objects are not deleted to be replaced: their `next_write` takes the steps.
    if let (Some(Change::Replace { reason }), Some(_)) = (&change, &observed)
        && let Some(what) = r.read(&known).filter(|w| w.service == Service::Arm)
    {
        events(Event::Writing {
            address: address.clone(),
            what: format!("delete to replace ({reason})"),
        });
        // Only ARM resources are ever replaced (Graph objects are patched in place).
        send(azure, &WriteRequest::arm_delete(what.path), None)
            .await
            .map_err(wire)?;
        writes += 1;
        observed = None;
    }
    while let Some(call) = r.next_write(observed.as_ref(), &known) {
        if writes >= MAX_WRITES {
            return Err(EngineError::NotConverging { address, writes });
        }
        if call.body.as_ref().is_some_and(has_unknown) {
            return Err(unknown_after_dependencies(&address, &r.desired(&known)));
        }
        events(Event::Writing {
            address: address.clone(),
            what: describe(&call),
        });
        observed = match send(azure, &call, observed).await {
            Ok(now) => now,
            // The resource says this refusal means its purpose is already served (a role
            // granted under another assignment name).
            Err(e) if r.satisfied_by_error().is_some_and(|code| e.has_code(code)) => {
                events(Event::Writing {
                    address: address.clone(),
                    what: format!("already in place ({})", e.api().map_or("", |a| a.code())),
                });
                return Ok(Converged {
                    observed: r.desired(&known),
                    writes,
                });
            }
            Err(e) => return Err(wire(e)),
        };
        writes += 1;
    }
    // Nothing left to write, yet the desired state still waits for a value: an output that
    // never came (a service that left out `principalId`), or a policy that does not render.
    let mut known = known;
    if let Some(now) = &observed {
        known.merge(r.outputs(now));
    }
    let desired = r.desired(&known);
    if has_unknown(&desired) {
        return Err(unknown_after_dependencies(&address, &desired));
    }
    Ok(Converged {
        observed: observed.unwrap_or(Value::Null),
        writes,
    })
}

fn unknown_after_dependencies(address: &Address, desired: &Value) -> EngineError {
    EngineError::Blocked {
        message: format!(
            "{address}: still not known after everything it depends on was applied: {}",
            unknowns(desired).join(", ")
        ),
        hint: "this is a bug in provision or an answer Azure left a field out of; run with -v \
               and report the output"
            .to_owned(),
    }
}

fn describe(call: &WriteRequest) -> String {
    match call.verb {
        Verb::ArmPut => "ARM PUT",
        Verb::ArmPatch => "ARM PATCH",
        Verb::ArmDelete => "ARM DELETE",
        Verb::GraphUpsert => "Graph upsert",
        Verb::GraphPatch => "Graph PATCH",
    }
    .to_owned()
}

/// Sends one write and returns the resource as it now is.
async fn send(
    azure: &Azure,
    call: &WriteRequest,
    observed: Option<Value>,
) -> Result<Option<Value>, WireError> {
    let body = call.body.clone().unwrap_or(Value::Null);
    match call.verb {
        Verb::ArmPut => azure.arm.put(&call.path, &body).await.map(Some),
        Verb::ArmPatch => azure.arm.patch(&call.path, &body).await.map(Some),
        Verb::ArmDelete => azure.arm.delete(&call.path).await.map(|_| None),
        Verb::GraphUpsert => match azure.graph.upsert(&call.path, &body).await? {
            Upserted::Created(value) => Ok(Some(value)),
            Upserted::Updated => match observed {
                Some(before) => Ok(Some(merged(before, &body))),
                // It existed though our read missed it (a replica behind): read it once a
                // replica has it.
                None => readable(azure, &call.path).await.map(Some),
            },
        },
        Verb::GraphPatch => {
            azure.graph.patch(&call.path, &body).await?;
            Ok(Some(merged(observed.unwrap_or(Value::Null), &body)))
        }
    }
}

/// Whether ARM is still working on the resource (`provisioningState` other than `Succeeded`,
/// `Failed` or `Canceled`).
fn transitional(observed: &Value) -> bool {
    observed
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .is_some_and(|state| {
            !["succeeded", "failed", "canceled"].contains(&state.to_ascii_lowercase().as_str())
        })
}

/// Reads the resource until it is no longer transitional (or gone).
async fn settled(azure: &Azure, what: &crate::resources::Read) -> Result<Option<Value>, WireError> {
    azure
        .session
        .until(
            &format!("{} to finish its running operation", what.path),
            azure.session.deadline().remaining(),
            || async {
                Ok(match read(azure, what).await? {
                    Some(value) if transitional(&value) => {
                        let state = value
                            .pointer("/properties/provisioningState")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        Probe::NotYet(format!("provisioningState {state}"))
                    }
                    other => Probe::Ready(other),
                })
            },
        )
        .await
}

/// Graph's PATCH sets each top-level property it is given.
fn merged(mut before: Value, patch: &Value) -> Value {
    if let (Some(target), Some(fields)) = (before.as_object_mut(), patch.as_object()) {
        for (k, v) in fields {
            target.insert(k.clone(), v.clone());
        }
        before
    } else {
        patch.clone()
    }
}

async fn readable(azure: &Azure, path: &str) -> Result<Value, WireError> {
    let condition = format!("{path} to be readable in Microsoft Graph");
    azure
        .graph
        .readable(path, &condition, REPLICATION_TIMEOUT)
        .await
}
