//! `rate-limit-by-key` and `llm-token-limit` on the simulator's clock: sliding windows for calls
//! and tokens per minute, calendar periods for token quotas.

use std::collections::BTreeMap;

use super::{Context, Denial, NotSimulated, Simulator};
use crate::clock::{Timestamp, utc_month, utc_year};
use crate::policy::document::Position;
use crate::policy::model::{RateLimit, TokenLimit};

/// Usage per counter key: (instant, amount) events, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    calls: BTreeMap<String, Vec<(i64, u64)>>,
    tokens: BTreeMap<String, Vec<(i64, u64)>>,
}

impl Counters {
    /// Charges `amount` tokens at `now` to a token-limit counter.
    pub fn record_tokens(&mut self, key: &str, now: i64, amount: u64) {
        if amount > 0 {
            // Looked up by `&str` first: the key is only copied the first time it is charged.
            if !self.tokens.contains_key(key) {
                self.tokens.insert(key.to_owned(), Vec::new());
            }
            if let Some(events) = self.tokens.get_mut(key) {
                add(events, now, amount);
            }
        }
    }

    /// Saturating: amounts come from the caller, and a sum past `u64::MAX` is over any limit.
    fn sum_since(events: &[(i64, u64)], since: i64) -> u64 {
        events
            .iter()
            .filter(|(t, _)| *t > since)
            .fold(0, |sum, (_, n)| sum.saturating_add(*n))
    }
}

/// Adds an event, folding it into the last one when both fall in the same second: windows are
/// whole seconds, so the sums are the same, and a counter under a steady load holds one event
/// per second rather than one per request (a gateway serving thousands of requests a second
/// would otherwise scan and grow an ever longer list on every call).
fn add(events: &mut Vec<(i64, u64)>, now: i64, amount: u64) {
    match events.last_mut() {
        Some((t, n)) if *t == now => *n = n.saturating_add(amount),
        _ => events.push((now, amount)),
    }
}

/// Start and end (Unix seconds) of the quota period containing `now`.
fn quota_period(period: &str, now: i64) -> Option<(i64, i64)> {
    const DAY: i64 = 86_400;
    let fixed = |len: i64, offset: i64| {
        let start = (now + offset).div_euclid(len) * len - offset;
        (start, start + len)
    };
    Some(match period.to_ascii_lowercase().as_str() {
        "hourly" => fixed(3_600, 0),
        "daily" => fixed(DAY, 0),
        // Weeks start on Monday; 1970-01-01 was a Thursday.
        "weekly" => fixed(7 * DAY, 3 * DAY),
        "monthly" | "yearly" => {
            let at = Timestamp::from_second(now).ok()?;
            let (start, end) = if period.eq_ignore_ascii_case("monthly") {
                utc_month(at)
            } else {
                utc_year(at)
            };
            (start.as_second(), end.as_second())
        }
        "indefinite" => (i64::MIN / 2, i64::MAX / 2),
        _ => return None,
    })
}

impl Simulator {
    fn number(
        &self,
        value: &crate::policy::model::Value,
        ctx: &Context,
        policy: &str,
    ) -> Result<u64, NotSimulated> {
        let text = self.resolve(value, ctx, policy)?;
        text.trim().parse().map_err(|_| NotSimulated {
            policy: policy.to_owned(),
            line: value.position.line,
            column: value.position.column,
            what: format!("`{text}` is not a number"),
        })
    }

    /// Counts this call and denies with 429 once `calls` were made within `renewal-period`.
    pub(super) fn rate_limit(
        &mut self,
        limit: &RateLimit,
        ctx: &Context,
        policy: &str,
        position: Position,
    ) -> Result<Option<Denial>, NotSimulated> {
        let calls = self.number(&limit.calls, ctx, policy)?;
        // A renewal period past i64 seconds is forever; saturating keeps the window arithmetic
        // below from overflowing on it.
        let period =
            i64::try_from(self.number(&limit.renewal_period, ctx, policy)?).unwrap_or(i64::MAX);
        let since = ctx.now.saturating_sub(period);
        let key = format!(
            "{}:{}:{}",
            position,
            policy,
            self.resolve(&limit.counter_key, ctx, policy)?
        );
        if let Some(condition) = &limit.increment_condition {
            // Which calls count is decided by C#; don't guess.
            return Err(NotSimulated {
                policy: policy.to_owned(),
                line: condition.position.line,
                column: condition.position.column,
                what: format!("increment-condition `{}`", condition.text.trim()),
            });
        }
        let events = self.counters.calls.entry(key).or_default();
        events.retain(|(t, _)| *t > since);
        if Counters::sum_since(events, since) >= calls {
            let oldest = events.first().map_or(ctx.now, |(t, _)| *t);
            let retry = oldest.saturating_add(period).saturating_sub(ctx.now).max(1);
            return Ok(Some(Denial {
                status: 429,
                reason: "RateLimitExceeded",
                message: format!("Rate limit is exceeded. Try again in {retry} seconds."),
                detail: format!("{calls} calls per {period} s already made for this key"),
                headers: vec![(limit.retry_after_header.clone(), retry.to_string())],
            }));
        }
        add(events, ctx.now, 1);
        Ok(None)
    }

