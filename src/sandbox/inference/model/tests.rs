use super::*;

const MODEL: &str = "gpt-5.6-luna-2026-07-09";
const CREATED: i64 = 1_800_000_000;

fn request(body: Value) -> ChatRequest {
    parse_request(body.to_string().as_bytes()).unwrap()
}

fn refused(body: &[u8]) -> Value {
    let error = parse_request(body).unwrap_err();
    serde_json::from_slice(&error.body()).unwrap()
}

fn pieces(text: &str) -> Vec<&str> {
    tokens(text).map(|t| &text[t]).collect()
}

#[test]
fn tokens_are_words_or_single_symbols_with_the_space_before_them() {
    assert_eq!(pieces("Hello, world!"), ["Hello", ",", " world", "!"]);
    assert_eq!(pieces("  a1b  c \n"), ["  a1b", "  c \n"]);
    assert_eq!(pieces("héllo wörld…"), ["héllo", " wörld", "…"]);
    assert_eq!(pieces(""), Vec::<&str>::new());
    assert_eq!(pieces("   "), ["   "]);
    assert_eq!(count_tokens("Hello, world!"), 4);
}

#[test]
fn the_reply_echoes_the_last_user_message_with_exact_usage() {
    let r = request(json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is APIM?"},
    ]}));
    let c = complete(&r, MODEL, CREATED);
    assert_eq!(c.content, "You said: What is APIM?");
    assert_eq!(c.finish_reason, "stop");
    // 3 priming + 4 messages × 3 + tokens: Be . brief . → 3, first 1, ok 1, What is APIM ? 4.
    assert_eq!(
        (c.prompt_tokens, c.completion_tokens),
        (3 + 12 + 3 + 1 + 1 + 4, 7)
    );
    let body: Value = serde_json::from_slice(&c.response()).unwrap();
    assert_eq!(
        body,
        json!({
            "id": c.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "You said: What is APIM?", "refusal": null, "annotations": []},
                "finish_reason": "stop",
                "logprobs": null,
            }],
            "usage": {
                "prompt_tokens": 24, "completion_tokens": 7, "total_tokens": 31,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            },
        })
    );
    assert!(
        c.id.starts_with("chatcmpl-") && c.id.len() == 25,
        "{}",
        c.id
    );
    assert_eq!(complete(&r, MODEL, CREATED), c, "deterministic");
    assert_ne!(complete(&r, MODEL, CREATED + 1).id, c.id);
}

#[test]
fn a_long_message_is_echoed_up_to_16_tokens_then_an_ellipsis() {
    let words: Vec<String> = (1..=20).map(|i| format!("w{i}")).collect();
    let r = request(json!({"messages": [{"role": "user", "content": words.join(" ")}]}));
    assert_eq!(
        complete(&r, MODEL, CREATED).content,
        format!("You said: {}…", words[..16].join(" "))
    );
}

#[test]
fn max_tokens_and_max_completion_tokens_cut_the_reply_with_finish_reason_length() {
    let base = json!([{"role": "user", "content": "one two three"}]);
    let cut = |field: &str, n: u64| {
        let c = complete(
            &request(json!({"messages": base, field: n})),
            MODEL,
            CREATED,
        );
        (c.content, c.finish_reason, c.completion_tokens)
    };
    assert_eq!(cut("max_tokens", 3), ("You said:".to_owned(), "length", 3));
    assert_eq!(
        cut("max_completion_tokens", 4),
        ("You said: one".to_owned(), "length", 4)
    );
    // Exactly the reply's length is not a cut.
    assert_eq!(
        cut("max_tokens", 6),
        ("You said: one two three".to_owned(), "stop", 6)
    );
    let both = request(json!({"messages": base, "max_tokens": 5, "max_completion_tokens": 3}));
    assert_eq!(both.max_tokens, Some(3));
}

