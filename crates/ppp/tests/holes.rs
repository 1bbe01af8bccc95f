//! Issue 12, holes 1-3 at the link level, on a virtual clock: a stale
//! verdict never authenticates another login, LCP renegotiations are
//! capped, the transmit queue is bounded and control replies rate-limited,
//! and authentication has a deadline.

mod common;

use std::time::{Duration, Instant};

use common::Rng;
use ppp::auth::{AuthProtocol, Verdict, VerifyRequest};
use ppp::hdlc::{Deframer, TxOptions, encode};
use ppp::link::{DEFAULT_TX_QUEUE_MAX, DownCause, Event, Link, LinkError, Phase};
use ppp::wire::{Code, Packet, build_packet, protocol};

/// A server requiring PAP, and the virtual clock.
fn server(now: Instant) -> Link {
    let cfg = common::server_config(vec![AuthProtocol::Pap]);
    Link::new(cfg, now, Rng::source(11)).unwrap()
}

fn client(now: Instant, user: &[u8], password: &str, seed: u64) -> Link {
    let cfg = common::client_config(password, vec![AuthProtocol::Pap]);
    let mut cfg = cfg;
    cfg.credentials = Some(ppp::auth::PeerConfig::new(user, password, [0; 32]));
    Link::new(cfg, now, Rng::source(seed)).unwrap()
}

/// Moves bytes both ways (no delay) until neither link has anything to
/// send; returns the server's events. Verifications are *not* answered.
fn shuttle(now: Instant, s: &mut Link, c: &mut Link) -> Vec<Event> {
    let mut evs = Vec::new();
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(b) = s.poll_transmit() {
            c.handle_input(now, &b);
            moved = true;
        }
        while let Some(b) = c.poll_transmit() {
            s.handle_input(now, &b);
            moved = true;
        }
        while let Some(e) = s.poll_event() {
            evs.push(e);
            moved = true;
        }
        while c.poll_event().is_some() {
            moved = true;
        }
        if !moved {
            break;
        }
    }
    evs
}

fn verify_of(evs: &[Event]) -> Option<VerifyRequest> {
    evs.iter().find_map(|e| match e {
        Event::Verify(v) => Some(v.clone()),
        _ => None,
    })
}

fn accept() -> Verdict {
    Verdict::Accept {
        authenticator_response: None,
    }
}

#[test]
fn hole_1_stale_verdict_is_refused() {
    let now = Instant::now();
    let mut s = server(now);
    // A logs in with the right password; its check is slow.
    let mut a = client(now, b"alice", "s3cret", 21);
    let evs = shuttle(now, &mut s, &mut a);
    let req_a = verify_of(&evs).expect("A's request");
    assert_eq!(req_a.credentials.user(), b"alice");
    // The caller renegotiates LCP at once (a fresh Configure-Request) and
    // logs in as B with a wrong password while A's check still runs.
    let mut b = client(now, b"bob", "wrong", 22);
    let evs = shuttle(now, &mut s, &mut b);
    assert!(
        evs.contains(&Event::VerifyAborted(req_a.id)),
        "A's request is voided by the renegotiation: {evs:?}"
    );
    let req_b = verify_of(&evs).expect("B's request");
    assert_eq!(req_b.credentials.user(), b"bob");
    assert_ne!(req_a.id, req_b.id, "ids are unique across restarts");
    assert_eq!(s.pending_verify(), Some(req_b.id));
    // A's late Accept arrives: refused, and it authenticates nobody.
    assert_eq!(
        s.verified(now, req_a.id, accept()),
        Err(LinkError::StaleVerdict(req_a.id))
    );
    let evs = shuttle(now, &mut s, &mut b);
    assert!(
        !evs.iter().any(|e| matches!(
            e,
            Event::Authenticated { .. } | Event::Phase(Phase::Network)
        )),
        "a stale verdict authenticated B: {evs:?}"
    );
    assert_eq!(s.phase(), Phase::Authenticate);
    assert_eq!(s.stats().stale_verdicts, 1);
    // B's own verdict (a reject) is the one that counts.
    s.verified(now, req_b.id, Verdict::reject("no")).unwrap();
    let evs = shuttle(now, &mut s, &mut b);
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "{evs:?}"
    );
    assert!(!evs.iter().any(|e| matches!(e, Event::Authenticated { .. })));
    // A verdict for an id never issued is refused too.
    assert!(matches!(
        s.verified(now, ppp::auth::VerifyId(9999), accept()),
        Err(LinkError::StaleVerdict(_))
    ));
}

