//! `dialgate-bench`: the benchmark harness of dialgate (run by hand, not a
//! test). It starts `dialgate serve` with a generated configuration (or
//! attaches to a running server), drives N concurrent callers through
//! whole transactions, and compares with a bare tokio server doing the same
//! byte exchange, measured in the same run. See `bench/README.md`.

mod bare;
mod load;
mod report;
mod server;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::load::{LoadResult, LoadSpec, Script, Step};
use crate::report::{Argon2Row, IdleRow, Metrics, RateRow, Report};
use crate::server::{Module, PASSWORD, PIN, Server, USER};

/// Benchmarks dialgate: transactions/s, prompt latency, memory per idle
/// dialog, against a bare tokio baseline measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "dialgate-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Everything: rates (pin, pin-refuse, users), idle memory, argon2 cost.
    All(AllArgs),
    /// Transactions/s and latency at each N, with the bare baseline.
    Rate(RateArgs),
    /// Resident memory per idle dialog.
    Idle(IdleArgs),
    /// The argon2 cost per login: sequential logins, users minus pin.
    Argon2(Argon2Args),
    /// (internal) The bare baseline server.
    #[command(hide = true)]
    BareServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        prompt: Vec<String>,
        #[arg(long, default_value = "OK\r\n")]
        reply: String,
    },
}

/// Settings shared by every measuring command.
#[derive(Args, Debug, Clone)]
struct Common {
    /// The dialgate binary to start.
    #[arg(long, default_value_os_t = default_dialgate())]
    dialgate: PathBuf,
    /// Repeat the whole measurement this many times; the tables give
    /// medians (ratios are taken within each run first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Also write the tables (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How a rate measurement runs.
#[derive(Args, Debug, Clone)]
struct RateOpts {
    /// Concurrent callers, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    levels: Vec<usize>,
    /// The measured window per level, in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up before the window (callers start over its first half), s.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Longest wait for a connect, a prompt or the hang-up, in seconds.
    #[arg(long, default_value_t = 30.0)]
    step_timeout: f64,
    /// Skip the bare baseline.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Args, Debug)]
struct AllArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rate: RateOpts,
    /// Levels for the `users` module (argon2-bound).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    users_levels: Vec<usize>,
    /// Idle dialog counts for the memory measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    idle: Vec<usize>,
    /// Sequential logins for the argon2 cost.
    #[arg(long, default_value_t = 20)]
    logins: usize,
}

/// Which dialog a rate measurement drives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// `pin` module, right PIN: SUCCESS, durable record, `exec /bin/true`.
    Pin,
    /// `pin` module, wrong PIN, one try: `Login incorrect`, FAILURE,
    /// durable record, hang-up (no hand-off process).
    PinRefuse,
    /// `users` module, right password: argon2id verify, SUCCESS, record,
    /// `exec /bin/true`.
    Users,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Pin => "pin",
            Scenario::PinRefuse => "pin-refuse",
            Scenario::Users => "users",
        }
    }

    fn module(self) -> Module {
        match self {
            Scenario::Pin | Scenario::PinRefuse => Module::Pin,
            Scenario::Users => Module::Users,
        }
    }

    /// The outcome every record of this scenario should have.
    fn expected_outcome(self) -> &'static str {
        match self {
            Scenario::Pin | Scenario::Users => "success",
            Scenario::PinRefuse => "failure",
        }
    }

    fn script(self, c: &Creds) -> Script {
        let line = |s: &str| format!("{s}\r\n").into_bytes();
        match self {
            Scenario::Pin => Script {
                steps: vec![Step {
                    prompt: b"PIN: ".to_vec(),
                    answer: line(&c.pin),
                }],
                wrong_verdict: vec![b"Login incorrect".to_vec(), b"PIN: ".to_vec()],
            },
            Scenario::PinRefuse => Script {
                steps: vec![Step {
                    prompt: b"PIN: ".to_vec(),
                    answer: line(&format!("{}-wrong", c.pin)),
                }],
                wrong_verdict: vec![b"PIN: ".to_vec()],
            },
            Scenario::Users => Script {
                steps: vec![
                    Step {
                        prompt: b"Username: ".to_vec(),
                        answer: line(&c.user),
                    },
                    Step {
                        prompt: b"Password: ".to_vec(),
                        answer: line(&c.password),
                    },
                ],
                wrong_verdict: vec![b"Login incorrect".to_vec(), b"Username: ".to_vec()],
            },
        }
    }

    /// The bare server's prompts for the same exchange.
    fn bare_prompts(self) -> Vec<&'static str> {
        match self {
            Scenario::Pin | Scenario::PinRefuse => vec!["PIN: "],
            Scenario::Users => vec!["Username: ", "Password: "],
        }
    }
}

