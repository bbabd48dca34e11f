//! The entities under a service: APIs, their operations, backends, named values, and the policy
//! documents of the service, an API or an operation. One walk of the path finds the entity and
//! its parents; each kind brings its own validation, the verbs are shared.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::super::operations;
use super::super::{ArmError, Call, OperationKind, OperationSpec, Reply, check_if_match};
use super::{entity_reply, policy, properties_of, require_if_match, type_of, validation, view};
use crate::sandbox::state::arm::{Pending, PendingAction, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Api,
    Operation,
    Policy,
    Backend,
    NamedValue,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Api => "apis",
            Kind::Operation => "operations",
            Kind::Policy => "policies",
            Kind::Backend => "backends",
            Kind::NamedValue => "namedValues",
        }
    }

    /// The kind a path segment names below a parent of kind `parent` (`None`: the service).
    fn below(parent: Option<Kind>, segment: &str) -> Option<Kind> {
        let allowed: &[Kind] = match parent {
            None => &[Kind::Api, Kind::Policy, Kind::Backend, Kind::NamedValue],
            Some(Kind::Api) => &[Kind::Operation, Kind::Policy],
            Some(Kind::Operation) => &[Kind::Policy],
            Some(_) => &[],
        };
        allowed
            .iter()
            .copied()
            .find(|k| k.segment().eq_ignore_ascii_case(segment))
    }

    /// The kind of a stored entity, from its id.
    pub(super) fn of_id(id: &str) -> Option<Kind> {
        let kind = type_of(id);
        let last = kind.rsplit('/').next()?;
        [
            Kind::Api,
            Kind::Operation,
            Kind::Policy,
            Kind::Backend,
            Kind::NamedValue,
        ]
        .into_iter()
        .find(|k| k.segment().eq_ignore_ascii_case(last))
    }

    /// APIM's 404 for the kind ("Api not found.").
    fn not_found(self) -> ArmError {
        let noun = match self {
            Kind::Api => "Api",
            Kind::Operation => "Operation",
            Kind::Policy => "Policy",
            Kind::Backend => "Backend",
            Kind::NamedValue => "NamedValue",
        };
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("{noun} not found."),
        )
    }

    /// APIs and named values are written asynchronously (apim.md §3.8); the rest synchronously.
    fn lro(self) -> Option<OperationKind> {
        match self {
            Kind::Api => Some(OperationKind::ApimApiWrite),
            Kind::NamedValue => Some(OperationKind::ApimNamedValueWrite),
            _ => None,
        }
    }
}

/// The entity (or collection) a request names.
struct Target {
    kind: Kind,
    parent_id: String,
    name: Option<String>,
    /// A trailing action (`listValue`).
    action: Option<String>,
}

impl Target {
    fn id(&self) -> Option<String> {
        self.name
            .as_ref()
            .map(|n| format!("{}/{}/{n}", self.parent_id, self.kind.segment()))
    }
}

fn unknown_path() -> ArmError {
    ArmError::bad_request(
        "InvalidResourceType",
        "The resource type could not be found in the namespace 'Microsoft.ApiManagement'.",
    )
}

/// Walks `apis/{a}/operations/{o}/policies/{p}`-like paths, requiring every parent to exist.
fn resolve(call: &Call<'_>, service_id: &str, path: &[String]) -> Result<Target, ArmError> {
    let mut parent_id = service_id.to_owned();
    let mut parent_kind = None;
    let mut rest = path;
    loop {
        let Some((segment, tail)) = rest.split_first() else {
            return Err(unknown_path());
        };
        let kind = Kind::below(parent_kind, segment).ok_or_else(unknown_path)?;
        let target = |name: Option<&String>, action: Option<&String>| Target {
            kind,
            parent_id: parent_id.clone(),
            name: name.cloned(),
            action: action.cloned(),
        };
        match tail {
            [] => return Ok(target(None, None)),
            [name] => return Ok(target(Some(name), None)),
            [name, action] if kind == Kind::NamedValue => {
                return Ok(target(Some(name), Some(action)));
            }
            [name, more @ ..] => {
                let id = format!("{parent_id}/{}/{name}", kind.segment());
                let parent = call.state.arm.get(&id).ok_or_else(|| kind.not_found())?;
                parent_id = parent.id.clone();
                parent_kind = Some(kind);
                rest = more;
            }
        }
    }
}

