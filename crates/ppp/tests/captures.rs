//! Tests against byte captures of a real pppd 2.4.9 (tests/vectors/, copied
//! from ../shared/captures/pppd-2.4.9/).

mod common;

use std::time::{Duration, Instant};

use common::{CAPTURES, CapFrame, Dir, load};
use ppp::auth::AuthProtocol;
use ppp::hdlc::{Deframer, Frame, TxOptions, encode};
use ppp::wire::{Code, parse_ipcp, parse_lcp, protocol};
use ppp::{DownCause, Event, Link, Phase};

fn deframe_dir(frames: &[CapFrame], dir: Dir) -> (Vec<Frame>, Deframer) {
    let mut d = Deframer::new(1600);
    // The captures mix fully escaped LCP frames with asyncmap-0 frames;
    // a zero receive map accepts both.
    d.set_rx_accm(0);
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.dir == dir) {
        out.extend(d.push_collect(&f.wire));
    }
    (out, d)
}

#[test]
fn every_frame_of_every_capture_deframes_with_good_fcs() {
    let mut total = 0;
    for name in CAPTURES {
        let frames = load(name);
        for dir in [Dir::S2C, Dir::C2S] {
            let expected: Vec<&CapFrame> = frames.iter().filter(|f| f.dir == dir).collect();
            let (got, d) = deframe_dir(&frames, dir);
            let s = d.stats();
            assert_eq!(s.bad_fcs, 0, "{name} {dir:?}");
            assert_eq!(got.len(), expected.len(), "{name} {dir:?}: {s:?}");
            for (g, e) in got.iter().zip(&expected) {
                // Rebuild the unescaped content and compare with the
                // capture's own decoding.
                let mut content = Vec::new();
                if !g.acfc {
                    content.extend_from_slice(&[0xff, 0x03]);
                }
                if g.pfc {
                    content.push(g.protocol as u8);
                } else {
                    content.extend_from_slice(&g.protocol.to_be_bytes());
                }
                content.extend_from_slice(&g.payload);
                assert_eq!(content, e.content, "{name} frame {}", e.n);
                total += 1;
            }
        }
    }
    assert!(total > 180, "{total} frames");
}