/// What callers type.
#[derive(Args, Debug, Clone)]
struct Creds {
    /// The PIN (the generated server's is the default).
    #[arg(long, default_value = PIN)]
    pin: String,
    /// The user name for `users`.
    #[arg(long, default_value = USER)]
    user: String,
    /// The password for `users`.
    #[arg(long, default_value = PASSWORD)]
    password: String,
}

/// A server someone else started.
#[derive(Args, Debug, Clone, Default)]
struct Attach {
    /// Drive this server instead of starting one (127.0.0.1 only; it must
    /// be a raw TCP group running the scenario's module with `tries = 1`).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Its process id, for RSS and CPU readings.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
}

#[derive(Args, Debug)]
struct RateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rate: RateOpts,
    /// The dialog to drive.
    #[arg(long, value_enum, default_value = "pin")]
    scenario: Scenario,
    #[command(flatten)]
    creds: Creds,
    #[command(flatten)]
    attach: Attach,
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Idle dialog counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    counts: Vec<usize>,
    /// Skip the bare baseline.
    #[arg(long)]
    no_baseline: bool,
    #[command(flatten)]
    attach: Attach,
}

#[derive(Args, Debug)]
struct Argon2Args {
    #[command(flatten)]
    common: Common,
    /// Sequential logins per module.
    #[arg(long, default_value_t = 20)]
    logins: usize,
}

/// `../target/release/dialgate` next to this package, or under
/// `$CARGO_TARGET_DIR` when that is set at run time.
fn default_dialgate() -> PathBuf {
    if let Some(t) = std::env::var_os("DIALGATE_BIN") {
        return PathBuf::from(t);
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/dialgate"
    ))
}

