//! Both roles of each authentication protocol talking to each other on a
//! virtual clock: accept, reject, wrong password, lost packets, timeouts,
//! retries, periodic re-challenge, MS-CHAPv2 mutual authentication.

use std::time::{Duration, Instant};

use ppp::auth::{
    AuthError, AuthProtocol, AuthStatus, Authenticator, AuthenticatorConfig, Credentials, Event,
    FailureReason, Peer, PeerConfig, Verdict, VerifyId, nt_password_hash,
};

const ALL: [AuthProtocol; 3] = [
    AuthProtocol::Pap,
    AuthProtocol::ChapMd5,
    AuthProtocol::MsChapV2,
];

/// Direction of a packet in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToPeer,
    ToAuthenticator,
}

/// Verifier: credentials -> verdict, with the number of calls so far.
type Verifier = Box<dyn FnMut(&Credentials, usize) -> Verdict>;
/// Loss: (direction, index of the packet in that direction) -> drop it?
type Loss = Box<dyn FnMut(Dir, usize) -> bool>;

struct Sim {
    start: Instant,
    now: Instant,
    a: Authenticator,
    p: Peer,
    verifier: Verifier,
    loss: Loss,
    sent: [usize; 2],
    verifies: usize,
    a_events: Vec<Event>,
    p_events: Vec<Event>,
    /// Verdicts are delivered this long after the Verify event.
    verify_delay: Duration,
    pending_verdict: Option<(Instant, VerifyId, Verdict)>,
    log: Vec<(Duration, Dir, Vec<u8>)>,
}

fn password_verifier(password: &'static str) -> Verifier {
    Box::new(move |c, _| c.verify_password(password, "Access denied"))
}

impl Sim {
    fn new(
        protocol: AuthProtocol,
        acfg: AuthenticatorConfig,
        pcfg: PeerConfig,
        verifier: Verifier,
    ) -> Self {
        let start = Instant::now();
        let mut a = Authenticator::new(protocol, acfg).unwrap();
        let mut p = Peer::new(protocol, pcfg).unwrap();
        a.start(start);
        p.start(start);
        Sim {
            start,
            now: start,
            a,
            p,
            verifier,
            loss: Box::new(|_, _| false),
            sent: [0, 0],
            verifies: 0,
            a_events: Vec::new(),
            p_events: Vec::new(),
            verify_delay: Duration::from_millis(5),
            pending_verdict: None,
            log: Vec::new(),
        }
    }

    fn basic(protocol: AuthProtocol, peer_password: &str) -> Self {
        Sim::new(
            protocol,
            AuthenticatorConfig::new([1; 32]),
            PeerConfig::new(b"alice", peer_password, [2; 32]),
            password_verifier("s3cret"),
        )
    }

    /// Runs until both sides are quiet (no packet, no verdict, no timer) or
    /// `limit` of virtual time has passed. Returns the elapsed time.
    fn run(&mut self, limit: Duration) -> Duration {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(pkt) = self.a.poll_transmit() {
                moved = true;
                self.deliver(Dir::ToPeer, pkt);
            }
            while let Some(pkt) = self.p.poll_transmit() {
                moved = true;
                self.deliver(Dir::ToAuthenticator, pkt);
            }
            while let Some(ev) = self.a.poll_event() {
                moved = true;
                if let Event::Verify(req) = &ev {
                    assert!(self.pending_verdict.is_none(), "two Verify at once");
                    let v = (self.verifier)(&req.credentials, self.verifies);
                    self.verifies += 1;
                    self.pending_verdict = Some((self.now + self.verify_delay, req.id, v));
                }
                self.a_events.push(ev);
            }
            while let Some(ev) = self.p.poll_event() {
                moved = true;
                assert!(!matches!(ev, Event::Verify(_)), "peer asked to verify");
                self.p_events.push(ev);
            }
            if moved {
                continue;
            }
            // Advance the clock to the next thing that happens.
            let next = [
                self.a.poll_timeout(),
                self.p.poll_timeout(),
                self.pending_verdict.as_ref().map(|(t, _, _)| *t),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            if next - self.start > limit {
                break;
            }
            assert!(next >= self.now, "a timer went backwards");
            self.now = next;
            if let Some((t, _, _)) = &self.pending_verdict
                && *t <= self.now
            {
                let (_, id, v) = self.pending_verdict.take().unwrap();
                self.a.verified(self.now, id, v).unwrap();
            }
            self.a.handle_timeout(self.now);
            self.p.handle_timeout(self.now);
        }
        self.now - self.start
    }

