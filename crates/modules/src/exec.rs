//! The `exec` module: an external program holds the dialog.
//!
//! Begin spawns a task that starts `program` with `args` in its own process
//! group. The caller's bytes (raw, as received: the program does its own
//! echo and line handling) are its stdin; its stdout goes to the caller
//! through Send, in pieces no larger than the send buffer; its stderr goes
//! to the server log (`tracing`, at most [`MAX_STDERR_LINES`] lines of at
//! most [`MAX_STDERR_LINE`] bytes per dialog; the rest is read and dropped).
//!
//! The program writes its verdict as ONE line on file descriptor 3 (a pipe
//! the module creates), terminated by LF:
//!
//! ```text
//! SUCCESS <user> [<domain>]
//! FAILURE <user> [<domain>]
//! ERROR <code>
//! ```
//!
//! Fields are separated by exactly one space; no other whitespace, no CR.
//! `user`: 1 to 256 bytes of UTF-8 without spaces or control characters;
//! `domain`: 1 to 15 such bytes; `code`: decimal, 1 to 4294967295, no sign,
//! no leading zero. The line is at most [`MAX_VERDICT_LINE`] bytes.
//!
//! Decision (module defects): the module cannot complete with an invalid
//! message on the program's behalf, so every defect of the program is an
//! ERROR with a code of this module, logged with the reason, never a grant:
//! - a line that does not parse, lacks its LF, or is too long:
//!   [`ERROR_EXEC_BAD_VERDICT`];
//! - fd 3 closed (or the program gone) without any byte:
//!   [`ERROR_EXEC_NO_VERDICT`] (also when it died from a signal);
//! - anything written on fd 3 after the verdict line:
//!   [`ERROR_EXEC_BAD_VERDICT`];
//! - a SUCCESS line is only taken when the program then exits with status 0
//!   within `exit_grace`; otherwise [`ERROR_EXEC_BAD_EXIT`]. FAILURE and
//!   ERROR lines are taken whatever the exit status (they deny anyway);
//! - the program cannot be started: [`ERROR_EXEC_SPAWN_FAILED`].
//!
//! After the verdict line the module keeps forwarding stdout until the
//! program closes it, and waits for its exit status (both at most
//! `exit_grace`), then completes. A program that exits while a process it
//! left behind keeps fd 3 open gets `exit_grace` more for its verdict, then
//! [`ERROR_EXEC_NO_VERDICT`].
//!
//! Environment: cleared, then `PATH=/usr/local/bin:/usr/bin:/bin`, then the
//! configured `env` (which may replace `PATH`), then `DIALGATE_DEVICE` (the
//! device name `GetInfo` gives, for example `tcp 198.51.100.7:50412`) and
//! `DIALGATE_HPORT` (the transaction's handle, decimal), which always win.
//! The working directory is `working_dir` (default `/`).
//!
//! End: the dialog task is stopped (End before Complete returns
//! [`crate::codes::END_ABORTED`]) and the program's process group gets
//! SIGTERM, then SIGKILL after `kill_grace`. End after Complete kills what is
//! left of the group too. A program that hangs is ended by the host's dialog
//! time limit and that End.
//!
//! Known limit: the group is signalled by its number; a group whose leader
//! was reaped and whose members all exited could in theory see its number
//! reused by a new group within `kill_grace` (PID wrap-around needed).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use securityhost::consts::{DNLEN, ERROR_INVALID_PORT_HANDLE, NO_ERROR, UNLEN};
use securityhost::{BeginArgs, Dialog, HPort, SecurityModule};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::runtime::Handle;

use crate::codes::MODULE_CODE_BASE;
use crate::session::{DialogTasks, Session};

/// ERROR verdict: the program could not be started (missing, not
/// executable, no pipes). Logged with the OS error. Decimal 536872192.
pub const ERROR_EXEC_SPAWN_FAILED: u32 = MODULE_CODE_BASE | 0x500;

/// ERROR verdict: the program ended (closed fd 3) without writing a
/// verdict. A module defect, logged with its exit status. Decimal 536872193.
pub const ERROR_EXEC_NO_VERDICT: u32 = MODULE_CODE_BASE | 0x501;

