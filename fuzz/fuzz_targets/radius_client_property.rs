//! The property of the RADIUS client that matters: no reply becomes an
//! outcome (above all an Access-Accept) unless it is a genuine answer to a
//! request the client has in flight.
//!
//! A `radius::Client` with two servers (different secrets) is driven by a
//! fuzzed script: start requests (Access and Accounting, sometimes hundreds,
//! so identifiers run out and requests queue), deliver fuzzed datagrams
//! from either server or a stranger, deliver replies the target builds
//! itself from fuzzed parts (right or wrong code, identifier, secret,
//! Response Authenticator, Message-Authenticator, sender, padding), replay
//! them, advance time (retransmission, failover, timeouts) and cancel
//! requests.
//!
//! The target keeps its own model: which request each transmitted packet
//! is (by the tag in its User-Name / Acct-Session-Id), and which (server,
//! identifier) pairs are live. It checks every datagram against that model
//! with its own MD5/HMAC-MD5 (RFC 2865 §3, RFC 3579 §3.2), independent of
//! the crate's code, and asserts that the client produces an outcome for a
//! datagram if and only if the datagram is valid for a live request, and
//! that the outcome is for that request and matches the reply's code. An
//! Access reply without a Message-Authenticator is valid only when the
//! configuration does not require one (`Always`: never valid; `Auto`:
//! valid until that server sent a genuine signed reply; `Never`: valid). An identifier is never in use twice on
//! one server, every request ends at most once, and only a timer ends one
//! with `Timeout`.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use radius::{
    Attribute, Client, ClientConfig, Outcome, Request, RequestId, RequireMessageAuthenticator,
    ServerConfig,
};

const SECRETS: [&[u8]; 2] = [b"first-shared-secret", b"2nd"];
/// The tag attribute of our requests: User-Name (Access), Acct-Session-Id
/// (Accounting).
const USER_NAME: u8 = 1;
const ACCT_SESSION_ID: u8 = 44;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const MAX_REQUESTS: usize = 600;
const TIMEOUT: Duration = Duration::from_secs(1);

