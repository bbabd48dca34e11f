//! The user's side of the device code flow: the `/devicelogin` page where a person enters the
//! code, picks a user and approves or declines.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::sandbox::Shared;
use crate::sandbox::admin::{self, DecisionError};
use crate::sandbox::state::DeviceCodeStatus;

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around already-escaped body HTML.
pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f3f4f6; color: #1f2937; margin: 0; }}
  main {{ max-width: 26rem; margin: 4rem auto; background: #fff; border-radius: 8px; padding: 2rem 2.25rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .25rem; }}
  p.note {{ color: #6b7280; font-size: .9rem; margin: 0 0 1.5rem; }}
  label {{ display: block; font-weight: 600; margin: 1rem 0 .35rem; }}
  input, select {{ width: 100%; box-sizing: border-box; padding: .55rem .65rem; font-size: 1rem; border: 1px solid #d1d5db; border-radius: 6px; }}
  input[name=user_code] {{ letter-spacing: .2em; text-transform: uppercase; font-family: ui-monospace, monospace; }}
  .actions {{ display: flex; gap: .75rem; margin-top: 1.5rem; }}
  button {{ flex: 1; padding: .6rem; font-size: 1rem; border-radius: 6px; border: 1px solid #0f6cbd; cursor: pointer; }}
  button.approve {{ background: #0f6cbd; color: #fff; }}
  button.decline {{ background: #fff; color: #0f6cbd; }}
  .ok {{ color: #166534; }}
  .error {{ color: #b91c1c; }}
  a {{ color: #0f6cbd; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

pub(super) async fn devicelogin_page(
    AxumState(shared): AxumState<Arc<Shared>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Html<String> {
    let code = query
        .ok()
        .and_then(|Query(q)| q.get("code").cloned())
        .unwrap_or_default();
    let mut options = String::new();
    for tenant in &shared.state().tenants {
        options.push_str(&format!(
            "<optgroup label=\"{}\">",
            escape(&format!("{} ({})", tenant.display_name, tenant.domain))
        ));
        for user in &tenant.users {
            options.push_str(&format!(
                "<option value=\"{}\">{}</option>",
                escape(&user.upn),
                escape(&format!("{} <{}>", user.display_name, user.upn))
            ));
        }
        options.push_str("</optgroup>");
    }
    let body = format!(
        r#"<h1>Sign in to the sandbox</h1>
<p class="note">Enter the code shown by the application, pick who you are, and approve or decline its sign-in. Sandbox users have no passwords.</p>
<form method="post" action="/devicelogin">
  <label for="user_code">Code</label>
  <input id="user_code" name="user_code" value="{code}" maxlength="20" autocomplete="off" required autofocus>
  <label for="user">User</label>
  <select id="user" name="user">{options}</select>
  <div class="actions">
    <button class="approve" type="submit" name="action" value="approve">Approve</button>
    <button class="decline" type="submit" name="action" value="decline">Decline</button>
  </div>
</form>"#,
        code = escape(&code),
    );
    Html(page("Sandbox device login", &body))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeviceLoginForm {
    pub(super) user_code: Option<String>,
    pub(super) user: Option<String>,
    pub(super) action: Option<String>,
}

/// The display name of the application a user code was issued to, for the result page.
pub(super) fn app_name_of(shared: &Shared, user_code: &str) -> Option<String> {
    let normalized: String = user_code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    let state = shared.state();
    let code = state
        .device_codes
        .iter()
        .find(|d| d.user_code == normalized)?;
    let app = state.application_by_app_id(&code.tenant_id, &code.client_id)?;
    Some(app.str("displayName").unwrap_or(&code.client_id).to_owned())
}

pub(super) async fn devicelogin_submit(
    AxumState(shared): AxumState<Arc<Shared>>,
    form: Result<Form<DeviceLoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result_page = |status: StatusCode, class: &str, heading: &str, text: &str| {
        let body = format!(
            "<h1 class=\"{class}\">{}</h1>\n<p>{}</p>\n<p><a href=\"/devicelogin\">Enter another code</a></p>",
            escape(heading),
            escape(text)
        );
        (status, Html(page(heading, &body))).into_response()
    };
    let code = form.user_code.unwrap_or_default();
    let user = form.user.filter(|u| !u.trim().is_empty());
    let approve = match form.action.as_deref() {
        Some("approve") => Some(user.clone()),
        Some("decline") => None,
        _ => {
            return result_page(
                StatusCode::BAD_REQUEST,
                "error",
                "Nothing was decided",
                "Choose Approve or Decline.",
            );
        }
    };
    let app = app_name_of(&shared, &code).unwrap_or_else(|| "the application".to_owned());
    match admin::decide(&shared, &code, approve) {
        Ok(DeviceCodeStatus::Approved { .. }) => result_page(
            StatusCode::OK,
            "ok",
            "You are signed in",
            &format!(
                "{} signed in to {app}. You can close this page and return to the application.",
                user.as_deref().unwrap_or("The tenant's first user")
            ),
        ),
        Ok(_) => result_page(
            StatusCode::OK,
            "ok",
            "Sign-in declined",
            &format!("{app} will not get a token. You can close this page."),
        ),
        Err(e) => {
            let status = match e {
                DecisionError::UnknownCode => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            // `decide` does not know which user was asked for; the page does.
            let message = match (&e, &user) {
                (DecisionError::UnknownUser(_), Some(u)) => {
                    DecisionError::UnknownUser(u.clone()).message()
                }
                _ => e.message(),
            };
            let sentence = match message.split_at_checked(1) {
                Some((first, rest)) => format!("{}{rest}.", first.to_ascii_uppercase()),
                None => message,
            };
            result_page(status, "error", "Sign-in failed", &sentence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
