//! A hung event-log disk (issue 12, item 7): the server runs in-process
//! with its log writer stalled by `eventlog::StallGate`. Callers are not
//! wedged after their verdict, every group refuses new callers while the
//! log cannot be written, and serves again once it can; nothing recorded
//! is lost.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(10);

struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    addrs: Vec<(String, String)>,
    gate: eventlog::StallGate,
}

impl InProcess {
    fn start(s: &Setup, gate: &eventlog::StallGate, groups: usize) -> InProcess {
        let cfg = dialgate::config::load(Some(&s.config), s.data()).unwrap();
        let (btx, brx) = mpsc::channel();
        let hooks = dialgate::serve::Hooks {
            log_stall: Some(gate.clone()),
            bound: Some(btx),
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(dialgate::serve::serve_with(cfg, hooks, async {
                let _ = rx.await;
            }))
        });
        let addrs = (0..groups)
            .map(|_| brx.recv_timeout(T).expect("the group did not listen"))
            .collect();
        InProcess {
            stop: Some(tx),
            thread: Some(thread),
            addrs,
            gate: gate.clone(),
        }
    }

    fn addr(&self, group: &str) -> std::net::SocketAddr {
        self.addrs
            .iter()
            .find(|(g, _)| g == group)
            .unwrap()
            .1
            .parse()
            .unwrap()
    }

    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = self.thread.take().unwrap().join().expect("server panicked");
        r.expect("serve_with");
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // A failed test may leave the disk "hung": let the server finish.
        self.gate.release();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let end = Instant::now() + Duration::from_secs(30);
            while !t.is_finished() {
                assert!(
                    std::thread::panicking() || Instant::now() < end,
                    "the server did not stop within 30 s"
                );
                if Instant::now() >= end {
                    return; // already failing: do not hang the test run
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = t.join();
        }
    }
}

fn login(c: &mut Caller) {
    assert!(
        c.expect("Username: ", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
}

const REFUSED: &str = "event log cannot be written";

#[test]
fn hole_7_a_hung_event_log_write_does_not_wedge_callers() {
    let s = Setup::new(&format!(
        "event_log_timeout = 1\n{}{}",
        group("tcp0", "tcp", "max_callers = 1\n"),
        group("tcp1", "tcp", "")
    ));
    s.add_user("alice", "s3cret");
    let gate = eventlog::StallGate::new();
    let srv = InProcess::start(&s, &gate, 2);

    // Healthy: served and recorded.
    let mut c = Caller::connect(srv.addr("tcp0"));
    login(&mut c);
    assert!(c.expect("granted alice", T));
    assert!(c.wait_closed(T));

    // The disk hangs. A caller who passes the dialog is not handed off
    // unrecorded, and is not left hanging: it is told and hung up once the
    // write has taken event_log_timeout (1 s).
    gate.stall();
    let mut a = Caller::connect(srv.addr("tcp0"));
    login(&mut a);
    let t = Instant::now();
    assert!(
        a.expect(REFUSED, T),
        "wedged after its verdict: {}",
        String::from_utf8_lossy(&a.seen)
    );
    assert!(a.wait_closed(T));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(!String::from_utf8_lossy(&a.seen).contains("granted"));

    // Its slot is free (max_callers = 1: a held slot would give the busy
    // line), and every group refuses new callers at once, with a message.
    for g in ["tcp0", "tcp1", "tcp1"] {
        let mut b = Caller::connect(srv.addr(g));
        assert!(
            b.expect(REFUSED, T),
            "{g}: {}",
            String::from_utf8_lossy(&b.seen)
        );
        let seen = String::from_utf8_lossy(&b.seen).to_string();
        assert!(
            !seen.contains("Username") && !seen.contains("busy"),
            "{g}: {seen}"
        );
        assert!(b.wait_closed(T));
    }

    // The disk answers again: the queued records land, and callers are
    // served again on every group without anyone having to restart.
    gate.release();
    for g in ["tcp1", "tcp0"] {
        let end = Instant::now() + T;
        loop {
            let mut c = Caller::connect(srv.addr(g));
            if c.expect("Username: ", Duration::from_secs(3)) {
                c.send(b"alice\r");
                assert!(c.expect("Password: ", T));
                c.send(b"s3cret\r");
                assert!(c.expect("granted alice", T), "{g}");
                assert!(c.wait_closed(T));
                break;
            }
            assert!(
                c.expect(REFUSED, T),
                "{g}: {}",
                String::from_utf8_lossy(&c.seen)
            );
            assert!(
                Instant::now() < end,
                "{g} still refuses callers after the disk came back"
            );
        }
    }
    srv.stop();

    // The record of the caller hung up during the stall was kept and
    // written, not lost: 4 grants (healthy, the stalled one, two after).
    let ok = s.records(&["--outcome", "success", "--user", "alice"]);
    assert_eq!(ok.len(), 4, "{ok:#?}");
    let refused = s.records(&["--outcome", "refused"]);
    assert!(refused.len() >= 3, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r["detail"] == "event log unavailable")
    );
    let ports: std::collections::BTreeSet<_> = refused
        .iter()
        .map(|r| r["port"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ports.len(), 2, "refused on both groups: {ports:?}");
}
