//! Codec tests: RFC 2865 §7 example packets, authenticators, round trips,
//! and proptests that parsing never panics.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use radius::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).unwrap()
}

// RFC 2865 §7.1: User "nemo", password "arctangent", secret "xyzzy5461".
const RFC_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
    93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
    01 10 05 06 00 00 00 03";
const RFC_7_1_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
    0e 06 c0 a8 01 03";
// RFC 2865 §7.2: CHAP request from "flopsy".
const RFC_7_2_REQUEST: &str = "01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
    0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
    75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
    06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
    02 07 06 00 00 00 01";
// RFC 2865 §7.3: Access-Challenge.
const RFC_7_3_CHALLENGE: &str = "0b 02 00 4e 36 f3 c8 76 4a e8 c7 11 57 40 3c 0c
    71 ff 9c 45 12 30 43 68 61 6c 6c 65 6e 67 65 20
    33 32 37 36 39 34 33 30 2e 20 20 45 6e 74 65 72
    20 72 65 73 70 6f 6e 73 65 20 61 74 20 70 72 6f
    6d 70 74 2e 18 0a 33 32 37 36 39 34 33 30";

const SECRET_7: &[u8] = b"xyzzy5461";

#[test]
fn rfc2865_7_1_request_and_password() {
    let bytes = hex(RFC_7_1_REQUEST);
    let p = Packet::decode(&bytes).unwrap();
    assert_eq!(p.code, Code::AccessRequest);
    assert_eq!(p.identifier, 0);
    assert_eq!(
        p.attributes,
        vec![
            Attribute::UserName(b"nemo".to_vec()),
            Attribute::UserPassword(hex("0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee")),
            Attribute::NasIpAddress(Ipv4Addr::new(192, 168, 1, 16)),
            Attribute::NasPort(3),
        ]
    );
    assert_eq!(p.encode().unwrap(), bytes);
    let Attribute::UserPassword(hidden) = &p.attributes[1] else {
        panic!("no password")
    };
    assert_eq!(
        unhide_password(hidden, SECRET_7, &p.authenticator).unwrap(),
        b"arctangent"
    );
    assert_eq!(
        &hide_password(b"arctangent", SECRET_7, &p.authenticator).unwrap(),
        hidden
    );
}

#[test]
fn rfc2865_7_1_response_authenticator() {
    let req = Packet::decode(&hex(RFC_7_1_REQUEST)).unwrap();
    let accept = hex(RFC_7_1_ACCEPT);
    let raw = RawPacket::parse(&accept).unwrap();
    assert_eq!(raw.code(), Code::AccessAccept);
    assert_eq!(
        verify_response(&raw, &req.authenticator, SECRET_7, false),
        Ok(())
    );
    // The RFC example has no Message-Authenticator: refused when required.
    assert_eq!(
        verify_response(&raw, &req.authenticator, SECRET_7, true),
        Err(VerifyError::MissingMessageAuthenticator)
    );
    assert_eq!(
        verify_response(&raw, &req.authenticator, b"wrong", false),
        Err(VerifyError::BadAuthenticator)
    );
    // Building the same reply gives the RFC's bytes.
    let attrs = Packet::decode(&accept).unwrap().attributes;
    assert_eq!(
        attrs,
        vec![
            Attribute::ServiceType(values::service_type::LOGIN),
            Attribute::Other {
                typ: 15,
                value: vec![0, 0, 0, 0]
            },
            Attribute::Other {
                typ: 14,
                value: vec![192, 168, 1, 3]
            },
        ]
    );
    let built = encode_response(
        Code::AccessAccept,
        0,
        &req.authenticator,
        &attrs,
        SECRET_7,
        false,
    )
    .unwrap();
    assert_eq!(built, accept);
    // Any flipped octet breaks the check.
    for i in 0..accept.len() {
        let mut t = accept.clone();
        t[i] ^= 0x01;
        if let Ok(raw) = RawPacket::parse(&t) {
            assert!(verify_response(&raw, &req.authenticator, SECRET_7, false).is_err());
        }
    }
}

