//! PPP authentication protocols: PAP, CHAP-MD5, MS-CHAPv2.
//!
//! Both roles, sans-IO: the [`Authenticator`] (server role: it challenges and
//! judges) and the [`Peer`] (client role: it proves its identity). Neither
//! does IO, reads a clock or draws random numbers: time comes in as
//! [`Instant`] arguments, challenge bytes come from a secret seed the host
//! draws from its CSPRNG (see [`AuthenticatorConfig::challenge_seed`]) or are
//! queued explicitly ([`Authenticator::queue_challenge`]).
//!
//! # Packets
//!
//! Every `payload` in and out of this module is the authentication packet
//! starting at its Code octet, **without** the PPP protocol field; the link
//! adds/strips the protocol number given by [`AuthProtocol::ppp_protocol`]
//! (0xc023 for PAP, 0xc223 for both CHAP variants).
//!
//! # Call order (both machine types)
//!
//! 1. Build with `new(protocol, config)`; optionally queue challenges.
//! 2. Call `start(now)` when the link enters the Authenticate phase (LCP
//!    Opened). Packets handed in before `start` are refused
//!    ([`AuthError::Unexpected`]).
//! 3. Then, in any order, as things happen: `handle_packet(now, payload)`
//!    for every received packet of [`AuthProtocol::ppp_protocol`],
//!    `handle_timeout(now)` when the instant from `poll_timeout()` has
//!    passed, and (authenticator only) `verified(now, request.id, verdict)`
//!    once the host has judged a [`Event::Verify`]. A verdict whose id is
//!    not the pending request's is refused ([`AuthError::StaleVerdict`]).
//! 4. After each of those calls, drain `poll_transmit()` (send each packet
//!    with the protocol number) and `poll_event()` until `None`, then re-read
//!    `poll_timeout()`.
//!
//! An `Err` from `handle_packet` means the packet was discarded and changed
//! nothing (RFC 1994 §4: silently discard); the error names why, for
//! counters and logs. The machines never panic on peer input.
//!
//! # Outcomes
//!
//! [`Event::Succeeded`] is emitted once, on the first successful
//! authentication. [`Event::Failed`] is emitted on each failure; it is final
//! for [`FailureReason::Timeout`], [`FailureReason::BadAuthenticatorResponse`]
//! and [`FailureReason::UserChanged`] and for an authenticator that has no
//! tries left. The link should then close LCP (RFC 1994 §4.2: the
//! authenticator SHOULD take the link down after a Failure).
//!
//! # MS-CHAPv2 failures and retries
//!
//! Our authenticator sends `E=691 R=<r> C=<challenge> V=3 M=<message>`
//! (or the 646/647/648/649 code a [`Verdict::Reject`] carries, with `R=0`).
//! `R=1` only when [`AuthenticatorConfig::max_attempts`] leaves another try
//! (pppd always sends `R=1` even when it then drops the link; we do not
//! promise a retry we will not honour). On a retry, `C=` is the next
//! challenge and we also send it in a fresh Challenge packet with the
//! Identifier plus one, so both RFC 2759 retrying peers (Response to `C=`
//! with the Identifier plus one) and peers that just answer Challenges
//! work. `V=3` is the password-change version of RFC 2759 §6; we do not
//! implement password change (Change-Password packets, code 7, are
//! discarded as malformed).
//!
//! # Lost packets
//!
//! * The authenticator retransmits its Challenge every `restart_interval`
//!   (default 3 s, at most `max_transmits` = 10 times), then fails with
//!   [`FailureReason::Timeout`].
//! * Our peer repeats its CHAP Response (same octets) and its PAP
//!   Authenticate-Request (next Identifier) on the same timer until a
//!   result comes. The authenticator answers a repeated Response/Request
//!   with the Success/Ack or Failure/Nak it already sent (RFC 1994 §4.1), and
//!   never asks the host twice about the same one.
//!
//! # Security notes
//!
//! * Responses, passwords and authenticator responses are compared in
//!   constant time ([`ct_eq`]); key material we derive is wiped after use
//!   and buffers holding secrets are wiped on drop (best effort, no
//!   `unsafe`). `Debug` output never shows secrets.
//! * MS-CHAPv2 is mutual: the [`Peer`] fails with
//!   [`FailureReason::BadAuthenticatorResponse`] unless the Success carries
//!   the `S=` value computed from our password.
//! * A periodic re-challenge must be answered under the name that first
//!   authenticated ([`FailureReason::UserChanged`] otherwise).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

mod chap;
pub mod crypto;
mod pap;
pub mod wire;

pub use crypto::{
    ct_eq, generate_authenticator_response, generate_nt_response, mschap_hash_user,
    nt_password_hash, verify_chap_md5, verify_nt_response,
};
pub use wire::{ChapPacket, MsChapV2Failure, MsChapV2Response, MsChapV2Success, PapPacket};

/// PPP protocol number of PAP (RFC 1334).
pub const PPP_PAP: u16 = 0xc023;
/// PPP protocol number of CHAP (RFC 1994), used by CHAP-MD5 and MS-CHAPv2.
pub const PPP_CHAP: u16 = 0xc223;
/// CHAP algorithm octet for MD5 (RFC 1994 §3).
pub const CHAP_ALGORITHM_MD5: u8 = 0x05;
/// CHAP algorithm octet for MS-CHAPv2 (RFC 2759 §2).
pub const CHAP_ALGORITHM_MSCHAPV2: u8 = 0x81;
/// CHAP algorithm octet for MS-CHAP (v1, RFC 2433), which we do not support.
pub const CHAP_ALGORITHM_MSCHAPV1: u8 = 0x80;

