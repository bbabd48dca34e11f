//! The one clock: everything that asks "what time is it?" (token lifetimes, device codes,
//! long-running operations, soft-delete retention, throttling windows, the simulator's `--now`)
//! asks a [`Clock`], so that a test or the sandbox's operator can move time instead of waiting
//! for it.
//!
//! Two kinds of time exist in the program and stay apart on purpose:
//! - *wall time* ([`Timestamp`], from a [`Clock`]): what tokens, HTTP dates and Azure's own
//!   timestamps are made of. Production reads the system clock; the sandbox reads an
//!   [`OffsetClock`] that its operator can move forward (`provision sandbox clock advance 48h`).
//! - *waiting time* (`tokio::time`): how long the client sleeps between polls and retries, and
//!   its deadline. It is monotonic, and tests pause and advance it with tokio's test clock; moving
//!   the wall clock must never make a deadline pass or a retry fire early.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use jiff::{SignedDuration, Timestamp};

/// A source of wall time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// Whole seconds since the Unix epoch: the unit of JWT claims.
    fn now_seconds(&self) -> i64 {
        self.now().as_second()
    }

    /// Milliseconds since the Unix epoch: the unit the sandbox keeps its records in.
    fn now_millis(&self) -> i64 {
        self.now().as_millisecond()
    }
}

/// The operating system's clock: production time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system clock shifted by an offset that can be moved: the sandbox's clock. Moving it is
/// exactly as if that much time had passed for everything that reads it, and for nothing else.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// A clock `offset` ahead of (or, negative, behind) the system clock.
    pub fn new(offset: SignedDuration) -> OffsetClock {
        OffsetClock {
            offset_ms: AtomicI64::new(millis(offset)),
        }
    }

    /// How far this clock is from the system clock.
    pub fn offset(&self) -> SignedDuration {
        SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `by`. Time does not run backwards: a negative `by` is refused,
    /// because tokens, operations and retention windows already handed out would stop making sense.
    pub fn advance(&self, by: SignedDuration) -> Result<Timestamp, ClockError> {
        if by.is_negative() {
            return Err(ClockError::Backwards);
        }
        let by = millis(by);
        let system = Timestamp::now().as_millisecond();
        // Only an offset that still lands on a representable instant is taken.
        let landed = |offset: i64| {
            system
                .checked_add(offset)
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        };
        self.offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
                o.checked_add(by).filter(|&next| landed(next).is_some())
            })
            .map_err(|_| ClockError::OutOfRange)?;
        Ok(self.now())
    }

    /// Moves the clock to `to`, which must not be earlier than the clock's time now.
    pub fn set(&self, to: Timestamp) -> Result<Timestamp, ClockError> {
        let now = self.now();
        if to < now {
            return Err(ClockError::Backwards);
        }
        let by = to.duration_since(now);
        self.advance(by)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        let system = Timestamp::now().as_millisecond();
        let shifted = system.saturating_add(self.offset_ms.load(Ordering::SeqCst));
        Timestamp::from_millisecond(shifted).unwrap_or(Timestamp::MAX)
    }
}

/// A clock that stands still at one instant until moved: for tests of pure code.
#[derive(Debug)]
pub struct FixedClock {
    at_ms: AtomicI64,
}

impl FixedClock {
    pub fn at(instant: Timestamp) -> FixedClock {
        FixedClock {
            at_ms: AtomicI64::new(instant.as_millisecond()),
        }
    }

    pub fn advance(&self, by: SignedDuration) {
        self.at_ms.fetch_add(millis(by), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.at_ms.load(Ordering::SeqCst)).unwrap_or(Timestamp::MAX)
    }
}

/// Why a clock would not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the clock only moves forward")]
    Backwards,
    #[error("that would move the clock past the year 9999")]
    OutOfRange,
}

