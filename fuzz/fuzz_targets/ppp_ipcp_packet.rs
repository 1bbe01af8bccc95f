//! Arbitrary bytes into the IPCP packet and option parsers, and into a
//! server-side IPCP automaton as a sequence of received packets with time
//! passing. Asserted:
//!
//! - a parsed packet's options re-encode to the option bytes they came
//!   from (`parse_ipcp`/`parse_options` round trip);
//! - everything the server sends is a well-framed packet, and its options
//!   are well-formed (a Configure-Reject echoes the peer's as they came);
//! - the server never agrees to an address it was not configured with: a
//!   Configure-Ack it sends names the peer's assigned address and the
//!   configured DNS server only, and never VJ compression, NBNS or a
//!   secondary DNS it does not have; a Configure-Nak suggests only those;
//! - whenever IPCP comes up, the result is the configured pair (our
//!   address, the peer's assigned address) and the configured DNS.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::fsm::{Fsm, FsmConfig, LayerAction};
use ppp::ipcp::{IpcpConfig, IpcpNegotiator};
use ppp::wire::{IpcpOption, Packet, parse_ipcp, parse_options, push_option};

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// Checks a packet the server sent.
fn check_sent(p: &[u8]) {
    let pkt = Packet::new_checked(p).expect("the server sends valid packets");
    let code = u8::from(pkt.code());
    if !matches!(code, 1..=4) {
        return;
    }
    // A Configure-Reject echoes the peer's options as they came, malformed
    // ones included; the others carry options of our own making.
    let raw = parse_options(pkt.data()).expect("options framed");
    if code == 4 {
        return;
    }
    let opts: Vec<IpcpOption<'_>> = raw
        .iter()
        .map(|o| IpcpOption::parse(*o).expect("well-formed options"))
        .collect();
    // Configure-Ack (2) and Configure-Nak (3) carry what we agree to or
    // suggest for the peer.
    if code == 2 || code == 3 {
        for o in &opts {
            match o {
                IpcpOption::IpAddress(a) => assert_eq!(*a, PEER, "agreed peer address"),
                IpcpOption::PrimaryDns(a) => assert_eq!(*a, DNS, "agreed DNS"),
                other => panic!("code {code} with {other:?}"),
            }
        }
    }
    // Our own Configure-Request names our configured address, or nothing
    // once the peer rejected the option.
    if code == 1 {
        assert!(
            matches!(opts[..], [] | [IpcpOption::IpAddress(LOCAL)]),
            "{opts:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok((p, _)) = parse_ipcp(data)
        && matches!(u8::from(p.code()), 1..=4)
        && let Ok(raw) = parse_options(p.data())
    {
        let mut again = Vec::new();
        for o in &raw {
            push_option(&mut again, o.kind, o.data);
        }
        assert_eq!(again, p.data(), "options re-encode to their bytes");
    }

    let mut rand = |b: &mut [u8]| b.fill(0x5a);
    let mut now = Instant::now();
    let cfg = IpcpConfig {
        local: Some(LOCAL),
        peer: Some(PEER),
        dns: [Some(DNS), None],
        ..IpcpConfig::default()
    };
    let mut f = Fsm::new(IpcpNegotiator::new(cfg), FsmConfig::default());
    f.open(now, &mut rand);
    f.up(now, &mut rand);
    // Packets separated by 0xee; a separator doubled lets time pass.
    for chunk in data.split(|b| *b == 0xee) {
        if chunk.is_empty() {
            now += Duration::from_secs(2);
            f.handle_timeout(now, &mut rand);
        } else {
            let _ = f.handle_packet(now, chunk, &mut rand);
        }
        while let Some(p) = f.poll_transmit() {
            check_sent(&p);
        }
        while let Some(a) = f.poll_action() {
            if a == LayerAction::Up {
                let r = f.neg.result();
                assert_eq!((r.local, r.peer), (LOCAL, PEER), "IPCP up with {r:?}");
                assert!(matches!(r.dns, [None | Some(DNS), None]), "{r:?}");
                assert_eq!(r.nbns, [None, None]);
            }
        }
    }
});
