//! ARM long-running operations (the ARM RPC "async operation" protocol) as a pure state machine:
//! [`Operation::start`] reads the first response and [`Operation::on_response`] each poll; both say
//! what to do next as a [`Step`]. [`run`] drives it over a [`Transport`].
//!
//! The four shapes:
//! - `Azure-AsyncOperation`: poll that status resource until `status` is `Succeeded`, `Failed` or
//!   `Canceled` (any casing); anything else (`Creating`, `InProgress`, `Accepted`, …) is running.
//! - `Location` only: poll it; 202 is running, any other 2xx is done (its body is the result), and
//!   4xx/5xx is the operation's own error (the Location URL answers as the request would have).
//! - Both: poll `Azure-AsyncOperation`, then the final GET that the method calls for: PUT/PATCH
//!   GET the resource, DELETE none, POST the `Location` if there was one.
//! - Neither: poll the resource GET until `properties.provisioningState` is terminal (missing means
//!   `Succeeded`); for a DELETE, until the resource answers 404.
//!
//! A 4xx/5xx from an `Azure-AsyncOperation` URL or a resource GET means the status could not be
//! read, not that the operation failed: [`run`] retries those per `retry.rs` and only then reports
//! [`LroError::Unreadable`].

use std::time::Duration;

use super::error::{ApiError, ErrorBody};
use super::retry::{self, Deadline, SendError};
use super::transport::{Method, WireResponse};
use crate::access::Service;
use crate::clock::{Clock, Timestamp, format_duration};

/// The shortest wait between polls, even if the server says `Retry-After: 0`: a busy loop against
/// ARM only earns throttling.
pub const POLL_FLOOR: Duration = Duration::from_millis(50);
/// The longest wait between polls. APIM answers `Retry-After: 60`; waiting longer than that would
/// only add to the overshoot between completion and noticing it.
pub const POLL_CEILING: Duration = Duration::from_secs(60);
/// The wait when the server gives none. The RPC suggests 60 s and the Azure SDKs use 30 s, which
/// is why creating a Foundry account through them takes 31 s instead of 2; polling a status
/// resource once a second costs ARM little.
pub const POLL_DEFAULT: Duration = Duration::from_secs(1);

/// The wait before the next poll: the server's delay (`Retry-After`, `retry-after-ms`,
/// `x-ms-retry-after-ms`) clamped to [`POLL_FLOOR`]..=[`POLL_CEILING`], else [`POLL_DEFAULT`].
pub fn poll_delay(response: &WireResponse, now: Timestamp) -> Duration {
    retry::server_delay(&response.headers, now)
        .map(|d| d.clamp(POLL_FLOOR, POLL_CEILING))
        .unwrap_or(POLL_DEFAULT)
}

/// How the operation is being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Poll the `Azure-AsyncOperation` status resource; then GET `final_get`, if any.
    AsyncOperation {
        status_url: String,
        final_get: Option<String>,
    },
    /// Poll the `Location` URL until it answers other than 202.
    Location { url: String },
    /// Poll the resource itself until its `provisioningState` is terminal (or, for DELETE, 404).
    ProvisioningState { url: String },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait `after`, then GET `url` and pass the answer to [`Operation::on_response`].
    Poll {
        url: String,
        after: Duration,
    },
    /// Finished. The response is the result: the resource for PUT/PATCH, the action's result for
    /// POST, the last answer for DELETE.
    Done(WireResponse),
    Failed(LroError),
}

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LroError {
    /// The first request was answered with an error; no operation started.
    #[error("{0}")]
    Rejected(Box<ApiError>),
    /// The operation ran and ended `Failed` or `Canceled`.
    #[error("the operation ended {outcome}: {error}")]
    Ended {
        outcome: String,
        error: Box<ApiError>,
    },
    /// A status URL answered 4xx/5xx: the state of the operation is unknown.
    #[error("could not read the operation's status from {url}: {error}")]
    Unreadable { url: String, error: Box<ApiError> },
    /// A status resource answered 2xx with something that is not an operation status.
    #[error("the operation status from {url} has no readable `status`: {reason}")]
    Malformed { url: String, reason: String },
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Terminal states of `status` / `provisioningState`, compared case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Succeeded,
    Failed,
    Canceled,
}

