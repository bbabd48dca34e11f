//! Calls to the boundary's data plane as a client sees it: the APIM gateway and the Foundry
//! endpoint, with a bearer token or a key or nothing, answered whole or streamed as server-sent
//! events as they arrive (the wire layer's [`Transport`](crate::azure::transport::Transport)
//! answers whole, which a streamed completion must not wait for).
//!
//! A credential is only ever sent over `https://`, or plain `http://` to loopback (the sandbox);
//! plain HTTP elsewhere goes out only without one, which is how `verify` shows the gateway
//! refusing it. Redirects are not followed: a redirect to HTTPS is an answer to report.

use std::time::Duration;

use crate::azure::transport::check_scheme;

/// How long to wait for a connection; a silent answer is bounded by `READ_TIMEOUT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A model may think for a while before its first token; longer silence is a dead connection.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Answers are read up to this size; the rest is not needed to report them.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// One request as the data plane gets it.
#[derive(Clone)]
pub struct Call {
    pub method: &'static str,
    pub url: String,
    /// Header names and values; `authorization` and `api-key` are credentials.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Call {
    fn carries_credential(&self) -> bool {
        self.headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("api-key")
        })
    }
}

/// An answer: status, headers and (up to a bound) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The call did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataPlaneError {
    #[error("{url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: no answer: {reason}")]
    Unreachable { url: String, reason: String },
}

impl crate::hint::Remedy for DataPlaneError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            DataPlaneError::Refused { .. } => "use the https:// URL `up` printed".into(),
            DataPlaneError::Unreachable { .. } => {
                "check the network; for a sandbox environment, keep `provision sandbox serve` \
                 running"
                    .into()
            }
        })
    }
}

/// What receives a streamed answer's bytes as they arrive.
pub type OnChunk<'a> = dyn FnMut(&[u8]) + Send + 'a;

#[derive(Debug, Clone)]
pub struct DataPlane {
    client: reqwest::Client,
    loopback: reqwest::Client,
}

impl DataPlane {
    /// Trusts the platform's roots and, given `extra_root` (PEM), that certificate too: a
    /// `--tls` sandbox serves its gateway and Foundry endpoints with its own certificate.
    pub fn new(extra_root: Option<&[u8]>) -> Result<DataPlane, DataPlaneError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fail = |e: reqwest::Error| DataPlaneError::Refused {
            url: String::new(),
            reason: format!("could not build the HTTP client: {e}"),
        };
        let root = extra_root
            .map(reqwest::Certificate::from_pem)
            .transpose()
            .map_err(fail)?;
        let builder = || {
            let b = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")));
            match &root {
                Some(cert) => b.add_root_certificate(cert.clone()),
                None => b,
            }
        };
        Ok(DataPlane {
            client: builder().build().map_err(fail)?,
            loopback: builder().no_proxy().build().map_err(fail)?,
        })
    }

    /// Sends `call`; with `on_chunk`, a successful answer's body is handed over as it arrives
    /// (and not kept), else it is read whole.
    pub async fn send(
        &self,
        call: &Call,
        mut on_chunk: Option<&mut OnChunk<'_>>,
    ) -> Result<Answer, DataPlaneError> {
        let url = reqwest::Url::parse(&call.url).map_err(|e| DataPlaneError::Refused {
            url: call.url.clone(),
            reason: e.to_string(),
        })?;
        if call.carries_credential() {
            check_scheme(&call.url).map_err(|e| DataPlaneError::Refused {
                url: call.url.clone(),
                reason: e.to_string(),
            })?;
        }
        let loopback = url.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let client = if loopback {
            &self.loopback
        } else {
            &self.client
        };
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| {
            DataPlaneError::Refused {
                url: call.url.clone(),
                reason: e.to_string(),
            }
        })?;
        let mut request = client.request(method, url);
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        let unreachable = |e: reqwest::Error| DataPlaneError::Unreachable {
            url: call.url.clone(),
            reason: chain(&e),
        };
        let mut response = request.send().await.map_err(unreachable)?;
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
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            match on_chunk.as_mut() {
                Some(f) if (200..300).contains(&status) => f(&chunk),
                _ if body.len() < MAX_ANSWER_BYTES => body.extend_from_slice(&chunk),
                _ => {}
            }
        }
        body.truncate(MAX_ANSWER_BYTES);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
