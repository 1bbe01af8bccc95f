//! The measurement, run inside the benchmark's network namespace.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::{self, Session};
use crate::table::Table;
use crate::{Args, packet, rawtun};

/// The server's tun address (and the UDP sink's).
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 250, 9, 1);
/// The UDP sink's port.
const SINK_PORT: u16 = 5001;
/// The UDP sink's receive buffer.
const SINK_RCVBUF: usize = 32 << 20;
/// The PPP group's name in the config.
const GROUP: &str = "ppp0";
/// The most time the sequential setup phase may take per run.
pub const SETUP_PHASE_LIMIT: Duration = Duration::from_secs(120);
/// Bring-up of one session (LCP + CHAP + IPCP).
const UP_LIMIT: Duration = Duration::from_secs(10);
/// Hang-up of one session (LCP Terminate exchange).
const DOWN_LIMIT: Duration = Duration::from_secs(5);
/// The most time the queues may take to drain after a transfer.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Before the throughput counters start.
const WARM_UP: Duration = Duration::from_millis(500);

fn config() -> String {
    format!(
        r#"[network]
tun = "dgb0"
address = "{SERVER}/16"

[[group]]
name = "{GROUP}"
kind = "tcp"
listen = "127.0.0.1:0"
max_callers = 1000

[group.handoff]
kind = "ppp"
auth = ["chap-md5"]
pool = "10.250.9.10-10.250.12.250"
"#
    )
}

/// Removes the work directory at the end.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running server; SIGTERM then a bounded wait (then SIGKILL).
struct Server {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
}

impl Server {
    async fn start(bin: &Path, cfg: &Path, data: &Path, verbose: bool) -> Result<Server, String> {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(cfg)
            .arg("--data-dir")
            .arg(data)
            .arg("serve")
            .env("DIALGATE_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| "the server exited at once".to_string())?;
        let err = child
            .stderr
            .take()
            .ok_or_else(|| "no stderr pipe from the server".to_string())?;
        let mut lines = BufReader::new(err).lines();
        let mut addr = None;
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(l))) => l,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    return Err(format!(
                        "the server stopped before it was ready:\n{}",
                        seen.join("\n")
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "the server was not ready within 20 s:\n{}",
                        seen.join("\n")
                    ));
                }
            };
            if verbose {
                eprintln!("server: {line}");
            }
            if let Some(rest) = line.split(&format!("group {GROUP}: ")).nth(1)
                && let Some(a) = rest.split("listening on ").nth(1)
            {
                let a = a.split(',').next().unwrap_or("").trim();
                addr = Some(
                    a.parse::<SocketAddr>()
                        .map_err(|e| format!("server line {line:?}: address {a:?}: {e}"))?,
                );
            }
            let ready = line.contains("the log:");
            seen.push(line);
            if ready {
                break;
            }
        }
        let addr = addr.ok_or_else(|| {
            format!(
                "the server never said where group {GROUP} listens:\n{}",
                seen.join("\n")
            )
        })?;
        // Keep draining the log so the server never blocks on the pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if verbose {
                    eprintln!("server: {line}");
                }
            }
        });
        Ok(Server {
            child: Some(child),
            pid,
            addr,
        })
    }

    /// The server's CPU time so far (user + system, all threads).
    fn cpu(&self) -> Result<Duration, String> {
        process_cpu(self.pid)
    }

    async fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("the server exited with {s}")),
            Ok(Err(e)) => Err(format!("waiting for the server: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                Err("the server did not stop within 20 s of SIGTERM".into())
            }
        }
    }
}

/// Clock ticks per second for /proc times (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// utime + stime of a process from /proc/PID/stat (proc(5): fields 14 and 15).
fn process_cpu(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: no ')' in {stat:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {} missing or not a number", i + 3))
    };
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let ticks = num(11)? + num(12)?;
    let hz = clock_ticks();
    Ok(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// A UDP sink on the server's tun address counting IP bytes received.
struct Sink {
    bytes: Arc<AtomicU64>,
    packets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start() -> Result<Sink, String> {
        let sock = UdpSocket::bind((SERVER, SINK_PORT))
            .map_err(|e| format!("UDP sink on {SERVER}:{SINK_PORT}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| format!("UDP sink: {e}"))?;
        // A deep receive queue, so that the sink is not what drops packets
        // (SO_RCVBUFFORCE: we are root; the plain option is capped by rmem_max).
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(&sock, sockopt::RcvBufForce, &SINK_RCVBUF).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &SINK_RCVBUF);
        }
        let bytes = Arc::new(AtomicU64::new(0));
        let packets = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bytes, packets, stop) = (bytes.clone(), packets.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        // Count IP bytes, as the tun carries them.
                        let ip = (n + packet::MIN_UDP_PACKET) as u64;
                        bytes.fetch_add(ip, Ordering::Relaxed);
                        packets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Ok(Sink {
            bytes,
            packets,
            stop,
            thread: Some(thread),
        })
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.packets.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The namespace's UDP `RcvbufErrors` + `InErrors` counters (datagrams
/// the kernel dropped at a full socket queue or as malformed), from
/// /proc/net/snmp; 0 if unreadable.
fn udp_drops() -> u64 {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "RcvbufErrors" || *n == "InErrors")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// Packets the kernel dropped because a CPU's input backlog was full
/// (`netdev_max_backlog`; a tun write lands there), from the second column
/// of /proc/net/softnet_stat, summed over CPUs. The counter is host-wide,
/// not per namespace: other traffic on the host adds to it. 0 if unreadable.
fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|v| u64::from_str_radix(v, 16).ok())
                .sum()
        })
        .unwrap_or(0)
}

