//! Arbitrary bytes into every PPP authentication parser, and into the
//! handle_packet of each machine (PAP, CHAP-MD5, MS-CHAPv2; authenticator
//! and peer roles), with time advancing and verdicts interleaved.
//!
//! Input: the whole input goes through every parser. Then octet 0 picks the
//! protocol, and the rest is a script of records `op len data...`:
//! op % 6 == 0/1: packet of `len` octets to the authenticator / peer;
//! 2: advance the clock `len * 100` ms; 3: Accept (MS-CHAPv2 with a
//! response value from the data); 4: Reject; 5: a real peer answers the
//! authenticator's last packet, octet `len` XORed with the next octet.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::auth::{
    AuthProtocol, Authenticator, AuthenticatorConfig, ChapPacket, MsChapV2Failure,
    MsChapV2Response, MsChapV2Success, PapPacket, Peer, PeerConfig, Verdict,
};

fn parsers(data: &[u8]) {
    let _ = PapPacket::parse(data);
    let _ = ChapPacket::parse(data);
    let _ = MsChapV2Response::parse(data);
    let _ = MsChapV2Success::parse(data);
    let _ = MsChapV2Failure::parse(data);
    let _ = AuthProtocol::from_lcp_option_data(data);
    if let Ok(p) = ChapPacket::parse(data) {
        let enc = p.encode().expect("a parsed CHAP packet re-encodes");
        assert_eq!(ChapPacket::parse(&enc).expect("re-parses"), p);
    }
    if let Ok(p) = PapPacket::parse(data) {
        let enc = p.encode().expect("a parsed PAP packet re-encodes");
        assert_eq!(PapPacket::parse(&enc).expect("re-parses"), p);
    }
}

fuzz_target!(|data: &[u8]| {
    parsers(data);
    let Some((&sel, mut script)) = data.split_first() else {
        return;
    };
    let proto = [
        AuthProtocol::Pap,
        AuthProtocol::ChapMd5,
        AuthProtocol::MsChapV2,
    ][usize::from(sel % 3)];
    let mut now = Instant::now();
    let mut cfg = AuthenticatorConfig::new([sel; 32]);
    cfg.max_attempts = 1 + u32::from(sel >> 6);
    if sel & 0x08 != 0 {
        cfg.rechallenge_interval = Some(Duration::from_secs(5));
    }
    let mut a = Authenticator::new(proto, cfg).expect("valid config");
    let mut p = Peer::new(proto, PeerConfig::new(b"alice", "s3cret", [sel ^ 0xff; 32]))
        .expect("valid config");
    let mut helper =
        Peer::new(proto, PeerConfig::new(b"alice", "s3cret", [7; 32])).expect("valid config");
    a.start(now);
    p.start(now);
    helper.start(now);
    let mut last_a: Option<Vec<u8>> = None;
    while let [op, len, rest @ ..] = script {
        let n = usize::from(*len).min(rest.len());
        let (chunk, after) = rest.split_at(n);
        match op % 6 {
            0 => {
                let _ = a.handle_packet(now, chunk);
            }
            1 => {
                let _ = p.handle_packet(now, chunk);
            }
            2 => {
                now += Duration::from_millis(u64::from(*len) * 100);
                a.handle_timeout(now);
                p.handle_timeout(now);
                helper.handle_timeout(now);
            }
            3 => {
                let mut ar = [0u8; 20];
                for (o, i) in ar.iter_mut().zip(chunk) {
                    *o = *i;
                }
                let pending = a.verification_pending();
                let id = a.pending_verify_id().unwrap_or(ppp::auth::VerifyId(u64::MAX));
                let r = a.verified(
                    now,
                    id,
                    Verdict::Accept {
                        authenticator_response: Some(ar),
                    },
                );
                assert_eq!(r.is_ok(), pending);
            }
            4 => {
                let pending = a.verification_pending();
                let msg = String::from_utf8_lossy(chunk).into_owned();
                let id = a.pending_verify_id().unwrap_or(ppp::auth::VerifyId(u64::MAX));
                assert_eq!(a.verified(now, id, Verdict::reject(&msg)).is_ok(), pending);
            }
            _ => {
                if let Some(pkt) = &last_a {
                    let _ = helper.handle_packet(now, pkt);
                }
                let x = chunk.first().copied().unwrap_or(0);
                while let Some(mut ans) = helper.poll_transmit() {
                    if let Some(b) = ans.get_mut(usize::from(*len)) {
                        *b ^= x;
                    }
                    let _ = a.handle_packet(now, &ans);
                }
                while helper.poll_event().is_some() {}
            }
        }
        script = after;
        while let Some(pkt) = a.poll_transmit() {
            let _ = p.handle_packet(now, &pkt);
            last_a = Some(pkt);
        }
        while let Some(pkt) = p.poll_transmit() {
            let _ = a.handle_packet(now, &pkt);
        }
        while a.poll_event().is_some() {}
        while p.poll_event().is_some() {}
        if let Some(t) = a.poll_timeout() {
            assert!(t > now, "authenticator timer in the past");
        }
        if let Some(t) = p.poll_timeout() {
            assert!(t > now, "peer timer in the past");
        }
    }
});
