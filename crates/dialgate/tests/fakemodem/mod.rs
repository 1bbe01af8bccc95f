//! A fake Hayes modem for integration tests (`mod fakemodem;`).
//!
//! Two pseudo-terminals stand for the two ends of a phone call:
//!
//! * the **device** pty: dialgate opens its slave ([`FakeModem::device`]) as
//!   its serial line and uses [`FakeModem::lines`] as the modem control lines;
//! * the **caller** pty: the test's caller (`chat`, Rust code) opens its slave
//!   ([`FakeModem::caller_path`]). While a call is up and the modem is in data
//!   mode, bytes are relayed both ways between the two masters, like two
//!   modems over a phone line. Bytes the caller writes while no call is up
//!   (or while the modem is in online command mode) are discarded.
//!
//! The fake keeps one descriptor of each slave open itself, so the masters
//! never see `EIO`/`POLLHUP` before (or after) the other side opens them.
//! Both slaves are raw (`cfmakeraw`, `CLOCAL`). One std thread per fake runs
//! the modem with non-blocking fds and `poll(2)`; a self-pipe wakes it when
//! the test or the lines handle changes something. Dropping the
//! [`FakeModem`] stops and joins the thread.
//!
//! Emulated (a subset of a Hayes modem):
//!
//! * command mode: lines end with CR (LF ignored, BS/DEL edit), `AT` prefix in
//!   any case, echo (`E1`, power-on default) of every byte received, verbose
//!   (`V1`) or numeric (`V0`) results, `Q1` suppresses results. The command
//!   chain after `AT` is parsed one command at a time (spaces ignored):
//!   `A`, `D[T|P]<number>[;]`, `E`, `H`, `I`, `L`, `M`, `O`, `Q`, `S<r>=<v>`,
//!   `S<r>?`, `V`, `X`, `Z`, `B`, `&C`, `&D`, `&F`, `&K`, `&W`; anything else
//!   (or an out-of-range value) answers `ERROR`. Lines not starting with `AT`
//!   are ignored and not recorded.
//! * `ATA` (when no call is up) and `ATD...` start a call: after
//!   `answer_delay` the carrier comes up (DCD high first), then the `connect`
//!   line is sent and the modem is in data mode. Any byte other than CR/LF
//!   from dialgate while connecting aborts with `NO CARRIER`. `S0=n` (n > 0)
//!   auto-answers on the n-th [`FakeModem::ring`].
//! * escape: silence, `+++` within the guard time, silence -> `OK` and online
//!   command mode (carrier stays up). The `+++` bytes **are relayed** to the
//!   caller, like a real modem does. To absorb scheduling jitter between
//!   dialgate's timers and this thread, "silence" means at least 4/5 of
//!   `guard_time` (`S12` is stored but the option rules).
//! * `ATH`/`ATH0` and `ATZ` hang up (DCD low, `OK`); `ATO` returns to data
//!   mode (with the `connect` line) if the carrier is up, else `ERROR`.
//! * DTR falling edge (through the lines handle), unless `ignore_dtr`:
//!   `&D2` (default) / `&D3` hang up a call (or an attempt) with
//!   `NO CARRIER`, back to command mode (`&D3` also resets); `&D1` goes to
//!   online command mode with `OK`; `&D0` does nothing.
//! * `&C1` (default): DCD follows the carrier; `&C0`: DCD always high.
//! * `dial_busy`: `ATD...` answers `BUSY` at once.
//! * `never_ok`: commands are recorded but neither executed nor echoed, and
//!   the modem sends nothing at all (no results, no `RING`).
//! * status: DSR and CTS always high; RI high for 150 ms after each RING.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modem::{LineStatus, ModemLines};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{self, ControlFlags, FlushArg, SetArg};
use nix::unistd::{pipe2, read, write};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeModemOptions {
    /// The result line sent on connect.
    pub connect: String,
    /// The modem answers nothing to commands (dead or misconfigured modem).
    pub never_ok: bool,
    /// `&D0` behaviour whatever `&D` says: dropping DTR does not hang up.
    pub ignore_dtr: bool,
    /// S12 guard time for `+++` detection.
    pub guard_time: Duration,
    /// Time from `ATA`/`ATD` to `CONNECT`.
    pub answer_delay: Duration,
    /// `ATD` answers `BUSY` at once (the number called is engaged).
    pub dial_busy: bool,
}

