//! One test per rule and rejection reason, with tokens signed in the test.

use serde_json::{Value as Json, json};

use super::*;
use crate::policy::document::Document;
use crate::policy::token::tests::signer;
use crate::policy::token::{Jwks, KeySet, TokenSigner, encode_json, sign_hs256};

const TENANT: &str = "7e5a0000-0000-4000-8000-000000000a01";
const FOREIGN: &str = "f0f0f0f0-0000-4000-8000-000000000f01";
const API: &str = "0a1a0000-0000-4000-8000-0000000000a1";
const CLIENT: &str = "0c1c0000-0000-4000-8000-0000000000c1";
const OTHER_CLIENT: &str = "0c1c0000-0000-4000-8000-0000000000c9";
const NOW: i64 = 1_800_000_000;

fn policy(inbound: &str) -> PolicyDocument {
    let xml = format!(
        "<policies><inbound><base />{inbound}</inbound><backend><base /></backend></policies>"
    );
    PolicyDocument::from_document(&Document::parse(&xml).unwrap()).unwrap()
}

fn aad(extra_attrs: &str, children: &str) -> String {
    format!(
        r#"<validate-azure-ad-token tenant-id="{TENANT}" {extra_attrs} failed-validation-error-message="Unauthorized." output-token-variable-name="jwt">
             <client-application-ids><application-id>{CLIENT}</application-id></client-application-ids>
             <audiences><audience>{API}</audience></audiences>{children}
           </validate-azure-ad-token>"#
    )
}

fn keys() -> KeySet {
    KeySet::from_jwks(Jwks {
        keys: vec![signer().jwk()],
    })
    .unwrap()
}

fn simulator() -> Simulator {
    Simulator::new(Cloud::Public).with_tenant_keys(TENANT, keys())
}

fn v2_claims() -> Json {
    json!({
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "aud": API, "tid": TENANT, "azp": CLIENT, "ver": "2.0", "oid": "user-1", "sub": "s",
        "scp": "llm.invoke", "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
    })
}

fn with(mut claims: Json, changes: Json) -> Json {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn request(token: &str) -> Request {
    let mut r = Request::new("POST", "/llm/chat/completions");
    r.headers
        .push(("Authorization".into(), format!("Bearer {token}")));
    r
}

fn run(inbound: &str, request: &Request) -> Outcome {
    simulator().evaluate(&policy(inbound), request, NOW)
}

fn reason(inbound: &str, request: &Request) -> (Decision, u16, Option<String>) {
    let o = run(inbound, request);
    (o.decision, o.status, o.reason)
}

fn denied(reason: &str) -> (Decision, u16, Option<String>) {
    (Decision::Deny, 401, Some(reason.to_owned()))
}

#[test]
fn valid_v2_token_passes_and_reports_effects() {
    let inbound = format!(
        r#"{}<set-backend-service backend-id="foundry" /><authentication-managed-identity resource="https://cognitiveservices.azure.com" />"#,
        aad("", "")
    );
    let o = run(&inbound, &request(&signer().sign(&v2_claims())));
    assert_eq!(
        (o.decision, o.status, o.reason.as_deref()),
        (Decision::Allow, 200, None)
    );
    assert_eq!(
        o.effects[0],
        json!({"policy": "set-backend-service", "backend_id": "foundry"})
    );
    assert_eq!(
        o.effects[1]["resource"],
        "https://cognitiveservices.azure.com"
    );
    assert!(o.not_simulated.is_empty());
}

#[test]
fn valid_v1_token_uses_appid_and_the_sts_issuer() {
    let claims = with(
        v2_claims(),
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0", "azp": null, "appid": CLIENT}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&claims))),
        (Decision::Allow, 200, None)
    );
    // In a v1 token `azp` means nothing: a v1 token without `appid` is not from an allowed client.
    let claims = with(
        v2_claims(),
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&claims))),
        denied("TokenClientApplicationNotAllowed")
    );
}

