//! Serial modem lines end to end, in-process: `serve_with` answers fake
//! Hayes modems (`fakemodem`) on ptys, with the fakes' control lines plugged
//! in through [`dialgate::serve::Hooks`]. Callers talk on each fake's far
//! pty: `chat`, a prompt reader, or our PPP stack in the client role. The
//! PPP tests (carrier lost mid-PPP, callback) run inside a network namespace
//! of their own, as `ppp_session.rs` does (root, tun).

mod fakemodem;
mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fakemodem::{FakeModem, FakeModemOptions};
use ppp::link::Event;
use support::*;

const T: Duration = Duration::from_secs(15);

/// The `[group.modem]` table the tests use unless they say otherwise:
/// answer on the second RING, short hang-up timings.
const MODEM: &str = r#"answer_on_ring = 2
command_timeout = "1s"
dtr_drop = "50ms"
guard_time = "200ms"
carrier_poll = "20ms"
"#;

/// A `serial` group on `modems`, with `modem` as its `[group.modem]` and
/// `rest` (module, hand-off, callback tables) after it.
fn serial_group(name: &str, modems: &[&FakeModem], modem: &str, rest: &str) -> String {
    let devices: Vec<String> = modems
        .iter()
        .map(|m| format!("\"{}\"", m.device().display()))
        .collect();
    format!(
        "[[group]]\nname = \"{name}\"\nkind = \"serial\"\ndevices = [{}]\n\n[group.modem]\n{modem}\n{rest}\n",
        devices.join(", ")
    )
}

const USERS_EXEC: &str = r#"[group.module]
kind = "users"
tries = 1

[group.handoff]
kind = "exec"
program = "/bin/sh"
args = ['-c', 'printf "granted %s on %s\r\n" "$DIALGATE_USER" "$DIALGATE_DEVICE"']
"#;

/// An in-process server on a runtime of its own, stopped and joined on drop.
struct Rig {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Rig {
    fn start(s: &Setup, modems: &[&FakeModem]) -> Rig {
        let lines: Vec<_> = modems.iter().map(|m| (m.device(), m.lines())).collect();
        Rig::start_with(
            s,
            Arc::new(move |p: &std::path::Path| {
                lines
                    .iter()
                    .find(|(d, _)| d == p)
                    .map(|(_, l)| Box::new(l.clone()) as dialgate::modemline::DynLines)
            }),
        )
    }

    fn start_with(s: &Setup, hook: dialgate::modemline::LinesHook) -> Rig {
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let cfg = dialgate::config::load(Some(&s.config), s.data()).unwrap();
        let hooks = dialgate::serve::Hooks {
            lines: Some(hook),
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(dialgate::serve::serve_with(cfg, hooks, async {
                let _ = rx.await;
            }))
        });
        Rig {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let r = t.join().expect("server thread panicked");
            if !std::thread::panicking() {
                r.expect("serve_with");
            }
        }
    }
}

/// `ATZ` commands the modem got: one per init round.
fn inits(m: &FakeModem) -> usize {
    m.commands().iter().filter(|c| c.as_str() == "ATZ").count()
}

/// Waits until the line initialised its modem (DTR up, init sent, idle).
fn wait_ready(m: &FakeModem, rounds: usize) {
    assert!(
        m.wait_until(
            |m| m.dtr() && inits(m) >= rounds && m.commands().last().is_some_and(|c| c != "ATZ"),
            T
        ),
        "modem not initialised: {:?}",
        m.commands()
    );
    // The last init command's OK reaching the line.
    std::thread::sleep(Duration::from_millis(100));
}

