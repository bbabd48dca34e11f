//! Microsoft Graph v1.0, the part `provision` drives: applications (with the `uniqueName` upsert),
//! service principals and the deleted-items bin, each scoped to the caller's tenant.
//!
//! What makes the real Graph awkward to script against is reproduced on purpose, so a client's
//! retries and the order of its writes are tested rather than assumed (entra.md §1, §2.2):
//! reads by alternate key and `$filter` lag behind writes, soft-deleted apps keep their
//! identifier URIs, a preauthorization can't name a scope added by the same request, and an
//! enabled scope can't be dropped.
//!
//! One catch-all route with its own path parsing: alternate keys such as
//! `applications(uniqueName='x')` are not path segments a router can match.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::auth;
use super::state::{DirectoryObject, ObjectKind, State};
use super::{Shared, new_guid, now_ms};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/v1.0/{*rest}", any(handle))
}

/// Graph's content type: clients that check for `application/json` accept it.
const CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// What Graph answers for apps created without one (its own create sample shows it).
const DEFAULT_AUDIENCE: &str = "AzureADandPersonalMicrosoftAccount";
const AUDIENCES: [&str; 4] = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

/// Properties the directory assigns. A client that reads an object and writes it back whole sends
/// them unchanged, which is accepted; changing one is refused.
const APPLICATION_READ_ONLY: [&str; 5] = [
    "id",
    "appId",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
];
const SERVICE_PRINCIPAL_READ_ONLY: [&str; 6] = [
    "id",
    "appId",
    "appOwnerOrganizationId",
    "appDisplayName",
    "deletedDateTime",
    "signInAudience",
];
/// Collections whose items must be strings.
const STRING_LISTS: [&str; 6] = [
    "identifierUris",
    "tags",
    "servicePrincipalNames",
    "replyUrls",
    "alternativeNames",
    "notificationEmailAddresses",
];

fn collection(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "applications",
        ObjectKind::ServicePrincipal => "servicePrincipals",
    }
}

fn type_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "application",
        ObjectKind::ServicePrincipal => "servicePrincipal",
    }
}

/// The entity name Graph's validation messages use.
fn resource(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "Application",
        ObjectKind::ServicePrincipal => "ServicePrincipal",
    }
}

/// What `$filter` may test: single-valued properties with `eq`/`startswith`, multi-valued ones
/// only through `any` (as Graph requires).
fn filterable(kind: ObjectKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ObjectKind::Application => (
            &[
                "id",
                "appId",
                "displayName",
                "uniqueName",
                "signInAudience",
                "publisherDomain",
            ],
            &["identifierUris", "tags"],
        ),
        ObjectKind::ServicePrincipal => (
            &[
                "id",
                "appId",
                "displayName",
                "servicePrincipalType",
                "appOwnerOrganizationId",
            ],
            &["servicePrincipalNames", "tags"],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and answers

/// A Graph error before it gets its `innerError`.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    fn not_found(what: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// OData's answer to a URL it can't map onto the model.
    fn unknown_segment(segment: &str) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    fn unreadable_body() -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    fn method_not_allowed() -> Failure {
        Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    fn invalid_value(property: &str, kind: ObjectKind) -> Failure {
        Failure::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{}'.",
            resource(kind)
        ))
    }

    fn already_exists(property: &str) -> Failure {
        Failure::bad_request(format!(
            "Another object with the same value for property {property} already exists."
        ))
    }

    /// An SP for an app the directory can't see (yet): the replication race of entra.md §1.3.
    fn no_backing_application(app_id: &str) -> Failure {
        let message = format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        );
        Failure {
            details: Some(json!([{
                "code": "NoBackingApplicationObject",
                "message": message,
                "target": "appId",
            }])),
            ..Failure::bad_request(message)
        }
    }
}

/// What every answer carries: the ids Graph echoes, and the base of its `@odata.context`.
struct Exchange {
    metadata: String,
    request_id: String,
    client_request_id: Option<String>,
    base_url: String,
}

impl Exchange {
    fn new(shared: &Shared, headers: &HeaderMap) -> Exchange {
        Exchange {
            metadata: format!("{}/v1.0/$metadata", shared.base_url),
            request_id: new_guid(),
            client_request_id: headers
                .get("client-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            base_url: shared.base_url.clone(),
        }
    }

    fn context(&self, fragment: &str) -> String {
        format!("{}#{fragment}", self.metadata)
    }

    fn answer(&self, status: StatusCode, body: Option<Value>) -> Response {
        let mut response = match body {
            Some(body) => {
                let mut r = (status, body.to_string()).into_response();
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
                r
            }
            None => status.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert("odata-version", HeaderValue::from_static("4.0"));
        // The server's middleware keeps a `request-id` set here, so header and body agree.
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert("request-id", v);
        }
        let client_request_id = self
            .client_request_id
            .as_deref()
            .unwrap_or(&self.request_id);
        if let Ok(v) = HeaderValue::from_str(client_request_id) {
            headers.insert("client-request-id", v);
        }
        response
    }

    fn fail(&self, failure: Failure) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(failure.code));
        error.insert("message".into(), json!(failure.message));
        if let Some(details) = failure.details {
            error.insert("details".into(), details);
        }
        error.insert(
            "innerError".into(),
            json!({
                "date": timestamp(now_ms()).trim_end_matches('Z'),
                "request-id": self.request_id,
                // Graph reuses the request id when the client sent none.
                "client-request-id": self.client_request_id.as_deref().unwrap_or(&self.request_id),
            }),
        );
        let mut response = self.answer(failure.status, Some(json!({ "error": error })));
        if failure.status == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                self.base_url
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert("www-authenticate", v);
            }
        }
        response
    }
}

