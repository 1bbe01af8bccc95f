//! Serial lines: one task per device of a `serial` group. With a Hayes
//! modem (`[group.modem]`), the task drives the sans-IO [`modem::Answerer`]:
//! init (with back-off when the modem does not answer), answer on the Nth
//! RING, `CONNECT <speed>/<protocol>` into the device name, the call, the
//! carrier watch, hang-up (DTR, then `+++`/`ATH`), re-init and re-arm; and
//! callback (hang up, `ATDT`, PPP again). Without a modem the line is direct
//! (a null-modem cable): a call starts with the first byte.
//!
//! A call's bytes go through a [`ModemStream`]: it reads as end-of-file and
//! refuses writes from the moment the carrier (DCD) drops, so the dialog
//! ends with End and its record, and a PPP session with its record, exactly
//! as when a TCP caller closes; the line then hangs up and re-arms.
//!
//! Every line of a group answers on its own: a pool never refuses a caller
//! while one of its lines is idle. A line whose device cannot be opened, or
//! whose modem does not initialise, is out of service alone, logged (and
//! recorded), and retried with back-off.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use modem::{AnswerFailure, Answerer, Event, ModemLines, State};
use ports::SerialLine;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use crate::call::{CallerId, GroupRuntime};
use crate::config::{ModemSettings, PortKind};
use crate::serve::{CallEnd, Leg};

/// Modem control lines of any kind (the device's ioctls, or a test's fake).
pub type DynLines = Box<dyn ModemLines<Error = io::Error> + Send + Sync>;

/// Supplies the control lines of a device instead of its ioctls (tests).
pub type LinesHook = Arc<dyn Fn(&Path) -> Option<DynLines> + Send + Sync>;

/// How long one write of modem commands may take.
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// Re-open back-off after a device error, doubled up to [`REOPEN_MAX`].
const REOPEN_FIRST: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(60);
/// A direct line's hang-up: DTR held low this long.
const DIRECT_DTR_DROP: Duration = Duration::from_millis(500);
/// A direct line's carrier poll (when DCD is wired).
const DIRECT_CARRIER_POLL: Duration = Duration::from_millis(100);
/// Longest wait for the caller's last bytes to leave before a hang-up.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Set when the carrier drops during a call; wakes the call's reader.
#[derive(Debug, Default)]
pub struct CarrierFlag {
    lost: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl CarrierFlag {
    /// The carrier dropped.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        let w = self.waker.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether it dropped.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn register(&self, cx: &Context<'_>) {
        if let Ok(mut w) = self.waker.lock() {
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
    }
}

/// A call's view of a serial line: bytes left over from the `CONNECT` read
/// first, then the device; end-of-file once the carrier is lost. Shutting it
/// down does not close the device (the line hangs up and re-arms instead).
pub struct ModemStream<'a> {
    port: &'a mut SerialLine,
    prefix: Vec<u8>,
    flag: Arc<CarrierFlag>,
    /// Read on every chunk of data: a modem sends `NO CARRIER` as data
    /// right after DCD drops, and that must not reach the dialog or PPP.
    lines: Option<&'a Mutex<DynLines>>,
    /// Drop a `\n` that starts the device's data: the `CONNECT` line's LF,
    /// when it came in a read of its own.
    skip_lf: bool,
}

impl<'a> ModemStream<'a> {
    /// A stream over `port` that first yields `prefix` (then drops a first
    /// `\n` from the device when `skip_lf`); with `lines`, DCD is checked
    /// on each chunk read, and data read after it dropped is discarded and
    /// the stream ends.
    fn new(
        port: &'a mut SerialLine,
        prefix: Vec<u8>,
        skip_lf: bool,
        lines: Option<&'a Mutex<DynLines>>,
        flag: Arc<CarrierFlag>,
    ) -> Self {
        ModemStream {
            port,
            prefix,
            flag,
            lines,
            skip_lf,
        }
    }

    /// Whether DCD is down now (then the flag is set).
    fn carrier_down(&self) -> bool {
        let Some(l) = self.lines else { return false };
        let mut l = l.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(l.status(), Ok(s) if !s.dcd) {
            self.flag.lose();
            return true;
        }
        false
    }
}

