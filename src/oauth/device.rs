//! The device authorization grant (RFC 8628) and the refresh-token grant as Entra's v2 endpoints
//! speak them (learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code): `POST
//! {login}/{tenant}/oauth2/v2.0/devicecode` with `client_id` and `scope`, then `POST …/token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` every `interval` seconds until the
//! user has signed in. `authorization_pending` means poll again; `slow_down` means add 5 seconds
//! to the interval (RFC 8628 §3.5); `authorization_declined` (Entra) or `access_denied` (RFC),
//! `expired_token` and `bad_verification_code` end the flow. Every refusal keeps Entra's AADSTS
//! number, because what to do depends on it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::azure::credential::{AccessToken, Secret};
use crate::azure::transport::{Method, Transport, WireRequest, WireResponse};
use crate::clock::{Clock, Timestamp};
use crate::hint::Remedy;
use crate::policy::token::Jwt;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent
/// requests".
const SLOW_DOWN_STEP: u64 = 5;
/// RFC 8628 §3.2: when the server names no interval, poll every 5 seconds.
const DEFAULT_INTERVAL: u64 = 5;
/// Polls never come faster than this, whatever a server says (an interval of 0 would spin).
const MIN_INTERVAL: u64 = 1;

/// The device code's side of a sign-in, as the user is to see it. The device code itself is
/// kept from `Debug`: whoever holds it gets the token.
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    /// Seconds the code lives.
    pub expires_in: u64,
    /// Seconds between polls, as the server first asked.
    pub interval: u64,
    /// Entra's own instruction ("To sign in, use a web browser to open the page … and enter the
    /// code … to authenticate.").
    pub message: String,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What a successful sign-in or refresh hands back.
#[derive(Debug, Clone)]
pub struct UserTokens {
    pub access_token: AccessToken,
    pub refresh_token: Option<Secret>,
    /// From the token's `exp` claim when it has one (exact), else now + `expires_in`.
    pub expires_on: Timestamp,
    /// The scopes granted (`scope` of the answer), space-separated.
    pub scope: String,
}

/// Which request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    DeviceCode,
    Poll,
    Refresh,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::DeviceCode => "asking for a device code",
            Step::Poll => "waiting for the sign-in",
            Step::Refresh => "refreshing the token",
        })
    }
}

/// Why a sign-in did not end with a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{step}: could not reach {url}: {reason}")]
    Unreachable {
        step: Step,
        url: String,
        reason: String,
    },
    /// Entra said no: `error`, the AADSTS number and the first line of its description.
    #[error("{step}: Entra ID answered HTTP {status} {error}: {description}")]
    Refused {
        step: Step,
        status: u16,
        error: String,
        code: Option<u32>,
        description: String,
    },
    #[error("{step}: the answer from {url} is not what Entra ID sends: {reason}")]
    Malformed {
        step: Step,
        url: String,
        reason: String,
    },
    /// The code outlived its lifetime on our side of the wire without an answer from Entra.
    #[error("waiting for the sign-in: the code expired after {0} seconds before anyone signed in")]
    CodeExpired(u64),
}

impl OAuthError {
    /// Entra's `error` value, if Entra refused.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            OAuthError::Refused { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether a refresh failed because the refresh token can not be used any more, so that a new
    /// sign-in is the cure (as MSAL falls back to interaction on `invalid_grant`).
    pub fn needs_new_sign_in(&self) -> bool {
        matches!(self, OAuthError::Refused { step: Step::Refresh, error, .. } if error == "invalid_grant")
    }
}

const EXPIRED: &str = "the code expired before the sign-in was completed: run the command again \
                       and enter the code at the page within its lifetime";

