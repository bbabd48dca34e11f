//! One command's conversation with Azure: the transport, the credentials, the retry policy and
//! the command's deadline, shared by the ARM and Graph clients.
//!
//! Three things happen here and nowhere else: a request gets a fresh token for its scope (and,
//! when the server refuses it with 401, one more try with a new token); every request goes
//! through [`retry::send`]; and waits for eventual consistency ([`Session::until`]) back off
//! within their own timeout and the command's deadline.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::error::ApiError;
use super::lro::{self, LroError};
use super::retry::{self, Deadline, DeadlineExceeded, Replay, RetryPolicy, SendError};
use super::sign_in::{Credentials, SignInError};
use super::transport::{Method, Transport, TransportError, WireRequest, WireResponse};
use crate::access::Service;
use crate::clock::{Clock, SystemClock, format_duration};
use crate::dice::Dice;
use crate::hint::Remedy;

/// Anything the wire layer can fail with, each with what the user can do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// ARM or Graph answered with an error.
    #[error("{action}: {error}")]
    Api {
        /// `PUT <path>` (no host, no query), so the message names the resource.
        action: String,
        error: Box<ApiError>,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
    /// A long-running operation ended badly or could not be followed.
    #[error("{action}: {error}")]
    Operation { action: String, error: LroError },
    #[error(transparent)]
    SignIn(#[from] SignInError),
    /// A 2xx answer without what the API documents (a body that does not parse, a missing field).
    #[error("{action}: unexpected answer: {reason}")]
    Unexpected { action: String, reason: String },
}

impl From<SendError> for WireError {
    fn from(error: SendError) -> WireError {
        match error {
            SendError::Transport(e) => WireError::Transport(e),
            SendError::Deadline(e) => WireError::Deadline(e),
        }
    }
}

/// The remedy, printed on its own `hint:` line.
impl Remedy for WireError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        match self {
            WireError::Api { error, .. } => error.hint(),
            WireError::Operation { error, .. } => match error {
                LroError::Rejected(e) | LroError::Ended { error: e, .. } => e.hint(),
                LroError::Unreadable { .. } | LroError::Malformed { .. } => Some(
                    "the operation may still be running in Azure; run the command again to pick \
                     up its outcome"
                        .into(),
                ),
                LroError::Send(SendError::Deadline(e)) => e.hint(),
                LroError::Send(SendError::Transport(_)) => None,
            },
            WireError::Deadline(e) => e.hint(),
            WireError::SignIn(e) => e.hint(),
            WireError::Transport(TransportError::Ambiguous { .. }) => Some(
                "the request may have been carried out; run the command again: it reads what \
                 exists before writing"
                    .into(),
            ),
            WireError::Transport(_) | WireError::Unexpected { .. } => None,
        }
    }
}

impl WireError {
    /// The service answered `request` with an error status.
    pub fn refused(service: Service, request: &WireRequest, response: &WireResponse) -> WireError {
        WireError::Api {
            action: action(request.method, &request.url),
            error: Box::new(ApiError::from_response(service, response)),
        }
    }

    /// The ARM or Graph error, if that is what this is.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            WireError::Api { error, .. } => Some(error),
            WireError::Operation {
                error: LroError::Rejected(error) | LroError::Ended { error, .. },
                ..
            } => Some(error),
            _ => None,
        }
    }

    /// True for an API error with this code (or a detail with it).
    pub fn has_code(&self, code: &str) -> bool {
        self.api().is_some_and(|e| e.has_code(code))
    }

    pub fn status(&self) -> Option<u16> {
        self.api().and_then(|e| e.status)
    }
}

/// The body of a successful answer as JSON; an empty one (a 202 or 204 that ends an operation) is
/// `null`.
pub fn json_body(request: &WireRequest, response: &WireResponse) -> Result<Value, WireError> {
    response.body_json().map_err(|e| WireError::Unexpected {
        action: action(request.method, &request.url),
        reason: format!("the body is not JSON: {e}"),
    })
}

/// `PUT /subscriptions/…` without scheme, host or query: what a message needs to name the resource.
pub fn action(method: Method, url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or(url);
    let path = without_query
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(without_query);
    format!("{method} {path}")
}

