//! One security-host transaction on one port, as a sans-IO state machine
//! (spec sections 2, 4 and 5).
//!
//! The driver (the port's task) feeds it what happens on the line and when
//! module calls return; module threads call the host functions on it (through
//! [`crate::Port`], which holds it behind a lock). It hands back bytes for
//! the caller, Receive completions to fire, timers, and actions: call End,
//! or the transaction's [`Outcome`].
//!
//! Order of calls for a driver:
//! 1. [`Transaction::new`], then call the module's Begin off the reactor and
//!    report its return with [`Transaction::begin_returned`].
//! 2. Whenever something happens: [`Transaction::caller_input`] (only while
//!    [`Transaction::input_room`] is non-zero: that is the backpressure that
//!    bounds memory), [`Transaction::caller_hung_up`], [`Transaction::abort`]
//!    (dialog disabled, shutdown), [`Transaction::handle_timeout`] at
//!    [`Transaction::poll_timeout`], [`Transaction::end_returned`].
//! 3. After each of those, and whenever a module call woke the driver:
//!    write [`Transaction::poll_transmit`] to the caller, fire
//!    [`Transaction::take_completions`] outside the lock, and act on
//!    [`Transaction::poll_action`] until it is `None`.
//!
//! Decisions beyond the spec's text, all in one place:
//! - On any abort (hang-up, dialog time limit, shutdown, port disabled) a
//!   pending Receive completes with `ERROR_PORT_DISCONNECTED` before End is
//!   called, so a module thread waiting on it wakes up.
//! - After Complete or End has been called, Send and Receive get
//!   `ERROR_INVALID_PORT_HANDLE` (or 619 once the caller is gone), and a
//!   pending Receive is dropped without its event.
//! - A verdict stands only once End has returned after it (spec section
//!   2.5: End must return). End after a Complete is waited for at most the
//!   grace period; an End that never returns, or a module defect reported
//!   before End returned (its worker process died, its End panicked), ends
//!   the transaction as that defect, never a grant: memory corruption that
//!   forges a SUCCESS and then crashes fails closed.
//! - If Begin never returns, the transaction ends at the dialog time limit
//!   plus the grace period, as a timeout with the defect noted.
//! - Bytes the module did not read stay in the backlog: after a SUCCESS the
//!   driver passes them on to PPP or the hand-off ([`Transaction::take_backlog`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::consts::*;
use crate::message::{Defect, HPort, SecurityInfo, SecurityMessage, Verdict, device_name};
use crate::module::{ReceiveCompletion, ReceiveEvent};

/// The most defects a transaction keeps beside its outcome; the last one
/// kept then counts those not recorded. A module that calls Complete in a
/// loop (or a worker that sends Complete frames as fast as it can) must not
/// grow server memory, or the transaction's event-log record, for as long
/// as the transaction lives.
pub const MAX_DEFECTS: usize = 16;

/// The per-port-group limits of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Size of the Begin send buffer: the most one Send may carry (≤ 65535).
    pub send_buffer_size: usize,
    /// Size of the Begin receive buffer: the most one Receive may ask for.
    pub recv_buffer_size: usize,
    /// Most caller bytes held for the module before the driver stops reading.
    pub backlog_max: usize,
    /// Most bytes queued for the caller; a module that sends more is a defect.
    pub transmit_max: usize,
    /// The dialog's time limit, counted from Begin.
    pub dialog_time_limit: Duration,
    /// How long to wait for End to return, and for Complete after End
    /// returned 0 on an abort.
    pub grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            send_buffer_size: 1024,
            recv_buffer_size: 1024,
            backlog_max: 4096,
            transmit_max: 256 * 1024,
            dialog_time_limit: Duration::from_secs(120),
            grace: Duration::from_secs(5),
        }
    }
}

/// Why the host ended a dialog before the module's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    /// The caller hung up (or a write to it failed).
    CallerHungUp,
    /// The port's dialog time limit ran out.
    DialogTimedOut,
    /// The server is shutting down.
    Shutdown,
    /// The port was disabled by the operator.
    PortDisabled,
}

impl AbortCause {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortCause::CallerHungUp => "caller hung up",
            AbortCause::DialogTimedOut => "dialog timed out",
            AbortCause::Shutdown => "shutdown",
            AbortCause::PortDisabled => "port disabled",
        }
    }
}

