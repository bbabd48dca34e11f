//! `GET …/service/{name}/policyDescriptions[?scope=Tenant|Product|Api|Operation|All]`: the
//! policies a service offers, which recorded SDK sessions read before writing a policy
//! (ApiManagementListPolicyDescriptions.json, APIM 2024-05-01). The sandbox lists the policies its
//! gateway enforces, the ones `provision`'s templates use.
//!
//! `properties.scope` is APIM's bit mask of where a policy may be used; every description here
//! carries the mask the official example gives its inbound authentication policies
//! (268435471: every scope), a simplification, so the `scope` query filters nothing out once it
//! is a known value.

use axum::http::Method;
use serde_json::{Value, json};

use super::super::{ArmError, Call, Reply};

const ALL_SCOPES: u64 = 268_435_471;
const SCOPES: [&str; 5] = ["Tenant", "Product", "Api", "Operation", "All"];

/// The policies the sandbox's gateway enforces, with what each does.
const POLICIES: [(&str, &str); 11] = [
    (
        "authentication-managed-identity",
        "Authenticate with the backend service using the service's managed identity.",
    ),
    (
        "check-header",
        "Enforce the existence and value of an HTTP header; refuse the call otherwise.",
    ),
    (
        "cors",
        "Add cross-origin resource sharing (CORS) support to an operation or an API.",
    ),
    (
        "llm-token-limit",
        "Limit the large language model tokens a key consumes per minute or per period.",
    ),
    (
        "rate-limit-by-key",
        "Limit the call rate per key to a specified number per time period.",
    ),
    (
        "return-response",
        "Abort the pipeline and return the specified response directly to the caller.",
    ),
    (
        "set-backend-service",
        "Change the backend service base URL of an incoming request.",
    ),
    (
        "set-header",
        "Assign a value to an existing request or response header, or add a new one.",
    ),
    (
        "set-variable",
        "Persist a value in a named context variable for later access.",
    ),
    (
        "validate-azure-ad-token",
        "Enforce the existence and validity of a Microsoft Entra ID token extracted from a header, query parameter or token value.",
    ),
    (
        "validate-jwt",
        "Enforce the existence and validity of a JWT extracted from a header, query parameter or token value.",
    ),
];

pub(super) fn list(call: &Call<'_>, service_id: &str) -> Result<Reply, ArmError> {
    if call.request.method != Method::GET {
        return Err(ArmError::method_not_allowed(&call.request.method));
    }
    if let Some(scope) = call.request.query("scope")
        && !SCOPES.iter().any(|s| s.eq_ignore_ascii_case(scope))
    {
        return Err(ArmError::bad_request(
            "ValidationError",
            format!(
                "Invalid scope '{scope}'. Supported values are {}.",
                SCOPES.join(", ")
            ),
        ));
    }
    let value: Vec<Value> = POLICIES
        .iter()
        .map(|(name, description)| {
            json!({
                "id": format!("{service_id}/policyDescriptions/{name}"),
                "type": "Microsoft.ApiManagement/service/policyDescriptions",
                "name": name,
                "properties": { "description": description, "scope": ALL_SCOPES },
            })
        })
        .collect();
    Ok(Reply::ok(json!({ "count": value.len(), "value": value })))
}
