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

pub mod credential;
pub mod error;
pub mod lro;
pub mod retry;
pub mod transport;