impl Default for FakeModemOptions {
    fn default() -> Self {
        Self {
            connect: "CONNECT 33600/V42".into(),
            never_ok: false,
            ignore_dtr: false,
            guard_time: Duration::from_millis(200),
            answer_delay: Duration::from_millis(50),
            dial_busy: false,
        }
    }
}

/// How long RI stays high after a RING.
const RI_PULSE: Duration = Duration::from_millis(150);
/// The ring count restarts after this long without a ring.
const RING_RESET: Duration = Duration::from_secs(8);
/// Longest command line kept; longer lines answer ERROR.
const MAX_CMD_LINE: usize = 256;
/// Stop reading one side while this much is queued for the other.
const RELAY_HIGH_WATER: usize = 64 * 1024;
/// Output queued beyond this (nobody reads) is dropped.
const QUEUE_LIMIT: usize = 1 << 20;
/// Longest poll(2) sleep of the modem thread (wake-ups come earlier).
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// One pty pair: the master the fake uses and a held slave descriptor.
struct Pty {
    master: OwnedFd,
    slave: File,
    path: PathBuf,
}

fn open_pty() -> io::Result<Pty> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let path = PathBuf::from(ptsname_r(&master)?);
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)?;
    let mut t = termios::tcgetattr(&slave)?;
    termios::cfmakeraw(&mut t);
    t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    termios::tcsetattr(&slave, SetArg::TCSANOW, &t)?;
    let master: OwnedFd = master.into();
    let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
    fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(Pty {
        master,
        slave,
        path,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Command mode; with the carrier up this is online command mode.
    Command,
    /// ATA/ATD accepted; the carrier comes up at `at`.
    Connecting { at: Instant },
    /// Relaying call data.
    Data,
}

#[derive(Debug, Clone, Copy)]
enum Res {
    Ok,
    Connect,
    Ring,
    NoCarrier,
    Error,
    Busy,
}

/// The modem's whole state; shared between the thread and the handles.
struct Modem {
    opts: FakeModemOptions,
    mode: Mode,
    carrier: bool,
    echo: bool,
    verbose: bool,
    quiet: bool,
    c_mode: u8,
    d_mode: u8,
    sregs: [u8; 256],
    line: Vec<u8>,
    line_overflow: bool,
    /// Last byte from dialgate in data mode (or the connect time).
    last_rx: Instant,
    plus_count: u8,
    first_plus: Instant,
    third_plus: Option<Instant>,
    rings: u32,
    last_ring: Option<Instant>,
    ri_until: Option<Instant>,
    answers: u64,
    to_dev: VecDeque<u8>,
    to_caller: VecDeque<u8>,
    flush_caller: bool,
    commands: Vec<String>,
    dialled: Vec<String>,
    dtr: bool,
    rts: bool,
    dtr_history: Vec<bool>,
    stop: bool,
}

fn default_sregs() -> [u8; 256] {
    let mut s = [0u8; 256];
    s[2] = b'+';
    s[3] = b'\r';
    s[4] = b'\n';
    s[5] = 8;
    s[7] = 50;
    s[12] = 50;
    s
}

/// Parse optional decimal digits at `b[*i..]`.
fn number(b: &[u8], i: &mut usize) -> Option<u32> {
    let start = *i;
    let mut v: u32 = 0;
    while let Some(d) = b.get(*i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
        *i += 1;
    }
    (*i > start).then_some(v)
}

impl Modem {
    fn new(opts: FakeModemOptions, now: Instant) -> Self {
        Self {
            opts,
            mode: Mode::Command,
            carrier: false,
            echo: true,
            verbose: true,
            quiet: false,
            c_mode: 1,
            d_mode: 2,
            sregs: default_sregs(),
            line: Vec::new(),
            line_overflow: false,
            last_rx: now,
            plus_count: 0,
            first_plus: now,
            third_plus: None,
            rings: 0,
            last_ring: None,
            ri_until: None,
            answers: 0,
            to_dev: VecDeque::new(),
            to_caller: VecDeque::new(),
            flush_caller: false,
            commands: Vec::new(),
            dialled: Vec::new(),
            dtr: false,
            rts: false,
            dtr_history: Vec::new(),
            stop: false,
        }
    }

    /// Silence needed around `+++` (see the module docs for the 4/5).
    fn guard(&self) -> Duration {
        self.opts.guard_time * 4 / 5
    }

    fn send_dev(&mut self, bytes: &[u8]) {
        if self.to_dev.len() + bytes.len() <= QUEUE_LIMIT {
            self.to_dev.extend(bytes);
        }
    }

    fn result(&mut self, r: Res) {
        if self.opts.never_ok || self.quiet {
            return;
        }
        let (text, code) = match r {
            Res::Ok => ("OK".to_owned(), 0),
            Res::Connect => (self.opts.connect.clone(), 1),
            Res::Ring => ("RING".to_owned(), 2),
            Res::NoCarrier => ("NO CARRIER".to_owned(), 3),
            Res::Error => ("ERROR".to_owned(), 4),
            Res::Busy => ("BUSY".to_owned(), 7),
        };
        let out = if self.verbose {
            format!("\r\n{text}\r\n")
        } else {
            format!("{code}\r")
        };
        self.send_dev(out.as_bytes());
    }

    fn info(&mut self, text: &str) {
        if self.opts.never_ok {
            return;
        }
        let out = format!("\r\n{text}\r\n");
        self.send_dev(out.as_bytes());
    }

    fn status(&self, now: Instant) -> LineStatus {
        LineStatus {
            dcd: self.carrier || self.c_mode == 0,
            dsr: true,
            ri: self.ri_until.is_some_and(|t| now < t),
            cts: true,
        }
    }

    fn idle(&self) -> bool {
        !self.carrier && self.mode == Mode::Command
    }

    fn reset_escape(&mut self, now: Instant) {
        self.last_rx = now;
        self.plus_count = 0;
        self.third_plus = None;
    }

    fn reset_profile(&mut self) {
        self.echo = true;
        self.verbose = true;
        self.quiet = false;
        self.c_mode = 1;
        self.d_mode = 2;
        self.sregs = default_sregs();
    }

    /// End the call (or attempt) on our side; no result sent.
    fn hang_up(&mut self) {
        self.carrier = false;
        self.mode = Mode::Command;
        self.line.clear();
        self.line_overflow = false;
        self.plus_count = 0;
        self.third_plus = None;
    }

    fn start_connect(&mut self, now: Instant) {
        self.answers += 1;
        self.rings = 0;
        self.mode = Mode::Connecting {
            at: now + self.opts.answer_delay,
        };
    }

    fn go_online(&mut self, now: Instant) {
        self.carrier = true; // DCD before the CONNECT line
        self.mode = Mode::Data;
        self.to_caller.clear();
        self.flush_caller = true;
        self.reset_escape(now);
        self.result(Res::Connect);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let connect = match self.mode {
            Mode::Connecting { at } => Some(at),
            _ => None,
        };
        let escape = match self.mode {
            Mode::Data => self.third_plus.map(|t| t + self.guard()),
            _ => None,
        };
        let ring_reset = self
            .last_ring
            .filter(|_| self.rings > 0)
            .map(|t| t + RING_RESET);
        [connect, escape, self.ri_until, ring_reset]
            .into_iter()
            .flatten()
            .min()
    }

    fn timers(&mut self, now: Instant) {
        if let Mode::Connecting { at } = self.mode
            && now >= at
        {
            self.go_online(now);
        }
        if self.mode == Mode::Data
            && let Some(t) = self.third_plus
            && now.saturating_duration_since(t) >= self.guard()
        {
            self.plus_count = 0;
            self.third_plus = None;
            self.commands.push("+++".into());
            self.mode = Mode::Command;
            self.line.clear();
            self.result(Res::Ok);
        }
        if self.ri_until.is_some_and(|t| now >= t) {
            self.ri_until = None;
        }
        if self
            .last_ring
            .is_some_and(|t| now.saturating_duration_since(t) >= RING_RESET)
        {
            self.rings = 0;
            self.last_ring = None;
        }
    }

    /// Bytes dialgate wrote.
    fn on_dev(&mut self, now: Instant, bytes: &[u8]) {
        for &b in bytes {
            match self.mode {
                Mode::Data => self.data_byte(now, b),
                Mode::Connecting { .. } => {
                    if b != b'\r' && b != b'\n' {
                        // Any key aborts a call attempt.
                        self.hang_up();
                        self.result(Res::NoCarrier);
                    }
                }
                Mode::Command => self.command_byte(now, b),
            }
        }
    }

    /// Bytes the caller wrote.
    fn on_caller(&mut self, bytes: &[u8]) {
        if self.mode == Mode::Data {
            self.send_dev(bytes);
        }
    }

    fn data_byte(&mut self, now: Instant, b: u8) {
        let g = self.guard();
        if b == b'+' {
            match self.plus_count {
                0 if now.saturating_duration_since(self.last_rx) >= g => {
                    self.plus_count = 1;
                    self.first_plus = now;
                }
                1 | 2 if now.saturating_duration_since(self.first_plus) <= g => {
                    self.plus_count += 1;
                    if self.plus_count == 3 {
                        self.third_plus = Some(now);
                    }
                }
                _ => {
                    self.plus_count = 0;
                    self.third_plus = None;
                }
            }
        } else {
            self.plus_count = 0;
            self.third_plus = None;
        }
        self.last_rx = now;
        if self.to_caller.len() < QUEUE_LIMIT {
            self.to_caller.push_back(b);
        }
    }

    fn command_byte(&mut self, now: Instant, b: u8) {
        if self.echo && !self.opts.never_ok {
            self.send_dev(&[b]);
        }
        match b {
            b'\r' => {
                let line = std::mem::take(&mut self.line);
                let overflow = std::mem::replace(&mut self.line_overflow, false);
                self.execute(now, &line, overflow);
            }
            b'\n' => {}
            0x08 | 0x7f => {
                self.line.pop();
            }
            _ => {
                if self.line.len() < MAX_CMD_LINE {
                    self.line.push(b);
                } else {
                    self.line_overflow = true;
                }
            }
        }
    }

    fn execute(&mut self, now: Instant, raw: &[u8], overflow: bool) {
        let text = String::from_utf8_lossy(raw).trim().to_owned();
        if !text.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("AT")) {
            return;
        }
        self.commands.push(text.clone());
        if self.opts.never_ok {
            return;
        }
        if overflow {
            self.result(Res::Error);
            return;
        }
        let chain: Vec<u8> = text
            .bytes()
            .skip(2)
            .filter(|c| *c != b' ')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match self.run_chain(now, &chain) {
            Ok(true) => self.result(Res::Ok),
            Ok(false) => {}
            Err(()) => self.result(Res::Error),
        }
    }

    /// Execute the commands after `AT`; `Ok(true)` when `OK` is due,
    /// `Ok(false)` when the last command answered itself (A, D, O).
    fn run_chain(&mut self, now: Instant, b: &[u8]) -> Result<bool, ()> {
        let in_range = |v: Option<u32>, max: u32| -> Result<u32, ()> {
            let v = v.unwrap_or(0);
            if v <= max { Ok(v) } else { Err(()) }
        };
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            i += 1;
            match c {
                b'A' => {
                    if !self.idle() {
                        return Err(());
                    }
                    self.start_connect(now);
                    return Ok(false);
                }
                b'D' => {
                    if !self.idle() {
                        return Err(());
                    }
                    let mut rest = b.get(i..).unwrap_or_default();
                    if let Some((&(b'T' | b'P'), r)) = rest.split_first() {
                        rest = r;
                    }
                    let rest = rest.strip_suffix(b";").unwrap_or(rest);
                    if rest.is_empty() {
                        return Err(());
                    }
                    self.dialled
                        .push(String::from_utf8_lossy(rest).into_owned());
                    if self.opts.dial_busy {
                        self.result(Res::Busy);
                        return Ok(false);
                    }
                    self.start_connect(now);
                    return Ok(false);
                }
                b'O' => {
                    in_range(number(b, &mut i), 1)?;
                    if !self.carrier {
                        return Err(());
                    }
                    self.mode = Mode::Data;
                    self.reset_escape(now);
                    self.result(Res::Connect);
                    return Ok(false);
                }
                b'H' => {
                    if in_range(number(b, &mut i), 1)? == 0 {
                        self.hang_up();
                    }
                }
                b'Z' => {
                    in_range(number(b, &mut i), 1)?;
                    self.reset_profile();
                    self.hang_up();
                }
                b'E' => self.echo = in_range(number(b, &mut i), 1)? == 1,
                b'V' => self.verbose = in_range(number(b, &mut i), 1)? == 1,
                b'Q' => self.quiet = in_range(number(b, &mut i), 1)? == 1,
                b'X' => {
                    in_range(number(b, &mut i), 4)?;
                }
                b'M' | b'L' => {
                    in_range(number(b, &mut i), 3)?;
                }
                b'B' => {
                    in_range(number(b, &mut i), 1)?;
                }
                b'I' => {
                    in_range(number(b, &mut i), 7)?;
                    self.info("dialgate fake modem");
                }
                b'S' => {
                    let reg = number(b, &mut i).ok_or(())?;
                    let reg = usize::try_from(reg).map_err(|_| ())?;
                    if reg >= self.sregs.len() {
                        return Err(());
                    }
                    match b.get(i) {
                        Some(b'=') => {
                            i += 1;
                            let v = in_range(number(b, &mut i), 255)?;
                            self.sregs[reg] = u8::try_from(v).map_err(|_| ())?;
                        }
                        Some(b'?') => {
                            i += 1;
                            let v = self.sregs[reg];
                            self.info(&format!("{v:03}"));
                        }
                        _ => return Err(()),
                    }
                }
                b'&' => {
                    let c2 = b.get(i).copied().ok_or(())?;
                    i += 1;
                    let n = number(b, &mut i);
                    match c2 {
                        b'C' => self.c_mode = u8::from(in_range(n, 1)? == 1),
                        b'D' => self.d_mode = u8::try_from(in_range(n, 3)?).map_err(|_| ())?,
                        b'F' => {
                            in_range(n, 0)?;
                            self.reset_profile();
                        }
                        b'K' => {
                            in_range(n, 6)?;
                        }
                        b'W' => {
                            in_range(n, 1)?;
                        }
                        _ => return Err(()),
                    }
                }
                _ => return Err(()),
            }
        }
        Ok(true)
    }

    fn ring(&mut self, now: Instant) {
        if !self.idle() || self.opts.never_ok {
            return;
        }
        self.result(Res::Ring);
        self.rings += 1;
        self.last_ring = Some(now);
        self.ri_until = Some(now + RI_PULSE);
        let auto = u32::from(self.sregs[0]);
        if auto > 0 && self.rings >= auto {
            self.start_connect(now);
        }
    }

    fn drop_carrier(&mut self) {
        if self.carrier || matches!(self.mode, Mode::Connecting { .. }) {
            self.hang_up();
            self.result(Res::NoCarrier);
        }
    }

    fn set_dtr(&mut self, now: Instant, on: bool) {
        self.dtr_history.push(on);
        let was = std::mem::replace(&mut self.dtr, on);
        if on || !was || self.opts.ignore_dtr {
            return;
        }
        let in_call = self.carrier || matches!(self.mode, Mode::Connecting { .. });
        match self.d_mode {
            0 => {}
            1 => {
                if self.carrier && self.mode == Mode::Data {
                    self.mode = Mode::Command;
                    self.reset_escape(now);
                    self.line.clear();
                    self.result(Res::Ok);
                }
            }
            _ => {
                if in_call {
                    self.hang_up();
                    self.result(Res::NoCarrier);
                }
                if self.d_mode == 3 {
                    self.reset_profile();
                }
            }
        }
    }
}