#[test]
fn hole_1_lcp_renegotiations_are_capped() {
    let now = Instant::now();
    let mut s = server(now);
    let mut down = None;
    for round in 0..10u64 {
        let mut c = client(now, b"alice", "s3cret", 100 + round);
        let evs = shuttle(now, &mut s, &mut c);
        if let Some(cause) = evs.iter().find_map(|e| match e {
            Event::Down { cause } => Some(cause.clone()),
            _ => None,
        }) {
            down = Some((round, cause));
            break;
        }
        if s.phase() == Phase::Dead {
            down = Some((round, s.down_cause().cloned().unwrap()));
            break;
        }
        // Each round reached authentication again (the amplifier).
        assert!(verify_of(&evs).is_some(), "round {round}: {evs:?}");
    }
    let (round, cause) = down.expect("the link closes");
    assert_eq!(round, 5, "the first negotiation and 4 renegotiations pass");
    assert_eq!(cause, DownCause::TooManyRenegotiations(5));
}

/// A server and client with LCP and PAP done: the server is in the
/// Network phase with IPCP up.
fn up_pair(now: Instant) -> (Link, Link) {
    let mut s = server(now);
    let mut c = client(now, b"alice", "s3cret", 31);
    let evs = shuttle(now, &mut s, &mut c);
    let req = verify_of(&evs).unwrap();
    s.verified(now, req.id, accept()).unwrap();
    shuttle(now, &mut s, &mut c);
    assert!(s.is_up(), "IPCP up");
    (s, c)
}

fn lcp_frame(code: Code, id: u8, data: &[u8]) -> Vec<u8> {
    encode(
        protocol::LCP,
        &build_packet(code, id, data),
        TxOptions::DEFAULT,
    )
}

#[test]
fn hole_2_a_peer_that_never_reads_keeps_the_queue_bounded() {
    let mut now = Instant::now();
    let (mut s, _c) = up_pair(now);
    let bound = s.tx_queue_max();
    assert_eq!(bound, DEFAULT_TX_QUEUE_MAX);
    let mut echo = 0u32.to_be_bytes().to_vec();
    echo.extend_from_slice(&[0x7e; 1000]); // escaped: doubles on the wire
    let unknown = encode(0x8057, &[0x7d; 1000], TxOptions::DEFAULT);
    // 20,000 Echo-Requests and unknown protocols over 100 s, and a flood
    // of IP toward the peer; we never take a byte (poll_transmit).
    let mut peak = 0;
    let mut refused = 0u32;
    for i in 0..20_000u32 {
        s.handle_input(now, &lcp_frame(Code::EchoRequest, i as u8, &echo));
        s.handle_input(now, &unknown);
        if s.send_ip(&common::ip_packet(
            common::SERVER_IP,
            common::CLIENT_IP,
            &[0x7e; 1400],
        ))
        .is_err()
        {
            refused += 1;
        }
        peak = peak.max(s.pending_tx_bytes());
        if i % 200 == 0 {
            now += Duration::from_secs(1);
            s.handle_timeout(now);
        }
        while s.poll_event().is_some() {}
    }
    assert!(
        peak <= bound + 3100,
        "queue grew to {peak} octets (bound {bound})"
    );
    assert!(
        refused > 19_000,
        "IP beyond the bound is dropped ({refused})"
    );
    let st = s.stats();
    assert!(st.tx_dropped > 0);
    assert!(st.replies_limited > 0);
    // Control frames still get room: queued IP is dropped tail-first.
    now += Duration::from_secs(2);
    s.handle_input(now, &lcp_frame(Code::EchoRequest, 1, &0u32.to_be_bytes()));
    let mut frames = Vec::new();
    while let Some(f) = s.poll_transmit() {
        frames.push(f);
    }
    assert_eq!(s.pending_tx_bytes(), 0);
    let last = frames.last().expect("something queued");
    assert!(
        last.len() < 40,
        "the last frame is the small Echo-Reply, not IP ({} octets)",
        last.len()
    );
}

