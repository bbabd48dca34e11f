//! The HTML of the `/devicelogin` steps, shaped and worded as Entra's own pages so that a person
//! who has used `microsoft.com/devicelogin` recognises every step: "Enter code", "Pick an
//! account", the permissions asked for, and "You have signed in to the … application on your
//! device. You may now close this window." No JavaScript: plain forms, which a headless browser
//! and a person with scripts off both drive.
//!
//! Everything that comes from a user or a registration (app and API names, scope values, user
//! names, what was typed) goes through [`escape`]: an app may be named `<script>…`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::flows::Ticket;

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

/// One permission on the consent screen, already resolved to words.
#[derive(Debug, Clone)]
pub(super) struct Permission {
    /// What the user is asked to allow ("Invoke LLM gateway", "Sign you in").
    pub(super) text: String,
    /// Whose permission and its value (`LLM Gateway API (local)`, `api://…/llm.invoke`).
    pub(super) detail: String,
}

/// What the consent screen shows.
#[derive(Debug, Clone)]
pub(super) struct Consent {
    pub(super) app: String,
    pub(super) client_id: String,
    pub(super) user: String,
    pub(super) upn: String,
    pub(super) tenant: String,
    pub(super) domain: String,
    pub(super) tenant_id: String,
    pub(super) permissions: Vec<Permission>,
}

/// An error shown on a step: Entra's sentence and its AADSTS code.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageError {
    pub(super) code: u32,
    pub(super) text: &'static str,
}

fn hidden(ticket: &Ticket) -> String {
    format!(
        "<input type=\"hidden\" name=\"flow\" value=\"{}\">\n  <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(&ticket.flow),
        escape(&ticket.token)
    )
}

fn error_html(error: Option<PageError>) -> String {
    error.map_or_else(String::new, |e| {
        format!(
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>\n<p class=\"note\" id=\"error-code\">AADSTS{}</p>\n",
            escape(e.text),
            e.code
        )
    })
}

/// Step 1: the code.
pub(super) fn code_page(ticket: &Ticket, typed: &str, error: Option<PageError>) -> String {
    let body = format!(
        r#"<h1 id="title">Enter code</h1>
<p class="note">Enter the code displayed on your app or device.</p>
{error}<form method="post" action="/devicelogin">
  {hidden}
  <input id="otc" name="user_code" value="{typed}" maxlength="20" placeholder="Code" aria-label="Code" autocomplete="off" required autofocus>
  <div class="actions"><button class="approve" id="next" type="submit">Next</button></div>
</form>"#,
        error = error_html(error),
        hidden = hidden(ticket),
        typed = escape(typed),
    );
    page("Enter code", &body)
}

/// Step 2: which of the tenant's users signs in (sandbox users have no passwords).
pub(super) fn account_page(
    ticket: &Ticket,
    tenant: &str,
    users: &[(String, String)],
    error: Option<PageError>,
) -> String {
    let mut buttons = String::new();
    for (upn, name) in users {
        buttons.push_str(&format!(
            "  <button class=\"account\" type=\"submit\" name=\"user\" value=\"{upn}\"><strong>{name}</strong><br><span>{upn}</span></button>\n",
            upn = escape(upn),
            name = escape(name),
        ));
    }
    let body = format!(
        r#"<h1 id="title">Pick an account</h1>
<p class="note">Accounts of {tenant}. Sandbox users have no passwords.</p>
{error}<form method="post" action="/devicelogin" class="accounts">
  {hidden}
{buttons}</form>"#,
        tenant = escape(tenant),
        error = error_html(error),
        hidden = hidden(ticket),
    );
    page("Pick an account", &body)
}

/// Step 3: the consent screen.
pub(super) fn consent_page(ticket: &Ticket, consent: &Consent, error: Option<PageError>) -> String {
    let mut items = String::new();
    for p in &consent.permissions {
        items.push_str(&format!(
            "  <li class=\"scope\">{}<br><span class=\"note\">{}</span></li>\n",
            escape(&p.text),
            escape(&p.detail)
        ));
    }
    let body = format!(
        r#"<p class="note" id="user">{user} ({upn})</p>
<h1 id="title">Permissions requested</h1>
<p id="app"><strong>{app}</strong><br><span class="note">App ID {client_id}</span></p>
<p>This app would like to:</p>
<ul id="scopes">
{items}</ul>
<p id="tenant">Organization: <strong>{tenant}</strong> ({domain})<br><span class="note">Tenant ID {tenant_id}</span></p>
<p class="note">Accepting these permissions means that you allow this app to use your data. Only continue if you trust the app.</p>
{error}<form method="post" action="/devicelogin">
  {hidden}
  <div class="actions">
    <button class="decline" id="cancel" type="submit" name="action" value="cancel">Cancel</button>
    <button class="approve" id="accept" type="submit" name="action" value="accept">Accept</button>
  </div>
</form>"#,
        user = escape(&consent.user),
        upn = escape(&consent.upn),
        app = escape(&consent.app),
        client_id = escape(&consent.client_id),
        tenant = escape(&consent.tenant),
        domain = escape(&consent.domain),
        tenant_id = escape(&consent.tenant_id),
        error = error_html(error),
        hidden = hidden(ticket),
    );
    page("Permissions requested", &body)
}

