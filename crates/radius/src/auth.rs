//! Authenticators and hidden attributes: User-Password hiding (RFC 2865
//! §5.2), CHAP (RFC 2865 §5.3), Request/Response Authenticators (RFC 2865 §3,
//! RFC 2866 §3), Message-Authenticator (RFC 3579 §3.2).

use crate::attr::{Attribute, types};
use crate::crypto::{ct_eq, hmac_md5, md5};
use crate::packet::{
    Code, EncodeError, HEADER_LEN, MAX_PACKET_LEN, RawPacket, serialize_attributes,
};

/// Longest User-Password RFC 2865 §5.2 allows.
pub const MAX_PASSWORD_LEN: usize = 128;

/// Hides a User-Password (RFC 2865 §5.2): pad with NULs to a multiple of 16
/// (at least 16), then `c1 = p1 XOR MD5(S + RA)`, `ci = pi XOR MD5(S + c(i-1))`.
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, EncodeError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(EncodeError::PasswordTooLong(password.len()));
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded, 0);
    let mut prev: [u8; 16] = *request_authenticator;
    for chunk in out.chunks_mut(16) {
        let b = md5(&[secret, &prev]);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    Ok(out)
}

/// A hidden User-Password that cannot be unhidden (malformed input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed hidden User-Password: {0} octets (must be a multiple of 16 in 16..=128)")]
pub struct PasswordLengthError(pub usize);

/// Reverses [`hide_password`] (server side, and tests). Trailing NUL padding
/// is removed.
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, PasswordLengthError> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > MAX_PASSWORD_LEN {
        return Err(PasswordLengthError(hidden.len()));
    }
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = request_authenticator;
    for chunk in hidden.chunks(16) {
        let b = md5(&[secret, prev]);
        out.extend(chunk.iter().zip(b).map(|(c, k)| c ^ k));
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// The CHAP response `MD5(ident + password + challenge)` (RFC 1994 §4.1), as
/// carried in CHAP-Password (RFC 2865 §5.3).
pub fn chap_response(ident: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    md5(&[&[ident], password, challenge])
}

/// The kind of a request this crate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Access-Request (RFC 2865).
    Access,
    /// Accounting-Request (RFC 2866).
    Accounting,
}

/// A request whose attributes are serialized and size-checked, so that
/// building it for any server, identifier and authenticator cannot fail.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) kind: RequestKind,
    attrs: Vec<u8>,
    password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("kind", &self.kind)
            .field("attrs_len", &self.attrs.len())
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Offset of the Message-Authenticator value in an Access-Request built
/// here (it is the first attribute, as the BlastRADIUS advisories recommend).
const MA_VALUE_OFFSET: usize = HEADER_LEN + 2;

