//! Moving the sandbox's clock: `GET /_sandbox/clock`, `POST /_sandbox/clock/advance` and
//! `POST /_sandbox/clock/set` (docs/sandbox.md), behind the same front door as every admin
//! endpoint (`guard`).
//!
//! A move is kept in the state (`clock_offset_ms`) in the same lock that moves the clock, so a
//! persisted sandbox started again later, or a command that starts one from the same state,
//! carries on from the moved time rather than snapping back to the system's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use crate::clock::{Clock, ClockError, OffsetClock, SignedDuration, Timestamp, parse_instant};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_sandbox/clock",
            get(|State(s): State<Arc<Shared>>| async move { Json(reading(&s)) }),
        )
        .route("/_sandbox/clock/advance", post(advance_handler))
        .route("/_sandbox/clock/set", post(set_handler))
}

/// What the clock endpoints answer: the sandbox's time and how far it is from the system's.
pub(crate) fn reading(shared: &Shared) -> Value {
    json!({
        "now": shared.clock.now().to_string(),
        "offset_seconds": shared.clock.offset().as_secs(),
    })
}

/// A duration as an operator writes it: jiff's friendly form (`48h`, `1h30m`, `90 minutes`) or
/// ISO 8601 (`PT90M`). The error names the value and the forms.
/// The one duration syntax of the program (`--timeout` reads the same), as a clock move.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let duration = crate::clock::parse_duration(text)?;
    SignedDuration::try_from(duration)
        .map_err(|_| format!("`{text}` is longer than any clock can move"))
}

/// Why a move was refused, with what to do about it.
fn refusal(error: ClockError, what: &str) -> String {
    match error {
        ClockError::Backwards => format!(
            "{what}: the sandbox's clock only moves forward (tokens, operations and retention \
             periods already handed out would stop making sense); to start over at the system's \
             time, stop the sandbox and delete its state"
        ),
        ClockError::OutOfRange => format!("{what}: that would move the clock past the year 9999"),
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// The one string field of a JSON object body, or what was expected instead.
fn field(body: &[u8], name: &str, example: &str) -> Result<String, String> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    match value
        .as_ref()
        .and_then(|v| v.get(name))
        .and_then(Value::as_str)
    {
        Some(text) => Ok(text.to_owned()),
        None => Err(format!(
            "expected a JSON object with a string `{name}`, e.g. {example}"
        )),
    }
}

/// Moves the clock under the state's lock and records the new offset there: what the endpoints
/// and [`super::Sandbox::advance`] do.
pub(crate) fn move_clock(
    shared: &Shared,
    step: impl FnOnce(&OffsetClock) -> Result<Timestamp, ClockError>,
) -> Result<Timestamp, ClockError> {
    let mut state = shared.state();
    let now = step(&shared.clock)?;
    state.clock_offset_ms = i64::try_from(shared.clock.offset().as_millis()).unwrap_or(i64::MAX);
    shared.persist(&state);
    Ok(now)
}

fn apply(
    shared: &Shared,
    what: &str,
    step: impl FnOnce(&OffsetClock) -> Result<Timestamp, ClockError>,
) -> Response {
    match move_clock(shared, step) {
        Ok(_) => Json(reading(shared)).into_response(),
        Err(e) => bad_request(refusal(e, what)),
    }
}

async fn advance_handler(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed = field(&body, "by", r#"{"by": "48h"}"#)
        .and_then(|text| parse_duration(&text).map(|by| (text, by)));
    let (text, by) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(e),
    };
    apply(&shared, &format!("advance by {text}"), |clock| {
        clock.advance(by)
    })
}

async fn set_handler(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed = field(&body, "to", r#"{"to": "2030-01-01T00:00:00Z"}"#)
        .and_then(|text| parse_instant(&text).map(|to| (text, to)));
    let (text, to) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(e),
    };
    apply(&shared, &format!("set to {text}"), |clock| clock.set(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_friendly_or_iso_8601() {
        assert_eq!(parse_duration("48h"), Ok(SignedDuration::from_hours(48)));
        assert_eq!(parse_duration("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("PT90M"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration(" 2s "), Ok(SignedDuration::from_secs(2)));
        // The same syntax as --timeout: a day is 24 hours.
        assert_eq!(parse_duration("2d"), Ok(SignedDuration::from_hours(48)));
        assert!(
            parse_duration("-1h")
                .unwrap_err()
                .starts_with("`-1h` is negative")
        );
    }

    #[test]
    fn a_bad_duration_names_the_value_and_the_forms() {
        for bad in ["48x", "", "forever", "1.5.h"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.starts_with(&format!(
                    "`{bad}` is not a duration (write e.g. 90s, 20m, 1h30m or PT1H30M): "
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn a_backwards_move_says_why_and_how_to_start_over() {
        assert_eq!(
            refusal(ClockError::Backwards, "set to 2000-01-01T00:00:00Z"),
            "set to 2000-01-01T00:00:00Z: the sandbox's clock only moves forward (tokens, \
             operations and retention periods already handed out would stop making sense); to \
             start over at the system's time, stop the sandbox and delete its state"
        );
    }
}
