//! The OIDC issuers of the CI systems a pipeline signs in from, so a workflow can be run against
//! the sandbox with the variables the CI would set and exchange its token for an Entra one
//! (`client_assertion`, `assertion.rs`).
//!
//! - GitHub Actions, at `{origin}/github-actions` (GitHub's is
//!   `https://token.actions.githubusercontent.com`): discovery and JWKS under `/.well-known/`, and
//!   the runner's token endpoint: a job gets `ACTIONS_ID_TOKEN_REQUEST_URL` and
//!   `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; `GET {url}&audience=…` with `Authorization: bearer {token}`
//!   answers `{"count", "value": "<JWT>"}`, as the runner does (actions/toolkit
//!   `packages/core/src/oidc-utils.ts` reads `value`). The claims are those of GitHub's "Understanding
//!   the OIDC token": `sub` is `repo:O/R:environment:E`, else `repo:O/R:pull_request` for a pull
//!   request, else `repo:O/R:ref:REF`; tokens live five minutes.
//! - Azure DevOps, at `{origin}/azure-devops/{organization id}` (Azure's is
//!   `https://vstoken.dev.azure.com/{organization id}`), `sub` `sc://ORG/PROJECT/CONNECTION`, the
//!   subject a workload-identity service connection shows.
//!
//! Each issuer signs with keys of its own, never a tenant's: Entra must not take a CI token for
//! one of its own, nor the reverse. Time comes from the sandbox's clock.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::sandbox::state::CiJob;
use crate::sandbox::{Shared, new_guid};

pub(crate) const GITHUB: &str = "github-actions";
pub(crate) const AZURE_DEVOPS: &str = "azure-devops";
/// The audience `azure/login` and the Azure SDKs ask for, and Entra's federated credentials expect.
pub(crate) const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// GitHub's OIDC tokens are valid for five minutes.
const GITHUB_LIFETIME_S: i64 = 300;
/// Azure DevOps' pipeline OIDC tokens: the sandbox gives them ten minutes (no public figure found).
const DEVOPS_LIFETIME_S: i64 = 600;
/// Jobs remembered at most; the oldest are forgotten first.
const JOBS: usize = 256;
const EVENTS: [&str; 4] = ["push", "pull_request", "schedule", "workflow_dispatch"];
/// Longest text the admin endpoints take for one value.
const VALUE_MAX: usize = 256;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/github-actions/.well-known/openid-configuration",
            get(|s: AxumState<Arc<Shared>>| async move { discovery(&github_issuer(&s)) }),
        )
        .route(
            "/github-actions/.well-known/jwks",
            get(|s: AxumState<Arc<Shared>>| async move { jwks(&s, GITHUB) }),
        )
        .route("/github-actions/jobs/{job}/idtoken", get(job_token))
        .route("/_sandbox/github-actions/jobs", post(start_job))
        .route(
            "/azure-devops/{org}/.well-known/openid-configuration",
            get(
                |s: AxumState<Arc<Shared>>, Path(org): Path<String>| async move {
                    discovery(&format!("{}/{AZURE_DEVOPS}/{org}", s.base_url))
                },
            ),
        )
        .route(
            "/azure-devops/{org}/.well-known/jwks",
            get(|s: AxumState<Arc<Shared>>| async move { jwks(&s, AZURE_DEVOPS) }),
        )
        .route("/_sandbox/azure-devops/oidc-token", post(devops_token))
}

pub(crate) fn github_issuer(shared: &Shared) -> String {
    format!("{}/{GITHUB}", shared.base_url)
}

/// The organization id of `org`: the one `provision bootstrap azure-devops` names too.
pub(crate) use crate::resources::federation::organization_id;

/// Which of the sandbox's CI issuers `iss` names: its key's name.
pub(crate) fn issuer_key_of(shared: &Shared, iss: &str) -> Option<&'static str> {
    if iss == github_issuer(shared) {
        return Some(GITHUB);
    }
    let org = iss.strip_prefix(&format!("{}/{AZURE_DEVOPS}/", shared.base_url))?;
    uuid::Uuid::parse_str(org)
        .ok()
        .filter(|u| u.to_string() == org)
        .map(|_| AZURE_DEVOPS)
}

