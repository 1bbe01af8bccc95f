//! The `pam` security module: the caller talks to a PAM service stack
//! (`/etc/pam.d/<service>`) through the dialog.
//!
//! - With [`PamOptions::ask_username`] (the default) the module asks
//!   `Username: ` (echoed) and starts PAM for that user; without it PAM asks
//!   for the name itself, through the conversation (`PAM_USER_PROMPT` is set
//!   to `Username: `, which a PAM module may override).
//! - Every PAM conversation message becomes part of the dialog:
//!   `PAM_PROMPT_ECHO_ON` is a prompt whose answer is echoed,
//!   `PAM_PROMPT_ECHO_OFF` one whose answer is not, `PAM_TEXT_INFO` and
//!   `PAM_ERROR_MSG` are shown on the caller's line, ending in CR LF. Each
//!   prompt waits at most [`PamOptions::prompt_timeout_secs`].
//! - PAM runs on a thread of its own per try (PAM is blocking; the
//!   conversation waits on the dialog's Receive there), not on tokio's
//!   blocking pool, so idle callers cannot starve other modules. End before
//!   Complete stops the dialog task; the conversation then answers PAM with
//!   `PAM_CONV_ERR` at once (or on its next prompt), so the thread ends as
//!   soon as PAM returns, and never completes.
//! - A try is `pam_authenticate` then `pam_acct_mgmt` (both with
//!   `PAM_DISALLOW_NULL_AUTHTOK`); both must succeed. SUCCESS carries
//!   `PAM_USER` as PAM left it (a module may map the name). An authentication
//!   refusal (`PAM_AUTH_ERR`, `PAM_USER_UNKNOWN`, `PAM_PERM_DENIED`, expired
//!   account or password, ...) prints `Login incorrect` and counts as a try;
//!   after [`PamOptions::tries`] (or at once on `PAM_MAXTRIES`) FAILURE with
//!   the name typed (or `PAM_USER`).
//! - Any other PAM result (a module that cannot be loaded, a system error,
//!   `PAM_AUTHINFO_UNAVAIL`, ...) is ERROR [`pam_result_code`]`(code)`,
//!   never a grant; a missing service file is ERROR
//!   [`ERROR_PAM_SERVICE_MISSING`] without calling PAM at all, because
//!   Linux-PAM would silently fall back to the `other` service (on Debian:
//!   the system accounts).
//! - A prompt not answered in time: ERROR 638. The caller hanging up: the
//!   dialog stops (End follows). A line longer than 256 bytes: FAILURE with
//!   the name so far.
//!
//! PAM itself is loaded at run time from `libpam.so.0` ([`crate::libpam`]),
//! so building the server needs no `libpam0g-dev`; a machine without the
//! library gets [`PamConfigError::Library`] when the module is built.
//!
//! Known limit: the answer handed to PAM is copied into PAM's own buffer,
//! which PAM frees without zeroing it; our line buffers and our copy of
//! the answer are zeroed.

use std::ffi::{CStr, CString};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Wake, Waker};

use crate::libpam::{Context, ConversationHandler, ErrorCode, Flag};
use securityhost::consts::NO_ERROR;
use securityhost::{BeginArgs, HPort, SecurityModule};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use crate::codes::MODULE_CODE_BASE;
use crate::line::DEFAULT_MAX_LINE;
use crate::session::{DialogTasks, LineInput, ReadError, Session, crlf_text};
use crate::{ConfigError, MAX_BANNER, check_domain};

/// ERROR verdict: the PAM service file `/etc/pam.d/<service>` does not
/// exist (or is not a file). PAM is not called: it would fall back to the
/// `other` service. Logged with the path. Decimal 536871937.
pub const ERROR_PAM_SERVICE_MISSING: u32 = MODULE_CODE_BASE | 0x401;

/// ERROR verdict: `pam_start` failed (out of memory, a broken PAM
/// configuration). Logged with PAM's message. Decimal 536871938.
pub const ERROR_PAM_START_FAILED: u32 = MODULE_CODE_BASE | 0x402;

/// ERROR verdict: the PAM thread could not be started or died without a
/// result (a bug). Decimal 536871939.
pub const ERROR_PAM_THREAD_FAILED: u32 = MODULE_CODE_BASE | 0x403;

