//! Getting tokens: the credential [`plan`](super::credential::plan) chose, turned into something
//! that hands out a token per scope, cached for the run.
//!
//! The Azure credentials (CLI, Developer CLI, managed identity, workload identity, client secret,
//! client assertion) come from `azure_identity`, which has them right and keeps up with Entra.
//! Two are ours because the crate can not do them: the sandbox's client credentials (the crate
//! refuses a non-HTTPS authority, and the sandbox serves plain HTTP on loopback) and fetching the
//! GitHub Actions OIDC token that the crate's `ClientAssertionCredential` then exchanges.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::credential::{AccessToken, CredentialPlan, IssuedToken, Secret, TokenCache};
use super::federated::{AssertionSource, SandboxAssertion};
use super::retry::{self, Deadline, Replay, RetryPolicy};
use super::transport::{Method, Transport, WireRequest};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::cloud::{Cloud, CloudEndpoints};
use crate::dice::Dice;
use crate::hint::Remedy;

/// A token could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not get a token for {scope} with {method}: {reason}")]
pub struct SignInError {
    pub method: &'static str,
    pub scope: String,
    pub reason: String,
}

/// What to do, per credential.
impl Remedy for SignInError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        if let Some(hint) = super::federated::refused_subject_hint(&self.reason) {
            return Some(hint.into());
        }
        let hint = match self.method {
            m if m.contains("Azure CLI") => {
                "run `az login` (and `az account set --subscription <id>`), or choose another \
                 --auth"
            }
            m if m.contains("sandbox") => {
                "start the sandbox (`provision sandbox serve`), or point the environment's \
                 sandbox address at it"
            }
            m if m.contains("managed identity") => {
                "managed identity works only on an Azure host that has one assigned; elsewhere \
                 choose another --auth"
            }
            _ => {
                "check the identity's tenant and client id, and that it may sign in to this \
                 cloud; --auth chooses another credential"
            }
        };
        Some(hint.into())
    }
}

/// The future a [`SignIn`] returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<IssuedToken, SignInError>> + Send + 'a>>;

/// Something that gets a fresh token for a scope (`<resource>/.default`). `clock` dates a token
/// whose lifetime comes relative (`expires_in`) and measures HTTP-date `Retry-After`s.
pub trait SignIn: Send + Sync {
    fn fetch<'a>(&'a self, scope: &'a str, clock: &'a dyn Clock) -> TokenFuture<'a>;
}

/// The run's credential: one [`SignIn`] and its per-scope cache.
pub struct Credentials {
    method: &'static str,
    sign_in: Box<dyn SignIn>,
    cache: TokenCache,
    clock: Arc<dyn Clock>,
}