    fn deliver(&mut self, dir: Dir, pkt: Vec<u8>) {
        let n = &mut self.sent[dir as usize];
        let idx = *n;
        *n += 1;
        self.log.push((self.now - self.start, dir, pkt.clone()));
        if (self.loss)(dir, idx) {
            return;
        }
        // Discarded packets are fine here (duplicates, late ones); the
        // machines must simply not misbehave.
        let _ = match dir {
            Dir::ToPeer => self.p.handle_packet(self.now, &pkt),
            Dir::ToAuthenticator => self.a.handle_packet(self.now, &pkt),
        };
    }

    fn count(&self, dir: Dir, code: u8) -> usize {
        self.log
            .iter()
            .filter(|(_, d, p)| *d == dir && p.first() == Some(&code))
            .count()
    }
}

fn succeeded(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Succeeded { .. }))
        .count()
}

fn failures(events: &[Event]) -> Vec<FailureReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn accept_each_protocol() {
    for proto in ALL {
        let mut s = Sim::basic(proto, "s3cret");
        let t = s.run(Duration::from_secs(120));
        assert!(t < Duration::from_secs(1), "{proto}: took {t:?}");
        assert_eq!(s.verifies, 1, "{proto}");
        assert_eq!(
            s.a_events.last(),
            Some(&Event::Succeeded {
                user: b"alice".to_vec(),
                protocol: proto
            }),
            "{proto}"
        );
        assert_eq!(
            s.p_events,
            vec![Event::Succeeded {
                user: b"alice".to_vec(),
                protocol: proto
            }],
            "{proto}"
        );
        assert_eq!(s.a.status(), AuthStatus::Succeeded);
        assert_eq!(s.p.status(), AuthStatus::Succeeded);
        assert_eq!(s.a.poll_timeout(), None, "{proto}: idle after success");
        assert_eq!(s.p.poll_timeout(), None, "{proto}: idle after success");
        assert_eq!(s.a.protocol(), proto);
    }
}

#[test]
fn accept_with_stored_nt_hash() {
    // The server stores only the NT hash (PAP and MS-CHAPv2 work with it).
    for proto in [AuthProtocol::Pap, AuthProtocol::MsChapV2] {
        let hash = nt_password_hash("s3cret");
        let mut s = Sim::new(
            proto,
            AuthenticatorConfig::new([3; 32]),
            PeerConfig::new(b"alice", "s3cret", [4; 32]),
            Box::new(move |c, _| c.verify_nt_hash(&hash, "no")),
        );
        s.run(Duration::from_secs(60));
        assert_eq!(succeeded(&s.a_events), 1, "{proto}");
        assert_eq!(succeeded(&s.p_events), 1, "{proto}");
    }
}

#[test]
fn wrong_password_each_protocol() {
    for proto in ALL {
        let mut s = Sim::basic(proto, "wrong-pw");
        s.run(Duration::from_secs(120));
        assert_eq!(s.verifies, 1, "{proto}");
        assert_eq!(succeeded(&s.a_events), 0);
        assert_eq!(succeeded(&s.p_events), 0);
        assert_eq!(
            failures(&s.a_events),
            vec![FailureReason::Rejected {
                message: "Access denied".into(),
                code: (proto == AuthProtocol::MsChapV2).then_some(691)
            }],
            "{proto}"
        );
        assert_eq!(
            failures(&s.p_events),
            vec![FailureReason::Rejected {
                message: "Access denied".into(),
                code: (proto == AuthProtocol::MsChapV2).then_some(691)
            }],
            "{proto}"
        );
        assert_eq!(s.a.status(), AuthStatus::Failed);
        assert_eq!(s.p.status(), AuthStatus::Failed);
        // Events name the user.
        assert!(
            matches!(&s.a_events.last(), Some(Event::Failed { user: Some(u), .. }) if u == b"alice")
        );
    }
}

