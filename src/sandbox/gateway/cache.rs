//! What the gateway keeps between requests so that a request pays only for its own work: the
//! composed policy of each distinct set of stored policy texts, the tenants' verification keys,
//! managed-identity tokens, and the backend client with its keep-alive connections.
//!
//! None of it can go stale unnoticed. The stored policies are still read from the state on every
//! request, and the cache is keyed by their exact text, so a policy written through ARM takes
//! effect on the next request as before. The key sets are keyed by every tenant's key ids, so a
//! rotated key is picked up on the next request. Managed-identity tokens are kept until shortly
//! before they expire on the sandbox clock, as APIM does: "API Management caches the token until
//! it expires" (authentication-managed-identity policy, Microsoft Learn).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::policy::model::PolicyDocument;
use crate::policy::token::KeySet;

/// Distinct composed policies kept; past this the cache starts afresh (a test suite writing
/// hundreds of policies to one sandbox should not grow it without bound).
const MAX_POLICIES: usize = 256;

/// Managed-identity tokens kept; `resource` may be an expression, so callers could otherwise make
/// the gateway keep one token per value they send.
const MAX_TOKENS: usize = 1024;

/// A managed-identity token is minted anew this long before it expires, so that a backend never
/// receives one that lapses in flight.
const TOKEN_RENEWAL_SECONDS: i64 = 300;

/// The stored texts a composed policy was built from: global, API and operation.
pub(super) type PolicyTexts = [Option<String>; 3];

/// The keys of every tenant, with the `tenant:kid,…` list they were built from.
type TenantKeys = (Vec<String>, Arc<Vec<(String, KeySet)>>);

#[derive(Default)]
pub(crate) struct Cache {
    policies: Mutex<HashMap<PolicyTexts, Arc<Result<PolicyDocument, String>>>>,
    keys: Mutex<Option<TenantKeys>>,
    /// `(principal, resource)` → (token, expiry in sandbox seconds).
    tokens: Mutex<HashMap<(String, String), (String, i64)>>,
    /// The backend client (see `forward::client`).
    pub(super) client: OnceLock<reqwest::Client>,
}

impl Cache {
    /// The composed policy of `texts`, built by `build` the first time these texts are seen.
    pub(super) fn policy(
        &self,
        texts: PolicyTexts,
        build: impl FnOnce(&PolicyTexts) -> Result<PolicyDocument, String>,
    ) -> Arc<Result<PolicyDocument, String>> {
        let mut policies = self.policies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = policies.get(&texts) {
            return found.clone();
        }
        let built = Arc::new(build(&texts));
        if policies.len() >= MAX_POLICIES {
            policies.clear();
        }
        policies.insert(texts, built.clone());
        built
    }

    /// The tenants' key sets for the key ids `ids` (`tenant:kid` in state order), built by
    /// `build` when they changed.
    pub(super) fn keys(
        &self,
        ids: Vec<String>,
        build: impl FnOnce() -> Vec<(String, KeySet)>,
    ) -> Arc<Vec<(String, KeySet)>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, sets)) = keys.as_ref()
            && *known == ids
        {
            return sets.clone();
        }
        let sets = Arc::new(build());
        *keys = Some((ids, sets.clone()));
        sets
    }

    /// A managed-identity token for `principal` and `resource` still good at `now`, or a new
    /// one from `mint` (which returns the token and its lifetime in seconds).
    pub(super) fn token(
        &self,
        principal: &str,
        resource: &str,
        now: i64,
        mint: impl FnOnce() -> Option<(String, i64)>,
    ) -> Option<String> {
        let key = (principal.to_owned(), resource.to_owned());
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, expires)) = tokens.get(&key)
            && now < expires - TOKEN_RENEWAL_SECONDS
        {
            return Some(token.clone());
        }
        let (token, lifetime) = mint()?;
        if tokens.len() >= MAX_TOKENS {
            tokens.clear();
        }
        tokens.insert(key, (token.clone(), now + lifetime));
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_until_shortly_before_it_expires() {
        let cache = Cache::default();
        let mut minted = 0;
        let mut get = |now: i64| {
            cache.token("p", "r", now, || {
                minted += 1;
                Some((format!("t{minted}"), 3600))
            })
        };
        assert_eq!(get(1000).as_deref(), Some("t1"));
        assert_eq!(get(1000 + 3600 - 301).as_deref(), Some("t1"));
        assert_eq!(get(1000 + 3600 - 300).as_deref(), Some("t2"));
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let cache = Cache::default();
        for i in 0..=MAX_TOKENS {
            cache.token("p", &format!("r{i}"), 0, || Some((format!("t{i}"), 3600)));
        }
        assert_eq!(cache.tokens.lock().unwrap().len(), 1);
        let cached = cache.token("p", &format!("r{MAX_TOKENS}"), 1, || None);
        assert_eq!(cached, Some(format!("t{MAX_TOKENS}")));
    }

    #[test]
    fn a_policy_is_rebuilt_when_a_text_changes() {
        let cache = Cache::default();
        let texts = |op: &str| [None, Some("api".to_owned()), Some(op.to_owned())];
        let mut builds = 0;
        let mut get = |op: &str| {
            cache.policy(texts(op), |_| {
                builds += 1;
                Err(format!("build {builds}"))
            })
        };
        let error = |r: Arc<Result<PolicyDocument, String>>| r.as_ref().clone().err();
        assert_eq!(error(get("a")).as_deref(), Some("build 1"));
        assert_eq!(error(get("a")).as_deref(), Some("build 1"));
        assert_eq!(error(get("b")).as_deref(), Some("build 2"));
    }
}