/// An authentication method, as negotiated by the LCP
/// Authentication-Protocol option (RFC 1661 §6.2, RFC 1994 §3, RFC 2759 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthProtocol {
    /// Password Authentication Protocol (RFC 1334), protocol 0xc023.
    Pap,
    /// CHAP with MD5 (RFC 1994), protocol 0xc223, algorithm 5.
    ChapMd5,
    /// Microsoft CHAP version 2 (RFC 2759), protocol 0xc223, algorithm 0x81.
    MsChapV2,
}

impl AuthProtocol {
    /// The PPP protocol number its packets travel under (0xc023 / 0xc223).
    #[must_use]
    pub const fn ppp_protocol(self) -> u16 {
        match self {
            AuthProtocol::Pap => PPP_PAP,
            AuthProtocol::ChapMd5 | AuthProtocol::MsChapV2 => PPP_CHAP,
        }
    }

    /// The data of the LCP Authentication-Protocol option (type 3), i.e.
    /// the octets after Type and Length: `c0 23` for PAP, `c2 23 05` for
    /// CHAP-MD5, `c2 23 81` for MS-CHAPv2.
    #[must_use]
    pub const fn lcp_option_data(self) -> &'static [u8] {
        match self {
            AuthProtocol::Pap => &[0xc0, 0x23],
            AuthProtocol::ChapMd5 => &[0xc2, 0x23, CHAP_ALGORITHM_MD5],
            AuthProtocol::MsChapV2 => &[0xc2, 0x23, CHAP_ALGORITHM_MSCHAPV2],
        }
    }

    /// Decodes the data of an LCP Authentication-Protocol option (the
    /// octets after Type and Length).
    ///
    /// Errors: [`AuthError::Malformed`] for data too short (or PAP with
    /// trailing data, CHAP with more than the algorithm octet);
    /// [`AuthError::Unsupported`] for a well-formed method we do not run
    /// (EAP, MS-CHAPv1, other CHAP algorithms, unknown protocols), which LCP
    /// should Nak with one of ours.
    pub fn from_lcp_option_data(data: &[u8]) -> Result<Self, AuthError> {
        let (proto, rest) = match data {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
            _ => {
                return Err(AuthError::Malformed(
                    "Authentication-Protocol option shorter than 2 octets",
                ));
            }
        };
        match (proto, rest) {
            (PPP_PAP, []) => Ok(AuthProtocol::Pap),
            (PPP_PAP, _) => Err(AuthError::Malformed(
                "PAP Authentication-Protocol option with data",
            )),
            (PPP_CHAP, [CHAP_ALGORITHM_MD5]) => Ok(AuthProtocol::ChapMd5),
            (PPP_CHAP, [CHAP_ALGORITHM_MSCHAPV2]) => Ok(AuthProtocol::MsChapV2),
            (PPP_CHAP, [_]) => Err(AuthError::Unsupported("CHAP algorithm")),
            (PPP_CHAP, _) => Err(AuthError::Malformed(
                "CHAP Authentication-Protocol option without exactly one algorithm octet",
            )),
            _ => Err(AuthError::Unsupported("authentication protocol")),
        }
    }
}

impl fmt::Display for AuthProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthProtocol::Pap => "PAP",
            AuthProtocol::ChapMd5 => "CHAP-MD5",
            AuthProtocol::MsChapV2 => "MS-CHAPv2",
        })
    }
}

