//! Hayes modem responses: arbitrary bytes from a (possibly broken) modem never
//! panic the response parser or the answering state machine, and the parser's
//! line buffer stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modem::{Answerer, Config, MAX_LINE, Response, ResponseParser};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut p = ResponseParser::new();
    for r in p.feed(data) {
        if let Response::Other(s) = r {
            assert!(s.len() <= MAX_LINE * 3);
        }
        assert!(p.buffered() <= MAX_LINE);
    }
    assert!(p.buffered() <= MAX_LINE);

    // The same bytes drive the state machine, split at 0x00 bytes into
    // chunks separated by timer expiries and DCD changes.
    let base = Instant::now();
    let mut now = base;
    let mut m = Answerer::new(Config {
        answer_on_ring: 2,
        ..Config::default()
    });
    m.start(now);
    for (i, chunk) in data.split(|&b| b == 0).enumerate() {
        let used = m.handle_input(now, chunk);
        assert!(used <= chunk.len());
        now += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 40);
        m.handle_timeout(now);
        if i % 3 == 2 {
            m.carrier_changed(now, chunk.len() % 2 == 0);
        }
        while m.poll_transmit().is_some() {}
        while m.poll_action().is_some() {}
        while m.poll_event().is_some() {}
    }
});
