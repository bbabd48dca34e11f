//! Which credential a run uses, decided once, up front, from the `--auth` choice (or the
//! environment file's) and the environment variables: a pure function, so every selection rule is
//! a unit test and a missing variable is named before any network call.
//!
//! Secrets (client secrets, tokens) only ever come from environment variables, never from files
//! or flags, and they live in [`Secret`] and [`AccessToken`], whose `Debug` and `Display` redact.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::AuthChoice;
use crate::clock::{Timestamp, format_utc_seconds};
use crate::hint::Remedy;

/// A secret string (client secret, OIDC request token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A bearer token. Never printed; [`AccessToken::expose`] is for the `Authorization` header only.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(value: impl Into<String>) -> AccessToken {
        AccessToken(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a managed identity's tokens come from, as the environment tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentitySource {
    /// `IDENTITY_ENDPOINT` (App Service, Functions, Container Apps, Arc).
    IdentityEndpoint(String),
    /// `MSI_ENDPOINT` (Cloud Shell, older App Service).
    MsiEndpoint(String),
    /// Neither variable: the VM's instance metadata service.
    Imds,
}

/// The credential a run will use, with everything it needs from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPlan {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    ManagedIdentity {
        source: ManagedIdentitySource,
        /// `AZURE_CLIENT_ID`, for a user-assigned identity; `None` is the system-assigned one.
        client_id: Option<String>,
    },
    /// Azure CLI, then Azure Developer CLI (what `auto` falls back to).
    DeveloperTools,
    /// Azure CLI only (`--auth cli`).
    AzureCli,
    GithubOidc {
        tenant_id: String,
        client_id: String,
        request_url: String,
        request_token: Secret,
    },
    Sandbox,
}

impl CredentialPlan {
    /// A short name for progress output and logs (no identifiers, no secrets).
    pub fn describe(&self) -> &'static str {
        match self {
            CredentialPlan::ClientSecret { .. } => "client secret from the environment",
            CredentialPlan::WorkloadIdentity { .. } => "workload identity (federated token file)",
            CredentialPlan::ManagedIdentity { .. } => "managed identity",
            CredentialPlan::DeveloperTools => "Azure CLI, then Azure Developer CLI",
            CredentialPlan::AzureCli => "Azure CLI",
            CredentialPlan::GithubOidc { .. } => "GitHub Actions OIDC token",
            CredentialPlan::Sandbox => "sandbox client credentials",
        }
    }
}

/// The credential could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "--auth {choice} needs {} in the environment, and {} not set",
        missing.join(", "),
        if missing.len() == 1 { "it is" } else { "they are" }
    )]
    MissingVariables {
        choice: AuthChoice,
        missing: Vec<&'static str>,
    },
}

impl Remedy for CredentialError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(match self {
            CredentialError::MissingVariables { choice, .. } => hint_for(*choice),
        }))
    }
}

fn hint_for(choice: AuthChoice) -> &'static str {
    match choice {
        AuthChoice::ClientSecret => {
            "export AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a client secret is \
             read from the environment only, never from files or flags), or choose another --auth"
        }
        AuthChoice::WorkloadIdentity => {
            "AZURE_FEDERATED_TOKEN_FILE is set by the AKS workload identity webhook, or by \
             azure/login in GitHub Actions; AZURE_CLIENT_ID and AZURE_TENANT_ID name the \
             identity it signs in as"
        }
        AuthChoice::GithubOidc => {
            "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN exist only in a \
             GitHub Actions job with `permissions: id-token: write`; AZURE_CLIENT_ID and \
             AZURE_TENANT_ID name the app with the federated credential"
        }
        AuthChoice::Auto | AuthChoice::Cli | AuthChoice::ManagedIdentity | AuthChoice::Sandbox => {
            "set the variables named above, or choose another --auth"
        }
    }
}

/// Environment variables, as a map so tests never read the process's own.
pub type Environment = HashMap<String, String>;

/// The process's environment, for production use.
pub fn process_environment() -> Environment {
    std::env::vars().collect()
}

