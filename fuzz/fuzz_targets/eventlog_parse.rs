//! The event log's text inputs: `--since`/`--until` arguments, outcome
//! names, and JSON lines (an export read back). Nothing panics; a parsed
//! record renders as one clean human line and round-trips through JSON.
#![no_main]

use eventlog::time::OffsetDateTime;
use eventlog::{Outcome, Record, parse_time_arg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    if let Ok(t) = parse_time_arg(s, now) {
        assert_eq!(t.offset(), eventlog::time::UtcOffset::UTC);
    }
    if let Ok(o) = s.parse::<Outcome>() {
        assert_eq!(o.as_str(), s);
    }
    if let Ok(r) = Record::from_json_line(s) {
        let line = r.human_line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        let back = Record::from_json_line(&r.to_json_line()).expect("own JSON parses");
        assert_eq!(back, r);
    }
});
