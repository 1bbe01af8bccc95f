//! The `totp` security module (RFC 6238 time-based one-time codes, RFC 4226
//! HOTP underneath, computed by the `totp` crate), its per-user secrets
//! store, and the enrolment API behind `dialgate user totp NAME`.
//!
//! The dialog: a banner, `Username: ` (echoed; skipped when the user name
//! comes from a previous module of a chain, see
//! [`TotpModule::begin_for_user`]), then `Code: ` — or `PIN+code: ` when the
//! user has a PIN (token-card style: the PIN typed directly followed by the
//! digits) — read with echo off.
//!
//! - A code is accepted in the steps `T-window ..= T+window` (default ±1).
//! - **Replay protection**: the step of the last accepted code is written to
//!   the store (temp file, fsync, rename, directory fsync, under the store's
//!   lock) **before** SUCCESS is sent, and a code whose step is not newer is
//!   refused: a code is single-use for its whole window, also across a
//!   restart. If the step cannot be written the login is refused with ERROR
//!   [`ERROR_TOTP_STORE_WRITE`].
//! - Unknown users get the same prompts and the same work: the prompt the
//!   majority of the store's users get, a code checked against a random dummy
//!   secret, and (in PIN mode) an argon2id check against a dummy hash with
//!   the store's most common parameters.
//! - A wrong code, a wrong PIN, an unknown user and a replay all print the
//!   same `Login incorrect`; after `tries` failures FAILURE with the name as
//!   typed. SUCCESS carries the user's name and [`TotpOptions::domain`].
//! - Timeouts, hang-ups, lines too long and End behave as in the `users`
//!   module.
//!
//! Store file (TOML, always mode 0600; a file others can read is refused):
//!
//! ```toml
//! [users.alice]
//! secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32, at least 16 bytes (RFC 4226 R6)
//! digits = 6                                  # optional, 6 to 8, default 6
//! period = 30                                 # optional, seconds, default 30
//! algorithm = "SHA1"                          # optional: SHA1, SHA256, SHA512
//! pin_hash = "$argon2id$v=19$..."             # optional: the PIN, argon2id
//! last_step = 58976543                        # written by the module: last used step
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use securityhost::consts::NO_ERROR;
use securityhost::{BeginArgs, HPort, SecurityModule};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use totp::{Algorithm, Digits, Totp, base32_decode, base32_encode};
use zeroize::{Zeroize, Zeroizing};

use crate::codes::MODULE_CODE_BASE;
use crate::line::DEFAULT_MAX_LINE;
use crate::session::{DialogTasks, LineInput, ReadError, Session, crlf_text};
use crate::userdb::{Argon2Params, MAX_FILE_SIZE, hash_password, validate_user_name};
use crate::users::{INPUT_TOO_LONG, LOGIN_INCORRECT, USERNAME_PROMPT};
use crate::verifiers::Verifiers;
use crate::{ConfigError, MAX_BANNER, check_domain};

/// ERROR verdict: the TOTP store could not be read (missing, unreadable,
/// too large). Logged with the path and the OS error. Decimal 536871425.
pub const ERROR_TOTP_STORE_UNREADABLE: u32 = MODULE_CODE_BASE | 0x201;
/// ERROR verdict: the TOTP store is not valid (TOML syntax, unknown keys, a
/// bad secret, digits or period, a PIN hash that is not argon2id, a mode
/// that lets others read it). Logged with the culprit. Decimal 536871426.
pub const ERROR_TOTP_STORE_INVALID: u32 = MODULE_CODE_BASE | 0x202;
/// ERROR verdict: a right code could not be recorded as used (the store
/// could not be locked or rewritten), so it was not granted. Decimal
/// 536871427.
pub const ERROR_TOTP_STORE_WRITE: u32 = MODULE_CODE_BASE | 0x203;
/// ERROR verdict: the check could not run (the verifier task failed or the
/// runtime is shutting down). Decimal 536871428.
pub const ERROR_TOTP_VERIFIER_FAILED: u32 = MODULE_CODE_BASE | 0x204;
/// ERROR verdict: the module is configured with `user_from_previous` but was
/// begun without a user name (a configuration error: it must run after
/// another module in a chain). Decimal 536871429.
pub const ERROR_TOTP_NO_PREVIOUS_USER: u32 = MODULE_CODE_BASE | 0x205;

/// The prompt for a code alone.
pub const CODE_PROMPT: &[u8] = b"Code: ";
/// The prompt for a PIN directly followed by the code.
pub const PIN_CODE_PROMPT: &[u8] = b"PIN+code: ";

/// The largest accepted window (steps each side).
pub const MAX_WINDOW: u64 = 10;
/// The longest accepted period, in seconds.
pub const MAX_PERIOD: u64 = 3600;
/// The shortest secret accepted, in bytes (RFC 4226 section 4, R6: 128 bits).
pub const MIN_SECRET_LEN: usize = 16;
/// The longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 128;
/// The length of secrets [`enroll`] generates (RFC 4226 recommends 160 bits).
pub const ENROLL_SECRET_LEN: usize = 20;
/// The longest PIN, so that PIN and 8 digits fit in one dialog line.
pub const MAX_PIN_LEN: usize = DEFAULT_MAX_LINE - 8;

