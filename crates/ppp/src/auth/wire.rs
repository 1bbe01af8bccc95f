//! Wire formats: PAP (RFC 1334 §2), CHAP (RFC 1994 §4) and the MS-CHAPv2
//! value and message formats (RFC 2759 §4–§6).
//!
//! Every parser takes the authentication packet starting at its Code octet,
//! without the PPP protocol field, checks every length once, and returns a
//! typed view borrowing from the input. Octets after the packet's Length
//! field are padding and are ignored (RFC 1661 §5). No parser panics, on any
//! input.

use super::AuthError;
use super::crypto::{
    AUTHENTICATOR_RESPONSE_LEN, MSCHAPV2_CHALLENGE_LEN, MSCHAPV2_PEER_CHALLENGE_LEN,
    NT_RESPONSE_LEN, decode_hex, push_hex_upper,
};

/// PAP Authenticate-Request code (RFC 1334 §2.2.1).
pub const PAP_AUTHENTICATE_REQUEST: u8 = 1;
/// PAP Authenticate-Ack code (RFC 1334 §2.2.2).
pub const PAP_AUTHENTICATE_ACK: u8 = 2;
/// PAP Authenticate-Nak code (RFC 1334 §2.2.2).
pub const PAP_AUTHENTICATE_NAK: u8 = 3;

/// CHAP Challenge code (RFC 1994 §4.1).
pub const CHAP_CHALLENGE: u8 = 1;
/// CHAP Response code (RFC 1994 §4.1).
pub const CHAP_RESPONSE: u8 = 2;
/// CHAP Success code (RFC 1994 §4.2).
pub const CHAP_SUCCESS: u8 = 3;
/// CHAP Failure code (RFC 1994 §4.2).
pub const CHAP_FAILURE: u8 = 4;

/// MS-CHAPv2 error code "authentication failure" (RFC 2759 §6).
pub const MSCHAP_ERROR_AUTHENTICATION_FAILURE: u32 = 691;
/// MS-CHAPv2 error code "restricted logon hours" (RFC 2759 §6).
pub const MSCHAP_ERROR_RESTRICTED_LOGON_HOURS: u32 = 646;
/// MS-CHAPv2 error code "account disabled" (RFC 2759 §6).
pub const MSCHAP_ERROR_ACCT_DISABLED: u32 = 647;
/// MS-CHAPv2 error code "password expired" (RFC 2759 §6).
pub const MSCHAP_ERROR_PASSWD_EXPIRED: u32 = 648;
/// MS-CHAPv2 error code "no dial-in permission" (RFC 2759 §6).
pub const MSCHAP_ERROR_NO_DIALIN_PERMISSION: u32 = 649;

/// The `E=` code an MS-CHAPv2 Failure carries for a verifier's `code`:
/// 646, 647, 648 and 649 as given, anything else (or none) 691.
#[must_use]
pub fn mschap_failure_code(code: Option<u32>) -> u32 {
    match code {
        Some(
            c @ (MSCHAP_ERROR_RESTRICTED_LOGON_HOURS
            | MSCHAP_ERROR_ACCT_DISABLED
            | MSCHAP_ERROR_PASSWD_EXPIRED
            | MSCHAP_ERROR_NO_DIALIN_PERMISSION),
        ) => c,
        _ => MSCHAP_ERROR_AUTHENTICATION_FAILURE,
    }
}

/// Largest packet Length a 16-bit field can carry.
const MAX_PACKET_LEN: usize = 0xffff;

/// Splits `buf` into (code, identifier, data), checking the Length field.
fn split_header(buf: &[u8]) -> Result<(u8, u8, &[u8]), AuthError> {
    let (&code, rest) = buf
        .split_first()
        .ok_or(AuthError::Malformed("empty authentication packet"))?;
    let (&id, rest) = rest.split_first().ok_or(AuthError::Malformed(
        "packet shorter than its 4-octet header",
    ))?;
    let len_bytes = rest.get(..2).ok_or(AuthError::Malformed(
        "packet shorter than its 4-octet header",
    ))?;
    let length = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    if length < 4 {
        return Err(AuthError::Malformed("Length field below 4"));
    }
    if length > buf.len() {
        return Err(AuthError::Malformed(
            "Length field beyond the received packet",
        ));
    }
    let data = buf
        .get(4..length)
        .ok_or(AuthError::Malformed("bad Length field"))?;
    Ok((code, id, data))
}