#[test]
fn every_lcp_and_ipcp_packet_parses() {
    let mut lcp = 0;
    let mut ipcp = 0;
    for name in CAPTURES {
        let frames = load(name);
        for dir in [Dir::S2C, Dir::C2S] {
            for f in deframe_dir(&frames, dir).0 {
                match f.protocol {
                    protocol::LCP => {
                        parse_lcp(&f.payload).unwrap_or_else(|e| panic!("{name}: {e}"));
                        lcp += 1;
                    }
                    protocol::IPCP => {
                        parse_ipcp(&f.payload).unwrap_or_else(|e| panic!("{name}: {e}"));
                        ipcp += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(lcp > 100 && ipcp > 20, "lcp {lcp} ipcp {ipcp}");
}

/// Our encoder produces the same bytes as Linux for the same packets: LCP
/// codes 1..=7 with the default map, everything else with asyncmap 0,
/// ACFC and (for protocols below 0x100) PFC.
#[test]
fn our_framer_matches_linux_bytes() {
    let negotiated = TxOptions {
        accm: 0,
        acfc: true,
        pfc: true,
    };
    let mut checked = 0;
    for name in CAPTURES {
        let frames = load(name);
        for cf in &frames {
            let mut d = Deframer::new(1600);
            d.set_rx_accm(0);
            let got = d.push_collect(&cf.wire);
            let [f] = got.as_slice() else {
                continue; // frames without an opening flag need the previous one
            };
            let opts = if f.acfc {
                negotiated
            } else {
                TxOptions::DEFAULT
            };
            let ours = encode(
                f.protocol,
                &f.payload,
                opts.for_packet(f.protocol, &f.payload),
            );
            let theirs = if cf.wire.first() == Some(&0x7e) {
                cf.wire.clone()
            } else {
                [&[0x7e][..], &cf.wire].concat()
            };
            assert_eq!(
                hex::encode(&ours),
                hex::encode(&theirs),
                "{name} frame {}",
                cf.n
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}

/// A random source that hands out the given magic number first, then a
/// fixed pattern.
fn rand_with_magic(magic: u32) -> ppp::RandomSource {
    let mut first = true;
    Box::new(move |b: &mut [u8]| {
        if first && b.len() == 4 {
            first = false;
            b.copy_from_slice(&magic.to_be_bytes());
        } else {
            b.fill(0x42);
        }
    })
}

/// The magic number of the pppd server's first Configure-Request.
fn server_magic(frames: &[CapFrame]) -> u32 {
    let (f, _) = deframe_dir(frames, Dir::S2C);
    let (_, opts) = parse_lcp(&f[0].payload).unwrap();
    opts.iter()
        .find_map(|o| match o {
            ppp::wire::LcpOption::MagicNumber(m) => Some(*m),
            _ => None,
        })
        .unwrap()
}

struct Replay {
    link: Link,
    sent: Vec<Frame>,
    events: Vec<Event>,
    out: Deframer,
    now: Instant,
}

impl Replay {
    /// Our server in place of pppd's, with the same options, answering
    /// PAP/CHAP with `password`.
    fn new(frames: &[CapFrame], auth: AuthProtocol) -> Replay {
        let mut cfg = common::server_config(vec![auth]);
        cfg.ipcp.dns = [Some(common::DNS_IP), Some(common::DNS_IP)];
        cfg.echo_interval = Some(Duration::from_secs(1));
        if let Some(a) = cfg.authenticator.as_mut() {
            a.name = b"pppserver".to_vec();
        }
        let now = Instant::now();
        let link = Link::new(cfg, now, rand_with_magic(server_magic(frames))).unwrap();
        let mut out = Deframer::new(1600);
        out.set_rx_accm(0);
        let mut r = Replay {
            link,
            sent: Vec::new(),
            events: Vec::new(),
            out,
            now,
        };
        r.drain("s3cret");
        r
    }

    fn drain(&mut self, password: &str) {
        while let Some(b) = self.link.poll_transmit() {
            self.sent.extend(self.out.push_collect(&b));
        }
        while let Some(e) = self.link.poll_event() {
            if let Event::Verify(v) = &e {
                let verdict = v.credentials.verify_password(password, "Login incorrect");
                self.events.push(e.clone());
                self.link.verified(self.now, v.id, verdict).unwrap();
                while let Some(b) = self.link.poll_transmit() {
                    self.sent.extend(self.out.push_collect(&b));
                }
                continue;
            }
            self.events.push(e);
        }
    }

    /// Feeds the client's frames at their capture times, running timers.
    fn run(&mut self, frames: &[CapFrame], password: &str) {
        let t0 = self.now;
        for f in frames.iter().filter(|f| f.dir == Dir::C2S) {
            let at = t0 + Duration::from_micros((f.ms * 1000.0) as u64);
            self.advance_to(at, password);
            self.link.handle_input(self.now, &f.wire);
            self.drain(password);
        }
        let end = self.now + Duration::from_secs(10);
        self.advance_to(end, password);
    }

    fn advance_to(&mut self, at: Instant, password: &str) {
        while let Some(t) = self.link.poll_timeout() {
            if t > at {
                break;
            }
            self.now = self.now.max(t);
            self.link.handle_timeout(self.now);
            self.drain(password);
        }
        self.now = self.now.max(at);
    }

    fn sent_lcp(&self, code: Code) -> Vec<Vec<u8>> {
        self.sent
            .iter()
            .filter(|f| f.protocol == protocol::LCP && f.payload.first() == Some(&u8::from(code)))
            .map(|f| f.payload.clone())
            .collect()
    }
}

/// Capture 06: the client asks for CCP and IPV6CP; we Protocol-Reject both
/// carrying the protocol and the whole packet, exactly as pppd did.
#[test]
fn server_replay_06_protocol_rejects_ccp_and_ipv6cp() {
    let frames = load("06-ccp-ipv6cp-refused");
    let mut r = Replay::new(&frames, AuthProtocol::Pap);
    r.run(&frames, "s3cret");
    let pppd_rejects: Vec<Vec<u8>> = deframe_dir(&frames, Dir::S2C)
        .0
        .into_iter()
        .filter(|f| f.protocol == protocol::LCP && f.payload[0] == 8)
        .map(|f| f.payload)
        .collect();
    let ours = r.sent_lcp(Code::ProtocolReject);
    assert_eq!(pppd_rejects.len(), 2);
    assert_eq!(ours.len(), 2, "{:?}", r.events);
    for (o, p) in ours.iter().zip(&pppd_rejects) {
        // Identifiers differ; length and data are identical.
        assert_eq!(o[2..], p[2..]);
    }
    // LCP came up with the client's own Configure-Ack of our request, PAP
    // was verified and acked, and the client's Terminate-Request was acked.
    assert!(r.events.iter().any(|e| matches!(e, Event::Verify(_))));
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::Authenticated { user, .. } if user == b"alice"))
    );
    assert!(
        r.sent
            .iter()
            .any(|f| f.protocol == protocol::PAP && f.payload[0] == 2)
    );
    assert_eq!(r.sent_lcp(Code::TerminateAck).len(), 1);
    assert!(matches!(
        r.events.last(),
        Some(Event::Down { cause: DownCause::PeerTerminated(why) }) if why == "User request"
    ));
    // Our IPCP answer to the client's request: VJ rejected.
    let ipcp_reject = r
        .sent
        .iter()
        .find(|f| f.protocol == protocol::IPCP && f.payload[0] == 4)
        .expect("IPCP Configure-Reject");
    assert_eq!(hex::encode(&ipcp_reject.payload[4..]), "0206002d0f01");
    // Echo-Replies of the client reset our keepalive: no timeout cause.
    assert_eq!(r.link.phase(), Phase::Dead);
}

/// Capture 07: the client sends Echo-Requests; we reply with our magic and
/// its identifier.
#[test]
fn server_replay_07_answers_echo_requests() {
    let frames = load("07-echo-server-terminate");
    let mut r = Replay::new(&frames, AuthProtocol::Pap);
    r.run(&frames, "s3cret");
    let requests: Vec<Vec<u8>> = deframe_dir(&frames, Dir::C2S)
        .0
        .into_iter()
        .filter(|f| f.protocol == protocol::LCP && f.payload[0] == 9)
        .map(|f| f.payload)
        .collect();
    let replies = r.sent_lcp(Code::EchoReply);
    assert!(requests.len() >= 4);
    assert_eq!(replies.len(), requests.len());
    let magic = server_magic(&frames).to_be_bytes();
    for (q, a) in requests.iter().zip(&replies) {
        assert_eq!(a[1], q[1], "identifier echoed");
        assert_eq!(a[4..8], magic, "our magic");
    }
    // The client's Echo-Replies answer our own Echo-Requests.
    assert!(!r.sent_lcp(Code::EchoRequest).is_empty());
}

/// Capture 04: wrong PAP password. We Nak, send Terminate-Request, ack the
/// client's crossing Terminate-Request, and go down for the auth failure.
#[test]
fn server_replay_04_wrong_password() {
    let frames = load("04-pap-wrong-password");
    let mut r = Replay::new(&frames, AuthProtocol::Pap);
    r.run(&frames, "s3cret");
    let nak = r
        .sent
        .iter()
        .find(|f| f.protocol == protocol::PAP && f.payload[0] == 3)
        .expect("PAP Authenticate-Nak");
    assert_eq!(&nak.payload[5..], b"Login incorrect");
    let treq = r.sent_lcp(Code::TerminateRequest);
    assert!(!treq.is_empty());
    assert_eq!(&treq[0][4..], b"Authentication failed");
    assert_eq!(r.sent_lcp(Code::TerminateAck).len(), 1);
    assert!(matches!(
        r.events.last(),
        Some(Event::Down {
            cause: DownCause::AuthFailed(_)
        })
    ));
}

/// Capture 02: our server against pppd's CHAP-MD5 client frames. The
/// Response answers pppd's challenge, not ours, so it must be refused:
/// the verification sees a wrong response (or the identifier mismatches).
#[test]
fn server_replay_02_chap_response_to_foreign_challenge_fails() {
    let frames = load("02-chap-md5-success");
    let mut r = Replay::new(&frames, AuthProtocol::ChapMd5);
    r.run(&frames, "s3cret");
    // Our challenge went out, under CHAP, with our name.
    let ch = r
        .sent
        .iter()
        .find(|f| f.protocol == protocol::CHAP && f.payload[0] == 1)
        .expect("CHAP Challenge");
    assert!(ch.payload.ends_with(b"pppserver"));
    assert!(
        !r.events
            .iter()
            .any(|e| matches!(e, Event::Authenticated { .. }))
    );
    assert!(!r.events.iter().any(|e| matches!(e, Event::Up { .. })));
}