/// Why a packet or a call was refused. Each variant names the culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The peer sent bytes that do not parse (short packet, bad Length,
    /// unknown Code, wrong value size, bad message syntax).
    Malformed(&'static str),
    /// The peer sent a well-formed packet that breaks the protocol.
    PeerMisbehaved(&'static str),
    /// A well-formed packet that is not expected now (wrong Identifier, a
    /// packet of the other role, a reply to nothing, before `start`). RFC
    /// 1994 says to discard these silently; it is not necessarily an attack.
    Unexpected(&'static str),
    /// Well-formed but not supported by us (e.g. MS-CHAPv1 in LCP).
    Unsupported(&'static str),
    /// Our caller misused the API (bad configuration, `verified` with no
    /// verification pending, an Accept without the MS-CHAPv2 authenticator
    /// response).
    Misuse(&'static str),
    /// Our caller gave a verdict for a request that is not the pending one:
    /// answered already, void since the authenticator restarted, or never
    /// asked. The verdict is refused and authenticates nothing.
    StaleVerdict,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed(w) => write!(f, "malformed authentication packet from peer: {w}"),
            AuthError::PeerMisbehaved(w) => {
                write!(f, "peer broke the authentication protocol: {w}")
            }
            AuthError::Unexpected(w) => {
                write!(f, "unexpected authentication packet from peer: {w}")
            }
            AuthError::Unsupported(w) => write!(f, "unsupported by us: {w}"),
            AuthError::Misuse(w) => write!(f, "authentication API misuse by the caller: {w}"),
            AuthError::StaleVerdict => f.write_str(
                "authentication API misuse by the caller: a verdict for a request that is not the pending one",
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// What the peer claimed, for the host to check (against its users file,
/// RADIUS, PAM ...). User names are raw octets from the wire: they need not
/// be UTF-8 and must be compared as bytes (do not convert lossily).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// PAP: the clear-text password (RFC 1334).
    Pap {
        /// Peer-ID.
        user: Vec<u8>,
        /// Password, in clear.
        password: Vec<u8>,
    },
    /// CHAP-MD5 (RFC 1994): check `response == MD5(id || secret || challenge)`
    /// with [`verify_chap_md5`].
    ChapMd5 {
        /// Name from the Response.
        user: Vec<u8>,
        /// Identifier of the Challenge/Response.
        id: u8,
        /// The challenge we sent.
        challenge: Vec<u8>,
        /// The 16-octet response value.
        response: [u8; 16],
    },
    /// MS-CHAPv2 (RFC 2759): check with [`verify_nt_response`] (only the NT
    /// hash is needed), which also yields the authenticator response that
    /// the Accept verdict must carry.
    MsChapV2 {
        /// Name from the Response (may be `DOMAIN\user`; the hash covers
        /// only `user`, see [`mschap_hash_user`]).
        user: Vec<u8>,
        /// Identifier of the Challenge/Response.
        id: u8,
        /// The 16-octet challenge we sent.
        authenticator_challenge: [u8; 16],
        /// The peer's 16-octet challenge.
        peer_challenge: [u8; 16],
        /// The 24-octet NT-Response.
        nt_response: [u8; 24],
        /// The flags octet.
        flags: u8,
    },
}

impl Credentials {
    /// The user name the peer gave.
    #[must_use]
    pub fn user(&self) -> &[u8] {
        match self {
            Credentials::Pap { user, .. }
            | Credentials::ChapMd5 { user, .. }
            | Credentials::MsChapV2 { user, .. } => user,
        }
    }

    /// The protocol these credentials came with.
    #[must_use]
    pub fn protocol(&self) -> AuthProtocol {
        match self {
            Credentials::Pap { .. } => AuthProtocol::Pap,
            Credentials::ChapMd5 { .. } => AuthProtocol::ChapMd5,
            Credentials::MsChapV2 { .. } => AuthProtocol::MsChapV2,
        }
    }

    /// Checks the credentials against the clear-text password, in constant
    /// time, and returns the verdict to hand to [`Authenticator::verified`]
    /// (with the authenticator response for MS-CHAPv2).
    /// `reject_message` goes into the Nak/Failure on a mismatch.
    #[must_use]
    pub fn verify_password(&self, password: &str, reject_message: &str) -> Verdict {
        match self {
            Credentials::Pap {
                password: given, ..
            } => {
                if crypto::ct_eq_any_len(given, password.as_bytes()) {
                    Verdict::Accept {
                        authenticator_response: None,
                    }
                } else {
                    Verdict::reject(reject_message)
                }
            }
            Credentials::ChapMd5 {
                id,
                challenge,
                response,
                ..
            } => {
                if verify_chap_md5(*id, password.as_bytes(), challenge, response) {
                    Verdict::Accept {
                        authenticator_response: None,
                    }
                } else {
                    Verdict::reject(reject_message)
                }
            }
            Credentials::MsChapV2 { .. } => {
                let mut h = nt_password_hash(password);
                let v = self.verify_nt_hash(&h, reject_message);
                crypto::wipe(&mut h);
                v
            }
        }
    }

    /// Checks the credentials against a stored NT password hash
    /// ([`nt_password_hash`]), in constant time.
    ///
    /// Works for MS-CHAPv2 and for PAP (the clear password is hashed and
    /// compared); CHAP-MD5 needs the clear-text secret and is always
    /// rejected here.
    #[must_use]
    pub fn verify_nt_hash(&self, nt_hash: &[u8; 16], reject_message: &str) -> Verdict {
        match self {
            Credentials::Pap { password, .. } => match std::str::from_utf8(password) {
                Ok(p) => {
                    let mut h = nt_password_hash(p);
                    let ok = ct_eq(&h, nt_hash);
                    crypto::wipe(&mut h);
                    if ok {
                        Verdict::Accept {
                            authenticator_response: None,
                        }
                    } else {
                        Verdict::reject(reject_message)
                    }
                }
                Err(_) => Verdict::reject(reject_message),
            },
            Credentials::ChapMd5 { .. } => Verdict::reject(reject_message),
            Credentials::MsChapV2 {
                user,
                authenticator_challenge,
                peer_challenge,
                nt_response,
                ..
            } => match verify_nt_response(
                nt_hash,
                authenticator_challenge,
                peer_challenge,
                mschap_hash_user(user),
                nt_response,
            ) {
                Some(ar) => Verdict::Accept {
                    authenticator_response: Some(ar),
                },
                None => Verdict::reject(reject_message),
            },
        }
    }
}

impl fmt::Debug for Credentials {
    /// Never prints passwords or responses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("protocol", &self.protocol())
            .field("user", &String::from_utf8_lossy(self.user()))
            .finish_non_exhaustive()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        match self {
            Credentials::Pap { password, .. } => crypto::wipe(password),
            Credentials::ChapMd5 { response, .. } => crypto::wipe(response),
            Credentials::MsChapV2 { nt_response, .. } => crypto::wipe(nt_response),
        }
    }
}

/// The identity of one [`VerifyRequest`]: the verdict must carry it back
/// ([`Authenticator::verified`], `Link::verified`), so a late verdict can
/// never be applied to another request. Unique within an authenticator
/// (and, through [`Authenticator::continue_verify_ids`], within a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerifyId(pub u64);

/// A request to the host: judge these credentials, then call
/// [`Authenticator::verified`] with its `id`. At most one is pending per
/// authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// Which request this is; give it back with the verdict.
    pub id: VerifyId,
    /// What the peer sent.
    pub credentials: Credentials,
}

/// The host's judgement of a [`VerifyRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right.
    Accept {
        /// MS-CHAPv2 only, and then required: the 20-octet authenticator
        /// response (RFC 2759 §8.7) computed by the verifier, e.g. from
        /// [`verify_nt_response`] or a RADIUS `MS-CHAP2-Success`. Its
        /// `S=` text form can be decoded with [`Verdict::accept_mschapv2_text`].
        authenticator_response: Option<[u8; 20]>,
    },
    /// The credentials are wrong (or the user may not log in).
    Reject {
        /// Text for the PAP Nak / CHAP Failure (after `M=` for MS-CHAPv2).
        /// Truncated to 255 octets for PAP.
        message: String,
        /// MS-CHAPv2 only: the `E=` error code of the Failure, when the
        /// verifier knows why (RFC 2759 §6: 646 restricted logon hours, 647
        /// account disabled, 648 password expired, 649 no dial-in
        /// permission, e.g. from a RADIUS MS-CHAP-Error). `None`, or a code
        /// outside that list, sends 691 (authentication failure). Only 691
        /// may offer a retry (`R=1`): another password cannot cure the
        /// others. Ignored by PAP and CHAP-MD5.
        code: Option<u32>,
    },
}

impl Verdict {
    /// `Reject { message, code: None }`.
    #[must_use]
    pub fn reject(message: &str) -> Self {
        Verdict::Reject {
            message: message.to_owned(),
            code: None,
        }
    }

    /// `Reject { message, code: Some(code) }`: an MS-CHAPv2 Failure with
    /// `E=code` (see [`Verdict::Reject`]).
    #[must_use]
    pub fn reject_with_code(message: &str, code: u32) -> Self {
        Verdict::Reject {
            message: message.to_owned(),
            code: Some(code),
        }
    }

    /// An MS-CHAPv2 Accept from the `S=<40 hex>` text a verifier produced
    /// (e.g. RADIUS). `None` if the text is not `S=` and 40 hex digits.
    #[must_use]
    pub fn accept_mschapv2_text(s_text: &str) -> Option<Self> {
        let ok = MsChapV2Success::parse(s_text.as_bytes()).ok()?;
        if s_text.len() != 42 {
            return None;
        }
        Some(Verdict::Accept {
            authenticator_response: Some(ok.authenticator_response),
        })
    }
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// Authenticator: the host rejected the credentials, `message` is what
    /// we sent in the Nak/Failure. Peer: the authenticator sent a PAP Nak or
    /// CHAP Failure; `message` is its text (for MS-CHAPv2 the `M=` part,
    /// or the whole text if it did not parse) and `code` the MS-CHAPv2 `E=`
    /// error code (`None` for PAP and CHAP-MD5).
    Rejected {
        /// Human-readable text (lossy UTF-8 of what was on the wire).
        message: String,
        /// MS-CHAPv2 error code, e.g. 691.
        code: Option<u32>,
    },
    /// Nothing came back in time. Authenticator: no Response to any of the
    /// `max_transmits` Challenges, or no PAP Authenticate-Request within
    /// `pap_timeout`. Peer: no PAP reply after `max_transmits` Requests, or
    /// CHAP not completed within `timeout`.
    Timeout,
    /// Peer, MS-CHAPv2: the Success did not carry the authenticator response
    /// we computed (or none at all), so the server did not prove that it
    /// knows the password (RFC 2759 §8.8). Final.
    BadAuthenticatorResponse,
    /// Authenticator: a periodic re-challenge was answered with a different
    /// user name. Final.
    UserChanged,
}

/// Something the application must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Authenticator only: check these credentials and call
    /// [`Authenticator::verified`].
    Verify(VerifyRequest),
    /// Authentication succeeded (emitted once). Authenticator: `user` is the
    /// name the peer proved. Peer: `user` is our own name, and for
    /// MS-CHAPv2 the server has proved itself too.
    Succeeded {
        /// User name (raw octets).
        user: Vec<u8>,
        /// Method used.
        protocol: AuthProtocol,
    },
    /// Authentication failed.
    Failed {
        /// The user name involved, if one was seen.
        user: Option<Vec<u8>>,
        /// Method used.
        protocol: AuthProtocol,
        /// Why.
        reason: FailureReason,
    },
}

/// Overall state of a machine, for the link's phase logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStatus {
    /// `start` not called yet.
    Idle,
    /// Authentication running (including a wait for the host's verdict).
    InProgress,
    /// Authenticated (a periodic re-challenge may be running).
    Succeeded,
    /// Failed; see the [`Event::Failed`] reason.
    Failed,
}