/// The octets of a packet that its Length field covers (the whole buffer if
/// the header does not parse). Used to compare retransmissions.
pub(crate) fn packet_extent(buf: &[u8]) -> &[u8] {
    match buf.get(2..4) {
        Some(&[hi, lo]) => buf
            .get(..usize::from(u16::from_be_bytes([hi, lo])))
            .unwrap_or(buf),
        _ => buf,
    }
}

/// Builds `Code Id Length data`.
fn build(
    code: u8,
    id: u8,
    data_len: usize,
    fill: impl FnOnce(&mut Vec<u8>),
) -> Result<Vec<u8>, AuthError> {
    let total = 4 + data_len;
    let length = u16::try_from(total)
        .ok()
        .filter(|_| total <= MAX_PACKET_LEN)
        .ok_or(AuthError::Misuse(
            "authentication packet longer than 65535 octets",
        ))?;
    let mut out = Vec::with_capacity(total);
    out.push(code);
    out.push(id);
    out.extend_from_slice(&length.to_be_bytes());
    fill(&mut out);
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// Reads a one-octet length followed by that many octets.
fn take_counted<'a>(data: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), AuthError> {
    let (&n, rest) = data.split_first().ok_or(AuthError::Malformed(what))?;
    let n = usize::from(n);
    if n > rest.len() {
        return Err(AuthError::Malformed(what));
    }
    Ok(rest.split_at(n))
}

fn counted_len(field: &[u8], what: &'static str) -> Result<u8, AuthError> {
    u8::try_from(field.len()).map_err(|_| AuthError::Misuse(what))
}

/// A PAP packet (RFC 1334 §2.2), borrowed from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PapPacket<'a> {
    /// Authenticate-Request (code 1), sent by the peer.
    Request {
        /// Identifier.
        id: u8,
        /// Peer-ID (the user name), at most 255 octets.
        peer_id: &'a [u8],
        /// Password, at most 255 octets.
        password: &'a [u8],
    },
    /// Authenticate-Ack (code 2), sent by the authenticator.
    Ack {
        /// Identifier (copied from the Request).
        id: u8,
        /// Message (may be empty).
        message: &'a [u8],
    },
    /// Authenticate-Nak (code 3), sent by the authenticator.
    Nak {
        /// Identifier (copied from the Request).
        id: u8,
        /// Message (may be empty).
        message: &'a [u8],
    },
}

impl<'a> PapPacket<'a> {
    /// Parses a PAP packet starting at its Code octet.
    ///
    /// An Ack/Nak with no Msg-Length octet at all is accepted with an empty
    /// message (some implementations send one); octets after the last field
    /// and inside Length are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        let (code, id, data) = split_header(buf)?;
        match code {
            PAP_AUTHENTICATE_REQUEST => {
                let (peer_id, rest) = take_counted(data, "PAP Peer-ID length beyond the packet")?;
                let (password, _) = take_counted(rest, "PAP Passwd-Length beyond the packet")?;
                Ok(PapPacket::Request {
                    id,
                    peer_id,
                    password,
                })
            }
            PAP_AUTHENTICATE_ACK | PAP_AUTHENTICATE_NAK => {
                let message = if data.is_empty() {
                    &[][..]
                } else {
                    take_counted(data, "PAP Msg-Length beyond the packet")?.0
                };
                Ok(if code == PAP_AUTHENTICATE_ACK {
                    PapPacket::Ack { id, message }
                } else {
                    PapPacket::Nak { id, message }
                })
            }
            _ => Err(AuthError::Malformed("unknown PAP code")),
        }
    }

    /// The packet's Identifier.
    #[must_use]
    pub fn id(&self) -> u8 {
        match *self {
            PapPacket::Request { id, .. }
            | PapPacket::Ack { id, .. }
            | PapPacket::Nak { id, .. } => id,
        }
    }

    /// Encodes the packet (Code .. data, no PPP protocol field).
    ///
    /// Fails with [`AuthError::Misuse`] if a field is longer than 255 octets.
    pub fn encode(&self) -> Result<Vec<u8>, AuthError> {
        match *self {
            PapPacket::Request {
                id,
                peer_id,
                password,
            } => {
                let a = counted_len(peer_id, "PAP Peer-ID longer than 255 octets")?;
                let b = counted_len(password, "PAP password longer than 255 octets")?;
                build(
                    PAP_AUTHENTICATE_REQUEST,
                    id,
                    2 + peer_id.len() + password.len(),
                    |o| {
                        o.push(a);
                        o.extend_from_slice(peer_id);
                        o.push(b);
                        o.extend_from_slice(password);
                    },
                )
            }
            PapPacket::Ack { id, message } | PapPacket::Nak { id, message } => {
                let code = if matches!(self, PapPacket::Ack { .. }) {
                    PAP_AUTHENTICATE_ACK
                } else {
                    PAP_AUTHENTICATE_NAK
                };
                let n = counted_len(message, "PAP message longer than 255 octets")?;
                build(code, id, 1 + message.len(), |o| {
                    o.push(n);
                    o.extend_from_slice(message);
                })
            }
        }
    }
}

