//! The results of every run, and the Markdown tables (medians over runs)
//! the harness prints and `bench/README.md` quotes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Errors, LoadResult};
use crate::stats::{fmt_us, median};

/// The figures of one load level against one server.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Completed transactions per second of the window.
    pub tx_s: f64,
    /// Completed transactions in the window.
    pub completed: u64,
    /// Answer -> next server bytes, every step: p50, p99 (µs).
    pub prompt_p50: Option<f64>,
    /// See `prompt_p50`.
    pub prompt_p99: Option<f64>,
    /// connect() -> first prompt: p50, p99 (µs).
    pub first_p50: Option<f64>,
    /// See `first_p50`.
    pub first_p99: Option<f64>,
    /// Last answer -> the server's close: p50, p99 (µs).
    pub hangup_p50: Option<f64>,
    /// See `hangup_p50`.
    pub hangup_p99: Option<f64>,
    /// Whole transaction (connect -> server's close): p50, p99 (µs).
    pub tx_p50: Option<f64>,
    /// See `tx_p50`.
    pub tx_p99: Option<f64>,
    /// Server CPU (user + system) over the window, % of one core.
    pub cpu_pct: Option<f64>,
    /// Server CPU per completed transaction (µs).
    pub cpu_us_per_tx: Option<f64>,
    /// Connections the kernel dropped on a full listen queue during the
    /// run (system-wide counter).
    pub listen_overflows: Option<u64>,
    /// Failed transactions.
    pub errors: Errors,
}

impl Metrics {
    /// Summarises a load run; `cpu_ticks` is the server's CPU time over the
    /// window, in `ticks_per_s` units; `listen_overflows` the kernel's drops.
    pub fn from_load(
        mut r: LoadResult,
        cpu_ticks: Option<u64>,
        ticks_per_s: u64,
        window: Duration,
        listen_overflows: Option<u64>,
    ) -> Metrics {
        let q = |s: &mut crate::stats::Samples, p: f64| s.quantile(p).map(f64::from);
        let cpu_s = cpu_ticks.map(|t| t as f64 / ticks_per_s.max(1) as f64);
        Metrics {
            tx_s: r.tx_per_s(),
            completed: r.completed,
            prompt_p50: q(&mut r.prompt, 0.5),
            prompt_p99: q(&mut r.prompt, 0.99),
            first_p50: q(&mut r.first_prompt, 0.5),
            first_p99: q(&mut r.first_prompt, 0.99),
            hangup_p50: q(&mut r.hangup, 0.5),
            hangup_p99: q(&mut r.hangup, 0.99),
            tx_p50: q(&mut r.transaction, 0.5),
            tx_p99: q(&mut r.transaction, 0.99),
            cpu_pct: cpu_s.map(|c| 100.0 * c / window.as_secs_f64().max(1e-9)),
            cpu_us_per_tx: cpu_s
                .filter(|_| r.completed > 0)
                .map(|c| c * 1e6 / r.completed as f64),
            listen_overflows,
            errors: r.errors,
        }
    }
}

/// One level of one rate scenario in one run.
#[derive(Clone, Debug)]
pub struct RateRow {
    /// Run number (1-based).
    pub run: u32,
    /// Scenario name.
    pub scenario: &'static str,
    /// The outcome its records should have.
    pub expected: &'static str,
    /// Concurrent callers.
    pub n: usize,
    /// The bare baseline, same run.
    pub bare: Option<Metrics>,
    /// dialgate.
    pub dialgate: Metrics,
    /// Event log outcomes of the records written during the level.
    pub log: Option<Vec<(String, u64)>>,
}

/// One idle-memory measurement.
#[derive(Clone, Debug)]
pub struct IdleRow {
    /// Run number (1-based).
    pub run: u32,
    /// `dialgate` or `bare`.
    pub target: &'static str,
    /// Dialogs asked for.
    pub n: usize,
    /// Dialogs open and past their prompt.
    pub opened: usize,
    /// Dialogs that could not be opened.
    pub failed: usize,
    /// Time to open them all.
    pub took: Duration,
    /// Server VmRSS before (KiB).
    pub before_kib: Option<u64>,
    /// Server VmRSS with every dialog open and idle (KiB).
    pub after_kib: Option<u64>,
    /// Server VmRSS 1.5 s after the callers hung up (KiB).
    pub closed_kib: Option<u64>,
    /// The server's open descriptors with the dialogs open.
    pub fds: Option<usize>,
    /// (after - before) / opened, KiB.
    pub per_dialog_kib: Option<f64>,
}