struct Shared {
    modem: Mutex<Modem>,
    wake_r: OwnedFd,
    wake_w: OwnedFd,
    /// The device pty's master (a dup): read under the modem lock only, so
    /// a DTR drop sees every byte dialgate wrote before it.
    dev_master: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Modem> {
        self.modem.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        // Full pipe: the thread is awake anyway.
        let _ = write(&self.wake_w, &[1]);
    }

    /// Feed the modem what dialgate wrote and nobody read yet (the caller
    /// holds the lock).
    fn take_dev_input(&self, m: &mut Modem) {
        let mut buf = [0u8; 4096];
        while let Some(n) = read_some(&self.dev_master, &mut buf) {
            m.on_dev(Instant::now(), &buf[..n]);
        }
    }

    /// Change the modem under the lock, then wake the thread.
    fn with<R>(&self, f: impl FnOnce(&mut Modem, Instant) -> R) -> R {
        let r = f(&mut self.lock(), Instant::now());
        self.wake();
        r
    }
}

/// The fake's modem control lines, for dialgate's line handling.
#[derive(Clone)]
pub struct FakeModemLines {
    shared: Arc<Shared>,
}

impl ModemLines for FakeModemLines {
    type Error = io::Error;

    fn set_dtr(&mut self, on: bool) -> io::Result<()> {
        // Bytes written before the DTR change reach the modem before it:
        // a real UART has sent them by then (dialgate drains before a
        // hang-up).
        let shared = &self.shared;
        shared.with(|m, now| {
            shared.take_dev_input(m);
            m.set_dtr(now, on);
        });
        Ok(())
    }