/// A CHAP packet (RFC 1994 §4), borrowed from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapPacket<'a> {
    /// Challenge (code 1), sent by the authenticator.
    Challenge {
        /// Identifier.
        id: u8,
        /// Challenge value (1..=255 octets).
        value: &'a [u8],
        /// Name of the authenticator (the rest of the packet).
        name: &'a [u8],
    },
    /// Response (code 2), sent by the peer.
    Response {
        /// Identifier (copied from the Challenge).
        id: u8,
        /// Response value (1..=255 octets; 16 for MD5, 49 for MS-CHAPv2).
        value: &'a [u8],
        /// Name of the peer (the user name).
        name: &'a [u8],
    },
    /// Success (code 3), sent by the authenticator.
    Success {
        /// Identifier (copied from the Response).
        id: u8,
        /// Message (for MS-CHAPv2, `S=<40 hex> M=<text>`).
        message: &'a [u8],
    },
    /// Failure (code 4), sent by the authenticator.
    Failure {
        /// Identifier (copied from the Response).
        id: u8,
        /// Message (for MS-CHAPv2, `E=.. R=.. C=.. V=.. M=..`).
        message: &'a [u8],
    },
}

impl<'a> ChapPacket<'a> {
    /// Parses a CHAP packet starting at its Code octet.
    ///
    /// A Challenge or Response with Value-Size 0 is malformed.
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        let (code, id, data) = split_header(buf)?;
        match code {
            CHAP_CHALLENGE | CHAP_RESPONSE => {
                let (value, name) = take_counted(data, "CHAP Value-Size beyond the packet")?;
                if value.is_empty() {
                    return Err(AuthError::Malformed("CHAP Value-Size is 0"));
                }
                Ok(if code == CHAP_CHALLENGE {
                    ChapPacket::Challenge { id, value, name }
                } else {
                    ChapPacket::Response { id, value, name }
                })
            }
            CHAP_SUCCESS => Ok(ChapPacket::Success { id, message: data }),
            CHAP_FAILURE => Ok(ChapPacket::Failure { id, message: data }),
            _ => Err(AuthError::Malformed("unknown CHAP code")),
        }
    }

    /// The packet's Identifier.
    #[must_use]
    pub fn id(&self) -> u8 {
        match *self {
            ChapPacket::Challenge { id, .. }
            | ChapPacket::Response { id, .. }
            | ChapPacket::Success { id, .. }
            | ChapPacket::Failure { id, .. } => id,
        }
    }

    /// Encodes the packet (Code .. data, no PPP protocol field).
    ///
    /// Fails with [`AuthError::Misuse`] if a value is empty or longer than
    /// 255 octets, or the packet is longer than 65535 octets.
    pub fn encode(&self) -> Result<Vec<u8>, AuthError> {
        match *self {
            ChapPacket::Challenge { id, value, name }
            | ChapPacket::Response { id, value, name } => {
                let code = if matches!(self, ChapPacket::Challenge { .. }) {
                    CHAP_CHALLENGE
                } else {
                    CHAP_RESPONSE
                };
                if value.is_empty() {
                    return Err(AuthError::Misuse("CHAP value must not be empty"));
                }
                let n = counted_len(value, "CHAP value longer than 255 octets")?;
                build(code, id, 1 + value.len() + name.len(), |o| {
                    o.push(n);
                    o.extend_from_slice(value);
                    o.extend_from_slice(name);
                })
            }
            ChapPacket::Success { id, message } | ChapPacket::Failure { id, message } => {
                let code = if matches!(self, ChapPacket::Success { .. }) {
                    CHAP_SUCCESS
                } else {
                    CHAP_FAILURE
                };
                build(code, id, message.len(), |o| o.extend_from_slice(message))
            }
        }
    }
}

