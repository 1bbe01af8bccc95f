//! Link-level LCP behaviour: Code-Reject, Protocol-Reject, Discard-Request,
//! loop-back detection, API misuse errors.

mod common;

use std::time::{Duration, Instant};

use common::{Impair, Rng, Sim, client_config, server_config};
use ppp::hdlc::{Deframer, Frame, TxOptions, encode};
use ppp::wire::protocol;
use ppp::{DownCause, Link, LinkConfig, LinkError};

const NEGOTIATED: TxOptions = TxOptions {
    accm: 0,
    acfc: true,
    pfc: true,
};

fn up_sim() -> Sim {
    let mut sim = Sim::new(
        server_config(vec![]),
        client_config("s3cret", vec![]),
        17,
        Impair::default(),
    );
    assert!(sim.drive(500, Sim::both_up));
    sim
}

/// Feeds one frame to the server and returns what it sends back.
fn server_answer(sim: &mut Sim, proto: u16, payload: &[u8]) -> Vec<Frame> {
    let now = sim.now;
    sim.server
        .handle_input(now, &encode(proto, payload, NEGOTIATED));
    let mut d = Deframer::new(1600);
    d.set_rx_accm(0);
    let mut out = Vec::new();
    while let Some(b) = sim.server.poll_transmit() {
        out.extend(d.push_collect(&b));
    }
    out
}

#[test]
fn unknown_lcp_code_is_code_rejected_with_the_packet() {
    let mut sim = up_sim();
    let pkt = [0x42, 7, 0, 6, 0xaa, 0xbb];
    let out = server_answer(&mut sim, protocol::LCP, &pkt);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].protocol, protocol::LCP);
    assert_eq!(out[0].payload[0], 7, "Code-Reject");
    assert_eq!(&out[0].payload[4..], &pkt);
    // Code-Reject is LCP code 7: sent with the default framing.
    assert!(!out[0].acfc);
    assert!(sim.both_up());
}

#[test]
fn unknown_protocols_are_protocol_rejected_once_lcp_is_open() {
    let mut sim = up_sim();
    for proto in [protocol::CCP, protocol::IPV6CP, 0x1235, 0x0049] {
        let out = server_answer(&mut sim, proto, &[1, 1, 0, 4]);
        assert_eq!(out.len(), 1, "{proto:#x}");
        let p = &out[0].payload;
        assert_eq!(p[0], 8, "Protocol-Reject");
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), proto);
        assert_eq!(&p[6..], &[1, 1, 0, 4]);
    }
    // Discard-Request: nothing back, nothing changes.
    let out = server_answer(&mut sim, protocol::LCP, &[11, 3, 0, 8, 0, 0, 0, 0]);
    assert!(out.is_empty());
    assert!(sim.both_up());
    assert!(sim.server.stats().protocol_rejects >= 4);
}

#[test]
fn before_lcp_opens_unknown_protocols_are_silently_discarded() {
    let now = Instant::now();
    let mut link = Link::new(server_config(vec![]), now, Rng::source(3)).unwrap();
    while link.poll_transmit().is_some() {}
    link.handle_input(
        now,
        &encode(protocol::CCP, &[1, 1, 0, 4], TxOptions::DEFAULT),
    );
    link.handle_input(
        now,
        &encode(protocol::IPV4, &[0x45; 20], TxOptions::DEFAULT),
    );
    assert!(link.poll_transmit().is_none());
    assert_eq!(link.stats().out_of_phase, 2);
    assert_eq!(link.send_ip(&[0x45; 20]), Err(LinkError::NotUp));
}

#[test]
fn looped_back_line_is_detected() {
    // Everything the server sends comes straight back to it.
    let mut now = Instant::now();
    let mut link = Link::new(server_config(vec![]), now, Rng::source(8)).unwrap();
    for _ in 0..2000 {
        let mut moved = false;
        while let Some(b) = link.poll_transmit() {
            moved = true;
            link.handle_input(now, &b);
        }
        while link.poll_event().is_some() {}
        if link.is_dead() {
            break;
        }
        if !moved {
            match link.poll_timeout() {
                Some(t) => {
                    now = now.max(t);
                    link.handle_timeout(now);
                }
                None => break,
            }
        }
    }
    assert!(link.is_dead());
    assert_eq!(link.down_cause(), Some(&DownCause::LoopedBack));
}

#[test]
fn misuse_is_reported() {
    let now = Instant::now();
    // A server requiring auth without authenticator settings.
    let mut cfg = server_config(vec![ppp::auth::AuthProtocol::Pap]);
    cfg.authenticator = None;
    assert!(matches!(
        Link::new(cfg, now, Rng::source(1)),
        Err(LinkError::Config(_))
    ));
    let mut cfg = LinkConfig::client(None);
    cfg.lcp.accept_auth = vec![ppp::auth::AuthProtocol::Pap];
    assert!(matches!(
        Link::new(cfg, now, Rng::source(1)),
        Err(LinkError::Config(_))
    ));
    let mut sim = up_sim();
    assert!(matches!(
        sim.server.verified(
            sim.now,
            ppp::auth::VerifyId(0),
            ppp::auth::Verdict::reject("no")
        ),
        Err(LinkError::StaleVerdict(_))
    ));
    let big = vec![0x45; 1501];
    assert!(matches!(
        sim.server.send_ip(&big),
        Err(LinkError::TooBig {
            len: 1501,
            mru: 1500
        })
    ));
    // Close, then nothing more happens after Down.
    let now = sim.now;
    sim.server.close(now, "bye");
    assert!(sim.drive(100, |s| s.server.is_dead() && s.client.is_dead()));
    assert_eq!(sim.server.poll_timeout(), None);
    let later = sim.now + Duration::from_secs(100);
    sim.server.handle_timeout(later);
    assert!(sim.server.poll_transmit().is_none());
}

/// A peer that sends Terminate-Request, gets our Terminate-Ack and hangs up
/// at once (RFC 1661 §3.7 allows it) terminated the link: the cause says
/// so, not "line hung up".
#[test]
fn hang_up_right_after_a_peer_terminate_is_the_peers_termination() {
    let mut sim = up_sim();
    let now = sim.now;
    sim.client.close(now, "User request");
    while let Some(f) = sim.client.poll_transmit() {
        sim.server.handle_input(now, &f);
    }
    // The server acked; the client hangs up without waiting.
    sim.server.handle_hangup(now);
    assert_eq!(
        sim.server.down_cause(),
        Some(&DownCause::PeerTerminated("User request".into()))
    );
    // A line that just drops is still a hang-up.
    let mut sim = up_sim();
    let now = sim.now;
    sim.server.handle_hangup(now);
    assert_eq!(sim.server.down_cause(), Some(&DownCause::Hangup));
}