/// Picks the credential. `choice` is `--auth`, else the environment file's value, else `None`
/// (= `auto`). An empty variable counts as unset.
pub fn plan(
    choice: Option<AuthChoice>,
    env: &Environment,
) -> Result<CredentialPlan, CredentialError> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
    let require = |choice: AuthChoice, names: &[&'static str]| {
        let missing: Vec<&'static str> =
            names.iter().copied().filter(|n| var(n).is_none()).collect();
        if missing.is_empty() {
            Ok(names
                .iter()
                .map(|n| var(n).unwrap_or_default())
                .collect::<Vec<_>>())
        } else {
            Err(CredentialError::MissingVariables { choice, missing })
        }
    };
    let client_secret = |choice| {
        require(
            choice,
            &[AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET],
        )
        .map(|v| CredentialPlan::ClientSecret {
            tenant_id: v[0].clone(),
            client_id: v[1].clone(),
            secret: Secret::new(v[2].clone()),
        })
    };
    let workload = |choice| {
        require(
            choice,
            &[AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE],
        )
        .map(|v| CredentialPlan::WorkloadIdentity {
            tenant_id: v[0].clone(),
            client_id: v[1].clone(),
            token_file: PathBuf::from(&v[2]),
        })
    };
    let managed = || CredentialPlan::ManagedIdentity {
        source: match (var("IDENTITY_ENDPOINT"), var("MSI_ENDPOINT")) {
            (Some(url), _) => ManagedIdentitySource::IdentityEndpoint(url),
            (None, Some(url)) => ManagedIdentitySource::MsiEndpoint(url),
            (None, None) => ManagedIdentitySource::Imds,
        },
        client_id: var(AZURE_CLIENT_ID),
    };
    match choice.unwrap_or(AuthChoice::Auto) {
        AuthChoice::Auto => {
            if let Ok(plan) = client_secret(AuthChoice::Auto) {
                return Ok(plan);
            }
            if let Ok(plan) = workload(AuthChoice::Auto) {
                return Ok(plan);
            }
            if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
                return Ok(managed());
            }
            Ok(CredentialPlan::DeveloperTools)
        }
        AuthChoice::Cli => Ok(CredentialPlan::AzureCli),
        AuthChoice::WorkloadIdentity => workload(AuthChoice::WorkloadIdentity),
        AuthChoice::ManagedIdentity => Ok(managed()),
        AuthChoice::ClientSecret => client_secret(AuthChoice::ClientSecret),
        AuthChoice::GithubOidc => require(
            AuthChoice::GithubOidc,
            &[
                AZURE_TENANT_ID,
                AZURE_CLIENT_ID,
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            ],
        )
        .map(|v| CredentialPlan::GithubOidc {
            tenant_id: v[0].clone(),
            client_id: v[1].clone(),
            request_url: v[2].clone(),
            request_token: Secret::new(v[3].clone()),
        }),
        AuthChoice::Sandbox => Ok(CredentialPlan::Sandbox),
    }
}

const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// A token and when it stops working.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: AccessToken,
    pub expires_on: Timestamp,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &self.token)
            .field("expires_on", &format_utc_seconds(self.expires_on))
            .finish()
    }
}

/// Tokens for this run, one per scope. A token is handed out only while it has more than
/// [`TokenCache::REFRESH_BEFORE`] left, so a request never leaves with a token that expires on the
/// way (the Azure SDKs use the same 5 minutes). Fetches are serialised per scope, so parallel apply
/// steps that need a token at once cause one sign-in, not one each, and a Graph sign-in never
/// holds up an ARM request whose token is cached.
#[derive(Default)]
pub struct TokenCache {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

type Slot = std::sync::Arc<tokio::sync::Mutex<Option<IssuedToken>>>;

impl TokenCache {
    pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// Whether `token` can still be handed out at `now`.
    pub fn is_fresh(token: &IssuedToken, now: Timestamp) -> bool {
        now.saturating_add(TokenCache::REFRESH_BEFORE)
            .is_ok_and(|refresh_at| refresh_at < token.expires_on)
    }

    fn slot(&self, scope: &str) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(scope.to_owned())
            .or_default()
            .clone()
    }

