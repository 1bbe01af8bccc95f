//! Issue 12, holes 1-3 end to end: `dialgate serve` in a network namespace
//! with a tun, callers over a real TCP port that pass the `users` dialog
//! and then run our PPP stack in the client role (or write raw frames).
//! A fake RADIUS server on loopback makes a credential check slow or hung
//! on purpose. Needs root (tun, netns).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ppp::hdlc::{TxOptions, encode};
use ppp::link::{Event, Link, LinkConfig};
use ppp::wire::{Code as LcpCode, build_packet, protocol};
use radius::{Attribute, Code, Packet, encode_response};
use support::*;

const T: Duration = Duration::from_secs(15);
const SECRET: &[u8] = b"testing123";

fn setup(auth: &str, extra: &str) -> Setup {
    ppp_group_setup(auth, extra)
}

fn dial(addr: SocketAddr, user: &str, password: &str) -> TcpStream {
    dial_in(addr, user, password, T)
}

/// A PAP-only client link for `user`.
fn pap_client(user: &[u8], password: &str) -> Link {
    let mut cfg = LinkConfig::client(Some((user, password)));
    cfg.lcp.accept_auth = vec![ppp::auth::AuthProtocol::Pap];
    Link::new(cfg, Instant::now(), Box::new(|b: &mut [u8]| rand::fill(b))).unwrap()
}

/// The server's peak resident memory (VmHWM), in KiB.
fn server_hwm_kib(srv: &Server) -> u64 {
    let pid = srv.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Up to IPCP as alice on a PAP group; returns the client link, the line
/// and the address the caller got.
fn up(srv: &Server) -> (Link, TcpStream, Ipv4Addr) {
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut link = pap_client(b"alice", "s3cret");
    let evs = pump(&mut link, &mut line, T, |e, _| {
        matches!(e, Event::Up { .. })
    });
    let local = evs
        .iter()
        .find_map(|e| match e {
            Event::Up { local, .. } => Some(*local),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no IPCP up: {evs:#?}"));
    (link, line, local)
}

// ---------------------------------------------------------------- RADIUS

/// An Access-Request the fake server saw.
#[derive(Clone)]
struct Req {
    from: SocketAddr,
    identifier: u8,
    authenticator: [u8; 16],
    user: Vec<u8>,
}

impl Req {
    fn reply(&self, sock: &UdpSocket, code: Code) {
        let b = encode_response(
            code,
            self.identifier,
            &self.authenticator,
            &[],
            SECRET,
            true,
        )
        .unwrap();
        sock.send_to(&b, self.from).unwrap();
    }
}

/// A fake RADIUS server on 127.0.0.1: every new Access-Request (not a
/// retransmission) goes to `script` with the socket. Stops when dropped.
struct FakeRadius {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRadius {
    fn start(mut script: impl FnMut(&UdpSocket, Req) + Send + 'static) -> FakeRadius {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<(u8, [u8; 16])> = Vec::new();
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(p) = Packet::decode(&buf[..n]) else {
                    continue;
                };
                if p.code != Code::AccessRequest || seen.contains(&(p.identifier, p.authenticator))
                {
                    continue;
                }
                seen.push((p.identifier, p.authenticator));
                let user = p
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        Attribute::UserName(u) => Some(u.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                script(
                    &sock,
                    Req {
                        from,
                        identifier: p.identifier,
                        authenticator: p.authenticator,
                        user,
                    },
                );
            }
        });
        FakeRadius {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn config(&self, timeout_s: u32, retries: u32) -> String {
        format!(
            "[group.handoff.radius]\nservers = [{{ address = \"{}\", secret = \"testing123\" }}]\ntimeout = {timeout_s}\nretries = {retries}\n",
            self.addr
        )
    }
}

impl Drop for FakeRadius {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- hole 1

/// The attack of hole 1: A logs in validly, renegotiates LCP at once and
/// logs in as B with a wrong password while A's check is still running;
/// A's Accept then arrives. B must never be accepted.
#[test]
fn hole_1_stale_verdict_through_a_port_never_accepts_b() {
    if !in_netns("hole_1_stale_verdict_through_a_port_never_accepts_b") {
        return;
    }
    // The fake RADIUS holds alice's request until bob's arrives, then
    // accepts alice's (late) and, a moment later, rejects bob's.
    let (seen_tx, seen_rx) = mpsc::channel::<Vec<u8>>();
    let mut held: Option<Req> = None;
    let radius = FakeRadius::start(move |sock, req| {
        let _ = seen_tx.send(req.user.clone());
        if req.user == b"alice" {
            held = Some(req);
        } else {
            if let Some(a) = held.take() {
                a.reply(sock, Code::AccessAccept);
            }
            std::thread::sleep(Duration::from_millis(1500));
            req.reply(sock, Code::AccessReject);
        }
    });
    let s = setup(
        "\"pap\"",
        &format!("same_user = false\n{}", radius.config(30, 0)),
    );
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    // A: right password (RADIUS will accept it, late).
    let mut a = pap_client(b"alice", "s3cret");
    let end = Instant::now() + T;
    loop {
        assert!(Instant::now() < end, "alice's request never reached RADIUS");
        pump(&mut a, &mut line, Duration::from_millis(100), |_, _| false);
        if let Ok(u) = seen_rx.try_recv() {
            assert_eq!(u, b"alice");
            break;
        }
    }
    // Renegotiate at once (a new LCP Configure-Request) and log in as B.
    drop(a);
    let mut b = pap_client(b"bob", "wrong");
    let evs = pump(&mut b, &mut line, T, |e, _| {
        matches!(
            e,
            Event::Authenticated { .. } | Event::AuthFailed(_) | Event::Up { .. }
        )
    });
    assert_eq!(seen_rx.try_recv().ok(), Some(b"bob".to_vec()), "{evs:#?}");
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Authenticated { .. } | Event::Up { .. })),
        "B was accepted on A's verdict: {evs:#?}"
    );
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "B gets its own (reject) verdict: {evs:#?}"
    );
    pump(&mut b, &mut line, Duration::from_secs(3), |_, _| false);
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["outcome"], "ppp-auth-failed", "{}", r[0]);
    assert_eq!(r[0]["ppp"]["user"], "bob", "{}", r[0]);
    drop(srv);
}

#[test]
fn hole_1_lcp_renegotiations_are_capped_through_a_port() {
    if !in_netns("hole_1_lcp_renegotiations_are_capped_through_a_port") {
        return;
    }
    let s = setup("\"pap\"", "");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut downs = 0;
    let mut authenticated = 0;
    for _ in 0..8 {
        // Each fresh client starts LCP over: a renegotiation for the server.
        let mut c = pap_client(b"alice", "s3cret");
        let evs = pump(&mut c, &mut line, T, |e, _| {
            matches!(e, Event::Authenticated { .. })
        });
        if evs.iter().any(|e| matches!(e, Event::Authenticated { .. })) {
            authenticated += 1;
        }
        if evs.iter().any(|e| matches!(e, Event::Down { .. })) {
            downs += 1;
            break;
        }
    }
    assert_eq!(downs, 1, "the server ended the link");
    assert_eq!(authenticated, 5, "the first login and 4 renegotiations");
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0]["ppp"]["cause"], "too many LCP renegotiations (5)",
        "{}",
        r[0]
    );
    drop(srv);
}

