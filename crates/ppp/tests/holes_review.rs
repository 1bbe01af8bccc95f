//! Issue 12 review of holes 1-3: interleavings and bounds the first tests
//! did not reach, on a virtual clock.

mod common;

use std::time::{Duration, Instant};

use common::Rng;
use ppp::auth::AuthProtocol;
use ppp::hdlc::{Deframer, TxOptions, encode};
use ppp::link::{DownCause, Event, Link, Phase};
use ppp::wire::{Code, Packet, build_packet, protocol};

fn server(now: Instant) -> Link {
    let cfg = common::server_config(vec![AuthProtocol::Pap]);
    Link::new(cfg, now, Rng::source(11)).unwrap()
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

/// Moves bytes both ways until neither link sends; the server's events.
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

fn pap_client(now: Instant, user: &[u8], password: &str, seed: u64) -> Link {
    let mut cfg = common::client_config(password, vec![AuthProtocol::Pap]);
    cfg.credentials = Some(ppp::auth::PeerConfig::new(user, password, [0; 32]));
    Link::new(cfg, now, Rng::source(seed)).unwrap()
}

/// alice authenticates; the caller renegotiates LCP and logs in as bob
/// (whose password the host would accept). The session was alice's (its
/// accounting, its record): the link refuses the change of user as a
/// CHAP re-challenge does, without asking the host about bob.
#[test]
fn hole_1_a_renegotiation_cannot_change_the_authenticated_user() {
    let now = Instant::now();
    let mut s = server(now);
    let mut a = pap_client(now, b"alice", "s3cret", 51);
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
    let mut b = pap_client(now, b"bob", "b0bpw", 52);
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
