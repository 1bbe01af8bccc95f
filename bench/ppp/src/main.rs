//! dialgate PPP benchmark: server CPU per session setup (LCP + CHAP-MD5 +
//! IPCP), sessions set up per second with K concurrent callers, aggregate
//! IP throughput through the server's tun for K sessions, and the raw tun
//! read/write rate measured in the same run. See README.md.
//!
//! Run as root: it builds `dialgate`, creates a network namespace
//! (`dgpppb-<pid>`), re-executes itself inside it with `ip netns exec`,
//! and deletes the namespace at the end, also on error or Ctrl-C.

mod client;
mod inside;
mod packet;
mod rawtun;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Set in the environment of the run inside the namespace.
const INSIDE_ENV: &str = "DIALGATE_PPP_BENCH_INSIDE";
/// The dialgate binary, for the run inside the namespace.
const BIN_ENV: &str = "DIALGATE_PPP_BENCH_BIN";

/// Command-line options (the same for the outer and the inner run).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "dialgate-ppp-bench",
    about = "PPP session setup cost, sessions/s and tun throughput of dialgate (root; makes its own network namespace)"
)]
pub struct Args {
    /// Use this dialgate binary instead of building one.
    #[arg(long)]
    dialgate: Option<PathBuf>,
    /// The dialgate workspace to build from.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    workspace: PathBuf,
    /// Cargo target directory for the build (default: $CARGO_TARGET_DIR,
    /// else WORKSPACE/target).
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Repetitions of the whole measurement; the table shows each and the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub runs: u32,
    /// Sequential sessions for the setup CPU cost.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub setup_sessions: u32,
    /// Seconds per rate, throughput and raw tun measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub secs: u64,
    /// Concurrent callers / sessions, comma-separated (each 1 to 400).
    #[arg(long, default_value = "1,10,100", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=400))]
    pub concurrency: Vec<u32>,
    /// IP packet size in bytes for the throughput and raw tun runs.
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u32).range(64..=1500))]
    pub packet: u32,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Show the server's log lines.
    #[arg(long)]
    pub verbose: bool,
}

impl Args {
    /// An upper bound for the whole inner run.
    fn bound(&self) -> Duration {
        let k = self.concurrency.len() as u64;
        let per_run = self.secs * (1 + 2 * k)
            + inside::SETUP_PHASE_LIMIT.as_secs()
            + (60 + inside::DRAIN_LIMIT.as_secs()) * k
            + 30;
        Duration::from_secs(u64::from(self.runs) * per_run + 60)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ppp-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if std::env::var_os(INSIDE_ENV).is_some() {
        let Some(bin) = std::env::var_os(BIN_ENV).map(PathBuf::from) else {
            eprintln!("ppp-bench: {BIN_ENV} is not set in the inner run");
            return ExitCode::FAILURE;
        };
        rt.block_on(inside::run(&args, &bin))
    } else {
        rt.block_on(outside(&args))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ppp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether we run as root (effective uid 0), from /proc/self/status.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Builds dialgate (unless given), makes the namespace, runs the inner
/// measurement in it, deletes the namespace.
async fn outside(args: &Args) -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespace, tun devices)".into());
    }
    let bin = match &args.dialgate {
        Some(b) => b.clone(),
        None => build(args).await?,
    };
    if !bin.is_file() {
        return Err(format!("no dialgate binary at {}", bin.display()));
    }
    let ns = format!("dgpppb-{}", std::process::id());
    let status = tokio::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .await
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if !status.success() {
        return Err(format!("`ip netns add {ns}` failed: {status}"));
    }
    let result = run_in_netns(args, &ns, &bin).await;
    let deleted = tokio::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status()
        .await;
    if !matches!(deleted, Ok(s) if s.success()) {
        eprintln!("ppp-bench: warning: could not delete namespace {ns}: {deleted:?}");
    }
    result
}

/// `cargo build --release -p dialgate` in the workspace; the binary's path.
async fn build(args: &Args) -> Result<PathBuf, String> {
    let target = args
        .target_dir
        .clone()
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| args.workspace.join("target"));
    eprintln!(
        "ppp-bench: cargo build --release -p dialgate (in {}, target dir {})",
        args.workspace.display(),
        target.display()
    );
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.args(["build", "--release", "-p", "dialgate"])
        .current_dir(&args.workspace)
        .env("CARGO_TARGET_DIR", &target)
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(3600), cmd.status())
        .await
        .map_err(|_| "the dialgate build did not finish within an hour".to_string())?
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building dialgate failed: {status}"));
    }
    Ok(target.join("release").join("dialgate"))
}

/// Runs ourselves inside `ns`, bounded, forwarding Ctrl-C as the end of
/// the run (the namespace is deleted by the caller either way).
async fn run_in_netns(args: &Args, ns: &str, bin: &std::path::Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE_ENV, "1")
        .env(BIN_ENV, bin)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `ip netns exec`: {e}"))?;
    let bound = args.bound();
    let why = tokio::select! {
        s = child.wait() => return match s {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("the measurement failed: {s}")),
            Err(e) => Err(format!("waiting for the measurement: {e}")),
        },
        () = tokio::time::sleep(bound) => format!("the measurement did not finish within {bound:?}"),
        _ = tokio::signal::ctrl_c() => "interrupted".to_string(),
    };
    // Ask the inner run to stop the server and clean up; then insist.
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Err(why)
}
