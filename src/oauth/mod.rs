//! The client side of the boundary's sign-in: `provision` as the environment's registered public
//! client, the way a notebook signs in with MSAL.
//! - [`device`]: the OAuth 2.0 device authorization grant (RFC 8628) and the refresh-token grant
//!   against Entra's v2 endpoints, with Entra's refusals read into errors that say what to do.
//! - [`cache`]: the per-user token cache on disk (one file per environment and client, 0600).
//!
//! Tokens never reach `Debug`, `Display` or error text here; the cache file is the one place
//! they are written.

pub mod cache;
pub mod device;
