//! When to send a request again, and how long to wait first.
//!
//! The rules, as pure functions so they can be tested to the millisecond:
//! - Retried: 429, 500, 502, 503, 504, transport failures, and a 409 whose code says the target
//!   is busy for now ([`TRANSIENT_CONFLICTS`]: an APIM service still activating, a resource whose
//!   last write is still running). Such a 409 means the write was refused, not applied, so
//!   sending it again is as safe as the method allows; every other 409 (`Conflict`,
//!   `RoleAssignmentExists`…) is an answer and goes to the caller.
//! - A request that is not safe to repeat (POST or PATCH that the caller has not marked safe) is
//!   retried only when the server can not have acted on it: the connection failed before sending,
//!   or a 429 (ARM and Graph do not process a throttled request). A 5xx or an ambiguous failure
//!   (reset or timeout after sending) is returned to the caller instead.
//! - The wait is what the server says, exactly: `Retry-After` (seconds, or an HTTP-date), else
//!   `retry-after-ms`, else `x-ms-retry-after-ms`. A `Retry-After: 0` means now (the Azure SDKs
//!   treat 0 as absent and wait 30 s). Without a header: exponential backoff with full jitter.
//! - Everything is bounded by a [`Deadline`] per command; a wait that would end after it fails at
//!   once with a message naming what was being waited for.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::error::ErrorBody;
use super::transport::{Headers, Method, Transport, TransportError, WireRequest, WireResponse};
use crate::clock::{Clock, Timestamp, format_duration};
use crate::dice::Dice;
use crate::hint::Remedy;

/// Statuses that mean "try again later" rather than "this request is wrong".
pub const RETRYABLE_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// 409 codes that mean "busy, try again later": APIM's `ServiceLocked` while a service is
/// activating or updating, and ARM's `RequestConflict` while another write on the resource or its
/// parent runs.
pub const TRANSIENT_CONFLICTS: [&str; 2] = ["ServiceLocked", "RequestConflict"];

/// Whether a 409 says the target is only busy.
fn transient_conflict(response: &WireResponse) -> bool {
    ErrorBody::parse(&response.body).is_some_and(|e| TRANSIENT_CONFLICTS.contains(&e.code.as_str()))
}

/// Whether the caller vouches that sending this request twice is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Decided by the method: GET, HEAD, PUT and DELETE may be sent again; POST and PATCH may not.
    ByMethod,
    /// The API defines this POST or PATCH as safe to repeat (for example Graph's upsert with
    /// `Prefer: create-if-missing`, or a POST that only reads).
    Safe,
}

impl Replay {
    pub fn allows(self, method: Method) -> bool {
        self == Replay::Safe || method.is_idempotent()
    }
}

/// What to do with one attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the outcome to the caller.
    Final,
    /// Wait, then send the same request again.
    Retry,
}

/// Decides whether an outcome is retried (see the module documentation for the rules).
pub fn verdict(
    method: Method,
    replay: Replay,
    outcome: Result<&WireResponse, &TransportError>,
) -> Verdict {
    let repeatable = replay.allows(method);
    let retry = match outcome {
        Ok(response) if response.status == 429 => true,
        Ok(response) if response.status == 409 => repeatable && transient_conflict(response),
        Ok(response) => RETRYABLE_STATUSES.contains(&response.status) && repeatable,
        Err(TransportError::Connect { .. }) => true,
        Err(TransportError::Ambiguous { .. }) => repeatable,
        Err(TransportError::InsecureUrl { .. } | TransportError::Invalid { .. }) => false,
    };
    if retry {
        Verdict::Retry
    } else {
        Verdict::Final
    }
}

/// The wait the server asked for, if it asked: `Retry-After` (integer seconds, or an HTTP-date
/// measured from `now`; a date in the past means now), else `retry-after-ms`, else
/// `x-ms-retry-after-ms`. A header that does not parse is skipped, not guessed at.
pub fn server_delay(headers: &Headers, now: Timestamp) -> Option<Duration> {
    let retry_after = headers.get("retry-after").and_then(|value| {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let at = Timestamp::try_from(httpdate::parse_http_date(value).ok()?).ok()?;
        Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
    });
    let millis = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    retry_after
        .or_else(|| millis("retry-after-ms"))
        .or_else(|| millis("x-ms-retry-after-ms"))
}

