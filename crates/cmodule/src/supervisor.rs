//! The server's side of module isolation: [`WorkerModule`], a
//! [`SecurityModule`] whose Begin and End run in a worker process (see
//! [`crate::worker`]). Host-function calls from the worker are served
//! against the [`Host`] each transaction got at Begin; a worker may only
//! touch the handles the server gave it.
//!
//! When the worker dies (crash, abort, killed because Begin or End did not
//! return within [`WorkerOptions::call_timeout`], or a protocol violation),
//! every transaction it held is reported to the death callback
//! ([`WorkerModule::on_worker_death`]) as a module defect, its driver is
//! woken, pending Begin/End calls return [`WORKER_GONE`], and the next Begin
//! starts a fresh worker. A transaction whose End has not returned is
//! among them even after its Complete: a death between a SUCCESS and End's
//! return fails closed (spec section 2.5). The End's `Returned` frame is
//! what confirms it, and it is booked the moment the frame is read.
//!
//! A defect the worker reports ([`Frame::Defect`]) goes to the same
//! callback for its transaction, which then ends at once; the supervisor
//! calls End itself if the driver will not (the dialog ended as a defect),
//! so the module can release the port. A defect naming no transaction is
//! logged as an error (rate-limited).
//!
//! The worker's stderr (its log lines, and whatever module code prints) is
//! read into this process's log, one event per line, prefixed with the
//! worker's pid and module: lines longer than [`LOG_LINE_MAX`] bytes are
//! cut, and at most [`LOG_BURST`] lines, refilled at [`LOG_PER_SEC`] a
//! second, are logged; the rest are counted and the count is logged.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use securityhost::consts::*;
use securityhost::{BeginArgs, Defect, HPort, Host, SecurityMessage, SecurityModule};

use crate::protocol::{Frame, ProtocolError, read_frame};

/// What Begin and End return when the worker is gone: an
/// application-defined code (bit 29 set, as Windows reserves for
/// applications), never a Windows one.
pub const WORKER_GONE: u32 = 0x2000_0001;

/// The descriptor number the worker finds its socket on.
pub const WORKER_FD: i32 = 3;

/// The longest line of the worker's stderr logged; the rest is cut.
pub const LOG_LINE_MAX: usize = 1024;
/// How many of the worker's lines (and unattributable defects) may be
/// logged in a burst.
pub const LOG_BURST: u32 = 100;
/// How many a second after a burst.
pub const LOG_PER_SEC: u32 = 20;

/// How to start a worker: a program and its leading arguments; the
/// supervisor appends `--module PATH --fd 3`. For dialgate:
/// `WorkerCommand::new(current_exe).arg("module-worker")`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    program: PathBuf,
    args: Vec<OsString>,
}

impl WorkerCommand {
    /// The program to run.
    pub fn new(program: impl Into<PathBuf>) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Adds a leading argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> WorkerCommand {
        self.args.push(a.into());
        self
    }
}

/// Limits of the supervisor.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// How long Begin or End may take before the worker is killed (an
    /// endless loop in module code).
    pub call_timeout: Duration,
    /// How long a new worker may take to load its module.
    pub start_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            call_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The worker program could not be run.
    #[error("cannot start the module worker {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The worker could not load the module (the text names the file and,
    /// for a missing export, the symbol).
    #[error("{0}")]
    Load(String),
    /// The worker died or broke the protocol before it was ready.
    #[error("security module {module}: the module worker failed to start: {reason}")]
    Failed {
        /// The module file.
        module: PathBuf,
        /// What happened.
        reason: String,
    },
}

/// Called once per transaction a dead worker held, with the defect to
/// record; see [`WorkerModule::on_worker_death`].
pub type DeathCallback = Arc<dyn Fn(HPort, Defect) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct TxState {
    host: Arc<dyn Host>,
    completed: bool,
    /// Begin returned (End may be called).
    begun: bool,
    /// End was sent, by the driver or by us after a defect.
    end_sent: bool,
    end_returned: bool,
    /// A defect the worker reported ended the transaction.
    defected: bool,
}

/// A Begin or End waiting for its `Returned`.
struct Call {
    reply: mpsc::SyncSender<u32>,
    /// For an End: its handle, booked as returned when the frame is read.
    end_of: Option<HPort>,
}

