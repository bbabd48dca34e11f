//! Graph's answers: the `@odata` envelope every response carries, and its errors with the
//! `innerError` (request id, client request id, date) clients quote when they report a problem.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{CONTENT_TYPE, resource};
use crate::sandbox::state::ObjectKind;
use crate::sandbox::{Shared, new_guid};

/// A Graph error before it gets its `innerError`.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) details: Option<Value>,
}

impl Failure {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    pub(super) fn not_found(what: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// OData's answer to a URL it can't map onto the model.
    pub(super) fn unknown_segment(segment: &str) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    pub(super) fn unreadable_body() -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    pub(super) fn method_not_allowed() -> Failure {
        Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    pub(super) fn invalid_value(property: &str, kind: ObjectKind) -> Failure {
        Failure::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{}'.",
            resource(kind)
        ))
    }

    pub(super) fn already_exists(property: &str) -> Failure {
        Failure::bad_request(format!(
            "Another object with the same value for property {property} already exists."
        ))
    }

    /// An SP for an app the directory can't see (yet): the replication race of entra.md §1.3.
    pub(super) fn no_backing_application(app_id: &str) -> Failure {
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
pub(super) struct Exchange {
    pub(super) metadata: String,
    pub(super) request_id: String,
    pub(super) client_request_id: Option<String>,
    /// When the request arrived, on the sandbox's clock.
    pub(super) now_ms: u64,
    pub(super) base_url: String,
}

impl Exchange {
    pub(super) fn new(shared: &Shared, headers: &HeaderMap) -> Exchange {
        Exchange {
            metadata: format!("{}/v1.0/$metadata", shared.base_url),
            now_ms: shared.now_ms(),
            request_id: new_guid(),
            client_request_id: headers
                .get("client-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            base_url: shared.base_url.clone(),
        }
    }

    pub(super) fn context(&self, fragment: &str) -> String {
        format!("{}#{fragment}", self.metadata)
    }

    pub(super) fn answer(&self, status: StatusCode, body: Option<Value>) -> Response {
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

    pub(super) fn fail(&self, failure: Failure) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(failure.code));
        error.insert("message".into(), json!(failure.message));
        if let Some(details) = failure.details {
            error.insert("details".into(), details);
        }
        error.insert(
            "innerError".into(),
            json!({
                "date": timestamp(self.now_ms).trim_end_matches('Z'),
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
pub(super) fn timestamp(ms: u64) -> String {
    crate::clock::format_utc_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_767_225_599_999), "2025-12-31T23:59:59Z");
    }
}