/// The 49-octet Response value of MS-CHAPv2 (RFC 2759 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Response {
    /// Peer-Challenge (16 octets, random, chosen by the peer).
    pub peer_challenge: [u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    /// NT-Response (24 octets).
    pub nt_response: [u8; NT_RESPONSE_LEN],
    /// Flags (the last octet; RFC 2759 says it MUST be 0, we keep what came).
    pub flags: u8,
}

impl MsChapV2Response {
    /// Length of the value: 16 peer challenge + 8 reserved + 24 NT-Response + 1 flags.
    pub const VALUE_LEN: usize = 49;

    /// Parses the Response value (the CHAP Value field, without Value-Size).
    ///
    /// The 8 reserved octets are not checked (RFC 2759 says they MUST be
    /// zero, but they carry nothing; pppd does not check them either).
    pub fn parse(value: &[u8]) -> Result<Self, AuthError> {
        if value.len() != Self::VALUE_LEN {
            return Err(AuthError::Malformed(
                "MS-CHAPv2 Response value is not 49 octets",
            ));
        }
        let mut peer_challenge = [0u8; MSCHAPV2_PEER_CHALLENGE_LEN];
        let mut nt_response = [0u8; NT_RESPONSE_LEN];
        peer_challenge.copy_from_slice(&value[..16]);
        nt_response.copy_from_slice(&value[24..48]);
        Ok(MsChapV2Response {
            peer_challenge,
            nt_response,
            flags: value[48],
        })
    }

    /// Encodes the 49-octet value (reserved octets zero).
    #[must_use]
    pub fn to_value(&self) -> [u8; Self::VALUE_LEN] {
        let mut v = [0u8; Self::VALUE_LEN];
        v[..16].copy_from_slice(&self.peer_challenge);
        v[24..48].copy_from_slice(&self.nt_response);
        v[48] = self.flags;
        v
    }
}

/// The message of an MS-CHAPv2 Success packet (RFC 2759 §5):
/// `S=<40 hex digits>` optionally followed by ` M=<text>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Success<'a> {
    /// The authenticator response (the 20 octets behind `S=`).
    pub authenticator_response: [u8; AUTHENTICATOR_RESPONSE_LEN],
    /// The text after ` M=` (empty if absent).
    pub message: &'a [u8],
}

impl<'a> MsChapV2Success<'a> {
    /// Parses a Success message. Hex digits of either case are accepted; what
    /// follows the 40 digits is the message if it starts with ` M=`, and is
    /// otherwise ignored.
    pub fn parse(message: &'a [u8]) -> Result<Self, AuthError> {
        let rest = message.strip_prefix(b"S=").ok_or(AuthError::Malformed(
            "MS-CHAPv2 Success message does not start with S=",
        ))?;
        let digits = rest
            .get(..2 * AUTHENTICATOR_RESPONSE_LEN)
            .ok_or(AuthError::Malformed(
                "MS-CHAPv2 Success S= shorter than 40 hex digits",
            ))?;
        let authenticator_response = decode_hex::<AUTHENTICATOR_RESPONSE_LEN>(digits).ok_or(
            AuthError::Malformed("MS-CHAPv2 Success S= is not 40 hex digits"),
        )?;
        let tail = rest.get(2 * AUTHENTICATOR_RESPONSE_LEN..).unwrap_or(&[]);
        let message = tail.strip_prefix(b" M=").unwrap_or(&[]);
        Ok(MsChapV2Success {
            authenticator_response,
            message,
        })
    }

    /// Encodes `S=<40 upper-case hex> M=<message>` (or without ` M=` when the
    /// message is empty).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(45 + self.message.len());
        s.push_str("S=");
        push_hex_upper(&mut s, &self.authenticator_response);
        let mut out = s.into_bytes();
        if !self.message.is_empty() {
            out.extend_from_slice(b" M=");
            out.extend_from_slice(self.message);
        }
        out
    }
}

/// The message of an MS-CHAPv2 Failure packet (RFC 2759 §6):
/// `E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Failure<'a> {
    /// Error code (`E=`), e.g. [`MSCHAP_ERROR_AUTHENTICATION_FAILURE`] (691).
    pub error: u32,
    /// Retry allowed (`R=1`).
    pub retry: bool,
    /// New authenticator challenge (`C=`, 32 hex digits), if present.
    pub challenge: Option<[u8; MSCHAPV2_CHALLENGE_LEN]>,
    /// Password-change protocol version (`V=`), if present.
    pub version: Option<u32>,
    /// The text after `M=` (empty if absent).
    pub message: &'a [u8],
}