/// The argon2 cost, from sequential logins.
#[derive(Clone, Debug)]
pub struct Argon2Row {
    /// Run number (1-based).
    pub run: u32,
    /// Logins asked for, per module.
    pub logins: usize,
    /// Completed `pin` logins.
    pub pin_ok: usize,
    /// Completed `users` logins.
    pub users_ok: usize,
    /// `pin`: PIN sent -> close (verdict, record, exec), p50 µs.
    pub pin_verdict_us: Option<f64>,
    /// `users`: password sent -> close (argon2id, verdict, record, exec),
    /// p50 µs.
    pub users_verdict_us: Option<f64>,
    /// `users`: user name sent -> its echo, p50 µs.
    pub username_echo_us: Option<f64>,
    /// Whole `pin` transaction, p50 µs.
    pub pin_tx_us: Option<f64>,
    /// Whole `users` transaction, p50 µs.
    pub users_tx_us: Option<f64>,
    /// `dialgate user add` (process start, argon2id hash, file write).
    pub user_add: Option<Duration>,
    /// Failed logins.
    pub errors: u64,
}

impl Argon2Row {
    /// The argon2id verify cost: users' verdict minus pin's.
    pub fn argon2_us(&self) -> Option<f64> {
        Some(self.users_verdict_us? - self.pin_verdict_us?)
    }
}

/// Everything measured, run by run.
pub struct Report {
    runs: u32,
    note_rate: String,
    rates: Vec<RateRow>,
    idles: Vec<IdleRow>,
    argon2s: Vec<Argon2Row>,
    notes: Vec<String>,
    load_at_start: String,
}

