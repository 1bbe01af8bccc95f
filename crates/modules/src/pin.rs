//! The `pin` module: one prompt, one shared PIN, one configured user. Cheap
//! (no hashing, no files), for benchmarks and simple deployments.
//!
//! The dialog: `prompt` (default `PIN: `), the answer read with echo off,
//! compared with the configured PIN in constant time (both padded to the
//! longest line, lengths compared in constant time too); right: SUCCESS as
//! the configured user; wrong: `Login incorrect`, again up to `tries` times,
//! then FAILURE as the configured user. Timeouts, hang-ups, lines too long
//! and End behave as in the `users` module.

use std::sync::Arc;

use securityhost::consts::NO_ERROR;
use securityhost::{BeginArgs, HPort, SecurityModule};
use subtle::ConstantTimeEq;
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::line::DEFAULT_MAX_LINE;
use crate::session::{DialogTasks, LineInput, Session};
use crate::users::{INPUT_TOO_LONG, LOGIN_INCORRECT};
use crate::{ConfigError, MAX_BANNER, check_domain, check_user};

/// Settings of a [`PinModule`].
#[derive(Clone)]
pub struct PinOptions {
    /// The user every SUCCESS (and FAILURE) names.
    pub user: String,
    /// The PIN, compared in constant time. 1 to 256 bytes, no control
    /// characters.
    pub pin: String,
    /// The prompt. Default `PIN: `.
    pub prompt: String,
    /// Answers allowed per call (at least 1). Default 3.
    pub tries: u32,
    /// How long the prompt waits, in seconds; 0 = no limit. Default 60.
    pub prompt_timeout_secs: u32,
    /// The Domain of verdicts (at most 15 bytes). Default empty.
    pub domain: String,
}

impl Default for PinOptions {
    fn default() -> Self {
        PinOptions {
            user: String::new(),
            pin: String::new(),
            prompt: "PIN: ".to_string(),
            tries: 3,
            prompt_timeout_secs: 60,
            domain: String::new(),
        }
    }
}

impl std::fmt::Debug for PinOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinOptions")
            .field("user", &self.user)
            .field("prompt", &self.prompt)
            .field("tries", &self.tries)
            .field("prompt_timeout_secs", &self.prompt_timeout_secs)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// The `pin` module. See the module documentation.
pub struct PinModule {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    user: String,
    domain: String,
    prompt: Vec<u8>,
    tries: u32,
    timeout: u32,
    /// The PIN, zero-padded to the longest line.
    pin: Zeroizing<[u8; DEFAULT_MAX_LINE]>,
    pin_len: u32,
    tasks: DialogTasks,
}

impl std::fmt::Debug for PinModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinModule")
            .field("user", &self.inner.user)
            .field("dialogs", &self.inner.tasks.len())
            .finish_non_exhaustive()
    }
}

impl PinModule {
    /// A module whose dialogs run as tasks on `handle`.
    pub fn new(handle: Handle, opts: PinOptions) -> Result<PinModule, ConfigError> {
        check_user(&opts.user)?;
        check_domain(&opts.domain)?;
        if opts.tries == 0 {
            return Err(ConfigError::NoTries);
        }
        let pin = opts.pin.as_bytes();
        if pin.is_empty()
            || pin.len() > DEFAULT_MAX_LINE
            || pin.iter().any(|&b| b < 0x20 || b == 0x7f)
        {
            return Err(ConfigError::BadPin);
        }
        if opts.prompt.len() > MAX_BANNER {
            return Err(ConfigError::PromptTooLong);
        }
        let mut padded = Zeroizing::new([0u8; DEFAULT_MAX_LINE]);
        padded[..pin.len()].copy_from_slice(pin);
        Ok(PinModule {
            inner: Arc::new(Inner {
                handle,
                user: opts.user.clone(),
                domain: opts.domain.clone(),
                prompt: opts.prompt.as_bytes().to_vec(),
                tries: opts.tries,
                timeout: opts.prompt_timeout_secs,
                pin_len: pin.len() as u32,
                pin: padded,
                tasks: DialogTasks::new(),
            }),
        })
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl SecurityModule for PinModule {
    fn name(&self) -> &str {
        "pin"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let inner = self.inner.clone();
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                inner.dialog(session).await;
            });
        NO_ERROR
    }

    fn end(&self, hport: HPort) -> u32 {
        self.inner.tasks.end(hport)
    }
}

impl Inner {
    async fn dialog(&self, session: Session) {
        let mut input = LineInput::new(DEFAULT_MAX_LINE, self.timeout);
        for _ in 0..self.tries {
            match input.prompt(&session, &self.prompt, false).await {
                Ok(answer) => {
                    if self.matches(&answer) {
                        session.succeed(&self.user, &self.domain);
                        return;
                    }
                    if session.send(LOGIN_INCORRECT).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if session.on_read_error(&e) {
                        let _ = session.send(INPUT_TOO_LONG);
                        session.fail(&self.user, &self.domain);
                    }
                    return;
                }
            }
        }
        session.fail(&self.user, &self.domain);
    }

    /// Constant-time in the answer's content and length (up to the longest
    /// line, which is all the reader yields).
    fn matches(&self, answer: &[u8]) -> bool {
        let mut padded = Zeroizing::new([0u8; DEFAULT_MAX_LINE]);
        let n = answer.len().min(DEFAULT_MAX_LINE);
        padded[..n].copy_from_slice(&answer[..n]);
        let len_ok = (answer.len() as u64).ct_eq(&u64::from(self.pin_len));
        let bytes_ok = padded.as_slice().ct_eq(self.pin.as_slice());
        bool::from(len_ok & bytes_ok)
    }
}
