//! A server-role Link fed arbitrary input: raw line bytes, well-framed
//! packets of any protocol with arbitrary content, and time steps. The
//! host accepts every verification at once, so the fuzzer reaches the
//! Network phase (IPCP, IP) easily. No panic, bounded output. Who gets
//! authenticated is checked by `ppp_link_verdicts`.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::auth::{AuthProtocol, Verdict};
use ppp::hdlc::{TxOptions, encode};
use ppp::{Event, Link, LinkConfig};

const PROTOCOLS: [u16; 8] = [
    0xc021, 0xc023, 0xc223, 0x8021, 0x0021, 0x80fd, 0x8057, 0x002d,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let auth = match sel % 4 {
        0 => vec![],
        1 => vec![AuthProtocol::Pap],
        2 => vec![AuthProtocol::ChapMd5],
        _ => vec![AuthProtocol::MsChapV2, AuthProtocol::Pap],
    };
    let cfg = LinkConfig::server(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), auth);
    let mut now = Instant::now();
    // A fixed random source, so the fuzzer can learn our magic number.
    let Ok(mut link) = Link::new(cfg, now, Box::new(|b: &mut [u8]| b.fill(0x11))) else {
        return;
    };
    // Escape every control character: valid whatever receive map the link
    // has at the time.
    let opts = TxOptions {
        accm: 0xffff_ffff,
        acfc: sel & 0x10 != 0,
        pfc: sel & 0x20 != 0,
    };
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        match kind % 10 {
            0 => link.handle_input(now, body),
            1 => {
                now += Duration::from_millis(u64::from(*len) * 50);
                link.handle_timeout(now);
            }
            2 => {
                let _ = link.send_ip(body);
            }
            k => {
                let proto = PROTOCOLS[usize::from(k - 3) % PROTOCOLS.len()];
                link.handle_input(now, &encode(proto, body, opts));
            }
        }
        let mut out = 0;
        while let Some(b) = link.poll_transmit() {
            out += b.len();
        }
        assert!(out < 1 << 20);
        while let Some(e) = link.poll_event() {
            if let Event::Verify(v) = e {
                let verdict = Verdict::Accept {
                    authenticator_response: Some([7; 20]),
                };
                if link.verified(now, v.id, verdict).is_err() {
                    let _ = link.verified(
                        now,
                        v.id,
                        Verdict::Accept {
                            authenticator_response: None,
                        },
                    );
                }
            }
        }
    }
    link.close(now, "fuzz done");
});