fn addrs() -> [SocketAddr; 3] {
    [
        ([127, 0, 0, 1], 1812).into(),
        ([127, 0, 0, 2], 1812).into(),
        // Not a server.
        ([127, 0, 0, 3], 1812).into(),
    ]
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 2104 HMAC-MD5, written here so the check does not trust the crate.
fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&md5(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = md5(&[&ipad, msg]);
    md5(&[&opad, &inner])
}

/// Attributes of a packet body as (type, offset of the type octet, value),
/// or `None` if the framing is broken.
fn attributes(packet: &[u8]) -> Option<Vec<(u8, usize, &[u8])>> {
    let mut out = Vec::new();
    let mut off = 20;
    while off < packet.len() {
        let typ = packet[off];
        let len = usize::from(*packet.get(off + 1)?);
        if len < 2 || off + len > packet.len() {
            return None;
        }
        out.push((typ, off, &packet[off + 2..off + len]));
        off += len;
    }
    Some(out)
}

/// The packet within a datagram (RFC 2865 §3: octets past Length are
/// padding), if its header and attribute framing are sound.
fn framed(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.len() < 20 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(20..=4096).contains(&len) || len > datagram.len() {
        return None;
    }
    let p = &datagram[..len];
    attributes(p)?;
    Some(p)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Access,
    Accounting,
}

struct Req {
    id: RequestId,
    kind: Kind,
    done: bool,
}

/// A transmitted packet still waiting for its answer.
#[derive(Clone, Copy)]
struct Live {
    /// Index into `Model::reqs`.
    req: usize,
    /// The Request Authenticator of the packet as sent.
    auth: [u8; 16],
    /// When the client gives up on this transmission (RFC 2865 §2.5: it
    /// resends, fails over or times out; a reply after that answers
    /// nothing pending).
    deadline: Instant,
}

struct Model {
    reqs: Vec<Req>,
    by_id: HashMap<RequestId, usize>,
    /// (server index, identifier) -> the request it was last sent for.
    live: BTreeMap<(usize, u8), Live>,
    require_ma: RequireMessageAuthenticator,
    /// Per server: it has sent a genuine reply with a Message-Authenticator
    /// (`Auto` requires one from then on).
    signs: [bool; 2],
}

impl Model {
    /// Takes note of a datagram the client sent.
    fn sent(&mut self, now: Instant, to: SocketAddr, packet: &[u8]) {
        let servers = addrs();
        let server = servers[..2]
            .iter()
            .position(|a| *a == to)
            .expect("the client sends only to its servers");
        let p = framed(packet).expect("the client sends well-framed packets");
        assert_eq!(p.len(), packet.len());
        let attrs = attributes(p).expect("framed");
        let (tag_type, kind) = match p[0] {
            1 => (USER_NAME, Kind::Access),
            4 => (ACCT_SESSION_ID, Kind::Accounting),
            c => panic!("the client sent code {c}"),
        };
        if kind == Kind::Access {
            // Every Access-Request carries a valid Message-Authenticator,
            // first.
            let (t, off, v) = attrs[0];
            assert_eq!((t, off, v.len()), (MESSAGE_AUTHENTICATOR, 20, 16));
            let mut copy = p.to_vec();
            copy[22..38].fill(0);
            assert_eq!(hmac_md5(SECRETS[server], &copy)[..], *v);
        } else {
            let mut copy = p.to_vec();
            copy[4..20].fill(0);
            let auth = md5(&[&copy, SECRETS[server]]);
            assert_eq!(auth[..], p[4..20], "accounting Request Authenticator");
        }
        let tag = attrs
            .iter()
            .find(|(t, _, _)| *t == tag_type)
            .map(|(_, _, v)| *v)
            .expect("our tag attribute");
        let req: usize = std::str::from_utf8(tag)
            .ok()
            .and_then(|s| s.strip_prefix('r'))
            .and_then(|s| s.parse().ok())
            .expect("our tag");
        assert_eq!(self.reqs[req].kind, kind);
        assert!(!self.reqs[req].done, "a finished request was sent again");
        let ident = p[1];
        if let Some(old) = self.live.get(&(server, ident)) {
            assert_eq!(
                old.req, req,
                "identifier {ident} in use for two pending requests on one server"
            );
        }
        // A request is in flight on one server at a time: a transmission
        // elsewhere (failover) ends the old one.
        self.live
            .retain(|(s, i), l| l.req != req || (*s, *i) == (server, ident));
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&p[4..20]);
        self.live.insert(
            (server, ident),
            Live {
                req,
                auth,
                deadline: now + TIMEOUT,
            },
        );
    }

    /// The request `datagram` from `from` genuinely answers, and the code,
    /// judged without the crate.
    fn genuine(&self, from: SocketAddr, datagram: &[u8]) -> Option<(usize, u8, bool)> {
        let server = addrs()[..2].iter().position(|a| *a == from)?;
        let p = framed(datagram)?;
        let live = self.live.get(&(server, p[1]))?;
        let kind = self.reqs[live.req].kind;
        let code = p[0];
        let code_ok = match kind {
            Kind::Access => matches!(code, 2 | 3 | 11),
            Kind::Accounting => code == 5,
        };
        if !code_ok {
            return None;
        }
        let secret = SECRETS[server];
        if md5(&[&p[..4], &live.auth, &p[20..], secret])[..] != p[4..20] {
            return None;
        }
        let mas: Vec<_> = attributes(p)?
            .into_iter()
            .filter(|(t, _, _)| *t == MESSAGE_AUTHENTICATOR)
            .collect();
        let required = kind == Kind::Access
            && match self.require_ma {
                RequireMessageAuthenticator::Always => true,
                RequireMessageAuthenticator::Auto => self.signs[server],
                RequireMessageAuthenticator::Never => false,
            };
        match mas[..] {
            [] if required => return None,
            [] => {}
            [(_, off, v)] => {
                if v.len() != 16 {
                    return None;
                }
                let mut copy = p.to_vec();
                copy[4..20].copy_from_slice(&live.auth);
                copy[off + 2..off + 18].fill(0);
                if hmac_md5(secret, &copy)[..] != *v {
                    return None;
                }
            }
            _ => return None,
        }
        Some((live.req, code, !mas.is_empty()))
    }

    /// A request ended: its identifiers are free.
    fn finish(&mut self, req: usize) {
        assert!(!self.reqs[req].done, "request {req} ended twice");
        self.reqs[req].done = true;
        self.live.retain(|_, l| l.req != req);
    }
}