#[test]
fn host_rejects_right_password() {
    // The verdict, not the password, decides (e.g. account disabled).
    for proto in ALL {
        let mut s = Sim::basic(proto, "s3cret");
        s.verifier = Box::new(|_, _| Verdict::reject("Account disabled"));
        s.run(Duration::from_secs(60));
        assert_eq!(succeeded(&s.a_events) + succeeded(&s.p_events), 0);
        assert!(matches!(
            failures(&s.p_events).as_slice(),
            [FailureReason::Rejected { message, .. }] if message == "Account disabled"
        ));
    }
}

#[test]
fn mschapv2_failure_message_format() {
    let mut s = Sim::basic(AuthProtocol::MsChapV2, "wrong-pw");
    s.run(Duration::from_secs(60));
    let failure = s
        .log
        .iter()
        .find(|(_, d, p)| *d == Dir::ToPeer && p[0] == 4)
        .map(|(_, _, p)| p.clone())
        .unwrap();
    let text = std::str::from_utf8(&failure[4..]).unwrap();
    assert!(text.starts_with("E=691 R=0 C="), "{text}");
    assert!(text.ends_with(" V=3 M=Access denied"), "{text}");
    assert_eq!(text.len(), "E=691 R=0 C= V=3 M=Access denied".len() + 32);
}

#[test]
fn mschapv2_bad_authenticator_response_detected() {
    let mut s = Sim::basic(AuthProtocol::MsChapV2, "s3cret");
    // A server that accepts but cannot compute the right S= (it does not
    // know the password): the peer must not trust it.
    s.verifier = Box::new(|_, _| Verdict::Accept {
        authenticator_response: Some([0x42; 20]),
    });
    s.run(Duration::from_secs(60));
    assert_eq!(succeeded(&s.a_events), 1);
    assert_eq!(succeeded(&s.p_events), 0);
    assert_eq!(
        failures(&s.p_events),
        vec![FailureReason::BadAuthenticatorResponse]
    );
    assert_eq!(s.p.status(), AuthStatus::Failed);
}

#[test]
fn mschapv2_accept_without_authenticator_response_is_misuse() {
    let start = Instant::now();
    let mut a =
        Authenticator::new(AuthProtocol::MsChapV2, AuthenticatorConfig::new([5; 32])).unwrap();
    let mut p = Peer::new(
        AuthProtocol::MsChapV2,
        PeerConfig::new(b"alice", "s3cret", [6; 32]),
    )
    .unwrap();
    a.start(start);
    p.start(start);
    p.handle_packet(start, &a.poll_transmit().unwrap()).unwrap();
    a.handle_packet(start, &p.poll_transmit().unwrap()).unwrap();
    let Some(Event::Verify(req)) = a.poll_event() else {
        panic!("no verify")
    };
    assert!(matches!(
        a.verified(
            start,
            req.id,
            Verdict::Accept {
                authenticator_response: None
            }
        ),
        Err(AuthError::Misuse(_))
    ));
    // Still pending; nothing sent.
    assert!(a.verification_pending());
    assert!(a.poll_transmit().is_none());
    // A verdict for another id is refused and changes nothing.
    assert!(matches!(
        a.verified(start, VerifyId(req.id.0 + 1), Verdict::reject("no")),
        Err(AuthError::StaleVerdict)
    ));
    assert!(a.verification_pending());
    // verified() with nothing pending is refused too.
    a.verified(start, req.id, Verdict::reject("no")).unwrap();
    assert!(matches!(
        a.verified(start, req.id, Verdict::reject("no")),
        Err(AuthError::StaleVerdict)
    ));
}