/// A time source: seconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Settings of a [`TotpModule`].
#[derive(Clone)]
pub struct TotpOptions {
    /// The store file (TOML, see the module documentation). Default
    /// `totp.toml`.
    pub store_file: PathBuf,
    /// Text sent first; `\n` line ends are sent as CR LF. Empty (default):
    /// none.
    pub banner: String,
    /// Code answers allowed per call (at least 1). Default 3.
    pub tries: u32,
    /// How long each prompt waits, in seconds; 0 = no limit. Default 60.
    pub prompt_timeout_secs: u32,
    /// The Domain of verdicts (at most 15 bytes). Default empty.
    pub domain: String,
    /// Steps accepted on each side of the current one (0 to
    /// [`MAX_WINDOW`]). Default 1.
    pub window: u64,
    /// True when the module runs after another one in a chain and takes the
    /// user name from it ([`TotpModule::begin_for_user`]) instead of asking.
    /// A plain Begin then completes ERROR [`ERROR_TOTP_NO_PREVIOUS_USER`].
    /// Default false.
    pub user_from_previous: bool,
    /// The argon2 limiter for PIN checks. Default: [`Verifiers::process`],
    /// the one the whole process shares.
    pub verifiers: Verifiers,
    /// The clock codes are checked against; `None` (default): the system
    /// clock. For tests.
    pub now: Option<Clock>,
}

impl Default for TotpOptions {
    fn default() -> Self {
        TotpOptions {
            store_file: PathBuf::from("totp.toml"),
            banner: String::new(),
            tries: 3,
            prompt_timeout_secs: 60,
            domain: String::new(),
            window: 1,
            user_from_previous: false,
            verifiers: Verifiers::process(),
            now: None,
        }
    }
}

impl std::fmt::Debug for TotpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpOptions")
            .field("store_file", &self.store_file)
            .field("tries", &self.tries)
            .field("prompt_timeout_secs", &self.prompt_timeout_secs)
            .field("domain", &self.domain)
            .field("window", &self.window)
            .field("user_from_previous", &self.user_from_previous)
            .field("verifiers", &self.verifiers)
            .field("now", &self.now.as_ref().map(|_| "custom"))
            .finish_non_exhaustive()
    }
}

/// A [`TotpOptions`] setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpConfigError {
    /// A setting every module shares.
    #[error(transparent)]
    Common(#[from] ConfigError),
    /// `window` is larger than [`MAX_WINDOW`].
    #[error("window {0} is larger than {MAX_WINDOW} steps")]
    WindowTooLarge(u64),
}

/// What went wrong with the TOTP store or an enrolment request.
#[derive(Debug, thiserror::Error)]
pub enum TotpStoreError {
    /// The operator's input: a user name that cannot be used.
    #[error("bad user name {name:?}: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operator's input: an enrolment option out of range.
    #[error("bad enrolment option: {0}")]
    BadOption(String),
    /// The file could not be read, locked or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_SIZE`].
    #[error("{path}: larger than {MAX_FILE_SIZE} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// One entry of the file is invalid.
    #[error("{path}: user {user:?}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The entry's name.
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file can be read or written by others than its owner.
    #[error("{path}: mode {mode:o} lets others see TOTP secrets; chmod 600 it")]
    InsecureMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Hashing the PIN or serialising the file failed.
    #[error("internal failure: {0}")]
    Internal(String),
    /// The URI does not fit in a QR code.
    #[error("cannot render a QR code: {0}")]
    Qr(String),
}

impl TotpStoreError {
    fn io(path: &Path, source: io::Error) -> TotpStoreError {
        TotpStoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the file could not be read at all (as opposed to read and
    /// found invalid).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            TotpStoreError::Io { .. } | TotpStoreError::TooLarge { .. }
        )
    }
}

// ----- the store file ------------------------------------------------------

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreRaw {
    #[serde(default)]
    users: BTreeMap<String, EntryRaw>,
}

fn default_digits() -> u8 {
    6
}

fn default_period() -> u64 {
    30
}

fn is_default_digits(d: &u8) -> bool {
    *d == 6
}

fn is_default_period(p: &u64) -> bool {
    *p == 30
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct EntryRaw {
    secret: String,
    #[serde(default = "default_digits", skip_serializing_if = "is_default_digits")]
    digits: u8,
    #[serde(default = "default_period", skip_serializing_if = "is_default_period")]
    period: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_step: Option<u64>,
}

impl Drop for EntryRaw {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// One user's parsed entry.
struct Entry {
    totp: Totp,
    /// The secret as written, to notice a re-enrolment between the check
    /// and the recording of the step.
    secret_b32: Zeroizing<String>,
    pin_hash: Option<String>,
    last_step: Option<u64>,
}

/// A parsed snapshot of the store.
struct Store {
    users: HashMap<String, Entry>,
    /// What unknown users look like: the majority's PIN use, digits and
    /// period, and the most common PIN hash parameters.
    dummy_pin: bool,
    dummy_params: Argon2Params,
    dummy_digits: Digits,
    dummy_period: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // The Totp's own buffer is not zeroized by the totp crate; overwrite
        // what we hold.
        self.secret_b32.zeroize();
    }
}

fn argon2_params_of(hash: &PasswordHash) -> Option<Argon2Params> {
    let p = argon2::Params::try_from(hash).ok()?;
    Some(Argon2Params {
        m_cost_kib: p.m_cost(),
        t_cost: p.t_cost(),
        p_cost: p.p_cost(),
    })
}

fn most_common<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: HashMap<T, usize> = HashMap::new();
    let mut order = Vec::new();
    for it in items {
        let c = counts.entry(it).or_insert(0);
        if *c == 0 {
            order.push(it);
        }
        *c += 1;
    }
    // Ties go to the first seen (the file is a BTreeMap: deterministic).
    let mut best: Option<(T, usize)> = None;
    for it in order {
        let c = counts[&it];
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((it, c));
        }
    }
    best.map(|(t, _)| t)
}

