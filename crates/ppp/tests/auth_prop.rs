//! Property tests: the authentication parsers and machines never panic on
//! arbitrary bytes, encoders and parsers agree, and the machines keep their
//! invariants under arbitrary input.

use std::time::{Duration, Instant};

use ppp::auth::{
    AuthProtocol, AuthStatus, Authenticator, AuthenticatorConfig, ChapPacket, Event,
    MsChapV2Failure, MsChapV2Response, MsChapV2Success, PapPacket, Peer, PeerConfig, Verdict,
    VerifyId,
};
use proptest::prelude::*;

const ALL: [AuthProtocol; 3] = [
    AuthProtocol::Pap,
    AuthProtocol::ChapMd5,
    AuthProtocol::MsChapV2,
];

/// Packets that look like authentication packets: a plausible code, a
/// Length that is sometimes right, then arbitrary bytes.
fn packetish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        (
            1u8..=4,
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(code, id, body)| {
                let len = (body.len() + 4) as u16;
                let mut v = vec![code, id];
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&body);
                v
            }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Packet(Vec<u8>),
    Advance(u16),
    Accept,
    Reject,
    /// A real peer answers the authenticator's last packet; octet `at` of
    /// its answer is XORed with `x` (0: unchanged).
    Answer {
        at: u8,
        x: u8,
    },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            4 => packetish().prop_map(Step::Packet),
            2 => (0u16..5000).prop_map(Step::Advance),
            1 => Just(Step::Accept),
            1 => Just(Step::Reject),
            4 => (any::<u8>(), prop_oneof![Just(0u8), any::<u8>()]).prop_map(|(at, x)| Step::Answer { at, x }),
        ],
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PapPacket::parse(&bytes);
        let _ = ChapPacket::parse(&bytes);
        let _ = MsChapV2Response::parse(&bytes);
        let _ = MsChapV2Success::parse(&bytes);
        let _ = MsChapV2Failure::parse(&bytes);
        let _ = AuthProtocol::from_lcp_option_data(&bytes);
    }

    #[test]
    fn text_parsers_never_panic(s in "(E=[0-9]{0,12}|R=[0-2]|C=[0-9a-fA-F]{0,34}|V=[0-9]{0,3}|M=.{0,8}|S=[0-9A-F]{0,42}| ){0,8}") {
        let _ = MsChapV2Failure::parse(s.as_bytes());
        let _ = MsChapV2Success::parse(s.as_bytes());
    }

    #[test]
    fn parse_then_encode_is_identity(bytes in packetish()) {
        // Whatever parses re-encodes to the octets inside its Length
        // (except PAP Ack/Nak without Msg-Length, which gains one).
        if let Ok(p) = ChapPacket::parse(&bytes) {
            let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert_eq!(p.encode().unwrap(), bytes[..len].to_vec());
        }
        if let Ok(p) = PapPacket::parse(&bytes) {
            let enc = p.encode().unwrap();
            prop_assert_eq!(PapPacket::parse(&enc).unwrap(), p);
        }
    }

    #[test]
    fn encode_then_parse_is_identity(
        id in any::<u8>(),
        a in proptest::collection::vec(any::<u8>(), 0..255),
        b in proptest::collection::vec(any::<u8>(), 0..255),
    ) {
        let p = PapPacket::Request { id, peer_id: &a, password: &b };
        let enc = p.encode().unwrap();
        prop_assert_eq!(PapPacket::parse(&enc).unwrap(), p);
        let n = PapPacket::Nak { id, message: &a };
        let enc = n.encode().unwrap();
        prop_assert_eq!(PapPacket::parse(&enc).unwrap(), n);
        if !a.is_empty() {
            let c = ChapPacket::Response { id, value: &a, name: &b };
            let enc = c.encode().unwrap();
        prop_assert_eq!(ChapPacket::parse(&enc).unwrap(), c);
        }
        let f = ChapPacket::Failure { id, message: &b };
        let enc = f.encode().unwrap();
        prop_assert_eq!(ChapPacket::parse(&enc).unwrap(), f);
    }

    #[test]
    fn mschap_messages_round_trip(
        ar in any::<[u8; 20]>(),
        c in any::<[u8; 16]>(),
        e in any::<u32>(),
        r in any::<bool>(),
        v in proptest::option::of(any::<u32>()),
        m in "[ -~]{0,40}",
    ) {
        let s = MsChapV2Success { authenticator_response: ar, message: m.as_bytes() };
        let enc = s.encode();
        prop_assert_eq!(MsChapV2Success::parse(&enc).unwrap(), s);
        let f = MsChapV2Failure { error: e, retry: r, challenge: Some(c), version: v, message: m.as_bytes() };
        let enc = f.encode();
        prop_assert_eq!(MsChapV2Failure::parse(&enc).unwrap(), f);
    }

    #[test]
    fn authenticator_survives_anything(proto_i in 0usize..3, steps in steps()) {
        let proto = ALL[proto_i];
        let mut now = Instant::now();
        let mut cfg = AuthenticatorConfig::new([3; 32]);
        cfg.max_attempts = 2;
        cfg.rechallenge_interval = Some(Duration::from_secs(7));
        let mut a = Authenticator::new(proto, cfg).unwrap();
        a.start(now);
        let mut peer = Peer::new(proto, PeerConfig::new(b"alice", "s3cret", [5; 32])).unwrap();
        peer.start(now);
        let mut last_sent: Option<Vec<u8>> = None;
        let mut failed_final = false;
        for step in steps {
            match step {
                Step::Packet(p) => { let _ = a.handle_packet(now, &p); }
                Step::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    a.handle_timeout(now);
                }
                Step::Accept => {
                    let v = Verdict::Accept { authenticator_response: Some([1; 20]) };
                    let pending = a.verification_pending();
                    let id = a.pending_verify_id().unwrap_or(VerifyId(u64::MAX));
                    prop_assert_eq!(a.verified(now, id, v).is_ok(), pending);
                }
                Step::Reject => {
                    let pending = a.verification_pending();
                    let id = a.pending_verify_id().unwrap_or(VerifyId(u64::MAX));
                    prop_assert_eq!(a.verified(now, id, Verdict::reject("no")).is_ok(), pending);
                }
                Step::Answer { at, x } => {
                    if let Some(p) = &last_sent {
                        let _ = peer.handle_packet(now, p);
                    }
                    while let Some(mut ans) = peer.poll_transmit() {
                        let i = usize::from(at);
                        if i < ans.len() {
                            ans[i] ^= x;
                        }
                        let _ = a.handle_packet(now, &ans);
                    }
                    while peer.poll_event().is_some() {}
                }
            }
            while let Some(p) = a.poll_transmit() {
                last_sent = Some(p.clone());
                // Everything we send parses as what it claims to be.
                if proto == AuthProtocol::Pap {
                    prop_assert!(PapPacket::parse(&p).is_ok());
                } else {
                    prop_assert!(ChapPacket::parse(&p).is_ok());
                }
            }
            while let Some(e) = a.poll_event() {
                if let Event::Failed { .. } = e {
                    prop_assert!(!failed_final, "event after a final failure");
                    failed_final = a.status() == AuthStatus::Failed;
                }
            }
            if let Some(t) = a.poll_timeout() {
                prop_assert!(t > now, "timer not in the future");
            }
            if failed_final {
                prop_assert_eq!(a.status(), AuthStatus::Failed);
                prop_assert_eq!(a.poll_timeout(), None);
            }
        }
    }

    #[test]
    fn peer_survives_anything(proto_i in 0usize..3, steps in steps()) {
        let proto = ALL[proto_i];
        let mut now = Instant::now();
        let mut p = Peer::new(proto, PeerConfig::new(b"alice", "s3cret", [4; 32])).unwrap();
        p.start(now);
        for step in steps {
            match step {
                Step::Packet(pkt) => { let _ = p.handle_packet(now, &pkt); }
                Step::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    p.handle_timeout(now);
                }
                Step::Accept | Step::Reject | Step::Answer { .. } => {}
            }
            while let Some(pkt) = p.poll_transmit() {
                if proto == AuthProtocol::Pap {
                    let ok = matches!(PapPacket::parse(&pkt), Ok(PapPacket::Request { .. }));
                    prop_assert!(ok);
                } else {
                    let ok = matches!(ChapPacket::parse(&pkt), Ok(ChapPacket::Response { .. }));
                    prop_assert!(ok);
                }
            }
            while let Some(e) = p.poll_event() {
                prop_assert!(!matches!(e, Event::Verify(_)));
            }
        }
    }
}