#[test]
fn lost_first_packet_each_direction_recovers() {
    for proto in ALL {
        for lost_dir in [Dir::ToPeer, Dir::ToAuthenticator] {
            let mut s = Sim::basic(proto, "s3cret");
            s.loss = Box::new(move |d, i| d == lost_dir && i == 0);
            let t = s.run(Duration::from_secs(120));
            assert_eq!(succeeded(&s.a_events), 1, "{proto} {lost_dir:?}");
            assert_eq!(succeeded(&s.p_events), 1, "{proto} {lost_dir:?}");
            assert_eq!(s.verifies, 1, "{proto} {lost_dir:?}: verified once");
            // One restart interval (3 s) recovers it.
            assert!(
                t >= Duration::from_secs(3) && t < Duration::from_secs(4),
                "{proto} {lost_dir:?} took {t:?}"
            );
        }
    }
}

#[test]
fn lost_success_is_resent_for_repeated_response() {
    // The authenticator's second packet (Success / Ack) is lost; the peer
    // repeats its Response/Request and gets the same result again, without
    // a second verification.
    for proto in ALL {
        let lost = if proto == AuthProtocol::Pap { 0 } else { 1 };
        let mut s = Sim::basic(proto, "s3cret");
        s.loss = Box::new(move |d, i| d == Dir::ToPeer && i == lost);
        s.run(Duration::from_secs(120));
        assert_eq!(s.verifies, 1, "{proto}");
        assert_eq!(succeeded(&s.a_events), 1, "{proto}");
        assert_eq!(succeeded(&s.p_events), 1, "{proto}");
        let success_code = if proto == AuthProtocol::Pap { 2 } else { 3 };
        assert_eq!(s.count(Dir::ToPeer, success_code), 2, "{proto}");
    }
}

#[test]
fn lost_failure_is_resent_for_repeated_response() {
    for proto in ALL {
        let lost = if proto == AuthProtocol::Pap { 0 } else { 1 };
        let mut s = Sim::basic(proto, "wrong-pw");
        s.loss = Box::new(move |d, i| d == Dir::ToPeer && i == lost);
        s.run(Duration::from_secs(120));
        assert_eq!(s.verifies, 1, "{proto}");
        assert_eq!(failures(&s.a_events).len(), 1, "{proto}");
        assert_eq!(failures(&s.p_events).len(), 1, "{proto}");
        let failure_code = if proto == AuthProtocol::Pap { 3 } else { 4 };
        assert_eq!(s.count(Dir::ToPeer, failure_code), 2, "{proto}");
    }
}

#[test]
fn slow_verifier_duplicates_not_reverified() {
    // The host takes 10 s; the peer repeats its Response/Request meanwhile.
    for proto in ALL {
        let mut s = Sim::basic(proto, "s3cret");
        s.verify_delay = Duration::from_secs(10);
        s.run(Duration::from_secs(120));
        assert_eq!(s.verifies, 1, "{proto}");
        assert!(
            s.count(
                Dir::ToAuthenticator,
                1 + u8::from(proto != AuthProtocol::Pap)
            ) >= 3
        );
        assert_eq!(succeeded(&s.a_events), 1, "{proto}");
        assert_eq!(succeeded(&s.p_events), 1, "{proto}");
    }
}