/// `success 100, caller-hung-up 3`.
pub fn describe_outcomes(l: &[(String, u64)]) -> String {
    if l.is_empty() {
        return "no records".into();
    }
    l.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn f0(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn f2(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn pair(a: Option<f64>, b: Option<f64>) -> String {
    format!("{} / {}", fmt_us(a), fmt_us(b))
}

fn kib(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn med<T>(rows: &[&T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
    median(&v)
}

fn read_first(path: &str, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The machine, from `/proc`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem = read_first("/proc/meminfo", "MemTotal").unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let nofile = crate::server::open_files_limit().map_or("?".into(), |n| n.to_string());
    format!("{cpus} CPUs ({model}), {mem} RAM, Linux {kernel}, open files limit {nofile}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

impl Report {
    /// An empty report for `runs` runs.
    pub fn new(runs: u32, note_rate: &str) -> Report {
        Report {
            runs,
            note_rate: note_rate.to_string(),
            rates: Vec::new(),
            idles: Vec::new(),
            argon2s: Vec::new(),
            notes: Vec::new(),
            load_at_start: loadavg(),
        }
    }

    /// Adds a rate row.
    pub fn rate(&mut self, r: RateRow) {
        self.rates.push(r);
    }

    /// Adds an idle row.
    pub fn idle(&mut self, r: IdleRow) {
        self.idles.push(r);
    }

    /// Adds an argon2 row.
    pub fn argon2(&mut self, r: Argon2Row) {
        self.argon2s.push(r);
    }

    /// Adds a note (skipped levels, server problems).
    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    /// The tables, Markdown.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Machine: {}", machine());
        let _ = writeln!(
            o,
            "Load average at start {}, at end {}. Figures are medians of {} run(s); ratios are taken within each run.",
            self.load_at_start,
            loadavg(),
            self.runs
        );
        self.render_rates(&mut o);
        self.render_latency(&mut o);
        self.render_idle(&mut o);
        self.render_argon2(&mut o);
        if !self.notes.is_empty() {
            let _ = writeln!(o, "\nNotes:");
            for n in &self.notes {
                let _ = writeln!(o, "- {n}");
            }
        }
        o
    }

    fn render_rates(&self, o: &mut String) {
        let mut scenarios: Vec<&'static str> = Vec::new();
        for r in &self.rates {
            if !scenarios.contains(&r.scenario) {
                scenarios.push(r.scenario);
            }
        }
        for s in scenarios {
            let rows: Vec<&RateRow> = self.rates.iter().filter(|r| r.scenario == s).collect();
            let expected = rows.first().map_or("", |r| r.expected);
            let _ = writeln!(
                o,
                "\n### Transactions/s: `{s}` ({}; {})\n",
                describe_scenario(s),
                self.note_rate
            );
            let _ = writeln!(
                o,
                "| N | bare tx/s | dialgate tx/s | ratio | connect → prompt p50 / p99 | answer → reply p50 / p99 | last answer → hang-up p50 / p99 | transaction p50 / p99 | bare transaction p50 / p99 | CPU per tx dialgate / bare | dialgate CPU | listen-queue overflows dialgate / bare | failed | event log records (all runs) |"
            );
            let _ = writeln!(
                o,
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
            );
            let mut ns: Vec<usize> = rows.iter().map(|r| r.n).collect();
            ns.dedup();
            ns.sort_unstable();
            ns.dedup();
            for n in ns {
                let at: Vec<&RateRow> = rows.iter().copied().filter(|r| r.n == n).collect();
                let dg: Vec<&Metrics> = at.iter().map(|r| &r.dialgate).collect();
                let bare: Vec<&Metrics> = at.iter().filter_map(|r| r.bare.as_ref()).collect();
                let ratio: Vec<f64> = at
                    .iter()
                    .filter_map(|r| {
                        r.bare
                            .as_ref()
                            .filter(|b| b.tx_s > 0.0)
                            .map(|b| r.dialgate.tx_s / b.tx_s)
                    })
                    .collect();
                let mut errors = Errors::default();
                let mut failed = 0u64;
                for m in &dg {
                    failed += m.errors.total();
                    errors = add_errors(errors, &m.errors);
                }
                let mut tally: Vec<(String, u64)> = Vec::new();
                let mut any_log = false;
                for r in &at {
                    if let Some(l) = &r.log {
                        any_log = true;
                        for (k, c) in l {
                            match tally.iter_mut().find(|(t, _)| t == k) {
                                Some((_, x)) => *x += c,
                                None => tally.push((k.clone(), *c)),
                            }
                        }
                    }
                }
                let completed: u64 = dg.iter().map(|m| m.completed).sum();
                let log = if any_log {
                    let ok = tally.iter().find(|(k, _)| k == expected).map_or(0, |x| x.1);
                    let mark = if ok >= completed {
                        ""
                    } else {
                        " **fewer than completed**"
                    };
                    format!("{}{mark}", describe_outcomes(&tally))
                } else {
                    "-".into()
                };
                let _ = writeln!(
                    o,
                    "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
                    f0(med(&bare, |m| Some(m.tx_s))),
                    f0(med(&dg, |m| Some(m.tx_s))),
                    f2(median(&ratio)),
                    pair(med(&dg, |m| m.first_p50), med(&dg, |m| m.first_p99)),
                    pair(med(&dg, |m| m.prompt_p50), med(&dg, |m| m.prompt_p99)),
                    pair(med(&dg, |m| m.hangup_p50), med(&dg, |m| m.hangup_p99)),
                    pair(med(&dg, |m| m.tx_p50), med(&dg, |m| m.tx_p99)),
                    pair(med(&bare, |m| m.tx_p50), med(&bare, |m| m.tx_p99)),
                    pair(
                        med(&dg, |m| m.cpu_us_per_tx),
                        med(&bare, |m| m.cpu_us_per_tx)
                    ),
                    med(&dg, |m| m.cpu_pct).map_or("-".into(), |c| format!("{c:.0} %")),
                    f0(med(&dg, |m| m.listen_overflows.map(|v| v as f64))),
                    f0(med(&bare, |m| m.listen_overflows.map(|v| v as f64))),
                    if failed == 0 {
                        "0".into()
                    } else {
                        errors.describe()
                    },
                    log
                );
            }
            if self.runs > 1 {
                let mut per: Vec<&RateRow> = rows.clone();
                per.sort_by_key(|r| (r.n, r.run));
                let cells: Vec<String> = per
                    .iter()
                    .map(|r| {
                        let ratio = r
                            .bare
                            .as_ref()
                            .filter(|b| b.tx_s > 0.0)
                            .map_or(String::new(), |b| {
                                format!(" ({:.2})", r.dialgate.tx_s / b.tx_s)
                            });
                        format!("N={} run {}: {:.0}{ratio}", r.n, r.run, r.dialgate.tx_s)
                    })
                    .collect();
                let _ = writeln!(o, "\nPer run, dialgate tx/s (ratio): {}.", cells.join("; "));
            }
        }
    }

    fn render_latency(&self, o: &mut String) {
        let at = |s: &str| -> Vec<&Metrics> {
            self.rates
                .iter()
                .filter(|r| r.scenario == s && r.n == 1000)
                .map(|r| &r.dialgate)
                .collect()
        };
        let refuse = at("pin-refuse");
        let pin = at("pin");
        if refuse.is_empty() && pin.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n### Latency at 1,000 active dialogs\n");
        if !refuse.is_empty() {
            let _ = writeln!(
                o,
                "- caller's answer → the module's reply (`pin-refuse`: the wrong PIN → `Login incorrect`, i.e. the byte reaches the module's Receive, which completes, and the module's Send comes back): p50 {}, **p99 {}** (target p99 < 1 ms for byte → Receive completion; this figure also includes the way back).",
                fmt_us(med(&refuse, |m| m.prompt_p50)),
                fmt_us(med(&refuse, |m| m.prompt_p99)),
            );
        }
        if !pin.is_empty() {
            let _ = writeln!(
                o,
                "- the right PIN → its first reply byte: p50 {}, p99 {}; → the hang-up (`pin`: Receive, SUCCESS, the durable record, `exec /bin/true`): p50 {}, p99 {}.",
                fmt_us(med(&pin, |m| m.prompt_p50)),
                fmt_us(med(&pin, |m| m.prompt_p99)),
                fmt_us(med(&pin, |m| m.hangup_p50)),
                fmt_us(med(&pin, |m| m.hangup_p99)),
            );
        }
    }

    fn render_idle(&self, o: &mut String) {
        if self.idles.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "\n### Memory per idle dialog (VmRSS; each dialog past its `PIN: ` prompt)\n"
        );
        let _ = writeln!(
            o,
            "| server | N | open | RSS before (KiB) | RSS with N idle (KiB) | KiB per idle dialog | RSS after hang-up (KiB) | server fds | open time |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut keys: Vec<(&'static str, usize)> = Vec::new();
        for r in &self.idles {
            if !keys.contains(&(r.target, r.n)) {
                keys.push((r.target, r.n));
            }
        }
        keys.sort_by_key(|(t, n)| (*n, *t != "dialgate"));
        for (t, n) in keys {
            let rows: Vec<&IdleRow> = self
                .idles
                .iter()
                .filter(|r| r.target == t && r.n == n)
                .collect();
            let failed: usize = rows.iter().map(|r| r.failed).sum();
            let _ = writeln!(
                o,
                "| {t} | {n} | {}{} | {} | {} | **{}** | {} | {} | {:.2} s |",
                f0(med(&rows, |r| Some(r.opened as f64))),
                if failed > 0 {
                    format!(" ({failed} failed)")
                } else {
                    String::new()
                },
                kib(med(&rows, |r| r.before_kib.map(|k| k as f64))),
                kib(med(&rows, |r| r.after_kib.map(|k| k as f64))),
                f2(med(&rows, |r| r.per_dialog_kib)),
                kib(med(&rows, |r| r.closed_kib.map(|k| k as f64))),
                f0(med(&rows, |r| r.fds.map(|k| k as f64))),
                med(&rows, |r| Some(r.took.as_secs_f64())).unwrap_or(0.0),
            );
        }
        if self.runs > 1 {
            let mut per: Vec<&IdleRow> = self.idles.iter().collect();
            per.sort_by_key(|r| (r.n, r.target, r.run));
            let cells: Vec<String> = per
                .iter()
                .map(|r| {
                    format!(
                        "{} N={} run {}: {}",
                        r.target,
                        r.n,
                        r.run,
                        f2(r.per_dialog_kib)
                    )
                })
                .collect();
            let _ = writeln!(o, "\nPer run, KiB per idle dialog: {}.", cells.join("; "));
        }
    }

    fn render_argon2(&self, o: &mut String) {
        if self.argon2s.is_empty() {
            return;
        }
        let rows: Vec<&Argon2Row> = self.argon2s.iter().collect();
        let logins = rows.first().map_or(0, |r| r.logins);
        let errors: u64 = rows.iter().map(|r| r.errors).sum();
        let _ = writeln!(
            o,
            "\n### The argon2 cost ({logins} sequential logins per module, N = 1)\n"
        );
        let _ = writeln!(o, "| measure | p50 |");
        let _ = writeln!(o, "|---|---:|");
        let lines: [(&str, Option<f64>); 7] = [
            (
                "`pin`: PIN sent → hang-up (verdict, record, exec)",
                med(&rows, |r| r.pin_verdict_us),
            ),
            (
                "`users`: password sent → hang-up (argon2id verify, verdict, record, exec)",
                med(&rows, |r| r.users_verdict_us),
            ),
            (
                "**argon2id verify** (users − pin)",
                med(&rows, |r| r.argon2_us()),
            ),
            (
                "`users`: user name sent → its echo",
                med(&rows, |r| r.username_echo_us),
            ),
            ("`pin`: whole transaction", med(&rows, |r| r.pin_tx_us)),
            ("`users`: whole transaction", med(&rows, |r| r.users_tx_us)),
            (
                "`dialgate user add` (process, argon2id hash, file)",
                med(&rows, |r| r.user_add.map(|d| d.as_secs_f64() * 1e6)),
            ),
        ];
        for (what, v) in lines {
            let _ = writeln!(o, "| {what} | {} |", fmt_us(v));
        }
        if self.runs > 1 {
            let cells: Vec<String> = rows
                .iter()
                .map(|r| format!("run {}: {}", r.run, fmt_us(r.argon2_us())))
                .collect();
            let _ = writeln!(o, "\nPer run, argon2id verify: {}.", cells.join("; "));
        }
        if errors > 0 {
            let _ = writeln!(o, "\n{errors} login(s) failed.");
        }
    }
}

fn add_errors(mut a: Errors, b: &Errors) -> Errors {
    a.connect += b.connect;
    a.closed_early += b.closed_early;
    a.timeout += b.timeout;
    a.io += b.io;
    a.overflow += b.overflow;
    a.wrong_verdict += b.wrong_verdict;
    a
}

fn describe_scenario(s: &str) -> &'static str {
    match s {
        "pin" => "right PIN: SUCCESS, durable record, exec /bin/true, hang-up",
        "pin-refuse" => "wrong PIN, one try: Login incorrect, FAILURE, durable record, hang-up",
        "users" => {
            "user name and password: argon2id verify, SUCCESS, durable record, exec /bin/true"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(tx_s: f64, completed: u64) -> Metrics {
        Metrics {
            tx_s,
            completed,
            prompt_p50: Some(900.0),
            prompt_p99: Some(900.0),
            ..Metrics::default()
        }
    }

    #[test]
    fn ratios_are_medians_of_per_run_ratios() {
        let mut r = Report::new(3, "1 s");
        for (run, bare, dg) in [(1, 1000.0, 600.0), (2, 2000.0, 800.0), (3, 1000.0, 700.0)] {
            r.rate(RateRow {
                run,
                scenario: "pin",
                expected: "success",
                n: 10,
                bare: Some(metrics(bare, 10)),
                dialgate: metrics(dg, 10),
                log: Some(vec![("success".into(), 10)]),
            });
        }
        let t = r.render();
        // per-run ratios 0.6, 0.4, 0.7: median 0.60 (not 700/1000 by medians)
        assert!(
            t.contains("| 10 | 1000 | 700 | 0.60 | - / - | 900 µs / 900 µs |"),
            "{t}"
        );
        assert!(t.contains("success 30"), "{t}");
        assert!(!t.contains("fewer than completed"), "{t}");
    }

    #[test]
    fn missing_records_are_flagged() {
        let mut r = Report::new(1, "1 s");
        r.rate(RateRow {
            run: 1,
            scenario: "pin",
            expected: "success",
            n: 1,
            bare: None,
            dialgate: metrics(100.0, 500),
            log: Some(vec![("success".into(), 499)]),
        });
        let t = r.render();
        assert!(t.contains("fewer than completed"), "{t}");
    }

    #[test]
    fn argon2_difference() {
        let row = Argon2Row {
            run: 1,
            logins: 1,
            pin_ok: 1,
            users_ok: 1,
            pin_verdict_us: Some(1_000.0),
            users_verdict_us: Some(41_000.0),
            username_echo_us: None,
            pin_tx_us: None,
            users_tx_us: None,
            user_add: None,
            errors: 0,
        };
        assert_eq!(row.argon2_us(), Some(40_000.0));
    }
}
