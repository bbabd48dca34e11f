//! Signing in from a pipeline without a secret: a CI's OIDC token (GitHub Actions' runner
//! endpoint, or the Azure DevOps token in `AZURE_FEDERATED_TOKEN_FILE`) exchanged at the token
//! endpoint as a `client_assertion` for the app whose federated credential trusts it.
//!
//! Against Azure `azure_identity` does the exchange; against the sandbox this module does, since
//! the crate refuses a plain-HTTP authority. Both share the GitHub token request and the hint
//! for a refused assertion, which names the subject the token carried (read from Entra's
//! AADSTS70021 / AADSTS700213 text, which quotes it) and the `provision bootstrap` command that
//! would add a credential for it. The token itself is never printed.

use std::path::PathBuf;
use std::time::Duration;

use super::credential::{AccessToken, IssuedToken, Secret};
use super::retry::{self, Deadline, Replay, RetryPolicy};
use super::transport::{Method, Transport, WireRequest};
use crate::clock::{Clock, Timestamp};
use crate::dice::Dice;

/// The audience Entra's federated credentials expect (`azure/login` asks for the same).
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long one sign-in may retry (throttling and injected faults included).
const BUDGET: Duration = Duration::from_secs(60);

/// Where the CI's token comes from.
#[derive(Debug, Clone)]
pub enum AssertionSource {
    /// GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    Github {
        request_url: String,
        request_token: Secret,
    },
    /// A file holding the token (`AZURE_FEDERATED_TOKEN_FILE`), read anew for every exchange, as
    /// the workload identity webhook and Azure DevOps may replace it.
    File(PathBuf),
}

/// Asks GitHub's runner for the job's OIDC token with Entra's exchange audience, as
/// actions/toolkit's `getIDToken` does (`{url}&audience=…`, `Authorization: bearer …`, the token
/// in `value`).
pub async fn github_oidc_token(
    transport: &dyn Transport,
    request_url: &str,
    request_token: &Secret,
) -> Result<String, String> {
    let separator = if request_url.contains('?') { '&' } else { '?' };
    let url = format!("{request_url}{separator}audience={EXCHANGE_AUDIENCE}");
    let request = WireRequest::new(Method::Get, url).header(
        "authorization",
        format!("Bearer {}", request_token.expose()),
    );
    let response = transport
        .send(&request)
        .await
        .map_err(|e| format!("requesting the GitHub Actions OIDC token: {e}"))?;
    if !response.is_success() {
        return Err(format!(
            "GitHub answered HTTP {} to the OIDC token request (does the job have \
             `permissions: id-token: write`?)",
            response.status
        ));
    }
    response
        .body_json()
        .ok()
        .and_then(|b| b.get("value").and_then(|v| v.as_str()).map(str::to_owned))
        .ok_or_else(|| "the GitHub OIDC token response has no `value`".to_owned())
}

/// The federated exchange against the sandbox's token endpoint.
pub struct SandboxAssertion {
    pub transport: std::sync::Arc<dyn Transport>,
    /// The sandbox's login origin.
    pub login: String,
    pub tenant_id: String,
    pub client_id: String,
    pub source: AssertionSource,
}

/// The largest federated token file read: CI tokens are a few KB, and the file is read again
/// for every exchange.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("reading the federated token file {shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the federated token file {shown}: {e}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "the federated token file {shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes, which \
             no token is: point AZURE_FEDERATED_TOKEN_FILE at the file holding just the token"
        ));
    }
    Ok(text.trim().to_owned())
}

impl SandboxAssertion {
    async fn assertion(&self) -> Result<String, String> {
        match &self.source {
            AssertionSource::Github {
                request_url,
                request_token,
            } => github_oidc_token(&*self.transport, request_url, request_token).await,
            AssertionSource::File(path) => read_token_file(path),
        }
    }

    /// A token for `scope`; the error is the reason, in words (Entra's description included).
    pub async fn fetch(&self, scope: &str, clock: &dyn Clock) -> Result<IssuedToken, String> {
        let assertion = self.assertion().await?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_assertion_type", JWT_BEARER)
            .append_pair("client_assertion", &assertion)
            .append_pair("scope", scope)
            .finish();
        let mut request = WireRequest::new(
            Method::Post,
            format!(
                "{}/{}/oauth2/v2.0/token",
                self.login.trim_end_matches('/'),
                self.tenant_id
            ),
        )
        .header("content-type", "application/x-www-form-urlencoded");
        request.body = Some(form.into_bytes());
        let response = retry::send(
            &*self.transport,
            &request,
            Replay::Safe,
            &RetryPolicy::default(),
            &mut Dice::new(u64::from(std::process::id())),
            &Deadline::after(BUDGET, "a federated sign-in"),
            clock,
        )
        .await
        .map_err(|e| e.to_string())?;
        let body = response.body_json().unwrap_or_default();
        if !response.is_success() {
            let description = body
                .get("error_description")
                .and_then(|v| v.as_str())
                .unwrap_or("no error description");
            // Entra's description ends with trace lines that say nothing to the reader.
            let first = description.lines().next().unwrap_or(description);
            return Err(format!("HTTP {}: {first}", response.status));
        }
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| "the token response has no access_token".to_owned())?;
        let lifetime = body.get("expires_in").and_then(|v| v.as_u64()).unwrap_or(0);
        let expires_on = clock
            .now()
            .saturating_add(Duration::from_secs(lifetime))
            .unwrap_or(Timestamp::MAX);
        Ok(IssuedToken {
            token: AccessToken::new(token),
            expires_on,
        })
    }
}

