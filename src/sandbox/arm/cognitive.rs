//! Microsoft.CognitiveServices (Foundry / Azure OpenAI): accounts with their endpoints, keys and
//! managed identity, model deployments, and soft delete with restore and purge
//! (foundry-arm.md §1).
//!
//! Soft-deleted accounts live in [`ArmState::deleted_accounts`] and keep blocking their name and
//! custom subdomain until purged: that is the trap automation falls into on Azure, so the sandbox
//! springs it too. Facts looked up beyond the reference, and choices where Azure's answer is not
//! recorded anywhere we could find, are noted where they are used.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::resources::normalize_location;
use super::store::{ArmState, Operation, Pending, PendingAction, Resource};
use super::{
    ArmError, Call, OperationKind, OperationSpec, Reply, capture, check_if_match, group_id,
};
use crate::policy::instant::format_utc_seconds;
use crate::sandbox::new_guid;

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
/// The service purges a soft-deleted account by itself 48 hours after deletion.
const RETENTION_MS: u64 = 48 * 60 * 60 * 1000;
/// Account properties the service computes: never taken from a request.
const ACCOUNT_READ_ONLY: [&str; 17] = [
    "endpoint",
    "endpoints",
    "provisioningState",
    "internalId",
    "dateCreated",
    "capabilities",
    "callRateLimit",
    "quotaLimit",
    "deletionDate",
    "scheduledPurgeDate",
    "isMigrated",
    "privateEndpointConnections",
    "skuChangeInfo",
    "abusePenalty",
    "commitmentPlanAssociations",
    "locations",
    "restore",
];
const DEPLOYMENT_READ_ONLY: [&str; 7] = [
    "provisioningState",
    "capabilities",
    "rateLimits",
    "callRateLimit",
    "currentCapacity",
    "capacitySettings",
    "dynamicThrottlingEnabled",
];

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
            other => Err(method_not_allowed(&other)),
        };
    }
    if let Some(c) = under_accounts("/{}/deployments/{}") {
        let path = AccountPath::new(&c);
        return match method {
            Method::PUT => put_deployment(call, &path, c[3]),
            Method::GET => get_deployment(call, &path, c[3]),
            Method::DELETE => delete_deployment(call, &path, c[3]),
            other => Err(method_not_allowed(&other)),
        };
    }
    if let Some(c) = under_accounts("/{}/deployments") {
        return only(&method, Method::GET)
            .and_then(|()| list_deployments(call, &AccountPath::new(&c)));
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
    if let Some(c) = at_subscription("/deletedAccounts") {
        return only(&method, Method::GET).map(|()| list_deleted(call, c[0]));
    }
    if let Some(c) = at_subscription("/locations/{}/resourceGroups/{}/deletedAccounts/{}") {
        let id = deleted_id(c[0], &normalize_location(c[1]), c[2], c[3]);
        return match method {
            Method::GET => get_deleted(call, &id, c[2], c[3]),
            Method::DELETE => purge(call, &id, c[0], c[1]),
            other => Err(method_not_allowed(&other)),
        };
    }
    Err(ArmError::bad_request(
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

/// What a removed resource leaves behind: a soft-deleted account for an account (deleted by
/// itself or with its resource group), nothing for anything else (deployments go with their
/// account).
pub(super) fn soft_deleted(resource: Resource, now_ms: u64) -> Option<Resource> {
    let segments = split(&resource.id);
    let c = capture(&segments, &format!("{ACCOUNTS}/{{}}"))?;
    let location = normalize_location(
        resource
            .body
            .get("location")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let id = deleted_id(c[0], &location, c[1], c[2]);
    let mut deleted = Resource {
        id: id.clone(),
        body: resource.body,
        etag: resource.etag,
        created_ms: now_ms,
        pending: None,
    };
    deleted.body.insert("id".into(), json!(id));
    deleted.body.insert("type".into(), json!(DELETED_TYPE));
    let properties = deleted.properties_mut();
    properties.insert("provisioningState".into(), json!("Succeeded"));
    properties.insert("deletionDate".into(), json!(format_utc_seconds(now_ms)));
    properties.insert(
        "scheduledPurgeDate".into(),
        json!(format_utc_seconds(now_ms + RETENTION_MS)),
    );
    Some(deleted)
}

/// Ends the purges that are due, and the soft-deleted accounts whose retention ran out; part of
/// [`ArmState::settle`].
pub(super) fn purge_due(arm: &mut ArmState, now_ms: u64) {
    let mut gone = Vec::new();
    let mut failed = Vec::new();
    for (key, deleted) in &arm.deleted_accounts {
        if now_ms >= deleted.created_ms + RETENTION_MS {
            gone.push(key.clone());
        } else if let Some(pending) = deleted.pending.as_ref().filter(|p| p.until_ms <= now_ms) {
            let error = arm
                .operations
                .get(&pending.operation)
                .is_some_and(|op| op.error.is_some());
            if error {
                failed.push(key.clone());
            } else {
                gone.push(key.clone());
            }
        }
    }
    for key in gone {
        arm.deleted_accounts.remove(&key);
    }
    for key in failed {
        if let Some(deleted) = arm.deleted_accounts.get_mut(&key) {
            deleted.pending = None;
            deleted.set_provisioning_state("Succeeded");
        }
    }
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

fn split(id: &str) -> Vec<String> {
    id.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn deleted_id(subscription: &str, location: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/resourceGroups/{group}/deletedAccounts/{name}"
    )
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

fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The method '{method}' is not allowed on this resource."),
    )
}

fn only(method: &Method, allowed: Method) -> Result<(), ArmError> {
    if *method == allowed {
        Ok(())
    } else {
        Err(method_not_allowed(method))
    }
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

/// A deployment write while another write on the same account runs: 409 `RequestConflict`
/// with this message (Azure/Vector-Search-AI-Assistant#11, Azure/azure-dev#9398,
/// Azure/terraform-azurerm-avm-res-cognitiveservices-account#125).
fn parent_busy(account_id: &str) -> ArmError {
    ArmError::conflict(
        "RequestConflict",
        format!(
            "Another operation is being performed on the parent resource '{account_id}'. Please try again later."
        ),
    )
}

/// foundry-arm.md §1.6 (azure-cli#18146).
fn flag_must_be_set(account_id: &str) -> ArmError {
    ArmError::conflict(
        "FlagMustBeSetForRestore",
        format!(
            "An existing resource with ID '{account_id}' has been soft-deleted. To restore the resource, you must specify 'restore' to be 'true' in the property. If you don't want to restore existing resource, please purge it first."
        ),
    )
}

/// foundry-arm.md §1.6; the reference elides the message's tail after this sentence.
fn custom_domain_in_use(subdomain: &str) -> ArmError {
    ArmError::conflict(
        "CustomDomainInUse",
        format!(
            "Please pick a different name. The subdomain name '{subdomain}' is not available as it's already used by a resource. If the resource using the name was deleted in the last 48 hours, you may need to purge the deleted resource."
        ),
    )
}

fn account_not_found(path: &AccountPath) -> ArmError {
    ArmError::resource_not_found(ACCOUNT_TYPE, &path.name, &path.group)
}

fn now_text(call: &Call<'_>) -> String {
    format_utc_seconds(call.now_ms)
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

/// 202 for a delete or purge: both URLs of the operation and a poll hint (foundry-arm.md §1.6).
fn accepted(call: &Call<'_>, operation: &Operation) -> Reply {
    let status = call.url(&format!(
        "{}?api-version={OPERATION_API_VERSION}",
        operation.status_path
    ));
    Reply::empty(StatusCode::ACCEPTED)
        .header(
            "location",
            format!("{status}&operationResultResponseType=Location"),
        )
        .header("azure-asyncoperation", status)
        .poll_hint(operation.until_ms)
}

/// The header a PUT's long-running answer carries.
fn with_operation(call: &Call<'_>, reply: Reply, operation: &Operation) -> Reply {
    let status = call.url(&format!(
        "{}?api-version={OPERATION_API_VERSION}",
        operation.status_path
    ));
    reply
        .header("azure-asyncoperation", status)
        .poll_hint(operation.until_ms)
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// What a client may set on an account, from a PUT body (or an account merged with a PATCH).
struct AccountSpec {
    location: String,
    kind: String,
    sku: Value,
    tags: Option<Value>,
    identity: Option<Value>,
    properties: Map<String, Value>,
    /// Write-only: restore the soft-deleted account of this name instead of creating one.
    restore: bool,
}

impl AccountSpec {
    fn parse(body: &Map<String, Value>) -> Result<AccountSpec, ArmError> {
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        let kind = body
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid_content("'kind' is required."))?;
        let sku = body
            .get("sku")
            .filter(|s| s.get("name").and_then(Value::as_str).is_some())
            .cloned()
            .ok_or_else(|| invalid_content("'sku.name' is required."))?;
        let mut properties = match body.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(invalid_content("'properties' must be an object.")),
        };
        let restore = properties.get("restore") == Some(&Value::Bool(true));
        properties.retain(|k, v| !ACCOUNT_READ_ONLY.contains(&k.as_str()) && !v.is_null());
        if properties
            .get("customSubDomainName")
            .is_some_and(|s| !s.is_string())
        {
            return Err(invalid_content(
                "'properties.customSubDomainName' must be a string.",
            ));
        }
        Ok(AccountSpec {
            location: location.to_owned(),
            kind: kind.to_owned(),
            sku,
            tags: tags(body)?,
            identity: identity_request(body)?,
            properties,
            restore,
        })
    }

    fn subdomain(&self) -> Option<&str> {
        self.properties
            .get("customSubDomainName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

fn tags(body: &Map<String, Value>) -> Result<Option<Value>, ArmError> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => {
            Ok(Some(Value::Object(map.clone())))
        }
        Some(_) => Err(ArmError::bad_request(
            "InvalidTag",
            "The tags must be an object of string values.",
        )
        .target("tags")),
    }
}

fn identity_request(body: &Map<String, Value>) -> Result<Option<Value>, ArmError> {
    match body.get("identity") {
        None | Some(Value::Null) => Ok(None),
        Some(identity) if identity.get("type").is_some_and(Value::is_string) => {
            Ok(Some(identity.clone()))
        }
        Some(_) => Err(invalid_content("'identity.type' is required.")),
    }
}

/// `https://{sub}.openai.azure.com/` for OpenAI, `https://{sub}.cognitiveservices.azure.com/`
/// for the other kinds, the regional endpoint without a subdomain (foundry-arm.md §1.3).
fn endpoint(kind: &str, subdomain: Option<&str>, location: &str) -> String {
    match subdomain.map(str::to_ascii_lowercase) {
        Some(sub) if kind.eq_ignore_ascii_case("OpenAI") => {
            format!("https://{sub}.openai.azure.com/")
        }
        Some(sub) => format!("https://{sub}.cognitiveservices.azure.com/"),
        None => format!(
            "https://{}.api.cognitive.microsoft.com/",
            normalize_location(location)
        ),
    }
}

/// The `endpoints` map: the OpenAI APIs for kinds OpenAI and AIServices (on the openai.azure.com
/// host once there is a subdomain), plus "AI Foundry API" for AIServices; other kinds list
/// themselves, as the 2022 recordings do (foundry-arm.md §1.3).
fn endpoints(kind: &str, subdomain: Option<&str>, location: &str) -> Value {
    let main = endpoint(kind, subdomain, location);
    let sub = subdomain.map(str::to_ascii_lowercase);
    let openai = sub.as_ref().map_or_else(
        || main.clone(),
        |s| format!("https://{s}.openai.azure.com/"),
    );
    let mut map = Map::new();
    let is_openai = kind.eq_ignore_ascii_case("OpenAI");
    let is_ai_services = kind.eq_ignore_ascii_case("AIServices");
    if is_openai || is_ai_services {
        for api in [
            "OpenAI Language Model Instance API",
            "OpenAI Dall-E API",
            "OpenAI Whisper API",
            "OpenAI Realtime API",
        ] {
            map.insert(api.into(), json!(openai));
        }
    } else {
        map.insert(kind.into(), json!(main));
    }
    if is_ai_services {
        let foundry = sub.as_ref().map_or_else(
            || main.clone(),
            |s| format!("https://{s}.services.ai.azure.com/"),
        );
        map.insert("AI Foundry API".into(), json!(foundry));
        map.insert("Content Safety".into(), json!(main));
    }
    Value::Object(map)
}

/// The identity answered: a system-assigned principal is registered once and kept across PUTs
/// (and restores), as Azure keeps it for the life of the resource.
fn identity(
    call: &mut Call<'_>,
    id: &str,
    name: &str,
    requested: Option<&Value>,
    previous: Option<&Value>,
) -> Option<Value> {
    let requested = requested?;
    let kind = requested["type"].as_str().unwrap_or("None");
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    if kind.to_ascii_lowercase().contains("systemassigned") {
        let kept = previous.filter(|p| p["principalId"].is_string());
        let system = match kept {
            Some(p) => p.clone(),
            None => call.managed_identity(id, name),
        };
        out.insert("principalId".into(), system["principalId"].clone());
        out.insert("tenantId".into(), system["tenantId"].clone());
    }
    if let Some(assigned) = requested
        .get("userAssignedIdentities")
        .and_then(Value::as_object)
    {
        let before = previous.and_then(|p| p.get("userAssignedIdentities"));
        let mut map = Map::new();
        for key in assigned.keys() {
            let entry = before
                .and_then(|b| b.get(key))
                .filter(|e| e["principalId"].is_string())
                .cloned()
                .unwrap_or_else(|| json!({ "principalId": new_guid(), "clientId": new_guid() }));
            map.insert(key.clone(), entry);
        }
        out.insert("userAssignedIdentities".into(), Value::Object(map));
    }
    Some(Value::Object(out))
}

/// The account as stored, from what the client asked and what the account already had.
fn account_body(
    call: &mut Call<'_>,
    id: &str,
    spec: &AccountSpec,
    previous: Option<&Map<String, Value>>,
    provisioning_state: &str,
) -> Map<String, Value> {
    let name = id.rsplit('/').next().unwrap_or_default().to_owned();
    let before = previous
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object);
    let kept = |key: &str| before.and_then(|p| p.get(key)).cloned();
    let sub = spec.subdomain();
    let mut properties = spec.properties.clone();
    properties.insert(
        "endpoint".into(),
        json!(endpoint(&spec.kind, sub, &spec.location)),
    );
    properties.insert(
        "endpoints".into(),
        endpoints(&spec.kind, sub, &spec.location),
    );
    properties.insert("provisioningState".into(), json!(provisioning_state));
    properties.insert(
        "internalId".into(),
        kept("internalId").unwrap_or_else(|| json!(hex_secret())),
    );
    properties.insert(
        "dateCreated".into(),
        kept("dateCreated").unwrap_or_else(|| json!(now_text(call))),
    );
    properties.insert(
        "capabilities".into(),
        json!([{ "name": "VirtualNetworks" }, { "name": "CustomerManagedKey" }]),
    );
    properties.insert("isMigrated".into(), json!(false));
    properties
        .entry("publicNetworkAccess")
        .or_insert_with(|| json!("Enabled"));
    let previous_identity = previous.and_then(|p| p.get("identity"));
    let identity = identity(call, id, &name, spec.identity.as_ref(), previous_identity);
    let keys = previous
        .and_then(|p| p.get(PRIVATE))
        .and_then(|p| p.get("keys"))
        .cloned()
        .unwrap_or_else(|| json!({ "key1": hex_secret(), "key2": hex_secret() }));
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("name".into(), json!(name));
    body.insert("type".into(), json!(ACCOUNT_TYPE));
    body.insert("location".into(), json!(spec.location));
    body.insert("kind".into(), json!(spec.kind));
    body.insert("sku".into(), spec.sku.clone());
    if let Some(tags) = &spec.tags {
        body.insert("tags".into(), tags.clone());
    }
    if let Some(identity) = identity {
        body.insert("identity".into(), identity);
    }
    body.insert("properties".into(), Value::Object(properties));
    body.insert("systemData".into(), system_data(call, previous));
    body.insert(PRIVATE.into(), json!({ "keys": keys }));
    body
}

/// How an account write ends: synchronously, or as an operation clients poll.
enum Write<'a> {
    Done,
    Async { running: &'a str },
}

/// Stores the account and answers with it, starting the operation an async write needs.
fn write_account(
    call: &mut Call<'_>,
    id: &str,
    spec: &AccountSpec,
    previous: Option<&Resource>,
    status: StatusCode,
    write: Write<'_>,
) -> Reply {
    let state = match write {
        Write::Done => "Succeeded",
        Write::Async { running } => running,
    };
    let mut body = account_body(call, id, spec, previous.map(|p| &p.body), state);
    let etag = call.state.arm.next_etag();
    body.insert("etag".into(), quoted(&etag));
    let mut resource = Resource::new(id.to_owned(), body, etag.clone(), call.now_ms);
    if let Some(previous) = previous {
        resource.created_ms = previous.created_ms;
    }
    let mut reply = Reply::new(status, Some(view(&resource))).etag(&etag);
    if let Write::Async { running } = write {
        let subscription = split(id)[1].clone();
        let operation = call.start_operation(
            OperationSpec {
                resource_id: id,
                running_status: running,
                kind: OperationKind::AccountCreate,
                final_status: 200,
                final_body: true,
                location_only: false,
            },
            |op| status_path(&subscription, &spec.location, op),
        );
        resource.pending = Some(Pending::new(&operation, PendingAction::Provision));
        reply = with_operation(call, reply, &operation);
    }
    call.state.arm.insert(resource);
    reply
}

/// PUT: create (201, `Creating`, polled through `azure-asyncoperation`), restore (201, the
/// soft-deleted account back with its internal id, keys and identity), or update (200).
fn put_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    check_name(&path.name, "account")?;
    let spec = AccountSpec::parse(&call.request.body_object()?)?;
    let existing = call.state.arm.get(&path.id()).cloned();
    check_if_match(
        call.request,
        existing.as_ref().map(|e| e.etag.as_str()),
        false,
    )?;
    let id = existing
        .as_ref()
        .map_or_else(|| path.id(), |e| e.id.clone());
    if existing.as_ref().is_some_and(|e| e.pending.is_some()) {
        return Err(not_terminal(&id));
    }
    let deleted_key = existing
        .is_none()
        .then(|| find_deleted(&call.state.arm, path))
        .flatten();
    if deleted_key.is_some() && !spec.restore {
        return Err(flag_must_be_set(&id));
    }
    if let Some(sub) = spec.subdomain() {
        check_subdomain_free(&call.state.arm, sub, &id, deleted_key.as_deref())?;
    }
    let restored = deleted_key.and_then(|k| call.state.arm.deleted_accounts.remove(&k));
    Ok(match (existing, restored) {
        (_, Some(deleted)) => restore_account(call, &id, spec, &deleted),
        (None, None) => write_account(
            call,
            &id,
            &spec,
            None,
            StatusCode::CREATED,
            Write::Async {
                running: "Creating",
            },
        ),
        // A failed account is provisioned again; a healthy one takes the update at once.
        (Some(existing), None) if existing.provisioning_state() == Some("Failed") => write_account(
            call,
            &id,
            &spec,
            Some(&existing),
            StatusCode::OK,
            Write::Async {
                running: "Accepted",
            },
        ),
        (Some(existing), None) => write_account(
            call,
            &id,
            &spec,
            Some(&existing),
            StatusCode::OK,
            Write::Done,
        ),
    })
}

/// A restore answers 201 `Succeeded` at once, as recorded (foundry-arm.md §1.6). Properties the
/// request leaves out come back as they were.
fn restore_account(
    call: &mut Call<'_>,
    id: &str,
    mut spec: AccountSpec,
    deleted: &Resource,
) -> Reply {
    if let Some(before) = deleted.properties() {
        for (key, value) in before {
            if !ACCOUNT_READ_ONLY.contains(&key.as_str()) {
                spec.properties
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    write_account(
        call,
        id,
        &spec,
        Some(deleted),
        StatusCode::CREATED,
        Write::Done,
    )
}

/// PATCH merges tags, sku, identity and properties into the account and answers at once.
fn patch_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let patch = call.request.body_object()?;
    let existing = live_account(call, path)?;
    check_if_match(call.request, Some(&existing.etag), false)?;
    if existing.pending.is_some() {
        return Err(not_terminal(&existing.id));
    }
    let mut merged = existing.body.clone();
    for key in ["tags", "sku", "identity"] {
        if let Some(value) = patch.get(key) {
            merged.insert(key.into(), value.clone());
        }
    }
    if let Some(properties) = patch.get("properties").and_then(Value::as_object) {
        let target = merged
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| invalid_content("'properties' must be an object."))?;
        for (key, value) in properties {
            target.insert(key.clone(), value.clone());
        }
    }
    let spec = AccountSpec::parse(&merged)?;
    if let Some(sub) = spec.subdomain() {
        check_subdomain_free(&call.state.arm, sub, &existing.id, None)?;
    }
    let id = existing.id.clone();
    Ok(write_account(
        call,
        &id,
        &spec,
        Some(&existing),
        StatusCode::OK,
        Write::Done,
    ))
}

fn live_account(call: &Call<'_>, path: &AccountPath) -> Result<Resource, ArmError> {
    call.state
        .arm
        .get(&path.id())
        .cloned()
        .ok_or_else(|| account_not_found(path))
}

/// DELETE soft-deletes: 202 with both operation URLs, `Deleting` until the store removes the
/// account and [`soft_deleted`] keeps it; 204 when there is nothing to delete.
fn delete_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let Some(account) = call.state.arm.get(&path.id()).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    check_if_match(call.request, Some(&account.etag), false)?;
    if let Some(pending) = &account.pending {
        let running = call.state.arm.operations.get(&pending.operation).cloned();
        return match running {
            Some(operation) if pending.action == PendingAction::Delete => {
                Ok(accepted(call, &operation))
            }
            _ => Err(not_terminal(&account.id)),
        };
    }
    let location = account
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &account.id,
            running_status: "Deleting",
            kind: OperationKind::AccountDelete,
            final_status: 200,
            final_body: false,
            location_only: false,
        },
        |op| status_path(&path.subscription, &location, op),
    );
    if let Some(stored) = call.state.arm.get_mut(&account.id) {
        stored.set_provisioning_state("Deleting");
        stored.pending = Some(Pending::new(&operation, PendingAction::Delete));
    }
    Ok(accepted(call, &operation))
}

fn list_accounts(call: &Call<'_>, prefix: &str) -> Reply {
    let prefix = prefix.to_ascii_lowercase();
    let value: Vec<Value> = call
        .state
        .arm
        .resources
        .iter()
        .filter(|(k, r)| k.starts_with(&prefix) && r.body.get("type") == Some(&json!(ACCOUNT_TYPE)))
        .map(|(_, r)| view(r))
        .collect();
    Reply::ok(json!({ "value": value }))
}

fn keys_of(account: &Resource) -> Value {
    account
        .body
        .get(PRIVATE)
        .and_then(|p| p.get("keys"))
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// Keys are refused when local auth is off: 400 `BadRequest` "Failed to list key.
/// disableLocalAuth is set to be true" (Azure/terraform-azurerm-avm-res-cognitiveservices-account#130,
/// microsoft/microsoft-foundry-for-vscode#192).
fn list_keys(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let account = live_account(call, path)?;
    if account.properties().and_then(|p| p.get("disableLocalAuth")) == Some(&Value::Bool(true)) {
        return Err(ArmError::bad_request(
            "BadRequest",
            "Failed to list key. disableLocalAuth is set to be true",
        ));
    }
    Ok(Reply::ok(keys_of(&account)))
}

/// `{"keyName": "Key1" | "Key2"}` replaces that key and answers both.
fn regenerate_key(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let account = live_account(call, path)?;
    let slot = match body.get("keyName").and_then(Value::as_str) {
        Some(k) if k.eq_ignore_ascii_case("Key1") => "key1",
        Some(k) if k.eq_ignore_ascii_case("Key2") => "key2",
        _ => return Err(invalid_content("'keyName' must be 'Key1' or 'Key2'.")),
    };
    let mut keys = keys_of(&account);
    keys[slot] = json!(hex_secret());
    if let Some(stored) = call.state.arm.get_mut(&account.id) {
        stored.body.insert(PRIVATE.into(), json!({ "keys": keys }));
    }
    Ok(Reply::ok(keys))
}

// ---------------------------------------------------------------------------------------------
// Soft delete and custom subdomains

fn find_deleted(arm: &ArmState, path: &AccountPath) -> Option<String> {
    let prefix = format!("/subscriptions/{}/", path.subscription).to_ascii_lowercase();
    let suffix = format!(
        "/resourcegroups/{}/deletedaccounts/{}",
        path.group, path.name
    )
    .to_ascii_lowercase();
    arm.deleted_accounts
        .keys()
        .find(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
        .cloned()
}

fn subdomain_of(resource: &Resource) -> Option<&str> {
    resource.property_str("customSubDomainName")
}

/// Custom subdomains are global: live accounts of any subscription and soft-deleted ones hold
/// theirs, except the account being written (or restored).
fn check_subdomain_free(
    arm: &ArmState,
    subdomain: &str,
    account_id: &str,
    restoring: Option<&str>,
) -> Result<(), ArmError> {
    let own = account_id.to_ascii_lowercase();
    let live = arm.resources.iter().any(|(k, r)| {
        *k != own
            && r.body.get("type") == Some(&json!(ACCOUNT_TYPE))
            && subdomain_of(r).is_some_and(|s| s.eq_ignore_ascii_case(subdomain))
    });
    let deleted = arm.deleted_accounts.iter().any(|(k, r)| {
        Some(k.as_str()) != restoring
            && subdomain_of(r).is_some_and(|s| s.eq_ignore_ascii_case(subdomain))
    });
    if live || deleted {
        Err(custom_domain_in_use(subdomain))
    } else {
        Ok(())
    }
}

/// `{subdomainName, type, kind?}` → `{isSubdomainAvailable, reason?, subdomainName, type, kind}`.
/// Azure's `reason` wording for a taken name is not recorded; ours says what happened.
fn check_domain_availability(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let subdomain = body
        .get("subdomainName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_content("'subdomainName' is required."))?;
    let resource_type = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(ACCOUNT_TYPE);
    let mut answer = Map::new();
    let available = check_subdomain_free(&call.state.arm, subdomain, "", None).is_ok();
    answer.insert("isSubdomainAvailable".into(), json!(available));
    if !available {
        answer.insert(
            "reason".into(),
            json!(format!(
                "Sub domain name '{subdomain}' is already used by a resource, or by a soft-deleted one that has not been purged."
            )),
        );
    }
    answer.insert("subdomainName".into(), json!(subdomain));
    answer.insert("type".into(), json!(resource_type));
    if let Some(kind) = body.get("kind").filter(|k| k.is_string()) {
        answer.insert("kind".into(), kind.clone());
    }
    Ok(Reply::ok(Value::Object(answer)))
}

fn list_deleted(call: &Call<'_>, subscription: &str) -> Reply {
    let prefix = format!("/subscriptions/{subscription}/").to_ascii_lowercase();
    let value: Vec<Value> = call
        .state
        .arm
        .deleted_accounts
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, r)| view(r))
        .collect();
    Reply::ok(json!({ "value": value }))
}

fn get_deleted(call: &Call<'_>, id: &str, group: &str, name: &str) -> Result<Reply, ArmError> {
    call.state
        .arm
        .deleted_accounts
        .get(&id.to_ascii_lowercase())
        .map(|r| Reply::ok(view(r)))
        .ok_or_else(|| ArmError::resource_not_found(DELETED_TYPE, name, group))
}

/// Purge: 202 with `Location` (`operationResultResponseType=Location`) and
/// `azure-asyncoperation`, as recorded; 204 when there is nothing to purge. Works after the
/// resource group itself is gone.
fn purge(
    call: &mut Call<'_>,
    id: &str,
    subscription: &str,
    location: &str,
) -> Result<Reply, ArmError> {
    let key = id.to_ascii_lowercase();
    let Some(deleted) = call.state.arm.deleted_accounts.get(&key).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    if let Some(pending) = &deleted.pending
        && let Some(operation) = call.state.arm.operations.get(&pending.operation).cloned()
    {
        return Ok(accepted(call, &operation));
    }
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &deleted.id,
            running_status: "Deleting",
            kind: OperationKind::AccountPurge,
            final_status: 200,
            final_body: false,
            location_only: false,
        },
        |op| status_path(subscription, location, op),
    );
    if let Some(stored) = call.state.arm.deleted_accounts.get_mut(&key) {
        stored.set_provisioning_state("Deleting");
        stored.pending = Some(Pending::new(&operation, PendingAction::Delete));
    }
    Ok(accepted(call, &operation))
}

// ---------------------------------------------------------------------------------------------
// Deployments

struct DeploymentSpec {
    sku: Value,
    tags: Option<Value>,
    properties: Map<String, Value>,
    capacity: u64,
    model_name: String,
}

impl DeploymentSpec {
    fn parse(body: &Map<String, Value>) -> Result<DeploymentSpec, ArmError> {
        let sku = body
            .get("sku")
            .and_then(Value::as_object)
            .filter(|s| s.get("name").and_then(Value::as_str).is_some())
            .ok_or_else(|| invalid_content("'sku.name' is required."))?;
        let capacity = match sku.get("capacity") {
            None | Some(Value::Null) => 1,
            Some(c) => c
                .as_u64()
                .filter(|c| *c > 0)
                .ok_or_else(|| invalid_content("'sku.capacity' must be a positive integer."))?,
        };
        let mut sku = sku.clone();
        sku.insert("capacity".into(), json!(capacity));
        let mut properties = body
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        properties.retain(|k, v| !DEPLOYMENT_READ_ONLY.contains(&k.as_str()) && !v.is_null());
        let model = properties
            .get_mut("model")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid_content("'properties.model' is required."))?;
        let (Some(_), Some(name)) = (
            model.get("format").and_then(Value::as_str),
            model.get("name").and_then(Value::as_str).map(str::to_owned),
        ) else {
            return Err(invalid_content(
                "'properties.model.format' and 'properties.model.name' are required.",
            ));
        };
        model
            .entry("version")
            .or_insert_with(|| json!(default_version(&name)));
        properties
            .entry("versionUpgradeOption")
            .or_insert_with(|| json!("OnceNewDefaultVersionAvailable"));
        Ok(DeploymentSpec {
            sku: Value::Object(sku),
            tags: tags(body)?,
            properties,
            capacity,
            model_name: name,
        })
    }
}