/// Configuration of the [`Authenticator`] (server role).
#[derive(Clone)]
pub struct AuthenticatorConfig {
    /// Secret random bytes from the host's CSPRNG, drawn once per link. All
    /// challenges and the first Identifier are derived from it (SHA-1 in
    /// counter mode) unless queued explicitly. Never reuse it across links.
    pub challenge_seed: [u8; 32],
    /// Identifier of the first Challenge (CHAP). `None` (default): derived
    /// from the seed. Later Identifiers count up from it.
    pub first_identifier: Option<u8>,
    /// Our name in CHAP Challenges (RFC 1994 §4.1). Default `dialgate`.
    pub name: Vec<u8>,
    /// CHAP-MD5 challenge length, 1..=255 (default 16). MS-CHAPv2 always
    /// uses 16.
    pub md5_challenge_len: usize,
    /// Restart timer: time between Challenge retransmissions (default 3 s).
    pub restart_interval: Duration,
    /// Challenges sent at most, first one included (default 10), before
    /// failing with [`FailureReason::Timeout`]. At least 1.
    pub max_transmits: u32,
    /// PAP: how long to wait for an Authenticate-Request (default 30 s).
    pub pap_timeout: Duration,
    /// Credentials judged at most before failing (default 1: fail on the
    /// first rejection). With more, CHAP re-challenges and PAP waits for
    /// another Request after a rejection.
    pub max_attempts: u32,
    /// CHAP only: re-challenge this long after each success (RFC 1994 §2.1,
    /// "at random intervals": the host may vary it per link). `None`
    /// (default) disables it. A failed re-challenge is final.
    pub rechallenge_interval: Option<Duration>,
    /// Text of a PAP Ack / CHAP Success (after `M=` for MS-CHAPv2).
    /// Default `Access granted`. Truncated to 255 octets for PAP.
    pub success_message: String,
}

