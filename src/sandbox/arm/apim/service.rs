//! `Microsoft.ApiManagement/service`: the create LRO with the shapes of
//! ApiManagementCreateServiceHavingMsi.json, the system-assigned identity whose principal
//! `provision` grants access to the model, and the gateway URL clients call.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::super::resources::normalize_location;
use super::super::{ArmError, Call, OperationKind, OperationSpec, Reply, check_if_match, tags};
use super::{properties_of, validation, view};
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::{Pending, PendingAction, Resource};

const TYPE: &str = "Microsoft.ApiManagement/service";
const SKUS: [&str; 9] = [
    "Developer",
    "Standard",
    "Premium",
    "Basic",
    "Consumption",
    "Isolated",
    "BasicV2",
    "StandardV2",
    "PremiumV2",
];
/// The gateway hardening APIM reports on dedicated tiers (ApiManagementServiceGetService.json).
const DEFAULT_CUSTOM_PROPERTIES: [&str; 8] = [
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.TripleDes168",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls11",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Ssl30",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls11",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls10",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Ssl30",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Protocols.Server.Http2",
];
/// Properties the service computes; a PUT or PATCH cannot set them.
const READ_ONLY: [&str; 14] = [
    "provisioningState",
    "targetProvisioningState",
    "createdAtUtc",
    "gatewayUrl",
    "gatewayRegionalUrl",
    "portalUrl",
    "developerPortalUrl",
    "managementApiUrl",
    "scmUrl",
    "publicIPAddresses",
    "privateIPAddresses",
    "platformVersion",
    "outboundPublicIPAddresses",
    "etag",
];

pub(super) fn not_found(name: &str, group: &str) -> ArmError {
    ArmError::resource_not_found(TYPE, name, group)
}

/// APIM's answer to anything that would change a service mid-transition (recorded for PATCH and
/// DELETE in an azure-sdk-for-js recording).
pub(super) fn locked(name: &str) -> ArmError {
    ArmError::conflict(
        "ServiceLocked",
        format!(
            "The API Service {name} is transitioning at this time. Please try the request again later."
        ),
    )
}

pub(super) fn handle(
    call: &mut Call<'_>,
    id: &str,
    name: &str,
    group: &str,
) -> Result<Reply, ArmError> {
    match call.request.method.clone() {
        Method::GET | Method::HEAD => call
            .state
            .arm
            .get(id)
            .map(|s| Reply::ok(view(s)).etag(&s.etag))
            .ok_or_else(|| not_found(name, group)),
        Method::PUT => put(call, id, name),
        Method::PATCH => patch(call, id, name, group),
        Method::DELETE => delete(call, id, name),
        other => Err(ArmError::method_not_supported(&other)),
    }
}

/// Services whose lower-cased id starts with `prefix` (a subscription or a resource group).
pub(super) fn list(call: &mut Call<'_>, prefix: &str) -> Result<Reply, ArmError> {
    if call.request.method != Method::GET {
        return Err(ArmError::method_not_supported(&call.request.method));
    }
    let value: Vec<Value> = call
        .state
        .arm
        .resources
        .values()
        .filter(|r| r.key().starts_with(prefix) && super::type_of(&r.id) == TYPE)
        .map(view)
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}

/// `serviceName`: 1–50, a letter first, letters, digits and hyphens, no hyphen last (§3.2).
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=50).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.last() != Some(&b'-')
}

fn invalid_name(name: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceName",
        format!(
            "The resource name '{name}' is invalid: a service name has 1 to 50 characters, starts with a letter, holds only letters, digits and hyphens, and does not end with a hyphen."
        ),
    )
}

