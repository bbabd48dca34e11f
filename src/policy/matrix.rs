//! Test tokens and the built-in matrix of `provision policy test`: the requests every LLM gateway
//! policy must get right, minted with an ephemeral key whose JWKS the simulator is given.

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use super::model::{Policy, PolicyDocument};
use super::simulator::{Decision, Request};
use super::token::{TokenSigner, encode_json, sign_hs256};
use crate::cloud::Cloud;
use crate::render::snippet::CHAT_API_VERSION;

/// Microsoft Graph's app id: the audience of a token for another API.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Everything needed to mint tokens for one environment.
pub struct TokenWorld<'a> {
    pub cloud: Cloud,
    pub sandbox_address: &'a str,
    pub tenant: &'a str,
    pub foreign_tenant: &'a str,
    pub own: &'a TokenSigner,
    pub foreign: &'a TokenSigner,
    pub api_app_id: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    Valid,
    /// Payload changed after signing.
    Tampered,
    /// `alg: none`, empty signature.
    Unsigned,
    /// HS256 keyed with the RSA public key (algorithm confusion).
    HmacWithPublicKey,
    /// Signed by our key but naming a `kid` nobody published.
    UnknownKid,
}

/// How to build one token.
#[derive(Debug, Clone)]
pub struct TokenRecipe {
    /// 1 or 2.
    pub version: u8,
    pub foreign_tenant: bool,
    pub client: String,
    pub audience: String,
    /// Seconds relative to now.
    pub expires_in: i64,
    pub not_before_in: i64,
    /// Claims added or replaced; `null` removes one.
    pub claims: Map<String, Json>,
    pub signature: Signature,
}

impl TokenRecipe {
    pub fn new(client: &str, audience: &str) -> TokenRecipe {
        TokenRecipe {
            version: 2,
            foreign_tenant: false,
            client: client.to_owned(),
            audience: audience.to_owned(),
            expires_in: 3600,
            not_before_in: -300,
            claims: Map::new(),
            signature: Signature::Valid,
        }
    }

    /// The claims an Entra access token for a user of `client` carries (entra.md §4).
    pub fn claims(&self, world: &TokenWorld<'_>) -> Json {
        let tenant = if self.foreign_tenant {
            world.foreign_tenant
        } else {
            world.tenant
        };
        self.claims_in(world.cloud, world.sandbox_address, tenant, world.now)
    }

    /// The claims as `tenant` issues them at `now`: what `verify` has a live tenant sign.
    pub fn claims_in(&self, cloud: Cloud, sandbox_address: &str, tenant: &str, now: i64) -> Json {
        let issuers = cloud.issuers(sandbox_address, tenant);
        let mut claims = json!({
            "aud": self.audience,
            "iss": if self.version == 1 { issuers.v1 } else { issuers.v2 },
            "iat": now + self.not_before_in,
            "nbf": now + self.not_before_in,
            "exp": now + self.expires_in,
            "name": "Sandbox User",
            "oid": "5e7a0000-0000-4000-8000-000000005e01",
            "scp": "llm.invoke",
            "sub": "sandbox-user-subject",
            "tid": tenant,
            "ver": if self.version == 1 { "1.0" } else { "2.0" },
        });
        claims[if self.version == 1 { "appid" } else { "azp" }] = json!(self.client);
        claims[if self.version == 1 {
            "appidacr"
        } else {
            "azpacr"
        }] = json!("0");
        let map = claims.as_object_mut().expect("claims are an object");
        for (k, v) in &self.claims {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
        claims
    }

    pub fn mint(&self, world: &TokenWorld<'_>) -> String {
        let signer = if self.foreign_tenant {
            world.foreign
        } else {
            world.own
        };
        let claims = self.claims(world);
        match self.signature {
            Signature::Valid => signer.sign(&claims),
            Signature::Tampered => {
                let token = signer.sign(&claims);
                let mut forged = claims.clone();
                forged["oid"] = json!("someone-else");
                let parts: Vec<&str> = token.split('.').collect();
                format!("{}.{}.{}", parts[0], encode_json(&forged), parts[2])
            }
            Signature::Unsigned => format!(
                "{}.{}.",
                encode_json(&json!({"alg": "none", "typ": "JWT"})),
                encode_json(&claims)
            ),
            Signature::HmacWithPublicKey => sign_hs256(
                &signer.public_modulus(),
                &json!({"alg": "HS256", "typ": "JWT", "kid": signer.kid}),
                &claims,
            ),
            Signature::UnknownKid => signer.sign_with_header(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "kid-nobody-published"}),
                &claims,
            ),
        }
    }
}

/// What a case expects; unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub decision: Option<Decision>,
    pub status: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub request: Request,
    pub expect: Expectation,
    pub llm_tokens: u64,
}

/// Where the default request goes: the API's chat completions operation for a deployment.
#[derive(Debug, Clone, Copy)]
pub struct ChatTarget<'a> {
    pub api_path: &'a str,
    pub deployment: &'a str,
}

/// The request the matrix sends: a chat completion through the API's operation as `up` defines
/// it (`POST /deployments/{deployment-id}/chat/completions`, resources/apim.rs), for the
/// environment's first deployment, so that `policy test` offline and `verify` live send the same.
pub fn chat_request(api_path: &str, deployment: &str, authorization: Option<String>) -> Request {
    let mut request = Request::new(
        "POST",
        &format!("/{api_path}/deployments/{deployment}/chat/completions"),
    );
    request
        .headers
        .push(("content-type".to_owned(), "application/json".to_owned()));
    request
        .query
        .push(("api-version".to_owned(), CHAT_API_VERSION.to_owned()));
    if let Some(value) = authorization {
        request
            .headers
            .insert(0, ("Authorization".to_owned(), value));
    }
    request
}

