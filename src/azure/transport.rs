//! Sending one HTTP exchange, and nothing more. The transport knows no retries, no tokens and no ARM:
//! it turns a [`WireRequest`] into a [`WireResponse`] or says precisely how it failed, because whether a
//! failure may be retried depends on whether the request could have reached the server.
//!
//! Two implementations: [`ReqwestTransport`] (rustls with the ring provider) for real traffic and
//! [`ScriptedTransport`] for tests that need exact exchanges without a server.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sent on every request so that a failure can be traced in Azure's logs; one per logical request
/// (retries of it reuse the id, as the Azure SDKs do).
pub const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";
/// The server's id for the exchange (ARM; Graph calls it `request-id`).
pub const REQUEST_ID: &str = "x-ms-request-id";
/// ARM's id that ties together everything one client request caused.
pub const CORRELATION_REQUEST_ID: &str = "x-ms-correlation-request-id";

/// Header names whose values are credentials. Their values never reach `Debug` output.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "api-key",
    "ocp-apim-subscription-key",
];

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

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, v)| {
                let secret = SECRET_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s));
                (n.as_str(), if secret { "<redacted>" } else { v.as_str() })
            }))
            .finish()
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

/// Bodies are shown by size only: a request body may be a token request with a client secret.
impl fmt::Debug for WireRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body.as_ref().map(|b| ByteCount(b.len())))
            .finish()
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

/// Bodies are shown by size only: a response body may be a token.
impl fmt::Debug for WireResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &ByteCount(self.body.len()))
            .finish()
    }
}

struct ByteCount(usize);

impl fmt::Debug for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
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

/// Real HTTP: reqwest over rustls with the ring provider. Redirects are not followed (ARM and Graph
/// do not redirect; a `Location` header means an operation to poll, which the LRO code handles).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    /// Loopback traffic (the sandbox) never goes through a proxy from the environment.
    loopback: reqwest::Client,
}

/// How long to wait for TCP and TLS set-up. Longer waits are bounded by the command's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go silent while a request waits for its answer. ARM and Graph answer
/// within seconds (long work is an operation to poll), so a silence this long is a half-open
/// connection: the attempt fails as ambiguous and an idempotent request is sent again, instead of
/// hanging until the command's deadline.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

impl ReqwestTransport {
    /// Trusts the platform's roots.
    pub fn new() -> Result<ReqwestTransport, TransportError> {
        ReqwestTransport::build(None, READ_TIMEOUT)
    }

    /// With another silence limit than [`READ_TIMEOUT`] (tests).
    pub fn with_read_timeout(read_timeout: Duration) -> Result<ReqwestTransport, TransportError> {
        ReqwestTransport::build(None, read_timeout)
    }

    /// Also trusts `pem` (the sandbox's self-signed certificate when it serves TLS).
    pub fn with_extra_root(pem: &[u8]) -> Result<ReqwestTransport, TransportError> {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| TransportError::Invalid {
            url: String::new(),
            reason: format!("extra root certificate: {e}"),
        })?;
        ReqwestTransport::build(Some(cert), READ_TIMEOUT)
    }

    fn build(
        extra_root: Option<reqwest::Certificate>,
        read_timeout: Duration,
    ) -> Result<ReqwestTransport, TransportError> {
        // reqwest is built without a crypto provider; another part of the program may already have
        // installed ring, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            let b = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(read_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")));
            match &extra_root {
                Some(cert) => b.add_root_certificate(cert.clone()),
                None => b,
            }
        };
        let fail = |e: reqwest::Error| TransportError::Invalid {
            url: String::new(),
            reason: format!("could not build the HTTP client: {}", chain(&e)),
        };
        Ok(ReqwestTransport {
            client: builder().build().map_err(fail)?,
            loopback: builder().no_proxy().build().map_err(fail)?,
        })
    }

    async fn exchange(&self, request: WireRequest) -> Result<WireResponse, TransportError> {
        let url = request.url.clone();
        let parsed = reqwest::Url::parse(&url).map_err(|e| TransportError::Invalid {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let client = if is_loopback(&parsed) {
            &self.loopback
        } else {
            &self.client
        };
        let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
            .map_err(|e| invalid(&url, e.to_string()))?;
        let mut builder = client.request(method, parsed);
        for (name, value) in request.headers.iter() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid(&url, format!("header name {name:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| invalid(&url, format!("value of header {name}: {e}")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(|e| classify(&url, &e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| TransportError::Ambiguous {
                url: url.clone(),
                reason: format!("reading the response body: {}", chain(&e)),
            })?
            .to_vec();
        Ok(WireResponse {
            status,
            headers,
            body,
        })
    }
}

impl Transport for ReqwestTransport {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        Box::pin(async move { self.exchange(prepare(request)?).await })
    }
}

