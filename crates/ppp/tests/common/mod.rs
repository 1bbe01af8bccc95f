//! Helpers shared by the integration tests: capture loading and a
//! deterministic two-peer line simulation on a virtual clock.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ppp::auth::{AuthProtocol, Verdict};
use ppp::{Event, Link, LinkConfig};

/// Direction of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// pppd server to pppd client.
    S2C,
    /// pppd client to pppd server.
    C2S,
}

/// One frame of a capture file.
#[derive(Debug, Clone)]
pub struct CapFrame {
    /// Frame number.
    pub n: u32,
    /// Direction.
    pub dir: Dir,
    /// Milliseconds since the first byte.
    pub ms: f64,
    /// The bytes exactly as on the line.
    pub wire: Vec<u8>,
    /// The `frame:` line's hex (unescaped, without FCS).
    pub content: Vec<u8>,
}

/// The names of all captures in `tests/vectors/`.
pub const CAPTURES: [&str; 7] = [
    "01-pap-success",
    "02-chap-md5-success",
    "03-mschapv2-success",
    "04-pap-wrong-password",
    "05-mschapv2-wrong-password",
    "06-ccp-ipv6cp-refused",
    "07-echo-server-terminate",
];

/// Loads `tests/vectors/<name>.txt`.
pub fn load(name: &str) -> Vec<CapFrame> {
    let path = format!("{}/tests/vectors/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames: Vec<CapFrame> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 4
            && fields[0].len() == 3
            && fields[0].chars().all(|c| c.is_ascii_digit())
        {
            let dir = match fields[1] {
                "S->C" => Dir::S2C,
                "C->S" => Dir::C2S,
                other => panic!("bad direction {other}"),
            };
            frames.push(CapFrame {
                n: fields[0].parse().unwrap(),
                dir,
                ms: fields[2].parse().unwrap(),
                wire: hex::decode(fields[3]).unwrap(),
                content: Vec::new(),
            });
        } else if let Some(rest) = line.trim_start().strip_prefix("frame: ") {
            let hexpart = rest.split_whitespace().next().unwrap();
            frames.last_mut().unwrap().content = hex::decode(hexpart).unwrap();
        }
    }
    assert!(!frames.is_empty(), "{name}: no frames");
    frames
}

/// A deterministic xorshift generator for the simulations.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    /// A random source for a [`Link`].
    pub fn source(seed: u64) -> ppp::RandomSource {
        let mut r = Rng(seed | 1);
        Box::new(move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = r.next() as u8;
            }
        })
    }
}

/// Line impairments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impair {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is sent twice.
    pub dup: f64,
    /// Probability a frame is delayed behind the next ones.
    pub reorder: f64,
    /// Probability one byte of a frame is flipped.
    pub corrupt: f64,
}

/// Chunks in flight on one direction of the line.
#[derive(Debug, Default)]
struct Wire {
    queue: VecDeque<(Instant, Vec<u8>)>,
}

/// A server and a client joined by a simulated line.
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// Server side.
    pub server: Link,
    /// Client side.
    pub client: Link,
    to_client: Wire,
    to_server: Wire,
    /// Events of the server, in order.
    pub server_events: Vec<Event>,
    /// Events of the client, in order.
    pub client_events: Vec<Event>,
    /// Impairments.
    pub impair: Impair,
    rng: Rng,
    /// One-way delay.
    pub delay: Duration,
    /// The password the server accepts for `alice`.
    pub password: String,
    /// Steps taken.
    pub steps: u64,
}

/// The address plan of the tests (TEST-NET-1).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The address the server assigns.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The DNS server handed out.
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// A server config requiring `auth` (empty: none).
pub fn server_config(auth: Vec<AuthProtocol>) -> LinkConfig {
    let mut c = LinkConfig::server(SERVER_IP, CLIENT_IP, auth);
    c.ipcp.dns = [Some(DNS_IP), None];
    c.echo_interval = Some(Duration::from_secs(5));
    c
}