/// "If version is not specified, a default version will be assigned" (BT25): the GA versions
/// commonly deployed; anything else gets "1".
fn default_version(model: &str) -> &'static str {
    match model {
        "gpt-4o-mini" => "2024-07-18",
        "gpt-4o" => "2024-11-20",
        "gpt-4.1" | "gpt-4.1-mini" | "gpt-4.1-nano" => "2025-04-14",
        _ => "1",
    }
}

/// What the model can be called for, by family.
fn model_capabilities(model: &str) -> Value {
    let model = model.to_ascii_lowercase();
    if model.contains("embedding") || model == "ada" {
        json!({ "embeddings": "true" })
    } else if model.contains("dall-e") {
        json!({ "imageGenerations": "true" })
    } else if model.contains("whisper") {
        json!({ "audio": "true" })
    } else {
        json!({ "completion": "true", "chatCompletion": "true" })
    }
}

/// Capacity is in units of 1K tokens per minute. The recording for capacity 1 shows 2 requests
/// per 10 s and 1,000 tokens per 60 s (foundry-arm.md §1.5); requests grow with capacity at
/// Azure's published 6 per minute per unit (1 per 10 s), never below the recorded 2.
fn rate_limits(capacity: u64) -> Value {
    json!([
        { "key": "request", "renewalPeriod": 10, "count": capacity.max(2) },
        { "key": "token", "renewalPeriod": 60, "count": capacity * 1000 },
    ])
}