    fn set_rts(&mut self, on: bool) -> io::Result<()> {
        self.shared.with(|m, _| m.rts = on);
        Ok(())
    }

    fn status(&mut self) -> io::Result<LineStatus> {
        Ok(self.shared.lock().status(Instant::now()))
    }
}

/// A fake Hayes modem on two ptys; see the module docs.
pub struct FakeModem {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    device: PathBuf,
    caller: PathBuf,
}

impl FakeModem {
    /// Create both ptys and start the modem thread.
    ///
    /// # Panics
    /// When a pty or the wake pipe cannot be created.
    pub fn new(opts: FakeModemOptions) -> FakeModem {
        let dev = open_pty().expect("fake modem: device pty");
        let caller = open_pty().expect("fake modem: caller pty");
        let (wake_r, wake_w) =
            pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).expect("fake modem: wake pipe");
        let shared = Arc::new(Shared {
            modem: Mutex::new(Modem::new(opts, Instant::now())),
            wake_r,
            wake_w,
            dev_master: dev
                .master
                .try_clone()
                .expect("fake modem: dup the device master"),
        });
        let device = dev.path.clone();
        let caller_path = caller.path.clone();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fakemodem".into())
                .spawn(move || run(&shared, &dev, &caller))
                .expect("fake modem: thread")
        };
        FakeModem {
            shared,
            thread: Some(thread),
            device,
            caller: caller_path,
        }
    }

    /// The pty slave dialgate opens as its serial line.
    pub fn device(&self) -> PathBuf {
        self.device.clone()
    }

    /// The caller-side pty slave (raw).
    pub fn caller_path(&self) -> PathBuf {
        self.caller.clone()
    }

    /// The modem control lines handle.
    pub fn lines(&self) -> FakeModemLines {
        FakeModemLines {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Send a RING to dialgate now. Does nothing while a call is up or
    /// being set up, or with `never_ok`.
    pub fn ring(&self) {
        self.shared.with(|m, now| m.ring(now));
    }

    /// Ring every `interval` until the modem answers (`ATA`, or `S0`
    /// auto-answer) or `max_rings` rang. Returns the number of rings sent
    /// when the answer came, after waiting (at most `answer_delay` + 1 s)
    /// for the carrier so the caller can talk straight away; `None` if no
    /// answer came within `interval` after the last ring.
    pub fn call(&self, interval: Duration, max_rings: u32) -> Option<u32> {
        let before = self.shared.lock().answers;
        for n in 1..=max_rings {
            self.ring();
            if self.wait_until(|f| f.shared.lock().answers > before, interval) {
                let settle = self.shared.lock().opts.answer_delay + Duration::from_secs(1);
                self.wait_until(FakeModem::connected, settle);
                return Some(n);
            }
        }
        None
    }

    /// The remote modem hangs up: DCD low, `NO CARRIER`, command mode.
    /// Nothing happens when no call is up or being set up.
    pub fn drop_carrier(&self) {
        self.shared.with(|m, _| m.drop_carrier());
    }

    /// A call is up (data mode or online command mode).
    pub fn connected(&self) -> bool {
        self.shared.lock().carrier
    }

    /// The DCD line.
    pub fn dcd(&self) -> bool {
        self.shared.lock().status(Instant::now()).dcd
    }

    /// Last DTR level set through the lines handle (initially low).
    pub fn dtr(&self) -> bool {
        self.shared.lock().dtr
    }

    /// Every `AT` command line received in command mode, in order, plus
    /// `"+++"` for each recognised escape.
    pub fn commands(&self) -> Vec<String> {
        self.shared.lock().commands.clone()
    }

    /// Numbers from `ATD`/`ATDT`/`ATDP` (after the T/P, without `;`).
    pub fn dialled(&self) -> Vec<String> {
        self.shared.lock().dialled.clone()
    }

    /// Every `set_dtr` call's level, in order.
    pub fn dtr_history(&self) -> Vec<bool> {
        self.shared.lock().dtr_history.clone()
    }

    /// Poll `what` every 5 ms until it holds (true) or `limit` passed
    /// (its last value).
    pub fn wait_until(&self, what: impl Fn(&FakeModem) -> bool, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if what(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FakeModem {
    fn drop(&mut self) {
        self.shared.with(|m, _| m.stop = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn poll_ms(d: Duration) -> PollTimeout {
    let ms = d.as_micros().div_ceil(1000);
    PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
}

/// Read what is there; `None` when nothing was (EAGAIN) or on error.
fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    match read(fd, buf) {
        Ok(n) if n > 0 => Some(n),
        _ => None,
    }
}

/// Write as much of `q` as the fd takes.
fn flush_queue(fd: &OwnedFd, q: &mut VecDeque<u8>) {
    while !q.is_empty() {
        match write(fd, q.make_contiguous()) {
            Ok(n) if n > 0 => {
                q.drain(..n);
            }
            _ => return,
        }
    }
}

/// The modem thread.
fn run(shared: &Shared, dev: &Pty, caller: &Pty) {
    let mut buf = [0u8; 4096];
    loop {
        let (timeout, dev_ev, caller_ev) = {
            let m = shared.lock();
            if m.stop {
                return;
            }
            let now = Instant::now();
            let sleep = m
                .next_deadline()
                .map_or(MAX_SLEEP, |d| d.saturating_duration_since(now))
                .min(MAX_SLEEP);
            let data = m.mode == Mode::Data;
            let mut dev_ev = PollFlags::empty();
            if !(data && m.to_caller.len() >= RELAY_HIGH_WATER) {
                dev_ev |= PollFlags::POLLIN;
            }
            if !m.to_dev.is_empty() {
                dev_ev |= PollFlags::POLLOUT;
            }
            let mut caller_ev = PollFlags::empty();
            if !(data && m.to_dev.len() >= RELAY_HIGH_WATER) {
                caller_ev |= PollFlags::POLLIN;
            }
            if !m.to_caller.is_empty() {
                caller_ev |= PollFlags::POLLOUT;
            }
            (poll_ms(sleep), dev_ev, caller_ev)
        };
        let (wake_in, dev_in, caller_in) = {
            let mut fds = [
                PollFd::new(shared.wake_r.as_fd(), PollFlags::POLLIN),
                PollFd::new(dev.master.as_fd(), dev_ev),
                PollFd::new(caller.master.as_fd(), caller_ev),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            let readable = |f: &PollFd<'_>| {
                f.revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
            };
            (readable(&fds[0]), readable(&fds[1]), readable(&fds[2]))
        };
        if wake_in {
            while read_some(&shared.wake_r, &mut buf).is_some() {}
        }
        if dev_in {
            let mut m = shared.lock();
            shared.take_dev_input(&mut m);
        }
        if caller_in && let Some(n) = read_some(&caller.master, &mut buf) {
            shared.lock().on_caller(&buf[..n]);
        }
        let mut m = shared.lock();
        m.timers(Instant::now());
        if std::mem::take(&mut m.flush_caller) {
            // Nothing of an earlier call reaches the new call's caller.
            let _ = termios::tcflush(&caller.slave, FlushArg::TCIFLUSH);
        }
        flush_queue(&dev.master, &mut m.to_dev);
        flush_queue(&caller.master, &mut m.to_caller);
    }
}