fn carrier_lost() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "carrier lost")
}

impl AsyncRead for ModemStream<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.flag.is_lost() {
            return Poll::Ready(Ok(()));
        }
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        this.flag.register(cx);
        if this.flag.is_lost() {
            return Poll::Ready(Ok(()));
        }
        if this.skip_lf {
            let mut tmp = [0u8; 512];
            let mut rb = ReadBuf::new(&mut tmp);
            std::task::ready!(Pin::new(&mut *this.port).poll_read(cx, &mut rb))?;
            this.skip_lf = false;
            let got = rb.filled();
            if !got.is_empty() && this.carrier_down() {
                return Poll::Ready(Ok(()));
            }
            let data = got.strip_prefix(b"\n").unwrap_or(got);
            if got.is_empty() || !data.is_empty() {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                this.prefix.extend_from_slice(&data[n..]);
                return Poll::Ready(Ok(()));
            }
            // Only the LF: read again (registers the waker).
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut *this.port).poll_read(cx, buf))?;
        if buf.filled().len() > before && this.carrier_down() {
            buf.set_filled(before);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ModemStream<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.flag.is_lost() {
            return Poll::Ready(Err(carrier_lost()));
        }
        Pin::new(&mut *this.port).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().port).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Serves one device of a serial group until shutdown: opens it (retrying
/// with back-off while it cannot), and runs its modem or direct line.
pub async fn run_line(
    rt: Arc<GroupRuntime>,
    device: PathBuf,
    hook: Option<LinesHook>,
    mut shutdown: watch::Receiver<bool>,
) {
    let PortKind::Serial { settings, .. } = &rt.cfg.kind else {
        return;
    };
    let dev = device.display().to_string();
    let mut wait = REOPEN_FIRST;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let port = match SerialLine::open(&device, settings) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(group = %rt.cfg.name, "line {dev}: {e}; retrying in {}s", wait.as_secs());
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
                wait = (wait * 2).min(REOPEN_MAX);
                continue;
            }
        };
        let opened = Instant::now();
        let lines = control_lines(&port, &device, hook.as_ref(), &dev);
        tracing::info!(group = %rt.cfg.name, "line {dev} open ({settings})");
        let r = match &rt.cfg.modem {
            Some(m) => {
                let mut line = Line {
                    rt: &rt,
                    dev: dev.clone(),
                    port,
                    lines: lines.map(Mutex::new),
                    m: Answerer::new(m.answerer.clone()),
                    settings: m.clone(),
                    leftover: Vec::new(),
                    down_recorded: false,
                };
                let r = line.run(&mut shutdown).await;
                line.leave().await;
                r
            }
            None => direct_line(&rt, &dev, port, lines, &mut shutdown).await,
        };
        match r {
            Ok(()) => return,
            Err(e) => {
                if opened.elapsed() >= REOPEN_MAX {
                    // The line served for a while: a fresh failure, a fresh
                    // back-off.
                    wait = REOPEN_FIRST;
                }
                tracing::error!(group = %rt.cfg.name, "line {dev}: {e}; re-opening in {}s", wait.as_secs());
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
                wait = (wait * 2).min(REOPEN_MAX);
            }
        }
    }
}

/// The device's control lines: the hook's, else its ioctls when the device
/// has them; `None` (with a warning) when it has not.
fn control_lines(
    port: &SerialLine,
    device: &Path,
    hook: Option<&LinesHook>,
    dev: &str,
) -> Option<DynLines> {
    if let Some(l) = hook.and_then(|h| h(device)) {
        return Some(l);
    }
    let probe = port.lines().and_then(|mut l| l.status().map(|_| l));
    match probe {
        Ok(l) => Some(Box::new(l)),
        Err(e) => {
            tracing::warn!(
                "line {dev} has no modem control lines ({e}): a dropped carrier is not noticed, and hang-up uses +++ and ATH"
            );
            None
        }
    }
}

/// Sleeps `d`; true when shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Where a run of the answering machine stopped.
enum Stop {
    Shutdown,
    Ready,
    Connected {
        speed: Option<u32>,
        protocol: Option<String>,
    },
    CallFailed(AnswerFailure),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Until the modem is initialised and idle.
    Ready,
    /// Until a call connects (or, when dialling, fails).
    Connected,
}