/// The hint for a refused assertion: the subject it carried and the command that trusts it.
/// `None` when the reason is not "no matching federated identity record".
pub fn refused_subject_hint(reason: &str) -> Option<String> {
    if !reason.contains("No matching federated identity record") {
        return None;
    }
    let subject = quoted_after(reason, "Assertion Subject: '")
        .or_else(|| quoted_after(reason, "assertion subject '"))?;
    let command = bootstrap_for(subject).unwrap_or_else(|| {
        "a federated credential with exactly this subject on the app (`az ad app \
         federated-credential create`)"
            .to_owned()
    });
    Some(format!(
        "the app has no federated credential for subject `{subject}` (subjects are \
         case-sensitive): add one with {command}, or run the job where its subject is one the \
         app trusts"
    ))
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let end = text[start..].find('\'')?;
    Some(&text[start..start + end])
}

/// The `provision bootstrap` line that adds a credential for a GitHub or Azure DevOps subject.
fn bootstrap_for(subject: &str) -> Option<String> {
    if let Some(rest) = subject.strip_prefix("repo:") {
        let mut parts = rest.splitn(3, ':');
        let repo = parts.next()?;
        let what = match (parts.next()?, parts.next()) {
            ("environment", Some(name)) => format!("--environment {name}"),
            ("pull_request", None) => "--pull-request".to_owned(),
            ("ref", Some(reference)) => match reference.strip_prefix("refs/heads/") {
                Some(branch) => format!("--branch {branch}"),
                None => return None,
            },
            _ => return None,
        };
        return Some(format!(
            "`provision bootstrap github --env <env> --repo {repo} {what}`"
        ));
    }
    let rest = subject.strip_prefix("sc://")?;
    let mut parts = rest.splitn(3, '/');
    let (org, project, connection) = (parts.next()?, parts.next()?, parts.next()?);
    Some(format!(
        "`provision bootstrap azure-devops --env <env> --org {org} --project '{project}' \
         --service-connection '{connection}'`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_subject_names_the_bootstrap_that_adds_it() {
        let entra = "HTTP 400: AADSTS70021: No matching federated identity record found for \
             presented assertion. Assertion Issuer: 'http://127.0.0.1:1/github-actions'. \
             Assertion Subject: 'repo:Contoso/gw:environment:staging'. Assertion Audience: \
             'api://AzureADTokenExchange'.";
        let hint = refused_subject_hint(entra).unwrap();
        assert!(
            hint.contains("`repo:Contoso/gw:environment:staging`"),
            "{hint}"
        );
        assert!(
            hint.contains(
                "`provision bootstrap github --env <env> --repo Contoso/gw --environment staging`"
            ),
            "{hint}"
        );
        let newer = "AADSTS700213: No matching federated identity record found for presented \
             assertion subject 'repo:Contoso/gw:pull_request'. Check your federated identity \
             credential Subject, Audience and Issuer against the presented assertion.";
        assert!(
            refused_subject_hint(newer)
                .unwrap()
                .contains("--repo Contoso/gw --pull-request")
        );
        // Entra's older words, each with a subject and what the hint must name for it.
        for (subject, names) in [
            ("repo:o/r:ref:refs/heads/main", "--branch main"),
            (
                "sc://Contoso/LLM Gateway/prod",
                "--org Contoso --project 'LLM Gateway' --service-connection 'prod'",
            ),
            (
                "repo:o/r:ref:refs/tags/v1",
                "az ad app federated-credential",
            ),
        ] {
            let refused = format!(
                "No matching federated identity record found for presented assertion. \
                 Assertion Issuer: 'i'. Assertion Subject: '{subject}'."
            );
            let hint = refused_subject_hint(&refused).unwrap();
            assert!(hint.contains(names), "{subject}: {hint}");
        }
        assert_eq!(
            refused_subject_hint("AADSTS7000215: Invalid client secret"),
            None
        );
    }
}
