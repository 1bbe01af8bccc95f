//! What isolation costs: one dialog round trip (the caller types a byte,
//! the module's Receive completes, it Sends the byte back) and one whole
//! transaction (Begin .. Complete .. End), with the C module in this
//! process and in a worker process.
//!
//! `cargo run --release -p cmodule --example roundtrip [ROUNDS]`
//! (needs `cc`; builds `crates/cmodule/examples/echo.c`, and uses the
//! `cmodule-worker` binary next to this example).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cmodule::{CModule, WorkerCommand, WorkerModule, WorkerOptions};
use securityhost::*;

type Wake = Arc<(Mutex<u64>, Condvar)>;

fn wait(w: &Wake, seen: &mut u64) {
    let mut g = w.0.lock().unwrap();
    while *g == *seen {
        let (ng, t) = w.1.wait_timeout(g, Duration::from_secs(5)).unwrap();
        g = ng;
        assert!(!t.timed_out(), "the module stopped answering");
    }
    *seen = *g;
}

/// Runs one transaction with `rounds` round trips; returns (total time,
/// time of the round trips alone).
fn transaction(
    table: &PortTable,
    m: &Arc<dyn SecurityModule>,
    rounds: u32,
) -> (Duration, Duration) {
    let start = Instant::now();
    let wake: Wake = Arc::new((Mutex::new(0), Condvar::new()));
    let w = wake.clone();
    let cfg = Config::default();
    let port = Port::new(
        table.allocate(),
        cfg.clone(),
        "bench",
        Arc::new(SystemClock),
        Box::new(move || {
            *w.0.lock().unwrap() += 1;
            w.1.notify_all();
        }),
    );
    table.insert(&port);
    let code = m.begin(BeginArgs {
        hport: port.hport(),
        send_buffer_size: cfg.send_buffer_size,
        recv_buffer_size: cfg.recv_buffer_size,
        host: port.host(),
    });
    assert_eq!(code, 0);
    port.with(|tx, now| tx.begin_returned(code, now));
    let mut seen = 0;
    let rt = Instant::now();
    for _ in 0..rounds {
        port.with(|tx, _| tx.caller_input(b"x"));
        loop {
            if port.with(|tx, _| tx.poll_transmit()).is_some() {
                break;
            }
            wait(&wake, &mut seen);
        }
    }
    let rt = rt.elapsed();
    port.with(|tx, _| tx.caller_input(b"q"));
    loop {
        match port.with(|tx, _| tx.poll_action()) {
            Some(Action::CallEnd) => {
                let code = m.end(port.hport());
                port.with(|tx, now| tx.end_returned(code, now));
            }
            Some(Action::Finished(o)) => {
                assert!(o.granted().is_some(), "{o:?}");
                break;
            }
            None => wait(&wake, &mut seen),
        }
    }
    table.remove(port.hport());
    (start.elapsed(), rt)
}

fn build(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.c");
    let out = dir.join("echo.so");
    let st = std::process::Command::new("cc")
        .args(["-O2", "-shared", "-fPIC"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(st.success());
    out
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = std::env::temp_dir().join(format!("cmodule-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let so = build(&dir);
    let worker_exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("../cmodule-worker");
    let table = PortTable::new();
    let inproc: Arc<dyn SecurityModule> = Arc::new(CModule::load(&so).unwrap());
    let worker: Arc<dyn SecurityModule> = Arc::new(
        WorkerModule::start(
            WorkerCommand::new(worker_exe),
            &so,
            WorkerOptions::default(),
        )
        .expect("start the worker (build it: cargo build -p cmodule --bins)"),
    );
    for (name, m) in [("in-process", &inproc), ("worker", &worker)] {
        // Warm up, then measure.
        transaction(&table, m, 100);
        let (_, rt) = transaction(&table, m, rounds);
        let mut whole = Duration::ZERO;
        let n = 200;
        for _ in 0..n {
            whole += transaction(&table, m, 1).0;
        }
        println!(
            "{name:>10}: {:>8.1} us per round trip ({rounds} rounds), {:>8.1} us per transaction (Begin..End, 1 round)",
            rt.as_secs_f64() * 1e6 / f64::from(rounds),
            whole.as_secs_f64() * 1e6 / f64::from(n),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
