//! The sandbox's model: a deterministic stand-in for an Azure OpenAI chat completions deployment,
//! pure (the caller passes the instant and the model name; nothing here reads a clock or does
//! I/O), so a test can predict every byte of a reply and a gateway can call it thousands of
//! times a second.
//!
//! Tokens: a token is a run of letters and digits, or any other single non-space character, each
//! with the whitespace before it (`"Hello, world!"` → `Hello` `,` ` world` `!`). Real tokenizers
//! split words further; this one only has to be deterministic, cheap (one pass over the text,
//! no allocation to count) and reversible, so that truncating at `max_tokens` and streaming
//! token by token give back the reply's exact text. Prompt tokens count each message's content
//! plus 3 per message and 3 to prime the reply, the overhead OpenAI's cookbook gives for chat
//! models ("How to count tokens with tiktoken").
//!
//! The reply echoes the start of the last user message: `You said: <its first 16 tokens>`, with
//! `…` when cut, so a test sees its prompt come back and nothing else varies.
//!
//! Wire shapes (openai-python `ChatCompletion`/`ChatCompletionChunk`/`CompletionUsage`, and a real
//! Azure response for the field set): `id`, `object`, `created`, `model`, `choices[].index`,
//! `.message{role, content, refusal, annotations}`, `.finish_reason` (`stop`, or `length` when
//! `max_tokens`/`max_completion_tokens` cut the reply), `.logprobs`, `usage` with both `*_details`
//! objects. Streaming is `data: <chunk>\n\n` frames: the role, one frame per token, the
//! `finish_reason` frame, with `stream_options.include_usage` a last frame with empty `choices`
//! and the `usage` (every other frame then carries `"usage": null`, as OpenAI documents), and
//! `data: [DONE]`. Azure's `prompt_filter_results`/`content_filter_results` are not emitted.
//!
//! Errors: 400 with `{"error": {"message", "type": "invalid_request_error", "param", "code"}}` in
//! OpenAI's wording, which Azure OpenAI returns too: unparsable JSON (param and code null), a
//! missing parameter (`missing_required_parameter`), a wrong JSON type (`invalid_type`), an empty
//! `messages` (`empty_array`), a limit under 1 (`integer_below_min_value`).

use serde_json::{Map, Value, json};

/// How many tokens of the last user message the reply echoes.
const ECHOED_TOKENS: usize = 16;
/// OpenAI's cookbook overhead for chat models: per message, and once for the reply's priming.
const TOKENS_PER_MESSAGE: u64 = 3;
const REPLY_PRIMING_TOKENS: u64 = 3;

/// A validated chat completions request: only what the stub reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// The smaller of `max_tokens` and `max_completion_tokens` when both are sent.
    pub max_tokens: Option<u64>,
    pub stream: bool,
    pub include_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    /// The text; content parts' `text` fields concatenated.
    pub content: String,
}

/// A request refused as Azure OpenAI refuses it: always 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl InvalidRequest {
    pub const STATUS: u16 = 400;

    pub fn body(&self) -> Vec<u8> {
        json!({"error": {
            "message": self.message,
            "type": "invalid_request_error",
            "param": self.param,
            "code": self.code,
        }})
        .to_string()
        .into_bytes()
    }

    fn missing(param: String) -> InvalidRequest {
        InvalidRequest {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param),
            code: Some("missing_required_parameter"),
        }
    }

    fn wrong_type(param: String, expected: &str, got: &Value) -> InvalidRequest {
        InvalidRequest {
            message: format!(
                "Invalid type for '{param}': expected {expected}, but got {} instead.",
                kind(got)
            ),
            param: Some(param),
            code: Some("invalid_type"),
        }
    }
}

/// OpenAI's observed answer to a body that is not JSON.
const UNPARSABLE: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads and validates a request body.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    let unparsable = || InvalidRequest {
        message: UNPARSABLE.to_owned(),
        param: None,
        code: None,
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(unparsable());
    };
    let messages = match fields.get("messages") {
        None => return Err(InvalidRequest::missing("messages".to_owned())),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(InvalidRequest {
                message: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned(),
                param: Some("messages".to_owned()),
                code: Some("empty_array"),
            });
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| message(i, item))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(InvalidRequest::wrong_type(
                "messages".to_owned(),
                "an array",
                other,
            ));
        }
    };
    let limit = |name: &str| -> Result<Option<u64>, InvalidRequest> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_u64() {
                Some(v) if v >= 1 => Ok(Some(v)),
                _ => Err(InvalidRequest {
                    message: format!(
                        "Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {n} instead."
                    ),
                    param: Some(name.to_owned()),
                    code: Some("integer_below_min_value"),
                }),
            },
            Some(other) => Err(InvalidRequest::wrong_type(
                name.to_owned(),
                "an integer",
                other,
            )),
        }
    };
    let max_tokens = match (limit("max_tokens")?, limit("max_completion_tokens")?) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let stream = match fields.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(InvalidRequest::wrong_type(
                "stream".to_owned(),
                "a boolean",
                other,
            ));
        }
    };
    let include_usage = match fields.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => match options.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(InvalidRequest::wrong_type(
                    "stream_options.include_usage".to_owned(),
                    "a boolean",
                    other,
                ));
            }
        },
        Some(other) => {
            return Err(InvalidRequest::wrong_type(
                "stream_options".to_owned(),
                "an object",
                other,
            ));
        }
    };
    Ok(ChatRequest {
        messages,
        max_tokens,
        stream,
        include_usage,
    })
}

