#![forbid(unsafe_code)]
//! A sans-IO RADIUS client for dialgate.
//!
//! * Codec (RFC 2865 §3): [`RawPacket`] checks the framing once and gives
//!   zero-copy access; [`Packet`] is the owned form with typed
//!   [`Attribute`]s (unknown or malformed attributes are kept verbatim as
//!   [`Attribute::Other`]). Vendor-Specific attributes of Microsoft (RFC 2548)
//!   for MS-CHAPv2 are typed as [`MsAttr`].
//! * Security: User-Password hiding ([`hide_password`]), CHAP
//!   ([`chap_response`]), Request/Response Authenticators (RFC 2865, RFC 2866
//!   §3) and the Message-Authenticator (RFC 3579 §3.2), which is put first in
//!   **every** Access-Request and verified in every reply that has one, and
//!   is required in every Access-* reply unless configured otherwise
//!   ([`ClientConfig::require_message_authenticator`],
//!   [`RequireMessageAuthenticator`]: against BlastRADIUS, CVE-2024-3596).
//! * [`Client`]: identifiers, retransmission, failover and outcomes, driven
//!   by the caller (no IO, no clock, no randomness in this crate).

mod attr;
mod auth;
mod client;
mod crypto;
mod packet;

pub use attr::{Attribute, MAX_VALUE_LEN, MsAttr, VENDOR_MICROSOFT, ms_types, types, values};
pub use auth::{
    MAX_PASSWORD_LEN, PasswordLengthError, RequestKind, VerifyError, chap_response,
    encode_access_request, encode_accounting_request, encode_response, hide_password,
    unhide_password, verify_access_request, verify_accounting_request, verify_response,
};
pub use client::{
    Client, ClientConfig, ConfigError, MAX_TIMEOUT, Outcome, Request, RequestId,
    RequireMessageAuthenticator, SendError, ServerConfig, Stats,
};
pub use crypto::hmac_md5;
pub use packet::{
    Code, EncodeError, HEADER_LEN, MAX_PACKET_LEN, Packet, ParseError, RawAttribute, RawAttributes,
    RawPacket,
};
