//! What a request or response shows of itself in `Debug` output, which reaches logs at any
//! verbosity: header values that are credentials are replaced, and bodies (a token request carries
//! a client secret, a token response the token) are shown by size only.

use std::fmt;

use super::{Headers, WireRequest, WireResponse};

/// Header names whose values are credentials. Their values never reach `Debug` output.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "api-key",
    "ocp-apim-subscription-key",
];

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

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;
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
}