impl<'a> MsChapV2Failure<'a> {
    /// Parses a Failure message. `E=` is required and must come first; `R=`,
    /// `C=` and `V=` are optional (MS-CHAPv1-style messages lack `C=`);
    /// `M=` takes the rest of the message. Unknown fields are skipped.
    pub fn parse(message: &'a [u8]) -> Result<Self, AuthError> {
        let mut rest = message;
        let mut error = None;
        let mut retry = false;
        let mut challenge = None;
        let mut version = None;
        let mut text: &'a [u8] = &[];
        while !rest.is_empty() {
            if let Some(m) = rest.strip_prefix(b"M=") {
                text = m;
                break;
            }
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let (field, after) = rest.split_at(end);
            rest = after.strip_prefix(b" ").unwrap_or(after);
            if field.is_empty() {
                continue;
            }
            if let Some(v) = field.strip_prefix(b"E=") {
                error = Some(
                    parse_decimal(v)
                        .ok_or(AuthError::Malformed("MS-CHAPv2 Failure E= is not a number"))?,
                );
            } else if error.is_none() {
                return Err(AuthError::Malformed(
                    "MS-CHAPv2 Failure message does not start with E=",
                ));
            } else if let Some(v) = field.strip_prefix(b"R=") {
                retry = match v {
                    b"0" => false,
                    b"1" => true,
                    _ => return Err(AuthError::Malformed("MS-CHAPv2 Failure R= is not 0 or 1")),
                };
            } else if let Some(v) = field.strip_prefix(b"C=") {
                challenge = Some(decode_hex::<MSCHAPV2_CHALLENGE_LEN>(v).ok_or(
                    AuthError::Malformed("MS-CHAPv2 Failure C= is not 32 hex digits"),
                )?);
            } else if let Some(v) = field.strip_prefix(b"V=") {
                version = Some(
                    parse_decimal(v)
                        .ok_or(AuthError::Malformed("MS-CHAPv2 Failure V= is not a number"))?,
                );
            }
        }
        let error = error.ok_or(AuthError::Malformed("MS-CHAPv2 Failure message has no E="))?;
        Ok(MsChapV2Failure {
            error,
            retry,
            challenge,
            version,
            message: text,
        })
    }

    /// Encodes `E=<error> R=<0|1> C=<32 upper-case hex> V=<version> M=<message>`
    /// (fields that are `None` are left out; `M=` is always present).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("E={} R={}", self.error, u8::from(self.retry));
        if let Some(c) = &self.challenge {
            s.push_str(" C=");
            push_hex_upper(&mut s, c);
        }
        if let Some(v) = self.version {
            s.push_str(&format!(" V={v}"));
        }
        s.push_str(" M=");
        let mut out = s.into_bytes();
        out.extend_from_slice(self.message);
        out
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pap_round_trip() {
        let p = PapPacket::Request {
            id: 7,
            peer_id: b"alice",
            password: b"s3cret",
        };
        let b = p.encode().unwrap();
        assert_eq!(hex::encode(&b), "0107001105616c69636506733363726574");
        assert_eq!(PapPacket::parse(&b).unwrap(), p);
        let a = PapPacket::Ack {
            id: 1,
            message: b"Login ok",
        };
        let b = a.encode().unwrap();
        assert_eq!(hex::encode(&b), "0201000d084c6f67696e206f6b");
        assert_eq!(PapPacket::parse(&b).unwrap(), a);
    }

    #[test]
    fn pap_rejects_bad_lengths() {
        // Length below 4, beyond the buffer, counted fields beyond Length.
        assert!(PapPacket::parse(&[1, 1, 0, 3]).is_err());
        assert!(PapPacket::parse(&[1, 1, 0, 9, 0]).is_err());
        assert!(PapPacket::parse(&[1, 1, 0, 6, 5, 0]).is_err());
        assert!(PapPacket::parse(&[1, 1, 0, 5, 0]).is_err()); // no Passwd-Length
        assert!(PapPacket::parse(&[9, 1, 0, 4]).is_err());
        // Padding beyond Length is ignored.
        assert_eq!(
            PapPacket::parse(&[1, 1, 0, 6, 0, 0, 0xff, 0xff]).unwrap(),
            PapPacket::Request {
                id: 1,
                peer_id: b"",
                password: b""
            }
        );
        // Ack without Msg-Length.
        assert_eq!(
            PapPacket::parse(&[2, 3, 0, 4]).unwrap(),
            PapPacket::Ack {
                id: 3,
                message: b""
            }
        );
        assert!(
            PapPacket::Ack {
                id: 1,
                message: &[0u8; 256]
            }
            .encode()
            .is_err()
        );
    }

