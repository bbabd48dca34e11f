//! `validate-azure-ad-token` decisions per second on one core with a warm key set, next to the
//! crypto library's raw RS256 verification of the same token in the same run.
//!
//! Run: `cargo bench --bench policy` (report the `thrpt` lines: elements/s = decisions/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use provision::policy::Document;
use provision::policy::model::PolicyDocument;
use provision::policy::simulator::{Request, Simulator};
use provision::policy::token::{Jwks, Jwt, KeySet, TokenSigner};

const TENANT: &str = "7e5a0000-0000-4000-8000-000000000a01";
const API: &str = "0a1a0000-0000-4000-8000-0000000000a1";
const CLIENT: &str = "0c1c0000-0000-4000-8000-0000000000c1";
const NOW: i64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let signer = TokenSigner::generate(&mut getrandom::SysRng, "bench-kid").unwrap();
    let token = signer.sign(&json!({
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"), "aud": API, "tid": TENANT,
        "azp": CLIENT, "ver": "2.0", "oid": "o", "scp": "llm.invoke", "nbf": NOW - 60, "iat": NOW - 60, "exp": NOW + 3600,
    }));
    let keys = KeySet::from_jwks(Jwks {
        keys: vec![signer.jwk()],
    })
    .unwrap();
    let xml = format!(
        r#"<policies><inbound><base /><validate-azure-ad-token tenant-id="{TENANT}" header-name="Authorization" failed-validation-httpcode="401" failed-validation-error-message="Unauthorized." output-token-variable-name="jwt"><client-application-ids><application-id>{CLIENT}</application-id></client-application-ids><audiences><audience>{API}</audience></audiences></validate-azure-ad-token></inbound></policies>"#
    );
    let policy = PolicyDocument::from_document(&Document::parse(&xml).unwrap()).unwrap();
    let mut simulator =
        Simulator::new(provision::cloud::Cloud::Public).with_tenant_keys(TENANT, keys);
    let mut request = Request::new(
        "POST",
        "/llm/openai/deployments/gpt-4o-mini/chat/completions",
    );
    request
        .headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    assert_eq!(simulator.evaluate(&policy, &request, NOW).status, 200);

    // The raw operation: RustCrypto's RSA PKCS#1 v1.5 verify of SHA-256(signing input), key decoded once.
    let jwt = Jwt::parse(&token).unwrap();
    let jwk = signer.jwk();
    let b64 = |s: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap()
    };
    let public = PublicKey::new(
        BoxedUint::from_be_slice_vartime(&b64(jwk.n.as_deref().unwrap())),
        BoxedUint::from_be_slice_vartime(&b64(jwk.e.as_deref().unwrap())),
    )
    .unwrap();
    assert_eq!(public.n().bit_width(), 2048);
    let (input, signature) = (jwt.signing_input().to_vec(), jwt.signature().to_vec());

    // Paired rounds: this machine's speed drifts (shared cores), so the ratio is taken per round,
    // raw and decision back to back, and the median over rounds is reported.
    let mut ratios = Vec::new();
    let (mut raw_rates, mut decision_rates) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let start = std::time::Instant::now();
        for _ in 0..100 {
            public
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(&input),
                    &signature,
                )
                .unwrap();
        }
        let raw = start.elapsed().as_secs_f64() / 100.0;
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(simulator.evaluate(&policy, &request, NOW).status, 200);
        }
        let decision = start.elapsed().as_secs_f64() / 100.0;
        ratios.push(raw / decision);
        raw_rates.push(1.0 / raw);
        decision_rates.push(1.0 / decision);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "paired rounds (30 x 100): raw RS256 verify {:.0}/s, validate-azure-ad-token decisions {:.0}/s, decision/raw = {:.1}% (median)",
        median(&mut raw_rates),
        median(&mut decision_rates),
        100.0 * median(&mut ratios)
    );

    let mut group = c.benchmark_group("rs256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_verify", |b| {
        b.iter(|| {
            public
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(&input),
                    &signature,
                )
                .unwrap()
        })
    });
    group.bench_function("validate_azure_ad_token_decision", |b| {
        b.iter(|| assert_eq!(simulator.evaluate(&policy, &request, NOW).status, 200))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
