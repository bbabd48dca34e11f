//! `verify`'s case matrix, as data: which request each case sends, what must come back, and how
//! what came back compares with what was expected and with what the simulator predicts for the
//! stored policy. Pure: the engine gathers the tokens and sends the requests.
//!
//! The cases are the boundary's claims (ARCHITECTURE.md, "Verify"): only a token of the right
//! tenant, for the API, from a registered client passes the gateway; the model is not reachable
//! around it, with a key or with anyone's own token.

use serde::Serialize;

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
}

impl Expect {
    pub fn holds(self, status: u16) -> bool {
        match self {
            Expect::Status(s) => s == status,
            Expect::Refused => (300..500).contains(&status),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Expect::Status(s) => s.to_string(),
            Expect::Refused => "refused".to_owned(),
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
    pub name: &'static str,
    pub target: Target,
    pub credential: Credential,
    pub expect: Expect,
    /// Why it was not run, when a token could not be had.
    pub skipped: Option<String>,
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
    let case = |name, target, credential, expect| Case {
        name,
        target,
        credential,
        expect,
        skipped: None,
    };
    let from = |name, target, material: &Material, expect| match material {
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
}