fn deployment_body(
    call: &Call<'_>,
    id: &str,
    name: &str,
    spec: &DeploymentSpec,
    previous: Option<&Map<String, Value>>,
    provisioning_state: &str,
) -> Map<String, Value> {
    let mut properties = spec.properties.clone();
    properties.insert("capabilities".into(), model_capabilities(&spec.model_name));
    properties.insert("rateLimits".into(), rate_limits(spec.capacity));
    properties.insert("currentCapacity".into(), json!(spec.capacity));
    properties.insert("provisioningState".into(), json!(provisioning_state));
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("name".into(), json!(name));
    body.insert("type".into(), json!(DEPLOYMENT_TYPE));
    body.insert("sku".into(), spec.sku.clone());
    if let Some(tags) = &spec.tags {
        body.insert("tags".into(), tags.clone());
    }
    body.insert("properties".into(), Value::Object(properties));
    body.insert("systemData".into(), system_data(call, previous));
    body
}

/// Same sku, tags and settings: a re-PUT that changes nothing.
fn same_deployment(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let settings = |m: &Map<String, Value>| {
        let mut p = m
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        p.remove("provisioningState");
        (m.get("sku").cloned(), m.get("tags").cloned(), p)
    };
    settings(a) == settings(b)
}

/// Deployment writes need a healthy account with no other write running on it (the service
/// serialises writes per account; see [`parent_busy`]).
fn check_parent_ready(arm: &ArmState, account: &Resource, deleting: bool) -> Result<(), ArmError> {
    let busy = account.pending.is_some()
        || arm
            .children(&account.id, "deployments")
            .any(|d| d.pending.is_some());
    if busy {
        return Err(parent_busy(&account.id));
    }
    match account.provisioning_state() {
        Some("Succeeded") | None => Ok(()),
        _ if deleting => Ok(()),
        // The code and message other RPs report for an account that is not ready
        // (hashicorp/terraform-provider-azurerm#31712); the status is our choice.
        Some(state) => Err(ArmError::bad_request(
            "AccountProvisioningStateInvalid",
            format!(
                "Call to Microsoft.CognitiveServices/accounts failed. Error message: Account {} in state {state}",
                account.id
            ),
        )),
    }
}