/// How eventual-consistency waits back off: from `first`, doubling, up to `cap`. Microsoft's own
/// SDKs wait 10, 20, 40 s; starting at 1 s notices a replica that caught up quickly (the common
/// case) without flooding one that did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyPolicy {
    pub first: Duration,
    pub cap: Duration,
}

impl Default for ConsistencyPolicy {
    fn default() -> ConsistencyPolicy {
        ConsistencyPolicy {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(16),
        }
    }
}

/// One round of a consistency wait.
#[derive(Debug)]
pub enum Probe<T> {
    /// The condition holds.
    Ready(T),
    /// Not yet; the text says what was seen (for the message when the wait expires).
    NotYet(String),
}

/// The shared plumbing of one command.
pub struct Session {
    transport: Arc<dyn Transport>,
    credentials: Arc<Credentials>,
    policy: RetryPolicy,
    consistency: ConsistencyPolicy,
    dice: Mutex<Dice>,
    deadline: Deadline,
    clock: Arc<dyn Clock>,
}

impl Session {
    pub fn new(
        transport: Arc<dyn Transport>,
        credentials: Arc<Credentials>,
        deadline: Deadline,
    ) -> Session {
        Session {
            transport,
            credentials,
            policy: RetryPolicy::default(),
            consistency: ConsistencyPolicy::default(),
            dice: Mutex::new(Dice::new(seed())),
            deadline,
            clock: Arc::new(SystemClock),
        }
    }

    /// Measures HTTP-date `Retry-After`s on `clock` instead of the system's (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Session {
        self.clock = clock;
        self
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Session {
        self.policy = policy;
        self
    }

    pub fn with_consistency(mut self, consistency: ConsistencyPolicy) -> Session {
        self.consistency = consistency;
        self
    }

    /// Fixes the jitter, for tests that assert exact waits.
    pub fn with_seed(self, seed: u64) -> Session {
        *self.dice.lock().unwrap_or_else(|e| e.into_inner()) = Dice::new(seed);
        self
    }

    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A per-request dice, so concurrent requests never share one across an await.
    fn dice(&self) -> Dice {
        Dice::new(self.dice.lock().unwrap_or_else(|e| e.into_inner()).roll())
    }

