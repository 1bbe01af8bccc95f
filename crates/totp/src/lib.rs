#![forbid(unsafe_code)]
//! One-time passwords: RFC 4226 HOTP and RFC 6238 TOTP.
//!
//! This crate is pure: it has no clock, no randomness and no storage. The
//! caller passes the current Unix time, generates secrets with its own random
//! source, and persists the last used time step per user.
//!
//! * [`hotp`] computes an HOTP value (HMAC + dynamic truncation, RFC 4226 §5.3).
//! * [`Totp`] holds a user's parameters and computes / verifies codes
//!   (RFC 6238 §4), with a window of ±N steps and **replay protection**:
//!   [`Totp::verify`] refuses any code whose step is not strictly newer than
//!   the last step the caller recorded for that user. The caller must persist
//!   the returned step (atomically, before granting access) so that a code
//!   cannot be used twice, also across a restart.
//! * [`base32_encode`] / [`base32_decode`]: RFC 4648 base32 (no padding on
//!   output; padding and lower case accepted on input).
//! * [`Totp::otpauth_uri`]: the `otpauth://totp/...` URI understood by
//!   authenticator apps (Google Authenticator key URI format).

mod base32;
mod hmac;
mod uri;

pub use base32::{Base32Error, base32_decode, base32_encode};

use std::fmt;

/// The HMAC hash function used by HOTP/TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (RFC 4226, the default and what most apps support).
    #[default]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238).
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs (`SHA1`, `SHA256`, `SHA512`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses a name as written in `otpauth://` URIs or configuration
    /// (`SHA1`, `sha-256`, ...; case-insensitive, the dash is optional).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        let n: String = name
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match n.as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn mac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => hmac::hmac::<sha1::Sha1>(64, key, msg),
            Algorithm::Sha256 => hmac::hmac::<sha2::Sha256>(64, key, msg),
            Algorithm::Sha512 => hmac::hmac::<sha2::Sha512>(128, key, msg),
        }
    }
}

/// Number of decimal digits in a code: 6, 7 or 8 (RFC 4226 §5.3 requires at
/// least 6; 8 is the largest that RFC 6238's reference code produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the usual choice.
    pub const SIX: Digits = Digits(6);
    /// Eight digits.
    pub const EIGHT: Digits = Digits(8);

    /// Checked constructor: `None` unless `n` is 6, 7 or 8.
    pub fn new(n: u8) -> Option<Digits> {
        (6..=8).contains(&n).then_some(Digits(n))
    }

    /// The number of digits.
    pub fn get(self) -> u8 {
        self.0
    }

    fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

impl Default for Digits {
    fn default() -> Self {
        Digits::SIX
    }
}

/// Computes an HOTP value (RFC 4226 §5.3): HMAC(secret, counter as 8
/// big-endian octets), dynamic truncation to 31 bits, modulo 10^digits.
///
/// Returns the number; format it with [`format_code`] to keep leading zeros.
pub fn hotp(algorithm: Algorithm, secret: &[u8], counter: u64, digits: Digits) -> u32 {
    let mac = algorithm.mac(secret, &counter.to_be_bytes());
    // Dynamic truncation (RFC 4226 §5.4): the low 4 bits of the last octet
    // select an offset; every MAC here is at least 20 octets, so offset + 3
    // (at most 18) is always in range. `get` keeps this panic-free anyway.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = match mac.get(offset..offset + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    };
    (word & 0x7fff_ffff) % digits.modulus()
}

/// Formats a code with leading zeros to exactly `digits` characters.
pub fn format_code(code: u32, digits: Digits) -> String {
    format!("{:0width$}", code, width = usize::from(digits.get()))
}

/// Why [`Totp::verify`] refused a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The input is not exactly `digits` ASCII decimal digits (malformed
    /// input from the user).
    Malformed,
    /// The code matches no step inside the window.
    Mismatch,
    /// The code matches a step inside the window, but that step is not newer
    /// than the last step already used by this user: a replay.
    Replayed {
        /// The step the code belongs to.
        step: u64,
    },
    /// `unix_time` is before the configured T0 (caller misuse or a broken clock).
    BeforeEpoch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed => {
                f.write_str("malformed one-time code (wrong length or not digits)")
            }
            VerifyError::Mismatch => f.write_str("one-time code does not match"),
            VerifyError::Replayed { step } => {
                write!(f, "one-time code of step {step} was already used (replay)")
            }
            VerifyError::BeforeEpoch => f.write_str("current time is before the TOTP epoch T0"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A user's TOTP parameters (RFC 6238).
///
/// `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    secret: Vec<u8>,
    algorithm: Algorithm,
    digits: Digits,
    period: u64,
    t0: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("t0", &self.t0)
            .finish()
    }
}