/// ERROR verdict: PAM granted, but `PAM_USER` is unset, empty or not
/// readable afterwards, so there is no name to grant. Decimal 536871940.
pub const ERROR_PAM_NO_USER: u32 = MODULE_CODE_BASE | 0x404;

/// Base of the ERROR verdicts that carry a PAM result code: a PAM result
/// that is neither success nor an authentication refusal is reported as
/// `ERROR_PAM_RESULT_BASE + code` (PAM codes are 0..=31 on Linux-PAM, so
/// `0x2000_0480..=0x2000_049f`; see [`pam_result_code`]).
pub const ERROR_PAM_RESULT_BASE: u32 = MODULE_CODE_BASE | 0x480;

/// The ERROR code for PAM result `code` (for example `PAM_MODULE_UNKNOWN`
/// 28 gives `0x2000_049c`). Codes outside 0..=127 (not Linux-PAM's) map to
/// `ERROR_PAM_RESULT_BASE + 127`.
pub fn pam_result_code(code: i32) -> u32 {
    let c = u32::try_from(code)
        .ok()
        .filter(|c| *c < 0x7f)
        .unwrap_or(0x7f);
    ERROR_PAM_RESULT_BASE + c
}

/// The prompt for the user name: ours (when [`PamOptions::ask_username`])
/// and `PAM_USER_PROMPT` for PAM's own.
pub const USERNAME_PROMPT: &[u8] = USERNAME_PROMPT_STR.as_bytes();
const USERNAME_PROMPT_STR: &str = "Username: ";
/// What a refused try prints, whatever PAM said.
pub const LOGIN_INCORRECT: &[u8] = b"Login incorrect\r\n";
/// What a line too long prints before the FAILURE.
pub const INPUT_TOO_LONG: &[u8] = b"\r\nInput too long\r\n";
/// Where Linux-PAM reads service files from.
pub const PAM_CONFIG_DIR: &str = "/etc/pam.d";

/// Settings of a [`PamModule`].
#[derive(Clone, Debug)]
pub struct PamOptions {
    /// The PAM service name: `/etc/pam.d/<service>` (letters, digits,
    /// `.`, `_`, `-`, `+`, `@`; at most 64 bytes). Default `dialgate`.
    pub service: String,
    /// Ask `Username: ` (echoed) before starting PAM. When false, PAM asks
    /// for the name itself through the conversation (with `PAM_USER_PROMPT`
    /// set to `Username: `, unless a PAM module passes its own prompt); the
    /// FAILURE name is then `PAM_USER`. Default true.
    pub ask_username: bool,
    /// Text sent first; `\n` line ends are sent as CR LF. Empty: none.
    pub banner: String,
    /// PAM transactions allowed per call (at least 1). Default 3.
    pub tries: u32,
    /// How long each prompt (ours and PAM's) waits for its answer, in
    /// seconds; 0 = no limit (the port's dialog time limit still applies).
    /// Default 60.
    pub prompt_timeout_secs: u32,
    /// The Domain of verdicts (at most 15 bytes). Default empty.
    pub domain: String,
    /// Refuse (ERROR [`ERROR_PAM_SERVICE_MISSING`]) when
    /// `/etc/pam.d/<service>` does not exist, instead of letting PAM fall
    /// back to `other`. Default true; turn off only for a PAM without
    /// `/etc/pam.d` (`/etc/pam.conf` only).
    pub require_service_file: bool,
}

impl Default for PamOptions {
    fn default() -> Self {
        PamOptions {
            service: "dialgate".into(),
            ask_username: true,
            banner: String::new(),
            tries: 3,
            prompt_timeout_secs: 60,
            domain: String::new(),
            require_service_file: true,
        }
    }
}

/// A [`PamOptions`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PamConfigError {
    /// A setting shared with the other modules.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service name is empty, too long, `.`/`..`, or has a character
    /// outside `[A-Za-z0-9._+@-]`.
    #[error("PAM service name {0:?} is not a plain file name (letters, digits, . _ - + @)")]
    BadService(String),
    /// `libpam.so.0` cannot be loaded (or lacks a function).
    #[error("PAM is not available: {0}")]
    Library(String),
}