impl Credentials {
    pub fn new(method: &'static str, sign_in: Box<dyn SignIn>) -> Credentials {
        Credentials {
            method,
            sign_in,
            cache: TokenCache::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Judges token freshness on `clock` instead of the system's (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Credentials {
        self.clock = clock;
        self
    }

    /// The credentials a plan names, for a cloud. Nothing is fetched yet: the first
    /// [`Credentials::token`] signs in.
    pub fn from_plan(
        plan: &CredentialPlan,
        cloud: Cloud,
        endpoints: &CloudEndpoints,
        transport: Arc<dyn Transport>,
    ) -> Result<Credentials, SignInError> {
        let method = plan.describe();
        // azure_identity builds its own reqwest client on our rustls, which has no built-in
        // crypto provider; ring must be installed before it connects anywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let failed = |e: azure_core::Error| SignInError {
            method,
            scope: "any scope".to_owned(),
            reason: e.to_string(),
        };
        let client_options = || azure_core::http::ClientOptions {
            cloud: azure_cloud(cloud).map(Arc::new),
            ..Default::default()
        };
        let assertion_options = || ClientAssertionCredentialOptions {
            client_options: client_options(),
        };
        if cloud == Cloud::Sandbox
            && let Some(federated) = sandbox_federated(plan, endpoints, &transport)
        {
            return Ok(Credentials::new(method, Box::new(federated)));
        }
        let credential: Arc<dyn TokenCredential> = match plan {
            CredentialPlan::Sandbox => {
                return Ok(Credentials::new(
                    method,
                    Box::new(SandboxSignIn::new(endpoints, transport)),
                ));
            }
            CredentialPlan::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                secret.expose().to_owned().into(),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(),
                }),
            )
            .map_err(failed)?,
            CredentialPlan::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: assertion_options(),
                client_id: Some(client_id.clone()),
                tenant_id: Some(tenant_id.clone()),
                token_file_path: Some(token_file.clone()),
            }))
            .map_err(failed)?,
            CredentialPlan::ManagedIdentity { client_id, .. } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: client_options(),
                }))
                .map_err(failed)?
            }
            CredentialPlan::DeveloperTools => {
                DeveloperToolsCredential::new(None).map_err(failed)?
            }
            CredentialPlan::AzureCli => AzureCliCredential::new(None).map_err(failed)?,
            CredentialPlan::GithubOidc {
                tenant_id,
                client_id,
                request_url,
                request_token,
            } => ClientAssertionCredential::new(
                tenant_id.clone(),
                client_id.clone(),
                GithubOidcAssertion {
                    request_url: request_url.clone(),
                    request_token: request_token.clone(),
                    transport,
                },
                Some(assertion_options()),
            )
            .map_err(failed)?,
        };
        Ok(Credentials::new(
            method,
            Box::new(IdentitySignIn { method, credential }),
        ))
    }

    /// How this run signs in, for progress output.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// A token for `scope`, from the cache while it has five minutes left.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, SignInError> {
        self.cache
            .get_or_fetch(scope, self.clock.now(), || {
                self.sign_in.fetch(scope, &*self.clock)
            })
            .await
    }

    /// Forgets the token for `scope` (the server refused it), so the next call signs in again.
    pub async fn forget(&self, scope: &str) {
        self.cache.forget(scope).await;
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.method)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// `azure_identity`'s name for our cloud; `None` for the sandbox, which never reaches the crate.
fn azure_cloud(cloud: Cloud) -> Option<azure_core::cloud::CloudConfiguration> {
    use azure_core::cloud::CloudConfiguration;
    match cloud {
        Cloud::Public => Some(CloudConfiguration::AzurePublic),
        Cloud::Usgov => Some(CloudConfiguration::AzureGovernment),
        Cloud::China => Some(CloudConfiguration::AzureChina),
        Cloud::Sandbox => None,
    }
}

/// Any `azure_identity` credential.
struct IdentitySignIn {
    method: &'static str,
    credential: Arc<dyn TokenCredential>,
}

impl SignIn for IdentitySignIn {
    fn fetch<'a>(&'a self, scope: &'a str, _clock: &'a dyn Clock) -> TokenFuture<'a> {
        Box::pin(async move {
            let token = self
                .credential
                .get_token(&[scope], None)
                .await
                .map_err(|e| SignInError {
                    method: self.method,
                    scope: scope.to_owned(),
                    reason: e.to_string(),
                })?;
            let expires_on = Timestamp::from_second(token.expires_on.unix_timestamp())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            Ok(IssuedToken {
                token: AccessToken::new(token.token.secret()),
                expires_on,
            })
        })
    }
}

/// The GitHub Actions OIDC token, fetched fresh for every exchange (it lives five minutes), with
/// the audience Entra federated credentials expect.
struct GithubOidcAssertion {
    request_url: String,
    request_token: Secret,
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for GithubOidcAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubOidcAssertion")
            .field("request_url", &self.request_url)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for GithubOidcAssertion {
    async fn secret(
        &self,
        _options: Option<azure_core::http::ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        super::federated::github_oidc_token(
            &*self.transport,
            &self.request_url,
            &self.request_token,
        )
        .await
        .map_err(|reason| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, reason)
        })
    }
}

