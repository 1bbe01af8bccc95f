//! The users file (argon2id hashes) and the PPP secrets file, and the API
//! behind `dialgate user add/remove/list`.
//!
//! Users file (TOML; mode 0600 when created, its mode kept on rewrite):
//!
//! ```toml
//! [users.alice]
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"   # required
//! domain = "LAB"      # optional: the Domain of alice's verdicts
//! disabled = true     # optional: alice cannot log in (fails like a wrong password)
//! ```
//!
//! PPP secrets file (TOML; always mode 0600, only the server may read it):
//!
//! ```toml
//! [users.alice]
//! nt_hash = "44ebba8d5312b8d611474411f56989ae"  # MD4 of the UTF-16LE password (MS-CHAPv2)
//! chap_secret = "clientPass"                    # only when CHAP-MD5 is allowed for alice
//! ```
//!
//! Unknown keys are errors in both files (a typo must not silently disable
//! a setting). Both files are rewritten whole: written to a temporary file
//! in the same directory, synced, renamed over the old one, and the
//! directory synced; a `<users file>.lock` file serialises concurrent
//! writers. Comments in the files are not kept by a rewrite.
//!
//! The two files cannot change in one atomic step; the order makes a crash
//! in between harmless: `add_user` writes the secrets first (a secret
//! without a user logs no one in), `remove_user` removes the user first.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use md4::{Digest, Md4};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use securityhost::consts::{DNLEN, UNLEN};

use crate::line::DEFAULT_MAX_LINE;

/// The largest users or secrets file read (a guard against reading a huge
/// file by mistake): 16 MiB.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// The longest password accepted: what the dialog's line reader takes.
pub const MAX_PASSWORD_LEN: usize = DEFAULT_MAX_LINE;

/// Argon2 limits for hashes read from a users file, so that a bad entry
/// cannot make every login allocate gigabytes: memory in KiB.
pub const MAX_M_COST_KIB: u32 = 1 << 20;
/// Argon2 iterations limit for hashes read from a users file.
pub const MAX_T_COST: u32 = 64;
/// Argon2 parallelism limit for hashes read from a users file.
pub const MAX_P_COST: u32 = 16;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Argon2Params {
    /// Memory in KiB (`m`).
    pub m_cost_kib: u32,
    /// Iterations (`t`).
    pub t_cost: u32,
    /// Parallelism (`p`).
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// The argon2 crate's recommended defaults (OWASP): 19 MiB, 2
    /// iterations, 1 lane.
    fn default() -> Self {
        Argon2Params {
            m_cost_kib: argon2::Params::DEFAULT_M_COST,
            t_cost: argon2::Params::DEFAULT_T_COST,
            p_cost: argon2::Params::DEFAULT_P_COST,
        }
    }
}

impl Argon2Params {
    fn to_params(self) -> Result<argon2::Params, UserFileError> {
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| UserFileError::BadParams(e.to_string()))
    }

    /// The parameters of a parsed argon2id hash.
    fn of_hash(hash: &PasswordHash) -> Option<Argon2Params> {
        let p = argon2::Params::try_from(hash).ok()?;
        Some(Argon2Params {
            m_cost_kib: p.m_cost(),
            t_cost: p.t_cost(),
            p_cost: p.p_cost(),
        })
    }
}