/// Counters of a [`PamModule`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PamStats {
    /// PAM transactions started (`pam_start` called).
    pub transactions: u64,
    /// Logins granted.
    pub granted: u64,
    /// Tries PAM refused.
    pub refused: u64,
    /// Dialogs ended with an ERROR from PAM or its setup.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

/// The `pam` module. See the module documentation.
pub struct PamModule {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    opts: PamOptions,
    banner: Vec<u8>,
    tasks: DialogTasks,
    threads: Arc<AtomicUsize>,
    counters: Counters,
}

impl std::fmt::Debug for PamModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamModule")
            .field("service", &self.inner.opts.service)
            .field("dialogs", &self.inner.tasks.len())
            .field("pam_threads", &self.active_pam_threads())
            .finish_non_exhaustive()
    }
}

fn check_service(name: &str) -> Result<(), PamConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PamConfigError::BadService(name.to_string()))
    }
}

impl PamModule {
    /// A module whose dialogs run as tasks on `handle` (PAM itself runs on
    /// threads of its own). The service file is not checked here but at
    /// each Begin (it may be installed later).
    pub fn new(handle: Handle, opts: PamOptions) -> Result<PamModule, PamConfigError> {
        if opts.tries == 0 {
            return Err(ConfigError::NoTries.into());
        }
        if opts.banner.len() > MAX_BANNER {
            return Err(ConfigError::BannerTooLong.into());
        }
        check_domain(&opts.domain)?;
        check_service(&opts.service)?;
        crate::libpam::available().map_err(PamConfigError::Library)?;
        Ok(PamModule {
            inner: Arc::new(Inner {
                handle,
                banner: crlf_text(&opts.banner),
                tasks: DialogTasks::new(),
                threads: Arc::new(AtomicUsize::new(0)),
                counters: Counters::default(),
                opts,
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> PamStats {
        let c = &self.inner.counters;
        PamStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            granted: c.granted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }

    /// PAM threads still running (also those of aborted dialogs, until PAM
    /// returns).
    pub fn active_pam_threads(&self) -> usize {
        self.inner.threads.load(Ordering::SeqCst)
    }

    /// The service file PAM will read.
    pub fn service_file(&self) -> PathBuf {
        Path::new(PAM_CONFIG_DIR).join(&self.inner.opts.service)
    }
}

impl SecurityModule for PamModule {
    fn name(&self) -> &str {
        "pam"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let inner = self.inner.clone();
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                inner.dialog(Arc::new(session)).await;
            });
        NO_ERROR
    }

    fn end(&self, hport: HPort) -> u32 {
        self.inner.tasks.end(hport)
    }
}

/// What one PAM transaction ended with.
enum TryResult {
    /// Both checks passed for this `PAM_USER`.
    Granted(String),
    /// PAM refused; the name to report (may be empty); `last` after
    /// `PAM_MAXTRIES`.
    Refused { name: String, last: bool },
    /// Complete ERROR with this code.
    Error(u32),
    /// The conversation could not read a line.
    Read(ReadError),
    /// End came: stop without a verdict.
    Aborted,
}

/// What the PAM thread hands back: the result and the line input (with any
/// type-ahead), which is lost when `pam_start` failed.
struct Job {
    result: TryResult,
    input: Option<LineInput>,
}

impl Inner {
    async fn dialog(self: Arc<Self>, session: Arc<Session>) {
        let hport = session.dialog.hport();
        if self.opts.require_service_file {
            let path = Path::new(PAM_CONFIG_DIR).join(&self.opts.service);
            if !path.is_file() {
                tracing::error!(%hport, path = %path.display(), "PAM service file missing: login refused");
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                session.error(ERROR_PAM_SERVICE_MISSING);
                return;
            }
        }
        if !self.banner.is_empty() && session.send(&self.banner).is_err() {
            return;
        }
        let tty = session
            .dialog
            .info()
            .ok()
            .map(|i| i.device_name)
            .filter(|d| !d.is_empty() && !d.contains('\0'));
        // Dropped with this future (End aborts the task): the PAM thread's
        // conversation sees the channel closed and answers PAM with an error.
        let (_alive, cancel) = watch::channel(());
        let mut input = Some(LineInput::new(
            DEFAULT_MAX_LINE,
            self.opts.prompt_timeout_secs,
        ));
        let mut last_name = String::new();
        for _ in 0..self.opts.tries {
            let mut inp = input
                .take()
                .unwrap_or_else(|| LineInput::new(DEFAULT_MAX_LINE, self.opts.prompt_timeout_secs));
            last_name.clear();
            let user = if self.opts.ask_username {
                match inp.prompt(&session, USERNAME_PROMPT, true).await {
                    Ok(name) => {
                        last_name = String::from_utf8_lossy(&name).into_owned();
                        if name.is_empty() {
                            input = Some(inp);
                            if session.send(LOGIN_INCORRECT).is_err() {
                                return;
                            }
                            continue;
                        }
                        Some(last_name.clone())
                    }
                    Err(e) => {
                        self.read_failed(&session, &e, last_name);
                        return;
                    }
                }
            } else {
                None
            };
            let job = self
                .run_pam(session.clone(), user, tty.clone(), inp, cancel.clone())
                .await;
            input = job.input;
            match job.result {
                TryResult::Granted(user) => {
                    self.counters.granted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%hport, user = %user, service = %self.opts.service, "PAM login granted");
                    session.succeed(&user, &self.opts.domain);
                    return;
                }
                TryResult::Refused { name, last } => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    if last_name.is_empty() {
                        last_name = name;
                    }
                    if session.send(LOGIN_INCORRECT).is_err() {
                        return;
                    }
                    if last {
                        break;
                    }
                }
                TryResult::Error(code) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    session.error(code);
                    return;
                }
                TryResult::Read(e) => {
                    self.read_failed(&session, &e, last_name);
                    return;
                }
                TryResult::Aborted => return,
            }
        }
        tracing::info!(%hport, user = %last_name, service = %self.opts.service, "PAM login refused");
        session.fail(&last_name, &self.opts.domain);
    }

