//! Instants as the simulator needs them: RFC 3339 in, Unix seconds inside, and the civil calendar
//! for monthly and yearly quota periods. Small enough not to need a date crate.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number; inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Wall-clock milliseconds since the epoch as `2026-11-28T16:00:00Z` (whole seconds, UTC), the
/// form Graph and ARM use for timestamps.
pub fn format_utc_seconds(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let day = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Parses `2026-11-28T16:00:00Z` or `…+01:00` (fractions of a second are dropped) to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 instant (e.g. 2026-11-28T16:00:00Z)");
    let t = text.trim();
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    if t.len() < 20 || !t.is_char_boundary(19) {
        return Err(bad());
    }
    let (date, rest) = t.split_at(10);
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || !matches!(rest.as_bytes().first(), Some(b'T' | b't' | b' ')) {
        return Err(bad());
    }
    let (y, mo, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let time = &rest[1..9];
    let tp: Vec<&str> = time.split(':').collect();
    if tp.len() != 3 {
        return Err(bad());
    }
    let (h, mi, s) = (num(tp[0])?, num(tp[1])?, num(tp[2])?);
    let mut zone = &rest[9..];
    if let Some(frac) = zone.strip_prefix('.') {
        zone = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match zone {
        "Z" | "z" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 6 && &z[3..4] == ":" => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (num(&z[1..3])? * 3600 + num(&z[4..6])? * 60)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo as u32, day as u32) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-1000, 0, 59, 60, 365, 10_957, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2026, 11, 28), 20_785);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339("2026-11-28T16:00:00Z"),
            Ok(20_785 * 86_400 + 16 * 3600)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T17:00:00.123+01:00"),
            Ok(20_785 * 86_400 + 16 * 3600)
        );
        assert!(parse_rfc3339("2026-11-28").is_err());
        assert!(parse_rfc3339("2026-13-28T00:00:00Z").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