/// The built-in matrix for a policy whose token check allows `clients` (unique name, app id).
pub fn builtin(
    world: &TokenWorld<'_>,
    policy: &PolicyDocument,
    target: &ChatTarget<'_>,
    clients: &[(String, String)],
) -> Vec<Case> {
    let check = policy.inbound.iter().find_map(|s| match &s.policy {
        Policy::ValidateAzureAdToken(c) => Some(c),
        _ => None,
    });
    let failure_status = check
        .and_then(|c| c.failure.status.as_ref())
        .and_then(|v| v.text.trim().parse().ok())
        .unwrap_or(401);
    // Valid tokens carry what the policy requires.
    let mut satisfying = Map::new();
    for rule in check
        .map(|c| c.required_claims.as_slice())
        .unwrap_or_default()
    {
        let values: Vec<String> = rule.values.iter().map(|v| v.text.clone()).collect();
        let chosen = if rule.match_all {
            values.clone()
        } else {
            values.iter().take(1).cloned().collect()
        };
        let value = match &rule.separator {
            Some(sep) if !sep.is_empty() => json!(chosen.join(sep)),
            _ => json!(chosen),
        };
        satisfying.insert(rule.name.clone(), value);
    }
    let first_client = clients
        .first()
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    let recipe = |client: &str| {
        let mut r = TokenRecipe::new(client, world.api_app_id);
        r.claims = satisfying.clone();
        r
    };
    let allow = Expectation {
        decision: Some(Decision::Allow),
        status: Some(200),
        reason: None,
    };
    let deny = |reason: &str| Expectation {
        decision: Some(Decision::Deny),
        status: Some(failure_status),
        reason: Some(reason.to_owned()),
    };
    let bearer = |r: &TokenRecipe| Some(format!("Bearer {}", r.mint(world)));
    let case = |name: String, authorization: Option<String>, expect: Expectation| Case {
        name,
        request: chat_request(target.api_path, target.deployment, authorization),
        expect,
        llm_tokens: 0,
    };

    let mut cases = Vec::new();
    for (unique_name, id) in clients {
        cases.push(case(
            format!("valid v2 token from {unique_name}"),
            bearer(&recipe(id)),
            allow.clone(),
        ));
    }
    let mut v1 = recipe(&first_client);
    v1.version = 1;
    cases.push(case(
        "valid v1 token".to_owned(),
        bearer(&v1),
        allow.clone(),
    ));

    let mut foreign = recipe(&first_client);
    foreign.foreign_tenant = true;
    cases.push(case(
        "token from another tenant".to_owned(),
        bearer(&foreign),
        deny("TokenIssuerNotAllowed"),
    ));
    cases.push(case(
        "token from a client that is not registered".to_owned(),
        bearer(&recipe("0dd0c11e-0000-4000-8000-0000000000ff")),
        deny("TokenClientApplicationNotAllowed"),
    ));
    let mut graph = recipe(&first_client);
    graph.audience = GRAPH_APP_ID.to_owned();
    cases.push(case(
        "token for another audience (Microsoft Graph)".to_owned(),
        bearer(&graph),
        deny("TokenAudienceNotAllowed"),
    ));
    let mut expired = recipe(&first_client);
    expired.expires_in = -3600;
    expired.not_before_in = -7200;
    cases.push(case(
        "expired token".to_owned(),
        bearer(&expired),
        deny("TokenExpired"),
    ));
    let mut early = recipe(&first_client);
    early.not_before_in = 3600;
    early.expires_in = 7200;
    cases.push(case(
        "token not yet valid".to_owned(),
        bearer(&early),
        deny("TokenNotYetValid"),
    ));
    for (name, signature, reason) in [
        (
            "unsigned token (alg: none)",
            Signature::Unsigned,
            "TokenSignatureInvalid",
        ),
        (
            "HS256 token signed with the public key",
            Signature::HmacWithPublicKey,
            "TokenSignatureInvalid",
        ),
        (
            "tampered token (bad signature)",
            Signature::Tampered,
            "TokenSignatureInvalid",
        ),
        (
            "token signed with an unknown key (kid)",
            Signature::UnknownKid,
            "TokenSignatureKeyNotFound",
        ),
    ] {
        let mut r = recipe(&first_client);
        r.signature = signature;
        cases.push(case(name.to_owned(), bearer(&r), deny(reason)));
    }
    cases.push(case(
        "no Authorization header".to_owned(),
        None,
        deny("TokenNotPresent"),
    ));
    cases.push(case(
        "wrong scheme (Basic)".to_owned(),
        Some(format!("Basic {}", recipe(&first_client).mint(world))),
        deny("TokenSchemeInvalid"),
    ));
    for rule in check
        .map(|c| c.required_claims.as_slice())
        .unwrap_or_default()
    {
        let mut missing = recipe(&first_client);
        missing.claims.insert(rule.name.clone(), Json::Null);
        cases.push(case(
            format!("required claim `{}` missing", rule.name),
            bearer(&missing),
            deny("TokenClaimNotFound"),
        ));
        if !rule.values.is_empty() {
            let mut wrong = recipe(&first_client);
            wrong
                .claims
                .insert(rule.name.clone(), json!(["a-value-nobody-allows"]));
            cases.push(case(
                format!("required claim `{}` with a value not allowed", rule.name),
                bearer(&wrong),
                deny("TokenClaimValueNotAllowed"),
            ));
        }
    }
    cases
}