/// `2026-01-01T00:00:00Z`: Graph's `createdDateTime`/`deletedDateTime` form, to the second.
fn timestamp(ms: u64) -> String {
    crate::clock::format_utc_millis(ms)
}

// ---------------------------------------------------------------------------------------------
// Request routing

/// How a request names an object.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Id(String),
    AppId(String),
    UniqueName(String),
}

impl Key {
    fn value(&self) -> &str {
        match self {
            Key::Id(v) | Key::AppId(v) | Key::UniqueName(v) => v,
        }
    }

    fn is_alternate(&self) -> bool {
        !matches!(self, Key::Id(_))
    }

    fn matches(&self, object: &DirectoryObject) -> bool {
        let property = match self {
            Key::Id(_) => "id",
            Key::AppId(_) => "appId",
            Key::UniqueName(_) => "uniqueName",
        };
        object
            .str(property)
            .is_some_and(|v| v.eq_ignore_ascii_case(self.value()))
    }
}

#[derive(Debug, PartialEq)]
enum Target {
    Collection(ObjectKind),
    Item(ObjectKind, Key),
    Deleted(ObjectKind),
    DeletedItem(String),
    Restore(String),
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An OData string literal (`'it''s'`) or a bare token; `None` when a quote is left open.
fn literal(text: &str) -> Option<String> {
    let text = text.trim();
    let Some(inner) = text.strip_prefix('\'') else {
        return Some(text.to_owned());
    };
    let inner = inner.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// `applications(appId='…')` → (`applications`, the key); a plain segment has no key.
fn split_key(segment: &str) -> Result<(&str, Option<Key>), Failure> {
    let Some(open) = segment.find('(') else {
        return Ok((segment, None));
    };
    let inner = segment[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| Failure::unknown_segment(segment))?;
    let (property, value) = match inner.split_once('=') {
        Some((p, v)) if !p.contains('\'') => (p.trim(), v),
        _ => ("id", inner),
    };
    let value = literal(value).ok_or_else(|| Failure::unknown_segment(segment))?;
    let key = if property.eq_ignore_ascii_case("id") {
        Key::Id(value)
    } else if property.eq_ignore_ascii_case("appId") {
        Key::AppId(value)
    } else if property.eq_ignore_ascii_case("uniqueName") {
        Key::UniqueName(value)
    } else {
        return Err(Failure::unknown_segment(segment));
    };
    Ok((&segment[..open], Some(key)))
}

fn kind_of_collection(name: &str) -> Option<ObjectKind> {
    [ObjectKind::Application, ObjectKind::ServicePrincipal]
        .into_iter()
        .find(|k| collection(*k).eq_ignore_ascii_case(name))
}

/// `microsoft.graph.application` → the kind it casts to.
fn kind_of_cast(name: &str) -> Option<ObjectKind> {
    [ObjectKind::Application, ObjectKind::ServicePrincipal]
        .into_iter()
        .find(|k| format!("microsoft.graph.{}", type_name(*k)).eq_ignore_ascii_case(name))
}

fn parse_target(path: &str) -> Result<Target, Failure> {
    let rest = path
        .strip_prefix("/v1.0/")
        .unwrap_or_default()
        .trim_end_matches('/');
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let (head, key) = split_key(&segments[0])?;
    if let Some(kind) = kind_of_collection(head) {
        if kind == ObjectKind::ServicePrincipal && matches!(key, Some(Key::UniqueName(_))) {
            return Err(Failure::unknown_segment(&segments[0]));
        }
        return match (key, &segments[1..]) {
            (None, []) => Ok(Target::Collection(kind)),
            (None, [id]) => Ok(Target::Item(kind, Key::Id(id.clone()))),
            (Some(key), []) => Ok(Target::Item(kind, key)),
            (_, [.., last]) => Err(Failure::unknown_segment(last)),
        };
    }
    let deleted_items = head.eq_ignore_ascii_case("directory")
        && key.is_none()
        && segments
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case("deletedItems"));
    if deleted_items {
        if let [cast] = &segments[2..]
            && let Some(kind) = kind_of_cast(cast)
        {
            return Ok(Target::Deleted(kind));
        }
        return match &segments[2..] {
            [id] => Ok(Target::DeletedItem(id.clone())),
            [id, action]
                if action.eq_ignore_ascii_case("restore")
                    || action.eq_ignore_ascii_case("microsoft.graph.restore") =>
            {
                Ok(Target::Restore(id.clone()))
            }
            [] => Err(Failure::method_not_allowed()),
            [.., last] => Err(Failure::unknown_segment(last)),
        };
    }
    Err(Failure::unknown_segment(head))
}

/// The query options the sandbox honours; other `$` options are ignored.
#[derive(Debug, Default)]
struct Options {
    filter: Option<String>,
    select: Option<Vec<String>>,
}

impl Options {
    fn parse(uri: &Uri) -> Result<Options, Failure> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Invalid query: {e}"),
            )
        })?;
        let mut options = Options::default();
        for (name, value) in pairs {
            if name.eq_ignore_ascii_case("$filter") {
                options.filter = Some(value);
            } else if name.eq_ignore_ascii_case("$select") {
                options.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
        }
        Ok(options)
    }

    /// The selected properties, by their proper names; all when there is no `$select`.
    fn selection(&self, kind: ObjectKind) -> Result<Option<Vec<String>>, Failure> {
        let Some(names) = &self.select else {
            return Ok(None);
        };
        let template = template_for(kind);
        names
            .iter()
            .map(|name| {
                template
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .cloned()
                    .ok_or_else(|| {
                        Failure::new(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!(
                                "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                                type_name(kind)
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn project(body: &Map<String, Value>, selection: Option<&[String]>) -> Value {
    match selection {
        None => Value::Object(body.clone()),
        Some(names) => Value::Object(
            names
                .iter()
                .map(|n| (n.clone(), body.get(n).cloned().unwrap_or(Value::Null)))
                .collect(),
        ),
    }
}

/// The object preceded by its `@odata` annotations.
fn annotated(annotations: &[(&str, String)], body: &Map<String, Value>) -> Value {
    let mut out: Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    out.extend(body.clone());
    Value::Object(out)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let exchange = Exchange::new(&shared, &headers);
    match serve(&shared, &exchange, &method, &uri, &headers, &body) {
        Ok(response) => response,
        Err(failure) => exchange.fail(failure),
    }
}

fn serve(
    shared: &Shared,
    exchange: &Exchange,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Failure> {
    let caller = auth::verify_bearer(shared, headers, &auth::GRAPH_AUDIENCES).map_err(|e| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            e.message(),
        )
    })?;
    let tenant = shared
        .state()
        .tenant(&caller.tenant)
        .map_or(caller.tenant, |t| t.id.clone());
    let target = parse_target(uri.path())?;
    let call = Call {
        shared,
        exchange,
        tenant,
        headers,
        body,
        options: Options::parse(uri)?,
    };
    use ObjectKind::{Application, ServicePrincipal};
    match (method.as_str(), target) {
        ("GET", Target::Collection(kind)) => call.list(kind),
        ("POST", Target::Collection(Application)) => call.post_application(),
        ("POST", Target::Collection(ServicePrincipal)) => call.post_service_principal(),
        ("GET", Target::Item(kind, key)) => call.get(kind, &key),
        ("PATCH", Target::Item(Application, key)) => call.patch_application(&key),
        ("PATCH", Target::Item(ServicePrincipal, key)) => call.patch_service_principal(&key),
        ("DELETE", Target::Item(kind, key)) => call.delete(kind, &key),
        ("GET", Target::Deleted(kind)) => call.list_deleted(kind),
        ("GET", Target::DeletedItem(id)) => call.get_deleted(&id),
        ("DELETE", Target::DeletedItem(id)) => call.purge(&id),
        ("POST", Target::Restore(id)) => call.restore(&id),
        _ => Err(Failure::method_not_allowed()),
    }
}

// ---------------------------------------------------------------------------------------------
// Objects as Graph returns them

fn application_template(
    id: &str,
    app_id: &str,
    publisher_domain: &str,
    created: &str,
    token_version: Value,
) -> Map<String, Value> {
    let value = json!({
        "id": id,
        "deletedDateTime": null,
        "appId": app_id,
        "applicationTemplateId": null,
        "createdDateTime": created,
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": "",
        "groupMembershipClaims": null,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "notes": null,
        "publisherDomain": publisher_domain,
        "serviceManagementReference": null,
        "signInAudience": DEFAULT_AUDIENCE,
        "tags": [],
        "tokenEncryptionKeyId": null,
        "uniqueName": null,
        "addIns": [],
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": token_version,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": {
            "logoUrl": null,
            "marketingUrl": null,
            "privacyStatementUrl": null,
            "supportUrl": null,
            "termsOfServiceUrl": null,
        },
        "keyCredentials": [],
        "optionalClaims": null,
        "parentalControlSettings": {
            "countriesBlockedForMinors": [],
            "legalAgeGroupRule": "Allow",
        },
        "passwordCredentials": [],
        "publicClient": { "redirectUris": [] },
        "requiredResourceAccess": [],
        "spa": { "redirectUris": [] },
        "verifiedPublisher": {
            "displayName": null,
            "verifiedPublisherId": null,
            "addedDateTime": null,
        },
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "redirectUriSettings": [],
            "implicitGrantSettings": {
                "enableAccessTokenIssuance": false,
                "enableIdTokenIssuance": false,
            },
        },
    });
    value.as_object().cloned().unwrap_or_default()
}

/// The properties of an SP that mirror its application; they follow the app's changes.
fn mirrored_from(app: &Map<String, Value>) -> Map<String, Value> {
    let app_id = app.get("appId").and_then(Value::as_str).unwrap_or_default();
    let mut names = vec![json!(app_id)];
    names.extend(list(app, "identifierUris").iter().cloned());
    let mut mirrored = Map::new();
    mirrored.insert("appDisplayName".into(), app["displayName"].clone());
    mirrored.insert("displayName".into(), app["displayName"].clone());
    mirrored.insert("servicePrincipalNames".into(), Value::Array(names));
    mirrored.insert("signInAudience".into(), app["signInAudience"].clone());
    mirrored.insert("appRoles".into(), json!(list(app, "appRoles")));
    mirrored.insert("oauth2PermissionScopes".into(), json!(scopes(app)));
    mirrored.insert("info".into(), app["info"].clone());
    mirrored
}

fn service_principal_template(
    id: &str,
    tenant: &str,
    publisher: &str,
    app: &Map<String, Value>,
) -> Map<String, Value> {
    let value = json!({
        "id": id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": [],
        "appDescription": null,
        "appId": app.get("appId").cloned().unwrap_or(Value::Null),
        "applicationTemplateId": null,
        "appOwnerOrganizationId": tenant,
        "appRoleAssignmentRequired": false,
        "description": null,
        "disabledByMicrosoftStatus": null,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "publisherName": publisher,
        "replyUrls": [],
        "samlSingleSignOnSettings": null,
        "servicePrincipalType": "Application",
        "tags": [],
        "tokenEncryptionKeyId": null,
        "addIns": [],
        "keyCredentials": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {
            "displayName": null,
            "verifiedPublisherId": null,
            "addedDateTime": null,
        },
    });
    let mut sp = value.as_object().cloned().unwrap_or_default();
    sp.extend(mirrored_from(app));
    sp
}

/// A template of each kind, for the property names and types a request may use.
fn template_for(kind: ObjectKind) -> Map<String, Value> {
    let app = application_template("", "", "", "", Value::Null);
    match kind {
        ObjectKind::Application => app,
        ObjectKind::ServicePrincipal => service_principal_template("", "", "", &app),
    }
}

fn list<'a>(body: &'a Map<String, Value>, name: &str) -> &'a [Value] {
    body.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn strings(values: &[Value]) -> impl Iterator<Item = &str> {
    values.iter().filter_map(Value::as_str)
}

/// Refuses properties the entity doesn't have, read-only ones being changed, and values of the
/// wrong shape, the way the directory does before it writes anything.
fn check_properties(
    kind: ObjectKind,
    body: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<(), Failure> {
    let template = template_for(kind);
    let read_only: &[&str] = match kind {
        ObjectKind::Application => &APPLICATION_READ_ONLY,
        ObjectKind::ServicePrincipal => &SERVICE_PRINCIPAL_READ_ONLY,
    };
    for (name, value) in body {
        if name.starts_with('@') {
            continue;
        }
        if read_only.contains(&name.as_str()) {
            if current.and_then(|c| c.get(name)) == Some(value) {
                continue;
            }
            return Err(Failure::bad_request(format!(
                "Property '{name}' is read-only and cannot be set."
            )));
        }
        let Some(default) = template.get(name) else {
            return Err(Failure::bad_request(format!(
                "Property '{name}' does not exist as a declared property or extension property."
            )));
        };
        let fits = match default {
            Value::Array(_) => value.as_array().is_some_and(|items| {
                !STRING_LISTS.contains(&name.as_str()) || items.iter().all(Value::is_string)
            }),
            Value::Object(_) => value.is_object() || value.is_null(),
            Value::String(_) => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            Value::Bool(_) => value.is_boolean(),
            Value::Number(_) => value.is_number(),
            Value::Null => true,
        };
        let fits = fits
            && match name.as_str() {
                "signInAudience" => value.as_str().is_some_and(|a| AUDIENCES.contains(&a)),
                "uniqueName" => {
                    value.is_null() || value.as_str().is_some_and(|s| !s.trim().is_empty())
                }
                "api" => api_is_well_formed(value),
                _ => true,
            };
        if !fits {
            return Err(Failure::invalid_value(name, kind));
        }
    }
    Ok(())
}

fn api_is_well_formed(api: &Value) -> bool {
    let Some(api) = api.as_object() else {
        return api.is_null();
    };
    let guid = |v: &Value| v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok());
    let objects = |name: &str| match api.get(name) {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Value::as_object).collect(),
        Some(_) => None,
    };
    let version_ok = api
        .get("requestedAccessTokenVersion")
        .is_none_or(|v| v.is_null() || v == &json!(1) || v == &json!(2));
    let scopes_ok = objects("oauth2PermissionScopes").is_some_and(|scopes| {
        scopes
            .iter()
            .all(|s| s.get("id").is_some_and(guid) && s.get("value").is_some_and(Value::is_string))
    });
    let preauth_ok = objects("preAuthorizedApplications").is_some_and(|entries| {
        entries.iter().all(|p| {
            p.get("appId").is_some_and(Value::is_string)
                && p.get("delegatedPermissionIds")
                    .is_none_or(|ids| ids.as_array().is_some_and(|ids| ids.iter().all(guid)))
        })
    });
    version_ok && scopes_ok && preauth_ok
}

/// Writes the request's properties over the object. Properties replace whole, nested objects
/// included (a partial `api` drops its siblings, entra.md §2.2); what a nested object leaves out
/// comes back with Graph's defaults.
fn merge(object: &mut Map<String, Value>, body: Map<String, Value>, template: &Map<String, Value>) {
    for (name, value) in body {
        if !name.starts_with('@') {
            object.insert(name, value);
        }
    }
    for (name, default) in template {
        let Value::Object(defaults) = default else {
            continue;
        };
        match object.get_mut(name) {
            Some(Value::Object(given)) => {
                for (k, v) in defaults {
                    given.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            _ => {
                object.insert(name.clone(), default.clone());
            }
        }
    }
}

fn scopes(app: &Map<String, Value>) -> &[Value] {
    app.get("api")
        .and_then(Value::as_object)
        .map_or(&[], |api| list(api, "oauth2PermissionScopes"))
}

/// Ids (lowercase) of scopes or roles, with whether each is enabled.
fn entitlements(items: &[Value]) -> Vec<(String, bool)> {
    items
        .iter()
        .filter_map(|item| {
            let id = item.get("id")?.as_str()?.to_ascii_lowercase();
            Some((id, item.get("isEnabled") != Some(&Value::Bool(false))))
        })
        .collect()
}

fn ids(items: &[Value]) -> HashSet<String> {
    entitlements(items).into_iter().map(|(id, _)| id).collect()
}

/// The rules Graph applies between the stored app and the one a write would leave: an enabled
/// scope or role can't vanish, and a preauthorization may only name scopes the app already had.
fn check_entitlements(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Result<(), Failure> {
    let pairs = [
        (scopes(before), scopes(after)),
        (list(before, "appRoles"), list(after, "appRoles")),
    ];
    for (old, new) in pairs {
        let kept = ids(new);
        if entitlements(old)
            .iter()
            .any(|(id, enabled)| *enabled && !kept.contains(id))
        {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "CannotDeleteOrUpdateEnabledEntitlement",
                "Permission (scope or role) cannot be deleted or updated unless disabled first.",
            ));
        }
    }
    let (stored, kept) = (ids(scopes(before)), ids(scopes(after)));
    let preauthorized = after
        .get("api")
        .and_then(Value::as_object)
        .map_or(&[][..], |api| list(api, "preAuthorizedApplications"));
    let unknown = preauthorized
        .iter()
        .filter_map(|p| p.get("delegatedPermissionIds").and_then(Value::as_array))
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_ascii_lowercase))
        .any(|id| !stored.contains(&id) || !kept.contains(&id));
    if unknown {
        return Err(Failure::bad_request(
            "delegatedPermissionIds has a Permission Id that cannot be found",
        ));
    }
    Ok(())
}

/// Alternate keys are unique in the tenant: `uniqueName` among live apps, identifier URIs among
/// live and soft-deleted ones alike (a deleted app keeps its URIs until purged, entra.md §1.1).
fn check_unique(
    state: &State,
    tenant: &str,
    app: &Map<String, Value>,
    own_id: &str,
) -> Result<(), Failure> {
    let others = || {
        state.objects.iter().filter(|o| {
            o.kind == ObjectKind::Application
                && o.tenant_id == tenant
                && !o.id().eq_ignore_ascii_case(own_id)
        })
    };
    if let Some(name) = app.get("uniqueName").and_then(Value::as_str)
        && others().any(|o| {
            o.deleted_ms.is_none()
                && o.str("uniqueName")
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    {
        return Err(Failure::already_exists("uniqueName"));
    }
    for uri in strings(list(app, "identifierUris")) {
        if others()
            .any(|o| strings(list(&o.body, "identifierUris")).any(|u| u.eq_ignore_ascii_case(uri)))
        {
            return Err(Failure::already_exists("identifierUris"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `$filter`

/// A parsed `$filter`: the part of OData that directory objects support and `provision` uses.
#[derive(Debug)]
enum Filter {
    Property(String, Test),
    Any(String, Test),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Directory string comparisons ignore case.
#[derive(Debug)]
enum Test {
    Eq(String),
    StartsWith(String),
}

impl Test {
    fn passes(&self, value: &str) -> bool {
        let value = value.to_lowercase();
        match self {
            Test::Eq(x) => value == x.to_lowercase(),
            Test::StartsWith(x) => value.starts_with(&x.to_lowercase()),
        }
    }
}

impl Filter {
    fn matches(&self, body: &Map<String, Value>) -> bool {
        match self {
            Filter::Property(p, test) => body
                .get(p)
                .and_then(Value::as_str)
                .is_some_and(|v| test.passes(v)),
            Filter::Any(p, test) => strings(list(body, p)).any(|v| test.passes(v)),
            Filter::And(a, b) => a.matches(body) && b.matches(body),
            Filter::Or(a, b) => a.matches(body) || b.matches(body),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
    Colon,
}

#[derive(Debug)]
enum FilterError {
    Syntax(String),
    Unsupported(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            ',' => tokens.push(Token::Comma),
            ':' => tokens.push(Token::Colon),
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError::Syntax(format!(
                                "unterminated string literal in '{text}'"
                            )));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Text(s));
            }
            c if c.is_alphanumeric() || "_./-$".contains(c) => {
                let mut word = c.to_string();
                while let Some(&c) = chars.get(i) {
                    if !(c.is_alphanumeric() || "_./-$".contains(c)) {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                return Err(FilterError::Syntax(format!(
                    "syntax error at position {} in '{text}'",
                    i - 1
                )));
            }
        }
    }
    Ok(tokens)
}

struct FilterParser {
    tokens: Vec<Token>,
    at: usize,
    scalars: &'static [&'static str],
    lists: &'static [&'static str],
}

impl FilterParser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn expect(&mut self, token: Token) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(FilterError::Syntax(format!(
                "expected {token:?}, found {other:?}"
            ))),
        }
    }

    fn word(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(FilterError::Syntax(format!(
                "expected a name, found {other:?}"
            ))),
        }
    }

    fn text(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some(Token::Text(s)) => Ok(s),
            Some(Token::Word(w)) => Err(FilterError::Unsupported(format!(
                "only string literals are supported, not `{w}`"
            ))),
            other => Err(FilterError::Syntax(format!(
                "expected a literal, found {other:?}"
            ))),
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            return true;
        }
        false
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.primary()?;
        while self.eat_word("and") {
            left = Filter::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        let lambda = match self.peek() {
            Some(Token::Word(w)) => w
                .len()
                .checked_sub(4)
                .filter(|&cut| w.is_char_boundary(cut) && w[cut..].eq_ignore_ascii_case("/any"))
                .map(|cut| w[..cut].to_owned()),
            _ => None,
        };
        if let Some(collection) = lambda {
            self.at += 1;
            self.expect(Token::Open)?;
            let variable = self.word()?;
            self.expect(Token::Colon)?;
            let (subject, test) = self.comparison()?;
            self.expect(Token::Close)?;
            if subject != variable {
                return Err(FilterError::Unsupported(format!(
                    "`{subject}` is not the lambda variable `{variable}`"
                )));
            }
            return Ok(Filter::Any(property(self.lists, &collection)?, test));
        }
        let (subject, test) = self.comparison()?;
        Ok(Filter::Property(property(self.scalars, &subject)?, test))
    }

    /// `path eq 'text'` or `startswith(path,'text')`.
    fn comparison(&mut self) -> Result<(String, Test), FilterError> {
        let word = self.word()?;
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            if !word.eq_ignore_ascii_case("startswith") {
                return Err(FilterError::Unsupported(format!("function `{word}`")));
            }
            let subject = self.word()?;
            self.expect(Token::Comma)?;
            let text = self.text()?;
            self.expect(Token::Close)?;
            return Ok((subject, Test::StartsWith(text)));
        }
        let operator = self.word()?;
        if !operator.eq_ignore_ascii_case("eq") {
            return Err(FilterError::Unsupported(format!("operator `{operator}`")));
        }
        Ok((word, Test::Eq(self.text()?)))
    }
}

fn property(allowed: &[&str], name: &str) -> Result<String, FilterError> {
    allowed
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .map(|p| (*p).to_owned())
        .ok_or_else(|| FilterError::Unsupported(format!("property:{name}")))
}

fn parse_filter(text: &str, kind: ObjectKind) -> Result<Filter, Failure> {
    let (scalars, lists) = filterable(kind);
    let parsed = tokenize(text).and_then(|tokens| {
        let mut parser = FilterParser {
            tokens,
            at: 0,
            scalars,
            lists,
        };
        let filter = parser.or()?;
        match parser.peek() {
            None => Ok(filter),
            Some(extra) => Err(FilterError::Syntax(format!("unexpected {extra:?}"))),
        }
    });
    parsed.map_err(|e| match e {
        FilterError::Syntax(why) => Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid filter clause: {why}"),
        ),
        FilterError::Unsupported(what) => Failure::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            match what.strip_prefix("property:") {
                Some(name) => format!(
                    "Unsupported or invalid query filter clause specified for property '{name}' of resource '{}'.",
                    resource(kind)
                ),
                None => format!("Unsupported query: {what}."),
            },
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Operations

/// One authenticated request.
struct Call<'a> {
    shared: &'a Shared,
    exchange: &'a Exchange,
    tenant: String,
    headers: &'a HeaderMap,
    body: &'a [u8],
    options: Options,
}

impl Call<'_> {
    fn json_body(&self) -> Result<Map<String, Value>, Failure> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Failure::unreadable_body()),
        }
    }

    fn prefers_create(&self) -> bool {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("create-if-missing"))
    }

    fn entity_context(&self, kind: ObjectKind) -> String {
        self.exchange
            .context(&format!("{}/$entity", collection(kind)))
    }

    /// The live object a key names. Reads by alternate key come from a replica that hasn't seen
    /// objects inside their replication window; writes and reads by id reach the primary.
    fn find(&self, state: &State, kind: ObjectKind, key: &Key, replica: bool) -> Option<usize> {
        state.objects.iter().position(|o| {
            o.kind == kind
                && o.tenant_id == self.tenant
                && o.deleted_ms.is_none()
                && key.matches(o)
                && !(replica && key.is_alternate() && self.shared.replicating(o.created_ms))
        })
    }

    fn find_deleted(&self, state: &State, id: &str) -> Option<usize> {
        state.objects.iter().position(|o| {
            o.tenant_id == self.tenant && o.deleted_ms.is_some() && o.id().eq_ignore_ascii_case(id)
        })
    }

    /// Graph refuses malformed object ids before looking anything up.
    fn check_object_id(key: &Key) -> Result<(), Failure> {
        match key {
            Key::Id(id) if uuid::Uuid::parse_str(id).is_err() => Err(Failure::bad_request(
                format!("Invalid object identifier '{id}'."),
            )),
            _ => Ok(()),
        }
    }

    fn list(&self, kind: ObjectKind) -> Result<Response, Failure> {
        let filter = self
            .options
            .filter
            .as_deref()
            .map(|f| parse_filter(f, kind))
            .transpose()?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let value: Vec<Value> = state
            .live(&self.tenant, kind)
            .filter(|o| !self.shared.replicating(o.created_ms))
            .filter(|o| filter.as_ref().is_none_or(|f| f.matches(&o.body)))
            .map(|o| project(&o.body, selection.as_deref()))
            .collect();
        let context = match &selection {
            Some(names) => format!("{}({})", collection(kind), names.join(",")),
            None => collection(kind).to_owned(),
        };
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(json!({ "@odata.context": self.exchange.context(&context), "value": value })),
        ))
    }

    fn get(&self, kind: ObjectKind, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let index = self
            .find(&state, kind, key, true)
            .ok_or_else(|| Failure::not_found(key.value()))?;
        let body = project(&state.objects[index].body, selection.as_deref());
        let body = body.as_object().cloned().unwrap_or_default();
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[("@odata.context", self.entity_context(kind))],
                &body,
            )),
        ))
    }

    fn created(&self, kind: ObjectKind, body: &Map<String, Value>) -> Response {
        self.exchange.answer(
            StatusCode::CREATED,
            Some(annotated(
                &[("@odata.context", self.entity_context(kind))],
                body,
            )),
        )
    }

    fn post_application(&self) -> Result<Response, Failure> {
        let body = self.json_body()?;
        let mut state = self.shared.state();
        let app = self.create_application(&mut state, body, None)?;
        self.shared.persist(&state);
        Ok(self.created(ObjectKind::Application, &app))
    }

    fn create_application(
        &self,
        state: &mut State,
        mut body: Map<String, Value>,
        unique_name: Option<&str>,
    ) -> Result<Map<String, Value>, Failure> {
        check_properties(ObjectKind::Application, &body, None)?;
        if !body.contains_key("displayName") {
            return Err(Failure::bad_request(
                "Property 'displayName' is required when creating an application.",
            ));
        }
        if let Some(name) = unique_name {
            if body
                .get("uniqueName")
                .and_then(Value::as_str)
                .is_some_and(|given| given != name)
            {
                return Err(Failure::bad_request(
                    "The uniqueName in the request body differs from the one in the URL.",
                ));
            }
            body.insert("uniqueName".into(), json!(name));
        }
        let audience = body
            .get("signInAudience")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_AUDIENCE);
        // Personal accounts only get v2 tokens, so Graph starts such apps at version 2.
        let version = if audience == DEFAULT_AUDIENCE {
            json!(2)
        } else {
            Value::Null
        };
        let domain = state
            .tenant(&self.tenant)
            .map(|t| t.domain.clone())
            .unwrap_or_default();
        let now = now_ms();
        let template =
            application_template(&new_guid(), &new_guid(), &domain, &timestamp(now), version);
        let mut app = template.clone();
        merge(&mut app, body, &template);
        check_entitlements(&Map::new(), &app)?;
        let id = app["id"].as_str().unwrap_or_default().to_owned();
        check_unique(state, &self.tenant, &app, &id)?;
        state.objects.push(DirectoryObject {
            kind: ObjectKind::Application,
            tenant_id: self.tenant.clone(),
            created_ms: now,
            deleted_ms: None,
            body: app.clone(),
        });
        Ok(app)
    }

    fn update_application(
        &self,
        state: &mut State,
        index: usize,
        body: Map<String, Value>,
    ) -> Result<(), Failure> {
        let before = state.objects[index].body.clone();
        check_properties(ObjectKind::Application, &body, Some(&before))?;
        if let (Some(Value::String(old)), Some(new)) =
            (before.get("uniqueName"), body.get("uniqueName"))
            && Some(old.as_str()) != new.as_str()
        {
            return Err(Failure::bad_request(
                "Property 'uniqueName' can be set only once and is immutable afterwards.",
            ));
        }
        let text = |name: &str| before.get(name).and_then(Value::as_str).unwrap_or_default();
        let template = application_template(
            text("id"),
            text("appId"),
            text("publisherDomain"),
            text("createdDateTime"),
            Value::Null,
        );
        let mut after = before.clone();
        merge(&mut after, body, &template);
        check_entitlements(&before, &after)?;
        check_unique(state, &self.tenant, &after, text("id"))?;
        self.mirror_to_service_principal(state, &after);
        state.objects[index].body = after;
        Ok(())
    }

    /// An SP shows its app's names, scopes and roles; the directory keeps them in step.
    fn mirror_to_service_principal(&self, state: &mut State, app: &Map<String, Value>) {
        let app_id = app.get("appId").and_then(Value::as_str).unwrap_or_default();
        let mirrored = mirrored_from(app);
        for sp in state.objects.iter_mut().filter(|o| {
            o.kind == ObjectKind::ServicePrincipal
                && o.tenant_id == self.tenant
                && o.deleted_ms.is_none()
                && o.str("appId")
                    .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
        }) {
            sp.body.extend(mirrored.clone());
        }
    }

    fn patch_application(&self, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let body = self.json_body()?;
        let mut state = self.shared.state();
        match self.find(&state, ObjectKind::Application, key, false) {
            Some(index) => {
                self.update_application(&mut state, index, body)?;
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            None => match key {
                Key::UniqueName(name) if self.prefers_create() => {
                    let app = self.create_application(&mut state, body, Some(name))?;
                    self.shared.persist(&state);
                    Ok(self.created(ObjectKind::Application, &app))
                }
                _ => Err(Failure::not_found(key.value())),
            },
        }
    }

    fn post_service_principal(&self) -> Result<Response, Failure> {
        let mut body = self.json_body()?;
        let app_id = match body.remove("appId") {
            Some(Value::String(app_id)) => app_id,
            _ => {
                return Err(Failure::bad_request(
                    "Property 'appId' is required when creating a service principal.",
                ));
            }
        };
        let mut state = self.shared.state();
        let sp = self.create_service_principal(&mut state, body, &app_id)?;
        self.shared.persist(&state);
        Ok(self.created(ObjectKind::ServicePrincipal, &sp))
    }

    fn create_service_principal(
        &self,
        state: &mut State,
        body: Map<String, Value>,
        app_id: &str,
    ) -> Result<Map<String, Value>, Failure> {
        check_properties(ObjectKind::ServicePrincipal, &body, None)?;
        let app = state
            .application_by_app_id(&self.tenant, app_id)
            .filter(|app| !self.shared.replicating(app.created_ms))
            .ok_or_else(|| Failure::no_backing_application(app_id))?;
        if state
            .service_principal_by_app_id(&self.tenant, app_id)
            .is_some()
        {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                format!(
                    "The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."
                ),
            ));
        }
        let publisher = state
            .tenant(&self.tenant)
            .map(|t| t.display_name.clone())
            .unwrap_or_default();
        let template = service_principal_template(&new_guid(), &self.tenant, &publisher, &app.body);
        let mut sp = template.clone();
        merge(&mut sp, body, &template);
        state.objects.push(DirectoryObject {
            kind: ObjectKind::ServicePrincipal,
            tenant_id: self.tenant.clone(),
            created_ms: now_ms(),
            deleted_ms: None,
            body: sp.clone(),
        });
        Ok(sp)
    }

    fn patch_service_principal(&self, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let body = self.json_body()?;
        let mut state = self.shared.state();
        match self.find(&state, ObjectKind::ServicePrincipal, key, false) {
            Some(index) => {
                let current = &state.objects[index].body;
                check_properties(ObjectKind::ServicePrincipal, &body, Some(current))?;
                let template = template_for(ObjectKind::ServicePrincipal);
                let mut after = current.clone();
                merge(&mut after, body, &template);
                state.objects[index].body = after;
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            None => match key {
                Key::AppId(app_id) if self.prefers_create() => {
                    let mut body = body;
                    if body
                        .remove("appId")
                        .is_some_and(|given| given.as_str() != Some(app_id.as_str()))
                    {
                        return Err(Failure::bad_request(
                            "The appId in the request body differs from the one in the URL.",
                        ));
                    }
                    let sp = self.create_service_principal(&mut state, body, app_id)?;
                    self.shared.persist(&state);
                    Ok(self.created(ObjectKind::ServicePrincipal, &sp))
                }
                _ => Err(Failure::not_found(key.value())),
            },
        }
    }

    /// Apps go to the deleted-items bin for 30 days; SPs are simply removed.
    fn delete(&self, kind: ObjectKind, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let mut state = self.shared.state();
        let index = self
            .find(&state, kind, key, false)
            .ok_or_else(|| Failure::not_found(key.value()))?;
        match kind {
            ObjectKind::Application => {
                let now = now_ms();
                let object = &mut state.objects[index];
                object.deleted_ms = Some(now);
                object
                    .body
                    .insert("deletedDateTime".into(), json!(timestamp(now)));
            }
            ObjectKind::ServicePrincipal => {
                state.objects.remove(index);
            }
        }
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }

    fn list_deleted(&self, kind: ObjectKind) -> Result<Response, Failure> {
        let filter = self
            .options
            .filter
            .as_deref()
            .map(|f| parse_filter(f, kind))
            .transpose()?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let value: Vec<Value> = state
            .objects
            .iter()
            .filter(|o| o.kind == kind && o.tenant_id == self.tenant && o.deleted_ms.is_some())
            .filter(|o| filter.as_ref().is_none_or(|f| f.matches(&o.body)))
            .map(|o| project(&o.body, selection.as_deref()))
            .collect();
        let context = self.exchange.context(&format!(
            "directory/deletedItems/microsoft.graph.{}",
            type_name(kind)
        ));
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(json!({ "@odata.context": context, "value": value })),
        ))
    }

    fn deleted_index(&self, state: &State, id: &str) -> Result<usize, Failure> {
        Self::check_object_id(&Key::Id(id.to_owned()))?;
        self.find_deleted(state, id)
            .ok_or_else(|| Failure::not_found(id))
    }

    fn get_deleted(&self, id: &str) -> Result<Response, Failure> {
        let state = self.shared.state();
        let object = &state.objects[self.deleted_index(&state, id)?];
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[
                    (
                        "@odata.context",
                        self.exchange.context("directory/deletedItems/$entity"),
                    ),
                    (
                        "@odata.type",
                        format!("#microsoft.graph.{}", type_name(object.kind)),
                    ),
                ],
                &object.body,
            )),
        ))
    }

    fn restore(&self, id: &str) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let index = self.deleted_index(&state, id)?;
        let object = state.objects[index].clone();
        check_unique(&state, &self.tenant, &object.body, object.id())?;
        let object = &mut state.objects[index];
        object.deleted_ms = None;
        object.body.insert("deletedDateTime".into(), Value::Null);
        let kind = object.kind;
        let body = object.body.clone();
        self.shared.persist(&state);
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[
                    (
                        "@odata.context",
                        self.exchange.context("directoryObjects/$entity"),
                    ),
                    (
                        "@odata.type",
                        format!("#microsoft.graph.{}", type_name(kind)),
                    ),
                ],
                &body,
            )),
        ))
    }

    fn purge(&self, id: &str) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let index = self.deleted_index(&state, id)?;
        state.objects.remove(index);
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_keys_and_deleted_items() {
        use ObjectKind::{Application, ServicePrincipal};
        let t = |p: &str| parse_target(p).map_err(|f| (f.code, f.message));
        assert_eq!(t("/v1.0/applications"), Ok(Target::Collection(Application)));
        assert_eq!(
            t("/v1.0/applications/abc/"),
            Ok(Target::Item(Application, Key::Id("abc".into())))
        );
        assert_eq!(
            t("/v1.0/applications(uniqueName='it''s%20x')"),
            Ok(Target::Item(Application, Key::UniqueName("it's x".into())))
        );
        assert_eq!(
            t("/v1.0/servicePrincipals(appId=%27a%27)"),
            Ok(Target::Item(ServicePrincipal, Key::AppId("a".into())))
        );
        assert_eq!(
            t("/v1.0/directory/deletedItems/microsoft.graph.application"),
            Ok(Target::Deleted(Application))
        );
        assert_eq!(
            t("/v1.0/directory/deletedItems/x/restore"),
            Ok(Target::Restore("x".into()))
        );
        assert_eq!(
            t("/v1.0/me"),
            Err((
                "BadRequest",
                "Resource not found for the segment 'me'.".to_owned()
            ))
        );
        assert!(t("/v1.0/servicePrincipals(uniqueName='x')").is_err());
        assert!(t("/v1.0/applications(appId='x)").is_err());
    }

    #[test]
    fn filters_parse_the_supported_forms_only() {
        let app: Map<String, Value> = json!({
            "appId": "A1", "displayName": "Gateway One", "identifierUris": ["api://x"],
        })
        .as_object()
        .cloned()
        .unwrap();
        let ok = |f: &str| {
            parse_filter(f, ObjectKind::Application)
                .unwrap()
                .matches(&app)
        };
        assert!(ok("appId eq 'a1'"));
        assert!(ok("startswith(displayName,'gate')"));
        assert!(ok("identifierUris/any(x:x eq 'api://x')"));
        assert!(ok(
            "(appId eq 'no' or displayName eq 'Gateway One') and appId eq 'A1'"
        ));
        assert!(!ok("displayName eq 'Gateway'"));
        let code = |f: &str| parse_filter(f, ObjectKind::Application).unwrap_err().code;
        assert_eq!(
            code("identifierUris eq 'api://x'"),
            "Request_UnsupportedQuery"
        );
        assert_eq!(code("notes eq 'x'"), "Request_UnsupportedQuery");
        assert_eq!(code("displayName ne 'x'"), "Request_UnsupportedQuery");
        assert_eq!(
            code("contains(displayName,'x')"),
            "Request_UnsupportedQuery"
        );
        assert_eq!(code("appId eq 'x"), "BadRequest");
        assert_eq!(code("appId eq 'x' extra"), "BadRequest");
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_767_225_599_999), "2025-12-31T23:59:59Z");
    }
}
