//! A client-role `ppp::Link` (what `dialgate dial` runs) fed what a hostile
//! server might send: well-framed packets of any protocol with arbitrary
//! content, raw line bytes, and time steps; and an honest server the input
//! can let answer (asking for a method the client may not accept, and
//! refusing alice's password), so runs reach the Authenticate phase.
//! Asserted:
//!
//! - no panic; the transmit queue stays within its bound plus one frame;
//! - everything it sends deframes as PPP;
//! - credentials go only where LCP agreed to send them: a PAP frame (the
//!   password in clear) is sent only when PAP is among the methods the
//!   client accepts and LCP agreed on PAP; a CHAP frame only when a CHAP
//!   method it accepts was agreed;
//! - with MS-CHAPv2 the client reports `Authenticated` only after the
//!   honest server accepted alice's real password: success needs the
//!   server's `S=` proof, which no one without the password can compute;
//! - IP flows only after `Up`, and `Down` comes at most once, last.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::auth::{AuthProtocol, Verdict};
use ppp::hdlc::{Deframer, TxOptions, encode};
use ppp::{Event, Link, LinkConfig};

const PROTOCOLS: [u16; 6] = [0xc021, 0xc023, 0xc223, 0x8021, 0x0021, 0x80fd];
const PAP: u16 = 0xc023;
const CHAP: u16 = 0xc223;

struct Client {
    link: Link,
    accept: Vec<AuthProtocol>,
    /// Deframes what the client sends.
    out: Deframer,
    /// What the client sent, for the honest server.
    to_server: Vec<u8>,
    up: bool,
    down: bool,
    /// The honest server accepted alice's real password.
    server_accepted: bool,
}

impl Client {
    /// Drains and checks what the client sends and reports; `single`: the
    /// LCP state now is the one every transmission was made in.
    fn settle(&mut self, single: bool) {
        assert!(self.link.pending_tx_bytes() <= self.link.tx_queue_max() + 2 * 1600);
        let agreed = self.link.lcp().auth();
        while let Some(b) = self.link.poll_transmit() {
            if self.to_server.len() < 1 << 16 {
                self.to_server.extend_from_slice(&b);
            }
            for f in self.out.push_collect(&b) {
                if !single {
                    continue;
                }
                if f.protocol == PAP {
                    assert!(self.accept.contains(&AuthProtocol::Pap), "PAP not accepted");
                    assert_eq!(
                        agreed,
                        Some(AuthProtocol::Pap),
                        "PAP sent without agreement"
                    );
                }
                if f.protocol == CHAP {
                    assert!(
                        matches!(agreed, Some(AuthProtocol::ChapMd5 | AuthProtocol::MsChapV2))
                            && agreed.is_some_and(|a| self.accept.contains(&a)),
                        "CHAP sent with {agreed:?} agreed"
                    );
                }
            }
        }
        while let Some(e) = self.link.poll_event() {
            assert!(!self.down, "an event after Down: {e:?}");
            match e {
                Event::Authenticated { protocol, .. } => {
                    assert!(
                        protocol != AuthProtocol::MsChapV2 || self.server_accepted,
                        "MS-CHAPv2 success without the server's proof"
                    );
                    assert!(self.accept.contains(&protocol));
                }
                Event::Up { .. } => self.up = true,
                Event::IpDown => self.up = false,
                Event::IpPacket(_) => assert!(self.up, "IP before Up"),
                Event::Down { .. } => self.down = true,
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let accept = match sel % 4 {
        0 => vec![AuthProtocol::Pap],
        1 => vec![AuthProtocol::ChapMd5],
        2 => vec![AuthProtocol::MsChapV2],
        _ => vec![
            AuthProtocol::MsChapV2,
            AuthProtocol::ChapMd5,
            AuthProtocol::Pap,
        ],
    };
    let mut cfg = LinkConfig::client(Some((b"alice", "alice-pw")));
    cfg.lcp.accept_auth = accept.clone();
    let mut now = Instant::now();
    let Ok(link) = Link::new(cfg, now, Box::new(|b: &mut [u8]| b.fill(0x44))) else {
        return;
    };
    let opts = TxOptions {
        accm: 0xffff_ffff,
        acfc: sel & 0x10 != 0,
        pfc: sel & 0x20 != 0,
    };
    // An honest server the input can let talk (op 2), asking for a method
    // the client may or may not accept.
    let server_auth = match (sel >> 2) % 4 {
        0 => AuthProtocol::Pap,
        1 => AuthProtocol::ChapMd5,
        _ => AuthProtocol::MsChapV2,
    };
    let mut server = Link::new(
        LinkConfig::server(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            vec![server_auth],
        ),
        now,
        Box::new(|b: &mut [u8]| b.fill(0x55)),
    )
    .expect("server config");
    let mut c = Client {
        link,
        accept,
        out: Deframer::new(1 << 17),
        to_server: Vec::new(),
        up: false,
        down: false,
        server_accepted: false,
    };
    c.out.set_rx_accm(0);
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        // Only a single frame or a timer per step lets the target know the
        // LCP state every transmission was made in.
        let single = match kind % 8 {
            0 => {
                c.link.handle_input(now, body);
                false
            }
            1 => {
                now += Duration::from_millis(u64::from(*len) * 100);
                c.link.handle_timeout(now);
                server.handle_timeout(now);
                true
            }
            2 if *len % 2 == 0 => {
                let r = c.link.send_ip(body);
                assert!(c.up || r.is_err(), "IP accepted before Up");
                true
            }
            2 => {
                // The honest server hears what the client sent and answers,
                // one frame at a time; it accepts alice's real password
                // when the length's second bit is set.
                server.handle_input(now, &c.to_server);
                c.to_server.clear();
                let password = if *len & 2 != 0 {
                    "alice-pw"
                } else {
                    "not-alice-pw"
                };
                while let Some(e) = server.poll_event() {
                    if let Event::Verify(v) = e {
                        let verdict = v.credentials.verify_password(password, "no");
                        let accepted = matches!(verdict, Verdict::Accept { .. });
                        if server.verified(now, v.id, verdict).is_ok() && accepted {
                            c.server_accepted = true;
                        }
                    }
                }
                while let Some(frame) = server.poll_transmit() {
                    c.link.handle_input(now, &frame);
                    c.settle(true);
                }
                true
            }
            k => {
                let proto = PROTOCOLS[(usize::from(k - 3) + usize::from(*len)) % PROTOCOLS.len()];
                c.link.handle_input(now, &encode(proto, body, opts));
                true
            }
        };
        c.settle(single);
    }
    let mut link = c.link;
    link.close(now, "fuzz done");
});
