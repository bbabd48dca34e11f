//! Microsoft.CognitiveServices (Foundry / Azure OpenAI): accounts with their endpoints, keys and
//! managed identity, model deployments, and soft delete with restore and purge
//! (foundry-arm.md §1).
//!
//! Soft-deleted accounts live in [`ArmState::deleted_accounts`](super::ArmState::deleted_accounts)
//! and keep blocking their name and custom subdomain until purged: that is the trap automation
//! falls into on Azure, so the sandbox springs it too. Facts looked up beyond the reference, and
//! choices where Azure's answer is not recorded anywhere we could find, are noted where they are
//! used.

mod accounts;
mod catalog;
mod deleted;
mod deployments;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::resources::normalize_location;
use super::{ArmError, Call, OperationKind, OperationSpec, Reply, capture, group_id, only};
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::{Operation, Pending, PendingAction, Resource};
pub(crate) use accounts::account_keys;
use accounts::{
    check_domain_availability, delete_account, list_accounts, list_keys, live_account,
    patch_account, put_account, regenerate_key,
};
pub(crate) use catalog::{retired_deployment, upgrade_due};
use deleted::{deleted_id, get_deleted, list_deleted, purge};
pub(super) use deleted::{purge_due, soft_deleted};
use deployments::{delete_deployment, get_deployment, list_deployments, put_deployment};

const PROVIDER: &str = "Microsoft.CognitiveServices";
const ACCOUNT_TYPE: &str = "Microsoft.CognitiveServices/accounts";
const DEPLOYMENT_TYPE: &str = "Microsoft.CognitiveServices/accounts/deployments";
const DELETED_TYPE: &str = "Microsoft.CognitiveServices/deletedAccounts";
const ACCOUNTS: &str =
    "subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts";
const SUBSCRIPTION_LEVEL: &str = "subscriptions/{}/providers/Microsoft.CognitiveServices";
/// The RP's operation URLs carry this api-version whatever the request used (foundry-arm.md §1.4).
const OPERATION_API_VERSION: &str = "2017-04-18";
/// Where the sandbox keeps what a GET never shows (the account keys).
const PRIVATE: &str = "_sandbox";

