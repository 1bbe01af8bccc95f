//! PPP after the dialog, end to end, inside a network namespace each test
//! makes: `dialgate serve` with a tun, a caller that passes the `users`
//! dialog over TCP and then runs our PPP stack in the client role, pings the
//! server's address through the tun, and hangs up. Needs root (tun, netns).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use ppp::link::{Event, Link};
use support::*;

const T: Duration = Duration::from_secs(15);
fn ppp_setup(auth: &str, extra: &str) -> Setup {
    ppp_group_setup(auth, extra)
}

fn dial(addr: std::net::SocketAddr, user: &str, password: &str) -> TcpStream {
    dial_in(addr, user, password, T)
}

fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, payload: &[u8]) -> Vec<u8> {
    fn csum(b: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in b.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

fn session_up_ping_hang_up(auth: &str, method: &str) {
    let s = ppp_setup(auth, "");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut link = client_link(b"alice", "s3cret");
    let evs = pump(&mut link, &mut line, T, |e, _| {
        matches!(e, Event::Up { .. })
    });
    let up = evs.iter().find_map(|e| match e {
        Event::Up {
            local, peer, dns, ..
        } => Some((*local, *peer, *dns)),
        _ => None,
    });
    let (local, peer, dns) = up.unwrap_or_else(|| panic!("no IPCP up: {evs:#?}"));
    assert_eq!(
        local,
        Ipv4Addr::new(10, 250, 1, 10),
        "the pool's first address"
    );
    assert_eq!(peer, Ipv4Addr::new(10, 250, 1, 1), "the server's address");
    assert_eq!(dns[0], Some(Ipv4Addr::new(10, 250, 1, 1)));
    // A ping to the server's tun address: the kernel answers through the tun.
    let mut replies = 0;
    for seq in 0..5u16 {
        link.send_ip(&icmp_echo(local, peer, seq, &[0xab; 1000]))
            .unwrap();
        let evs = pump(
            &mut link,
            &mut line,
            T,
            |e, _| matches!(e, Event::IpPacket(p) if p.len() > 20 && p[9] == 1 && p[20] == 0),
        );
        if evs
            .iter()
            .any(|e| matches!(e, Event::IpPacket(p) if p[20] == 0))
        {
            replies += 1;
        }
    }
    assert_eq!(replies, 5, "every echo answered");
    link.close(Instant::now(), "User request");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(
        evs.iter().any(|e| matches!(e, Event::Down { .. })),
        "{evs:#?}"
    );
    let recs = s.wait_records(&["--kind", "ppp-session"], 1, T);
    let r = &recs[0];
    assert_eq!(r["outcome"], "session-ended", "{r}");
    assert_eq!(r["ppp"]["user"], "alice");
    assert_eq!(r["ppp"]["method"], method);
    assert_eq!(r["ppp"]["address"], "10.250.1.10");
    assert!(r["ppp"]["packets_in"].as_u64().unwrap() >= 5, "{r}");
    assert!(r["ppp"]["packets_out"].as_u64().unwrap() >= 5, "{r}");
    assert!(r["ppp"]["bytes_in"].as_u64().unwrap() >= 5 * 1028, "{r}");
    let dialog = s.records(&["--kind", "dialog"]);
    assert_eq!(dialog[0]["outcome"], "success");
    assert_eq!(dialog[0]["handoff"], "ppp");
}

#[test]
fn chap_md5_session_after_the_dialog() {
    if in_netns("chap_md5_session_after_the_dialog") {
        session_up_ping_hang_up("\"chap-md5\"", "chap-md5");
    }
}

#[test]
fn mschapv2_session_after_the_dialog() {
    if in_netns("mschapv2_session_after_the_dialog") {
        session_up_ping_hang_up("\"mschapv2\"", "ms-chapv2");
    }
}

#[test]
fn pap_session_after_the_dialog() {
    if in_netns("pap_session_after_the_dialog") {
        session_up_ping_hang_up("\"pap\"", "pap");
    }
}

#[test]
fn a_ppp_name_other_than_the_dialogs_is_hung_up_and_logged() {
    if !in_netns("a_ppp_name_other_than_the_dialogs_is_hung_up_and_logged") {
        return;
    }
    let s = ppp_setup("\"mschapv2\"", "");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    // bob's own, valid, credentials: still refused, the dialog said alice.
    let mut link = client_link(b"bob", "b0bpw");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "{evs:#?}"
    );
    assert!(!evs.iter().any(|e| matches!(e, Event::Up { .. })));
    let r = s.wait_records(&["--outcome", "ppp-name-mismatch"], 1, T);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
    assert!(r[0]["detail"].as_str().unwrap().contains("20096"));
}

#[test]
fn a_wrong_chap_secret_fails_ppp_authentication() {
    if !in_netns("a_wrong_chap_secret_fails_ppp_authentication") {
        return;
    }
    let s = ppp_setup("\"chap-md5\"", "");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut link = client_link(b"alice", "not-it");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(
        evs.iter().any(|e| matches!(e, Event::AuthFailed(_))),
        "{evs:#?}"
    );
    let r = s.wait_records(&["--outcome", "ppp-auth-failed"], 1, T);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
}

#[test]
fn an_exhausted_pool_refuses_clearly_and_two_sessions_never_share_an_address() {
    if !in_netns("an_exhausted_pool_refuses_clearly_and_two_sessions_never_share_an_address") {
        return;
    }
    let s = ppp_setup("\"pap\"", "");
    let srv = s.start();
    let mut links = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
        let mut link = client_link(b"alice", "s3cret");
        let evs = pump(&mut link, &mut line, T, |e, _| {
            matches!(e, Event::Up { .. })
        });
        let a = evs.iter().find_map(|e| match e {
            Event::Up { local, .. } => Some(*local),
            _ => None,
        });
        addrs.push(a.expect("up"));
        links.push((link, line));
    }
    assert_ne!(addrs[0], addrs[1], "two sessions, two addresses");
    // The pool has two addresses: the third caller is refused and recorded.
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut buf = [0u8; 256];
    let end = Instant::now() + T;
    while Instant::now() < end {
        match line.read(&mut buf) {
            Ok(0) => break,
            _ => continue,
        }
    }
    let r = s.wait_records(&["--outcome", "refused"], 1, T);
    assert_eq!(r.len(), 1);
    assert!(
        r[0]["detail"].as_str().unwrap().contains("exhausted"),
        "{}",
        r[0]
    );
    drop(links);
}