/// Whether another service anywhere already uses the name: it is a DNS label under
/// `azure-api.net`.
fn name_taken(call: &Call<'_>, name: &str, except_id: &str) -> bool {
    call.state.arm.resources.values().any(|r| {
        !r.id.eq_ignore_ascii_case(except_id)
            && super::type_of(&r.id) == TYPE
            && r.id
                .rsplit('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// `POST …/providers/Microsoft.ApiManagement/checkNameAvailability`.
pub(super) fn check_name(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    if call.request.method != Method::POST {
        return Err(ArmError::method_not_supported(&call.request.method));
    }
    let body = call.request.body_object()?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let answer = if !valid_name(name) {
        json!({ "nameAvailable": false, "reason": "Invalid", "message": invalid_name(name).message })
    } else if name_taken(call, name, "") {
        json!({
            "nameAvailable": false,
            "reason": "AlreadyExists",
            "message": format!("{name} is already in use. Please select a different name.")
        })
    } else {
        json!({ "nameAvailable": true, "reason": "Valid", "message": "" })
    };
    Ok(Reply::ok(answer))
}

fn required_str<'a>(props: &'a Map<String, Value>, key: &str) -> Result<&'a str, ArmError> {
    props
        .get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| validation(key, format!("'{key}' is required.")))
}

fn sku(body: &Map<String, Value>) -> Result<Value, ArmError> {
    let sku = body
        .get("sku")
        .and_then(Value::as_object)
        .ok_or_else(|| validation("sku", "'sku' is required."))?;
    let name = sku
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| SKUS.iter().find(|s| s.eq_ignore_ascii_case(n)))
        .ok_or_else(|| {
            validation(
                "sku.name",
                format!("'sku.name' must be one of {}.", SKUS.join(", ")),
            )
        })?;
    let default_capacity = if *name == "Consumption" { 0 } else { 1 };
    let capacity = sku
        .get("capacity")
        .and_then(Value::as_u64)
        .unwrap_or(default_capacity);
    Ok(json!({ "name": name, "capacity": capacity }))
}