/// What to do about each refusal (AADSTS numbers: learn.microsoft.com/entra/identity-platform/
/// reference-error-codes).
impl Remedy for OAuthError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        let hint = match self {
            OAuthError::Unreachable { .. } => {
                "check the network; for a sandbox environment, start it with `provision sandbox \
                 serve`"
            }
            OAuthError::Malformed { .. } => {
                "check that the environment's cloud (`cloud:`) points at Entra ID's login host"
            }
            OAuthError::CodeExpired(_) => EXPIRED,
            OAuthError::Refused { error, code, .. } => match (error.as_str(), code) {
                ("expired_token", _) => EXPIRED,
                ("authorization_declined" | "access_denied", _) => {
                    "the sign-in was declined at the device login page: run the command again \
                     and approve it (the app's permissions may need an admin's consent)"
                }
                (_, Some(7_000_218)) | ("invalid_client", _) => {
                    "the app is not a public client: enable \"Allow public client flows\" \
                     (`isFallbackPublicClient: true`) on the client app registration; `provision \
                     up` registers clients that way"
                }
                (_, Some(65_001)) | ("consent_required", _) => {
                    "the user has not consented to the API's scope: sign in once interactively \
                     and accept, or have an admin grant consent (`az ad app permission \
                     admin-consent --id <client app id>`)"
                }
                (_, Some(700_016)) | ("unauthorized_client", _) => {
                    "the client app is not registered in this tenant: run `provision up` for the \
                     environment, or name a registered client with --client"
                }
                (_, Some(90_002)) => "check `tenant_id` in the environment file",
                (_, Some(50_105)) => {
                    "the user is not assigned to the app: have an admin assign the user (or a \
                     group) in Enterprise applications"
                }
                ("invalid_scope", _) => {
                    "the API does not expose that scope: run `provision up` for the environment, \
                     or check --scope"
                }
                ("invalid_grant", _) => {
                    "the saved sign-in can not be used any more: sign in again with `provision \
                     token --force`"
                }
                ("bad_verification_code", _) => "run the command again for a new code",
                _ => {
                    "look the AADSTS number up in Entra ID's error reference \
                     (learn.microsoft.com/entra/identity-platform/reference-error-codes)"
                }
            },
        };
        Some(hint.into())
    }
}

/// One public client app of one tenant: `{login}/{tenant}` and the app's client id.
pub struct PublicClient {
    transport: Arc<dyn Transport>,
    authority: String,
    client_id: String,
}

impl PublicClient {
    pub fn new(
        transport: Arc<dyn Transport>,
        login: &str,
        tenant: &str,
        client_id: &str,
    ) -> PublicClient {
        PublicClient {
            transport,
            authority: format!("{}/{tenant}", login.trim_end_matches('/')),
            client_id: client_id.to_owned(),
        }
    }

