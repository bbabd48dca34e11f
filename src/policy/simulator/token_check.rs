//! `validate-azure-ad-token` and `validate-jwt`.
//!
//! Order of checks, and so which reason a bad token gets: token present → scheme → well-formed →
//! algorithm → issuer (from the unverified claims: a token naming another tenant is rejected for
//! that, whatever its signature) → key by `kid` in that tenant's key set → RS256 signature →
//! lifetime → audience → client application → required claims.
//!
//! Clock skew: `validate-azure-ad-token` has no setting and Microsoft does not document one; we
//! use 5 minutes, the default of Microsoft.IdentityModel's `TokenValidationParameters.ClockSkew`
//! that .NET token handlers apply. `validate-jwt` uses its `clock-skew` attribute (default 0).
//! A token is expired when `now >= exp + skew` and not yet valid when `now + skew < nbf`.

use serde_json::Value as Json;

use super::{Context, Denial, NotSimulated, Simulator, Variable};
use crate::config::naming;
use crate::policy::document::Position;
use crate::policy::model::{
    AzureAdTokenCheck, ClaimRule, JwtCheck, TokenFailure, TokenSource, Value,
};
use crate::policy::token::{Jwt, KeySet, VerifyError};

pub const AZURE_AD_CLOCK_SKEW_SECONDS: i64 = 300;

pub(super) enum Failure {
    Denied(Denial),
    NotSimulated(NotSimulated),
}

impl From<NotSimulated> for Failure {
    fn from(ns: NotSimulated) -> Self {
        Failure::NotSimulated(ns)
    }
}

/// A rejection before the configured status and message are applied.
struct Rejection {
    reason: &'static str,
    default_message: String,
    detail: String,
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    let default_message = match reason {
        "TokenNotPresent" => "JWT not present.",
        "TokenExpired" => "Lifetime validation failed. The token is expired.",
        "TokenNotYetValid" => "Lifetime validation failed. The token is not yet valid.",
        "TokenSignatureInvalid" | "TokenSignatureKeyNotFound" => "JWT signature validation failed.",
        "TokenAudienceNotAllowed" => "Audience validation failed.",
        "TokenIssuerNotAllowed" => "Issuer validation failed.",
        "TokenClientApplicationNotAllowed" => "Client application validation failed.",
        _ => "Invalid JWT.",
    };
    Rejection {
        reason,
        default_message: default_message.to_owned(),
        detail: detail.into(),
    }
}

enum TokenError {
    Rejected(Rejection),
    NotSimulated(NotSimulated),
}

impl From<Rejection> for TokenError {
    fn from(r: Rejection) -> Self {
        TokenError::Rejected(r)
    }
}

impl From<NotSimulated> for TokenError {
    fn from(ns: NotSimulated) -> Self {
        TokenError::NotSimulated(ns)
    }
}

