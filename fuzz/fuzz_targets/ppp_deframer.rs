//! Arbitrary chunks of line bytes into the RFC 1662 deframer: no panic,
//! bounded frames, and re-encoding a delivered frame gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ppp::hdlc::{Deframer, TxOptions, encode};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut d = Deframer::new(64 + usize::from(ctl) * 8);
    if ctl & 1 == 1 {
        d.set_rx_accm(0);
    }
    let mut rest = rest;
    let mut cut = usize::from(ctl % 17) + 1;
    while !rest.is_empty() {
        let n = cut.min(rest.len());
        for f in d.push_collect(&rest[..n]) {
            assert!(f.payload.len() <= d.max_frame());
            let opts = TxOptions { accm: d.rx_accm(), acfc: f.acfc, pfc: f.pfc };
            let again = encode(f.protocol, &f.payload, opts);
            let mut d2 = Deframer::new(d.max_frame());
            d2.set_rx_accm(d.rx_accm());
            let back = d2.push_collect(&again);
            assert_eq!(back.len(), 1);
            assert_eq!(back[0], f);
        }
        rest = &rest[n..];
        cut = cut * 3 % 31 + 1;
    }
});
