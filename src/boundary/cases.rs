//! `verify`'s case matrix, as data: which request each case sends, what must come back, and how
//! what came back compares with what was expected and with what the simulator predicts for the
//! stored policy. Pure: the engine gathers the tokens and sends the requests.
//!
//! The cases are the boundary's claims (ARCHITECTURE.md, "Verify"): only a token of the right
//! tenant, for the API, from a registered client passes the gateway; the model is not reachable
//! around it, with a key or with anyone's own token.

use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::policy::matrix::Signature;
use crate::policy::simulator::{Decision, Request};
use crate::policy::token::{encode_json, sign_hs256};

/// Where a case's request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The API at the gateway (chat completions).
    Gateway,
    /// The Foundry endpoint itself, around the gateway.
    Foundry,
    /// ARM's `listKeys` on the Foundry account.
    ListKeys,
    /// The gateway's API over plain `http://`.
    PlainHttp,
}

/// What a case's answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this status.
    Status(u16),
    /// Anything but success: a 3xx redirect or a 4xx refusal (never the model's answer).
    Refused,
    /// Any status: a user's case that expects only a reason or a decision.
    Any,
}

impl Expect {
    pub fn holds(self, status: u16) -> bool {
        match self {
            Expect::Status(s) => s == status,
            Expect::Refused => (300..500).contains(&status),
            Expect::Any => true,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Expect::Status(s) => s.to_string(),
            Expect::Refused => "refused".to_owned(),
            Expect::Any => "any".to_owned(),
        }
    }
}

/// How a case authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    /// `Authorization` exactly as given (tokens that are not tokens).
    Authorization(String),
    Bearer(String),
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::None => "None",
            Credential::Authorization(_) => "Authorization(<redacted>)",
            Credential::Bearer(_) => "Bearer(<redacted>)",
            Credential::ApiKey(_) => "ApiKey(<redacted>)",
        })
    }
}

impl Credential {
    /// The header it makes, if any.
    pub fn header(&self) -> Option<(&'static str, String)> {
        match self {
            Credential::None => None,
            Credential::Authorization(value) => Some(("authorization", value.clone())),
            Credential::Bearer(token) => Some(("authorization", format!("Bearer {token}"))),
            Credential::ApiKey(key) => Some(("api-key", key.clone())),
        }
    }
}

/// A token a case needs, or why it could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    Token(String),
    Skipped(String),
}

/// Everything the matrix is made of.
#[derive(Debug, Clone)]
pub struct Materials {
    /// A token of the registered client for the API (signed in, or `--token-file`).
    pub good: String,
    /// A Microsoft Graph token from the operator's own credential.
    pub graph: Material,
    /// A token for the API from an app that is not in the policy.
    pub unlisted_client: Material,
    pub foreign_tenant: Material,
    pub expired: Material,
    /// The operator's own token for the Foundry resource.
    pub own_foundry: Material,
}

/// One case of the matrix.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub target: Target,
    pub credential: Credential,
    pub expect: Expect,
    /// Why it was not run, when a token could not be had.
    pub skipped: Option<String>,
    /// A user's case (`--cases`): its own request and what else it expects.
    pub custom: Option<Custom>,
}

/// What a user's case adds to a gateway case: its request as the case file gives it (without
/// the credential), and the reason and decision it expects, which only the simulator can tell
/// (the gateway says neither).
#[derive(Debug, Clone)]
pub struct Custom {
    /// The case file.
    pub source: String,
    pub request: Request,
    pub body: Option<String>,
    pub reason: Option<String>,
    pub decision: Option<Decision>,
}

