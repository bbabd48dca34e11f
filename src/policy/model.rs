//! The typed policy model the simulator runs: the policies it understands as typed statements,
//! every other element kept whole as an opaque node (so any real policy loads), each with its
//! position in the source.

use super::document::{Document, Element, Position};

/// A policy document by section.
#[derive(Debug, Clone, Default)]
pub struct PolicyDocument {
    pub inbound: Vec<Statement>,
    pub backend: Vec<Statement>,
    pub outbound: Vec<Statement>,
    pub on_error: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub position: Position,
    pub policy: Policy,
}

/// An attribute or element value: literal text, possibly with `{{named-value}}` references, or a
/// policy expression (`@(...)` / `@{...}`), which the simulator may or may not be able to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub position: Position,
}

impl Value {
    pub fn is_expression(&self) -> bool {
        let t = self.text.trim_start();
        t.starts_with("@(") || t.starts_with("@{")
    }
}

#[derive(Debug, Clone)]
pub enum Policy {
    Base,
    ValidateAzureAdToken(Box<AzureAdTokenCheck>),
    ValidateJwt(Box<JwtCheck>),
    CheckHeader(CheckHeader),
    SetHeader(SetHeader),
    SetVariable {
        name: String,
        value: Value,
    },
    RateLimitByKey(RateLimit),
    LlmTokenLimit(TokenLimit),
    Cors(Cors),
    ReturnResponse(ReturnResponse),
    SetBackendService {
        backend_id: Option<Value>,
        base_url: Option<Value>,
    },
    AuthenticationManagedIdentity {
        resource: Value,
        client_id: Option<String>,
    },
    /// Any other element: kept, reported as not simulated.
    Opaque(Element),
}

impl Policy {
    pub fn name(&self) -> &str {
        match self {
            Policy::Base => "base",
            Policy::ValidateAzureAdToken(_) => "validate-azure-ad-token",
            Policy::ValidateJwt(_) => "validate-jwt",
            Policy::CheckHeader(_) => "check-header",
            Policy::SetHeader(_) => "set-header",
            Policy::SetVariable { .. } => "set-variable",
            Policy::RateLimitByKey(_) => "rate-limit-by-key",
            Policy::LlmTokenLimit(_) => "llm-token-limit",
            Policy::Cors(_) => "cors",
            Policy::ReturnResponse(_) => "return-response",
            Policy::SetBackendService { .. } => "set-backend-service",
            Policy::AuthenticationManagedIdentity { .. } => "authentication-managed-identity",
            Policy::Opaque(e) => &e.name,
        }
    }
}

/// Where a token is read from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A header; `Authorization` requires the `Bearer` scheme, custom headers carry the bare token.
    Header(Value),
    Query(Value),
    Expression(Value),
}

/// `required-claims/claim`.
#[derive(Debug, Clone)]
pub struct ClaimRule {
    pub name: String,
    pub match_all: bool,
    pub separator: Option<String>,
    pub values: Vec<Value>,
    pub position: Position,
}