#[test]
fn authenticator_times_out_when_peer_is_silent() {
    for proto in ALL {
        let mut s = Sim::basic(proto, "s3cret");
        s.loss = Box::new(|d, _| d == Dir::ToAuthenticator);
        let t = s.run(Duration::from_secs(600));
        assert_eq!(
            failures(&s.a_events),
            vec![FailureReason::Timeout],
            "{proto}"
        );
        assert_eq!(s.a.status(), AuthStatus::Failed);
        if proto == AuthProtocol::Pap {
            // pap_timeout, 30 s; the PAP peer gives up after 10 Requests (27 s).
            assert!(s.a_events.iter().all(|e| !matches!(e, Event::Verify(_))));
            assert_eq!(failures(&s.p_events), vec![FailureReason::Timeout]);
            assert_eq!(t, Duration::from_secs(30));
        } else {
            // 10 Challenges, 3 s apart, then one more interval: 30 s.
            assert_eq!(s.count(Dir::ToPeer, 1), 10, "{proto}");
            assert_eq!(t, Duration::from_secs(30), "{proto}");
            // The CHAP peer's own limit is 30 s too.
            assert_eq!(failures(&s.p_events), vec![FailureReason::Timeout]);
        }
    }
}

#[test]
fn peer_times_out_when_authenticator_is_silent() {
    for proto in ALL {
        let mut s = Sim::basic(proto, "s3cret");
        s.loss = Box::new(|d, _| d == Dir::ToPeer);
        s.run(Duration::from_secs(600));
        assert_eq!(
            failures(&s.p_events),
            vec![FailureReason::Timeout],
            "{proto}"
        );
        assert_eq!(s.p.status(), AuthStatus::Failed);
        if proto == AuthProtocol::Pap {
            assert_eq!(s.count(Dir::ToAuthenticator, 1), 10);
        }
    }
}

#[test]
fn second_attempt_allowed_with_max_attempts() {
    for proto in ALL {
        let mut cfg = AuthenticatorConfig::new([7; 32]);
        cfg.max_attempts = 2;
        let mut s = Sim::new(
            proto,
            cfg,
            PeerConfig::new(b"alice", "s3cret", [8; 32]),
            Box::new(|c, n| {
                if n == 0 {
                    Verdict::reject("try again")
                } else {
                    c.verify_password("s3cret", "no")
                }
            }),
        );
        s.run(Duration::from_secs(120));
        if proto == AuthProtocol::Pap {
            // Our PAP peer gives up on a Nak (it has one password); the
            // authenticator keeps waiting for another Request until its timeout.
            assert_eq!(s.verifies, 1);
            assert_eq!(failures(&s.p_events).len(), 1);
            assert_eq!(failures(&s.a_events), vec![FailureReason::Timeout]);
            continue;
        }
        assert_eq!(s.verifies, 2, "{proto}");
        // The peer saw a Failure, then succeeded on the next Challenge.
        assert_eq!(failures(&s.p_events).len(), 1, "{proto}");
        assert_eq!(succeeded(&s.p_events), 1, "{proto}");
        assert_eq!(failures(&s.a_events).len(), 0, "{proto}");
        assert_eq!(succeeded(&s.a_events), 1, "{proto}");
        assert_eq!(s.count(Dir::ToPeer, 1), 2, "{proto}: two Challenges");
        if proto == AuthProtocol::MsChapV2 {
            let f = s
                .log
                .iter()
                .find(|(_, d, p)| *d == Dir::ToPeer && p[0] == 4)
                .unwrap();
            assert!(f.2[4..].starts_with(b"E=691 R=1 C="));
            // C= is the value of the next Challenge.
            let c = s
                .log
                .iter()
                .filter(|(_, d, p)| *d == Dir::ToPeer && p[0] == 1)
                .nth(1)
                .unwrap();
            let hexc = hex::encode_upper(&c.2[5..21]);
            assert_eq!(&f.2[16..48], hexc.as_bytes());
        }
    }
}