    #[test]
    fn chap_round_trip() {
        let c = ChapPacket::Challenge {
            id: 0x65,
            value: &[1, 2, 3],
            name: b"srv",
        };
        let b = c.encode().unwrap();
        assert_eq!(b, [1, 0x65, 0, 11, 3, 1, 2, 3, b's', b'r', b'v']);
        assert_eq!(ChapPacket::parse(&b).unwrap(), c);
        let s = ChapPacket::Success {
            id: 2,
            message: b"ok",
        };
        assert_eq!(ChapPacket::parse(&s.encode().unwrap()).unwrap(), s);
        assert!(ChapPacket::parse(&[1, 1, 0, 5, 0]).is_err()); // value size 0
        assert!(ChapPacket::parse(&[2, 1, 0, 6, 5, 0]).is_err());
        assert!(ChapPacket::parse(&[5, 1, 0, 4]).is_err());
        assert!(
            ChapPacket::Response {
                id: 1,
                value: &[],
                name: b""
            }
            .encode()
            .is_err()
        );
    }

    #[test]
    fn mschapv2_response_value() {
        let v: Vec<u8> = (0u8..49).collect();
        let r = MsChapV2Response::parse(&v).unwrap();
        assert_eq!(r.peer_challenge[0], 0);
        assert_eq!(r.nt_response[0], 24);
        assert_eq!(r.flags, 48);
        let mut back = r.to_value();
        back[16..24].copy_from_slice(&v[16..24]);
        assert_eq!(back.to_vec(), v);
        assert!(MsChapV2Response::parse(&v[..48]).is_err());
    }

    #[test]
    fn mschapv2_success_message() {
        let m = b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Access granted";
        let s = MsChapV2Success::parse(m).unwrap();
        assert_eq!(
            hex::encode_upper(s.authenticator_response),
            "407A5589115FD0D6209F510FE9C04566932CDA56"
        );
        assert_eq!(s.message, b"Access granted");
        assert_eq!(s.encode(), m.to_vec());
        let lower = MsChapV2Success::parse(b"S=407a5589115fd0d6209f510fe9c04566932cda56").unwrap();
        assert_eq!(lower.authenticator_response, s.authenticator_response);
        assert!(lower.message.is_empty());
        assert!(MsChapV2Success::parse(b"S=407A").is_err());
        assert!(MsChapV2Success::parse(b"X=407A5589115FD0D6209F510FE9C04566932CDA56").is_err());
        assert!(MsChapV2Success::parse(b"S=G07A5589115FD0D6209F510FE9C04566932CDA56").is_err());
    }

    #[test]
    fn mschapv2_failure_message() {
        let m = b"E=691 R=1 C=a153be899cdc2b1854c362a4339931a5 V=0 M=Access denied";
        let f = MsChapV2Failure::parse(m).unwrap();
        assert_eq!(f.error, 691);
        assert!(f.retry);
        assert_eq!(
            hex::encode(f.challenge.unwrap()),
            "a153be899cdc2b1854c362a4339931a5"
        );
        assert_eq!(f.version, Some(0));
        assert_eq!(f.message, b"Access denied");
        let ours = MsChapV2Failure {
            error: 691,
            retry: false,
            challenge: Some([0xab; 16]),
            version: Some(3),
            message: b"no",
        };
        let enc = ours.encode();
        assert_eq!(
            enc,
            b"E=691 R=0 C=ABABABABABABABABABABABABABABABAB V=3 M=no".to_vec()
        );
        assert_eq!(MsChapV2Failure::parse(&enc).unwrap(), ours);
        // MS-CHAPv1 style, no C=, no M=.
        let v1 = MsChapV2Failure::parse(b"E=649 R=0").unwrap();
        assert_eq!(
            (v1.error, v1.retry, v1.challenge, v1.version),
            (649, false, None, None)
        );
        assert!(MsChapV2Failure::parse(b"R=0 E=691").is_err());
        assert!(MsChapV2Failure::parse(b"E=x").is_err());
        assert!(MsChapV2Failure::parse(b"E=99999999999").is_err());
        assert!(MsChapV2Failure::parse(b"E=691 R=2").is_err());
        assert!(MsChapV2Failure::parse(b"E=691 C=12").is_err());
        assert!(MsChapV2Failure::parse(b"").is_err());
    }
}