impl Case {
    /// What must come back, in words: the status, then the reason and decision a user's case
    /// expects.
    pub fn expected(&self) -> String {
        let mut words = vec![self.expect.describe()];
        if let Some(c) = &self.custom {
            words.extend(c.reason.clone());
            if let Some(d) = c.decision {
                words.extend(
                    serde_json::to_value(d)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned)),
                );
            }
        }
        words.join(" ")
    }

    /// Whether it held: the status as expected, and for a user's case the reason and decision
    /// the simulator predicts as expected too (the prediction stands for the gateway's reason
    /// only when the two agree on the status: a drift fails a case that expects a reason).
    pub fn held(&self, status: Option<u16>, prediction: Option<&Prediction>) -> bool {
        let Some(status) = status else {
            return false;
        };
        if !self.expect.holds(status) {
            return false;
        }
        let Some(custom) = &self.custom else {
            return true;
        };
        if custom.reason.is_none() && custom.decision.is_none() {
            return true;
        }
        let Some(p) = prediction.filter(|p| p.status == status) else {
            return false;
        };
        custom
            .reason
            .as_ref()
            .is_none_or(|r| p.reason.as_ref() == Some(r))
            && custom.decision.is_none_or(|d| p.decision == d)
    }
}

/// Why a user's case whose `token:` must be minted cannot run against `cloud`, if it cannot:
/// only the sandbox signs tokens on request (`POST /_sandbox/tokens`); Entra issues them to a
/// sign-in alone, so on Azure such a case is skipped, never sent with a token no tenant signed.
pub fn mint_refusal(cloud: Cloud) -> Option<&'static str> {
    (cloud != Cloud::Sandbox).then_some(
        "the case's `token:` must be minted, and Entra issues tokens only to a sign-in: run it \
         against the sandbox, or give `good_token: true`, `raw_token:` or an `authorization` header",
    )
}

/// A token signed by the tenant turned into the case's broken variant, as `policy test` mints
/// them offline (`TokenRecipe::mint`): the payload swapped after signing, no signature, HS256
/// keyed with the tenant's public modulus, or a `kid` nobody published (the gateway finds no key
/// to try, so which key signed does not matter). `None` for a valid token, and for HS256 without
/// the modulus.
pub fn forge(
    signature: Signature,
    signed: &str,
    claims: &Value,
    modulus: Option<&[u8]>,
) -> Option<String> {
    let parts: Vec<&str> = signed.split('.').collect();
    let [header, payload, sig] = parts[..] else {
        return None;
    };
    let kid = crate::policy::token::Jwt::parse(signed)
        .ok()
        .and_then(|j| j.kid)
        .map_or(Value::Null, Value::String);
    match signature {
        Signature::Valid => None,
        Signature::Tampered => {
            let mut forged = claims.clone();
            forged["oid"] = json!("someone-else");
            Some(format!("{header}.{}.{sig}", encode_json(&forged)))
        }
        Signature::Unsigned => Some(format!(
            "{}.{}.",
            encode_json(&json!({"alg": "none", "typ": "JWT"})),
            encode_json(claims)
        )),
        Signature::HmacWithPublicKey => modulus.map(|n| {
            sign_hs256(
                n,
                &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                claims,
            )
        }),
        Signature::UnknownKid => Some(format!(
            "{}.{payload}.{sig}",
            encode_json(&json!({"alg": "RS256", "typ": "JWT", "kid": "kid-nobody-published"}))
        )),
    }
}

/// The good token with one character of its signature changed: still a well-formed JWT, no
/// longer one the tenant signed.
pub fn tampered(token: &str) -> String {
    let Some(at) = token.rfind('.') else {
        return format!("{token}x");
    };
    let (head, signature) = token.split_at(at + 1);
    let mut chars: Vec<char> = signature.chars().collect();
    // The middle, not the end: the last base64url character may carry padding bits only.
    let middle = chars.len() / 2;
    if let Some(c) = chars.get_mut(middle) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{head}{}", chars.into_iter().collect::<String>())
}