    /// Sends `request` with a token for `scope`, retrying per [`retry`], and returns the final
    /// answer whatever its status. A 401 earns one more try with a freshly fetched token (a token
    /// revoked or expired early); a second 401 is returned.
    pub async fn send(
        &self,
        scope: &str,
        request: &WireRequest,
        replay: Replay,
        what: &str,
    ) -> Result<WireResponse, WireError> {
        let deadline = self.deadline.waiting_for(what);
        let mut request = request.clone();
        request.ensure_client_request_id();
        // ARM echoes our id only when asked; errors then carry all three ids.
        request.headers.set("x-ms-return-client-request-id", "true");
        for fresh in [false, true] {
            if fresh {
                self.credentials.forget(scope).await;
            }
            // Signing in (a CLI, IMDS, a token endpoint) counts against the deadline too.
            let token = tokio::time::timeout_at(deadline.at(), self.credentials.token(scope))
                .await
                .map_err(|_| {
                    deadline.exceeded(Some(format!(
                        "no token for {scope} from {}",
                        self.credentials.method()
                    )))
                })??;
            request.headers.set("authorization", token.bearer());
            // Headers' Debug redacts credentials, so this is safe at any verbosity.
            tracing::trace!(method = %request.method, url = %request.url, headers = ?request.headers, "sending");
            let started = tokio::time::Instant::now();
            let response = retry::send(
                &*self.transport,
                &request,
                replay,
                &self.policy,
                &mut self.dice(),
                &deadline,
                &*self.clock,
            )
            .await?;
            tracing::debug!(
                method = %request.method,
                url = %request.url,
                status = response.status,
                request_id = response.request_id().unwrap_or("-"),
                elapsed = %format_duration(started.elapsed()),
                "{what}"
            );
            tracing::trace!(headers = ?response.headers, "answer");
            if response.status != 401 || fresh {
                return Ok(response);
            }
            tracing::debug!(
                url = %request.url,
                "the server refused the token (HTTP 401); signing in again"
            );
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Like [`Session::send`], and an error status becomes [`WireError::Api`].
    pub async fn expect_success(
        &self,
        service: Service,
        scope: &str,
        request: &WireRequest,
        replay: Replay,
        what: &str,
    ) -> Result<WireResponse, WireError> {
        let response = self.send(scope, request, replay, what).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(WireError::refused(service, request, &response))
        }
    }

    /// Sends a request that may start an ARM long-running operation and follows it to the end.
    pub async fn operation(
        &self,
        scope: &str,
        request: &WireRequest,
        replay: Replay,
        what: &str,
    ) -> Result<WireResponse, WireError> {
        let initial = self.send(scope, request, replay, what).await?;
        self.follow(scope, request, initial, what).await
    }

    /// Follows the operation that `initial` (the answer to `request`) started. Each poll gets a
    /// fresh token (an APIM service takes longer to create than a token lives).
    pub async fn follow(
        &self,
        scope: &str,
        request: &WireRequest,
        initial: WireResponse,
        what: &str,
    ) -> Result<WireResponse, WireError> {
        let act = action(request.method, &request.url);
        let deadline = self.deadline.waiting_for(what);
        let polled = lro::follow(
            request.method,
            &request.url,
            initial,
            &deadline,
            &*self.clock,
            |url| async move {
                check_origin(&request.url, &url)?;
                self.send(
                    scope,
                    &WireRequest::new(Method::Get, url),
                    Replay::ByMethod,
                    what,
                )
                .await
                .map_err(Polled::Wire)
            },
        )
        .await;
        match polled {
            Ok(response) => Ok(response),
            Err(Polled::Wire(error)) => Err(error),
            Err(Polled::Lro(LroError::Rejected(error))) => {
                Err(WireError::Api { action: act, error })
            }
            Err(Polled::Lro(LroError::Send(error))) => Err(error.into()),
            Err(Polled::Lro(error)) => Err(WireError::Operation { action: act, error }),
        }
    }

    /// Waits until `probe` says [`Probe::Ready`], backing off per the [`ConsistencyPolicy`], for at
    /// most `timeout` (and never past the command's deadline). Expiry names `condition` and what
    /// the last probe saw. Errors from the probe end the wait at once.
    pub async fn until<T, F, Fut>(
        &self,
        condition: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T, WireError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Probe<T>, WireError>>,
    {
        let own = Deadline::after(timeout, condition);
        let deadline = if own.at() <= self.deadline.at() {
            own
        } else {
            self.deadline.waiting_for(condition)
        };
        let mut wait = self.consistency.first;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let seen = match probe().await? {
                Probe::Ready(value) => {
                    if tries > 1 {
                        tracing::info!(condition, tries, "eventually consistent");
                    }
                    return Ok(value);
                }
                Probe::NotYet(seen) => seen,
            };
            if deadline.cuts_short(wait) {
                return Err(deadline
                    .exceeded(Some(format!("{seen}, after {tries} tries")))
                    .into());
            }
            tracing::debug!(condition, %seen, wait = %format_duration(wait), "not yet");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.consistency.cap);
        }
    }
}

/// The token goes only where the first request went: a status URL or `nextLink` on another
/// origin (scheme, host, port) is refused rather than sent the bearer token.
pub fn check_origin(first: &str, next: &str) -> Result<(), WireError> {
    let origin = |u: &str| {
        reqwest::Url::parse(u).ok().map(|u| {
            (
                u.scheme().to_owned(),
                u.host_str().map(str::to_ascii_lowercase),
                u.port_or_known_default(),
            )
        })
    };
    if origin(first).is_some() && origin(first) == origin(next) {
        return Ok(());
    }
    Err(WireError::Unexpected {
        action: action(Method::Get, next),
        reason: format!(
            "the service pointed to {next}, which is not where the request went ({first}); \
             provision sends its token nowhere else"
        ),
    })
}

/// An LRO poll's failure: ours, or the protocol's.
enum Polled {
    Wire(WireError),
    Lro(LroError),
}

impl From<WireError> for Polled {
    fn from(error: WireError) -> Polled {
        Polled::Wire(error)
    }
}