fn users(s: &Setup, users: &[(&str, &str)]) {
    for (u, p) in users {
        let mut add = s.cmd(&["user", "add", u, "--allow-chap-md5", "--password-stdin"]);
        let mut child = add
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            format!("{p}\n").as_bytes(),
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// After the `Username: ` prompt: logs in as alice and waits for the
/// hand-off program's greeting.
fn log_in_as_alice(caller: &mut PtyLine, seen: &mut Vec<u8>) {
    caller.send(b"alice\r");
    assert!(caller.expect("Password: ", seen, T));
    caller.send(b"s3cret\r");
    assert!(
        caller.expect("granted alice", seen, T),
        "{}",
        String::from_utf8_lossy(seen)
    );
}

fn ring_interval() -> Duration {
    Duration::from_millis(200)
}

#[test]
fn answers_on_the_second_ring_logs_the_connect_and_notices_a_lost_carrier() {
    require_tool("chat");
    let fm = FakeModem::new(FakeModemOptions::default());
    let s = Setup::new(&serial_group("modems", &[&fm], MODEM, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&fm]);
    wait_ready(&fm, 1);
    assert_eq!(fm.call(ring_interval(), 5), Some(2), "answered on RING 2");
    assert!(fm.commands().iter().any(|c| c == "ATA"));

    // Carrier lost mid-dialog.
    let mut caller = PtyLine::open(&fm.caller_path());
    let mut seen = Vec::new();
    assert!(
        caller.expect("Username: ", &mut seen, T),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    caller.send(b"ali");
    let before = inits(&fm);
    let dropped = Instant::now();
    fm.drop_carrier();
    // Re-armed within a second: hung up, the modem initialised again.
    assert!(
        fm.wait_until(
            |m| inits(m) > before && m.dtr() && m.commands().last().is_some_and(|c| c != "ATZ"),
            Duration::from_secs(1)
        ),
        "not re-armed {:?} after the carrier dropped: {:?}",
        dropped.elapsed(),
        fm.commands()
    );
    let r = s.wait_records(&["--kind", "dialog"], 1, T);
    assert_eq!(r.len(), 1, "{r:#?}");
    let rec = &r[0];
    assert_eq!(
        rec["outcome"],
        "caller-hung-up",
        "{rec} {:?} {:?}",
        fm.commands(),
        fm.dtr_history()
    );
    assert_eq!(
        rec["device"],
        format!("{} 33600/V42", fm.device().display()),
        "{rec}"
    );
    assert!(
        rec["detail"].as_str().unwrap().contains("carrier lost"),
        "{rec}"
    );

    // The next call: `chat` passes the dialog on the caller's end.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fm.call(ring_interval(), 5), Some(2));
    let script = s.data().join("t.chat");
    std::fs::write(
        &script,
        "TIMEOUT 10\nABORT 'Login incorrect'\nUsername: alice\nPassword: s3cret\n'granted alice' ''\n",
    )
    .unwrap();
    let out = chat_on_tty(&fm.caller_path(), &script);
    assert!(
        out.status.success(),
        "chat failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(r[0]["user"], "alice");
    assert!(r[0]["device"].as_str().unwrap().ends_with(" 33600/V42"));
}

#[test]
fn an_auto_answering_modem_is_left_to_answer_by_itself() {
    let fm = FakeModem::new(FakeModemOptions {
        connect: "CONNECT 9600/ARQ".into(),
        ..FakeModemOptions::default()
    });
    let modem = MODEM.replace(
        "answer_on_ring = 2",
        "answer_on_ring = 0\ninit = [\"ATZ\", \"ATE0V1&C1&D2S0=3\"]",
    );
    let s = Setup::new(&serial_group("auto", &[&fm], &modem, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&fm]);
    wait_ready(&fm, 1);
    assert_eq!(fm.call(ring_interval(), 6), Some(3), "S0=3: the third RING");
    let mut caller = PtyLine::open(&fm.caller_path());
    let mut seen = Vec::new();
    assert!(caller.expect("Username: ", &mut seen, T));
    log_in_as_alice(&mut caller, &mut seen);
    assert!(
        !fm.commands().iter().any(|c| c == "ATA"),
        "dialgate never sent ATA: {:?}",
        fm.commands()
    );
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(
        r[0]["device"],
        format!("{} 9600/ARQ", fm.device().display())
    );
}

#[test]
fn a_modem_that_never_answers_ok_is_retried_with_back_off_while_the_other_line_serves() {
    let dead = FakeModem::new(FakeModemOptions {
        never_ok: true,
        ..FakeModemOptions::default()
    });
    let good = FakeModem::new(FakeModemOptions::default());
    let modem = format!(
        "{MODEM}init_attempts = 3\ninit_backoff = \"300ms\"\ninit_backoff_max = \"5s\"\ninit_failed_retry = \"2s\"\n"
    )
    .replace("command_timeout = \"1s\"", "command_timeout = \"200ms\"");
    let s = Setup::new(&serial_group("pool", &[&dead, &good], &modem, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&dead, &good]);

    // The good line answers while the dead one is being retried.
    wait_ready(&good, 1);
    assert_eq!(good.call(ring_interval(), 5), Some(2));
    let mut caller = PtyLine::open(&good.caller_path());
    let mut seen = Vec::new();
    assert!(caller.expect("Username: ", &mut seen, T));

    // The dead line: ATZ at growing intervals (200 ms timeout + 300 ms,
    // + 600 ms), then out of service for 2 s, recorded once.
    let mut at = vec![];
    let start = Instant::now();
    let mut last = 0;
    while at.len() < 5 && start.elapsed() < T {
        let n = inits(&dead);
        if n > last {
            at.push(Instant::now());
            last = n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(at.len(), 5, "{:?}", dead.commands());
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // The first round (three attempts) may have started before we watched.
    let round = gaps
        .iter()
        .position(|g| *g >= Duration::from_millis(1500))
        .expect("a retry after the 2 s out-of-service wait");
    assert!(gaps[round] <= Duration::from_millis(3500), "{gaps:?}");
    if round + 3 <= gaps.len() {
        let (a, b) = (gaps[round + 1], gaps[round + 2]);
        assert!(
            b > a + Duration::from_millis(150),
            "back-off grows: {gaps:?}"
        );
    }
    let r = s.wait_records(&["--outcome", "modem-init-failed"], 1, T);
    assert_eq!(r.len(), 1, "recorded once per outage: {r:#?}");
    assert_eq!(r[0]["kind"], "line");
    assert_eq!(r[0]["device"], dead.device().display().to_string());
    let detail = r[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("did not answer OK to ATZ") && detail.contains("3 attempts"),
        "{detail}"
    );
    // The good line's call was never disturbed.
    caller.send(b"alice\r");
    assert!(caller.expect("Password: ", &mut seen, T));
}

#[test]
fn hang_up_drops_dtr_and_falls_back_to_escape_and_ath() {
    let dtr = FakeModem::new(FakeModemOptions::default());
    let deaf = FakeModem::new(FakeModemOptions {
        ignore_dtr: true,
        ..FakeModemOptions::default()
    });
    let cfg = format!(
        "{}{}",
        serial_group("dtr", &[&dtr], MODEM, USERS_EXEC),
        serial_group("deaf", &[&deaf], MODEM, USERS_EXEC)
    );
    let s = Setup::new(&cfg);
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&dtr, &deaf]);
    for (m, escape) in [(&dtr, false), (&deaf, true)] {
        wait_ready(m, 1);
        assert_eq!(m.call(ring_interval(), 5), Some(2));
        let inits_before = inits(m);
        let drops_before = m.dtr_history().iter().filter(|on| !**on).count();
        let mut caller = PtyLine::open(&m.caller_path());
        let mut seen = Vec::new();
        assert!(caller.expect("Username: ", &mut seen, T));
        caller.send(b"alice\r");
        assert!(caller.expect("Password: ", &mut seen, T));
        caller.send(b"wrong\r");
        // The module refuses: dialgate hangs up.
        assert!(
            m.wait_until(|m| !m.connected() && inits(m) > inits_before, T),
            "escape {escape}: {:?}",
            m.commands()
        );
        let drops = m.dtr_history().iter().filter(|on| !**on).count();
        assert!(drops > drops_before, "DTR dropped first");
        let cmds = m.commands();
        let tail = &cmds[cmds.iter().position(|c| c == "ATA").unwrap()..];
        if escape {
            let plus = tail.iter().position(|c| c == "+++");
            let ath = tail.iter().position(|c| c == "ATH");
            assert!(
                plus.is_some() && ath > plus,
                "+++ then ATH after DTR did nothing: {tail:?}"
            );
        } else {
            assert!(!tail.iter().any(|c| c == "+++" || c == "ATH"), "{tail:?}");
        }
        // Re-armed: the next call is answered.
        wait_ready(m, inits_before + 1);
        assert_eq!(m.call(ring_interval(), 5), Some(2));
        let mut seen = Vec::new();
        assert!(caller.expect("Username: ", &mut seen, T));
        m.drop_carrier();
    }
    let r = s.wait_records(&["--outcome", "failure"], 2, T);
    assert_eq!(r.len(), 2, "{r:#?}");
}

#[test]
fn a_pool_answers_on_every_idle_line_at_once() {
    let a = FakeModem::new(FakeModemOptions::default());
    let b = FakeModem::new(FakeModemOptions {
        connect: "CONNECT 2400".into(),
        ..FakeModemOptions::default()
    });
    let s = Setup::new(&serial_group("pool", &[&a, &b], MODEM, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&a, &b]);
    wait_ready(&a, 1);
    wait_ready(&b, 1);
    // Line a is busy with a caller who is still typing.
    assert_eq!(a.call(ring_interval(), 5), Some(2));
    let mut first = PtyLine::open(&a.caller_path());
    let mut seen_a = Vec::new();
    assert!(first.expect("Username: ", &mut seen_a, T));
    // A second caller reaches line b and logs in meanwhile.
    assert_eq!(b.call(ring_interval(), 5), Some(2));
    let mut second = PtyLine::open(&b.caller_path());
    let mut seen_b = Vec::new();
    assert!(second.expect("Username: ", &mut seen_b, T));
    log_in_as_alice(&mut second, &mut seen_b);
    // The first caller finishes too.
    log_in_as_alice(&mut first, &mut seen_a);
    let r = s.wait_records(&["--outcome", "success"], 2, T);
    let mut devices: Vec<String> = r
        .iter()
        .map(|r| r["device"].as_str().unwrap().to_string())
        .collect();
    devices.sort();
    let mut want = vec![
        format!("{} 33600/V42", a.device().display()),
        format!("{} 2400", b.device().display()),
    ];
    want.sort();
    assert_eq!(devices, want);
}

/// Control lines of a null-modem cable: DCD is whatever the test says.
#[derive(Clone, Default)]
struct Cable {
    dcd: Arc<std::sync::atomic::AtomicBool>,
    dtr: Arc<std::sync::Mutex<Vec<bool>>>,
}

impl modem::ModemLines for Cable {
    type Error = std::io::Error;

    fn set_dtr(&mut self, on: bool) -> std::io::Result<()> {
        self.dtr.lock().unwrap().push(on);
        Ok(())
    }

    fn set_rts(&mut self, _on: bool) -> std::io::Result<()> {
        Ok(())
    }

    fn status(&mut self) -> std::io::Result<modem::LineStatus> {
        Ok(modem::LineStatus {
            dcd: self.dcd.load(std::sync::atomic::Ordering::SeqCst),
            dsr: true,
            ri: false,
            cts: true,
        })
    }
}

#[test]
fn a_direct_line_watches_dcd_only_when_it_is_wired() {
    // The cable: a pty whose slave is dialgate's line; we are the master.
    let pty = nix::pty::openpty(None, None).unwrap();
    let path = nix::unistd::ttyname(&pty.slave).unwrap();
    let flags = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    )
    .unwrap();
    let mut caller = PtyLine(std::fs::File::from(pty.master));
    let s = Setup::new(&format!(
        "[[group]]\nname = \"console\"\nkind = \"serial\"\ndevice = \"{}\"\n\n{USERS_EXEC}",
        path.display()
    ));
    users(&s, &[("alice", "s3cret")]);
    let cable = Cable::default();
    cable.dcd.store(true, std::sync::atomic::Ordering::SeqCst);
    let hook_cable = cable.clone();
    let rig = Rig::start_with(
        &s,
        Arc::new(move |_p: &std::path::Path| {
            Some(Box::new(hook_cable.clone()) as dialgate::modemline::DynLines)
        }),
    );
    assert!(
        wait_for(|| !cable.dtr.lock().unwrap().is_empty(), T),
        "DTR raised"
    );
    // DCD wired and up: the caller's terminal going away ends the call.
    let mut seen = Vec::new();
    caller.send(b"alice\r");
    assert!(
        caller.expect("Password: ", &mut seen, T),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let dropped = Instant::now();
    cable.dcd.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = s.wait_records(&["--kind", "dialog"], 1, T);
    assert!(
        dropped.elapsed() < Duration::from_secs(5),
        "not the dialog timeout"
    );
    assert_eq!(r[0]["outcome"], "caller-hung-up", "{}", r[0]);
    assert!(r[0]["detail"].as_str().unwrap().contains("carrier lost"));
    // Hung up with a DTR pulse.
    assert!(wait_for(
        || cable.dtr.lock().unwrap().ends_with(&[false, true]),
        T
    ));
    // DCD low at the start of a call: not wired, not watched.
    std::thread::sleep(Duration::from_millis(100));
    let mut seen = Vec::new();
    log_in_as_alice(&mut caller, &mut seen);
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["device"], path.display().to_string());
    // Stopping the server hangs the cable up too (HUPCL is off).
    drop(rig);
    assert_eq!(cable.dtr.lock().unwrap().last(), Some(&false));
}

fn wait_for(what: impl Fn() -> bool, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while !what() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A modem's control lines with DCD stuck low (not wired).
#[derive(Clone)]
struct DcdNotWired(fakemodem::FakeModemLines);

impl modem::ModemLines for DcdNotWired {
    type Error = std::io::Error;

    fn set_dtr(&mut self, on: bool) -> std::io::Result<()> {
        self.0.set_dtr(on)
    }

    fn set_rts(&mut self, on: bool) -> std::io::Result<()> {
        self.0.set_rts(on)
    }

    fn status(&mut self) -> std::io::Result<modem::LineStatus> {
        let mut st = self.0.status()?;
        st.dcd = false;
        Ok(st)
    }
}

#[test]
fn a_modem_line_whose_dcd_is_not_wired_still_serves_its_calls() {
    let fm = FakeModem::new(FakeModemOptions::default());
    let s = Setup::new(&serial_group("nodcd", &[&fm], MODEM, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let lines = DcdNotWired(fm.lines());
    let _rig = Rig::start_with(
        &s,
        Arc::new(move |_p: &std::path::Path| {
            Some(Box::new(lines.clone()) as dialgate::modemline::DynLines)
        }),
    );
    wait_ready(&fm, 1);
    assert_eq!(fm.call(ring_interval(), 5), Some(2));
    let mut caller = PtyLine::open(&fm.caller_path());
    let mut seen = Vec::new();
    assert!(caller.expect("Username: ", &mut seen, T));
    log_in_as_alice(&mut caller, &mut seen);
    let r = s.wait_records(&["--outcome", "success"], 1, T);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
}

#[test]
fn without_control_lines_shutdown_hangs_up_with_escape_and_ath() {
    let fm = FakeModem::new(FakeModemOptions::default());
    let s = Setup::new(&serial_group("nolines", &[&fm], MODEM, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    // No hook lines: the pty refuses the modem ioctls, so none are used.
    let rig = Rig::start_with(&s, Arc::new(|_p: &std::path::Path| None));
    assert!(
        fm.wait_until(|m| m.commands().iter().any(|c| c.starts_with("ATE0")), T),
        "{:?}",
        fm.commands()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fm.call(ring_interval(), 5), Some(2));
    let mut caller = PtyLine::open(&fm.caller_path());
    let mut seen = Vec::new();
    assert!(caller.expect("Username: ", &mut seen, T));
    let before = fm.commands().len();
    drop(rig);
    let after = fm.commands()[before..].to_vec();
    assert!(
        after.first().map(String::as_str) == Some("+++") && after.iter().any(|c| c == "ATH"),
        "{after:?}"
    );
    assert!(!fm.connected(), "the call is down");
    let r = s.records(&["--outcome", "shutdown"]);
    assert_eq!(r.len(), 1, "{:#?}", s.records(&[]));
}

#[test]
fn a_modem_left_online_by_a_killed_server_is_hung_up_before_init() {
    let fm = FakeModem::new(FakeModemOptions::default());
    // The previous server: DTR up, a call answered, then killed (DTR stays).
    let mut old = fm.lines();
    modem::ModemLines::set_dtr(&mut old, true).unwrap();
    {
        let mut dev = PtyLine::open(&fm.device());
        dev.send(b"ATA\r");
        assert!(fm.wait_until(FakeModem::connected, T));
    }
    let mut caller = PtyLine::open(&fm.caller_path());
    let s = Setup::new(&serial_group("restart", &[&fm], MODEM, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&fm]);
    wait_ready(&fm, 1);
    assert!(!fm.connected(), "hung up by the DTR drop");
    // Nothing of the init reached the old caller as data.
    let mut seen = Vec::new();
    assert!(!caller.expect("AT", &mut seen, Duration::from_millis(300)));
    assert_eq!(fm.call(ring_interval(), 5), Some(2));
    let mut seen = Vec::new();
    assert!(caller.expect("Username: ", &mut seen, T));
}

// ---- PPP over the modem line (network namespace) ----

fn ppp_config(modem: &FakeModem, modem_extra: &str, callback: &str) -> String {
    format!(
        r#"[network]
tun = "dgm0"
address = "10.251.1.1/24"

{}"#,
        serial_group(
            "modems",
            &[modem],
            &format!("{MODEM}{modem_extra}"),
            &format!(
                r#"[group.module]
kind = "users"
tries = 1

[group.handoff]
kind = "ppp"
auth = ["chap-md5"]
pool = "10.251.1.10-10.251.1.11"
{callback}"#
            ),
        )
    )
}

/// Answers a call and passes the users dialog as `user`; PPP (or the
/// callback prompt) comes next.
fn dial_in(m: &FakeModem, user: &str, password: &str) -> PtyLine {
    wait_ready(m, 1);
    assert_eq!(m.call(ring_interval(), 5), Some(2));
    let mut line = PtyLine::open(&m.caller_path());
    let mut seen = Vec::new();
    assert!(line.expect("Username: ", &mut seen, T));
    line.send(format!("{user}\r").as_bytes());
    assert!(line.expect("Password: ", &mut seen, T));
    line.send(format!("{password}\r").as_bytes());
    line
}

/// PPP on `line` as `user` until IPCP is up.
fn ppp_up(line: &mut PtyLine, user: &str, password: &str) -> ppp::link::Link {
    let mut link = client_link(user.as_bytes(), password);
    let evs = pump(&mut link, line, T, |e, _| matches!(e, Event::Up { .. }));
    assert!(
        evs.iter().any(|e| matches!(e, Event::Up { .. })),
        "no IPCP up: {evs:#?}"
    );
    link
}

#[test]
fn carrier_lost_mid_ppp_ends_the_session_and_re_arms() {
    if !in_netns("carrier_lost_mid_ppp_ends_the_session_and_re_arms") {
        return;
    }
    let fm = FakeModem::new(FakeModemOptions::default());
    let s = Setup::new(&ppp_config(&fm, "", ""));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&fm]);
    let mut line = dial_in(&fm, "alice", "s3cret");
    let _link = ppp_up(&mut line, "alice", "s3cret");
    let before = inits(&fm);
    fm.drop_carrier();
    let r = s.wait_records(&["--kind", "ppp-session"], 1, T);
    assert_eq!(r.len(), 1, "{r:#?}");
    let rec = &r[0];
    assert_eq!(rec["ppp"]["user"], "alice", "{rec}");
    assert_eq!(rec["ppp"]["address"], "10.251.1.10", "{rec}");
    assert!(
        rec["detail"].as_str().unwrap().contains("carrier lost"),
        "{rec}"
    );
    assert!(rec["device"].as_str().unwrap().ends_with(" 33600/V42"));
    assert!(
        fm.wait_until(|m| inits(m) > before, Duration::from_secs(2)),
        "{:?}",
        fm.commands()
    );
    // The address went back to the pool, and the line answers again.
    let mut line = dial_in(&fm, "alice", "s3cret");
    let mut link = ppp_up(&mut line, "alice", "s3cret");
    link.close(Instant::now(), "User request");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(evs.iter().any(|e| matches!(e, Event::Down { .. })));
    let r = s.wait_records(&["--kind", "ppp-session"], 2, T);
    assert_eq!(r.len(), 2, "{r:#?}");
}

fn callback_config(fm: &FakeModem, callback_users: &str) -> Setup {
    let callback = format!(
        "\n[group.callback]\ndelay = \"300ms\"\nattempts = 2\nusers = {{ {callback_users} }}\n"
    );
    let s = Setup::new(&ppp_config(fm, "", &callback));
    users(&s, &[("alice", "s3cret")]);
    s
}

/// The first leg of a callback: the dialog (and the number when `typed`),
/// PPP authentication, then "Calling you back" and the hang-up.
fn first_leg(fm: &FakeModem, typed: Option<&str>) -> PtyLine {
    let mut line = dial_in(fm, "alice", "s3cret");
    if let Some(n) = typed {
        let mut seen = Vec::new();
        assert!(line.expect("Callback number: ", &mut seen, T));
        line.send(format!("{n}\r").as_bytes());
    }
    let mut link = client_link(b"alice", "s3cret");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(
        evs.iter().any(|e| matches!(e, Event::Down { .. })),
        "{evs:#?}"
    );
    assert!(!evs.iter().any(|e| matches!(e, Event::Up { .. })));
    line
}

/// Callback: the dialog, PPP authentication, the hang-up, the call back to
/// `number`, and PPP again on the new call up to IPCP.
fn callback_round(typed: Option<&str>, number: &str, callback_users: &str) {
    let fm = FakeModem::new(FakeModemOptions::default());
    let s = callback_config(&fm, callback_users);
    let _rig = Rig::start(&s, &[&fm]);
    let mut line = first_leg(&fm, typed);
    // The call back.
    assert!(
        fm.wait_until(|m| !m.dialled().is_empty() && m.connected(), T),
        "{:?}",
        fm.commands()
    );
    assert_eq!(fm.dialled(), vec![number.to_string()]);
    assert!(fm.commands().iter().any(|c| *c == format!("ATDT{number}")));
    let mut link = ppp_up(&mut line, "alice", "s3cret");
    link.close(Instant::now(), "User request");
    let evs = pump(&mut link, &mut line, T, |_, _| false);
    assert!(evs.iter().any(|e| matches!(e, Event::Down { .. })));

    let sessions = s.wait_records(&["--kind", "ppp-session"], 2, T);
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let outcomes: Vec<_> = sessions.iter().map(|r| r["outcome"].clone()).collect();
    assert!(outcomes.contains(&"callback".into()), "{outcomes:?}");
    assert!(outcomes.contains(&"session-ended".into()), "{outcomes:?}");
    for r in &sessions {
        assert_eq!(r["ppp"]["user"], "alice", "{r}");
    }
    let cb = s.records(&["--outcome", "callback-connected"]);
    assert_eq!(cb.len(), 1, "{:#?}", s.records(&[]));
    assert_eq!(cb[0]["user"], "alice");
    assert!(
        cb[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("called {number}")),
        "{}",
        cb[0]
    );
    assert_eq!(s.records(&["--kind", "dialog"]).len(), 1, "one dialog");
}

#[test]
fn callback_to_a_preset_number() {
    if !in_netns("callback_to_a_preset_number") {
        return;
    }
    callback_round(None, "5551234", "alice = \"5551234\"");
}

#[test]
fn callback_to_a_number_the_caller_gives() {
    if !in_netns("callback_to_a_number_the_caller_gives") {
        return;
    }
    callback_round(Some("0,5559876"), "0,5559876", "alice = \"caller\"");
}

#[test]
fn soak_a_thousand_calls_in_a_row_on_one_line() {
    const CALLS: usize = 1000;
    let fm = FakeModem::new(FakeModemOptions {
        answer_delay: Duration::from_millis(2),
        ..FakeModemOptions::default()
    });
    let modem = "answer_on_ring = 1\ncommand_timeout = \"1s\"\ndtr_drop = \"10ms\"\nguard_time = \"50ms\"\ncarrier_poll = \"10ms\"\n";
    let s = Setup::new(&serial_group("soak", &[&fm], modem, USERS_EXEC));
    users(&s, &[("alice", "s3cret")]);
    let _rig = Rig::start(&s, &[&fm]);
    wait_ready(&fm, 1);
    let mut caller = PtyLine::open(&fm.caller_path());
    let started = Instant::now();
    let mut logins = 0;
    for call in 0..CALLS {
        // Rings until the line answers: a line that is not re-armed in
        // 5 s counts as stuck.
        assert!(
            fm.call(Duration::from_millis(50), 100).is_some(),
            "call {call}: the line did not answer: {:?}",
            &fm.commands()[fm.commands().len().saturating_sub(12)..]
        );
        let mut seen = Vec::new();
        assert!(
            caller.expect("Username: ", &mut seen, T),
            "call {call}: no prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        if call % 100 == 99 {
            // Now and then a whole login and hand-off, then the caller's
            // modem hangs up after the program's greeting.
            log_in_as_alice(&mut caller, &mut seen);
            logins += 1;
        } else {
            caller.send(b"al");
        }
        fm.drop_carrier();
    }
    let took = started.elapsed();
    let r = s.wait_records(&["--kind", "dialog", "--limit", "5000"], CALLS, T);
    assert_eq!(r.len(), CALLS, "every call recorded");
    let ok = r.iter().filter(|r| r["outcome"] == "success").count();
    let lost = r
        .iter()
        .filter(|r| {
            r["outcome"] == "caller-hung-up"
                && r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("carrier lost"))
        })
        .count();
    assert_eq!(ok, logins, "{:#?}", &r[..3]);
    assert_eq!(ok + lost, CALLS, "every other call ended by the carrier");
    eprintln!("{CALLS} calls in {took:?}");
}

#[test]
fn a_busy_callback_number_is_tried_again_then_given_up_and_the_line_re_arms() {
    if !in_netns("a_busy_callback_number_is_tried_again_then_given_up_and_the_line_re_arms") {
        return;
    }
    let fm = FakeModem::new(FakeModemOptions {
        dial_busy: true,
        ..FakeModemOptions::default()
    });
    let s = callback_config(&fm, "alice = \"5551234\"");
    let _rig = Rig::start(&s, &[&fm]);
    let _line = first_leg(&fm, None);
    let failed = s.wait_records(&["--outcome", "callback-failed"], 2, T);
    assert_eq!(failed.len(), 2, "{:#?}", s.records(&[]));
    for (i, r) in failed.iter().enumerate() {
        assert_eq!(r["kind"], "line");
        assert_eq!(r["user"], "alice");
        let d = r["detail"].as_str().unwrap();
        assert!(
            d.contains(&format!("attempt {} of 2", i + 1)) && d.contains("BUSY"),
            "{d}"
        );
    }
    assert_eq!(fm.dialled(), vec!["5551234", "5551234"]);
    // Given up: the line answers callers again.
    let inits_now = inits(&fm);
    wait_ready(&fm, inits_now);
    assert_eq!(fm.call(ring_interval(), 5), Some(2));
    let mut line = PtyLine::open(&fm.caller_path());
    let mut seen = Vec::new();
    assert!(line.expect("Username: ", &mut seen, T));
}
