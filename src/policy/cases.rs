//! User-written policy test cases (`provision policy test --cases FILE`), in YAML:
//!
//! ```yaml
//! cases:
//!   - name: scripts client reaches the model
//!     token: { client: llm-gateway-scripts-prod }   # unique name or app id; default: first client
//!     expect: { status: 200, decision: allow }
//!   - name: token minted for Graph is refused
//!     token: { audience: graph }                    # api (default), graph, or a literal value
//!     expect: { status: 401, reason: TokenAudienceNotAllowed }
//! ```
//!
//! Token fields: `client`, `version` (1|2), `tenant` (own|foreign), `audience`, `expires_in`,
//! `not_before_in` (seconds from now), `claims` (added or replaced; `~` removes), `signature`
//! (valid|tampered|unsigned|hmac|unknown-kid), `scheme` (default Bearer). Or `raw_token:` verbatim.
//! Request fields: `method`, `path`, `headers`, `query`, `llm_tokens`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::matrix::{
    Case, Expectation, GRAPH_APP_ID, Signature, TokenRecipe, TokenWorld, chat_request,
};
use super::simulator::Decision;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    token: Option<RawToken>,
    raw_token: Option<String>,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    query: BTreeMap<String, String>,
    llm_tokens: Option<u64>,
    expect: RawExpect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    client: Option<String>,
    version: Option<u8>,
    tenant: Option<String>,
    audience: Option<String>,
    expires_in: Option<i64>,
    not_before_in: Option<i64>,
    #[serde(default)]
    claims: BTreeMap<String, Option<ClaimValue>>,
    signature: Option<String>,
    scheme: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ClaimValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    status: Option<u16>,
    decision: Option<String>,
    reason: Option<String>,
}

/// Parses a case file against an environment's clients (unique name, app id).
pub fn parse(
    file: &str,
    text: &str,
    world: &TokenWorld<'_>,
    api_path: &str,
    clients: &[(String, String)],
) -> Result<Vec<Case>, String> {
    let raw: CaseFile = crate::config::parse_yaml_document(file, text)?;
    raw.cases
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            case(c, world, api_path, clients).map_err(|e| format!("{file}: cases[{i}]: {e}"))
        })
        .collect()
}

fn case(
    raw: RawCase,
    world: &TokenWorld<'_>,
    api_path: &str,
    clients: &[(String, String)],
) -> Result<Case, String> {
    let authorization = match (&raw.token, &raw.raw_token) {
        (Some(_), Some(_)) => return Err("give `token` or `raw_token`, not both".to_owned()),
        (None, Some(raw_token)) => Some(format!("Bearer {raw_token}")),
        (Some(t), None) => {
            let client = match &t.client {
                None => clients
                    .first()
                    .map(|(_, id)| id.clone())
                    .ok_or("the environment has no client")?,
                Some(c) => clients
                    .iter()
                    .find(|(name, id)| name == c || id.eq_ignore_ascii_case(c))
                    .map(|(_, id)| id.clone())
                    .unwrap_or_else(|| c.clone()),
            };
            let audience = match t.audience.as_deref() {
                None | Some("api") => world.api_app_id.to_owned(),
                Some("graph") => GRAPH_APP_ID.to_owned(),
                Some(other) => other.to_owned(),
            };
            let mut recipe = TokenRecipe::new(&client, &audience);
            recipe.version = match t.version {
                None | Some(2) => 2,
                Some(1) => 1,
                Some(v) => return Err(format!("token.version: {v} is not 1 or 2")),
            };
            recipe.foreign_tenant = match t.tenant.as_deref() {
                None | Some("own") => false,
                Some("foreign") => true,
                Some(other) => {
                    return Err(format!("token.tenant: `{other}` is not `own` or `foreign`"));
                }
            };
            recipe.expires_in = t.expires_in.unwrap_or(3600);
            recipe.not_before_in = t.not_before_in.unwrap_or(-300);
            recipe.signature = match t.signature.as_deref() {
                None | Some("valid") => Signature::Valid,
                Some("tampered") => Signature::Tampered,
                Some("unsigned") => Signature::Unsigned,
                Some("hmac") => Signature::HmacWithPublicKey,
                Some("unknown-kid") => Signature::UnknownKid,
                Some(other) => {
                    return Err(format!(
                        "token.signature: `{other}` is not valid|tampered|unsigned|hmac|unknown-kid"
                    ));
                }
            };
            let mut claims = Map::new();
            for (k, v) in &t.claims {
                claims.insert(
                    k.clone(),
                    match v {
                        None => Json::Null,
                        Some(ClaimValue::One(s)) => Json::String(s.clone()),
                        Some(ClaimValue::Many(l)) => {
                            Json::Array(l.iter().cloned().map(Json::String).collect())
                        }
                    },
                );
            }
            recipe.claims = claims;
            Some(format!(
                "{} {}",
                t.scheme.as_deref().unwrap_or("Bearer"),
                recipe.mint(world)
            ))
        }
        (None, None) => None,
    };
    let mut request = chat_request(api_path, authorization);
    if let Some(m) = raw.method {
        request.method = m;
    }
    if let Some(p) = raw.path {
        request.path = p;
    }
    request.headers.extend(raw.headers);
    request.query.extend(raw.query);
    let decision = match raw.expect.decision.as_deref() {
        None => None,
        Some("allow") => Some(Decision::Allow),
        Some("deny") => Some(Decision::Deny),
        Some("respond") => Some(Decision::Respond),
        Some(other) => {
            return Err(format!(
                "expect.decision: `{other}` is not allow|deny|respond"
            ));
        }
    };
    if decision.is_none() && raw.expect.status.is_none() && raw.expect.reason.is_none() {
        return Err("`expect` needs at least one of status, decision, reason".to_owned());
    }
    Ok(Case {
        name: raw.name,
        request,
        expect: Expectation {
            decision,
            status: raw.expect.status,
            reason: raw.expect.reason,
        },
        llm_tokens: raw.llm_tokens.unwrap_or(0),
    })
}