/// How a transaction ended. Only `Verdict(Verdict::Success { .. })` lets
/// the caller go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The module completed with a valid message.
    Verdict(Verdict),
    /// The module completed with an invalid message, or broke the contract.
    Defect(Defect),
    /// Begin returned this non-zero code.
    BeginFailed(u32),
    /// The host ended the dialog; what the module said late, if anything.
    Aborted {
        /// Why.
        cause: AbortCause,
        /// The module's Complete, if one came after the abort began.
        late: Option<Result<Verdict, Defect>>,
    },
}

impl Outcome {
    /// The user and domain to go on with, only for a valid SUCCESS.
    pub fn granted(&self) -> Option<(&str, &str)> {
        match self {
            Outcome::Verdict(Verdict::Success { user, domain }) => Some((user, domain)),
            _ => None,
        }
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Call the module's End for this port, off the reactor, and report its
    /// return with [`Transaction::end_returned`].
    CallEnd,
    /// The transaction is over. Record it, then hang up or hand off.
    Finished(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Begin has been called and has not returned.
    Beginning,
    /// Begin returned 0; waiting for Complete.
    Dialog,
    /// A verdict (or defect) is in; End was called for cleanup.
    Cleanup,
    /// The host ended the dialog; End was called (or will be once Begin
    /// returns).
    Aborting,
    /// An outcome was handed out.
    Finished,
}

struct PendingReceive {
    room: usize,
    deadline: Option<Instant>,
    event: ReceiveEvent,
}

/// One transaction. See the module documentation for the call order.
pub struct Transaction {
    hport: HPort,
    cfg: Config,
    device: String,
    phase: Phase,
    dialog_deadline: Instant,
    /// End's deadline (cleanup or abort), or after End returned 0 on an
    /// abort, the deadline for a late Complete; or the deadline for a Begin
    /// that never returned.
    grace_deadline: Option<Instant>,
    end_returned: Option<u32>,
    abort: Option<AbortCause>,
    first_complete: Option<Result<Verdict, Defect>>,
    defects: Vec<Defect>,
    /// Defects not kept (past [`MAX_DEFECTS`]).
    defects_dropped: u64,
    hung_up: bool,
    send_error: Option<u32>,
    backlog: VecDeque<u8>,
    transmit: Vec<u8>,
    pending: Option<PendingReceive>,
    last_error: u32,
    bytes_received: u32,
    completions: Vec<(ReceiveEvent, ReceiveCompletion)>,
    actions: VecDeque<Action>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("hport", &self.hport)
            .field("phase", &self.phase)
            .field("abort", &self.abort)
            .field("backlog", &self.backlog.len())
            .field("pending_receive", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// A transaction whose Begin is being called now.
    pub fn new(hport: HPort, cfg: Config, device: &str, now: Instant) -> Transaction {
        Transaction {
            hport,
            dialog_deadline: now + cfg.dialog_time_limit,
            cfg,
            device: device_name(device),
            phase: Phase::Beginning,
            grace_deadline: None,
            end_returned: None,
            abort: None,
            first_complete: None,
            defects: Vec::new(),
            defects_dropped: 0,
            hung_up: false,
            send_error: None,
            backlog: VecDeque::new(),
            transmit: Vec::new(),
            pending: None,
            last_error: NO_ERROR,
            bytes_received: 0,
            completions: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// The port handle.
    pub fn hport(&self) -> HPort {
        self.hport
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// True once an outcome has been handed out.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Contract breaches beside the outcome (a second Complete, an End that
    /// hung), for the log.
    pub fn defects(&self) -> &[Defect] {
        &self.defects
    }

    // ----- the driver's side -------------------------------------------

    /// Begin returned `code`.
    pub fn begin_returned(&mut self, code: u32, now: Instant) {
        if self.phase != Phase::Beginning {
            return;
        }
        if code != NO_ERROR {
            // No Complete is expected and End is not called; whatever the
            // module did meanwhile is moot.
            self.pending = None;
            self.finish(Outcome::BeginFailed(code));
            return;
        }
        if self.abort.is_some() {
            // The dialog was ended while Begin ran: whatever the module
            // completed meanwhile, the outcome is the abort's cause.
            self.call_end(Phase::Aborting, now);
        } else if self.first_complete.is_some() {
            // Complete was called from inside Begin.
            self.call_end(Phase::Cleanup, now);
        } else {
            self.phase = Phase::Dialog;
        }
    }

    /// End returned `code`.
    pub fn end_returned(&mut self, code: u32, now: Instant) {
        if self.end_returned.is_some() {
            return;
        }
        self.end_returned = Some(code);
        match self.phase {
            Phase::Cleanup => self.finish_with_verdict(),
            Phase::Aborting => {
                if code != NO_ERROR || self.first_complete.is_some() {
                    self.finish_aborted();
                } else {
                    // The module may still complete, within the grace period.
                    self.grace_deadline = Some(now + self.cfg.grace);
                }
            }
            _ => {}
        }
    }

    /// Bytes from the caller, already stripped of any telnet layer.
    pub fn caller_input(&mut self, data: &[u8]) {
        if self.hung_up || data.is_empty() {
            return;
        }
        self.backlog.extend(data);
        self.try_complete_receive();
    }

    /// How many more caller bytes the transaction takes now; 0 means stop
    /// reading the line until it is more.
    pub fn input_room(&self) -> usize {
        self.cfg.backlog_max.saturating_sub(self.backlog.len())
    }

    /// The caller hung up (or a write to it failed).
    pub fn caller_hung_up(&mut self, now: Instant) {
        if self.hung_up {
            return;
        }
        self.hung_up = true;
        self.abort(AbortCause::CallerHungUp, now);
    }

    /// A write to the caller failed: it shows on the next Receive/GetInfo,
    /// and the caller counts as gone.
    pub fn transmit_failed(&mut self, now: Instant) {
        self.send_error = Some(ERROR_PORT_DISCONNECTED);
        self.caller_hung_up(now);
    }

    /// The host ends the dialog before a verdict: End is called, and the
    /// outcome will be `cause` whatever the module says afterwards. No
    /// effect once a verdict is in or an abort has begun.
    pub fn abort(&mut self, cause: AbortCause, now: Instant) {
        if self.abort.is_some() {
            return;
        }
        match self.phase {
            Phase::Beginning => {
                self.abort = Some(cause);
                self.fail_pending(ERROR_PORT_DISCONNECTED);
                // End waits for Begin to return; a Begin that never returns
                // is given the grace period.
                self.grace_deadline = Some(now + self.cfg.grace);
            }
            Phase::Dialog => {
                self.abort = Some(cause);
                self.fail_pending(ERROR_PORT_DISCONNECTED);
                self.call_end(Phase::Aborting, now);
            }
            Phase::Cleanup | Phase::Aborting | Phase::Finished => {}
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = &self.pending
            && p.deadline.is_some_and(|d| d <= now)
        {
            self.fail_pending(ERROR_REQUEST_TIMEOUT);
        }
        match self.phase {
            Phase::Beginning => {
                if self.abort.is_none() && now >= self.dialog_deadline {
                    self.abort(AbortCause::DialogTimedOut, now);
                } else if self.grace_deadline.is_some_and(|d| now >= d) {
                    self.note_defect(Defect::BeginHung);
                    self.finish_aborted();
                }
            }
            Phase::Dialog => {
                if now >= self.dialog_deadline {
                    self.abort(AbortCause::DialogTimedOut, now);
                }
            }
            Phase::Cleanup => {
                if self.grace_deadline.is_some_and(|d| now >= d) {
                    self.defect_before_end_returned(Defect::EndHung);
                }
            }
            Phase::Aborting => {
                if self.grace_deadline.is_some_and(|d| now >= d) {
                    if self.end_returned.is_none() {
                        self.note_defect(Defect::EndHung);
                    }
                    self.finish_aborted();
                }
            }
            Phase::Finished => {}
        }
    }

    /// When [`Transaction::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        consider(self.pending.as_ref().and_then(|p| p.deadline));
        match self.phase {
            Phase::Beginning if self.abort.is_none() => consider(Some(self.dialog_deadline)),
            Phase::Dialog => consider(Some(self.dialog_deadline)),
            Phase::Finished => return None,
            _ => {}
        }
        consider(self.grace_deadline);
        t
    }

    /// Bytes the module sent, to write to the caller now.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// Receive completions to deliver, outside any lock.
    pub fn take_completions(&mut self) -> Vec<(ReceiveEvent, ReceiveCompletion)> {
        std::mem::take(&mut self.completions)
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Caller bytes the module did not read, for whatever follows the dialog.
    pub fn take_backlog(&mut self) -> Vec<u8> {
        self.backlog.drain(..).collect()
    }

    /// The module broke in a way the host saw from outside (its Begin or
    /// End panicked, its worker process died, its worker saw it misuse a
    /// host function). A dialog still running ends at once as that defect,
    /// and so does one whose verdict is in but whose End has not returned
    /// (the verdict does not stand); otherwise the defect is noted beside
    /// the outcome already decided.
    pub fn module_defect(&mut self, defect: Defect) {
        match self.phase {
            Phase::Beginning | Phase::Dialog if self.abort.is_none() => {
                self.pending = None;
                self.finish(Outcome::Defect(defect));
            }
            Phase::Beginning | Phase::Dialog | Phase::Aborting => {
                self.note_defect(defect);
                self.finish_aborted();
            }
            Phase::Cleanup => self.defect_before_end_returned(defect),
            Phase::Finished => self.note_defect(defect),
        }
    }

    // ----- the module's side (host functions) --------------------------

    /// `RasSecurityDialogSend`.
    pub fn send(&mut self, hport: HPort, data: &[u8], now: Instant) -> u32 {
        if hport != self.hport {
            return ERROR_INVALID_PORT_HANDLE;
        }
        if self.hung_up {
            return ERROR_PORT_DISCONNECTED;
        }
        if !self.accepts_calls() {
            return ERROR_INVALID_PORT_HANDLE;
        }
        if data.len() > self.cfg.send_buffer_size || data.len() > usize::from(u16::MAX) {
            return ERROR_BUFFER_TOO_SMALL;
        }
        if self.transmit.len() + data.len() > self.cfg.transmit_max {
            // The caller is not reading and the module keeps sending.
            self.note_defect(Defect::Other(format!(
                "module queued more than {} bytes the caller did not read",
                self.cfg.transmit_max
            )));
            self.transmit.clear();
            self.hung_up = true;
            self.abort(AbortCause::CallerHungUp, now);
            return ERROR_PORT_DISCONNECTED;
        }
        self.transmit.extend_from_slice(data);
        PENDING
    }

    /// `RasSecurityDialogReceive`; see [`crate::Host::receive`].
    pub fn receive(
        &mut self,
        hport: HPort,
        room: usize,
        timeout_secs: u32,
        event: ReceiveEvent,
        now: Instant,
    ) -> u32 {
        if hport != self.hport {
            return ERROR_INVALID_PORT_HANDLE;
        }
        if let Some(e) = self.send_error {
            return e;
        }
        if self.hung_up {
            return ERROR_PORT_DISCONNECTED;
        }
        if !self.accepts_calls() {
            return ERROR_INVALID_PORT_HANDLE;
        }
        if self.pending.is_some() {
            return ERROR_ASYNC_REQUEST_PENDING;
        }
        if room == 0 {
            return ERROR_INVALID_PARAMETER;
        }
        if room > self.cfg.recv_buffer_size {
            return ERROR_BUFFER_TOO_SMALL;
        }
        let deadline = (timeout_secs > 0).then(|| now + Duration::from_secs(timeout_secs.into()));
        self.pending = Some(PendingReceive {
            room,
            deadline,
            event,
        });
        self.last_error = PENDING;
        self.bytes_received = 0;
        self.try_complete_receive();
        PENDING
    }

    /// `RasSecurityDialogGetInfo`.
    pub fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32> {
        if hport != self.hport {
            return Err(ERROR_INVALID_PORT_HANDLE);
        }
        let last_error = match (self.send_error, self.pending.is_some()) {
            (Some(e), false) => e,
            _ => self.last_error,
        };
        Ok(SecurityInfo {
            last_error,
            bytes_received: if last_error == NO_ERROR {
                self.bytes_received
            } else {
                0
            },
            device_name: self.device.clone(),
        })
    }

    /// `RasSecurityDialogComplete`.
    pub fn complete(&mut self, msg: &SecurityMessage, now: Instant) -> u32 {
        if self.phase == Phase::Finished && self.first_complete.is_none() {
            // Too late: the transaction already ended without it.
            self.note_defect(Defect::Other(
                "Complete after the transaction ended".to_string(),
            ));
            return ERROR_INVALID_PORT_HANDLE;
        }
        if self.first_complete.is_some() {
            self.note_defect(Defect::SecondComplete);
            return ERROR_INVALID_PARAMETER;
        }
        let result = msg.validate(self.hport);
        let code = if result.is_ok() {
            NO_ERROR
        } else {
            ERROR_INVALID_PARAMETER
        };
        self.first_complete = Some(result);
        // The host stops touching the Receive's buffer and event now.
        self.pending = None;
        match self.phase {
            // Begin has not returned yet: its return decides what follows.
            Phase::Beginning => {}
            Phase::Dialog => self.call_end(Phase::Cleanup, now),
            Phase::Aborting => {
                if self.end_returned.is_some() {
                    self.finish_aborted();
                }
            }
            Phase::Cleanup | Phase::Finished => {}
        }
        code
    }

    // ----- internals ---------------------------------------------------

    fn accepts_calls(&self) -> bool {
        matches!(self.phase, Phase::Beginning | Phase::Dialog) && self.abort.is_none()
    }

    fn call_end(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.pending = None;
        self.grace_deadline = Some(now + self.cfg.grace);
        self.actions.push_back(Action::CallEnd);
    }

    fn try_complete_receive(&mut self) {
        if self.backlog.is_empty() || self.first_complete.is_some() {
            return;
        }
        if let Some(p) = self.pending.take() {
            let n = p.room.min(self.backlog.len());
            let data: Vec<u8> = self.backlog.drain(..n).collect();
            self.last_error = NO_ERROR;
            self.bytes_received = n as u32;
            self.completions.push((
                p.event,
                ReceiveCompletion {
                    last_error: NO_ERROR,
                    data,
                },
            ));
        }
    }

    fn fail_pending(&mut self, code: u32) {
        if let Some(p) = self.pending.take() {
            self.last_error = code;
            self.bytes_received = 0;
            self.completions.push((
                p.event,
                ReceiveCompletion {
                    last_error: code,
                    data: Vec::new(),
                },
            ));
        }
    }

    /// Notes a defect beside the outcome, at most [`MAX_DEFECTS`] of them:
    /// past that the last entry says how many more were not recorded.
    fn note_defect(&mut self, defect: Defect) {
        if self.defects.len() + 1 < MAX_DEFECTS {
            self.defects.push(defect);
            return;
        }
        if self.defects.len() + 1 == MAX_DEFECTS && self.defects_dropped == 0 {
            // The last slot: this defect, unless more follow.
            self.defects.push(defect);
            return;
        }
        self.defects_dropped += 1;
        let marker = Defect::Other(format!(
            "{} more defects not recorded",
            self.defects_dropped + 1
        ));
        if let Some(last) = self.defects.last_mut() {
            *last = marker;
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.phase = Phase::Finished;
        self.pending = None;
        self.grace_deadline = None;
        self.actions.push_back(Action::Finished(outcome));
    }

    fn finish_with_verdict(&mut self) {
        let outcome = match self.first_complete.clone() {
            Some(Ok(v)) => Outcome::Verdict(v),
            Some(Err(d)) => Outcome::Defect(d),
            // Cleanup is only entered with a Complete in hand.
            None => Outcome::Defect(Defect::Other("no verdict".into())),
        };
        self.finish(outcome);
    }

    /// The module broke after its Complete and before End returned: a
    /// SUCCESS does not stand (the outcome is the defect); a denial does,
    /// with the defect noted beside it.
    fn defect_before_end_returned(&mut self, defect: Defect) {
        if matches!(self.first_complete, Some(Ok(Verdict::Success { .. }))) {
            self.finish(Outcome::Defect(defect));
        } else {
            self.note_defect(defect);
            self.finish_with_verdict();
        }
    }

    fn finish_aborted(&mut self) {
        let cause = self.abort.unwrap_or(AbortCause::CallerHungUp);
        let late = self.first_complete.clone();
        self.finish(Outcome::Aborted { cause, late });
    }
}
