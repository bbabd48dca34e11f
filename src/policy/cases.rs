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
//! Or `good_token: true`: the signed-in client's own token (offline, a valid token of the first
//! client). Request fields: `method`, `path` (from the gateway's root, under the API's path:
//! `/llm/deployments/…`), `headers`, `query`, `body` (sent by `verify` only: the simulator reads
//! no body), `llm_tokens`.
//!
//! The file is checked whole before anything is sent ([`load`]); a case is then resolved against
//! an environment: offline with keys made up for the run ([`CaseSpec::resolve`]), or by `verify`,
//! which has the live tenant sign the token the case describes ([`TokenSpec::recipe`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

pub use super::matrix::ChatTarget;
use super::matrix::{
    Case, Expectation, GRAPH_APP_ID, Signature, TokenRecipe, TokenWorld, chat_request,
};
use super::simulator::{Decision, Request};

/// Cases in one file: each may become a live request in `verify`.
pub const MAX_CASES: usize = 500;
const FORMAT_HINT: &str = "hint: the case file format is in docs/policy.md (\"Case files\")";

/// The methods a case may send (RFC 9110 §9 and PATCH), in upper case as HTTP has them.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Headers a case may add, and the bytes of a header value, a path or a body.
const MAX_HEADERS: usize = 32;
const MAX_TEXT: usize = 8 * 1024;
const MAX_BODY: usize = 64 * 1024;

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
    #[serde(default)]
    good_token: bool,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    query: BTreeMap<String, String>,
    llm_tokens: Option<u64>,
    body: Option<String>,
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

/// How a case's request authenticates.
#[derive(Debug, Clone)]
pub enum CaseToken {
    /// `raw_token:`, sent as `Bearer <value>`.
    Raw(String),
    /// `good_token: true`: the token the run signed in with.
    Good,
    /// `token:`: a token to be minted as described.
    Minted(TokenSpec),
}

/// A `token:` description, checked but not yet bound to an environment's ids or keys.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    client: Option<String>,
    version: u8,
    /// From another tenant than the environment's.
    pub foreign_tenant: bool,
    audience: Option<String>,
    expires_in: i64,
    not_before_in: i64,
    claims: Map<String, Json>,
    pub signature: Signature,
    pub scheme: String,
}

/// One case of a file, checked.
#[derive(Debug, Clone)]
pub struct CaseSpec {
    pub name: String,
    pub token: Option<CaseToken>,
    pub method: Option<String>,
    /// From the gateway's root, under the API's path.
    pub path: Option<String>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
    pub llm_tokens: u64,
    pub expect: Expectation,
}

/// Reads and checks a case file whole: every error names the file (and for YAML errors the line
/// and column), before any case is run.
pub fn load(file: &str, text: &str, api_path: &str) -> Result<Vec<CaseSpec>, String> {
    let mut located: crate::config::LocatedYaml<CaseFile> =
        crate::config::parse_yaml_located(file, text).map_err(|e| {
            if e.contains("\nhint: ") {
                e
            } else {
                format!("{e}\n{FORMAT_HINT}")
            }
        })?;
    let cases = std::mem::take(&mut located.value.cases);
    let at = |path: &str| {
        located
            .position(path)
            .map(|p| format!("{p}:"))
            .unwrap_or_default()
    };
    if cases.len() > MAX_CASES {
        return Err(format!(
            "{file}:{} cases: {} cases; at most {MAX_CASES} in one file\nhint: split the cases into several files",
            at("cases"),
            cases.len()
        ));
    }
    cases
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            spec(c, api_path).map_err(|e| {
                // `key: what is wrong` points at that key of the case; other errors at the case.
                let (path, message) = match e.split_once(": ") {
                    Some((key, rest)) if !key.contains([' ', '`', '/']) => {
                        (format!("cases[{i}].{key}"), rest.to_owned())
                    }
                    _ => (format!("cases[{i}]"), e),
                };
                format!("{file}:{} {path}: {message}\n{FORMAT_HINT}", at(&path))
            })
        })
        .collect()
}

