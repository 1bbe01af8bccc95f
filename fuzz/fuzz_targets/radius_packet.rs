#![no_main]
//! RADIUS codec and client: parse arbitrary datagrams, check that a parsed
//! packet re-encodes to its own octets, run the authenticator checks, and
//! feed the datagram to a client with a request in flight (as is, and with
//! its identifier patched to match so it reaches the authenticator checks).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use radius::{
    Attribute, Client, ClientConfig, RawPacket, Request, ServerConfig, unhide_password,
    verify_access_request, verify_accounting_request, verify_response,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = RawPacket::parse(data) {
        let p = raw.to_packet();
        assert_eq!(p.encode().expect("parsed packet re-encodes"), raw.bytes());
        let _ = verify_response(&raw, &[0; 16], b"secret", true);
        let _ = verify_access_request(&raw, b"secret", true);
        let _ = verify_accounting_request(&raw, b"secret");
        for a in &p.attributes {
            if let Attribute::UserPassword(h) = a {
                let _ = unhide_password(h, b"secret", &p.authenticator);
            }
        }
    }

    let server: SocketAddr = ([127, 0, 0, 1], 1812).into();
    let mut cfg = ClientConfig::new(vec![ServerConfig {
        addr: server,
        secret: b"secret".to_vec(),
    }]);
    cfg.timeout = Duration::from_secs(1);
    cfg.require_message_authenticator = if data.first().is_some_and(|b| b & 1 == 1) {
        radius::RequireMessageAuthenticator::Always
    } else {
        radius::RequireMessageAuthenticator::Never
    };
    let mut client = Client::new(cfg).expect("valid config");
    let now = Instant::now();
    let request = if data.get(1).is_some_and(|b| b & 1 == 1) {
        Request::accounting(vec![Attribute::AcctSessionId(b"s".to_vec())])
    } else {
        Request::access(vec![Attribute::UserName(b"u".to_vec())]).with_password(b"p")
    };
    client.send_request(now, request, [7; 16]).expect("valid request");
    let (_, sent) = client.poll_transmit().expect("first transmission");
    client.handle_datagram(now, server, data);
    let mut patched = data.to_vec();
    if let (Some(id), Some(&sid)) = (patched.get_mut(1), sent.get(1)) {
        *id = sid;
    }
    client.handle_datagram(now, server, &patched);
    client.handle_timeout(now + Duration::from_secs(5));
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
});
