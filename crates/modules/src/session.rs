//! What every built-in module shares: dialog tasks spawned on a tokio
//! runtime and stopped by End, the verdict helpers that remember a Complete
//! was made, and the prompt-and-read-a-line loop over the host's Receive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use securityhost::consts::{
    ERROR_INVALID_PORT_HANDLE, ERROR_PORT_DISCONNECTED, ERROR_REQUEST_TIMEOUT, NO_ERROR,
};
use securityhost::{BeginArgs, Dialog, HPort};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use zeroize::{Zeroize, Zeroizing};

use crate::codes::END_ABORTED;
use crate::line::{LineEvent, LineReader};

/// One dialog's End-side state.
struct TaskEntry {
    abort: AbortHandle,
    completed: Arc<AtomicBool>,
}

/// The dialog tasks of one module instance, by port handle.
///
/// End semantics (spec section 2), the same for every built-in module:
/// - after the dialog's Complete, End is cleanup: the entry is forgotten and
///   End returns `NO_ERROR`;
/// - before it, End is an abort: the task is stopped at once (it never
///   completes afterwards) and End returns [`END_ABORTED`], non-zero, so the
///   host ends the transaction at once instead of waiting its grace period
///   for a Complete that cannot come;
/// - End for a handle it does not know (Complete was made inside Begin, or
///   End twice) returns `NO_ERROR`.
pub(crate) struct DialogTasks {
    map: Mutex<HashMap<HPort, TaskEntry>>,
}