#[test]
fn rfc2865_7_2_chap_request() {
    let bytes = hex(RFC_7_2_REQUEST);
    let p = Packet::decode(&bytes).unwrap();
    assert_eq!(p.identifier, 1);
    assert_eq!(p.attributes[0], Attribute::UserName(b"flopsy".to_vec()));
    assert!(matches!(
        p.attributes[1],
        Attribute::ChapPassword { ident: 22, .. }
    ));
    assert_eq!(p.attributes[3], Attribute::NasPort(20));
    assert_eq!(
        p.attributes[4],
        Attribute::ServiceType(values::service_type::FRAMED)
    );
    assert_eq!(
        p.attributes[5],
        Attribute::FramedProtocol(values::framed_protocol::PPP)
    );
    assert_eq!(p.encode().unwrap(), bytes);
}

#[test]
fn rfc2865_7_3_challenge() {
    let bytes = hex(RFC_7_3_CHALLENGE);
    let p = Packet::decode(&bytes).unwrap();
    assert_eq!(p.code, Code::AccessChallenge);
    assert_eq!(
        p.attributes,
        vec![
            Attribute::ReplyMessage(b"Challenge 32769430.  Enter response at prompt.".to_vec()),
            Attribute::State(b"32769430".to_vec()),
        ]
    );
    assert_eq!(p.encode().unwrap(), bytes);
}

/// Expected bytes computed independently with Python's `hashlib`/`hmac`
/// (MD5 password hiding, HMAC-MD5 over the packet with the
/// Message-Authenticator zeroed), secret "testing123".
#[test]
fn message_authenticator_known_value() {
    let auth: [u8; 16] = core::array::from_fn(|i| i as u8);
    let pkt = encode_access_request(
        0x2a,
        &auth,
        &[
            Attribute::UserName(b"alice".to_vec()),
            Attribute::NasIdentifier(b"dialgate".to_vec()),
        ],
        Some(b"alicepass"),
        b"testing123",
    )
    .unwrap();
    assert_eq!(
        hex::encode(&pkt),
        "012a0049000102030405060708090a0b0c0d0e0f5012a48fb276f2e4e533f372c67ae5e9ff32\
         0107616c696365200a6469616c676174650212f78260a9118d1b69634607240014828b"
    );
    let raw = RawPacket::parse(&pkt).unwrap();
    assert_eq!(verify_access_request(&raw, b"testing123", true), Ok(()));
    assert_eq!(
        verify_access_request(&raw, b"other", true),
        Err(VerifyError::BadMessageAuthenticator)
    );
    // The Message-Authenticator is HMAC-MD5(secret, packet with it zeroed).
    let mut zeroed = pkt.clone();
    zeroed[22..38].fill(0);
    assert_eq!(hmac_md5(b"testing123", &zeroed)[..], pkt[22..38]);
}

/// Expected bytes computed independently with Python's `hashlib`.
#[test]
fn accounting_request_authenticator_known_value() {
    let pkt = encode_accounting_request(
        7,
        &[
            Attribute::AcctStatusType(values::acct_status_type::START),
            Attribute::AcctSessionId(b"sess-0001".to_vec()),
            Attribute::UserName(b"alice".to_vec()),
        ],
        b"testing123",
    )
    .unwrap();
    assert_eq!(
        hex::encode(&pkt),
        "0407002c2f9c0253dedd0666cd4c4f95b6a4c6cb2806000000012c0b736573732d303030310107616c696365"
    );
    let raw = RawPacket::parse(&pkt).unwrap();
    assert_eq!(verify_accounting_request(&raw, b"testing123"), Ok(()));
    assert_eq!(
        verify_accounting_request(&raw, b"x"),
        Err(VerifyError::BadAuthenticator)
    );
}