fn drain_transmits(client: &mut Client, model: &mut Model, now: Instant) {
    while let Some((to, packet)) = client.poll_transmit() {
        model.sent(now, to, &packet);
    }
}

/// Delivers a datagram and checks the outcome against the model.
fn deliver(client: &mut Client, model: &mut Model, now: Instant, from: SocketAddr, d: &[u8]) {
    let expect = model.genuine(from, d);
    client.handle_datagram(now, from, d);
    let got = client.poll_event();
    assert!(client.poll_event().is_none(), "one datagram, two outcomes");
    match (expect, got) {
        (None, None) => {}
        (Some((req, code, signed)), Some((rid, outcome))) => {
            assert_eq!(
                model.reqs[req].id, rid,
                "the outcome is for another request"
            );
            let ok = matches!(
                (code, &outcome),
                (2, Outcome::Accept { .. })
                    | (3, Outcome::Reject { .. })
                    | (11, Outcome::Challenge { .. })
                    | (5, Outcome::AccountingResponse { .. })
            );
            assert!(ok, "code {code} became {outcome:?}");
            model.finish(req);
            if signed {
                let server = addrs().iter().position(|a| *a == from).expect("a server");
                model.signs[server] = true;
            }
        }
        (None, Some((rid, outcome))) => {
            panic!("a reply that is not a genuine answer became {outcome:?} for {rid:?}")
        }
        (Some((req, code, _)), None) => {
            panic!("a genuine reply (code {code}) to request {req} was dropped")
        }
    }
    drain_transmits(client, model, now);
}

/// Takes `n` octets of the script (fewer if it ends).
fn take<'a>(s: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(s.len());
    let (a, b) = s.split_at(n);
    *s = b;
    a
}

