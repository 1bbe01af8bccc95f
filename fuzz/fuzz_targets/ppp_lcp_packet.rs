//! Arbitrary bytes into the LCP packet and option parsers, and into an LCP
//! automaton as a received packet.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ppp::fsm::{Fsm, FsmConfig};
use ppp::lcp::{LcpConfig, LcpNegotiator};
use ppp::wire::parse_lcp;

fuzz_target!(|data: &[u8]| {
    if let Ok((p, opts)) = parse_lcp(data) {
        assert!(p.raw().len() <= data.len());
        let mut buf = Vec::new();
        for o in &opts {
            o.emit(&mut buf);
        }
    }
    let mut rand = |b: &mut [u8]| b.fill(0x5a);
    let now = Instant::now();
    let mut f = Fsm::new(LcpNegotiator::new(LcpConfig::default()), FsmConfig::default());
    f.open(now, &mut rand);
    f.up(now, &mut rand);
    let _ = f.handle_packet(now, data, &mut rand);
    while f.poll_transmit().is_some() {}
});