#[test]
fn missing_header_and_wrong_scheme() {
    let mut r = Request::new("GET", "/");
    assert_eq!(reason(&aad("", ""), &r), denied("TokenNotPresent"));
    r.headers.push((
        "authorization".into(),
        format!("Basic {}", signer().sign(&v2_claims())),
    ));
    assert_eq!(reason(&aad("", ""), &r), denied("TokenSchemeInvalid"));
    let r = Request {
        headers: vec![("Authorization".into(), signer().sign(&v2_claims()))],
        ..Request::new("GET", "/")
    };
    assert_eq!(reason(&aad("", ""), &r), denied("TokenSchemeInvalid"));
    // The scheme is case-insensitive.
    let r = Request {
        headers: vec![(
            "Authorization".into(),
            format!("bearer {}", signer().sign(&v2_claims())),
        )],
        ..Request::new("GET", "/")
    };
    assert_eq!(reason(&aad("", ""), &r).0, Decision::Allow);
}

#[test]
fn custom_header_and_query_parameter_carry_the_bare_token() {
    let token = signer().sign(&v2_claims());
    let r = Request {
        headers: vec![("x-token".into(), token.clone())],
        ..Request::new("GET", "/")
    };
    assert_eq!(
        reason(&aad(r#"header-name="x-token""#, ""), &r).0,
        Decision::Allow
    );
    let r = Request {
        query: vec![("access_token".into(), token)],
        ..Request::new("GET", "/")
    };
    assert_eq!(
        reason(&aad(r#"query-parameter-name="access_token""#, ""), &r).0,
        Decision::Allow
    );
    assert_eq!(
        reason(
            &aad(r#"query-parameter-name="access_token""#, ""),
            &Request::new("GET", "/")
        ),
        denied("TokenNotPresent")
    );
}

#[test]
fn malformed_tokens_are_jwt_invalid() {
    assert_eq!(
        reason(&aad("", ""), &request("not.a-token")),
        denied("JwtInvalid")
    );
    assert_eq!(reason(&aad("", ""), &request("abc")), denied("JwtInvalid"));
}

#[test]
fn unsigned_and_hmac_tokens_are_refused() {
    let none = format!(
        "{}.{}.",
        encode_json(&json!({"alg": "none", "typ": "JWT"})),
        encode_json(&v2_claims())
    );
    let o = run(&aad("", ""), &request(&none));
    assert_eq!(
        (o.reason.as_deref(), o.detail.as_deref()),
        (
            Some("TokenSignatureInvalid"),
            Some("the token is unsigned (`alg: none`)")
        )
    );
    // Key confusion: HS256 keyed with the RSA public key.
    let hs = sign_hs256(
        &signer().public_modulus(),
        &json!({"alg": "HS256", "kid": "test-kid"}),
        &v2_claims(),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&hs)),
        denied("TokenSignatureInvalid")
    );
}

#[test]
fn bad_signature_and_unknown_kid() {
    let token = signer().sign(&v2_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = encode_json(&with(v2_claims(), json!({"oid": "someone-else"})));
    assert_eq!(
        reason(&aad("", ""), &request(&parts.join("."))),
        denied("TokenSignatureInvalid")
    );
    let other = signer().sign_with_header(
        &json!({"alg": "RS256", "kid": "rotated-away"}),
        &v2_claims(),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&other)),
        denied("TokenSignatureKeyNotFound")
    );
    let no_kid = signer().sign_with_header(&json!({"alg": "RS256"}), &v2_claims());
    assert_eq!(
        reason(&aad("", ""), &request(&no_kid)),
        denied("TokenSignatureKeyNotFound")
    );
}

#[test]
fn lifetime_with_five_minutes_of_skew() {
    let expired = with(
        v2_claims(),
        json!({"exp": NOW - AZURE_AD_CLOCK_SKEW_SECONDS}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&expired))),
        denied("TokenExpired")
    );
    let within_skew = with(
        v2_claims(),
        json!({"exp": NOW - AZURE_AD_CLOCK_SKEW_SECONDS + 1}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&within_skew))).0,
        Decision::Allow
    );
    let future = with(
        v2_claims(),
        json!({"nbf": NOW + AZURE_AD_CLOCK_SKEW_SECONDS + 1}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&future))),
        denied("TokenNotYetValid")
    );
    let no_exp = with(v2_claims(), json!({"exp": null}));
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&no_exp))),
        denied("JwtInvalid")
    );
}