/// Dials, authenticates as alice, and waits for IPCP; returns the link, the
/// line and the caller's address.
fn up(s: &Setup, srv: &Server) -> (Link, TcpStream, Ipv4Addr) {
    let _ = s;
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut link = client_link(b"alice", "s3cret");
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

#[test]
fn a_spoofed_source_address_is_dropped() {
    if !in_netns("a_spoofed_source_address_is_dropped") {
        return;
    }
    let s = ppp_setup("\"pap\"", "");
    let srv = s.start();
    let (mut link, mut line, local) = up(&s, &srv);
    let server = Ipv4Addr::new(10, 250, 1, 1);
    let spoofed = Ipv4Addr::new(10, 250, 1, 99);
    link.send_ip(&icmp_echo(spoofed, server, 1, b"spoof"))
        .unwrap();
    let evs = pump(&mut link, &mut line, Duration::from_secs(2), |_, _| false);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::IpPacket(_))),
        "no reply to a spoofed packet"
    );
    // The real address still works.
    link.send_ip(&icmp_echo(local, server, 2, b"real")).unwrap();
    let evs = pump(&mut link, &mut line, T, |e, _| {
        matches!(e, Event::IpPacket(_))
    });
    assert!(evs.iter().any(|e| matches!(e, Event::IpPacket(_))));
    link.close(Instant::now(), "User request");
    pump(&mut link, &mut line, T, |_, _| false);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert!(
        r[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("1 packets with a spoofed source"),
        "{}",
        r[0]
    );
    assert_eq!(r[0]["ppp"]["packets_in"], 1, "only the real packet counted");
}

#[test]
fn keepalive_loss_ends_the_session() {
    if !in_netns("keepalive_loss_ends_the_session") {
        return;
    }
    let s = ppp_setup("\"pap\"", "echo_interval = 1\necho_max_missed = 2\n");
    let srv = s.start();
    let (_link, mut line, _) = up(&s, &srv);
    // The caller goes silent: it stops answering (and reading) entirely.
    let t0 = Instant::now();
    let r = s.wait_records(&["--kind", "ppp-session"], 1, Duration::from_secs(20));
    assert_eq!(r.len(), 1, "the session ended by itself");
    assert!(t0.elapsed() < Duration::from_secs(15));
    let cause = r[0]["ppp"]["cause"].as_str().unwrap();
    assert!(cause.contains("echo"), "{cause}");
    let mut b = [0u8; 64];
    let _ = line.read(&mut b);
}