    /// Checks the token budget; on success returns the counter key the request's tokens go to.
    #[allow(clippy::type_complexity)]
    pub(super) fn token_limit(
        &mut self,
        limit: &TokenLimit,
        ctx: &Context,
        policy: &str,
        position: Position,
    ) -> Result<(Option<Denial>, String, Vec<(String, String)>), NotSimulated> {
        let key = format!(
            "{}:{}:{}",
            position,
            policy,
            self.resolve(&limit.counter_key, ctx, policy)?
        );
        let events: &[(i64, u64)] = self.counters.tokens.get(&key).map_or(&[], Vec::as_slice);
        let mut headers = Vec::new();
        if let Some(tpm) = &limit.tokens_per_minute {
            let tpm = self.number(tpm, ctx, policy)?;
            let used = Counters::sum_since(events, ctx.now - 60);
            if used >= tpm {
                let oldest = events
                    .iter()
                    .find(|(t, _)| *t > ctx.now - 60)
                    .map_or(ctx.now, |(t, _)| *t);
                let retry = (oldest + 60 - ctx.now).max(1);
                return Ok((
                    Some(Denial {
                        status: 429,
                        reason: "TokenLimitExceeded",
                        message: format!("Token limit is exceeded. Try again in {retry} seconds."),
                        detail: format!("{used} of {tpm} tokens per minute used for this key"),
                        headers: vec![(limit.retry_after_header.clone(), retry.to_string())],
                    }),
                    key,
                    headers,
                ));
            }
            if let Some(h) = &limit.remaining_tokens_header {
                headers.push((h.clone(), (tpm - used).to_string()));
            }
        }
        if let Some(quota) = &limit.token_quota {
            let quota = self.number(quota, ctx, policy)?;
            let (start, end) =
                quota_period(&limit.token_quota_period, ctx.now).ok_or_else(|| NotSimulated {
                    policy: policy.to_owned(),
                    line: position.line,
                    column: position.column,
                    what: format!("token-quota-period `{}`", limit.token_quota_period),
                })?;
            let used = events
                .iter()
                .filter(|(t, _)| *t >= start && *t < end)
                .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
            if used >= quota {
                let retry = (end - ctx.now).max(1);
                return Ok((
                    Some(Denial {
                        status: 403,
                        reason: "TokenQuotaExceeded",
                        message: format!("Token quota is exceeded. Try again in {retry} seconds."),
                        detail: format!(
                            "{used} of {quota} tokens used this {} period",
                            limit.token_quota_period
                        ),
                        headers: vec![(limit.retry_after_header.clone(), retry.to_string())],
                    }),
                    key,
                    headers,
                ));
            }
        }
        Ok((None, key, headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_periods() {
        let now = 20_785 * 86_400 + 3_700; // 2026-11-28 01:01:40 UTC, a Saturday
        assert_eq!(
            quota_period("Hourly", now),
            Some((20_785 * 86_400 + 3_600, 20_785 * 86_400 + 7_200))
        );
        assert_eq!(
            quota_period("Daily", now),
            Some((20_785 * 86_400, 20_786 * 86_400))
        );
        assert_eq!(
            quota_period("Weekly", now),
            Some((20_780 * 86_400, 20_787 * 86_400))
        );
        assert_eq!(
            quota_period("Monthly", now),
            Some((1_793_491_200, 1_796_083_200)) // 2026-11-01 and 2026-12-01, 00:00 UTC
        );
        assert_eq!(quota_period("Fortnightly", now), None);
    }
}
