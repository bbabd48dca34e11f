//! Sending one HTTP exchange, and nothing more. The transport knows no retries, no tokens and no ARM:
//! it turns a [`WireRequest`] into a [`WireResponse`] or says precisely how it failed, because whether a
//! failure may be retried depends on whether the request could have reached the server.
//!
//! Two implementations: [`ReqwestTransport`] (rustls with the ring provider, in `http`) for real
//! traffic and [`ScriptedTransport`] (in `scripted`) for tests that need exact exchanges without a
//! server. What never reaches `Debug` output (credentials, bodies) is decided in `redact`.

mod http;
mod redact;
mod scripted;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use http::{READ_TIMEOUT, ReqwestTransport};
pub use scripted::{ScriptedAnswer, ScriptedTransport};

/// Sent on every request so that a failure can be traced in Azure's logs; one per logical request
/// (retries of it reuse the id, as the Azure SDKs do).
pub const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";
/// The server's id for the exchange (ARM; Graph calls it `request-id`).
pub const REQUEST_ID: &str = "x-ms-request-id";
/// ARM's id that ties together everything one client request caused.
pub const CORRELATION_REQUEST_ID: &str = "x-ms-correlation-request-id";

/// The HTTP methods the wire layer uses. A closed set, so that "is this safe to repeat?" is a
/// match and not a string comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Patch,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// GET, HEAD, PUT and DELETE: sending them twice has the effect of sending them once (ARM's
    /// PUT replaces the whole resource). PATCH and POST are not, unless an API says so.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HTTP headers in order, looked up case-insensitively. `Debug` redacts credential headers, so a
/// request can be logged at any verbosity.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, replacing every earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.0.push((name, value.into()));
    }

    /// Adds a value without replacing earlier ones (for repeated response headers).
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        let mut headers = Headers::new();
        for (n, v) in iter {
            headers.append(n, v);
        }
        headers
    }
}

/// One request as data. The core builds these; the wire layer sends them.
#[derive(Clone, PartialEq, Eq)]
pub struct WireRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    pub body: Option<Vec<u8>>,
}

impl WireRequest {
    pub fn new(method: Method, url: impl Into<String>) -> WireRequest {
        WireRequest {
            method,
            url: url.into(),
            headers: Headers::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> WireRequest {
        self.headers.set(name, value);
        self
    }

    /// A JSON body, with its content type.
    pub fn json(mut self, body: &serde_json::Value) -> WireRequest {
        self.headers.set("content-type", "application/json");
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn client_request_id(&self) -> Option<&str> {
        self.headers.get(CLIENT_REQUEST_ID)
    }

    /// Gives the request a fresh `x-ms-client-request-id` unless it already has one.
    pub fn ensure_client_request_id(&mut self) {
        if self.client_request_id().is_none() {
            self.headers
                .set(CLIENT_REQUEST_ID, uuid::Uuid::new_v4().to_string());
        }
    }
}

/// One response as data.
#[derive(Clone, PartialEq, Eq)]
pub struct WireResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl WireResponse {
    pub fn new(status: u16) -> WireResponse {
        WireResponse {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> WireResponse {
        self.headers.set(name, value);
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> WireResponse {
        self.headers.set("content-type", "application/json");
        self.body = body.to_string().into_bytes();
        self
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// ARM's `x-ms-request-id`, or Graph's `request-id`.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .get(REQUEST_ID)
            .or_else(|| self.headers.get("request-id"))
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.headers.get(CORRELATION_REQUEST_ID)
    }

    /// The body as JSON; an empty body is `null`, since 202s and 204s carry none.
    pub fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
    }
}

/// How sending failed. The split between [`TransportError::Connect`] and
/// [`TransportError::Ambiguous`] is what makes retrying a POST safe or not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing was sent: the connection (TCP or TLS) could not be set up. Safe to retry anything.
    #[error("could not connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The connection broke or timed out after the request was (perhaps partly) sent: the server
    /// may have acted on it.
    #[error(
        "lost the connection to {url} after sending the request, so it may have reached the server: {reason}"
    )]
    Ambiguous { url: String, reason: String },
    /// Plain `http://` to a host that is not loopback: a bearer token would cross the network in clear.
    #[error(
        "refusing to send a request to {url}: plain http:// is allowed only for loopback hosts (127.0.0.0/8, ::1, localhost); use https://"
    )]
    InsecureUrl { url: String },
    /// The request could not be built (bad URL, bad header), or a test script ran out.
    #[error("invalid request to {url}: {reason}")]
    Invalid { url: String, reason: String },
}

impl TransportError {
    /// True when the request can not have reached the server.
    pub fn never_sent(&self) -> bool {
        !matches!(self, TransportError::Ambiguous { .. })
    }
}

/// The future a [`Transport`] returns; boxed so that `dyn Transport` works.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WireResponse, TransportError>> + Send + 'a>>;

/// Sends one request. Implementations must call [`prepare`] (scheme check, client request id) and
/// must not retry.
pub trait Transport: Send + Sync {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        (**self).send(request)
    }
}

/// What every transport does before sending: refuse plain http off loopback, and stamp a client
/// request id if the caller has not.
pub fn prepare(request: &WireRequest) -> Result<WireRequest, TransportError> {
    check_scheme(&request.url)?;
    let mut request = request.clone();
    request.ensure_client_request_id();
    Ok(request)
}

/// `https://` anywhere; `http://` only to 127.0.0.0/8, `::1` or `localhost` (the sandbox).
pub fn check_scheme(url: &str) -> Result<(), TransportError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| TransportError::Invalid {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(TransportError::InsecureUrl {
            url: url.to_owned(),
        }),
        other => Err(TransportError::Invalid {
            url: url.to_owned(),
            reason: format!("unsupported scheme {other}:// (use https://)"),
        }),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

fn invalid(url: &str, reason: String) -> TransportError {
    TransportError::Invalid {
        url: url.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://management.azure.com/x",
            "http://127.0.0.1:7171/x",
            "http://127.10.0.3/x",
            "http://[::1]:8080/x",
            "http://localhost:7171/x",
            "http://LOCALHOST/x",
        ] {
            assert_eq!(check_scheme(ok), Ok(()), "{ok}");
        }
        let err = check_scheme("http://example.com/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to send a request to http://example.com/x: plain http:// is allowed only for \
             loopback hosts (127.0.0.0/8, ::1, localhost); use https://"
        );
        for refused in [
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            assert!(
                matches!(
                    check_scheme(refused),
                    Err(TransportError::InsecureUrl { .. })
                ),
                "{refused}"
            );
        }
        assert_eq!(
            check_scheme("ftp://127.0.0.1/").unwrap_err().to_string(),
            "invalid request to ftp://127.0.0.1/: unsupported scheme ftp:// (use https://)"
        );
    }
}