#[test]
fn shutdown_terminates_every_session_cleanly() {
    if !in_netns("shutdown_terminates_every_session_cleanly") {
        return;
    }
    let s = ppp_setup("\"pap\"", "");
    let mut srv = s.start();
    let (mut l1, mut s1, _) = up(&s, &srv);
    let (mut l2, mut s2, _) = up(&s, &srv);
    let pid = srv.child.as_ref().unwrap().id();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    for (l, s) in [(&mut l1, &mut s1), (&mut l2, &mut s2)] {
        let evs = pump(l, s, T, |_, _| false);
        let down = evs.iter().find_map(|e| match e {
            Event::Down { cause } => Some(cause.to_string()),
            _ => None,
        });
        assert!(down.is_some(), "no Down: {evs:#?}");
        // The server said goodbye with an LCP Terminate-Request (our link
        // entered the Terminate phase) before it dropped the line.
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::Phase(ppp::link::Phase::Terminate))),
            "no LCP Terminate from the server: {evs:#?}"
        );
    }
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
    let r = s.records(&["--kind", "ppp-session", "--outcome", "shutdown"]);
    assert_eq!(r.len(), 2, "{:#?}", s.records(&[]));
}

/// An independent PPP implementation as the caller: the `ppproto` crate
/// (PAP + IPCP) through the server's TCP port, after the dialog.
#[test]
fn ppproto_client_through_the_servers_port() {
    use ppproto::pppos::{PPPoS, PPPoSAction};
    if !in_netns("ppproto_client_through_the_servers_port") {
        return;
    }
    let s = ppp_setup("\"pap\"", "");
    let srv = s.start();
    let mut line = dial(srv.addr("ppp0"), "alice", "s3cret");
    let mut client = PPPoS::new(ppproto::Config {
        username: b"alice",
        password: b"s3cret",
    });
    client.open().unwrap();
    let mut tx = vec![0u8; 4096];
    let mut rx = vec![0u8; 4096];
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut step = |client: &mut PPPoS<'_>, line: &mut TcpStream, got: &mut Vec<Vec<u8>>| {
        loop {
            match client.poll(&mut tx, &mut rx) {
                PPPoSAction::None => break,
                PPPoSAction::Transmit(n) => line.write_all(&tx[..n]).unwrap(),
                PPPoSAction::Received(r) => got.push(rx[r].to_vec()),
            }
        }
        let mut buf = [0u8; 2048];
        if let Ok(n @ 1..) = line.read(&mut buf) {
            let mut data = &buf[..n];
            while !data.is_empty() {
                let used = client.consume(data, &mut rx);
                data = &data[used..];
                loop {
                    match client.poll(&mut tx, &mut rx) {
                        PPPoSAction::None => break,
                        PPPoSAction::Transmit(n) => line.write_all(&tx[..n]).unwrap(),
                        PPPoSAction::Received(r) => got.push(rx[r].to_vec()),
                    }
                }
            }
        }
    };
    let end = Instant::now() + T;
    let mut addr = None;
    while Instant::now() < end {
        step(&mut client, &mut line, &mut got);
        let st = client.status();
        if st.phase == ppproto::Phase::Open
            && let Some(a) = st.ipv4.and_then(|v| v.address)
        {
            addr = Some(Ipv4Addr::from(a.octets()));
            break;
        }
    }
    let local = addr.expect("ppproto reached IPCP Open with an address");
    assert_eq!(local, Ipv4Addr::new(10, 250, 1, 10));
    let ping = icmp_echo(local, Ipv4Addr::new(10, 250, 1, 1), 7, b"from ppproto");
    let mut txb = vec![0u8; 4096];
    let n = client.send(&ping, &mut txb).unwrap();
    line.write_all(&txb[..n]).unwrap();
    let end = Instant::now() + T;
    while Instant::now() < end && !got.iter().any(|p| p.len() > 20 && p[20] == 0) {
        step(&mut client, &mut line, &mut got);
    }
    assert!(
        got.iter().any(|p| p.len() > 20 && p[9] == 1 && p[20] == 0),
        "an echo reply came back"
    );
    // The caller's TCP close is its carrier drop (a telnet modem emulator
    // hanging up): the session ends at once, recorded as a hang-up.
    drop(line);
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r[0]["ppp"]["cause"], "line hung up", "{}", r[0]);
    assert_eq!(r[0]["ppp"]["method"], "pap");
    assert_eq!(r[0]["ppp"]["address"], "10.250.1.10");
}

