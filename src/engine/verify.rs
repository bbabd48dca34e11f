//! `verify`: the boundary matrix ([`crate::boundary::cases`]) sent to the live gateway, the
//! Foundry endpoint and ARM, each answer judged against what the case expects, and each gateway
//! case run through the simulator on the *stored* policy (the API's policy as ARM returns it,
//! the tenants' published keys, the environment's clock) to report where the two disagree. On
//! the sandbox, whose gateway runs that same simulator, a disagreement is a bug; on Azure, a
//! finding that the simulator has drifted from APIM.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::azure::retry::Replay;
use crate::azure::transport::{Method, ReqwestTransport, Transport, WireRequest};
use crate::boundary::cases::{
    self, Case, Credential, Custom, Expect, Material, Materials, Prediction, Target, drift, forge,
};
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::config::Blueprint;
use crate::dataplane::{Call, DataPlane};
use crate::oauth::cache::TokenCache;
use crate::oauth::device::DeviceAuthorization;
use crate::policy::Document;
use crate::policy::cases::{CaseSpec, CaseToken, ChatTarget, METHODS, TokenSpec};
use crate::policy::matrix::Signature;
use crate::policy::model::PolicyDocument;
use crate::policy::simulator::{Request as SimRequest, Simulator};
use crate::policy::token::{Jwt, KeySet};
use crate::render::snippet::CHAT_API_VERSION;
use crate::resources::Kind;

use super::call::chat_url;
use super::signin::{self, SignInOptions};
use super::{Checked, Connected};

/// What `verify` was handed besides the environment.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub sign_in: SignInOptions,
    /// A good token obtained elsewhere (`--token-file`): nobody signs in.
    pub token: Option<String>,
    pub foreign_token: Option<String>,
    pub expired_token: Option<String>,
    /// The user's cases (`--cases`), by file, checked before anything was sent.
    pub cases: Vec<(String, Vec<CaseSpec>)>,
}

/// One case and what happened.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub status: Option<u16>,
    /// The gateway's message, the model's answer, or Azure's error.
    pub message: Option<String>,
    pub held: bool,
    pub prediction: Option<Prediction>,
    pub drift: Option<String>,
}

/// The environment's facts the cases need.
struct Facts {
    api_url: String,
    /// The API app's id, as the environment's Entra app has it.
    api_app_id: String,
    api_path: String,
    deployment: String,
    foundry_endpoint: String,
    account_id: String,
    api_protocols: Vec<String>,
    policy: Option<PolicyDocument>,
    /// The client apps (unique name, app id), for the clients a user's case names.
    clients: Vec<(String, String)>,
}

pub async fn verify(
    checked: Checked,
    options: &VerifyOptions,
    cache: &TokenCache,
    clock: Arc<dyn Clock>,
    prompt: impl Fn(&DeviceAuthorization),
) -> anyhow::Result<Vec<CaseResult>> {
    let good = match &options.token {
        Some(token) => token.clone(),
        None => {
            let signed = signin::user_sign_in(
                checked.clone(),
                &options.sign_in,
                cache,
                clock.clone(),
                prompt,
            )
            .await?;
            signed.saved.access_token().expose().to_owned()
        }
    };
    let connected = super::connect(checked, options.sign_in.timeout).await?;
    let facts = facts(&connected).await?;
    let materials = materials(&connected, &facts, good, options, &*clock).await;
    let mut cases = cases::matrix(&materials);
    cases.extend(user_cases(&connected, &facts, &materials.good, options, &*clock).await);
    let mut simulator = simulator(&connected, &cases).await;
    let plane = super::connect::data_plane(&connected.blueprint)?;
    let mut results = Vec::new();
    for case in cases {
        if case.skipped.is_some() {
            results.push(CaseResult {
                case,
                status: None,
                message: None,
                held: false,
                prediction: None,
                drift: None,
            });
            continue;
        }
        let (status, message) = send(&connected, &plane, &facts, &case).await;
        let prediction = match (&case.target, &facts.policy) {
            (Target::Gateway, Some(policy)) => {
                let outcome =
                    simulator.evaluate(policy, &sim_request(&facts, &case), clock.now_seconds());
                Some(Prediction {
                    status: outcome.status,
                    decision: outcome.decision,
                    reason: outcome.reason.clone(),
                    message: outcome.message.clone(),
                })
            }
            _ => None,
        };
        let drift = match (&prediction, status) {
            // A 200's message is the model's answer, not the gateway's: only statuses compare.
            (Some(p), Some(200)) => drift(p, 200, None),
            (Some(p), Some(s)) => drift(p, s, message.as_deref()),
            _ => None,
        };
        results.push(CaseResult {
            held: case.held(status, prediction.as_ref()),
            case,
            status,
            message,
            prediction,
            drift,
        });
    }
    Ok(results)
}

