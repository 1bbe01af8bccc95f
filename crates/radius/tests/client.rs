//! Client state machine tests with a virtual clock and in-process fake
//! servers built from this crate's server-side helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use radius::*;

const S1: &str = "127.0.0.1:1812";
const S2: &str = "127.0.0.2:1812";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(require_ma: bool) -> ClientConfig {
    ClientConfig {
        servers: vec![
            ServerConfig {
                addr: addr(S1),
                secret: b"secret-one".to_vec(),
            },
            ServerConfig {
                addr: addr(S2),
                secret: b"secret-two".to_vec(),
            },
        ],
        timeout: Duration::from_secs(2),
        retries: 2,
        require_message_authenticator: if require_ma {
            RequireMessageAuthenticator::Always
        } else {
            RequireMessageAuthenticator::Never
        },
    }
}

fn login(user: &str) -> Request {
    Request::access(vec![
        Attribute::UserName(user.as_bytes().to_vec()),
        Attribute::NasIdentifier(b"dialgate".to_vec()),
    ])
    .with_password(b"pw")
}

/// What a fake server sees: it checks the request like FreeRADIUS with
/// `require_message_authenticator = yes` does.
fn server_reply(
    request: &[u8],
    secret: &[u8],
    code: Code,
    attrs: &[Attribute],
    with_ma: bool,
) -> Vec<u8> {
    let raw = RawPacket::parse(request).unwrap();
    match raw.code() {
        Code::AccessRequest => verify_access_request(&raw, secret, true).unwrap(),
        Code::AccountingRequest => verify_accounting_request(&raw, secret).unwrap(),
        other => panic!("unexpected request code {other:?}"),
    }
    encode_response(
        code,
        raw.identifier(),
        &raw.authenticator(),
        attrs,
        secret,
        with_ma,
    )
    .unwrap()
}

#[test]
fn accept_with_password_hidden_per_server() {
    let t0 = Instant::now();
    let mut c = Client::new(config(true)).unwrap();
    let rid = c.send_request(t0, login("alice"), [1; 16]).unwrap();
    let (to, pkt) = c.poll_transmit().unwrap();
    assert_eq!(to, addr(S1));
    assert!(c.poll_transmit().is_none());
    let req = Packet::decode(&pkt).unwrap();
    assert_eq!(req.code, Code::AccessRequest);
    assert_eq!(req.authenticator, [1; 16]);
    // Message-Authenticator first.
    assert!(matches!(
        req.attributes[0],
        Attribute::MessageAuthenticator(_)
    ));
    let hidden = req
        .find(|a| match a {
            Attribute::UserPassword(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        unhide_password(&hidden, b"secret-one", &req.authenticator).unwrap(),
        b"pw"
    );
    let reply = server_reply(
        &pkt,
        b"secret-one",
        Code::AccessAccept,
        &[Attribute::SessionTimeout(3600)],
        true,
    );
    c.handle_datagram(t0, addr(S1), &reply);
    let (id, outcome) = c.poll_event().unwrap();
    assert_eq!(id, rid);
    assert!(
        matches!(outcome, Outcome::Accept { ref attrs } if attrs.contains(&Attribute::SessionTimeout(3600)))
    );
    assert_eq!(c.pending(), 0);
    assert_eq!(c.poll_timeout(), None);
    // A duplicate of the reply is now unmatched.
    c.handle_datagram(t0, addr(S1), &reply);
    assert_eq!(c.stats().dropped_unmatched, 1);
    assert!(c.poll_event().is_none());
}

#[test]
fn retransmit_failover_timeout() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    let rid = c.send_request(t0, login("bob"), [2; 16]).unwrap();
    let (_, first) = c.poll_transmit().unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    // Nothing due early.
    c.handle_timeout(t0 + Duration::from_millis(1999));
    assert!(c.poll_transmit().is_none());
    // Two retransmissions of the identical packet to server 1.
    let mut t = t0;
    for _ in 0..2 {
        t += Duration::from_secs(2);
        c.handle_timeout(t);
        assert_eq!(c.poll_transmit(), Some((addr(S1), first.clone())));
    }
    // Then failover to server 2 with its own secret.
    t += Duration::from_secs(2);
    c.handle_timeout(t);
    let (to, second) = c.poll_transmit().unwrap();
    assert_eq!(to, addr(S2));
    let raw = RawPacket::parse(&second).unwrap();
    assert_eq!(verify_access_request(&raw, b"secret-two", true), Ok(()));
    assert!(verify_access_request(&raw, b"secret-one", true).is_err());
    for _ in 0..2 {
        t += Duration::from_secs(2);
        c.handle_timeout(t);
        assert_eq!(c.poll_transmit(), Some((addr(S2), second.clone())));
    }
    assert!(c.poll_event().is_none());
    t += Duration::from_secs(2);
    c.handle_timeout(t);
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.poll_event(), Some((rid, Outcome::Timeout)));
    assert_eq!(c.poll_timeout(), None);
    let s = c.stats();
    assert_eq!(
        (s.transmissions, s.retransmissions, s.failovers, s.timeouts),
        (2, 4, 1, 1)
    );
    // The late answer of server 1 is dropped.
    let late = server_reply(&first, b"secret-one", Code::AccessAccept, &[], true);
    c.handle_datagram(t, addr(S1), &late);
    assert_eq!(c.stats().dropped_unmatched, 1);
    // Both servers failed in turn, so the preference wrapped back to server 1.
    c.send_request(t, login("carol"), [3; 16]).unwrap();
    assert_eq!(c.poll_transmit().unwrap().0, addr(S1));
}