#[test]
fn periodic_rechallenge() {
    for proto in [AuthProtocol::ChapMd5, AuthProtocol::MsChapV2] {
        let mut cfg = AuthenticatorConfig::new([9; 32]);
        cfg.rechallenge_interval = Some(Duration::from_secs(60));
        let mut s = Sim::new(
            proto,
            cfg,
            PeerConfig::new(b"alice", "s3cret", [10; 32]),
            password_verifier("s3cret"),
        );
        s.run(Duration::from_secs(200));
        // Challenges at 0, 60, 120, 180 s; all answered right.
        assert_eq!(s.verifies, 4, "{proto}");
        assert_eq!(succeeded(&s.a_events), 1, "{proto}: reported once");
        assert_eq!(succeeded(&s.p_events), 1, "{proto}");
        assert!(failures(&s.a_events).is_empty());
        assert_eq!(s.a.status(), AuthStatus::Succeeded);
        // The identifiers differ from one Challenge to the next.
        let ids: Vec<u8> = s
            .log
            .iter()
            .filter(|(_, d, p)| *d == Dir::ToPeer && p[0] == 1)
            .map(|(_, _, p)| p[1])
            .collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.windows(2).all(|w| w[0] != w[1]));
    }
}

#[test]
fn failed_rechallenge_is_final() {
    for proto in [AuthProtocol::ChapMd5, AuthProtocol::MsChapV2] {
        let mut cfg = AuthenticatorConfig::new([11; 32]);
        cfg.rechallenge_interval = Some(Duration::from_secs(60));
        cfg.max_attempts = 3;
        let mut s = Sim::new(
            proto,
            cfg,
            PeerConfig::new(b"alice", "s3cret", [12; 32]),
            Box::new(|c, n| {
                if n == 0 {
                    c.verify_password("s3cret", "no")
                } else {
                    Verdict::reject("expired")
                }
            }),
        );
        s.run(Duration::from_secs(600));
        assert_eq!(s.verifies, 2, "{proto}");
        assert_eq!(succeeded(&s.a_events), 1);
        assert_eq!(
            failures(&s.a_events),
            vec![FailureReason::Rejected {
                message: "expired".into(),
                code: (proto == AuthProtocol::MsChapV2).then_some(691)
            }]
        );
        assert_eq!(s.a.status(), AuthStatus::Failed);
        assert_eq!(s.p.status(), AuthStatus::Failed);
    }
}

#[test]
fn rechallenge_answered_by_another_user_fails() {
    let start = Instant::now();
    let mut cfg = AuthenticatorConfig::new([13; 32]);
    cfg.rechallenge_interval = Some(Duration::from_secs(10));
    let mut a = Authenticator::new(AuthProtocol::ChapMd5, cfg).unwrap();
    let mut alice = Peer::new(
        AuthProtocol::ChapMd5,
        PeerConfig::new(b"alice", "s3cret", [14; 32]),
    )
    .unwrap();
    let mut bob = Peer::new(
        AuthProtocol::ChapMd5,
        PeerConfig::new(b"bob", "s3cret", [15; 32]),
    )
    .unwrap();
    a.start(start);
    alice.start(start);
    bob.start(start);
    alice
        .handle_packet(start, &a.poll_transmit().unwrap())
        .unwrap();
    a.handle_packet(start, &alice.poll_transmit().unwrap())
        .unwrap();
    let Some(Event::Verify(req)) = a.poll_event() else {
        panic!("no verify")
    };
    a.verified(
        start,
        req.id,
        req.credentials.verify_password("s3cret", "no"),
    )
    .unwrap();
    assert!(matches!(a.poll_event(), Some(Event::Succeeded { .. })));
    let _success = a.poll_transmit().unwrap();
    let t = a.poll_timeout().unwrap();
    assert_eq!(t, start + Duration::from_secs(10));
    a.handle_timeout(t);
    let challenge = a.poll_transmit().unwrap();
    bob.handle_packet(t, &challenge).unwrap();
    a.handle_packet(t, &bob.poll_transmit().unwrap()).unwrap();
    assert_eq!(
        a.poll_event(),
        Some(Event::Failed {
            user: Some(b"alice".to_vec()),
            protocol: AuthProtocol::ChapMd5,
            reason: FailureReason::UserChanged
        })
    );
    assert_eq!(a.poll_transmit().unwrap()[0], 4);
    assert_eq!(a.status(), AuthStatus::Failed);
}