/// A client config for alice with `password`, accepting `auth`.
pub fn client_config(password: &str, auth: Vec<AuthProtocol>) -> LinkConfig {
    let mut c = LinkConfig::client(Some((b"alice", password)));
    c.lcp.accept_auth = auth;
    c.echo_interval = Some(Duration::from_secs(5));
    c
}

impl Sim {
    /// A simulation of `server` against `client`, seeded.
    pub fn new(server: LinkConfig, client: LinkConfig, seed: u64, impair: Impair) -> Sim {
        let now = Instant::now();
        let server = Link::new(server, now, Rng::source(seed ^ 0x5151)).unwrap();
        let client = Link::new(client, now, Rng::source(seed ^ 0xc1c1)).unwrap();
        Sim {
            now,
            server,
            client,
            to_client: Wire::default(),
            to_server: Wire::default(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            impair,
            rng: Rng(seed | 1),
            delay: Duration::from_millis(10),
            password: "s3cret".to_string(),
            steps: 0,
        }
    }

    fn put(rng: &mut Rng, impair: Impair, wire: &mut Wire, at: Instant, mut bytes: Vec<u8>) {
        if rng.chance(impair.loss) {
            return;
        }
        if rng.chance(impair.corrupt) && !bytes.is_empty() {
            let i = (rng.next() as usize) % bytes.len();
            bytes[i] ^= 1 << (rng.next() % 8);
        }
        let dup = rng.chance(impair.dup);
        if rng.chance(impair.reorder) {
            // Deliver later than frames sent after it.
            wire.queue
                .push_back((at + Duration::from_millis(25), bytes.clone()));
        } else {
            wire.queue.push_back((at, bytes.clone()));
        }
        if dup {
            wire.queue.push_back((at + Duration::from_millis(1), bytes));
        }
        wire.queue.make_contiguous().sort_by_key(|(t, _)| *t);
    }

    /// Drains both links' outputs onto the line and their events into the
    /// logs; answers verification requests with `self.password`.
    fn drain(&mut self) {
        let at = self.now + self.delay;
        while let Some(b) = self.server.poll_transmit() {
            Self::put(&mut self.rng, self.impair, &mut self.to_client, at, b);
        }
        while let Some(b) = self.client.poll_transmit() {
            Self::put(&mut self.rng, self.impair, &mut self.to_server, at, b);
        }
        while let Some(e) = self.server.poll_event() {
            if let Event::Verify(v) = &e {
                let verdict = v
                    .credentials
                    .verify_password(&self.password, "Login incorrect");
                self.server_events.push(e.clone());
                let _ = self.server.verified(self.now, v.id, verdict);
                continue;
            }
            self.server_events.push(e);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
    }

    /// Advances to the next thing that happens (a delivery or a timer).
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.drain();
        self.steps += 1;
        let next_c = self.to_client.queue.front().map(|(t, _)| *t);
        let next_s = self.to_server.queue.front().map(|(t, _)| *t);
        let candidates = [
            next_c,
            next_s,
            self.server.poll_timeout(),
            self.client.poll_timeout(),
        ];
        let Some(t) = candidates.into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(t);
        while let Some((t, _)) = self.to_client.queue.front() {
            if *t > self.now {
                break;
            }
            let (_, b) = self.to_client.queue.pop_front().unwrap();
            self.client.handle_input(self.now, &b);
        }
        while let Some((t, _)) = self.to_server.queue.front() {
            if *t > self.now {
                break;
            }
            let (_, b) = self.to_server.queue.pop_front().unwrap();
            self.server.handle_input(self.now, &b);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        self.drain();
        true
    }

    /// Steps until `done` holds or `max_steps` were taken; returns whether
    /// `done` held.
    pub fn drive(&mut self, max_steps: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Both sides have IPCP up.
    pub fn both_up(&self) -> bool {
        self.server.is_up() && self.client.is_up()
    }
}

/// An IPv4 packet (header checksum not computed: the link does not care).
pub fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// Accept-all verdict helper.
pub fn accept() -> Verdict {
    Verdict::Accept {
        authenticator_response: None,
    }
}
