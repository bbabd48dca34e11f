//! Hostile policy, token and key-set inputs: the binary refuses them with exit 1 and a message
//! (never a crash), and every phase of the policy engine stays fast on the shapes that used to
//! blow up. Property tests feed random and adversarial bytes to every parser.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::project::Project;
use provision::cloud::Cloud;
use provision::policy::model::PolicyDocument;
use provision::policy::simulator::{Decision, Request, Simulator};
use provision::policy::token::{Jwks, Jwt, KeySet, TokenSigner};
use provision::policy::{Document, LintContext, canonical, diff, lint};

fn run(project: &Project, args: &[&str]) -> (i32, String, String) {
    let out = project.provision().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn nested(depth: usize) -> String {
    format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
}

const SMALL: &str = "<policies><inbound><base /></inbound></policies>";

/// `policy eval` and `policy diff` on one bad policy file: both exit 1 with `message` (and its
/// hint) on stderr, promptly.
fn both_refuse(project: &Project, file: &str, message: &str) {
    let started = Instant::now();
    let eval = run(
        project,
        &[
            "policy",
            "eval",
            "--policy",
            file,
            "--token",
            "x",
            "--jwks",
            "jwks.json",
        ],
    );
    let diff_old = run(project, &["policy", "diff", file, "small.xml"]);
    let diff_new = run(project, &["policy", "diff", "small.xml", file]);
    for (code, stdout, stderr) in [eval, diff_old, diff_new] {
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, message);
    }
    // Three runs of the binary, generously: the refusal reads no more than the limit.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

fn project() -> Project {
    let project = Project::new();
    project.write("small.xml", SMALL);
    project.write("jwks.json", r#"{"keys": []}"#);
    project
}

const SIZE_ERROR: &str = "the policy is larger than 262144 bytes (256 KiB), the most APIM accepts in one policy document\nhint: APIM refuses a policy document over 256 KiB; move shared parts into policy fragments (<include-fragment>)\n";

#[test]
fn a_policy_nested_40000_deep_is_refused_with_exit_1_not_a_stack_overflow() {
    let project = project();
    // 40,000 levels take 280,000 bytes: over the size limit, which is checked first.
    project.write("deep.xml", &nested(40_000));
    both_refuse(
        &project,
        "deep.xml",
        &format!("error: deep.xml:1:262145: {SIZE_ERROR}"),
    );
    // 30,000 levels fit in the size limit and stop at the 257th.
    project.write("deep.xml", &nested(30_000));
    both_refuse(
        &project,
        "deep.xml",
        "error: deep.xml:1:769: <a> is nested deeper than 256 levels\nhint: no APIM policy is shaped like this; check that the file is the policy you meant\n",
    );
}

#[test]
fn a_million_sibling_elements_are_refused_promptly_by_size() {
    let project = project();
    project.write(
        "wide.xml",
        &format!("<policies>{}</policies>", "<a/>".repeat(1_000_000)),
    );
    both_refuse(
        &project,
        "wide.xml",
        &format!("error: wide.xml:1:262145: {SIZE_ERROR}"),
    );
}

#[test]
fn a_policy_that_is_not_utf8_is_refused_at_the_first_bad_byte() {
    let project = project();
    std::fs::write(
        project.path("latin1.xml"),
        b"<policies>\n  <a v=\"caf\xe9\"/>\n</policies>",
    )
    .unwrap();
    let (code, _, stderr) = run(&project, &["policy", "diff", "latin1.xml", "small.xml"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: latin1.xml:2:12: not UTF-8 text\nhint: save the policy as UTF-8\n"
    );
}

#[test]
fn a_token_file_over_64_kib_is_refused_and_a_token_over_16_kib_is_jwt_invalid() {
    let project = project();
    project.write("policy.xml", SMALL);
    project.write("huge.jwt", &"a".repeat(64 * 1024 + 1));
    let (code, stdout, stderr) = run(
        &project,
        &[
            "policy",
            "eval",
            "--policy",
            "policy.xml",
            "--token-file",
            "huge.jwt",
            "--jwks",
            "jwks.json",
        ],
    );
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        "error: huge.jwt: larger than 65536 bytes, which no token is\nhint: pass the file that holds just the token (Entra tokens are a few KB)\n"
    );

    let inbound = r#"<policies><inbound><validate-azure-ad-token tenant-id="7e5a0000-0000-4000-8000-000000000a01"><client-application-ids><application-id>0c1c0000-0000-4000-8000-0000000000c1</application-id></client-application-ids></validate-azure-ad-token></inbound></policies>"#;
    project.write("policy.xml", inbound);
    project.write("big.jwt", &format!("{}\n", "a".repeat(20_000)));
    let (code, stdout, stderr) = run(
        &project,
        &[
            "policy",
            "eval",
            "--policy",
            "policy.xml",
            "--token-file",
            "big.jwt",
            "--jwks",
            "jwks.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["reason"], "JwtInvalid");
    assert_eq!(
        out["detail"],
        "the token is 20000 bytes; a JWT over 16384 bytes is refused (Entra tokens are a few KB)"
    );
}

#[test]
fn a_jwks_file_over_256_kib_is_refused() {
    let project = project();
    project.write(
        "big.json",
        &format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(300_000)),
    );
    let (code, _, stderr) = run(
        &project,
        &[
            "policy",
            "eval",
            "--policy",
            "small.xml",
            "--token",
            "x",
            "--jwks",
            "big.json",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: big.json:the key set is larger than 262144 bytes; Entra's are a few KB\n"
    );
}

// ---- Every phase on the shapes from the field trial, each under a time bound.

/// Parse, canonical form, diff against itself and lint; the document must parse.
fn every_phase(text: &str) -> Duration {
    let started = Instant::now();
    let doc = Document::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let c = canonical(&doc);
    assert_eq!(canonical(&Document::parse(&c.to_xml()).unwrap()), c);
    assert_eq!(diff(&doc, &doc), []);
    lint(text, &lint_context());
    let _ = PolicyDocument::from_document(&doc);
    started.elapsed()
}

fn lint_context() -> LintContext<'static> {
    LintContext {
        tenant_id: "7e5a0000-0000-4000-8000-000000000a01",
        api_app_id: "0a1a0000-0000-4000-8000-0000000000a1",
        client_app_ids: &[],
    }
}

#[test]
fn every_phase_is_fast_on_the_largest_shapes_the_limits_allow() {
    let limit = Duration::from_secs(5);
    let deep = nested(provision::policy::MAX_DEPTH);
    // Each repeated section is a lint error of its own.
    let wide = format!(
        "<policies>{}</policies>",
        "<inbound/>".repeat(provision::policy::MAX_ELEMENTS - 1)
    );
    assert_eq!(
        lint(&wide, &lint_context())
            .iter()
            .filter(|f| f.message == "section <inbound> appears twice")
            .count(),
        provision::policy::MAX_ELEMENTS - 2
    );
    let attributes: String = (0..provision::policy::MAX_ATTRIBUTES)
        .map(|i| format!(" a{i}=\"@(x &lt; {i})\""))
        .collect();
    let attributes = format!("<policies><inbound><a{attributes}/></inbound></policies>");
    let elapsed: Vec<Duration> = [deep, wide, attributes]
        .iter()
        .map(|text| every_phase(text))
        .collect();
    assert!(elapsed.iter().all(|e| *e < limit), "{elapsed:?}");
}

// ---- Property tests: nothing panics, everything answers in time.

const CASE_LIMIT: Duration = Duration::from_secs(2);

fn signer() -> &'static TokenSigner {
    static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
    SIGNER.get_or_init(|| TokenSigner::generate(&mut getrandom::SysRng, "fuzz-kid").unwrap())
}

/// Adversarial policy texts: random bytes, markup fragments in random order (unbalanced tags,
/// entities, DOCTYPEs, CDATA, raw expressions, NUL, invalid UTF-8) and generated shapes.
fn policy_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<policies>".to_owned()),
        Just("</policies>".to_owned()),
        Just("<inbound>".to_owned()),
        Just("</inbound>".to_owned()),
        Just("<a>".to_owned()),
        Just("</a>".to_owned()),
        Just("<b/>".to_owned()),
        Just("<x v=\"@(a < b && c(\"x\"))\" w='1'/>".to_owned()),
        Just("<x v=\"@(".to_owned()),
        Just("<x a=\"1\" a=\"2\"/>".to_owned()),
        Just("&amp;&lt;&#0;&#x110000;&#xD800;&lol;&".to_owned()),
        Just("<!DOCTYPE p [<!ENTITY lol \"lol\"><!ENTITY l2 \"&lol;&lol;\">]>".to_owned()),
        Just("<![CDATA[<a>]]>".to_owned()),
        Just("<!-- c -->".to_owned()),
        Just("<?pi x?>".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{FFFD}é→".to_owned()),
        Just("\r\n".to_owned()),
        "[a-z\"'=<>/ ]{0,12}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(fragment, 0..64).prop_map(|f| f.concat()),
        (0usize..2_000).prop_map(|d| format!("<policies>{}", "<a>".repeat(d))),
        (200usize..2_000).prop_map(nested),
        (0usize..3_000).prop_map(|n| {
            let attributes: String = (0..n).map(|i| format!(" a{}=\"{i}\"", i % 1_500)).collect();
            format!("<policies{attributes}/>")
        }),
        (0usize..20_000).prop_map(|n| format!("<policies>{}</policies>", "<a/>".repeat(n))),
    ]
}

/// Adversarial tokens: random text, three random parts, and tokens signed with our key whose
/// header or claims are hostile (deep JSON, absurd times, wrong types).
fn token() -> impl Strategy<Value = String> {
    let b64 = |v: &Value| provision::policy::token::encode_json(v);
    let time = prop_oneof![
        any::<i64>().prop_map(|t| json!(t)),
        any::<u64>().prop_map(|t| json!(t)),
        any::<f64>().prop_map(|t| json!(t)),
        Just(json!("1800000000")),
        Just(json!(null)),
        Just(json!([1, 2])),
    ];
    prop_oneof![
        ".{0,300}",
        "[A-Za-z0-9_=-]{0,80}\\.[A-Za-z0-9_=-]{0,80}\\.[A-Za-z0-9_=-]{0,80}",
        (time.clone(), time.clone(), time).prop_map(|(exp, nbf, iat)| {
            signer().sign(&json!({
                "iss": "https://login.microsoftonline.com/7e5a0000-0000-4000-8000-000000000a01/v2.0",
                "tid": "7e5a0000-0000-4000-8000-000000000a01",
                "aud": "0a1a0000-0000-4000-8000-0000000000a1",
                "azp": "0c1c0000-0000-4000-8000-0000000000c1",
                "exp": exp, "nbf": nbf, "iat": iat,
            }))
        }),
        (1usize..5_000).prop_map(move |d| {
            let deep: Value = serde_json::from_str(&format!(
                "{}{}",
                "[".repeat(d.min(100)),
                "]".repeat(d.min(100))
            ))
            .unwrap();
            format!(
                "{}.{}.",
                b64(&json!({"alg": "RS256", "kid": "fuzz-kid"})),
                provision::policy::token::encode_json(&json!({ "a": deep }))
                    .repeat(d / 100 + 1)
            )
        }),
        (0usize..40_000).prop_map(|n| format!("{}.e30.", "e".repeat(n))),
    ]
}

fn jwks_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (0usize..100_000).prop_map(|d| format!("{{\"keys\": {}{}}}", "[".repeat(d), "]".repeat(d))),
        (0usize..100).prop_map(|n| {
            serde_json::to_string(&Jwks {
                keys: vec![signer().jwk(); n],
            })
            .unwrap()
        }),
        "\\{\"keys\": \\[\\{\"kty\": \"RSA\", \"kid\": \"k\", \"n\": \"[A-Za-z0-9_-]{0,700}\", \"e\": \"[A-Za-z0-9_-]{0,8}\"\\}\\]\\}",
    ]
}