async fn facts(connected: &Connected) -> anyhow::Result<Facts> {
    let (observation, _) = connected.plan().await?;
    let blueprint = &connected.blueprint;
    let endpoint = super::endpoint(blueprint, &observation.known);
    let observed = |kind: Kind| {
        connected
            .resources
            .iter()
            .find(|r| r.address().kind == kind)
            .and_then(|r| observation.observed(&r.address()).cloned())
    };
    let account = observed(Kind::Account).unwrap_or(Value::Null);
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let policy = observed(Kind::Policy).and_then(|p| {
        let xml = p.pointer("/properties/value")?.as_str()?.to_owned();
        let document = Document::parse(&xml).ok()?;
        PolicyDocument::from_document(&document).ok()
    });
    let api_protocols = observed(Kind::Api)
        .and_then(|a| a.pointer("/properties/protocols").cloned())
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default();
    Ok(Facts {
        clients: endpoint.clients.clone(),
        api_url: endpoint.api_url,
        api_app_id: endpoint.api_app_id,
        api_path: blueprint.api.path.clone(),
        deployment: blueprint
            .foundry
            .deployments
            .first()
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        foundry_endpoint: text(&account, "/properties/endpoint"),
        account_id: text(&account, "/id"),
        api_protocols,
        policy,
    })
}

/// The tokens the matrix is made of, each had or skipped with the reason.
async fn materials(
    connected: &Connected,
    facts: &Facts,
    good: String,
    options: &VerifyOptions,
    clock: &dyn Clock,
) -> Materials {
    let blueprint = &connected.blueprint;
    let endpoints = blueprint.cloud.endpoints(&blueprint.sandbox_address);
    let credentials = connected.azure.session.credentials();
    let operator = |scope: String| async move {
        match credentials.token(&scope).await {
            Ok(t) => Material::Token(t.expose().to_owned()),
            // Entra's description goes on with trace ids after its first line.
            Err(e) => Material::Skipped(format!(
                "the operator's credential got no token: {}",
                e.to_string().lines().next().unwrap_or_default()
            )),
        }
    };
    let graph = operator(endpoints.graph_scope()).await;
    let unlisted_client = operator(format!("api://{}/.default", facts.api_app_id)).await;
    let own_foundry = operator(format!(
        "{}/.default",
        endpoints.cognitive_services_resource.trim_end_matches('/')
    ))
    .await;
    let (foreign_tenant, expired) = if blueprint.cloud == Cloud::Sandbox {
        sandbox_tokens(blueprint, &good, clock).await
    } else {
        let from = |token: &Option<String>, flag: &str| match token {
            Some(t) => Material::Token(t.clone()),
            None => Material::Skipped(format!(
                "Entra issues no such token on demand: pass {flag} FILE to run this case"
            )),
        };
        (
            from(&options.foreign_token, "--foreign-token-file"),
            from(&options.expired_token, "--expired-token-file"),
        )
    };
    Materials {
        good,
        graph,
        unlisted_client,
        foreign_tenant,
        expired,
        own_foundry,
    }
}

