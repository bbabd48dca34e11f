//! Test-facing endpoints under `/_sandbox/`: a stable contract (documented in docs/sandbox.md) for
//! tests, benchmarks and people: what the sandbox is, what it was asked, and the user's side of
//! the device code flow.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::state::DeviceCodeStatus;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_sandbox/info",
            get(|State(s): State<Arc<Shared>>| async move { Json(info(&s)) }),
        )
        .route(
            "/_sandbox/requests",
            get(|State(s): State<Arc<Shared>>| async move {
                Json(s.log.lock().unwrap_or_else(|e| e.into_inner()).clone())
            }),
        )
        .route(
            "/_sandbox/device-codes/{user_code}/approve",
            post(approve_handler),
        )
        .route(
            "/_sandbox/device-codes/{user_code}/decline",
            post(decline_handler),
        )
        .route(
            "/_sandbox/tenants/{tenant}/keys/rotate",
            post(rotate_handler),
        )
}

pub(crate) fn info(shared: &Shared) -> Value {
    let state = shared.state();
    let base = &shared.base_url;
    json!({
        "base_url": base,
        "login": base,
        "graph": format!("{base}/v1.0"),
        "arm": base,
        "default_tenant": super::DEFAULT_TENANT,
        "tenants": state.tenants.iter().map(|t| json!({
            "id": t.id,
            "domain": t.domain,
            "display_name": t.display_name,
            "users": t.users.iter().map(|u| json!({"id": u.id, "upn": u.upn, "display_name": u.display_name})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "subscriptions": state.subscriptions,
        "operator": {
            "tenant_id": state.operator.tenant_id,
            "client_id": state.operator.client_id,
            "client_secret": state.operator.client_secret,
        },
        // What a client must trust to reach a `--tls` sandbox, so nobody hunts for it on disk:
        // the PEM itself, and the file it is kept in (with `--state`; the `sandbox.ca_file` of
        // an environment). Null over plain HTTP.
        "tls": shared.config.tls.then(|| json!({
            "ca_pem": super::tls::certificate_pem(shared),
            "ca_file": super::tls::certificate_file(shared)
                .map(|p| std::path::absolute(&p).unwrap_or(p).display().to_string()),
        })),
        "config": {
            "faults": format!("{:?}", shared.config.faults).to_ascii_lowercase(),
            "latency": format!("{:?}", shared.config.latency).to_ascii_lowercase(),
            "time_scale": shared.config.time_scale,
            "seed": shared.faults.lock().unwrap_or_else(|e| e.into_inner()).seed,
            "replication_lag_ms": shared.config.replication_lag_ms(),
            "tls": shared.config.tls,
        },
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Approval {
    pub user: Option<String>,
}

/// Why a device code cannot be approved or declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecisionError {
    UnknownCode,
    Expired,
    AlreadyDecided,
    UnknownUser(String),
}

impl DecisionError {
    pub fn message(&self) -> String {
        match self {
            DecisionError::UnknownCode => "no device code with that user code".to_owned(),
            DecisionError::Expired => "the code has expired".to_owned(),
            DecisionError::AlreadyDecided => {
                "the code was already approved, declined or used".to_owned()
            }
            DecisionError::UnknownUser(u) => format!("no user `{u}` in the code's tenant"),
        }
    }
}

/// The user's decision on a device code (the `/devicelogin` page and the JSON endpoints).
pub(crate) fn decide(
    shared: &Shared,
    user_code: &str,
    approve: Option<Option<String>>,
) -> Result<DeviceCodeStatus, DecisionError> {
    let mut state = shared.state();
    let normalized: String = user_code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    let index = state
        .device_codes
        .iter()
        .position(|d| d.user_code == normalized)
        .ok_or(DecisionError::UnknownCode)?;
    let code = state.device_codes[index].clone();
    if shared.elapsed_sandbox_ms(code.issued_ms) >= code.expires_in * 1000 {
        return Err(DecisionError::Expired);
    }
    if code.status != DeviceCodeStatus::Pending {
        return Err(DecisionError::AlreadyDecided);
    }
    let status = match approve {
        None => DeviceCodeStatus::Declined,
        Some(user) => {
            let tenant = state
                .tenant(&code.tenant_id)
                .ok_or(DecisionError::UnknownCode)?;
            let user = match user {
                None => tenant.users.first(),
                Some(upn) => tenant
                    .users
                    .iter()
                    .find(|u| u.upn.eq_ignore_ascii_case(&upn) || u.id == upn),
            }
            .ok_or_else(|| DecisionError::UnknownUser(String::new()))?;
            DeviceCodeStatus::Approved {
                user_id: user.id.clone(),
            }
        }
    };
    state.device_codes[index].status = status.clone();
    shared.persist(&state);
    Ok(status)
}

fn decision_response(
    result: Result<DeviceCodeStatus, DecisionError>,
    user: Option<&str>,
) -> Response {
    match result {
        Ok(DeviceCodeStatus::Approved { user_id }) => (
            StatusCode::OK,
            Json(json!({"status": "approved", "user_id": user_id})),
        )
            .into_response(),
        Ok(_) => (StatusCode::OK, Json(json!({"status": "declined"}))).into_response(),
        Err(e) => {
            let status = match e {
                DecisionError::UnknownCode => StatusCode::NOT_FOUND,
                DecisionError::UnknownUser(_) => StatusCode::BAD_REQUEST,
                DecisionError::Expired | DecisionError::AlreadyDecided => StatusCode::CONFLICT,
            };
            let message = match (&e, user) {
                (DecisionError::UnknownUser(_), Some(u)) => {
                    DecisionError::UnknownUser(u.to_owned()).message()
                }
                _ => e.message(),
            };
            (status, Json(json!({"error": message}))).into_response()
        }
    }
}

async fn approve_handler(
    State(shared): State<Arc<Shared>>,
    Path(user_code): Path<String>,
    body: Option<Json<Approval>>,
) -> Response {
    let user = body.and_then(|Json(a)| a.user);
    let result = decide(&shared, &user_code, Some(user.clone()));
    decision_response(result, user.as_deref())
}

async fn decline_handler(
    State(shared): State<Arc<Shared>>,
    Path(user_code): Path<String>,
) -> Response {
    decision_response(decide(&shared, &user_code, None), None)
}

async fn rotate_handler(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    let result = tokio::task::spawn_blocking(move || shared.rotate_key(&tenant))
        .await
        .ok()
        .flatten();
    match result {
        Some(kid) => (StatusCode::OK, Json(json!({"kid": kid}))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such tenant"})),
        )
            .into_response(),
    }
}