fn parse_entry(name: &str, raw: &EntryRaw) -> Result<(Entry, Option<Argon2Params>), String> {
    validate_user_name(name).map_err(|e| e.to_string())?;
    let secret = Zeroizing::new(
        base32_decode(&raw.secret).map_err(|e| format!("secret is not base32: {e}"))?,
    );
    if secret.len() < MIN_SECRET_LEN || secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "secret is {} bytes; {MIN_SECRET_LEN} to {MAX_SECRET_LEN} are accepted",
            secret.len()
        ));
    }
    let digits =
        Digits::new(raw.digits).ok_or_else(|| format!("digits {} is not 6 to 8", raw.digits))?;
    if raw.period == 0 || raw.period > MAX_PERIOD {
        return Err(format!("period {} is not 1 to {MAX_PERIOD}", raw.period));
    }
    let algorithm = match &raw.algorithm {
        None => Algorithm::Sha1,
        Some(a) => Algorithm::from_name(a).ok_or_else(|| format!("unknown algorithm {a:?}"))?,
    };
    let mut params = None;
    if let Some(h) = &raw.pin_hash {
        let hash =
            PasswordHash::new(h).map_err(|e| format!("pin_hash is not a PHC string: {e}"))?;
        if hash.algorithm != argon2::ARGON2ID_IDENT {
            return Err("pin_hash is not argon2id".into());
        }
        let p = argon2_params_of(&hash).ok_or("pin_hash parameters are invalid")?;
        if p.m_cost_kib > crate::userdb::MAX_M_COST_KIB
            || p.t_cost > crate::userdb::MAX_T_COST
            || p.p_cost > crate::userdb::MAX_P_COST
        {
            return Err("pin_hash parameters exceed the limits".into());
        }
        params = Some(p);
    }
    let totp = Totp::new(secret.to_vec())
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_period(raw.period)
        .ok_or("period is 0")?;
    Ok((
        Entry {
            totp,
            secret_b32: Zeroizing::new(raw.secret.clone()),
            pin_hash: raw.pin_hash.clone(),
            last_step: raw.last_step,
        },
        params,
    ))
}

impl Store {
    fn parse(raw: &StoreRaw, path: &Path) -> Result<Store, TotpStoreError> {
        let mut users = HashMap::with_capacity(raw.users.len());
        let mut params = Vec::new();
        for (name, e) in &raw.users {
            let (entry, p) = parse_entry(name, e).map_err(|reason| TotpStoreError::Invalid {
                path: path.to_path_buf(),
                user: name.clone(),
                reason,
            })?;
            params.extend(p);
            users.insert(name.clone(), entry);
        }
        let with_pin = users.values().filter(|e| e.pin_hash.is_some()).count();
        Ok(Store {
            dummy_pin: with_pin * 2 > users.len(),
            dummy_params: most_common(params.into_iter()).unwrap_or_default(),
            dummy_digits: most_common(users.values().map(|e| e.totp.digits()))
                .unwrap_or(Digits::SIX),
            dummy_period: most_common(users.values().map(|e| e.totp.period())).unwrap_or(30),
            users,
        })
    }

    fn load(path: &Path) -> Result<Store, TotpStoreError> {
        let raw = read_raw(path)?
            .ok_or_else(|| TotpStoreError::io(path, io::Error::from(io::ErrorKind::NotFound)))?;
        Store::parse(&raw, path)
    }
}

// ----- file helpers ----------------------------------------------------------
//
// These mirror the private helpers of `userdb` (bounded read, atomic
// rewrite, lock file); the report proposes making those `pub(crate)` so this
// module can call them instead.

