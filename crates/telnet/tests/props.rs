//! Property tests: two machines talking to each other converge, never loop,
//! and carry data exactly; arbitrary input never panics and stays bounded.

use proptest::prelude::*;
use telnet::{OptionState, Policy, Telnet, opt};

const OPTIONS: [u8; 4] = [opt::BINARY, opt::ECHO, opt::SGA, 31];

#[derive(Debug, Clone)]
enum Op {
    EnableLocal(bool, u8),
    EnableRemote(bool, u8),
    DisableLocal(bool, u8),
    DisableRemote(bool, u8),
    Send(bool, Vec<u8>),
    /// Deliver up to n bytes of the wire towards A (false) or B (true).
    Deliver(bool, usize),
    Binary(bool),
    Initial(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let side = any::<bool>();
    let option = prop::sample::select(OPTIONS.to_vec());
    // Data without CR: its NVT and BINARY encodings are read the same way
    // during a BINARY transition, so it must always round-trip exactly.
    let data = prop::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..12);
    prop_oneof![
        (side, option.clone()).prop_map(|(s, o)| Op::EnableLocal(s, o)),
        (side, option.clone()).prop_map(|(s, o)| Op::EnableRemote(s, o)),
        (side, option.clone()).prop_map(|(s, o)| Op::DisableLocal(s, o)),
        (side, option).prop_map(|(s, o)| Op::DisableRemote(s, o)),
        (side, data).prop_map(|(s, d)| Op::Send(s, d)),
        (side, 0usize..10).prop_map(|(s, n)| Op::Deliver(s, n)),
        side.prop_map(Op::Binary),
        side.prop_map(Op::Initial),
    ]
}

struct Pair {
    m: [Telnet; 2],
    /// wire[i]: bytes travelling towards machine i.
    wire: [Vec<u8>; 2],
    received: [Vec<u8>; 2],
    sent: [Vec<u8>; 2],
    requests: usize,
    negotiation_bytes: usize,
}

impl Pair {
    fn new(a: Policy, b: Policy) -> Self {
        Pair {
            m: [Telnet::new(a), Telnet::new(b)],
            wire: [Vec::new(), Vec::new()],
            received: [Vec::new(), Vec::new()],
            sent: [Vec::new(), Vec::new()],
            requests: 0,
            negotiation_bytes: 0,
        }
    }

    /// Move pending negotiation of machine i onto the wire towards the other.
    fn flush(&mut self, i: usize) {
        let out = self.m[i].take_output();
        self.negotiation_bytes += out.len();
        self.wire[1 - i].extend_from_slice(&out);
    }

    fn deliver(&mut self, to: usize, n: usize) {
        let n = n.min(self.wire[to].len());
        let chunk: Vec<u8> = self.wire[to].drain(..n).collect();
        let data = self.m[to].receive(&chunk);
        self.received[to].extend_from_slice(&data);
        self.flush(to);
    }

    fn apply(&mut self, op: &Op) {
        let idx = |b: bool| usize::from(b);
        match op {
            Op::EnableLocal(s, o) => {
                self.requests += 1;
                let _ = self.m[idx(*s)].enable_local(*o);
            }
            Op::EnableRemote(s, o) => {
                self.requests += 1;
                let _ = self.m[idx(*s)].enable_remote(*o);
            }
            Op::DisableLocal(s, o) => {
                self.requests += 1;
                self.m[idx(*s)].disable_local(*o);
            }
            Op::DisableRemote(s, o) => {
                self.requests += 1;
                self.m[idx(*s)].disable_remote(*o);
            }
            Op::Binary(s) => {
                self.requests += 2;
                self.m[idx(*s)].request_binary();
            }
            Op::Initial(s) => {
                self.requests += 3;
                self.m[idx(*s)].initial_negotiation();
            }
            Op::Send(s, d) => {
                let i = idx(*s);
                self.flush(i);
                let bytes = self.m[i].send(d);
                self.sent[i].extend_from_slice(d);
                self.wire[1 - i].extend_from_slice(&bytes);
            }
            Op::Deliver(s, n) => self.deliver(idx(*s), *n),
        }
        self.flush(0);
        self.flush(1);
    }

    /// Deliver everything until both wires are empty; returns rounds used.
    fn settle(&mut self) -> usize {
        for round in 0..64 {
            if self.wire[0].is_empty() && self.wire[1].is_empty() {
                return round;
            }
            let n0 = self.wire[0].len();
            self.deliver(0, n0);
            let n1 = self.wire[1].len();
            self.deliver(1, n1);
        }
        usize::MAX
    }

    fn check_agreement(&self) -> Result<(), TestCaseError> {
        for o in OPTIONS {
            for i in 0..2 {
                let local = self.m[i].local_state(o);
                let remote = self.m[1 - i].remote_state(o);
                prop_assert!(
                    matches!(local, OptionState::Yes | OptionState::No),
                    "side {i} option {o} still {local:?}"
                );
                prop_assert_eq!(local, remote, "option {} side {}", o, i);
            }
            prop_assert!(!self.m[0].negotiating() && !self.m[1].negotiating());
        }
        Ok(())
    }
}

