//! Signing in as the environment's registered public client, the way `az login
//! --use-device-code` and MSAL do: a saved sign-in first (no request while its token has five
//! minutes left), else its refresh token (one request), else the device code flow. What the
//! flow needs (the client's app id, the API's scope, the gateway's URL) is read from Azure and
//! Entra the way `plan` reads it, once per sign-in, and saved with the tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::azure::transport::Transport;
use crate::clock::Clock;
use crate::config::{Blueprint, ClientApp};
use crate::hint::Hinted;
use crate::oauth::cache::{SavedSignIn, SignInTarget, TokenCache};
use crate::oauth::device::{DeviceAuthorization, PublicClient, UserTokens};
use crate::policy::token::Jwt;

use super::Checked;
pub use super::connect::clock_for;

/// MSAL treats a token as expired five minutes early, so a call never leaves with one that
/// expires on the way.
pub const FRESH_MARGIN_S: i64 = 300;

/// How a sign-in was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The saved token, no request.
    Cache,
    /// One refresh-token request.
    Refresh,
    /// The device code flow.
    DeviceCode,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Refresh => "refresh",
            Source::DeviceCode => "device-code",
        }
    }
}

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct SignInOptions {
    /// A client app's unique name (default: the environment's first).
    pub client: Option<String>,
    /// Scopes instead of the API's (`offline_access` is added).
    pub scopes: Vec<String>,
    /// Sign in again even with a good saved sign-in.
    pub force: bool,
    /// Reading the environment and signing in may take this long.
    pub timeout: Duration,
}

/// A signed-in user, saved in the cache.
#[derive(Debug, Clone)]
pub struct UserSignIn {
    pub saved: SavedSignIn,
    pub source: Source,
    pub cache_file: PathBuf,
}

/// The client app `name` names, or the first.
pub fn client_of<'a>(
    blueprint: &'a Blueprint,
    name: Option<&str>,
) -> anyhow::Result<&'a ClientApp> {
    let clients = &blueprint.entra.clients;
    let names = || {
        clients
            .iter()
            .map(|c| c.unique_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        None => clients.first().ok_or_else(|| {
            Hinted::error(
                format!(
                    "{}: the environment registers no client app",
                    blueprint.file
                ),
                "add one under `entra.clients` and run `provision up`",
            )
        }),
        Some(name) => clients
            .iter()
            .find(|c| c.unique_name == name)
            .ok_or_else(|| {
                Hinted::error(
                    format!(
                        "--client {name}: {} registers no client app of that name",
                        blueprint.file
                    ),
                    format!("name one of: {}", names()),
                )
            }),
    }
}

/// A saved sign-in for `blueprint`'s client, usable as is (fresh) or by refresh.
fn usable_saved(
    blueprint: &Blueprint,
    client: &ClientApp,
    options: &SignInOptions,
    cache: &TokenCache,
) -> anyhow::Result<Option<SavedSignIn>> {
    if options.force {
        return Ok(None);
    }
    let login = blueprint.cloud.endpoints(&blueprint.sandbox_address).login;
    Ok(cache
        .load(&blueprint.env, &client.unique_name)?
        .filter(|s| {
            s.tenant_id
                .eq_ignore_ascii_case(blueprint.tenant_id.as_str())
                && s.login == login
                && client
                    .app_id
                    .as_ref()
                    .is_none_or(|id| id.as_str().eq_ignore_ascii_case(&s.client_id))
                && (options.scopes.is_empty() || s.scopes() == with_offline_access(&options.scopes))
        }))
}

fn with_offline_access(scopes: &[String]) -> Vec<String> {
    let mut all = scopes.to_vec();
    if !all.iter().any(|s| s == "offline_access") {
        all.push("offline_access".to_owned());
    }
    all
}

