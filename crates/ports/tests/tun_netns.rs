//! `ports::tun` against the real kernel, inside network namespaces that the
//! tests create, so nothing touches the host's network.
//!
//! Each test that needs a tun device runs twice: first in the normal test
//! process, which makes a namespace (`ip netns add dgtun-<pid>-<n>`),
//! re-executes this test binary inside it with `ip netns exec` (only that
//! one test, selected with `--exact`, and an environment variable saying
//! "you are inside"), waits for it within a time limit and deletes the
//! namespace again (a guard does it on failure too). The inner run does the
//! actual work: the kernel of a fresh namespace answers ICMP echo requests
//! that we write into the tun with echo replies that we read back.
//!
//! Without root, the `ip` command (iproute2) or `/dev/net/tun` the tests
//! fail, saying what is missing: a test that cannot run never passes.

use std::collections::HashSet;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ports::tun::{MAX_NAME_LEN, Tun};
use tokio::time::timeout;

/// Set (to the test's name) in the re-executed child inside the namespace.
const CHILD_ENV: &str = "DIALGATE_TUN_NETNS_CHILD";
/// How long the child test may run in total.
const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// How long we wait for any one packet.
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- harness

/// Why these tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("`ip -V` failed: {}", out.status)),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// Fails the calling test: it cannot run here, and says why.
fn cannot_run(test_name: &str, why: &str) -> ! {
    panic!(
        "{test_name} cannot run here: {why}. It needs root, `ip` (Debian package \
         `iproute2`, which `bash scripts/test` installs when run as root) and \
         /dev/net/tun (`modprobe tun`)"
    );
}

/// A network namespace deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn create() -> Result<NetNs, String> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "dgtun-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip netns add {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(NetNs { name })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let ok = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("warning: could not delete network namespace {}", self.name);
        }
    }
}

/// Read a child's pipe to the end on a thread.
fn collect(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Run `body` inside a fresh network namespace (see the module docs).
/// `test_name` must be the name of the `#[test]` function calling this.
fn in_netns(test_name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        body();
        return;
    }
    if let Some(why) = missing_prerequisite() {
        cannot_run(test_name, &why);
    }
    let ns = NetNs::create().unwrap_or_else(|why| cannot_run(test_name, &why));
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ip netns exec");
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let status = wait_bounded(&mut child, CHILD_LIMIT);
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    println!("--- {test_name} in netns {} ---\n{out}{err}", ns.name);
    let status = status.unwrap_or_else(|| panic!("{test_name}: child exceeded {CHILD_LIMIT:?}"));
    assert!(status.success(), "{test_name}: child failed: {status}");
    // The child must really have run the test, not filtered it away.
    assert!(
        out.contains(&format!("test {test_name} ... ok")) && out.contains("1 passed"),
        "{test_name}: child did not run the test"
    );
}

/// Run an async body on a runtime, bounded in time.
fn run<F: std::future::Future<Output = ()>>(threads: usize, body: F) {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async {
        timeout(Duration::from_secs(45), body)
            .await
            .expect("test body timed out");
    });
}

fn sys(name: &str, attr: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .unwrap_or_else(|e| panic!("read /sys/class/net/{name}/{attr}: {e}"))
        .trim()
        .to_string()
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------ IPv4 + ICMP echo

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `data`, checksum field included, sums to ones'-complement zero.
/// Both zeros are accepted: an all-zero message may carry checksum 0x0000
/// (the "-0" that incremental updates produce, RFC 1624 section 3), which
/// the kernel does when it turns an echo request into a reply.
fn checksum_ok(data: &[u8]) -> bool {
    matches!(checksum(data), 0 | 0xffff)
}

/// An IPv4 packet (RFC 791, 20-byte header, DF set, TTL 64) carrying an
/// ICMP echo request (RFC 792, type 8 code 0).
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes()); // identification
    p.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]); // DF, TTL, ICMP, checksum
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let hsum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&hsum.to_be_bytes());
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let csum = checksum(&p[20..]);
    p[22..24].copy_from_slice(&csum.to_be_bytes());
    p
}

#[derive(Debug, PartialEq)]
struct Echo {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: u8,
    id: u16,
    seq: u16,
    payload: Vec<u8>,
}