/// How a Begin or End sent to the worker ended.
enum CallResult {
    /// Its `Returned` frame came, with this code.
    Returned(u32),
    /// The worker died; its death was processed (every transaction it held
    /// was reported to the callback) before this call was released.
    Died,
    /// The worker is gone and no one has confirmed its transactions heard
    /// of it: it was dead before the call could be sent, or its death was
    /// not processed within the wait.
    Unconfirmed,
}

impl CallResult {
    fn code(&self) -> u32 {
        match self {
            CallResult::Returned(c) => *c,
            CallResult::Died | CallResult::Unconfirmed => WORKER_GONE,
        }
    }
}

#[derive(Default)]
struct Live {
    /// Set once the worker is dead: nothing new is accepted.
    dead: bool,
    /// Transactions this worker holds.
    txs: HashMap<HPort, TxState>,
    /// Begin/End calls waiting for their return, by id.
    calls: HashMap<u64, Call>,
}

impl Live {
    /// End of `hport` returned `code`: forget it, unless End returned 0 on
    /// an abort and a late Complete may still come.
    fn end_returned(&mut self, hport: HPort, code: u32) {
        if let Some(t) = self.txs.get_mut(&hport) {
            t.end_returned = true;
            if code != NO_ERROR || t.completed || t.defected {
                self.txs.remove(&hport);
            }
        }
    }
}

/// A token bucket on the real clock, for log lines a worker can produce.
struct RateLimit {
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl RateLimit {
    fn new() -> RateLimit {
        RateLimit {
            tokens: f64::from(LOG_BURST),
            last: Instant::now(),
            dropped: 0,
        }
    }

    /// True when one more line may be logged now; otherwise it is counted.
    /// `Some(n)`: `n` lines were dropped before this one.
    fn allow(&mut self) -> (bool, Option<u64>) {
        let now = Instant::now();
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * f64::from(LOG_PER_SEC)).min(f64::from(LOG_BURST));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            let d = std::mem::take(&mut self.dropped);
            (true, (d > 0).then_some(d))
        } else {
            self.dropped += 1;
            (false, None)
        }
    }
}

/// End of `hport` did not return and the death processing may not have
/// told its transaction yet (the worker was already dead or replaced, or
/// its death was not seen in time): tell it now, before End's caller hears
/// [`WORKER_GONE`], so a SUCCESS awaiting End's return never stands.
fn end_not_returned(on_defect: &Mutex<Option<DeathCallback>>, hport: HPort, why: &str) {
    tracing::error!(hport = %hport, "module End did not return: {why}");
    let cb = lock(on_defect).clone();
    if let Some(cb) = cb {
        cb(
            hport,
            Defect::Other(format!(
                "End did not return: {why}; the verdict does not stand"
            )),
        );
    }
}

/// One worker process.
struct Worker {
    pid: u32,
    child: Mutex<Child>,
    /// The socket's sending side. Replies to the worker's host calls are
    /// written directly from the reader thread (the fast path of a dialog
    /// round trip); Begin, End and Receive completions go through `out` to
    /// a writer thread, in order (a completion may fire on the server's
    /// reactor thread and must never block it, and must reach the worker
    /// before an End that follows it).
    writer: Mutex<UnixStream>,
    /// Another handle on the socket, only to shut it down when we kill the
    /// worker (never locked: a writer stuck in a write must not delay it).
    ctl: UnixStream,
    out: Mutex<mpsc::Sender<Vec<u8>>>,
    next_id: AtomicU64,
    live: Mutex<Live>,
    /// Why we killed it, if we did.
    kill_reason: Mutex<Option<String>>,
    /// The module's short name, for the log.
    module: String,
    /// Where defects of its transactions go (the death callback).
    on_defect: Arc<Mutex<Option<DeathCallback>>>,
    /// For defects that name no transaction.
    unattributed: Mutex<RateLimit>,
}

impl Worker {
    /// Writes a frame. The socket has a write timeout: a worker that stops
    /// reading (stopped, or its reader wedged) is killed, not waited for.
    fn post(&self, f: &Frame) {
        if let Err(e) = lock(&self.writer).write_all(&f.encode()) {
            self.kill(format!("killed: cannot write to it: {e}"));
        }
    }