fn account_location(account: &Resource) -> String {
    account
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// PUT: 201 `Accepted` with `azure-asyncoperation` for a new deployment (the fixture's state),
/// 200 for a change (also polled), 200 with nothing started when nothing changes (recorded).
fn put_deployment(call: &mut Call<'_>, path: &AccountPath, name: &str) -> Result<Reply, ArmError> {
    check_name(name, "deployment")?;
    let spec = DeploymentSpec::parse(&call.request.body_object()?)?;
    let account = live_account(call, path)?;
    let id = format!("{}/deployments/{name}", account.id);
    let existing = call.state.arm.get(&id).cloned();
    check_if_match(
        call.request,
        existing.as_ref().map(|e| e.etag.as_str()),
        false,
    )?;
    check_parent_ready(&call.state.arm, &account, false)?;
    let id = existing.as_ref().map_or(id, |e| e.id.clone());
    let stored_name = id.rsplit('/').next().unwrap_or(name).to_owned();
    let previous = existing.as_ref().map(|e| &e.body);
    if let Some(existing) = &existing {
        let unchanged = deployment_body(call, &id, &stored_name, &spec, previous, "Succeeded");
        if existing.provisioning_state() == Some("Succeeded")
            && same_deployment(&existing.body, &unchanged)
        {
            return Ok(Reply::ok(view(existing)).etag(&existing.etag));
        }
    }
    let mut body = deployment_body(call, &id, &stored_name, &spec, previous, "Accepted");
    let etag = call.state.arm.next_etag();
    body.insert("etag".into(), quoted(&etag));
    let location = account_location(&account);
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &id,
            running_status: "Accepted",
            kind: OperationKind::DeploymentWrite,
            final_status: 200,
            final_body: true,
            location_only: false,
        },
        |op| status_path(&path.subscription, &location, op),
    );
    let mut resource = Resource::new(id, body, etag.clone(), call.now_ms);
    if let Some(existing) = &existing {
        resource.created_ms = existing.created_ms;
    }
    resource.pending = Some(Pending::new(&operation, PendingAction::Provision));
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let reply = Reply::new(status, Some(view(&resource))).etag(&etag);
    call.state.arm.insert(resource);
    Ok(with_operation(call, reply, &operation))
}