/// ERROR verdict: the program wrote something on fd 3 that is not exactly
/// one valid verdict line. A module defect, logged. Decimal 536872194.
pub const ERROR_EXEC_BAD_VERDICT: u32 = MODULE_CODE_BASE | 0x502;

/// ERROR verdict: the program wrote SUCCESS but then did not exit with
/// status 0 within the exit grace (failed, died from a signal, or kept
/// running). A module defect, logged. Decimal 536872195.
pub const ERROR_EXEC_BAD_EXIT: u32 = MODULE_CODE_BASE | 0x503;

/// The longest verdict line, LF included.
pub const MAX_VERDICT_LINE: usize = 512;
/// The longest stderr line logged (longer ones are cut).
pub const MAX_STDERR_LINE: usize = 1024;
/// The most stderr lines logged per dialog.
pub const MAX_STDERR_LINES: usize = 64;

/// The `PATH` the program gets unless `env` sets one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The largest stdout read forwarded in one go.
const MAX_CHUNK: usize = 64 * 1024;

/// Extra environment variables for a program, in order. Values may be
/// secrets (a token, a password for a backend), so `Debug` shows the names
/// only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVars(pub Vec<(String, String)>);

impl std::ops::Deref for EnvVars {
    type Target = [(String, String)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Vec<(String, String)>> for EnvVars {
    fn from(v: Vec<(String, String)>) -> EnvVars {
        EnvVars(v)
    }
}

impl FromIterator<(String, String)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> EnvVars {
        EnvVars(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a EnvVars {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, "<redacted>")))
            .finish()
    }
}

/// Settings of an [`ExecModule`].
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// The program: an absolute path (no `PATH` search).
    pub program: PathBuf,
    /// Its arguments (after `argv[0]`, which is `program`). Default none.
    pub args: Vec<String>,
    /// Extra environment variables, in order. Names: non-empty, no `=`, no
    /// NUL, not starting with `DIALGATE_`; values: no NUL. Default none.
    pub env: EnvVars,
    /// The working directory. Default `/`.
    pub working_dir: PathBuf,
    /// After SIGTERM to the process group on End, how long before SIGKILL.
    /// Default 2 s.
    pub kill_grace: Duration,
    /// After the verdict line, how long the program has to close stdout and
    /// exit. Default 5 s.
    pub exit_grace: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            program: PathBuf::new(),
            args: Vec::new(),
            env: EnvVars::default(),
            working_dir: PathBuf::from("/"),
            kill_grace: Duration::from_secs(2),
            exit_grace: Duration::from_secs(5),
        }
    }
}

/// An [`ExecOptions`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecConfigError {
    /// `program` is not an absolute path.
    #[error("program {0:?} is not an absolute path")]
    ProgramNotAbsolute(PathBuf),
    /// An argument has a NUL byte.
    #[error("argument {0} has a NUL byte")]
    BadArg(usize),
    /// An environment variable name or value cannot be passed, or it is a
    /// reserved `DIALGATE_` name.
    #[error(
        "environment variable {0:?}: empty, has '=' or NUL, reserved DIALGATE_ name, or NUL in its value"
    )]
    BadEnv(String),
    /// `kill_grace` or `exit_grace` is zero or longer than an hour.
    #[error("kill_grace and exit_grace must be between 1 ms and 1 hour")]
    BadGrace,
}