/// The last page: signed in, or declined.
pub(super) fn result_page(app: &str, approved: bool) -> String {
    let text = if approved {
        format!(
            "You have signed in to the {app} application on your device. You may now close this window."
        )
    } else {
        format!(
            "You have declined to sign in to the {app} application on your device. You may now close this window."
        )
    };
    let class = if approved { "ok" } else { "error" };
    let body = format!(
        "<h1 id=\"title\">{}</h1>\n<p class=\"{class}\" id=\"result\">{}</p>",
        escape(app),
        escape(&text)
    );
    page(app, &body)
}

/// A POST the sandbox will not read: its token is missing, wrong, spent or from a forgotten flow.
pub(super) fn forbidden_page() -> String {
    page(
        "Sign-in page expired",
        "<h1 id=\"title\">Sign-in page expired</h1>\n<p class=\"error\" id=\"error\" role=\"alert\">This form did not come from the current sign-in page, or was already sent. Nothing was decided.</p>\n<p><a href=\"/devicelogin\">Start again</a></p>",
    )
}

/// An HTML answer that no other site may frame, cache or embed, and that runs no script.
pub(super) fn respond(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: under it Chromium posts the page's own form with `Origin: null`, which
    // the guard rightly refuses as foreign (found by the browser test).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A whole page around already-escaped body HTML.
fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f3f4f6; color: #1f2937; margin: 0; }}
  main {{ max-width: 28rem; margin: 4rem auto; background: #fff; border-radius: 8px; padding: 2rem 2.25rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .5rem; }}
  .note {{ color: #6b7280; font-size: .9rem; }}
  input {{ width: 100%; box-sizing: border-box; padding: .55rem .65rem; font-size: 1rem; border: 1px solid #d1d5db; border-radius: 6px; letter-spacing: .2em; text-transform: uppercase; font-family: ui-monospace, monospace; }}
  .actions {{ display: flex; gap: .75rem; margin-top: 1.5rem; }}
  button {{ flex: 1; padding: .6rem; font-size: 1rem; border-radius: 6px; border: 1px solid #0f6cbd; cursor: pointer; }}
  button.approve {{ background: #0f6cbd; color: #fff; }}
  button.decline {{ background: #fff; color: #0f6cbd; }}
  button.account {{ display: block; width: 100%; text-align: left; background: #fff; border-color: #d1d5db; margin: .5rem 0; }}
  ul {{ padding-left: 1.2rem; }}
  li.scope {{ margin: .4rem 0; }}
  .ok {{ color: #166534; }}
  .error {{ color: #b91c1c; }}
  a {{ color: #0f6cbd; }}
</style>
</head>
<body>
<main>
<p class="note">provision sandbox · Entra ID</p>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
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

    #[test]
    fn names_from_registrations_cannot_open_tags() {
        let ticket = Ticket {
            flow: "f\"><script>".into(),
            token: "t".into(),
        };
        let consent = Consent {
            app: "<script>alert(1)</script>".into(),
            client_id: "c".into(),
            user: "<b>Ada</b>".into(),
            upn: "ada@x".into(),
            tenant: "T & Co".into(),
            domain: "x".into(),
            tenant_id: "t".into(),
            permissions: vec![Permission {
                text: "<img src=x>".into(),
                detail: "'quoted'".into(),
            }],
        };
        let html = consent_page(&ticket, &consent, None);
        for raw in ["<script>", "<b>", "<img", "f\">"] {
            assert!(!html.contains(raw), "{raw} in {html}");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("T &amp; Co") && html.contains("&#39;quoted&#39;"));
        let html = result_page("<script>x</script>", true);
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;x"));
    }
}