/// Parses an instant as written on a command line or in a file: RFC 3339 with an offset
/// (`2026-11-28T16:00:00Z`, `2026-11-28T17:00:00.5+01:00`). The error names the value and the form.
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    text.trim_ascii().parse::<Timestamp>().map_err(|e| {
        format!(
            "`{text}` is not an RFC 3339 instant (write e.g. 2026-11-28T16:00:00Z or \
             2026-11-28T17:00:00+01:00): {e}"
        )
    })
}

/// Parses a duration as written on a command line (`--timeout`, and any other): jiff's friendly
/// form (`90s`, `20m`, `1h30m`, `1.5s`, `2 days`) or ISO 8601 (`PT1H30M`); a day is 24 hours, and
/// months and years, whose length depends on the date, are refused. Whatever
/// [`format_duration`] writes reads back. The error names the value and the form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let form = "write e.g. 90s, 20m, 1h30m or PT1H30M";
    let span = text
        .trim_ascii()
        .parse::<jiff::Span>()
        .map_err(|e| format!("`{text}` is not a duration ({form}): {e}"))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("`{text}` is not a duration ({form}): {e}"))?;
    Duration::try_from(signed)
        .map_err(|_| format!("`{text}` is negative: a duration only runs forward ({form})"))
}

/// `2026-11-28T16:00:00Z`: whole seconds in UTC, the form Graph and ARM write timestamps in.
pub fn format_utc_seconds(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// [`format_utc_seconds`] of an instant kept as milliseconds since the epoch.
pub fn format_utc_millis(ms: u64) -> String {
    let at = i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX);
    format_utc_seconds(at)
}

/// The first instant of the calendar month (UTC) that holds `at`, and of the month after it.
/// In December 9999 the next month does not exist: the period then ends at the last instant.
pub fn utc_month(at: Timestamp) -> (Timestamp, Timestamp) {
    let date = jiff::tz::Offset::UTC.to_datetime(at).date();
    let (year, month) = (date.year(), date.month());
    let next = if month == 12 {
        (year.checked_add(1), 1)
    } else {
        (Some(year), month + 1)
    };
    (
        utc_midnight(Some(year), month),
        utc_midnight(next.0, next.1),
    )
}

/// The first instant of the calendar year (UTC) that holds `at`, and of the year after it (the
/// last instant, for the year 9999).
pub fn utc_year(at: Timestamp) -> (Timestamp, Timestamp) {
    let year = jiff::tz::Offset::UTC.to_datetime(at).date().year();
    (
        utc_midnight(Some(year), 1),
        utc_midnight(year.checked_add(1), 1),
    )
}