/// The `exec` module. See the module documentation.
pub struct ExecModule {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExecModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecModule")
            .field("program", &self.inner.opts.program)
            .field("dialogs", &self.inner.tasks.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    handle: Handle,
    opts: ExecOptions,
    tasks: DialogTasks,
    children: Mutex<HashMap<HPort, Arc<Mutex<ChildState>>>>,
}

/// What End has to signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildState {
    /// Not spawned yet.
    NotStarted,
    /// Running as the leader of process group `pid`.
    Running(u32),
    /// The leader exited (reaped); members of group `pid` may remain.
    Exited(u32),
    /// End came: whoever holds a fresh child must kill it.
    Ended,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExecModule {
    /// A module whose dialogs run as tasks on `handle`.
    pub fn new(handle: Handle, opts: ExecOptions) -> Result<ExecModule, ExecConfigError> {
        if !opts.program.is_absolute() {
            return Err(ExecConfigError::ProgramNotAbsolute(opts.program));
        }
        if let Some(i) = opts.args.iter().position(|a| a.contains('\0')) {
            return Err(ExecConfigError::BadArg(i));
        }
        for (k, v) in &opts.env {
            if k.is_empty()
                || k.contains('=')
                || k.contains('\0')
                || k.starts_with("DIALGATE_")
                || v.contains('\0')
            {
                return Err(ExecConfigError::BadEnv(k.clone()));
            }
        }
        let ok = |d: Duration| !d.is_zero() && d <= Duration::from_secs(3600);
        if !ok(opts.kill_grace) || !ok(opts.exit_grace) {
            return Err(ExecConfigError::BadGrace);
        }
        Ok(ExecModule {
            inner: Arc::new(Inner {
                handle,
                opts,
                tasks: DialogTasks::new(),
                children: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl SecurityModule for ExecModule {
    fn name(&self) -> &str {
        "exec"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let slot = Arc::new(Mutex::new(ChildState::NotStarted));
        lock(&self.inner.children).insert(args.hport, slot.clone());
        let inner = self.inner.clone();
        let send_size = args.send_buffer_size.clamp(1, MAX_CHUNK);
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                inner.dialog(session, slot, send_size).await;
            });
        NO_ERROR
    }

    fn end(&self, hport: HPort) -> u32 {
        // Stop the task first, so it cannot complete while the program dies.
        let code = self.inner.tasks.end(hport);
        let slot = lock(&self.inner.children).remove(&hport);
        if let Some(slot) = slot {
            let state = std::mem::replace(&mut *lock(&slot), ChildState::Ended);
            match state {
                ChildState::Running(pid) => {
                    let grace = self.inner.opts.kill_grace;
                    self.inner.handle.spawn(async move {
                        signal_group(pid, Signal::SIGTERM);
                        tokio::time::sleep(grace).await;
                        signal_group(pid, Signal::SIGKILL);
                    });
                }
                ChildState::Exited(pid) => signal_group(pid, Signal::SIGKILL),
                ChildState::NotStarted | ChildState::Ended => {}
            }
        }
        code
    }
}

/// Signals process group `pid`; a group that is gone already is fine.
fn signal_group(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return;
    }
    match killpg(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid = raw, ?sig, error = %e, "cannot signal the exec program"),
    }
}

/// A parsed verdict line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecVerdict {
    /// `SUCCESS user [domain]`.
    Success {
        /// The user name.
        user: String,
        /// The domain, empty when omitted.
        domain: String,
    },
    /// `FAILURE user [domain]`.
    Failure {
        /// The user name.
        user: String,
        /// The domain, empty when omitted.
        domain: String,
    },
    /// `ERROR code`.
    Error(u32),
}

/// Why a verdict line was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerdictLineError {
    /// No LF at the end (or the line is longer than [`MAX_VERDICT_LINE`]).
    #[error("the line does not end with LF within {MAX_VERDICT_LINE} bytes")]
    Unterminated,
    /// Not `SUCCESS`, `FAILURE` or `ERROR` with the right fields.
    #[error("malformed verdict line")]
    Malformed,
    /// A user name or domain that is empty, too long, not UTF-8, or has a
    /// control character.
    #[error("bad user name or domain")]
    BadName,
    /// An ERROR code that is not a decimal number from 1 to 4294967295.
    #[error("bad error code")]
    BadCode,
}

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_control() || c == ' ')
}