impl AuthenticatorConfig {
    /// The defaults, with the given secret seed.
    #[must_use]
    pub fn new(challenge_seed: [u8; 32]) -> Self {
        AuthenticatorConfig {
            challenge_seed,
            first_identifier: None,
            name: b"dialgate".to_vec(),
            md5_challenge_len: 16,
            restart_interval: Duration::from_secs(3),
            max_transmits: 10,
            pap_timeout: Duration::from_secs(30),
            max_attempts: 1,
            rechallenge_interval: None,
            success_message: "Access granted".to_owned(),
        }
    }

    fn validate(&self) -> Result<(), AuthError> {
        if self.md5_challenge_len == 0 || self.md5_challenge_len > 255 {
            return Err(AuthError::Misuse("md5_challenge_len must be 1..=255"));
        }
        if self.max_transmits == 0 {
            return Err(AuthError::Misuse("max_transmits must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(AuthError::Misuse("max_attempts must be at least 1"));
        }
        if self.name.len() > 1000 {
            return Err(AuthError::Misuse("CHAP name longer than 1000 octets"));
        }
        if self.success_message.len() > 1000 {
            return Err(AuthError::Misuse("success message longer than 1000 octets"));
        }
        check_interval(
            self.restart_interval,
            "restart_interval must be within 0 < d <= 1 day",
        )?;
        check_interval(
            self.pap_timeout,
            "pap_timeout must be within 0 < d <= 1 day",
        )?;
        if let Some(d) = self.rechallenge_interval {
            check_interval(d, "rechallenge_interval must be within 0 < d <= 1 day")?;
        }
        Ok(())
    }
}

/// Longest timer interval we accept (one day): keeps `Instant` arithmetic
/// far from overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Timer intervals must be positive (a zero restart timer would spin) and
/// at most [`MAX_INTERVAL`].
fn check_interval(d: Duration, error: &'static str) -> Result<(), AuthError> {
    if d.is_zero() || d > MAX_INTERVAL {
        return Err(AuthError::Misuse(error));
    }
    Ok(())
}

impl fmt::Debug for AuthenticatorConfig {
    /// Leaves out the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorConfig")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("md5_challenge_len", &self.md5_challenge_len)
            .field("restart_interval", &self.restart_interval)
            .field("max_transmits", &self.max_transmits)
            .field("pap_timeout", &self.pap_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("rechallenge_interval", &self.rechallenge_interval)
            .field("success_message", &self.success_message)
            .finish_non_exhaustive()
    }
}

/// Configuration of the [`Peer`] (client role).
#[derive(Clone)]
pub struct PeerConfig {
    /// Our user name (PAP Peer-ID, CHAP Name), at most 255 octets for PAP.
    pub user: Vec<u8>,
    /// Our password (PAP: sent as UTF-8, at most 255 octets; CHAP-MD5: the
    /// secret's UTF-8 octets; MS-CHAPv2: hashed as UTF-16LE).
    pub password: String,
    /// Secret random bytes from the host's CSPRNG, drawn once per link;
    /// MS-CHAPv2 peer challenges and the first PAP Identifier derive from it.
    pub challenge_seed: [u8; 32],
    /// Identifier of the first PAP Authenticate-Request. `None` (default):
    /// derived from the seed. Each retransmission uses the next one.
    pub first_identifier: Option<u8>,
    /// Time between retransmissions (default 3 s): of the PAP
    /// Authenticate-Request, and of a CHAP Response that got neither Success
    /// nor Failure (the authenticator answers a repeated Response with the
    /// same result, so a lost Success is recovered).
    pub restart_interval: Duration,
    /// Transmissions at most, first one included (default 10). PAP: then
    /// [`FailureReason::Timeout`]; CHAP: then we stop repeating the Response
    /// and wait for `timeout`.
    pub max_transmits: u32,
    /// CHAP: time from `start` to a Success before
    /// [`FailureReason::Timeout`] (default 30 s).
    pub timeout: Duration,
}

impl PeerConfig {
    /// The defaults, with our name, password and seed.
    #[must_use]
    pub fn new(user: &[u8], password: &str, challenge_seed: [u8; 32]) -> Self {
        PeerConfig {
            user: user.to_vec(),
            password: password.to_owned(),
            challenge_seed,
            first_identifier: None,
            restart_interval: Duration::from_secs(3),
            max_transmits: 10,
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for PeerConfig {
    /// Leaves out the password and the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("restart_interval", &self.restart_interval)
            .field("max_transmits", &self.max_transmits)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A byte buffer holding secret material, zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretBytes(pub(crate) Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        crypto::wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} octets)", self.0.len())
    }
}

/// Deterministic challenge bytes from a secret seed (SHA-1 in counter
/// mode), with explicitly queued values taking precedence.
#[derive(Clone)]
pub(crate) struct ChallengeSource {
    seed: SecretBytes,
    counter: u64,
    queued: VecDeque<Vec<u8>>,
}

impl fmt::Debug for ChallengeSource {
    /// Leaves out the seed and the queued values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeSource")
            .field("counter", &self.counter)
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl ChallengeSource {
    pub(crate) fn new(seed: &[u8; 32]) -> Self {
        ChallengeSource {
            seed: SecretBytes(seed.to_vec()),
            counter: 0,
            queued: VecDeque::new(),
        }
    }

    pub(crate) fn queue(&mut self, bytes: Vec<u8>) {
        self.queued.push_back(bytes);
    }

    /// The next queued value if it has length `len`, else derived bytes.
    pub(crate) fn next(&mut self, len: usize) -> Vec<u8> {
        if self.queued.front().is_some_and(|q| q.len() == len)
            && let Some(q) = self.queued.pop_front()
        {
            return q;
        }
        let mut out = Vec::with_capacity(len + 20);
        while out.len() < len {
            out.extend_from_slice(&self.block());
        }
        out.truncate(len);
        out
    }

    pub(crate) fn next_u8(&mut self) -> u8 {
        self.block()[0]
    }

    fn block(&mut self) -> [u8; 20] {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update(b"dialgate ppp auth challenge v1");
        h.update(&self.seed.0);
        h.update(self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        h.finalize().into()
    }
}

/// Packets and events a machine has produced and not yet handed out.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) transmits: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<Event>,
    /// The id the next [`VerifyRequest`] gets.
    pub(crate) next_verify: u64,
}

impl Outbox {
    /// Queues an [`Event::Verify`] for `credentials` under a fresh id.
    pub(crate) fn push_verify(&mut self, credentials: Credentials) -> VerifyId {
        let id = VerifyId(self.next_verify);
        self.next_verify = self.next_verify.wrapping_add(1);
        self.events
            .push_back(Event::Verify(VerifyRequest { id, credentials }));
        id
    }
}

/// Server role: challenges the peer (CHAP) or waits for its password (PAP),
/// asks the host to judge, and sends the result. See the module docs for the
/// call order.
#[derive(Debug)]
pub struct Authenticator {
    inner: AuthenticatorInner,
}

#[derive(Debug)]
enum AuthenticatorInner {
    Pap(pap::PapAuthenticator),
    Chap(chap::ChapAuthenticator),
}

impl Authenticator {
    /// A new authenticator for `protocol`. Nothing is sent before
    /// [`start`](Self::start). Fails with [`AuthError::Misuse`] on a bad
    /// configuration (a zero count, a challenge length outside 1..=255, a
    /// name or message above 1000 octets, a timer interval of 0 or above
    /// one day).
    pub fn new(protocol: AuthProtocol, config: AuthenticatorConfig) -> Result<Self, AuthError> {
        config.validate()?;
        let inner = match protocol {
            AuthProtocol::Pap => AuthenticatorInner::Pap(pap::PapAuthenticator::new(config)),
            AuthProtocol::ChapMd5 | AuthProtocol::MsChapV2 => {
                AuthenticatorInner::Chap(chap::ChapAuthenticator::new(protocol, config))
            }
        };
        Ok(Authenticator { inner })
    }

    /// The method this authenticator runs.
    #[must_use]
    pub fn protocol(&self) -> AuthProtocol {
        match &self.inner {
            AuthenticatorInner::Pap(_) => AuthProtocol::Pap,
            AuthenticatorInner::Chap(c) => c.protocol(),
        }
    }

    /// Queues explicit challenge bytes to use for the next challenge instead
    /// of seed-derived ones (e.g. from the host's CSPRNG, or a test
    /// vector). Must be 16 octets for MS-CHAPv2, 1..=255 octets of exactly
    /// `md5_challenge_len` for CHAP-MD5; PAP has no challenges
    /// ([`AuthError::Misuse`]).
    pub fn queue_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        match &mut self.inner {
            AuthenticatorInner::Pap(_) => Err(AuthError::Misuse("PAP has no challenge")),
            AuthenticatorInner::Chap(c) => c.queue_challenge(challenge),
        }
    }

    /// Enters the Authenticate phase: CHAP sends its first Challenge, PAP
    /// starts waiting for a Request. A second call does nothing.
    pub fn start(&mut self, now: Instant) {
        match &mut self.inner {
            AuthenticatorInner::Pap(p) => p.start(now),
            AuthenticatorInner::Chap(c) => c.start(now),
        }
    }

    /// Handles one received packet (Code onwards, no protocol field).
    /// `Err` means it was discarded without effect.
    pub fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        match &mut self.inner {
            AuthenticatorInner::Pap(p) => p.handle_packet(now, payload),
            AuthenticatorInner::Chap(c) => c.handle_packet(now, payload),
        }
    }

    /// The host's verdict on the pending [`Event::Verify`], whose
    /// [`VerifyRequest::id`] is `request`. Sends the Ack/Success or
    /// Nak/Failure (and, with tries left, a new Challenge).
    ///
    /// Errors (nothing changes): [`AuthError::StaleVerdict`] when `request`
    /// is not the pending request (or none is pending);
    /// [`AuthError::Misuse`] for an MS-CHAPv2 Accept without the
    /// authenticator response.
    ///
    /// No timer runs while a verification is pending (repeated Responses or
    /// Requests are absorbed); a host that never answers leaves the machine
    /// waiting, so the link must bound the Authenticate phase itself.
    pub fn verified(
        &mut self,
        now: Instant,
        request: VerifyId,
        verdict: Verdict,
    ) -> Result<(), AuthError> {
        match &mut self.inner {
            AuthenticatorInner::Pap(p) => p.verified(now, request, verdict),
            AuthenticatorInner::Chap(c) => c.verified(now, request, verdict),
        }
    }

    /// Numbers this authenticator's requests from `next` on (the default
    /// is 0), for a host that runs several authenticators one after the
    /// other and needs ids unique across them (a link restarting
    /// authentication on an LCP renegotiation).
    pub fn continue_verify_ids(&mut self, next: VerifyId) {
        self.outbox().next_verify = next.0;
    }

    /// The id of the request awaiting [`verified`](Self::verified), if any.
    #[must_use]
    pub fn pending_verify_id(&self) -> Option<VerifyId> {
        match &self.inner {
            AuthenticatorInner::Pap(p) => p.pending_verify_id(),
            AuthenticatorInner::Chap(c) => c.pending_verify_id(),
        }
    }

    /// The id the next request will get.
    #[must_use]
    pub fn next_verify_id(&self) -> VerifyId {
        match &self.inner {
            AuthenticatorInner::Pap(p) => VerifyId(p.out.next_verify),
            AuthenticatorInner::Chap(c) => VerifyId(c.out.next_verify),
        }
    }

    /// Handles the timer (retransmission, timeout, re-challenge). Does
    /// nothing if called early.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.inner {
            AuthenticatorInner::Pap(p) => p.handle_timeout(now),
            AuthenticatorInner::Chap(c) => c.handle_timeout(now),
        }
    }