#[test]
fn issuer_and_tenant_must_be_ours() {
    let foreign = with(
        v2_claims(),
        json!({"iss": format!("https://login.microsoftonline.com/{FOREIGN}/v2.0"), "tid": FOREIGN}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&foreign))),
        denied("TokenIssuerNotAllowed")
    );
    let mixed = with(v2_claims(), json!({"tid": FOREIGN}));
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&mixed))),
        denied("TokenIssuerNotAllowed")
    );
    let gov = with(
        v2_claims(),
        json!({"iss": format!("https://login.microsoftonline.us/{TENANT}/v2.0")}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&gov))),
        denied("TokenIssuerNotAllowed")
    );
    // The same token is fine for a policy that names the US Government authority.
    assert_eq!(
        reason(
            &aad(
                r#"authentication-endpoint="https://login.microsoftonline.us""#,
                ""
            ),
            &request(&signer().sign(&gov))
        )
        .0,
        Decision::Allow
    );
}

#[test]
fn common_tenant_accepts_any_tenant_with_its_own_keys() {
    let inbound = aad("", "").replace(
        &format!("tenant-id=\"{TENANT}\""),
        "tenant-id=\"organizations\"",
    );
    let foreign = with(
        v2_claims(),
        json!({"iss": format!("https://login.microsoftonline.com/{FOREIGN}/v2.0"), "tid": FOREIGN}),
    );
    let mut sim = simulator().with_tenant_keys(FOREIGN, keys());
    assert_eq!(
        sim.evaluate(&policy(&inbound), &request(&signer().sign(&foreign)), NOW)
            .decision,
        Decision::Allow
    );
    let mut sim = simulator();
    let o = sim.evaluate(&policy(&inbound), &request(&signer().sign(&foreign)), NOW);
    assert_eq!(
        o.decision,
        Decision::Unknown,
        "no keys for that tenant: not simulated, not guessed"
    );
    assert_eq!(
        o.not_simulated[0].what,
        format!("no signing keys were given for tenant {FOREIGN}")
    );
}

#[test]
fn audience_client_and_backend_ids() {
    let graph = with(
        v2_claims(),
        json!({"aud": "00000003-0000-0000-c000-000000000000"}),
    );
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&graph))),
        denied("TokenAudienceNotAllowed")
    );
    let other = with(v2_claims(), json!({"azp": OTHER_CLIENT}));
    assert_eq!(
        reason(&aad("", ""), &request(&signer().sign(&other))),
        denied("TokenClientApplicationNotAllowed")
    );
    let backend = format!(
        "<backend-application-ids><application-id>{API}</application-id></backend-application-ids>"
    );
    let api_uri = with(v2_claims(), json!({"aud": format!("api://{API}")}));
    let inbound = aad("", &backend).replace(
        &format!("<audiences><audience>{API}</audience></audiences>"),
        "",
    );
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&api_uri))).0,
        Decision::Allow
    );
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&graph))),
        denied("TokenAudienceNotAllowed")
    );
}

#[test]
fn required_claims_all_any_and_separator() {
    let all = r#"<required-claims><claim name="roles" match="all"><value>reader</value><value>writer</value></claim></required-claims>"#;
    let any = r#"<required-claims><claim name="roles" match="any"><value>reader</value><value>writer</value></claim></required-claims>"#;
    let sep = r#"<required-claims><claim name="scp" match="all" separator=" "><value>llm.invoke</value></claim></required-claims>"#;
    let reader = signer().sign(&with(v2_claims(), json!({"roles": ["reader"]})));
    let both = signer().sign(&with(v2_claims(), json!({"roles": ["reader", "writer"]})));
    let none = signer().sign(&v2_claims());
    assert_eq!(
        reason(&aad("", all), &request(&reader)),
        denied("TokenClaimValueNotAllowed")
    );
    assert_eq!(reason(&aad("", all), &request(&both)).0, Decision::Allow);
    assert_eq!(reason(&aad("", any), &request(&reader)).0, Decision::Allow);
    let o = run(&aad("", any).replace("Unauthorized.", ""), &request(&none));
    assert_eq!(o.reason.as_deref(), Some("TokenClaimNotFound"));
    let scopes = signer().sign(&with(v2_claims(), json!({"scp": "openid llm.invoke"})));
    assert_eq!(reason(&aad("", sep), &request(&scopes)).0, Decision::Allow);
    let wrong = signer().sign(&with(v2_claims(), json!({"scp": "openid llm.invokes"})));
    assert_eq!(
        reason(&aad("", sep), &request(&wrong)),
        denied("TokenClaimValueNotAllowed")
    );
}