fn read_raw(path: &Path) -> Result<Option<StoreRaw>, TotpStoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TotpStoreError::io(path, e)),
    };
    let mode = f
        .metadata()
        .map_err(|e| TotpStoreError::io(path, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(TotpStoreError::InsecureMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    let n = f
        .take(MAX_FILE_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| TotpStoreError::io(path, e))?;
    if n as u64 > MAX_FILE_SIZE {
        return Err(TotpStoreError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| TotpStoreError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

const STORE_HEADER: &str = "# dialgate TOTP secrets. Mode 0600, readable by the server only.\n\
# Managed by `dialgate user totp`; last_step is written at every login; comments are not kept.\n\n";

fn write_raw(path: &Path, raw: &StoreRaw) -> Result<(), TotpStoreError> {
    let body =
        Zeroizing::new(toml::to_string(raw).map_err(|e| TotpStoreError::Internal(e.to_string()))?);
    let mut text = Zeroizing::new(String::with_capacity(STORE_HEADER.len() + body.len()));
    text.push_str(STORE_HEADER);
    text.push_str(&body);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| TotpStoreError::io(path, io::Error::other("not a file path")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(TotpStoreError::io(path, e));
    }
    Ok(())
}

/// An exclusive lock on `<store>.lock`, held while the store is read,
/// changed and written.
fn lock_store(path: &Path) -> Result<nix::fcntl::Flock<File>, TotpStoreError> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| TotpStoreError::io(&lock_path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| TotpStoreError::io(&lock_path, io::Error::from(errno)))
}

/// Records `step` as `name`'s last used step, unless the entry changed
/// since it was checked (another login used that step or a later one, or
/// the user was re-enrolled or removed). Returns whether it was recorded:
/// only then may the login be granted.
fn record_step(
    path: &Path,
    name: &str,
    secret_b32: &str,
    step: u64,
) -> Result<bool, TotpStoreError> {
    let _lock = lock_store(path)?;
    let Some(mut raw) = read_raw(path)? else {
        return Ok(false);
    };
    let Some(e) = raw.users.get_mut(name) else {
        return Ok(false);
    };
    if !totp::ct_eq(e.secret.as_bytes(), secret_b32.as_bytes())
        || e.last_step.is_some_and(|used| used >= step)
    {
        return Ok(false);
    }
    e.last_step = Some(step);
    write_raw(path, &raw)?;
    Ok(true)
}

// ----- enrolment -------------------------------------------------------------

/// Settings of an enrolment.
#[derive(Clone, Copy)]
pub struct EnrollOptions<'a> {
    /// The issuer shown by authenticator apps (`otpauth://` label and
    /// `issuer` parameter). May be empty.
    pub issuer: &'a str,
    /// Digits per code: 6, 7 or 8.
    pub digits: u8,
    /// Step length in seconds (1 to [`MAX_PERIOD`]; apps mostly support
    /// only 30).
    pub period: u64,
    /// The PIN typed before the code, if any (1 to [`MAX_PIN_LEN`] bytes, no
    /// control characters). Stored as an argon2id hash only.
    pub pin: Option<&'a str>,
    /// The cost of the PIN hash.
    pub argon2: Argon2Params,
}

impl Default for EnrollOptions<'_> {
    fn default() -> Self {
        EnrollOptions {
            issuer: "dialgate",
            digits: 6,
            period: 30,
            pin: None,
            argon2: Argon2Params::default(),
        }
    }
}

impl std::fmt::Debug for EnrollOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollOptions")
            .field("issuer", &self.issuer)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("pin", &self.pin.map(|_| "<set>"))
            .field("argon2", &self.argon2)
            .finish()
    }
}

/// The result of an enrolment: what the user's authenticator needs.
pub struct Enrollment {
    /// The new secret, base32 without padding (for manual entry).
    pub secret_base32: Zeroizing<String>,
    /// The `otpauth://totp/...` URI (for a QR code, see [`qr_terminal`]).
    pub uri: Zeroizing<String>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment").finish_non_exhaustive()
    }
}