/// Adds the bench user with a CHAP-MD5 secret.
async fn add_user(bin: &Path, cfg: &Path, data: &Path) -> Result<(), String> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .args([
            "user",
            "add",
            client::USER,
            "--allow-chap-md5",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run dialgate user add: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{}\n", client::SECRET).as_bytes())
            .await
            .map_err(|e| format!("dialgate user add: stdin: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| "dialgate user add did not finish within 60 s".to_string())?
        .map_err(|e| format!("dialgate user add: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dialgate user add failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn cmd_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// nproc, CPU model, kernel and load average, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, m)| m.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "nproc {}; {cpu}; kernel {}; load average {}",
        cmd_output("nproc", &[]),
        cmd_output("uname", &["-r"]),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The whole measurement, inside the namespace.
pub async fn run(args: &Args, bin: &Path) -> Result<(), String> {
    let lo = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .await
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !lo.success() {
        return Err(format!("`ip link set lo up` failed: {lo}"));
    }
    // No IPv6 on the tuns: router solicitations would only add noise.
    let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");

    let work = WorkDir(std::env::temp_dir().join(format!("dgpppb-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(|e| format!("creating {}: {e}", work.0.display()))?;
    let cfg = work.0.join("dialgate.toml");
    let data = work.0.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    std::fs::write(&cfg, config()).map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    add_user(bin, &cfg, &data).await?;

    let mut server = Server::start(bin, &cfg, &data, args.verbose).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    let result = tokio::select! {
        r = measure(args, &server) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        _ = term.recv() => Err("terminated".to_string()),
    };
    let stopped = server.stop().await;
    result?;
    if let Err(e) = stopped {
        eprintln!("ppp-bench: warning: {e}");
    }
    Ok(())
}

async fn measure(args: &Args, server: &Server) -> Result<(), String> {
    let machine_before = machine();
    println!("ppp-bench: {machine_before}");
    println!(
        "ppp-bench: dialgate serve pid {} on {}, tun dgb0 {SERVER}/16; {} run(s), {} sequential setups, {} s per rate/throughput/raw figure, {} B packets, K = {:?}",
        server.pid,
        server.addr,
        args.runs,
        args.setup_sessions,
        args.secs,
        args.packet,
        args.concurrency
    );
    let sink = Sink::start()?;
    let raw = rawtun::create("dgbraw0").map_err(|e| format!("raw tun: {e}"))?;
    let size = args.packet as usize;
    let dur = Duration::from_secs(args.secs);
    let mut t = Table::default();
    for run in 1..=args.runs {
        println!("ppp-bench: run {run}");
        // (d) the raw tun rate.
        let r = rawtun::measure(&raw, size, dur).await?;
        println!(
            "  raw tun: {:.0} echo round trips/s, write {:.1} MB/s, read {:.1} MB/s",
            r.round_trips, r.write_mb, r.read_mb
        );
        t.add("raw tun echo round trips", "1/s", r.round_trips);
        t.add("raw tun write rate", "MB/s", r.write_mb);

        // (a) server CPU per sequential session setup.
        let (cpu_ms, wall_ms, n) = setup_cost(server, args.setup_sessions).await?;
        println!(
            "  setup: {n} sequential sessions, server CPU {cpu_ms:.3} ms/session, wall {wall_ms:.2} ms/session"
        );
        t.add("setup: server CPU per session", "ms", cpu_ms);
        t.add("setup: wall time per session", "ms", wall_ms);

        // (b) sessions set up per second with K callers.
        for &k in &args.concurrency {
            let (rate, cpu_ms, failed) = session_rate(server, k, dur).await?;
            println!(
                "  rate K={k}: {rate:.0} sessions/s, server CPU {cpu_ms:.3} ms/session, {failed} failed"
            );
            t.add(&format!("sessions/s, K={k}"), "1/s", rate);
            t.add(&format!("server CPU per session, K={k}"), "ms", cpu_ms);
        }

        // (c) aggregate throughput through the server's tun.
        for &k in &args.concurrency {
            let tp = throughput(server, &sink, k, size, dur).await?;
            println!(
                "  throughput K={k}: {:.1} MB/s received ({:.1} MB/s sent by the callers), server CPU {:.0} %, {} datagrams dropped at the sink socket, {} at the kernel's input backlog, {:.2} % of all packets sent not delivered",
                tp.received_mb,
                tp.sent_mb,
                tp.server_cpu_pct,
                tp.sink_drops,
                tp.backlog_drops,
                tp.lost_pct
            );

            t.add(&format!("tun throughput, K={k}"), "MB/s", tp.received_mb);
            t.add(
                &format!("ratio to raw tun write, K={k}"),
                "x",
                tp.received_mb / r.write_mb,
            );
            t.add(
                &format!("callers' send rate into TCP, K={k}"),
                "MB/s",
                tp.sent_mb,
            );
            t.add(
                &format!("server CPU during transfer, K={k}"),
                "%",
                tp.server_cpu_pct,
            );
            t.add(&format!("packets not delivered, K={k}"), "%", tp.lost_pct);
        }
    }
    println!();
    print!("{}", t.text());
    println!();
    let setup = t.median("setup: server CPU per session");
    if let Some(s) = setup {
        println!(
            "target: setup < 2 ms of server CPU: median {s:.3} ms -> {}",
            if s < 2.0 { "met" } else { "NOT met" }
        );
    }
    for &k in &args.concurrency {
        if let Some(x) = t.median(&format!("ratio to raw tun write, K={k}")) {
            println!(
                "target: tun bridge >= 0.5x raw tun rate, K={k}: median {x:.2}x -> {}",
                if x >= 0.5 { "met" } else { "NOT met" }
            );
        }
    }
    let machine_after = machine();
    println!("ppp-bench: after: {machine_after}");
    if let Some(md) = &args.markdown {
        let text = format!(
            "Machine before: {machine_before}\n\nMachine after: {machine_after}\n\n{}",
            t.markdown()
        );
        std::fs::write(md, text).map_err(|e| format!("writing {}: {e}", md.display()))?;
    }
    drop(sink);
    Ok(())
}

/// (a): N sequential sessions; (server CPU ms, wall ms) per session and N.
async fn setup_cost(server: &Server, n: u32) -> Result<(f64, f64, u32), String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = server.cpu()?;
    let t0 = Instant::now();
    let mut done = 0u32;
    for _ in 0..n {
        if t0.elapsed() > SETUP_PHASE_LIMIT {
            eprintln!(
                "ppp-bench: setup phase stopped at {SETUP_PHASE_LIMIT:?} after {done} sessions"
            );
            break;
        }
        let s = Session::up(server.addr, UP_LIMIT)
            .await
            .map_err(|e| format!("setup session {}: {e}", done + 1))?;
        s.hang_up(DOWN_LIMIT)
            .await
            .map_err(|e| format!("setup session {} hang-up: {e}", done + 1))?;
        done += 1;
    }
    let wall = t0.elapsed();
    // Let the server finish the last session's record.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = server.cpu()?.saturating_sub(cpu0);
    if done == 0 {
        return Err("no session was set up".into());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(done);
    Ok((per(cpu), per(wall), done))
}

/// (b): K callers each setting up and hanging up sessions for `dur`;
/// (sessions/s, server CPU ms per session, failures).
async fn session_rate(server: &Server, k: u32, dur: Duration) -> Result<(f64, f64, u64), String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let cpu0 = server.cpu()?;
    let t0 = Instant::now();
    let until = t0 + dur;
    let mut tasks = Vec::new();
    for _ in 0..k {
        let (ok, failed, first_error, addr) =
            (ok.clone(), failed.clone(), first_error.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = match Session::up(addr, UP_LIMIT).await {
                    Ok(s) => s.hang_up(DOWN_LIMIT).await,
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                        // Do not spin on a refusing server.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    let limit = dur + UP_LIMIT + DOWN_LIMIT + Duration::from_secs(5);
    for task in tasks {
        tokio::time::timeout(limit, task)
            .await
            .map_err(|_| format!("a caller (K={k}) did not finish within {limit:?}"))?
            .map_err(|e| format!("caller task: {e}"))?;
    }
    let wall = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = server.cpu()?.saturating_sub(cpu0);
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    if let Ok(f) = first_error.lock()
        && let Some(e) = f.as_ref()
    {
        eprintln!("ppp-bench: K={k}: {failed} session(s) failed, the first: {e}");
    }
    if ok == 0 {
        return Err(format!("K={k}: no session was set up"));
    }
    Ok((
        ok as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e3 / ok as f64,
        failed,
    ))
}

struct Throughput {
    received_mb: f64,
    sent_mb: f64,
    server_cpu_pct: f64,
    sink_drops: u64,
    backlog_drops: u64,
    lost_pct: f64,
}

/// (c): K sessions up, each sending `size`-byte UDP datagrams to the sink
/// for `dur` (after a warm-up); the megabytes of IP packets per second.
async fn throughput(
    server: &Server,
    sink: &Sink,
    k: u32,
    size: usize,
    dur: Duration,
) -> Result<Throughput, String> {
    // Bring the sessions up, at most 20 handshakes at a time.
    let gate = Arc::new(tokio::sync::Semaphore::new(20));
    let mut ups = Vec::new();
    for _ in 0..k {
        let (gate, addr) = (gate.clone(), server.addr);
        ups.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            Session::up(addr, UP_LIMIT).await
        }));
    }
    let mut sessions = Vec::new();
    let mut error = None;
    for u in ups {
        match tokio::time::timeout(UP_LIMIT * 2 + Duration::from_secs(k.into()), u).await {
            Ok(Ok(Ok(s))) => sessions.push(s),
            Ok(Ok(Err(e))) => error = error.or(Some(e)),
            Ok(Err(e)) => error = error.or(Some(format!("task: {e}"))),
            Err(_) => error = error.or(Some("bring-up timed out".to_string())),
        }
    }
    if let Some(e) = error {
        hang_up_all(sessions).await;
        return Err(format!("throughput K={k}: a session did not come up: {e}"));
    }

    let sent = Arc::new(AtomicU64::new(0));
    let (_, p_start) = sink.counts();
    let backlog0 = backlog_drops();
    let start = Instant::now();
    let until = start + WARM_UP + dur;
    let mut tasks = Vec::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let pkt = packet::udp(s.local, SERVER, 40000 + i as u16, SINK_PORT, size)
            .ok_or_else(|| format!("packet size {size} out of range"))?;
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let r = s.blast(&pkt, 16, until, &sent).await;
            (s, r)
        }));
    }
    tokio::time::sleep_until((start + WARM_UP).into()).await;
    let (b0, _) = sink.counts();
    let d0 = udp_drops();
    let s0 = sent.load(Ordering::Relaxed);
    let cpu0 = server.cpu()?;
    let t0 = Instant::now();
    tokio::time::sleep_until(until.into()).await;
    let (b1, _) = sink.counts();
    let d1 = udp_drops();
    let s1 = sent.load(Ordering::Relaxed);
    let cpu1 = server.cpu()?;
    let secs = t0.elapsed().as_secs_f64();
    let mut sessions = Vec::new();
    let mut error = None;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok((s, r))) => {
                if let Err(e) = r {
                    error = error.or(Some(e));
                }
                sessions.push(s);
            }
            Ok(Err(e)) => error = error.or(Some(format!("task: {e}"))),
            Err(_) => error = error.or(Some("a sender did not stop within 10 s".into())),
        }
    }
    // Everything sent is either at the sink once the queues drain, or lost.
    // The callers' TCP send buffers and the server's receive buffers hold
    // megabytes per session: draining them can take seconds.
    let total_sent = sent.load(Ordering::Relaxed);
    let drain_end = Instant::now() + DRAIN_LIMIT;
    let mut last = sink.counts().1;
    while Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sink.counts().1;
        if now == last {
            // No progress for 500 ms: what is missing is lost.
            break;
        }
        last = now;
    }
    let lost = total_sent.saturating_sub(sink.counts().1 - p_start);
    let backlog = backlog_drops().saturating_sub(backlog0);
    hang_up_all(sessions).await;
    if let Some(e) = error {
        return Err(format!("throughput K={k}: {e}"));
    }
    Ok(Throughput {
        received_mb: (b1 - b0) as f64 / secs / 1e6,
        sent_mb: (s1 - s0) as f64 * size as f64 / secs / 1e6,
        server_cpu_pct: cpu1.saturating_sub(cpu0).as_secs_f64() / secs * 100.0,
        sink_drops: d1.saturating_sub(d0),
        backlog_drops: backlog,
        lost_pct: if total_sent == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / total_sent as f64
        },
    })
}

/// Hangs up every session at once (bounded); failures are reported, not fatal.
async fn hang_up_all(sessions: Vec<Session>) {
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| tokio::spawn(s.hang_up(DOWN_LIMIT)))
        .collect();
    let mut failed = 0;
    for t in tasks {
        match tokio::time::timeout(DOWN_LIMIT + Duration::from_secs(5), t).await {
            Ok(Ok(Ok(()))) => {}
            _ => failed += 1,
        }
    }
    if failed > 0 {
        eprintln!("ppp-bench: {failed} session(s) did not hang up cleanly");
    }
}