/// Parse an IPv4 ICMP echo packet, checking lengths and both checksums.
/// `None` for anything else (IPv6 noise such as router solicitations).
fn parse_echo(p: &[u8]) -> Option<Echo> {
    let first = *p.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    if ihl < 20 || total != p.len() || total < ihl + 8 || p.get(9) != Some(&1) {
        return None;
    }
    assert!(checksum_ok(&p[..ihl]), "bad IPv4 header checksum: {p:02x?}");
    let icmp = &p[ihl..];
    assert!(checksum_ok(icmp), "bad ICMP checksum: {p:02x?}");
    Some(Echo {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        icmp_type: icmp[0],
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: icmp[8..].to_vec(),
    })
}

/// Receive until an ICMP echo reply arrives (within [`WAIT`]).
async fn recv_echo_reply(tun: &Tun) -> Echo {
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, tun.recv(&mut buf))
            .await
            .expect("no echo reply within the time limit")
            .expect("tun recv");
        if let Some(echo) = parse_echo(&buf[..n])
            && echo.icmp_type == 0
        {
            return echo;
        }
    }
}

/// Write an echo request from `peer` to `local` into the tun and check
/// the kernel's reply.
async fn ping_through(tun: &Tun, local: Ipv4Addr, peer: Ipv4Addr, seq: u16) {
    let payload: Vec<u8> = (0..56u8).map(|i| i.wrapping_mul(7)).collect();
    let req = echo_request(peer, local, 0x4447, seq, &payload);
    assert_eq!(tun.send(&req).await.expect("send echo request"), req.len());
    let reply = recv_echo_reply(tun).await;
    assert_eq!(
        reply,
        Echo {
            src: local,
            dst: peer,
            icmp_type: 0,
            id: 0x4447,
            seq,
            payload,
        }
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn bad_arguments_are_refused_before_touching_the_system() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let err = Tun::create(&long, 1500).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at most 15"), "{err}");
    let err = Tun::create("dgt0", 67).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("MTU 67"), "{err}");
}

#[test]
fn create_outside_a_runtime_is_an_error_not_a_panic() {
    // Refused before the device is opened, so it needs no privileges.
    let err = Tun::create("dgt0", 1500).unwrap_err();
    assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
}

#[test]
fn kernel_answers_echo_through_subnet_tun() {
    in_netns("kernel_answers_echo_through_subnet_tun", || {
        run(1, async {
            let local = Ipv4Addr::new(10, 250, 7, 1);
            let peer = Ipv4Addr::new(10, 250, 7, 2);
            let tun = Tun::create("dgt0", 1400).expect("create tun");
            assert_eq!(tun.name(), "dgt0");
            assert_eq!(sys("dgt0", "mtu"), "1400");
            assert_eq!(tun.mtu().unwrap(), 1400);
            // IFF_TUN | IFF_NO_PI, as the driver reports them.
            assert_eq!(sys("dgt0", "tun_flags"), "0x1001");
            assert!(!tun.is_up().unwrap());

            tun.set_ipv4(local, 24).expect("set_ipv4");
            tun.up().expect("up");
            assert!(tun.is_up().unwrap());
            let addrs = ip(&["-o", "-4", "addr", "show", "dev", "dgt0"]);
            assert!(addrs.contains("inet 10.250.7.1/24"), "{addrs}");
            let routes = ip(&["-4", "route", "show", "dev", "dgt0"]);
            assert!(routes.contains("10.250.7.0/24"), "{routes}");

            ping_through(&tun, local, peer, 1).await;
            ping_through(&tun, local, peer, 2).await;

            // A reply larger than the buffer is cut to the buffer.
            let big = echo_request(peer, local, 0x4447, 3, &[0x5a; 1000]);
            tun.send(&big).await.unwrap();
            let mut small = [0u8; 100];
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let n = tokio::time::timeout_at(deadline, tun.recv(&mut small))
                    .await
                    .expect("truncated reply in time")
                    .unwrap();
                if small[0] >> 4 == 4 {
                    assert_eq!(n, small.len());
                    assert_eq!(u16::from_be_bytes([small[2], small[3]]), 1028);
                    break;
                }
            }
            // ... and the next recv gets the next packet, not its tail.
            ping_through(&tun, local, peer, 4).await;

            // Misuse and non-IP data are refused with clear errors.
            let err = tun.send(&[]).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            let err = tun.recv(&mut []).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            let err = tun.send(&[0u8; 28]).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("dgt0"), "{err}");
            // The device still works afterwards.
            ping_through(&tun, local, peer, 5).await;
        });
    });
}