// ---------------------------------------------------------------- hole 2

/// A caller that never reads while it floods LCP Echo-Requests (whose
/// replies would double on the wire) and unknown protocols: the server's
/// memory stays flat.
#[test]
fn hole_2_a_caller_that_never_reads_keeps_server_memory_bounded() {
    if !in_netns("hole_2_a_caller_that_never_reads_keeps_server_memory_bounded") {
        return;
    }
    let s = setup("\"pap\"", "");
    let srv = s.start();
    let (_link, mut line, _) = up(&srv);
    let before = server_hwm_kib(&srv);
    let mut echo = 0u32.to_be_bytes().to_vec();
    echo.extend_from_slice(&[0x7e; 1000]);
    let mut burst = Vec::new();
    for i in 0..50u8 {
        burst.extend(encode(
            protocol::LCP,
            &build_packet(LcpCode::EchoRequest, i, &echo),
            TxOptions::DEFAULT,
        ));
        burst.extend(encode(0x8057, &[0x7d; 1000], TxOptions::DEFAULT));
    }
    line.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // 40,000 Echo-Requests and as many unknown frames (about 120 MB of
    // replies if all were queued), or until the server stops reading.
    let t0 = Instant::now();
    let mut sent = 0usize;
    for _ in 0..800 {
        if t0.elapsed() > Duration::from_secs(30) || line.write_all(&burst).is_err() {
            break;
        }
        sent += burst.len();
    }
    // Let the server work through what it read.
    std::thread::sleep(Duration::from_secs(1));
    let after = server_hwm_kib(&srv);
    assert!(
        after.saturating_sub(before) < 20 * 1024,
        "server memory grew by {} KiB while {sent} octets came in unread",
        after - before
    );
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    let detail = r[0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("not sent (rate limit)"),
        "the record says replies were limited: {}",
        r[0]
    );
    drop(srv);
}