fn state(value: &str) -> State {
    if value.eq_ignore_ascii_case("Succeeded") {
        State::Succeeded
    } else if value.eq_ignore_ascii_case("Failed") {
        State::Failed
    } else if value.eq_ignore_ascii_case("Canceled") || value.eq_ignore_ascii_case("Cancelled") {
        State::Canceled
    } else {
        State::Running
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Polling,
    FinalGet(String),
}

/// One long-running operation in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    method: Method,
    resource_url: String,
    strategy: Strategy,
    phase: Phase,
}

impl Operation {
    /// Reads the first response to `method resource_url`. Returns no operation when the first
    /// response already settles it (synchronous completion, or an error).
    pub fn start(
        method: Method,
        resource_url: &str,
        initial: WireResponse,
        now: Timestamp,
    ) -> (Option<Operation>, Step) {
        if !initial.is_success() {
            let error = ApiError::from_response(Service::Arm, &initial);
            return (None, Step::Failed(LroError::Rejected(Box::new(error))));
        }
        let async_operation = initial
            .headers
            .get("azure-asyncoperation")
            .map(str::to_owned);
        let location = initial.headers.get("location").map(str::to_owned);
        let strategy = match (async_operation, location) {
            (Some(status_url), location) => Strategy::AsyncOperation {
                status_url,
                final_get: match method {
                    Method::Put | Method::Patch => Some(resource_url.to_owned()),
                    Method::Post => location,
                    Method::Delete | Method::Get | Method::Head => None,
                },
            },
            // 201 + Location is APIM's service create; 200/204 with a Location is a finished request.
            (None, Some(url)) if matches!(initial.status, 201 | 202) => Strategy::Location { url },
            (None, _) => {
                let polls_resource = match method {
                    Method::Put | Method::Patch => {
                        initial.status == 202
                            || provisioning_state(&initial).is_some_and(|s| s == State::Running)
                    }
                    Method::Delete => initial.status == 202,
                    // A POST 202 without either header gives nothing to poll: take it as done.
                    Method::Post | Method::Get | Method::Head => false,
                };
                if !polls_resource {
                    let step = settle_by_state(&initial, method);
                    return (None, step);
                }
                Strategy::ProvisioningState {
                    url: resource_url.to_owned(),
                }
            }
        };
        let url = match &strategy {
            Strategy::AsyncOperation { status_url, .. } => status_url.clone(),
            Strategy::Location { url } | Strategy::ProvisioningState { url } => url.clone(),
        };
        let operation = Operation {
            method,
            resource_url: resource_url.to_owned(),
            strategy,
            phase: Phase::Polling,
        };
        let after = poll_delay(&initial, now);
        (Some(operation), Step::Poll { url, after })
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Reads the answer to the last [`Step::Poll`].
    pub fn on_response(&mut self, response: WireResponse, now: Timestamp) -> Step {
        if let Phase::FinalGet(url) = &self.phase {
            return if response.is_success() {
                Step::Done(response)
            } else {
                unreadable(url, &response)
            };
        }
        match self.strategy.clone() {
            Strategy::AsyncOperation {
                status_url,
                final_get,
            } => {
                if !response.is_success() {
                    return unreadable(&status_url, &response);
                }
                // APIM's service create hands out one `operationresults` URL under both header
                // names, and it answers as a Location does: 202 while running, then 200 with the
                // service. Followed as such rather than called malformed.
                if response.status == 202 {
                    return Step::Poll {
                        url: status_url,
                        after: poll_delay(&response, now),
                    };
                }
                let body = match response.body_json() {
                    Ok(body) => body,
                    Err(e) => return malformed(&status_url, e.to_string()),
                };
                let status = match body.get("status").and_then(|s| s.as_str()) {
                    Some(status) => status,
                    None if body.get("id").is_some() => "Succeeded",
                    None => return malformed(&status_url, "no `status` field".to_owned()),
                };
                match state(status) {
                    State::Running => Step::Poll {
                        url: status_url,
                        after: poll_delay(&response, now),
                    },
                    State::Succeeded => match final_get {
                        Some(url) => {
                            self.phase = Phase::FinalGet(url.clone());
                            Step::Poll {
                                url,
                                after: Duration::ZERO,
                            }
                        }
                        None => Step::Done(response),
                    },
                    State::Failed | State::Canceled => ended(status, &body, &response),
                }
            }
            Strategy::Location { url } => match response.status {
                202 => Step::Poll {
                    url,
                    after: poll_delay(&response, now),
                },
                s if (200..300).contains(&s) => Step::Done(response),
                _ => Step::Failed(LroError::Ended {
                    outcome: "Failed".to_owned(),
                    error: Box::new(ApiError::from_response(Service::Arm, &response)),
                }),
            },
            Strategy::ProvisioningState { url } => {
                if self.method == Method::Delete && response.status == 404 {
                    return Step::Done(response);
                }
                if !response.is_success() {
                    return unreadable(&url, &response);
                }
                match provisioning_state(&response) {
                    Some(State::Running) => Step::Poll {
                        url,
                        after: poll_delay(&response, now),
                    },
                    // A DELETE is done when the resource is gone, not when it reads `Succeeded`.
                    _ if self.method == Method::Delete => Step::Poll {
                        url,
                        after: poll_delay(&response, now),
                    },
                    _ => settle_by_state(&response, self.method),
                }
            }
        }
    }

    /// The URL of the resource the operation is about.
    pub fn resource_url(&self) -> &str {
        &self.resource_url
    }
}

/// `properties.provisioningState`; missing means `Succeeded` (RPC), unreadable JSON means `None`.
fn provisioning_state(response: &WireResponse) -> Option<State> {
    let body = response.body_json().ok()?;
    Some(
        body.pointer("/properties/provisioningState")
            .and_then(|s| s.as_str())
            .map_or(State::Succeeded, state),
    )
}

/// Done, or failed if the body's `provisioningState` says so.
fn settle_by_state(response: &WireResponse, method: Method) -> Step {
    let failed = matches!(method, Method::Put | Method::Patch)
        && matches!(
            provisioning_state(response),
            Some(State::Failed | State::Canceled)
        );
    if failed {
        let body = response.body_json().unwrap_or_default();
        let outcome = body
            .pointer("/properties/provisioningState")
            .and_then(|s| s.as_str())
            .unwrap_or("Failed");
        return ended(outcome, &body, response);
    }
    Step::Done(response.clone())
}

fn ended(outcome: &str, body: &serde_json::Value, response: &WireResponse) -> Step {
    let error = body
        .get("error")
        .or_else(|| body.pointer("/properties/error"))
        .and_then(|e| serde_json::from_value::<ErrorBody>(e.clone()).ok())
        .unwrap_or_else(|| ErrorBody {
            message: format!("the operation ended {outcome} without an error body"),
            ..ErrorBody::default()
        });
    Step::Failed(LroError::Ended {
        outcome: outcome.to_owned(),
        error: Box::new(ApiError::from_operation(Service::Arm, error, response)),
    })
}

fn unreadable(url: &str, response: &WireResponse) -> Step {
    Step::Failed(LroError::Unreadable {
        url: url.to_owned(),
        error: Box::new(ApiError::from_response(Service::Arm, response)),
    })
}

fn malformed(url: &str, reason: String) -> Step {
    Step::Failed(LroError::Malformed {
        url: url.to_owned(),
        reason,
    })
}

/// Follows the operation that `initial` (the answer to `method resource_url`) started, to the end,
/// within `deadline`. `get` sends one poll (a bodiless GET of the URL it is given) with whatever
/// authorization and retries the caller applies; the waits between polls come from the server
/// via [`poll_delay`], an HTTP-date measured on `clock`.
pub async fn follow<E, F, Fut>(
    method: Method,
    resource_url: &str,
    initial: WireResponse,
    deadline: &Deadline,
    clock: &dyn Clock,
    mut get: F,
) -> Result<WireResponse, E>
where
    E: From<LroError>,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<WireResponse, E>>,
{
    let (mut operation, mut step) = Operation::start(method, resource_url, initial, clock.now());
    loop {
        match step {
            Step::Done(response) => return Ok(response),
            Step::Failed(error) => return Err(error.into()),
            Step::Poll { url, after } => {
                let Some(op) = operation.as_mut() else {
                    unreachable!("a poll step always comes with an operation");
                };
                if deadline.cuts_short(after) {
                    return Err(
                        LroError::from(SendError::from(deadline.exceeded(Some(format!(
                            "still running; next poll of {url} in {}",
                            format_duration(after)
                        )))))
                        .into(),
                    );
                }
                tokio::time::sleep(after).await;
                let response = get(url).await?;
                step = op.on_response(response, clock.now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::retry::{Replay, RetryPolicy};
    use crate::azure::transport::{ScriptedTransport, WireRequest};
    use crate::clock::SystemClock;
    use crate::dice::Dice;
    use crate::hint::Remedy;
    use serde_json::json;

    const RES: &str = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a?api-version=2025-06-01";
    const AO: &str = "https://management.azure.com/subscriptions/s/providers/Microsoft.CognitiveServices/locations/eastus/operationResults/op?api-version=2025-06-01";
    const LOC: &str = "https://management.azure.com/subscriptions/s/providers/Microsoft.CognitiveServices/locations/eastus/operationResults/op?api-version=2025-06-01&operationResultResponseType=Location";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn poll(url: &str, ms: u64) -> Step {
        Step::Poll {
            url: url.to_owned(),
            after: Duration::from_millis(ms),
        }
    }

    fn status(s: &str) -> WireResponse {
        WireResponse::new(200).json(&json!({"status": s}))
    }

    fn resource(state: &str) -> WireResponse {
        WireResponse::new(200)
            .json(&json!({"name": "a", "properties": {"provisioningState": state}}))
    }

    #[test]
    fn poll_delays_are_clamped_and_default_to_one_second() {
        let at = |pairs: &[(&str, &str)]| {
            let mut r = WireResponse::new(202);
            for (n, v) in pairs {
                r.headers.set(*n, *v);
            }
            poll_delay(&r, now())
        };
        assert_eq!(at(&[]), Duration::from_secs(1));
        assert_eq!(at(&[("Retry-After", "0")]), Duration::from_millis(50));
        assert_eq!(at(&[("Retry-After", "10")]), Duration::from_secs(10));
        assert_eq!(at(&[("Retry-After", "600")]), Duration::from_secs(60));
        assert_eq!(at(&[("retry-after-ms", "20")]), Duration::from_millis(50));
        assert_eq!(
            at(&[("x-ms-retry-after-ms", "250")]),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn async_operation_put_polls_status_then_gets_the_resource() {
        let initial = WireResponse::new(201)
            .header("Azure-AsyncOperation", AO)
            .header("Retry-After", "2")
            .json(&json!({"properties": {"provisioningState": "Creating"}}));
        let (op, step) = Operation::start(Method::Put, RES, initial, now());
        let mut op = op.unwrap();
        assert_eq!(step, poll(AO, 2000));
        assert_eq!(
            op.strategy(),
            &Strategy::AsyncOperation {
                status_url: AO.to_owned(),
                final_get: Some(RES.to_owned())
            }
        );
        for running in ["Creating", "InProgress", "Accepted", "ResolvingDNS"] {
            assert_eq!(op.on_response(status(running), now()), poll(AO, 1000));
        }
        assert_eq!(op.on_response(status("succeeded"), now()), poll(RES, 0));
        let done = resource("Succeeded");
        assert_eq!(op.on_response(done.clone(), now()), Step::Done(done));
    }

    #[test]
    fn failed_and_canceled_carry_the_operation_error() {
        let initial = WireResponse::new(201).header("Azure-AsyncOperation", AO);
        let (op, _) = Operation::start(Method::Put, RES, initial, now());
        let mut op = op.unwrap();
        let failed = WireResponse::new(200)
            .header("x-ms-request-id", "r1")
            .json(&json!({"status": "FAILED", "error": {"code": "InsufficientQuota", "message": "This operation require 10 new capacity in quota Tokens Per Minute (thousands) - gpt-4o-mini, which is bigger than the current available capacity 0."}}));
        let Step::Failed(LroError::Ended { outcome, error }) = op.on_response(failed, now()) else {
            panic!("expected the operation to have failed");
        };
        assert_eq!(outcome, "FAILED");
        assert_eq!(error.status, None);
        assert_eq!(error.code(), "InsufficientQuota");
        assert!(
            error
                .to_string()
                .starts_with("ARM error InsufficientQuota: This operation require 10 new capacity"),
            "{error}"
        );
        assert!(error.to_string().ends_with("\n  request id r1"), "{error}");
        assert!(error.hint().unwrap().starts_with(
            "quota 'Tokens Per Minute (thousands) - gpt-4o-mini', requested 10, available 0; "
        ));

        let canceled = WireResponse::new(200).json(&json!({"status": "Canceled"}));
        let Step::Failed(error) = op.on_response(canceled, now()) else {
            panic!("expected failure")
        };
        assert_eq!(
            error.to_string(),
            "the operation ended Canceled: ARM error: the operation ended Canceled without an error body"
        );
    }

    #[test]
    fn a_status_url_error_is_unreadable_not_failed() {
        let initial = WireResponse::new(202).header("Azure-AsyncOperation", AO);
        let (op, _) = Operation::start(Method::Delete, RES, initial, now());
        let mut op = op.unwrap();
        let step = op.on_response(WireResponse::new(500), now());
        assert!(
            matches!(step, Step::Failed(LroError::Unreadable { ref url, .. }) if url == AO),
            "{step:?}"
        );
        // Neither an operation status nor a resource (which has an `id`).
        let step = op.on_response(WireResponse::new(200).json(&json!({"name": "x"})), now());
        assert_eq!(
            step,
            Step::Failed(LroError::Malformed {
                url: AO.to_owned(),
                reason: "no `status` field".to_owned()
            })
        );
    }

    #[test]
    fn both_headers_final_get_depends_on_the_method() {
        let both = || {
            WireResponse::new(202)
                .header("Azure-AsyncOperation", AO)
                .header("Location", LOC)
        };
        let final_get = |method| match Operation::start(method, RES, both(), now())
            .0
            .unwrap()
            .strategy
        {
            Strategy::AsyncOperation { final_get, .. } => final_get,
            other => panic!("{other:?}"),
        };
        assert_eq!(final_get(Method::Put), Some(RES.to_owned()));
        assert_eq!(final_get(Method::Patch), Some(RES.to_owned()));
        assert_eq!(final_get(Method::Delete), None);
        assert_eq!(final_get(Method::Post), Some(LOC.to_owned()));

        // DELETE: done as soon as the status says so.
        let (op, _) = Operation::start(Method::Delete, RES, both(), now());
        let done = status("Succeeded");
        assert_eq!(
            op.unwrap().on_response(done.clone(), now()),
            Step::Done(done)
        );
    }

    #[test]
    fn location_polls_until_not_202() {
        // APIM service create: 201 + Location + Retry-After: 60.
        let initial = WireResponse::new(201)
            .header("Location", LOC)
            .header("Retry-After", "60")
            .json(&json!({"properties": {"provisioningState": "Created"}}));
        let (op, step) = Operation::start(Method::Put, RES, initial, now());
        let mut op = op.unwrap();
        assert_eq!(step, poll(LOC, 60_000));
        assert_eq!(
            op.on_response(WireResponse::new(202).header("Retry-After", "1"), now()),
            poll(LOC, 1000)
        );
        let done = resource("Succeeded");
        assert_eq!(op.on_response(done.clone(), now()), Step::Done(done));

        let (op, _) = Operation::start(
            Method::Delete,
            RES,
            WireResponse::new(202).header("Location", LOC),
            now(),
        );
        let gone = WireResponse::new(204);
        assert_eq!(
            op.clone().unwrap().on_response(gone.clone(), now()),
            Step::Done(gone)
        );
        let error =
            WireResponse::new(409).json(&json!({"error": {"code": "Conflict", "message": "busy"}}));
        let Step::Failed(LroError::Ended { error, .. }) = op.unwrap().on_response(error, now())
        else {
            panic!("a Location error is the operation's error")
        };
        assert_eq!(error.code(), "Conflict");
    }

    #[test]
    fn neither_header_polls_provisioning_state() {
        // Deployment create (2022 recording): 201 Creating, no headers.
        let (op, step) = Operation::start(Method::Put, RES, resource("Creating"), now());
        let mut op = op.unwrap();
        assert_eq!(step, poll(RES, 1000));
        assert_eq!(op.on_response(resource("Updating"), now()), poll(RES, 1000));
        let done = resource("SUCCEEDED");
        assert_eq!(op.on_response(done.clone(), now()), Step::Done(done));

        let Step::Failed(LroError::Ended { outcome, .. }) =
            op.on_response(resource("Failed"), now())
        else {
            panic!("expected failure")
        };
        assert_eq!(outcome, "Failed");
        let step = op.on_response(WireResponse::new(404), now());
        assert!(matches!(step, Step::Failed(LroError::Unreadable { .. })));
    }

    #[test]
    fn synchronous_answers_settle_at_once() {
        // Resource group PUT: 201 with Succeeded; missing provisioningState counts as Succeeded.
        for body in [
            resource("Succeeded"),
            WireResponse::new(200).json(&json!({"name": "a"})),
        ] {
            let (op, step) = Operation::start(Method::Put, RES, body.clone(), now());
            assert!(op.is_none());
            assert_eq!(step, Step::Done(body));
        }
        let (op, step) = Operation::start(Method::Delete, RES, WireResponse::new(204), now());
        assert!(op.is_none());
        assert_eq!(step, Step::Done(WireResponse::new(204)));
        let (_, step) = Operation::start(Method::Put, RES, resource("Failed"), now());
        assert!(matches!(step, Step::Failed(LroError::Ended { .. })));
        let rejected = WireResponse::new(409).json(
            &json!({"error": {"code": "FlagMustBeSetForRestore", "message": "soft-deleted"}}),
        );
        let (_, step) = Operation::start(Method::Put, RES, rejected, now());
        let Step::Failed(LroError::Rejected(error)) = step else {
            panic!()
        };
        assert!(
            error
                .hint()
                .unwrap()
                .contains("az cognitiveservices account purge")
        );
    }

    #[test]
    fn delete_without_headers_waits_for_404() {
        let (op, step) = Operation::start(Method::Delete, RES, WireResponse::new(202), now());
        let mut op = op.unwrap();
        assert_eq!(step, poll(RES, 1000));
        assert_eq!(op.on_response(resource("Deleting"), now()), poll(RES, 1000));
        assert_eq!(
            op.on_response(resource("Succeeded"), now()),
            poll(RES, 1000)
        );
        let gone = WireResponse::new(404);
        assert_eq!(op.on_response(gone.clone(), now()), Step::Done(gone));
    }

    /// The first request and every poll through [`retry::send`], as a client does.
    async fn run(
        transport: &ScriptedTransport,
        request: &WireRequest,
        deadline: &Deadline,
    ) -> Result<WireResponse, LroError> {
        let policy = RetryPolicy::default();
        let send = |request: WireRequest| async move {
            retry::send(
                transport,
                &request,
                Replay::ByMethod,
                &policy,
                &mut Dice::new(0),
                deadline,
                &SystemClock,
            )
            .await
            .map_err(LroError::from)
        };
        let initial = send(request.clone()).await?;
        follow(
            request.method,
            &request.url,
            initial,
            deadline,
            &SystemClock,
            |url| send(WireRequest::new(Method::Get, url)),
        )
        .await
    }

    #[test]
    fn an_async_operation_url_that_answers_like_a_location_is_followed() {
        let initial = WireResponse::new(201)
            .header("Azure-AsyncOperation", AO)
            .header("Location", AO);
        let (op, _) = Operation::start(Method::Put, RES, initial, now());
        let mut op = op.unwrap();
        let running = WireResponse::new(202).header("Retry-After", "2");
        assert_eq!(op.on_response(running, now()), poll(AO, 2000));
        let service = WireResponse::new(200).json(&json!({"id": "/x", "properties": {}}));
        assert_eq!(op.on_response(service, now()), poll(RES, 0));
        assert_eq!(
            op.on_response(resource("Succeeded"), now()),
            Step::Done(resource("Succeeded"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_drives_an_async_operation_over_the_transport() {
        let transport = ScriptedTransport::new([
            Ok(WireResponse::new(201)
                .header("Azure-AsyncOperation", AO)
                .header("retry-after-ms", "200")),
            Ok(status("Creating").header("retry-after-ms", "300")),
            Ok(WireResponse::new(503).header("Retry-After", "1")),
            Ok(status("Succeeded")),
            Ok(resource("Succeeded")),
        ]);
        let request = WireRequest::new(Method::Put, RES).json(&json!({"location": "eastus"}));
        let deadline = Deadline::after(Duration::from_secs(60), "the account");
        let start = tokio::time::Instant::now();
        let done = run(&transport, &request, &deadline).await.unwrap();
        assert_eq!(done, resource("Succeeded"));
        // 200 ms, then 300 ms, then the 503's 1 s, then the final GET at once.
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        let sent = transport.sent();
        let urls: Vec<_> = sent.iter().map(|r| (r.method, r.url.as_str())).collect();
        assert_eq!(
            urls,
            [
                (Method::Put, RES),
                (Method::Get, AO),
                (Method::Get, AO),
                (Method::Get, AO),
                (Method::Get, RES)
            ]
        );
        assert!(
            sent[1..]
                .iter()
                .all(|r| r.headers.get("content-type").is_none() && r.body.is_none())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_stops_at_the_deadline() {
        let transport = ScriptedTransport::new([Ok(WireResponse::new(202)
            .header("Location", LOC)
            .header("Retry-After", "60"))]);
        let request = WireRequest::new(Method::Delete, RES);
        let deadline = Deadline::after(Duration::from_secs(30), "the APIM service to be deleted");
        let error = run(&transport, &request, &deadline).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "gave up after 0ms of 30s waiting for the APIM service to be deleted (last: still \
                 running; next poll of {LOC} in 1m0s)"
            )
        );
    }
}
