//! Query filters and the time arguments of `dialgate log`.

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::record::{Kind, Outcome, escape_for_error, normalize_time};

/// Which records a query returns. Every field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Records that were still going at or after this time (`ended_at >= since`).
    pub since: Option<OffsetDateTime>,
    /// Records that had started at or before this time (`started_at <= until`).
    pub until: Option<OffsetDateTime>,
    /// Exactly this user name (the dialog's user).
    pub user: Option<String>,
    /// Exactly this outcome.
    pub outcome: Option<Outcome>,
    /// A substring of the port group name or of the device
    /// (`telnet` matches `telnet0`; `127.0.0.1` matches `tcp 127.0.0.1:5555`).
    /// Case-sensitive.
    pub port: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// At most this many: for `query` the most recent ones, for `follow`
    /// the next ones.
    pub limit: Option<usize>,
}

/// A time argument that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time `{input}`: {why} (use RFC 3339 like 2026-11-24T10:00:00Z, a date like 2026-11-24, `now`, or an age like 30m, 1h, 2d, 1h30m)"
)]
pub struct TimeArgError {
    input: String,
    why: String,
}

/// Parse a `--since`/`--until` argument relative to `now`:
///
/// - RFC 3339 (`2026-11-24T10:00:00Z`, `2026-11-24T12:00:00.5+02:00`; a space
///   may replace the `T`);
/// - a date `2026-11-24` (midnight UTC);
/// - `now`;
/// - an age: one or more `<number><unit>` with units `s`, `m`, `h`, `d`, `w`
///   (`90s`, `30m`, `1h`, `2d`, `1h30m`), optionally prefixed by `-`,
///   meaning that long before `now`.
///
/// The result is UTC with microsecond precision.
pub fn parse_time_arg(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, TimeArgError> {
    let err = |why: &str| TimeArgError {
        input: escape_for_error(s),
        why: why.to_owned(),
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if t.eq_ignore_ascii_case("now") {
        return Ok(normalize_time(now));
    }
    let first = t.as_bytes().first().copied().unwrap_or(b' ');
    // A date starts with four digits and a dash; an age never has a dash
    // after its first character.
    let looks_like_date = t.len() >= 5 && t.as_bytes().get(4) == Some(&b'-');
    if looks_like_date {
        return parse_absolute(t).map_err(|why| err(&why));
    }
    if first == b'-' || first.is_ascii_digit() {
        let age = parse_age(t.strip_prefix('-').unwrap_or(t)).map_err(|why| err(&why))?;
        return now
            .checked_sub(age)
            .map(normalize_time)
            .ok_or_else(|| err("too far in the past"));
    }
    Err(err("not a time"))
}

fn parse_absolute(t: &str) -> Result<OffsetDateTime, String> {
    if t.len() == 10 {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = Date::parse(t, &fmt).map_err(|e| format!("bad date: {e}"))?;
        return Ok(d.with_time(Time::MIDNIGHT).assume_offset(UtcOffset::UTC));
    }
    // Accept `2026-11-24 10:00:00Z` as well as the `T` form.
    let text: std::borrow::Cow<'_, str> = if t.as_bytes().get(10) == Some(&b' ') {
        // Byte 10 is ASCII, so 10 and 11 are char boundaries.
        let mut owned = t.to_owned();
        owned.replace_range(10..11, "T");
        owned.into()
    } else {
        t.into()
    };
    OffsetDateTime::parse(&text, &Rfc3339)
        .map(normalize_time)
        .map_err(|e| {
            let tail = text.get(text.len().saturating_sub(6)..).unwrap_or("");
            let has_zone = text.ends_with(['Z', 'z']) || tail.contains(['+', '-']);
            if !has_zone {
                "an RFC 3339 time needs a zone (`Z` or `+02:00`)".to_owned()
            } else {
                format!("not RFC 3339: {e}")
            }
        })
}

fn parse_age(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("no number after `-`".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{}`", escape_for_error(rest)));
        }
        let (num, tail) = rest.split_at(digits);
        let n: i64 = num
            .parse()
            .map_err(|_| format!("number `{num}` is too large"))?;
        let mut chars = tail.chars();
        let unit_secs: i64 = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            Some('w') => 7 * 86_400,
            None => return Err(format!("`{num}` has no unit (s, m, h, d or w)")),
            Some(c) => {
                return Err(format!(
                    "unknown unit `{}` (use s, m, h, d or w)",
                    c.escape_debug()
                ));
            }
        };
        let secs = n
            .checked_mul(unit_secs)
            .ok_or_else(|| "too far in the past".to_owned())?;
        total = total
            .checked_add(Duration::seconds(secs))
            .ok_or_else(|| "too far in the past".to_owned())?;
        rest = chars.as_str();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 10:00:00.5 UTC);

    fn ok(s: &str) -> OffsetDateTime {
        parse_time_arg(s, NOW).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn relative_ages() {
        assert_eq!(ok("1h"), datetime!(2026-11-24 09:00:00.5 UTC));
        assert_eq!(ok("30m"), datetime!(2026-11-24 09:30:00.5 UTC));
        assert_eq!(ok("2d"), datetime!(2026-11-22 10:00:00.5 UTC));
        assert_eq!(ok("90s"), datetime!(2026-11-24 09:58:30.5 UTC));
        assert_eq!(ok("1w"), datetime!(2026-11-17 10:00:00.5 UTC));
        assert_eq!(ok("1h30m"), datetime!(2026-11-24 08:30:00.5 UTC));
        assert_eq!(ok("-1h"), ok("1h"));
        assert_eq!(ok(" 0s "), NOW);
        assert_eq!(ok("now"), NOW);
    }

    #[test]
    fn absolute_times() {
        assert_eq!(
            ok("2026-11-24T08:00:00Z"),
            datetime!(2026-11-24 08:00:00 UTC)
        );
        assert_eq!(
            ok("2026-11-24T10:00:00.123456789+02:00"),
            datetime!(2026-11-24 08:00:00.123456 UTC)
        );
        assert_eq!(
            ok("2026-11-24 08:00:00Z"),
            datetime!(2026-11-24 08:00:00 UTC)
        );
        assert_eq!(ok("2026-11-24"), datetime!(2026-11-24 00:00:00 UTC));
        assert_eq!(ok("2026-11-24T08:00:00Z").offset(), UtcOffset::UTC);
    }

    #[test]
    fn clear_errors() {
        let cases = [
            ("", "empty"),
            ("15", "no unit"),
            ("5x", "unknown unit `x`"),
            ("1h30", "no unit"),
            ("h", "not a time"),
            ("-", "no number"),
            ("1h-", "expected a number"),
            ("99999999999999999999s", "too large"),
            ("9999999999999999w", "too far"),
            ("2026-13-01", "bad date"),
            ("2026-11-24T10:00:00", "needs a zone"),
            ("2026-11-24T25:00:00Z", "not RFC 3339"),
            ("yesterday", "not a time"),
            ("2026-11-24Tééé", "needs a zone"),
            ("2026-11-24 ééé+", "invalid time"),
        ];
        for (input, want) in cases {
            let e = parse_time_arg(input, NOW).expect_err(input).to_string();
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(e.contains("use RFC 3339"), "{e}");
        }
        let e = parse_time_arg("5\u{1b}", NOW).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "{e}");
    }
}