/// What went wrong with a users or secrets file, or a request to change one.
#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    /// Our misuse or the operator's input: a user name that cannot be used.
    #[error("bad user name {name:?}: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operator's input: a password the dialog could not accept.
    #[error("bad password: {0}")]
    BadPassword(&'static str),
    /// The operator's input: a domain longer than `DNLEN` or with control
    /// characters.
    #[error("bad domain {0:?}: at most 15 bytes, no control characters")]
    BadDomain(String),
    /// Argon2 parameters out of range.
    #[error("bad argon2 parameters: {0}")]
    BadParams(String),
    /// The file could not be read or written.
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
    /// The secrets file can be read by others than its owner.
    #[error("{path}: mode {mode:o} lets others read PPP secrets; chmod 600 it")]
    InsecureMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Hashing failed (the system's random source or argon2 itself).
    #[error("hashing failed: {0}")]
    Hash(String),
}

impl UserFileError {
    fn io(path: &Path, source: io::Error) -> UserFileError {
        UserFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the file could not be read at all (as opposed to read and
    /// found invalid).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            UserFileError::Io { .. } | UserFileError::TooLarge { .. }
        )
    }
}

/// Checks a user name for the users file: not empty, at most `UNLEN` (256)
/// bytes, no control characters, no whitespace, no `:`.
pub fn validate_user_name(name: &str) -> Result<(), UserFileError> {
    let bad = |reason| {
        Err(UserFileError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > UNLEN {
        return bad("longer than 256 bytes (UNLEN)");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("spaces");
    }
    if name.contains(':') {
        return bad("':'");
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), UserFileError> {
    if domain.len() > DNLEN || domain.chars().any(char::is_control) {
        return Err(UserFileError::BadDomain(domain.to_string()));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), UserFileError> {
    if password.is_empty() {
        return Err(UserFileError::BadPassword("empty"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(UserFileError::BadPassword(
            "longer than 256 bytes, the longest answer the dialog takes",
        ));
    }
    if password.chars().any(|c| c.is_ascii_control()) {
        return Err(UserFileError::BadPassword(
            "control characters cannot be typed in the dialog",
        ));
    }
    Ok(())
}

/// `NtPasswordHash` of RFC 2759 section 8.3: MD4 over the password in
/// UTF-16LE. MS-CHAPv2 needs it; it is a password equivalent, so it lives in
/// the secrets file only.
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut utf16: Zeroizing<Vec<u8>> = Zeroizing::new(
        password
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
    );
    let mut h = Md4::new();
    h.update(utf16.as_slice());
    utf16.zeroize();
    h.finalize().into()
}

/// Hashes `password` with argon2id, a fresh random salt and `params`, as a
/// PHC string.
pub fn hash_password(password: &[u8], params: Argon2Params) -> Result<String, UserFileError> {
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_params()?);
    a.hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| UserFileError::Hash(e.to_string()))
}

// ----- the users file ------------------------------------------------------

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UsersFileRaw {
    #[serde(default)]
    users: BTreeMap<String, UserEntryRaw>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct UserEntryRaw {
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    disabled: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One user of a loaded users file. `Debug` leaves the hash out.
#[derive(Clone)]
pub struct UserRecord {
    hash: PasswordHash,
    params: Argon2Params,
    /// The user's Domain, overriding the module's.
    pub domain: Option<String>,
    /// The user cannot log in.
    pub disabled: bool,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("hash", &"<redacted>")
            .field("params", &self.params)
            .field("domain", &self.domain)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl UserRecord {
    /// The argon2 parameters of the user's hash.
    pub fn params(&self) -> Argon2Params {
        self.params
    }
}

/// A loaded, validated users file, plus the dummy hash that unknown users
/// are verified against so that they take as long as known ones.
#[derive(Debug)]
pub struct UsersDb {
    users: HashMap<String, UserRecord>,
    dummy: PasswordHash,
}

/// The result of a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The password is right and the user is enabled.
    Granted,
    /// Anything else: wrong password, unknown user, or disabled user. The
    /// three take the same argon2 work and are not told apart to callers.
    Denied,
}

/// Which hash a check ran against (for counters and tests; never shown to
/// the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckedAgainst {
    /// The user's own hash.
    User,
    /// The dummy hash (unknown user).
    Dummy,
}

impl UsersDb {
    /// Reads and validates the users file at `path`.
    pub fn load(path: &Path) -> Result<UsersDb, UserFileError> {
        let text = read_limited(path)?;
        UsersDb::parse(&text, path)
    }

    /// Parses and validates users-file text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<UsersDb, UserFileError> {
        let raw = parse_users(text, path)?;
        let mut users = HashMap::with_capacity(raw.users.len());
        let mut counts: HashMap<Argon2Params, usize> = HashMap::new();
        for (name, e) in raw.users {
            let invalid = |reason: String| UserFileError::Invalid {
                path: path.to_path_buf(),
                user: name.clone(),
                reason,
            };
            validate_user_name(&name).map_err(|e| invalid(e.to_string()))?;
            if let Some(d) = &e.domain {
                validate_domain(d).map_err(|e| invalid(e.to_string()))?;
            }
            let (hash, params) = parse_hash(&e.hash).map_err(invalid)?;
            *counts.entry(params).or_default() += 1;
            users.insert(
                name,
                UserRecord {
                    hash,
                    params,
                    domain: e.domain,
                    disabled: e.disabled,
                },
            );
        }
        // The dummy uses the parameters most users have, so that an unknown
        // name costs what a typical known one does.
        let params = counts
            .into_iter()
            .max_by_key(|(p, n)| (*n, std::cmp::Reverse((p.m_cost_kib, p.t_cost, p.p_cost))))
            .map_or_else(Argon2Params::default, |(p, _)| p);
        let dummy = dummy_hash(params)?;
        Ok(UsersDb { users, dummy })
    }

    /// The user named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&UserRecord> {
        self.users.get(name)
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The argon2 parameters of the dummy hash.
    pub fn dummy_params(&self) -> Argon2Params {
        Argon2Params::of_hash(&self.dummy).unwrap_or_default()
    }

    /// Checks `password` for the (typed) user name `name`: CPU-heavy (one
    /// argon2id computation whatever the name), run it off the reactor.
    /// Unknown names are checked against the dummy hash; disabled users
    /// against their own hash, and then denied.
    pub fn check(&self, name: &[u8], password: &[u8]) -> (Check, CheckedAgainst) {
        let user = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.users.get(n));
        let (hash, against) = match user {
            Some(u) => (&u.hash, CheckedAgainst::User),
            None => (&self.dummy, CheckedAgainst::Dummy),
        };
        let ok = Argon2::default().verify_password(password, hash).is_ok();
        let granted = ok && user.is_some_and(|u| !u.disabled);
        (
            if granted {
                Check::Granted
            } else {
                Check::Denied
            },
            against,
        )
    }
}

fn parse_users(text: &str, path: &Path) -> Result<UsersFileRaw, UserFileError> {
    toml::from_str(text).map_err(|e| UserFileError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_hash(s: &str) -> Result<(PasswordHash, Argon2Params), String> {
    let hash = PasswordHash::new(s).map_err(|e| format!("hash is not a PHC string: {e}"))?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(format!(
            "hash algorithm {} is not argon2id",
            hash.algorithm.as_str()
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("hash lacks its salt or output".into());
    }
    if let Some(v) = hash.version
        && Version::try_from(v).is_err()
    {
        return Err(format!("argon2 version {v} is not supported"));
    }
    let params = Argon2Params::of_hash(&hash).ok_or("hash parameters are invalid")?;
    if params.m_cost_kib > MAX_M_COST_KIB
        || params.t_cost > MAX_T_COST
        || params.p_cost > MAX_P_COST
    {
        return Err(format!(
            "hash parameters m={},t={},p={} exceed the limits m={MAX_M_COST_KIB},t={MAX_T_COST},p={MAX_P_COST}",
            params.m_cost_kib, params.t_cost, params.p_cost
        ));
    }
    Ok((hash, params))
}

/// A hash nobody's password matches (random salt, random output), with
/// `params`: verifying against it costs what verifying a real one does.
fn dummy_hash(params: Argon2Params) -> Result<PasswordHash, UserFileError> {
    let p = params.to_params()?;
    let mut salt = [0u8; 16];
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    rand::fill(&mut salt[..]);
    rand::fill(&mut out[..]);
    let herr = |e: argon2::password_hash::phc::Error| UserFileError::Hash(e.to_string());
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&p).map_err(|e| UserFileError::Hash(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(herr)?),
        hash: Some(Output::new(&out).map_err(herr)?),
    })
}

/// A user as `dialgate user list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The name.
    pub name: String,
    /// The user's own Domain, if set.
    pub domain: Option<String>,
    /// The user cannot log in.
    pub disabled: bool,
    /// The argon2 parameters of the hash.
    pub params: Argon2Params,
}

/// The users of the users file, sorted by name. A missing file is an empty
/// list; an invalid one is an error.
pub fn list_users(users_path: &Path) -> Result<Vec<UserInfo>, UserFileError> {
    let Some(raw) = read_users_raw(users_path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(raw.users.len());
    for (name, e) in raw.users {
        let params = parse_hash(&e.hash)
            .map_err(|reason| UserFileError::Invalid {
                path: users_path.to_path_buf(),
                user: name.clone(),
                reason,
            })?
            .1;
        out.push(UserInfo {
            name,
            domain: e.domain,
            disabled: e.disabled,
            params,
        });
    }
    Ok(out)
}

// ----- the secrets file ----------------------------------------------------

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretsFileRaw {
    #[serde(default)]
    users: BTreeMap<String, SecretEntryRaw>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretEntryRaw {
    nt_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chap_secret: Option<String>,
}

impl Drop for SecretEntryRaw {
    fn drop(&mut self) {
        self.nt_hash.zeroize();
        self.chap_secret.zeroize();
    }
}

/// One user's PPP secrets. Zeroed when dropped.
pub struct UserSecrets {
    /// `NtPasswordHash` (MD4 of the UTF-16LE password), for MS-CHAPv2.
    pub nt_hash: Zeroizing<[u8; 16]>,
    /// The cleartext password, only for users allowed CHAP-MD5.
    pub chap_secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for UserSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSecrets")
            .field("chap_md5_allowed", &self.chap_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// A loaded secrets file.
#[derive(Debug, Default)]
pub struct SecretsDb {
    users: HashMap<String, UserSecrets>,
}

impl SecretsDb {
    /// Reads the secrets file at `path`; refuses it when its mode lets
    /// others than the owner read it.
    pub fn load(path: &Path) -> Result<SecretsDb, UserFileError> {
        let meta = fs::metadata(path).map_err(|e| UserFileError::io(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(UserFileError::InsecureMode {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = read_limited(path)?;
        let raw: SecretsFileRaw = toml::from_str(&text).map_err(|e| UserFileError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut users = HashMap::with_capacity(raw.users.len());
        for (name, e) in &raw.users {
            let invalid = |reason: &str| UserFileError::Invalid {
                path: path.to_path_buf(),
                user: name.clone(),
                reason: reason.to_string(),
            };
            let mut nt = Zeroizing::new([0u8; 16]);
            hex::decode_to_slice(&e.nt_hash, nt.as_mut_slice())
                .map_err(|_| invalid("nt_hash is not 32 hex digits"))?;
            users.insert(
                name.clone(),
                UserSecrets {
                    nt_hash: nt,
                    chap_secret: e.chap_secret.clone().map(Zeroizing::new),
                },
            );
        }
        Ok(SecretsDb { users })
    }

    /// The secrets of the user named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&UserSecrets> {
        self.users.get(name)
    }

    /// How many users have secrets.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user has secrets.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

// ----- changing the files --------------------------------------------------

/// How `add_user` hashes and what it stores.
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    /// Also store the cleartext password in the secrets file, so PPP may
    /// authenticate the user with CHAP-MD5. Off: only the NT hash is kept
    /// (and an existing cleartext secret is removed).
    pub allow_chap_md5: bool,
    /// Argon2id cost of the new hash.
    pub argon2: Argon2Params,
    /// The user's Domain; `None` keeps the current one (none for a new user).
    pub domain: Option<String>,
}

/// What `add_user` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new user.
    Created,
    /// An existing user's password (and options) replaced; a disabled user
    /// stays disabled.
    Updated,
}

/// Creates or updates `name` with `password` in both files (see the module
/// documentation for the formats and the write order). Refuses bad names
/// (empty, control characters, spaces, `:`, longer than 256 bytes), empty
/// or untypeable passwords, and an existing file it cannot parse.
pub fn add_user(
    users_path: &Path,
    secrets_path: &Path,
    name: &str,
    password: &str,
    opts: &AddOptions,
) -> Result<AddOutcome, UserFileError> {
    validate_user_name(name)?;
    validate_password(password)?;
    if let Some(d) = &opts.domain {
        validate_domain(d)?;
    }
    // Hash before taking the lock: it is the slow part.
    let hash = hash_password(password.as_bytes(), opts.argon2)?;
    let nt = Zeroizing::new(nt_password_hash(password));

    let _lock = lock_files(users_path)?;
    let mut users = read_users_raw(users_path)?.unwrap_or_default();
    let mut secrets = read_secrets_raw(secrets_path)?.unwrap_or_default();

    secrets.users.insert(
        name.to_string(),
        SecretEntryRaw {
            nt_hash: hex::encode(nt.as_slice()),
            chap_secret: opts.allow_chap_md5.then(|| password.to_string()),
        },
    );
    let outcome = match users.users.get_mut(name) {
        Some(e) => {
            e.hash = hash;
            if opts.domain.is_some() {
                e.domain.clone_from(&opts.domain);
            }
            AddOutcome::Updated
        }
        None => {
            users.users.insert(
                name.to_string(),
                UserEntryRaw {
                    hash,
                    domain: opts.domain.clone(),
                    disabled: false,
                },
            );
            AddOutcome::Created
        }
    };
    write_secrets(secrets_path, &secrets)?;
    write_users(users_path, &users)?;
    Ok(outcome)
}

/// Removes `name` from both files. Returns false when it was in neither.
pub fn remove_user(
    users_path: &Path,
    secrets_path: &Path,
    name: &str,
) -> Result<bool, UserFileError> {
    let _lock = lock_files(users_path)?;
    let mut found = false;
    if let Some(mut users) = read_users_raw(users_path)?
        && users.users.remove(name).is_some()
    {
        write_users(users_path, &users)?;
        found = true;
    }
    if let Some(mut secrets) = read_secrets_raw(secrets_path)?
        && secrets.users.remove(name).is_some()
    {
        write_secrets(secrets_path, &secrets)?;
        found = true;
    }
    Ok(found)
}

/// Disables or re-enables `name`. Returns false when there is no such user.
pub fn set_disabled(users_path: &Path, name: &str, disabled: bool) -> Result<bool, UserFileError> {
    let _lock = lock_files(users_path)?;
    let Some(mut users) = read_users_raw(users_path)? else {
        return Ok(false);
    };
    let Some(e) = users.users.get_mut(name) else {
        return Ok(false);
    };
    e.disabled = disabled;
    write_users(users_path, &users)?;
    Ok(true)
}

fn read_limited(path: &Path) -> Result<Zeroizing<String>, UserFileError> {
    let f = File::open(path).map_err(|e| UserFileError::io(path, e))?;
    let mut text = Zeroizing::new(String::new());
    let n = f
        .take(MAX_FILE_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| UserFileError::io(path, e))?;
    if n as u64 > MAX_FILE_SIZE {
        return Err(UserFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

fn read_optional(path: &Path) -> Result<Option<Zeroizing<String>>, UserFileError> {
    match read_limited(path) {
        Ok(t) => Ok(Some(t)),
        Err(UserFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn read_users_raw(path: &Path) -> Result<Option<UsersFileRaw>, UserFileError> {
    read_optional(path)?
        .map(|t| parse_users(&t, path))
        .transpose()
}

fn read_secrets_raw(path: &Path) -> Result<Option<SecretsFileRaw>, UserFileError> {
    read_optional(path)?
        .map(|t| {
            toml::from_str(&t).map_err(|e| UserFileError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })
        .transpose()
}

const USERS_HEADER: &str = "# dialgate users: argon2id password hashes (PHC strings).\n\
# Managed by `dialgate user add` / `dialgate user remove`; comments are not kept.\n\
# Per user: hash = \"$argon2id$...\", optional domain = \"NAME\", disabled = true.\n\n";

const SECRETS_HEADER: &str = "# dialgate PPP secrets: password equivalents. Mode 0600, readable by the server only.\n\
# Managed by `dialgate user add`; comments are not kept.\n\n";

fn write_users(path: &Path, raw: &UsersFileRaw) -> Result<(), UserFileError> {
    let body = toml::to_string(raw).map_err(|e| UserFileError::Hash(e.to_string()))?;
    let mut text = Zeroizing::new(String::with_capacity(USERS_HEADER.len() + body.len()));
    text.push_str(USERS_HEADER);
    text.push_str(&body);
    // Keep the operator's mode on rewrite (say 0640 for a group); 0600 new.
    let mode = fs::metadata(path).map_or(0o600, |m| m.mode() & 0o777);
    write_atomic(path, text.as_bytes(), mode)
}

fn write_secrets(path: &Path, raw: &SecretsFileRaw) -> Result<(), UserFileError> {
    let body =
        Zeroizing::new(toml::to_string(raw).map_err(|e| UserFileError::Hash(e.to_string()))?);
    let mut text = Zeroizing::new(String::with_capacity(SECRETS_HEADER.len() + body.len()));
    text.push_str(SECRETS_HEADER);
    text.push_str(&body);
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Writes `data` to a new temporary file next to `path` (created with
/// `mode`, never readable by others in between), syncs it, renames it over
/// `path`, and syncs the directory.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), UserFileError> {
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| UserFileError::io(path, io::Error::other("not a file path")))?;
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
            .mode(mode)
            .open(&tmp)?;
        // The umask may have cleared bits of `mode`; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(UserFileError::io(path, e));
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An exclusive lock on `<users file>.lock`, held while both files are read,
/// changed and written.
fn lock_files(users_path: &Path) -> Result<nix::fcntl::Flock<File>, UserFileError> {
    let mut name = users_path.as_os_str().to_os_string();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| UserFileError::io(&lock_path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| UserFileError::io(&lock_path, io::Error::from(errno)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2759 section 9.2: NtPasswordHash of "clientPass".
    #[test]
    fn nt_hash_matches_rfc2759_vector() {
        assert_eq!(
            hex::encode(nt_password_hash("clientPass")),
            "44ebba8d5312b8d611474411f56989ae"
        );
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a b", "a:b", "a\tb", "a\u{7f}", "a\0", "a\u{85}b"] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_user_name(&"x".repeat(256)).is_ok());
        assert!(validate_user_name(&"x".repeat(257)).is_err());
        assert!(validate_user_name("élodie@example.org").is_ok());
    }

    #[test]
    fn passwords_are_checked() {
        assert!(validate_password("").is_err());
        assert!(validate_password("a\rb").is_err());
        assert!(validate_password(&"p".repeat(257)).is_err());
        assert!(validate_password("correct horse").is_ok());
    }

    #[test]
    fn hashes_must_be_argon2id_within_limits() {
        assert!(parse_hash("not a hash").is_err());
        assert!(
            parse_hash("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err()
        );
        let big = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(parse_hash(big).unwrap_err().contains("exceed"));
        let cheap = Argon2Params {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        };
        let h = hash_password(b"pw", cheap).unwrap();
        assert_eq!(parse_hash(&h).unwrap().1, cheap);
    }

    #[test]
    fn hole_13_debug_of_a_user_record_never_prints_the_hash() {
        let cheap = Argon2Params {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        };
        let h = hash_password(b"pw", cheap).unwrap();
        let (hash, params) = parse_hash(&h).unwrap();
        let rec = UserRecord {
            hash,
            params,
            domain: None,
            disabled: false,
        };
        let shown = format!("{rec:?}");
        let tail = h.rsplit('$').next().unwrap();
        assert!(!shown.contains(tail), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn default_params_are_within_the_load_limits() {
        let h = hash_password(b"pw", Argon2Params::default()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let (_, p) = parse_hash(&h).unwrap();
        assert_eq!(p, Argon2Params::default());
    }

    #[test]
    fn dummy_never_matches_and_uses_the_most_common_params() {
        let cheap = Argon2Params {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        };
        let text = format!(
            "[users.a]\nhash = \"{}\"\n[users.b]\nhash = \"{}\"\n",
            hash_password(b"x", cheap).unwrap(),
            hash_password(b"y", cheap).unwrap()
        );
        let db = UsersDb::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(db.dummy_params(), cheap);
        assert_eq!(db.check(b"a", b"x"), (Check::Granted, CheckedAgainst::User));
        assert_eq!(db.check(b"a", b"y"), (Check::Denied, CheckedAgainst::User));
        assert_eq!(
            db.check(b"zz", b"x"),
            (Check::Denied, CheckedAgainst::Dummy)
        );
        assert_eq!(
            db.check(b"\xff", b""),
            (Check::Denied, CheckedAgainst::Dummy)
        );
    }

    #[test]
    fn unknown_keys_and_bad_entries_are_errors_naming_the_culprit() {
        let e =
            UsersDb::parse("[users.a]\nhash = \"x\"\nhsah = 1\n", Path::new("u.toml")).unwrap_err();
        assert!(matches!(e, UserFileError::Syntax { .. }), "{e}");
        let e = UsersDb::parse("[users.a]\nhash = \"x\"\n", Path::new("u.toml")).unwrap_err();
        assert!(e.to_string().contains("user \"a\""), "{e}");
        let e = UsersDb::parse("[users.\"a b\"]\nhash = \"x\"\n", Path::new("u.toml")).unwrap_err();
        assert!(e.to_string().contains("spaces"), "{e}");
    }
}
