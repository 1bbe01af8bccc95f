//! Our authentication code against packets of a real pppd 2.4.9 (both
//! roles), copied into `tests/vectors/auth/` from the captures in
//! `/work/shared/captures/pppd-2.4.9/` (see the header of each file).
//! User `alice`, password `s3cret` (`wrong-pw` in the failure cases).

use std::time::Instant;

use ppp::auth::crypto::{
    authenticator_response_string, chap_md5_response, generate_authenticator_response,
    generate_nt_response,
};
use ppp::auth::{
    AuthProtocol, Authenticator, AuthenticatorConfig, ChapPacket, Credentials, Event,
    FailureReason, MsChapV2Failure, MsChapV2Response, MsChapV2Success, PapPacket, Peer, PeerConfig,
    Verdict, nt_password_hash, verify_nt_response,
};

/// The packets of one capture: (direction, bytes from Code on).
fn vectors(name: &str) -> Vec<(String, Vec<u8>)> {
    let path = format!(
        "{}/tests/vectors/auth/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (dir, hexs) = l.split_once(' ').unwrap();
            (dir.to_owned(), hex::decode(hexs.trim()).unwrap())
        })
        .collect()
}

fn packet(v: &[(String, Vec<u8>)], dir: &str, code: u8) -> Vec<u8> {
    v.iter()
        .find(|(d, p)| d == dir && p.first() == Some(&code))
        .map(|(_, p)| p.clone())
        .unwrap()
}

fn server_config(first_id: u8, challenge: &[u8]) -> AuthenticatorConfig {
    let mut cfg = AuthenticatorConfig::new([0x5a; 32]);
    cfg.name = b"pppserver".to_vec();
    cfg.first_identifier = Some(first_id);
    cfg.md5_challenge_len = challenge.len();
    cfg
}

fn peer_config(password: &str) -> PeerConfig {
    let mut cfg = PeerConfig::new(b"alice", password, [0xa5; 32]);
    cfg.first_identifier = Some(1);
    cfg
}

// ---------------------------------------------------------------- CHAP-MD5

#[test]
fn chap_md5_our_response_to_pppd_challenge_equals_pppd() {
    let v = vectors("02-chap-md5-success");
    let challenge = packet(&v, "S->C", 1);
    let response = packet(&v, "C->S", 2);
    let success = packet(&v, "S->C", 3);
    let ChapPacket::Challenge { id, value, name } = ChapPacket::parse(&challenge).unwrap() else {
        panic!()
    };
    assert_eq!((id, name), (0x65, &b"pppserver"[..]));
    assert_eq!(value.len(), 17);
    // The crypto alone.
    let ChapPacket::Response { value: rv, .. } = ChapPacket::parse(&response).unwrap() else {
        panic!()
    };
    assert_eq!(chap_md5_response(id, b"s3cret", value).as_slice(), rv);
    // The peer machine: byte for byte what pppd sent.
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::ChapMd5, peer_config("s3cret")).unwrap();
    p.start(now);
    p.handle_packet(now, &challenge).unwrap();
    assert_eq!(p.poll_transmit().unwrap(), response);
    p.handle_packet(now, &success).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(Event::Succeeded {
            user: b"alice".to_vec(),
            protocol: AuthProtocol::ChapMd5
        })
    );
}

#[test]
fn chap_md5_our_server_reproduces_pppd_server() {
    let v = vectors("02-chap-md5-success");
    let challenge = packet(&v, "S->C", 1);
    let response = packet(&v, "C->S", 2);
    let success = packet(&v, "S->C", 3);
    let ChapPacket::Challenge { value, .. } = ChapPacket::parse(&challenge).unwrap() else {
        panic!()
    };
    let now = Instant::now();
    let mut a = Authenticator::new(AuthProtocol::ChapMd5, server_config(0x65, value)).unwrap();
    a.queue_challenge(value).unwrap();
    a.start(now);
    assert_eq!(a.poll_transmit().unwrap(), challenge);
    a.handle_packet(now, &response).unwrap();
    let Some(Event::Verify(req)) = a.poll_event() else {
        panic!("no verify")
    };
    assert!(
        matches!(&req.credentials, Credentials::ChapMd5 { user, id: 0x65, .. } if user == b"alice")
    );
    let verdict = req.credentials.verify_password("s3cret", "Access denied");
    assert_eq!(
        verdict,
        Verdict::Accept {
            authenticator_response: None
        }
    );
    assert_eq!(
        req.credentials.verify_password("wrong-pw", "x"),
        Verdict::reject("x")
    );
    a.verified(now, req.id, verdict).unwrap();
    assert_eq!(a.poll_transmit().unwrap(), success);
}

// ---------------------------------------------------------------- MS-CHAPv2

