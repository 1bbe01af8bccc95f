//! The chat-like dial script parser of `dialgate dial --script`
//! (`dialgate::dial::parse_script`) on arbitrary text: never panics; an
//! error names a line of the text; an accepted script has timeouts of 1 s
//! to 24 h, non-empty ABORT strings, send strings without empty pieces and
//! with pauses of exactly 1 s (`\d`) or 0.1 s (`\p`), and no more steps
//! than the text has characters.
#![no_main]

use std::time::Duration;

use dialgate::dial::{SendPart, Step, parse_script};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_script(text) {
        Err(e) => {
            let n: usize = e
                .strip_prefix("line ")
                .and_then(|r| r.split(':').next())
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("error without its line: {e:?}"));
            assert!(n >= 1 && n <= text.lines().count().max(1), "{e}");
        }
        Ok(steps) => {
            assert!(steps.len() <= text.len());
            for s in &steps {
                match s {
                    Step::Timeout(t) => {
                        assert!(*t >= Duration::from_secs(1) && *t <= Duration::from_secs(86_400));
                    }
                    Step::Abort(a) => assert!(!a.is_empty()),
                    Step::Expect(_) => {}
                    Step::Send(parts) => {
                        for p in parts {
                            match p {
                                SendPart::Bytes(b) => assert!(!b.is_empty()),
                                SendPart::Delay(d) => assert!(
                                    *d == Duration::from_secs(1)
                                        || *d == Duration::from_millis(100)
                                ),
                            }
                        }
                    }
                }
            }
        }
    }
});
