//! Fuzz the telnet decoder: arbitrary network bytes, split at an arbitrary
//! point, must never panic, never yield more data than they carried, and queue
//! at most one 3-byte reply per 3 input bytes (plus the initial requests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, rest)) = input.split_first() else {
        return;
    };
    let mut t = telnet::Telnet::server();
    if ctl & 1 != 0 {
        t.initial_negotiation();
    }
    if ctl & 2 != 0 {
        t.request_binary();
    }
    let start = t.pending_output_len();
    let split = usize::from(ctl >> 2).min(rest.len());
    let (a, b) = rest.split_at(split);
    let mut data = t.receive(a);
    data.extend(t.receive(b));
    assert!(data.len() <= rest.len());
    assert!(t.pending_output_len() <= start + rest.len());
    // In-place decoding agrees with the allocating one.
    let mut t2 = telnet::Telnet::server();
    if ctl & 1 != 0 {
        t2.initial_negotiation();
    }
    if ctl & 2 != 0 {
        t2.request_binary();
    }
    let mut buf = rest.to_vec();
    let n = t2.receive_in_place(&mut buf);
    assert_eq!(&buf[..n], &data[..]);
    // Whatever we decoded can be sent back without panicking.
    let out = t.send(&data);
    assert!(out.len() <= 2 * data.len() + start + rest.len());
});