#[test]
fn response_with_wrong_identifier_is_ignored() {
    let start = Instant::now();
    let mut a =
        Authenticator::new(AuthProtocol::ChapMd5, AuthenticatorConfig::new([16; 32])).unwrap();
    a.start(start);
    let ch = a.poll_transmit().unwrap();
    let mut p = Peer::new(
        AuthProtocol::ChapMd5,
        PeerConfig::new(b"alice", "s3cret", [17; 32]),
    )
    .unwrap();
    p.start(start);
    p.handle_packet(start, &ch).unwrap();
    let mut resp = p.poll_transmit().unwrap();
    resp[1] = resp[1].wrapping_add(1);
    assert!(matches!(
        a.handle_packet(start, &resp),
        Err(AuthError::Unexpected(_))
    ));
    assert!(a.poll_event().is_none());
    // A Success for the wrong Identifier is ignored by the peer too.
    let bogus = [3u8, ch[1].wrapping_add(7), 0, 4];
    assert!(matches!(
        p.handle_packet(start, &bogus),
        Err(AuthError::Unexpected(_))
    ));
    assert!(p.poll_event().is_none());
    // Packets of the wrong role.
    assert!(matches!(
        a.handle_packet(start, &ch),
        Err(AuthError::Unexpected(_))
    ));
    assert!(matches!(
        p.handle_packet(start, &resp),
        Err(AuthError::Unexpected(_))
    ));
}

#[test]
fn nothing_before_start() {
    let now = Instant::now();
    for proto in ALL {
        let mut a = Authenticator::new(proto, AuthenticatorConfig::new([0; 32])).unwrap();
        let mut p = Peer::new(proto, PeerConfig::new(b"u", "p", [0; 32])).unwrap();
        assert_eq!(a.status(), AuthStatus::Idle);
        assert!(a.poll_transmit().is_none() && p.poll_transmit().is_none());
        assert!(a.poll_timeout().is_none() && p.poll_timeout().is_none());
        let pkt: &[u8] = if proto == AuthProtocol::Pap {
            &[1, 1, 0, 6, 0, 0]
        } else {
            &[
                2, 1, 0, 21, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]
        };
        assert!(matches!(
            a.handle_packet(now, pkt),
            Err(AuthError::Unexpected(_))
        ));
        assert!(a.poll_event().is_none());
    }
}

#[test]
fn bad_configuration_is_misuse() {
    let mut cfg = AuthenticatorConfig::new([0; 32]);
    cfg.md5_challenge_len = 0;
    assert!(matches!(
        Authenticator::new(AuthProtocol::ChapMd5, cfg),
        Err(AuthError::Misuse(_))
    ));
    let mut cfg = AuthenticatorConfig::new([0; 32]);
    cfg.max_transmits = 0;
    assert!(Authenticator::new(AuthProtocol::Pap, cfg).is_err());
    let long = "x".repeat(256);
    assert!(Peer::new(AuthProtocol::Pap, PeerConfig::new(b"u", &long, [0; 32])).is_err());
    assert!(
        Peer::new(
            AuthProtocol::ChapMd5,
            PeerConfig::new(long.as_bytes(), "p", [0; 32])
        )
        .is_err()
    );
    let mut a =
        Authenticator::new(AuthProtocol::MsChapV2, AuthenticatorConfig::new([0; 32])).unwrap();
    assert!(a.queue_challenge(&[0; 8]).is_err());
    assert!(a.queue_challenge(&[0; 16]).is_ok());
    let mut p = Peer::new(AuthProtocol::ChapMd5, PeerConfig::new(b"u", "p", [0; 32])).unwrap();
    assert!(p.queue_peer_challenge(&[0; 16]).is_err());
}

