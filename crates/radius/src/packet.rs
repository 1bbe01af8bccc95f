//! Packet framing (RFC 2865 §3): a checked zero-copy view ([`RawPacket`]) and
//! an owned, typed [`Packet`].

use crate::attr::{Attribute, MAX_VALUE_LEN};

/// Octets in the fixed header (Code, Identifier, Length, Authenticator).
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 §3 allows.
pub const MAX_PACKET_LEN: usize = 4096;

/// Packet type codes (RFC 2865 §3, RFC 2866 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Access-Request (1).
    AccessRequest,
    /// Access-Accept (2).
    AccessAccept,
    /// Access-Reject (3).
    AccessReject,
    /// Accounting-Request (4).
    AccountingRequest,
    /// Accounting-Response (5).
    AccountingResponse,
    /// Access-Challenge (11).
    AccessChallenge,
    /// Status-Server (12).
    StatusServer,
    /// Status-Client (13).
    StatusClient,
    /// Any other code.
    Other(u8),
}

impl Code {
    /// From the wire octet.
    pub fn from_u8(c: u8) -> Code {
        match c {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            13 => Code::StatusClient,
            other => Code::Other(other),
        }
    }

    /// To the wire octet.
    pub fn to_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::StatusClient => 13,
            Code::Other(c) => c,
        }
    }
}

/// Why received octets are not a RADIUS packet (malformed input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than 20 octets received.
    #[error("malformed RADIUS packet: {0} octets, shorter than the 20-octet header")]
    TooShort(usize),
    /// The Length field is below 20 or above 4096.
    #[error("malformed RADIUS packet: Length field {0} outside 20..=4096")]
    BadLength(u16),
    /// The datagram is shorter than its Length field (RFC 2865 §3: discard).
    #[error("malformed RADIUS packet: Length field says {length} but only {got} octets received")]
    Truncated {
        /// The Length field.
        length: u16,
        /// Octets received.
        got: usize,
    },
    /// An attribute with a length below 2 or running past the packet end.
    #[error("malformed RADIUS packet: bad attribute length at offset {0}")]
    BadAttribute(usize),
}

/// Why a packet cannot be encoded (our misuse: the caller asked for
/// something RADIUS cannot carry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute value is longer than 253 octets (or empty where the
    /// type requires a value).
    #[error("cannot encode attribute type {typ}: value of {len} octets (allowed 1..=253)")]
    BadValueLength {
        /// Attribute type.
        typ: u8,
        /// Value length.
        len: usize,
    },
    /// The whole packet would exceed 4096 octets.
    #[error("cannot encode RADIUS packet: {0} octets exceeds 4096")]
    PacketTooLong(usize),
    /// A User-Password longer than 128 octets (RFC 2865 §5.2).
    #[error("cannot hide User-Password of {0} octets (at most 128)")]
    PasswordTooLong(usize),
}

/// A received packet whose header and attribute framing have been checked
/// once; accessors then need no further checks. Octets past the Length field
/// (UDP padding) are ignored, as RFC 2865 §3 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    bytes: &'a [u8],
}

/// One attribute as it sits in a [`RawPacket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// Attribute type.
    pub typ: u8,
    /// Value octets.
    pub value: &'a [u8],
    /// Offset of the attribute's type octet from the packet start.
    pub offset: usize,
}

impl<'a> RawPacket<'a> {
    /// Checks the header, the Length field and the attribute framing.
    pub fn parse(datagram: &'a [u8]) -> Result<RawPacket<'a>, ParseError> {
        let Some(header) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(ParseError::TooShort(datagram.len()));
        };
        let length = u16::from_be_bytes([header[2], header[3]]);
        let len = usize::from(length);
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
            return Err(ParseError::BadLength(length));
        }
        let Some(bytes) = datagram.get(..len) else {
            return Err(ParseError::Truncated {
                length,
                got: datagram.len(),
            });
        };
        let mut off = HEADER_LEN;
        while off < len {
            let alen = match bytes.get(off + 1) {
                Some(l) => usize::from(*l),
                None => return Err(ParseError::BadAttribute(off)),
            };
            if alen < 2 || off + alen > len {
                return Err(ParseError::BadAttribute(off));
            }
            off += alen;
        }
        Ok(RawPacket { bytes })
    }

    /// The packet octets (exactly Length long).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Code.
    pub fn code(&self) -> Code {
        Code::from_u8(self.bytes[0])
    }

    /// Identifier.
    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    /// The Authenticator field.
    pub fn authenticator(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.bytes[4..HEADER_LEN]);
        a
    }

    /// Iterates the attributes in wire order.
    pub fn attributes(&self) -> RawAttributes<'a> {
        RawAttributes {
            bytes: self.bytes,
            off: HEADER_LEN,
        }
    }

    /// Decodes into an owned typed packet (cannot fail once framed).
    pub fn to_packet(&self) -> Packet {
        Packet {
            code: self.code(),
            identifier: self.identifier(),
            authenticator: self.authenticator(),
            attributes: self
                .attributes()
                .map(|a| Attribute::decode(a.typ, a.value))
                .collect(),
        }
    }
}

/// Iterator over the attributes of a [`RawPacket`].
#[derive(Debug, Clone)]
pub struct RawAttributes<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        // Framing was checked in `RawPacket::parse`; `get` keeps this
        // panic-free regardless.
        let typ = *self.bytes.get(self.off)?;
        let len = usize::from(*self.bytes.get(self.off + 1)?);
        let value = self.bytes.get(self.off + 2..self.off + len)?;
        let offset = self.off;
        self.off += len.max(2);
        Some(RawAttribute { typ, value, offset })
    }
}

/// An owned RADIUS packet with typed attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Code.
    pub code: Code,
    /// Identifier.
    pub identifier: u8,
    /// Authenticator field, as it is (no computation is done by [`Packet::encode`]).
    pub authenticator: [u8; 16],
    /// Attributes in wire order.
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// Parses and decodes a datagram.
    pub fn decode(datagram: &[u8]) -> Result<Packet, ParseError> {
        RawPacket::parse(datagram).map(|r| r.to_packet())
    }

    /// Encodes the packet exactly as it is, with the Length field computed.
    /// Authenticators are not computed here; see the request and response
    /// builders in this crate.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let attrs = serialize_attributes(&self.attributes)?;
        assemble(self.code, self.identifier, &self.authenticator, &[&attrs])
    }

    /// The first attribute matching `f`.
    pub fn find<T>(&self, f: impl FnMut(&Attribute) -> Option<T>) -> Option<T> {
        self.attributes.iter().find_map(f)
    }
}

/// Serializes attributes (type, length, value), checking each value size.
pub(crate) fn serialize_attributes(attrs: &[Attribute]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    for a in attrs {
        let v = a.value_bytes();
        if v.len() > MAX_VALUE_LEN {
            return Err(EncodeError::BadValueLength {
                typ: a.type_code(),
                len: v.len(),
            });
        }
        out.push(a.type_code());
        // v.len() <= 253, so + 2 fits.
        out.push((v.len() + 2) as u8);
        out.extend_from_slice(&v);
    }
    Ok(out)
}

/// Header + attribute parts; checks the total size.
pub(crate) fn assemble(
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    parts: &[&[u8]],
) -> Result<Vec<u8>, EncodeError> {
    let len = HEADER_LEN + parts.iter().map(|p| p.len()).sum::<usize>();
    if len > MAX_PACKET_LEN {
        return Err(EncodeError::PacketTooLong(len));
    }
    let mut out = Vec::with_capacity(len);
    out.push(code.to_u8());
    out.push(identifier);
    // len <= 4096 fits in u16.
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(authenticator);
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}