#[test]
fn failure_status_message_and_body() {
    let inbound = aad(r#"failed-validation-httpcode="403""#, "");
    let o = run(&inbound, &Request::new("GET", "/"));
    assert_eq!(
        (o.status, o.message.as_deref()),
        (403, Some("Unauthorized."))
    );
    assert_eq!(
        o.body().unwrap(),
        r#"{"message":"Unauthorized.","statusCode":403}"#
    );
    let default = aad("", "").replace(r#" failed-validation-error-message="Unauthorized.""#, "");
    assert_eq!(
        run(&default, &Request::new("GET", "/")).message.as_deref(),
        Some("JWT not present.")
    );
}

#[test]
fn named_values_resolve_or_are_reported() {
    let inbound = aad("", "").replace(
        &format!("tenant-id=\"{TENANT}\""),
        "tenant-id=\"{{entra-tenant}}\"",
    );
    let token = signer().sign(&v2_claims());
    let o = run(&inbound, &request(&token));
    assert_eq!(o.decision, Decision::Unknown);
    assert_eq!(
        o.not_simulated[0].what,
        "named value `{{entra-tenant}}` was not given"
    );
    let mut sim = simulator();
    sim.named_values
        .insert("entra-tenant".into(), TENANT.into());
    assert_eq!(
        sim.evaluate(&policy(&inbound), &request(&token), NOW)
            .decision,
        Decision::Allow
    );
}

#[test]
fn validate_jwt_with_openid_config_issuers_and_skew() {
    let inbound = format!(
        r#"<validate-jwt header-name="Authorization" require-scheme="Bearer" clock-skew="60" failed-validation-error-message="no">
             <openid-config url="https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration" />
             <audiences><audience>{API}</audience></audiences>
             <issuers><issuer>https://login.microsoftonline.com/{TENANT}/v2.0</issuer></issuers>
             <required-claims><claim name="azp" match="any"><value>{CLIENT}</value></claim></required-claims>
           </validate-jwt>"#
    );
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&v2_claims()))).0,
        Decision::Allow
    );
    let late = with(v2_claims(), json!({"exp": NOW - 60}));
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&late))),
        denied("TokenExpired")
    );
    let v1 = with(
        v2_claims(),
        json!({"iss": format!("https://sts.windows.net/{TENANT}/")}),
    );
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&v1))),
        denied("TokenIssuerNotAllowed")
    );
    let other = with(v2_claims(), json!({"azp": OTHER_CLIENT}));
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&other))),
        denied("TokenClaimValueNotAllowed")
    );
}

#[test]
fn validate_jwt_inline_keys() {
    let jwk = signer().jwk();
    let inbound = format!(
        r#"<validate-jwt header-name="Authorization"><issuer-signing-keys><key id="test-kid" n="{}" e="{}" /></issuer-signing-keys></validate-jwt>"#,
        jwk.n.unwrap(),
        jwk.e.unwrap()
    );
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&v2_claims()))).0,
        Decision::Allow
    );
    let stranger = TokenSigner::generate(&mut getrandom::SysRng, "test-kid").unwrap();
    assert_eq!(
        reason(&inbound, &request(&stranger.sign(&v2_claims()))),
        denied("TokenSignatureInvalid")
    );
}