/// Enrols `name` in the store at `store_path` (created, mode 0600, if it
/// does not exist): a fresh random 20-byte secret, the digits, period and
/// optional PIN of `opts`. An existing enrolment of `name` is replaced (its
/// last used step is kept: it is a time, and keeping it can only refuse
/// codes already in the past). Returns the secret and the URI to show.
pub fn enroll(
    store_path: &Path,
    name: &str,
    opts: EnrollOptions<'_>,
) -> Result<Enrollment, TotpStoreError> {
    validate_user_name(name).map_err(|e| TotpStoreError::BadName {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    let digits = Digits::new(opts.digits).ok_or_else(|| {
        TotpStoreError::BadOption(format!("digits {} is not 6 to 8", opts.digits))
    })?;
    if opts.period == 0 || opts.period > MAX_PERIOD {
        return Err(TotpStoreError::BadOption(format!(
            "period {} is not 1 to {MAX_PERIOD}",
            opts.period
        )));
    }
    let pin_hash = match opts.pin {
        None => None,
        Some(pin) => {
            if pin.is_empty() || pin.len() > MAX_PIN_LEN || pin.chars().any(|c| c.is_control()) {
                return Err(TotpStoreError::BadOption(format!(
                    "the PIN must be 1 to {MAX_PIN_LEN} bytes without control characters"
                )));
            }
            Some(
                hash_password(pin.as_bytes(), opts.argon2)
                    .map_err(|e| TotpStoreError::Internal(e.to_string()))?,
            )
        }
    };
    let mut secret = Zeroizing::new([0u8; ENROLL_SECRET_LEN]);
    rand::fill(&mut secret[..]);
    let secret_base32 = Zeroizing::new(base32_encode(&secret[..]));
    let totp = Totp::new(secret.to_vec())
        .with_digits(digits)
        .with_period(opts.period)
        .ok_or_else(|| TotpStoreError::BadOption("period 0".into()))?;
    let uri = Zeroizing::new(totp.otpauth_uri(opts.issuer, name));

    let _lock = lock_store(store_path)?;
    let mut raw = read_raw(store_path)?.unwrap_or_default();
    let last_step = raw.users.get(name).and_then(|e| e.last_step);
    raw.users.insert(
        name.to_string(),
        EntryRaw {
            secret: secret_base32.to_string(),
            digits: opts.digits,
            period: opts.period,
            algorithm: None,
            pin_hash,
            last_step,
        },
    );
    // Refuse to write a file the module would refuse to read.
    Store::parse(&raw, store_path)?;
    write_raw(store_path, &raw)?;
    Ok(Enrollment { secret_base32, uri })
}

/// Removes `name` from the store. Returns whether it was there.
pub fn remove_totp_user(store_path: &Path, name: &str) -> Result<bool, TotpStoreError> {
    let _lock = lock_store(store_path)?;
    let Some(mut raw) = read_raw(store_path)? else {
        return Ok(false);
    };
    if raw.users.remove(name).is_none() {
        return Ok(false);
    }
    write_raw(store_path, &raw)?;
    Ok(true)
}

/// The user names enrolled in the store, sorted, with whether each has a
/// PIN. A missing store has none.
pub fn list_totp_users(store_path: &Path) -> Result<Vec<(String, bool)>, TotpStoreError> {
    Ok(read_raw(store_path)?
        .map(|raw| {
            raw.users
                .iter()
                .map(|(n, e)| (n.clone(), e.pin_hash.is_some()))
                .collect()
        })
        .unwrap_or_default())
}

/// Parses TOTP store text exactly as the `totp` module does when a dialog
/// loads the store (the TOML shape, then every entry: name, base32 secret
/// and its length, digits, period, algorithm, PIN hash and its argon2
/// limits); `path` only names the store in errors. Returns the enrolled
/// users, sorted, with whether each has a PIN. Reads no file: for the fuzz
/// target and for checking a store before installing it.
pub fn parse_store(text: &str, path: &Path) -> Result<Vec<(String, bool)>, TotpStoreError> {
    let raw: StoreRaw = toml::from_str(text).map_err(|e| TotpStoreError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let store = Store::parse(&raw, path)?;
    let mut users: Vec<(String, bool)> = store
        .users
        .iter()
        .map(|(n, e)| (n.clone(), e.pin_hash.is_some()))
        .collect();
    users.sort();
    Ok(users)
}

/// Renders `uri` as a QR code for a terminal: two modules per character
/// cell (Unicode half blocks), light on dark as most terminals are, with
/// the quiet zone. Lines end with `\n`.
pub fn qr_terminal(uri: &str) -> Result<String, TotpStoreError> {
    use qrcode::render::unicode::Dense1x2;
    let code =
        qrcode::QrCode::new(uri.as_bytes()).map_err(|e| TotpStoreError::Qr(e.to_string()))?;
    let mut s = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    s.push('\n');
    Ok(s)
}

// ----- the module ------------------------------------------------------------

/// Counters of a [`TotpModule`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TotpStats {
    /// Codes checked against a user's own secret.
    pub verifications: u64,
    /// Codes checked against the dummy secret (unknown user names).
    pub dummy_verifications: u64,
    /// PINs checked with argon2id (real or dummy hash).
    pub pin_checks: u64,
    /// Codes refused as replays.
    pub replays: u64,
    /// Logins granted.
    pub granted: u64,
}

#[derive(Default)]
struct Counters {
    verifications: AtomicU64,
    dummy_verifications: AtomicU64,
    pin_checks: AtomicU64,
    replays: AtomicU64,
    granted: AtomicU64,
}

/// The `totp` module. See the module documentation.
pub struct TotpModule {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    opts: TotpOptions,
    banner: Vec<u8>,
    tasks: DialogTasks,
    counters: Counters,
    /// The secret unknown users are checked against.
    dummy_secret: Zeroizing<Vec<u8>>,
    /// Dummy PIN hashes by parameters (made once per parameters seen).
    dummy_hashes: Mutex<HashMap<Argon2Params, Arc<str>>>,
}

impl std::fmt::Debug for TotpModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpModule")
            .field("store_file", &self.inner.opts.store_file)
            .field("dialogs", &self.inner.tasks.len())
            .finish_non_exhaustive()
    }
}

impl TotpModule {
    /// A module whose dialogs run as tasks on `handle`. The store is not
    /// read here but at each try (it changes at every login).
    pub fn new(handle: Handle, opts: TotpOptions) -> Result<TotpModule, TotpConfigError> {
        if opts.tries == 0 {
            return Err(ConfigError::NoTries.into());
        }
        if opts.banner.len() > MAX_BANNER {
            return Err(ConfigError::BannerTooLong.into());
        }
        check_domain(&opts.domain)?;
        if opts.window > MAX_WINDOW {
            return Err(TotpConfigError::WindowTooLarge(opts.window));
        }
        let mut dummy_secret = Zeroizing::new(vec![0u8; ENROLL_SECRET_LEN]);
        rand::fill(&mut dummy_secret[..]);
        Ok(TotpModule {
            inner: Arc::new(Inner {
                handle,
                banner: crlf_text(&opts.banner),
                tasks: DialogTasks::new(),
                counters: Counters::default(),
                dummy_secret,
                dummy_hashes: Mutex::new(HashMap::new()),
                opts,
            }),
        })
    }