#[test]
fn point_to_point_mtu_routes_and_lifetime() {
    in_netns("point_to_point_mtu_routes_and_lifetime", || {
        run(1, async {
            let local = Ipv4Addr::new(10, 250, 8, 1);
            let peer = Ipv4Addr::new(10, 250, 8, 2);
            let tun = Tun::create("dgt%d", 1500).expect("create tun");
            let name = tun.name().to_string();
            assert_eq!(name, "dgt0", "the kernel fills in %d");

            tun.set_peer(local, peer).expect("set_peer");
            tun.up().expect("up");
            let addrs = ip(&["-o", "-4", "addr", "show", "dev", &name]);
            assert!(
                addrs.contains("inet 10.250.8.1 peer 10.250.8.2/32"),
                "{addrs}"
            );
            let routes = ip(&["-4", "route", "show", "dev", &name]);
            assert!(routes.contains("10.250.8.2"), "{routes}");
            ping_through(&tun, local, peer, 1).await;

            tun.set_mtu(576).expect("set_mtu");
            assert_eq!(sys(&name, "mtu"), "576");
            assert_eq!(tun.mtu().unwrap(), 576);
            assert!(tun.set_mtu(40).is_err());
            assert!(tun.set_peer(local, local).is_err());
            assert!(tun.set_ipv4(local, 0).is_err());

            // Switching to a subnet address drops the peer.
            tun.set_ipv4(local, 24).expect("set_ipv4");
            let addrs = ip(&["-o", "-4", "addr", "show", "dev", &name]);
            assert!(addrs.contains("inet 10.250.8.1/24"), "{addrs}");
            assert!(!addrs.contains("peer"), "{addrs}");
            ping_through(&tun, local, Ipv4Addr::new(10, 250, 8, 77), 2).await;

            // A pool outside the interface's prefix gets its own route.
            tun.add_route(Ipv4Addr::new(10, 251, 3, 9), 16)
                .expect("add_route");
            let routes = ip(&["-4", "route", "show", "dev", &name]);
            assert!(routes.contains("10.251.0.0/16"), "{routes}");
            ping_through(&tun, local, Ipv4Addr::new(10, 251, 0, 5), 3).await;

            // The name is taken while we hold the device.
            let err = Tun::create(&name, 1500).unwrap_err();
            assert!(
                err.to_string().contains("TUNSETIFF") && err.to_string().contains(&name),
                "{err}"
            );

            // A name held by another kind of device.
            let err = Tun::create("lo", 1500).unwrap_err();
            assert!(err.to_string().contains("not a tun"), "{err}");

            tun.down().expect("down");
            assert!(!tun.is_up().unwrap());
            let err = tun
                .send(&echo_request(peer, local, 1, 1, b"x"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::NetworkDown, "{err}");
            tun.up().expect("up again");
            ping_through(&tun, local, peer, 4).await;
            drop(tun);
            assert!(
                !Path::new(&format!("/sys/class/net/{name}")).exists(),
                "the interface outlived its Tun"
            );
        });
    });
}

#[test]
fn one_reader_many_writers() {
    in_netns("one_reader_many_writers", || {
        run(2, async {
            let local = Ipv4Addr::new(10, 250, 9, 1);
            let tun = Arc::new(Tun::create("dgt0", 1500).expect("create tun"));
            tun.set_ipv4(local, 24).unwrap();
            tun.up().unwrap();

            const WRITERS: u16 = 4;
            const EACH: u16 = 50; // 200 in flight at most: below txqueuelen 500
            let reader = {
                let tun = Arc::clone(&tun);
                tokio::spawn(async move {
                    let mut seen = HashSet::new();
                    while seen.len() < usize::from(WRITERS * EACH) {
                        let echo = recv_echo_reply(&tun).await;
                        assert_eq!(echo.src, local);
                        assert!(seen.insert((echo.dst, echo.seq)), "duplicate {echo:?}");
                    }
                    seen
                })
            };
            let mut writers = Vec::new();
            for w in 0..WRITERS {
                let tun = Arc::clone(&tun);
                writers.push(tokio::spawn(async move {
                    let peer = Ipv4Addr::new(10, 250, 9, 10 + w as u8);
                    for seq in 0..EACH {
                        let req = echo_request(peer, local, w, seq, &seq.to_be_bytes());
                        tun.send(&req).await.expect("send");
                    }
                }));
            }
            for w in writers {
                w.await.expect("writer task");
            }
            let seen = reader.await.expect("reader task");
            for w in 0..WRITERS {
                for seq in 0..EACH {
                    assert!(seen.contains(&(Ipv4Addr::new(10, 250, 9, 10 + w as u8), seq)));
                }
            }
        });
    });
}
