//! End to end: a real `dialgate serve`, real callers (raw TCP, `chat`,
//! Debian's `telnet` under `expect`), the `users` module, the exec hand-off,
//! and the event log read back through `dialgate log`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(10);

fn tcp_setup(extra: &str) -> Setup {
    let s = Setup::new(&group("tcp0", "tcp", extra));
    s.add_user("alice", "s3cret");
    s
}

fn one(recs: &[serde_json::Value]) -> &serde_json::Value {
    assert_eq!(recs.len(), 1, "{recs:#?}");
    &recs[0]
}

/// The users dialog as alice with the right password, up to the
/// hand-off's greeting.
fn log_in_as_alice(c: &mut Caller) {
    assert!(c.expect("Username: ", T));
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
    assert!(c.expect("granted alice", T));
}

#[test]
fn raw_tcp_caller_passes_the_dialog_and_the_handoff_runs() {
    let s = tcp_setup("");
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Test banner", T));
    assert!(c.expect("Username: ", T));
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
    assert!(
        c.expect("granted alice on tcp 127.0.0.1:", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    assert!(c.wait_closed(T), "hand-off ended, line hung up");
    let recs = s.wait_records(&["--outcome", "success"], 1, T);
    let r = one(&recs);
    assert_eq!(r["user"], "alice");
    assert_eq!(r["msg_id"], 1);
    assert_eq!(r["port"], "tcp0");
    assert_eq!(r["module"], "users");
    assert!(r["handoff"].as_str().unwrap().starts_with("exec /bin/sh"));
}

#[test]
fn wrong_password_and_unknown_user_give_the_same_failure_record() {
    let s = tcp_setup("");
    let srv = s.start();
    for (name, pw) in [("alice", "wrong"), ("mallory", "s3cret")] {
        let mut c = Caller::connect(srv.addr("tcp0"));
        for _ in 0..2 {
            assert!(c.expect("Username: ", T));
            c.send(format!("{name}\r").as_bytes());
            assert!(c.expect("Password: ", T));
            c.send(format!("{pw}\r").as_bytes());
            assert!(
                c.expect("Login incorrect", T),
                "{}",
                String::from_utf8_lossy(&c.seen)
            );
        }
        assert!(c.wait_closed(T), "hung up after the tries");
        let text = String::from_utf8_lossy(&c.seen).to_lowercase();
        assert!(
            !text.contains("unknown") && !text.contains("no such"),
            "{text}"
        );
    }
    let recs = s.wait_records(&["--outcome", "failure"], 2, T);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let names: Vec<&str> = recs.iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"alice") && names.contains(&"mallory"),
        "{names:?}"
    );
    for r in &recs {
        assert_eq!(r["msg_id"], 2);
        assert_eq!(r["outcome"], "failure");
        assert!(r.get("handoff").is_none_or(|h| h.is_null()));
    }
    // Same shape: the same set of keys.
    let keys = |r: &serde_json::Value| {
        let mut k: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&recs[0]), keys(&recs[1]));
}

