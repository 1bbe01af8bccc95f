//! Property tests: framing round trip, deframer robustness, and a link that
//! never panics on whatever the peer sends.

mod common;

use std::time::{Duration, Instant};

use common::{Rng, client_config, server_config};
use ppp::Link;
use ppp::auth::AuthProtocol;
use ppp::hdlc::{Deframer, TxOptions, encode};
use ppp::wire::{parse_ipcp, parse_lcp};
use proptest::prelude::*;

fn protocol_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0x0021u16),
        Just(0xc021),
        Just(0xc023),
        Just(0xc223),
        Just(0x8021),
        Just(0x80fd),
        // Any valid protocol number: low octet odd, high octet even.
        (0u16..0x80, 0u16..0x80).prop_map(|(h, l)| ((h << 1) << 8) | (l << 1) | 1),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Any payload, any ACCM, any compression: what the framer sends, the
    /// deframer (with the same map) gives back, however the bytes are cut.
    #[test]
    fn framing_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..700),
        accm in any::<u32>(),
        acfc in any::<bool>(),
        pfc in any::<bool>(),
        protocol in protocol_strategy(),
        cuts in proptest::collection::vec(1usize..64, 0..20),
    ) {
        let opts = TxOptions { accm, acfc, pfc };
        let wire = encode(protocol, &payload, opts);
        // Nothing in the map, nor a flag or escape, appears unescaped.
        for &b in &wire[1..wire.len() - 1] {
            prop_assert_ne!(b, 0x7e);
            if b < 0x20 {
                prop_assert_eq!(accm & (1 << b), 0);
            }
        }
        let mut d = Deframer::new(1600);
        d.set_rx_accm(accm);
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        for c in cuts {
            let n = c.min(rest.len());
            frames.extend(d.push_collect(&rest[..n]));
            rest = &rest[n..];
        }
        frames.extend(d.push_collect(rest));
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(frames[0].protocol, protocol);
        prop_assert_eq!(&frames[0].payload, &payload);
        prop_assert_eq!(frames[0].acfc, acfc);
        prop_assert_eq!(frames[0].pfc, pfc && protocol < 0x100);
    }

    /// The deframer never panics and never holds more than its maximum,
    /// whatever arrives in whatever chunks; a good frame after garbage is
    /// still found.
    #[test]
    fn deframer_survives_garbage(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let mut d = Deframer::new(256);
        for c in &chunks {
            for f in d.push_collect(c) {
                prop_assert!(f.payload.len() <= 256);
            }
        }
        // Resynchronises: a flag then a good frame.
        let good = encode(0xc021, &[9, 1, 0, 8, 1, 2, 3, 4], TxOptions::DEFAULT);
        let mut tail = vec![0x7e];
        tail.extend_from_slice(&good);
        let got = d.push_collect(&tail);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0].payload, &vec![9, 1, 0, 8, 1, 2, 3, 4]);
    }

    /// The packet parsers never panic.
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_lcp(&data);
        let _ = parse_ipcp(&data);
    }

    /// A server link fed arbitrary frames (valid framing, random content,
    /// any protocol), at any time, never panics and stays within its
    /// limits; it always ends in a defined state.
    #[test]
    fn link_survives_random_frames(
        frames in proptest::collection::vec(
            (protocol_strategy(), proptest::collection::vec(any::<u8>(), 0..80), 0u64..5000),
            0..40),
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        client in any::<bool>(),
    ) {
        let cfg = if client {
            client_config("s3cret", vec![AuthProtocol::Pap, AuthProtocol::MsChapV2])
        } else {
            server_config(vec![AuthProtocol::ChapMd5, AuthProtocol::Pap])
        };
        let mut now = Instant::now();
        let mut link = Link::new(cfg, now, Rng::source(5)).unwrap();
        link.handle_input(now, &raw);
        for (proto, payload, dt) in frames {
            now += Duration::from_millis(dt);
            if link.poll_timeout().is_some_and(|t| t <= now) {
                link.handle_timeout(now);
            }
            let opts = TxOptions { accm: 0, acfc: true, pfc: true };
            link.handle_input(now, &encode(proto, &payload, opts));
            while link.poll_transmit().is_some() {}
            while let Some(e) = link.poll_event() {
                if let ppp::Event::Verify(v) = e {
                    let _ = link.verified(now, v.id, common::accept());
                }
            }
        }
        // Drive the timers out: the link must end (no peer answers).
        for _ in 0..10_000 {
            let Some(t) = link.poll_timeout() else { break };
            now = now.max(t);
            link.handle_timeout(now);
            while link.poll_transmit().is_some() {}
            while link.poll_event().is_some() {}
        }
        prop_assert!(link.is_dead());
        prop_assert!(link.down_cause().is_some());
    }
}