pub(super) fn handle(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let segments = call.request.segments.clone();
    let method = call.request.method.clone();
    let under_accounts = |suffix: &str| capture(&segments, &format!("{ACCOUNTS}{suffix}"));
    if let Some(c) = under_accounts("/{}") {
        let path = AccountPath::new(&c);
        return match method {
            Method::PUT => put_account(call, &path),
            Method::PATCH => patch_account(call, &path),
            Method::GET => live_account(call, &path).map(|a| Reply::ok(view(&a)).etag(&a.etag)),
            Method::DELETE => delete_account(call, &path),
            other => Err(ArmError::method_not_allowed(&other)),
        };
    }
    if let Some(c) = under_accounts("/{}/deployments/{}") {
        let path = AccountPath::new(&c);
        return match method {
            Method::PUT => put_deployment(call, &path, c[3]),
            Method::GET => get_deployment(call, &path, c[3]),
            Method::DELETE => delete_deployment(call, &path, c[3]),
            other => Err(ArmError::method_not_allowed(&other)),
        };
    }
    if let Some(c) = under_accounts("/{}/deployments") {
        return only(&method, Method::GET)
            .and_then(|()| list_deployments(call, &AccountPath::new(&c)));
    }
    if let Some(c) = under_accounts("/{}/models") {
        return only(&method, Method::GET)
            .and_then(|()| catalog::list_account_models(call, &AccountPath::new(&c)));
    }
    if let Some(c) = under_accounts("/{}/listKeys") {
        return only(&method, Method::POST).and_then(|()| list_keys(call, &AccountPath::new(&c)));
    }
    if let Some(c) = under_accounts("/{}/regenerateKey") {
        return only(&method, Method::POST)
            .and_then(|()| regenerate_key(call, &AccountPath::new(&c)));
    }
    if let Some(c) = under_accounts("") {
        let prefix = format!("{}/providers/{ACCOUNT_TYPE}/", group_id(c[0], c[1]));
        return only(&method, Method::GET).map(|()| list_accounts(call, &prefix));
    }
    let at_subscription =
        |suffix: &str| capture(&segments, &format!("{SUBSCRIPTION_LEVEL}{suffix}"));
    if at_subscription("/checkDomainAvailability").is_some() {
        return only(&method, Method::POST).and_then(|()| check_domain_availability(call));
    }
    if let Some(c) = at_subscription("/accounts") {
        let prefix = format!("/subscriptions/{}/", c[0]);
        return only(&method, Method::GET).map(|()| list_accounts(call, &prefix));
    }
    if at_subscription("/locations/{}/models").is_some() {
        return only(&method, Method::GET).map(|()| catalog::list_location_models(call));
    }
    if let Some(c) = at_subscription("/locations/{}/usages") {
        return only(&method, Method::GET).map(|()| catalog::list_usages(call, c[0]));
    }
    if let Some(c) = at_subscription("/deletedAccounts") {
        return only(&method, Method::GET).map(|()| list_deleted(call, c[0]));
    }
    if let Some(c) = at_subscription("/locations/{}/resourceGroups/{}/deletedAccounts/{}") {
        let id = deleted_id(c[0], &normalize_location(c[1]), c[2], c[3]);
        return match method {
            Method::GET => get_deleted(call, &id, c[2], c[3]),
            Method::DELETE => purge(call, &id, c[0], c[1]),
            other => Err(ArmError::method_not_allowed(&other)),
        };
    }
    // ARM answers a type its provider does not have with 404 `InvalidResourceType` (its
    // words, as clients quote them); a 400 would read as a bad request, not as "no such route".
    Err(ArmError::new(
        axum::http::StatusCode::NOT_FOUND,
        "InvalidResourceType",
        format!("The resource type could not be found in the namespace '{PROVIDER}'."),
    ))
}

/// The JSON a GET of this resource returns: the stored body without the sandbox's private part.
pub(super) fn view(resource: &Resource) -> Value {
    let mut body = resource.body.clone();
    body.remove(PRIVATE);
    Value::Object(body)
}

// ---------------------------------------------------------------------------------------------
// Paths, names, errors

struct AccountPath {
    subscription: String,
    group: String,
    name: String,
}

impl AccountPath {
    fn new(captured: &[&str]) -> AccountPath {
        AccountPath {
            subscription: captured[0].to_owned(),
            group: captured[1].to_owned(),
            name: captured[2].to_owned(),
        }
    }

    fn id(&self) -> String {
        format!(
            "{}/providers/{ACCOUNT_TYPE}/{}",
            group_id(&self.subscription, &self.group),
            self.name
        )
    }
}

/// The operation resource of the RP: under the account's location, with the location spelled as
/// the request did (recordings show `CENTRALUSEUAP`); spaces dropped so the URL stays valid.
fn status_path(subscription: &str, location: &str, operation: &str) -> String {
    let location: String = location.chars().filter(|c| !c.is_whitespace()).collect();
    format!(
        "/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/operationResults/{operation}"
    )
}

/// Account and deployment names: 2-64 characters, `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (BT25).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (2..=64).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Azure's wording for a bad name is not recorded; the code is ARM's generic one.
fn check_name(name: &str, what: &str) -> Result<(), ArmError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceName",
        format!(
            "The {what} name '{name}' is invalid. It must be 2 to 64 characters long, start with a letter or digit, and contain only letters, digits, '_', '.' and '-'."
        ),
    ))
}

fn invalid_content(message: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidRequestContent",
        format!("The request content was invalid: {message}"),
    )
}

