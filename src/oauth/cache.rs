//! The user's token cache: one JSON file per environment and client app under the user's cache
//! directory (`$PROVISION_CACHE_DIR`, else `$XDG_CACHE_HOME/provision`, else
//! `~/.cache/provision`; `%LOCALAPPDATA%\provision` on Windows), in `tokens/`, directory 0700
//! and files 0600 as the Azure CLI keeps `~/.azure/msal_token_cache.json`. A file is written
//! whole to a temporary name and renamed, so a reader never sees half a file.
//!
//! The few lines of directory lookup are written here rather than taken from a crate: the rule
//! is the XDG one plus an override, and the override is what tests and CI use.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::azure::credential::{AccessToken, Secret};
use crate::clock::Timestamp;
use crate::hint::Remedy;

/// The format of a cache file; a file of another version is ignored (signed in again).
const VERSION: u32 = 1;
/// The environment variable that moves the cache.
pub const CACHE_DIR_VARIABLE: &str = "PROVISION_CACHE_DIR";

/// One saved sign-in: where it is valid and the tokens. `Debug` leaves the tokens out.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedSignIn {
    pub version: u32,
    pub env: String,
    /// The client app's unique name in the environment file.
    pub client: String,
    pub client_id: String,
    pub tenant_id: String,
    /// The login host the tokens came from.
    pub login: String,
    /// The scopes asked for, space-separated.
    pub scopes: String,
    /// The API's URL at the gateway, so `call` needs no lookup while the token is good.
    pub api_url: String,
    /// The signed-in user, from the token (`preferred_username`, `upn` or `name`).
    pub user: Option<String>,
    /// Unix seconds.
    pub expires_on: i64,
    access_token: String,
    refresh_token: Option<String>,
}

impl fmt::Debug for SavedSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedSignIn")
            .field("env", &self.env)
            .field("client", &self.client)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// Where a sign-in is valid: everything but the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInTarget {
    pub env: String,
    pub client: String,
    pub client_id: String,
    pub tenant_id: String,
    pub login: String,
    pub scopes: Vec<String>,
    pub api_url: String,
}

impl SavedSignIn {
    pub fn new(
        target: &SignInTarget,
        user: Option<String>,
        access_token: &AccessToken,
        refresh_token: Option<&Secret>,
        expires_on: Timestamp,
    ) -> SavedSignIn {
        SavedSignIn {
            version: VERSION,
            env: target.env.clone(),
            client: target.client.clone(),
            client_id: target.client_id.clone(),
            tenant_id: target.tenant_id.clone(),
            login: target.login.clone(),
            scopes: target.scopes.join(" "),
            api_url: target.api_url.clone(),
            user,
            expires_on: expires_on.as_second(),
            access_token: access_token.expose().to_owned(),
            refresh_token: refresh_token.map(|t| t.expose().to_owned()),
        }
    }

    pub fn access_token(&self) -> AccessToken {
        AccessToken::new(self.access_token.clone())
    }

    pub fn refresh_token(&self) -> Option<Secret> {
        self.refresh_token.clone().map(Secret::new)
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_owned).collect()
    }

    pub fn expires_on(&self) -> Timestamp {
        Timestamp::from_second(self.expires_on).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Whether the saved sign-in is for `target` (same client, tenant, login host and scopes);
    /// a sign-in for anything else is not used.
    pub fn is_for(&self, target: &SignInTarget) -> bool {
        self.client_id.eq_ignore_ascii_case(&target.client_id)
            && self.tenant_id.eq_ignore_ascii_case(&target.tenant_id)
            && self.login == target.login
            && self.scopes() == target.scopes
    }

    /// Good for at least `margin_s` more seconds at `now` (MSAL refreshes five minutes early).
    pub fn is_fresh(&self, now: Timestamp, margin_s: i64) -> bool {
        self.expires_on.saturating_sub(margin_s) > now.as_second()
    }
}

/// The cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("token cache {path}: {reason}")]
pub struct CacheError {
    pub path: String,
    pub reason: String,
}

impl Remedy for CacheError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(
            format!(
                "check that the directory is yours and writable, or point {CACHE_DIR_VARIABLE} at \
                 one that is"
            )
            .into(),
        )
    }
}

