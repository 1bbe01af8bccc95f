//! The dialog line reader (`modules::line`) on arbitrary caller bytes, in
//! arbitrary chunks: it must never panic, never hold more than its maximum,
//! never grow its buffer, and yield the same lines and echo whatever the
//! split of the bytes into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modules::line::{LineEvent, LineReader};

/// Feeds `chunks`, toggling echo after each event (as a module switches
/// between the echoed user name and the silent password); returns the
/// events and the echo.
fn run(max: usize, chunks: &[&[u8]]) -> (Vec<LineEvent>, Vec<u8>) {
    let mut r = LineReader::new(max);
    let cap = r.capacity();
    let mut events = Vec::new();
    let mut echo = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let before = echo.len();
            let fed = r.feed(rest, &mut echo);
            assert!(fed.consumed >= 1 && fed.consumed <= rest.len());
            assert!(fed.event.is_some() || fed.consumed == rest.len());
            assert!(echo.len() - before <= 4 * fed.consumed + 3 * max);
            rest = &rest[fed.consumed..];
            assert!(r.pending_len() <= max);
            assert_eq!(r.capacity(), cap, "the buffer grew");
            if let Some(e) = fed.event {
                match &e {
                    LineEvent::Line(l) => {
                        assert!(l.len() <= max);
                        assert!(l.iter().all(|&b| b >= 0x20 && b != 0x7f));
                    }
                    LineEvent::TooLong(l) => assert_eq!(l.len(), max),
                }
                events.push(e);
                let on = r.echo();
                r.set_echo(!on);
            }
        }
    }
    (events, echo)
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(m % 64) + 1;
    // Chunks: a length byte, then that many bytes (or what is left).
    let mut chunks = Vec::new();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let len = usize::from(rest[i]);
        i += 1;
        let end = (i + len).min(rest.len());
        chunks.push(&rest[i..end]);
        bytes.extend_from_slice(&rest[i..end]);
        i = end;
    }
    let split = run(max, &chunks);
    let whole = run(max, &[&bytes]);
    assert_eq!(split, whole, "the split into chunks changed the result");
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(max, &singles), whole, "one byte at a time changed the result");
});
