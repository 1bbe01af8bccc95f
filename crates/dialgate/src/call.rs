//! One caller on one port: the driver of a `securityhost` transaction, the
//! event-log record, and what follows the verdict.
//!
//! The transaction is a pure state machine; this file only moves bytes
//! between it and the line, runs its timers, calls the module's Begin and
//! End on tokio's blocking pool (never on a reactor thread), and records the
//! outcome durably before the port is free for the next caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use securityhost::{
    AbortCause, Action, BeginArgs, Defect, Outcome, Port, PortTable, SecurityModule, SystemClock,
    Verdict,
};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Group;

/// What a port group shares between its calls.
pub struct GroupRuntime {
    /// The checked configuration.
    pub cfg: Group,
    /// Its module (`None`: a dedicated PPP port, no dialog).
    pub module: Option<Arc<dyn SecurityModule>>,
    /// The PPP hand-off's shared state, for `ppp` groups.
    pub ppp: Option<crate::session::PppRuntime>,
    /// Live handles (shared by all groups).
    pub table: Arc<PortTable>,
    /// The event log.
    pub log: eventlog::Writer,
    /// Whether records can be written now; one for all groups.
    pub log_health: Arc<LogHealth>,
}

/// Records queued behind a hung writer beyond which refusal records are no
/// longer queued (each is counted in [`LogHealth::unrecorded`] and logged
/// instead): what a flood of callers can pile up in memory is bounded.
pub const MAX_QUEUED_RECORDS: u64 = 4096;

/// How long a refused caller's record (the probe of a broken log) is waited
/// for before the caller is told the service is unavailable.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The event log's health, shared by every port group: while it is broken
/// (a write failed, or did not finish within `timeout`) every group
/// refuses new callers rather than serve them unrecorded.
///
/// The flag follows the newest record whose answer is known, in the order
/// the records were queued (the writer commits in that order): each answer
/// is awaited by its own task, so a late success of an older record may be
/// seen after the failure or the timeout of a newer one, and must not
/// clear the flag then (nor an older failure set it after a newer
/// success).
#[derive(Debug)]
pub struct LogHealth {
    broken: AtomicBool,
    timeout: Duration,
    unrecorded: AtomicU64,
    order: std::sync::Mutex<Order>,
}

/// Sequence numbers of the records queued, and the newest one whose answer
/// set the flag.
#[derive(Debug, Default)]
struct Order {
    next: u64,
    newest: Option<u64>,
}

impl LogHealth {
    /// Healthy, with the bound on each write.
    pub fn new(timeout: Duration) -> LogHealth {
        LogHealth {
            broken: AtomicBool::new(false),
            timeout,
            unrecorded: AtomicU64::new(0),
            order: std::sync::Mutex::new(Order::default()),
        }
    }

    /// New callers are refused.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// How long a write may take before it counts as failed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records that were never stored (failed, or not queued because the
    /// writer was too far behind). A record that only timed out stays
    /// queued and is not counted unless its write then fails.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Order> {
        self.order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a record with `submit` (non-blocking), numbering it in the
    /// order it reaches the writer.
    fn submit<T>(&self, submit: impl FnOnce() -> T) -> (u64, T) {
        let mut o = self.lock();
        let seq = o.next;
        o.next += 1;
        (seq, submit())
    }

