//! The provisioning engine: observe every resource (one GET each, concurrently), plan the change
//! each needs, and apply the plan as a dependency graph with outputs flowing into dependents.
//! No state file: what exists is read from Azure and Entra every time.

mod apply;
mod bootstrap;
pub mod call;
mod catalog;
mod connect;
mod live;
mod observe;
mod orphans;
mod preflight;
mod report;
pub mod saved;
pub mod signin;
mod teardown;
pub mod verify;
mod whoami;

pub use apply::{Applied, Event, apply};
pub use bootstrap::{Bootstrapped, bootstrap};
pub use catalog::{Offer, location_models_path, offer, read_catalog};
pub use connect::{Checked, Connected, check, clock_for, connect, credential_plan, sign_in};
pub use live::{LivePolicy, live_policy};
pub use observe::{Observation, observe};
pub use orphans::orphans;
pub use preflight::{Existing, doctor, first_failure, preflight};
pub use report::{Endpoint, critical_path, endpoint};
pub use teardown::{Scope, Survey, TornDown, expired, survey, survey_marks, teardown};
pub use whoami::{Identity, whoami};

use std::borrow::Cow;

use serde_json::Value;

use crate::azure::session::WireError;
use crate::hint::Remedy;
use crate::resources::{Address, Change, Finding, Managed, Outputs};

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{address}: {error}")]
    Wire {
        address: Address,
        #[source]
        error: WireError,
    },
    /// A resource that must exist does not, or a name is held by something we may not touch.
    #[error("{message}")]
    Blocked { message: String, hint: String },
    /// A resource did not converge within a bounded number of writes (a service that ignores
    /// what it is sent).
    #[error("{address}: still differs from the desired state after {writes} writes")]
    NotConverging { address: Address, writes: usize },
    /// Purging a soft-deleted copy was refused (403): the purge APIs live at the subscription
    /// (ARM) or the directory (Graph), beyond a least-privilege pipeline identity's reach.
    #[error("{address}: the purge of its soft-deleted copy was refused: {error}")]
    PurgeRefused {
        address: Address,
        #[source]
        error: WireError,
    },
}

impl Remedy for EngineError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        match self {
            EngineError::Wire { error, .. } | EngineError::PurgeRefused { error, .. } => {
                error.hint()
            }
            EngineError::Blocked { hint, .. } => Some(hint.into()),
            EngineError::NotConverging { .. } => Some(
                "run `provision plan` to see the remaining difference; it may be a field Azure \
                 normalises"
                    .into(),
            ),
        }
    }
}

/// `apply` stopped part-way. What finished stays, and whether running `up` again helps depends
/// on why it stopped: a request Azure refused as wrong fails the same way when sent again;
/// anything else (a timeout, throttling, a failed operation) may well pass on the next run.
#[derive(Debug, thiserror::Error)]
#[error("{0}\n  what finished stays; nothing else was started")]
pub struct Stopped(pub EngineError);

impl Stopped {
    fn again_fails(&self) -> bool {
        match &self.0 {
            EngineError::Wire { error, .. } => error
                .status()
                .is_some_and(|s| (400..500).contains(&s) && s != 409 && s != 429),
            EngineError::Blocked { .. } | EngineError::PurgeRefused { .. } => true,
            EngineError::NotConverging { .. } => false,
        }
    }
}

impl Remedy for Stopped {
    fn hint(&self) -> Option<Cow<'_, str>> {
        let own = self.0.hint();
        if self.again_fails() {
            return own;
        }
        let again = "run `provision up` again: it continues from what exists";
        Some(match own {
            Some(hint) => format!("{hint}; {again}").into(),
            None => again.into(),
        })
    }
}

/// One resource in a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub address: Address,
    pub change: Change,
    /// The desired state, shown for a resource to be created.
    pub desired: Value,
    pub findings: Vec<Finding>,
}

/// What `up` would do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub resources: Vec<Planned>,
    /// What the resources marked `Delete` are, for `up` to remove after the rest.
    pub orphans: Vec<crate::resources::ownership::Doomed>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.resources {
            match r.change {
                Change::Create => s.create += 1,
                Change::Update(_) => s.update += 1,
                Change::Replace { .. } => s.replace += 1,
                Change::Delete { .. } => s.delete += 1,
                Change::NoOp => s.unchanged += 1,
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.resources.iter().any(|r| r.change != Change::NoOp)
    }

    pub fn findings(&self) -> impl Iterator<Item = (&Address, &Finding)> {
        self.resources
            .iter()
            .flat_map(|r| r.findings.iter().map(move |f| (&r.address, f)))
    }
}

/// The plan for what was observed: pure.
pub fn plan(resources: &[Box<dyn Managed>], observation: &Observation) -> Plan {
    let resources = resources
        .iter()
        .map(|r| {
            let address = r.address();
            let observed = observation.observed(&address);
            Planned {
                change: r.change(observed, &observation.known),
                desired: r.desired(&observation.known),
                findings: observed
                    .map(|o| r.findings(o, &observation.known))
                    .unwrap_or_else(|| r.findings_when_absent()),
                address,
            }
        })
        .collect();
    Plan {
        resources,
        orphans: Vec::new(),
    }
}

/// Adds the orphans to a plan, each a `delete` saying why.
pub fn with_orphans(
    mut plan: Plan,
    orphans: Vec<crate::resources::ownership::Doomed>,
    file: &str,
) -> Plan {
    for o in &orphans {
        plan.resources.push(Planned {
            address: o.address.clone(),
            change: Change::Delete {
                reason: format!("ours, and no longer in {file}"),
            },
            desired: Value::Null,
            findings: Vec::new(),
        });
    }
    plan.orphans = orphans;
    plan
}

/// Outputs of everything observed, so dependents plan with real ids where they exist.
pub(crate) fn outputs_of(resources: &[Box<dyn Managed>], observed: &[(Address, Value)]) -> Outputs {
    let mut known = Outputs::default();
    for (address, value) in observed {
        if let Some(r) = resources.iter().find(|r| &r.address() == address) {
            known.merge(r.outputs(value));
        }
    }
    known
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    #[test]
    fn a_blocked_apply_is_not_advised_to_run_up_again() {
        let stopped = Stopped(EngineError::Blocked {
            message: "the name is taken".to_owned(),
            hint: "pick another name".to_owned(),
        });
        assert_eq!(
            stopped.to_string(),
            "the name is taken\n  what finished stays; nothing else was started"
        );
        assert_eq!(stopped.hint().as_deref(), Some("pick another name"));
    }

    #[test]
    fn an_apply_that_may_pass_next_time_is_advised_to_run_up_again() {
        let stopped = Stopped(EngineError::NotConverging {
            address: Address::new(Kind::Api, "llm"),
            writes: 6,
        });
        assert_eq!(
            stopped.hint().as_deref(),
            Some(
                "run `provision plan` to see the remaining difference; it may be a field Azure \
                 normalises; run `provision up` again: it continues from what exists"
            )
        );
    }
}