/// On the sandbox, the tokens Entra would not issue on demand are minted by the sandbox
/// (`POST /_sandbox/tokens`): the good token's claims, from another tenant, or an hour expired.
async fn sandbox_tokens(
    blueprint: &Blueprint,
    good: &str,
    clock: &dyn Clock,
) -> (Material, Material) {
    let tenant = blueprint.tenant_id.as_str();
    // `sandbox_origin` keeps the `https://` of a `sandbox.tls` environment, and the transport
    // trusts its CA: the admin endpoint is served on the same listener as everything else.
    let base = crate::cloud::sandbox_origin(&blueprint.sandbox_address);
    let transport = match super::connect::transport(blueprint) {
        Ok(t) => t,
        Err(e) => {
            let why = Material::Skipped(e.to_string());
            return (why.clone(), why);
        }
    };
    let claims: serde_json::Map<String, Value> = good
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let info = transport
        .send(&WireRequest::new(
            Method::Get,
            format!("{base}/_sandbox/info"),
        ))
        .await
        .ok()
        .and_then(|r| r.body_json().ok())
        .unwrap_or(Value::Null);
    let foreign = info["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .find(|id| !id.eq_ignore_ascii_case(tenant))
        .map(str::to_owned);
    // The sandbox's defaults (`iat`, `nbf`, `exp` an hour on, `tid`, `uti`) apply to what is
    // not given; the good token's own are removed so they do.
    let mut claims = claims;
    for own in ["iat", "nbf", "exp", "uti", "tid"] {
        claims.remove(own);
    }
    let mint = |tenant: String, claims: serde_json::Map<String, Value>| {
        let transport = &transport;
        let base = &base;
        async move {
            let request = WireRequest::new(Method::Post, format!("{base}/_sandbox/tokens"))
                .json(&json!({"tenant": tenant, "claims": claims}));
            match transport
                .send(&request)
                .await
                .ok()
                .and_then(|r| r.body_json().ok())
            {
                Some(body) if body["access_token"].is_string() => {
                    Material::Token(body["access_token"].as_str().unwrap_or_default().to_owned())
                }
                other => Material::Skipped(format!("the sandbox minted no token: {other:?}")),
            }
        }
    };
    let foreign_token = match foreign {
        Some(tid) => {
            let mut c = claims.clone();
            let issuer = c
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace(tenant, &tid);
            c.insert("iss".into(), json!(issuer));
            mint(tid, c).await
        }
        None => Material::Skipped("the sandbox has no second tenant".to_owned()),
    };
    let now = clock.now_seconds();
    let mut c = claims;
    c.insert("iat".into(), json!(now - 7200));
    c.insert("nbf".into(), json!(now - 7200));
    c.insert("exp".into(), json!(now - 3600));
    let expired = mint(tenant.to_owned(), c).await;
    (foreign_token, expired)
}

fn chat_body() -> Vec<u8> {
    br#"{"messages":[{"role":"user","content":"provision verify"}]}"#.to_vec()
}

async fn send(
    connected: &Connected,
    plane: &DataPlane,
    facts: &Facts,
    case: &Case,
) -> (Option<u16>, Option<String>) {
    if let (Target::Gateway, Some(custom)) = (case.target, &case.custom) {
        return send_custom(plane, facts, case, custom).await;
    }
    let url = match case.target {
        Target::Gateway => chat_url(&facts.api_url, &facts.deployment),
        Target::Foundry => format!(
            "{}/openai/deployments/{}/chat/completions?api-version={CHAT_API_VERSION}",
            facts.foundry_endpoint.trim_end_matches('/'),
            facts.deployment
        ),
        Target::ListKeys => {
            let id = format!("{}/listKeys", facts.account_id);
            return match connected.azure.arm.post(&id, None, Replay::Safe).await {
                Ok(_) => (
                    Some(200),
                    Some("listKeys returned the account's keys".to_owned()),
                ),
                Err(e) => (
                    e.status(),
                    Some(
                        e.api()
                            .map_or_else(|| e.to_string(), |a| a.body.message.clone()),
                    ),
                ),
            };
        }
        Target::PlainHttp if connected.blueprint.cloud == Cloud::Sandbox => {
            // The sandbox's one origin stands for Azure's HTTPS front door, so plain HTTP can
            // not be sent to it; what makes APIM refuse it is the API's `protocols`, and with
            // only `https` there APIM matches no API and answers 404 (dataplane.md §1.7).
            let https_only = !facts.api_protocols.is_empty()
                && facts
                    .api_protocols
                    .iter()
                    .all(|p| p.eq_ignore_ascii_case("https"));
            let status = if https_only { 404 } else { 200 };
            return (
                Some(status),
                Some(format!(
                    "the API's stored protocols are {:?}",
                    facts.api_protocols
                )),
            );
        }
        Target::PlainHttp => {
            chat_url(&facts.api_url, &facts.deployment).replacen("https://", "http://", 1)
        }
    };
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some((name, value)) = case.credential.header() {
        headers.push((name.to_owned(), value));
    }
    let call = Call {
        method: "POST",
        url,
        headers,
        body: Some(chat_body()),
    };
    answer(plane.send(&call, None).await)
}

/// A user's case as its file gives it, at the gateway that serves the API: the path was
/// checked to lie under the API's (`policy::cases::load`), so it never names another host.
async fn send_custom(
    plane: &DataPlane,
    facts: &Facts,
    case: &Case,
    custom: &Custom,
) -> (Option<u16>, Option<String>) {
    let suffix = format!("/{}", facts.api_path);
    let root = facts
        .api_url
        .strip_suffix(&suffix)
        .unwrap_or(&facts.api_url);
    let mut url = match reqwest::Url::parse(&format!("{root}{}", custom.request.path)) {
        Ok(url) => url,
        Err(e) => return (None, Some(format!("not a URL: {e}"))),
    };
    if !custom.request.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &custom.request.query {
            pairs.append_pair(name, value);
        }
    }
    let method = METHODS
        .iter()
        .copied()
        .find(|m| *m == custom.request.method)
        .unwrap_or("POST");
    let mut headers = custom.request.headers.clone();
    if let Some((name, value)) = case.credential.header() {
        headers.insert(0, (name.to_owned(), value));
    }
    let body = match &custom.body {
        Some(text) => Some(text.clone().into_bytes()),
        None if method == "POST" => Some(chat_body()),
        None => None,
    };
    let call = Call {
        method,
        url: url.to_string(),
        headers,
        body,
    };
    answer(plane.send(&call, None).await)
}

