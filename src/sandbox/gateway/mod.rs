//! The APIM gateway's data plane: which API and operation a request reaches and which policy
//! runs for it.

#[expect(
    dead_code,
    reason = "pure building blocks; the sandbox's gateway router is their caller"
)]
pub(crate) mod routes;
