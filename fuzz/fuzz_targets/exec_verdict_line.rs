//! The `exec` module's verdict-line parser on arbitrary bytes: never panics,
//! and whatever it accepts is one LF-terminated line whose names fit a
//! verdict and whose error code is not 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modules::exec::{ExecVerdict, MAX_VERDICT_LINE, parse_verdict_line};

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_control() || c == ' ')
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = parse_verdict_line(data) else {
        return;
    };
    assert!(data.len() <= MAX_VERDICT_LINE);
    assert_eq!(data.last(), Some(&b'\n'));
    assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 1);
    match v {
        ExecVerdict::Success { user, domain } | ExecVerdict::Failure { user, domain } => {
            assert!(name_ok(&user, 256));
            assert!(domain.is_empty() || name_ok(&domain, 15));
        }
        ExecVerdict::Error(code) => assert_ne!(code, 0),
    }
});