/// The status and what the answer says: the gateway's message, Azure's error, the model's
/// answer or where it redirects.
fn answer(
    result: Result<crate::dataplane::Answer, crate::dataplane::DataPlaneError>,
) -> (Option<u16>, Option<String>) {
    match result {
        Ok(answer) => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let message = body
                .get("message")
                .or_else(|| body.pointer("/error/message"))
                .or_else(|| body.pointer("/choices/0/message/content"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    answer
                        .header("location")
                        .map(|l| format!("redirected to {l}"))
                });
            (Some(answer.status), message)
        }
        Err(e) => (None, Some(e.to_string())),
    }
}

fn sim_request(facts: &Facts, case: &Case) -> SimRequest {
    if let Some(custom) = &case.custom {
        let mut request = custom.request.clone();
        if let Some((name, value)) = case.credential.header() {
            request.headers.insert(0, (name.to_owned(), value));
        }
        return request;
    }
    let mut request = SimRequest::new(
        "POST",
        &format!(
            "/{}/deployments/{}/chat/completions",
            facts.api_path, facts.deployment
        ),
    );
    request
        .headers
        .push(("content-type".to_owned(), "application/json".to_owned()));
    if let Some((name, value)) = case.credential.header() {
        request.headers.push((name.to_owned(), value));
    }
    request
        .query
        .push(("api-version".to_owned(), CHAT_API_VERSION.to_owned()));
    request
}

/// A simulator with what APIM knows: the published keys of the environment's tenant and of
/// every tenant a case's token names.
async fn simulator(connected: &Connected, cases: &[Case]) -> Simulator {
    let blueprint = &connected.blueprint;
    let login = blueprint.cloud.endpoints(&blueprint.sandbox_address).login;
    let mut tenants: BTreeSet<String> = BTreeSet::new();
    tenants.insert(blueprint.tenant_id.as_str().to_ascii_lowercase());
    for case in cases {
        // `Bearer <token>`, or a user's case's `<scheme> <token>`.
        if let Some((_, value)) = case.credential.header()
            && let Some(token) = value.split_whitespace().last()
            && let Some(tid) = Jwt::parse(token)
                .ok()
                .and_then(|j| j.claim_str("tid").map(str::to_ascii_lowercase))
        {
            tenants.insert(tid);
        }
    }
    let mut simulator = Simulator::new(blueprint.cloud);
    simulator.sandbox_address = blueprint.sandbox_address.clone();
    simulator.named_values = blueprint.apim.named_values.clone();
    let Ok(transport) = super::connect::transport(blueprint) else {
        return simulator;
    };
    for tenant in tenants {
        // Tenant ids come from tokens: only a GUID goes into the URL.
        if uuid::Uuid::parse_str(&tenant).is_err() {
            continue;
        }
        let url = format!("{login}/{tenant}/discovery/v2.0/keys");
        let keys = transport
            .send(&WireRequest::new(Method::Get, url))
            .await
            .ok()
            .filter(|r| r.is_success())
            .and_then(|r| KeySet::from_json(&String::from_utf8_lossy(&r.body)).ok());
        if let Some(keys) = keys {
            simulator = simulator.with_tenant_keys(&tenant, keys);
        }
    }
    simulator
}

/// The user's cases as gateway cases. A case whose token must be minted runs on the sandbox,
/// which signs it with the tenant's own key (`POST /_sandbox/tokens`); on Azure it is skipped
/// with the reason, since Entra issues tokens only to a sign-in.
async fn user_cases(
    connected: &Connected,
    facts: &Facts,
    good: &str,
    options: &VerifyOptions,
    clock: &dyn Clock,
) -> Vec<Case> {
    let target = ChatTarget {
        api_path: &facts.api_path,
        deployment: &facts.deployment,
    };
    let mut out = Vec::new();
    for (source, specs) in &options.cases {
        for spec in specs {
            let mut case = Case {
                name: spec.name.clone(),
                target: Target::Gateway,
                credential: Credential::None,
                expect: spec.expect.status.map_or(Expect::Any, Expect::Status),
                skipped: None,
                custom: Some(Custom {
                    source: source.clone(),
                    request: spec.request(&target),
                    body: spec.body.clone(),
                    reason: spec.expect.reason.clone(),
                    decision: spec.expect.decision,
                }),
            };
            match &spec.token {
                None => {}
                Some(CaseToken::Raw(token)) => {
                    case.credential = Credential::Authorization(format!("Bearer {token}"));
                }
                Some(CaseToken::Good) => case.credential = Credential::Bearer(good.to_owned()),
                Some(CaseToken::Minted(token)) => {
                    match minted(connected, facts, token, clock.now_seconds()).await {
                        Ok(value) => case.credential = Credential::Authorization(value),
                        Err(why) => case.skipped = Some(why),
                    }
                }
            }
            out.push(case);
        }
    }
    out
}

