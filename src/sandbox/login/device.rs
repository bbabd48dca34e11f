//! Device authorization (`/devicecode`): the device and user codes a client shows its user, with
//! the poll interval and lifetime the sandbox is configured with.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Failure, api_of_scopes, client_app, entra_json, missing, new_user_code, random_bytes, respond,
    tenant_id,
};
use crate::sandbox::Shared;
use crate::sandbox::state::{DeviceCode, DeviceCodeStatus};

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeviceCodeForm {
    pub(super) client_id: Option<String>,
    pub(super) scope: Option<String>,
}

pub(super) async fn devicecode(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<DeviceCodeForm>, FormRejection>,
) -> Response {
    // An unreadable body is read as empty, as Entra does: the answer names the missing parameter.
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result = issue_device_code(&shared, &tenant, &form)
        .map(|body| entra_json(StatusCode::OK, &body, "no-store, no-cache"));
    respond(&shared, result)
}

pub(super) fn issue_device_code(
    shared: &Shared,
    tenant: &str,
    form: &DeviceCodeForm,
) -> Result<Value, Failure> {
    let tid = tenant_id(shared, tenant)?;
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    let scopes: Vec<String> = form
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut state = shared.state();
    let client_id = client_app(shared, &state, &tid, client_id)?
        .str("appId")
        .unwrap_or(client_id)
        .to_owned();
    if scopes.is_empty() {
        return Err(missing("scope"));
    }
    api_of_scopes(shared, &state, &tid, &scopes)?;
    let device_code = URL_SAFE_NO_PAD.encode(random_bytes::<96>()?);
    let user_code = new_user_code(&state)?;
    let verification_uri = format!("{}/devicelogin", shared.base_url);
    let (interval, expires_in) = (
        shared.config.device_code_interval,
        shared.config.device_code_expires_in,
    );
    state.device_codes.push(DeviceCode {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        tenant_id: tid,
        client_id,
        scopes,
        issued_ms: shared.now_ms(),
        interval,
        expires_in,
        last_poll_ms: None,
        status: DeviceCodeStatus::Pending,
    });
    shared.persist(&state);
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": expires_in,
        "interval": interval,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    }))
}