    /// A prompt could not be answered: the shared handling, and FAILURE
    /// for a line too long.
    fn read_failed(&self, session: &Session, e: &ReadError, mut name: String) {
        if session.on_read_error(e) {
            if let ReadError::TooLong(part) = e
                && name.is_empty()
            {
                name = String::from_utf8_lossy(part).into_owned();
            }
            let _ = session.send(INPUT_TOO_LONG);
            session.fail(&name, &self.opts.domain);
        }
    }

    /// Runs one PAM transaction on a thread of its own and waits for it.
    async fn run_pam(
        &self,
        session: Arc<Session>,
        user: Option<String>,
        tty: Option<String>,
        input: LineInput,
        cancel: watch::Receiver<()>,
    ) -> Job {
        let (tx, rx) = oneshot::channel();
        let service = self.opts.service.clone();
        let guard = ThreadCount::new(self.threads_counter());
        self.counters.transactions.fetch_add(1, Ordering::Relaxed);
        let conv = Conv {
            session,
            input,
            cancel,
            stop: None,
            echoed_answer: None,
        };
        let spawned = std::thread::Builder::new()
            .name("dialgate-pam".into())
            // PAM modules run here; 1 MiB is plenty for the usual ones
            // (the default 2 MiB would do too; this is only address space).
            .stack_size(1024 * 1024)
            .spawn(move || {
                let job = pam_transaction(&service, user.as_deref(), tty.as_deref(), conv);
                drop(guard);
                let _ = tx.send(job);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a PAM thread");
            return Job {
                result: TryResult::Error(ERROR_PAM_THREAD_FAILED),
                input: None,
            };
        }
        rx.await.unwrap_or_else(|_| {
            tracing::error!("the PAM thread ended without a result");
            Job {
                result: TryResult::Error(ERROR_PAM_THREAD_FAILED),
                input: None,
            }
        })
    }

    fn threads_counter(&self) -> Arc<AtomicUsize> {
        self.threads.clone()
    }
}

/// Counts a PAM thread from before its spawn until it ends (or its closure
/// is dropped because the spawn failed).
struct ThreadCount(Arc<AtomicUsize>);

impl ThreadCount {
    fn new(c: Arc<AtomicUsize>) -> ThreadCount {
        c.fetch_add(1, Ordering::SeqCst);
        ThreadCount(c)
    }
}

impl Drop for ThreadCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Is this PAM result a refusal of the caller (FAILURE) rather than a
/// broken setup (ERROR)?
fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AUTH_ERR
            | ErrorCode::USER_UNKNOWN
            | ErrorCode::MAXTRIES
            | ErrorCode::CRED_INSUFFICIENT
            | ErrorCode::PERM_DENIED
            | ErrorCode::ACCT_EXPIRED
            | ErrorCode::NEW_AUTHTOK_REQD
            | ErrorCode::AUTHTOK_EXPIRED
    )
}