    /// The next packet to send (Code onwards; send it under
    /// [`AuthProtocol::ppp_protocol`]).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox().transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox().events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if at all.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.inner {
            AuthenticatorInner::Pap(p) => p.poll_timeout(),
            AuthenticatorInner::Chap(c) => c.poll_timeout(),
        }
    }

    /// Overall state.
    #[must_use]
    pub fn status(&self) -> AuthStatus {
        match &self.inner {
            AuthenticatorInner::Pap(p) => p.status(),
            AuthenticatorInner::Chap(c) => c.status(),
        }
    }

    /// Whether an [`Event::Verify`] awaits [`verified`](Self::verified).
    #[must_use]
    pub fn verification_pending(&self) -> bool {
        match &self.inner {
            AuthenticatorInner::Pap(p) => p.verification_pending(),
            AuthenticatorInner::Chap(c) => c.verification_pending(),
        }
    }

    fn outbox(&mut self) -> &mut Outbox {
        match &mut self.inner {
            AuthenticatorInner::Pap(p) => &mut p.out,
            AuthenticatorInner::Chap(c) => &mut c.out,
        }
    }
}

/// Client role: proves our identity to the authenticator (PAP
/// Authenticate-Request with retransmission; CHAP Responses to Challenges)
/// and, for MS-CHAPv2, checks the server's authenticator response. See the
/// module docs for the call order.
#[derive(Debug)]
pub struct Peer {
    inner: PeerInner,
}