    /// What the record `seq` came to (`ok`: committed; else failed or timed
    /// out): the flag follows it unless a newer record's answer is already
    /// known. Returns whether the flag was set before, `None` when a newer
    /// answer was known (nothing changed).
    fn answered(&self, seq: u64, ok: bool) -> Option<bool> {
        let mut o = self.lock();
        if o.newest.is_some_and(|n| n > seq) {
            return None;
        }
        o.newest = Some(seq);
        Some(self.broken.swap(!ok, Ordering::SeqCst))
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct CallerId {
    /// The device name modules see (`tcp 127.0.0.1:50412`, `/dev/pts/3`).
    pub device: String,
    /// The remote address, when there is one.
    pub remote: Option<String>,
    /// Serial lines: set when the carrier dropped during the call.
    pub carrier: Option<Arc<crate::modemline::CarrierFlag>>,
}

impl CallerId {
    /// The call ended because the modem lost the carrier.
    pub fn carrier_lost(&self) -> bool {
        self.carrier.as_ref().is_some_and(|c| c.is_lost())
    }
}

/// How the dialog ended, with what the record needs.
#[derive(Debug)]
pub struct DialogResult {
    /// The transaction's outcome.
    pub outcome: Outcome,
    /// Contract breaches beside it.
    pub defects: Vec<Defect>,
    /// Caller bytes the module did not read.
    pub backlog: Vec<u8>,
    /// The caller is gone.
    pub hung_up: bool,
    /// Wall-clock start and end.
    pub started: OffsetDateTime,
    /// End of the dialog.
    pub ended: OffsetDateTime,
}

const BEGIN_WARN: Duration = Duration::from_secs(1);
const FINAL_FLUSH: Duration = Duration::from_secs(2);

impl GroupRuntime {
    /// The module's name for records (`none` on a dedicated PPP port).
    pub fn module_name(&self) -> &str {
        self.module.as_ref().map_or("none", |m| m.name())
    }
}

/// Runs the security dialog on `stream` until the transaction finishes.
pub async fn run_dialog<S>(
    rt: &GroupRuntime,
    module: &Arc<dyn SecurityModule>,
    stream: &mut S,
    who: &CallerId,
    mut shutdown: watch::Receiver<bool>,
) -> DialogResult
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = OffsetDateTime::now_utc();
    let notify = Arc::new(Notify::new());
    let wake = notify.clone();
    let hport = rt.table.allocate();
    let cfg = rt.cfg.transaction.clone();
    let port = Port::new(
        hport,
        cfg.clone(),
        &who.device,
        Arc::new(SystemClock),
        Box::new(move || wake.notify_one()),
    );
    rt.table.insert(&port);
    let _unregister = Unregister(rt.table.clone(), hport);

    let args = BeginArgs {
        hport,
        send_buffer_size: cfg.send_buffer_size,
        recv_buffer_size: cfg.recv_buffer_size,
        host: port.host(),
    };
    let begin_module = module.clone();
    let begin_at = Instant::now();
    let mut begin: Option<JoinHandle<u32>> = Some(tokio::task::spawn_blocking(move || {
        begin_module.begin(args)
    }));
    let mut begin_warned = false;
    let mut end: Option<JoinHandle<u32>> = None;
    let mut out: Vec<u8> = Vec::new();
    let mut off = 0usize;
    let mut buf = vec![0u8; 1024];
    let mut eof = false;
    let (mut rd, mut wr) = tokio::io::split(&mut *stream);
    let mut shutting_down = *shutdown.borrow();
    if shutting_down {
        port.with(|tx, now| tx.abort(AbortCause::Shutdown, now));
    }

    let outcome = 'drive: loop {
        // Everything the transaction has for us, in order.
        let actions: Vec<Action> = port.with(|tx, _| {
            if out.is_empty()
                && let Some(b) = tx.poll_transmit()
            {
                out = b;
                off = 0;
            }
            std::iter::from_fn(|| tx.poll_action()).collect()
        });
        for a in actions {
            match a {
                Action::CallEnd => {
                    let module = module.clone();
                    end = Some(tokio::task::spawn_blocking(move || module.end(hport)));
                }
                Action::Finished(o) => break 'drive o,
            }
        }
        let (room, deadline) = port.with(|tx, _| (tx.input_room(), tx.poll_timeout()));
        let read_len = room.min(buf.len());
        let sleep_until = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            r = join_opt(&mut begin) => {
                begin = None;
                match r {
                    Ok(code) => port.with(|tx, now| tx.begin_returned(code, now)),
                    Err(e) => port.with(|tx, _| tx.module_defect(Defect::Other(format!("Begin panicked: {e}")))),
                }
            }
            r = join_opt(&mut end) => {
                end = None;
                match r {
                    Ok(code) => port.with(|tx, now| tx.end_returned(code, now)),
                    Err(e) => port.with(|tx, _| tx.module_defect(Defect::Other(format!("End panicked: {e}")))),
                }
            }
            r = rd.read(&mut buf[..read_len]), if !eof && read_len > 0 => {
                match r {
                    Ok(0) | Err(_) => {
                        eof = true;
                        port.with(|tx, now| tx.caller_hung_up(now));
                    }
                    Ok(n) => port.with(|tx, _| tx.caller_input(&buf[..n])),
                }
            }
            r = wr.write(&out[off..]), if off < out.len() => {
                match r {
                    Ok(0) | Err(_) => {
                        out.clear();
                        off = 0;
                        eof = true;
                        port.with(|tx, now| tx.transmit_failed(now));
                    }
                    Ok(n) => {
                        off += n;
                        if off >= out.len() {
                            out.clear();
                            off = 0;
                        }
                    }
                }
            }
            _ = notify.notified() => {}
            _ = sleep_opt(sleep_until) => port.with(|tx, now| tx.handle_timeout(now)),
            r = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                if r.is_err() || *shutdown.borrow() {
                    port.with(|tx, now| tx.abort(AbortCause::Shutdown, now));
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(begin_at + BEGIN_WARN)), if begin.is_some() && !begin_warned => {
                begin_warned = true;
                tracing::warn!(group = %rt.cfg.name, module = module.name(), "module Begin has taken longer than 1 s");
            }
        }
    };

    // Last words from the module ("Login incorrect") reach the caller.
    if !eof {
        let rest = port.with(|tx, _| tx.poll_transmit()).unwrap_or_default();
        out.drain(..off);
        out.extend_from_slice(&rest);
        if !out.is_empty() {
            let _ = tokio::time::timeout(FINAL_FLUSH, async {
                wr.write_all(&out).await?;
                wr.flush().await
            })
            .await;
        }
    }
    let (defects, backlog) = port.with(|tx, _| (tx.defects().to_vec(), tx.take_backlog()));
    DialogResult {
        outcome,
        defects,
        backlog,
        hung_up: eof,
        started,
        ended: OffsetDateTime::now_utc(),
    }
}