struct Line<'a> {
    rt: &'a Arc<GroupRuntime>,
    dev: String,
    port: SerialLine,
    /// Shared with the call's [`ModemStream`], which reads DCD too.
    lines: Option<Mutex<DynLines>>,
    m: Answerer,
    settings: ModemSettings,
    /// Call bytes that arrived in the same read as `CONNECT`.
    leftover: Vec<u8>,
    /// The current out-of-service round was recorded.
    down_recorded: bool,
}

impl Line<'_> {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> io::Result<()> {
        let _ = self.port.discard_input();
        // DTR low first: a modem a crashed or killed server left online
        // hangs up before it gets init commands.
        self.m.start_with_hang_up(Instant::now());
        loop {
            let (speed, protocol) = match self.drive(Want::Connected, shutdown).await? {
                Stop::Connected { speed, protocol } => (speed, protocol),
                Stop::Shutdown => return Ok(()),
                Stop::Ready | Stop::CallFailed(_) => continue,
            };
            let who = self.caller_id(speed, protocol.as_deref());
            let (end, lost) = self.call(who, Leg::Answered, shutdown).await;
            if self.end_call(lost, shutdown).await? {
                return Ok(());
            }
            if let CallEnd::Callback { user, number } = end
                && self.callback(&user, &number, shutdown).await?
            {
                return Ok(());
            }
        }
    }

    fn caller_id(&self, speed: Option<u32>, protocol: Option<&str>) -> CallerId {
        let conn = match (speed, protocol) {
            (Some(s), Some(p)) => format!("{s}/{p}"),
            (Some(s), None) => s.to_string(),
            (None, Some(p)) => p.to_string(),
            (None, None) => "connected".to_string(),
        };
        CallerId {
            device: format!("{} {conn}", self.dev),
            remote: None,
            carrier: None,
        }
    }

    /// One call on the connected line, with the carrier watched.
    async fn call(
        &mut self,
        who: CallerId,
        leg: Leg,
        shutdown: &watch::Receiver<bool>,
    ) -> (CallEnd, bool) {
        let call = Call {
            prefix: std::mem::take(&mut self.leftover),
            skip_lf: self.m.connect_lf_pending(),
            who,
            leg,
        };
        let poll = self.settings.carrier_poll;
        // DCD low right after CONNECT: not wired (a three-wire cable, a
        // modem set to &C0 the wrong way round). Watching it would end
        // every call at once; the call runs unwatched instead.
        let watched = self.lines.as_ref().filter(|l| dcd_high(l));
        if self.lines.is_some() && watched.is_none() {
            tracing::warn!(group = %self.rt.cfg.name, "line {}: DCD is low although the modem connected; a dropped carrier will not be noticed (wire DCD, set &C1)", self.dev);
        }
        serve_watched(self.rt, &mut self.port, watched, poll, call, shutdown).await
    }

    /// Hangs up after a call and re-arms; true on shutdown.
    async fn end_call(
        &mut self,
        lost: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<bool> {
        if lost {
            tracing::info!(group = %self.rt.cfg.name, "line {}: carrier lost", self.dev);
            self.m.carrier_changed(Instant::now(), false);
        } else {
            // The caller's last message ("Login incorrect", the program's
            // farewell) leaves the UART before DTR drops.
            self.port.drain(DRAIN_LIMIT).await;
            self.m.hang_up(Instant::now());
        }
        if *shutdown.borrow() {
            return Ok(true);
        }
        Ok(matches!(
            self.drive(Want::Ready, shutdown).await?,
            Stop::Shutdown
        ))
    }

    /// Callback: the line is idle again; wait, dial, and serve the PPP leg.
    /// True on shutdown.
    async fn callback(
        &mut self,
        user: &str,
        number: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<bool> {
        let Some(cb) = self.rt.cfg.callback.clone() else {
            return Ok(false);
        };
        for attempt in 1..=cb.attempts {
            if sleep_or_shutdown(cb.delay, shutdown).await {
                return Ok(true);
            }
            let started = OffsetDateTime::now_utc();
            if self.m.state() != State::Idle
                && matches!(self.drive(Want::Ready, shutdown).await?, Stop::Shutdown)
            {
                return Ok(true);
            }
            if let Err(e) = self.m.dial(Instant::now(), number) {
                self.line_record(
                    started,
                    eventlog::Outcome::CallbackFailed,
                    Some(user),
                    format!("cannot dial {number}: {e}"),
                )
                .await;
                return Ok(false);
            }
            tracing::info!(group = %self.rt.cfg.name, "line {}: calling {user} back at {number} (attempt {attempt} of {})", self.dev, cb.attempts);
            match self.drive(Want::Connected, shutdown).await? {
                Stop::Shutdown => return Ok(true),
                Stop::Connected { speed, protocol } => {
                    let who = self.caller_id(speed, protocol.as_deref());
                    self.line_record(
                        started,
                        eventlog::Outcome::CallbackConnected,
                        Some(user),
                        format!(
                            "called {number} (attempt {attempt} of {}); {}",
                            cb.attempts, who.device
                        ),
                    )
                    .await;
                    let leg = Leg::CalledBack {
                        user: user.to_string(),
                    };
                    let (_, lost) = self.call(who, leg, shutdown).await;
                    return self.end_call(lost, shutdown).await;
                }
                Stop::CallFailed(reason) => {
                    self.line_record(
                        started,
                        eventlog::Outcome::CallbackFailed,
                        Some(user),
                        format!(
                            "called {number} (attempt {attempt} of {}): {}",
                            cb.attempts,
                            failure_name(reason)
                        ),
                    )
                    .await;
                }
                Stop::Ready => {}
            }
        }
        Ok(false)
    }

    /// Drives the answering machine until `want` (or shutdown).
    async fn drive(
        &mut self,
        want: Want,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<Stop> {
        let mut buf = [0u8; 512];
        let mut tick = tokio::time::interval(self.settings.carrier_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some(a) = self.m.poll_action() {
                if let Some(l) = self.lines_mut()
                    && let Err(e) = modem::apply_action(l.as_mut(), &a)
                {
                    tracing::warn!("line {}: {a:?} failed: {e}", self.dev);
                }
            }
            while let Some(tx) = self.m.poll_transmit() {
                match tokio::time::timeout(WRITE_LIMIT, self.port.write_all(&tx)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the device took no bytes for 5 s (flow control stuck?)",
                        ));
                    }
                }
            }
            while let Some(ev) = self.m.poll_event() {
                if let Some(stop) = self.on_event(ev, want).await {
                    return Ok(stop);
                }
            }
            let deadline = self.m.poll_timeout();
            tokio::select! {
                r = self.port.read(&mut buf) => {
                    let n = r?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the device was hung up"));
                    }
                    let used = self.m.handle_input(Instant::now(), &buf[..n]);
                    if used < n {
                        self.leftover.extend_from_slice(&buf[used..n]);
                    }
                }
                _ = sleep_opt(deadline) => self.m.handle_timeout(Instant::now()),
                _ = tick.tick(), if self.lines.is_some() => self.poll_carrier(),
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        return Ok(Stop::Shutdown);
                    }
                }
            }
        }
    }

    /// Reports DCD to the answering machine on every poll, not only on a
    /// change: the machine assumes the carrier up from `CONNECT` on, while
    /// the call's own watch (in [`Line::call`]) reads the lines directly.
    fn lines_mut(&mut self) -> Option<&mut DynLines> {
        self.lines
            .as_mut()
            .map(|l| l.get_mut().unwrap_or_else(PoisonError::into_inner))
    }

    fn poll_carrier(&mut self) {
        let Some(l) = self.lines_mut() else { return };
        match l.status() {
            Ok(s) => self.m.carrier_changed(Instant::now(), s.dcd),
            Err(e) => tracing::debug!("line {}: status: {e}", self.dev),
        }
    }

    async fn on_event(&mut self, ev: Event, want: Want) -> Option<Stop> {
        let g = self.rt.cfg.name.clone();
        let dev = self.dev.clone();
        match ev {
            Event::Ready => {
                if self.down_recorded {
                    tracing::info!(group = %g, "line {dev}: the modem answers again");
                }
                self.down_recorded = false;
                tracing::debug!(group = %g, "line {dev}: modem ready");
                (want == Want::Ready).then_some(Stop::Ready)
            }
            Event::InitAttemptFailed {
                reason,
                attempt,
                retry_at,
            } => {
                let wait = retry_at.saturating_duration_since(Instant::now());
                tracing::warn!(group = %g, "line {dev}: {reason} (attempt {attempt}); retrying in {} ms", wait.as_millis());
                None
            }
            Event::InitFailed {
                reason,
                attempts,
                retry_at,
            } => {
                let wait = retry_at.saturating_duration_since(Instant::now());
                let detail = format!(
                    "{reason}; {attempts} attempts failed; the line is out of service, next try in {:.1} s",
                    wait.as_secs_f64()
                );
                tracing::error!(group = %g, "line {dev}: {detail}");
                if !self.down_recorded {
                    self.down_recorded = true;
                    self.line_record(
                        OffsetDateTime::now_utc(),
                        eventlog::Outcome::ModemInitFailed,
                        None,
                        detail,
                    )
                    .await;
                }
                None
            }
            Event::Ring { count } => {
                tracing::debug!(group = %g, "line {dev}: RING {count}");
                None
            }
            Event::Answering { rings } => {
                tracing::info!(group = %g, "line {dev}: answering after {rings} ring(s)");
                None
            }
            Event::Connected {
                speed, protocol, ..
            } => Some(Stop::Connected { speed, protocol }),
            Event::CallFailed { reason } => {
                tracing::warn!(group = %g, "line {dev}: call not connected: {}", failure_name(reason));
                (want == Want::Connected).then_some(Stop::CallFailed(reason))
            }
            Event::CarrierLost => None,
            Event::HungUp { method } => {
                tracing::debug!(group = %g, "line {dev}: hung up ({method:?})");
                None
            }
        }
    }

    /// A `line` record (callback steps, a modem out of service).
    async fn line_record(
        &self,
        started: OffsetDateTime,
        outcome: eventlog::Outcome,
        user: Option<&str>,
        detail: String,
    ) {
        let mut rec = eventlog::Record::new(
            eventlog::Kind::Line,
            started,
            OffsetDateTime::now_utc(),
            self.rt.cfg.name.clone(),
            self.dev.clone(),
            self.rt.module_name(),
            outcome,
        );
        rec.user = user.map(str::to_string);
        rec.detail = Some(detail);
        crate::call::record(self.rt, rec).await;
    }

    /// On the way out (shutdown, a device error): a call still up is hung
    /// up (DTR, or `+++`/`ATH` when the modem keeps its carrier or there
    /// are no control lines), within a bounded time; then DTR stays low,
    /// so the modem answers no more.
    async fn leave(&mut self) {
        let state = self.m.state();
        if matches!(
            state,
            State::Connected | State::Connecting | State::HangingUp
        ) {
            if state != State::HangingUp {
                self.m.hang_up(Instant::now());
            }
            let a = &self.settings.answerer;
            let limit = a.dtr_drop + a.guard_time * 3 + a.command_timeout + Duration::from_secs(1);
            // A shutdown signal of its own that never fires: this is the
            // last thing the line does.
            let (_keep, mut never) = watch::channel(false);
            if tokio::time::timeout(limit, self.drive(Want::Ready, &mut never))
                .await
                .is_err()
            {
                tracing::warn!(group = %self.rt.cfg.name, "line {}: the modem did not confirm the hang-up", self.dev);
            }
        }
        self.drop_dtr();
    }

    /// DTR low, so the modem hangs up and answers no more.
    fn drop_dtr(&mut self) {
        if let Some(l) = self.lines_mut() {
            let _ = l.set_dtr(false);
        }
    }
}