/// The parts of `identity.type`: system-assigned, user-assigned.
fn identity_kinds(identity: &Value) -> Result<(bool, bool), ArmError> {
    let kind = identity
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("None");
    let parts: Vec<String> = kind
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let mut out = (false, false);
    for part in &parts {
        match part.as_str() {
            "systemassigned" => out.0 = true,
            "userassigned" => out.1 = true,
            "none" if parts.len() == 1 => {}
            _ => {
                return Err(validation(
                    "identity.type",
                    format!(
                        "'{kind}' is not a valid identity type: use None, SystemAssigned, UserAssigned or 'SystemAssigned, UserAssigned'."
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The identity a write asks for, keeping the principal of a system-assigned identity that stays
/// (role assignments name it) and removing the principal of one that goes, as Azure does.
fn identity(
    call: &mut Call<'_>,
    requested: Option<&Value>,
    existing: Option<&Value>,
    id: &str,
    name: &str,
) -> Result<Option<Value>, ArmError> {
    let requested = requested.filter(|v| !v.is_null());
    let (system, user) = requested.map_or(Ok((false, false)), identity_kinds)?;
    let old_principal = existing
        .filter(|e| identity_kinds(e).is_ok_and(|(s, _)| s))
        .and_then(|e| e.get("principalId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut out = Map::new();
    match (system, &old_principal) {
        (true, Some(principal)) => {
            out.insert("principalId".into(), json!(principal));
            out.insert("tenantId".into(), json!(call.state.operator.tenant_id));
        }
        (true, None) => {
            let fresh = call.managed_identity(id, name);
            out.insert("principalId".into(), fresh["principalId"].clone());
            out.insert("tenantId".into(), fresh["tenantId"].clone());
        }
        (false, Some(principal)) => remove_principal(call, principal),
        (false, None) => {}
    }
    if user {
        let sent = requested
            .and_then(|r| r.get("userAssignedIdentities"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                validation(
                    "identity.userAssignedIdentities",
                    "'userAssignedIdentities' must name at least one identity when the type includes UserAssigned.",
                )
            })?;
        let kept = existing
            .and_then(|e| e.get("userAssignedIdentities"))
            .and_then(Value::as_object);
        let mut users = Map::new();
        for key in sent.keys() {
            let entry = kept
                .and_then(|k| k.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| {
                    json!({ "principalId": crate::sandbox::new_guid(), "clientId": crate::sandbox::new_guid() })
                });
            users.insert(key.clone(), entry);
        }
        out.insert("userAssignedIdentities".into(), Value::Object(users));
    }
    let kind = match (system, user) {
        (true, true) => "SystemAssigned, UserAssigned",
        (true, false) => "SystemAssigned",
        (false, true) => "UserAssigned",
        (false, false) => "None",
    };
    out.insert("type".into(), json!(kind));
    Ok(Some(Value::Object(out)))
}

/// A managed identity's service principal goes with its identity (no soft delete for those).
fn remove_principal(call: &mut Call<'_>, principal: &str) {
    call.state
        .objects
        .retain(|o| !o.id().eq_ignore_ascii_case(principal));
}

fn host(name: &str) -> String {
    format!("{}.azure-api.net", name.to_ascii_lowercase())
}

/// The built-in proxy hostname first, then the custom ones as sent with the defaults APIM fills.
fn hostname_configurations(name: &str, sent: Option<&Value>, now_ms: u64) -> Value {
    let custom: Vec<Value> = sent
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|h| {
            h.get("hostName")
                .and_then(Value::as_str)
                .is_none_or(|n| !n.eq_ignore_ascii_case(&host(name)))
        })
        .map(|h| {
            let mut h = h.clone();
            h.entry("negotiateClientCertificate")
                .or_insert(json!(false));
            h.entry("defaultSslBinding").or_insert(json!(false));
            h.entry("certificateSource").or_insert(json!("Custom"));
            if h.contains_key("keyVaultId") && !h.contains_key("certificate") {
                let host_name = h
                    .get("hostName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                h.insert(
                    "certificate".into(),
                    json!({
                        "expiry": format_utc_millis(now_ms + 365 * 86_400_000),
                        "thumbprint": format!("{:040X}", now_ms),
                        "subject": format!("CN={host_name}")
                    }),
                );
            }
            Value::Object(h)
        })
        .collect();
    let custom_default = custom
        .iter()
        .any(|h| h["type"] == "Proxy" && h["defaultSslBinding"].as_bool() == Some(true));
    let mut all = vec![json!({
        "type": "Proxy",
        "hostName": host(name),
        "negotiateClientCertificate": false,
        "defaultSslBinding": !custom_default,
        "certificateSource": "BuiltIn"
    })];
    all.extend(custom);
    Value::Array(all)
}

fn regional_url(name: &str, location: &str) -> String {
    format!(
        "https://{}-{}-01.regional.azure-api.net",
        name.to_ascii_lowercase(),
        normalize_location(location)
    )
}

fn additional_locations(name: &str, sent: &Value, platform: &str) -> Value {
    let out: Vec<Value> = sent
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .enumerate()
        .map(|(i, l)| {
            let mut l = l.clone();
            let location = l
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or_default();
            l.insert(
                "gatewayRegionalUrl".into(),
                json!(regional_url(name, location)),
            );
            l.insert(
                "publicIPAddresses".into(),
                json!([format!("203.0.113.{}", 20 + i)]),
            );
            l.entry("zones").or_insert(json!([]));
            l.entry("disableGateway").or_insert(json!(false));
            l.insert("platformVersion".into(), json!(platform));
            Value::Object(l)
        })
        .collect();
    Value::Array(out)
}

/// What a service reports, from what was sent: the user's properties with the computed ones
/// (URLs, hostnames, platform) laid over them.
fn properties(
    base_url: &str,
    name: &str,
    location: &str,
    sku_name: &str,
    sent: &Map<String, Value>,
    now_ms: u64,
) -> Map<String, Value> {
    let consumption = sku_name == "Consumption";
    let platform = if consumption { "mtv1" } else { "stv2" };
    let lower = name.to_ascii_lowercase();
    let mut p = sent.clone();
    for key in READ_ONLY {
        p.remove(key);
    }
    p.entry("notificationSenderEmail")
        .or_insert(json!("apimgmt-noreply@mail.windowsazure.com"));
    // The sandbox's gateway answers on its own origin, not on `{name}.azure-api.net` (which
    // would need DNS); the Proxy host name below stays what Azure assigns.
    p.insert(
        "gatewayUrl".into(),
        json!(format!("{base_url}/apim/{lower}")),
    );
    if !consumption {
        p.insert(
            "gatewayRegionalUrl".into(),
            json!(regional_url(name, location)),
        );
        for (key, sub) in [
            ("portalUrl", "portal"),
            ("developerPortalUrl", "developer"),
            ("managementApiUrl", "management"),
            ("scmUrl", "scm"),
        ] {
            p.insert(
                key.into(),
                json!(format!("https://{lower}.{sub}.azure-api.net")),
            );
        }
        p.insert("publicIPAddresses".into(), json!(["203.0.113.10"]));
        let mut custom: Map<String, Value> = DEFAULT_CUSTOM_PROPERTIES
            .iter()
            .map(|k| ((*k).to_owned(), json!("false")))
            .collect();
        if let Some(sent) = sent.get("customProperties").and_then(Value::as_object) {
            custom.extend(sent.clone());
        }
        p.insert("customProperties".into(), Value::Object(custom));
    } else {
        p.entry("enableClientCertificate").or_insert(json!(false));
    }
    p.insert(
        "hostnameConfigurations".into(),
        hostname_configurations(name, sent.get("hostnameConfigurations"), now_ms),
    );
    if let Some(extra) = sent.get("additionalLocations") {
        p.insert(
            "additionalLocations".into(),
            additional_locations(name, extra, platform),
        );
    }
    p.entry("virtualNetworkType").or_insert(json!("None"));
    p.entry("certificates").or_insert(json!([]));
    p.entry("disableGateway").or_insert(json!(false));
    p.entry("publicNetworkAccess").or_insert(json!("Enabled"));
    p.entry("privateEndpointConnections").or_insert(json!([]));
    p.insert("platformVersion".into(), json!(platform));
    p
}

fn system_data(call: &Call<'_>, existing: Option<&Value>) -> Value {
    let now = format_utc_millis(call.now_ms);
    let who = call.state.operator.client_id.clone();
    let created = |key: &str, default: Value| {
        existing
            .and_then(|e| e.get(key))
            .cloned()
            .unwrap_or(default)
    };
    json!({
        "createdBy": created("createdBy", json!(who)),
        "createdByType": created("createdByType", json!("Application")),
        "createdAt": created("createdAt", json!(now)),
        "lastModifiedBy": who,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

fn put(call: &mut Call<'_>, id: &str, name: &str) -> Result<Reply, ArmError> {
    if !valid_name(name) {
        return Err(invalid_name(name));
    }
    let existing = call.state.arm.get(id).cloned();
    if let Some(existing) = &existing {
        if !matches!(existing.provisioning_state(), Some("Succeeded" | "Failed")) {
            return Err(locked(name));
        }
        check_if_match(call.request, Some(&existing.etag), false)?;
    } else if name_taken(call, name, id) {
        return Err(ArmError::conflict(
            "ServiceAlreadyExists",
            format!("Api service already exists: {name}"),
        ));
    } else if let Some(key) = super::deleted::find(&call.state.arm, subscription_of(id), name) {
        return restore(call, id, name, &key);
    }
    let body = call.request.body_object()?;
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .ok_or_else(ArmError::location_required)?
        .to_owned();
    let sku = sku(&body)?;
    let sent = properties_of(&body)?;
    required_str(&sent, "publisherEmail")?;
    required_str(&sent, "publisherName")?;
    let tags = tags(&body)?.unwrap_or_else(|| json!({}));
    let stored_id = existing
        .as_ref()
        .map_or_else(|| id.to_owned(), |e| e.id.clone());
    let stored_name = stored_id.rsplit('/').next().unwrap_or(name).to_owned();
    let identity = identity(
        call,
        body.get("identity"),
        existing.as_ref().and_then(|e| e.body.get("identity")),
        &stored_id,
        &stored_name,
    )?;
    let sku_name = sku["name"].as_str().unwrap_or_default().to_owned();
    let mut props = properties(
        &call.shared.base_url,
        &stored_name,
        &location,
        &sku_name,
        &sent,
        call.now_ms,
    );
    let created_at = existing
        .as_ref()
        .and_then(|e| e.property_str("createdAtUtc").map(str::to_owned))
        .unwrap_or_else(|| format_utc_millis(call.now_ms));
    props.insert("createdAtUtc".into(), json!(created_at));
    let etag = call.state.arm.next_etag();
    let mut service = Map::new();
    service.insert("id".into(), json!(stored_id));
    service.insert("name".into(), json!(stored_name));
    service.insert("type".into(), json!(TYPE));
    service.insert("tags".into(), tags);
    service.insert("location".into(), json!(location));
    service.insert("etag".into(), json!(etag));
    service.insert("properties".into(), Value::Object(props));
    service.insert("sku".into(), sku);
    if let Some(identity) = identity {
        service.insert("identity".into(), identity);
    }
    let system_data = system_data(
        call,
        existing.as_ref().and_then(|e| e.body.get("systemData")),
    );
    service.insert("systemData".into(), system_data);
    let mut resource = Resource::new(stored_id.clone(), service, etag, call.now_ms);
    let failed = existing
        .as_ref()
        .is_some_and(|e| e.provisioning_state() == Some("Failed"));
    if let Some(existing) = existing.as_ref().filter(|_| !failed) {
        resource.created_ms = existing.created_ms;
        resource.set_provisioning_state("Succeeded");
        resource
            .properties_mut()
            .insert("targetProvisioningState".into(), json!(""));
        let reply = Reply::ok(view(&resource)).etag(&resource.etag);
        call.state.arm.insert(resource);
        return Ok(reply);
    }
    // A service whose activation failed is activated again by the next PUT, as Azure retries it.
    let status = if failed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    start_create(call, resource, status)
}

/// A new service answers 201 `Created`/`Activating` and is polled on its `operationresults` URL,
/// which answers as a Location (202, then 200 with the service). Only under `Location`, as the
/// recordings of real service creation show: a client that finds `Azure-AsyncOperation` reads
/// the poll for a `status` and fails (`az apim create`: "No status found in body").
fn start_create(
    call: &mut Call<'_>,
    mut resource: Resource,
    status: StatusCode,
) -> Result<Reply, ArmError> {
    let id = resource.id.clone();
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &id,
            running_status: "InProgress",
            kind: OperationKind::ApimServiceCreate,
            final_status: 200,
            final_body: true,
            location_only: true,
        },
        |op| format!("{id}/operationresults/{op}"),
    );
    resource.set_provisioning_state("Created");
    resource
        .properties_mut()
        .insert("targetProvisioningState".into(), json!("Activating"));
    resource.pending = Some(Pending::new(&operation, PendingAction::Provision));
    let url = call.url(&format!(
        "{}?api-version={}&asyncResponse",
        operation.status_path, call.request.api_version
    ));
    let reply = Reply::new(status, Some(view(&resource)))
        .etag(&resource.etag)
        .header("location", url)
        .poll_hint(operation.until_ms, call.now_ms);
    call.state.arm.insert(resource);
    Ok(reply)
}

/// PATCH: tags replace the map, identity is resolved as on PUT, sku and properties merge.
fn patch(call: &mut Call<'_>, id: &str, name: &str, group: &str) -> Result<Reply, ArmError> {
    let existing = call
        .state
        .arm
        .get(id)
        .cloned()
        .ok_or_else(|| not_found(name, group))?;
    if existing.provisioning_state() != Some("Succeeded") {
        return Err(locked(name));
    }
    check_if_match(call.request, Some(&existing.etag), false)?;
    let body = call.request.body_object()?;
    let mut service = existing.body.clone();
    if let Some(tags) = tags(&body)? {
        service.insert("tags".into(), tags);
    }
    if body.contains_key("identity") {
        let identity = identity(
            call,
            body.get("identity"),
            existing.body.get("identity"),
            &existing.id,
            name,
        )?;
        if let Some(identity) = identity {
            service.insert("identity".into(), identity);
        }
    }
    if let Some(sku) = body.get("sku").and_then(Value::as_object) {
        let mut merged = existing
            .body
            .get("sku")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        merged.extend(sku.clone());
        let mut wrapper = Map::new();
        wrapper.insert("sku".into(), Value::Object(merged));
        service.insert("sku".into(), self::sku(&wrapper)?);
    }
    let sent = properties_of(&body)?;
    if !sent.is_empty() {
        let mut props = existing.properties().cloned().unwrap_or_default();
        for (k, v) in sent {
            if !READ_ONLY.contains(&k.as_str()) {
                props.insert(k, v);
            }
        }
        service.insert("properties".into(), Value::Object(props));
    }
    let etag = call.state.arm.next_etag();
    service.insert("etag".into(), json!(etag));
    service.insert(
        "systemData".into(),
        system_data(call, existing.body.get("systemData")),
    );
    let mut resource = existing;
    resource.body = service;
    resource.etag = etag;
    let reply = Reply::ok(view(&resource)).etag(&resource.etag);
    call.state.arm.insert(resource);
    Ok(reply)
}

/// DELETE answers the swagger's synchronous 200 with the removed service; its children, role
/// assignments scoped to it and its managed identity's principal go with it.
fn delete(call: &mut Call<'_>, id: &str, name: &str) -> Result<Reply, ArmError> {
    let Some(existing) = call.state.arm.get(id).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    if existing.provisioning_state() != Some("Succeeded") {
        return Err(locked(name));
    }
    check_if_match(call.request, Some(&existing.etag), false)?;
    let principal = existing
        .body
        .get("identity")
        .and_then(|i| i.get("principalId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(principal) = principal {
        remove_principal(call, &principal);
    }
    call.state.arm.remove_tree(id);
    if let Some(deleted) = super::deleted::soft_deleted(&existing, call.now_ms) {
        call.state
            .arm
            .deleted_services
            .insert(deleted.key(), deleted);
    }
    Ok(Reply::ok(view(&existing)))
}

fn subscription_of(id: &str) -> &str {
    id.split('/').nth(2).unwrap_or_default()
}

/// A PUT on a soft-deleted name: refused unless `properties.restore` is true, which brings the
/// service back as it was (its children and identity were not kept) and ignores the rest.
fn restore(call: &mut Call<'_>, id: &str, name: &str, key: &str) -> Result<Reply, ArmError> {
    let body = call.request.body_object()?;
    let wanted = body
        .get("properties")
        .and_then(|p| p.get("restore"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !wanted {
        return Err(super::deleted::in_soft_deleted_state(name));
    }
    let Some(mut service) = super::deleted::take(&mut call.state.arm, key) else {
        return Err(super::deleted::in_soft_deleted_state(name));
    };
    service.remove("identity");
    let etag = call.state.arm.next_etag();
    let resource = Resource::new(id.to_owned(), service, etag, call.now_ms);
    let reply = Reply::new(StatusCode::CREATED, Some(view(&resource))).etag(&resource.etag);
    call.state.arm.insert(resource);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_dns_label_rule() {
        assert!(valid_name("apim-llm-prod"));
        assert!(valid_name("a"));
        assert!(!valid_name("1apim"));
        assert!(!valid_name("apim-"));
        assert!(!valid_name("apim_llm"));
        assert!(!valid_name(&"a".repeat(51)));
    }

    #[test]
    fn identity_types_are_read_ignoring_case_and_spaces() {
        assert_eq!(
            identity_kinds(&json!({"type": "SystemAssigned,UserAssigned"})).ok(),
            Some((true, true))
        );
        assert_eq!(
            identity_kinds(&json!({"type": "none"})).ok(),
            Some((false, false))
        );
        assert!(identity_kinds(&json!({"type": "Both"})).is_err());
    }

    #[test]
    fn the_builtin_hostname_gives_way_to_a_custom_default() {
        let custom = json!([{ "type": "Proxy", "hostName": "api.contoso.example", "defaultSslBinding": true, "keyVaultId": "https://kv/secrets/x" }]);
        let all = hostname_configurations("Apim1", Some(&custom), 0);
        assert_eq!(all[0]["hostName"], "apim1.azure-api.net");
        assert_eq!(all[0]["defaultSslBinding"], false);
        assert_eq!(all[1]["certificateSource"], "Custom");
        assert!(all[1]["certificate"]["thumbprint"].is_string());
    }
}
