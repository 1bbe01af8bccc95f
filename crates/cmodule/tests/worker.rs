//! C modules in a worker process, driven through a real
//! `securityhost::Port`: the same dialogs as in-process, plus crashes,
//! aborts and endless loops that kill the worker but not this process.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cmodule::{StartError, WorkerCommand, WorkerModule, WorkerOptions};
use common::*;
use securityhost::consts::*;
use securityhost::*;

struct Built {
    dir: tempfile::TempDir,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for src in [
            "examples/modules/tokencard.c",
            "examples/modules/pin.c",
            "crates/cmodule/tests/modules/misbehave.c",
            "crates/cmodule/tests/modules/inbegin.c",
            "crates/cmodule/tests/modules/spin.c",
            "crates/cmodule/tests/modules/noend.c",
            "crates/cmodule/tests/modules/latewrite.c",
        ] {
            build_module(dir.path(), src);
        }
        for n in 1..=5 {
            build_module_as(
                dir.path(),
                "crates/cmodule/tests/modules/defects.c",
                &format!("defect{n}"),
                &[&format!("-DDEFECT={n}")],
            );
        }
        std::fs::write(
            dir.path().join("tokencard.keys"),
            "alice 3132333435363738393031323334353637383930\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pins"), "bob 4711\n").unwrap();
        Built { dir }
    })
}

fn so(name: &str) -> PathBuf {
    built().dir.path().join(format!("{name}.so"))
}

fn command() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_cmodule-worker"))
}

fn worker_with(name: &str, opts: WorkerOptions) -> Arc<WorkerModule> {
    let m = WorkerModule::start(command(), &so(name), opts).unwrap();
    // What dialgate wires: a dead worker's transactions end as defects.
    m.on_worker_death(|h, d| {
        if let Some(p) = table().get(h) {
            p.with(|tx, _| tx.module_defect(d));
        }
    });
    Arc::new(m)
}

fn worker(name: &str) -> Arc<WorkerModule> {
    worker_with(name, WorkerOptions::default())
}

fn cfg() -> Config {
    Config {
        send_buffer_size: 64,
        recv_buffer_size: 32,
        ..Config::default()
    }
}

fn challenge(text: &str) -> String {
    let i = text.find("Challenge: ").expect("a challenge") + "Challenge: ".len();
    text[i..i + 16].to_string()
}

#[test]
fn tokencard_through_the_worker() {
    // The worker inherits our environment; each worker test reads the same
    // key file, so setting it before the first spawn is enough.
    set_envs();
    let m = worker("tokencard");
    let mut d = Drive::start(m.clone(), cfg());
    d.expect("Name: ");
    d.input("alice\r");
    d.expect("Response: ");
    let resp = token_response(b"12345678901234567890", &challenge(&d.text()));
    d.input(&format!("{resp}\r"));
    let (o, defects) = d.finish();
    assert_eq!(o.granted(), Some(("alice", "")), "{o:?}");
    assert!(defects.is_empty(), "{defects:?}");

    let mut d = Drive::start(m, cfg());
    d.expect("Name: ");
    d.input("alice\r");
    d.expect("Response: ");
    d.input("999999x\r");
    let (o, _) = d.finish();
    assert!(
        matches!(o, Outcome::Verdict(Verdict::Failure { .. })),
        "{o:?}"
    );
}

#[test]
fn pin_through_the_worker() {
    set_envs();
    let m = worker("pin");
    let mut d = Drive::start(m, cfg());
    d.expect("User: ");
    d.input("bob\r4711\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("bob", "")), "{o:?}: {}", d.text());
}

fn set_envs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = built().dir.path();
        #[allow(unsafe_code)]
        // SAFETY: set once, before any worker is spawned by this test
        // binary (every test calls this first) and before any thread of
        // ours reads the environment.
        unsafe {
            std::env::set_var("DIALGATE_TOKENCARD_KEYS", dir.join("tokencard.keys"));
            std::env::set_var("DIALGATE_PIN_FILE", dir.join("pins"));
            std::env::set_var("DIALGATE_LATEWRITE_DIR", dir);
        }
    });
}