/// A pipeline's federated sign-in against the sandbox (`federated.rs`), for the plans that
/// carry a CI token; `None` for the others.
fn sandbox_federated(
    plan: &CredentialPlan,
    endpoints: &CloudEndpoints,
    transport: &Arc<dyn Transport>,
) -> Option<SandboxFederated> {
    let (tenant_id, client_id, source) = match plan {
        CredentialPlan::GithubOidc {
            tenant_id,
            client_id,
            request_url,
            request_token,
        } => (
            tenant_id,
            client_id,
            AssertionSource::Github {
                request_url: request_url.clone(),
                request_token: request_token.clone(),
            },
        ),
        CredentialPlan::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => (
            tenant_id,
            client_id,
            AssertionSource::File(token_file.clone()),
        ),
        _ => return None,
    };
    Some(SandboxFederated {
        method: plan.describe(),
        exchange: SandboxAssertion {
            transport: transport.clone(),
            login: endpoints.login.trim_end_matches('/').to_owned(),
            tenant_id: tenant_id.clone(),
            client_id: client_id.clone(),
            source,
        },
    })
}

struct SandboxFederated {
    method: &'static str,
    exchange: SandboxAssertion,
}

impl SignIn for SandboxFederated {
    fn fetch<'a>(&'a self, scope: &'a str, clock: &'a dyn Clock) -> TokenFuture<'a> {
        Box::pin(async move {
            self.exchange
                .fetch(scope, clock)
                .await
                .map_err(|reason| SignInError {
                    method: self.method,
                    scope: scope.to_owned(),
                    reason,
                })
        })
    }
}

/// Client credentials against the sandbox, as its operator (`GET /_sandbox/info` tells who that
/// is). The sandbox's token endpoint speaks Entra's v2 protocol, so this is the same form post the
/// Azure SDKs send.
struct SandboxSignIn {
    transport: Arc<dyn Transport>,
    login: String,
    operator: tokio::sync::OnceCell<Operator>,
}

struct Operator {
    tenant_id: String,
    client_id: String,
    client_secret: Secret,
}

const SANDBOX: &str = "sandbox client credentials";

/// How long signing in to the sandbox may retry (throttling and injected faults included).
const SIGN_IN_BUDGET: Duration = Duration::from_secs(60);

impl SandboxSignIn {
    fn new(endpoints: &CloudEndpoints, transport: Arc<dyn Transport>) -> SandboxSignIn {
        SandboxSignIn {
            transport,
            login: endpoints.login.trim_end_matches('/').to_owned(),
            operator: tokio::sync::OnceCell::new(),
        }
    }