    /// The cached token for `scope` if fresh at `now`, else the result of `fetch` (kept when it
    /// succeeds).
    pub async fn get_or_fetch<F, Fut, E>(
        &self,
        scope: &str,
        now: Timestamp,
        fetch: F,
    ) -> Result<AccessToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<IssuedToken, E>>,
    {
        let slot = self.slot(scope);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| TokenCache::is_fresh(t, now)) {
            return Ok(token.token.clone());
        }
        let issued = fetch().await?;
        let token = issued.token.clone();
        *cached = Some(issued);
        Ok(token)
    }

    /// Drops the token for `scope` (after a 401 that says it was revoked).
    pub async fn forget(&self, scope: &str) {
        *self.slot(scope).lock().await = None;
    }
}

/// Shows which scopes are cached and until when, never the tokens.
impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut scopes: Vec<(String, String)> = slots
            .iter()
            .map(|(scope, slot)| {
                let until = match slot.try_lock() {
                    Ok(token) => token
                        .as_ref()
                        .map_or("-".to_owned(), |t| format_utc_seconds(t.expires_on)),
                    Err(_) => "<fetching>".to_owned(),
                };
                (scope.clone(), until)
            })
            .collect();
        scopes.sort();
        f.debug_struct("TokenCache")
            .field("scopes", &scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SP: [(&str, &str); 3] = [
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s3cr3t"),
    ];
    const WI: [(&str, &str); 3] = [
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
    ];

    #[test]
    fn auto_prefers_client_secret() {
        let mut pairs = SP.to_vec();
        pairs.extend(WI);
        pairs.push(("IDENTITY_ENDPOINT", "http://169.254.1.1/msi"));
        assert_eq!(
            plan(None, &env(&pairs)),
            Ok(CredentialPlan::ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into(),
                secret: Secret::new("s3cr3t"),
            })
        );
    }

    #[test]
    fn auto_then_workload_identity() {
        let mut pairs = WI.to_vec();
        pairs.push(("MSI_ENDPOINT", "http://x"));
        assert_eq!(
            plan(Some(AuthChoice::Auto), &env(&pairs)),
            Ok(CredentialPlan::WorkloadIdentity {
                tenant_id: "t".into(),
                client_id: "c".into(),
                token_file: PathBuf::from("/var/run/secrets/azure/tokens/azure-identity-token"),
            })
        );
    }

    #[test]
    fn auto_then_managed_identity() {
        assert_eq!(
            plan(
                None,
                &env(&[
                    ("IDENTITY_ENDPOINT", "http://localhost:42/msi"),
                    ("AZURE_CLIENT_ID", "uami")
                ])
            ),
            Ok(CredentialPlan::ManagedIdentity {
                source: ManagedIdentitySource::IdentityEndpoint("http://localhost:42/msi".into()),
                client_id: Some("uami".into()),
            })
        );
        assert_eq!(
            plan(
                None,
                &env(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")])
            ),
            Ok(CredentialPlan::ManagedIdentity {
                source: ManagedIdentitySource::MsiEndpoint(
                    "http://localhost:50342/oauth2/token".into()
                ),
                client_id: None,
            })
        );
    }

    #[test]
    fn auto_falls_back_to_developer_tools() {
        assert_eq!(plan(None, &env(&[])), Ok(CredentialPlan::DeveloperTools));
        // Half a service principal is not one; an empty variable is unset.
        let partial = env(&[
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_TENANT_ID", ""),
        ]);
        assert_eq!(plan(None, &partial), Ok(CredentialPlan::DeveloperTools));
    }

    #[test]
    fn explicit_choices() {
        let everything = {
            let mut p = SP.to_vec();
            p.extend(WI);
            env(&p)
        };
        assert_eq!(
            plan(Some(AuthChoice::Cli), &everything),
            Ok(CredentialPlan::AzureCli)
        );
        assert_eq!(
            plan(Some(AuthChoice::Sandbox), &everything),
            Ok(CredentialPlan::Sandbox)
        );
        assert_eq!(
            plan(Some(AuthChoice::ManagedIdentity), &env(&[])),
            Ok(CredentialPlan::ManagedIdentity {
                source: ManagedIdentitySource::Imds,
                client_id: None
            })
        );
        assert!(matches!(
            plan(Some(AuthChoice::WorkloadIdentity), &everything),
            Ok(CredentialPlan::WorkloadIdentity { .. })
        ));
        let gh = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://pipelines.actions.githubusercontent.com/x",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-bearer"),
        ]);
        assert_eq!(
            plan(Some(AuthChoice::GithubOidc), &gh),
            Ok(CredentialPlan::GithubOidc {
                tenant_id: "t".into(),
                client_id: "c".into(),
                request_url: "https://pipelines.actions.githubusercontent.com/x".into(),
                request_token: Secret::new("gh-bearer"),
            })
        );
    }

    #[test]
    fn missing_variables_are_named_exactly() {
        let error = plan(
            Some(AuthChoice::ClientSecret),
            &env(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--auth client-secret needs AZURE_CLIENT_SECRET in the environment, and it is not set"
        );
        assert_eq!(
            error.hint().unwrap(),
            "export AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a client secret is \
             read from the environment only, never from files or flags), or choose another --auth"
        );
        let error = plan(
            Some(AuthChoice::GithubOidc),
            &env(&[("AZURE_TENANT_ID", "t")]),
        )
        .unwrap_err();
        assert_eq!(
            error,
            CredentialError::MissingVariables {
                choice: AuthChoice::GithubOidc,
                missing: vec![
                    "AZURE_CLIENT_ID",
                    "ACTIONS_ID_TOKEN_REQUEST_URL",
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
                ],
            }
        );
        assert!(error.to_string().starts_with(
            "--auth github-oidc needs AZURE_CLIENT_ID, ACTIONS_ID_TOKEN_REQUEST_URL, \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN in the environment, and they are not set"
        ));
        let error = plan(Some(AuthChoice::WorkloadIdentity), &env(&SP)).unwrap_err();
        assert_eq!(
            error,
            CredentialError::MissingVariables {
                choice: AuthChoice::WorkloadIdentity,
                missing: vec!["AZURE_FEDERATED_TOKEN_FILE"],
            }
        );
    }

    #[test]
    fn secrets_never_print() {
        let plan = plan(None, &env(&SP)).unwrap();
        let shown = format!("{plan:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Secret(<redacted>)"));
        let token = AccessToken::new("eyJhbGciOi.payload.sig");
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        assert_eq!(format!("{token}"), "<redacted>");
        assert_eq!(token.bearer(), "Bearer eyJhbGciOi.payload.sig");
    }

    #[tokio::test]
    async fn cache_refreshes_five_minutes_before_expiry() {
        let cache = TokenCache::new();
        let clock = FixedClock::at(Timestamp::from_second(1_800_000_000).unwrap());
        let t0 = clock.now();
        let issued = |name: &str, lifetime: u64| IssuedToken {
            token: AccessToken::new(name),
            expires_on: t0 + Duration::from_secs(lifetime),
        };
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let fetch = |name: &'static str| {
            let fetches = &fetches;
            move || async move {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(issued(name, 3600))
            }
        };
        let arm = "https://management.azure.com/.default";
        let graph = "https://graph.microsoft.com/.default";
        assert_eq!(
            cache
                .get_or_fetch(arm, t0, fetch("a1"))
                .await
                .unwrap()
                .expose(),
            "a1"
        );
        assert_eq!(
            cache
                .get_or_fetch(graph, t0, fetch("g1"))
                .await
                .unwrap()
                .expose(),
            "g1"
        );
        // 5 min 1 s before expiry the token is still handed out; 5 min before, it is refreshed.
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            cache
                .get_or_fetch(arm, at(3299), fetch("a2"))
                .await
                .unwrap()
                .expose(),
            "a1"
        );
        assert_eq!(
            cache
                .get_or_fetch(arm, at(3300), fetch("a2"))
                .await
                .unwrap()
                .expose(),
            "a2"
        );
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);

        let shown = format!("{cache:?}");
        assert!(!shown.contains("a2") && !shown.contains("g1"), "{shown}");
        assert!(shown.contains(arm) && shown.contains(graph), "{shown}");

        // A failed fetch leaves nothing behind.
        cache.forget(arm).await;
        let failed: Result<AccessToken, &str> =
            cache.get_or_fetch(arm, t0, || async { Err("no") }).await;
        assert_eq!(failed, Err("no"));
        assert_eq!(
            cache
                .get_or_fetch(arm, t0, fetch("a3"))
                .await
                .unwrap()
                .expose(),
            "a3"
        );
    }
}