/// Whether DCD reads high now (false on an error).
fn dcd_high(lines: &Mutex<DynLines>) -> bool {
    matches!(
        lines.lock().unwrap_or_else(PoisonError::into_inner).status(),
        Ok(s) if s.dcd
    )
}

/// A call about to be served on a line.
struct Call {
    /// Call bytes already read.
    prefix: Vec<u8>,
    /// Drop a first `\n` (the `CONNECT` line's).
    skip_lf: bool,
    who: CallerId,
    leg: Leg,
}

/// Serves one call on `port`. With `lines`, DCD is watched (on every chunk
/// of data, and every `poll`): its drop ends the call as a hang-up.
/// Returns how the call ended and whether the carrier was lost.
async fn serve_watched(
    rt: &GroupRuntime,
    port: &mut SerialLine,
    lines: Option<&Mutex<DynLines>>,
    poll: Duration,
    call: Call,
    shutdown: &watch::Receiver<bool>,
) -> (CallEnd, bool) {
    let Call {
        prefix,
        skip_lf,
        mut who,
        leg,
    } = call;
    let flag = Arc::new(CarrierFlag::default());
    if lines.is_some() {
        who.carrier = Some(flag.clone());
    }
    let mut stream = ModemStream::new(port, prefix, skip_lf, lines, flag.clone());
    let served = crate::serve::serve_caller(rt, &mut stream, who, leg, shutdown.clone());
    tokio::pin!(served);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            end = &mut served => break end,
            _ = tick.tick(), if lines.is_some() && !flag.is_lost() => {
                if let Some(l) = lines {
                    let status = l.lock().unwrap_or_else(PoisonError::into_inner).status();
                    match status {
                        Ok(s) if !s.dcd => flag.lose(),
                        Ok(_) => {}
                        Err(e) => tracing::debug!("line status: {e}"),
                    }
                }
            }
        }
    };
    (end, flag.is_lost())
}