    async fn operator(&self, scope: &str, clock: &dyn Clock) -> Result<&Operator, SignInError> {
        let failed = |reason: String| SignInError {
            method: SANDBOX,
            scope: scope.to_owned(),
            reason,
        };
        self.operator
            .get_or_try_init(|| async {
                let url = format!("{}/_sandbox/info", self.login);
                let response = retry::send(
                    &*self.transport,
                    &WireRequest::new(Method::Get, &url),
                    Replay::ByMethod,
                    // A sandbox that is not listening will not start by being waited for: fail in
                    // about a second with the hint to start it.
                    &RetryPolicy {
                        base: Duration::from_millis(100),
                        cap: Duration::from_secs(1),
                        max_attempts: 3,
                    },
                    &mut Dice::new(u64::from(std::process::id())),
                    &Deadline::after(SIGN_IN_BUDGET, "the sandbox's operator credentials"),
                    clock,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                let info = response
                    .body_json()
                    .ok()
                    .filter(|_| response.is_success())
                    .ok_or_else(|| {
                        failed(format!(
                            "{url} answered HTTP {}, not the sandbox's info",
                            response.status
                        ))
                    })?;
                let field = |name: &str| {
                    info.pointer(&format!("/operator/{name}"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| failed(format!("{url} has no operator.{name}")))
                };
                Ok(Operator {
                    tenant_id: field("tenant_id")?,
                    client_id: field("client_id")?,
                    client_secret: Secret::new(field("client_secret")?),
                })
            })
            .await
    }
}

impl SignIn for SandboxSignIn {
    fn fetch<'a>(&'a self, scope: &'a str, clock: &'a dyn Clock) -> TokenFuture<'a> {
        Box::pin(async move {
            let operator = self.operator(scope, clock).await?;
            let failed = |reason: String| SignInError {
                method: SANDBOX,
                scope: scope.to_owned(),
                reason,
            };
            let form = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &operator.client_id)
                .append_pair("client_secret", operator.client_secret.expose())
                .append_pair("scope", scope)
                .finish();
            let mut request = WireRequest::new(
                Method::Post,
                format!("{}/{}/oauth2/v2.0/token", self.login, operator.tenant_id),
            )
            .header("content-type", "application/x-www-form-urlencoded");
            request.body = Some(form.into_bytes());
            // A token request is safe to repeat: it creates nothing.
            let response = retry::send(
                &*self.transport,
                &request,
                Replay::Safe,
                &RetryPolicy::default(),
                &mut Dice::new(u64::from(std::process::id())),
                &Deadline::after(SIGN_IN_BUDGET, "a sandbox token"),
                clock,
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
            let body = response.body_json().unwrap_or_default();
            if !response.is_success() {
                let description = body
                    .get("error_description")
                    .and_then(|v| v.as_str())
                    .unwrap_or("no error description");
                return Err(failed(format!("HTTP {}: {description}", response.status)));
            }
            let token = body
                .get("access_token")
                .and_then(|v| v.as_str())
                .ok_or_else(|| failed("the token response has no access_token".to_owned()))?;
            let lifetime = body.get("expires_in").and_then(|v| v.as_u64()).unwrap_or(0);
            // A lifetime past the last representable instant is the last instant, not a panic.
            let expires_on = clock
                .now()
                .saturating_add(Duration::from_secs(lifetime))
                .unwrap_or(Timestamp::MAX);
            Ok(IssuedToken {
                token: AccessToken::new(token),
                expires_on,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::transport::{ScriptedTransport, WireResponse};
    use crate::clock::{FixedClock, SignedDuration};
    use serde_json::json;

    fn sandbox_row() -> CloudEndpoints {
        Cloud::Sandbox.endpoints("127.0.0.1:7171")
    }

    #[tokio::test]
    async fn sandbox_sign_in_posts_the_operators_client_credentials_once_per_scope() {
        let transport = Arc::new(ScriptedTransport::new([
            Ok(WireResponse::new(200).json(&json!({"operator": {
                "tenant_id": "t1", "client_id": "c1", "client_secret": "s3cr3t"}}))),
            Ok(WireResponse::new(200)
                .json(&json!({"access_token": "tok-arm", "expires_in": 3599}))),
        ]));
        let credentials = Credentials::from_plan(
            &CredentialPlan::Sandbox,
            Cloud::Sandbox,
            &sandbox_row(),
            transport.clone(),
        )
        .unwrap();
        let scope = sandbox_row().arm_scope();
        assert_eq!(credentials.token(&scope).await.unwrap().expose(), "tok-arm");
        assert_eq!(credentials.token(&scope).await.unwrap().expose(), "tok-arm");
        let sent = transport.sent();
        assert_eq!(sent.len(), 2, "the second token comes from the cache");
        assert_eq!(sent[0].url, "http://127.0.0.1:7171/_sandbox/info");
        assert_eq!(sent[1].url, "http://127.0.0.1:7171/t1/oauth2/v2.0/token");
        assert_eq!(
            String::from_utf8(sent[1].body.clone().unwrap()).unwrap(),
            "grant_type=client_credentials&client_id=c1&client_secret=s3cr3t&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
        );
    }

    #[tokio::test]
    async fn a_refused_sandbox_sign_in_says_why_without_the_secret() {
        let transport = Arc::new(ScriptedTransport::new([
            Ok(WireResponse::new(200).json(&json!({"operator": {
                "tenant_id": "t1", "client_id": "c1", "client_secret": "s3cr3t"}}))),
            Ok(
                WireResponse::new(401).json(&json!({"error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided."})),
            ),
        ]));
        let credentials = Credentials::from_plan(
            &CredentialPlan::Sandbox,
            Cloud::Sandbox,
            &sandbox_row(),
            transport,
        )
        .unwrap();
        let error = credentials
            .token("https://graph.microsoft.com/.default")
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "could not get a token for https://graph.microsoft.com/.default with sandbox client \
             credentials: HTTP 401: AADSTS7000215: Invalid client secret provided."
        );
        assert!(error.hint().unwrap().contains("provision sandbox serve"));
        assert!(!format!("{error:?}{credentials:?}").contains("s3cr3t"));
    }

    fn scripted_sandbox(tokens: &[serde_json::Value]) -> Arc<ScriptedTransport> {
        let mut script =
            vec![Ok(
                WireResponse::new(200).json(&json!({"operator": {
            "tenant_id": "t1", "client_id": "c1", "client_secret": "s3cr3t"}})),
            )];
        script.extend(tokens.iter().map(|t| Ok(WireResponse::new(200).json(t))));
        Arc::new(ScriptedTransport::new(script))
    }

    /// Regression: freshness was judged on the system clock, so only waiting an hour could show
    /// a token being refreshed. It is judged on the credentials' clock.
    #[tokio::test]
    async fn a_cached_token_is_refreshed_five_minutes_before_expiry_on_the_given_clock() {
        let transport = scripted_sandbox(&[
            json!({"access_token": "tok-1", "expires_in": 3600}),
            json!({"access_token": "tok-2", "expires_in": 3600}),
        ]);
        let clock = Arc::new(FixedClock::at("2026-11-28T16:00:00Z".parse().unwrap()));
        let credentials = Credentials::from_plan(
            &CredentialPlan::Sandbox,
            Cloud::Sandbox,
            &sandbox_row(),
            transport.clone(),
        )
        .unwrap()
        .with_clock(clock.clone());
        let scope = sandbox_row().arm_scope();
        assert_eq!(credentials.token(&scope).await.unwrap().expose(), "tok-1");
        clock.advance(SignedDuration::from_secs(3299));
        assert_eq!(credentials.token(&scope).await.unwrap().expose(), "tok-1");
        clock.advance(SignedDuration::from_secs(1));
        assert_eq!(credentials.token(&scope).await.unwrap().expose(), "tok-2");
        assert_eq!(transport.sent().len(), 3);
    }

    /// Regression: an `expires_in` beyond the last representable instant panicked while adding
    /// it to the time now.
    #[tokio::test]
    async fn a_token_lifetime_past_the_last_instant_is_not_a_panic() {
        let transport = scripted_sandbox(&[json!({
            "access_token": "tok-forever", "expires_in": u64::MAX})]);
        let credentials = Credentials::from_plan(
            &CredentialPlan::Sandbox,
            Cloud::Sandbox,
            &sandbox_row(),
            transport.clone(),
        )
        .unwrap();
        let scope = sandbox_row().arm_scope();
        assert_eq!(
            credentials.token(&scope).await.unwrap().expose(),
            "tok-forever"
        );
        assert_eq!(
            credentials.token(&scope).await.unwrap().expose(),
            "tok-forever"
        );
        assert_eq!(
            transport.sent().len(),
            2,
            "the token is cached until the end of time"
        );
    }
}