/// Backoff and attempt limits. The deadline, not the attempt count, is the real bound; the count
/// only stops a fast-failing server from being hammered for the whole deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff ceiling; it doubles per retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 0.5 s doubling to 30 s, ten attempts.
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform wait between zero and `min(cap, base * 2^retry)`, in whole
    /// milliseconds, so that many clients throttled together do not come back together.
    /// `retry` counts from 0 for the first retry.
    pub fn backoff(&self, retry: u32, dice: &mut Dice) -> Duration {
        let ceiling = self
            .base
            .checked_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .unwrap_or(self.cap)
            .min(self.cap);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(dice.roll() % ceiling_ms.saturating_add(1))
    }

    /// The wait before retry number `retry`: the server's word if it gave one, else backoff.
    pub fn delay(
        &self,
        retry: u32,
        headers: Option<&Headers>,
        now: Timestamp,
        dice: &mut Dice,
    ) -> Duration {
        headers
            .and_then(|h| server_delay(h, now))
            .unwrap_or_else(|| self.backoff(retry, dice))
    }
}

/// The point in time a command must be done by, and what it is doing, so that running out of
/// time says what it was waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
    waiting_for: String,
}

impl Deadline {
    /// `budget` from now (on tokio's clock, so paused-time tests work).
    pub fn after(budget: Duration, waiting_for: impl Into<String>) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
            waiting_for: waiting_for.into(),
        }
    }

    /// The same instant, waiting for something more specific (a step within the command).
    pub fn waiting_for(&self, what: impl Into<String>) -> Deadline {
        Deadline {
            waiting_for: what.into(),
            ..self.clone()
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub fn what(&self) -> &str {
        &self.waiting_for
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// True if a wait of `wait` from now would end after the deadline.
    pub fn cuts_short(&self, wait: Duration) -> bool {
        // A server may ask for any wait (`Retry-After: 18446744073709551615`): past what an
        // `Instant` can hold is past any deadline.
        Instant::now()
            .checked_add(wait)
            .is_none_or(|end| end > self.at)
    }

    /// The error for running out of time; `last` says what the last attempt saw.
    pub fn exceeded(&self, last: Option<String>) -> DeadlineExceeded {
        DeadlineExceeded {
            budget: self.budget,
            left: self.remaining(),
            waiting_for: self.waiting_for.clone(),
            last,
        }
    }
}

/// A command ran out of time, or would before its next try.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} waiting for {waiting_for}{}",
    if left.is_zero() {
        format!("timed out after {}", format_duration(*budget))
    } else {
        // Giving up early: the next wait (named in `last`) would end past the deadline.
        format!(
            "gave up after {} of {}",
            format_duration(budget.saturating_sub(*left)),
            format_duration(*budget)
        )
    },
    last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default()
)]
pub struct DeadlineExceeded {
    pub budget: Duration,
    /// Time still left when giving up; zero when the deadline itself passed.
    pub left: Duration,
    pub waiting_for: String,
    pub last: Option<String>,
}

impl Remedy for DeadlineExceeded {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(
            "raise --timeout, or run the command again: it picks up what already exists",
        ))
    }
}

/// Why [`send`] gave up without a response to hand back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

/// Sends `request` until it gets a final answer, following [`verdict`] and [`RetryPolicy::delay`],
/// within `deadline`. A response is returned whatever its status (the caller turns an error status
/// into a typed error); when attempts run out, the last outcome is returned as it was. All attempts
/// share one `x-ms-client-request-id`. `clock` is the wall clock an HTTP-date `Retry-After` is
/// measured against; the waits themselves run on tokio's clock.
pub async fn send<T: Transport + ?Sized>(
    transport: &T,
    request: &WireRequest,
    replay: Replay,
    policy: &RetryPolicy,
    dice: &mut Dice,
    deadline: &Deadline,
    clock: &dyn Clock,
) -> Result<WireResponse, SendError> {
    let mut request = request.clone();
    request.ensure_client_request_id();
    let mut last: Option<String> = None;
    for attempt in 1.. {
        let outcome = match tokio::time::timeout_at(deadline.at(), transport.send(&request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let what = format!("no answer to {} {}", request.method, request.url);
                return Err(deadline
                    .exceeded(Some(
                        last.map_or(what.clone(), |l| format!("{what}; before that {l}")),
                    ))
                    .into());
            }
        };
        if verdict(request.method, replay, outcome.as_ref()) == Verdict::Final
            || attempt >= policy.max_attempts
        {
            return outcome.map_err(SendError::from);
        }
        let headers = outcome.as_ref().ok().map(|r| &r.headers);
        let wait = policy.delay(attempt - 1, headers, clock.now(), dice);
        let seen = Attempt(&outcome).to_string();
        if deadline.cuts_short(wait) {
            return Err(deadline
                .exceeded(Some(format!(
                    "{seen}; the next try would be in {}",
                    format_duration(wait)
                )))
                .into());
        }
        tracing::debug!(
            method = %request.method,
            url = %request.url,
            attempt,
            wait = %format_duration(wait),
            "retrying after {seen}"
        );
        last = Some(seen);
        tokio::time::sleep(wait).await;
    }
    unreachable!("the attempt loop only ends by returning")
}

