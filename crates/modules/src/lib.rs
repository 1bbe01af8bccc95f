//! dialgate's built-in security modules, behind the
//! [`securityhost::SecurityModule`] trait:
//!
//! - [`users::UsersModule`]: `Username:` / `Password:` against a TOML file of
//!   argon2id hashes ([`userdb`] has the file formats and the API behind
//!   `dialgate user add/remove/list`, including the PPP secrets file);
//! - [`pin::PinModule`]: one shared PIN for one configured user, cheap, for
//!   benchmarks and simple deployments;
//! - [`line::LineReader`]: the pure dialog line reader both use (CR, LF or
//!   CR LF, one byte at a time, echo per prompt, bounded memory).
//!
//! Modules run each dialog as a tokio task on a runtime handle they are
//! built with: Begin (called off the reactor) only spawns it and returns.
//! End before Complete stops the task and returns the non-zero
//! [`codes::END_ABORTED`]; End after Complete forgets the port. The
//! module-defined error codes are in [`codes`].

pub mod chain;
pub mod codes;
pub mod exec;
pub mod filecache;
mod libpam;
pub mod line;
pub mod pam;
pub mod pin;
pub mod ppp_local;
pub mod radius_module;
pub mod radius_ppp;
mod session;
pub mod totp_module;
pub mod userdb;
pub mod users;
pub mod verifiers;

use securityhost::consts::{DNLEN, UNLEN};

pub use chain::{BeginForUser, ChainConfigError, ChainModule, ChainStep, previous_user};
pub use codes::{
    END_ABORTED, ERROR_USERS_FILE_INVALID, ERROR_USERS_FILE_UNREADABLE, ERROR_VERIFIER_FAILED,
};
pub use exec::{
    ERROR_EXEC_BAD_EXIT, ERROR_EXEC_BAD_VERDICT, ERROR_EXEC_NO_VERDICT, ERROR_EXEC_SPAWN_FAILED,
    EnvVars, ExecConfigError, ExecModule, ExecOptions,
};
pub use line::{Fed, LineEvent, LineReader};
pub use pam::{PamConfigError, PamModule, PamOptions, PamStats};
pub use pin::{PinModule, PinOptions};
pub use ppp_local::{LocalPpp, LocalPppStats};
pub use radius_module::{
    ERROR_RADIUS_BAD_USER_NAME, ERROR_RADIUS_CLIENT_FAILED, ERROR_RADIUS_NO_ANSWER,
    ERROR_RADIUS_TOO_MANY_CHALLENGES, RadiusConfigError, RadiusModule, RadiusOptions, RadiusStats,
    RequireMessageAuthenticator,
};
pub use radius_ppp::{
    AcctCounters, AcctSession, NasPortType, RadiusPpp, RadiusPppOptions, TerminateCause,
};
pub use totp_module::{
    EnrollOptions, Enrollment, TotpConfigError, TotpModule, TotpOptions, TotpStats, TotpStoreError,
};
pub use userdb::{
    AddOptions, AddOutcome, Argon2Params, SecretsDb, UserFileError, UserInfo, UsersDb, add_user,
    list_users, nt_password_hash, remove_user, set_disabled,
};
pub use users::{UsersModule, UsersOptions, UsersStats};
pub use verifiers::{VerifierFailed, VerifierStats, Verifiers};

/// The longest banner or prompt a module accepts (bytes).
pub const MAX_BANNER: usize = 16 * 1024;

/// A module setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `tries` is 0.
    #[error("tries must be at least 1")]
    NoTries,
    /// The domain is longer than `DNLEN` (15) bytes or has a NUL.
    #[error("domain {0:?} is longer than 15 bytes or has a NUL")]
    BadDomain(String),
    /// The banner is longer than [`crate::MAX_BANNER`].
    #[error("banner longer than {MAX_BANNER} bytes")]
    BannerTooLong,
    /// `max_concurrent_verifications` is 0.
    #[error("max_concurrent_verifications must be at least 1")]
    NoVerifiers,
    /// The pin module's user name is empty, longer than `UNLEN` or has a NUL.
    #[error("user {0:?} is empty, longer than 256 bytes or has a NUL")]
    BadUser(String),
    /// The pin module's PIN is empty, too long for a line, or has control
    /// characters the line reader drops.
    #[error("the PIN must be 1 to 256 bytes without control characters")]
    BadPin,
    /// A prompt longer than [`crate::MAX_BANNER`].
    #[error("prompt longer than {MAX_BANNER} bytes")]
    PromptTooLong,
}

pub(crate) fn check_domain(domain: &str) -> Result<(), ConfigError> {
    if domain.len() > DNLEN || domain.contains('\0') {
        return Err(ConfigError::BadDomain(domain.to_string()));
    }
    Ok(())
}

pub(crate) fn check_user(user: &str) -> Result<(), ConfigError> {
    if user.is_empty() || user.len() > UNLEN || user.contains('\0') {
        return Err(ConfigError::BadUser(user.to_string()));
    }
    Ok(())
}
