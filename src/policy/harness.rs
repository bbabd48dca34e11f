//! `policy test`: an environment's rendered policy run through the simulator against the
//! built-in token matrix and the user's case files. Pure: the caller renders the policy, reads
//! the case files and hands in a random source and the time.

use sha2::{Digest, Sha256};

use super::cases;
use super::matrix::{self, Case, TokenWorld};
use super::model::PolicyDocument;
use super::simulator::{Outcome, Simulator};
use super::token::{Jwks, KeySet, TokenSigner};
use crate::config::{Blueprint, Guid};
use crate::render::ResolvedAppIds;

/// The tenant a foreign-tenant token comes from in tests.
const FOREIGN_TENANT: &str = "f0f0f0f0-0000-4000-8000-00000000f0f0";

/// One case and what the simulator made of it.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// `matrix`, or the case file's name.
    pub source: String,
    pub case: Case,
    pub outcome: Outcome,
    pub passed: bool,
}

/// The app ids a test renders with: pinned where the environment pins them, else a stable
/// stand-in per app, so offline runs are repeatable.
pub fn app_ids(blueprint: &Blueprint) -> ResolvedAppIds {
    ResolvedAppIds::pinned(blueprint).unwrap_or_else(|| ResolvedAppIds {
        api: blueprint
            .entra
            .api
            .app_id
            .clone()
            .unwrap_or_else(|| stand_in_app_id(&blueprint.entra.api.unique_name)),
        clients: blueprint
            .entra
            .clients
            .iter()
            .map(|c| {
                c.app_id
                    .clone()
                    .unwrap_or_else(|| stand_in_app_id(&c.unique_name))
            })
            .collect(),
    })
}

/// A stable stand-in app id for an app that does not exist yet.
fn stand_in_app_id(unique_name: &str) -> Guid {
    let h = Sha256::digest(format!("provision policy test: {unique_name}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    );
    Guid::parse(&text).expect("well-formed by construction")
}

/// Runs the matrix and every case file (`(name, text)`) against `model`, at `now` (Unix seconds).
/// Signing keys for the environment's tenant and a foreign one come from `rng`.
pub fn run<R: rsa::rand_core::TryCryptoRng + ?Sized>(
    blueprint: &Blueprint,
    ids: &ResolvedAppIds,
    model: &PolicyDocument,
    case_files: &[(String, String)],
    rng: &mut R,
    now: i64,
) -> Result<Vec<CaseRun>, String> {
    let own = TokenSigner::generate(rng, "provision-test-key")?;
    let foreign = TokenSigner::generate(rng, "provision-foreign-key")?;
    let keys = |s: &TokenSigner| {
        KeySet::from_jwks(Jwks {
            keys: vec![s.jwk()],
        })
        .map_err(|e| e.to_string())
    };
    let (own_keys, foreign_keys) = (keys(&own)?, keys(&foreign)?);
    let api_app_id = ids.api.to_string();
    let world = TokenWorld {
        cloud: blueprint.cloud,
        sandbox_address: &blueprint.sandbox_address,
        tenant: blueprint.tenant_id.as_str(),
        foreign_tenant: FOREIGN_TENANT,
        own: &own,
        foreign: &foreign,
        api_app_id: &api_app_id,
        now,
    };
    let clients: Vec<(String, String)> = blueprint
        .entra
        .clients
        .iter()
        .zip(&ids.clients)
        .map(|(c, id)| (c.unique_name.clone(), id.to_string()))
        .collect();
    let target = cases::ChatTarget {
        api_path: &blueprint.api.path,
        deployment: first_deployment(blueprint),
    };
    let mut suites: Vec<(String, Vec<Case>)> = vec![(
        "matrix".to_owned(),
        matrix::builtin(&world, model, &target, &clients),
    )];
    for (name, text) in case_files {
        suites.push((
            name.clone(),
            cases::parse(name, text, &world, &target, &clients)?,
        ));
    }
    let simulator = || {
        let mut s = Simulator::new(blueprint.cloud)
            .with_tenant_keys(blueprint.tenant_id.as_str(), own_keys.clone())
            .with_tenant_keys(FOREIGN_TENANT, foreign_keys.clone());
        s.sandbox_address = blueprint.sandbox_address.clone();
        s.named_values = blueprint.apim.named_values.clone();
        s
    };
    let mut runs = Vec::new();
    for (source, cases) in suites {
        for case in cases {
            let mut request = case.request.clone();
            request.llm_tokens = case.llm_tokens;
            // Each case starts from fresh counters: cases are independent of their order.
            let outcome = simulator().evaluate(model, &request, now);
            runs.push(CaseRun {
                passed: matches(&case, &outcome),
                source: source.clone(),
                case,
                outcome,
            });
        }
    }
    Ok(runs)
}

/// The deployment the matrix's requests name: the environment's first (`up` creates it).
pub fn first_deployment(blueprint: &Blueprint) -> &str {
    blueprint
        .foundry
        .deployments
        .first()
        .map_or("", |d| d.name.as_str())
}

fn matches(case: &Case, outcome: &Outcome) -> bool {
    case.expect.decision.is_none_or(|d| d == outcome.decision)
        && case.expect.status.is_none_or(|s| s == outcome.status)
        && case
            .expect
            .reason
            .as_ref()
            .is_none_or(|r| Some(r) == outcome.reason.as_ref())
}
