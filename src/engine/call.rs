//! One chat completions call through the gateway as the signed-in client, as a notebook makes
//! it: `POST {api url}/deployments/{deployment}/chat/completions?api-version=…` with the user's
//! token. A refusal is an error naming the gateway's status and message, with what to do.

use serde_json::Value;

use crate::azure::credential::AccessToken;
use crate::boundary::refusal::Refusal;
use crate::boundary::sse::Events;
use crate::config::Blueprint;
use crate::dataplane::Call;
use crate::hint::Hinted;
use crate::render::snippet::CHAT_API_VERSION;

/// What receives a streamed answer's text as it arrives.
pub type OnText<'a> = dyn FnMut(&str) + Send + 'a;

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub model: Option<String>,
    pub content: String,
}

pub fn chat_url(api_url: &str, deployment: &str) -> String {
    format!(
        "{}/deployments/{deployment}/chat/completions?api-version={CHAT_API_VERSION}",
        api_url.trim_end_matches('/')
    )
}

/// Sends `body` (a chat completions request) and reads the answer; with `on_text`, the answer
/// is streamed and each piece handed over as it arrives.
pub async fn chat(
    blueprint: &Blueprint,
    url: &str,
    token: &AccessToken,
    body: Vec<u8>,
    on_text: Option<&mut OnText<'_>>,
) -> anyhow::Result<Reply> {
    let call = Call {
        method: "POST",
        url: url.to_owned(),
        headers: vec![
            ("authorization".to_owned(), token.bearer()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: Some(body),
    };
    let env = blueprint.env.as_str();
    let plane = super::connect::data_plane(blueprint)?;
    let mut events = Events::default();
    let mut streamed = String::new();
    let answer = match on_text {
        Some(on_text) => {
            let mut on_chunk = |chunk: &[u8]| {
                let text = events.feed(chunk);
                if !text.is_empty() {
                    on_text(&text);
                    streamed.push_str(&text);
                }
            };
            plane.send(&call, Some(&mut on_chunk)).await?
        }
        None => plane.send(&call, None).await?,
    };
    if !(200..300).contains(&answer.status) {
        let refusal = Refusal::read(answer.status, &answer.body, answer.header("retry-after"));
        return Err(Hinted::error(
            format!(
                "{url}: the gateway answered HTTP {}: {}",
                refusal.status, refusal.message
            ),
            refusal.hint(env),
        ));
    }
    if answer.body.is_empty() {
        return Ok(Reply {
            status: answer.status,
            model: events.model,
            content: streamed,
        });
    }
    let reply: Value = serde_json::from_slice(&answer.body).map_err(|e| {
        Hinted::error(
            format!("{url}: the answer is not a chat completion: {e}"),
            "check that the API's backend is the Foundry deployment",
        )
    })?;
    Ok(Reply {
        status: answer.status,
        model: reply
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        content: reply
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}
