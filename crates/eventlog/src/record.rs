//! One event-log record: a security-host dialog or a PPP session.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Longest stored text field, in bytes. Longer values (a 1 MiB "user name"
/// typed by a hostile caller, a module's runaway defect text) are cut at a
/// character boundary and marked with [`TRUNCATED_MARK`] when appended.
pub const MAX_TEXT_LEN: usize = 4096;

/// Appended to a text field that was cut to [`MAX_TEXT_LEN`].
pub const TRUNCATED_MARK: &str = "…[truncated]";

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One security-host transaction (Begin .. End of a module's dialog).
    Dialog,
    /// One PPP session after a granted dialog.
    PppSession,
    /// Something a serial line's modem did outside a dialog or session: a
    /// callback dial, an init that failed.
    Line,
}

impl Kind {
    /// Stable lowercase name, as stored and shown (`dialog`, `ppp-session`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dialog => "dialog",
            Kind::PppSession => "ppp-session",
            Kind::Line => "line",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a known [`Kind`] or not a valid [`Outcome`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: {why}")]
pub struct ParseNameError {
    what: &'static str,
    value: String,
    why: &'static str,
}

impl FromStr for Kind {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dialog" => Ok(Kind::Dialog),
            "ppp-session" | "ppp" => Ok(Kind::PppSession),
            "line" => Ok(Kind::Line),
            _ => Err(ParseNameError {
                what: "record kind",
                value: escape_for_error(s),
                why: "expected `dialog`, `ppp-session` or `line`",
            }),
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a transaction or session ended.
///
/// The set is open-ended: names this version does not know (written by a
/// newer dialgate, or a future module kind) parse into [`Outcome::Other`] and
/// round-trip unchanged. Names are stable, lowercase, `-`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The module sent `SECURITYMSG_SUCCESS`: the caller was granted.
    Success,
    /// The module sent `SECURITYMSG_FAILURE`: the caller was refused.
    Failure,
    /// The module sent `SECURITYMSG_ERROR` (with `dwError`).
    Error,
    /// The module broke the contract (bad message, bad handle, panic, hang).
    ModuleDefect,
    /// The module's Begin returned an error.
    BeginFailed,
    /// The caller hung up before a verdict.
    CallerHungUp,
    /// The dialog time limit expired.
    DialogTimeout,
    /// The server shut down during the dialog or session.
    Shutdown,
    /// The caller was refused before any dialog (limits, event log down).
    Refused,
    /// The PPP authentication name differs from the dialog's user.
    PppNameMismatch,
    /// PPP authentication (PAP/CHAP/MS-CHAPv2) failed.
    PppAuthFailed,
    /// A PPP session ended (see the PPP cause for why).
    SessionEnded,
    /// PPP authenticated the caller, then the line hung up to call back.
    Callback,
    /// The callback dial connected.
    CallbackConnected,
    /// The callback dial failed (busy, no answer, ...; see the detail).
    CallbackFailed,
    /// The modem did not initialise (see the detail); the line is out of
    /// service until the next attempt.
    ModemInitFailed,
    /// A valid name this version does not know.
    Other(OtherOutcome),
}

/// An outcome name unknown to this version; only made by parsing, so it is
/// never one of the known names and always a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherOutcome(String);

impl OtherOutcome {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest outcome name accepted by [`Outcome::from_str`].
pub const MAX_OUTCOME_LEN: usize = 64;

impl Outcome {
    /// Every outcome this version knows, in declaration order.
    pub const KNOWN: [Outcome; 16] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Error,
        Outcome::ModuleDefect,
        Outcome::BeginFailed,
        Outcome::CallerHungUp,
        Outcome::DialogTimeout,
        Outcome::Shutdown,
        Outcome::Refused,
        Outcome::PppNameMismatch,
        Outcome::PppAuthFailed,
        Outcome::SessionEnded,
        Outcome::Callback,
        Outcome::CallbackConnected,
        Outcome::CallbackFailed,
        Outcome::ModemInitFailed,
    ];

    /// Stable lowercase name, as stored and shown.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Error => "error",
            Outcome::ModuleDefect => "module-defect",
            Outcome::BeginFailed => "begin-failed",
            Outcome::CallerHungUp => "caller-hung-up",
            Outcome::DialogTimeout => "dialog-timeout",
            Outcome::Shutdown => "shutdown",
            Outcome::Refused => "refused",
            Outcome::PppNameMismatch => "ppp-name-mismatch",
            Outcome::PppAuthFailed => "ppp-auth-failed",
            Outcome::SessionEnded => "session-ended",
            Outcome::Callback => "callback",
            Outcome::CallbackConnected => "callback-connected",
            Outcome::CallbackFailed => "callback-failed",
            Outcome::ModemInitFailed => "modem-init-failed",
            Outcome::Other(o) => o.as_str(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = ParseNameError;
    /// Known names give their variant; any other token of `a-z`, `0-9` and
    /// `-` (1 to [`MAX_OUTCOME_LEN`] bytes, starting with a letter) gives
    /// [`Outcome::Other`]; anything else is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(known) = Outcome::KNOWN.iter().find(|o| o.as_str() == s) {
            return Ok(known.clone());
        }
        let err = |why| ParseNameError {
            what: "outcome",
            value: escape_for_error(s),
            why,
        };
        if s.is_empty() || s.len() > MAX_OUTCOME_LEN {
            return Err(err("must be 1 to 64 characters"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase())
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                "must be lowercase letters, digits and `-`, starting with a letter",
            ));
        }
        Ok(Outcome::Other(OtherOutcome(s.to_owned())))
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The PPP part of a record (a later issue fills it; present in the schema now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PppInfo {
    /// The name the peer authenticated with in PPP (PAP/CHAP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The PPP authentication method (`pap`, `chap-md5`, `ms-chapv2`, `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The address given to the peer (IPCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Bytes received from the peer.
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    #[serde(default)]
    pub bytes_out: u64,
    /// Packets received from the peer.
    #[serde(default)]
    pub packets_in: u64,
    /// Packets sent to the peer.
    #[serde(default)]
    pub packets_out: u64,
    /// Why the session ended (`lcp-terminate`, `idle-timeout`, `carrier-lost`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// One event-log record.
///
/// **No secrets here.** The caller must never put a password, OTP, PPP secret
/// or any answer typed at a hidden prompt into any field (in particular not in
/// `detail` or `user`): records are readable by every operator, exported as
/// JSON and echoed to the journal.
///
/// Times are UTC with microsecond precision; [`Record::new`] and the writer
/// normalise them (offset to UTC, sub-microsecond digits dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecordJson", into = "RecordJson")]
pub struct Record {
    /// Assigned by the event log on append (`None` before). Ids increase in
    /// commit order and are never reused.
    pub id: Option<i64>,
    /// Dialog or PPP session.
    pub kind: Kind,
    /// When the call reached the dialog (or the session started), UTC.
    pub started_at: OffsetDateTime,
    /// When it ended, UTC.
    pub ended_at: OffsetDateTime,
    /// Port group name from the config (e.g. `telnet0`).
    pub port: String,
    /// The device or endpoint (e.g. `tcp 127.0.0.1:50412`, `/dev/pts/3`).
    pub device: String,
    /// The caller's address, when the port has one.
    pub remote: Option<String>,
    /// The security module's name.
    pub module: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The last `SECURITY_MESSAGE.dwMsgId`, when the module sent one.
    pub msg_id: Option<u32>,
    /// `SECURITY_MESSAGE.dwError`, when the module sent one.
    pub error_code: Option<u32>,
    /// The user name the module reported (or the one typed), if any.
    pub user: Option<String>,
    /// The domain the module reported, if any.
    pub domain: Option<String>,
    /// Free text: what was wrong for a defect, the cause of a hang-up. Never
    /// a secret.
    pub detail: Option<String>,
    /// What happened after SUCCESS (e.g. `exec /bin/sh exit=0`).
    pub handoff: Option<String>,
    /// PPP session fields.
    pub ppp: Option<PppInfo>,
}

impl Record {
    /// A record with the required fields; every optional field is `None`.
    /// Times are normalised to UTC microseconds.
    pub fn new(
        kind: Kind,
        started_at: OffsetDateTime,
        ended_at: OffsetDateTime,
        port: impl Into<String>,
        device: impl Into<String>,
        module: impl Into<String>,
        outcome: Outcome,
    ) -> Record {
        Record {
            id: None,
            kind,
            started_at: normalize_time(started_at),
            ended_at: normalize_time(ended_at),
            port: port.into(),
            device: device.into(),
            remote: None,
            module: module.into(),
            outcome,
            msg_id: None,
            error_code: None,
            user: None,
            domain: None,
            detail: None,
            handoff: None,
            ppp: None,
        }
    }

    /// `ended_at - started_at`, or zero if the clock stepped backwards.
    pub fn duration(&self) -> Duration {
        let d = self.ended_at - self.started_at;
        if d.is_negative() { Duration::ZERO } else { d }
    }

    /// Normalise in place: times to UTC microseconds, text fields cut to
    /// [`MAX_TEXT_LEN`]. The writer does this before storing.
    pub fn normalize(&mut self) {
        self.started_at = normalize_time(self.started_at);
        self.ended_at = normalize_time(self.ended_at);
        for s in [&mut self.port, &mut self.device, &mut self.module] {
            truncate_text(s);
        }
        for s in [
            &mut self.remote,
            &mut self.user,
            &mut self.domain,
            &mut self.detail,
            &mut self.handoff,
        ]
        .into_iter()
        .flatten()
        {
            truncate_text(s);
        }
        if let Some(p) = &mut self.ppp {
            for s in [&mut p.user, &mut p.method, &mut p.address, &mut p.cause]
                .into_iter()
                .flatten()
            {
                truncate_text(s);
            }
        }
    }

    /// One JSON object, no trailing newline.
    pub fn to_json_line(&self) -> String {
        // Serialising this type cannot fail: every field is a string, number,
        // or a map with string keys.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse one JSON line written by [`Record::to_json_line`].
    pub fn from_json_line(line: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// One human-readable line, e.g.
    /// `2026-11-24T10:00:00.123Z dialog telnet0 tcp 127.0.0.1:5555 users failure user=bob dwMsgId=2 (2.1s)`.
    ///
    /// Values that came from a caller or a module are quoted when they contain
    /// spaces, quotes or nothing, and control characters are escaped, so a
    /// caller cannot forge lines or send terminal escapes to an operator.
    pub fn human_line(&self) -> String {
        HumanLine(self).to_string()
    }

    /// A [`fmt::Display`] of [`Record::human_line`] that formats lazily (for
    /// `tracing` fields).
    pub fn display_human(&self) -> impl fmt::Display + '_ {
        HumanLine(self)
    }
}

struct HumanLine<'a>(&'a Record);

impl fmt::Display for HumanLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "{} {} {} {} ",
            fmt_time_millis(r.started_at),
            r.kind,
            Quoted(&r.port),
            Escaped(&r.device),
        )?;
        if let Some(remote) = &r.remote {
            write!(f, "from={} ", Quoted(remote))?;
        }
        write!(f, "{} {}", Quoted(&r.module), r.outcome)?;
        if let Some(u) = &r.user {
            write!(f, " user={}", Quoted(u))?;
        }
        if let Some(d) = &r.domain {
            write!(f, " domain={}", Quoted(d))?;
        }
        if let Some(m) = r.msg_id {
            write!(f, " dwMsgId={m}")?;
        }
        if let Some(e) = r.error_code {
            write!(f, " dwError={e}")?;
        }
        if let Some(p) = &r.ppp {
            if let Some(u) = &p.user {
                write!(f, " ppp_user={}", Quoted(u))?;
            }
            if let Some(m) = &p.method {
                write!(f, " method={}", Quoted(m))?;
            }
            if let Some(a) = &p.address {
                write!(f, " address={}", Quoted(a))?;
            }
            write!(
                f,
                " in={}B/{}p out={}B/{}p",
                p.bytes_in, p.packets_in, p.bytes_out, p.packets_out
            )?;
            if let Some(c) = &p.cause {
                write!(f, " cause={}", Quoted(c))?;
            }
        }
        if let Some(h) = &r.handoff {
            write!(f, " handoff={}", Quoted(h))?;
        }
        if let Some(d) = &r.detail {
            write!(f, " detail={}", Quoted(d))?;
        }
        write!(f, " ({})", FmtDuration(r.duration()))
    }
}

/// Writes a value, escaping control characters, and quoting it when it is
/// empty or holds whitespace, `"` or `=`.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let needs_quotes = s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\');
        if needs_quotes {
            f.write_str("\"")?;
            write_escaped(f, s, true)?;
            f.write_str("\"")
        } else {
            write_escaped(f, s, false)
        }
    }
}

