//! The policy of a deployed environment: rendered with the app ids read from Entra, by the very
//! resource `up` stores it with (its desired state from what is observed, not a second render
//! path), next to what API Management holds. `render --live` prints the first; `policy diff
//! --env` compares the two by meaning.

use serde_json::Value;

use super::{Connected, EngineError, observe::read_all};
use crate::resources::{Kind, has_unknown};

/// The policy `up` would store now, and the one stored (`None`: no policy in APIM yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePolicy {
    pub rendered: String,
    pub stored: Option<String>,
}

/// Reads the environment (one GET per resource) and renders its policy with the live app ids.
/// An environment whose app registrations do not exist yet has no live policy: the error says
/// which apps are missing and to run `up`.
pub async fn live_policy(connected: &Connected) -> Result<LivePolicy, EngineError> {
    let observation = read_all(&connected.azure, &connected.resources).await?;
    let policy = connected
        .resources
        .iter()
        .find(|r| r.address().kind == Kind::Policy)
        .expect("every inventory holds the API policy");
    let desired = policy.desired(&observation.known);
    let env = &connected.blueprint.env;
    if has_unknown(&desired) {
        let missing: Vec<String> = connected
            .resources
            .iter()
            .map(|r| r.address())
            .filter(|a| matches!(a.kind, Kind::ApiApp | Kind::ClientApp))
            .filter(|a| observation.observed(a).is_none())
            .map(|a| a.to_string())
            .collect();
        return Err(EngineError::Blocked {
            message: format!(
                "environment {env} is not up: the policy pins the app ids of app registrations \
                 that do not exist yet ({})",
                missing.join(", ")
            ),
            hint: format!(
                "run `provision up --env {env}` first, or `provision render --env {env} \
                 --offline` to see the policy with placeholders"
            ),
        });
    }
    let text = |v: &Value| {
        v.pointer("/properties/value")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(LivePolicy {
        rendered: text(&desired).unwrap_or_default(),
        stored: observation.observed(&policy.address()).and_then(text),
    })
}
