//! The inference data plane's answers on the wire: JSON errors in Azure OpenAI's shapes, with
//! any headers they carry.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// An answer other than a completion.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn json(status: u16, body: Value) -> Refusal {
        Refusal {
            status,
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// `{"error": {"code", "message"}}`, Azure OpenAI's own error shape.
pub(crate) fn azure_error(status: u16, code: &str, message: &str) -> Refusal {
    Refusal::json(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

/// The plain 404 of an unknown route, a missing `api-version` or an unknown account
/// (dataplane.md §2.7; MicrosoftDocs/azure-docs#114602 for the missing `api-version`).
pub(crate) fn not_found() -> Refusal {
    azure_error(404, "404", "Resource not found")
}

/// A streamed completion's frames as a chunked body, one frame per chunk, `pause_ms` (real
/// milliseconds, already scaled) apart, as a deployment streams tokens as it makes them rather
/// than in one buffered body. With no pause each frame still goes out as its own chunk.
pub(crate) fn streamed(frames: Vec<Vec<u8>>, pause_ms: u64) -> Body {
    use futures_util::StreamExt;
    let frames = futures_util::stream::iter(frames.into_iter().enumerate()).then(
        move |(i, frame)| async move {
            if i > 0 && pause_ms > 0 {
                // Real time on purpose: a streamed answer is paced on the wire as the model
                // produces it, which a client sees in wall time; `instant` latency sends at once.
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            } else {
                tokio::task::yield_now().await;
            }
            Ok::<_, std::convert::Infallible>(frame)
        },
    );
    Body::from_stream(frames)
}
