//! PPP credentials checked against the local users backend: the users file
//! (PAP: argon2id) and the PPP secrets file (CHAP-MD5: the cleartext
//! secret; MS-CHAPv2: the NT hash), for the server's PPP session driver.
//!
//! - Both files are read through a [`FileCache`] each: parsed once per
//!   change (see [`crate::filecache`]), so a burst of PPP logins does not
//!   re-read and re-parse them, and `dialgate user add` needs no restart
//!   (the next authentication sees the change).
//! - Every check runs on the blocking pool under a [`Verifiers`] permit,
//!   the limiter the dialog modules use ([`Verifiers::default`] is the
//!   process's one), so PPP and dialog logins together never run more
//!   argon2 computations at once than it allows. CHAP checks hold a permit
//!   too (a reload of the users file makes an argon2 dummy hash).
//! - Fail closed: a users or secrets file that cannot be read or is
//!   invalid rejects every login with [`UNAVAILABLE_TEXT`] (logged once per
//!   error, see [`crate::filecache`]), never falls back to an older
//!   version. Unknown, disabled and wrong-password users get the same
//!   [`REJECT_TEXT`]; an unknown PAP user costs the same argon2 work.

use std::path::PathBuf;
use std::sync::Arc;

use ppp::auth::{Credentials, Verdict};

use crate::filecache::FileCache;
use crate::userdb::{Check, SecretsDb, UsersDb};
use crate::verifiers::Verifiers;

/// The text of every Reject for wrong credentials.
pub const REJECT_TEXT: &str = "Authentication failed";

/// The text of a Reject when the users or secrets file is unusable.
pub const UNAVAILABLE_TEXT: &str = "Authentication service unavailable";

/// Counters of a [`LocalPpp`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalPppStats {
    /// Reads and parses of the users file.
    pub users_loads: u64,
    /// Reads and parses of the secrets file.
    pub secrets_loads: u64,
}

/// PPP verification against the users and secrets files. Share it
/// between the sessions of a group (`Arc<LocalPpp>`).
pub struct LocalPpp {
    users: FileCache<UsersDb>,
    secrets: FileCache<SecretsDb>,
    verifiers: Verifiers,
}

impl std::fmt::Debug for LocalPpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPpp")
            .field("users_file", &self.users.path())
            .field("secrets_file", &self.secrets.path())
            .field("verifiers", &self.verifiers)
            .finish()
    }
}

impl LocalPpp {
    /// Checks against `users_file` and `secrets_file` (neither is read
    /// here) under `verifiers`.
    pub fn new(users_file: PathBuf, secrets_file: PathBuf, verifiers: Verifiers) -> LocalPpp {
        LocalPpp {
            users: FileCache::new(users_file, "users file", UsersDb::load),
            secrets: FileCache::new(secrets_file, "PPP secrets file", SecretsDb::load),
            verifiers,
        }
    }

    /// The limiter the checks run under.
    pub fn verifiers(&self) -> &Verifiers {
        &self.verifiers
    }

    /// The counters so far.
    pub fn stats(&self) -> LocalPppStats {
        LocalPppStats {
            users_loads: self.users.loads(),
            secrets_loads: self.secrets.loads(),
        }
    }

    /// Judges `creds`: the verdict for the PPP authenticator. Waits for a
    /// permit of the limiter, then runs on the blocking pool. Dropping the
    /// future (the request went stale) abandons the answer, but a check
    /// already running keeps its permit until it returns.
    pub async fn verify(self: &Arc<Self>, creds: Credentials) -> Verdict {
        let this = self.clone();
        match self
            .verifiers
            .run(move || this.verify_blocking(&creds))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "PPP password check failed: rejected");
                Verdict::reject(UNAVAILABLE_TEXT)
            }
        }
    }

    /// [`LocalPpp::verify`] on the calling thread, without the limiter:
    /// blocking and, for PAP, CPU- and memory-heavy.
    pub fn verify_blocking(&self, creds: &Credentials) -> Verdict {
        let Ok(name) = std::str::from_utf8(creds.user()) else {
            return Verdict::reject(REJECT_TEXT);
        };
        let users = match self.users.get() {
            Ok(db) => db,
            // Logged by the cache.
            Err(_) => return Verdict::reject(UNAVAILABLE_TEXT),
        };
        match creds {
            Credentials::Pap { password, .. } => match users.check(creds.user(), password) {
                (Check::Granted, _) => Verdict::Accept {
                    authenticator_response: None,
                },
                (Check::Denied, _) => Verdict::reject(REJECT_TEXT),
            },
            Credentials::ChapMd5 { .. } | Credentials::MsChapV2 { .. } => {
                let enabled = users.get(name).is_some_and(|u| !u.disabled);
                let secrets = match self.secrets.get() {
                    Ok(s) => s,
                    Err(_) => return Verdict::reject(UNAVAILABLE_TEXT),
                };
                let entry = secrets.get(name).filter(|_| enabled);
                match creds {
                    Credentials::ChapMd5 { .. } => {
                        match entry.and_then(|e| e.chap_secret.as_ref()) {
                            Some(secret) => creds.verify_password(secret, REJECT_TEXT),
                            None => Verdict::reject(REJECT_TEXT),
                        }
                    }
                    _ => {
                        // Unknown users are checked against a hash nobody
                        // has, so they take the same path.
                        let nt = entry.map_or([0u8; 16], |e| *e.nt_hash);
                        let v = creds.verify_nt_hash(&nt, REJECT_TEXT);
                        if entry.is_none() {
                            Verdict::reject(REJECT_TEXT)
                        } else {
                            v
                        }
                    }
                }
            }
        }
    }
}