impl Prepared {
    pub(crate) fn new(
        kind: RequestKind,
        attributes: &[Attribute],
        password: Option<&[u8]>,
    ) -> Result<Prepared, EncodeError> {
        // The Message-Authenticator is always computed here; drop any the
        // caller put in.
        let attrs: Vec<Attribute> = attributes
            .iter()
            .filter(|a| !matches!(a, Attribute::MessageAuthenticator(_)))
            .cloned()
            .collect();
        let attrs = serialize_attributes(&attrs)?;
        let mut len = HEADER_LEN + attrs.len();
        if kind == RequestKind::Access {
            len += 18;
        }
        if let Some(p) = password {
            if p.len() > MAX_PASSWORD_LEN {
                return Err(EncodeError::PasswordTooLong(p.len()));
            }
            len += 2 + p.len().div_ceil(16).max(1) * 16;
        }
        if len > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong(len));
        }
        Ok(Prepared {
            kind,
            attrs,
            password: password.map(<[u8]>::to_vec),
        })
    }

    /// Builds the packet. `authenticator` is the random Request
    /// Authenticator for Access-Requests and is ignored for accounting (whose
    /// authenticator is computed).
    pub(crate) fn build(&self, identifier: u8, authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        let hidden = self.password.as_ref().map(|p| {
            // Length checked in `new`; an error is impossible, an empty
            // hidden value would be refused by servers anyway.
            hide_password(p, secret, authenticator).unwrap_or_default()
        });
        let mut body = Vec::with_capacity(self.attrs.len() + 18 + 130);
        if self.kind == RequestKind::Access {
            body.extend_from_slice(&[types::MESSAGE_AUTHENTICATOR, 18]);
            body.extend_from_slice(&[0u8; 16]);
        }
        body.extend_from_slice(&self.attrs);
        if let Some(h) = hidden {
            body.push(types::USER_PASSWORD);
            body.push((h.len() + 2) as u8);
            body.extend_from_slice(&h);
        }
        let len = HEADER_LEN + body.len();
        let code = match self.kind {
            RequestKind::Access => Code::AccessRequest,
            RequestKind::Accounting => Code::AccountingRequest,
        };
        let mut out = Vec::with_capacity(len);
        out.push(code.to_u8());
        out.push(identifier);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        match self.kind {
            RequestKind::Access => out.extend_from_slice(authenticator),
            RequestKind::Accounting => out.extend_from_slice(&[0u8; 16]),
        }
        out.extend_from_slice(&body);
        match self.kind {
            RequestKind::Access => {
                let mac = hmac_md5(secret, &out);
                out[MA_VALUE_OFFSET..MA_VALUE_OFFSET + 16].copy_from_slice(&mac);
            }
            RequestKind::Accounting => {
                // RFC 2866 §3: MD5(Code+Identifier+Length+16 zero octets+
                // request attributes+shared secret).
                let auth = md5(&[&out, secret]);
                out[4..HEADER_LEN].copy_from_slice(&auth);
            }
        }
        out
    }
}

/// Encodes an Access-Request with a Message-Authenticator as its first
/// attribute. `password`, if given, is hidden into a User-Password with
/// `secret` and `authenticator` (which must be unpredictable: pass 16 random
/// octets).
pub fn encode_access_request(
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[Attribute],
    password: Option<&[u8]>,
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    Ok(
        Prepared::new(RequestKind::Access, attributes, password)?.build(
            identifier,
            authenticator,
            secret,
        ),
    )
}

/// Encodes an Accounting-Request with its Request Authenticator computed as
/// RFC 2866 §3 says.
pub fn encode_accounting_request(
    identifier: u8,
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    Ok(Prepared::new(RequestKind::Accounting, attributes, None)?
        .build(identifier, &[0u8; 16], secret))
}

/// Encodes a reply (server side; used by test servers): Response
/// Authenticator `MD5(Code+ID+Length+RequestAuth+Attributes+Secret)`, and,
/// if `message_authenticator`, a Message-Authenticator as the first attribute
/// (computed over the packet with the Request Authenticator in place,
/// RFC 3579 §3.2).
pub fn encode_response(
    code: Code,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
    message_authenticator: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut attrs: Vec<Attribute> = Vec::with_capacity(attributes.len() + 1);
    if message_authenticator {
        attrs.push(Attribute::MessageAuthenticator([0; 16]));
    }
    attrs.extend(
        attributes
            .iter()
            .filter(|a| !matches!(a, Attribute::MessageAuthenticator(_)))
            .cloned(),
    );
    let body = serialize_attributes(&attrs)?;
    let mut out = crate::packet::assemble(code, identifier, request_authenticator, &[&body])?;
    if message_authenticator {
        let mac = hmac_md5(secret, &out);
        out[MA_VALUE_OFFSET..MA_VALUE_OFFSET + 16].copy_from_slice(&mac);
    }
    let auth = md5(&[&out, secret]);
    out[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(out)
}

/// Why an authenticator check failed (the peer misbehaved, or the secrets
/// differ, or the packet was forged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The Response (or accounting Request) Authenticator does not match.
    #[error("RADIUS authenticator mismatch (wrong shared secret or forged packet)")]
    BadAuthenticator,
    /// Message-Authenticator present but wrong, of the wrong size, or
    /// present more than once.
    #[error("RADIUS Message-Authenticator invalid")]
    BadMessageAuthenticator,
    /// Message-Authenticator required but absent (BlastRADIUS protection).
    #[error("RADIUS Message-Authenticator required but missing")]
    MissingMessageAuthenticator,
}