/// 100 MB/s from the network toward a caller that does not read: the
/// session stops taking packets from the route (they drop at its bounded
/// queue) and the server's memory stays flat.
#[test]
fn hole_2_a_downstream_flood_to_a_slow_caller_keeps_server_memory_bounded() {
    if !in_netns("hole_2_a_downstream_flood_to_a_slow_caller_keeps_server_memory_bounded") {
        return;
    }
    let s = setup("\"pap\"", "");
    let srv = s.start();
    let (_link, line, local) = up(&srv);
    let before = server_hwm_kib(&srv);
    let sock = UdpSocket::bind("10.250.1.1:0").unwrap();
    let payload = [0x7eu8; 1400];
    // 100 MB/s for 2 s: 71 datagrams of 1400 octets every millisecond.
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        let slot = t0 + Duration::from_millis(sent / 71);
        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // An error is ENOBUFS (the tun's queue is full): the kernel's bound.
        let _ = sock.send_to(&payload, (local, 9));
        sent += 1;
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = server_hwm_kib(&srv);
    assert!(
        after.saturating_sub(before) < 20 * 1024,
        "server memory grew by {} KiB under a flood of {sent} datagrams",
        after - before
    );
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    // The caller never read: what the session took from the route is
    // what the line (kernel socket buffers) and the bounded queues held.
    let out = r[0]["ppp"]["bytes_out"].as_u64().unwrap();
    assert!(
        out < 20_000_000,
        "the session took {out} octets for a caller that read none"
    );
    drop(srv);
}

// ---------------------------------------------------------------- hole 3

/// A credential check that never returns (a RADIUS server that never
/// answers, a client that would wait 60 s): the session ends at the 30 s
/// authentication deadline, with that cause recorded.
#[test]
fn hole_3_a_hung_check_ends_the_session_at_the_auth_deadline() {
    if !in_netns("hole_3_a_hung_check_ends_the_session_at_the_auth_deadline") {
        return;
    }
    let (seen_tx, seen_rx) = mpsc::channel::<Vec<u8>>();
    let radius = FakeRadius::start(move |_, req| {
        let _ = seen_tx.send(req.user);
    });
    let s = setup("\"pap\"", &radius.config(60, 0));
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut cfg = LinkConfig::client(Some((b"alice", "s3cret")));
    cfg.lcp.accept_auth = vec![ppp::auth::AuthProtocol::Pap];
    // A patient caller: it keeps asking for 100 s and has no deadline.
    cfg.auth_timeout = None;
    let creds = cfg.credentials.as_mut().unwrap();
    creds.restart_interval = Duration::from_secs(5);
    creds.max_transmits = 20;
    let mut c = Link::new(cfg, Instant::now(), Box::new(|b: &mut [u8]| rand::fill(b))).unwrap();
    let t0 = Instant::now();
    let evs = pump(&mut c, &mut line, Duration::from_secs(45), |_, _| false);
    let took = t0.elapsed();
    assert_eq!(seen_rx.try_recv().ok(), Some(b"alice".to_vec()));
    assert!(
        evs.iter().any(|e| matches!(e, Event::Down { .. })),
        "the server ended the link: {evs:#?}"
    );
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(40),
        "ended after {took:?}"
    );
    let mut b = [0u8; 64];
    let _ = line.read(&mut b);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["ppp"]["cause"], "authentication timed out", "{}", r[0]);
    assert_eq!(r[0]["outcome"], "ppp-auth-failed", "{}", r[0]);
    drop(srv);
    let _ = line.write_all(b"");
}

/// alice is up; the caller renegotiates LCP and logs in as bob with bob's
/// right password. The session (its address, its accounting, its record)
/// is alice's: bob is refused and the session ends as an authentication
/// failure, its record still alice's.
#[test]
fn hole_1_a_renegotiation_cannot_change_the_user_through_a_port() {
    if !in_netns("hole_1_a_renegotiation_cannot_change_the_user_through_a_port") {
        return;
    }
    let s = setup("\"pap\"", "same_user = false\n");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut a = pap_client(b"alice", "s3cret");
    let evs = pump(&mut a, &mut line, T, |e, _| matches!(e, Event::Up { .. }));
    assert!(
        evs.iter().any(|e| matches!(e, Event::Up { .. })),
        "alice is up: {evs:#?}"
    );
    drop(a);
    let mut b = pap_client(b"bob", "b0bpw");
    let evs = pump(&mut b, &mut line, T, |e, _| {
        matches!(
            e,
            Event::Authenticated { .. } | Event::AuthFailed(_) | Event::Up { .. }
        )
    });
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Authenticated { .. } | Event::Up { .. })),
        "bob took over alice's session: {evs:#?}"
    );
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "{evs:#?}"
    );
    pump(&mut b, &mut line, Duration::from_secs(3), |_, _| false);
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["outcome"], "ppp-auth-failed", "{}", r[0]);
    assert_eq!(r[0]["ppp"]["user"], "alice", "{}", r[0]);
    assert_eq!(
        r[0]["ppp"]["cause"], "authentication failed: UserChanged",
        "{}",
        r[0]
    );
    drop(srv);
}