#[test]
fn answers_end_with_cr_lf_or_crlf_typed_one_byte_at_a_time() {
    let s = tcp_setup("");
    let srv = s.start();
    for end in ["\r", "\n", "\r\n"] {
        let mut c = Caller::connect(srv.addr("tcp0"));
        assert!(c.expect("Username: ", T));
        for b in format!("alice{end}").bytes() {
            c.send(&[b]);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(c.expect("Password: ", T), "end {end:?}");
        for b in format!("s3cret{end}").bytes() {
            c.send(&[b]);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            c.expect("granted alice", T),
            "end {end:?}: {}",
            String::from_utf8_lossy(&c.seen)
        );
    }
}

#[test]
fn caller_hanging_up_mid_dialog_is_recorded() {
    let s = tcp_setup("");
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    drop(c);
    let r = s.wait_records(&["--outcome", "caller-hung-up"], 1, T);
    let r = one(&r);
    assert!(
        r["detail"].as_str().unwrap().contains("caller hung up"),
        "{r}"
    );
    drop(srv);
}

#[test]
fn dialog_time_limit_ends_a_silent_caller() {
    let s = tcp_setup("dialog_time_limit = 2\n");
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    let t0 = Instant::now();
    assert!(c.wait_closed(T), "hung up at the limit");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    one(&s.wait_records(&["--outcome", "dialog-timeout"], 1, T));
}

#[test]
fn an_lcp_frame_does_not_bypass_the_module() {
    let s = tcp_setup("dialog_time_limit = 3\n");
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    // LCP Configure-Request as a PPP client sends it, escaped as on the wire.
    let lcp = [
        0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x7d, 0x21, 0x7d, 0x21, 0x7d, 0x20, 0x7d, 0x34, 0x7d,
        0x22, 0x7d, 0x26, 0x7d, 0x20, 0x7d, 0x20, 0x7d, 0x20, 0x7d, 0x20, 0x7d, 0x25, 0x7d, 0x26,
        0x12, 0x34, 0x56, 0x78, 0x7d, 0x27, 0x7d, 0x22, 0x7d, 0x28, 0x7d, 0x22, 0x5f, 0x1c, 0x7e,
    ];
    for _ in 0..5 {
        c.send(&lcp);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.wait_closed(T));
    let seen = String::from_utf8_lossy(&c.seen);
    assert!(!seen.contains("granted"), "{seen}");
    let all = s.wait_records(&[], 1, T);
    let r = one(&all);
    assert_ne!(r["outcome"], "success", "{r}");
}

#[test]
fn a_megabyte_of_garbage_without_a_newline_fails_cleanly() {
    let s = tcp_setup("");
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    let junk: Vec<u8> = (0..1024 * 1024).map(|i| b'A' + (i % 26) as u8).collect();
    // The server may hang up before it has read it all: that is fine.
    let _ = c.s.write_all(&junk);
    assert!(c.wait_closed(T), "hung up");
    let r = s.wait_records(&[], 1, T);
    let r = one(&r);
    assert_eq!(r["outcome"], "failure", "{r}");
    // The server still serves the next caller.
    let mut c = Caller::connect(srv.addr("tcp0"));
    log_in_as_alice(&mut c);
}

#[test]
fn records_survive_a_restart() {
    let s = tcp_setup("");
    {
        let srv = s.start();
        let mut c = Caller::connect(srv.addr("tcp0"));
        log_in_as_alice(&mut c);
        s.wait_records(&[], 1, T);
    }
    let srv = s.start();
    assert_eq!(s.records(&["--user", "alice"]).len(), 1);
    drop(srv);
}

#[test]
fn sigterm_mid_dialog_ends_it_records_it_and_exits_zero() {
    let s = tcp_setup("");
    let mut srv = s.start();
    let mut callers = Vec::new();
    for _ in 0..3 {
        let mut c = Caller::connect(srv.addr("tcp0"));
        assert!(c.expect("Username: ", T));
        callers.push(c);
    }
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
    for c in &mut callers {
        assert!(c.wait_closed(T));
    }
    let recs = s.records(&["--outcome", "shutdown"]);
    assert_eq!(recs.len(), 3, "{recs:#?}");
}

#[test]
fn chat_passes_the_dialog_over_tcp() {
    require_tool("chat");
    require_tool("socat");
    let s = tcp_setup("");
    let srv = s.start();
    let script = s.data().join("t.chat");
    std::fs::write(
        &script,
        "TIMEOUT 10\nABORT 'Login incorrect'\nUsername: alice\nPassword: s3cret\n'granted alice' ''\n",
    )
    .unwrap();
    let out = Command::new("timeout")
        .arg("30")
        .arg("socat")
        .arg(format!("TCP:{}", srv.endpoint("tcp0")))
        .arg(format!(
            "EXEC:chat -v -s -f {},pty,raw,echo=0",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chat failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(one(&r)["user"], "alice");
}

#[test]
fn chat_passes_the_dialog_over_the_pty_port() {
    require_tool("chat");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pty0");
    let s = Setup::new(&group(
        "pty0",
        "pty",
        &format!("link = \"{}\"\n", link.display()),
    ));
    s.add_user("alice", "s3cret");
    let srv = s.start();
    assert_eq!(srv.endpoint("pty0"), link.display().to_string());
    let script = s.data().join("t.chat");
    std::fs::write(
        &script,
        "TIMEOUT 10\nABORT 'Login incorrect'\nUsername: alice\nPassword: s3cret\n'granted alice' ''\n",
    )
    .unwrap();
    // Twice: the port re-arms after each call.
    for round in 0..2 {
        let out = chat_on_tty(&link, &script);
        assert!(
            out.status.success(),
            "round {round}: chat failed: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let r = s.wait_records(&["--outcome", "success"], round + 1, T);
        assert_eq!(r.len(), round + 1);
        // Wait for the re-arm (the link is re-pointed at a fresh pty).
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn telnet_client_under_expect_sees_no_password_echo() {
    require_tool("telnet");
    require_tool("expect");
    let s = Setup::new(&group("telnet0", "telnet", ""));
    s.add_user("alice", "s3cret");
    let srv = s.start();
    let addr = srv.addr("telnet0");
    let script = format!(
        r#"set timeout 10
log_user 1
spawn telnet {ip} {port}
expect "Username: " {{ send "alice\r" }} timeout {{ exit 2 }}
expect "alice" {{}} timeout {{ exit 3 }}
expect "Password: " {{ send "s3cret\r" }} timeout {{ exit 4 }}
expect {{
  "s3cret" {{ exit 5 }}
  "granted alice" {{ exit 0 }}
  timeout {{ exit 6 }}
}}
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    let out = Command::new("timeout")
        .args(["40", "expect", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "expect: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(
        one(&r)["device"].as_str().unwrap().split(' ').next(),
        Some("telnet")
    );
}

#[test]
fn a_thousand_idle_callers_time_out_while_a_real_caller_is_served() {
    let s = tcp_setup("dialog_time_limit = 4\nmax_callers = 2000\n");
    let srv = s.start();
    let addr = srv.addr("tcp0");
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect();
    let t0 = Instant::now();
    let mut c = Caller::connect(addr);
    log_in_as_alice(&mut c);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "served within the idle callers' limit"
    );
    let recs = s.wait_records(
        &["--outcome", "dialog-timeout"],
        1000,
        Duration::from_secs(60),
    );
    assert_eq!(recs.len(), 1000);
    drop(idle);
}

#[test]
fn check_config_reports_file_line_and_column() {
    let s = Setup::new(
        "[[group]]\nname = \"x\"\nkind = \"telnet\"\nlisten = \"localhost\"\n[group.module]\nkind = \"users\"\n",
    );
    let out = s.cmd(&["check-config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dialgate.toml:4:10:"), "{err}");
    let s = tcp_setup("");
    let out = s.cmd(&["check-config"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tcp0: tcp"));
}

#[test]
fn log_follow_prints_new_records_as_they_land() {
    let s = tcp_setup("");
    let srv = s.start();
    let mut follow = s
        .cmd(&["log", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Caller::connect(srv.addr("tcp0"));
    for _ in 0..2 {
        assert!(c.expect("Username: ", T));
        c.send(b"bob\r");
        assert!(c.expect("Password: ", T));
        c.send(b"nope\r");
    }
    let line = rx.recv_timeout(T).expect("follow printed the new record");
    let _ = follow.kill();
    let _ = follow.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["user"], "bob");
    assert_eq!(v["outcome"], "failure");
}

#[test]
fn user_add_asks_twice_without_echo() {
    require_tool("expect");
    let s = Setup::new(&group("tcp0", "tcp", ""));
    let script = format!(
        r#"set timeout 20
spawn {bin} --config {cfg} --data-dir {data} user add carol
expect "Password: " {{ send "hunter22\r" }} timeout {{ exit 2 }}
expect "Again: " {{ send "hunter22\r" }} timeout {{ exit 3 }}
expect {{
  "hunter22" {{ exit 4 }}
  "user carol added" {{ exit 0 }}
  timeout {{ exit 5 }}
}}
"#,
        bin = BIN,
        cfg = s.config.display(),
        data = s.data().display()
    );
    let out = Command::new("timeout")
        .args(["40", "expect", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = s.cmd(&["user", "list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "carol");
    // Two different answers change nothing.
    let script = format!(
        r#"set timeout 20
spawn {bin} --config {cfg} --data-dir {data} user add dave
expect "Password: " {{ send "one\r" }} timeout {{ exit 2 }}
expect "Again: " {{ send "two\r" }} timeout {{ exit 3 }}
expect {{
  "differ" {{ exit 0 }}
  timeout {{ exit 5 }}
}}
"#,
        bin = BIN,
        cfg = s.config.display(),
        data = s.data().display()
    );
    let out = Command::new("timeout")
        .args(["40", "expect", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = s.cmd(&["user", "list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "carol");
}

/// Waits for a server log line containing every one of `words`.
fn server_said(srv: &Server, words: &[&str], limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    while let Ok(line) = srv
        .stderr
        .recv_timeout(end.saturating_duration_since(Instant::now()))
    {
        if words.iter().all(|w| line.contains(w)) {
            return Some(line);
        }
    }
    None
}

#[test]
fn the_log_has_no_ansi_colours_when_stderr_is_not_a_terminal() {
    let s = tcp_setup("");
    let srv = s.start();
    let pid = nix::unistd::Pid::from_raw(srv.child.as_ref().unwrap().id() as i32);
    // A warning is the line most likely to be coloured.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let line = server_said(&srv, &["SIGHUP"], T).expect("the server logs SIGHUP");
    assert!(
        !line.contains('\x1b'),
        "ANSI escape in a piped log: {line:?}"
    );
}

#[test]
fn hole_6_sighup_is_logged_and_the_server_keeps_serving() {
    let s = tcp_setup("");
    let mut srv = s.start();
    let pid = nix::unistd::Pid::from_raw(srv.child.as_ref().unwrap().id() as i32);
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    // In the middle of the caller's dialog (and twice: not a one-off).
    for _ in 0..2 {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
        let line = server_said(&srv, &["SIGHUP", "reload is not supported"], T)
            .expect("the server logs that it ignored SIGHUP");
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("not re-read"), "{line}");
    }
    assert!(
        srv.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );
    // The caller finishes its transaction; its record is written.
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
    assert!(
        c.expect("granted alice", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    assert!(c.wait_closed(T));
    let recs = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(one(&recs)["user"], "alice");
    // New callers are still answered, and SIGTERM still ends it cleanly.
    let mut c = Caller::connect(srv.addr("tcp0"));
    assert!(c.expect("Username: ", T));
    drop(c);
    let status = srv.terminate();
    assert!(status.success(), "{status:?}");
}

/// `chattr +i` (stops even root), undone on drop.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(paths: &[std::path::PathBuf]) -> Immutable {
        let st = Command::new("chattr")
            .arg("+i")
            .args(paths)
            .status()
            .expect("chattr (e2fsprogs) is needed: scripts/test installs it");
        assert!(
            st.success(),
            "chattr +i failed: this test needs root and an ext4-like filesystem"
        );
        Immutable(paths.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[test]
fn hole_13_dialgate_log_reads_a_log_it_cannot_write_and_changes_nothing() {
    let s = tcp_setup("");
    {
        let srv = s.start();
        let mut c = Caller::connect(srv.addr("tcp0"));
        log_in_as_alice(&mut c);
        s.wait_records(&[], 1, T);
    }
    let db = s.data().join("events.sqlite");
    let before = std::fs::read(&db).unwrap();
    let files = |dir: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let listed = files(s.data());
    {
        // Nobody may write the file or create a -wal/-shm beside it.
        let _ro = Immutable::set(&[db.clone(), s.data().to_path_buf()]);
        let recs = s.records(&["--user", "alice"]);
        assert_eq!(one(&recs)["outcome"], "success");
    }
    // Also when it could write: `dialgate log` changes nothing.
    let recs = s.records(&[]);
    assert_eq!(recs.len(), 1);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "dialgate log wrote the log"
    );
    assert_eq!(files(s.data()), listed, "dialgate log created files");
    // A missing log is a clear error, and is not created.
    std::fs::remove_file(&db).unwrap();
    let out = s.cmd(&["log"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such file"), "{err}");
    assert!(!db.exists(), "dialgate log created the log");
}