/// Writes a value with control characters escaped but plain spaces kept.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, false)
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str, quoted: bool) -> fmt::Result {
    for c in s.chars() {
        match c {
            '"' if quoted => f.write_str("\\\"")?,
            '\\' if quoted => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

struct FmtDuration(Duration);

impl fmt::Display for FmtDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.whole_milliseconds().max(0);
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        // Each branch rounds to its own unit, then moves up when rounding
        // reaches the next one (59.96 s shows as 1m00s, not 60.0s).
        let tenths = (ms + 50) / 100;
        if tenths < 600 {
            return write!(f, "{}.{}s", tenths / 10, tenths % 10);
        }
        let secs = (ms + 500) / 1000;
        if secs < 3600 {
            return write!(f, "{}m{:02}s", secs / 60, secs % 60);
        }
        let mins = (ms + 30_000) / 60_000;
        write!(f, "{}h{:02}m", mins / 60, mins % 60)
    }
}

/// `2026-11-24T10:00:00.123Z` (UTC, milliseconds).
fn fmt_time_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `2026-11-24T10:00:00.123456Z` (UTC, always six fractional digits).
pub(crate) fn fmt_time_micros(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Convert to UTC and drop digits below the microsecond.
pub fn normalize_time(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.microsecond();
    // `replace_microsecond` only fails for values >= 1_000_000, which
    // `microsecond()` never returns.
    t.replace_microsecond(micros).unwrap_or(t)
}

/// Microseconds since the Unix epoch (the stored form).
pub(crate) fn to_unix_micros(t: OffsetDateTime) -> i64 {
    let micros = t.unix_timestamp_nanos() / 1000;
    // OffsetDateTime spans years -9999..=9999, about ±3.2e17 µs: fits in i64.
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`to_unix_micros`]; `None` if out of range.
pub(crate) fn from_unix_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}

fn truncate_text(s: &mut String) {
    if s.len() <= MAX_TEXT_LEN {
        return;
    }
    let mut cut = MAX_TEXT_LEN - TRUNCATED_MARK.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(TRUNCATED_MARK);
}

/// A short, escaped rendering of a bad value for an error message.
pub(crate) fn escape_for_error(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// The JSON shape of a record: times as RFC 3339 strings, the duration
/// added for readers (ignored when reading back).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    kind: Kind,
    started_at: String,
    ended_at: String,
    /// Derived from the times; accepted and ignored when reading.
    #[serde(default)]
    duration_us: i64,
    port: String,
    device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<String>,
    module: String,
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    msg_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ppp: Option<PppInfo>,
}

impl From<Record> for RecordJson {
    fn from(r: Record) -> RecordJson {
        let duration_us = i64::try_from(r.duration().whole_microseconds()).unwrap_or(i64::MAX);
        RecordJson {
            id: r.id,
            kind: r.kind,
            started_at: fmt_time_micros(r.started_at),
            ended_at: fmt_time_micros(r.ended_at),
            duration_us,
            port: r.port,
            device: r.device,
            remote: r.remote,
            module: r.module,
            outcome: r.outcome,
            msg_id: r.msg_id,
            error_code: r.error_code,
            user: r.user,
            domain: r.domain,
            detail: r.detail,
            handoff: r.handoff,
            ppp: r.ppp,
        }
    }
}

impl TryFrom<RecordJson> for Record {
    type Error = String;
    fn try_from(j: RecordJson) -> Result<Record, String> {
        let parse = |field: &str, s: &str| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map(normalize_time)
                .map_err(|e| format!("{field}: `{}` is not RFC 3339: {e}", escape_for_error(s)))
        };
        Ok(Record {
            id: j.id,
            kind: j.kind,
            started_at: parse("started_at", &j.started_at)?,
            ended_at: parse("ended_at", &j.ended_at)?,
            port: j.port,
            device: j.device,
            remote: j.remote,
            module: j.module,
            outcome: j.outcome,
            msg_id: j.msg_id,
            error_code: j.error_code,
            user: j.user,
            domain: j.domain,
            detail: j.detail,
            handoff: j.handoff,
            ppp: j.ppp,
        })
    }
}

