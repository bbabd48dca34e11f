//! A refusal as the caller reads it. The gateway answers its own refusals as
//! `{"statusCode": N, "message": "…"}` (docs/reference/dataplane.md §1.2-§1.5); the model behind it as
//! Azure OpenAI does, `{"error": {"code": "…", "message": "…"}}` (§2). The hint follows the
//! status: 401 is the token (sign in again), 403 the scope or consent, 429 the rate (wait for
//! `Retry-After`).

use serde_json::Value;

/// Messages longer than this are cut: a refusal is read by a person.
const MAX_MESSAGE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The gateway's or the model's message, or the start of the body.
    pub message: String,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
}

impl Refusal {
    pub fn read(status: u16, body: &[u8], retry_after: Option<&str>) -> Refusal {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let message = json
            .as_ref()
            .and_then(|b| {
                b.get("message")
                    .or_else(|| b.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        let message = if message.chars().count() > MAX_MESSAGE_CHARS {
            format!(
                "{}…",
                message.chars().take(MAX_MESSAGE_CHARS).collect::<String>()
            )
        } else {
            message
        };
        Refusal {
            status,
            message,
            retry_after: retry_after.map(str::to_owned),
        }
    }

    /// What to do, for environment `env`.
    pub fn hint(&self, env: &str) -> String {
        let lower = self.message.to_ascii_lowercase();
        match self.status {
            401 if lower.contains("expired") => format!(
                "the token expired: sign in again with `provision token --env {env} --force`"
            ),
            401 => format!(
                "the gateway refused the token: sign in again with `provision token --env {env} \
                 --force`, and check that this client app is in the environment's policy \
                 (`provision plan --env {env}`)"
            ),
            403 => "the token lacks the API's scope, or the user has not consented to it: sign \
                    in again and accept the consent prompt, or have an admin grant consent"
                .to_owned(),
            404 => format!(
                "no such API or deployment at the gateway: check --deployment, and that `provision \
                 up --env {env}` has run"
            ),
            429 => match &self.retry_after {
                Some(after) => format!("throttled: retry after {after} seconds (Retry-After)"),
                None => "throttled: retry in a minute".to_owned(),
            },
            500..=599 => "the gateway or the model failed: try again, and if it persists look at \
                          the gateway's logs"
                .to_owned(),
            _ => "see the message above".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_and_the_models_messages_are_read() {
        let gw = Refusal::read(
            401,
            br#"{"statusCode":401,"message":"Unauthorized. Access token is missing or invalid."}"#,
            None,
        );
        assert_eq!(
            gw.message,
            "Unauthorized. Access token is missing or invalid."
        );
        assert!(gw.hint("dev").contains("provision token --env dev --force"));
        let model = Refusal::read(
            403,
            br#"{"error":{"code":"PermissionDenied","message":"no"}}"#,
            None,
        );
        assert_eq!(model.message, "no");
        assert!(model.hint("dev").contains("consent"));
        let throttled = Refusal::read(429, b"slow", Some("42"));
        assert_eq!(
            throttled.hint("dev"),
            "throttled: retry after 42 seconds (Retry-After)"
        );
        let expired = Refusal::read(
            401,
            br#"{"statusCode":401,"message":"Token expired"}"#,
            None,
        );
        assert!(expired.hint("dev").starts_with("the token expired"));
    }
}