/// One PAM transaction, on the PAM thread: start, authenticate, account
/// management, the verdict.
fn pam_transaction(service: &str, user: Option<&str>, tty: Option<&str>, conv: Conv) -> Job {
    let hport = conv.session.dialog.hport();
    let mut ctx = match Context::new(service, user, conv) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%hport, service, code = e.code().repr(), error = %e, "pam_start failed");
            return Job {
                result: TryResult::Error(ERROR_PAM_START_FAILED),
                input: None,
            };
        }
    };
    if let Some(tty) = tty
        && let Err(e) = ctx.set_tty(Some(tty))
    {
        tracing::debug!(%hport, error = %e, "cannot set PAM_TTY");
    }
    // PAM's own user-name prompt (pam_get_user, when the module did not
    // ask) is ours too, unless a PAM module passes one of its own.
    if user.is_none()
        && let Err(e) = ctx.set_user_prompt(Some(USERNAME_PROMPT_STR))
    {
        tracing::debug!(%hport, error = %e, "cannot set PAM_USER_PROMPT");
    }
    let flags = Flag::DISALLOW_NULL_AUTHTOK;
    let checked = ctx.authenticate(flags).and_then(|()| ctx.acct_mgmt(flags));
    let pam_user = ctx.user().ok().filter(|u| !u.is_empty());
    let conv = ctx.conversation_mut();
    let stop = conv.stop.take();
    let echoed = conv.echoed_answer.take();
    let input = Some(std::mem::replace(
        &mut conv.input,
        LineInput::new(DEFAULT_MAX_LINE, 0),
    ));
    let result = match (stop, checked) {
        // A conversation that failed wins over whatever PAM made of it: a
        // caller who hung up or timed out is never granted.
        (Some(Stop::Aborted), _) => TryResult::Aborted,
        (Some(Stop::Read(e)), _) => TryResult::Read(e),
        (None, Ok(())) => match pam_user {
            Some(u) => TryResult::Granted(u),
            None => {
                tracing::error!(%hport, service, "PAM granted but PAM_USER is unset");
                TryResult::Error(ERROR_PAM_NO_USER)
            }
        },
        (None, Err(e)) if is_refusal(e.code()) => {
            tracing::info!(%hport, service, code = e.code().repr(), error = %e, "PAM refused");
            TryResult::Refused {
                name: pam_user.or(echoed).unwrap_or_default(),
                last: e.code() == ErrorCode::MAXTRIES,
            }
        }
        (None, Err(e)) => {
            let code = pam_result_code(e.code().repr());
            tracing::error!(%hport, service, pam_code = e.code().repr(), error = %e, code, "PAM failed");
            TryResult::Error(code)
        }
    };
    Job { result, input }
}

/// Why the conversation stopped answering.
enum Stop {
    /// End came (the dialog task is gone).
    Aborted,
    /// No line: timeout, hang-up, too long, a host error.
    Read(ReadError),
}

/// The PAM conversation of one transaction, on the PAM thread: each message
/// goes to the caller; each prompt blocks this thread on the dialog.
struct Conv {
    session: Arc<Session>,
    input: LineInput,
    /// Closed when the dialog task is dropped (End).
    cancel: watch::Receiver<()>,
    /// Set once the conversation failed; every later message fails at once.
    stop: Option<Stop>,
    /// The last answer to an echoed prompt (PAM's own user-name prompt),
    /// for the FAILURE name when `PAM_USER` is unset.
    echoed_answer: Option<String>,
}

