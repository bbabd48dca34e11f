//! Who may call an account's inference endpoint, decided as Azure OpenAI decides it. The
//! answers, with their sources (dataplane.md §2.2-§2.6, §2.12, §2.13):
//!
//! - `api-key` on an account with `disableLocalAuth: true` → 403 `AuthenticationTypeDisabled`
//!   (403 in most captures; one reports 401; the issue text says 401: the captures win).
//! - `api-key` that is neither of the account's keys, or no credential at all → 401 with code
//!   `"401"` and the "invalid subscription key" message (azure-sdk-for-js recordings).
//! - A bearer token that is not the sandbox's, expired on the sandbox's clock, not yet valid or
//!   for another audience → 401 with the APIM-shaped `{"statusCode", "message"}` body.
//! - A valid token of another tenant than the account's → 400 "Tenant provided in token does
//!   not match resource token" (three independent captures).
//! - A principal (`oid`) with no role granting the chat completions data action at the account,
//!   its resource group or its subscription → 401 `PermissionDenied` naming the principal, the
//!   action and the templated route (the path shows `{deployment-id}`, as captured).
//!
//! A role assignment grants nothing until the sandbox's replication lag has passed since it was
//! made (Azure: up to 10 minutes, RBAC troubleshooting), on the sandbox's clock.
//!
//! Groups: "If you assign a role to a group, all members of that group get the role" (Azure RBAC
//! overview, "Role assignments"; `principalType: Group`). Azure resolves membership in the
//! directory; the sandbox's directory has no groups, so the token's `groups` claim (the object
//! ids Entra puts there when the app asks for group claims) stands for it: an assignment to any
//! of those ids grants as one to the caller's own `oid` does. The denial still names the `oid`.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::reply::{Refusal, azure_error};
use crate::sandbox::Shared;
use crate::sandbox::arm::account_keys;
use crate::sandbox::auth::{AuthError, COGNITIVE_AUDIENCES, Caller, verify_bearer};
use crate::sandbox::state::State;
use crate::sandbox::state::arm::Resource;

/// The data action chat completions need.
pub(crate) const CHAT_ACTION: &str =
    "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action";

/// Built-in roles whose data actions include [`CHAT_ACTION`] (dataplane.md §2.12): OpenAI User
/// lists it, OpenAI Contributor grants `accounts/OpenAI/*`, Cognitive Services User grants
/// `Microsoft.CognitiveServices/*`.
const CHAT_ROLES: [&str; 3] = [
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "a001fd3d-188f-4b5d-821b-7da978bf7442",
    "a97b65f3-24c7-4388-baec-2e87135dc908",
];

const ROLE_ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/roleAssignments";

const INVALID_KEY: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

const INVALID_TOKEN: &str = "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.";

/// What a request presents, read before the state is locked: verifying a token reads the
/// tenants' keys, which takes the state's lock itself.
pub(crate) enum Credentials {
    Key(String),
    Token(Result<Caller, AuthError>),
    Nothing,
}

impl Credentials {
    /// An `api-key` header wins over `Authorization`, as it is checked first on Azure.
    pub fn read(shared: &Shared, headers: &HeaderMap) -> Credentials {
        if let Some(key) = headers.get("api-key") {
            return Credentials::Key(key.to_str().unwrap_or_default().to_owned());
        }
        if headers.get("authorization").is_none() {
            return Credentials::Nothing;
        }
        Credentials::Token(verify_bearer(shared, headers, &COGNITIVE_AUDIENCES))
    }
}

/// Lets the request through, or says why not. `route` is the templated path the
/// `PermissionDenied` message names.
pub(crate) fn admit(
    shared: &Shared,
    state: &State,
    credentials: Credentials,
    account: &Resource,
    route: &str,
) -> Result<(), Refusal> {
    let verified = match credentials {
        Credentials::Key(given) => return check_key(account, &given),
        Credentials::Nothing => return Err(azure_error(401, "401", INVALID_KEY)),
        Credentials::Token(verified) => verified,
    };
    let caller = verified
        .map_err(|_| Refusal::json(401, json!({ "statusCode": 401, "message": INVALID_TOKEN })))?;
    if !caller
        .tenant
        .eq_ignore_ascii_case(&state.operator.tenant_id)
    {
        return Err(azure_error(
            400,
            "Tenant provided in token does not match resource token",
            &format!(
                "Token tenant {} does not match resource tenant.",
                caller.tenant
            ),
        ));
    }
    let principal = caller.object_id.unwrap_or_default();
    let granted = std::iter::once(&principal)
        .chain(&caller.groups)
        .filter(|id| !id.is_empty())
        .any(|id| may_chat(shared, state, &account.id, id));
    if granted {
        return Ok(());
    }
    Err(azure_error(
        401,
        "PermissionDenied",
        &format!(
            "The principal {principal} lacks the required data action {CHAT_ACTION} to perform POST {route} operation."
        ),
    ))
}

/// A key is refused outright when local auth is off, else compared with the account's two.
fn check_key(account: &Resource, given: &str) -> Result<(), Refusal> {
    let local_auth_off = account
        .properties()
        .and_then(|p| p.get("disableLocalAuth"))
        .and_then(Value::as_bool)
        == Some(true);
    if local_auth_off {
        return Err(azure_error(
            403,
            "AuthenticationTypeDisabled",
            "Key based authentication is disabled for this resource.",
        ));
    }
    if !given.is_empty() && account_keys(account).iter().any(|k| k == given) {
        return Ok(());
    }
    Err(azure_error(401, "401", INVALID_KEY))
}

/// Whether a replicated assignment of a chat role to `principal` (a user, a service principal
/// or a group) covers the account.
fn may_chat(shared: &Shared, state: &State, account_id: &str, principal: &str) -> bool {
    let account = account_id.to_ascii_lowercase();
    state.arm.resources.values().any(|r| {
        let field = |k: &str| r.property_str(k).unwrap_or_default();
        let scope = field("scope").to_ascii_lowercase();
        r.body.get("type").and_then(Value::as_str) == Some(ROLE_ASSIGNMENT_TYPE)
            && field("principalId").eq_ignore_ascii_case(principal)
            && !scope.is_empty()
            && (account == scope || account.starts_with(&format!("{scope}/")))
            && CHAT_ROLES.iter().any(|role| {
                field("roleDefinitionId")
                    .rsplit('/')
                    .next()
                    .is_some_and(|g| g.eq_ignore_ascii_case(role))
            })
            && !shared.replicating(r.created_ms)
    })
}