fn simulator_policy() -> &'static PolicyDocument {
    static POLICY: OnceLock<PolicyDocument> = OnceLock::new();
    POLICY.get_or_init(|| {
        let xml = r#"<policies><inbound>
            <validate-azure-ad-token tenant-id="7e5a0000-0000-4000-8000-000000000a01">
              <client-application-ids><application-id>0c1c0000-0000-4000-8000-0000000000c1</application-id></client-application-ids>
              <audiences><audience>0a1a0000-0000-4000-8000-0000000000a1</audience></audiences>
            </validate-azure-ad-token>
            <validate-jwt header-name="Authorization" clock-skew="9223372036854775807" require-expiration-time="false">
              <openid-config url="https://login.microsoftonline.com/7e5a0000-0000-4000-8000-000000000a01/v2.0/.well-known/openid-configuration" />
            </validate-jwt>
          </inbound></policies>"#;
        PolicyDocument::from_document(&Document::parse(xml).unwrap()).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_policy_text_is_parsed_or_refused_in_time(text in policy_text()) {
        let started = Instant::now();
        if let Ok(doc) = Document::parse(&text) {
            let c = canonical(&doc);
            prop_assert_eq!(canonical(&Document::parse(&c.to_xml()).unwrap()), c);
            prop_assert_eq!(diff(&doc, &doc), []);
            let _ = PolicyDocument::from_document(&doc);
        }
        lint(&text, &lint_context());
        prop_assert!(started.elapsed() < CASE_LIMIT, "{:?}", started.elapsed());
    }

    #[test]
    fn any_token_is_parsed_or_refused_and_the_simulator_decides_in_time(token in token()) {
        let started = Instant::now();
        let _ = Jwt::parse(&token);
        let keys = KeySet::from_jwks(Jwks { keys: vec![signer().jwk()] }).unwrap();
        let mut simulator = Simulator::new(Cloud::Public)
            .with_tenant_keys("7e5a0000-0000-4000-8000-000000000a01", keys);
        let mut request = Request::new("POST", "/llm");
        request.headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        let outcome = simulator.evaluate(simulator_policy(), &request, 1_800_000_000);
        prop_assert!(matches!(outcome.decision, Decision::Allow | Decision::Deny));
        prop_assert!(started.elapsed() < CASE_LIMIT, "{:?}", started.elapsed());
    }

    #[test]
    fn any_jwks_is_read_or_refused_in_time(text in jwks_text()) {
        let started = Instant::now();
        let _ = KeySet::from_json(&text);
        prop_assert!(started.elapsed() < CASE_LIMIT, "{:?}", started.elapsed());
    }
}
