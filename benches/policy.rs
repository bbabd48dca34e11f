//! `validate-azure-ad-token` decisions per second on one core with a warm key set, next to the
//! crypto library's raw RS256 verification of the same token in the same run.
//!
//! Run: `cargo bench --bench policy` (report the `thrpt` lines: elements/s = decisions/s).
//! `benches/rsa_ratio.sh` runs only the paired rounds (`-- paired-rounds-only`, which no
//! criterion group matches), for `RSA_RATIO_SECONDS` seconds, between two `openssl speed` runs,
//! and reads the `decisions_per_second=` line.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

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
        Simulator::new(provision::cloud::Cloud::Public).with_tenant_keys(TENANT, keys.clone());
    let mut request = Request::new(
        "POST",
        "/llm/openai/deployments/gpt-4o-mini/chat/completions",
    );
    request
        .headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    assert_eq!(simulator.evaluate(&policy, &request, NOW).status, 200);

    // The raw operation: the key set's own RS256 verify (the library the simulator uses, its key
    // prepared once) of the same token.
    let jwt = Jwt::parse(&token).unwrap();
    let kid = jwt.kid.clone().unwrap();
    let (input, signature) = (jwt.signing_input().to_vec(), jwt.signature().to_vec());
    let verify = || keys.verify_rs256(&kid, &input, &signature).unwrap();

    let seconds: f64 = std::env::var("RSA_RATIO_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let mut ratios = Vec::new();
    let (mut raw_rates, mut decision_rates) = (Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    while ratios.len() < 30 || started.elapsed().as_secs_f64() < seconds {
        let start = std::time::Instant::now();
        for _ in 0..100 {
            verify();
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
    let rounds = ratios.len();
    println!(
        "paired rounds ({rounds} x 100): raw RS256 verify {:.0}/s, validate-azure-ad-token decisions {:.0}/s, decision/raw = {:.1}% (median)",
        median(&mut raw_rates),
        median(&mut decision_rates),
        100.0 * median(&mut ratios)
    );
    println!("decisions_per_second={:.0}", median(&mut decision_rates));

    let mut group = c.benchmark_group("rs256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_verify", |b| b.iter(verify));
    group.bench_function("validate_azure_ad_token_decision", |b| {
        b.iter(|| assert_eq!(simulator.evaluate(&policy, &request, NOW).status, 200))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