#[derive(Debug)]
enum PeerInner {
    Pap(pap::PapPeer),
    Chap(chap::ChapPeer),
}

impl Peer {
    /// A new peer for `protocol`. Nothing is sent before
    /// [`start`](Self::start). Fails with [`AuthError::Misuse`] if the user
    /// name (or, for PAP, the password) is longer than 255 octets,
    /// `max_transmits` is 0, or a timer interval is 0 or above one day.
    pub fn new(protocol: AuthProtocol, config: PeerConfig) -> Result<Self, AuthError> {
        if config.max_transmits == 0 {
            return Err(AuthError::Misuse("max_transmits must be at least 1"));
        }
        if config.user.len() > 255 {
            return Err(AuthError::Misuse("user name longer than 255 octets"));
        }
        check_interval(
            config.restart_interval,
            "restart_interval must be within 0 < d <= 1 day",
        )?;
        check_interval(config.timeout, "timeout must be within 0 < d <= 1 day")?;
        let inner = match protocol {
            AuthProtocol::Pap => PeerInner::Pap(pap::PapPeer::new(config)?),
            AuthProtocol::ChapMd5 | AuthProtocol::MsChapV2 => {
                PeerInner::Chap(chap::ChapPeer::new(protocol, config))
            }
        };
        Ok(Peer { inner })
    }