#[test]
fn streaming_sends_role_tokens_finish_usage_and_done() {
    let r = request(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 3,
    }));
    assert!(r.stream && r.include_usage);
    let c = complete(&r, MODEL, CREATED);
    let frames: Vec<String> = c
        .stream(r.include_usage)
        .into_iter()
        .map(|f| String::from_utf8(f).unwrap())
        .collect();
    let head = format!(
        r#""id":"{}","model":"{MODEL}","object":"chat.completion.chunk""#,
        c.id
    );
    let delta = |d: &str, finish: &str| {
        format!(
            r#"data: {{"choices":[{{"delta":{d},"finish_reason":{finish},"index":0,"logprobs":null}}],"created":{CREATED},{head},"usage":null}}"#
        ) + "\n\n"
    };
    assert_eq!(
        frames,
        [
            delta(r#"{"content":"","role":"assistant"}"#, "null"),
            delta(r#"{"content":"You"}"#, "null"),
            delta(r#"{"content":" said"}"#, "null"),
            delta(r#"{"content":":"}"#, "null"),
            delta("{}", r#""length""#),
            format!(
                r#"data: {{"choices":[],"created":{CREATED},{head},"usage":{}}}"#,
                c.usage()
            ) + "\n\n",
            "data: [DONE]\n\n".to_owned(),
        ]
    );
    // Without include_usage: no usage frame and no `usage` key at all.
    let plain = c.stream(false);
    assert_eq!(plain.len(), 6);
    assert!(
        plain
            .iter()
            .all(|f| !String::from_utf8_lossy(f).contains("usage"))
    );
}

#[test]
fn content_parts_are_read_as_their_text() {
    let r = request(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "b"},
    ]}]}));
    assert_eq!(r.messages[0].content, "ab");
}

#[test]
fn invalid_requests_get_azure_openais_error_bodies() {
    let error = |message: &str, param: Value, code: Value| json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}});
    assert_eq!(
        refused(b"{not json"),
        error(UNPARSABLE, Value::Null, Value::Null)
    );
    assert_eq!(refused(b"[1]"), error(UNPARSABLE, Value::Null, Value::Null));
    assert_eq!(
        refused(br#"{"model": "x"}"#),
        error(
            "Missing required parameter: 'messages'.",
            json!("messages"),
            json!("missing_required_parameter")
        )
    );
    assert_eq!(
        refused(br#"{"messages": "hi"}"#),
        error(
            "Invalid type for 'messages': expected an array, but got a string instead.",
            json!("messages"),
            json!("invalid_type")
        )
    );
    assert_eq!(
        refused(br#"{"messages": []}"#),
        error(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            json!("messages"),
            json!("empty_array")
        )
    );
    assert_eq!(
        refused(br#"{"messages": [{"content": "x"}]}"#),
        error(
            "Missing required parameter: 'messages[0].role'.",
            json!("messages[0].role"),
            json!("missing_required_parameter")
        )
    );
    assert_eq!(
        refused(
            br#"{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]}"#
        ),
        error(
            "Invalid type for 'messages[1].content': expected a string, but got an integer instead.",
            json!("messages[1].content"),
            json!("invalid_type")
        )
    );
    let one = r#"[{"role": "user", "content": "x"}]"#;
    assert_eq!(
        refused(format!(r#"{{"messages": {one}, "max_tokens": 0}}"#).as_bytes()),
        error(
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            json!("max_tokens"),
            json!("integer_below_min_value")
        )
    );
    assert_eq!(
        refused(format!(r#"{{"messages": {one}, "max_completion_tokens": "10"}}"#).as_bytes()),
        error(
            "Invalid type for 'max_completion_tokens': expected an integer, but got a string instead.",
            json!("max_completion_tokens"),
            json!("invalid_type")
        )
    );
    assert_eq!(
        refused(format!(r#"{{"messages": {one}, "stream": "yes"}}"#).as_bytes()),
        error(
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
            json!("stream"),
            json!("invalid_type")
        )
    );
    assert_eq!(InvalidRequest::STATUS, 400);
}

/// `ChatRequest` is public: a limit of 0 built by hand must not underflow into a panic.
#[test]
fn a_zero_limit_built_by_hand_gives_an_empty_cut_reply() {
    let mut r = request(json!({"messages": [{"role": "user", "content": "x"}]}));
    r.max_tokens = Some(0);
    let c = complete(&r, MODEL, CREATED);
    assert_eq!(
        (c.content.as_str(), c.finish_reason, c.completion_tokens),
        ("", "length", 0)
    );
}