/// The matrix, in the order it is printed.
pub fn matrix(m: &Materials) -> Vec<Case> {
    let case = |name: &str, target, credential, expect| Case {
        name: name.to_owned(),
        target,
        credential,
        expect,
        skipped: None,
        custom: None,
    };
    let from = |name: &str, target, material: &Material, expect| match material {
        Material::Token(t) => case(name, target, Credential::Bearer(t.clone()), expect),
        Material::Skipped(why) => Case {
            skipped: Some(why.clone()),
            ..case(name, target, Credential::None, expect)
        },
    };
    vec![
        case(
            "good-token",
            Target::Gateway,
            Credential::Bearer(m.good.clone()),
            Expect::Status(200),
        ),
        case(
            "no-token",
            Target::Gateway,
            Credential::None,
            Expect::Status(401),
        ),
        case(
            "malformed-token",
            Target::Gateway,
            Credential::Authorization("Bearer not-a-jwt".to_owned()),
            Expect::Status(401),
        ),
        case(
            "tampered-signature",
            Target::Gateway,
            Credential::Bearer(tampered(&m.good)),
            Expect::Status(401),
        ),
        from(
            "other-audience",
            Target::Gateway,
            &m.graph,
            Expect::Status(401),
        ),
        from(
            "unlisted-client",
            Target::Gateway,
            &m.unlisted_client,
            Expect::Status(401),
        ),
        from(
            "foreign-tenant",
            Target::Gateway,
            &m.foreign_tenant,
            Expect::Status(401),
        ),
        from(
            "expired-token",
            Target::Gateway,
            &m.expired,
            Expect::Status(401),
        ),
        case(
            "foundry-with-key",
            Target::Foundry,
            Credential::ApiKey("00000000000000000000000000000000".to_owned()),
            Expect::Refused,
        ),
        case(
            "foundry-list-keys",
            Target::ListKeys,
            Credential::None,
            Expect::Refused,
        ),
        from(
            "foundry-own-token",
            Target::Foundry,
            &m.own_foundry,
            Expect::Refused,
        ),
        case(
            "gateway-plain-http",
            Target::PlainHttp,
            Credential::None,
            Expect::Refused,
        ),
    ]
}

/// What the simulator predicted for a gateway case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub status: u16,
    pub decision: Decision,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// Where the gateway and the simulator disagree, in words; `None` when they agree. The gateway
