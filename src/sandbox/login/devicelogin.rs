//! The user's side of the device code flow: the `/devicelogin` page, in Entra's steps. Enter the
//! code; pick one of the code's tenant's users; read the consent screen (the client app, the
//! permissions it asks for, the tenant) and Accept or Cancel; see the result.
//!
//! One URL takes every POST: which step a POST answers is kept with the flow on the server
//! ([`super::flows`]), with the anti-forgery token the page carried. A wrong, expired or used
//! code is an error on the page with Entra's wording and AADSTS code (the codes from Entra's
//! error reference, `reference-aadsts-error-codes.md`: 70018 BadVerificationCode, 70019
//! CodeExpired, 50034 UserAccountNotFound; "That code didn't work. Check the code and try
//! again." as the real page says it, Azure/azure-cli#28029). Each POST's outcome goes into the
//! request log as `devicelogin`, so a test sees what the page decided without scraping HTML.
//! The JSON endpoints under `/_sandbox/device-codes/` decide through the same
//! [`admin::decide`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::OIDC_SCOPES;
use super::flows::{Step, Ticket};
use super::pages::{self, Consent, PageError, Permission};
use super::scopes::application_by_resource;
use crate::sandbox::admin::{self, DecisionError};
use crate::sandbox::state::{DeviceCode, DeviceCodeStatus, State};
use crate::sandbox::{DeviceLoginRecord, Shared};

const INVALID_CODE: PageError = PageError {
    code: 70_018,
    text: "That code didn't work. Check the code and try again.",
};
const EXPIRED_CODE: PageError = PageError {
    code: 70_019,
    text: "That code has expired. Get a new code from the app on your device and try again.",
};
const USED_CODE: PageError = PageError {
    code: 70_018,
    text: "That code was already used. Get a new code from the app on your device and try again.",
};
const UNKNOWN_USER: PageError = PageError {
    code: 50_034,
    text: "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your admin.",
};
const NO_CHOICE: PageError = PageError {
    code: 900_144,
    text: "Choose Accept or Cancel.",
};
/// Longer than any user code; what is typed is echoed back only up to this.
const MAX_TYPED: usize = 64;

