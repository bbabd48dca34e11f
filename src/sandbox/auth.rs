//! Tokens the sandbox mints and the bearer tokens it accepts, shared by login, Graph and ARM.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{Shared, new_guid};
use crate::policy::token::Jwt;

/// What Graph tokens carry as `aud` (v1 resource URI forms and the app id).
pub(crate) const GRAPH_AUDIENCES: [&str; 3] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// What tokens for Azure OpenAI / Foundry inference carry as `aud`: the v1 resource URI, with
/// or without the trailing slash (both are seen on Azure: dataplane.md §2.4).
pub(crate) const COGNITIVE_AUDIENCES: [&str; 2] = [
    "https://cognitiveservices.azure.com",
    "https://cognitiveservices.azure.com/",
];

/// The v1 issuer of a tenant (`{base}/{tid}/`), as the cloud table has it for the sandbox.
pub(crate) fn issuer_v1(shared: &Shared, tenant: &str) -> String {
    format!("{}/{tenant}/", shared.base_url)
}

/// The v2 issuer of a tenant (`{base}/{tid}/v2.0`).
pub(crate) fn issuer_v2(shared: &Shared, tenant: &str) -> String {
    format!("{}/{tenant}/v2.0", shared.base_url)
}

/// Signs claims with the tenant's newest key; adds `iat`, `nbf`, `exp` (60-90 minutes, as Entra
/// does), `uti` and `tid` unless given.
pub(crate) fn mint(
    shared: &Shared,
    tenant: &str,
    claims: Map<String, Value>,
) -> Option<(String, i64)> {
    let signer = shared.signer(tenant)?;
    let now = shared.now_s();
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes).ok()?;
    let lifetime = 3600 + i64::from(u16::from_le_bytes(bytes) % 1800);
    let mut full = Map::new();
    full.insert("iat".into(), json!(now - 300));
    full.insert("nbf".into(), json!(now - 300));
    full.insert("exp".into(), json!(now + lifetime));
    full.insert("tid".into(), json!(tenant));
    full.insert("uti".into(), json!(new_guid().replace('-', "")));
    full.extend(claims);
    // A claim given as `null` is one the caller wants absent, defaults included: a test token
    // without `exp` is a token Entra never issues, and the gateway must refuse it.
    full.retain(|_, v| !v.is_null());
    // v1 tokens carry `x5t` next to `kid`; v2 tokens only `kid` (entra.md §4).
    let v1 = full.get("ver").and_then(Value::as_str) != Some("2.0");
    let header = if v1 {
        json!({ "typ": "JWT", "alg": "RS256", "kid": signer.kid, "x5t": signer.kid })
    } else {
        json!({ "typ": "JWT", "alg": "RS256", "kid": signer.kid })
    };
    Some((
        signer.sign_with_header(&header, &Value::Object(full)),
        lifetime,
    ))
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    Missing,
    Invalid(String),
    Expired,
    /// `nbf` is more than the allowed skew ahead of the sandbox's clock.
    NotYetValid,
    WrongAudience(String),
}

/// The clock skew allowed on `exp` and `nbf`: the default of Microsoft.IdentityModel's
/// `TokenValidationParameters.DefaultClockSkew` (300 s), which Microsoft's own resource APIs
/// validate with.
pub(crate) const CLOCK_SKEW_S: i64 = 300;

impl AuthError {
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "Access token is empty.".to_owned(),
            AuthError::Invalid(why) => format!("Access token validation failure: {why}."),
            AuthError::Expired => "Lifetime validation failed, the token is expired.".to_owned(),
            AuthError::NotYetValid => {
                "Lifetime validation failed, the token is not yet valid.".to_owned()
            }
            AuthError::WrongAudience(aud) => format!("Invalid audience `{aud}`."),
        }
    }
}

/// The caller behind a verified token: the tenant whose objects it may see.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant: String,
    /// The principal (`oid`): what a data plane looks up role assignments for.
    pub object_id: Option<String>,
    /// The token's `groups` claim (object ids): a role assigned to one of them is the caller's
    /// too. The sandbox's directory has no groups, so the claim is where membership comes from.
    pub groups: Vec<String>,
    /// Who the caller is in ARM's refusals ("The client '…' with object id '…'"): the user's
    /// name, else the application's id.
    pub client: Option<String>,
}