/// Parses one verdict line, LF included (strict: see the module
/// documentation).
pub fn parse_verdict_line(line: &[u8]) -> Result<ExecVerdict, VerdictLineError> {
    if line.len() > MAX_VERDICT_LINE {
        return Err(VerdictLineError::Unterminated);
    }
    let Some(body) = line.strip_suffix(b"\n") else {
        return Err(VerdictLineError::Unterminated);
    };
    let body = std::str::from_utf8(body).map_err(|_| VerdictLineError::BadName)?;
    let mut fields = body.split(' ');
    let kind = fields.next().unwrap_or_default();
    let rest: Vec<&str> = fields.collect();
    match (kind, rest.as_slice()) {
        ("ERROR", [code]) => {
            let ok = !code.is_empty()
                && code.bytes().all(|b| b.is_ascii_digit())
                && !code.starts_with('0');
            let n = if ok { code.parse::<u32>().ok() } else { None };
            n.map(ExecVerdict::Error).ok_or(VerdictLineError::BadCode)
        }
        ("SUCCESS" | "FAILURE", [user, more @ ..]) if more.len() <= 1 => {
            let domain = more.first().copied().unwrap_or("");
            if !name_ok(user, UNLEN) || (more.len() == 1 && !name_ok(domain, DNLEN)) {
                return Err(VerdictLineError::BadName);
            }
            let (user, domain) = (user.to_string(), domain.to_string());
            Ok(if kind == "SUCCESS" {
                ExecVerdict::Success { user, domain }
            } else {
                ExecVerdict::Failure { user, domain }
            })
        }
        _ => Err(VerdictLineError::Malformed),
    }
}

/// What fd 3 gave in the first phase.
enum Fd3 {
    /// A full line (LF included).
    Line(Vec<u8>),
    /// EOF after these bytes (maybe none).
    Eof(Vec<u8>),
    /// More than [`MAX_VERDICT_LINE`] bytes without LF.
    TooLong,
    /// A read error.
    Failed(io::Error),
}

async fn read_verdict<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Fd3 {
    let mut buf = Vec::with_capacity(MAX_VERDICT_LINE);
    let mut byte = [0u8; 1];
    // One byte at a time: nothing past the LF is consumed, so whatever
    // follows it is seen (and refused) afterwards.
    loop {
        match r.read(&mut byte).await {
            Ok(0) => return Fd3::Eof(buf),
            Ok(_) => {
                buf.push(byte[0]);
                if byte[0] == b'\n' {
                    return Fd3::Line(buf);
                }
                if buf.len() >= MAX_VERDICT_LINE {
                    return Fd3::TooLong;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Fd3::Failed(e),
        }
    }
}

/// Makes `w` the child's fd 3 (a pre_exec hook: async-signal-safe calls only).
#[allow(unsafe_code)]
fn install_fd3(cmd: &mut tokio::process::Command, w: RawFd) {
    let hook = move || -> io::Result<()> {
        use std::os::fd::BorrowedFd;
        if w == 3 {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            // SAFETY: fd 3 is the open write end, kept open by the parent
            // until spawn returns.
            let fd = unsafe { BorrowedFd::borrow_raw(3) };
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .map_err(io::Error::from)?;
        } else {
            // SAFETY: `w` is the open write end of the pipe, kept open by
            // the parent until spawn returns; fd 3 in the child is free for
            // us to replace (it is not one of the stdio descriptors).
            let src = unsafe { BorrowedFd::borrow_raw(w) };
            // SAFETY: dup2 onto fd 3 is async-signal-safe; the returned
            // OwnedFd must not be closed (it is the child's fd 3), so it is
            // forgotten.
            let fd3 = unsafe { nix::unistd::dup2_raw(src, 3) }.map_err(io::Error::from)?;
            std::mem::forget(fd3);
        }
        Ok(())
    };
    // SAFETY: the hook only calls dup2 and fcntl (async-signal-safe) and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(hook);
    }
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig).map_or("?", |s| s.as_str());
        format!("killed by signal {sig} ({name})")
    } else {
        format!("{status}")
    }
}

/// A verdict line shown in a log: escaped and cut.
fn shown(line: &[u8]) -> String {
    let cut = &line[..line.len().min(128)];
    cut.escape_ascii().to_string()
}