pub(super) fn handle(
    call: &mut Call<'_>,
    service_id: &str,
    path: &[String],
) -> Result<Reply, ArmError> {
    let target = resolve(call, service_id, path)?;
    let method = call.request.method.clone();
    let Some(id) = target.id() else {
        return if method == Method::GET {
            Ok(list(call, &target))
        } else {
            Err(ArmError::method_not_supported(&method))
        };
    };
    if target.kind == Kind::Policy {
        let name = target.name.as_deref().unwrap_or_default();
        if !name.eq_ignore_ascii_case("policy") {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "'{name}' is not a policy identifier: the policy of a scope is always named 'policy'."
                ),
            ));
        }
        return policy::handle(call, service_id, &id);
    }
    if let Some(action) = &target.action {
        return if action.eq_ignore_ascii_case("listValue") && method == Method::POST {
            list_value(call, &id)
        } else {
            Err(unknown_path())
        };
    }
    match method {
        Method::GET | Method::HEAD => get(call, target.kind, &id),
        Method::PUT => put(call, target.kind, service_id, &id),
        Method::PATCH => patch(call, target.kind, &id),
        Method::DELETE => delete(call, target.kind, service_id, &id),
        other => Err(ArmError::method_not_supported(&other)),
    }
}

fn list(call: &Call<'_>, target: &Target) -> Reply {
    let value: Vec<Value> = call
        .state
        .arm
        .children(&target.parent_id, target.kind.segment())
        .map(view)
        .collect();
    let count = value.len();
    Reply::ok(json!({ "value": value, "count": count }))
}

/// A GET that carries `asyncId` is the `location` of an API or named value write (or API
/// delete): 202 while it runs, then what the write would have answered synchronously.
fn get(call: &mut Call<'_>, kind: Kind, id: &str) -> Result<Reply, ArmError> {
    if let Some(async_id) = call.request.query("asyncId")
        && let Some(operation) = call.state.arm.operations.get(async_id).cloned()
    {
        return Ok(operations::location(call, &operation));
    }
    call.state
        .arm
        .get(id)
        .map(|r| entity_reply(StatusCode::OK, r))
        .ok_or_else(|| kind.not_found())
}

