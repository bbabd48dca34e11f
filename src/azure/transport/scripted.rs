//! A transport for tests: exact exchanges without a server, so that retries, polling and token
//! refresh are tested by what was sent and when, not by what a server happened to do. It refuses
//! what the real transport refuses, so a test can not pass on a request production would not send.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{SendFuture, Transport, TransportError, WireRequest, WireResponse, invalid, prepare};

/// A canned answer for [`ScriptedTransport`].
pub type ScriptedAnswer = Result<WireResponse, TransportError>;

/// A transport for tests: answers from a queue, and records every request it was given (after
/// [`prepare`], so the recorded requests carry their client request id). An empty queue answers
/// with [`TransportError::Invalid`] naming the request, so a test that sends too much fails clearly.
#[derive(Debug, Clone, Default)]
pub struct ScriptedTransport {
    inner: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    answers: VecDeque<ScriptedAnswer>,
    sent: Vec<WireRequest>,
}

impl ScriptedTransport {
    pub fn new(answers: impl IntoIterator<Item = ScriptedAnswer>) -> ScriptedTransport {
        let transport = ScriptedTransport::default();
        for answer in answers {
            transport.push(answer);
        }
        transport
    }

    pub fn push(&self, answer: ScriptedAnswer) {
        self.lock().answers.push_back(answer);
    }

    /// Every request sent so far, in order.
    pub fn sent(&self) -> Vec<WireRequest> {
        self.lock().sent.clone()
    }

    /// How many canned answers are left.
    pub fn remaining(&self) -> usize {
        self.lock().answers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Transport for ScriptedTransport {
    fn send<'a>(&'a self, request: &'a WireRequest) -> SendFuture<'a> {
        let answer = prepare(request).and_then(|prepared| {
            let mut script = self.lock();
            let answer = script.answers.pop_front().unwrap_or_else(|| {
                Err(invalid(
                    &prepared.url,
                    format!(
                        "the script has no answer left for {} {}",
                        prepared.method, prepared.url
                    ),
                ))
            });
            script.sent.push(prepared);
            answer
        });
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::super::{CLIENT_REQUEST_ID, CORRELATION_REQUEST_ID, Method, REQUEST_ID};
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn scripted_transport_stamps_ids_and_records() {
        let transport = ScriptedTransport::new([Ok(WireResponse::new(200)
            .header(REQUEST_ID, "rid-1")
            .header(CORRELATION_REQUEST_ID, "cid-1"))]);
        let request = WireRequest::new(Method::Get, "https://management.azure.com/a");
        let response = block(transport.send(&request)).unwrap();
        assert_eq!(response.request_id(), Some("rid-1"));
        assert_eq!(response.correlation_id(), Some("cid-1"));
        let sent = transport.sent();
        assert_eq!(sent.len(), 1);
        let id = sent[0].client_request_id().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

        // Each request gets its own id; an id the caller set is kept.
        let again = block(transport.send(&request)).unwrap_err();
        assert_eq!(
            again.to_string(),
            "invalid request to https://management.azure.com/a: the script has no answer left \
             for GET https://management.azure.com/a"
        );
        let sent = transport.sent();
        assert_ne!(sent[0].client_request_id(), sent[1].client_request_id());
        let mine = request.clone().header(CLIENT_REQUEST_ID, "mine");
        let _ = block(transport.send(&mine));
        assert_eq!(transport.sent()[2].client_request_id(), Some("mine"));
    }

    #[test]
    fn scripted_transport_refuses_plain_http_like_the_real_one() {
        let transport = ScriptedTransport::new([Ok(WireResponse::new(200))]);
        let request = WireRequest::new(Method::Get, "http://management.azure.com/a");
        assert!(matches!(
            block(transport.send(&request)),
            Err(TransportError::InsecureUrl { .. })
        ));
        assert_eq!(transport.remaining(), 1);
        assert!(transport.sent().is_empty());
    }
}