/// Signs in: the saved sign-in, its refresh token, or the device code flow (`prompt` shows the
/// user the code). `checked` is only connected when the flow needs what Azure knows.
pub async fn user_sign_in(
    checked: Checked,
    options: &SignInOptions,
    cache: &TokenCache,
    clock: Arc<dyn Clock>,
    prompt: impl Fn(&DeviceAuthorization),
) -> anyhow::Result<UserSignIn> {
    let blueprint = checked.blueprint.clone();
    let client = client_of(&blueprint, options.client.as_deref())?;
    let transport: Arc<dyn Transport> = Arc::new(super::connect::transport(&blueprint)?);
    if let Some(saved) = usable_saved(&blueprint, client, options, cache)? {
        if saved.is_fresh(clock.now(), FRESH_MARGIN_S) {
            tracing::debug!(client = %saved.client, "the saved token is good");
            let cache_file = cache.path(&saved.env, &saved.client);
            return Ok(UserSignIn {
                saved,
                source: Source::Cache,
                cache_file,
            });
        }
        if let Some(refresh_token) = saved.refresh_token() {
            let target = target_of(&saved);
            let public = PublicClient::new(
                transport.clone(),
                &target.login,
                &target.tenant_id,
                &target.client_id,
            );
            match public
                .refresh(&refresh_token, &target.scopes, &*clock)
                .await
            {
                Ok(tokens) => return save(cache, &target, tokens, Source::Refresh),
                Err(e) if e.needs_new_sign_in() => {
                    tracing::info!(
                        "the saved sign-in can not be refreshed ({e}); signing in again"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let target = resolve_target(checked, client, options).await?;
    let public = PublicClient::new(
        transport,
        &target.login,
        &target.tenant_id,
        &target.client_id,
    );
    let authorization = public.start(&target.scopes).await?;
    prompt(&authorization);
    let tokens = public.wait(&authorization, &*clock).await?;
    save(cache, &target, tokens, Source::DeviceCode)
}

fn target_of(saved: &SavedSignIn) -> SignInTarget {
    SignInTarget {
        env: saved.env.clone(),
        client: saved.client.clone(),
        client_id: saved.client_id.clone(),
        tenant_id: saved.tenant_id.clone(),
        login: saved.login.clone(),
        scopes: saved.scopes(),
        api_url: saved.api_url.clone(),
    }
}

fn save(
    cache: &TokenCache,
    target: &SignInTarget,
    tokens: UserTokens,
    source: Source,
) -> anyhow::Result<UserSignIn> {
    let user = Jwt::parse(tokens.access_token.expose())
        .ok()
        .and_then(|jwt| {
            ["preferred_username", "upn", "unique_name", "name"]
                .iter()
                .find_map(|c| jwt.claim_str(c).map(str::to_owned))
        });
    let saved = SavedSignIn::new(
        target,
        user,
        &tokens.access_token,
        tokens.refresh_token.as_ref(),
        tokens.expires_on,
    );
    let cache_file = cache.save(&saved)?;
    Ok(UserSignIn {
        saved,
        source,
        cache_file,
    })
}

/// What the device code flow needs, read from Azure and Entra as `plan` reads it.
async fn resolve_target(
    checked: Checked,
    client: &ClientApp,
    options: &SignInOptions,
) -> anyhow::Result<SignInTarget> {
    let client_name = client.unique_name.clone();
    let connected = super::connect(checked, options.timeout).await?;
    let (observation, _) = connected.plan().await?;
    let blueprint = &connected.blueprint;
    let endpoint = super::endpoint(blueprint, &observation.known);
    let client_id = endpoint
        .clients
        .iter()
        .find(|(name, _)| *name == client_name)
        .map(|(_, id)| id.clone())
        .filter(|id| !id.is_empty());
    let (Some(client_id), false) = (client_id, endpoint.api_app_id.is_empty()) else {
        return Err(Hinted::error(
            format!(
                "environment {}: the client app {client_name} or the API app is not registered yet",
                blueprint.env
            ),
            format!("run `provision up --env {}` first", blueprint.env),
        ));
    };
    let scopes = if options.scopes.is_empty() {
        vec![endpoint.scope.clone()]
    } else {
        options.scopes.clone()
    };
    Ok(SignInTarget {
        env: blueprint.env.clone(),
        client: client_name,
        client_id,
        tenant_id: blueprint.tenant_id.as_str().to_owned(),
        login: blueprint.cloud.endpoints(&blueprint.sandbox_address).login,
        scopes: with_offline_access(&scopes),
        api_url: endpoint.api_url,
    })
}

/// Where the environment's client signs in, read from Azure and Entra (`token --snippet`).
pub async fn target(checked: Checked, options: &SignInOptions) -> anyhow::Result<SignInTarget> {
    let blueprint = checked.blueprint.clone();
    let client = client_of(&blueprint, options.client.as_deref())?;
    resolve_target(checked, client, options).await
}