    /// Queues a frame for the writer thread, after every frame queued
    /// before it.
    fn queue(&self, f: &Frame) {
        let _ = lock(&self.out).send(f.encode());
    }

    fn is_dead(&self) -> bool {
        lock(&self.live).dead
    }

    /// Kills the worker for `reason`, unless it already exited (then its
    /// own exit status tells why).
    ///
    /// Either way our end of the socket is shut down, so the reader sees
    /// the end of the stream and the death is processed even when another
    /// process still holds the worker's end (module code that forked).
    fn kill(&self, reason: String) {
        {
            let mut child = lock(&self.child);
            if !matches!(child.try_wait(), Ok(Some(_))) {
                lock(&self.kill_reason).get_or_insert(reason);
                let _ = child.kill();
            }
        }
        let _ = self.ctl.shutdown(std::net::Shutdown::Both);
    }

    /// Sends Begin or End (then `end_of` is its handle) and waits for its
    /// return.
    fn call(
        &self,
        make: impl FnOnce(u64) -> Frame,
        end_of: Option<HPort>,
        timeout: Duration,
        what: &str,
    ) -> CallResult {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut live = lock(&self.live);
            if live.dead {
                return CallResult::Unconfirmed;
            }
            live.calls.insert(id, Call { reply: tx, end_of });
        }
        // Queued, not written directly: a Receive completion the driver
        // produced before it called End must reach the worker first (the
        // module's event is signalled before End, never after).
        self.queue(&make(id));
        match rx.recv_timeout(timeout) {
            Ok(code) => CallResult::Returned(code),
            Err(mpsc::RecvTimeoutError::Disconnected) => CallResult::Died,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill(format!(
                    "killed: {what} did not return within {} s",
                    timeout.as_secs_f32()
                ));
                // Wait for the death to be processed, so the transactions
                // hear of the defect before this call returns.
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(code) => CallResult::Returned(code),
                    Err(mpsc::RecvTimeoutError::Disconnected) => CallResult::Died,
                    Err(mpsc::RecvTimeoutError::Timeout) => CallResult::Unconfirmed,
                }
            }
        }
    }

    fn host_for(&self, hport: HPort) -> Option<Arc<dyn Host>> {
        lock(&self.live).txs.get(&hport).map(|t| t.host.clone())
    }

    /// Sends End for `hport` on a thread of its own, for a transaction a
    /// defect ended (its driver will not call End); `Returned` forgets it.
    fn end_after_defect(self: &Arc<Self>, hport: HPort, timeout: Duration) {
        let w = self.clone();
        let r = std::thread::Builder::new()
            .name(format!("cmodule-end{}", self.pid))
            .spawn(move || {
                w.call(
                    |id| Frame::End { id, hport: hport.0 },
                    Some(hport),
                    timeout,
                    "End",
                );
            });
        if r.is_err() {
            lock(&self.live).txs.remove(&hport);
        }
    }

    /// A defect the worker reported: the transaction ends as a module
    /// defect (through the callback), its driver is woken, and End is
    /// called for it if the driver will not.
    fn reported_defect(self: &Arc<Self>, hport: u64, what: &str, timeout: Duration) {
        // The worker's text goes into our log and the event log: it must
        // not carry line breaks or terminal escapes.
        let what = &escape_controls(what);
        let h = HPort(hport);
        let (host, again) = {
            let mut live = lock(&self.live);
            match live.txs.get_mut(&h).filter(|_| hport != 0) {
                Some(t) => {
                    let again = std::mem::replace(&mut t.defected, true);
                    (Some(t.host.clone()), again)
                }
                None => (None, false),
            }
        };
        if again {
            // The first one ended the dialog; more are only logged, so a
            // worker cannot grow a finished transaction's defect list.
            let (ok, dropped) = lock(&self.unattributed).allow();
            if let Some(n) = dropped {
                tracing::warn!(pid = self.pid, module = %self.module, "{n} defect reports not logged (rate limit)");
            }
            if ok {
                tracing::error!(pid = self.pid, module = %self.module, hport = %h, "module defect (the dialog already ended): {what}");
            }
            return;
        }
        let Some(host) = host else {
            let (ok, dropped) = lock(&self.unattributed).allow();
            if let Some(n) = dropped {
                tracing::warn!(pid = self.pid, module = %self.module, "{n} defect reports not logged (rate limit)");
            }
            if ok {
                tracing::error!(
                    pid = self.pid,
                    module = %self.module,
                    "module defect the worker could not attribute to a transaction{}: {what}",
                    if hport == 0 { String::new() } else { format!(" (hPort {h} is not one of its transactions)") }
                );
            }
            return;
        };
        let text = format!("{what} (module worker pid {})", self.pid);
        tracing::error!(pid = self.pid, module = %self.module, hport = %h, "module defect: {what}");
        let cb = lock(&self.on_defect).clone();
        match &cb {
            Some(cb) => cb(h, Defect::Other(text)),
            None => tracing::error!(
                "no defect callback is set: the transaction ends at its dialog time limit"
            ),
        }
        let _ = host.send(h, &[]);
        if cb.is_none() {
            return;
        }
        let end_now = {
            let mut live = lock(&self.live);
            match live.txs.get_mut(&h) {
                Some(t) if t.begun && !t.end_sent => {
                    t.end_sent = true;
                    true
                }
                _ => false,
            }
        };
        if end_now {
            self.end_after_defect(h, timeout);
        }
    }

    /// Serves one frame from the worker. `Err` is a protocol violation.
    fn serve(self: &Arc<Self>, f: Frame, timeout: Duration) -> Result<(), String> {
        match f {
            Frame::Returned { id, code } => {
                let mut live = lock(&self.live);
                if let Some(c) = live.calls.remove(&id) {
                    // Booked before anyone hears of it: a death after this
                    // frame is a death after End returned.
                    if let Some(h) = c.end_of {
                        live.end_returned(h, code);
                    }
                    drop(live);
                    let _ = c.reply.send(code);
                }
            }
            Frame::Defect { hport, what } => self.reported_defect(hport, &what, timeout),
            Frame::Send { id, hport, data } => {
                let code = self
                    .host_for(HPort(hport))
                    .map_or(ERROR_INVALID_PORT_HANDLE, |h| h.send(HPort(hport), &data));
                self.post(&Frame::Reply { id, code });
            }
            Frame::Receive {
                id,
                hport,
                room,
                timeout,
            } => {
                let code = match self.host_for(HPort(hport)) {
                    None => ERROR_INVALID_PORT_HANDLE,
                    Some(h) => {
                        let out = lock(&self.out).clone();
                        h.receive(
                            HPort(hport),
                            room as usize,
                            timeout,
                            Box::new(move |c| {
                                let _ = out.send(
                                    Frame::ReceiveDone {
                                        id,
                                        last_error: c.last_error,
                                        data: c.data,
                                    }
                                    .encode(),
                                );
                            }),
                        )
                    }
                };
                self.post(&Frame::Reply { id, code });
            }
            Frame::GetInfo { id, hport } => {
                let r = match self.host_for(HPort(hport)) {
                    None => Err(ERROR_INVALID_PORT_HANDLE),
                    Some(h) => h.get_info(HPort(hport)),
                };
                let f = match r {
                    Ok(i) => Frame::Info {
                        id,
                        code: NO_ERROR,
                        last_error: i.last_error,
                        bytes_received: i.bytes_received,
                        device: i.device_name,
                    },
                    Err(code) => Frame::Info {
                        id,
                        code,
                        last_error: 0,
                        bytes_received: 0,
                        device: String::new(),
                    },
                };
                self.post(&f);
            }
            Frame::Complete { id, hport, msg } => {
                let code = self.complete(HPort(hport), &msg);
                self.post(&Frame::Reply { id, code });
            }
            other => return Err(format!("unexpected frame from the worker: {other:?}")),
        }
        Ok(())
    }

    /// A Complete the worker attributes to `hport` (the transaction checks
    /// that the message names it).
    fn complete(&self, hport: HPort, msg: &SecurityMessage) -> u32 {
        let Some(host) = self.host_for(hport) else {
            return ERROR_INVALID_PORT_HANDLE;
        };
        let code = host.complete(msg);
        let mut live = lock(&self.live);
        if let Some(t) = live.txs.get_mut(&hport) {
            t.completed = true;
            if t.end_returned {
                live.txs.remove(&hport);
            }
        }
        code
    }

    /// The worker is gone: report every transaction, release every call.
    fn died(&self, cause: &str, on_death: Option<DeathCallback>) {
        let status = {
            let mut child = lock(&self.child);
            let _ = child.kill();
            child.wait().ok()
        };
        let how = match status {
            Some(s) => match (s.signal(), s.code()) {
                (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
                (None, Some(c)) => format!("exited with status {c}"),
                _ => s.to_string(),
            },
            None => "gone".to_string(),
        };
        let why = lock(&self.kill_reason)
            .clone()
            .unwrap_or_else(|| cause.to_string());
        let text = format!("module worker (pid {}) died: {how}; {why}", self.pid);
        let (txs, calls) = {
            let mut live = lock(&self.live);
            live.dead = true;
            (
                std::mem::take(&mut live.txs),
                std::mem::take(&mut live.calls),
            )
        };
        tracing::error!(pid = self.pid, transactions = txs.len(), "{text}");
        for (hport, t) in txs {
            if let Some(cb) = &on_death {
                let text = if t.completed && !t.end_returned {
                    format!(
                        "{text}; after the module's Complete and before End returned: \
                         the verdict does not stand"
                    )
                } else {
                    text.clone()
                };
                cb(hport, Defect::Other(text));
            }
            // Wake the transaction's driver: a host call always does, and
            // this one changes nothing (an empty Send).
            let _ = t.host.send(hport, &[]);
        }
        drop(calls);
    }
}