impl Conv {
    fn ask(&mut self, prompt: &CStr, echo: bool) -> Result<CString, ErrorCode> {
        if self.stop.is_some() {
            return Err(ErrorCode::CONV_ERR);
        }
        if self.cancel.has_changed().is_err() {
            self.stop = Some(Stop::Aborted);
            return Err(ErrorCode::CONV_ERR);
        }
        let cancel = &mut self.cancel;
        let read = self.input.prompt(&self.session, prompt.to_bytes(), echo);
        let answer = block_on(async {
            tokio::select! {
                biased;
                _ = cancel.changed() => None,
                r = read => Some(r),
            }
        });
        match answer {
            None => {
                self.stop = Some(Stop::Aborted);
                Err(ErrorCode::CONV_ERR)
            }
            Some(Err(e)) => {
                self.stop = Some(Stop::Read(e));
                Err(ErrorCode::CONV_ERR)
            }
            Some(Ok(line)) => {
                if echo {
                    self.echoed_answer = Some(String::from_utf8_lossy(&line).into_owned());
                }
                // The line reader drops NUL, so this only fails on a bug.
                CString::new(line.to_vec()).map_err(|_| ErrorCode::BUF_ERR)
            }
        }
    }

    fn show(&mut self, msg: &CStr) {
        if self.stop.is_some() {
            return;
        }
        let text = crlf_text(&msg.to_string_lossy());
        if let Err(e) = self.session.send(&text) {
            self.stop = Some(Stop::Read(e));
        }
    }
}

impl ConversationHandler for Conv {
    fn prompt_echo_on(&mut self, prompt: &CStr) -> Result<CString, ErrorCode> {
        self.ask(prompt, true)
    }

    fn prompt_echo_off(&mut self, prompt: &CStr) -> Result<CString, ErrorCode> {
        self.ask(prompt, false)
    }

    fn text_info(&mut self, msg: &CStr) {
        self.show(msg);
    }

    fn error_msg(&mut self, msg: &CStr) {
        self.show(msg);
    }

    fn radio_prompt(&mut self, prompt: &CStr) -> Result<bool, ErrorCode> {
        let mut text = prompt.to_bytes().to_vec();
        text.extend_from_slice(b" [y/N] ");
        let text = CString::new(text).map_err(|_| ErrorCode::BUF_ERR)?;
        let answer = self.ask(&text, true)?;
        Ok(matches!(answer.as_bytes().first(), Some(b'y' | b'Y')))
    }
}

