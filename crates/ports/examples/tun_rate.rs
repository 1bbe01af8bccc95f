//! Raw tun read/write rate: ICMP echo round trips through a `ports::tun::Tun`.
//!
//! ```text
//! sudo cargo run --release -p ports --example tun_rate [SECONDS] [WINDOW]
//! ```
//!
//! Needs root. The program makes its own network namespace
//! (`dgtunrate-<pid>`), re-executes itself inside it with `ip netns exec`
//! and deletes it at the end, so the host's network is never touched.
//! Inside, it creates tun `dgtrate0` with 10.250.6.1/24 and, for each
//! packet size, for SECONDS (default 3) writes ICMP echo requests from
//! 10.250.6.2 into the tun while a second task reads the kernel's echo
//! replies, keeping at most WINDOW (default 256, below the tun's transmit
//! queue of 500) requests outstanding. It prints round trips per second
//! and the megabytes per second (10^6 bytes of IP packets) written into
//! and read from the tun. This is the "raw tun read/write rate" the PPP
//! benchmarks compare their throughput with.

use std::net::Ipv4Addr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ports::tun::Tun;
use tokio::sync::Semaphore;

const CHILD_ENV: &str = "DIALGATE_TUN_RATE_CHILD";
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 250, 6, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 250, 6, 2);
/// IP packet sizes measured: a small packet and one near a PPP link's MTU.
const SIZES: [usize; 2] = [84, 1400];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = match args.first().map(|s| s.parse()) {
        None => 3,
        Some(Ok(s)) if (1..=600).contains(&s) => s,
        Some(_) => return usage("SECONDS must be 1 to 600"),
    };
    let window: usize = match args.get(1).map(|s| s.parse()) {
        None => 256,
        Some(Ok(w)) if (1..=450).contains(&w) => w,
        Some(_) => return usage("WINDOW must be 1 to 450"),
    };
    if std::env::var_os(CHILD_ENV).is_some() {
        return child(Duration::from_secs(secs), window);
    }
    parent(&args, secs)
}

fn usage(why: &str) -> ExitCode {
    eprintln!("tun_rate: {why}\nusage: tun_rate [SECONDS] [WINDOW]");
    ExitCode::from(2)
}

/// Make the namespace, run ourselves inside it, delete it.
fn parent(args: &[String], secs: u64) -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("tun_rate: needs root (it creates a network namespace and a tun device)");
        return ExitCode::from(2);
    }
    let ns = format!("dgtunrate-{}", std::process::id());
    match Command::new("ip").args(["netns", "add", &ns]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("tun_rate: `ip netns add {ns}` failed: {s}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("tun_rate: cannot run `ip`: {e}");
            return ExitCode::FAILURE;
        }
    }
    let code = run_inside(&ns, args, secs);
    if !matches!(
        Command::new("ip").args(["netns", "del", &ns]).status(),
        Ok(s) if s.success()
    ) {
        eprintln!("tun_rate: warning: could not delete namespace {ns}");
    }
    code
}

fn run_inside(ns: &str, args: &[String], secs: u64) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("tun_rate: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tun_rate: cannot start `ip netns exec`: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limit = Duration::from_secs(secs * SIZES.len() as u64 + 30);
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return ExitCode::SUCCESS,
            Ok(Some(s)) => {
                eprintln!("tun_rate: measurement failed: {s}");
                return ExitCode::FAILURE;
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("tun_rate: measurement did not finish within {limit:?}");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn child(dur: Duration, window: usize) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tun_rate: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(measure_all(dur, window)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun_rate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn measure_all(dur: Duration, window: usize) -> std::io::Result<()> {
    // No IPv6 on the device: its router solicitations would only add noise.
    let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    let tun = Arc::new(Tun::create("dgtrate0", 1500)?);
    tun.set_ipv4(LOCAL, 24)?;
    tun.up()?;
    println!(
        "tun_rate: tun {} mtu {}, ICMP echo round trips {PEER} -> {LOCAL}, {} s per size, window {window}, 2 tokio workers",
        tun.name(),
        tun.mtu()?,
        dur.as_secs()
    );
    for size in SIZES {
        measure(&tun, size, dur, window).await?;
    }
    Ok(())
}

async fn measure(tun: &Arc<Tun>, size: usize, dur: Duration, window: usize) -> std::io::Result<()> {
    let request = echo_request(PEER, LOCAL, 0x5254, size - 28);
    let permits = Arc::new(Semaphore::new(window));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let reader = {
        let (tun, permits, received, stop) = (
            Arc::clone(tun),
            Arc::clone(&permits),
            Arc::clone(&received),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let n = match tokio::time::timeout(Duration::from_millis(200), tun.recv(&mut buf))
                    .await
                {
                    Ok(r) => r?,
                    Err(_) => continue,
                };
                // An echo reply (type 0) of the size we sent.
                if n == size && buf.get(9) == Some(&1) && buf.get(20) == Some(&0) {
                    received.fetch_add(1, Ordering::Relaxed);
                    permits.add_permits(1);
                }
            }
            Ok::<(), std::io::Error>(())
        })
    };

    let start = Instant::now();
    let mut sent: u64 = 0;
    while start.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(1), permits.acquire()).await {
            Ok(Ok(p)) => p.forget(),
            _ => break, // replies stopped coming back
        }
        tun.send(&request).await?;
        sent += 1;
    }
    let elapsed = start.elapsed();
    // Let the outstanding replies come back (bounded).
    let drain = Instant::now();
    while received.load(Ordering::Relaxed) < sent && drain.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed_all = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    reader
        .await
        .map_err(|e| std::io::Error::other(format!("reader task: {e}")))??;

    // Writes happened within `elapsed`; reads within `elapsed_all`.
    let got = received.load(Ordering::Relaxed);
    let (secs, secs_all) = (elapsed.as_secs_f64(), elapsed_all.as_secs_f64());
    let rate = got as f64 / secs_all;
    let write_mb = sent as f64 * size as f64 / secs / 1e6;
    let read_mb = got as f64 * size as f64 / secs_all / 1e6;
    println!(
        "  {size:>5} B packets: {sent} written, {got} replies read in {secs:.2} s: \
         {rate:.0} round trips/s, write {write_mb:.1} MB/s + read {read_mb:.1} MB/s"
    );
    if got < sent {
        println!("        ({} replies missing)", sent - got);
    }
    Ok(())
}

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

/// IPv4 (RFC 791) + ICMP echo request (RFC 792) with `payload_len` bytes.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload_len: usize) -> Vec<u8> {
    let total = 28 + payload_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let hsum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&hsum.to_be_bytes());
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend((0..payload_len).map(|i| i as u8));
    let csum = checksum(&p[20..]);
    p[22..24].copy_from_slice(&csum.to_be_bytes());
    p
}
