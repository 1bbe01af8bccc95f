//! C security modules (`rasshost.h`) end to end: compiled with plain
//! `cc -shared -fPIC` during the test, loaded by `dialgate serve` into its
//! module worker, driven by real TCP callers.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(15);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cc -shared -fPIC src -o out`, nothing else, as module authors build.
fn cc(src: &Path, out: &Path) {
    let st = Command::new(require_tool("cc"))
        .args(["-shared", "-fPIC"])
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .expect("cc runs");
    assert!(st.success(), "cc {}", src.display());
}

fn c_group(module: &Path) -> String {
    format!(
        r#"[[group]]
name = "c0"
kind = "tcp"
listen = "127.0.0.1:0"
dialog_time_limit = 10

[group.module]
kind = "c"
path = "{}"

[group.handoff]
kind = "exec"
program = "/bin/sh"
args = ['-c', 'printf "granted %s\r\n" "$DIALGATE_USER"']
"#,
        module.display()
    )
}

#[test]
fn the_pin_example_grants_and_refuses_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("pin.so");
    cc(&repo().join("examples/modules/pin.c"), &so);
    let pins = dir.path().join("pins");
    std::fs::write(&pins, "alice 4321\n").unwrap();
    let s = Setup::new(&c_group(&so));
    let srv = Server::start_with_env(&s, &[("DIALGATE_PIN_FILE", pins.to_str().unwrap())]);
    let mut c = Caller::connect(srv.addr("c0"));
    assert!(
        c.expect("User: ", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    c.send(b"alice\r");
    assert!(c.expect("PIN: ", T));
    c.send(b"4321\r");
    assert!(
        c.expect("granted alice", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    let mut c = Caller::connect(srv.addr("c0"));
    for _ in 0..3 {
        assert!(c.expect("User: ", T));
        c.send(b"alice\r");
        assert!(c.expect("PIN: ", T));
        c.send(b"0000\r");
    }
    assert!(c.expect("Access denied", T));
    assert!(c.wait_closed(T));
    let ok = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(ok[0]["module"], "pin", "the module is named after its file");
    assert_eq!(ok[0]["user"], "alice");
    let bad = s.wait_records(&["--outcome", "failure"], 1, T);
    assert_eq!(bad.len(), 1, "{bad:#?}");
}

const CRASHER: &str = r#"
#include <pthread.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "rasshost.h"

static void (*complete)(SECURITY_MESSAGE *);
static BYTE *sendbuf, *recvbuf;

static void *dialog(void *p) {
    HPORT h = p;
    memcpy(sendbuf, "Say something: ", 15);
    RasSecurityDialogSend(h, sendbuf, 15);
    BYTE *buf = recvbuf; WORD len = 64;   /* inside the Begin receive buffer */
    int ev = eventfd(0, 0);
    if (RasSecurityDialogReceive(h, buf, &len, 0, ev) != PENDING) abort();
    eventfd_t v; eventfd_read(ev, &v);
    if (len > 0 && buf[0] == 'c') { volatile int *z = 0; *z = 1; }   /* segfault */
    if (len > 0 && buf[0] == 'a') abort();
    SECURITY_MESSAGE m; memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_SUCCESS; m.hPort = h; strcpy(m.UserName, "survivor");
    complete(&m);
    return 0;
}

DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD ss, PBYTE r, DWORD rs,
                             VOID (*c)(SECURITY_MESSAGE *)) {
    (void)ss; (void)rs;
    complete = c; sendbuf = s; recvbuf = r;
    pthread_t t; pthread_create(&t, 0, dialog, h); pthread_detach(t);
    return 0;
}
DWORD RasSecurityDialogEnd(HPORT h) { (void)h; return 1; }
"#;

#[test]
fn a_crashing_module_hangs_up_its_caller_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("crasher.c");
    std::fs::write(&src, CRASHER).unwrap();
    std::fs::copy(
        repo().join("include/rasshost.h"),
        dir.path().join("rasshost.h"),
    )
    .unwrap();
    let so = dir.path().join("crasher.so");
    cc(&src, &so);
    let s = Setup::new(&c_group(&so));
    let srv = s.start();
    for (answer, signal) in [("crash\r", "SIGSEGV"), ("abort\r", "SIGABRT")] {
        let mut c = Caller::connect(srv.addr("c0"));
        assert!(c.expect("Say something: ", T));
        c.send(answer.as_bytes());
        assert!(c.wait_closed(T), "hung up after the crash");
        let d = s.wait_records(&["--outcome", "module-defect"], 1, T);
        let last = d.last().unwrap();
        assert!(
            last["detail"].as_str().unwrap_or_default().contains(signal),
            "{last}"
        );
    }
    // The next caller gets a fresh worker.
    let mut c = Caller::connect(srv.addr("c0"));
    assert!(c.expect("Say something: ", T));
    c.send(b"hello\r");
    assert!(
        c.expect("granted survivor", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    assert_eq!(s.records(&["--outcome", "module-defect"]).len(), 2);
}

#[test]
fn a_missing_module_stops_serve_and_check_config() {
    let s = Setup::new(&c_group(Path::new("/nonexistent/module.so")));
    let out = s.cmd(&["check-config"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/module.so"), "{err}");
    let out = s.cmd(&["serve"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/module.so"));
}

/// The token-card response a caller's card computes (RFC 4226 truncation of
/// HMAC-SHA-1(key, challenge text)), worked out by Python's standard library
/// as the example's README shows: an implementation independent of ours.
fn token_response(key_hex: &str, challenge: &str) -> String {
    let py = format!(
        "import hmac, hashlib, struct\n\
         mac = hmac.new(bytes.fromhex('{key_hex}'), b'{challenge}', hashlib.sha1).digest()\n\
         off = mac[19] & 15\n\
         print('%06d' % ((struct.unpack('>I', mac[off:off+4])[0] & 0x7fffffff) % 10**6))\n"
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_tokencard_example_checks_the_challenge_response() {
    require_tool("python3");
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("tokencard.so");
    cc(&repo().join("examples/modules/tokencard.c"), &so);
    let key = "3132333435363738393031323334353637383930";
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# name key\nalice {key}\n")).unwrap();
    let s = Setup::new(&c_group(&so));
    let srv = Server::start_with_env(&s, &[("DIALGATE_TOKENCARD_KEYS", keys.to_str().unwrap())]);
    for right in [true, false] {
        let mut c = Caller::connect(srv.addr("c0"));
        assert!(c.expect("Name: ", T));
        c.send(b"alice\r");
        assert!(c.expect("Challenge: ", T));
        let challenge = c.until("\r\n", T).expect("a challenge line");
        assert!(c.expect("Response: ", T));
        let mut resp = token_response(key, &challenge);
        if !right {
            resp = format!("{:06}", (resp.parse::<u32>().unwrap() + 1) % 1_000_000);
        }
        c.send(format!("{resp}\r").as_bytes());
        if right {
            assert!(
                c.expect("granted alice", T),
                "{}",
                String::from_utf8_lossy(&c.seen)
            );
        } else {
            assert!(
                c.expect("Access denied", T),
                "{}",
                String::from_utf8_lossy(&c.seen)
            );
            // The verdict follows the text; hanging up first would make the
            // record say "caller hung up" (the abort's cause wins).
            assert!(c.wait_closed(T));
        }
    }
    assert_eq!(s.wait_records(&["--outcome", "success"], 1, T).len(), 1);
    assert_eq!(
        s.wait_records(&["--outcome", "failure"], 1, T).len(),
        1,
        "{:#?}",
        s.records(&[])
    );
}

fn test_module(name: &str, dir: &Path) -> PathBuf {
    let so = dir.join(format!("{name}.so"));
    cc(
        &repo().join(format!("crates/cmodule/tests/modules/{name}.c")),
        &so,
    );
    so
}

/// Every error path of spec section 4, from a C module in the worker, with a
/// real TCP caller: the module reports the codes the host gave it.
#[test]
fn host_function_errors_reach_a_c_module_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let so = test_module("misbehave", dir.path());
    let s = Setup::new(&c_group(&so).replace("dialog_time_limit = 10", "dialog_time_limit = 4"));
    let srv = s.start();
    let run = |cmd: &str, expect: &str| {
        let mut c = Caller::connect(srv.addr("c0"));
        c.send(format!("{cmd}\r").as_bytes());
        assert!(
            c.expect(expect, T),
            "{cmd}: {}",
            String::from_utf8_lossy(&c.seen)
        );
        c
    };
    // Each of these completes after its report: wait for the hang-up, so
    // the record is the module's verdict, not "caller hung up".
    for (cmd, report) in [
        ("bad-handle", "R 601 601 601\r\n"),
        ("pointers", "R 87 87 87\r\nR 87 87 87\r\n"),
        ("lengths", "R 603 603 603\r\n"),
        ("timeout", "R 600 638 0\r\n"),
    ] {
        assert!(run(cmd, report).wait_closed(T), "{cmd}");
    }
    let mut c = run("second-receive", "R 600 616 0\r\n");
    c.send(b"Z");
    assert!(c.expect("granted", T));
    assert!(c.wait_closed(T));
    // Hang-up while a Receive is pending: 619 to the module, End, record.
    let c = run("wait", "waiting\r\n");
    drop(c);
    let r = s.wait_records(&["--outcome", "caller-hung-up"], 1, T);
    assert_eq!(r.len(), 1);
    // Complete twice: the first stands, the second is a noted defect.
    let mut c = run("twice", "");
    assert!(c.wait_closed(T));
    // An unterminated UserName: a defect, never a grant.
    let mut c = run("bad-message", "");
    assert!(c.wait_closed(T));
    let d = s.wait_records(&["--outcome", "module-defect"], 1, T);
    assert!(
        d[0]["detail"]
            .as_str()
            .unwrap()
            .contains("UserName without its NUL"),
        "{}",
        d[0]
    );
    // A module that never completes: the dialog time limit, End, record.
    let mut c = run("never", "silent\r\n");
    assert!(c.wait_closed(T));
    let r = s.wait_records(&["--outcome", "dialog-timeout"], 1, T);
    assert_eq!(r.len(), 1);
    let ok = s.records(&["--outcome", "success"]);
    assert!(
        ok.iter().any(|r| r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("second Complete"))),
        "{ok:#?}"
    );
}

#[test]
fn complete_inside_begin_and_a_failing_begin_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let early = test_module("inbegin", dir.path());
    let s = Setup::new(&c_group(&early));
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("c0"));
    assert!(
        c.expect("granted early", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    drop(srv);
    let fails = test_module("beginfails", dir.path());
    let s = Setup::new(&c_group(&fails));
    let srv = s.start();
    let mut c = Caller::connect(srv.addr("c0"));
    assert!(c.wait_closed(T));
    let r = s.wait_records(&["--outcome", "begin-failed"], 1, T);
    assert_eq!(r[0]["error_code"], 1234, "{}", r[0]);
}

/// `cc -shared -fPIC -D... src -o out`: one build of a test module that
/// picks its misbehaviour at compile time.
fn cc_with(src: &Path, out: &Path, define: &str) {
    let st = Command::new(require_tool("cc"))
        .args(["-shared", "-fPIC", define])
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .expect("cc runs");
    assert!(st.success(), "cc {define} {}", src.display());
}

/// Waits (bounded) for a line of the server's log containing `needle`.
fn server_logged(srv: &Server, needle: &str, limit: Duration) -> Option<String> {
    let end = std::time::Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match srv.stderr.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Issue 12, hole 8, end to end: defects only the worker can see (a NULL
/// Complete and one naming no transaction, both inside Begin; a Receive
/// with a pipe as hEvent) hang the TCP caller up at once, far inside the
/// 60 s dialog limit, each recorded as `module-defect` with its cause; the
/// worker's own lines reach the server's log.
#[test]
fn hole_8_worker_defects_hang_up_at_once_and_are_recorded_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let src = repo().join("crates/cmodule/tests/modules/defects.c");
    let cases = [
        (1, "RasSecurityDialogComplete(NULL)"),
        (2, "is not this transaction's"),
        (3, "is not an eventfd"),
    ];
    let mut cfg = String::new();
    for (n, _) in cases {
        let so = dir.path().join(format!("defect{n}.so"));
        cc_with(&src, &so, &format!("-DDEFECT={n}"));
        cfg.push_str(
            &c_group(&so)
                .replace("name = \"c0\"", &format!("name = \"d{n}\""))
                .replace("dialog_time_limit = 10", "dialog_time_limit = 60"),
        );
        cfg.push('\n');
    }
    let s = Setup::new(&cfg);
    let srv = s.start();
    for (i, (n, cause)) in cases.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let mut c = Caller::connect(srv.addr(&format!("d{n}")));
        assert!(c.wait_closed(T), "defect{n}: hung up");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "defect{n}: hung up only after {:?}",
            t0.elapsed()
        );
        assert!(
            !String::from_utf8_lossy(&c.seen).contains("granted"),
            "defect{n}: {}",
            String::from_utf8_lossy(&c.seen)
        );
        let d = s.wait_records(&["--outcome", "module-defect"], i + 1, T);
        assert!(
            d.iter()
                .any(|r| r["detail"].as_str().is_some_and(|t| t.contains(cause))),
            "defect{n}: {d:#?}"
        );
    }
    assert!(
        server_logged(
            &srv,
            "module worker: defects: Receive with a pipe as hEvent returned 87",
            T
        )
        .is_some(),
        "the module's stderr line in the server's log"
    );
}

/// Issue 12, hole 9, end to end: a module that completes SUCCESS and then
/// crashes (in its dialog thread, or in End) before End returned: the
/// caller is never handed off, the record is `module-defect` naming the
/// signal, and the next caller gets a fresh worker whose SUCCESS stands.
#[test]
fn hole_9_a_success_then_a_crash_before_end_returned_never_grants_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let so = test_module("misbehave", dir.path());
    let s = Setup::new(&c_group(&so));
    let srv = s.start();
    for (i, cmd) in ["success-then-abort", "abort-in-end"].iter().enumerate() {
        let mut c = Caller::connect(srv.addr("c0"));
        c.send(format!("{cmd}\r").as_bytes());
        assert!(c.wait_closed(T), "{cmd}: hung up");
        assert!(
            !String::from_utf8_lossy(&c.seen).contains("granted"),
            "{cmd}: a forged SUCCESS was handed off: {}",
            String::from_utf8_lossy(&c.seen)
        );
        let d = s.wait_records(&["--outcome", "module-defect"], i + 1, T);
        let last = d.last().unwrap();
        let detail = last["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("SIGABRT") && detail.contains("verdict does not stand"),
            "{cmd}: {last}"
        );
    }
    assert!(s.records(&["--outcome", "success"]).is_empty());
    let mut c = Caller::connect(srv.addr("c0"));
    c.send(b"bad-handle\r");
    assert!(
        c.expect("granted probe", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
}