/// ARM's answer to a write on a resource whose last write is still running. The message is the
/// one public reports quote (e.g. Azure/bicep-types-az#2419); the code is our choice.
fn not_terminal(id: &str) -> ArmError {
    ArmError::conflict(
        "RequestConflict",
        format!(
            "Cannot modify resource with id '{id}' because the resource entity provisioning state is not terminal. Please wait for the provisioning state to become terminal and then retry the request."
        ),
    )
}

fn now_text(call: &Call<'_>) -> String {
    format_utc_millis(call.now_ms)
}

fn quoted(etag: &str) -> Value {
    json!(format!("\"{etag}\""))
}

/// Account keys and internal ids: 32 hex digits, as Azure's look.
fn hex_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn system_data(call: &Call<'_>, previous: Option<&Map<String, Value>>) -> Value {
    let who = call.state.operator.object_id.clone();
    let now = now_text(call);
    let created = previous
        .and_then(|p| p.get("systemData"))
        .and_then(Value::as_object);
    let kept = |key: &str, default: &str| {
        created
            .and_then(|c| c.get(key))
            .cloned()
            .unwrap_or_else(|| json!(default))
    };
    json!({
        "createdBy": kept("createdBy", &who),
        "createdByType": kept("createdByType", "Application"),
        "createdAt": kept("createdAt", &now),
        "lastModifiedBy": who,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

/// The URL of the operation resource, with the RP's own api-version.
fn operation_url(call: &Call<'_>, operation: &Operation) -> String {
    call.url(&format!(
        "{}?api-version={OPERATION_API_VERSION}",
        operation.status_path
    ))
}

/// 202 for a delete or purge: both URLs of the operation and a poll hint (foundry-arm.md §1.6).
fn accepted(call: &Call<'_>, operation: &Operation) -> Reply {
    let status = operation_url(call, operation);
    Reply::empty(StatusCode::ACCEPTED)
        .header(
            "location",
            format!("{status}&operationResultResponseType=Location"),
        )
        .header("azure-asyncoperation", status)
        .poll_hint(operation.until_ms, call.now_ms)
}

/// The header a PUT's long-running answer carries.
fn with_operation(call: &Call<'_>, reply: Reply, operation: &Operation) -> Reply {
    let status = operation_url(call, operation);
    reply
        .header("azure-asyncoperation", status)
        .poll_hint(operation.until_ms, call.now_ms)
}

/// Starts the async delete (or purge) of `resource_id`: an operation under the account's
/// location that answers `Deleting` while it runs. See [`mark_deleting`].
fn start_delete(
    call: &mut Call<'_>,
    resource_id: &str,
    kind: OperationKind,
    subscription: &str,
    location: &str,
) -> Operation {
    call.start_operation(
        OperationSpec {
            resource_id,
            running_status: "Deleting",
            kind,
            final_status: 200,
            final_body: false,
            location_only: false,
        },
        |op| status_path(subscription, location, op),
    )
}

/// Shows the stored resource (live or soft-deleted) `Deleting` until `operation` ends.
fn mark_deleting(stored: Option<&mut Resource>, operation: &Operation) {
    if let Some(stored) = stored {
        stored.set_provisioning_state("Deleting");
        stored.pending = Some(Pending::new(operation, PendingAction::Delete));
    }
}

/// A string field a request must carry, not empty; `InvalidRequestContent` naming it otherwise.
fn required_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ArmError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_content(&format!("'{key}' is required.")))
}

fn account_location(account: &Resource) -> String {
    account
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn account(id: &str, properties: Value) -> Resource {
        let body = json!({
            "id": id,
            "name": id.rsplit('/').next().unwrap(),
            "type": ACCOUNT_TYPE,
            "location": "West US",
            "properties": properties,
            PRIVATE: { "keys": { "key1": "a", "key2": "b" } }
        });
        Resource::new(
            id.to_owned(),
            body.as_object().unwrap().clone(),
            "e".into(),
            0,
        )
    }

    pub(super) const ID: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/Acc";

    #[test]
    fn names_follow_the_account_pattern() {
        assert!(valid_name("ab"));
        assert!(valid_name("my-account_1.x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-ab"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
