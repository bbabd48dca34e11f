//! Server-sent events of a streamed chat completion (`data: {…}` lines, `data: [DONE]` last), read
//! as the bytes arrive: a line split across chunks is kept until its end comes.

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Events {
    pending: Vec<u8>,
    /// Set once `data: [DONE]` came.
    pub done: bool,
    /// The model named by the events, if any.
    pub model: Option<String>,
}

/// Lines held back waiting for their end, at most: an event is a few hundred bytes.
const MAX_PENDING: usize = 1024 * 1024;

impl Events {
    /// Feeds a chunk; returns the text the events in it add to the answer.
    pub fn feed(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let mut text = String::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if self.model.is_none() {
                self.model = event
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            if let Some(piece) = event
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                text.push_str(piece);
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.pending.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_split_across_chunks_is_read_once_whole() {
        let mut events = Events::default();
        assert_eq!(
            events.feed(b"data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Hel"),
            ""
        );
        assert_eq!(
            events.feed(b"lo\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" you\"}}]}\n"),
            "Hello you"
        );
        assert!(!events.done);
        assert_eq!(events.feed(b"data: [DONE]\n\n"), "");
        assert!(events.done);
        assert_eq!(events.model.as_deref(), Some("m"));
    }
}