    /// Asks for a device code for `scopes`.
    pub async fn start(&self, scopes: &[String]) -> Result<DeviceAuthorization, OAuthError> {
        let url = format!("{}/oauth2/v2.0/devicecode", self.authority);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &scopes.join(" "))
            .finish();
        let body = self.post(Step::DeviceCode, &url, form).await?;
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let number = |name: &str| body.get(name).and_then(Value::as_u64);
        let malformed = |what: &str| OAuthError::Malformed {
            step: Step::DeviceCode,
            url: url.clone(),
            reason: format!("no `{what}`"),
        };
        let device_code = text("device_code").ok_or_else(|| malformed("device_code"))?;
        let user_code = text("user_code").ok_or_else(|| malformed("user_code"))?;
        let verification_uri = text("verification_uri")
            .or_else(|| text("verification_url"))
            .ok_or_else(|| malformed("verification_uri"))?;
        let expires_in = number("expires_in").ok_or_else(|| malformed("expires_in"))?;
        let interval = number("interval").unwrap_or(DEFAULT_INTERVAL);
        let message = text("message").unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}.")
        });
        Ok(DeviceAuthorization {
            device_code: Secret::new(device_code),
            user_code,
            verification_uri,
            expires_in,
            interval,
            message,
        })
    }

    /// Polls until the user has signed in, declined, or the code expired. Waits `interval`
    /// before each poll, longer after every `slow_down`.
    pub async fn wait(
        &self,
        authorization: &DeviceAuthorization,
        clock: &dyn Clock,
    ) -> Result<UserTokens, OAuthError> {
        let url = format!("{}/oauth2/v2.0/token", self.authority);
        let mut interval = authorization.interval.max(MIN_INTERVAL);
        let expires = tokio::time::Instant::now() + Duration::from_secs(authorization.expires_in);
        loop {
            // Real time on purpose: RFC 8628 §3.5 asks the client to wait `interval` seconds
            // between polls; tests run this loop on tokio's paused clock.
            tokio::time::sleep(Duration::from_secs(interval)).await;
            let form = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", DEVICE_CODE_GRANT)
                .append_pair("client_id", &self.client_id)
                .append_pair("device_code", authorization.device_code.expose())
                .finish();
            match self.post(Step::Poll, &url, form).await {
                Ok(body) => return tokens(&url, Step::Poll, &body, clock),
                Err(e) if e.error_code() == Some("authorization_pending") => {}
                Err(e) if e.error_code() == Some("slow_down") => {
                    interval += SLOW_DOWN_STEP;
                    tracing::debug!(interval, "slow_down: polling less often");
                }
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= expires {
                return Err(OAuthError::CodeExpired(authorization.expires_in));
            }
        }
    }

    /// Redeems a refresh token for a new access token (and a new refresh token).
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        scopes: &[String],
        clock: &dyn Clock,
    ) -> Result<UserTokens, OAuthError> {
        let url = format!("{}/oauth2/v2.0/token", self.authority);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("refresh_token", refresh_token.expose())
            .append_pair("scope", &scopes.join(" "))
            .finish();
        let body = self.post(Step::Refresh, &url, form).await?;
        tokens(&url, Step::Refresh, &body, clock)
    }

    /// One form POST; an Entra error body becomes [`OAuthError::Refused`].
    async fn post(&self, step: Step, url: &str, form: String) -> Result<Value, OAuthError> {
        let mut request = WireRequest::new(Method::Post, url)
            .header("content-type", "application/x-www-form-urlencoded");
        request.body = Some(form.into_bytes());
        // `WireRequest`'s Debug shows the body by size only: it carries a device code or a
        // refresh token.
        tracing::trace!(?request, "sending");
        let response =
            self.transport
                .send(&request)
                .await
                .map_err(|e| OAuthError::Unreachable {
                    step,
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
        tracing::debug!(status = response.status, %url, "answered");
        let body = response.body_json().unwrap_or(Value::Null);
        if response.is_success() {
            return Ok(body);
        }
        Err(refusal(step, url, &response, &body))
    }
}

fn refusal(step: Step, url: &str, response: &WireResponse, body: &Value) -> OAuthError {
    let Some(error) = body.get("error").and_then(Value::as_str) else {
        return OAuthError::Malformed {
            step,
            url: url.to_owned(),
            reason: format!("HTTP {} without an OAuth `error`", response.status),
        };
    };
    // Entra's description ends in "\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …":
    // the first line is the message.
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .unwrap_or("no description")
        .to_owned();
    let code = body
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    OAuthError::Refused {
        step,
        status: response.status,
        error: error.to_owned(),
        code,
        description,
    }
}

fn tokens(
    url: &str,
    step: Step,
    body: &Value,
    clock: &dyn Clock,
) -> Result<UserTokens, OAuthError> {
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| OAuthError::Malformed {
            step,
            url: url.to_owned(),
            reason: "no `access_token`".to_owned(),
        })?;
    let from_claim = Jwt::parse(access)
        .ok()
        .and_then(|jwt| jwt.time_claim("exp").ok().flatten())
        .and_then(|exp| Timestamp::from_second(exp).ok());
    let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
    let expires_on = from_claim.unwrap_or_else(|| {
        clock
            .now()
            .saturating_add(Duration::from_secs(lifetime))
            .unwrap_or(Timestamp::MAX)
    });
    Ok(UserTokens {
        access_token: AccessToken::new(access),
        refresh_token: body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(Secret::new),
        expires_on,
        scope: body
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::transport::ScriptedTransport;
    use crate::clock::FixedClock;
    use serde_json::json;

    fn entra_error(error: &str, code: u32, text: &str) -> WireResponse {
        WireResponse::new(400).json(&json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
        }))
    }

    fn authorization(interval: u64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: Secret::new("dc-secret"),
            user_code: "ABC".into(),
            verification_uri: "https://microsoft.com/devicelogin".into(),
            expires_in: 900,
            interval,
            message: "m".into(),
        }
    }

    /// RFC 8628 §3.5: every `slow_down` adds 5 seconds to the interval, for all later polls.
    #[tokio::test(start_paused = true)]
    async fn slow_down_adds_five_seconds_to_every_later_poll() {
        let transport = Arc::new(ScriptedTransport::new([
            Ok(entra_error("authorization_pending", 70_016, "pending")),
            Ok(entra_error("slow_down", 70_016, "slow down")),
            Ok(entra_error("authorization_pending", 70_016, "pending")),
            Ok(WireResponse::new(200).json(&json!({
                "access_token": "at", "refresh_token": "rt", "expires_in": 3600,
                "scope": "api://a/llm.invoke"}))),
        ]));
        let client = PublicClient::new(transport.clone(), "https://login.example", "t1", "c1");
        let clock = FixedClock::at("2026-11-28T16:00:00Z".parse().unwrap());
        let started = tokio::time::Instant::now();
        let tokens = client.wait(&authorization(2), &clock).await.unwrap();
        // Polls at 2, 4 (slow_down), 4 + 7, 11 + 7 seconds.
        assert_eq!(started.elapsed(), Duration::from_secs(18));
        assert_eq!(tokens.access_token.expose(), "at");
        assert_eq!(tokens.refresh_token.unwrap().expose(), "rt");
        assert_eq!(tokens.expires_on, "2026-11-28T17:00:00Z".parse().unwrap());
        let sent = transport.sent();
        assert_eq!(sent.len(), 4);
        assert_eq!(sent[0].url, "https://login.example/t1/oauth2/v2.0/token");
        assert_eq!(
            String::from_utf8(sent[0].body.clone().unwrap()).unwrap(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=c1&device_code=dc-secret"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn access_denied_ends_the_flow_with_its_remedy_and_no_secret() {
        let transport = Arc::new(ScriptedTransport::new([Ok(entra_error(
            "access_denied",
            50_126,
            "the user said no",
        ))]));
        let client = PublicClient::new(transport, "https://login.example", "t1", "c1");
        let clock = FixedClock::at("2026-11-28T16:00:00Z".parse().unwrap());
        let error = client.wait(&authorization(5), &clock).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "waiting for the sign-in: Entra ID answered HTTP 400 access_denied: AADSTS50126: the user said no"
        );
        assert!(
            error
                .hint()
                .unwrap()
                .starts_with("the sign-in was declined")
        );
        assert!(!format!("{error:?}{:?}", authorization(5)).contains("dc-secret"));
    }

    #[test]
    fn entras_refusals_have_a_remedy_each() {
        let refused = |error: &str, code: u32| OAuthError::Refused {
            step: Step::Poll,
            status: 400,
            error: error.into(),
            code: Some(code),
            description: String::new(),
        };
        let hint = |e: OAuthError| e.hint().unwrap().into_owned();
        assert!(
            hint(refused("invalid_client", 7_000_218))
                .starts_with("the app is not a public client")
        );
        assert!(hint(refused("invalid_grant", 65_001)).starts_with("the user has not consented"));
        assert!(hint(refused("expired_token", 70_020)).starts_with("the code expired"));
        assert!(hint(refused("invalid_grant", 700_082)).contains("provision token --force"));
        assert!(!refused("invalid_grant", 700_082).needs_new_sign_in());
        let refresh = OAuthError::Refused {
            step: Step::Refresh,
            status: 400,
            error: "invalid_grant".into(),
            code: Some(700_082),
            description: String::new(),
        };
        assert!(refresh.needs_new_sign_in());
    }
}