fn mschap_parts(v: &[(String, Vec<u8>)]) -> ([u8; 16], MsChapV2Response) {
    let challenge = packet(v, "S->C", 1);
    let response = packet(v, "C->S", 2);
    let ChapPacket::Challenge { value, .. } = ChapPacket::parse(&challenge).unwrap() else {
        panic!()
    };
    let ChapPacket::Response {
        value: rv, name, ..
    } = ChapPacket::parse(&response).unwrap()
    else {
        panic!()
    };
    assert_eq!(name, b"alice");
    assert_eq!(rv.len(), 49);
    (
        value.try_into().unwrap(),
        MsChapV2Response::parse(rv).unwrap(),
    )
}

#[test]
fn mschapv2_crypto_matches_pppd() {
    let v = vectors("03-mschapv2-success");
    let (ac, r) = mschap_parts(&v);
    let success = packet(&v, "S->C", 3);
    let nt = generate_nt_response(&ac, &r.peer_challenge, b"alice", "s3cret");
    assert_eq!(nt, r.nt_response);
    let ar = generate_authenticator_response("s3cret", &nt, &r.peer_challenge, &ac, b"alice");
    assert_eq!(
        authenticator_response_string(&ar),
        "S=78CC8D3836089A635C76271E19C4E5B4FDC8621F"
    );
    // Server side from the stored hash only.
    let hash = nt_password_hash("s3cret");
    assert_eq!(
        verify_nt_response(&hash, &ac, &r.peer_challenge, b"alice", &r.nt_response),
        Some(ar)
    );
    // Our parser reads pppd's Success.
    let ChapPacket::Success { id, message } = ChapPacket::parse(&success).unwrap() else {
        panic!()
    };
    assert_eq!(id, 0x9d);
    let s = MsChapV2Success::parse(message).unwrap();
    assert_eq!(s.authenticator_response, ar);
    assert_eq!(s.message, b"Access granted");
}

#[test]
fn mschapv2_our_peer_equals_pppd_client() {
    let v = vectors("03-mschapv2-success");
    let (_, r) = mschap_parts(&v);
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::MsChapV2, peer_config("s3cret")).unwrap();
    p.queue_peer_challenge(&r.peer_challenge).unwrap();
    p.start(now);
    p.handle_packet(now, &packet(&v, "S->C", 1)).unwrap();
    assert_eq!(p.poll_transmit().unwrap(), packet(&v, "C->S", 2));
    // pppd's S= passes our mutual-authentication check.
    p.handle_packet(now, &packet(&v, "S->C", 3)).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(Event::Succeeded {
            user: b"alice".to_vec(),
            protocol: AuthProtocol::MsChapV2
        })
    );
}

#[test]
fn mschapv2_tampered_pppd_success_is_rejected_by_our_peer() {
    let v = vectors("03-mschapv2-success");
    let (_, r) = mschap_parts(&v);
    let mut success = packet(&v, "S->C", 3);
    // Flip one hex digit of S= ('7' -> '8').
    assert_eq!(success[6], b'7');
    success[6] = b'8';
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::MsChapV2, peer_config("s3cret")).unwrap();
    p.queue_peer_challenge(&r.peer_challenge).unwrap();
    p.start(now);
    p.handle_packet(now, &packet(&v, "S->C", 1)).unwrap();
    let _ = p.poll_transmit();
    p.handle_packet(now, &success).unwrap();
    assert!(matches!(
        p.poll_event(),
        Some(Event::Failed {
            reason: FailureReason::BadAuthenticatorResponse,
            ..
        })
    ));
}

#[test]
fn mschapv2_our_server_reproduces_pppd_server() {
    let v = vectors("03-mschapv2-success");
    let (ac, _) = mschap_parts(&v);
    let now = Instant::now();
    let mut a = Authenticator::new(AuthProtocol::MsChapV2, server_config(0x9d, &ac)).unwrap();
    a.queue_challenge(&ac).unwrap();
    a.start(now);
    assert_eq!(a.poll_transmit().unwrap(), packet(&v, "S->C", 1));
    a.handle_packet(now, &packet(&v, "C->S", 2)).unwrap();
    let Some(Event::Verify(req)) = a.poll_event() else {
        panic!("no verify")
    };
    let verdict = req
        .credentials
        .verify_nt_hash(&nt_password_hash("s3cret"), "Access denied");
    a.verified(now, req.id, verdict).unwrap();
    // Byte for byte pppd's Success, S= and M=Access granted.
    assert_eq!(a.poll_transmit().unwrap(), packet(&v, "S->C", 3));
    assert!(matches!(a.poll_event(), Some(Event::Succeeded { user, .. }) if user == b"alice"));
}

