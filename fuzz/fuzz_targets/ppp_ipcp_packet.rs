//! Arbitrary bytes into the IPCP packet and option parsers, and into a
//! server-side IPCP automaton as a received packet.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ppp::fsm::{Fsm, FsmConfig};
use ppp::ipcp::{IpcpConfig, IpcpNegotiator};
use ppp::wire::parse_ipcp;

fuzz_target!(|data: &[u8]| {
    let _ = parse_ipcp(data);
    let mut rand = |b: &mut [u8]| b.fill(0x5a);
    let now = Instant::now();
    let cfg = IpcpConfig {
        local: Some(Ipv4Addr::new(192, 0, 2, 1)),
        peer: Some(Ipv4Addr::new(192, 0, 2, 2)),
        dns: [Some(Ipv4Addr::new(192, 0, 2, 53)), None],
        ..IpcpConfig::default()
    };
    let mut f = Fsm::new(IpcpNegotiator::new(cfg), FsmConfig::default());
    f.open(now, &mut rand);
    f.up(now, &mut rand);
    for chunk in data.split(|b| *b == 0xee) {
        let _ = f.handle_packet(now, chunk, &mut rand);
    }
    while f.poll_transmit().is_some() {}
});
