//! The sandbox's own front door. It hands out an operator secret (`/_sandbox/info`) and approves
//! sign-ins, so a web page the developer happens to have open must not be able to use it.
//!
//! - DNS rebinding: a page on `rebind.attacker.example` whose name later resolves to 127.0.0.1
//!   reaches the sandbox as same-origin to itself, and can read every answer. Its requests carry
//!   `Host: rebind.attacker.example:PORT`, so only loopback names (`localhost`, 127.0.0.0/8,
//!   `[::1]`) and the address the sandbox was started on are answered; anything else gets 421.
//!   No route depends on the Host (every emulated Azure host shares one origin), so the check
//!   cannot turn away a request the sandbox would have routed elsewhere.
//! - Cross-site requests: any page can send a POST to any origin without asking, as long as it
//!   is a CORS "simple" request, and reading the answer is not needed to approve a device code or
//!   rotate a key. State-changing admin requests are refused when their `Origin` is not the
//!   sandbox's own, or, under `/_sandbox/`, when their content type is one of the simple ones
//!   (a JSON body forces a browser to ask first, and the sandbox never says yes). This keeps
//!   `curl -X POST` and the tests working without a token to find and pass around; a per-sandbox
//!   admin token would protect the same endpoints at that cost. The `/devicelogin` page posts
//!   its own form (urlencoded by nature), so only its Origin is checked here; browsers send
//!   `Origin` with every cross-origin POST. The page also checks its own anti-forgery token
//!   (`login/flows.rs`), for a browser that sends no `Origin`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

/// Content types a browser sends cross-site without a preflight (the Fetch standard's
/// CORS-safelisted request-header values for `Content-Type`).
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// Where the sandbox listens and how, for judging a request's Host and Origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Front {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// `Some(answer)` when the request is refused.
pub(crate) fn check(front: Front, request: &Request) -> Option<Response<Body>> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let host = match host {
        Some(h) if host_allowed(front, &h) => h,
        other => return Some(misdirected(front, other.as_deref())),
    };
    if !changes_state(request) {
        return None;
    }
    let path = request.uri().path();
    let what = format!("{} {path}", request.method());
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        let own = format!("{}://{host}", if front.tls { "https" } else { "http" });
        if !origin.eq_ignore_ascii_case(&own) {
            return Some(forbidden(
                &format!(
                    "{what}: refused a cross-site request from Origin `{origin}`; the sandbox's \
                     admin requests are accepted from its own origin ({own}) or from clients \
                     that send no Origin (curl, tests)"
                ),
                "send the request from a client such as curl, not from a web page",
            ));
        }
    }
    if path.starts_with("/_sandbox/")
        && let Some(kind) = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| simple_content_type(v))
    {
        return Some(forbidden(
            &format!(
                "{what}: refused Content-Type `{kind}`: any web page may send that type to any \
                 site without asking, so the sandbox's admin requests take a JSON body or none"
            ),
            "send `Content-Type: application/json` with a body, or no body at all",
        ));
    }
    None
}

fn changes_state(request: &Request) -> bool {
    let path = request.uri().path();
    let admin = path.starts_with("/_sandbox/") || path == "/devicelogin";
    admin
        && !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        )
}

fn simple_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    SIMPLE_CONTENT_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(essence))
}

/// The host part of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn host_allowed(front: Front, host: &str) -> bool {
    let name = host_name(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let Ok(ip) = name.parse::<IpAddr>() else {
        return false;
    };
    let bound = front.addr.ip();
    // Bound to every interface (`--allow-non-loopback` on 0.0.0.0), the sandbox cannot know
    // all of the machine's addresses; an IP literal is never a rebinding attack, whose whole
    // point is a name the attacker controls.
    ip.is_loopback() || ip == bound || bound.is_unspecified()
}

fn misdirected(front: Front, host: Option<&str>) -> Response<Body> {
    let scheme = if front.tls { "https" } else { "http" };
    let port = front.addr.port();
    let given = host.map_or_else(|| "no Host".to_owned(), |h| format!("Host `{h}`"));
    let mut names = "localhost, 127.0.0.0/8 and [::1]".to_owned();
    if !front.addr.ip().is_loopback() {
        names = format!("{names}, and {}", front.addr.ip());
    }
    let message = format!(
        "the sandbox refused a request with {given}: it answers only to {names}, so that a web \
         page cannot reach it under a name of its own (DNS rebinding); use {scheme}://127.0.0.1:{port}"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        axum::Json(json!({"error": {"code": "MisdirectedRequest", "message": message}})),
    )
        .into_response()
}

fn forbidden(message: &str, hint: &str) -> Response<Body> {
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"error": message, "hint": hint})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONT: Front = Front {
        addr: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 7171),
        tls: false,
    };

    #[test]
    fn loopback_names_are_the_only_hosts_answered() {
        for host in [
            "127.0.0.1:7171",
            "127.0.0.1",
            "127.8.9.10:7171",
            "localhost:7171",
            "LOCALHOST",
            "[::1]:7171",
            "[::1]",
        ] {
            assert!(host_allowed(FRONT, host), "{host}");
        }
        for host in [
            "rebind.attacker.example:7171",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:7171",
            "10.0.0.5:7171",
            "[::2]:7171",
            "",
        ] {
            assert!(!host_allowed(FRONT, host), "{host}");
        }
    }

    #[test]
    fn a_non_loopback_bind_also_answers_to_its_own_address() {
        let lan = Front {
            addr: "192.168.1.20:7171".parse().unwrap(),
            tls: false,
        };
        assert!(host_allowed(lan, "192.168.1.20:7171"));
        assert!(host_allowed(lan, "127.0.0.1:7171"));
        assert!(!host_allowed(lan, "192.168.1.21:7171"));
        assert!(!host_allowed(lan, "sandbox.lan:7171"));
        let any = Front {
            addr: "0.0.0.0:7171".parse().unwrap(),
            tls: false,
        };
        assert!(host_allowed(any, "192.168.1.21:7171"));
        assert!(!host_allowed(any, "rebind.attacker.example:7171"));
    }

    #[test]
    fn simple_content_types_are_recognised_with_parameters() {
        assert!(simple_content_type("text/plain;charset=UTF-8"));
        assert!(simple_content_type("Multipart/Form-Data; boundary=x"));
        assert!(simple_content_type("application/x-www-form-urlencoded"));
        assert!(!simple_content_type("application/json"));
        assert!(!simple_content_type("application/json; charset=utf-8"));
    }
}