/// Reads the worker's stderr into the log until it closes: one event per
/// line (at most [`LOG_LINE_MAX`] bytes kept, control bytes escaped), at
/// the level the worker's own log line names, else `warn`; rate-limited.
fn forward_log(pid: u32, module: &str, r: impl Read) {
    read_log_lines(r, |level, text| match level {
        "ERROR" => tracing::error!(pid, module, "module worker: {text}"),
        "INFO" => tracing::info!(pid, module, "module worker: {text}"),
        "DEBUG" => tracing::debug!(pid, module, "module worker: {text}"),
        "TRACE" => tracing::trace!(pid, module, "module worker: {text}"),
        _ => tracing::warn!(pid, module, "module worker: {text}"),
    });
}

/// Splits `r` into lines and hands each to `emit` as (level, text): the
/// level the worker's log line names (`ERROR`, `WARN`, ...), else `""`;
/// the text at most [`LOG_LINE_MAX`] bytes of the line (then `[cut]`),
/// control characters escaped. Rate-limited ([`LOG_BURST`],
/// [`LOG_PER_SEC`]); the number of lines dropped is emitted as a `WARN`
/// line before the next one let through. Memory: one line and a 4 KiB
/// read buffer.
fn read_log_lines(mut r: impl Read, mut emit: impl FnMut(&str, String)) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(LOG_LINE_MAX);
    let mut cut = false;
    let mut limit = RateLimit::new();
    let mut one = |line: &[u8], cut: bool| {
        let (ok, dropped) = limit.allow();
        if let Some(n) = dropped {
            emit("WARN", format!("{n} log lines dropped (rate limit)"));
        }
        if ok {
            let (level, text) = log_text(line, cut);
            emit(level, text);
        }
    };
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                one(&line, cut);
                line.clear();
                cut = false;
            } else if line.len() < LOG_LINE_MAX {
                line.push(b);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        one(&line, cut);
    }
    if limit.dropped > 0 {
        emit(
            "WARN",
            format!("{} log lines dropped (rate limit)", limit.dropped),
        );
    }
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`, ...): text
/// from the worker, safe to put in a log line or a record.
fn escape_controls(s: &str) -> String {
    let mut text = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    text
}

fn log_text(line: &[u8], cut: bool) -> (&'static str, String) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = escape_controls(&String::from_utf8_lossy(line));
    let trimmed = text.trim();
    let (level, rest) = match trimmed.split_once(' ') {
        Some((l, rest)) => match l {
            "ERROR" => ("ERROR", rest),
            "WARN" => ("WARN", rest),
            "INFO" => ("INFO", rest),
            "DEBUG" => ("DEBUG", rest),
            "TRACE" => ("TRACE", rest),
            _ => ("", trimmed),
        },
        None => ("", trimmed),
    };
    let mut out = rest.trim_start().to_string();
    if cut {
        out.push_str(" [cut]");
    }
    (level, out)
}

fn signal_name(sig: i32) -> &'static str {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str(),
        Err(_) => "unknown",
    }
}

/// A C module run in a worker process.
pub struct WorkerModule {
    name: String,
    module: PathBuf,
    command: WorkerCommand,
    opts: WorkerOptions,
    current: Mutex<Option<Arc<Worker>>>,
    on_death: Arc<Mutex<Option<DeathCallback>>>,
}

impl std::fmt::Debug for WorkerModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerModule")
            .field("name", &self.name)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl WorkerModule {
    /// Starts a worker for the module at `module` and waits until it loaded
    /// it: a missing or unloadable module, or one without the two exports,
    /// is an error here (the server must not start).
    pub fn start(
        command: WorkerCommand,
        module: &Path,
        opts: WorkerOptions,
    ) -> Result<WorkerModule, StartError> {
        let m = WorkerModule {
            name: crate::module_name(module),
            module: module.to_path_buf(),
            command,
            opts,
            current: Mutex::new(None),
            on_death: Arc::new(Mutex::new(None)),
        };
        let w = m.spawn()?;
        *lock(&m.current) = Some(w);
        Ok(m)
    }

    /// Sets what the server does for each transaction a dead worker held,
    /// and for a transaction whose worker reported a defect of it: end it
    /// as a module defect, for example
    /// `move |h, d| if let Some(p) = table.get(h) { p.with(|tx, _| tx.module_defect(d)) }`.
    /// After the callback the supervisor wakes the transaction's driver
    /// (with an empty Send through its `Host`), and after a reported defect
    /// it calls the module's End itself unless the driver already did.
    /// Without a callback, such a transaction ends at its dialog time limit
    /// (End then returns [`WORKER_GONE`]).
    pub fn on_worker_death(&self, cb: impl Fn(HPort, Defect) + Send + Sync + 'static) {
        *lock(&self.on_death) = Some(Arc::new(cb));
    }

    /// The current worker's process id, if one is running.
    pub fn worker_pid(&self) -> Option<u32> {
        lock(&self.current)
            .as_ref()
            .filter(|w| !w.is_dead())
            .map(|w| w.pid)
    }

    /// The live worker, starting a new one if the last one died.
    fn worker(&self) -> Result<Arc<Worker>, StartError> {
        let mut cur = lock(&self.current);
        if let Some(w) = cur.as_ref()
            && !w.is_dead()
        {
            return Ok(w.clone());
        }
        let w = self.spawn()?;
        tracing::info!(module = %self.name, pid = w.pid, "started a new module worker");
        *cur = Some(w.clone());
        Ok(w)
    }

    #[allow(unsafe_code)]
    fn spawn(&self) -> Result<Arc<Worker>, StartError> {
        let failed = |reason: String| StartError::Failed {
            module: self.module.clone(),
            reason,
        };
        let (ours, theirs): (OwnedFd, OwnedFd) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| failed(format!("socketpair: {e}")))?;
        let child_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .arg("--module")
            .arg(&self.module)
            .arg("--fd")
            .arg(WORKER_FD.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls dup2 and fcntl, which are async-signal-safe. Both ends
        // of the pair are close-on-exec, so no other child of the server
        // inherits them (a leaked copy would hide the worker's death); the
        // worker gets its end as descriptor 3, without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if child_fd == WORKER_FD {
                    if libc::fcntl(WORKER_FD, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(child_fd, WORKER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| StartError::Spawn {
            program: self.command.program.clone(),
            source,
        })?;
        drop(theirs);
        let pid = child.id();
        let mut child = child;
        // Its log lines (and anything module code prints) into our log,
        // from the first byte: a module that fails to load says why there.
        if let Some(err) = child.stderr.take() {
            let name = self.name.clone();
            let r = std::thread::Builder::new()
                .name(format!("cmodule-e{pid}"))
                .spawn(move || forward_log(pid, &name, err));
            if let Err(e) = r {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("cannot start a thread: {e}")));
            }
        }
        let mut sock = UnixStream::from(ours);
        // The first frame: Ready or LoadFailed.
        let first = (|| {
            sock.set_read_timeout(Some(self.opts.start_timeout))?;
            let f = read_frame(&mut sock);
            sock.set_read_timeout(None)?;
            Ok::<_, std::io::Error>(f)
        })();
        let fail = |child: &mut Child, e: StartError| {
            let _ = child.kill();
            let _ = child.wait();
            e
        };
        match first {
            Ok(Ok(Frame::Ready { .. })) => {}
            Ok(Ok(Frame::LoadFailed { reason })) => {
                return Err(fail(&mut child, StartError::Load(escape_controls(&reason))));
            }
            Ok(Ok(other)) => {
                return Err(fail(
                    &mut child,
                    failed(format!("unexpected first frame {other:?}")),
                ));
            }
            Ok(Err(ProtocolError::Closed)) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(failed(format!("it exited before it was ready ({status})")));
            }
            Ok(Err(e)) => return Err(fail(&mut child, failed(e.to_string()))),
            Err(e) => return Err(fail(&mut child, failed(e.to_string()))),
        }
        let writer = sock
            .try_clone()
            .and_then(|w| {
                w.set_write_timeout(Some(self.opts.call_timeout))?;
                Ok(w)
            })
            .map_err(|e| fail(&mut child, failed(e.to_string())))?;
        let ctl = sock
            .try_clone()
            .map_err(|e| fail(&mut child, failed(e.to_string())))?;
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
        let w = Arc::new(Worker {
            pid,
            child: Mutex::new(child),
            writer: Mutex::new(writer),
            ctl,
            out: Mutex::new(out_tx),
            next_id: AtomicU64::new(1),
            live: Mutex::new(Live::default()),
            kill_reason: Mutex::new(None),
            module: self.name.clone(),
            on_defect: self.on_death.clone(),
            unattributed: Mutex::new(RateLimit::new()),
        });
        // The writer of queued frames (Receive completions).
        let ww = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name(format!("cmodule-w{pid}"))
            .spawn(move || {
                while let Ok(buf) = out_rx.recv() {
                    let Some(w) = ww.upgrade() else { break };
                    if let Err(e) = lock(&w.writer).write_all(&buf) {
                        w.kill(format!("killed: cannot write to it: {e}"));
                        break;
                    }
                }
            })
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        let (reader_w, on_death) = (w.clone(), self.on_death.clone());
        let call_timeout = self.opts.call_timeout;
        std::thread::Builder::new()
            .name(format!("cmodule-r{pid}"))
            .spawn(move || {
                let w = reader_w;
                let mut sock = sock;
                let cause = loop {
                    match read_frame(&mut sock) {
                        Ok(f) => {
                            if let Err(e) = w.serve(f, call_timeout) {
                                w.kill(format!("killed: protocol violation: {e}"));
                                break e;
                            }
                        }
                        Err(ProtocolError::Closed) => break "its socket closed".to_string(),
                        Err(e) => {
                            w.kill(format!("killed: {e}"));
                            break e.to_string();
                        }
                    }
                };
                let cb = lock(&on_death).clone();
                w.died(&cause, cb);
            })
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        Ok(w)
    }

    /// Finds the worker that holds `hport`.
    fn holder(&self, hport: HPort) -> Option<Arc<Worker>> {
        lock(&self.current)
            .as_ref()
            .filter(|w| lock(&w.live).txs.contains_key(&hport))
            .cloned()
    }
}

impl SecurityModule for WorkerModule {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let w = match self.worker() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(module = %self.name, "{e}");
                return WORKER_GONE;
            }
        };
        let hport = args.hport;
        {
            let mut live = lock(&w.live);
            if live.dead {
                return WORKER_GONE;
            }
            // Forget transactions whose End returned 0 on an abort and whose
            // late Complete never came, once the server dropped them.
            live.txs
                .retain(|h, t| !t.end_returned || t.host.get_info(*h).is_ok());
            live.txs.insert(
                hport,
                TxState {
                    host: args.host.clone(),
                    completed: false,
                    begun: false,
                    end_sent: false,
                    end_returned: false,
                    defected: false,
                },
            );
        }
        let code = w
            .call(
                |id| Frame::Begin {
                    id,
                    hport: hport.0,
                    send_size: args.send_buffer_size.min(u32::MAX as usize) as u32,
                    recv_size: args.recv_buffer_size.min(u32::MAX as usize) as u32,
                },
                None,
                self.opts.call_timeout,
                "Begin",
            )
            .code();
        let end_now = {
            let mut live = lock(&w.live);
            match live.txs.get_mut(&hport) {
                _ if code != NO_ERROR => {
                    live.txs.remove(&hport);
                    false
                }
                Some(t) => {
                    t.begun = true;
                    // A defect inside Begin ended the dialog: its driver
                    // will not call End, so we do, for the module's sake.
                    let now = t.defected && !t.end_sent;
                    t.end_sent |= now;
                    now
                }
                None => false,
            }
        };
        if end_now {
            w.end_after_defect(hport, self.opts.call_timeout);
        }
        code
    }

    fn end(&self, hport: HPort) -> u32 {
        let Some(w) = self.holder(hport) else {
            // Its worker died (its death may still be being processed) or
            // was replaced: End cannot return.
            end_not_returned(
                &self.on_death,
                hport,
                "no live module worker holds this transaction (it died, or ended it already)",
            );
            return WORKER_GONE;
        };
        {
            let mut live = lock(&w.live);
            if let Some(t) = live.txs.get_mut(&hport) {
                if t.end_sent {
                    // We already called it after a defect; the transaction
                    // is over and takes no notice of this return.
                    return WORKER_GONE;
                }
                t.end_sent = true;
            }
        }
        // Booked as returned when the worker's Returned frame is read (and
        // kept for a late Complete when End returned 0 on an abort).
        match w.call(
            |id| Frame::End { id, hport: hport.0 },
            Some(hport),
            self.opts.call_timeout,
            "End",
        ) {
            CallResult::Returned(code) => code,
            // Every transaction it held was reported before we got here.
            CallResult::Died => WORKER_GONE,
            CallResult::Unconfirmed => {
                end_not_returned(
                    &self.on_death,
                    hport,
                    &format!("its module worker (pid {}) is gone", w.pid),
                );
                WORKER_GONE
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Normally reaped by `died` already; this covers a worker whose
        // threads could not be started.
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for WorkerModule {
    fn drop(&mut self) {
        if let Some(w) = lock(&self.current).take() {
            w.kill("killed: the module was dropped (shutdown)".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        read_log_lines(input, |l, t| out.push((l.to_string(), t)));
        out
    }

    #[test]
    fn hole_8_worker_log_lines_keep_their_level_and_are_cleaned() {
        let got =
            lines(b"ERROR module defect: x hport=0x1\n WARN w\nplain C text\r\nbell\x07\nlast");
        assert_eq!(
            got,
            vec![
                ("ERROR".into(), "module defect: x hport=0x1".into()),
                ("WARN".into(), "w".into()),
                ("".into(), "plain C text".into()),
                ("".into(), "bell\\u{7}".into()),
                ("".into(), "last".into()),
            ]
        );
    }

    #[test]
    fn hole_8_worker_log_lines_are_bounded_in_length_and_rate() {
        // A line far longer than the bound is cut, never buffered whole.
        let mut long = vec![b'x'; 100 * LOG_LINE_MAX];
        long.push(b'\n');
        let got = lines(&long);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].1.len() <= LOG_LINE_MAX + " [cut]".len(),
            "{}",
            got[0].1.len()
        );
        assert!(got[0].1.ends_with("[cut]"));
        // A flood: at most a burst (and what refills meanwhile) gets through,
        // and the drop is counted.
        let flood: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("INFO line {i}\n").into_bytes())
            .collect();
        let got = lines(&flood);
        let passed = got.iter().filter(|(_, t)| t.starts_with("line ")).count();
        assert!(
            passed >= LOG_BURST as usize && passed < 2 * LOG_BURST as usize,
            "{passed}"
        );
    }
}