/// Descriptors the harness keeps for itself beyond one per caller.
const FD_MARGIN: u64 = 64;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::BareServer {
            listen,
            prompt,
            reply,
        } => {
            let prompts = if prompt.is_empty() {
                vec!["PIN: ".to_string()]
            } else {
                prompt
            };
            bare::main(
                listen,
                prompts.into_iter().map(String::into_bytes).collect(),
                reply.into_bytes(),
            )
        }
        Cmd::All(a) => with_runtime(|rt| cmd_all(rt, a)),
        Cmd::Rate(a) => with_runtime(|rt| cmd_rate(rt, a)),
        Cmd::Idle(a) => with_runtime(|rt| cmd_idle(rt, a)),
        Cmd::Argon2(a) => with_runtime(|rt| cmd_argon2(rt, a)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialgate-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn with_runtime(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<(), String>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    f(&rt)
}

fn finish(report: &Report, common: &Common) -> Result<(), String> {
    let text = report.render();
    println!("\n{text}");
    if let Some(p) = &common.out {
        std::fs::write(p, &text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        eprintln!("tables written to {}", p.display());
    }
    Ok(())
}

fn cmd_all(rt: &tokio::runtime::Runtime, a: AllArgs) -> Result<(), String> {
    let mut report = Report::new(a.common.runs, &a.rate.levels_note());
    let creds = Creds {
        pin: PIN.into(),
        user: USER.into(),
        password: PASSWORD.into(),
    };
    let users_rate = RateOpts {
        levels: a.users_levels.clone(),
        no_baseline: true,
        ..a.rate.clone()
    };
    for run in 1..=a.common.runs {
        eprintln!("== run {run} of {} ==", a.common.runs);
        for s in [Scenario::Pin, Scenario::PinRefuse] {
            rate_run(
                rt,
                &mut report,
                run,
                s,
                &a.rate,
                &a.common,
                &creds,
                &Attach::default(),
            )?;
        }
        rate_run(
            rt,
            &mut report,
            run,
            Scenario::Users,
            &users_rate,
            &a.common,
            &creds,
            &Attach::default(),
        )?;
        idle_run(
            rt,
            &mut report,
            run,
            &a.idle,
            true,
            &a.common,
            &Attach::default(),
        )?;
        argon2_run(rt, &mut report, run, a.logins, &a.common)?;
    }
    finish(&report, &a.common)
}

fn cmd_rate(rt: &tokio::runtime::Runtime, a: RateArgs) -> Result<(), String> {
    let mut report = Report::new(a.common.runs, &a.rate.levels_note());
    for run in 1..=a.common.runs {
        rate_run(
            rt,
            &mut report,
            run,
            a.scenario,
            &a.rate,
            &a.common,
            &a.creds,
            &a.attach,
        )?;
    }
    finish(&report, &a.common)
}

fn cmd_idle(rt: &tokio::runtime::Runtime, a: IdleArgs) -> Result<(), String> {
    let mut report = Report::new(a.common.runs, "");
    for run in 1..=a.common.runs {
        idle_run(
            rt,
            &mut report,
            run,
            &a.counts,
            !a.no_baseline,
            &a.common,
            &a.attach,
        )?;
    }
    finish(&report, &a.common)
}

fn cmd_argon2(rt: &tokio::runtime::Runtime, a: Argon2Args) -> Result<(), String> {
    let mut report = Report::new(a.common.runs, "");
    for run in 1..=a.common.runs {
        argon2_run(rt, &mut report, run, a.logins, &a.common)?;
    }
    finish(&report, &a.common)
}

impl RateOpts {
    fn levels_note(&self) -> String {
        format!(
            "{} s window after {} s warm-up per level",
            trim_float(self.duration),
            trim_float(self.warmup)
        )
    }

    fn spec(
        &self,
        addr: SocketAddr,
        callers: usize,
        script: Arc<Script>,
    ) -> Result<LoadSpec, String> {
        let secs = |v: f64, what: &str| {
            if v.is_finite() && (0.0..=3600.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "--{what} must be between 0 and 3600 seconds, not {v}"
                ))
            }
        };
        let duration = secs(self.duration, "duration")?;
        if duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        Ok(LoadSpec {
            addr,
            callers,
            warmup: secs(self.warmup, "warmup")?,
            duration,
            step_timeout: secs(self.step_timeout, "step-timeout")?.max(Duration::from_millis(100)),
            script,
        })
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Descriptors left for callers (the soft limit minus a margin).
fn fd_budget() -> u64 {
    server::open_files_limit()
        .unwrap_or(1024)
        .saturating_sub(FD_MARGIN)
}

fn local_only(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address: the harness only drives 127.0.0.1"
        ))
    }
}

