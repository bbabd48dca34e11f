//! `POST /_sandbox/tokens`: a token signed with a sandbox tenant's current key, with the claims
//! the caller gives over the sign-in defaults (`iat`, `nbf`, `exp` one hour on, `tid`, `uti`); a
//! claim given as `null` is left out, defaults included.
//! `provision verify` uses it for the tokens Entra would never issue to it on demand (another
//! tenant's, an expired one), so the boundary can be shown to refuse them; on Azure those come
//! from files the user passes. The sandbox already hands out its operator's secret on loopback,
//! so this gives nothing away that was not.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::sandbox::Shared;
use crate::sandbox::auth;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MintRequest {
    /// The tenant whose key signs, by id or domain.
    tenant: String,
    claims: Map<String, Value>,
}

pub(super) async fn mint_handler(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Result<Json<MintRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {\"tenant\": \"<id>\", \"claims\": {…}}"})),
        )
            .into_response();
    };
    let tid = shared.state().tenant(&request.tenant).map(|t| t.id.clone());
    let Some(tid) = tid else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such tenant"})),
        )
            .into_response();
    };
    match auth::mint(&shared, &tid, request.claims) {
        Some((token, lifetime)) => (
            StatusCode::OK,
            Json(json!({"access_token": token, "expires_in": lifetime})),
        )
            .into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "the tenant has no signing key"})),
        )
            .into_response(),
    }
}
