//! A deployment's rate limits, counted on the sandbox's clock: the requests and tokens rules of
//! its ARM `rateLimits` (requests per 10 s and tokens per 60 s, derived from `sku.capacity` by
//! the ARM emulation: 1000 tokens per minute per capacity unit, and "6 RPM per 1000 TPM",
//! dataplane.md §2.8 and foundry-arm.md §1.5).
//!
//! Each rule is a fixed window that opens with the first request after the previous one closed.
//! Azure's own limiter is finer grained (it evaluates over 1 s and 10 s periods); a fixed window
//! is what a test can predict exactly, and it keeps the two facts clients rely on: past the
//! limit a request is refused with how long to wait, and after that wait it passes again.
//!
//! A request costs its prompt plus its completion tokens (the stub's, known before answering).
//! Azure estimates the cost up front from the prompt and `max_tokens`; the stub's completion is
//! deterministic, so its real size is the better estimate. A refused request costs nothing.

use std::collections::HashMap;
use std::sync::Mutex;

/// One rule: at most `count` per `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub count: u64,
    pub period_ms: u64,
}

/// Which rule refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    Requests,
    Tokens,
}

/// What is left in each window after a request (or at a refusal: before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remaining {
    pub requests: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed(Remaining),
    Throttled {
        exceeded: Exceeded,
        retry_after_ms: u64,
        remaining: Remaining,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    opened_ms: u64,
    used: u64,
}

impl Window {
    /// Closes the window when its period is over.
    fn roll(&mut self, rule: Rule, now_ms: u64) {
        if self.used > 0 && now_ms >= self.opened_ms + rule.period_ms {
            self.used = 0;
        }
        if self.used == 0 {
            self.opened_ms = now_ms;
        }
    }

    fn left(&self, rule: Rule) -> u64 {
        rule.count.saturating_sub(self.used)
    }

    fn reopens_in(&self, rule: Rule, now_ms: u64) -> u64 {
        (self.opened_ms + rule.period_ms).saturating_sub(now_ms)
    }
}

/// The windows of every deployment of one sandbox, by deployment id (lower case).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    windows: Mutex<HashMap<String, (Window, Window)>>,
}

impl Limits {
    /// Counts one request costing `tokens` against `deployment`'s rules, or refuses it.
    pub fn charge(
        &self,
        deployment: &str,
        (requests, tokens_rule): (Rule, Rule),
        tokens: u64,
        now_ms: u64,
    ) -> Verdict {
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (calls, spent) = all.entry(deployment.to_owned()).or_default();
        calls.roll(requests, now_ms);
        spent.roll(tokens_rule, now_ms);
        let remaining = Remaining {
            requests: calls.left(requests),
            tokens: spent.left(tokens_rule),
        };
        if remaining.requests == 0 {
            return Verdict::Throttled {
                exceeded: Exceeded::Requests,
                retry_after_ms: calls.reopens_in(requests, now_ms),
                remaining,
            };
        }
        if tokens > remaining.tokens {
            return Verdict::Throttled {
                exceeded: Exceeded::Tokens,
                retry_after_ms: spent.reopens_in(tokens_rule, now_ms),
                remaining,
            };
        }
        calls.used += 1;
        spent.used += tokens;
        Verdict::Allowed(Remaining {
            requests: calls.left(requests),
            tokens: spent.left(tokens_rule),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: (Rule, Rule) = (
        Rule {
            count: 2,
            period_ms: 10_000,
        },
        Rule {
            count: 1000,
            period_ms: 60_000,
        },
    );

    #[test]
    fn requests_past_a_rule_wait_for_its_window_to_reopen() {
        let limits = Limits::default();
        assert_eq!(
            limits.charge("d", RULES, 10, 1_000),
            Verdict::Allowed(Remaining {
                requests: 1,
                tokens: 990
            })
        );
        assert_eq!(
            limits.charge("d", RULES, 10, 4_000),
            Verdict::Allowed(Remaining {
                requests: 0,
                tokens: 980
            })
        );
        assert_eq!(
            limits.charge("d", RULES, 10, 5_000),
            Verdict::Throttled {
                exceeded: Exceeded::Requests,
                retry_after_ms: 6_000,
                remaining: Remaining {
                    requests: 0,
                    tokens: 980
                }
            }
        );
        assert_eq!(
            limits.charge("d", RULES, 980, 11_000),
            Verdict::Allowed(Remaining {
                requests: 1,
                tokens: 0
            })
        );
        assert_eq!(
            limits.charge("d", RULES, 1, 12_000),
            Verdict::Throttled {
                exceeded: Exceeded::Tokens,
                retry_after_ms: 49_000,
                remaining: Remaining {
                    requests: 1,
                    tokens: 0
                }
            }
        );
        assert!(matches!(
            limits.charge("d", RULES, 1, 61_000),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.charge("other", RULES, 1000, 12_000),
            Verdict::Allowed(_)
        ));
    }
}