/// Midnight UTC on the first of a month; a month past what jiff can represent is the last instant.
fn utc_midnight(year: Option<i16>, month: i8) -> Timestamp {
    year.and_then(|year| jiff::civil::Date::new(year, month, 1).ok())
        .and_then(|date| {
            jiff::tz::Offset::UTC
                .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
        .unwrap_or(Timestamp::MAX)
}

/// Go-style durations, as people type them into `--timeout`: `250ms`, `1.5s`, `45s`, `5m0s`,
/// `1h2m3s`.
pub fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    if millis < 60_000 {
        let whole = millis / 1000;
        let frac = millis % 1000;
        if frac == 0 {
            return format!("{whole}s");
        }
        let frac = format!("{frac:03}");
        return format!("{whole}.{}s", frac.trim_end_matches('0'));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

fn millis(d: SignedDuration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_moves_forward_by_exactly_what_it_is_told() {
        let clock = OffsetClock::default();
        let before = clock.now();
        clock.advance(SignedDuration::from_hours(48)).unwrap();
        let moved = clock.now().duration_since(before);
        assert!(moved >= SignedDuration::from_hours(48), "{moved:?}");
        assert!(
            moved < SignedDuration::from_hours(48) + SignedDuration::from_secs(5),
            "{moved:?}"
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(48));
    }

    #[test]
    fn an_offset_clock_never_runs_backwards() {
        let clock = OffsetClock::new(SignedDuration::from_hours(1));
        assert_eq!(
            clock.advance(SignedDuration::from_secs(-1)),
            Err(ClockError::Backwards)
        );
        assert_eq!(
            clock.set("2000-01-01T00:00:00Z".parse().unwrap()),
            Err(ClockError::Backwards)
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(1));
    }

    #[test]
    fn setting_an_offset_clock_lands_on_the_instant() {
        let clock = OffsetClock::default();
        let to: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
        clock.set(to).unwrap();
        let off = clock.now().duration_since(to);
        assert!(off.abs() < SignedDuration::from_secs(5), "{off:?}");
    }

    #[test]
    fn an_advance_past_the_last_instant_is_refused_and_changes_nothing() {
        let clock = OffsetClock::new(SignedDuration::from_hours(2));
        assert_eq!(
            clock.advance(SignedDuration::MAX),
            Err(ClockError::OutOfRange)
        );
        assert_eq!(
            clock.advance(SignedDuration::from_hours(24 * 365 * 10_000)),
            Err(ClockError::OutOfRange)
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(2));
    }

    #[test]
    fn instants_parse_from_rfc3339_and_name_the_value_when_they_do_not() {
        assert_eq!(
            parse_instant("1970-01-01T00:00:00Z").unwrap().as_second(),
            0
        );
        assert_eq!(
            parse_instant("2026-11-28T17:00:00.123+01:00")
                .unwrap()
                .as_second(),
            1_795_881_600
        );
        for bad in [
            "2026-11-28",
            "2026-13-28T00:00:00Z",
            "yesterday",
            "2026-11-28T16:00:00+0€0",
        ] {
            let error = parse_instant(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("`{bad}` is not an RFC 3339 instant (write e.g. ")),
                "{error}"
            );
        }
    }

    #[test]
    fn utc_timestamps_are_whole_seconds() {
        assert_eq!(format_utc_millis(1_795_881_600_999), "2026-11-28T16:00:00Z");
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn calendar_periods_start_at_utc_midnight() {
        let at = parse_instant("2026-12-31T23:59:59Z").unwrap();
        let (start, end) = utc_month(at);
        assert_eq!(format_utc_seconds(start), "2026-12-01T00:00:00Z");
        assert_eq!(format_utc_seconds(end), "2027-01-01T00:00:00Z");
        let (start, end) = utc_year(at);
        assert_eq!(format_utc_seconds(start), "2026-01-01T00:00:00Z");
        assert_eq!(format_utc_seconds(end), "2027-01-01T00:00:00Z");
        // Regression: December 9999 has no next month, and jiff panics on a date in 10000.
        let last = parse_instant("9999-12-30T00:00:00Z").unwrap();
        assert_eq!(utc_month(last).1, Timestamp::MAX);
        assert_eq!(utc_year(last).1, Timestamp::MAX);
        assert_eq!(
            format_utc_seconds(utc_month(last).0),
            "9999-12-01T00:00:00Z"
        );
    }

    #[test]
    fn durations_read_like_go() {
        let cases = [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(1250), "1.25s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn a_fixed_clock_stands_still_until_moved() {
        let t0: Timestamp = "2026-11-28T16:00:00Z".parse().unwrap();
        let clock = FixedClock::at(t0);
        assert_eq!(clock.now(), t0);
        assert_eq!(clock.now_seconds(), 1_795_881_600);
        clock.advance(SignedDuration::from_mins(61));
        assert_eq!(clock.now_seconds(), 1_795_881_600 + 61 * 60);
    }

    #[test]
    fn durations_parse_in_the_friendly_and_the_iso_form() {
        let cases = [
            ("60m", 3_600_000),
            ("90s", 90_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1_500),
            ("250ms", 250),
            ("5m0s", 300_000),
            ("2 days", 172_800_000),
            ("1d", 86_400_000),
            ("PT1H30M", 5_400_000),
            (" 20m\n", 1_200_000),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    /// Regression: `--timeout 5x` said only what humantime thought, not which value or what to
    /// write instead.
    #[test]
    fn a_duration_that_does_not_parse_names_the_value_and_the_form() {
        assert_eq!(
            parse_duration("5x"),
            Err(
                "`5x` is not a duration (write e.g. 90s, 20m, 1h30m or PT1H30M): failed to \
                 parse input in the \"friendly\" duration format: expected to find unit \
                 designator suffix (e.g., `years` or `secs`) after parsing integer"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_duration("-5m"),
            Err(
                "`-5m` is negative: a duration only runs forward (write e.g. 90s, 20m, 1h30m or \
                 PT1H30M)"
                    .to_owned()
            )
        );
        for bad in ["", "1 month", "2y", "soon", "5m ago", "1h€"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.starts_with(&format!("`{bad}` is ")), "{error}");
            assert!(
                error.contains("(write e.g. 90s, 20m, 1h30m or PT1H30M)"),
                "{error}"
            );
        }
    }

    /// Regression: a date with a multi-byte space around it was trimmed and accepted, while the
    /// same character anywhere else was an error; only ASCII white space is trimmed now.
    #[test]
    fn a_multi_byte_space_around_a_date_is_an_error() {
        let error = parse_instant("\u{3000}2026-11-28T16:00:00Z").unwrap_err();
        assert!(
            error.starts_with("`\u{3000}2026-11-28T16:00:00Z` is not an RFC 3339 instant"),
            "{error}"
        );
        assert!(parse_instant(" 2026-11-28T16:00:00Z\n").is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Instants from 0001-01-01 to 9999-12-31, in whole seconds.
        fn instant() -> impl Strategy<Value = Timestamp> {
            (-62_135_596_800i64..=253_402_300_799).prop_map(|s| Timestamp::from_second(s).unwrap())
        }

        fn multi_byte() -> impl Strategy<Value = char> {
            any::<char>().prop_filter("multi-byte", |c| c.len_utf8() > 1)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn no_string_makes_the_date_parser_panic(text in any::<String>()) {
                if let Err(error) = parse_instant(&text) {
                    let expected = format!("`{text}` is not an RFC 3339 instant");
                    prop_assert!(error.starts_with(&expected), "{}", error);
                }
            }

            #[test]
            fn no_string_makes_the_duration_parser_panic(text in any::<String>()) {
                if let Err(error) = parse_duration(&text) {
                    prop_assert!(error.starts_with(&format!("`{text}` is ")), "{}", error);
                }
            }

            #[test]
            fn every_multi_byte_character_anywhere_in_a_date_is_an_error(
                at in instant(),
                c in multi_byte(),
            ) {
                let date = format_utc_seconds(at);
                for (i, _) in date.char_indices().chain([(date.len(), ' ')]) {
                    let bad = format!("{}{c}{}", &date[..i], &date[i..]);
                    let error = parse_instant(&bad);
                    prop_assert!(error.is_err(), "{bad} parsed");
                    let error = error.unwrap_err();
                    prop_assert!(
                        error.starts_with(&format!("`{bad}` is not an RFC 3339 instant (write e.g. ")),
                        "{}", error
                    );
                }
            }

            #[test]
            fn a_formatted_instant_parses_back_to_itself(at in instant()) {
                prop_assert_eq!(parse_instant(&format_utc_seconds(at)), Ok(at));
                prop_assert_eq!(parse_instant(&at.to_string()), Ok(at));
            }

            #[test]
            fn a_formatted_duration_parses_back_to_itself(ms in 0u64..10_000_000_000) {
                // Past a minute the format keeps whole seconds, as Go's does.
                let d = if ms < 60_000 {
                    Duration::from_millis(ms)
                } else {
                    Duration::from_secs(ms / 1000)
                };
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }
        }
    }
}