fn policies() -> impl Strategy<Value = (Policy, Policy)> {
    prop::sample::select(vec![
        (Policy::SERVER, Policy::CLIENT),
        (Policy::SERVER, Policy::SERVER),
        (Policy::CLIENT, Policy::CLIENT),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any interleaving of requests, data and partial deliveries converges:
    /// both sides agree on every option, the wires drain in a few rounds,
    /// the number of negotiation bytes is bounded by the requests made, and
    /// CR-free data arrives exactly.
    #[test]
    fn peers_converge_and_never_loop(
        (pa, pb) in policies(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut p = Pair::new(pa, pb);
        for op in &ops {
            p.apply(op);
        }
        let rounds = p.settle();
        prop_assert!(rounds <= 4, "took {} rounds", rounds);
        p.check_agreement()?;
        // Each request sends at most one command, answered by at most one;
        // a queued opposite request adds one more pair.
        prop_assert!(
            p.negotiation_bytes <= 3 * 4 * p.requests,
            "{} negotiation bytes for {} requests", p.negotiation_bytes, p.requests
        );
        prop_assert_eq!(&p.received[1], &p.sent[0]);
        prop_assert_eq!(&p.received[0], &p.sent[1]);
    }

    /// Arbitrary data (CR, NUL, IAC included) round-trips exactly in NVT and
    /// BINARY modes, whatever the chunking on both sides.
    #[test]
    fn round_trip_any_data(
        binary in any::<bool>(),
        chunks in prop::collection::vec(prop::collection::vec(
            prop::sample::select(vec![0u8, b'\r', b'\n', 0xff, b'a', 0x7e, 0xfe, 0xf0]), 0..20), 0..20),
        split in 1usize..9,
    ) {
        let mut p = Pair::new(Policy::SERVER, Policy::CLIENT);
        p.m[0].initial_negotiation();
        if binary {
            p.m[0].request_binary();
        }
        p.flush(0);
        p.settle();
        prop_assert_eq!(p.m[0].binary_both_ways(), binary);
        prop_assert_eq!(p.m[1].binary_both_ways(), binary);
        let mut sent = Vec::new();
        for c in &chunks {
            let bytes = p.m[0].send(c);
            sent.extend_from_slice(c);
            p.wire[1].extend_from_slice(&bytes);
            // The client also talks back with the same chunk.
            let back = p.m[1].send(c);
            p.wire[0].extend_from_slice(&back);
        }
        let mut rounds = 0;
        while !p.wire[1].is_empty() || !p.wire[0].is_empty() {
            rounds += 1;
            prop_assert!(rounds < 10_000, "wires never drained");
            p.deliver(1, split);
            p.deliver(0, split + 1);
        }
        prop_assert_eq!(&p.received[1], &sent);
        prop_assert_eq!(&p.received[0], &sent);
        prop_assert_eq!(p.negotiation_bytes, if binary { 9 + 6 + 9 + 6 } else { 9 + 9 });
    }

    /// Arbitrary input never panics, never yields more data than it carried,
    /// and queues at most one 3-byte reply per 3 input bytes.
    #[test]
    fn arbitrary_input_is_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..256), 0..8),
        initial in any::<bool>(),
    ) {
        let mut t = Telnet::server();
        if initial {
            t.initial_negotiation();
        }
        let start = t.pending_output_len();
        let mut total = 0;
        for c in &chunks {
            total += c.len();
            let data = t.receive(c);
            prop_assert!(data.len() <= c.len());
        }
        prop_assert!(t.pending_output_len() <= start + total);
        let mut buf: Vec<u8> = chunks.concat();
        let mut t2 = Telnet::server();
        let n = t2.receive_in_place(&mut buf);
        let mut t3 = Telnet::server();
        prop_assert_eq!(&buf[..n], &t3.receive(&chunks.concat())[..]);
    }

    /// Interleaved commands (answered negotiations, NOPs, subnegotiations)
    /// never corrupt the data around them.
    #[test]
    fn commands_between_data_are_transparent(
        data in prop::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..64),
        at in prop::collection::vec(0usize..64, 0..6),
        which in prop::collection::vec(0usize..4, 6),
    ) {
        let mut t = Telnet::server();
        let mut wire = Vec::new();
        for (i, &b) in data.iter().enumerate() {
            for (k, &pos) in at.iter().enumerate() {
                if pos == i {
                    match which[k] {
                        0 => wire.extend_from_slice(&[255, 241]),
                        1 => wire.extend_from_slice(&[255, 251, 24]),
                        2 => wire.extend_from_slice(&[255, 250, 24, 1, 255, 255, 255, 240]),
                        _ => wire.extend_from_slice(&[255, 253, 3]),
                    }
                }
            }
            wire.push(b);
            if b == 255 {
                wire.push(255);
            }
        }
        prop_assert_eq!(t.receive(&wire), data);
    }
}