#[test]
fn check_header_and_set_header() {
    let inbound = r#"<set-header name="x-team" exists-action="skip"><value>default</value></set-header>
        <check-header name="x-team" failed-check-httpcode="403" failed-check-error-message="team not allowed" ignore-case="true"><value>AI</value><value>default</value></check-header>"#;
    assert_eq!(
        reason(inbound, &Request::new("GET", "/")).0,
        Decision::Allow
    );
    let r = Request {
        headers: vec![("X-Team".into(), "ai".into())],
        ..Request::new("GET", "/")
    };
    assert_eq!(reason(inbound, &r).0, Decision::Allow);
    let r = Request {
        headers: vec![("X-Team".into(), "finance".into())],
        ..Request::new("GET", "/")
    };
    assert_eq!(
        reason(inbound, &r),
        (Decision::Deny, 403, Some("HeaderValueNotAllowed".into()))
    );
    let missing = r#"<check-header name="x-team" failed-check-httpcode="401" failed-check-error-message="m" />"#;
    assert_eq!(
        reason(missing, &Request::new("GET", "/")),
        (Decision::Deny, 401, Some("HeaderNotFound".into()))
    );
}

#[test]
fn rate_limit_by_key_counts_over_simulated_time() {
    let doc = policy(
        r#"<rate-limit-by-key calls="2" renewal-period="10" counter-key="@(context.Request.IpAddress)" />"#,
    );
    let mut sim = simulator();
    let r = Request::new("GET", "/");
    assert_eq!(sim.evaluate(&doc, &r, NOW).decision, Decision::Allow);
    assert_eq!(sim.evaluate(&doc, &r, NOW + 1).decision, Decision::Allow);
    let third = sim.evaluate(&doc, &r, NOW + 2);
    assert_eq!(
        (third.status, third.reason.as_deref()),
        (429, Some("RateLimitExceeded"))
    );
    assert_eq!(
        third.response_headers,
        vec![("Retry-After".to_owned(), "8".to_owned())]
    );
    assert_eq!(
        sim.evaluate(&doc, &r, NOW + 10).decision,
        Decision::Allow,
        "the first call left the window"
    );
    let other_ip = Request {
        ip: "10.0.0.9".into(),
        ..r
    };
    assert_eq!(
        sim.evaluate(&doc, &other_ip, NOW + 2).decision,
        Decision::Allow,
        "counters are per key"
    );
}

#[test]
fn llm_token_limit_per_minute_and_quota() {
    let inbound = format!(
        r#"{}<llm-token-limit counter-key="@(((Jwt)context.Variables[&quot;jwt&quot;]).Claims.GetValueOrDefault(&quot;oid&quot;, &quot;anonymous&quot;))" tokens-per-minute="1000" token-quota="1500" token-quota-period="Hourly" remaining-tokens-header-name="x-remaining" />"#,
        aad("", "")
    );
    let doc = policy(&inbound);
    let mut sim = simulator();
    let mut r = request(&signer().sign(&v2_claims()));
    r.llm_tokens = 1000;
    let first = sim.evaluate(&doc, &r, NOW);
    assert_eq!(first.decision, Decision::Allow);
    assert_eq!(
        first.response_headers,
        vec![("x-remaining".to_owned(), "1000".to_owned())]
    );
    let limited = sim.evaluate(&doc, &r, NOW + 30);
    assert_eq!(
        (limited.status, limited.reason.as_deref()),
        (429, Some("TokenLimitExceeded"))
    );
    assert_eq!(
        limited.response_headers,
        vec![("Retry-After".to_owned(), "30".to_owned())]
    );
    r.llm_tokens = 600;
    assert_eq!(sim.evaluate(&doc, &r, NOW + 61).decision, Decision::Allow);
    let quota = sim.evaluate(&doc, &r, NOW + 122);
    assert_eq!(
        (quota.status, quota.reason.as_deref()),
        (403, Some("TokenQuotaExceeded"))
    );
    // Another caller (oid) has its own budget.
    let someone = request(&signer().sign(&with(v2_claims(), json!({"oid": "user-2"}))));
    assert_eq!(
        sim.evaluate(&doc, &someone, NOW + 122).decision,
        Decision::Allow
    );
}

