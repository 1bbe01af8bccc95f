//! `dialgate dial` end to end: two network namespaces made by each test and
//! joined by a veth pair; `dialgate serve` with its tun in the first,
//! `dialgate dial` with its own tun in the second. The caller passes the
//! dialog with a script, runs PPP (CHAP-MD5, MS-CHAPv2, PAP), pings the
//! server's tun address, pushes 1 MiB through the tuns, and hangs up on
//! SIGTERM. Needs root (netns, veth, tun), `ip`, `ping` and `python3`: a
//! test that lacks them fails, naming what is missing.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(20);
/// Set in the inner run, inside the server namespace: the caller's namespace.
const NS_ENV: &str = "DIALGATE_DIAL_TEST_NETNS";
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn run_ok(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a server and a caller namespace joined by a veth pair
/// (10.250.0.1 and 10.250.0.2), then runs the calling test again inside the
/// server namespace. Returns the caller namespace's name when this is that
/// inner run, which does the work; `None` in the outer run.
fn in_netns(test: &str) -> Option<String> {
    if let Some(ns) = std::env::var_os(NS_ENV) {
        let _ = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        return Some(ns.to_string_lossy().into_owned());
    }
    require_netns(test);
    require_tool("ping");
    require_tool("python3");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{}x{n}", std::process::id() % 100_000);
    let (srv, cli) = (format!("dgdial-s-{tag}"), format!("dgdial-c-{tag}"));
    struct Ns(Vec<String>);
    impl Drop for Ns {
        fn drop(&mut self) {
            for ns in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
    let mut guard = Ns(Vec::new());
    for ns in [&srv, &cli] {
        run_ok(&["ip", "netns", "add", ns]);
        guard.0.push(ns.clone());
    }
    let (vs, vc) = (format!("dgv{tag}s"), format!("dgv{tag}c"));
    run_ok(&[
        "ip", "link", "add", &vs, "type", "veth", "peer", "name", &vc,
    ]);
    run_ok(&["ip", "link", "set", &vs, "netns", &srv]);
    run_ok(&["ip", "link", "set", &vc, "netns", &cli]);
    run_ok(&["ip", "-n", &srv, "addr", "add", "10.250.0.1/24", "dev", &vs]);
    run_ok(&["ip", "-n", &cli, "addr", "add", "10.250.0.2/24", "dev", &vc]);
    for (ns, dev) in [(&srv, &vs), (&cli, &vc)] {
        run_ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        run_ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    let out = Command::new("timeout")
        .arg("150")
        .args(["ip", "netns", "exec", &srv])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(NS_ENV, &cli)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("DIALGATE_TEST_VERBOSE").is_some() {
        eprintln!("{text}");
    }
    assert!(
        out.status.success() && text.contains("1 passed"),
        "inner run failed:\n{text}"
    );
    None
}

fn add_chap_user(s: &Setup, name: &str, password: &str) {
    let mut add = s.cmd(&["user", "add", name, "--allow-chap-md5", "--password-stdin"]);
    add.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = add.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// A server with a tun (10.250.1.1/24) and one group `dialin` of `kind`
/// (tcp on the veth address, or a pty at `line` in the data dir), the users
/// dialog, and a PPP hand-off with `auth`.
fn server_setup(kind: &str, auth: &str) -> Setup {
    server_setup_with(kind, auth, "[group.module]\nkind = \"users\"\ntries = 1\n")
}

/// As [`server_setup`], with `module` as the group's module block (empty:
/// a dedicated PPP port).
fn server_setup_with(kind: &str, auth: &str, module: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = if kind == "pty" {
        format!("link = \"{}\"", dir.path().join("line").display())
    } else {
        "listen = \"10.250.0.1:0\"".to_string()
    };
    let cfg = format!(
        r#"[network]
tun = "dgs0"
address = "10.250.1.1/24"
dns = ["10.250.1.1"]

[[group]]
name = "dialin"
kind = "{kind}"
{endpoint}

{module}
[group.handoff]
kind = "ppp"
auth = [{auth}]
pool = "10.250.1.10-10.250.1.11"
"#
    );
    let config = dir.path().join("dialgate.toml");
    std::fs::write(&config, cfg).unwrap();
    let s = Setup { dir, config };
    add_chap_user(&s, "alice", "s3cret");
    s
}

const SCRIPT: &str = "# the users module's dialog\n\
TIMEOUT 10\n\
'Username: ' alice\n\
\"Password: \" s3cret\n";

/// A running `dialgate dial` in the caller's namespace.
struct Dial {
    child: Option<Child>,
    /// Everything it wrote to stdout (the terminal window, "PPP up").
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: mpsc::Receiver<String>,
    said: Vec<String>,
}

impl Dial {
    /// `dialgate dial <target> --script ...` in namespace `ns`, with the PPP
    /// password `password` in a file and the dialog script `script`.
    fn start(s: &Setup, ns: &str, target: &[&str], script: &str, password: &str) -> Dial {
        let sf = s.data().join("dial.chat");
        std::fs::write(&sf, script).unwrap();
        let mut args: Vec<String> = target.iter().map(|a| a.to_string()).collect();
        args.push("--script".into());
        args.push(sf.display().to_string());
        Dial::spawn(s, ns, &args, password)
    }

    /// `dialgate dial <args> --user alice` (password in a file), stdin piped.
    fn spawn(s: &Setup, ns: &str, args: &[String], password: &str) -> Dial {
        let pf = s.data().join("dial.password");
        std::fs::write(&pf, format!("{password}\n")).unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, BIN, "dial"])
            .args(args)
            .args(["--user", "alice", "--password-file"])
            .arg(&pf)
            .args(["--tun", "dgc%d", "--ppp-timeout", "20"])
            .env_remove("DIALGATE_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut r = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if std::env::var_os("DIALGATE_TEST_VERBOSE").is_some() {
                    eprintln!("dial out: {:?}", String::from_utf8_lossy(&buf[..n]));
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match r.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw).trim_end().to_string();
                if std::env::var_os("DIALGATE_TEST_VERBOSE").is_some() {
                    eprintln!("dial err: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dial {
            child: Some(child),
            stdout,
            stderr,
            said: Vec::new(),
        }
    }

    /// Types `keys` into dial's stdin.
    fn type_keys(&mut self, keys: &[u8]) {
        let c = self.child.as_mut().expect("running");
        let stdin = c.stdin.as_mut().unwrap();
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until stdout shows `needle`; returns all of stdout.
    fn wait_out(&mut self, needle: &str) -> String {
        let end = Instant::now() + T;
        loop {
            let text = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > end {
                let st = self.wait_exit(Duration::from_secs(1));
                panic!(
                    "no {needle:?} from dial ({st:?}): {text:?}\n{}",
                    self.drain()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn drain(&mut self) -> String {
        while let Ok(l) = self.stderr.try_recv() {
            self.said.push(l);
        }
        self.said.join("\n")
    }

    /// Waits for "PPP up": (our address, the server's, the DNS text).
    fn wait_up(&mut self) -> (Ipv4Addr, Ipv4Addr, String) {
        let text = self.wait_out("PPP up on dgc");
        let l = text.lines().find(|l| l.contains("PPP up on dgc")).unwrap();
        let rest = l.split(": local ").nth(1).unwrap();
        let mut it = rest.split(", ");
        let local = it.next().unwrap().parse().unwrap();
        let peer = it
            .next()
            .unwrap()
            .trim_start_matches("peer ")
            .parse()
            .unwrap();
        let dns = it.next().unwrap_or("").trim().to_string();
        (local, peer, dns)
    }

    /// Waits (bounded) for the exit code; kills the process at the limit.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigterm(&self) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
}

impl Drop for Dial {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// 1 MiB from the caller's namespace to a listener on the server's tun
/// address; returns what the listener counted.
fn bulk(ns: &str) -> u64 {
    const SIZE: u64 = 1 << 20;
    let l = TcpListener::bind("10.250.1.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut n = 0u64;
        let mut buf = vec![0u8; 65536];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = c.write_all(format!("{n}\n").as_bytes());
        let _ = tx.send(n);
    });
    let py = format!(
        "import socket\n\
s = socket.create_connection(('10.250.1.1', {port}), 10)\n\
s.settimeout(30)\n\
s.sendall(b'x' * {SIZE})\n\
s.shutdown(socket.SHUT_WR)\n\
print(s.makefile().readline().strip())\n"
    );
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", ns, "python3", "-c", &py])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bulk sender: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        SIZE.to_string()
    );
    rx.recv_timeout(T).expect("the listener counted")
}

fn ping(ns: &str, dst: &str) -> String {
    let out = Command::new("timeout")
        .args([
            "30", "ip", "netns", "exec", ns, "ping", "-c", "3", "-W", "3", dst,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ping: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The whole call: dialog by script, PPP with `method`, ping, 1 MiB, hang
/// up on SIGTERM (exit 0), and both event-log records.
fn call_ping_bulk_hang_up(ns: &str, kind: &str, auth: &str, method: &str) {
    let s = server_setup(kind, auth);
    let srv = s.start();
    let ep = srv.endpoint("dialin");
    let flag = match kind {
        "pty" => "--device",
        "telnet" => "--telnet",
        _ => "--tcp",
    };
    let mut d = Dial::start(&s, ns, &[flag, &ep], SCRIPT, "s3cret");
    let (local, peer, dns) = d.wait_up();
    assert_eq!(
        local,
        Ipv4Addr::new(10, 250, 1, 10),
        "the pool's first address"
    );
    assert_eq!(
        peer,
        Ipv4Addr::new(10, 250, 1, 1),
        "the server's tun address"
    );
    assert_eq!(dns, "DNS 10.250.1.1");

    let p = ping(ns, "10.250.1.1");
    assert!(p.contains("3 received"), "{p}");
    assert_eq!(bulk(ns), 1 << 20);

    d.sigterm();
    let t0 = Instant::now();
    let code = d.wait_exit(T);
    assert_eq!(code, Some(0), "a clean hang-up by us:\n{}", d.drain());
    // Terminate-Request answered by Terminate-Ack (not the Max-Terminate
    // retries of a silent peer, 2 x 3 s).
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let said = d.drain();
    assert!(said.contains("closed locally: User request"), "{said}");
    assert!(
        !said.contains("BINARY"),
        "telnet BINARY agreed both ways: {said}"
    );

    let recs = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(recs.len(), 1, "{:#?}", s.records(&[]));
    let r = &recs[0];
    assert_eq!(r["outcome"], "session-ended", "{r}");
    assert_eq!(r["ppp"]["user"], "alice");
    assert_eq!(r["ppp"]["method"], method);
    assert_eq!(r["ppp"]["address"], "10.250.1.10");
    // We disconnect once our Terminate-Request is acked (RFC 1661 3.7), so
    // the server may see the hang-up before its own Stopping state ends.
    let cause = r["ppp"]["cause"].as_str().unwrap();
    assert!(
        cause.contains("peer terminated") || cause.contains("hung up"),
        "our LCP Terminate: {cause}"
    );
    assert!(r["ppp"]["packets_in"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["ppp"]["packets_out"].as_u64().unwrap() >= 3, "{r}");
    // The 1 MiB bulk transfer, and more.
    assert!(r["ppp"]["bytes_in"].as_u64().unwrap() >= 1 << 20, "{r}");
    let dialog = s.records(&["--kind", "dialog"]);
    assert_eq!(dialog.len(), 1, "{dialog:#?}");
    assert_eq!(dialog[0]["outcome"], "success");
    assert_eq!(dialog[0]["user"], "alice");
    assert_eq!(dialog[0]["handoff"], "ppp");
}

#[test]
fn dial_over_tcp_with_chap_md5() {
    if let Some(ns) = in_netns("dial_over_tcp_with_chap_md5") {
        call_ping_bulk_hang_up(&ns, "tcp", "\"chap-md5\"", "chap-md5");
    }
}

#[test]
fn dial_over_tcp_with_mschapv2() {
    if let Some(ns) = in_netns("dial_over_tcp_with_mschapv2") {
        call_ping_bulk_hang_up(&ns, "tcp", "\"mschapv2\"", "ms-chapv2");
    }
}

#[test]
fn dial_over_tcp_with_pap() {
    if let Some(ns) = in_netns("dial_over_tcp_with_pap") {
        call_ping_bulk_hang_up(&ns, "tcp", "\"pap\"", "pap");
    }
}

#[test]
fn dial_over_a_pty_port() {
    if let Some(ns) = in_netns("dial_over_a_pty_port") {
        call_ping_bulk_hang_up(&ns, "pty", "\"mschapv2\", \"pap\"", "ms-chapv2");
    }
}

#[test]
fn a_wrong_ppp_password_exits_with_the_auth_code() {
    let Some(ns) = in_netns("a_wrong_ppp_password_exits_with_the_auth_code") else {
        return;
    };
    let s = server_setup("tcp", "\"chap-md5\"");
    let srv = s.start();
    let ep = srv.endpoint("dialin");
    // The dialog is passed; PPP gets another secret.
    let mut d = Dial::start(&s, &ns, &["--tcp", &ep], SCRIPT, "not-it");
    let code = d.wait_exit(T);
    assert_eq!(code, Some(6), "PPP authentication failed:\n{}", d.drain());
    let r = s.wait_records(&["--outcome", "ppp-auth-failed"], 1, T);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
}

#[test]
fn a_refused_dialog_and_a_failed_script_have_their_codes() {
    let Some(ns) = in_netns("a_refused_dialog_and_a_failed_script_have_their_codes") else {
        return;
    };
    let s = server_setup("tcp", "\"pap\"");
    let srv = s.start();
    let ep = srv.endpoint("dialin");
    // A wrong dialog password: the server says no and hangs up.
    let wrong = "'Username: ' alice\n'Password: ' nope\n";
    let mut d = Dial::start(&s, &ns, &["--tcp", &ep], wrong, "s3cret");
    assert_eq!(d.wait_exit(T), Some(5), "refused:\n{}", d.drain());
    let r = s.wait_records(&["--kind", "dialog"], 1, T);
    assert_eq!(r.len(), 1);
    assert_ne!(r[0]["outcome"], "success", "{}", r[0]);
    assert!(s.records(&["--kind", "ppp-session"]).is_empty());

    // A prompt that never comes: the script times out.
    let never = "TIMEOUT 1\n'Username: ' alice\n'No such prompt' x\n";
    let mut d = Dial::start(&s, &ns, &["--tcp", &ep], never, "s3cret");
    assert_eq!(d.wait_exit(T), Some(4), "script timed out:\n{}", d.drain());
    assert!(d.drain().contains("did not come within 1s"));

    // An ABORT string fails the script at once.
    let abort = "ABORT Username\nTIMEOUT 10\n'Password: ' x\n";
    let t0 = Instant::now();
    let mut d = Dial::start(&s, &ns, &["--tcp", &ep], abort, "s3cret");
    assert_eq!(d.wait_exit(T), Some(4), "aborted:\n{}", d.drain());
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(d.drain().contains("script aborted"));

    // Nobody listening: could not connect.
    let mut d = Dial::start(&s, &ns, &["--tcp", "10.250.0.1:9"], SCRIPT, "s3cret");
    assert_eq!(d.wait_exit(T), Some(3), "no connection:\n{}", d.drain());
}

#[test]
fn dial_over_telnet_with_pap() {
    if let Some(ns) = in_netns("dial_over_telnet_with_pap") {
        call_ping_bulk_hang_up(&ns, "telnet", "\"pap\"", "pap");
    }
}

#[test]
fn the_terminal_window_passes_keys_and_ctrl_bracket_p_starts_ppp() {
    let Some(ns) = in_netns("the_terminal_window_passes_keys_and_ctrl_bracket_p_starts_ppp") else {
        return;
    };
    let s = server_setup("tcp", "\"chap-md5\"");
    let srv = s.start();
    let ep = srv.endpoint("dialin");
    let target = vec!["--tcp".to_string(), ep.clone()];

    // Ctrl-] q hangs up during the dialog: exit 0.
    let mut d = Dial::spawn(&s, &ns, &target, "s3cret");
    let text = d.wait_out("Username: ");
    assert!(text.contains("Ctrl-] p starts PPP"), "the hint: {text:?}");
    d.type_keys(b"\x1dq");
    assert_eq!(d.wait_exit(T), Some(0), "{}", d.drain());
    s.wait_records(&["--kind", "dialog"], 1, T);
    assert!(s.records(&["--kind", "ppp-session"]).is_empty());

    // The caller types the dialog, then Ctrl-] p.
    let mut d = Dial::spawn(&s, &ns, &target, "s3cret");
    d.wait_out("Username: ");
    d.type_keys(b"alice\r");
    d.wait_out("Password: ");
    d.type_keys(b"s3cret\r");
    // The users module's dialog ends without a banner: give the verdict a
    // moment, then switch.
    std::thread::sleep(Duration::from_millis(500));
    d.type_keys(b"\x1dp");
    let (local, peer, _) = d.wait_up();
    assert_eq!(local, Ipv4Addr::new(10, 250, 1, 10));
    let p = ping(&ns, &peer.to_string());
    assert!(p.contains("3 received"), "{p}");
    d.sigterm();
    assert_eq!(d.wait_exit(T), Some(0), "{}", d.drain());
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
    assert_eq!(r[0]["ppp"]["method"], "chap-md5");
}

#[test]
fn a_dedicated_port_without_dialog_and_a_peer_that_drops_the_link() {
    let Some(ns) = in_netns("a_dedicated_port_without_dialog_and_a_peer_that_drops_the_link")
    else {
        return;
    };
    let s = server_setup_with("tcp", "\"pap\"", "");
    let mut srv = s.start();
    let ep = srv.endpoint("dialin");
    let args = ["--tcp".to_string(), ep, "--no-dialog".to_string()];
    let mut d = Dial::spawn(&s, &ns, &args, "s3cret");
    let (local, peer, _) = d.wait_up();
    assert_eq!(local, Ipv4Addr::new(10, 250, 1, 10));
    let p = ping(&ns, &peer.to_string());
    assert!(p.contains("3 received"), "{p}");
    // The server shuts down: it terminates the link, the caller reports a
    // link dropped by the peer.
    assert!(srv.terminate().success());
    assert_eq!(
        d.wait_exit(T),
        Some(8),
        "dropped by the peer:\n{}",
        d.drain()
    );
    // Its Terminate-Request (it may hang up right after our Terminate-Ack).
    let said = d.drain();
    assert!(said.contains("peer terminated"), "{said}");
    let r = s.records(&["--kind", "ppp-session"]);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["outcome"], "shutdown", "{}", r[0]);
    assert!(s.records(&["--kind", "dialog"]).is_empty(), "no dialog");
}

/// What is checked before any call: no root, no server needed.
#[test]
fn local_mistakes_have_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let dial = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(BIN);
        c.arg("dial").args(args).env_remove("DIALGATE_PASSWORD");
        if let Some(pw) = env {
            c.env("DIALGATE_PASSWORD", pw);
        }
        let out = c.stdin(Stdio::null()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No target: a usage error (clap's 2).
    assert_eq!(dial(&["--no-dialog"], None).0, Some(2));
    // A user but no password anywhere: usage.
    let (code, err) = dial(
        &["--tcp", "127.0.0.1:9", "--no-dialog", "--user", "a"],
        None,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DIALGATE_PASSWORD"), "{err}");
    // An unreadable password file, a broken script: local errors.
    let missing = dir.path().join("missing");
    let (code, err) = dial(
        &[
            "--tcp",
            "127.0.0.1:9",
            "--no-dialog",
            "--user",
            "a",
            "--password-file",
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    let script = dir.path().join("bad.chat");
    std::fs::write(&script, "TIMEOUT never\n").unwrap();
    let (code, err) = dial(
        &["--tcp", "127.0.0.1:9", "--script", script.to_str().unwrap()],
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 1: TIMEOUT"), "{err}");
    // A tun name the kernel would refuse: a tun error, before any call.
    let (code, err) = dial(
        &["--tcp", "127.0.0.1:9", "--no-dialog", "--tun", "no/slash"],
        Some("pw"),
    );
    assert_eq!(code, Some(9), "{err}");
    assert!(err.contains("tun error"), "{err}");
    // The exit codes are in the help.
    let out = Command::new(BIN).args(["dial", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  the call ended cleanly",
        "5  refused",
        "6  PPP authentication failed",
        "9  tun error",
    ] {
        assert!(help.contains(line), "{line:?} in {help}");
    }
}