/// Wakes the PAM thread parked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this (non-tokio) thread. The dialog's
/// Receive and the cancel channel wake it through their wakers; nothing
/// here needs a tokio runtime, so it cannot panic inside PAM's callback.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for ok in ["dialgate", "dialgate-test-12", "a.b_c+d@e", "x"] {
            assert_eq!(check_service(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a b",
            "a\0b",
            "dial\ngate",
            &"x".repeat(65),
        ] {
            assert!(check_service(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn result_codes_stay_in_range() {
        assert_eq!(pam_result_code(28), 0x2000_049c);
        assert_eq!(pam_result_code(0), ERROR_PAM_RESULT_BASE);
        assert_eq!(pam_result_code(-1), 0x2000_04ff);
        assert_eq!(pam_result_code(1000), 0x2000_04ff);
        for c in [
            ERROR_PAM_SERVICE_MISSING,
            ERROR_PAM_START_FAILED,
            ERROR_PAM_THREAD_FAILED,
            ERROR_PAM_NO_USER,
            pam_result_code(31),
        ] {
            assert!((0x2000_0400..=0x2000_04ff).contains(&c), "{c:#x}");
        }
    }

    #[test]
    fn refusals_and_errors() {
        assert!(is_refusal(ErrorCode::AUTH_ERR));
        assert!(is_refusal(ErrorCode::USER_UNKNOWN));
        assert!(is_refusal(ErrorCode::MAXTRIES));
        assert!(!is_refusal(ErrorCode::MODULE_UNKNOWN));
        assert!(!is_refusal(ErrorCode::OPEN_ERR));
        assert!(!is_refusal(ErrorCode::SYSTEM_ERR));
        assert!(!is_refusal(ErrorCode::AUTHINFO_UNAVAIL));
        assert!(!is_refusal(ErrorCode::CONV_ERR));
        assert!(!is_refusal(ErrorCode::ABORT));
    }

    #[test]
    fn block_on_waits_for_another_thread() {
        let (tx, rx) = oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = tx.send(7u8);
        });
        assert_eq!(block_on(rx).ok(), Some(7));
        t.join().unwrap();
    }

    /// A conversation over a real port whose transaction has begun.
    fn conv_on_port() -> (Arc<securityhost::Port>, Conv, watch::Sender<()>) {
        use securityhost::{Config, Port, SystemClock};
        let port = Port::new(
            HPort(11),
            Config::default(),
            "t",
            Arc::new(SystemClock),
            Box::new(|| {}),
        );
        port.with(|tx, now| tx.begin_returned(NO_ERROR, now));
        let args = BeginArgs {
            hport: HPort(11),
            send_buffer_size: 1024,
            recv_buffer_size: 1024,
            host: port.host(),
        };
        let (alive, cancel) = watch::channel(());
        let conv = Conv {
            session: Arc::new(Session::detached(&args)),
            input: LineInput::new(DEFAULT_MAX_LINE, 5),
            cancel,
            stop: None,
            echoed_answer: None,
        };
        (port, conv, alive)
    }

    fn sent(port: &securityhost::Port) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = port.with(|tx, _| tx.poll_transmit()) {
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn info_and_error_messages_end_in_crlf() {
        let (port, mut conv, _alive) = conv_on_port();
        conv.text_info(c"Welcome");
        conv.error_msg(c"Account locked\nCall the helpdesk");
        conv.text_info(c"");
        assert_eq!(
            sent(&port),
            b"Welcome\r\nAccount locked\r\nCall the helpdesk\r\n".to_vec()
        );
        assert!(conv.stop.is_none());
    }

    #[test]
    fn typed_answers_reach_pam_and_echo_follows_the_style() {
        let (port, mut conv, _alive) = conv_on_port();
        port.with(|tx, _| tx.caller_input(b"jo\rsecret\r"));
        assert_eq!(conv.prompt_echo_on(c"login: ").unwrap().as_bytes(), b"jo");
        assert_eq!(
            conv.prompt_echo_off(c"Password: ").unwrap().as_bytes(),
            b"secret"
        );
        assert_eq!(sent(&port), b"login: jo\r\nPassword: \r\n".to_vec());
        assert_eq!(conv.echoed_answer.as_deref(), Some("jo"));
    }

    #[test]
    fn a_cancelled_dialog_fails_every_prompt_at_once() {
        let (port, mut conv, alive) = conv_on_port();
        drop(alive);
        assert_eq!(
            conv.prompt_echo_off(c"Password: "),
            Err(ErrorCode::CONV_ERR)
        );
        assert!(matches!(conv.stop, Some(Stop::Aborted)));
        assert_eq!(conv.prompt_echo_on(c"again: "), Err(ErrorCode::CONV_ERR));
        conv.text_info(c"not shown");
        assert_eq!(sent(&port), Vec::<u8>::new(), "nothing is sent after End");
    }

    #[test]
    fn cancel_wakes_a_waiting_prompt() {
        let (port, mut conv, alive) = conv_on_port();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = conv.prompt_echo_off(c"Password: ");
            let _ = done_tx.send((r, matches!(conv.stop, Some(Stop::Aborted))));
        });
        // Bounded wait for the prompt to go out.
        let mut out = Vec::new();
        for _ in 0..500 {
            out.extend(sent(&port));
            if !out.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(out, b"Password: ".to_vec());
        assert!(
            done_rx.try_recv().is_err(),
            "the prompt waits for an answer"
        );
        drop(alive);
        let (r, aborted) = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the prompt returns once the dialog is cancelled");
        assert_eq!(r, Err(ErrorCode::CONV_ERR));
        assert!(aborted);
    }

    #[test]
    fn bad_options_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let new = |o: PamOptions| PamModule::new(h.clone(), o).err();
        assert_eq!(
            new(PamOptions {
                tries: 0,
                ..PamOptions::default()
            }),
            Some(PamConfigError::Config(ConfigError::NoTries))
        );
        assert!(matches!(
            new(PamOptions {
                service: "../shadow".into(),
                ..PamOptions::default()
            }),
            Some(PamConfigError::BadService(_))
        ));
        assert!(matches!(
            new(PamOptions {
                domain: "x".repeat(16),
                ..PamOptions::default()
            }),
            Some(PamConfigError::Config(ConfigError::BadDomain(_)))
        ));
        assert_eq!(new(PamOptions::default()), None);
    }
}