#[test]
fn failover_answer_from_second_server() {
    let t0 = Instant::now();
    let mut cfg = config(false);
    cfg.retries = 0;
    let mut c = Client::new(cfg).unwrap();
    let rid = c.send_request(t0, login("dave"), [4; 16]).unwrap();
    let _ = c.poll_transmit().unwrap();
    c.handle_timeout(t0 + Duration::from_secs(2));
    let (to, pkt) = c.poll_transmit().unwrap();
    assert_eq!(to, addr(S2));
    // Server 2 answers, but from server 1's address: unmatched.
    let reply = server_reply(&pkt, b"secret-two", Code::AccessReject, &[], false);
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(c.poll_event().is_none());
    c.handle_datagram(t0, addr(S2), &reply);
    assert!(
        matches!(c.poll_event(), Some((r, Outcome::Reject { reply_message: None, .. })) if r == rid)
    );
    // Server 1 stopped answering, so the next request starts at server 2.
    c.send_request(t0, login("erin"), [5; 16]).unwrap();
    assert_eq!(c.poll_transmit().unwrap().0, addr(S2));
}

#[test]
fn wrong_authenticator_dropped_then_good_reply_accepted() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    let rid = c.send_request(t0, login("eve"), [5; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let raw = RawPacket::parse(&pkt).unwrap();
    // Signed with the wrong secret.
    let forged = encode_response(
        Code::AccessAccept,
        raw.identifier(),
        &raw.authenticator(),
        &[],
        b"guess",
        false,
    )
    .unwrap();
    c.handle_datagram(t0, addr(S1), &forged);
    assert!(c.poll_event().is_none());
    assert_eq!(c.stats().dropped_bad_authenticator, 1);
    // Garbage is counted as malformed.
    c.handle_datagram(t0, addr(S1), &[2, 0, 0]);
    assert_eq!(c.stats().dropped_malformed, 1);
    // An Accounting-Response to an Access-Request is the wrong code.
    let wrong_code = server_reply(&pkt, b"secret-one", Code::AccountingResponse, &[], false);
    c.handle_datagram(t0, addr(S1), &wrong_code);
    assert_eq!(c.stats().dropped_unexpected_code, 1);
    // The request is still pending; the genuine reply wins.
    let reply = server_reply(
        &pkt,
        b"secret-one",
        Code::AccessReject,
        &[
            Attribute::ReplyMessage(b"Login ".to_vec()),
            Attribute::ReplyMessage(b"incorrect".to_vec()),
        ],
        false,
    );
    c.handle_datagram(t0, addr(S1), &reply);
    match c.poll_event() {
        Some((r, Outcome::Reject { reply_message, .. })) => {
            assert_eq!(r, rid);
            assert_eq!(reply_message.as_deref(), Some("Login incorrect"));
        }
        other => panic!("expected reject, got {other:?}"),
    }
}

#[test]
fn message_authenticator_required() {
    let t0 = Instant::now();
    let mut c = Client::new(config(true)).unwrap();
    let rid = c.send_request(t0, login("frank"), [6; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    // A correct Response Authenticator but no Message-Authenticator: refused.
    let no_ma = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &no_ma);
    assert!(c.poll_event().is_none());
    assert_eq!(c.stats().dropped_missing_message_authenticator, 1);
    // A Message-Authenticator computed with a wrong secret, wrapped in a
    // correct Response Authenticator: refused.
    let raw = RawPacket::parse(&pkt).unwrap();
    let mut bad_ma = encode_response(
        Code::AccessAccept,
        raw.identifier(),
        &raw.authenticator(),
        &[],
        b"guess",
        true,
    )
    .unwrap();
    bad_ma[4..20].copy_from_slice(&raw.authenticator());
    let mut input = bad_ma.clone();
    input.extend_from_slice(b"secret-one");
    let resp_auth: [u8; 16] = {
        use md5::Digest;
        md5::Md5::digest(&input).into()
    };
    bad_ma[4..20].copy_from_slice(&resp_auth);
    c.handle_datagram(t0, addr(S1), &bad_ma);
    assert_eq!(c.stats().dropped_bad_message_authenticator, 1);
    // With a good one: accepted.
    let good = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], true);
    c.handle_datagram(t0, addr(S1), &good);
    assert!(matches!(c.poll_event(), Some((r, Outcome::Accept { .. })) if r == rid));
}

