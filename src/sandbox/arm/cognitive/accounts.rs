//! Accounts: their spec, endpoints, identity and keys, the writes that create, restore, update
//! and soft-delete them, and the custom subdomains they hold.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::resources::normalize_location;
use super::super::{
    ArmError, Call, OperationKind, OperationSpec, Reply, check_if_match, segments_of, tags,
};
use super::deleted::{find_deleted, flag_must_be_set};
use super::{
    ACCOUNT_TYPE, AccountPath, PRIVATE, accepted, account_location, check_name, hex_secret,
    invalid_content, mark_deleting, not_terminal, now_text, quoted, required_str, start_delete,
    status_path, system_data, view, with_operation,
};
use crate::sandbox::new_guid;
use crate::sandbox::state::arm::{ArmState, Pending, PendingAction, Resource};

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
            .ok_or_else(ArmError::location_required)?;
        let kind = required_str(body, "kind")?;
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

fn identity_request(body: &Map<String, Value>) -> Result<Option<Value>, ArmError> {
    match body.get("identity") {
        None | Some(Value::Null) => Ok(None),
        Some(identity) if identity.get("type").is_some_and(Value::is_string) => {
            Ok(Some(identity.clone()))
        }
        Some(_) => Err(invalid_content("'identity.type' is required.")),
    }
}

/// With a custom subdomain, the sandbox's own origin: `{base}/foundry/{sub}/` (subdomain lower
/// case), where the inference data plane answers for the account (docs/sandbox.md, "Foundry
/// inference"); on Azure it is `https://{sub}.openai.azure.com/` or
/// `https://{sub}.cognitiveservices.azure.com/`, a host the sandbox cannot serve on one port.
/// Without one, the regional endpoint (foundry-arm.md §1.3), which serves no data plane here,
/// as Azure serves no token-authenticated data plane without a subdomain.
pub(super) fn endpoint(base_url: &str, subdomain: Option<&str>, location: &str) -> String {
    match subdomain.map(str::to_ascii_lowercase) {
        Some(sub) => format!("{base_url}/foundry/{sub}/"),
        None => format!(
            "https://{}.api.cognitive.microsoft.com/",
            normalize_location(location)
        ),
    }
}