struct Unregister(Arc<PortTable>, securityhost::HPort);
impl Drop for Unregister {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

async fn join_opt(h: &mut Option<JoinHandle<u32>>) -> Result<u32, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Builds the event-log record of a finished dialog.
pub fn dialog_record(rt: &GroupRuntime, who: &CallerId, r: &DialogResult) -> eventlog::Record {
    use eventlog::{Kind, Outcome as O};
    let (outcome, msg_id, error, user, domain, mut detail) = match &r.outcome {
        Outcome::Verdict(Verdict::Success { user, domain }) => (
            O::Success,
            Some(1),
            None,
            Some(user.clone()),
            Some(domain.clone()),
            None,
        ),
        Outcome::Verdict(Verdict::Failure { user, domain }) => (
            O::Failure,
            Some(2),
            None,
            Some(user.clone()),
            Some(domain.clone()),
            None,
        ),
        Outcome::Verdict(Verdict::Error { code }) => (
            O::Error,
            Some(3),
            Some(*code),
            None,
            None,
            Some(format!(
                "dwError {code} ({})",
                securityhost::consts::error_name(*code)
            )),
        ),
        Outcome::Defect(d) => (O::ModuleDefect, None, None, None, None, Some(d.to_string())),
        Outcome::BeginFailed(code) => (
            O::BeginFailed,
            None,
            Some(*code),
            None,
            None,
            Some(format!("module could not start: Begin returned {code}")),
        ),
        Outcome::Aborted { cause, late } => {
            let o = match cause {
                AbortCause::CallerHungUp => O::CallerHungUp,
                AbortCause::DialogTimedOut => O::DialogTimeout,
                AbortCause::Shutdown | AbortCause::PortDisabled => O::Shutdown,
            };
            let late = late.as_ref().map(|l| match l {
                Ok(v) => format!("; module completed late with {:?}", v.msg_id()),
                Err(d) => format!("; module completed late with a defect: {d}"),
            });
            (
                o,
                None,
                None,
                None,
                None,
                Some(format!("{}{}", cause.as_str(), late.unwrap_or_default())),
            )
        }
    };
    if !r.defects.is_empty() {
        let more: Vec<String> = r.defects.iter().map(|d| d.to_string()).collect();
        let more = format!("module defects: {}", more.join("; "));
        detail = Some(match detail {
            Some(d) => format!("{d}; {more}"),
            None => more,
        });
    }
    if r.hung_up && who.carrier_lost() {
        detail = Some(match detail {
            Some(d) => format!("{d}; carrier lost (DCD dropped)"),
            None => "carrier lost (DCD dropped)".to_string(),
        });
    }
    let mut rec = eventlog::Record::new(
        Kind::Dialog,
        r.started,
        r.ended,
        rt.cfg.name.clone(),
        who.device.clone(),
        rt.module_name(),
        outcome,
    );
    rec.remote = who.remote.clone();
    rec.msg_id = msg_id;
    rec.error_code = error;
    rec.user = user;
    rec.domain = domain;
    rec.detail = detail;
    if r.outcome.granted().is_some() {
        rec.handoff = Some(rt.cfg.handoff.describe());
    }
    rec
}

/// Writes `rec` durably, waiting at most the log's timeout; `true` once it
/// is committed. A failure or a timeout marks the log broken: every group
/// then refuses new callers until a write succeeds again. A record that
/// timed out stays queued and is written when the disk answers; that late
/// success clears the flag by itself, unless a record queued after it has
/// failed or timed out meanwhile (see [`LogHealth`]).
pub async fn record(rt: &GroupRuntime, rec: eventlog::Record) -> bool {
    record_within(rt, rec, rt.log_health.timeout).await
}

async fn record_within(rt: &GroupRuntime, rec: eventlog::Record, limit: Duration) -> bool {
    let line = rec.human_line();
    let health = &rt.log_health;
    let (seq, submitted) = health.submit(|| rt.log.submit(rec));
    let mut rx = match submitted {
        Ok(rx) => rx,
        Err(e) => {
            write_failed(health, seq, &e, &line);
            return false;
        }
    };
    match tokio::time::timeout(limit, &mut rx).await {
        Ok(Ok(Ok(_))) => {
            written(health, seq, &line, false);
            true
        }
        Ok(Ok(Err(e))) => {
            write_failed(health, seq, &e, &line);
            false
        }
        Ok(Err(_)) => {
            write_failed(health, seq, &"the writer stopped", &line);
            false
        }
        Err(_) => {
            if health.answered(seq, false) == Some(false) {
                tracing::error!(
                    "event log write has not completed within {} ms (a hung disk?); refusing new callers on every port group until it does",
                    limit.as_millis()
                );
            }
            tracing::warn!(
                "event log: record still queued ({} waiting), written when the disk answers: {line}",
                rt.log.pending()
            );
            // Its late answer says whether the log works again.
            let health = rt.log_health.clone();
            tokio::spawn(async move {
                match rx.await {
                    Ok(Ok(_)) => written(&health, seq, &line, true),
                    Ok(Err(e)) => write_failed(&health, seq, &e, &line),
                    Err(_) => write_failed(&health, seq, &"the writer stopped", &line),
                }
            });
            false
        }
    }
}

fn written(health: &LogHealth, seq: u64, line: &str, late: bool) {
    if health.answered(seq, true) == Some(true) {
        tracing::info!("event log writes work again; serving new callers");
    }
    if late {
        tracing::info!(target: "dialgate::event", "(written late) {line}");
    } else {
        tracing::info!(target: "dialgate::event", "{line}");
    }
}

fn write_failed(health: &LogHealth, seq: u64, e: &dyn std::fmt::Display, line: &str) {
    health.answered(seq, false);
    health.unrecorded.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        "event log write failed ({e}); refusing new callers on every port group until it works again. Unrecorded: {line}"
    );
}