#[test]
fn cors_preflight() {
    let inbound = r#"<cors allow-credentials="false"><allowed-origins><origin>https://app.example.com</origin></allowed-origins><allowed-methods preflight-result-max-age="300"><method>POST</method></allowed-methods><allowed-headers><header>authorization</header><header>content-type</header></allowed-headers></cors>"#;
    let preflight = |origin: &str, method: &str| Request {
        headers: vec![
            ("Origin".into(), origin.into()),
            ("Access-Control-Request-Method".into(), method.into()),
            (
                "Access-Control-Request-Headers".into(),
                "Authorization, Content-Type".into(),
            ),
        ],
        ..Request::new("OPTIONS", "/llm/chat")
    };
    let ok = run(inbound, &preflight("https://app.example.com", "POST"));
    assert_eq!((ok.decision, ok.status), (Decision::Respond, 200));
    assert!(ok.response_headers.contains(&(
        "Access-Control-Allow-Origin".to_owned(),
        "https://app.example.com".to_owned()
    )));
    assert!(
        ok.response_headers
            .contains(&("Access-Control-Max-Age".to_owned(), "300".to_owned()))
    );
    let bad = run(inbound, &preflight("https://evil.example.com", "POST"));
    assert_eq!(
        (bad.decision, bad.status, bad.response_headers.len()),
        (Decision::Respond, 200, 0)
    );
    assert_eq!(bad.effects[0]["preflight"], "rejected");
    let bad_method = run(inbound, &preflight("https://app.example.com", "DELETE"));
    assert_eq!(bad_method.effects[0]["preflight"], "rejected");
}

#[test]
fn return_response_answers_from_the_gateway() {
    let inbound = r#"<return-response><set-status code="418" reason="Teapot" /><set-header name="x-why" exists-action="override"><value>tea</value></set-header><set-body>short and stout</set-body></return-response><set-backend-service backend-id="never" />"#;
    let o = run(inbound, &Request::new("GET", "/"));
    assert_eq!((o.decision, o.status), (Decision::Respond, 418));
    assert_eq!(
        o.response_headers,
        vec![("x-why".to_owned(), "tea".to_owned())]
    );
    assert_eq!(
        o.effects,
        vec![
            json!({"policy": "return-response", "status": 418, "reason": "Teapot", "body": "short and stout"})
        ]
    );
}

#[test]
fn unknown_policies_and_expressions_are_reported_with_their_position() {
    let xml = "<policies>\n<inbound>\n  <choose><when condition=\"@(true)\"><set-variable name=\"a\" value=\"b\" /></when></choose>\n  <set-backend-service backend-id=\"@(context.Subscription.Id)\" />\n</inbound>\n</policies>";
    let doc = PolicyDocument::from_document(&Document::parse(xml).unwrap()).unwrap();
    let o = simulator().evaluate(&doc, &Request::new("GET", "/"), NOW);
    assert_eq!(o.decision, Decision::Allow);
    assert_eq!(
        o.not_simulated,
        vec![
            NotSimulated {
                policy: "choose".into(),
                line: 3,
                column: 3,
                what: "this policy is not simulated".into()
            },
            NotSimulated {
                policy: "set-backend-service".into(),
                line: 4,
                column: 24,
                what: "expression `@(context.Subscription.Id)`".into()
            },
        ]
    );
}

#[test]
fn token_from_an_expression_it_cannot_evaluate_is_unknown() {
    let inbound = aad(
        r#"token-value="@(context.Request.Body.As&lt;string&gt;())""#,
        "",
    );
    let o = run(&inbound, &Request::new("GET", "/"));
    assert_eq!(
        (o.decision, o.policy.as_deref()),
        (Decision::Unknown, Some("validate-azure-ad-token"))
    );
}

