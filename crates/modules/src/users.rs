//! The `users` security module: a banner, `Username: ` (echoed),
//! `Password: ` (not echoed), checked against the argon2id hashes of the
//! users file, a few tries, then the verdict.
//!
//! - A wrong password, an unknown user and a disabled user all get the same
//!   neutral `Login incorrect` and cost the same argon2id work (unknown names
//!   are checked against a dummy hash with the file's usual parameters).
//! - After `tries` failures: FAILURE with the last name as typed (cut to
//!   fit). SUCCESS carries the user's name and domain (the user's own
//!   `domain`, else [`UsersOptions::domain`]).
//! - An empty user name counts as a try (no password is asked).
//! - A prompt not answered within `prompt_timeout_secs`: ERROR 638. The
//!   caller hanging up: the dialog just stops (the host Ends it).
//! - A line longer than 256 bytes: FAILURE with the name typed so far.
//! - The users file is read through a [`FileCache`] that reloads it when
//!   it changes (see [`crate::filecache`]), so `dialgate user add` needs no
//!   restart: at Begin (a broken file fails at once) and again for each
//!   password check, so a user disabled, removed or given a new password
//!   while a caller sits at a prompt is judged by the file as it is when
//!   the password is checked. A file that cannot be read or is invalid: ERROR
//!   [`ERROR_USERS_FILE_UNREADABLE`] / [`ERROR_USERS_FILE_INVALID`], logged,
//!   never a grant.
//! - argon2 runs on tokio's blocking pool under [`UsersOptions::verifiers`]
//!   (each check takes the hash's memory); by default the process's one
//!   limiter, shared with the other modules and PPP.
//! - End before Complete stops the dialog task and returns
//!   [`crate::codes::END_ABORTED`] (see the crate documentation).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use securityhost::consts::NO_ERROR;
use securityhost::{BeginArgs, HPort, SecurityModule};
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::ConfigError;
use crate::codes::{ERROR_USERS_FILE_INVALID, ERROR_USERS_FILE_UNREADABLE, ERROR_VERIFIER_FAILED};
use crate::filecache::FileCache;
use crate::line::DEFAULT_MAX_LINE;
use crate::session::{DialogTasks, LineInput, ReadError, Session, crlf_text};
use crate::userdb::{Check, CheckedAgainst, UserFileError, UsersDb};
use crate::verifiers::Verifiers;
use crate::{MAX_BANNER, check_domain};

/// The prompt for the user name.
pub const USERNAME_PROMPT: &[u8] = b"Username: ";
/// The prompt for the password.
pub const PASSWORD_PROMPT: &[u8] = b"Password: ";
/// What a failed try prints, whatever was wrong.
pub const LOGIN_INCORRECT: &[u8] = b"Login incorrect\r\n";
/// What a line too long prints before the FAILURE.
pub const INPUT_TOO_LONG: &[u8] = b"\r\nInput too long\r\n";

/// Settings of a [`UsersModule`].
#[derive(Clone, Debug)]
pub struct UsersOptions {
    /// The users file (TOML, see [`crate::userdb`]).
    pub users_file: PathBuf,
    /// Text sent first; `\n` line ends are sent as CR LF. Empty: none.
    pub banner: String,
    /// Username/password pairs allowed per call (at least 1). Default 3.
    pub tries: u32,
    /// How long each prompt waits for its answer, in seconds; 0 = no limit
    /// (the port's dialog time limit still applies). Default 60.
    pub prompt_timeout_secs: u32,
    /// The Domain of verdicts (at most 15 bytes), unless the user has one.
    pub domain: String,
    /// The argon2 limiter. Default: [`Verifiers::process`], the one the
    /// whole process shares (as many checks at once as CPUs).
    pub verifiers: Verifiers,
}

impl Default for UsersOptions {
    fn default() -> Self {
        UsersOptions {
            users_file: PathBuf::from("users.toml"),
            banner: String::new(),
            tries: 3,
            prompt_timeout_secs: 60,
            domain: String::new(),
            verifiers: Verifiers::process(),
        }
    }
}

