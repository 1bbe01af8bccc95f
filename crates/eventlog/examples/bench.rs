//! Durable append throughput of the event log with group commit.
//!
//! ```text
//! cargo run --release -p eventlog --example bench -- [--dir DIR] [--seconds S] [--cases 1,8,64,async,pipeline]
//! ```
//!
//! For 1, 8 and 64 concurrent appender threads (and 1,024 async tasks), each
//! appending realistic dialog records as fast as `append` returns (every
//! record durably committed, `synchronous=FULL`), prints records/s and the
//! p50/p99 latency of one append. A last line queues 100,000 records from one
//! thread with `submit` and then waits for all: the writer thread's capacity
//! without per-caller wake-ups. `--dir` selects the filesystem (default:
//! the system temp dir); each run uses a fresh database file.

use std::time::{Duration, Instant};

use eventlog::{EventLog, Kind, Outcome, Record};

const USAGE: &str = "usage: bench [--dir DIR] [--seconds S] [--cases 1,8,64,async,pipeline]";

struct Args {
    dir: Option<std::path::PathBuf>,
    seconds: f64,
    cases: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: None,
        seconds: 3.0,
        cases: ["1", "8", "64", "async", "pipeline"]
            .map(String::from)
            .to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => args.dir = Some(it.next().ok_or("--dir needs a value")?.into()),
            "--seconds" => {
                args.seconds = it
                    .next()
                    .ok_or("--seconds needs a value")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
            }
            "--cases" => {
                let v = it.next().ok_or("--cases needs a value")?;
                args.cases = v.split(',').map(str::to_owned).collect();
            }
            "-h" | "--help" => {
                return Err(USAGE.into());
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn record(n: usize) -> Record {
    let now = time::OffsetDateTime::now_utc();
    let failed = n.is_multiple_of(3);
    let mut r = Record::new(
        Kind::Dialog,
        now - time::Duration::seconds(2),
        now,
        "telnet0",
        format!("tcp 127.0.0.1:{}", 40_000 + n % 20_000),
        "users",
        if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        },
    );
    r.remote = Some(format!("127.0.0.1:{}", 40_000 + n % 20_000));
    r.user = Some(format!("user{}", n % 1000));
    r.msg_id = Some(if failed { 2 } else { 1 });
    r.handoff = (!failed).then(|| "exec /bin/sh exit=0".to_owned());
    r
}

struct Outcome_ {
    records: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn report(label: &str, o: &mut Outcome_) {
    o.latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((o.latencies.len() as f64 - 1.0) * p).round() as usize;
        o.latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{label:>22}: {:>9.0} records/s  ({} records in {:.2} s, append p50 {:.2} ms, p99 {:.2} ms)",
        o.records as f64 / o.elapsed.as_secs_f64(),
        o.records,
        o.elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}

fn run_threads(dir: &std::path::Path, threads: usize, secs: f64) -> Outcome_ {
    let path = dir.join(format!("bench-threads-{threads}.db"));
    let log = EventLog::open(&path).expect("open");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let latencies: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let w = log.writer();
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut n = t;
                    while Instant::now() < deadline {
                        let r = record(n);
                        let t0 = Instant::now();
                        w.append(r).expect("append");
                        lat.push(t0.elapsed());
                        n += threads;
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let elapsed = start.elapsed();
    let latencies: Vec<Duration> = latencies.into_iter().flatten().collect();
    let stored = log.reader().count().expect("count");
    assert_eq!(stored as usize, latencies.len(), "every append is stored");
    drop(log);
    let _ = std::fs::remove_file(&path);
    Outcome_ {
        records: latencies.len(),
        elapsed,
        latencies,
    }
}

fn run_async(dir: &std::path::Path, tasks: usize, secs: f64) -> Outcome_ {
    let path = dir.join(format!("bench-async-{tasks}.db"));
    let log = EventLog::open(&path).expect("open");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..tasks {
            let w = log.writer();
            set.spawn(async move {
                let mut lat = Vec::new();
                let mut n = t;
                while Instant::now() < deadline {
                    let r = record(n);
                    let t0 = Instant::now();
                    w.append_async(r).await.expect("append");
                    lat.push(t0.elapsed());
                    n += tasks;
                }
                lat
            });
        }
        let mut all = Vec::new();
        while let Some(r) = set.join_next().await {
            all.extend(r.expect("task"));
        }
        all
    });
    let elapsed = start.elapsed();
    drop(log);
    let _ = std::fs::remove_file(&path);
    Outcome_ {
        records: latencies.len(),
        elapsed,
        latencies,
    }
}

/// One thread submits `total` records without waiting, then collects every
/// reply: the writer thread's own capacity, without per-append wake-ups.
fn run_pipeline(dir: &std::path::Path, total: usize) -> Outcome_ {
    let path = dir.join("bench-pipeline.db");
    let log = EventLog::open(&path).expect("open");
    let w = log.writer();
    let start = Instant::now();
    let pending: Vec<_> = (0..total)
        .map(|n| (Instant::now(), w.submit(record(n)).expect("submit")))
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for (t0, rx) in pending {
        rx.blocking_recv().expect("reply").expect("append");
        latencies.push(t0.elapsed());
    }
    let elapsed = start.elapsed();
    drop(log);
    let _ = std::fs::remove_file(&path);
    Outcome_ {
        records: total,
        elapsed,
        latencies,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.as_path(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path()
        }
    };
    println!(
        "eventlog bench: durable appends (WAL, synchronous=FULL, group commit) in {}",
        dir.display()
    );
    for case in &args.cases {
        let (label, mut o) = match case.as_str() {
            "async" => (
                "1024 async tasks".to_owned(),
                run_async(dir, 1024, args.seconds),
            ),
            "pipeline" => (
                "pipeline (100k queued)".to_owned(),
                run_pipeline(dir, 100_000),
            ),
            n => match n.parse::<usize>() {
                Ok(threads) if threads > 0 => (
                    format!("{threads} appender threads"),
                    run_threads(dir, threads, args.seconds),
                ),
                _ => {
                    eprintln!("unknown case `{n}`\n{USAGE}");
                    std::process::exit(2);
                }
            },
        };
        report(&label, &mut o);
    }
}