impl Inner {
    fn spawn(
        &self,
        device: &str,
        hport: HPort,
    ) -> io::Result<(tokio::process::Child, tokio::net::unix::pipe::Receiver)> {
        let (r, w): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let mut cmd = tokio::process::Command::new(&self.opts.program);
        cmd.args(&self.opts.args)
            .env_clear()
            .env("PATH", DEFAULT_PATH);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.env("DIALGATE_DEVICE", device)
            .env("DIALGATE_HPORT", hport.0.to_string())
            .current_dir(&self.opts.working_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        install_fd3(&mut cmd, w.as_raw_fd());
        let child = cmd.spawn()?;
        // Our copy of the write end goes now: fd 3 reads EOF once the
        // program (and anything it left holding fd 3) is gone.
        drop(w);
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(r)?;
        Ok((child, rx))
    }

    async fn dialog(&self, session: Session, slot: Arc<Mutex<ChildState>>, send_size: usize) {
        let hport = session.dialog.hport();
        let program = self.opts.program.display().to_string();
        let device = match session.dialog.info() {
            Ok(info) => info.device_name,
            Err(code) => {
                tracing::debug!(%hport, code, "GetInfo failed: the dialog is over");
                return;
            }
        };
        let (mut child, mut fd3) = match self.spawn(&device, hport) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(%hport, program, error = %e, "cannot start the exec program");
                session.error(ERROR_EXEC_SPAWN_FAILED);
                return;
            }
        };
        let Some(pid) = child.id() else {
            tracing::warn!(%hport, program, "the exec program has no pid");
            session.error(ERROR_EXEC_SPAWN_FAILED);
            return;
        };
        {
            let mut s = lock(&slot);
            if *s == ChildState::Ended {
                drop(s);
                signal_group(pid, Signal::SIGKILL);
                return;
            }
            *s = ChildState::Running(pid);
        }
        tracing::debug!(%hport, program, pid, "exec program started");
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            session.error(ERROR_EXEC_SPAWN_FAILED);
            return;
        };

        let input = pump_input(session.dialog.clone(), stdin);
        let output = pump_output(session.dialog.clone(), stdout, send_size);
        let errors = log_stderr(stderr, hport, program.clone());
        tokio::pin!(input, output, errors);
        let (mut input_done, mut output_done, mut errors_done) = (false, false, false);

        // Phase 1: until fd 3 gives a line or EOF. If the program exits
        // while something it left behind keeps fd 3 open, the verdict gets
        // `exit_grace` more.
        let grace = self.opts.exit_grace;
        let mut exit: Option<io::Result<ExitStatus>> = None;
        let mut verdict_deadline: Option<tokio::time::Instant> = None;
        let first = {
            let verdict = read_verdict(&mut fd3);
            tokio::pin!(verdict);
            loop {
                tokio::select! {
                    v = &mut verdict => break v,
                    st = child.wait(), if exit.is_none() => {
                        exit = Some(st);
                        verdict_deadline = Some(tokio::time::Instant::now() + grace);
                    }
                    () = tokio::time::sleep_until(
                        verdict_deadline.unwrap_or_else(tokio::time::Instant::now)
                    ), if verdict_deadline.is_some() => break Fd3::Eof(Vec::new()),
                    stop = &mut input, if !input_done => {
                        input_done = true;
                        if let Some(code) = stop {
                            // The caller hung up or the host ended the dialog.
                            tracing::debug!(%hport, code, "caller input ended");
                            return;
                        }
                    }
                    ok = &mut output, if !output_done => {
                        output_done = true;
                        if !ok {
                            return;
                        }
                    }
                    () = &mut errors, if !errors_done => errors_done = true,
                }
            }
        };

        // Phase 2: the rest of stdout and stderr, fd 3 to its end, the exit
        // status, all within `exit_grace`.
        let deadline = tokio::time::Instant::now() + grace;
        let drain = async {
            let out = async { if !output_done { output.await } else { true } };
            let err = async {
                if !errors_done {
                    (&mut errors).await;
                }
            };
            let extra = async {
                let mut b = [0u8; 1];
                match &first {
                    Fd3::Line(_) => matches!(fd3.read(&mut b).await, Ok(n) if n > 0),
                    _ => false,
                }
            };
            tokio::join!(out, err, extra)
        };
        let drained = tokio::time::timeout_at(deadline, drain).await;
        let status = match exit {
            Some(st) => st.ok(),
            // Polled once even when the deadline has passed.
            None => tokio::time::timeout_at(deadline, child.wait())
                .await
                .ok()
                .and_then(Result::ok),
        };
        if status.is_some() {
            *lock(&slot) = ChildState::Exited(pid);
        }
        let how = status
            .as_ref()
            .map_or_else(|| format!("still running after {grace:?}"), describe);
        let extra = match drained {
            Ok((false, (), _)) => {
                // Sending failed: the caller hung up; End follows.
                return;
            }
            Ok((true, (), extra)) => extra,
            Err(_) => false,
        };

        let line = match first {
            Fd3::Line(l) => l,
            Fd3::Eof(b) if b.is_empty() => {
                tracing::warn!(%hport, program, status = how, "exec program ended without a verdict (module defect)");
                session.error(ERROR_EXEC_NO_VERDICT);
                return;
            }
            Fd3::Eof(b) => {
                tracing::warn!(%hport, program, line = shown(&b), status = how, "exec verdict without its LF (module defect)");
                session.error(ERROR_EXEC_BAD_VERDICT);
                return;
            }
            Fd3::TooLong => {
                tracing::warn!(%hport, program, status = how, "exec verdict line too long (module defect)");
                session.error(ERROR_EXEC_BAD_VERDICT);
                return;
            }
            Fd3::Failed(e) => {
                tracing::warn!(%hport, program, error = %e, "cannot read the exec verdict");
                session.error(ERROR_EXEC_NO_VERDICT);
                return;
            }
        };
        if extra {
            tracing::warn!(%hport, program, "exec program wrote more than one verdict line (module defect)");
            session.error(ERROR_EXEC_BAD_VERDICT);
            return;
        }
        match parse_verdict_line(&line) {
            Ok(ExecVerdict::Success { user, domain }) => {
                if status.is_some_and(|s| s.success()) {
                    tracing::info!(%hport, program, user, "exec program granted");
                    session.succeed(&user, &domain);
                } else {
                    tracing::warn!(%hport, program, user, status = how, "exec program wrote SUCCESS but did not exit with status 0 (module defect)");
                    session.error(ERROR_EXEC_BAD_EXIT);
                }
            }
            Ok(ExecVerdict::Failure { user, domain }) => {
                tracing::info!(%hport, program, user, status = how, "exec program refused");
                session.fail(&user, &domain);
            }
            Ok(ExecVerdict::Error(code)) => {
                tracing::info!(%hport, program, code, status = how, "exec program reported an error");
                session.error(code);
            }
            Err(e) => {
                tracing::warn!(%hport, program, line = shown(&line), error = %e, status = how, "bad exec verdict line (module defect)");
                session.error(ERROR_EXEC_BAD_VERDICT);
            }
        }
    }
}