/// Settings shared by `validate-azure-ad-token` and `validate-jwt`.
#[derive(Debug, Clone)]
pub struct TokenFailure {
    pub status: Option<Value>,
    pub message: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct AzureAdTokenCheck {
    pub tenant_id: Value,
    pub source: TokenSource,
    pub authentication_endpoint: Option<String>,
    pub failure: TokenFailure,
    pub output_variable: Option<String>,
    pub client_application_ids: Vec<Value>,
    pub backend_application_ids: Vec<Value>,
    pub audiences: Vec<Value>,
    pub required_claims: Vec<ClaimRule>,
}

#[derive(Debug, Clone)]
pub struct JwtCheck {
    pub source: TokenSource,
    pub require_scheme: Option<String>,
    pub failure: TokenFailure,
    pub require_expiration_time: bool,
    pub require_signed_tokens: bool,
    pub clock_skew_seconds: i64,
    pub output_variable: Option<String>,
    pub openid_config_urls: Vec<String>,
    /// Inline `issuer-signing-keys/key` with `n` and `e` (and optional `id`).
    pub signing_keys: Vec<(Option<String>, String, String)>,
    pub audiences: Vec<Value>,
    pub issuers: Vec<Value>,
    pub required_claims: Vec<ClaimRule>,
}

#[derive(Debug, Clone)]
pub struct CheckHeader {
    pub name: String,
    pub status: Value,
    pub message: Value,
    pub ignore_case: bool,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct SetHeader {
    pub name: String,
    pub exists_action: String,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub calls: Value,
    pub renewal_period: Value,
    pub counter_key: Value,
    pub increment_condition: Option<Value>,
    pub retry_after_header: String,
}

#[derive(Debug, Clone)]
pub struct TokenLimit {
    pub counter_key: Value,
    pub tokens_per_minute: Option<Value>,
    pub token_quota: Option<Value>,
    pub token_quota_period: String,
    pub retry_after_header: String,
    pub remaining_tokens_header: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Cors {
    pub allow_credentials: bool,
    pub terminate_unmatched_request: bool,
    pub origins: Vec<String>,
    /// `None`: the element is absent, so only GET and POST are allowed.
    pub methods: Option<Vec<String>>,
    pub headers: Vec<String>,
    pub preflight_max_age: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReturnResponse {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, Vec<Value>)>,
    pub body: Option<Value>,
}

/// A policy element the model cannot use, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: <{element}>: {message}")]
pub struct ModelError {
    pub position: Position,
    pub element: String,
    pub message: String,
}

impl PolicyDocument {
    /// Builds the model. Structural problems of the policies it simulates are errors (the service
    /// would reject them too); unknown elements are kept as opaque statements.
    pub fn from_document(doc: &Document) -> Result<PolicyDocument, Vec<ModelError>> {
        let root = &doc.root;
        let mut errors = Vec::new();
        if root.name != "policies" {
            errors.push(ModelError {
                position: root.position,
                element: root.name.clone(),
                message: "the root element must be <policies>".to_owned(),
            });
            return Err(errors);
        }
        let mut model = PolicyDocument::default();
        for section in root.elements() {
            let target = match section.name.as_str() {
                "inbound" => &mut model.inbound,
                "backend" => &mut model.backend,
                "outbound" => &mut model.outbound,
                "on-error" => &mut model.on_error,
                other => {
                    errors.push(ModelError {
                        position: section.position,
                        element: other.to_owned(),
                        message: "not a policy section".to_owned(),
                    });
                    continue;
                }
            };
            for element in section.elements() {
                match statement(element) {
                    Ok(s) => target.push(s),
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(model)
        } else {
            Err(errors)
        }
    }
}

fn value(e: &Element, name: &str) -> Option<Value> {
    e.attribute(name).map(|a| Value {
        text: a.value.clone(),
        position: a.position,
    })
}

fn text_value(e: &Element) -> Value {
    Value {
        text: e.text(),
        position: e.position,
    }
}

/// `clock-skew` in whole seconds (default 0). A value that does not read as one is an error, not
/// a silent 0: a typo must not make the token check stricter or looser than the author wrote.
fn clock_skew(e: &Element) -> Result<i64, ModelError> {
    let Some(v) = value(e, "clock-skew") else {
        return Ok(0);
    };
    match v.text.trim().parse::<i64>() {
        Ok(seconds) if seconds >= 0 => Ok(seconds),
        _ => Err(ModelError {
            position: v.position,
            element: e.name.clone(),
            message: format!(
                "`clock-skew` must be a whole, non-negative number of seconds, not `{}`",
                v.text
            ),
        }),
    }
}

fn required(e: &Element, name: &str) -> Result<Value, ModelError> {
    value(e, name).ok_or_else(|| ModelError {
        position: e.position,
        element: e.name.clone(),
        message: format!("missing required attribute `{name}`"),
    })
}

fn list(e: &Element, list: &str, item: &str) -> Vec<Value> {
    e.child(list)
        .map(|l| {
            l.elements()
                .filter(|x| x.name == item)
                .map(text_value)
                .collect()
        })
        .unwrap_or_default()
}

fn flag(e: &Element, name: &str, default: bool) -> bool {
    e.attr(name)
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

fn claims(e: &Element) -> Vec<ClaimRule> {
    let Some(required) = e.child("required-claims") else {
        return Vec::new();
    };
    required
        .elements()
        .filter(|c| c.name == "claim")
        .map(|c| ClaimRule {
            name: c.attr("name").unwrap_or_default().to_owned(),
            match_all: c
                .attr("match")
                .is_none_or(|m| !m.trim().eq_ignore_ascii_case("any")),
            separator: c.attr("separator").map(str::to_owned),
            values: c
                .elements()
                .filter(|v| v.name == "value")
                .map(text_value)
                .collect(),
            position: c.position,
        })
        .collect()
}

fn token_source(e: &Element) -> TokenSource {
    if let Some(v) = value(e, "token-value") {
        TokenSource::Expression(v)
    } else if let Some(v) = value(e, "query-parameter-name") {
        TokenSource::Query(v)
    } else {
        TokenSource::Header(value(e, "header-name").unwrap_or(Value {
            text: "Authorization".to_owned(),
            position: e.position,
        }))
    }
}

fn failure(e: &Element) -> TokenFailure {
    TokenFailure {
        status: value(e, "failed-validation-httpcode"),
        message: value(e, "failed-validation-error-message"),
    }
}

fn statement(e: &Element) -> Result<Statement, ModelError> {
    let policy = match e.name.as_str() {
        "base" => Policy::Base,
        "validate-azure-ad-token" => Policy::ValidateAzureAdToken(Box::new(AzureAdTokenCheck {
            tenant_id: required(e, "tenant-id")?,
            source: token_source(e),
            authentication_endpoint: e.attr("authentication-endpoint").map(str::to_owned),
            failure: failure(e),
            output_variable: e.attr("output-token-variable-name").map(str::to_owned),
            client_application_ids: list(e, "client-application-ids", "application-id"),
            backend_application_ids: list(e, "backend-application-ids", "application-id"),
            audiences: list(e, "audiences", "audience"),
            required_claims: claims(e),
        })),
        "validate-jwt" => {
            let signing_keys = e
                .child("issuer-signing-keys")
                .map(|k| {
                    k.elements()
                        .filter(|x| x.name == "key")
                        .filter_map(|x| {
                            Some((
                                x.attr("id").map(str::to_owned),
                                x.attr("n")?.to_owned(),
                                x.attr("e")?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Policy::ValidateJwt(Box::new(JwtCheck {
                source: token_source(e),
                require_scheme: e.attr("require-scheme").map(str::to_owned),
                failure: failure(e),
                require_expiration_time: flag(e, "require-expiration-time", true),
                require_signed_tokens: flag(e, "require-signed-tokens", true),
                clock_skew_seconds: clock_skew(e)?,
                output_variable: e.attr("output-token-variable-name").map(str::to_owned),
                openid_config_urls: e
                    .elements()
                    .filter(|x| x.name == "openid-config")
                    .filter_map(|x| x.attr("url").map(str::to_owned))
                    .collect(),
                signing_keys,
                audiences: list(e, "audiences", "audience"),
                issuers: list(e, "issuers", "issuer"),
                required_claims: claims(e),
            }))
        }
        "check-header" => Policy::CheckHeader(CheckHeader {
            name: required(e, "name")?.text,
            status: required(e, "failed-check-httpcode")?,
            message: required(e, "failed-check-error-message")?,
            ignore_case: flag(e, "ignore-case", false),
            values: e
                .elements()
                .filter(|v| v.name == "value")
                .map(text_value)
                .collect(),
        }),
        "set-header" => Policy::SetHeader(SetHeader {
            name: required(e, "name")?.text,
            exists_action: e
                .attr("exists-action")
                .unwrap_or("override")
                .to_ascii_lowercase(),
            values: e
                .elements()
                .filter(|v| v.name == "value")
                .map(text_value)
                .collect(),
        }),
        "set-variable" => Policy::SetVariable {
            name: required(e, "name")?.text,
            value: required(e, "value")?,
        },
        "rate-limit-by-key" => Policy::RateLimitByKey(RateLimit {
            calls: required(e, "calls")?,
            renewal_period: required(e, "renewal-period")?,
            counter_key: required(e, "counter-key")?,
            increment_condition: value(e, "increment-condition"),
            retry_after_header: e
                .attr("retry-after-header-name")
                .unwrap_or("Retry-After")
                .to_owned(),
        }),
        "llm-token-limit" | "azure-openai-token-limit" => {
            let limit = TokenLimit {
                counter_key: required(e, "counter-key")?,
                tokens_per_minute: value(e, "tokens-per-minute"),
                token_quota: value(e, "token-quota"),
                token_quota_period: e
                    .attr("token-quota-period")
                    .unwrap_or("Indefinite")
                    .to_owned(),
                retry_after_header: e
                    .attr("retry-after-header-name")
                    .unwrap_or("Retry-After")
                    .to_owned(),
                remaining_tokens_header: e.attr("remaining-tokens-header-name").map(str::to_owned),
            };
            if limit.tokens_per_minute.is_none() && limit.token_quota.is_none() {
                return Err(ModelError {
                    position: e.position,
                    element: e.name.clone(),
                    message: "needs `tokens-per-minute` or `token-quota`".to_owned(),
                });
            }
            Policy::LlmTokenLimit(limit)
        }
        "cors" => {
            let texts = |list: &str, item: &str| -> Option<Vec<String>> {
                e.child(list).map(|l| {
                    l.elements()
                        .filter(|x| x.name == item)
                        .map(|x| x.text())
                        .collect()
                })
            };
            Policy::Cors(Cors {
                allow_credentials: flag(e, "allow-credentials", false),
                terminate_unmatched_request: flag(e, "terminate-unmatched-request", true),
                origins: texts("allowed-origins", "origin").unwrap_or_default(),
                methods: texts("allowed-methods", "method"),
                headers: texts("allowed-headers", "header").unwrap_or_default(),
                preflight_max_age: e
                    .child("allowed-methods")
                    .and_then(|m| m.attr("preflight-result-max-age").map(str::to_owned)),
            })
        }
        "return-response" => {
            let status = e.child("set-status");
            Policy::ReturnResponse(ReturnResponse {
                status: status
                    .and_then(|s| s.attr("code"))
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(200),
                reason: status.and_then(|s| s.attr("reason")).map(str::to_owned),
                headers: e
                    .elements()
                    .filter(|h| h.name == "set-header")
                    .map(|h| {
                        (
                            h.attr("name").unwrap_or_default().to_owned(),
                            h.elements()
                                .filter(|v| v.name == "value")
                                .map(text_value)
                                .collect(),
                        )
                    })
                    .collect(),
                body: e.child("set-body").map(text_value),
            })
        }
        "set-backend-service" => {
            let (backend_id, base_url) = (value(e, "backend-id"), value(e, "base-url"));
            if backend_id.is_none() && base_url.is_none() {
                return Err(ModelError {
                    position: e.position,
                    element: e.name.clone(),
                    message: "needs `backend-id` or `base-url`".to_owned(),
                });
            }
            Policy::SetBackendService {
                backend_id,
                base_url,
            }
        }
        "authentication-managed-identity" => Policy::AuthenticationManagedIdentity {
            resource: required(e, "resource")?,
            client_id: e.attr("client-id").map(str::to_owned),
        },
        _ => Policy::Opaque(e.clone()),
    };
    Ok(Statement {
        position: e.position,
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(xml: &str) -> Vec<String> {
        let doc = Document::parse(xml).unwrap();
        match PolicyDocument::from_document(&doc) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Regression: `clock-skew="5m"` silently became 0 seconds.
    #[test]
    fn a_clock_skew_that_is_not_seconds_is_an_error_not_zero() {
        let policy = |skew: &str| {
            format!(
                "<policies><inbound><validate-jwt header-name=\"Authorization\" clock-skew=\"{skew}\">\
                 <issuers><issuer>i</issuer></issuers></validate-jwt></inbound></policies>"
            )
        };
        assert_eq!(errors_of(&policy("300")), Vec::<String>::new());
        for bad in ["5m", "-1", ""] {
            assert_eq!(
                errors_of(&policy(bad)),
                vec![format!(
                    "1:62: <validate-jwt>: `clock-skew` must be a whole, non-negative number of seconds, not `{bad}`"
                )],
                "{bad}"
            );
        }
    }
}
