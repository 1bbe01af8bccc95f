//! The property that matters for a PPP server: `Event::Authenticated` is
//! reported only for a user whose own request the host accepted.
//!
//! A server-role `ppp::Link` is driven by fuzzed input: raw line bytes,
//! well-framed packets of any protocol, time steps, and the output of two
//! honest client links (`alice` and `bob`, both fed everything the server
//! sends), so a run can reach real logins, LCP renegotiations and a second
//! login while the first is being judged. The host's verdicts come in a
//! fuzzed order: accept or reject any request ever asked, pending, answered
//! before, aborted, or never asked, with or without the MS-CHAPv2
//! authenticator response.
//!
//! The target keeps its own model of the requests (by id, with the user each
//! named) and asserts: at most one request is pending; `VerifyAborted` names
//! the pending one; `verified` succeeds only for the pending request and
//! refuses every other as stale; every `Authenticated { user }` rests on an
//! accept, given since the last one, for the request that was pending and
//! named exactly that user.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ppp::auth::{AuthProtocol, Verdict, VerifyId};
use ppp::hdlc::{TxOptions, encode};
use ppp::{Event, Link, LinkConfig, LinkError};

const PROTOCOLS: [u16; 6] = [0xc021, 0xc023, 0xc223, 0x8021, 0x0021, 0x80fd];
/// The most output of one kind the target buffers between deliveries.
const BUFFER_MAX: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Pending,
    Accepted,
    Rejected,
    Aborted,
}

struct Request {
    id: VerifyId,
    user: Vec<u8>,
    state: State,
}

#[derive(Default)]
struct Model {
    requests: Vec<Request>,
    pending: Option<usize>,
    /// The accept the next `Authenticated` may rest on: the request's index.
    accept: Option<usize>,
    authenticated: u32,
}

impl Model {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Verify(v) => {
                assert!(
                    self.pending.is_none(),
                    "a second request while {:?} is pending",
                    self.pending
                );
                assert!(
                    self.requests.iter().all(|r| r.id != v.id),
                    "request id {:?} reused",
                    v.id
                );
                self.pending = Some(self.requests.len());
                self.requests.push(Request {
                    id: v.id,
                    user: v.credentials.user().to_vec(),
                    state: State::Pending,
                });
            }
            Event::VerifyAborted(id) => {
                let i = self.pending.take().expect("an abort with nothing pending");
                assert_eq!(self.requests[i].id, *id, "the abort names another request");
                self.requests[i].state = State::Aborted;
            }
            Event::Authenticated { user, .. } => {
                let i = self
                    .accept
                    .take()
                    .unwrap_or_else(|| panic!("{user:?} authenticated without an accept"));
                assert_eq!(
                    &self.requests[i].user, user,
                    "authenticated as {:?} on the accept of {:?}'s request",
                    user, self.requests[i].user
                );
                self.authenticated += 1;
            }
            Event::Down { .. } => {
                assert!(self.pending.is_none(), "down with a request still pending");
            }
            _ => {}
        }
    }
}

fn drain(link: &mut Link, model: &mut Model, out: &mut Vec<u8>) {
    while let Some(e) = link.poll_event() {
        model.event(&e);
    }
    while let Some(b) = link.poll_transmit() {
        if out.len() + b.len() <= BUFFER_MAX {
            out.extend_from_slice(&b);
        }
    }
    // The queue holds at most its bound plus one frame (at most twice a
    // full 1500-octet frame when every octet is escaped).
    assert!(link.pending_tx_bytes() <= link.tx_queue_max() + 2 * 1600);
}