/// Finds the single Message-Authenticator value's offset; errors if several
/// or of the wrong size.
fn find_ma(p: &RawPacket<'_>) -> Result<Option<usize>, VerifyError> {
    let mut found = None;
    for a in p.attributes() {
        if a.typ == types::MESSAGE_AUTHENTICATOR {
            if found.is_some() || a.value.len() != 16 {
                return Err(VerifyError::BadMessageAuthenticator);
            }
            found = Some(a.offset + 2);
        }
    }
    Ok(found)
}

/// HMAC-MD5 over `bytes` with the authenticator field replaced by `auth`
/// and the Message-Authenticator value at `ma` zeroed; compares in constant
/// time.
fn check_ma(bytes: &[u8], auth: &[u8; 16], ma: usize, secret: &[u8]) -> bool {
    let mut copy = bytes.to_vec();
    copy[4..HEADER_LEN].copy_from_slice(auth);
    let Some(slot) = copy.get_mut(ma..ma + 16) else {
        return false;
    };
    let received: [u8; 16] = match <[u8; 16]>::try_from(&*slot) {
        Ok(r) => r,
        Err(_) => return false,
    };
    slot.fill(0);
    ct_eq(&hmac_md5(secret, &copy), &received)
}

/// Verifies a reply (Access-Accept/-Reject/-Challenge, Accounting-Response)
/// against the authenticator of the request it answers: the Response
/// Authenticator always, and the Message-Authenticator if present; if
/// `require_message_authenticator`, its absence is an error.
pub fn verify_response(
    reply: &RawPacket<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<(), VerifyError> {
    let bytes = reply.bytes();
    let ma = find_ma(reply)?;
    let expected = md5(&[
        &bytes[..4],
        request_authenticator,
        &bytes[HEADER_LEN..],
        secret,
    ]);
    if !ct_eq(&expected, &bytes[4..HEADER_LEN]) {
        return Err(VerifyError::BadAuthenticator);
    }
    match ma {
        Some(off) => {
            if check_ma(bytes, request_authenticator, off, secret) {
                Ok(())
            } else {
                Err(VerifyError::BadMessageAuthenticator)
            }
        }
        None if require_message_authenticator => Err(VerifyError::MissingMessageAuthenticator),
        None => Ok(()),
    }
}

/// Verifies an Access-Request's Message-Authenticator (server side; test
/// servers use it).
pub fn verify_access_request(
    request: &RawPacket<'_>,
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<(), VerifyError> {
    match find_ma(request)? {
        Some(off) => {
            if check_ma(request.bytes(), &request.authenticator(), off, secret) {
                Ok(())
            } else {
                Err(VerifyError::BadMessageAuthenticator)
            }
        }
        None if require_message_authenticator => Err(VerifyError::MissingMessageAuthenticator),
        None => Ok(()),
    }
}

/// Verifies an Accounting-Request's Request Authenticator (RFC 2866 §3).
pub fn verify_accounting_request(
    request: &RawPacket<'_>,
    secret: &[u8],
) -> Result<(), VerifyError> {
    let b = request.bytes();
    let expected = md5(&[&b[..4], &[0u8; 16], &b[HEADER_LEN..], secret]);
    if ct_eq(&expected, &b[4..HEADER_LEN]) {
        Ok(())
    } else {
        Err(VerifyError::BadAuthenticator)
    }
}