impl DialogTasks {
    pub(crate) fn new() -> DialogTasks {
        DialogTasks {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<HPort, TaskEntry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns the dialog of `args` on `handle`. `body` gets the session and
    /// runs as a task until it returns or End stops it.
    pub(crate) fn start<F, Fut>(&self, handle: &Handle, args: &BeginArgs, body: F)
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let completed = Arc::new(AtomicBool::new(false));
        let session = Session {
            dialog: Dialog::new(args),
            completed: completed.clone(),
        };
        // Boxed: the dialog's state lives on the heap once, whatever its size.
        let task = handle.spawn(Box::pin(body(session)));
        // End is only called after Begin returned, so the entry is always in
        // place before End looks for it.
        self.lock().insert(
            args.hport,
            TaskEntry {
                abort: task.abort_handle(),
                completed,
            },
        );
    }

    /// `RasSecurityDialogEnd` (see the type's documentation).
    pub(crate) fn end(&self, hport: HPort) -> u32 {
        let Some(entry) = self.lock().remove(&hport) else {
            return NO_ERROR;
        };
        entry.abort.abort();
        if entry.completed.load(Ordering::SeqCst) {
            NO_ERROR
        } else {
            END_ABORTED
        }
    }

    /// Dialogs started and not yet ended.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A dialog plus the flag End reads to tell cleanup from abort. The flag is
/// set *before* Complete is called, so an End racing with it (the host calls
/// End as soon as Complete returns) always sees it.
pub(crate) struct Session {
    pub(crate) dialog: Dialog,
    completed: Arc<AtomicBool>,
}

impl Session {
    /// A session outside any task table (for measuring dialog futures).
    #[cfg(test)]
    pub(crate) fn detached(args: &BeginArgs) -> Session {
        Session {
            dialog: Dialog::new(args),
            completed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn mark(&self) {
        self.completed.store(true, Ordering::SeqCst);
    }

    /// Complete SUCCESS.
    pub(crate) fn succeed(&self, user: &str, domain: &str) {
        self.mark();
        let r = self.dialog.succeed(user, domain);
        if r != NO_ERROR {
            tracing::warn!(hport = %self.dialog.hport(), code = r, "Complete(SUCCESS) refused");
        }
    }

    /// Complete FAILURE with `user` as typed (cut to fit).
    pub(crate) fn fail(&self, user: &str, domain: &str) {
        self.mark();
        let r = self.dialog.fail(user, domain);
        if r != NO_ERROR {
            tracing::debug!(hport = %self.dialog.hport(), code = r, "Complete(FAILURE) refused");
        }
    }

    /// Complete ERROR `code`.
    pub(crate) fn error(&self, code: u32) {
        self.mark();
        let r = self.dialog.error(code);
        if r != NO_ERROR {
            tracing::debug!(hport = %self.dialog.hport(), code = r, "Complete(ERROR) refused");
        }
    }

    /// Sends text to the caller.
    pub(crate) fn send(&self, data: &[u8]) -> Result<(), ReadError> {
        self.dialog.send(data).map_err(ReadError::Host)
    }

    /// Ends a dialog whose line could not be read, the same way for every
    /// module: a prompt timeout is ERROR 638, a hang-up or a dialog the host
    /// already ended just stops (End follows), any other host error is
    /// reported as ERROR with that code. Returns true when the caller should
    /// be failed instead (a line too long: the module decides the name).
    pub(crate) fn on_read_error(&self, e: &ReadError) -> bool {
        match e {
            ReadError::TooLong(_) => return true,
            ReadError::Host(ERROR_REQUEST_TIMEOUT) => {
                tracing::info!(hport = %self.dialog.hport(), "prompt timed out");
                self.error(ERROR_REQUEST_TIMEOUT);
            }
            ReadError::Host(ERROR_PORT_DISCONNECTED | ERROR_INVALID_PORT_HANDLE) => {
                tracing::debug!(hport = %self.dialog.hport(), "dialog ended by the host");
            }
            ReadError::Host(code) => {
                tracing::warn!(hport = %self.dialog.hport(), code, "host call failed");
                self.error(*code);
            }
        }
        false
    }
}

/// Why no line came.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Receive or Send failed with this host code (638 timeout, 619 hung up,
    /// 601 the transaction is over, ...).
    Host(u32),
    /// The line ran past the reader's maximum: its first bytes.
    TooLong(Zeroizing<Vec<u8>>),
}

/// Turns `\n` line ends into CR LF (leaving existing CR LF alone) and makes
/// sure non-empty text ends with one.
pub(crate) fn crlf_text(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut prev = 0u8;
    for &b in text.as_bytes() {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A dialog's input: the line reader plus the unread rest of the last
/// Receive (type-ahead for the next prompt). Both are zeroed when dropped.
pub(crate) struct LineInput {
    reader: LineReader,
    pending: Zeroizing<Vec<u8>>,
    pos: usize,
    echo: Vec<u8>,
    timeout_secs: u32,
}

impl LineInput {
    /// Lines of at most `max` bytes; each prompt waits at most
    /// `timeout_secs` in all (0 = no limit).
    pub(crate) fn new(max: usize, timeout_secs: u32) -> LineInput {
        LineInput {
            reader: LineReader::new(max),
            pending: Zeroizing::new(Vec::new()),
            pos: 0,
            echo: Vec::new(),
            timeout_secs,
        }
    }

    /// Sends `prompt`, then reads one line with echo on or off.
    pub(crate) async fn prompt(
        &mut self,
        session: &Session,
        prompt: &[u8],
        echo: bool,
    ) -> Result<Zeroizing<Vec<u8>>, ReadError> {
        session.send(prompt)?;
        self.reader.set_echo(echo);
        let deadline = (self.timeout_secs > 0)
            .then(|| tokio::time::Instant::now() + Duration::from_secs(self.timeout_secs.into()));
        loop {
            // What is left of the last Receive first: type-ahead.
            while self.pos < self.pending.len() {
                let fed = self.reader.feed(&self.pending[self.pos..], &mut self.echo);
                self.pos += fed.consumed;
                if !self.echo.is_empty() {
                    let r = session.send(&self.echo);
                    self.echo.clear();
                    r?;
                }
                match fed.event {
                    Some(LineEvent::Line(line)) => return Ok(line),
                    Some(LineEvent::TooLong(part)) => return Err(ReadError::TooLong(part)),
                    None => {}
                }
            }
            self.pending.zeroize();
            self.pos = 0;
            let timeout = match deadline {
                None => 0,
                Some(d) => {
                    let left = d.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        return Err(ReadError::Host(ERROR_REQUEST_TIMEOUT));
                    }
                    // Whole seconds, rounded up so a partial second still waits.
                    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                    u32::try_from(secs).unwrap_or(u32::MAX)
                }
            };
            let data = session
                .dialog
                .receive(timeout)
                .await
                .map_err(ReadError::Host)?;
            *self.pending = data;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_text_normalises_line_ends() {
        assert_eq!(crlf_text(""), b"");
        assert_eq!(crlf_text("hi"), b"hi\r\n");
        assert_eq!(crlf_text("a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