fn helper_output(h: &mut Link, buf: &mut Vec<u8>) {
    while h.poll_event().is_some() {}
    while let Some(b) = h.poll_transmit() {
        if buf.len() + b.len() <= BUFFER_MAX {
            buf.extend_from_slice(&b);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let auth = match sel % 4 {
        0 => vec![AuthProtocol::Pap],
        1 => vec![AuthProtocol::ChapMd5],
        2 => vec![AuthProtocol::MsChapV2],
        _ => vec![
            AuthProtocol::MsChapV2,
            AuthProtocol::ChapMd5,
            AuthProtocol::Pap,
        ],
    };
    let mut cfg = LinkConfig::server(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), auth);
    if let Some(a) = cfg.authenticator.as_mut() {
        a.max_attempts = 1 + u32::from((sel >> 2) & 3);
    }
    let mut now = Instant::now();
    let Ok(mut link) = Link::new(cfg, now, Box::new(|b: &mut [u8]| b.fill(0x11))) else {
        return;
    };
    let fill = |v: u8| Box::new(move |b: &mut [u8]| b.fill(v));
    let mut helpers = [
        Link::new(
            LinkConfig::client(Some((b"alice", "alice-pw"))),
            now,
            fill(0x22),
        )
        .expect("client config"),
        Link::new(
            LinkConfig::client(Some((b"bob", "bob-pw"))),
            now,
            fill(0x33),
        )
        .expect("client config"),
    ];
    let opts = TxOptions {
        accm: 0xffff_ffff,
        acfc: sel & 0x10 != 0,
        pfc: sel & 0x20 != 0,
    };
    let mut model = Model::default();
    // Server output not yet shown to the helpers, and each helper's output
    // not yet given to the server.
    let mut to_helpers = Vec::new();
    let mut from_helper = [Vec::new(), Vec::new()];

    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        match kind % 8 {
            0 => link.handle_input(now, body),
            1 => {
                now += Duration::from_millis(u64::from(*len) * 100);
                link.handle_timeout(now);
                for h in &mut helpers {
                    h.handle_timeout(now);
                }
            }
            // A helper talks: everything the server said reaches both
            // helpers, then this helper's output reaches the server.
            2 | 3 => {
                let h = usize::from(kind % 8 - 2);
                for (hl, buf) in helpers.iter_mut().zip(from_helper.iter_mut()) {
                    hl.handle_input(now, &to_helpers);
                    helper_output(hl, buf);
                }
                to_helpers.clear();
                let b = std::mem::take(&mut from_helper[h]);
                link.handle_input(now, &b);
            }
            // A verdict, for any request ever asked (or one never asked).
            4 | 5 => {
                let accept = kind % 8 == 4;
                let pick = usize::from(*len);
                let (id, index) = if model.requests.is_empty() || pick == 255 {
                    (VerifyId(u64::from(*len) + 1000), None)
                } else {
                    let i = model.requests.len() - 1 - pick % model.requests.len();
                    (model.requests[i].id, Some(i))
                };
                let verdict = if accept {
                    let mut ar = [0u8; 20];
                    for (o, i) in ar.iter_mut().zip(body) {
                        *o = *i;
                    }
                    Verdict::Accept {
                        authenticator_response: (body.first() != Some(&0)).then_some(ar),
                    }
                } else {
                    Verdict::reject("no")
                };
                let is_pending = index.is_some() && index == model.pending;
                match link.verified(now, id, verdict) {
                    Ok(()) => {
                        let i = index.expect("a verdict for a request never asked was taken");
                        assert!(
                            is_pending,
                            "a verdict for request {:?} ({:?}) was taken",
                            id, model.requests[i].state
                        );
                        model.pending = None;
                        if accept {
                            model.requests[i].state = State::Accepted;
                            model.accept = Some(i);
                        } else {
                            model.requests[i].state = State::Rejected;
                            model.accept = None;
                        }
                    }
                    Err(LinkError::StaleVerdict(s)) => {
                        assert_eq!(s, id);
                        assert!(
                            !is_pending,
                            "the pending request's verdict was refused as stale"
                        );
                    }
                    Err(LinkError::Auth(_)) => {
                        // An MS-CHAPv2 Accept without the authenticator
                        // response: refused, still pending.
                        assert!(is_pending);
                        assert_eq!(link.pending_verify(), Some(id));
                    }
                    Err(e) => panic!("verified: {e}"),
                }
            }
            6 => {
                let _ = link.send_ip(body);
            }
            _ => {
                let proto = PROTOCOLS[usize::from(*len) % PROTOCOLS.len()];
                link.handle_input(now, &encode(proto, body, opts));
            }
        }
        drain(&mut link, &mut model, &mut to_helpers);
        // An accept counts only for the `Authenticated` it produced at once.
        model.accept = None;
        let want = model.pending.map(|i| model.requests[i].id);
        assert_eq!(link.pending_verify(), want, "the link's pending request");
    }
    link.close(now, "fuzz done");
    drain(&mut link, &mut model, &mut to_helpers);
});
