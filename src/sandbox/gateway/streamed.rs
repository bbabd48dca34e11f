//! Charging `llm-token-limit` for streamed completions, the way APIM documents it: "When
//! streaming is enabled in the API request (`stream: true`), prompt tokens are always estimated
//! regardless of the `estimate-prompt-tokens` setting. Completion tokens are also estimated when
//! responses are streamed." (llm-token-limit policy, Microsoft Learn, "Usage notes"). A streamed
//! answer's `usage` frame (`stream_options.include_usage`) is therefore not what is charged: the
//! gateway counts the prompt of the request and the `delta.content` of each chunk as it relays
//! it, with the sandbox model's own tokenizer (`inference::model`), so for the sandbox's model
//! the estimate is exactly what its `usage` frame reports.
//!
//! The prompt estimate is charged when the request is forwarded (APIM estimates it before
//! sending the request), the completion when the stream ends; a stream the caller abandons is
//! charged for what was relayed until then.

use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::sandbox::Shared;
use crate::sandbox::inference::model::{count_tokens, parse_request, prompt_tokens};

/// An SSE event longer than this without its blank-line end is not counted further (the stub's
/// frames are a few hundred bytes; a model's are a few KB).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Who pays: the token-limit counters one request passed, on its service.
pub(super) struct Charge {
    pub shared: Arc<Shared>,
    /// The service's counters' name (lower case).
    pub service: String,
    pub keys: Vec<String>,
}

impl Charge {
    pub fn apply(&self, tokens: u64) {
        if self.keys.is_empty() || tokens == 0 {
            return;
        }
        let now = self.shared.now_s();
        let mut all = self
            .shared
            .gateway_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let counters = all.entry(self.service.clone()).or_default();
        for key in &self.keys {
            counters.record_tokens(key, now, tokens);
        }
    }
}

/// The estimated prompt tokens of a streamed chat completions request, or `None` when the body is
/// not one (not JSON, not a chat request, or `stream` is not true).
pub(super) fn streamed_prompt(body: &[u8]) -> Option<u64> {
    let request = parse_request(body).ok()?;
    request.stream.then(|| prompt_tokens(&request))
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// Counts the completion tokens of an SSE stream as its bytes pass, whatever their split into
/// network chunks. They are charged at `data: [DONE]`, before that frame is relayed (so a caller
/// who has read the whole stream finds its tokens counted), or when the stream is dropped
/// unfinished.
struct Counter {
    charge: Option<Charge>,
    pending: Vec<u8>,
    tokens: u64,
}

impl Counter {
    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = find(&self.pending, b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            if is_done(&event) {
                self.settle();
            } else {
                self.tokens = self.tokens.saturating_add(event_tokens(&event));
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            self.pending.clear();
        }
    }

    fn settle(&mut self) {
        if let Some(charge) = self.charge.take() {
            charge.apply(self.tokens);
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.settle();
    }
}

fn is_done(event: &[u8]) -> bool {
    String::from_utf8_lossy(event)
        .lines()
        .any(|line| line.strip_prefix("data:").map(str::trim) == Some("[DONE]"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The completion tokens of one SSE event: its `data:` lines' chunk, `[DONE]` and anything not a
/// chunk counting nothing.
fn event_tokens(event: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(event);
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Chunk>(data.trim()).ok())
        .flat_map(|chunk| chunk.choices)
        .filter_map(|choice| choice.delta?.content)
        .map(|content| count_tokens(&content))
        .sum()
}

/// `body` relayed unchanged, its completion tokens charged to `charge` when it ends.
pub(super) fn counted(body: Body, charge: Charge) -> Body {
    let mut counter = Counter {
        charge: Some(charge),
        pending: Vec::new(),
        tokens: 0,
    };
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            counter.feed(bytes);
        }
        chunk
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_counted_across_network_chunks_and_done_counts_nothing() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"You\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" said, hi\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"total_tokens\":99}}\n\n",
            "data: [DONE]\n\n"
        );
        let total: u64 = stream
            .split_inclusive("\n\n")
            .map(|e| event_tokens(e.as_bytes()))
            .sum();
        // "You", " said", ",", " hi": the usage frame is not what is charged.
        assert_eq!(total, 4);
        let mut pending = Vec::new();
        let mut tokens = 0;
        for piece in stream.as_bytes().chunks(7) {
            pending.extend_from_slice(piece);
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                tokens += event_tokens(&event);
            }
        }
        assert_eq!(tokens, 4);
    }

    #[test]
    fn only_a_streamed_chat_request_has_a_prompt_estimate() {
        let streamed = br#"{"stream":true,"messages":[{"role":"user","content":"hi there"}]}"#;
        // 3 to prime the reply + 3 for the message + "hi", " there".
        assert_eq!(streamed_prompt(streamed), Some(8));
        let plain = br#"{"messages":[{"role":"user","content":"hi there"}]}"#;
        assert_eq!(streamed_prompt(plain), None);
        assert_eq!(streamed_prompt(b"not json"), None);
    }
}