fn aud_values(jwt: &Jwt) -> Vec<String> {
    match jwt.claims.get("aud") {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl Simulator {
    fn failure(
        &self,
        failure: &TokenFailure,
        ctx: &Context,
        policy: &str,
        rejection: Rejection,
    ) -> Failure {
        let status = match &failure.status {
            Some(v) => match self.resolve(v, ctx, policy) {
                Ok(s) => s.trim().parse().unwrap_or(401),
                Err(ns) => return Failure::NotSimulated(ns),
            },
            None => 401,
        };
        let message = match &failure.message {
            Some(v) => match self.resolve(v, ctx, policy) {
                Ok(m) => m,
                Err(ns) => return Failure::NotSimulated(ns),
            },
            None => rejection.default_message,
        };
        Failure::Denied(Denial {
            status,
            reason: rejection.reason,
            message,
            detail: rejection.detail,
            headers: Vec::new(),
        })
    }

    /// The raw token from where the policy says to read it.
    fn extract(
        &self,
        source: &TokenSource,
        require_scheme: Option<&str>,
        ctx: &Context,
        policy: &str,
    ) -> Result<String, TokenError> {
        match source {
            TokenSource::Header(name) => {
                let name = self.resolve(name, ctx, policy)?;
                let value = ctx
                    .request
                    .header(&name)
                    .ok_or_else(|| reject("TokenNotPresent", format!("no `{name}` header")))?;
                if !name.eq_ignore_ascii_case("Authorization") {
                    // Custom headers carry the bare token (no scheme), as the docs require.
                    return Ok(value.trim().to_owned());
                }
                let scheme = require_scheme.unwrap_or("Bearer");
                match value.trim().split_once(' ') {
                    Some((s, token))
                        if s.eq_ignore_ascii_case(scheme) && !token.trim().is_empty() =>
                    {
                        Ok(token.trim().to_owned())
                    }
                    Some((s, _)) => Err(reject(
                        "TokenSchemeInvalid",
                        format!("scheme `{s}` is not `{scheme}`"),
                    )
                    .into()),
                    None => Err(reject(
                        "TokenSchemeInvalid",
                        format!("the Authorization header has no `{scheme}` scheme"),
                    )
                    .into()),
                }
            }
            TokenSource::Query(name) => {
                let name = self.resolve(name, ctx, policy)?;
                ctx.request
                    .query_param(&name)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        reject("TokenNotPresent", format!("no `{name}` query parameter")).into()
                    })
            }
            TokenSource::Expression(v) => Ok(self.resolve(v, ctx, policy)?),
        }
    }

    fn values(
        &self,
        list: &[Value],
        ctx: &Context,
        policy: &str,
    ) -> Result<Vec<String>, NotSimulated> {
        list.iter().map(|v| self.resolve(v, ctx, policy)).collect()
    }

    pub(super) fn check_azure_ad_token(
        &self,
        check: &AzureAdTokenCheck,
        ctx: &mut Context,
    ) -> Result<(), Failure> {
        const POLICY: &str = "validate-azure-ad-token";
        match self.azure_ad_token(check, ctx) {
            Ok(jwt) => {
                if let Some(var) = &check.output_variable {
                    ctx.variables.insert(var.clone(), Variable::Jwt(jwt.claims));
                }
                Ok(())
            }
            Err(TokenError::Rejected(r)) => Err(self.failure(&check.failure, ctx, POLICY, r)),
            Err(TokenError::NotSimulated(ns)) => Err(Failure::NotSimulated(ns)),
        }
    }

    fn azure_ad_token(&self, check: &AzureAdTokenCheck, ctx: &Context) -> Result<Jwt, TokenError> {
        const POLICY: &str = "validate-azure-ad-token";
        let tenant = self.resolve(&check.tenant_id, ctx, POLICY)?;
        let token = self.extract(&check.source, None, ctx, POLICY)?;
        let jwt = Jwt::parse(&token).map_err(|e| reject("JwtInvalid", e))?;
        check_algorithm(&jwt)?;

        // Issuer: the configured tenant's v1 or v2 form, or any tenant for common/organizations.
        let lower = tenant.trim().to_ascii_lowercase();
        let any_tenant = ["common", "organizations"]
            .iter()
            .any(|w| lower == *w || lower.ends_with(&format!("/{w}")));
        let (cloud, address) = match &check.authentication_endpoint {
            Some(endpoint) => crate::cloud::Cloud::from_authority(endpoint)
                .unwrap_or((self.cloud, self.sandbox_address.clone())),
            None => (self.cloud, self.sandbox_address.clone()),
        };
        let tid = jwt.claim_str("tid").unwrap_or_default().to_owned();
        let iss = jwt.claim_str("iss").unwrap_or_default().to_owned();
        let token_tenant = if any_tenant {
            if naming::guid(&tid).is_err() {
                return Err(reject(
                    "TokenIssuerNotAllowed",
                    "the token has no tenant id (`tid`)",
                )
                .into());
            }
            tid.clone()
        } else if naming::guid(&lower).is_ok() {
            lower.clone()
        } else {
            return Err(NotSimulated {
                policy: POLICY.to_owned(),
                line: check.tenant_id.position.line,
                column: check.tenant_id.position.column,
                what: format!(
                    "tenant `{tenant}` is a domain name, which only Entra ID can resolve"
                ),
            }
            .into());
        };
        let issuers = cloud.issuers(&address, &token_tenant);
        if !(iss.eq_ignore_ascii_case(&issuers.v1) || iss.eq_ignore_ascii_case(&issuers.v2)) {
            return Err(reject(
                "TokenIssuerNotAllowed",
                format!("issuer `{iss}` is not tenant {token_tenant}'s"),
            )
            .into());
        }
        if !tid.eq_ignore_ascii_case(&token_tenant) {
            return Err(reject(
                "TokenIssuerNotAllowed",
                format!("`tid` `{tid}` does not match the issuer's tenant"),
            )
            .into());
        }

        let keys = self.keys_for(&token_tenant).ok_or_else(|| NotSimulated {
            policy: POLICY.to_owned(),
            line: check.tenant_id.position.line,
            column: check.tenant_id.position.column,
            what: format!("no signing keys were given for tenant {token_tenant}"),
        })?;
        verify_signature(&jwt, keys)?;
        check_lifetime(&jwt, ctx.now, AZURE_AD_CLOCK_SKEW_SECONDS, true)?;

        let aud = aud_values(&jwt);
        let audiences = self.values(&check.audiences, ctx, POLICY)?;
        if !audiences.is_empty()
            && !aud
                .iter()
                .any(|a| audiences.iter().any(|x| x.eq_ignore_ascii_case(a)))
        {
            return Err(reject(
                "TokenAudienceNotAllowed",
                format!("audience {aud:?} is not allowed"),
            )
            .into());
        }
        let backends = self.values(&check.backend_application_ids, ctx, POLICY)?;
        if !backends.is_empty()
            && !aud.iter().any(|a| {
                backends.iter().any(|b| {
                    a.eq_ignore_ascii_case(b) || a.eq_ignore_ascii_case(&format!("api://{b}"))
                })
            })
        {
            return Err(reject(
                "TokenAudienceNotAllowed",
                format!("audience {aud:?} is not a backend application"),
            )
            .into());
        }

        let clients = self.values(&check.client_application_ids, ctx, POLICY)?;
        if !clients.is_empty() {
            // v1 tokens name the client in `appid`, v2 tokens in `azp` (entra.md §4).
            let client = match jwt.claim_str("ver") {
                Some("1.0") => jwt.claim_str("appid"),
                Some("2.0") => jwt.claim_str("azp"),
                _ => jwt.claim_str("azp").or_else(|| jwt.claim_str("appid")),
            }
            .unwrap_or_default();
            if !clients.iter().any(|c| c.eq_ignore_ascii_case(client)) {
                return Err(reject(
                    "TokenClientApplicationNotAllowed",
                    format!("client application `{client}` is not allowed"),
                )
                .into());
            }
        }
        self.required_claims(&check.required_claims, &jwt, ctx, POLICY)?;
        Ok(jwt)
    }

    fn required_claims(
        &self,
        rules: &[ClaimRule],
        jwt: &Jwt,
        ctx: &Context,
        policy: &str,
    ) -> Result<(), TokenError> {
        let missing: Vec<&str> = rules
            .iter()
            .filter(|r| !jwt.claims.contains_key(&r.name))
            .map(|r| r.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Rejection {
                reason: "TokenClaimNotFound",
                default_message: format!(
                    "JWT token is missing the following claims: {}. Access denied.",
                    missing.join(", ")
                ),
                detail: format!("missing claim(s): {}", missing.join(", ")),
            }
            .into());
        }
        for rule in rules {
            let required = self.values(&rule.values, ctx, policy)?;
            if required.is_empty() {
                continue;
            }
            let present: Vec<String> = match jwt.claims.get(&rule.name) {
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
                Some(Json::String(s)) => match &rule.separator {
                    Some(sep) if !sep.is_empty() => {
                        s.split(sep.as_str()).map(|p| p.trim().to_owned()).collect()
                    }
                    _ => vec![s.clone()],
                },
                Some(other) => vec![other.to_string()],
                None => Vec::new(),
            };
            let has = |v: &String| present.iter().any(|p| p == v);
            let ok = if rule.match_all {
                required.iter().all(has)
            } else {
                required.iter().any(has)
            };
            if !ok {
                let shown = present.join(",");
                return Err(Rejection {
                    reason: "TokenClaimValueNotAllowed",
                    default_message: format!(
                        "Claim {} value of {shown} is not allowed. Access denied.",
                        rule.name
                    ),
                    detail: format!(
                        "claim `{}` must contain {} of {:?}",
                        rule.name,
                        if rule.match_all { "all" } else { "one" },
                        required
                    ),
                }
                .into());
            }
        }
        Ok(())
    }

    pub(super) fn check_jwt(
        &self,
        check: &JwtCheck,
        ctx: &mut Context,
        position: Position,
    ) -> Result<(), Failure> {
        const POLICY: &str = "validate-jwt";
        match self.jwt(check, ctx, position) {
            Ok(jwt) => {
                if let Some(var) = &check.output_variable {
                    ctx.variables.insert(var.clone(), Variable::Jwt(jwt.claims));
                }
                Ok(())
            }
            Err(TokenError::Rejected(r)) => Err(self.failure(&check.failure, ctx, POLICY, r)),
            Err(TokenError::NotSimulated(ns)) => Err(Failure::NotSimulated(ns)),
        }
    }

    fn jwt(&self, check: &JwtCheck, ctx: &Context, position: Position) -> Result<Jwt, TokenError> {
        const POLICY: &str = "validate-jwt";
        let not_simulated = |what: String| NotSimulated {
            policy: POLICY.to_owned(),
            line: position.line,
            column: position.column,
            what,
        };
        let token = self.extract(&check.source, check.require_scheme.as_deref(), ctx, POLICY)?;
        let jwt = Jwt::parse(&token).map_err(|e| reject("JwtInvalid", e))?;
        let unsigned = jwt.alg.eq_ignore_ascii_case("none");
        // `require-signed-tokens="false"` is the only way an unsigned token gets through.
        if !unsigned || check.require_signed_tokens {
            check_algorithm(&jwt)?;
            // Keys: inline RSA keys, or the key set of the tenant an Entra openid-config URL names.
            let keys = if !check.signing_keys.is_empty() {
                let jwks = crate::policy::token::Jwks {
                    keys: check
                        .signing_keys
                        .iter()
                        .enumerate()
                        .map(|(i, (id, n, e))| crate::policy::token::Jwk {
                            kty: "RSA".to_owned(),
                            kid: Some(id.clone().unwrap_or_else(|| format!("key-{i}"))),
                            key_use: None,
                            n: Some(n.clone()),
                            e: Some(e.clone()),
                        })
                        .collect(),
                };
                KeySet::from_jwks(jwks)
                    .map_err(|e| not_simulated(format!("issuer-signing-keys: {e}")))?
            } else {
                let tenant = check
                    .openid_config_urls
                    .iter()
                    .find_map(|url| tenant_of_openid_url(url, jwt.claim_str("tid")))
                    .ok_or_else(|| {
                        not_simulated(
                            "keys come from an openid-config URL that is not an Entra tenant's"
                                .to_owned(),
                        )
                    })?;
                self.keys_for(&tenant).cloned().ok_or_else(|| {
                    not_simulated(format!("no signing keys were given for tenant {tenant}"))
                })?
            };
            verify_signature(&jwt, &keys)?;
        }
        check_lifetime(
            &jwt,
            ctx.now,
            check.clock_skew_seconds,
            check.require_expiration_time,
        )?;
        let aud = aud_values(&jwt);
        let audiences = self.values(&check.audiences, ctx, POLICY)?;
        if !audiences.is_empty() && !aud.iter().any(|a| audiences.iter().any(|x| x == a)) {
            return Err(reject(
                "TokenAudienceNotAllowed",
                format!("audience {aud:?} is not allowed"),
            )
            .into());
        }
        let issuers = self.values(&check.issuers, ctx, POLICY)?;
        let iss = jwt.claim_str("iss").unwrap_or_default();
        if !issuers.is_empty() && !issuers.iter().any(|i| i == iss) {
            return Err(reject(
                "TokenIssuerNotAllowed",
                format!("issuer `{iss}` is not allowed"),
            )
            .into());
        }
        self.required_claims(&check.required_claims, &jwt, ctx, POLICY)?;
        Ok(jwt)
    }
}

