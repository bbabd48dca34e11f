//! The transport that touches the network. Everything reqwest-specific lives here: the clients,
//! their timeouts, and how reqwest's errors map to "sent or not", which decides what may be
//! retried.

use std::time::Duration;

use super::{
    SendFuture, Transport, TransportError, WireRequest, WireResponse, invalid, is_loopback, prepare,
};

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

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::super::Method;
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
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
            // Holds the connection open without answering, longer than the silence limit under test.
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