fn discovery(issuer: &str) -> Response {
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks"),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository",
            "repository_owner", "environment", "event_name", "ref_type", "runner_environment"
        ],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
    .into_response()
}

fn jwks(shared: &Shared, issuer: &str) -> Response {
    let Some(signer) = shared.issuer_signer(issuer) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no signing key");
    };
    let mut jwk = serde_json::to_value(signer.jwk()).unwrap_or_default();
    if let Value::Object(fields) = &mut jwk {
        fields.insert("x5t".into(), json!(signer.kid));
    }
    Json(json!({ "keys": [jwk] })).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn sign(shared: &Shared, issuer: &str, claims: Map<String, Value>) -> Option<String> {
    let signer = shared.issuer_signer(issuer)?;
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": signer.kid, "x5t": signer.kid });
    Some(signer.sign_with_header(&header, &Value::Object(claims)))
}

fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn text_ok(value: &str) -> bool {
    !value.trim().is_empty() && value.len() <= VALUE_MAX && !value.chars().any(char::is_control)
}

fn repository_ok(repository: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    repository.len() <= VALUE_MAX
        && matches!(repository.split_once('/'), Some((owner, repo)) if part(owner) && part(repo))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    repository: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(rename = "ref", default = "main_branch")]
    git_ref: String,
    #[serde(default = "push")]
    event_name: String,
}

fn main_branch() -> String {
    "refs/heads/main".to_owned()
}

fn push() -> String {
    "push".to_owned()
}

async fn start_job(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Response {
    const SHAPE: &str = "expected {\"repository\": \"OWNER/REPO\", \"environment\": \"NAME\" | null, \"ref\": \"refs/heads/main\", \"event_name\": \"push\" | \"pull_request\" | \"schedule\" | \"workflow_dispatch\"}";
    let Ok(Json(job)) = body else {
        return error(StatusCode::BAD_REQUEST, SHAPE);
    };
    let fits = repository_ok(&job.repository)
        && job.environment.as_deref().is_none_or(text_ok)
        && text_ok(&job.git_ref)
        && job.git_ref.starts_with("refs/")
        && EVENTS.contains(&job.event_name.as_str());
    if !fits {
        return error(StatusCode::BAD_REQUEST, SHAPE);
    }
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    }
    let request_token = URL_SAFE_NO_PAD.encode(bytes);
    let id = new_guid();
    {
        let mut state = shared.state();
        if state.ci_jobs.len() >= JOBS {
            state.ci_jobs.remove(0);
        }
        state.ci_jobs.push(CiJob {
            id: id.clone(),
            token_hash: hash(&request_token),
            repository: job.repository,
            environment: job.environment,
            git_ref: job.git_ref,
            event_name: job.event_name,
            created_ms: shared.now_ms(),
        });
        shared.persist(&state);
    }
    Json(json!({
        "request_url": format!("{}/{GITHUB}/jobs/{id}/idtoken?api-version=2.0", shared.base_url),
        "request_token": request_token,
    }))
    .into_response()
}