#[test]
fn message_authenticator_verified_even_when_not_required() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    c.send_request(t0, login("gina"), [7; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let mut reply = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], true);
    // Corrupt the Message-Authenticator, fix the Response Authenticator.
    reply[25] ^= 1;
    let raw = RawPacket::parse(&pkt).unwrap();
    reply[4..20].copy_from_slice(&raw.authenticator());
    let mut input = reply.clone();
    input.extend_from_slice(b"secret-one");
    let resp_auth: [u8; 16] = {
        use md5::Digest;
        md5::Md5::digest(&input).into()
    };
    reply[4..20].copy_from_slice(&resp_auth);
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(c.poll_event().is_none());
    assert_eq!(c.stats().dropped_bad_message_authenticator, 1);
}

#[test]
fn challenge_outcome() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    let rid = c.send_request(t0, login("bob"), [8; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let reply = server_reply(
        &pkt,
        b"secret-one",
        Code::AccessChallenge,
        &[
            Attribute::ReplyMessage(b"Enter PIN:".to_vec()),
            Attribute::Prompt(values::prompt::NO_ECHO),
            Attribute::State(b"st-1".to_vec()),
        ],
        false,
    );
    c.handle_datagram(t0, addr(S1), &reply);
    match c.poll_event() {
        Some((
            r,
            Outcome::Challenge {
                state,
                reply_message,
                prompt_echo,
                ..
            },
        )) => {
            assert_eq!(r, rid);
            assert_eq!(state.as_deref(), Some(&b"st-1"[..]));
            assert_eq!(reply_message.as_deref(), Some("Enter PIN:"));
            assert!(!prompt_echo);
        }
        other => panic!("expected challenge, got {other:?}"),
    }
    // Echo when the server says so.
    let rid = c
        .send_request(
            t0,
            Request::access(vec![
                Attribute::UserName(b"bob".to_vec()),
                Attribute::State(b"st-1".to_vec()),
            ])
            .with_password(b"4321"),
            [9; 16],
        )
        .unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    assert!(
        Packet::decode(&pkt)
            .unwrap()
            .attributes
            .contains(&Attribute::State(b"st-1".to_vec()))
    );
    let reply = server_reply(
        &pkt,
        b"secret-one",
        Code::AccessChallenge,
        &[Attribute::Prompt(values::prompt::ECHO)],
        false,
    );
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(matches!(
        c.poll_event(),
        Some((r, Outcome::Challenge { state: None, reply_message: None, prompt_echo: true, .. })) if r == rid
    ));
}

#[test]
fn accounting_request_and_response() {
    let t0 = Instant::now();
    let mut c = Client::new(config(true)).unwrap();
    let rid = c
        .send_request(
            t0,
            Request::accounting(vec![
                Attribute::AcctStatusType(values::acct_status_type::STOP),
                Attribute::AcctSessionId(b"s1".to_vec()),
                Attribute::AcctInputOctets(1000),
                Attribute::AcctInputGigawords(1),
                Attribute::AcctTerminateCause(values::terminate_cause::LOST_CARRIER),
            ]),
            [0; 16],
        )
        .unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let p = Packet::decode(&pkt).unwrap();
    assert_eq!(p.code, Code::AccountingRequest);
    assert!(
        !p.attributes
            .iter()
            .any(|a| matches!(a, Attribute::MessageAuthenticator(_)))
    );
    // Accounting replies need no Message-Authenticator even when required
    // for Access replies.
    let reply = server_reply(&pkt, b"secret-one", Code::AccountingResponse, &[], false);
    c.handle_datagram(t0, addr(S1), &reply);
    assert_eq!(
        c.poll_event(),
        Some((rid, Outcome::AccountingResponse { attrs: vec![] }))
    );
    assert_eq!(
        c.send_request(t0, Request::accounting(vec![]).with_password(b"x"), [0; 16]),
        Err(SendError::PasswordOnAccounting)
    );
}

#[test]
fn identifiers_unique_and_queued_when_exhausted() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    let mut sent = Vec::new();
    for i in 0..256u32 {
        let rid = c
            .send_request(t0, login(&format!("u{i}")), [i as u8; 16])
            .unwrap();
        let (_, pkt) = c.poll_transmit().unwrap();
        sent.push((rid, pkt));
    }
    let mut ids: Vec<u8> = sent.iter().map(|(_, p)| p[1]).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 256);
    // The 257th waits for a free identifier.
    let queued = c.send_request(t0, login("late"), [0xee; 16]).unwrap();
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.pending(), 257);
    // Answer request #17: its identifier is reused for the queued one.
    let (rid17, pkt17) = &sent[17];
    let reply = server_reply(pkt17, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(matches!(c.poll_event(), Some((r, Outcome::Accept { .. })) if r == *rid17));
    let (_, pkt) = c.poll_transmit().unwrap();
    assert_eq!(pkt[1], pkt17[1]);
    // The old reply does not complete the new request (different
    // Request Authenticator).
    c.handle_datagram(t0, addr(S1), &reply);
    assert_eq!(c.stats().dropped_bad_authenticator, 1);
    let reply = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(matches!(c.poll_event(), Some((r, Outcome::Accept { .. })) if r == queued));
}