impl Totp {
    /// Default parameters: SHA-1, 6 digits, 30 s period, T0 = 0.
    pub fn new(secret: Vec<u8>) -> Totp {
        Totp {
            secret,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: 30,
            t0: 0,
        }
    }

    /// Sets the hash algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Totp {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits.
    pub fn with_digits(mut self, digits: Digits) -> Totp {
        self.digits = digits;
        self
    }

    /// Sets the step length in seconds (`X` in RFC 6238). A period of 0 is
    /// refused (`None`), because it has no meaning.
    pub fn with_period(mut self, period: u64) -> Option<Totp> {
        if period == 0 {
            return None;
        }
        self.period = period;
        Some(self)
    }

    /// Sets T0, the Unix time at which step 0 starts.
    pub fn with_t0(mut self, t0: u64) -> Totp {
        self.t0 = t0;
        self
    }

    /// The shared secret.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The number of digits.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The step length in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The time step counter `T = floor((unix_time - T0) / X)`, or `None`
    /// before T0.
    pub fn step_at(&self, unix_time: u64) -> Option<u64> {
        unix_time.checked_sub(self.t0).map(|d| d / self.period)
    }

    /// The code of a given step, as a number.
    pub fn code_for_step(&self, step: u64) -> u32 {
        hotp(self.algorithm, &self.secret, step, self.digits)
    }

    /// The code valid at `unix_time`, formatted with leading zeros, or
    /// `None` before T0.
    pub fn code_at(&self, unix_time: u64) -> Option<String> {
        self.step_at(unix_time)
            .map(|s| format_code(self.code_for_step(s), self.digits))
    }

    /// Verifies `code` at `unix_time`, accepting the steps `T-window ..= T+window`.
    ///
    /// `last_used_step` is the step of the last code this user successfully
    /// used (`None` if never). A code whose step is `<= last_used_step` is
    /// refused with [`VerifyError::Replayed`]. On success the matched step is
    /// returned: **the caller must persist it as the new `last_used_step`**
    /// before granting access; that is what makes a code single-use, also
    /// across restarts.
    ///
    /// Every candidate in the window is computed and compared in constant
    /// time; if several steps match (a chance collision), the oldest one newer
    /// than `last_used_step` is returned.
    pub fn verify(
        &self,
        code: &str,
        unix_time: u64,
        window: u64,
        last_used_step: Option<u64>,
    ) -> Result<u64, VerifyError> {
        let d = usize::from(self.digits.get());
        let bytes = code.as_bytes();
        if bytes.len() != d || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(VerifyError::Malformed);
        }
        let now = self.step_at(unix_time).ok_or(VerifyError::BeforeEpoch)?;
        let first = now.saturating_sub(window);
        let last = now.saturating_add(window);
        let mut accepted: Option<u64> = None;
        let mut replayed: Option<u64> = None;
        let mut step = first;
        loop {
            let expected = format_code(self.code_for_step(step), self.digits);
            if ct_eq(expected.as_bytes(), bytes) {
                let fresh = last_used_step.is_none_or(|used| step > used);
                if fresh {
                    if accepted.is_none() {
                        accepted = Some(step);
                    }
                } else {
                    replayed = Some(step);
                }
            }
            if step == last {
                break;
            }
            step += 1;
        }
        match (accepted, replayed) {
            (Some(s), _) => Ok(s),
            (None, Some(step)) => Err(VerifyError::Replayed { step }),
            (None, None) => Err(VerifyError::Mismatch),
        }
    }

    /// Builds the `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=...&digits=...&period=...`
    /// URI for enrolment in an authenticator app. Issuer and account are
    /// percent-encoded (RFC 3986 unreserved characters kept); the secret is
    /// base32 without padding.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        uri::otpauth_uri(
            issuer,
            account,
            &base32_encode(&self.secret),
            self.algorithm.name(),
            self.digits.get(),
            self.period,
        )
    }
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}