/// The cache directory's `tokens/` folder.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    pub fn at(dir: impl Into<PathBuf>) -> TokenCache {
        TokenCache { dir: dir.into() }
    }

    /// The user's cache directory, from the process environment.
    pub fn for_user() -> Result<TokenCache, CacheError> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = var(CACHE_DIR_VARIABLE)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("provision")))
            .or_else(|| {
                if cfg!(windows) {
                    var("LOCALAPPDATA").map(|d| d.join("provision"))
                } else {
                    var("HOME").map(|d| d.join(".cache").join("provision"))
                }
            })
            .ok_or_else(|| CacheError {
                path: "<cache directory>".to_owned(),
                reason: format!("neither {CACHE_DIR_VARIABLE}, XDG_CACHE_HOME nor HOME is set"),
            })?;
        Ok(TokenCache::at(base.join("tokens")))
    }

    /// `<env>.<client>.json`; environment and client names are `[a-z0-9-]` by the environment
    /// file's rules, and anything else is replaced so a name can not leave the directory.
    pub fn path(&self, env: &str, client: &str) -> PathBuf {
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        self.dir
            .join(format!("{}.{}.json", safe(env), safe(client)))
    }

    /// The saved sign-in, if there is one of this version.
    pub fn load(&self, env: &str, client: &str) -> Result<Option<SavedSignIn>, CacheError> {
        let path = self.path(env, client);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error(&path, &e)),
        };
        // A damaged or older file is a reason to sign in again, not to stop.
        Ok(serde_json::from_slice::<SavedSignIn>(&text)
            .ok()
            .filter(|s| s.version == VERSION))
    }

    pub fn save(&self, saved: &SavedSignIn) -> Result<PathBuf, CacheError> {
        let path = self.path(&saved.env, &saved.client);
        create_private_dir(&self.dir).map_err(|e| error(&self.dir, &e))?;
        let text = serde_json::to_vec_pretty(saved).map_err(|e| CacheError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        write_private(&temporary, &text).map_err(|e| error(&temporary, &e))?;
        std::fs::rename(&temporary, &path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            error(&path, &e)
        })?;
        Ok(path)
    }

    /// Removes the saved sign-in; `false` when there was none.
    pub fn remove(&self, env: &str, client: &str) -> Result<bool, CacheError> {
        let path = self.path(env, client);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(error(&path, &e)),
        }
    }
}

fn error(path: &Path, e: &std::io::Error) -> CacheError {
    CacheError {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode through `create`; tokens need it private.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SignInTarget {
        SignInTarget {
            env: "dev".into(),
            client: "notebooks".into(),
            client_id: "c1".into(),
            tenant_id: "t1".into(),
            login: "https://login.microsoftonline.com".into(),
            scopes: vec!["api://a/llm.invoke".into(), "offline_access".into()],
            api_url: "https://x.azure-api.net/llm".into(),
        }
    }

    #[test]
    fn a_saved_sign_in_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::at(dir.path().join("tokens"));
        let at = Timestamp::from_second(2_000_000_000).unwrap();
        let saved = SavedSignIn::new(
            &target(),
            Some("ada@example.com".into()),
            &AccessToken::new("tok"),
            Some(&Secret::new("rt")),
            at,
        );
        let path = cache.save(&saved).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("tokens")), 0o700);
        }
        let back = cache.load("dev", "notebooks").unwrap().unwrap();
        assert_eq!(back.access_token().expose(), "tok");
        assert_eq!(back.refresh_token().unwrap().expose(), "rt");
        assert!(back.is_for(&target()));
        assert!(back.is_fresh(Timestamp::from_second(2_000_000_000 - 301).unwrap(), 300));
        assert!(!back.is_fresh(Timestamp::from_second(2_000_000_000 - 300).unwrap(), 300));
        assert!(!format!("{back:?}").contains("tok"));
        assert!(cache.remove("dev", "notebooks").unwrap());
        assert!(!cache.remove("dev", "notebooks").unwrap());
        assert!(cache.load("dev", "notebooks").unwrap().is_none());
    }

    #[test]
    fn a_name_can_not_leave_the_directory() {
        let cache = TokenCache::at("/c/tokens");
        assert_eq!(
            cache.path("../x", "a/b"),
            PathBuf::from("/c/tokens/___x.a_b.json")
        );
    }

    #[test]
    fn a_damaged_file_is_no_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::at(dir.path());
        std::fs::write(cache.path("dev", "c"), b"{not json").unwrap();
        assert!(cache.load("dev", "c").unwrap().is_none());
    }
}