fn message(i: usize, item: &Value) -> Result<Message, InvalidRequest> {
    let param = |field: &str| format!("messages[{i}].{field}");
    let Value::Object(fields) = item else {
        return Err(InvalidRequest::wrong_type(
            format!("messages[{i}]"),
            "an object",
            item,
        ));
    };
    let role = match fields.get("role") {
        None => return Err(InvalidRequest::missing(param("role"))),
        Some(Value::String(role)) => role.clone(),
        Some(other) => return Err(InvalidRequest::wrong_type(param("role"), "a string", other)),
    };
    let content = match fields.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        Some(other) => {
            return Err(InvalidRequest::wrong_type(
                param("content"),
                "a string",
                other,
            ));
        }
    };
    Ok(Message { role, content })
}

/// The byte ranges of `text`'s tokens (see the module doc); trailing whitespace joins the last.
pub fn tokens(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let rest = &text[start..];
        let word = rest.trim_start();
        if word.is_empty() {
            let range = start..text.len();
            start = text.len();
            return Some(range);
        }
        let at = text.len() - word.len();
        let mut chars = word.char_indices();
        let (_, first) = chars.next()?;
        let mut end = at + first.len_utf8();
        if first.is_alphanumeric() {
            end = chars
                .find(|(_, c)| !c.is_alphanumeric())
                .map_or(text.len(), |(i, _)| at + i);
        }
        if text[end..].trim_start().is_empty() {
            end = text.len();
        }
        let range = start..end;
        start = end;
        Some(range)
    })
}

pub fn count_tokens(text: &str) -> u64 {
    tokens(text).count() as u64
}

/// The stub's answer to one request, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub content: String,
    pub finish_reason: &'static str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The prompt's tokens: each message's content plus the cookbook's overheads (module doc). The
/// gateway estimates a streamed request's prompt with it, as APIM estimates streamed prompts.
pub fn prompt_tokens(request: &ChatRequest) -> u64 {
    REPLY_PRIMING_TOKENS
        + request
            .messages
            .iter()
            .map(|m| TOKENS_PER_MESSAGE + count_tokens(&m.content))
            .sum::<u64>()
}

/// Answers `request` as `model` at `created` (Unix seconds).
pub fn complete(request: &ChatRequest, model: &str, created: i64) -> Completion {
    let prompt_tokens = prompt_tokens(request);
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    let echoed = tokens(last_user)
        .nth(ECHOED_TOKENS - 1)
        .map_or(last_user.trim(), |cut| last_user[..cut.end].trim());
    let ellipsis = if echoed.len() < last_user.trim().len() {
        "…"
    } else {
        ""
    };
    let reply = format!("You said: {echoed}{ellipsis}");
    let cut = match request.max_tokens {
        None => None,
        Some(0) => Some(0),
        Some(limit) => usize::try_from(limit - 1)
            .ok()
            .and_then(|last| tokens(&reply).nth(last))
            .map(|t| t.end)
            .filter(|end| *end < reply.len()),
    };
    let (content, finish_reason) = match cut {
        Some(end) => (reply[..end].to_owned(), "length"),
        None => (reply, "stop"),
    };
    Completion {
        id: format!("chatcmpl-{:016x}", fingerprint(request, created)),
        created,
        model: model.to_owned(),
        completion_tokens: count_tokens(&content),
        content,
        finish_reason,
        prompt_tokens,
    }
}

/// FNV-1a over the messages and the instant: the same request at the same second has the same id.
fn fingerprint(request: &ChatRequest, created: i64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for m in &request.messages {
        feed(m.role.as_bytes());
        feed(&[0]);
        feed(m.content.as_bytes());
        feed(&[0]);
    }
    feed(&created.to_be_bytes());
    hash
}

impl Completion {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    }

    /// The `chat.completion` object.
    pub fn response(&self) -> Vec<u8> {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": self.content,
                    "refusal": null,
                    "annotations": [],
                },
                "finish_reason": self.finish_reason,
                "logprobs": null,
            }],
            "usage": self.usage(),
        })
        .to_string()
        .into_bytes()
    }

    /// The SSE frames of a streamed answer, each `data: …\n\n`, the last `data: [DONE]\n\n`.
    pub fn stream(&self, include_usage: bool) -> Vec<Vec<u8>> {
        let frame = |choices: Value, usage: Option<Value>| -> Vec<u8> {
            let mut chunk = Map::new();
            chunk.insert("id".into(), json!(self.id));
            chunk.insert("object".into(), json!("chat.completion.chunk"));
            chunk.insert("created".into(), json!(self.created));
            chunk.insert("model".into(), json!(self.model));
            chunk.insert("choices".into(), choices);
            if include_usage {
                chunk.insert("usage".into(), usage.unwrap_or(Value::Null));
            }
            format!("data: {}\n\n", Value::Object(chunk)).into_bytes()
        };
        let choice = |delta: Value, finish_reason: Option<&str>| json!([{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}]);
        let mut frames = vec![frame(
            choice(json!({"role": "assistant", "content": ""}), None),
            None,
        )];
        frames.extend(
            tokens(&self.content)
                .map(|t| frame(choice(json!({"content": &self.content[t]}), None), None)),
        );
        frames.push(frame(choice(json!({}), Some(self.finish_reason)), None));
        if include_usage {
            frames.push(frame(json!([]), Some(self.usage())));
        }
        frames.push(b"data: [DONE]\n\n".to_vec());
        frames
    }
}

#[cfg(test)]
mod tests;