/// Counters of a [`UsersModule`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsersStats {
    /// Passwords checked against a user's own hash.
    pub verifications: u64,
    /// Passwords checked against the dummy hash (unknown user names).
    pub dummy_verifications: u64,
    /// Logins granted.
    pub granted: u64,
    /// Users-file reads and parses: the first, one per change, and again
    /// while a change is less than [`crate::filecache::RACY`] old.
    pub reloads: u64,
}

#[derive(Default)]
struct Counters {
    verifications: AtomicU64,
    dummy_verifications: AtomicU64,
    granted: AtomicU64,
}

/// The `users` module. See the module documentation.
pub struct UsersModule {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    opts: UsersOptions,
    banner: Vec<u8>,
    cache: Arc<FileCache<UsersDb>>,
    tasks: DialogTasks,
    counters: Counters,
}

impl std::fmt::Debug for UsersModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersModule")
            .field("users_file", &self.inner.opts.users_file)
            .field("dialogs", &self.inner.tasks.len())
            .finish_non_exhaustive()
    }
}

impl UsersModule {
    /// A module whose dialogs run as tasks on `handle`. The users file is
    /// not read here but at each Begin (it may not exist yet).
    pub fn new(handle: Handle, opts: UsersOptions) -> Result<UsersModule, ConfigError> {
        if opts.tries == 0 {
            return Err(ConfigError::NoTries);
        }
        if opts.banner.len() > MAX_BANNER {
            return Err(ConfigError::BannerTooLong);
        }
        check_domain(&opts.domain)?;
        Ok(UsersModule {
            inner: Arc::new(Inner {
                handle,
                banner: crlf_text(&opts.banner),
                cache: Arc::new(FileCache::new(
                    opts.users_file.clone(),
                    "users file",
                    UsersDb::load,
                )),
                tasks: DialogTasks::new(),
                counters: Counters::default(),
                opts,
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> UsersStats {
        let c = &self.inner.counters;
        UsersStats {
            verifications: c.verifications.load(Ordering::Relaxed),
            dummy_verifications: c.dummy_verifications.load(Ordering::Relaxed),
            granted: c.granted.load(Ordering::Relaxed),
            reloads: self.inner.cache.loads(),
        }
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl SecurityModule for UsersModule {
    fn name(&self) -> &str {
        "users"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let db = self.inner.cache.get();
        let inner = self.inner.clone();
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                match db {
                    // Read again at each check: this version only says the
                    // file is usable now.
                    Ok(_) => inner.dialog(session).await,
                    Err(e) => session.error(file_error_code(&e)),
                }
            });
        NO_ERROR
    }

    fn end(&self, hport: HPort) -> u32 {
        self.inner.tasks.end(hport)
    }
}

/// What one try ended with.
enum Try {
    /// Granted by this version of the users file.
    Granted(String, Arc<UsersDb>),
    Denied,
}

impl Inner {
    async fn dialog(&self, session: Session) {
        if !self.banner.is_empty() && session.send(&self.banner).is_err() {
            return;
        }
        let mut input = LineInput::new(DEFAULT_MAX_LINE, self.opts.prompt_timeout_secs);
        let mut last_name = String::new();
        for _ in 0..self.opts.tries {
            match self.one_try(&session, &mut input, &mut last_name).await {
                Ok(Try::Granted(user, db)) => {
                    let domain = db
                        .get(&user)
                        .and_then(|u| u.domain.clone())
                        .unwrap_or_else(|| self.opts.domain.clone());
                    self.counters.granted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(hport = %session.dialog.hport(), user = %user, "login granted");
                    session.succeed(&user, &domain);
                    return;
                }
                Ok(Try::Denied) => {
                    if session.send(LOGIN_INCORRECT).is_err() {
                        return;
                    }
                }
                Err(Stop::Code(code)) => {
                    session.error(code);
                    return;
                }
                Err(Stop::Read(e)) => {
                    if session.on_read_error(&e) {
                        // A line too long: FAILURE with the name so far.
                        if let ReadError::TooLong(part) = &e
                            && last_name.is_empty()
                        {
                            last_name = String::from_utf8_lossy(part).into_owned();
                        }
                        let _ = session.send(INPUT_TOO_LONG);
                        session.fail(&last_name, &self.opts.domain);
                    }
                    return;
                }
            }
        }
        tracing::info!(hport = %session.dialog.hport(), user = %last_name, "login refused");
        session.fail(&last_name, &self.opts.domain);
    }

    /// One Username/Password pair. `last_name` is set to the name typed
    /// (cleared first, so a too-long name is reported from its first bytes).
    async fn one_try(
        &self,
        session: &Session,
        input: &mut LineInput,
        last_name: &mut String,
    ) -> Result<Try, Stop> {
        last_name.clear();
        let name = input.prompt(session, USERNAME_PROMPT, true).await?;
        *last_name = String::from_utf8_lossy(&name).into_owned();
        if name.is_empty() {
            return Ok(Try::Denied);
        }
        let password = input.prompt(session, PASSWORD_PROMPT, false).await?;
        let (check, against, db) = self.verify(name, password).await?;
        match against {
            CheckedAgainst::User => &self.counters.verifications,
            CheckedAgainst::Dummy => &self.counters.dummy_verifications,
        }
        .fetch_add(1, Ordering::Relaxed);
        Ok(match check {
            Check::Granted => Try::Granted(last_name.clone(), db),
            Check::Denied => Try::Denied,
        })
    }

    /// Runs the argon2 check on the blocking pool, within the concurrency
    /// limit, against the users file as it is when the check runs (not as
    /// it was at Begin: a user disabled, removed or given a new password
    /// since then is judged by the file as it is now). Also returns the
    /// version that judged.
    async fn verify(
        &self,
        name: Zeroizing<Vec<u8>>,
        password: Zeroizing<Vec<u8>>,
    ) -> Result<(Check, CheckedAgainst, Arc<UsersDb>), Stop> {
        let cache = self.cache.clone();
        self.opts
            .verifiers
            .run(move || {
                let db = cache.get()?;
                let (check, against) = db.check(&name, &password);
                Ok((check, against, db))
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password verifier failed");
                Stop::Code(ERROR_VERIFIER_FAILED)
            })?
            // Logged by the cache.
            .map_err(|e: Arc<UserFileError>| Stop::Code(file_error_code(&e)))
    }
}

/// The ERROR code of a users file that cannot be used.
fn file_error_code(e: &UserFileError) -> u32 {
    if e.is_unreadable() {
        ERROR_USERS_FILE_UNREADABLE
    } else {
        ERROR_USERS_FILE_INVALID
    }
}

/// Why a try could not finish.
enum Stop {
    /// Complete ERROR with this code.
    Code(u32),
    /// A line could not be read.
    Read(ReadError),
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Self {
        Stop::Read(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use securityhost::{Config, Port, SystemClock};

    /// An idle dialog is one task whose state is this future (plus the
    /// reader's line buffer and the last Receive's bytes on the heap): keep
    /// it small, for the 16 KiB-per-idle-dialog target.
    #[test]
    fn an_idle_dialog_is_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = std::env::temp_dir();
        let m = UsersModule::new(
            rt.handle().clone(),
            UsersOptions {
                users_file: dir.join("none.toml"),
                ..UsersOptions::default()
            },
        )
        .unwrap();
        let port = Port::new(
            HPort(9),
            Config::default(),
            "t",
            Arc::new(SystemClock),
            Box::new(|| {}),
        );
        let args = BeginArgs {
            hport: HPort(9),
            send_buffer_size: 1024,
            recv_buffer_size: 1024,
            host: port.host(),
        };
        let fut = m.inner.dialog(Session::detached(&args));
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 4096, "dialog future is {size} bytes");
    }
}