fn deployment_not_found(path: &AccountPath, name: &str) -> ArmError {
    ArmError::resource_not_found(
        &format!("{ACCOUNT_TYPE}/{}/deployments", path.name),
        name,
        &path.group,
    )
}

fn get_deployment(call: &Call<'_>, path: &AccountPath, name: &str) -> Result<Reply, ArmError> {
    let account = live_account(call, path)?;
    call.state
        .arm
        .get(&format!("{}/deployments/{name}", account.id))
        .map(|d| Reply::ok(view(d)).etag(&d.etag))
        .ok_or_else(|| deployment_not_found(path, name))
}

fn list_deployments(call: &Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    let account = live_account(call, path)?;
    let value: Vec<Value> = call
        .state
        .arm
        .children(&account.id, "deployments")
        .map(view)
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}

/// DELETE: 202 with the operation URLs, `Deleting` until gone; 204 for a deployment (or an
/// account) that does not exist ("The deployment does not exist", CS25).
fn delete_deployment(
    call: &mut Call<'_>,
    path: &AccountPath,
    name: &str,
) -> Result<Reply, ArmError> {
    let Some(account) = call.state.arm.get(&path.id()).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    let id = format!("{}/deployments/{name}", account.id);
    let Some(deployment) = call.state.arm.get(&id).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    check_if_match(call.request, Some(&deployment.etag), false)?;
    if let Some(pending) = deployment
        .pending
        .as_ref()
        .filter(|p| p.action == PendingAction::Delete)
        && let Some(operation) = call.state.arm.operations.get(&pending.operation).cloned()
    {
        return Ok(accepted(call, &operation));
    }
    check_parent_ready(&call.state.arm, &account, true)?;
    let location = account_location(&account);
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &deployment.id,
            running_status: "Deleting",
            kind: OperationKind::DeploymentDelete,
            final_status: 200,
            final_body: false,
            location_only: false,
        },
        |op| status_path(&path.subscription, &location, op),
    );
    if let Some(stored) = call.state.arm.get_mut(&deployment.id) {
        stored.set_provisioning_state("Deleting");
        stored.pending = Some(Pending::new(&operation, PendingAction::Delete));
    }
    Ok(accepted(call, &operation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, properties: Value) -> Resource {
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

    const ID: &str =
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

    #[test]
    fn endpoints_follow_kind_and_lower_case_the_subdomain() {
        assert_eq!(
            endpoint("AIServices", Some("MyFoundry"), "westus"),
            "https://myfoundry.cognitiveservices.azure.com/"
        );
        assert_eq!(
            endpoint("OpenAI", Some("Aoai"), "westus"),
            "https://aoai.openai.azure.com/"
        );
        assert_eq!(
            endpoint("OpenAI", None, "West US"),
            "https://westus.api.cognitive.microsoft.com/"
        );
        let map = endpoints("AIServices", Some("MyFoundry"), "westus");
        assert_eq!(
            map["OpenAI Language Model Instance API"],
            "https://myfoundry.openai.azure.com/"
        );
        assert_eq!(
            map["AI Foundry API"],
            "https://myfoundry.services.ai.azure.com/"
        );
        assert_eq!(
            endpoints("Emotion", None, "westus")["Emotion"],
            "https://westus.api.cognitive.microsoft.com/"
        );
    }

    #[test]
    fn a_removed_account_becomes_a_deleted_account_and_nothing_else_does() {
        let deleted = soft_deleted(account(ID, json!({})), 1_000).expect("an account");
        assert_eq!(
            deleted.id,
            "/subscriptions/s/providers/Microsoft.CognitiveServices/locations/westus/resourceGroups/rg/deletedAccounts/Acc"
        );
        assert_eq!(deleted.body["type"], DELETED_TYPE);
        assert_eq!(
            deleted.body["properties"]["deletionDate"],
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            deleted.body["properties"]["scheduledPurgeDate"],
            "1970-01-03T00:00:01Z"
        );
        assert!(view(&deleted).get(PRIVATE).is_none());
        let deployment = account(&format!("{ID}/deployments/d"), json!({}));
        assert!(soft_deleted(deployment, 1_000).is_none());
    }

    #[test]
    fn due_purges_and_expired_retention_remove_deleted_accounts() {
        let mut arm = ArmState::default();
        let mut kept = soft_deleted(account(ID, json!({})), 0).unwrap();
        kept.pending = Some(Pending {
            operation: "op".into(),
            until_ms: 50,
            action: PendingAction::Delete,
        });
        arm.deleted_accounts.insert(kept.key(), kept);
        purge_due(&mut arm, 49);
        assert_eq!(arm.deleted_accounts.len(), 1);
        purge_due(&mut arm, 50);
        assert!(arm.deleted_accounts.is_empty());
        let old = soft_deleted(account(ID, json!({})), 0).unwrap();
        arm.deleted_accounts.insert(old.key(), old);
        purge_due(&mut arm, RETENTION_MS);
        assert!(arm.deleted_accounts.is_empty());
    }

    #[test]
    fn subdomains_are_held_by_live_and_deleted_accounts_ignoring_case() {
        let mut arm = ArmState::default();
        arm.insert(account(ID, json!({ "customSubDomainName": "Shared" })));
        let other = ID.replace("/Acc", "/Other");
        assert!(check_subdomain_free(&arm, "shared", ID, None).is_ok());
        let e = check_subdomain_free(&arm, "SHARED", &other, None).unwrap_err();
        assert_eq!((e.status.as_u16(), &*e.code), (409, "CustomDomainInUse"));
        let deleted = soft_deleted(arm.remove_tree(ID).remove(0), 0).unwrap();
        let key = deleted.key();
        arm.deleted_accounts.insert(key.clone(), deleted);
        assert!(check_subdomain_free(&arm, "shared", ID, None).is_err());
        assert!(check_subdomain_free(&arm, "shared", ID, Some(&key)).is_ok());
    }

    #[test]
    fn a_failed_account_takes_no_deployments_and_a_busy_one_conflicts() {
        let arm = ArmState::default();
        let failed = account(ID, json!({ "provisioningState": "Failed" }));
        let e = check_parent_ready(&arm, &failed, false).unwrap_err();
        assert_eq!(&*e.code, "AccountProvisioningStateInvalid");
        assert!(check_parent_ready(&arm, &failed, true).is_ok());
        let mut busy = account(ID, json!({ "provisioningState": "Creating" }));
        busy.pending = Some(Pending {
            operation: "op".into(),
            until_ms: 1,
            action: PendingAction::Provision,
        });
        let e = check_parent_ready(&arm, &busy, false).unwrap_err();
        assert_eq!((e.status.as_u16(), &*e.code), (409, "RequestConflict"));
        assert!(e.message.contains(ID));
    }

    #[test]
    fn rate_limits_grow_with_capacity() {
        assert_eq!(
            rate_limits(1),
            json!([
                { "key": "request", "renewalPeriod": 10, "count": 2 },
                { "key": "token", "renewalPeriod": 60, "count": 1000 }
            ])
        );
        assert_eq!(rate_limits(30)[1]["count"], 30_000);
    }
}