/// Write records as JSON lines (one object per line, `\n`-terminated).
pub fn write_json_lines<'a, W, I>(mut out: W, records: I) -> std::io::Result<()>
where
    W: std::io::Write,
    I: IntoIterator<Item = &'a Record>,
{
    for r in records {
        serde_json::to_writer(&mut out, r).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> Record {
        let mut r = Record::new(
            Kind::Dialog,
            datetime!(2026-11-24 10:00:00.123456789 UTC),
            datetime!(2026-11-24 10:00:02.2234 UTC),
            "telnet0",
            "tcp 127.0.0.1:5555",
            "users",
            Outcome::Failure,
        );
        r.user = Some("bob".into());
        r.msg_id = Some(2);
        r
    }

    #[test]
    fn human_line_matches_the_documented_shape() {
        assert_eq!(
            sample().human_line(),
            "2026-11-24T10:00:00.123Z dialog telnet0 tcp 127.0.0.1:5555 users failure user=bob dwMsgId=2 (2.1s)"
        );
    }

    #[test]
    fn human_line_quotes_and_escapes_caller_text() {
        let mut r = sample();
        r.user = Some("evil\x1b[2J name\n2026 forged".into());
        r.detail = Some(String::new());
        let line = r.human_line();
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line}");
        assert!(
            line.contains(r#"user="evil\u{1b}[2J name\n2026 forged""#),
            "{line}"
        );
        assert!(line.contains(r#"detail="""#), "{line}");
    }

    #[test]
    fn durations_render_by_magnitude() {
        let cases = [
            (Duration::milliseconds(4), "4ms"),
            (Duration::milliseconds(999), "999ms"),
            (Duration::milliseconds(2150), "2.2s"),
            (Duration::milliseconds(59_940), "59.9s"),
            (Duration::milliseconds(59_960), "1m00s"),
            (Duration::seconds(185), "3m05s"),
            (Duration::minutes(125), "2h05m"),
            (Duration::milliseconds(3_599_600), "1h00m"),
        ];
        for (d, want) in cases {
            assert_eq!(FmtDuration(d).to_string(), want);
        }
    }

    #[test]
    fn a_clock_step_backwards_gives_zero_duration() {
        let mut r = sample();
        r.ended_at = r.started_at - Duration::seconds(5);
        assert_eq!(r.duration(), Duration::ZERO);
        assert!(r.human_line().ends_with("(0ms)"));
    }

    #[test]
    fn times_are_normalised_to_utc_micros() {
        let r = sample();
        assert_eq!(r.started_at, datetime!(2026-11-24 10:00:00.123456 UTC));
        let t = datetime!(2026-11-24 12:00:00.5 +02:00);
        assert_eq!(normalize_time(t), datetime!(2026-11-24 10:00:00.5 UTC));
        assert_eq!(normalize_time(t).offset(), UtcOffset::UTC);
        let us = to_unix_micros(r.started_at);
        assert_eq!(from_unix_micros(us), Some(r.started_at));
    }

    #[test]
    fn outcome_names_are_stable_and_open_ended() {
        for o in Outcome::KNOWN {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o.clone()));
        }
        assert_eq!(Outcome::ModuleDefect.as_str(), "module-defect");
        assert_eq!(Outcome::CallerHungUp.as_str(), "caller-hung-up");
        let other: Outcome = "radius-timeout".parse().unwrap();
        assert!(matches!(other, Outcome::Other(_)));
        assert_eq!(other.as_str(), "radius-timeout");
        for bad in ["", "Success", "a b", "-x", "1x", "x\u{1b}", &"a".repeat(65)] {
            assert!(bad.parse::<Outcome>().is_err(), "{bad:?}");
        }
        assert_eq!("ppp-session".parse::<Kind>(), Ok(Kind::PppSession));
        assert!("pppsession".parse::<Kind>().is_err());
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let mut r = sample();
        r.user = Some("é".repeat(MAX_TEXT_LEN));
        r.normalize();
        let u = r.user.unwrap();
        assert!(u.len() <= MAX_TEXT_LEN);
        assert!(u.ends_with(TRUNCATED_MARK));
    }

    #[test]
    fn json_has_rfc3339_micros_and_duration() {
        let line = sample().to_json_line();
        assert!(
            line.contains(r#""started_at":"2026-11-24T10:00:00.123456Z""#),
            "{line}"
        );
        assert!(line.contains(r#""duration_us":2099944"#), "{line}");
        assert!(line.contains(r#""outcome":"failure""#), "{line}");
        assert_eq!(Record::from_json_line(&line).unwrap(), sample());
        assert!(Record::from_json_line(r#"{"kind":"dialog"}"#).is_err());
    }
}