    /// The method this peer runs.
    #[must_use]
    pub fn protocol(&self) -> AuthProtocol {
        match &self.inner {
            PeerInner::Pap(_) => AuthProtocol::Pap,
            PeerInner::Chap(c) => c.protocol(),
        }
    }

    /// Queues explicit MS-CHAPv2 peer-challenge bytes (16 octets) for the
    /// next Response instead of seed-derived ones. Other protocols:
    /// [`AuthError::Misuse`].
    pub fn queue_peer_challenge(&mut self, peer_challenge: &[u8]) -> Result<(), AuthError> {
        match &mut self.inner {
            PeerInner::Chap(c) if c.protocol() == AuthProtocol::MsChapV2 => {
                c.queue_peer_challenge(peer_challenge)
            }
            _ => Err(AuthError::Misuse("only MS-CHAPv2 has a peer challenge")),
        }
    }

    /// Enters the Authenticate phase: PAP sends its first Request; CHAP
    /// starts waiting for a Challenge. A second call does nothing.
    pub fn start(&mut self, now: Instant) {
        match &mut self.inner {
            PeerInner::Pap(p) => p.start(now),
            PeerInner::Chap(c) => c.start(now),
        }
    }

    /// Handles one received packet (Code onwards, no protocol field).
    /// `Err` means it was discarded without effect.
    pub fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        match &mut self.inner {
            PeerInner::Pap(p) => p.handle_packet(now, payload),
            PeerInner::Chap(c) => c.handle_packet(now, payload),
        }
    }

    /// Handles the timer (PAP retransmission, timeouts). Does nothing if
    /// called early.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.inner {
            PeerInner::Pap(p) => p.handle_timeout(now),
            PeerInner::Chap(c) => c.handle_timeout(now),
        }
    }

    /// The next packet to send (Code onwards).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox().transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox().events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if at all.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.inner {
            PeerInner::Pap(p) => p.poll_timeout(),
            PeerInner::Chap(c) => c.poll_timeout(),
        }
    }

    /// Overall state.
    #[must_use]
    pub fn status(&self) -> AuthStatus {
        match &self.inner {
            PeerInner::Pap(p) => p.status(),
            PeerInner::Chap(c) => c.status(),
        }
    }

    fn outbox(&mut self) -> &mut Outbox {
        match &mut self.inner {
            PeerInner::Pap(p) => &mut p.out,
            PeerInner::Chap(c) => &mut c.out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcp_option_round_trip() {
        for p in [
            AuthProtocol::Pap,
            AuthProtocol::ChapMd5,
            AuthProtocol::MsChapV2,
        ] {
            assert_eq!(
                AuthProtocol::from_lcp_option_data(p.lcp_option_data()),
                Ok(p)
            );
        }
        assert_eq!(AuthProtocol::Pap.ppp_protocol(), 0xc023);
        assert_eq!(AuthProtocol::MsChapV2.ppp_protocol(), 0xc223);
        assert_eq!(AuthProtocol::ChapMd5.lcp_option_data(), &[0xc2, 0x23, 0x05]);
        assert!(matches!(
            AuthProtocol::from_lcp_option_data(&[0xc2, 0x23, 0x80]),
            Err(AuthError::Unsupported(_))
        ));
        assert!(matches!(
            AuthProtocol::from_lcp_option_data(&[0xc2, 0x27]),
            Err(AuthError::Unsupported(_))
        ));
        assert!(matches!(
            AuthProtocol::from_lcp_option_data(&[0xc2, 0x23]),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            AuthProtocol::from_lcp_option_data(&[0xc0]),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            AuthProtocol::from_lcp_option_data(&[0xc0, 0x23, 1]),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn challenge_source_is_deterministic_and_queue_first() {
        let mut a = ChallengeSource::new(&[7; 32]);
        let mut b = ChallengeSource::new(&[7; 32]);
        let x = a.next(16);
        assert_eq!(x, b.next(16));
        assert_ne!(a.next(16), x);
        assert_eq!(a.next(45).len(), 45);
        a.queue(vec![1; 16]);
        assert_eq!(a.next(16), vec![1; 16]);
        let mut c = ChallengeSource::new(&[8; 32]);
        assert_ne!(c.next(16), ChallengeSource::new(&[7; 32]).next(16));
    }

    #[test]
    fn verdict_from_s_text() {
        let v =
            Verdict::accept_mschapv2_text("S=407A5589115FD0D6209F510FE9C04566932CDA56").unwrap();
        assert!(matches!(v, Verdict::Accept { authenticator_response: Some(r) } if r[0] == 0x40));
        assert!(
            Verdict::accept_mschapv2_text("S=407A5589115FD0D6209F510FE9C04566932CDA56 M=x")
                .is_none()
        );
        assert!(Verdict::accept_mschapv2_text("S=12").is_none());
    }
}