#[test]
fn response_message_authenticator() {
    let req_auth = [7u8; 16];
    let attrs = [Attribute::ReplyMessage(b"hi".to_vec())];
    let pkt = encode_response(Code::AccessAccept, 3, &req_auth, &attrs, b"s3cret", true).unwrap();
    let raw = RawPacket::parse(&pkt).unwrap();
    assert_eq!(verify_response(&raw, &req_auth, b"s3cret", true), Ok(()));
    assert_eq!(
        raw.attributes().next().unwrap().typ,
        types::MESSAGE_AUTHENTICATOR
    );
    // Tamper with the Message-Authenticator and fix up the Response
    // Authenticator, as an attacker who cannot compute the HMAC would.
    let mut bad = pkt.clone();
    bad[30] ^= 0xff;
    let mut fix = bad.clone();
    fix[4..20].copy_from_slice(&req_auth);
    fix.extend_from_slice(b"s3cret");
    let d = md5_of(&fix);
    bad[4..20].copy_from_slice(&d);
    let raw = RawPacket::parse(&bad).unwrap();
    assert_eq!(
        verify_response(&raw, &req_auth, b"s3cret", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
    // A Message-Authenticator of the wrong size, or two of them, is refused.
    let two = encode_response(
        Code::AccessAccept,
        3,
        &req_auth,
        &[Attribute::Other {
            typ: 80,
            value: vec![0; 15],
        }],
        b"s3cret",
        false,
    )
    .unwrap();
    let raw = RawPacket::parse(&two).unwrap();
    assert_eq!(
        verify_response(&raw, &req_auth, b"s3cret", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
    let two = encode_response(
        Code::AccessAccept,
        3,
        &req_auth,
        &[Attribute::Other {
            typ: 80,
            value: vec![0; 16],
        }],
        b"s3cret",
        true,
    )
    .unwrap();
    let raw = RawPacket::parse(&two).unwrap();
    assert_eq!(raw.attributes().filter(|a| a.typ == 80).count(), 2);
    assert_eq!(
        verify_response(&raw, &req_auth, b"s3cret", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

#[test]
fn password_hiding_all_lengths() {
    let ra = [0x5a; 16];
    for len in 0..=128usize {
        let pw: Vec<u8> = (0..len).map(|i| (i % 250 + 1) as u8).collect();
        let hidden = hide_password(&pw, b"secret", &ra).unwrap();
        assert_eq!(hidden.len(), len.div_ceil(16).max(1) * 16);
        assert_eq!(unhide_password(&hidden, b"secret", &ra).unwrap(), pw);
    }
    assert_eq!(
        hide_password(&[1; 129], b"s", &ra),
        Err(EncodeError::PasswordTooLong(129))
    );
    assert_eq!(
        unhide_password(&[0; 15], b"s", &ra),
        Err(PasswordLengthError(15))
    );
    assert_eq!(unhide_password(&[], b"s", &ra), Err(PasswordLengthError(0)));
    assert_eq!(
        unhide_password(&[0; 144], b"s", &ra),
        Err(PasswordLengthError(144))
    );
}

#[test]
fn framing_errors_and_padding() {
    assert_eq!(RawPacket::parse(&[1, 2, 3]), Err(ParseError::TooShort(3)));
    let mut b = vec![1, 0, 0, 19];
    b.extend_from_slice(&[0; 16]);
    assert_eq!(RawPacket::parse(&b), Err(ParseError::BadLength(19)));
    b[2..4].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(RawPacket::parse(&b), Err(ParseError::BadLength(4097)));
    b[2..4].copy_from_slice(&24u16.to_be_bytes());
    assert_eq!(
        RawPacket::parse(&b),
        Err(ParseError::Truncated {
            length: 24,
            got: 20
        })
    );
    b.extend_from_slice(&[1, 1, 0, 0]);
    assert_eq!(RawPacket::parse(&b), Err(ParseError::BadAttribute(20)));
    b[21] = 5;
    assert_eq!(RawPacket::parse(&b), Err(ParseError::BadAttribute(20)));
    b[21] = 4;
    let p = RawPacket::parse(&b).unwrap();
    assert_eq!(p.attributes().count(), 1);
    // Octets past Length are padding and ignored.
    b.extend_from_slice(&[9, 9, 9]);
    assert_eq!(RawPacket::parse(&b).unwrap().bytes().len(), 24);
    // Errors name the problem.
    assert!(
        ParseError::BadAttribute(20)
            .to_string()
            .contains("offset 20")
    );
}

#[test]
fn encode_limits() {
    let p = Packet {
        code: Code::AccessAccept,
        identifier: 1,
        authenticator: [0; 16],
        attributes: vec![Attribute::ReplyMessage(vec![b'x'; 254])],
    };
    assert_eq!(
        p.encode(),
        Err(EncodeError::BadValueLength { typ: 18, len: 254 })
    );
    let p = Packet {
        attributes: vec![Attribute::ReplyMessage(vec![b'x'; 253]); 17],
        ..p
    };
    assert_eq!(p.encode(), Err(EncodeError::PacketTooLong(20 + 17 * 255)));
    // A caller-given Message-Authenticator is replaced, never duplicated.
    let pkt = encode_access_request(
        1,
        &[1; 16],
        &[Attribute::MessageAuthenticator([9; 16])],
        None,
        b"s",
    )
    .unwrap();
    assert_eq!(pkt.len(), 38);
    let raw = RawPacket::parse(&pkt).unwrap();
    assert_eq!(verify_access_request(&raw, b"s", true), Ok(()));
}

#[test]
fn chap_response_known_value() {
    // MD5(ident || secret || challenge) (RFC 1994 §4.1), computed
    // independently with Python: md5(b"\x01" + b"alicepass" + bytes(range(16))).
    let challenge: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(
        hex::encode(chap_response(1, b"alicepass", &challenge)),
        "99636d62136b5c47971fe069cd180ca9"
    );
}

fn arb_attribute() -> impl Strategy<Value = Attribute> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(t, v)| Attribute::decode(t, &v))
}

proptest! {
    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(raw) = RawPacket::parse(&data) {
            let p = raw.to_packet();
            // A parsed packet re-encodes to exactly its Length octets.
            prop_assert_eq!(p.encode().unwrap(), raw.bytes().to_vec());
            let _ = verify_response(&raw, &[0; 16], b"s", true);
            let _ = verify_access_request(&raw, b"s", true);
            let _ = verify_accounting_request(&raw, b"s");
        }
    }

    #[test]
    fn header_with_random_attributes_never_panics(
        code in any::<u8>(), id in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut d = vec![code, id];
        d.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        d.extend_from_slice(&[0; 16]);
        d.extend_from_slice(&body);
        if let Ok(raw) = RawPacket::parse(&d) {
            prop_assert_eq!(raw.to_packet().encode().unwrap(), d);
        }
    }

    #[test]
    fn typed_round_trip(attrs in proptest::collection::vec(arb_attribute(), 0..20), id in any::<u8>()) {
        let p = Packet { code: Code::AccessAccept, identifier: id, authenticator: [3; 16], attributes: attrs };
        let bytes = p.encode().unwrap();
        prop_assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn password_round_trip(pw in proptest::collection::vec(1u8..=255, 0..=128),
                           secret in proptest::collection::vec(any::<u8>(), 1..40),
                           ra in any::<[u8; 16]>()) {
        let h = hide_password(&pw, &secret, &ra).unwrap();
        prop_assert_eq!(unhide_password(&h, &secret, &ra).unwrap(), pw);
    }

    #[test]
    fn unhide_never_panics(h in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = unhide_password(&h, b"s", &[0; 16]);
    }
}