fn invalid(url: &str, reason: String) -> TransportError {
    TransportError::Invalid {
        url: url.to_owned(),
        reason,
    }
}

/// reqwest marks errors raised while connecting (DNS, TCP, TLS, connect timeout); everything else
/// happened once the request may have been written.
fn classify(url: &str, error: &reqwest::Error) -> TransportError {
    let reason = chain(error);
    if error.is_builder() {
        TransportError::Invalid {
            url: url.to_owned(),
            reason,
        }
    } else if error.is_connect() {
        TransportError::Connect {
            url: url.to_owned(),
            reason,
        }
    } else {
        TransportError::Ambiguous {
            url: url.to_owned(),
            reason,
        }
    }
}

/// The error and its causes on one line, without the URL (the caller prints that once).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match error.downcast_ref::<reqwest::Error>() {
        Some(e) => {
            let mut shown = String::new();
            if e.is_timeout() {
                shown.push_str("timed out");
            } else if e.is_connect() {
                shown.push_str("connect failed");
            } else {
                shown.push_str("request failed");
            }
            shown
        }
        None => error.to_string(),
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A canned answer for [`ScriptedTransport`].
pub type ScriptedAnswer = Result<WireResponse, TransportError>;

/// A transport for tests: answers from a queue, and records every request it was given (after
/// [`prepare`], so the recorded requests carry their client request id). An empty queue answers
/// with [`TransportError::Invalid`] naming the request, so a test that sends too much fails clearly.
#[derive(Debug, Clone, Default)]
pub struct ScriptedTransport {
    inner: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    answers: VecDeque<ScriptedAnswer>,
    sent: Vec<WireRequest>,
}

impl ScriptedTransport {
    pub fn new(answers: impl IntoIterator<Item = ScriptedAnswer>) -> ScriptedTransport {
        let transport = ScriptedTransport::default();
        for answer in answers {
            transport.push(answer);
        }
        transport
    }

    pub fn push(&self, answer: ScriptedAnswer) {
        self.lock().answers.push_back(answer);
    }

    /// Every request sent so far, in order.
    pub fn sent(&self) -> Vec<WireRequest> {
        self.lock().sent.clone()
    }