#[test]
fn exp_near_the_end_of_i64_is_malformed_instead_of_overflowing() {
    // `2^63-300` passed and `2^63-299` was "expired -9223372035058542569 s ago".
    for (exp, shown) in [
        (json!(i64::MAX - 300), "9223372036854775507"),
        (json!(i64::MAX - 299), "9223372036854775508"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!(-1), "-1"),
        (json!(253_402_300_800_i64), "253402300800"),
        (json!(1.8e9 + 0.5), "1800000000.5"),
        (json!("1800003600"), "\"1800003600\""),
    ] {
        let token = signer().sign(&with(v2_claims(), json!({ "exp": exp })));
        let o = run(&aad("", ""), &request(&token));
        assert_eq!(
            (o.decision, o.status, o.reason.as_deref()),
            (Decision::Deny, 401, Some("JwtInvalid"))
        );
        assert_eq!(
            o.detail.as_deref(),
            Some(format!("claim `exp` must be a whole number of seconds from 0 to 253402300799 (9999-12-31T23:59:59Z), not {shown}").as_str())
        );
    }
    // The last second of 9999 and a whole number written as a float are still times.
    for exp in [json!(253_402_300_799_i64), json!(1.8e9 + 3600.0)] {
        let token = signer().sign(&with(v2_claims(), json!({ "exp": exp })));
        assert_eq!(
            reason(&aad("", ""), &request(&token)),
            (Decision::Allow, 200, None)
        );
    }
}

#[test]
fn absurd_nbf_and_iat_are_malformed_naming_the_claim() {
    for (claim, value, shown) in [
        ("nbf", json!(i64::MIN), "-9223372036854775808"),
        ("nbf", json!(i64::MAX), "9223372036854775807"),
        ("iat", json!(-5), "-5"),
        ("iat", json!({"at": 1}), "an object"),
    ] {
        let token = signer().sign(&with(v2_claims(), json!({ claim: value })));
        let o = run(&aad("", ""), &request(&token));
        assert_eq!(o.reason.as_deref(), Some("JwtInvalid"), "{claim}");
        assert_eq!(
            o.detail.as_deref(),
            Some(format!("claim `{claim}` must be a whole number of seconds from 0 to 253402300799 (9999-12-31T23:59:59Z), not {shown}").as_str())
        );
    }
}

#[test]
fn an_absurd_clock_skew_saturates_instead_of_overflowing() {
    let inbound = format!(
        r#"<validate-jwt header-name="Authorization" clock-skew="9223372036854775807">
             <openid-config url="https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration" />
           </validate-jwt>"#
    );
    let late = with(v2_claims(), json!({"exp": NOW - 3600, "nbf": NOW + 3600}));
    assert_eq!(
        reason(&inbound, &request(&signer().sign(&late))),
        (Decision::Allow, 200, None)
    );
}

#[test]
fn a_renewal_period_past_i64_and_token_counts_past_u64_saturate() {
    let doc = policy(
        r#"<rate-limit-by-key calls="1" renewal-period="18446744073709551615" counter-key="k" />"#,
    );
    let mut sim = simulator();
    let r = Request::new("GET", "/");
    assert_eq!(sim.evaluate(&doc, &r, NOW).decision, Decision::Allow);
    let second = sim.evaluate(&doc, &r, NOW + 1);
    assert_eq!(second.reason.as_deref(), Some("RateLimitExceeded"));
    assert_eq!(
        second.response_headers,
        vec![("Retry-After".to_owned(), (i64::MAX - NOW - 1).to_string())]
    );

    // Two calls under the quota whose tokens add up past u64::MAX.
    let doc = policy(
        r#"<llm-token-limit counter-key="k" token-quota="18446744073709551615" token-quota-period="Yearly" />"#,
    );
    let mut sim = simulator();
    let mut r = Request::new("GET", "/");
    r.llm_tokens = u64::MAX - 1;
    assert_eq!(sim.evaluate(&doc, &r, NOW).decision, Decision::Allow);
    assert_eq!(sim.evaluate(&doc, &r, NOW + 1).decision, Decision::Allow);
    let third = sim.evaluate(&doc, &r, NOW + 2);
    assert_eq!(
        (third.status, third.reason.as_deref()),
        (403, Some("TokenQuotaExceeded"))
    );
}