/// GitHub's `sub` for a job: the environment wins, then a pull request, then the ref.
pub(crate) fn github_subject(job: &CiJob) -> String {
    match (&job.environment, job.event_name.as_str()) {
        (Some(environment), _) => format!("repo:{}:environment:{environment}", job.repository),
        (None, "pull_request") => format!("repo:{}:pull_request", job.repository),
        (None, _) => format!("repo:{}:ref:{}", job.repository, job.git_ref),
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    audience: Option<String>,
}

async fn job_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(job_id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| hash(token.trim()));
    let job = {
        let state = shared.state();
        state
            .ci_jobs
            .iter()
            .find(|j| j.id == job_id && Some(&j.token_hash) == presented.as_ref())
            .cloned()
    };
    let Some(job) = job else {
        return error(
            StatusCode::UNAUTHORIZED,
            "no job with this id and request token",
        );
    };
    let audience = query
        .audience
        .filter(|a| text_ok(a))
        .unwrap_or_else(|| EXCHANGE_AUDIENCE.to_owned());
    let now = shared.now_s();
    let owner = job
        .repository
        .split_once('/')
        .map(|(o, _)| o.to_owned())
        .unwrap_or_default();
    let mut claims = Map::new();
    claims.insert("jti".into(), json!(new_guid()));
    claims.insert("sub".into(), json!(github_subject(&job)));
    claims.insert("aud".into(), json!(audience));
    claims.insert("ref".into(), json!(job.git_ref));
    claims.insert("ref_type".into(), json!("branch"));
    claims.insert("repository".into(), json!(job.repository));
    claims.insert("repository_owner".into(), json!(owner));
    if let Some(environment) = &job.environment {
        claims.insert("environment".into(), json!(environment));
    }
    claims.insert("event_name".into(), json!(job.event_name));
    claims.insert("runner_environment".into(), json!("github-hosted"));
    claims.insert("iss".into(), json!(github_issuer(&shared)));
    claims.insert("nbf".into(), json!(now));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + GITHUB_LIFETIME_S));
    match sign(&shared, GITHUB, claims) {
        Some(token) => Json(json!({ "count": token.len(), "value": token })).into_response(),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "no signing key"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevopsRequest {
    organization: String,
    project: String,
    service_connection: String,
}

async fn devops_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Result<Json<DevopsRequest>, JsonRejection>,
) -> Response {
    const SHAPE: &str = "expected {\"organization\": \"ORG\", \"project\": \"PROJECT\", \"service_connection\": \"NAME\"}";
    let Ok(Json(request)) = body else {
        return error(StatusCode::BAD_REQUEST, SHAPE);
    };
    let org_ok = request.organization.len() <= 50
        && !request.organization.is_empty()
        && request
            .organization
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !(org_ok && text_ok(&request.project) && text_ok(&request.service_connection)) {
        return error(StatusCode::BAD_REQUEST, SHAPE);
    }
    let now = shared.now_s();
    let mut claims = Map::new();
    claims.insert("jti".into(), json!(new_guid()));
    claims.insert(
        "sub".into(),
        json!(devops_subject(
            &request.organization,
            &request.project,
            &request.service_connection
        )),
    );
    claims.insert("aud".into(), json!(EXCHANGE_AUDIENCE));
    claims.insert(
        "iss".into(),
        json!(format!(
            "{}/{AZURE_DEVOPS}/{}",
            shared.base_url,
            organization_id(&request.organization)
        )),
    );
    claims.insert("nbf".into(), json!(now));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + DEVOPS_LIFETIME_S));
    match sign(&shared, AZURE_DEVOPS, claims) {
        Some(token) => Json(json!({ "token": token })).into_response(),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "no signing key"),
    }
}

/// The subject of a workload-identity service connection's tokens.
pub(crate) fn devops_subject(org: &str, project: &str, connection: &str) -> String {
    format!("sc://{org}/{project}/{connection}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(environment: Option<&str>, event: &str) -> CiJob {
        CiJob {
            id: "j".into(),
            token_hash: String::new(),
            repository: "Contoso/llm-gw".into(),
            environment: environment.map(str::to_owned),
            git_ref: "refs/heads/main".into(),
            event_name: event.into(),
            created_ms: 0,
        }
    }

    #[test]
    fn subjects_follow_githubs_order() {
        assert_eq!(
            github_subject(&job(Some("prod"), "push")),
            "repo:Contoso/llm-gw:environment:prod"
        );
        assert_eq!(
            github_subject(&job(None, "pull_request")),
            "repo:Contoso/llm-gw:pull_request"
        );
        assert_eq!(
            github_subject(&job(None, "push")),
            "repo:Contoso/llm-gw:ref:refs/heads/main"
        );
        assert_eq!(devops_subject("o", "p", "c"), "sc://o/p/c");
    }

    #[test]
    fn organization_ids_are_stable_and_ignore_case() {
        let id = organization_id("Contoso");
        assert_eq!(id, organization_id("contoso"));
        assert_ne!(id, organization_id("fabrikam"));
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        assert!(repository_ok("Contoso/llm-gw.v2"));
        for bad in ["", "a", "a/", "/b", "a/b/c", "a b/c", "a/b\n"] {
            assert!(!repository_ok(bad), "{bad:?}");
        }
    }
}
