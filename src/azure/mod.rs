//! The wire layer: everything that talks to Azure Resource Manager and Microsoft Graph.
//!
//! The pure core builds requests as data and parses responses from data; this layer sends them and
//! absorbs what the network and Azure do to them on the way:
//! - [`transport`]: one exchange, and whether a failure may have reached the server.
//! - [`retry`]: which failures to retry, how long to wait (the server's word, else jittered
//!   backoff), and the per-command [`retry::Deadline`].
//! - [`lro`]: ARM long-running operations, as a state machine with a small driver.
//! - [`error`]: ARM and Graph errors, printed with every detail and a hint.
//! - [`credential`]: which credential a run uses, and the per-scope token cache.
//!
//! Tokens and secrets never reach `Debug`, `Display` or error text in any of these modules.

pub mod arm;
pub mod credential;
pub mod error;
pub mod federated;
pub mod graph;
pub mod lro;
pub mod retry;
pub mod session;
pub mod sign_in;
pub mod transport;

use std::sync::Arc;

use crate::cloud::{Cloud, CloudEndpoints};
use arm::ArmClient;
use credential::CredentialPlan;
use graph::GraphClient;
use retry::Deadline;
use session::{Session, WireError};
use sign_in::Credentials;
use transport::Transport;

/// Everything one command needs to talk to Azure: both clients over one session (one credential,
/// one token cache, one deadline).
#[derive(Clone)]
pub struct Azure {
    pub arm: ArmClient,
    pub graph: GraphClient,
    pub session: Arc<Session>,
}

impl Azure {
    /// Clients for `cloud` at `endpoints`, signing in as `plan` says when the first request
    /// needs a token, and giving up at `deadline`.
    pub fn connect(
        cloud: Cloud,
        endpoints: &CloudEndpoints,
        plan: &CredentialPlan,
        transport: Arc<dyn Transport>,
        deadline: Deadline,
    ) -> Result<Azure, WireError> {
        let credentials = Credentials::from_plan(plan, cloud, endpoints, transport.clone())?;
        Ok(Azure::with_session(
            Session::new(transport, Arc::new(credentials), deadline),
            endpoints,
        ))
    }

    /// Clients over a session the caller built (tests tune its retry and consistency policies).
    pub fn with_session(session: Session, endpoints: &CloudEndpoints) -> Azure {
        let session = Arc::new(session);
        Azure {
            arm: ArmClient::new(session.clone(), endpoints),
            graph: GraphClient::new(session.clone(), endpoints),
            session,
        }
    }
}