/// PPP authentication through a real FreeRADIUS (MS-CHAPv2 with the
/// authenticator response from RADIUS, then CHAP-MD5), and accounting Start
/// and Stop with the session's address and octets in FreeRADIUS's detail
/// file.
#[test]
fn ppp_through_radius_with_accounting() {
    if !in_netns("ppp_through_radius_with_accounting") {
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../radius/tests/freeradius.sh");
    require_tool("/usr/sbin/freeradius");
    let out = Command::new("bash")
        .arg(&script)
        .args(["start", "18120", "18130"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "freeradius: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = started.split_whitespace();
    let (pid, dir) = (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
    );
    struct Stop(std::path::PathBuf, String, String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(&self.0)
                .args(["stop", &self.1, &self.2])
                .status();
        }
    }
    let _stop = Stop(script.clone(), pid, dir.clone());
    for (auth, method) in [("\"mschapv2\"", "ms-chapv2"), ("\"chap-md5\"", "chap-md5")] {
        let radius = "[group.handoff.radius]\n\
            servers = [{ address = \"127.0.0.1:18120\", secret = \"testing123\" }]\n\
            accounting = [{ address = \"127.0.0.1:18130\", secret = \"testing123\" }]\n";
        let s = ppp_setup(auth, radius);
        // The dialog's users module knows alice too, with RADIUS's password.
        let mut add = s.cmd(&["user", "add", "alice", "--password-stdin"]);
        let mut child = add.stdin(std::process::Stdio::piped()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"alicepass\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
        let srv = s.start();
        let mut line = dial(srv.addr("ppp0"), "alice", "alicepass");
        let mut link = client_link(b"alice", "alicepass");
        let evs = pump(&mut link, &mut line, T, |e, _| {
            matches!(e, Event::Up { .. })
        });
        let local = evs
            .iter()
            .find_map(|e| match e {
                Event::Up { local, .. } => Some(*local),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{method}: no IPCP up (RADIUS verdict): {evs:#?}"));
        link.send_ip(&icmp_echo(
            local,
            Ipv4Addr::new(10, 250, 1, 1),
            1,
            &[7; 500],
        ))
        .unwrap();
        pump(&mut link, &mut line, T, |e, _| {
            matches!(e, Event::IpPacket(_))
        });
        link.close(Instant::now(), "User request");
        pump(&mut link, &mut line, T, |_, _| false);
        let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
        assert_eq!(r[0]["ppp"]["method"], method);
        drop(srv);
    }
    // Accounting: a Start and a Stop per session, with the address and octets.
    let detail = std::fs::read_to_string(format!("{dir}/acct/detail")).unwrap_or_default();
    assert_eq!(
        detail.matches("Acct-Status-Type = Start").count(),
        2,
        "{detail}"
    );
    assert_eq!(
        detail.matches("Acct-Status-Type = Stop").count(),
        2,
        "{detail}"
    );
    assert!(
        detail.contains("Framed-IP-Address = 10.250.1.10"),
        "{detail}"
    );
    assert!(
        detail.contains("Acct-Input-Octets = 528"),
        "one 528-byte ping in: {detail}"
    );
    assert!(detail.contains("User-Name = \"alice\""), "{detail}");
}

#[test]
fn idle_timeout_and_session_time_limit_end_sessions() {
    if !in_netns("idle_timeout_and_session_time_limit_end_sessions") {
        return;
    }
    for (extra, want) in [
        ("idle_timeout = 2\n", "Idle timeout"),
        ("session_limit = 2\n", "Session time limit"),
    ] {
        let s = ppp_setup("\"pap\"", extra);
        let srv = s.start();
        let (mut link, mut line, _) = up(&s, &srv);
        let t0 = Instant::now();
        // Keep answering LCP (echoes) but send no IP: idle.
        let evs = pump(&mut link, &mut line, Duration::from_secs(12), |_, _| false);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{want}: took {:?}",
            t0.elapsed()
        );
        assert!(
            evs.iter().any(|e| matches!(e, Event::Down { .. })),
            "{want}: {evs:#?}"
        );
        let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
        let cause = r[0]["ppp"]["cause"].as_str().unwrap();
        assert!(cause.contains(want), "{want}: {cause}");
        drop(srv);
    }
}
