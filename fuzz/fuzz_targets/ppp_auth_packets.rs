//! Arbitrary bytes into every PPP authentication parser, and into the
//! handle_packet of each machine (PAP, CHAP-MD5, MS-CHAPv2; authenticator
//! and peer roles), with time advancing and verdicts interleaved; and the
//! property that matters: the authenticator reports success only for the
//! user of the request the host just accepted.
//!
//! Input: the whole input goes through every parser. Then octet 0 picks the
//! protocol, and the rest is a script of records `op len data...`:
//! op % 7 == 0/1: packet of `len` octets to the authenticator / peer;
//! 2: advance the clock `len * 100` ms; 3: Accept (MS-CHAPv2 with a
//! response value from the data); 4: Reject; 3 and 4 go to the pending
//! request or, by the first data octet, to a stale or unknown id;
//! 5: a real peer (`alice`) answers the authenticator's last packet, octet
//! `len` XORed with the next octet; 6: the host judges the pending request
//! honestly (`Credentials::verify_password` with alice's password).
//!
//! Asserted on the authenticator's events and answers: at most one request
//! is pending and ids only grow; `verified` takes a verdict only for the
//! pending request and refuses every other as `StaleVerdict`; every
//! `Succeeded { user }` comes right after an accept of the pending request,
//! and names that request's user.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::auth::{
    AuthError, AuthProtocol, Authenticator, AuthenticatorConfig, ChapPacket, Event,
    MsChapV2Failure, MsChapV2Response, MsChapV2Success, PapPacket, Peer, PeerConfig, Verdict,
    VerifyId, VerifyRequest,
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

/// What the target knows of the authenticator's requests.
#[derive(Default)]
struct Model {
    /// The request awaiting a verdict.
    pending_request: Option<VerifyRequest>,
    /// The newest request id seen.
    last_id: Option<VerifyId>,
    /// The user of the request just accepted: the only one a success may
    /// name, and only right after the accept.
    accept: Option<Vec<u8>>,
}

impl Model {
    fn event(&mut self, e: Event) {
        match e {
            Event::Verify(v) => {
                assert!(self.pending_request.is_none(), "two requests pending");
                if let Some(l) = self.last_id {
                    assert!(v.id > l, "request id {:?} not after {:?}", v.id, l);
                }
                self.last_id = Some(v.id);
                self.pending_request = Some(v);
            }
            Event::Succeeded { user, .. } => {
                let a = self
                    .accept
                    .take()
                    .unwrap_or_else(|| panic!("{user:?} succeeded without an accept"));
                assert_eq!(a, user, "succeeded as another user than the one accepted");
            }
            Event::Failed { .. } => {}
        }
    }

    /// `verified(id, accept?)` returned `r` while `pending` was pending.
    fn answered(
        &mut self,
        pending: Option<VerifyId>,
        id: VerifyId,
        accept: bool,
        r: Result<(), AuthError>,
    ) {
        assert_eq!(
            pending,
            self.pending_request.as_ref().map(|p| p.id),
            "the authenticator's pending request"
        );
        match r {
            Ok(()) => {
                assert_eq!(
                    Some(id),
                    pending,
                    "a verdict for a request not pending was taken"
                );
                let req = self.pending_request.take().expect("pending");
                self.accept = accept.then(|| req.credentials.user().to_vec());
            }
            Err(AuthError::StaleVerdict) => {
                assert_ne!(
                    Some(id),
                    pending,
                    "the pending request's verdict refused as stale"
                );
            }
            Err(AuthError::Misuse(_)) => {
                // An MS-CHAPv2 Accept without the authenticator response.
                assert_eq!(Some(id), pending);
            }
            Err(e) => panic!("verified: {e}"),
        }
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
    let mut model = Model::default();
    while let [op, len, rest @ ..] = script {
        let n = usize::from(*len).min(rest.len());
        let (chunk, after) = rest.split_at(n);
        match op % 7 {
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
            3 | 4 => {
                // A verdict: for the pending request, or (low bits of the
                // first data octet) for a stale or unknown id.
                let pending = a.pending_verify_id();
                let skew = chunk.first().copied().unwrap_or(0) % 4;
                let id = match (pending, skew) {
                    (Some(p), 0) => p,
                    (Some(p), 1) => VerifyId(p.0.wrapping_sub(1)),
                    (Some(p), 2) => VerifyId(p.0.wrapping_add(1)),
                    (None, 0) => model.last_id.unwrap_or(VerifyId(0)),
                    _ => VerifyId(u64::from(*len) << 8),
                };
                let verdict = if op % 7 == 3 {
                    let mut ar = [0u8; 20];
                    for (o, i) in ar.iter_mut().zip(chunk) {
                        *o = *i;
                    }
                    Verdict::Accept {
                        authenticator_response: Some(ar),
                    }
                } else {
                    Verdict::reject(&String::from_utf8_lossy(chunk))
                };
                let accept = matches!(verdict, Verdict::Accept { .. });
                let r = a.verified(now, id, verdict);
                model.answered(pending, id, accept, r);
            }
            6 => {
                // The host judges the pending request honestly: alice's
                // password is `s3cret`.
                if let Some(req) = model.pending_request.clone() {
                    let verdict = req.credentials.verify_password("s3cret", "wrong password");
                    let accept = matches!(verdict, Verdict::Accept { .. });
                    let r = a.verified(now, req.id, verdict);
                    model.answered(Some(req.id), req.id, accept, r);
                }
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
        while let Some(e) = a.poll_event() {
            model.event(e);
        }
        // An accept counts only for the success it produced at once.
        model.accept = None;
        while p.poll_event().is_some() {}
        if let Some(t) = a.poll_timeout() {
            assert!(t > now, "authenticator timer in the past");
        }
        if let Some(t) = p.poll_timeout() {
            assert!(t > now, "peer timer in the past");
        }
    }
});