impl From<LroError> for Polled {
    fn from(error: LroError) -> Polled {
        Polled::Lro(error)
    }
}

/// A seed from the OS, so jitter differs between concurrent runs.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::credential::CredentialPlan;
    use crate::azure::transport::ScriptedTransport;
    use crate::cloud::Cloud;
    use serde_json::json;

    fn session(transport: &ScriptedTransport) -> Session {
        let transport: Arc<dyn Transport> = Arc::new(transport.clone());
        let credentials = Credentials::from_plan(
            &CredentialPlan::Sandbox,
            Cloud::Sandbox,
            &Cloud::Sandbox.endpoints("127.0.0.1:1"),
            transport.clone(),
        )
        .unwrap();
        Session::new(
            transport,
            Arc::new(credentials),
            Deadline::after(Duration::from_secs(60), "the test"),
        )
        .with_seed(7)
    }

    fn sign_in_answers(token: &str) -> [Result<WireResponse, TransportError>; 1] {
        [Ok(WireResponse::new(200).json(
            &json!({"access_token": token, "expires_in": 3600}),
        ))]
    }

    fn operator() -> Result<WireResponse, TransportError> {
        Ok(WireResponse::new(200).json(&json!({"operator": {
            "tenant_id": "t", "client_id": "c", "client_secret": "s"}})))
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_replaced_once() {
        let transport = ScriptedTransport::new([operator()]);
        for answer in sign_in_answers("old") {
            transport.push(answer);
        }
        transport.push(Ok(WireResponse::new(401)));
        for answer in sign_in_answers("new") {
            transport.push(answer);
        }
        transport.push(Ok(WireResponse::new(200)));
        let s = session(&transport);
        let request = WireRequest::new(Method::Get, "http://127.0.0.1:1/subscriptions/x");
        let response = s
            .send("arm/.default", &request, Replay::ByMethod, "x")
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        let sent = transport.sent();
        let auth: Vec<_> = sent
            .iter()
            .filter(|r| r.url.ends_with("/subscriptions/x"))
            .map(|r| r.headers.get("authorization").unwrap().to_owned())
            .collect();
        assert_eq!(auth, ["Bearer old", "Bearer new"]);
        assert_eq!(
            sent[2].client_request_id(),
            sent[4].client_request_id(),
            "a retry keeps the client request id"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn until_backs_off_and_names_the_condition_when_it_expires() {
        let transport = ScriptedTransport::new([]);
        let s = session(&transport);
        let start = tokio::time::Instant::now();
        let mut probes = 0;
        let error = s
            .until::<(), _, _>("app 1234 to be readable", Duration::from_secs(10), || {
                probes += 1;
                async {
                    Ok(Probe::NotYet(
                        "HTTP 404 Request_ResourceNotFound".to_owned(),
                    ))
                }
            })
            .await
            .unwrap_err();
        // 1 + 2 + 4 s waited; the next wait (8 s) would pass the 10 s timeout.
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert_eq!(probes, 4);
        assert_eq!(
            error.to_string(),
            "gave up after 7s of 10s waiting for app 1234 to be readable (last: HTTP 404 \
             Request_ResourceNotFound, after 4 tries)"
        );
        assert!(error.hint().unwrap().contains("--timeout"));
    }

    #[test]
    fn tokens_follow_only_urls_on_the_same_origin() {
        let arm = "https://management.azure.com/subscriptions/s?api-version=1";
        assert!(check_origin(arm, "https://MANAGEMENT.azure.com:443/x/operationResults/1").is_ok());
        assert!(check_origin(arm, "https://evil.example/x").is_err());
        assert!(check_origin(arm, "http://management.azure.com/x").is_err());
        assert!(check_origin("http://127.0.0.1:7171/a", "http://127.0.0.1:7172/a").is_err());
    }

    #[test]
    fn actions_name_the_path_only() {
        assert_eq!(
            action(
                Method::Put,
                "https://management.azure.com/subscriptions/s/resourceGroups/rg?api-version=2025-04-01"
            ),
            "PUT /subscriptions/s/resourceGroups/rg"
        );
    }
}