/// The record of a caller refused because the log is broken, which doubles
/// as a probe: `true` if it was committed within a short wait (the log
/// works again: serve the caller). Not queued at all while the writer is
/// [`MAX_QUEUED_RECORDS`] behind (then counted and logged as unrecorded).
pub async fn record_refusal(rt: &GroupRuntime, rec: eventlog::Record) -> bool {
    if rt.log.pending() >= MAX_QUEUED_RECORDS {
        rt.log_health.unrecorded.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "event log: {} records waiting on the writer; refusal not queued. Unrecorded: {}",
            rt.log.pending(),
            rec.human_line()
        );
        return false;
    }
    record_within(rt, rec, PROBE_WAIT.min(rt.log_health.timeout)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The health flag says what the newest write came to: a record that
    /// timed out (A) and is committed late must not clear the flag when a
    /// record submitted after it (B) failed, whatever order the two
    /// answers are seen in (each is awaited by its own task).
    #[test]
    fn a_late_success_does_not_clear_a_newer_failure() {
        let h = LogHealth::new(Duration::from_secs(5));
        let (a, ()) = h.submit(|| ());
        let (b, ()) = h.submit(|| ());
        h.answered(a, false); // A timed out
        write_failed(&h, b, &"disk full", "B");
        written(&h, a, "A", true);
        assert!(h.is_broken(), "B failed after A: the log is still broken");
        // B's own late answer is what clears it; then an older failure
        // seen late does not set it again.
        let (c, ()) = h.submit(|| ());
        written(&h, c, "C", false);
        assert!(!h.is_broken());
        write_failed(&h, b, &"disk full", "B again");
        assert!(!h.is_broken(), "C, newer, was committed");
        // A record that timed out clears the flag by its own late success.
        let (d, ()) = h.submit(|| ());
        h.answered(d, false);
        assert!(h.is_broken());
        written(&h, d, "D", true);
        assert!(!h.is_broken());
    }
}