/// One attempt's outcome, in a few words for logs and deadline messages.
struct Attempt<'a>(&'a Result<WireResponse, TransportError>);

impl fmt::Display for Attempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(response) => {
                write!(f, "HTTP {}", response.status)?;
                if let Some(id) = response.request_id() {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            Err(error) => write!(f, "{error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::transport::ScriptedTransport;
    use crate::clock::{FixedClock, SystemClock};

    fn response(status: u16) -> WireResponse {
        WireResponse::new(status)
    }

    fn connect() -> TransportError {
        TransportError::Connect {
            url: "https://arm/x".into(),
            reason: "connection refused".into(),
        }
    }

    fn reset() -> TransportError {
        TransportError::Ambiguous {
            url: "https://arm/x".into(),
            reason: "connection reset".into(),
        }
    }

    #[test]
    fn which_outcomes_are_retried() {
        use Method::*;
        use Verdict::*;
        let ok = |s| verdict(Get, Replay::ByMethod, Ok(&response(s)));
        assert_eq!(
            [200, 201, 202, 204, 400, 404, 409, 412, 501, 505].map(ok),
            [Final; 10]
        );
        assert_eq!([429, 500, 502, 503, 504].map(ok), [Retry; 5]);

        for method in [Get, Head, Put, Delete] {
            assert_eq!(verdict(method, Replay::ByMethod, Err(&reset())), Retry);
            assert_eq!(verdict(method, Replay::ByMethod, Ok(&response(503))), Retry);
        }
        for method in [Post, Patch] {
            // Unsafe: only what can not have been processed.
            assert_eq!(verdict(method, Replay::ByMethod, Err(&connect())), Retry);
            assert_eq!(verdict(method, Replay::ByMethod, Ok(&response(429))), Retry);
            assert_eq!(verdict(method, Replay::ByMethod, Err(&reset())), Final);
            assert_eq!(verdict(method, Replay::ByMethod, Ok(&response(500))), Final);
            // Marked safe: like an idempotent method.
            assert_eq!(verdict(method, Replay::Safe, Err(&reset())), Retry);
            assert_eq!(verdict(method, Replay::Safe, Ok(&response(500))), Retry);
        }
        let insecure = TransportError::InsecureUrl {
            url: "http://x".into(),
        };
        assert_eq!(verdict(Get, Replay::Safe, Err(&insecure)), Final);
    }

    fn conflict(code: &str) -> WireResponse {
        response(409).json(&serde_json::json!({"error": {"code": code, "message": "busy"}}))
    }

    /// Regression: `Retry-After: 18446744073709551615` overflowed `Instant + Duration` and
    /// panicked instead of giving up.
    #[test]
    fn a_wait_past_what_an_instant_holds_cuts_the_deadline_short() {
        let deadline = Deadline::after(Duration::from_secs(60), "x");
        let mut headers = Headers::new();
        headers.set("retry-after", "18446744073709551615");
        let wait = server_delay(&headers, Timestamp::UNIX_EPOCH).unwrap();
        assert!(deadline.cuts_short(wait));
        assert!(deadline.cuts_short(Duration::MAX));
        assert!(!deadline.cuts_short(Duration::from_secs(1)));
    }

    #[test]
    fn busy_conflicts_are_retried_and_other_conflicts_are_answers() {
        use Method::*;
        use Verdict::*;
        for method in [Get, Head, Put, Delete] {
            for code in TRANSIENT_CONFLICTS {
                assert_eq!(
                    verdict(method, Replay::ByMethod, Ok(&conflict(code))),
                    Retry
                );
            }
            for code in [
                "Conflict",
                "RoleAssignmentExists",
                "ServiceAlreadyExists",
                "",
            ] {
                assert_eq!(
                    verdict(method, Replay::ByMethod, Ok(&conflict(code))),
                    Final,
                    "{code}"
                );
            }
            assert_eq!(verdict(method, Replay::ByMethod, Ok(&response(409))), Final);
        }
        // A POST or PATCH is repeated only when the caller vouches for it.
        for method in [Post, Patch] {
            let locked = conflict("ServiceLocked");
            assert_eq!(verdict(method, Replay::ByMethod, Ok(&locked)), Final);
            assert_eq!(verdict(method, Replay::Safe, Ok(&locked)), Retry);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn service_locked_is_retried_with_backoff_until_the_service_lets_go() {
        let transport = ScriptedTransport::new([
            Ok(conflict("ServiceLocked")),
            Ok(conflict("ServiceLocked")),
            Ok(conflict("RequestConflict")),
            Ok(response(200)),
        ]);
        let put = WireRequest::new(Method::Put, "https://management.azure.com/x/namedValues/n");
        let deadline = Deadline::after(Duration::from_secs(60), "x");
        let mut expected = Dice::new(5);
        let start = Instant::now();
        let answer = send(
            &transport,
            &put,
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut Dice::new(5),
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(transport.sent().len(), 4);
        // No Retry-After on a 409: full-jitter backoff under ceilings of 0.5, 1 and 2 s.
        let waited: u64 = [500, 1000, 2000]
            .iter()
            .map(|ceiling| expected.roll() % (ceiling + 1))
            .sum();
        assert_eq!(start.elapsed(), Duration::from_millis(waited));
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_locked_past_the_timeout_fails_naming_the_conflict() {
        let transport = ScriptedTransport::new([Ok(conflict("ServiceLocked")
            .header("Retry-After", "5")
            .header("x-ms-request-id", "r-1"))]);
        let put = WireRequest::new(Method::Put, "https://management.azure.com/x/namedValues/n");
        let deadline = Deadline::after(Duration::from_secs(1), "the named value");
        let error = send(
            &transport,
            &put,
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut Dice::new(0),
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "gave up after 0ms of 1s waiting for the named value (last: HTTP 409 (request id \
             r-1); the next try would be in 5s)"
        );
    }

    #[test]
    fn server_delays_are_honoured_exactly_in_order() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let http_date =
            |at: Timestamp| httpdate::fmt_http_date(std::time::SystemTime::try_from(at).unwrap());
        let delay =
            |pairs: &[(&str, &str)]| server_delay(&pairs.iter().copied().collect::<Headers>(), now);
        assert_eq!(delay(&[("Retry-After", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(delay(&[("Retry-After", "0")]), Some(Duration::ZERO));
        assert_eq!(
            delay(&[("retry-after", "2"), ("retry-after-ms", "20")]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            delay(&[("retry-after-ms", "20"), ("x-ms-retry-after-ms", "99")]),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            delay(&[("x-ms-retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        let in_90s = http_date(now + Duration::from_secs(90));
        assert_eq!(
            delay(&[("Retry-After", &in_90s)]),
            Some(Duration::from_secs(90))
        );
        let past = http_date(now - Duration::from_secs(5));
        assert_eq!(delay(&[("Retry-After", &past)]), Some(Duration::ZERO));
        // Garbage falls through to the next header, and then to nothing.
        assert_eq!(
            delay(&[("Retry-After", "soon"), ("retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(delay(&[("Retry-After", "-1")]), None);
        assert_eq!(delay(&[]), None);
    }

    /// Regression: the HTTP-date form of `Retry-After` was measured against the system clock, so
    /// no test could say how long it waits. It is measured on the clock it is given.
    #[tokio::test(start_paused = true)]
    async fn an_http_date_retry_after_is_measured_on_the_clock_it_is_given() {
        let clock = FixedClock::at("2026-11-28T16:00:00Z".parse().unwrap());
        let transport = ScriptedTransport::new([
            Ok(response(503).header("Retry-After", "Sat, 28 Nov 2026 16:00:42 GMT")),
            Ok(response(200)),
        ]);
        let deadline = Deadline::after(Duration::from_secs(60), "x");
        let start = Instant::now();
        let answer = send(
            &transport,
            &get(),
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut Dice::new(0),
            &deadline,
            &clock,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(start.elapsed(), Duration::from_secs(42));
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let policy = RetryPolicy::default();
        let ceilings = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
        let mut dice = Dice::new(7);
        let mut expected = Dice::new(7);
        for (retry, ceiling) in ceilings.iter().enumerate() {
            let got = policy.backoff(retry as u32, &mut dice);
            let want = Duration::from_millis(expected.roll() % (ceiling + 1));
            assert_eq!(got, want, "retry {retry}");
            assert!(got <= Duration::from_millis(*ceiling));
        }
        // Far past the cap, no overflow.
        assert!(policy.backoff(200, &mut dice) <= Duration::from_secs(30));
        // Same seed, same waits.
        let waits = |seed| {
            let mut d = Dice::new(seed);
            (0..5)
                .map(|r| policy.backoff(r, &mut d))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(42), waits(42));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_message_names_what_was_awaited() {
        let deadline = Deadline::after(Duration::from_secs(300), "the Foundry account to be ready");
        assert_eq!(
            deadline.exceeded(None).to_string(),
            "gave up after 0ms of 5m0s waiting for the Foundry account to be ready"
        );
        assert_eq!(deadline.remaining(), Duration::from_secs(300));
        assert!(!deadline.cuts_short(Duration::from_secs(300)));
        assert!(deadline.cuts_short(Duration::from_secs(301)));
    }

    fn get() -> WireRequest {
        WireRequest::new(Method::Get, "https://management.azure.com/x")
    }

    #[tokio::test(start_paused = true)]
    async fn waits_exactly_what_the_server_says() {
        let transport = ScriptedTransport::new([
            Ok(response(429).header("Retry-After", "3")),
            Ok(response(503).header("retry-after-ms", "20")),
            Err(reset()),
            Ok(response(200)),
        ]);
        let deadline = Deadline::after(Duration::from_secs(60), "x");
        let policy = RetryPolicy::default();
        let mut dice = Dice::new(1);
        let mut expected_backoff = Dice::new(1);
        let start = Instant::now();
        let answer = send(
            &transport,
            &get(),
            Replay::ByMethod,
            &policy,
            &mut dice,
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        // 3 s + 20 ms + the third retry's backoff (ceiling 2 s): nothing added, nothing lost.
        let third = Duration::from_millis(expected_backoff.roll() % 2001);
        assert_eq!(start.elapsed(), Duration::from_millis(3020) + third);
        let sent = transport.sent();
        assert_eq!(sent.len(), 4);
        assert!(
            sent.iter()
                .all(|r| r.client_request_id() == sent[0].client_request_id())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unsafe_post_is_not_retried_after_an_ambiguous_failure() {
        let transport = ScriptedTransport::new([Err(connect()), Err(reset()), Ok(response(200))]);
        let post = WireRequest::new(Method::Post, "https://management.azure.com/x/restart");
        let deadline = Deadline::after(Duration::from_secs(60), "x");
        let mut dice = Dice::new(1);
        let error = send(
            &transport,
            &post,
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut dice,
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap_err();
        assert_eq!(error, SendError::Transport(reset()));
        assert_eq!(transport.sent().len(), 2);
        assert_eq!(transport.remaining(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn last_outcome_is_returned_when_attempts_run_out() {
        let transport = ScriptedTransport::new((0..3).map(|_| Ok(response(500))));
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let deadline = Deadline::after(Duration::from_secs(600), "x");
        let answer = send(
            &transport,
            &get(),
            Replay::ByMethod,
            &policy,
            &mut Dice::new(3),
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 500);
        assert_eq!(transport.remaining(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_fails_at_once_and_says_why() {
        let transport = ScriptedTransport::new([Ok(response(429)
            .header("Retry-After", "120")
            .header("x-ms-request-id", "r-9"))]);
        let deadline = Deadline::after(Duration::from_secs(60), "the role assignment");
        let start = Instant::now();
        let error = send(
            &transport,
            &get(),
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut Dice::new(0),
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(
            error.to_string(),
            "gave up after 0ms of 1m0s waiting for the role assignment (last: HTTP 429 (request id r-9); \
             the next try would be in 2m0s)"
        );
    }

    /// A transport that never answers, to show the deadline also bounds a single attempt.
    struct Silent;

    impl Transport for Silent {
        fn send<'a>(&'a self, _: &'a WireRequest) -> crate::azure::transport::SendFuture<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_ends_at_the_deadline() {
        let deadline = Deadline::after(Duration::from_secs(5), "the account");
        let start = Instant::now();
        let error = send(
            &Silent,
            &get(),
            Replay::ByMethod,
            &RetryPolicy::default(),
            &mut Dice::new(0),
            &deadline,
            &SystemClock,
        )
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(
            error.to_string(),
            "timed out after 5s waiting for the account (last: no answer to GET \
             https://management.azure.com/x)"
        );
    }
}