#[test]
fn cancel_frees_identifier() {
    let t0 = Instant::now();
    let mut c = Client::new(config(false)).unwrap();
    let rid = c.send_request(t0, login("x"), [1; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    c.cancel(rid);
    assert_eq!(c.pending(), 0);
    assert_eq!(c.poll_timeout(), None);
    let reply = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &reply);
    assert!(c.poll_event().is_none());
    assert_eq!(c.stats().dropped_unmatched, 1);
}

#[test]
fn config_and_encode_errors() {
    assert_eq!(
        Client::new(ClientConfig::new(vec![])).err(),
        Some(ConfigError::NoServers)
    );
    let mut cfg = config(false);
    cfg.timeout = Duration::ZERO;
    assert_eq!(
        Client::new(cfg.clone()).err(),
        Some(ConfigError::ZeroTimeout)
    );
    cfg.timeout = Duration::from_secs(3601);
    assert_eq!(
        Client::new(cfg).err(),
        Some(ConfigError::TimeoutTooLong(Duration::from_secs(3601)))
    );
    let mut c = Client::new(config(false)).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        c.send_request(t0, login("x").with_password(&[1; 129]), [0; 16]),
        Err(SendError::Encode(EncodeError::PasswordTooLong(129)))
    );
    assert_eq!(
        c.send_request(
            t0,
            Request::access(vec![Attribute::UserName(vec![b'a'; 300])]),
            [0; 16]
        ),
        Err(SendError::Encode(EncodeError::BadValueLength {
            typ: 1,
            len: 300
        }))
    );
    assert_eq!(c.pending(), 0);
}

proptest! {
    #[test]
    fn handle_datagram_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), fix_id in any::<bool>()) {
        let t0 = Instant::now();
        let mut c = Client::new(config(true)).unwrap();
        c.send_request(t0, login("p"), [1; 16]).unwrap();
        let (_, pkt) = c.poll_transmit().unwrap();
        let mut d = data;
        if fix_id && d.len() > 4 {
            d[1] = pkt[1];
            d[0] = 2;
        }
        c.handle_datagram(t0, addr(S1), &d);
        prop_assert!(c.poll_event().is_none());
        prop_assert_eq!(c.pending(), 1);
    }
}