/// Verifies `Authorization: Bearer …` against the sandbox's own keys and the given audiences.
pub(crate) fn verify_bearer(
    shared: &Shared,
    headers: &HeaderMap,
    audiences: &[&str],
) -> Result<Caller, AuthError> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let token = match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(AuthError::Missing),
    };
    let jwt = Jwt::parse(token).map_err(AuthError::Invalid)?;
    if jwt.alg != "RS256" {
        return Err(AuthError::Invalid(format!(
            "alg {} is not accepted",
            jwt.alg
        )));
    }
    let tenant = jwt
        .claim_str("tid")
        .ok_or_else(|| AuthError::Invalid("no tid".to_owned()))?
        .to_owned();
    let kid = jwt
        .kid
        .clone()
        .ok_or_else(|| AuthError::Invalid("no kid".to_owned()))?;
    let signer = shared
        .signers(&tenant)
        .into_iter()
        .find(|s| s.kid == kid)
        .ok_or_else(|| AuthError::Invalid("signing key not found".to_owned()))?;
    if !signer.verify_rs256(jwt.signing_input(), jwt.signature()) {
        return Err(AuthError::Invalid(
            "signature verification failed".to_owned(),
        ));
    }
    let iss = jwt.claim_str("iss").unwrap_or_default();
    if iss != issuer_v1(shared, &tenant) && iss != issuer_v2(shared, &tenant) {
        return Err(AuthError::Invalid(format!(
            "issuer {iss} is not the sandbox's"
        )));
    }
    let now = shared.now_s();
    // A lifetime claim that is not a sane instant makes the token malformed, not eternal.
    let exp = jwt.time_claim("exp").map_err(AuthError::Invalid)?;
    if exp.is_none_or(|exp| now >= exp + CLOCK_SKEW_S) {
        return Err(AuthError::Expired);
    }
    // Optional in a JWT, always present in Entra's; honoured when present, as IdentityModel does.
    let nbf = jwt.time_claim("nbf").map_err(AuthError::Invalid)?;
    if nbf.is_some_and(|nbf| now + CLOCK_SKEW_S < nbf) {
        return Err(AuthError::NotYetValid);
    }
    let aud = jwt.claim_str("aud").unwrap_or_default().to_owned();
    if !audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) {
        return Err(AuthError::WrongAudience(aud));
    }
    let object_id = jwt.claim_str("oid").map(str::to_owned);
    let groups = match jwt.claims.get("groups") {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let client = ["upn", "unique_name", "appid", "azp"]
        .iter()
        .find_map(|name| jwt.claim_str(name))
        .map(str::to_owned);
    Ok(Caller {
        tenant,
        object_id,
        groups,
        client,
    })
}

/// The claims of an app-only (client credentials) token for a v1 resource such as ARM or Graph.
pub(crate) fn app_only_claims(
    shared: &Shared,
    tenant: &str,
    audience: &str,
    app_id: &str,
    object_id: &str,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(audience));
    claims.insert("iss".into(), json!(issuer_v1(shared, tenant)));
    claims.insert("appid".into(), json!(app_id));
    claims.insert("appidacr".into(), json!("1"));
    claims.insert("idp".into(), json!(issuer_v1(shared, tenant)));
    claims.insert("idtyp".into(), json!("app"));
    claims.insert("oid".into(), json!(object_id));
    claims.insert("sub".into(), json!(object_id));
    claims.insert("ver".into(), json!("1.0"));
    claims
}

/// A token for a resource's system-assigned managed identity, as Azure's instance metadata
/// endpoint hands one to the resource (what APIM's `authentication-managed-identity` sends on):
/// an app-only v1 token of the default tenant whose `oid`/`sub` is the identity's principal id
/// and whose `aud` is the resource asked for, signed with the tenant's key like every other
/// sandbox token, so the backend verifies it as it would any caller's. `appid` is the
/// identity's application id when its service principal is in the directory, else the
/// principal id (the sandbox does not always register one). Returns the token and its lifetime
/// in seconds, for the gateway to keep it until then.
pub(crate) fn managed_identity_token(
    shared: &Shared,
    principal_id: &str,
    resource: &str,
) -> Option<(String, i64)> {
    let tenant = super::DEFAULT_TENANT;
    let app_id = shared
        .state()
        .objects
        .iter()
        .find(|o| o.id().eq_ignore_ascii_case(principal_id))
        .and_then(|o| o.str("appId").map(str::to_owned))
        .unwrap_or_else(|| principal_id.to_owned());
    let claims = app_only_claims(shared, tenant, resource, &app_id, principal_id);
    mint(shared, tenant, claims)
}