/// says why only in its message, so a refusal's message is compared too.
pub fn drift(prediction: &Prediction, status: u16, message: Option<&str>) -> Option<String> {
    if prediction.status != status {
        return Some(format!(
            "the simulator predicted {} ({}), the gateway answered {status}",
            prediction.status,
            prediction.reason.as_deref().unwrap_or("allowed")
        ));
    }
    match (&prediction.message, message) {
        (Some(predicted), Some(said)) if predicted != said => Some(format!(
            "the simulator predicted the message {predicted:?}, the gateway said {said:?}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_token_differs_in_its_signature_only() {
        let t = tampered("aaa.bbb.ccccAcccc");
        assert_eq!(t, "aaa.bbb.ccccBcccc");
        assert_eq!(tampered("aaa.bbb.cccc"), "aaa.bbb.ccAc");
    }

    #[test]
    fn refused_is_a_redirect_or_a_client_error_never_success_or_a_failure() {
        assert!(
            Expect::Refused.holds(401) && Expect::Refused.holds(403) && Expect::Refused.holds(301)
        );
        assert!(!Expect::Refused.holds(200) && !Expect::Refused.holds(500));
        assert!(Expect::Status(401).holds(401) && !Expect::Status(401).holds(403));
    }

    #[test]
    fn drift_is_a_different_status_or_message() {
        let p = Prediction {
            status: 401,
            decision: Decision::Deny,
            reason: Some("TokenExpired".into()),
            message: Some("Unauthorized".into()),
        };
        assert_eq!(drift(&p, 401, Some("Unauthorized")), None);
        assert!(
            drift(&p, 200, None)
                .unwrap()
                .contains("predicted 401 (TokenExpired)")
        );
        assert!(drift(&p, 401, Some("Other")).is_some());
    }

    #[test]
    fn a_skipped_material_skips_its_case_with_the_reason() {
        let m = Materials {
            good: "g.g.g".into(),
            graph: Material::Token("x.y.z".into()),
            unlisted_client: Material::Skipped("no token".into()),
            foreign_tenant: Material::Skipped("pass --foreign-token-file".into()),
            expired: Material::Token("e.e.e".into()),
            own_foundry: Material::Token("o.o.o".into()),
        };
        let cases = matrix(&m);
        assert_eq!(cases.len(), 12);
        let foreign = cases.iter().find(|c| c.name == "foreign-tenant").unwrap();
        assert_eq!(
            foreign.skipped.as_deref(),
            Some("pass --foreign-token-file")
        );
        assert!(!format!("{cases:?}").contains("g.g.g"));
    }

    fn user_case(status: Option<u16>, reason: Option<&str>) -> Case {
        Case {
            name: "mine".into(),
            target: Target::Gateway,
            credential: Credential::None,
            expect: status.map_or(Expect::Any, Expect::Status),
            skipped: None,
            custom: Some(Custom {
                source: "cases.yaml".into(),
                request: Request::new("POST", "/llm/x"),
                body: None,
                reason: reason.map(str::to_owned),
                decision: None,
            }),
        }
    }

    #[test]
    fn a_user_case_holds_on_its_status_and_on_the_reason_the_agreeing_simulator_gives() {
        let p = Prediction {
            status: 401,
            decision: Decision::Deny,
            reason: Some("TokenExpired".into()),
            message: None,
        };
        let case = user_case(Some(401), Some("TokenExpired"));
        assert_eq!(case.expected(), "401 TokenExpired");
        assert!(case.held(Some(401), Some(&p)));
        assert!(!case.held(Some(403), Some(&p)), "another status");
        assert!(!case.held(None, Some(&p)), "no answer");
        assert!(!user_case(Some(401), Some("TokenExpired")).held(Some(401), None));
        assert!(!user_case(None, Some("TokenIssuerNotAllowed")).held(Some(401), Some(&p)));
        // The simulator's reason stands for the gateway's only when their statuses agree.
        assert!(!user_case(None, Some("TokenExpired")).held(Some(200), Some(&p)));
        assert!(user_case(None, Some("TokenExpired")).held(Some(401), Some(&p)));
    }

    #[test]
    fn forged_tokens_break_the_signed_one_as_policy_test_mints_them() {
        let claims = json!({"oid": "me", "tid": "t"});
        let header = encode_json(&json!({"alg": "RS256", "kid": "k1"}));
        let signed = format!("{header}.{}.c2ln", encode_json(&claims));
        assert_eq!(forge(Signature::Valid, &signed, &claims, None), None);
        let tampered = forge(Signature::Tampered, &signed, &claims, None).unwrap();
        assert!(tampered.starts_with(&format!("{header}.")) && tampered.ends_with(".c2ln"));
        assert_ne!(tampered, signed);
        assert!(
            forge(Signature::Unsigned, &signed, &claims, None)
                .unwrap()
                .ends_with('.')
        );
        assert_eq!(
            forge(Signature::HmacWithPublicKey, &signed, &claims, None),
            None
        );
        assert!(forge(Signature::HmacWithPublicKey, &signed, &claims, Some(b"n")).is_some());
        let unknown = forge(Signature::UnknownKid, &signed, &claims, None).unwrap();
        assert!(!unknown.starts_with(&header) && unknown.ends_with(".c2ln"));
        assert_eq!(forge(Signature::Tampered, "not-a-jwt", &claims, None), None);
    }

    #[test]
    fn only_the_sandbox_mints_a_cases_token() {
        assert_eq!(mint_refusal(Cloud::Sandbox), None);
        for cloud in [Cloud::Public, Cloud::Usgov, Cloud::China] {
            assert!(
                mint_refusal(cloud).unwrap().starts_with(
                    "the case's `token:` must be minted, and Entra issues tokens only to a sign-in"
                ),
                "{cloud:?}"
            );
        }
    }
}