/// Parses a case file and resolves it against an environment for the offline simulator.
pub fn parse(
    file: &str,
    text: &str,
    world: &TokenWorld<'_>,
    target: &ChatTarget<'_>,
    clients: &[(String, String)],
) -> Result<Vec<Case>, String> {
    load(file, text, target.api_path)?
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.resolve(world, target, clients)
                .map_err(|e| format!("{file}: cases[{i}]: {e}"))
        })
        .collect()
}

fn bounded(what: &str, text: &str, limit: usize) -> Result<(), String> {
    if text.len() > limit {
        return Err(format!("{what}: {} bytes; at most {limit}", text.len()));
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{what}: contains a control character"));
    }
    Ok(())
}

/// A path the gateway serves for this API: never a URL to another host, never outside the API.
fn api_path_of(path: &str, api_path: &str) -> Result<(), String> {
    bounded("path", path, MAX_TEXT)?;
    let prefix = format!("/{api_path}/");
    if !path.starts_with(&prefix)
        || path.contains("://")
        || path.contains(['?', '#', '\\', ' '])
        || path.split('/').any(|s| s == ".." || s == ".")
        // WHATWG URL parsing reads `%2e%2e` as `..`.
        || path.to_ascii_lowercase().contains("%2e")
    {
        return Err(format!(
            "path: `{}` is not a path under the API: start it with `{prefix}` (no host, query or `..`; query parameters go in `query:`)",
            path.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

fn spec(raw: RawCase, api_path: &str) -> Result<CaseSpec, String> {
    bounded("name", &raw.name, 200)?;
    let token = match (raw.token, raw.raw_token, raw.good_token) {
        (None, None, false) => None,
        (None, Some(raw_token), false) => {
            bounded("raw_token", &raw_token, MAX_TEXT)?;
            Some(CaseToken::Raw(raw_token))
        }
        (None, None, true) => Some(CaseToken::Good),
        (Some(t), None, false) => Some(CaseToken::Minted(token_spec(t)?)),
        _ => return Err("give one of `token`, `raw_token`, `good_token`".to_owned()),
    };
    if let Some(m) = &raw.method
        && !METHODS.contains(&m.as_str())
    {
        return Err(format!(
            "method: `{}` is not one of {}",
            m.chars().take(20).collect::<String>(),
            METHODS.join(", ")
        ));
    }
    if let Some(p) = &raw.path {
        api_path_of(p, api_path)?;
    }
    if raw.headers.len() > MAX_HEADERS {
        return Err(format!("headers: at most {MAX_HEADERS}"));
    }
    for (name, value) in raw.headers.iter().chain(&raw.query) {
        if name.is_empty()
            || name.len() > 256
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        {
            return Err(format!(
                "headers/query: `{}` is not a header or parameter name",
                name.chars().take(40).collect::<String>()
            ));
        }
        bounded(name, value, MAX_TEXT)?;
    }
    if let Some(body) = &raw.body
        && body.len() > MAX_BODY
    {
        return Err(format!("body: {} bytes; at most {MAX_BODY}", body.len()));
    }
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
    Ok(CaseSpec {
        name: raw.name,
        token,
        method: raw.method,
        path: raw.path,
        headers: raw.headers.into_iter().collect(),
        query: raw.query.into_iter().collect(),
        body: raw.body,
        llm_tokens: raw.llm_tokens.unwrap_or(0),
        expect: Expectation {
            decision,
            status: raw.expect.status,
            reason: raw.expect.reason,
        },
    })
}

fn token_spec(t: RawToken) -> Result<TokenSpec, String> {
    let version = match t.version {
        None | Some(2) => 2,
        Some(1) => 1,
        Some(v) => return Err(format!("token.version: {v} is not 1 or 2")),
    };
    let foreign_tenant = match t.tenant.as_deref() {
        None | Some("own") => false,
        Some("foreign") => true,
        Some(other) => {
            return Err(format!("token.tenant: `{other}` is not `own` or `foreign`"));
        }
    };
    let signature = match t.signature.as_deref() {
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
    let scheme = t.scheme.unwrap_or_else(|| "Bearer".to_owned());
    bounded("token.scheme", &scheme, 64)?;
    let mut claims = Map::new();
    for (k, v) in t.claims {
        let value = match v {
            None => Json::Null,
            Some(ClaimValue::One(s)) => Json::String(s),
            Some(ClaimValue::Many(l)) => Json::Array(l.into_iter().map(Json::String).collect()),
        };
        claims.insert(k, value);
    }
    Ok(TokenSpec {
        client: t.client,
        version,
        foreign_tenant,
        audience: t.audience,
        expires_in: t.expires_in.unwrap_or(3600),
        not_before_in: t.not_before_in.unwrap_or(-300),
        claims,
        signature,
        scheme,
    })
}

impl TokenSpec {
    /// The claims the case removes (`~`): a live mint must leave them out even where its
    /// issuer would add them by default.
    pub fn removed_claims(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.as_str())
    }

    /// The recipe for this environment: `client` by unique name or app id (default: the first
    /// client), `audience` `api` (default), `graph` or a literal value.
    pub fn recipe(
        &self,
        api_app_id: &str,
        clients: &[(String, String)],
    ) -> Result<TokenRecipe, String> {
        let client = match &self.client {
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
        let audience = match self.audience.as_deref() {
            None | Some("api") => api_app_id.to_owned(),
            Some("graph") => GRAPH_APP_ID.to_owned(),
            Some(other) => other.to_owned(),
        };
        let mut recipe = TokenRecipe::new(&client, &audience);
        recipe.version = self.version;
        recipe.foreign_tenant = self.foreign_tenant;
        recipe.expires_in = self.expires_in;
        recipe.not_before_in = self.not_before_in;
        recipe.claims = self.claims.clone();
        recipe.signature = self.signature;
        Ok(recipe)
    }
}

impl CaseSpec {
    /// The request without its `Authorization` (unless a header gives one literally): the
    /// environment's chat completions operation unless the case names its own.
    pub fn request(&self, target: &ChatTarget<'_>) -> Request {
        let mut request = chat_request(target.api_path, target.deployment, None);
        if let Some(m) = &self.method {
            request.method = m.clone();
        }
        if let Some(p) = &self.path {
            request.path = p.clone();
        }
        request.headers.extend(self.headers.iter().cloned());
        for (name, value) in &self.query {
            request.query.retain(|(n, _)| n != name);
            request.query.push((name.clone(), value.clone()));
        }
        request.llm_tokens = self.llm_tokens;
        request
    }

    /// The case for the offline simulator, its token minted with the run's own keys.
    pub fn resolve(
        &self,
        world: &TokenWorld<'_>,
        target: &ChatTarget<'_>,
        clients: &[(String, String)],
    ) -> Result<Case, String> {
        let authorization = match &self.token {
            None => None,
            Some(CaseToken::Raw(token)) => Some(format!("Bearer {token}")),
            Some(CaseToken::Good) => {
                let good = TokenSpec {
                    client: None,
                    version: 2,
                    foreign_tenant: false,
                    audience: None,
                    expires_in: 3600,
                    not_before_in: -300,
                    claims: Map::new(),
                    signature: Signature::Valid,
                    scheme: "Bearer".to_owned(),
                };
                Some(format!(
                    "Bearer {}",
                    good.recipe(world.api_app_id, clients)?.mint(world)
                ))
            }
            Some(CaseToken::Minted(spec)) => Some(format!(
                "{} {}",
                spec.scheme,
                spec.recipe(world.api_app_id, clients)?.mint(world)
            )),
        };
        let mut request = self.request(target);
        if let Some(value) = authorization {
            request
                .headers
                .insert(0, ("Authorization".to_owned(), value));
        }
        Ok(Case {
            name: self.name.clone(),
            request,
            expect: self.expect.clone(),
            llm_tokens: self.llm_tokens,
        })
    }
}