fn list_value(call: &mut Call<'_>, id: &str) -> Result<Reply, ArmError> {
    let resource = call
        .state
        .arm
        .get(id)
        .ok_or_else(|| Kind::NamedValue.not_found())?;
    let value = resource
        .properties()
        .and_then(|p| p.get("value"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Reply::ok(json!({ "value": value })).etag(&resource.etag))
}

/// The properties an entity stores, from what a PUT sent (or a PATCH merged).
fn normalize(
    call: &Call<'_>,
    kind: Kind,
    id: &str,
    props: Map<String, Value>,
) -> Result<Map<String, Value>, ArmError> {
    let name = id.rsplit('/').next().unwrap_or_default();
    match kind {
        Kind::Api => api(name, props),
        Kind::Operation => operation(props),
        Kind::Backend => backend(props),
        Kind::NamedValue => named_value(call, id, props),
        Kind::Policy => Ok(props),
    }
}

fn put(call: &mut Call<'_>, kind: Kind, service_id: &str, id: &str) -> Result<Reply, ArmError> {
    check_name(kind, id)?;
    let existing = call.state.arm.get(id).cloned();
    if let Some(existing) = &existing {
        check_if_match(call.request, Some(&existing.etag), false)?;
    }
    let body = call.request.body_object()?;
    let props = normalize(call, kind, id, properties_of(&body)?)?;
    let created = existing.is_none();
    store(call, kind, service_id, id, existing, props, created)
}

/// Entity ids: an API or named value id may not hold `*#&+:<>?`; ids of other kinds up to 80.
fn check_name(kind: Kind, id: &str) -> Result<(), ArmError> {
    let name = id.rsplit('/').next().unwrap_or_default();
    let max = match kind {
        Kind::Api | Kind::NamedValue => 256,
        _ => 80,
    };
    let forbidden = matches!(kind, Kind::Api | Kind::NamedValue)
        && name.contains(['*', '#', '&', '+', ':', '<', '>', '?']);
    if name.is_empty() || name.chars().count() > max || forbidden {
        return Err(validation(
            "name",
            format!(
                "'{name}' is not a valid identifier: 1 to {max} characters{}.",
                if matches!(kind, Kind::Api | Kind::NamedValue) {
                    ", none of *#&+:<>?"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

/// Writes the entity; APIs and named values answer as APIM's LRO (body `InProgress`, a
/// `location` on the entity with `asyncId`/`asyncCode`, `Azure-AsyncOperation` on the service's
/// `tenant/operationResults`), the rest synchronously.
fn store(
    call: &mut Call<'_>,
    kind: Kind,
    service_id: &str,
    id: &str,
    existing: Option<Resource>,
    props: Map<String, Value>,
    created: bool,
) -> Result<Reply, ArmError> {
    let stored_id = existing
        .as_ref()
        .map_or_else(|| id.to_owned(), |e| e.id.clone());
    let name = stored_id.rsplit('/').next().unwrap_or_default().to_owned();
    let mut body = Map::new();
    body.insert("id".into(), json!(stored_id));
    body.insert("type".into(), json!(type_of(&stored_id)));
    body.insert("name".into(), json!(name));
    body.insert("properties".into(), Value::Object(props));
    let etag = call.state.arm.next_etag();
    let mut resource = Resource::new(stored_id.clone(), body, etag, call.now_ms);
    if let Some(existing) = &existing {
        resource.created_ms = existing.created_ms;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let Some(duration) = kind.lro() else {
        let reply = entity_reply(status, &resource);
        call.state.arm.insert(resource);
        return Ok(reply);
    };
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &stored_id,
            running_status: "InProgress",
            kind: duration,
            final_status: status.as_u16(),
            final_body: true,
            location_only: false,
        },
        |op| format!("{service_id}/tenant/operationResults/{op}"),
    );
    resource.set_provisioning_state("InProgress");
    resource.pending = Some(Pending::new(&operation, PendingAction::Provision));
    let reply = entity_reply(status, &resource);
    call.state.arm.insert(resource);
    Ok(async_headers(
        call,
        reply,
        &stored_id,
        &operation,
        status.as_u16(),
    ))
}

fn async_headers(
    call: &Call<'_>,
    reply: Reply,
    id: &str,
    operation: &crate::sandbox::state::arm::Operation,
    code: u16,
) -> Reply {
    let version = &call.request.api_version;
    let location = call.url(&format!(
        "{id}?api-version={version}&asyncId={}&asyncCode={code}",
        operation.id
    ));
    let status = call.url(&format!("{}?api-version={version}", operation.status_path));
    reply
        .header("location", location)
        .header("azure-asyncoperation", status)
        .poll_hint(operation.until_ms, call.now_ms)
}

/// PATCH merges the sent properties over the stored ones; APIM requires `If-Match` for it.
fn patch(call: &mut Call<'_>, kind: Kind, id: &str) -> Result<Reply, ArmError> {
    require_if_match(call)?;
    let existing = call
        .state
        .arm
        .get(id)
        .cloned()
        .ok_or_else(|| kind.not_found())?;
    check_if_match(call.request, Some(&existing.etag), true)?;
    let body = call.request.body_object()?;
    let mut props = existing.properties().cloned().unwrap_or_default();
    props.remove("provisioningState");
    props.extend(properties_of(&body)?);
    let props = normalize(call, kind, id, props)?;
    let etag = call.state.arm.next_etag();
    let resource = call.state.arm.get_mut(id).expect("read above");
    let keep_state = resource.provisioning_state().map(str::to_owned);
    resource
        .body
        .insert("properties".into(), Value::Object(props));
    if let Some(state) = keep_state {
        resource.set_provisioning_state(&state);
    }
    resource.etag = etag;
    Ok(entity_reply(StatusCode::OK, resource))
}

/// DELETE needs `If-Match` (a 400 without it, before anything else); an absent entity is 204.
/// APIs go asynchronously (202, `asyncCode=204`), as ApiManagementDeleteApi.json shows.
fn delete(call: &mut Call<'_>, kind: Kind, service_id: &str, id: &str) -> Result<Reply, ArmError> {
    require_if_match(call)?;
    let Some(existing) = call.state.arm.get(id).cloned() else {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    };
    check_if_match(call.request, Some(&existing.etag), true)?;
    if kind != Kind::Api {
        call.state.arm.remove_tree(id);
        return Ok(Reply::empty(StatusCode::OK));
    }
    if let Some(operation) = existing
        .pending
        .as_ref()
        .filter(|p| p.action == PendingAction::Delete)
        .and_then(|p| call.state.arm.operations.get(&p.operation).cloned())
    {
        let reply = Reply::empty(StatusCode::ACCEPTED);
        return Ok(async_headers(call, reply, &existing.id, &operation, 204));
    }
    let operation = call.start_operation(
        OperationSpec {
            resource_id: &existing.id,
            running_status: "InProgress",
            kind: OperationKind::ApimApiWrite,
            final_status: 204,
            final_body: false,
            location_only: false,
        },
        |op| format!("{service_id}/tenant/operationResults/{op}"),
    );
    if let Some(resource) = call.state.arm.get_mut(id) {
        resource.pending = Some(Pending::new(&operation, PendingAction::Delete));
    }
    let reply = Reply::empty(StatusCode::ACCEPTED);
    Ok(async_headers(call, reply, &existing.id, &operation, 204))
}

fn string_field<'a>(
    props: &'a Map<String, Value>,
    key: &str,
    max: usize,
    required: bool,
) -> Result<Option<&'a str>, ArmError> {
    match props.get(key) {
        None | Some(Value::Null) if required => {
            Err(validation(key, format!("'{key}' is required.")))
        }
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(validation(
            key,
            format!("'{key}' must be at most {max} characters long."),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(validation(key, format!("'{key}' must be a string."))),
    }
}

const PROTOCOLS: [&str; 4] = ["http", "https", "ws", "wss"];
/// What an API PUT may carry but a GET never shows (import inputs, the write-only `apiType`).
const API_WRITE_ONLY: [&str; 7] = [
    "apiType",
    "format",
    "value",
    "wsdlSelector",
    "translateRequiredQueryParameters",
    "soapApiType",
    "provisioningState",
];

/// An API as APIM reports it (ApiManagementCreateApi.json): protocols in canonical order, the
/// subscription defaults, the single-valued OAuth settings mirrored into their list form.
fn api(name: &str, mut props: Map<String, Value>) -> Result<Map<String, Value>, ArmError> {
    string_field(&props, "path", 400, true)?;
    let imported = props.contains_key("value");
    if string_field(&props, "displayName", 300, !imported)?.is_some_and(str::is_empty) {
        return Err(validation(
            "displayName",
            "'displayName' must not be empty.",
        ));
    }
    string_field(&props, "serviceUrl", 2000, false)?;
    let protocols: Vec<String> = match props.get("protocols") {
        None | Some(Value::Null) => vec!["https".to_owned()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_ascii_lowercase)
                    .filter(|p| PROTOCOLS.contains(&p.as_str()))
                    .ok_or_else(|| {
                        validation(
                            "protocols",
                            format!("'{p}' is not a protocol: use http, https, ws or wss."),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(validation("protocols", "'protocols' must be an array.")),
    };
    let ordered: Vec<&str> = PROTOCOLS
        .iter()
        .copied()
        .filter(|p| protocols.iter().any(|q| q == p))
        .collect();
    let kind = props
        .get("apiType")
        .or_else(|| props.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            props
                .get("format")
                .and_then(Value::as_str)
                .filter(|f| f.starts_with("wsdl"))
                .map(|_| "soap".to_owned())
        })
        .unwrap_or_else(|| "http".to_owned());
    for key in API_WRITE_ONLY {
        props.remove(key);
    }
    if !props.contains_key("displayName") {
        props.insert("displayName".into(), json!(name));
    }
    props.insert("protocols".into(), json!(ordered));
    props.insert("type".into(), json!(kind));
    props.entry("apiRevision").or_insert(json!("1"));
    props.entry("isCurrent").or_insert(json!(true));
    props.insert("isOnline".into(), json!(true));
    props.entry("subscriptionRequired").or_insert(json!(true));
    let keys = props
        .entry("subscriptionKeyParameterNames")
        .or_insert_with(|| json!({}));
    if let Some(keys) = keys.as_object_mut() {
        keys.entry("header")
            .or_insert(json!("Ocp-Apim-Subscription-Key"));
        keys.entry("query").or_insert(json!("subscription-key"));
    }
    let auth = props
        .entry("authenticationSettings")
        .or_insert_with(|| json!({}));
    if let Some(auth) = auth.as_object_mut() {
        for (single, list) in [
            ("oAuth2", "oAuth2AuthenticationSettings"),
            ("openid", "openidAuthenticationSettings"),
        ] {
            let mirrored = auth
                .get(single)
                .filter(|v| v.is_object())
                .map(|v| json!([v]))
                .unwrap_or_else(|| json!([]));
            auth.entry(list).or_insert(mirrored);
        }
    }
    Ok(props)
}

/// The `{name}` parameters of a URL template (`{*rest}` and `{?q}` forms included).
fn template_names(template: &str) -> Vec<String> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}'))
        .map(|(name, _)| name.trim_start_matches(['*', '?', '+']).to_owned())
        .collect()
}

/// An operation: method, URL template and display name required, and the template's parameters
/// exactly those declared (APIM rejects both an undeclared and an unused one).
fn operation(mut props: Map<String, Value>) -> Result<Map<String, Value>, ArmError> {
    string_field(&props, "displayName", 300, true)?;
    string_field(&props, "method", 100, true)?;
    let template = string_field(&props, "urlTemplate", 1000, true)?
        .unwrap_or_default()
        .to_owned();
    string_field(&props, "description", 1000, false)?;
    let declared: Vec<String> = match props.get("templateParameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                let name = p.get("name").and_then(Value::as_str);
                let kind = p.get("type").and_then(Value::as_str);
                match (name, kind) {
                    (Some(n), Some(_)) => Ok(n.to_owned()),
                    _ => Err(validation(
                        "templateParameters",
                        "Every template parameter needs a 'name' and a 'type'.",
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(validation(
                "templateParameters",
                "'templateParameters' must be an array.",
            ));
        }
    };
    let used = template_names(&template);
    let mismatch = used
        .iter()
        .find(|u| !declared.iter().any(|d| d.eq_ignore_ascii_case(u)))
        .map(|u| format!("'{u}' is used in urlTemplate '{template}' but not declared"))
        .or_else(|| {
            declared
                .iter()
                .find(|d| !used.iter().any(|u| u.eq_ignore_ascii_case(d)))
                .map(|d| format!("'{d}' is declared but not used in urlTemplate '{template}'"))
        });
    if let Some(mismatch) = mismatch {
        return Err(validation(
            "templateParameters",
            format!(
                "All template parameters used in the UriTemplate must be defined in the Operation, and vice-versa: {mismatch}."
            ),
        ));
    }
    props.entry("templateParameters").or_insert(json!([]));
    Ok(props)
}

/// A backend: `url` and `protocol` (http or soap) required.
fn backend(props: Map<String, Value>) -> Result<Map<String, Value>, ArmError> {
    string_field(&props, "url", 2000, true)?;
    let protocol = string_field(&props, "protocol", 10, true)?.unwrap_or_default();
    if !["http", "soap"].contains(&protocol) {
        return Err(validation(
            "protocol",
            format!("'{protocol}' is not a backend protocol: use http or soap."),
        ));
    }
    string_field(&props, "title", 300, false)?;
    string_field(&props, "description", 2000, false)?;
    Ok(props)
}

fn valid_display_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// A named value: the display name policies reference as `{{…}}`, unique in the service; a
/// value (or a Key Vault reference) that is not blank.
fn named_value(
    call: &Call<'_>,
    id: &str,
    mut props: Map<String, Value>,
) -> Result<Map<String, Value>, ArmError> {
    let display = string_field(&props, "displayName", 256, true)?
        .unwrap_or_default()
        .to_owned();
    if !valid_display_name(&display) {
        return Err(validation(
            "displayName",
            format!("'{display}' is not a valid name: use letters, digits, '-', '.' and '_' only."),
        ));
    }
    let key_vault = props.get("keyVault").is_some_and(Value::is_object);
    let value = string_field(&props, "value", 4096, !key_vault)?;
    if value.is_some_and(|v| v.trim().is_empty()) {
        return Err(validation(
            "value",
            "'value' must not be empty or whitespace.",
        ));
    }
    let service_id = id
        .rsplit_once("/namedValues/")
        .or_else(|| id.rsplit_once("/namedvalues/"))
        .map_or(id, |(s, _)| s);
    let duplicate = call
        .state
        .arm
        .children(service_id, "namedValues")
        .filter(|r| !r.id.eq_ignore_ascii_case(id))
        .any(|r| {
            r.property_str("displayName")
                .is_some_and(|d| d.eq_ignore_ascii_case(&display))
        });
    if duplicate {
        return Err(validation(
            "name",
            "Property with the same name already exist.",
        ));
    }
    props.remove("provisioningState");
    props.entry("secret").or_insert(json!(false));
    props.entry("tags").or_insert(json!([]));
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parameters_are_read_from_braces() {
        assert_eq!(
            template_names("/deployments/{deployment-id}/chat/{*rest}?v={?api}"),
            ["deployment-id", "rest", "api"]
        );
        assert!(template_names("/user1").is_empty());
    }

    #[test]
    fn undeclared_and_unused_parameters_are_rejected() {
        let props = |template: &str, params: Value| {
            let mut p = Map::new();
            p.insert("displayName".into(), json!("x"));
            p.insert("method".into(), json!("POST"));
            p.insert("urlTemplate".into(), json!(template));
            p.insert("templateParameters".into(), params);
            p
        };
        let e = operation(props("/d/{deployment-id}", json!([]))).expect_err("undeclared");
        assert!(
            e.details[0]["message"]
                .as_str()
                .unwrap()
                .contains("'deployment-id'")
        );
        let e =
            operation(props("/d", json!([{"name": "x", "type": "string"}]))).expect_err("unused");
        assert_eq!(e.details[0]["target"], "templateParameters");
        assert!(operation(props("/d/{x}", json!([{"name": "x", "type": "string"}]))).is_ok());
    }

    #[test]
    fn apis_get_apims_defaults() {
        let mut sent = Map::new();
        sent.insert("path".into(), json!("llm"));
        sent.insert("displayName".into(), json!("LLM"));
        sent.insert("protocols".into(), json!(["https", "HTTP"]));
        sent.insert("apiType".into(), json!("http"));
        let api = api("llm", sent).expect("valid");
        assert_eq!(api["protocols"], json!(["http", "https"]));
        assert_eq!(api["subscriptionRequired"], true);
        assert_eq!(
            api["subscriptionKeyParameterNames"]["header"],
            "Ocp-Apim-Subscription-Key"
        );
        assert!(!api.contains_key("apiType"));
        let mut missing = Map::new();
        missing.insert("displayName".into(), json!("x"));
        assert_eq!(api_err_target(super::api("x", missing)), "path");
    }

    fn api_err_target(r: Result<Map<String, Value>, ArmError>) -> String {
        r.expect_err("invalid").details[0]["target"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