fn byte(s: &mut &[u8]) -> u8 {
    take(s, 1).first().copied().unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let mut script = data;
    let cfg_byte = byte(&mut script);
    let servers = addrs();
    let mut cfg = ClientConfig::new(
        (0..2)
            .map(|i| ServerConfig {
                addr: servers[i],
                secret: SECRETS[i].to_vec(),
            })
            .collect(),
    );
    cfg.timeout = TIMEOUT;
    cfg.retries = u32::from((cfg_byte >> 2) & 3);
    cfg.require_message_authenticator = match cfg_byte & 3 {
        1 => RequireMessageAuthenticator::Auto,
        2 => RequireMessageAuthenticator::Never,
        _ => RequireMessageAuthenticator::Always,
    };
    let mut model = Model {
        reqs: Vec::new(),
        by_id: HashMap::new(),
        live: BTreeMap::new(),
        require_ma: cfg.require_message_authenticator,
        signs: [false; 2],
    };
    let mut client = Client::new(cfg).expect("valid config");
    let mut now = Instant::now();
    let mut last: Option<(SocketAddr, Vec<u8>)> = None;

    while !script.is_empty() {
        let op = byte(&mut script);
        match op % 7 {
            // Start 1..=4 requests, or 200 at once (identifiers run out).
            0 | 1 => {
                let b = byte(&mut script);
                let count = if op % 7 == 1 && b & 0x80 != 0 {
                    200
                } else {
                    1 + usize::from(b & 3)
                };
                for k in 0..count {
                    if model.reqs.len() >= MAX_REQUESTS {
                        break;
                    }
                    let n = model.reqs.len();
                    let tag = format!("r{n}").into_bytes();
                    let accounting = (b >> 2) & 1 == 1 && k % 2 == 0;
                    let (kind, request) = if accounting {
                        (
                            Kind::Accounting,
                            Request::accounting(vec![Attribute::AcctSessionId(tag)]),
                        )
                    } else {
                        let r = Request::access(vec![Attribute::UserName(tag)]);
                        let r = if (b >> 3) & 1 == 1 {
                            r.with_password(b"pw")
                        } else {
                            r
                        };
                        (Kind::Access, r)
                    };
                    let random = [b ^ (n as u8); 16];
                    let id = client
                        .send_request(now, request, random)
                        .expect("valid request");
                    model.by_id.insert(id, n);
                    model.reqs.push(Req {
                        id,
                        kind,
                        done: false,
                    });
                    drain_transmits(&mut client, &mut model, now);
                }
            }
            // A datagram of fuzzed bytes.
            2 => {
                let from = servers[usize::from(byte(&mut script) % 3)];
                let len = usize::from(byte(&mut script)) * 2;
                let d = take(&mut script, len).to_vec();
                deliver(&mut client, &mut model, now, from, &d);
                last = Some((from, d));
            }
            // A reply built for a live packet, right or wrong.
            3 => {
                let pick = byte(&mut script);
                let code_b = byte(&mut script);
                let flags = byte(&mut script);
                let flags2 = byte(&mut script);
                let alen = usize::from(byte(&mut script));
                let attrs = take(&mut script, alen).to_vec();
                if model.live.is_empty() {
                    continue;
                }
                let keys: Vec<_> = model.live.keys().copied().collect();
                let (server, ident) = keys[usize::from(pick) % keys.len()];
                let live = model.live[&(server, ident)];
                let kind = model.reqs[live.req].kind;
                let code = match (code_b % 4, kind) {
                    (0, Kind::Access) => 2,
                    (0, Kind::Accounting) => 5,
                    (1, _) => 3,
                    (2, _) => 11,
                    _ => code_b,
                };
                let ident = if flags & 0x01 != 0 {
                    ident.wrapping_add(1 + (flags2 & 7))
                } else {
                    ident
                };
                let mut body = Vec::new();
                let with_ma = flags & 0x02 != 0;
                if with_ma {
                    body.extend_from_slice(&[MESSAGE_AUTHENTICATOR, 18]);
                    body.extend_from_slice(&[0; 16]);
                }
                body.extend_from_slice(&attrs);
                let len = 20 + body.len();
                let mut p = vec![code, ident];
                p.extend_from_slice(&(len as u16).to_be_bytes());
                p.extend_from_slice(&live.auth);
                p.extend_from_slice(&body);
                let secret = if flags & 0x04 != 0 {
                    SECRETS[1 - server]
                } else {
                    SECRETS[server]
                };
                if with_ma {
                    let mac = hmac_md5(secret, &p);
                    p[22..38].copy_from_slice(&mac);
                    if flags & 0x08 != 0 {
                        p[22 + usize::from(flags2 % 16)] ^= 1 << (flags2 >> 5);
                    }
                }
                let ra = md5(&[&p, secret]);
                p[4..20].copy_from_slice(&ra);
                if flags & 0x10 != 0 {
                    p[4 + usize::from(flags2 % 16)] ^= 0x80;
                }
                if flags & 0x20 != 0 {
                    // UDP padding past Length.
                    p.extend_from_slice(&[0xab; 5]);
                }
                let from = match flags >> 6 {
                    1 => servers[1 - server],
                    2 => servers[2],
                    _ => servers[server],
                };
                deliver(&mut client, &mut model, now, from, &p);
                last = Some((from, p));
            }
            // The last datagram again (a duplicate or a late copy).
            4 => {
                if let Some((from, d)) = last.clone() {
                    deliver(&mut client, &mut model, now, from, &d);
                }
            }
            // Time passes.
            5 => {
                now += Duration::from_millis(u64::from(byte(&mut script)) * 50);
                client.handle_timeout(now);
                // Transmissions past their deadline are over; those the
                // client resent are renewed by `drain_transmits` below.
                model.live.retain(|_, l| l.deadline > now);
                while let Some((rid, outcome)) = client.poll_event() {
                    assert_eq!(outcome, Outcome::Timeout, "a timer gave {outcome:?}");
                    let req = model.by_id[&rid];
                    model.finish(req);
                }
                drain_transmits(&mut client, &mut model, now);
                if let Some(t) = client.poll_timeout() {
                    assert!(t > now, "a deadline in the past");
                }
            }
            // Cancel a request.
            _ => {
                let i = usize::from(byte(&mut script));
                if let Some(req) = model.reqs.get(i)
                    && !req.done
                {
                    client.cancel(req.id);
                    model.finish(i);
                    drain_transmits(&mut client, &mut model, now);
                }
            }
        }
        let open = model.reqs.iter().filter(|r| !r.done).count();
        assert_eq!(client.pending(), open, "the client's pending count");
    }
});
