//! ARM's request and answer shapes, shared by every resource provider: the parsed request, path
//! patterns, replies with their poll hints, ARM's error body, and the checks every write makes
//! (`tags`, `If-Match`).

use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::sandbox::auth::Caller;

/// A parsed ARM request, authenticated and versioned.
pub(crate) struct ArmRequest {
    pub method: Method,
    /// Percent-decoded path segments, casing as sent.
    pub segments: Vec<String>,
    /// Query parameters, names lower-cased.
    pub query: Vec<(String, String)>,
    pub api_version: String,
    pub headers: HeaderMap,
    pub body: Option<Value>,
    pub caller: Caller,
}

impl ArmRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON object body of a write; absent or non-object bodies are ARM's 400s.
    pub fn body_object(&self) -> Result<Map<String, Value>, ArmError> {
        match &self.body {
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(_) => Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is not a JSON object.",
            )),
            None => Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is empty.",
            )),
        }
    }

    pub fn if_match(&self) -> Option<&str> {
        self.headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
    }
}

/// Captures the `{}` segments of `pattern` (`/`-separated, literals compared ignoring case).
pub(crate) fn capture<'a>(segments: &'a [String], pattern: &str) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut out = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if *part == "{}" {
            out.push(segment.as_str());
        } else if !part.eq_ignore_ascii_case(segment) {
            return None;
        }
    }
    Some(out)
}

/// What a handler answers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Value>,
}

impl Reply {
    pub fn new(status: StatusCode, body: Option<Value>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn ok(body: Value) -> Reply {
        Reply::new(StatusCode::OK, Some(body))
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply::new(status, None)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers
            .push((HeaderName::from_static(name), value.into()));
        self
    }

    /// Adds the `ETag` header, quoted as HTTP wants it.
    pub fn etag(self, etag: &str) -> Reply {
        self.header("etag", format!("\"{etag}\""))
    }

    /// Adds a poll hint for an operation ending at `until_ms` (see [`poll_hint`]).
    pub fn poll_hint(mut self, until_ms: u64, now_ms: u64) -> Reply {
        let (name, value) = poll_hint(until_ms, now_ms);
        self.headers.push((HeaderName::from_static(name), value));
        self
    }
}

/// The wait a client should make before its next poll. Whole seconds in `Retry-After` when a
/// second or more remains; below that `retry-after-ms`, never `Retry-After: 0`, which the Azure
/// SDKs read as "absent" and answer with a 30-second default wait (foundry-arm.md §2.2).
pub(crate) fn poll_hint(until_ms: u64, now_ms: u64) -> (&'static str, String) {
    let remaining = until_ms.saturating_sub(now_ms);
    if remaining >= 1000 {
        ("retry-after", remaining.div_ceil(1000).min(60).to_string())
    } else {
        ("retry-after-ms", remaining.max(1).to_string())
    }
}

/// An ARM error: `{"error":{code,message,target?,details?}}` with its status.
#[derive(Debug, Clone)]
pub(crate) struct ArmError {
    pub status: StatusCode,
    // Boxed strings keep the error small: every handler returns `Result<Reply, ArmError>`.
    pub code: Box<str>,
    pub message: String,
    pub target: Option<Box<str>>,
    pub details: Vec<Value>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code: code.into(),
            message: message.into(),
            target: None,
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn target(mut self, target: impl Into<String>) -> ArmError {
        self.target = Some(target.into().into_boxed_str());
        self
    }

    pub fn detail(mut self, code: &str, target: &str, message: impl Into<String>) -> ArmError {
        self.details
            .push(json!({ "code": code, "target": target, "message": message.into() }));
        self
    }

    /// 405 for a method the resource does not serve, in ARM's wording.
    pub fn method_not_allowed(method: &Method) -> ArmError {
        ArmError::method_not_allowed_on(method, "this resource")
    }

    /// 405 naming what the method is not allowed on (`a role assignment`, `this resource`…).
    pub fn method_not_allowed_on(method: &Method, what: &str) -> ArmError {
        ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The method '{method}' is not allowed on {what}."),
        )
    }

    /// 405 in API Management's own wording, which differs from ARM's.
    pub fn method_not_supported(method: &Method) -> ArmError {
        ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{method}'."),
        )
    }

    /// 400 for a tracked resource written without its `location`.
    pub fn location_required() -> ArmError {
        ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        )
    }

    /// 400 for a request without `?api-version=`.
    pub fn missing_api_version() -> ArmError {
        ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    }

    /// `ResourceNotFound` with ARM's recorded message (foundry-arm.md §2.3).
    pub fn resource_not_found(resource_type: &str, name: &str, group: &str) -> ArmError {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{resource_type}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
        .gateway()
    }

    /// Marks an answer ARM itself gave (not the resource provider).
    pub fn gateway(mut self) -> ArmError {
        self.headers.push((
            HeaderName::from_static("x-ms-failure-cause"),
            "gateway".to_owned(),
        ));
        self
    }

    /// 412 for an `If-Match` that names another version.
    pub fn precondition_failed() -> ArmError {
        ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The entity state version does not match the If-Match header: the entity was changed since it was read.",
        )
    }

    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        if let Some(target) = &self.target {
            error.insert("target".into(), json!(target));
        }
        if !self.details.is_empty() {
            error.insert("details".into(), json!(self.details));
        }
        json!({ "error": error })
    }
}

/// `Ok` when the request uses the one method a path serves, else ARM's 405.
pub(crate) fn only(method: &Method, allowed: Method) -> Result<(), ArmError> {
    if *method == allowed {
        Ok(())
    } else {
        Err(ArmError::method_not_allowed(method))
    }
}

/// The `tags` of a write: absent or null is none; anything but an object of strings is a 400.
pub(crate) fn tags(body: &Map<String, Value>) -> Result<Option<Value>, ArmError> {
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

/// Checks `If-Match` against the current entity tag: absent or `*` pass, `required` makes absence
/// a 400 (APIM's PATCH and DELETE).
pub(crate) fn check_if_match(
    request: &ArmRequest,
    current: Option<&str>,
    required: bool,
) -> Result<(), ArmError> {
    match request.if_match() {
        None if required => Err(ArmError::bad_request(
            "InvalidParameters",
            "The If-Match header is required: send the entity's ETag, or * to change it unconditionally.",
        )),
        None => Ok(()),
        Some(value) if value.trim() == "*" => Ok(()),
        Some(value) => {
            let wanted = value.trim().trim_start_matches("W/").trim_matches('"');
            match current {
                Some(etag) if etag == wanted => Ok(()),
                _ => Err(ArmError::precondition_failed()),
            }
        }
    }
}