fn misbehave(cmd: &str) -> (String, Outcome, Vec<Defect>) {
    set_envs();
    let mut d = Drive::start(worker("misbehave"), cfg());
    d.input(&format!("{cmd}\r"));
    let (o, defects) = d.finish();
    (d.text(), o, defects)
}

#[test]
fn every_error_path_through_the_worker() {
    assert_eq!(misbehave("bad-handle").0, "R 601 601 601\r\n");
    assert_eq!(misbehave("pointers").0, "R 87 87 87\r\nR 87 87 87\r\n");
    assert_eq!(misbehave("lengths").0, "R 603 603 603\r\n");
    let (_, o, defects) = misbehave("twice");
    assert_eq!(o.granted(), Some(("probe", "")));
    assert!(defects.contains(&Defect::SecondComplete));
    let (_, o, _) = misbehave("bad-message");
    assert_eq!(o, Outcome::Defect(Defect::Unterminated("UserName")));
}

#[test]
fn receive_rules_through_the_worker() {
    set_envs();
    let m = worker("misbehave");
    let mut d = Drive::start(m.clone(), cfg());
    d.input("second-receive\r");
    d.expect("R 600 616 0\r\n");
    d.input("Z");
    d.finish();
    assert!(
        d.text().ends_with(&format!("G 0 1 {}\r\n", b'Z')),
        "{}",
        d.text()
    );

    let mut d = Drive::start(m.clone(), cfg());
    d.input("timeout\r");
    d.expect("waiting\r\n");
    d.advance(Duration::from_secs(2));
    d.finish();
    assert!(d.text().ends_with("R 600 638 0\r\n"), "{}", d.text());

    let mut d = Drive::start(m, cfg());
    d.input("wait\r");
    d.expect("waiting\r\n");
    let now = d.port.now();
    d.port.with(|tx, _| tx.caller_hung_up(now));
    let (o, _) = d.finish();
    assert_eq!(
        o,
        Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: Some(Ok(Verdict::Error {
                code: ERROR_PORT_DISCONNECTED
            }))
        }
    );
}

#[test]
fn complete_inside_begin_through_the_worker() {
    let mut d = Drive::start(worker("inbegin"), cfg());
    let (o, defects) = d.finish();
    assert_eq!(o.granted(), Some(("early", "")));
    assert!(defects.contains(&Defect::SecondComplete), "{defects:?}");
}

#[test]
fn never_completing_ends_at_the_time_limit_through_the_worker() {
    set_envs();
    let mut d = Drive::start(worker("misbehave"), cfg());
    d.input("never\r");
    d.expect("silent\r\n");
    d.advance(Duration::from_secs(121));
    d.until("End", |d| d.ends == 1);
    std::thread::sleep(Duration::from_millis(100));
    d.step();
    d.advance(Duration::from_secs(6));
    let (o, _) = d.finish();
    assert_eq!(
        o,
        Outcome::Aborted {
            cause: AbortCause::DialogTimedOut,
            late: None
        }
    );
}