/// Issue 12 hole 5: a client built with the defaults refuses an
/// Access-Accept that carries no Message-Authenticator (BlastRADIUS), even
/// with a correct Response Authenticator; no server answering validly is a
/// Timeout, never an Accept.
#[test]
fn hole_5_unsigned_accept_is_refused_by_default() {
    let t0 = Instant::now();
    let mut c = Client::new(ClientConfig::new(vec![ServerConfig {
        addr: addr(S1),
        secret: b"secret-one".to_vec(),
    }]))
    .unwrap();
    let rid = c.send_request(t0, login("mallory"), [9; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let unsigned = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &unsigned);
    assert!(
        c.poll_event().is_none(),
        "an unsigned Access-Accept was believed on the default configuration"
    );
    assert_eq!(c.stats().dropped_missing_message_authenticator, 1);
    // Unsigned Rejects and Challenges are refused alike.
    for code in [Code::AccessReject, Code::AccessChallenge] {
        let r = server_reply(&pkt, b"secret-one", code, &[], false);
        c.handle_datagram(t0, addr(S1), &r);
        assert!(c.poll_event().is_none(), "{code:?}");
    }
    assert_eq!(c.stats().dropped_missing_message_authenticator, 3);
    // The retransmissions get the same answer: the request times out.
    let mut now = t0;
    while let Some(d) = c.poll_timeout() {
        now = d;
        c.handle_timeout(now);
        while let Some((_, p)) = c.poll_transmit() {
            let r = server_reply(&p, b"secret-one", Code::AccessAccept, &[], false);
            c.handle_datagram(now, addr(S1), &r);
        }
    }
    assert_eq!(c.poll_event(), Some((rid, Outcome::Timeout)));
    assert!(now > t0);
}

/// Issue 12 hole 5, `auto` (FreeRADIUS's): unsigned replies from a server
/// are believed until it has sent one valid Message-Authenticator, and
/// refused from then on; each server is judged on its own.
#[test]
fn hole_5_auto_requires_it_once_the_server_signed() {
    let t0 = Instant::now();
    let mut cfg = config(false);
    cfg.require_message_authenticator = RequireMessageAuthenticator::Auto;
    let mut c = Client::new(cfg).unwrap();
    let ask = |c: &mut Client, user: &str, signed: bool| {
        let rid = c.send_request(t0, login(user), [3; 16]).unwrap();
        let (to, pkt) = c.poll_transmit().unwrap();
        assert_eq!(to, addr(S1));
        let r = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], signed);
        c.handle_datagram(t0, addr(S1), &r);
        let ev = c.poll_event();
        if ev.is_some() {
            assert!(matches!(ev, Some((id, Outcome::Accept { .. })) if id == rid));
        } else {
            c.cancel(rid);
        }
        ev.is_some()
    };
    // Before the server ever signed: unsigned is believed (and counted).
    assert!(ask(&mut c, "a", false));
    assert_eq!(c.stats().accepted_without_message_authenticator, 1);
    // It signs once...
    assert!(ask(&mut c, "b", true));
    // ... and from then on an unsigned reply is refused.
    assert!(!ask(&mut c, "c", false));
    assert_eq!(c.stats().dropped_missing_message_authenticator, 1);
    assert!(ask(&mut c, "d", true));
    assert!(!ask(&mut c, "e", false));
    assert_eq!(c.stats().dropped_missing_message_authenticator, 2);
    assert_eq!(c.stats().accepted_without_message_authenticator, 1);

    // A reply that fails verification never counts as "signs": a fresh
    // client still believes unsigned replies after a forged signed one.
    let mut cfg = config(false);
    cfg.require_message_authenticator = RequireMessageAuthenticator::Auto;
    let mut c = Client::new(cfg).unwrap();
    let rid = c.send_request(t0, login("f"), [4; 16]).unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let mut forged = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], true);
    forged[25] ^= 1;
    c.handle_datagram(t0, addr(S1), &forged);
    assert!(c.poll_event().is_none());
    assert_eq!(c.stats().dropped_bad_authenticator, 1);
    let ok = server_reply(&pkt, b"secret-one", Code::AccessAccept, &[], false);
    c.handle_datagram(t0, addr(S1), &ok);
    assert!(matches!(c.poll_event(), Some((id, Outcome::Accept { .. })) if id == rid));

    // Accounting-Responses never need one, whatever the setting.
    let mut c = Client::new(ClientConfig::new(vec![ServerConfig {
        addr: addr(S1),
        secret: b"secret-one".to_vec(),
    }]))
    .unwrap();
    let rid = c
        .send_request(
            t0,
            Request::accounting(vec![Attribute::AcctStatusType(1)]),
            [0; 16],
        )
        .unwrap();
    let (_, pkt) = c.poll_transmit().unwrap();
    let r = server_reply(&pkt, b"secret-one", Code::AccountingResponse, &[], false);
    c.handle_datagram(t0, addr(S1), &r);
    assert!(matches!(c.poll_event(), Some((id, Outcome::AccountingResponse { .. })) if id == rid));
}