    /// Begins a dialog for a user already named by a previous module of a
    /// chain: no `Username:` prompt, only the code (or PIN+code) for
    /// `user`, whose name every verdict carries. Same return value as
    /// [`SecurityModule::begin`].
    pub fn begin_for_user(&self, args: BeginArgs, user: &str) -> u32 {
        self.start(args, Some(user.to_string()))
    }

    /// Whether this module expects [`TotpModule::begin_for_user`] (option
    /// `user_from_previous`).
    pub fn user_from_previous(&self) -> bool {
        self.inner.opts.user_from_previous
    }

    /// The counters so far.
    pub fn stats(&self) -> TotpStats {
        let c = &self.inner.counters;
        TotpStats {
            verifications: c.verifications.load(Ordering::Relaxed),
            dummy_verifications: c.dummy_verifications.load(Ordering::Relaxed),
            pin_checks: c.pin_checks.load(Ordering::Relaxed),
            replays: c.replays.load(Ordering::Relaxed),
            granted: c.granted.load(Ordering::Relaxed),
        }
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }

    fn start(&self, args: BeginArgs, user: Option<String>) -> u32 {
        let inner = self.inner.clone();
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                if user.is_none() && inner.opts.user_from_previous {
                    tracing::error!(
                        "totp module with user_from_previous begun without a user: not in a chain?"
                    );
                    session.error(ERROR_TOTP_NO_PREVIOUS_USER);
                    return;
                }
                inner.dialog(session, user).await;
            });
        NO_ERROR
    }
}

impl SecurityModule for TotpModule {
    fn name(&self) -> &str {
        "totp"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        self.start(args, None)
    }

    fn end(&self, hport: HPort) -> u32 {
        self.inner.tasks.end(hport)
    }
}

/// What one try ended with.
enum Try {
    Granted(String),
    Denied,
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

/// The outcome of [`check`].
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// Right PIN (if any) and a fresh code of this step, for a known user.
    Fresh(u64),
    /// The code was right but already used.
    Replayed,
    /// Anything else.
    Wrong,
}