/// One load level against `server`, with the server's CPU time over the
/// measured window and the listen-queue overflows over the whole run.
fn measure(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    spec: &LoadSpec,
) -> (LoadResult, Option<u64>, Option<u64>) {
    let pid = server.pid;
    let overflows = server::listen_overflows();
    let (r, cpu) = rt.block_on(async {
        let cpu = async {
            let pid = pid?;
            tokio::time::sleep(spec.warmup).await;
            let a = server::cpu_ticks(pid)?;
            tokio::time::sleep(spec.duration).await;
            let b = server::cpu_ticks(pid)?;
            Some(b.saturating_sub(a))
        };
        tokio::join!(load::run(spec), cpu)
    });
    let dropped = match (overflows, server::listen_overflows()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    (r, cpu, dropped)
}

#[allow(clippy::too_many_arguments)]
fn rate_run(
    rt: &tokio::runtime::Runtime,
    report: &mut Report,
    run: u32,
    scenario: Scenario,
    opts: &RateOpts,
    common: &Common,
    creds: &Creds,
    attach: &Attach,
) -> Result<(), String> {
    let script = Arc::new(scenario.script(creds));
    let mut dg = match attach.addr {
        Some(a) => {
            local_only(a)?;
            Server::attach(a, attach.pid)
        }
        None => Server::dialgate(&common.dialgate, scenario.module(), 20_000, 1)?,
    };
    let bare = if opts.no_baseline {
        None
    } else {
        Some(Server::bare(&scenario.bare_prompts(), "OK\r\n")?)
    };
    let ticks = server::clock_ticks_per_s();
    let budget = fd_budget();
    for &n in &opts.levels {
        if n == 0 {
            continue;
        }
        if n as u64 > budget {
            eprintln!(
                "{}: skipping N={n}: more callers than this process may open files ({budget} after a margin; ulimit -n)",
                scenario.name()
            );
            report.note(format!(
                "{} N={n} skipped: over the open-files limit",
                scenario.name()
            ));
            continue;
        }
        let bare_m = match &bare {
            Some(b) => {
                let spec = opts.spec(b.addr, n, script_for_bare(&script))?;
                let (r, cpu, dropped) = measure(rt, b, &spec);
                std::thread::sleep(Duration::from_millis(500));
                Some(Metrics::from_load(r, cpu, ticks, spec.duration, dropped))
            }
            None => None,
        };
        let since = SystemTime::now();
        let spec = opts.spec(dg.addr, n, script.clone())?;
        let (r, cpu, dropped) = measure(rt, &dg, &spec);
        // Let the records of abandoned calls land before the next level.
        std::thread::sleep(Duration::from_millis(1000));
        let m = Metrics::from_load(r, cpu, ticks, spec.duration, dropped);
        let log = dg.log_outcomes(since);
        eprintln!(
            "run {run} {:<10} N={n:<6} dialgate {:>8.0} tx/s{}  errors: {}{}",
            scenario.name(),
            m.tx_s,
            bare_m
                .as_ref()
                .map(|b| format!(
                    "  bare {:>8.0} tx/s  ratio {:.2}",
                    b.tx_s,
                    m.tx_s / b.tx_s.max(1e-9)
                ))
                .unwrap_or_default(),
            m.errors.describe(),
            log.as_ref()
                .map(|l| format!("  log: {}", report::describe_outcomes(l)))
                .unwrap_or_default(),
        );
        report.rate(RateRow {
            run,
            scenario: scenario.name(),
            expected: scenario.expected_outcome(),
            n,
            bare: bare_m,
            dialgate: m,
            log,
        });
        if !dg.alive() {
            let tail = dg.log_tail(30);
            let msg = format!(
                "{} run {run}: the server exited during N={n}; its last lines:\n```\n{tail}\n```",
                scenario.name()
            );
            eprintln!("{msg}");
            report.note(msg);
            return Ok(());
        }
    }
    if let Some(how) = dg.stop()
        && !how.contains("exit status: 0")
    {
        report.note(format!(
            "{} run {run}: dialgate stopped: {how}",
            scenario.name()
        ));
    }
    Ok(())
}

/// The bare server answers `OK` instead of a verdict: no wrong-verdict
/// markers apply.
fn script_for_bare(s: &Arc<Script>) -> Arc<Script> {
    Arc::new(Script {
        steps: s.steps.clone(),
        wrong_verdict: Vec::new(),
    })
}

fn idle_run(
    rt: &tokio::runtime::Runtime,
    report: &mut Report,
    run: u32,
    counts: &[usize],
    baseline: bool,
    common: &Common,
    attach: &Attach,
) -> Result<(), String> {
    let budget = fd_budget();
    for &n in counts {
        if n == 0 {
            continue;
        }
        if n as u64 > budget {
            report.note(format!(
                "idle N={n} skipped: over the open-files limit ({budget})"
            ));
            continue;
        }
        let mut targets = vec!["dialgate"];
        if baseline && attach.addr.is_none() {
            targets.push("bare");
        }
        for target in targets {
            let mut server = match (target, attach.addr) {
                ("bare", _) => Server::bare(&["PIN: "], "OK\r\n")?,
                (_, Some(a)) => {
                    local_only(a)?;
                    Server::attach(a, attach.pid)
                }
                _ => Server::dialgate(&common.dialgate, Module::Pin, 20_000, 1)?,
            };
            let row = idle_once(rt, &server, target, n)?;
            eprintln!(
                "run {run} idle {target:<8} N={n:<6} {} KiB/dialog  (RSS {} -> {} KiB, {} open, {} failed, opened in {:.2} s)",
                row.per_dialog_kib.map_or("-".into(), |k| format!("{k:.2}")),
                row.before_kib.map_or("-".into(), |k| k.to_string()),
                row.after_kib.map_or("-".into(), |k| k.to_string()),
                row.opened,
                row.failed,
                row.took.as_secs_f64()
            );
            report.idle(IdleRow { run, ..row });
            if !server.alive() {
                let msg = format!(
                    "idle run {run}: {target} exited during N={n}; its last lines:\n```\n{}\n```",
                    server.log_tail(30)
                );
                eprintln!("{msg}");
                report.note(msg);
                return Ok(());
            }
            let _ = server.stop();
        }
    }
    Ok(())
}

fn idle_once(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    target: &'static str,
    n: usize,
) -> Result<IdleRow, String> {
    let step = Duration::from_secs(30);
    // One whole transaction first, so lazily built state (the event log's
    // connection, the runtime's first worker allocations) is in "before".
    let warm = Arc::new(Script {
        steps: vec![Step {
            prompt: b"PIN: ".to_vec(),
            answer: format!("{PIN}\r\n").into_bytes(),
        }],
        wrong_verdict: Vec::new(),
    });
    rt.block_on(load::sequential(server.addr, warm, 1, step));
    std::thread::sleep(Duration::from_millis(300));
    let before = server.pid.and_then(server::rss_kib);
    let idle = rt.block_on(load::open_idle(server.addr, n, b"PIN: ", 256, step));
    std::thread::sleep(Duration::from_millis(500));
    let after = server.pid.and_then(server::rss_kib);
    let fds = server.pid.and_then(server::fd_count);
    let opened = idle.streams.len();
    let failed = idle.connect_failed + idle.no_prompt;
    let took = idle.took;
    drop(idle);
    std::thread::sleep(Duration::from_millis(1500));
    let closed = server.pid.and_then(server::rss_kib);
    let per = match (before, after) {
        (Some(b), Some(a)) if opened > 0 => Some((a as f64 - b as f64) / opened as f64),
        _ => None,
    };
    Ok(IdleRow {
        run: 0,
        target,
        n,
        opened,
        failed,
        took,
        before_kib: before,
        after_kib: after,
        closed_kib: closed,
        fds,
        per_dialog_kib: per,
    })
}

fn argon2_run(
    rt: &tokio::runtime::Runtime,
    report: &mut Report,
    run: u32,
    logins: usize,
    common: &Common,
) -> Result<(), String> {
    let logins = logins.clamp(1, 10_000);
    let creds = Creds {
        pin: PIN.into(),
        user: USER.into(),
        password: PASSWORD.into(),
    };
    let step = Duration::from_secs(30);
    let pin = Server::dialgate(&common.dialgate, Module::Pin, 20_000, 1)?;
    let mut p = rt.block_on(load::sequential(
        pin.addr,
        Arc::new(Scenario::Pin.script(&creds)),
        logins,
        step,
    ));
    drop(pin);
    let users = Server::dialgate(&common.dialgate, Module::Users, 20_000, 1)?;
    let mut u = rt.block_on(load::sequential(
        users.addr,
        Arc::new(Scenario::Users.script(&creds)),
        logins,
        step,
    ));
    let user_add = users.user_add;
    drop(users);
    let pin_verdict = p.hangup.quantile(0.5).map(f64::from);
    let users_verdict = u.hangup.quantile(0.5).map(f64::from);
    let username_step = u
        .per_step
        .first_mut()
        .and_then(|s| s.quantile(0.5))
        .map(f64::from);
    let row = Argon2Row {
        run,
        logins,
        pin_ok: p.completed as usize,
        users_ok: u.completed as usize,
        pin_verdict_us: pin_verdict,
        users_verdict_us: users_verdict,
        username_echo_us: username_step,
        pin_tx_us: p.transaction.quantile(0.5).map(f64::from),
        users_tx_us: u.transaction.quantile(0.5).map(f64::from),
        user_add,
        errors: p.errors.total() + u.errors.total(),
    };
    eprintln!(
        "run {run} argon2: users verdict {} - pin verdict {} = {} per verify ({} + {} of {logins} logins ok)",
        stats::fmt_us(row.users_verdict_us),
        stats::fmt_us(row.pin_verdict_us),
        stats::fmt_us(row.argon2_us()),
        row.users_ok,
        row.pin_ok
    );
    report.argon2(row);
    Ok(())
}