/// The `Authorization` value of a case's `token:`, signed by the sandbox tenant's key and then
/// broken as the case asks ([`forge`]).
async fn minted(
    connected: &Connected,
    facts: &Facts,
    token: &TokenSpec,
    now: i64,
) -> Result<String, String> {
    let blueprint = &connected.blueprint;
    if let Some(why) = cases::mint_refusal(blueprint.cloud) {
        return Err(why.to_owned());
    }
    let address = blueprint.sandbox_address.as_str();
    let base = crate::cloud::sandbox_origin(address);
    let transport = super::connect::transport(blueprint).map_err(|e| e.to_string())?;
    let own = blueprint.tenant_id.as_str();
    let tenant = if token.foreign_tenant {
        foreign_tenant(&transport, &base, own)
            .await
            .ok_or("the sandbox has no second tenant")?
    } else {
        own.to_owned()
    };
    let recipe = token.recipe(&facts.api_app_id, &facts.clients)?;
    let claims = recipe.claims_in(Cloud::Sandbox, address, &tenant, now);
    let mut asked = claims.clone();
    for removed in token.removed_claims() {
        asked[removed] = Value::Null;
    }
    let Material::Token(signed) = mint(&transport, &base, &tenant, &asked).await else {
        return Err("the sandbox minted no token".to_owned());
    };
    let modulus = match token.signature {
        Signature::HmacWithPublicKey => {
            public_modulus(blueprint, &transport, &tenant, &signed).await
        }
        _ => None,
    };
    let value = match token.signature {
        Signature::Valid => signed,
        other => forge(other, &signed, &claims, modulus.as_deref())
            .ok_or("the tenant's public key could not be read")?,
    };
    Ok(format!("{} {value}", token.scheme))
}

/// Another tenant of the sandbox than `own`, as `/_sandbox/info` lists them.
async fn foreign_tenant(transport: &ReqwestTransport, base: &str, own: &str) -> Option<String> {
    let info = transport
        .send(&WireRequest::new(
            Method::Get,
            format!("{base}/_sandbox/info"),
        ))
        .await
        .ok()
        .and_then(|r| r.body_json().ok())
        .unwrap_or(Value::Null);
    info["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .find(|id| !id.eq_ignore_ascii_case(own))
        .map(str::to_owned)
}

/// A token with `claims` signed by `tenant`'s current key (`POST /_sandbox/tokens`).
async fn mint(transport: &ReqwestTransport, base: &str, tenant: &str, claims: &Value) -> Material {
    let request = WireRequest::new(Method::Post, format!("{base}/_sandbox/tokens"))
        .json(&json!({"tenant": tenant, "claims": claims}));
    match transport
        .send(&request)
        .await
        .ok()
        .and_then(|r| r.body_json().ok())
    {
        Some(body) if body["access_token"].is_string() => {
            Material::Token(body["access_token"].as_str().unwrap_or_default().to_owned())
        }
        other => Material::Skipped(format!("the sandbox minted no token: {other:?}")),
    }
}

/// The modulus of the key that signed `signed`, from the tenant's published keys: what an
/// algorithm-confusion token is keyed with.
async fn public_modulus(
    blueprint: &crate::config::Blueprint,
    transport: &ReqwestTransport,
    tenant: &str,
    signed: &str,
) -> Option<Vec<u8>> {
    let kid = Jwt::parse(signed).ok()?.kid?;
    let login = blueprint.cloud.endpoints(&blueprint.sandbox_address).login;
    let keys = transport
        .send(&WireRequest::new(
            Method::Get,
            format!("{login}/{tenant}/discovery/v2.0/keys"),
        ))
        .await
        .ok()?
        .body_json()
        .ok()?;
    let n = keys["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"].as_str() == Some(kid.as_str()))?["n"]
        .as_str()?
        .to_owned();
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, n).ok()
}