/// Caller bytes to the program's stdin until the caller goes (returns the
/// host code) or the program closes its stdin (returns `None`).
async fn pump_input(dialog: Dialog, mut stdin: tokio::process::ChildStdin) -> Option<u32> {
    loop {
        let data = match dialog.receive(0).await {
            Ok(d) => d,
            Err(code) => return Some(code),
        };
        if stdin.write_all(&data).await.is_err() || stdin.flush().await.is_err() {
            // The program does not read any more: keep the bytes from
            // piling up, stop receiving.
            return None;
        }
    }
}

/// The program's stdout to the caller until EOF (true) or a Send failure
/// (false: the caller is gone).
async fn pump_output(dialog: Dialog, mut stdout: tokio::process::ChildStdout, size: usize) -> bool {
    let mut buf = vec![0u8; size];
    loop {
        match stdout.read(&mut buf).await {
            Ok(0) => return true,
            Ok(n) => {
                let Some(chunk) = buf.get(..n) else {
                    return true;
                };
                if let Err(code) = dialog.send(chunk) {
                    if code != ERROR_INVALID_PORT_HANDLE {
                        tracing::debug!(hport = %dialog.hport(), code, "Send failed");
                    }
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// A stderr line as log text: invalid UTF-8 replaced, the line end dropped,
/// control characters escaped (no terminal escapes or fake lines in logs).
fn log_safe(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end_matches(['\r', '\n']).chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The program's stderr to the log, bounded; drained to EOF.
async fn log_stderr(stderr: tokio::process::ChildStderr, hport: HPort, program: String) {
    let mut r = BufReader::new(stderr);
    let mut logged = 0usize;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Bounded: at most MAX_STDERR_LINE bytes kept of each line.
        let mut too_long = false;
        loop {
            let buf = match r.fill_buf().await {
                Ok(b) => b,
                Err(_) => return,
            };
            if buf.is_empty() {
                if line.is_empty() && !too_long {
                    return;
                }
                break;
            }
            let (n, end) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let take = n.min(MAX_STDERR_LINE.saturating_sub(line.len()));
            line.extend_from_slice(buf.get(..take).unwrap_or_default());
            too_long |= take < n;
            r.consume(n);
            if end {
                break;
            }
        }
        if logged < MAX_STDERR_LINES {
            let text = log_safe(&line);
            tracing::warn!(%hport, program, cut = too_long, "exec stderr: {text}");
            logged += 1;
            if logged == MAX_STDERR_LINES {
                tracing::warn!(%hport, program, "exec stderr: further lines not logged");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines() {
        let ok = |s: &str| parse_verdict_line(s.as_bytes());
        assert_eq!(
            ok("SUCCESS alice\n"),
            Ok(ExecVerdict::Success {
                user: "alice".into(),
                domain: String::new()
            })
        );
        assert_eq!(
            ok("FAILURE bob LAB\n"),
            Ok(ExecVerdict::Failure {
                user: "bob".into(),
                domain: "LAB".into()
            })
        );
        assert_eq!(ok("ERROR 638\n"), Ok(ExecVerdict::Error(638)));
        assert_eq!(ok("ERROR 4294967295\n"), Ok(ExecVerdict::Error(u32::MAX)));
        for bad in [
            "SUCCESS alice",
            "SUCCESS alice\r\n",
            "SUCCESS\n",
            "SUCCESS \n",
            "SUCCESS  alice\n",
            "SUCCESS alice  \n",
            "SUCCESS a b c\n",
            "success alice\n",
            "GRANT alice\n",
            "ERROR 0\n",
            "ERROR 0638\n",
            "ERROR -1\n",
            "ERROR +5\n",
            "ERROR 4294967296\n",
            "ERROR\n",
            "ERROR 1 2\n",
            "SUCCESS al\tice\n",
            "SUCCESS alice 0123456789abcdef\n",
            "\n",
            "",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
        let long = format!("SUCCESS {}\n", "u".repeat(257));
        assert_eq!(ok(&long), Err(VerdictLineError::BadName));
        let max = format!("SUCCESS {}\n", "u".repeat(256));
        assert!(ok(&max).is_ok());
        assert!(parse_verdict_line(b"SUCCESS \xff\n").is_err());
        assert_eq!(
            parse_verdict_line(&[b'x'; MAX_VERDICT_LINE + 1]),
            Err(VerdictLineError::Unterminated)
        );
    }

    #[test]
    fn stderr_lines_are_made_safe() {
        assert_eq!(log_safe(b"plain\tline\r\n"), "plain\tline");
        assert_eq!(log_safe(b"\x1b[2Jfake\nline"), "\\u{1b}[2Jfake\\nline");
        assert_eq!(log_safe(b"bad \xff"), "bad \u{fffd}");
    }

    #[test]
    fn codes_are_in_range() {
        for c in [
            ERROR_EXEC_SPAWN_FAILED,
            ERROR_EXEC_NO_VERDICT,
            ERROR_EXEC_BAD_VERDICT,
            ERROR_EXEC_BAD_EXIT,
        ] {
            assert!((0x2000_0500..=0x2000_05ff).contains(&c));
        }
    }
}