/// The tenant an Entra OpenID configuration URL names (`…/{tenant}/v2.0/.well-known/…`);
/// `common`/`organizations` mean the token's own tenant.
fn tenant_of_openid_url(url: &str, token_tid: Option<&str>) -> Option<String> {
    let path = url.split("://").nth(1)?;
    let segment = path.split('/').nth(1)?.to_ascii_lowercase();
    if segment == "common" || segment == "organizations" {
        return token_tid.map(str::to_ascii_lowercase);
    }
    naming::guid(&segment).is_ok().then_some(segment)
}

/// Entra signs with RS256; `none` and HMAC (a classic confusion attack: HS256 keyed with the
/// public key) are rejected outright.
fn check_algorithm(jwt: &Jwt) -> Result<(), Rejection> {
    if jwt.alg.eq_ignore_ascii_case("none") {
        return Err(reject(
            "TokenSignatureInvalid",
            "the token is unsigned (`alg: none`)",
        ));
    }
    if jwt.alg.to_ascii_uppercase().starts_with("HS") {
        return Err(reject(
            "TokenSignatureInvalid",
            format!("`alg: {}` (HMAC) is not accepted for these tokens", jwt.alg),
        ));
    }
    if jwt.alg != "RS256" {
        return Err(reject(
            "TokenSignatureInvalid",
            format!(
                "`alg: {}` is not supported; Entra ID signs with RS256",
                jwt.alg
            ),
        ));
    }
    Ok(())
}