    /// How many canned answers are left.
    pub fn remaining(&self) -> usize {
        self.lock().answers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Transport for ScriptedTransport {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        let answer = prepare(request).and_then(|prepared| {
            let mut script = self.lock();
            let answer = script.answers.pop_front().unwrap_or_else(|| {
                Err(invalid(
                    &prepared.url,
                    format!(
                        "the script has no answer left for {} {}",
                        prepared.method, prepared.url
                    ),
                ))
            });
            script.sent.push(prepared);
            answer
        });
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

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

    #[test]
    fn debug_never_shows_credentials_or_bodies() {
        let request = WireRequest::new(Method::Post, "https://login.example/token")
            .header("Authorization", "Bearer eyJ.secret.token")
            .header("x-ms-client-request-id", "abc");
        let mut request = request;
        request.body = Some(b"client_secret=hunter2".to_vec());
        let shown = format!("{request:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("\"Authorization\": \"<redacted>\""),
            "{shown}"
        );
        assert!(shown.contains("<21 bytes>"), "{shown}");
        let response = WireResponse::new(200).json(&serde_json::json!({"access_token": "eyJ.x"}));
        assert!(!format!("{response:?}").contains("eyJ"));
    }

    #[test]
    fn scripted_transport_stamps_ids_and_records() {
        let transport = ScriptedTransport::new([Ok(WireResponse::new(200)
            .header(REQUEST_ID, "rid-1")
            .header(CORRELATION_REQUEST_ID, "cid-1"))]);
        let request = WireRequest::new(Method::Get, "https://management.azure.com/a");
        let response = block(transport.send(&request)).unwrap();
        assert_eq!(response.request_id(), Some("rid-1"));
        assert_eq!(response.correlation_id(), Some("cid-1"));
        let sent = transport.sent();
        assert_eq!(sent.len(), 1);
        let id = sent[0].client_request_id().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

        // Each request gets its own id; an id the caller set is kept.
        let again = block(transport.send(&request)).unwrap_err();
        assert_eq!(
            again.to_string(),
            "invalid request to https://management.azure.com/a: the script has no answer left \
             for GET https://management.azure.com/a"
        );
        let sent = transport.sent();
        assert_ne!(sent[0].client_request_id(), sent[1].client_request_id());
        let mine = request.clone().header(CLIENT_REQUEST_ID, "mine");
        let _ = block(transport.send(&mine));
        assert_eq!(transport.sent()[2].client_request_id(), Some("mine"));
    }

    #[test]
    fn scripted_transport_refuses_plain_http_like_the_real_one() {
        let transport = ScriptedTransport::new([Ok(WireResponse::new(200))]);
        let request = WireRequest::new(Method::Get, "http://management.azure.com/a");
        assert!(matches!(
            block(transport.send(&request)),
            Err(TransportError::InsecureUrl { .. })
        ));
        assert_eq!(transport.remaining(), 1);
        assert!(transport.sent().is_empty());
    }

    #[test]
    fn reqwest_transport_refuses_plain_http_without_connecting() {
        let transport = ReqwestTransport::new().unwrap();
        let request = WireRequest::new(Method::Get, "http://192.0.2.1/never");
        assert!(matches!(
            block(transport.send(&request)),
            Err(TransportError::InsecureUrl { .. })
        ));
    }

    #[test]
    fn reqwest_transport_against_a_loopback_server() {
        block(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                }
                socket
                    .write_all(
                        b"HTTP/1.1 429 Too Many Requests\r\nx-ms-request-id: r1\r\n\
                          Retry-After: 3\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await
                    .unwrap();
                String::from_utf8(seen).unwrap()
            });
            let transport = ReqwestTransport::new().unwrap();
            let request = WireRequest::new(Method::Get, format!("http://{address}/probe"));
            let response = transport.send(&request).await.unwrap();
            assert_eq!(response.status, 429);
            assert_eq!(response.request_id(), Some("r1"));
            assert_eq!(response.headers.get("retry-after"), Some("3"));
            assert_eq!(response.body, b"{}");
            let head = server.await.unwrap().to_ascii_lowercase();
            assert!(head.contains("x-ms-client-request-id: "), "{head}");

            // Nobody listens any more: refused before anything was sent.
            let error = transport.send(&request).await.unwrap_err();
            assert!(matches!(error, TransportError::Connect { .. }), "{error}");
            assert!(error.never_sent());
            assert_eq!(
                error.to_string().split(": connect failed: ").next(),
                Some(format!("could not connect to http://{address}/probe").as_str())
            );
        });
    }

    #[test]
    fn reset_after_sending_is_ambiguous() {
        block(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                drop(socket);
            });
            let transport = ReqwestTransport::new().unwrap();
            let request = WireRequest::new(Method::Post, format!("http://{address}/action"))
                .json(&serde_json::json!({}));
            let error = transport.send(&request).await.unwrap_err();
            assert!(matches!(error, TransportError::Ambiguous { .. }), "{error}");
            assert!(!error.never_sent());
            assert!(
                error
                    .to_string()
                    .ends_with("connection closed before message completed"),
                "{error}"
            );
        });
    }

    #[tokio::test]
    async fn a_silent_connection_fails_as_ambiguous_instead_of_hanging() {
        // Accepts, reads nothing, answers nothing: a half-open peer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let transport = ReqwestTransport::with_read_timeout(Duration::from_millis(200)).unwrap();
        let started = std::time::Instant::now();
        let error = transport
            .send(&WireRequest::new(Method::Get, &url))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(error, TransportError::Ambiguous { .. }), "{error}");
        assert!(error.to_string().contains("timed out"), "{error}");
        held.abort();
    }
}