fn failure_name(f: AnswerFailure) -> &'static str {
    match f {
        AnswerFailure::NoCarrier => "NO CARRIER",
        AnswerFailure::Busy => "BUSY",
        AnswerFailure::Error => "ERROR",
        AnswerFailure::NoDialtone => "NO DIALTONE",
        AnswerFailure::NoAnswer => "NO ANSWER",
        AnswerFailure::Timeout => "no CONNECT in time",
    }
}

/// A direct line (no modem): a call starts with the caller's first byte; at
/// its end, DTR is pulsed low (the other end sees the hang-up) and input is
/// discarded. When DCD is high as the call starts (a null-modem cable that
/// wires the caller's DTR to our DCD), its drop ends the call as a hang-up;
/// a DCD that is low then is taken as not wired, and not watched.
async fn direct_line(
    rt: &Arc<GroupRuntime>,
    dev: &str,
    mut port: SerialLine,
    lines: Option<DynLines>,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let lines = lines.map(Mutex::new);
    let set = |dtr: bool, rts: Option<bool>| {
        if let Some(l) = lines.as_ref() {
            let mut l = l.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = l.set_dtr(dtr);
            if let Some(r) = rts {
                let _ = l.set_rts(r);
            }
        }
    };
    set(true, Some(true));
    let r = direct_calls(rt, dev, &mut port, lines.as_ref(), shutdown).await;
    // However the line stops (shutdown, a device error), the far end sees
    // the hang-up: HUPCL is off, so closing the device would not do it.
    set(false, None);
    r
}