#[test]
fn mschapv2_wrong_password_matches_pppd() {
    let v = vectors("05-mschapv2-wrong-password");
    let (ac, r) = mschap_parts(&v);
    // pppd's client computed its NT-Response from "wrong-pw".
    assert_eq!(
        generate_nt_response(&ac, &r.peer_challenge, b"alice", "wrong-pw"),
        r.nt_response
    );
    assert_ne!(
        generate_nt_response(&ac, &r.peer_challenge, b"alice", "s3cret"),
        r.nt_response
    );
    let hash = nt_password_hash("s3cret");
    assert_eq!(
        verify_nt_response(&hash, &ac, &r.peer_challenge, b"alice", &r.nt_response),
        None
    );
    // pppd's Failure message parses.
    let failure = packet(&v, "S->C", 4);
    let ChapPacket::Failure { message, .. } = ChapPacket::parse(&failure).unwrap() else {
        panic!()
    };
    let f = MsChapV2Failure::parse(message).unwrap();
    assert_eq!(f.error, 691);
    assert!(f.retry);
    assert_eq!(f.challenge, Some(ac));
    assert_eq!(f.version, Some(0));
    assert_eq!(f.message, b"Access denied");

    // Our peer with the wrong password: same Response, then pppd's Failure.
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::MsChapV2, peer_config("wrong-pw")).unwrap();
    p.queue_peer_challenge(&r.peer_challenge).unwrap();
    p.start(now);
    p.handle_packet(now, &packet(&v, "S->C", 1)).unwrap();
    assert_eq!(p.poll_transmit().unwrap(), packet(&v, "C->S", 2));
    p.handle_packet(now, &failure).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(Event::Failed {
            user: Some(b"alice".to_vec()),
            protocol: AuthProtocol::MsChapV2,
            reason: FailureReason::Rejected {
                message: "Access denied".into(),
                code: Some(691)
            }
        })
    );

    // Our server rejects pppd's client: Failure E=691 R=0 ... V=3 M=Access denied.
    let mut a = Authenticator::new(AuthProtocol::MsChapV2, server_config(0x90, &ac)).unwrap();
    a.queue_challenge(&ac).unwrap();
    a.start(now);
    assert_eq!(a.poll_transmit().unwrap(), packet(&v, "S->C", 1));
    a.handle_packet(now, &packet(&v, "C->S", 2)).unwrap();
    let Some(Event::Verify(req)) = a.poll_event() else {
        panic!()
    };
    a.verified(
        now,
        req.id,
        req.credentials.verify_nt_hash(&hash, "Access denied"),
    )
    .unwrap();
    let ours = a.poll_transmit().unwrap();
    let ChapPacket::Failure { id, message } = ChapPacket::parse(&ours).unwrap() else {
        panic!()
    };
    assert_eq!(id, 0x90);
    let f = MsChapV2Failure::parse(message).unwrap();
    assert_eq!(
        (f.error, f.retry, f.version, f.message),
        (691, false, Some(3), &b"Access denied"[..])
    );
    assert!(f.challenge.is_some());
}

// ---------------------------------------------------------------- PAP

#[test]
fn pap_our_peer_request_equals_pppd_and_reads_ack() {
    let v = vectors("01-pap-success");
    let req = packet(&v, "C->S", 1);
    let ack = packet(&v, "S->C", 2);
    assert_eq!(
        PapPacket::parse(&req).unwrap(),
        PapPacket::Request {
            id: 1,
            peer_id: b"alice",
            password: b"s3cret"
        }
    );
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::Pap, peer_config("s3cret")).unwrap();
    p.start(now);
    assert_eq!(p.poll_transmit().unwrap(), req);
    p.handle_packet(now, &ack).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(Event::Succeeded {
            user: b"alice".to_vec(),
            protocol: AuthProtocol::Pap
        })
    );
}

#[test]
fn pap_our_server_answers_like_pppd() {
    for (case, password_ok) in [("01-pap-success", true), ("04-pap-wrong-password", false)] {
        let v = vectors(case);
        let req = packet(&v, "C->S", 1);
        let reply = packet(&v, "S->C", if password_ok { 2 } else { 3 });
        let now = Instant::now();
        let mut cfg = AuthenticatorConfig::new([1; 32]);
        cfg.success_message = "Login ok".into();
        let mut a = Authenticator::new(AuthProtocol::Pap, cfg).unwrap();
        a.start(now);
        a.handle_packet(now, &req).unwrap();
        let Some(Event::Verify(r)) = a.poll_event() else {
            panic!()
        };
        let verdict = r.credentials.verify_password("s3cret", "Login incorrect");
        assert_eq!(
            matches!(verdict, Verdict::Accept { .. }),
            password_ok,
            "{case}"
        );
        a.verified(now, r.id, verdict).unwrap();
        assert_eq!(a.poll_transmit().unwrap(), reply, "{case}");
    }
}

#[test]
fn pap_our_peer_reads_pppd_nak() {
    let v = vectors("04-pap-wrong-password");
    let now = Instant::now();
    let mut p = Peer::new(AuthProtocol::Pap, peer_config("wrong-pw")).unwrap();
    p.start(now);
    assert_eq!(p.poll_transmit().unwrap(), packet(&v, "C->S", 1));
    p.handle_packet(now, &packet(&v, "S->C", 3)).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(Event::Failed {
            user: Some(b"alice".to_vec()),
            protocol: AuthProtocol::Pap,
            reason: FailureReason::Rejected {
                message: "Login incorrect".into(),
                code: None
            }
        })
    );
}
