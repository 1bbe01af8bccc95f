//! The telnet machine in the client role (`dialgate dial --telnet`), fed
//! what a hostile server might send, and then negotiating against an honest
//! server machine. Asserted:
//!
//! - no panic; the data out is never more than the bytes in, and the
//!   result does not depend on how the input is split into chunks;
//! - the replies never outgrow the input given so far;
//! - the client only ever agrees to its policy: it never performs an option
//!   outside `Policy::CLIENT.local` (in particular it never echoes) and
//!   never lets the server perform one outside `Policy::CLIENT.remote`, and
//!   every `WILL`/`DO` it sends names such an option;
//! - against an honest server, any sequence of enable/disable requests from
//!   either side settles within a bounded number of exchanges (RFC 1143: no
//!   loop), and then both sides agree on every option.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telnet::{DO, IAC, Policy, Telnet, WILL};

/// Checks the client's policy and the commands in `out` (bytes it sent).
fn check_policy(t: &Telnet, out: &[u8]) {
    for o in 0..=255u8 {
        if t.is_local_enabled(o) {
            assert!(
                Policy::CLIENT.local.contains(&o),
                "client performs option {o}"
            );
        }
        if t.is_remote_enabled(o) {
            assert!(
                Policy::CLIENT.remote.contains(&o),
                "client lets the server do {o}"
            );
        }
    }
    // Output is negotiation (IAC verb option) and escaped data; scan it.
    let mut i = 0;
    while i < out.len() {
        if out[i] == IAC {
            match out.get(i + 1) {
                Some(&IAC) => i += 2,
                Some(&WILL) => {
                    let o = out[i + 2];
                    assert!(Policy::CLIENT.local.contains(&o), "WILL {o}");
                    i += 3;
                }
                Some(&DO) => {
                    let o = out[i + 2];
                    assert!(Policy::CLIENT.remote.contains(&o), "DO {o}");
                    i += 3;
                }
                Some(v) if *v >= 251 => i += 3,
                _ => i += 2,
            }
        } else {
            i += 1;
        }
    }
}

fn receive_chunks(input: &[u8], cut: usize) -> (Vec<u8>, Vec<u8>) {
    let mut t = Telnet::client();
    let mut data = Vec::new();
    let mut out = Vec::new();
    let mut given = 0;
    for chunk in input.chunks(cut.max(1)) {
        let d = t.receive(chunk);
        given += chunk.len();
        assert!(d.len() <= chunk.len());
        // Replies: at most one 3-octet reply per 3-octet command received
        // so far (a command may span chunks).
        assert!(out.len() + t.pending_output_len() <= given);
        data.extend_from_slice(&d);
        let o = t.take_output();
        check_policy(&t, &o);
        out.extend_from_slice(&o);
    }
    (data, out)
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, rest)) = input.split_first() else {
        return;
    };
    // Hostile server bytes, whole and in chunks.
    let whole = receive_chunks(rest, rest.len());
    let split = receive_chunks(rest, usize::from(ctl % 7) + 1);
    assert_eq!(whole, split, "the split of the input changed the result");

    // Honest negotiation: requests from the input, then settle.
    let mut c = Telnet::client();
    let mut s = Telnet::server();
    s.initial_negotiation();
    if ctl & 1 != 0 {
        s.request_binary();
    }
    if ctl & 2 != 0 {
        c.request_binary();
    }
    let options = [0u8, 1, 3, 24, 31];
    for &b in rest.iter().take(64) {
        let o = options[usize::from(b >> 3) % options.len()];
        match b & 7 {
            0 => {
                let _ = c.enable_local(o);
            }
            1 => {
                let _ = c.enable_remote(o);
            }
            2 => c.disable_local(o),
            3 => c.disable_remote(o),
            4 => {
                let _ = s.enable_local(o);
            }
            5 => {
                let _ = s.enable_remote(o);
            }
            6 => s.disable_local(o),
            _ => s.disable_remote(o),
        }
        // Sometimes deliver one round before the next request.
        if b & 0x80 != 0 {
            let to_c = s.take_output();
            let _ = c.receive(&to_c);
            let to_s = c.take_output();
            check_policy(&c, &to_s);
            let _ = s.receive(&to_s);
        }
    }
    let mut rounds = 0;
    while c.has_output() || s.has_output() {
        rounds += 1;
        assert!(rounds <= 16, "negotiation does not settle");
        let to_c = s.take_output();
        let _ = c.receive(&to_c);
        let to_s = c.take_output();
        check_policy(&c, &to_s);
        let _ = s.receive(&to_s);
    }
    assert!(
        !c.negotiating() && !s.negotiating(),
        "settled with a request open"
    );
    for o in 0..=255u8 {
        assert_eq!(c.is_local_enabled(o), s.is_remote_enabled(o), "option {o}");
        assert_eq!(c.is_remote_enabled(o), s.is_local_enabled(o), "option {o}");
    }
});
