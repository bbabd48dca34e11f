//! The URLs clients poll: `…/operationResults/{id}` as an `Azure-AsyncOperation` status resource
//! (always 200 with `status`) or as a `Location` (202 while running, then what the synchronous
//! call would have answered), per ARM's async protocol (foundry-arm.md §2.2).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ArmError, Call, Reply};
use crate::clock::format_utc_millis;
use crate::sandbox::state::arm::Operation;

pub(super) fn handle(call: &mut Call<'_>) -> Result<Reply, ArmError> {
    let id = call.request.segments.last().cloned().unwrap_or_default();
    let Some(operation) = call.state.arm.operations.get(&id).cloned() else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{id}' could not be found."),
        ));
    };
    let as_location = operation.location_only
        || call
            .request
            .query("operationResultResponseType")
            .is_some_and(|v| v.eq_ignore_ascii_case("Location"));
    if as_location {
        Ok(location(call, &operation))
    } else {
        Ok(status(call, &operation))
    }
}

/// The operation resource: `{id, name, status, startTime, endTime?, error?}`, always 200.
pub(super) fn status(call: &Call<'_>, operation: &Operation) -> Reply {
    let mut body = Map::new();
    body.insert("id".into(), json!(operation.status_path));
    body.insert("name".into(), json!(operation.id));
    body.insert("status".into(), json!(operation.status(call.now_ms)));
    body.insert(
        "startTime".into(),
        json!(format_utc_millis(operation.started_ms)),
    );
    if operation.done(call.now_ms) {
        body.insert(
            "endTime".into(),
            json!(format_utc_millis(operation.until_ms)),
        );
        if let Some(error) = &operation.error {
            body.insert("error".into(), error.clone());
        }
        Reply::ok(Value::Object(body))
    } else {
        Reply::ok(Value::Object(body)).poll_hint(operation.until_ms, call.now_ms)
    }
}

/// A `Location` poll: 202 with no body while running; then the final status, with the resource
/// when the operation defines one; a failed operation answers its error.
pub(super) fn location(call: &Call<'_>, operation: &Operation) -> Reply {
    if !operation.done(call.now_ms) {
        return Reply::empty(StatusCode::ACCEPTED).poll_hint(operation.until_ms, call.now_ms);
    }
    if let Some(error) = &operation.error {
        return Reply::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(json!({ "error": error })),
        );
    }
    let status = StatusCode::from_u16(operation.final_status).unwrap_or(StatusCode::OK);
    let body = operation
        .final_body
        .then(|| call.state.arm.get(&operation.resource_id))
        .flatten()
        .map(super::view);
    match body {
        Some(body) => Reply::new(status, Some(body)),
        None => Reply::empty(status),
    }
}