pub(super) async fn devicelogin_page(
    AxumState(shared): AxumState<Arc<Shared>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let typed = query
        .ok()
        .and_then(|Query(q)| q.get("code").cloned())
        .unwrap_or_default();
    let ticket = shared.login_flows().open(shared.now_ms());
    match ticket {
        Some(ticket) => pages::respond(
            StatusCode::OK,
            pages::code_page(&ticket, bounded(&typed), None),
        ),
        None => pages::respond(StatusCode::INTERNAL_SERVER_ERROR, pages::forbidden_page()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeviceLoginForm {
    flow: Option<String>,
    csrf: Option<String>,
    user_code: Option<String>,
    user: Option<String>,
    action: Option<String>,
}

pub(super) async fn devicelogin_submit(
    AxumState(shared): AxumState<Arc<Shared>>,
    form: Result<Form<DeviceLoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let flow = form.flow.clone().unwrap_or_default();
    let step = shared.login_flows().take(
        &flow,
        form.csrf.as_deref().unwrap_or_default(),
        shared.now_ms(),
    );
    let Some(step) = step else {
        return logged(
            pages::respond(StatusCode::FORBIDDEN, pages::forbidden_page()),
            DeviceLoginRecord {
                step: None,
                user_code: None,
                outcome: "forbidden".into(),
                user: None,
            },
        );
    };
    let mut record = DeviceLoginRecord {
        step: Some(step.name().to_owned()),
        user_code: step.user_code().map(str::to_owned),
        outcome: String::new(),
        user: None,
    };
    let (status, html) = match step {
        Step::Code => enter_code(&shared, &flow, &form, &mut record),
        Step::Account { user_code } => pick_account(&shared, &flow, user_code, &form, &mut record),
        Step::Consent { user_code, upn } => {
            record.user = Some(upn.clone());
            decide(&shared, &flow, user_code, upn, &form, &mut record)
        }
    };
    logged(pages::respond(status, html), record)
}

fn logged(mut response: Response, record: DeviceLoginRecord) -> Response {
    response.extensions_mut().insert(record);
    response
}

fn bounded(text: &str) -> &str {
    match text.char_indices().nth(MAX_TYPED) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn normalized(user_code: &str) -> String {
    user_code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The pending device code a user code names, or why the page refuses it.
fn pending_code(shared: &Shared, user_code: &str) -> Result<DeviceCode, (PageError, &'static str)> {
    let state = shared.state();
    let code = state
        .device_codes
        .iter()
        .find(|d| !user_code.is_empty() && d.user_code == user_code)
        .ok_or((INVALID_CODE, "invalid_code"))?;
    if shared.elapsed_sandbox_ms(code.issued_ms) >= code.expires_in * 1000 {
        return Err((EXPIRED_CODE, "expired_code"));
    }
    if code.status != DeviceCodeStatus::Pending {
        return Err((USED_CODE, "used_code"));
    }
    Ok(code.clone())
}

/// Renders `page` for the flow moved to `step`, with a fresh token.
fn show(
    shared: &Shared,
    flow: &str,
    step: Step,
    page: impl FnOnce(&Ticket) -> String,
) -> (StatusCode, String) {
    // Bound first, so the flows' lock is not held while the page renders.
    let ticket = shared.login_flows().set(flow, step, shared.now_ms());
    match ticket {
        Some(ticket) => (StatusCode::OK, page(&ticket)),
        None => (StatusCode::INTERNAL_SERVER_ERROR, pages::forbidden_page()),
    }
}

/// Back to the code step with an error: the flow's code is no good any more.
fn code_error(
    shared: &Shared,
    flow: &str,
    typed: &str,
    (error, outcome): (PageError, &'static str),
    record: &mut DeviceLoginRecord,
) -> (StatusCode, String) {
    record.outcome = outcome.into();
    let (status, html) = show(shared, flow, Step::Code, |t| {
        pages::code_page(t, bounded(typed), Some(error))
    });
    (status.max(StatusCode::BAD_REQUEST), html)
}

fn enter_code(
    shared: &Shared,
    flow: &str,
    form: &DeviceLoginForm,
    record: &mut DeviceLoginRecord,
) -> (StatusCode, String) {
    let typed = form.user_code.as_deref().unwrap_or_default();
    let user_code = normalized(typed);
    record.user_code = (!user_code.is_empty()).then(|| bounded(&user_code).to_owned());
    match pending_code(shared, &user_code) {
        Err(refusal) => code_error(shared, flow, typed, refusal, record),
        Ok(code) => {
            record.outcome = "next".into();
            account_step(shared, flow, &code, None)
        }
    }
}

fn account_step(
    shared: &Shared,
    flow: &str,
    code: &DeviceCode,
    error: Option<PageError>,
) -> (StatusCode, String) {
    let (tenant, users) = {
        let state = shared.state();
        let Some(tenant) = state.tenant(&code.tenant_id) else {
            return (StatusCode::INTERNAL_SERVER_ERROR, pages::forbidden_page());
        };
        let users: Vec<(String, String)> = tenant
            .users
            .iter()
            .map(|u| (u.upn.clone(), u.display_name.clone()))
            .collect();
        (
            format!("{} ({})", tenant.display_name, tenant.domain),
            users,
        )
    };
    let step = Step::Account {
        user_code: code.user_code.clone(),
    };
    let (status, html) = show(shared, flow, step, |t| {
        pages::account_page(t, &tenant, &users, error)
    });
    let status = if error.is_some() {
        status.max(StatusCode::BAD_REQUEST)
    } else {
        status
    };
    (status, html)
}

fn pick_account(
    shared: &Shared,
    flow: &str,
    user_code: String,
    form: &DeviceLoginForm,
    record: &mut DeviceLoginRecord,
) -> (StatusCode, String) {
    let code = match pending_code(shared, &user_code) {
        Ok(code) => code,
        Err(refusal) => return code_error(shared, flow, &user_code, refusal, record),
    };
    let asked = form.user.as_deref().unwrap_or_default();
    record.user = (!asked.is_empty()).then(|| bounded(asked).to_owned());
    let consent = consent_of(shared, &shared.state(), &code, asked);
    let Some(consent) = consent else {
        record.outcome = "unknown_user".into();
        return account_step(shared, flow, &code, Some(UNKNOWN_USER));
    };
    record.outcome = "next".into();
    record.user = Some(consent.upn.clone());
    let step = Step::Consent {
        user_code,
        upn: consent.upn.clone(),
    };
    show(shared, flow, step, |t| {
        pages::consent_page(t, &consent, None)
    })
}

fn decide(
    shared: &Shared,
    flow: &str,
    user_code: String,
    upn: String,
    form: &DeviceLoginForm,
    record: &mut DeviceLoginRecord,
) -> (StatusCode, String) {
    let code = match pending_code(shared, &user_code) {
        Ok(code) => code,
        Err(refusal) => return code_error(shared, flow, &user_code, refusal, record),
    };
    let approve = match form.action.as_deref() {
        Some("accept") => Some(Some(upn.clone())),
        Some("cancel") => None,
        _ => {
            record.outcome = "no_choice".into();
            let consent = consent_of(shared, &shared.state(), &code, &upn);
            let Some(consent) = consent else {
                return (StatusCode::INTERNAL_SERVER_ERROR, pages::forbidden_page());
            };
            let step = Step::Consent { user_code, upn };
            let (_, html) = show(shared, flow, step, |t| {
                pages::consent_page(t, &consent, Some(NO_CHOICE))
            });
            return (StatusCode::BAD_REQUEST, html);
        }
    };
    let app = app_name(&shared.state(), &code);
    match admin::decide(shared, &user_code, approve) {
        Ok(DeviceCodeStatus::Approved { .. }) => {
            record.outcome = "approved".into();
            (StatusCode::OK, pages::result_page(&app, true))
        }
        Ok(_) => {
            record.outcome = "declined".into();
            (StatusCode::OK, pages::result_page(&app, false))
        }
        Err(e) => {
            let refusal = match e {
                DecisionError::Expired => (EXPIRED_CODE, "expired_code"),
                DecisionError::AlreadyDecided => (USED_CODE, "used_code"),
                DecisionError::UnknownCode | DecisionError::UnknownUser(_) => {
                    (INVALID_CODE, "invalid_code")
                }
            };
            code_error(shared, flow, &user_code, refusal, record)
        }
    }
}

fn app_name(state: &State, code: &DeviceCode) -> String {
    state
        .application_by_app_id(&code.tenant_id, &code.client_id)
        .and_then(|a| a.str("displayName"))
        .unwrap_or(&code.client_id)
        .to_owned()
}

/// Everything the consent screen shows for `code` signed in as `upn`; `None` when the tenant
/// has no such user.
fn consent_of(shared: &Shared, state: &State, code: &DeviceCode, upn: &str) -> Option<Consent> {
    let tenant = state.tenant(&code.tenant_id)?;
    let user = tenant
        .users
        .iter()
        .find(|u| !upn.is_empty() && u.upn.eq_ignore_ascii_case(upn))?;
    let permissions = code
        .scopes
        .iter()
        .map(|scope| permission(shared, state, &code.tenant_id, scope))
        .collect();
    Some(Consent {
        app: app_name(state, code),
        client_id: code.client_id.clone(),
        user: user.display_name.clone(),
        upn: user.upn.clone(),
        tenant: tenant.display_name.clone(),
        domain: tenant.domain.clone(),
        tenant_id: tenant.id.clone(),
        permissions,
    })
}

/// A requested scope in words: the API's own consent text for it where the tenant knows the API,
/// and for the OpenID scopes the words Entra's consent screen uses.
fn permission(shared: &Shared, state: &State, tid: &str, scope: &str) -> Permission {
    let oidc = match scope {
        "openid" => Some("Sign you in"),
        "profile" => Some("View your basic profile"),
        "email" => Some("View your email address"),
        "offline_access" => Some("Maintain access to data you have given it access to"),
        _ => None,
    };
    if let Some(text) = oidc.filter(|_| OIDC_SCOPES.contains(&scope)) {
        return Permission {
            text: text.to_owned(),
            detail: format!("OpenID Connect · {scope}"),
        };
    }
    let resolved = scope.rsplit_once('/').and_then(|(resource, value)| {
        let app = application_by_resource(shared, state, tid, resource)?;
        let api_name = app.str("displayName").unwrap_or(resource).to_owned();
        let declared = app
            .body
            .get("api")
            .and_then(|api| api.get("oauth2PermissionScopes"))
            .and_then(Value::as_array)
            .and_then(|all| {
                all.iter()
                    .find(|s| s.get("value").and_then(Value::as_str) == Some(value))
            });
        let text = declared
            .and_then(|s| {
                ["userConsentDisplayName", "adminConsentDisplayName"]
                    .iter()
                    .find_map(|k| s.get(*k).and_then(Value::as_str).filter(|t| !t.is_empty()))
            })
            .unwrap_or(value)
            .to_owned();
        Some(Permission {
            text,
            detail: format!("{api_name} · {scope}"),
        })
    });
    resolved.unwrap_or_else(|| Permission {
        text: scope.to_owned(),
        detail: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes_are_normalized_and_echoes_bounded() {
        assert_eq!(normalized("abcd-1234 x"), "ABCD1234X");
        assert_eq!(bounded(&"é".repeat(100)).chars().count(), MAX_TYPED);
        assert_eq!(bounded("short"), "short");
    }
}