#[test]
fn hole_2_echo_replies_and_protocol_rejects_are_rate_limited() {
    let mut now = Instant::now();
    let (mut s, _c) = up_pair(now);
    let count = |s: &mut Link| {
        let mut n = 0;
        while s.poll_transmit().is_some() {
            n += 1;
        }
        n
    };
    count(&mut s);
    for i in 0..100u8 {
        s.handle_input(now, &lcp_frame(Code::EchoRequest, i, &0u32.to_be_bytes()));
    }
    assert_eq!(count(&mut s), 10, "a burst of 10 in the first second");
    now += Duration::from_millis(500);
    for _ in 0..100 {
        s.handle_input(now, &encode(0x8057, &[1, 2, 3], TxOptions::DEFAULT));
    }
    assert_eq!(count(&mut s), 5, "half a second later: 5 more");
    now += Duration::from_secs(10);
    for i in 0..100u8 {
        s.handle_input(now, &lcp_frame(Code::EchoRequest, i, &0u32.to_be_bytes()));
    }
    assert_eq!(count(&mut s), 10, "idle refills to the burst, no more");
    assert_eq!(s.stats().replies_limited, 90 + 95 + 90);
}

#[test]
fn hole_3_authentication_times_out() {
    let start = Instant::now();
    let mut now = start;
    let mut s = server(now);
    // A patient client: it repeats its request for 1000 s, so only the
    // server can end this.
    let mut cfg = common::client_config("s3cret", vec![AuthProtocol::Pap]);
    let creds = cfg.credentials.as_mut().unwrap();
    creds.restart_interval = Duration::from_secs(10);
    creds.max_transmits = 100;
    cfg.auth_timeout = None;
    let mut c = Link::new(cfg, now, Rng::source(41)).unwrap();
    let evs = shuttle(now, &mut s, &mut c);
    let req = verify_of(&evs).expect("a request");
    // The host's check never returns; echoes keep the line alive.
    let mut down = None;
    let mut aborted = false;
    while now - start < Duration::from_secs(120) {
        let next = [s.poll_timeout(), c.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer runs");
        now = next.max(now);
        s.handle_timeout(now);
        c.handle_timeout(now);
        for e in shuttle(now, &mut s, &mut c) {
            match e {
                Event::VerifyAborted(id) => {
                    assert_eq!(id, req.id);
                    aborted = true;
                }
                Event::Down { cause } => down = Some((now - start, cause)),
                Event::Authenticated { .. } => panic!("authenticated without a verdict"),
                _ => {}
            }
        }
        if down.is_some() {
            break;
        }
    }
    let (at, cause) = down.expect("the link ends");
    assert_eq!(cause, DownCause::AuthTimeout);
    assert_eq!(cause.to_string(), "authentication timed out");
    assert!(
        at >= Duration::from_secs(30) && at < Duration::from_secs(31),
        "ended at {at:?}"
    );
    assert!(aborted, "the pending check is voided");
    assert!(matches!(
        s.verified(now, req.id, accept()),
        Err(LinkError::StaleVerdict(_))
    ));
}

/// A hostile peer that answers every LCP Configure-Request of the server
/// with a Configure-Nak (an acceptable MRU), so LCP never opens while the
/// server's restart counter is reset by each Nak (RFC 1661: RCN is
/// irc,scr). Drives the server for `limit` of virtual time or until it
/// is dead; returns when it died (from `start`) and why.
fn nak_forever(
    s: &mut Link,
    start: Instant,
    mut now: Instant,
    limit: Duration,
) -> Option<(Duration, DownCause)> {
    let mut deframer = Deframer::new(4096);
    let mut nak = Vec::new();
    ppp::wire::push_option(&mut nak, 1, &1500u16.to_be_bytes());
    while now - start < limit {
        let mut answers = Vec::new();
        while let Some(b) = s.poll_transmit() {
            for f in deframer.push_collect(&b) {
                if f.protocol != protocol::LCP {
                    continue;
                }
                let Ok(p) = Packet::new_checked(&f.payload) else {
                    continue;
                };
                if p.code() == Code::ConfigureRequest {
                    answers.push(encode(
                        protocol::LCP,
                        &build_packet(Code::ConfigureNak, p.identifier(), &nak),
                        TxOptions::DEFAULT,
                    ));
                }
            }
        }
        for a in answers {
            s.handle_input(now, &a);
        }
        while let Some(e) = s.poll_event() {
            if let Event::Down { cause } = e {
                return Some((now - start, cause));
            }
        }
        if s.is_dead() {
            return s.down_cause().cloned().map(|c| (now - start, c));
        }
        let t = s.poll_timeout().expect("a timer runs while LCP negotiates");
        now = t.max(now + Duration::from_millis(1));
        s.handle_timeout(now);
    }
    None
}

#[test]
fn hole_3_lcp_that_never_opens_is_bounded_by_the_auth_deadline() {
    let start = Instant::now();
    let mut s = server(start);
    let down = nak_forever(&mut s, start, start, Duration::from_secs(3600));
    let (at, cause) = down.expect("a peer that never lets LCP open is not kept for an hour");
    assert_eq!(cause, DownCause::AuthTimeout);
    // The close starts at 30 s; a peer that ignores our Terminate-Request
    // costs the restart timer's Max-Terminate on top.
    assert!(
        at >= Duration::from_secs(30) && at <= Duration::from_secs(40),
        "ended at {at:?}"
    );
}

#[test]
fn hole_3_a_renegotiation_that_never_opens_is_bounded_too() {
    let start = Instant::now();
    let mut now = start;
    let mut s = server(now);
    let mut c = {
        let cfg = common::client_config("s3cret", vec![AuthProtocol::Pap]);
        Link::new(cfg, now, Rng::source(12)).unwrap()
    };
    // LCP and PAP, accepted: the Network phase.
    let mut verified = false;
    for _ in 0..100 {
        while let Some(b) = s.poll_transmit() {
            c.handle_input(now, &b);
        }
        while let Some(b) = c.poll_transmit() {
            s.handle_input(now, &b);
        }
        while c.poll_event().is_some() {}
        while let Some(e) = s.poll_event() {
            if let Event::Verify(v) = e {
                s.verified(now, v.id, common::accept()).unwrap();
                verified = true;
            }
        }
    }
    assert!(verified && s.is_up(), "up: {:?}", s.phase());
    // Much later the peer renegotiates LCP and then never lets it open.
    now += Duration::from_secs(600);
    s.handle_timeout(now);
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    let mut req = Vec::new();
    ppp::wire::push_option(&mut req, 5, &0x1234_5678u32.to_be_bytes());
    s.handle_input(
        now,
        &encode(
            protocol::LCP,
            &build_packet(Code::ConfigureRequest, 9, &req),
            TxOptions::DEFAULT,
        ),
    );
    assert_eq!(s.phase(), Phase::Establish);
    let t0 = now;
    let down = nak_forever(&mut s, t0, now, Duration::from_secs(3600));
    let (at, cause) = down.expect("a renegotiation that never opens is not kept for an hour");
    assert_eq!(cause, DownCause::AuthTimeout);
    // The close starts at 30 s; a peer that ignores our Terminate-Request
    // costs the restart timer's Max-Terminate on top.
    assert!(
        at >= Duration::from_secs(30) && at <= Duration::from_secs(40),
        "ended at {at:?}"
    );
}

/// alice authenticates; the caller renegotiates LCP and logs in as bob
/// (whose password the host would accept). The session was alice's (its
/// accounting, its record): the link refuses the change of user as a
/// CHAP re-challenge does, without asking the host about bob.
#[test]
fn hole_1_a_renegotiation_cannot_change_the_authenticated_user() {
    let now = Instant::now();
    let mut s = server(now);
    let mut a = client(now, b"alice", "s3cret", 51);
    let evs = shuttle(now, &mut s, &mut a);
    let req = evs
        .iter()
        .find_map(|e| match e {
            Event::Verify(v) => Some(v.clone()),
            _ => None,
        })
        .expect("alice's request");
    s.verified(now, req.id, common::accept()).unwrap();
    shuttle(now, &mut s, &mut a);
    assert!(s.is_up());
    // Renegotiate as bob.
    let mut b = client(now, b"bob", "b0bpw", 52);
    let evs = shuttle(now, &mut s, &mut b);
    assert!(
        !evs.iter().any(|e| matches!(
            e,
            Event::Verify(_) | Event::Authenticated { .. } | Event::Up { .. }
        )),
        "bob was taken for alice's session: {evs:?}"
    );
    assert!(
        evs.contains(&Event::AuthFailed(ppp::auth::FailureReason::UserChanged)),
        "{evs:?}"
    );
    assert_eq!(s.pending_verify(), None);
    // The link ends (bob's client answers our Terminate-Request).
    let evs = shuttle(now, &mut s, &mut b);
    assert!(s.is_dead(), "{:?} {evs:?}", s.phase());
    assert_eq!(
        s.down_cause(),
        Some(&DownCause::AuthFailed(
            ppp::auth::FailureReason::UserChanged
        ))
    );
}