fn crash(cmd: &str, signal: &str) {
    set_envs();
    let m = worker("misbehave");
    let first = m.worker_pid().unwrap();
    // A second, innocent transaction on the same worker dies with it.
    let mut other = Drive::start(m.clone(), cfg());
    other.step();
    let mut d = Drive::start(m.clone(), cfg());
    d.input(&format!("{cmd}\r"));
    let (o, _) = d.finish();
    match &o {
        Outcome::Defect(Defect::Other(text)) => {
            assert!(text.contains(signal) && text.contains("died"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    let (o2, _) = other.finish();
    assert!(matches!(o2, Outcome::Defect(_)), "{o2:?}");
    // The next caller gets a fresh worker, and it works.
    let mut d = Drive::start(m.clone(), cfg());
    d.input("bad-handle\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("probe", "")), "{o:?}");
    assert_ne!(m.worker_pid(), Some(first));
}

#[test]
fn a_segfault_kills_only_the_worker() {
    crash("segv", "SIGSEGV");
}

#[test]
fn an_abort_kills_only_the_worker() {
    crash("abort", "SIGABRT");
}

#[test]
fn an_endless_begin_is_killed_at_the_call_timeout() {
    let m = worker_with(
        "spin",
        WorkerOptions {
            call_timeout: Duration::from_millis(300),
            ..WorkerOptions::default()
        },
    );
    let mut d = Drive::start(m, cfg());
    let (o, _) = d.finish();
    match &o {
        Outcome::Defect(Defect::Other(text)) => {
            assert!(text.contains("Begin did not return"), "{text}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_errors_name_the_file_and_symbol() {
    let e = WorkerModule::start(command(), &so("absent"), WorkerOptions::default()).unwrap_err();
    assert!(matches!(e, StartError::Load(_)), "{e}");
    assert!(e.to_string().contains("absent.so"), "{e}");
    let e = WorkerModule::start(command(), &so("noend"), WorkerOptions::default()).unwrap_err();
    assert!(e.to_string().contains("RasSecurityDialogEnd"), "{e}");
    let e = WorkerModule::start(
        WorkerCommand::new("/nonexistent/worker"),
        &so("pin"),
        WorkerOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, StartError::Spawn { .. }), "{e}");
}

#[test]
fn a_worker_that_breaks_the_protocol_is_killed() {
    // A fake worker: Ready, then it reads the Begin request (29 bytes) and
    // answers with an impossible length prefix. The supervisor appends
    // `--module PATH --fd 3`, which `sh -c` takes as $0.. and ignores.
    let script = r"printf '\006\000\000\000\001\001\000\000\000x' >&3; head -c 29 <&3 >/dev/null; printf '\377\377\377\377' >&3; exec sleep 5";
    let m = WorkerModule::start(
        WorkerCommand::new("/bin/sh").arg("-c").arg(script),
        &so("pin"),
        WorkerOptions::default(),
    )
    .unwrap();
    m.on_worker_death(|h, d| {
        if let Some(p) = table().get(h) {
            p.with(|tx, _| tx.module_defect(d));
        }
    });
    let mut d = Drive::start(Arc::new(m), cfg());
    let (o, _) = d.finish();
    match &o {
        Outcome::Defect(Defect::Other(text)) => {
            assert!(text.contains("malformed frame"), "{text}")
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 12, hole 9: a worker that dies after a SUCCESS and before End
/// returned does not grant; the record is a module defect naming the death.
fn died_after_success(cmd: &str) {
    set_envs();
    let m = worker("misbehave");
    let mut d = Drive::start(m.clone(), cfg());
    d.input(&format!("{cmd}\r"));
    let (o, _) = d.finish();
    assert_eq!(o.granted(), None, "{cmd}: a forged SUCCESS granted: {o:?}");
    match &o {
        Outcome::Defect(Defect::Other(text)) => assert!(
            text.contains("SIGABRT") && text.contains("before End returned"),
            "{cmd}: {text}"
        ),
        other => panic!("{cmd}: {other:?}"),
    }
    // The next caller gets a fresh worker, and its SUCCESS stands.
    let mut d = Drive::start(m, cfg());
    d.input("bad-handle\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("probe", "")), "{o:?}");
}

#[test]
fn hole_9_a_worker_dying_after_success_before_end_returned_does_not_grant() {
    died_after_success("success-then-abort");
}

#[test]
fn hole_9_an_end_crashing_after_success_does_not_grant() {
    died_after_success("abort-in-end");
}

/// Issue 12, hole 9, when the worker's death is not seen at once: End
/// forks (the child keeps the worker's socket open) and then crashes, so
/// no end of stream tells the supervisor; End's call times out. The SUCCESS
/// awaiting End's return must not stand even with an end grace longer than
/// the call timeout (the virtual clock never moves here), and the dead
/// worker must be replaced, not kept as if alive.
#[test]
fn hole_9_an_end_crashing_after_success_with_its_socket_held_open_does_not_grant() {
    set_envs();
    let m = worker_with(
        "misbehave",
        WorkerOptions {
            call_timeout: Duration::from_millis(500),
            ..WorkerOptions::default()
        },
    );
    let first = m.worker_pid().unwrap();
    let mut d = Drive::start(m.clone(), cfg());
    d.input("fork-abort-in-end\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), None, "a forged SUCCESS granted: {o:?}");
    assert!(matches!(o, Outcome::Defect(_)), "{o:?}");
    // The next caller gets a fresh worker, and its SUCCESS stands.
    let mut d = Drive::start(m.clone(), cfg());
    d.input("bad-handle\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("probe", "")), "{o:?}");
    assert_ne!(m.worker_pid(), Some(first));
}

/// Issue 12, hole 8: a defect the worker sees ends its transaction at once
/// (the virtual clock never moves here: the dialog limit cannot be what
/// ends it) as a module defect naming what was wrong.
fn defect_ends_the_dialog(variant: &str, cause: &str) -> Arc<WorkerModule> {
    capture_log();
    let m = worker(variant);
    let pid = m.worker_pid().unwrap();
    let mut d = Drive::start(m.clone(), cfg());
    let (o, _) = d.finish();
    match &o {
        Outcome::Defect(d) => assert!(d.to_string().contains(cause), "{variant}: {d}"),
        other => panic!("{variant}: {other:?}"),
    }
    // The worker lives on, and End was called for the module's sake (its
    // driver does not call End after a defect).
    assert_eq!(m.worker_pid(), Some(pid), "{variant}");
    let n = variant.trim_start_matches("defect");
    assert!(
        wait_log(&format!("module worker: defects{n}: End called")),
        "{variant}: {}",
        log_text()
    );
    m
}

#[test]
fn hole_8_complete_null_inside_begin_is_a_defect_of_that_transaction() {
    defect_ends_the_dialog("defect1", "RasSecurityDialogComplete(NULL)");
}

#[test]
fn hole_8_complete_with_an_unknown_handle_inside_begin_is_a_defect() {
    defect_ends_the_dialog("defect2", "is not this transaction's");
}

#[test]
fn hole_8_receive_with_a_non_eventfd_hevent_is_a_defect() {
    let _alive = defect_ends_the_dialog("defect3", "is not an eventfd");
    // The module still got its 87, and said so on stderr, which reached
    // this process's log with the worker's prefix.
    assert!(
        wait_log("module worker: defects: Receive with a pipe as hEvent returned 87"),
        "{}",
        log_text()
    );
}

#[test]
fn hole_8_an_unattributable_defect_and_the_worker_log_reach_the_server_log() {
    capture_log();
    let m = worker("defect4");
    let mut d = Drive::start(m, cfg());
    let (o, _) = d.finish();
    // Nothing names a transaction: the dialog goes on to the module's own
    // verdict, and the server logs the defect as an error.
    assert!(
        matches!(&o, Outcome::Verdict(Verdict::Failure { user, .. }) if user == "nobody"),
        "{o:?}"
    );
    assert!(
        wait_log("could not attribute to a transaction: RasSecurityDialogComplete(NULL)"),
        "{}",
        log_text()
    );
    // The worker's own log line, and what the module printed.
    assert!(
        wait_log("module worker: module defect (no transaction to attribute it to)"),
        "{}",
        log_text()
    );
    assert!(
        wait_log("module worker: defects: completed NULL from the dialog thread"),
        "{}",
        log_text()
    );
}

/// A compromised worker cannot write lines into the server's log: the text
/// of a defect frame ("x", a newline, then a forged log line) is logged
/// with its control characters escaped, as the worker's stderr is.
#[test]
fn hole_8_a_defect_text_cannot_forge_server_log_lines() {
    capture_log();
    // Ready, then a Defect frame naming no transaction.
    let script = r"printf '\006\000\000\000\001\001\000\000\000x' >&3; printf '+\000\000\000\010\000\000\000\000\000\000\000\000\036\000\000\000x\012ERROR forged: caller granted' >&3; exec sleep 5";
    let m = WorkerModule::start(
        WorkerCommand::new("/bin/sh").arg("-c").arg(script),
        &so("pin"),
        WorkerOptions::default(),
    )
    .unwrap();
    assert!(wait_log("forged: caller granted"), "{}", log_text());
    let log = log_text();
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")),
        "a forged line in the server log:\n{log}"
    );
    assert!(log.contains(r"x\nERROR forged: caller granted"), "{log}");
    drop(m);
}

/// One caller of `latewrite.c`: granted; its dialog thread goes on writing
/// into the Begin buffers after End returned.
fn late_caller(m: &Arc<WorkerModule>) -> HPort {
    let mut d = Drive::start(m.clone(), cfg());
    let h = d.port.hport();
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("late", "")), "{o:?}");
    h
}

/// Waits (bounded) until the late writer of `h` is done.
fn late_writes_done(h: HPort, limit: Duration) -> bool {
    let f = built().dir.path().join(format!("late-{:x}", h.0));
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Issue 12, hole 10: dialog threads writing into their Begin buffers after
/// End returned (told to stop, not joined) corrupt nothing: the buffers are
/// quarantined, not freed into the heap. The same worker serves every later
/// caller correctly.
#[test]
fn hole_10_late_writes_after_end_leave_the_worker_serving() {
    set_envs();
    let m = worker("latewrite");
    let pid = m.worker_pid();
    let hs: Vec<HPort> = (0..16).map(|_| late_caller(&m)).collect();
    for h in hs {
        assert!(late_writes_done(h, Duration::from_secs(20)), "{h}");
    }
    for _ in 0..16 {
        late_caller(&m);
    }
    let mut d = Drive::start(m.clone(), cfg());
    d.step();
    let (o, defects) = d.finish();
    assert_eq!(o.granted(), Some(("late", "")), "{o:?} {defects:?}");
    assert_eq!(m.worker_pid(), pid, "the worker never died");
}

/// Hole 10 under valgrind: the worker runs in memcheck, and the late writes
/// are not invalid writes (into freed heap blocks, as before the
/// quarantine). Needs valgrind (scripts/test installs it); fails without.
#[test]
fn hole_10_late_writes_after_end_are_clean_under_valgrind() {
    set_envs();
    let log = built().dir.path().join("valgrind-%p.log");
    let cmd = WorkerCommand::new("valgrind")
        .arg("--error-exitcode=99")
        .arg("--leak-check=no")
        .arg(format!("--log-file={}", log.display()))
        .arg(env!("CARGO_BIN_EXE_cmodule-worker"));
    let opts = WorkerOptions {
        call_timeout: Duration::from_secs(60),
        start_timeout: Duration::from_secs(60),
    };
    let m = WorkerModule::start(cmd, &so("latewrite"), opts)
        .expect("the worker runs under valgrind (is valgrind installed?)");
    m.on_worker_death(|h, d| {
        if let Some(p) = table().get(h) {
            p.with(|tx, _| tx.module_defect(d));
        }
    });
    let m = Arc::new(m);
    let pid = m.worker_pid().unwrap();
    let hs: Vec<HPort> = (0..3).map(|_| late_caller(&m)).collect();
    for h in hs {
        assert!(late_writes_done(h, Duration::from_secs(60)), "{h}");
    }
    late_caller(&m);
    assert_eq!(m.worker_pid(), Some(pid), "the worker never died");
    let text = std::fs::read_to_string(built().dir.path().join(format!("valgrind-{pid}.log")))
        .expect("valgrind's log");
    assert!(text.contains("Memcheck"), "valgrind ran: {text}");
    assert!(
        !text.contains("Invalid write") && !text.contains("Invalid read"),
        "{text}"
    );
}

/// Hole 8: the dialog a reported defect ended had a Receive pending; the
/// worker completes it (619, as on every abort) so the module's thread
/// wakes and its End, which joins that thread, returns: the worker is not
/// killed at the call timeout with every other caller on it.
#[test]
fn hole_8_a_defect_completes_the_pending_receive_so_end_returns() {
    capture_log();
    let m = worker_with(
        "defect5",
        WorkerOptions {
            call_timeout: Duration::from_secs(3),
            ..WorkerOptions::default()
        },
    );
    let pid = m.worker_pid();
    let mut d = Drive::start(m.clone(), cfg());
    let (o, _) = d.finish();
    match &o {
        Outcome::Defect(d) => assert!(d.to_string().contains("Complete(NULL)"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert!(
        wait_log("module worker: defects5: the pending Receive (600) ended with length 0"),
        "{}",
        log_text()
    );
    assert!(
        wait_log("module worker: defects5: End returned"),
        "{}",
        log_text()
    );
    assert_eq!(m.worker_pid(), pid, "the worker was not killed");
}
