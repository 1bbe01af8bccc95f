//! Arbitrary bytes never panic the parser or the state machine, and the
//! parser's buffer stays bounded.

use modem::{Answerer, Config, MAX_LINE, Response, ResponseParser};
use proptest::prelude::*;
use std::time::{Duration, Instant};

proptest! {
    #[test]
    fn parser_is_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8)) {
        let mut p = ResponseParser::new();
        for c in &chunks {
            for r in p.feed(c) {
                if let Response::Other(s) = r {
                    // lossy decoding may triple invalid bytes
                    prop_assert!(s.len() <= MAX_LINE * 3);
                }
            }
            prop_assert!(p.buffered() <= MAX_LINE);
        }
    }

    #[test]
    fn connect_lines_roundtrip(speed in 300u32..1_000_000, proto in "[A-Z0-9]{1,6}(/[A-Z0-9]{1,6}){0,2}") {
        let mut p = ResponseParser::new();
        let line = format!("CONNECT {speed}/{proto}\r\n");
        let got = p.feed(line.as_bytes());
        prop_assert_eq!(got, vec![Response::Connect(modem::ConnectInfo { speed: Some(speed), protocol: Some(proto) })]);
    }

    #[test]
    fn answerer_survives_anything(ops in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..64), 0u64..5000), 0..64)) {
        let base = Instant::now();
        let mut now = base;
        let mut m = Answerer::new(Config { answer_on_ring: 2, ..Config::default() });
        m.start(now);
        for (kind, bytes, ms) in ops {
            now += Duration::from_millis(ms);
            match kind {
                0 => { let used = m.handle_input(now, &bytes); prop_assert!(used <= bytes.len()); }
                1 => m.handle_timeout(now),
                2 => m.carrier_changed(now, bytes.first().is_some_and(|b| b & 1 == 1)),
                _ => if bytes.len() % 2 == 0 { m.hang_up(now) } else { let _ = m.dial(now, &String::from_utf8_lossy(&bytes)); },
            }
            while m.poll_transmit().is_some() {}
            while m.poll_action().is_some() {}
            while m.poll_event().is_some() {}
            if let Some(t) = m.poll_timeout() { prop_assert!(t >= base); }
        }
    }
}