fn verify_signature(jwt: &Jwt, keys: &KeySet) -> Result<(), Rejection> {
    let kid = jwt
        .kid
        .as_deref()
        .ok_or_else(|| reject("TokenSignatureKeyNotFound", "the token has no `kid`"))?;
    match keys.verify_rs256(kid, jwt.signing_input(), jwt.signature()) {
        Ok(()) => Ok(()),
        Err(VerifyError::KeyNotFound) => Err(reject(
            "TokenSignatureKeyNotFound",
            format!("no signing key with kid `{kid}`"),
        )),
        Err(VerifyError::SignatureInvalid) => Err(reject(
            "TokenSignatureInvalid",
            "the signature does not match the token",
        )),
    }
}

/// Time claims are read strictly (see [`Jwt::time_claim`]): a malformed one makes the token
/// `JwtInvalid`, naming the claim, whatever the others say. Within their range, `exp + skew` and
/// `now + skew` cannot overflow but for an absurd `clock-skew`, which saturates (never expires).
fn check_lifetime(jwt: &Jwt, now: i64, skew: i64, require_exp: bool) -> Result<(), Rejection> {
    let claim = |name: &str| jwt.time_claim(name).map_err(|e| reject("JwtInvalid", e));
    let (exp, nbf) = (claim("exp")?, claim("nbf")?);
    claim("iat")?;
    match exp {
        Some(exp) if now >= exp.saturating_add(skew) => {
            return Err(reject(
                "TokenExpired",
                format!("expired {} s ago", now.saturating_sub(exp)),
            ));
        }
        Some(_) => {}
        None if require_exp => return Err(reject("JwtInvalid", "the token has no `exp`")),
        None => {}
    }
    if let Some(nbf) = nbf
        && now.saturating_add(skew) < nbf
    {
        return Err(reject(
            "TokenNotYetValid",
            format!("valid from {} s from now", nbf.saturating_sub(now)),
        ));
    }
    Ok(())
}