#[test]
fn md5_challenge_length_is_configurable() {
    let mut cfg = AuthenticatorConfig::new([18; 32]);
    cfg.md5_challenge_len = 40;
    cfg.name = b"pppserver".to_vec();
    let mut a = Authenticator::new(AuthProtocol::ChapMd5, cfg).unwrap();
    a.start(Instant::now());
    let ch = a.poll_transmit().unwrap();
    assert_eq!(ch[4], 40);
    assert_eq!(&ch[45..], b"pppserver");
    assert_eq!(usize::from(u16::from_be_bytes([ch[2], ch[3]])), ch.len());
}

#[test]
fn debug_output_hides_secrets() {
    let c = Credentials::Pap {
        user: b"alice".to_vec(),
        password: b"s3cret".to_vec(),
    };
    let d = format!("{c:?}");
    assert!(d.contains("alice") && !d.contains("s3cret"), "{d}");
    let p = Peer::new(
        AuthProtocol::Pap,
        PeerConfig::new(b"alice", "s3cret", [0; 32]),
    )
    .unwrap();
    let d = format!("{p:?} {:?}", PeerConfig::new(b"alice", "s3cret", [0; 32]));
    assert!(!d.contains("s3cret"), "{d}");
}

#[test]
fn mschapv2_domain_user_hashes_only_the_user_part() {
    // Windows sends DOMAIN\user as the Name but hashes only "user"; both our
    // roles and the verification helpers do the same.
    let mut s = Sim::new(
        AuthProtocol::MsChapV2,
        AuthenticatorConfig::new([19; 32]),
        PeerConfig::new(b"CORP\\alice", "s3cret", [20; 32]),
        password_verifier("s3cret"),
    );
    s.run(Duration::from_secs(60));
    assert_eq!(
        s.a_events.last(),
        Some(&Event::Succeeded {
            user: b"CORP\\alice".to_vec(),
            protocol: AuthProtocol::MsChapV2
        })
    );
    assert_eq!(succeeded(&s.p_events), 1);
}

#[test]
fn different_response_while_verifying_is_refused() {
    for proto in [AuthProtocol::ChapMd5, AuthProtocol::MsChapV2] {
        let now = Instant::now();
        let mut a = Authenticator::new(proto, AuthenticatorConfig::new([21; 32])).unwrap();
        a.start(now);
        let ch = a.poll_transmit().unwrap();
        let mut p1 = Peer::new(proto, PeerConfig::new(b"alice", "s3cret", [22; 32])).unwrap();
        let mut p2 = Peer::new(proto, PeerConfig::new(b"mallory", "x", [23; 32])).unwrap();
        p1.start(now);
        p2.start(now);
        p1.handle_packet(now, &ch).unwrap();
        p2.handle_packet(now, &ch).unwrap();
        let r1 = p1.poll_transmit().unwrap();
        let r2 = p2.poll_transmit().unwrap();
        a.handle_packet(now, &r1).unwrap();
        assert!(matches!(a.poll_event(), Some(Event::Verify(_))));
        // The same Response again is absorbed; another one is refused.
        assert_eq!(a.handle_packet(now, &r1), Ok(()));
        assert!(matches!(
            a.handle_packet(now, &r2),
            Err(AuthError::Unexpected(_))
        ));
        assert!(a.poll_event().is_none());
        assert!(a.poll_transmit().is_none());
        assert!(a.verification_pending());
    }
}

#[test]
fn timer_intervals_are_bounded() {
    let mut cfg = AuthenticatorConfig::new([0; 32]);
    cfg.restart_interval = Duration::ZERO;
    assert!(Authenticator::new(AuthProtocol::ChapMd5, cfg).is_err());
    let mut cfg = AuthenticatorConfig::new([0; 32]);
    cfg.rechallenge_interval = Some(Duration::MAX);
    assert!(Authenticator::new(AuthProtocol::ChapMd5, cfg).is_err());
    let mut cfg = PeerConfig::new(b"u", "p", [0; 32]);
    cfg.timeout = Duration::from_secs(86_401);
    assert!(Peer::new(AuthProtocol::MsChapV2, cfg).is_err());
}