impl Inner {
    fn now(&self) -> u64 {
        match &self.opts.now {
            Some(f) => f(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    async fn dialog(&self, session: Session, preset: Option<String>) {
        if !self.banner.is_empty() && session.send(&self.banner).is_err() {
            return;
        }
        let mut input = LineInput::new(DEFAULT_MAX_LINE, self.opts.prompt_timeout_secs);
        let mut last_name = preset.clone().unwrap_or_default();
        for _ in 0..self.opts.tries {
            match self
                .one_try(&session, &mut input, preset.as_deref(), &mut last_name)
                .await
            {
                Ok(Try::Granted(user)) => {
                    self.counters.granted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(hport = %session.dialog.hport(), user = %user, "totp login granted");
                    session.succeed(&user, &self.opts.domain);
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
        tracing::info!(hport = %session.dialog.hport(), user = %last_name, "totp login refused");
        session.fail(&last_name, &self.opts.domain);
    }

    async fn one_try(
        &self,
        session: &Session,
        input: &mut LineInput,
        preset: Option<&str>,
        last_name: &mut String,
    ) -> Result<Try, Stop> {
        let name = match preset {
            Some(p) => p.to_string(),
            None => {
                last_name.clear();
                let name = input.prompt(session, USERNAME_PROMPT, true).await?;
                *last_name = String::from_utf8_lossy(&name).into_owned();
                if name.is_empty() {
                    return Ok(Try::Denied);
                }
                last_name.clone()
            }
        };
        let path = self.opts.store_file.clone();
        let store = tokio::task::spawn_blocking(move || Store::load(&path))
            .await
            .map_err(|_| Stop::Code(ERROR_TOTP_VERIFIER_FAILED))?
            .map_err(|e| {
                tracing::error!(error = %e, "TOTP store unusable: every login is refused");
                Stop::Code(if e.is_unreadable() {
                    ERROR_TOTP_STORE_UNREADABLE
                } else {
                    ERROR_TOTP_STORE_INVALID
                })
            })?;
        let store = Arc::new(store);
        let pin_mode = store
            .users
            .get(&name)
            .map_or(store.dummy_pin, |e| e.pin_hash.is_some());
        // Made (once per parameters) before the prompt whoever asks, so its
        // one-time cost tells nothing about the name typed.
        let dummy_hash = if store.dummy_pin {
            Some(self.dummy_hash(store.dummy_params).await?)
        } else {
            None
        };
        let prompt = if pin_mode {
            PIN_CODE_PROMPT
        } else {
            CODE_PROMPT
        };
        let answer = input.prompt(session, prompt, false).await?;
        let now = self.now();
        let window = self.opts.window;
        let dummy_secret = self.dummy_secret.clone();
        let st = store.clone();
        let n = name.clone();
        let checked = self
            .opts
            .verifiers
            .run(move || {
                check(
                    &st,
                    &n,
                    &answer,
                    now,
                    window,
                    &dummy_secret,
                    dummy_hash.as_deref(),
                )
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "TOTP verifier failed");
                Stop::Code(ERROR_TOTP_VERIFIER_FAILED)
            })?;
        let known = store.users.get(&name);
        match known {
            Some(_) => &self.counters.verifications,
            None => &self.counters.dummy_verifications,
        }
        .fetch_add(1, Ordering::Relaxed);
        if pin_mode {
            self.counters.pin_checks.fetch_add(1, Ordering::Relaxed);
        }
        match (checked, known) {
            (Checked::Fresh(step), Some(entry)) => {
                let path = self.opts.store_file.clone();
                let secret = entry.secret_b32.clone();
                let n = name.clone();
                let recorded =
                    tokio::task::spawn_blocking(move || record_step(&path, &n, &secret, step))
                        .await
                        .map_err(|_| Stop::Code(ERROR_TOTP_VERIFIER_FAILED))?
                        .map_err(|e| {
                            tracing::error!(error = %e, user = %name, "cannot record the used TOTP step: login refused");
                            Stop::Code(ERROR_TOTP_STORE_WRITE)
                        })?;
                if recorded {
                    Ok(Try::Granted(name))
                } else {
                    self.counters.replays.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(hport = %session.dialog.hport(), user = %name, "TOTP code used concurrently or user re-enrolled: refused");
                    Ok(Try::Denied)
                }
            }
            (Checked::Replayed, Some(_)) => {
                self.counters.replays.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(hport = %session.dialog.hport(), user = %name, "replayed TOTP code refused");
                Ok(Try::Denied)
            }
            _ => Ok(Try::Denied),
        }
    }

    /// The dummy PIN hash for `params`, made once (one argon2id hash, on the
    /// blocking pool).
    async fn dummy_hash(&self, params: Argon2Params) -> Result<Arc<str>, Stop> {
        if let Some(h) = self
            .dummy_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&params)
        {
            return Ok(h.clone());
        }
        let made = self
            .opts
            .verifiers
            .run(move || {
                let mut pw = Zeroizing::new([0u8; 32]);
                rand::fill(&mut pw[..]);
                hash_password(&pw[..], params)
            })
            .await
            .map_err(|_| Stop::Code(ERROR_TOTP_VERIFIER_FAILED))?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot make the dummy PIN hash");
                Stop::Code(ERROR_TOTP_VERIFIER_FAILED)
            })?;
        let h: Arc<str> = Arc::from(made.as_str());
        self.dummy_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(params, h.clone());
        Ok(h)
    }
}

/// Checks one answer for the (typed) user `name` at `now`: CPU-heavy when a
/// PIN is involved (argon2id), run it off the reactor. Unknown names are
/// checked against the dummy secret (and `dummy_hash` in PIN mode), with
/// the same digits and period as most users, and always come out
/// [`Checked::Wrong`].
fn check(
    store: &Store,
    name: &str,
    answer: &[u8],
    now: u64,
    window: u64,
    dummy_secret: &[u8],
    dummy_hash: Option<&str>,
) -> Checked {
    let entry = store.users.get(name);
    let dummy_totp;
    let (totp, pin_hash, last_step) = match entry {
        Some(e) => (&e.totp, e.pin_hash.as_deref(), e.last_step),
        None => {
            dummy_totp = Totp::new(dummy_secret.to_vec())
                .with_digits(store.dummy_digits)
                .with_period(store.dummy_period)
                .unwrap_or_else(|| Totp::new(dummy_secret.to_vec()));
            (&dummy_totp, dummy_hash, None)
        }
    };
    let d = usize::from(totp.digits().get());
    let (pin, code) = match pin_hash {
        // Token-card style: the code is the last `d` bytes, the PIN the rest.
        Some(_) => answer.split_at(answer.len().saturating_sub(d)),
        None => (&answer[..0], answer),
    };
    let pin_ok = match pin_hash {
        None => true,
        Some(h) => match PasswordHash::new(h) {
            Ok(hash) => Argon2::default().verify_password(pin, &hash).is_ok(),
            Err(_) => false,
        },
    };
    let code = std::str::from_utf8(code).unwrap_or("");
    let verified = totp.verify(code, now, window, last_step);
    if entry.is_none() || !pin_ok {
        return Checked::Wrong;
    }
    match verified {
        Ok(step) => Checked::Fresh(step),
        Err(totp::VerifyError::Replayed { .. }) => Checked::Replayed,
        Err(_) => Checked::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn store_with(dir: &Path, name: &str, pin: Option<&str>) -> (PathBuf, Totp) {
        let path = dir.join("totp.toml");
        let e = enroll(
            &path,
            name,
            EnrollOptions {
                pin,
                argon2: CHEAP,
                ..EnrollOptions::default()
            },
        )
        .unwrap();
        let secret = base32_decode(&e.secret_base32).unwrap();
        (path, Totp::new(secret))
    }

    #[test]
    fn check_splits_pin_and_code_and_refuses_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (path, t) = store_with(dir.path(), "alice", Some("12ab"));
        let store = Store::load(&path).unwrap();
        let now = 1_700_000_000;
        let code = t.code_at(now).unwrap();
        let dummy = [7u8; 20];
        let ok = format!("12ab{code}");
        let step = t.step_at(now).unwrap();
        assert_eq!(
            check(&store, "alice", ok.as_bytes(), now, 1, &dummy, None),
            Checked::Fresh(step)
        );
        let bad_pin = format!("12ac{code}");
        assert_eq!(
            check(&store, "alice", bad_pin.as_bytes(), now, 1, &dummy, None),
            Checked::Wrong
        );
        for short in [&b""[..], b"1", code.as_bytes()] {
            assert_eq!(
                check(&store, "alice", short, now, 1, &dummy, None),
                Checked::Wrong
            );
        }
        assert!(record_step(&path, "alice", &store.users["alice"].secret_b32, step).unwrap());
        // The same step again: refused by the recorder and by the check.
        assert!(!record_step(&path, "alice", &store.users["alice"].secret_b32, step).unwrap());
        let store = Store::load(&path).unwrap();
        assert_eq!(
            check(&store, "alice", ok.as_bytes(), now, 1, &dummy, None),
            Checked::Replayed
        );
    }

    #[test]
    fn unknown_users_never_pass_and_dummy_follows_the_majority() {
        let dir = tempfile::tempdir().unwrap();
        let (path, t) = store_with(dir.path(), "bob", None);
        let store = Store::load(&path).unwrap();
        assert!(!store.dummy_pin);
        let now = 1_700_000_000;
        let code = t.code_at(now).unwrap();
        // The dummy secret equal to bob's: still refused for another name.
        assert_eq!(
            check(&store, "mallory", code.as_bytes(), now, 1, t.secret(), None),
            Checked::Wrong
        );
        store_with(dir.path(), "carol", Some("1"));
        store_with(dir.path(), "dave", Some("2"));
        let store = Store::load(&path).unwrap();
        assert!(store.dummy_pin);
        assert_eq!(store.dummy_params, CHEAP);
    }

    #[test]
    fn invalid_entries_name_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        let cases = [
            ("[users.a]\nsecret = \"!!\"\n", "base32"),
            ("[users.a]\nsecret = \"JBSWY3DP\"\n", "bytes"),
            (
                "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\ndigits = 5\n",
                "digits",
            ),
            (
                "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\nperiod = 0\n",
                "period",
            ),
            (
                "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\nalgorithm = \"MD5\"\n",
                "algorithm",
            ),
            (
                "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\npin_hash = \"1234\"\n",
                "pin_hash",
            ),
            (
                "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\npin = \"1234\"\n",
                "unknown field",
            ),
        ];
        for (text, culprit) in cases {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let e = Store::load(&path).err().expect(text).to_string();
            assert!(e.contains(culprit), "{text:?}: {e}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Store::load(&path),
            Err(TotpStoreError::InsecureMode { mode: 0o644, .. })
        ));
    }

    #[test]
    fn parse_store_checks_entries_like_the_module() {
        let p = Path::new("/x/totp.toml");
        let ok = "[users.bob]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\n\
                  [users.al]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\ndigits = 8\n";
        assert_eq!(
            parse_store(ok, p).unwrap(),
            vec![("al".to_string(), false), ("bob".to_string(), false)]
        );
        let bad = "[users.a]\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\nperiod = 0\n";
        let e = parse_store(bad, p).unwrap_err().to_string();
        assert!(e.contains("/x/totp.toml") && e.contains("period"), "{e}");
        assert!(matches!(
            parse_store("users = 3", p),
            Err(TotpStoreError::Syntax { .. })
        ));
    }

    #[test]
    fn enroll_checks_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        for (name, o) in [
            ("", EnrollOptions::default()),
            ("a b", EnrollOptions::default()),
            (
                "a",
                EnrollOptions {
                    digits: 9,
                    ..EnrollOptions::default()
                },
            ),
            (
                "a",
                EnrollOptions {
                    period: 0,
                    ..EnrollOptions::default()
                },
            ),
            (
                "a",
                EnrollOptions {
                    pin: Some(""),
                    ..EnrollOptions::default()
                },
            ),
            (
                "a",
                EnrollOptions {
                    pin: Some("1\n2"),
                    ..EnrollOptions::default()
                },
            ),
        ] {
            assert!(enroll(&p, name, o).is_err(), "{name:?} {o:?}");
        }
        assert!(!p.exists());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the caller types: no panic, and a grant only for the
        /// exact PIN followed by the exact current code.
        #[test]
        fn arbitrary_answers(answer in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let (path, t) = store_with(dir.path(), "alice", Some("9"));
            let store = Store::load(&path).unwrap();
            let now = 1_700_000_000;
            let dummy = [1u8; 20];
            let r = check(&store, "alice", &answer, now, 1, &dummy, None);
            let right = format!("9{}", t.code_at(now).unwrap());
            if let Checked::Fresh(_) = r {
                // Neighbouring steps may share the code by chance; the PIN
                // and the length must be exact.
                proptest::prop_assert!(answer.len() == right.len() && answer[0] == b'9');
            }
            let r = check(&store, "nobody", &answer, now, 1, &dummy, None);
            proptest::prop_assert_eq!(r, Checked::Wrong);
        }
    }
}
