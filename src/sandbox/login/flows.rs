//! The sign-in flows open on the `/devicelogin` page, and their anti-forgery tokens.
//!
//! Every page the sandbox renders carries a flow id and a fresh random token in hidden fields;
//! a POST is read only when both match a flow kept here, and the token is spent by that POST.
//! A page on another site cannot read the sandbox's pages (the guard refuses foreign Hosts, so
//! not even through DNS rebinding), so it cannot know a token, and what it posts decides
//! nothing. The step a POST answers is the flow's, never the form's: a forged "Accept" cannot
//! skip the code and account steps. Kept in memory only, as a browser session is: a restarted
//! sandbox sends the person back to the code step.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Enough for every person on one machine; beyond it the oldest flow is forgotten, so that
/// reloading the page in a loop cannot grow the sandbox's memory.
const MAX_FLOWS: usize = 256;
/// Longer than a device code lives (15 minutes by default), so that an expired code is told
/// apart on the page from a forgotten flow; a page left open longer starts over.
const FLOW_LIFETIME_MS: u64 = 60 * 60 * 1000;

/// Where a flow stands: what its next POST means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Waiting for the user code.
    Code,
    /// The code is known; waiting for the account.
    Account { user_code: String },
    /// Code and account known; waiting for Accept or Cancel.
    Consent { user_code: String, upn: String },
}

impl Step {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Step::Code => "code",
            Step::Account { .. } => "account",
            Step::Consent { .. } => "consent",
        }
    }

    pub(super) fn user_code(&self) -> Option<&str> {
        match self {
            Step::Code => None,
            Step::Account { user_code } | Step::Consent { user_code, .. } => Some(user_code),
        }
    }
}

#[derive(Debug)]
struct Flow {
    token: String,
    step: Step,
    touched_ms: u64,
}

/// A page's identity: the hidden fields every form of the flow posts back.
#[derive(Debug, Clone)]
pub(super) struct Ticket {
    pub(super) flow: String,
    pub(super) token: String,
}

#[derive(Debug, Default)]
pub(crate) struct Flows {
    by_id: HashMap<String, Flow>,
}

impl Flows {
    /// A new flow at the code step.
    pub(super) fn open(&mut self, now_ms: u64) -> Option<Ticket> {
        self.forget_stale(now_ms);
        let flow = random_id()?;
        let ticket = self.set(&flow, Step::Code, now_ms)?;
        Some(ticket)
    }

    /// Moves a flow to `step` with a fresh token for the page that shows it.
    pub(super) fn set(&mut self, flow: &str, step: Step, now_ms: u64) -> Option<Ticket> {
        let token = random_id()?;
        self.by_id.insert(
            flow.to_owned(),
            Flow {
                token: token.clone(),
                step,
                touched_ms: now_ms,
            },
        );
        Some(Ticket {
            flow: flow.to_owned(),
            token,
        })
    }

    /// The step of the flow a POST names, when its token is the one last handed out; the token
    /// is spent either way, so a replayed or guessed form decides nothing.
    pub(super) fn take(&mut self, flow: &str, token: &str, now_ms: u64) -> Option<Step> {
        self.forget_stale(now_ms);
        let entry = self.by_id.get_mut(flow)?;
        let matches = same(entry.token.as_bytes(), token.as_bytes());
        // Spent: a second POST with the same token is refused like a forged one.
        entry.token.clear();
        matches.then(|| entry.step.clone())
    }

    fn forget_stale(&mut self, now_ms: u64) {
        self.by_id
            .retain(|_, f| now_ms.saturating_sub(f.touched_ms) < FLOW_LIFETIME_MS);
        while self.by_id.len() >= MAX_FLOWS {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, f)| f.touched_ms)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.by_id.remove(&id),
                None => break,
            };
        }
    }
}

fn random_id() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares in time independent of where the first difference is, so a token cannot be found
/// byte by byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_own_flow_once() {
        let mut flows = Flows::default();
        let ticket = flows.open(0).unwrap();
        assert_eq!(flows.take(&ticket.flow, "forged", 1), None);
        // The forged attempt spent the token too: the page must be loaded again.
        assert_eq!(flows.take(&ticket.flow, &ticket.token, 2), None);

        let ticket = flows.set(&ticket.flow, Step::Code, 3).unwrap();
        assert_eq!(flows.take(&ticket.flow, "", 4), None);
        let ticket = flows.set(&ticket.flow, Step::Code, 5).unwrap();
        assert_eq!(flows.take(&ticket.flow, &ticket.token, 6), Some(Step::Code));
        assert_eq!(flows.take(&ticket.flow, &ticket.token, 7), None, "replayed");
        assert_eq!(flows.take("no-such-flow", &ticket.token, 8), None);
    }

    #[test]
    fn flows_expire_and_are_bounded() {
        let mut flows = Flows::default();
        let old = flows.open(0).unwrap();
        assert_eq!(
            flows.take(&old.flow, &old.token, FLOW_LIFETIME_MS),
            None,
            "stale"
        );
        for i in 0..(MAX_FLOWS as u64 * 2) {
            flows.open(i).unwrap();
        }
        assert!(flows.by_id.len() <= MAX_FLOWS);
        assert!(!same(b"", b""));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