/// The `endpoints` map: the OpenAI APIs for kinds OpenAI and AIServices, plus "AI Foundry API"
/// and "Content Safety" for AIServices; other kinds list themselves, as the 2022 recordings do
/// (foundry-arm.md §1.3). Every entry is the account's one origin: the sandbox answers all of
/// them at [`endpoint`].
pub(super) fn endpoints(
    base_url: &str,
    kind: &str,
    subdomain: Option<&str>,
    location: &str,
) -> Value {
    let main = json!(endpoint(base_url, subdomain, location));
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
            map.insert(api.into(), main.clone());
        }
    } else {
        map.insert(kind.into(), main.clone());
    }
    if is_ai_services {
        map.insert("AI Foundry API".into(), main.clone());
        map.insert("Content Safety".into(), main);
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
    let base = call.shared.base_url.clone();
    properties.insert(
        "endpoint".into(),
        json!(endpoint(&base, sub, &spec.location)),
    );
    properties.insert(
        "endpoints".into(),
        endpoints(&base, &spec.kind, sub, &spec.location),
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
        let subscription = segments_of(id)[1].clone();
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
pub(super) fn put_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    check_name(&path.name, "account")?;
    let existing = call.state.arm.get(&path.id()).cloned();
    let mut body = call.request.body_object()?;
    if existing.is_none() {
        restore_defaults(call, path, &mut body);
    }
    let spec = AccountSpec::parse(&body)?;
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

/// A restore PUT may carry no more than `location` and `properties.restore: true`: that is what
/// `az cognitiveservices account recover` sends (azure-cli `command_modules/cognitiveservices/
/// custom.py`, `recover`: a `CognitiveServicesAccount` with only `location` and
/// `properties.restore` set). The soft-deleted account's `kind`, `sku`, `tags` and `identity`
/// stand in for the ones left out, as the account comes back as it was.
fn restore_defaults(call: &Call<'_>, path: &AccountPath, body: &mut Map<String, Value>) {
    let restoring = body
        .get("properties")
        .and_then(|p| p.get("restore"))
        .is_some_and(|r| r == &Value::Bool(true));
    let Some(deleted) = restoring
        .then(|| find_deleted(&call.state.arm, path))
        .flatten()
        .and_then(|key| call.state.arm.deleted_accounts.get(&key))
    else {
        return;
    };
    for key in ["kind", "sku", "tags", "identity"] {
        if body.get(key).is_none_or(Value::is_null)
            && let Some(value) = deleted.body.get(key)
        {
            body.insert(key.into(), value.clone());
        }
    }
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
pub(super) fn patch_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
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

fn account_not_found(path: &AccountPath) -> ArmError {
    ArmError::resource_not_found(ACCOUNT_TYPE, &path.name, &path.group)
}

pub(super) fn live_account(call: &Call<'_>, path: &AccountPath) -> Result<Resource, ArmError> {
    call.state
        .arm
        .get(&path.id())
        .cloned()
        .ok_or_else(|| account_not_found(path))
}

/// DELETE soft-deletes: 202 with both operation URLs, `Deleting` until the store removes the
/// account and [`soft_deleted`](super::soft_deleted) keeps it; 204 when there is nothing to delete.
pub(super) fn delete_account(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
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
    let location = account_location(&account);
    let operation = start_delete(
        call,
        &account.id,
        OperationKind::AccountDelete,
        &path.subscription,
        &location,
    );
    mark_deleting(call.state.arm.get_mut(&account.id), &operation);
    Ok(accepted(call, &operation))
}

pub(super) fn list_accounts(call: &Call<'_>, prefix: &str) -> Reply {
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

/// The account's two keys, as the inference data plane compares an `api-key` header with them.
pub(crate) fn account_keys(account: &Resource) -> Vec<String> {
    let keys = keys_of(account);
    ["key1", "key2"]
        .iter()
        .filter_map(|k| keys.get(*k).and_then(Value::as_str).map(str::to_owned))
        .collect()
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
pub(super) fn list_keys(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
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
pub(super) fn regenerate_key(call: &mut Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
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
// Custom subdomains

/// foundry-arm.md §1.6; the reference elides the message's tail after this sentence.
fn custom_domain_in_use(subdomain: &str) -> ArmError {
    ArmError::conflict(
        "CustomDomainInUse",
        format!(
            "Please pick a different name. The subdomain name '{subdomain}' is not available as it's already used by a resource. If the resource using the name was deleted in the last 48 hours, you may need to purge the deleted resource."
        ),
    )
}

fn subdomain_of(resource: &Resource) -> Option<&str> {
    resource.property_str("customSubDomainName")
}

/// Custom subdomains are global: live accounts of any subscription and soft-deleted ones hold
/// theirs, except the account being written (or restored).
pub(super) fn check_subdomain_free(
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
pub(super) fn check_domain_availability(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let subdomain = required_str(&body, "subdomainName")?;
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

#[cfg(test)]
mod tests {
    use super::super::deleted::soft_deleted;
    use super::super::tests::{ID, account};
    use super::*;

    #[test]
    fn endpoints_are_the_sandbox_origin_with_the_subdomain_lower_cased() {
        let base = "http://127.0.0.1:7171";
        assert_eq!(
            endpoint(base, Some("MyFoundry"), "westus"),
            "http://127.0.0.1:7171/foundry/myfoundry/"
        );
        assert_eq!(
            endpoint(base, None, "West US"),
            "https://westus.api.cognitive.microsoft.com/"
        );
        let map = endpoints(base, "AIServices", Some("MyFoundry"), "westus");
        for api in [
            "OpenAI Language Model Instance API",
            "AI Foundry API",
            "Content Safety",
        ] {
            assert_eq!(map[api], "http://127.0.0.1:7171/foundry/myfoundry/");
        }
        assert_eq!(
            endpoints(base, "Emotion", None, "westus")["Emotion"],
            "https://westus.api.cognitive.microsoft.com/"
        );
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
}