/// The calls of a direct line, one after the other, until shutdown or a
/// device error.
async fn direct_calls(
    rt: &Arc<GroupRuntime>,
    dev: &str,
    port: &mut SerialLine,
    lines: Option<&Mutex<DynLines>>,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let set_dtr = |on: bool| {
        if let Some(l) = lines {
            let _ = l.lock().unwrap_or_else(PoisonError::into_inner).set_dtr(on);
        }
    };
    let mut buf = [0u8; 512];
    loop {
        let first = tokio::select! {
            r = port.read(&mut buf) => r?,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
        };
        if first == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the device was hung up",
            ));
        }
        let watched = lines.filter(|l| dcd_high(l));
        let call = Call {
            prefix: buf[..first].to_vec(),
            skip_lf: false,
            who: CallerId {
                device: dev.to_string(),
                remote: None,
                carrier: None,
            },
            leg: Leg::Answered,
        };
        let (_, lost) = serve_watched(rt, port, watched, DIRECT_CARRIER_POLL, call, shutdown).await;
        if lost {
            tracing::info!(group = %rt.cfg.name, "line {dev}: carrier lost");
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        port.drain(DRAIN_LIMIT).await;
        set_dtr(false);
        tokio::time::sleep(DIRECT_DTR_DROP).await;
        set_dtr(true);
        let _ = port.discard_input();
    }
}
