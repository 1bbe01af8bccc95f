//! Wire formats of the control protocols (RFC 1661 §5, RFC 1332, RFC 1877):
//! the Code/Identifier/Length header shared by LCP and the NCPs, and the
//! Type/Length/Data configuration options.
//!
//! Parsing is done once by [`Packet::new_checked`] and [`parse_options`];
//! every length read from the wire is checked there, and the typed views
//! after it cannot read out of bounds.

use std::fmt;
use std::net::Ipv4Addr;

/// PPP protocol numbers used by this crate.
pub mod protocol {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0021;
    /// Van Jacobson compressed TCP/IP.
    pub const VJ_COMPRESSED: u16 = 0x002d;
    /// Van Jacobson uncompressed TCP/IP.
    pub const VJ_UNCOMPRESSED: u16 = 0x002f;
    /// Internet Protocol Control Protocol (RFC 1332).
    pub const IPCP: u16 = 0x8021;
    /// IPv6 Control Protocol (RFC 5072).
    pub const IPV6CP: u16 = 0x8057;
    /// Compression Control Protocol (RFC 1962).
    pub const CCP: u16 = 0x80fd;
    /// Link Control Protocol (RFC 1661).
    pub const LCP: u16 = 0xc021;
    /// Password Authentication Protocol (RFC 1334).
    pub const PAP: u16 = 0xc023;
    /// Challenge Handshake Authentication Protocol (RFC 1994).
    pub const CHAP: u16 = 0xc223;
}

/// Why a packet or option could not be parsed. Always the peer's fault
/// (malformed input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer octets than the 4-octet header.
    TooShort {
        /// Octets available.
        len: usize,
    },
    /// The Length field is below 4 or beyond the received octets.
    BadLength {
        /// The Length field.
        length: usize,
        /// Octets available.
        available: usize,
    },
    /// An option's Length field is below 2 or runs past the packet.
    BadOptionLength {
        /// The option type.
        kind: u8,
        /// The option's Length field (0 if missing).
        length: usize,
    },
    /// An option has a length that does not fit its type.
    BadOptionValue {
        /// The option type.
        kind: u8,
        /// The option's length.
        length: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooShort { len } => {
                write!(
                    f,
                    "malformed packet from peer: {len} octets, header needs 4"
                )
            }
            WireError::BadLength { length, available } => write!(
                f,
                "malformed packet from peer: Length {length} with {available} octets received"
            ),
            WireError::BadOptionLength { kind, length } => write!(
                f,
                "malformed option {kind} from peer: Length {length} invalid or past the packet"
            ),
            WireError::BadOptionValue { kind, length } => {
                write!(f, "malformed option {kind} from peer: bad length {length}")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Control packet codes (RFC 1661 §5). Unknown values are kept so that a
/// Code-Reject can echo them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1
    ConfigureRequest,
    /// 2
    ConfigureAck,
    /// 3
    ConfigureNak,
    /// 4
    ConfigureReject,
    /// 5
    TerminateRequest,
    /// 6
    TerminateAck,
    /// 7
    CodeReject,
    /// 8 (LCP only)
    ProtocolReject,
    /// 9 (LCP only)
    EchoRequest,
    /// 10 (LCP only)
    EchoReply,
    /// 11 (LCP only)
    DiscardRequest,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        match v {
            1 => Code::ConfigureRequest,
            2 => Code::ConfigureAck,
            3 => Code::ConfigureNak,
            4 => Code::ConfigureReject,
            5 => Code::TerminateRequest,
            6 => Code::TerminateAck,
            7 => Code::CodeReject,
            8 => Code::ProtocolReject,
            9 => Code::EchoRequest,
            10 => Code::EchoReply,
            11 => Code::DiscardRequest,
            other => Code::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> u8 {
        match c {
            Code::ConfigureRequest => 1,
            Code::ConfigureAck => 2,
            Code::ConfigureNak => 3,
            Code::ConfigureReject => 4,
            Code::TerminateRequest => 5,
            Code::TerminateAck => 6,
            Code::CodeReject => 7,
            Code::ProtocolReject => 8,
            Code::EchoRequest => 9,
            Code::EchoReply => 10,
            Code::DiscardRequest => 11,
            Code::Unknown(v) => v,
        }
    }
}

/// A checked control packet: the header was validated and `data` is exactly
/// the Length-delimited content after it (padding beyond Length is ignored,
/// RFC 1661 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    code: Code,
    identifier: u8,
    data: &'a [u8],
    raw: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks the header and Length of `buf`.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        let [code, identifier, l0, l1, ..] = *buf else {
            return Err(WireError::TooShort { len: buf.len() });
        };
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if length < 4 || length > buf.len() {
            return Err(WireError::BadLength {
                length,
                available: buf.len(),
            });
        }
        let raw = buf.get(..length).unwrap_or(buf);
        Ok(Packet {
            code: Code::from(code),
            identifier,
            data: raw.get(4..).unwrap_or(&[]),
            raw,
        })
    }

    /// The Code field.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The Identifier field.
    pub fn identifier(&self) -> u8 {
        self.identifier
    }

    /// The data after the header, up to Length.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The whole packet up to Length (header included).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// Builds a control packet `code id length data`. Data longer than
/// 65531 octets is truncated (never happens for what this crate builds).
pub fn build_packet(code: Code, identifier: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..usize::from(u16::MAX) - 4).unwrap_or(data);
    let len = (data.len() + 4) as u16;
    let mut v = Vec::with_capacity(data.len() + 4);
    v.push(u8::from(code));
    v.push(identifier);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// One configuration option as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// The Type field.
    pub kind: u8,
    /// The data after Type and Length.
    pub data: &'a [u8],
}

impl RawOption<'_> {
    /// Appends the option (type, length, data) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        push_option(out, self.kind, self.data);
    }
}

/// Appends an option `kind len data` to `out`. Data longer than 253 octets
/// is truncated.
pub fn push_option(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let data = data.get(..253).unwrap_or(data);
    out.push(kind);
    out.push((data.len() + 2) as u8);
    out.extend_from_slice(data);
}

/// Splits the options of a Configure-* packet, checking every length.
pub fn parse_options(mut data: &[u8]) -> Result<Vec<RawOption<'_>>, WireError> {
    let mut v = Vec::new();
    while let [kind, rest @ ..] = data {
        let Some(&len) = rest.first() else {
            return Err(WireError::BadOptionLength {
                kind: *kind,
                length: 0,
            });
        };
        let len = usize::from(len);
        if len < 2 || len > data.len() {
            return Err(WireError::BadOptionLength {
                kind: *kind,
                length: len,
            });
        }
        v.push(RawOption {
            kind: *kind,
            data: &data[2..len],
        });
        data = &data[len..];
    }
    Ok(v)
}

/// LCP configuration option types (RFC 1661 §6, RFC 1570 and others).
pub mod lcp_opt {
    /// Maximum-Receive-Unit.
    pub const MRU: u8 = 1;
    /// Async-Control-Character-Map (RFC 1662 §7.1).
    pub const ACCM: u8 = 2;
    /// Authentication-Protocol.
    pub const AUTH: u8 = 3;
    /// Quality-Protocol.
    pub const QUALITY: u8 = 4;
    /// Magic-Number.
    pub const MAGIC: u8 = 5;
    /// Protocol-Field-Compression.
    pub const PFC: u8 = 7;
    /// Address-and-Control-Field-Compression.
    pub const ACFC: u8 = 8;
}

/// A typed LCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpOption<'a> {
    /// Maximum-Receive-Unit.
    Mru(u16),
    /// Async-Control-Character-Map.
    Accm(u32),
    /// Authentication-Protocol with its protocol-specific data (for CHAP,
    /// the algorithm octet).
    AuthProtocol {
        /// The authentication protocol number.
        protocol: u16,
        /// Data after the protocol number.
        data: &'a [u8],
    },
    /// Magic-Number.
    MagicNumber(u32),
    /// Protocol-Field-Compression.
    Pfc,
    /// Address-and-Control-Field-Compression.
    Acfc,
    /// An option this crate does not negotiate (kept for Configure-Reject).
    Unknown(RawOption<'a>),
}

fn exact<const N: usize>(raw: &RawOption<'_>) -> Result<[u8; N], WireError> {
    <[u8; N]>::try_from(raw.data).map_err(|_| WireError::BadOptionValue {
        kind: raw.kind,
        length: raw.data.len() + 2,
    })
}

impl<'a> LcpOption<'a> {
    /// Types a raw option, checking the length its type needs.
    pub fn parse(raw: RawOption<'a>) -> Result<Self, WireError> {
        Ok(match raw.kind {
            lcp_opt::MRU => LcpOption::Mru(u16::from_be_bytes(exact(&raw)?)),
            lcp_opt::ACCM => LcpOption::Accm(u32::from_be_bytes(exact(&raw)?)),
            lcp_opt::AUTH => {
                let [h, l, data @ ..] = raw.data else {
                    return Err(WireError::BadOptionValue {
                        kind: raw.kind,
                        length: raw.data.len() + 2,
                    });
                };
                LcpOption::AuthProtocol {
                    protocol: u16::from_be_bytes([*h, *l]),
                    data,
                }
            }
            lcp_opt::MAGIC => LcpOption::MagicNumber(u32::from_be_bytes(exact(&raw)?)),
            lcp_opt::PFC => {
                exact::<0>(&raw)?;
                LcpOption::Pfc
            }
            lcp_opt::ACFC => {
                exact::<0>(&raw)?;
                LcpOption::Acfc
            }
            _ => LcpOption::Unknown(raw),
        })
    }

    /// Appends the option in wire form.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match *self {
            LcpOption::Mru(v) => push_option(out, lcp_opt::MRU, &v.to_be_bytes()),
            LcpOption::Accm(v) => push_option(out, lcp_opt::ACCM, &v.to_be_bytes()),
            LcpOption::AuthProtocol { protocol, data } => {
                let mut d = protocol.to_be_bytes().to_vec();
                d.extend_from_slice(data);
                push_option(out, lcp_opt::AUTH, &d);
            }
            LcpOption::MagicNumber(v) => push_option(out, lcp_opt::MAGIC, &v.to_be_bytes()),
            LcpOption::Pfc => push_option(out, lcp_opt::PFC, &[]),
            LcpOption::Acfc => push_option(out, lcp_opt::ACFC, &[]),
            LcpOption::Unknown(raw) => raw.emit(out),
        }
    }
}

/// IPCP configuration option types (RFC 1332, RFC 1877).
pub mod ipcp_opt {
    /// IP-Addresses (deprecated, RFC 1172).
    pub const IP_ADDRESSES: u8 = 1;
    /// IP-Compression-Protocol.
    pub const IP_COMPRESSION: u8 = 2;
    /// IP-Address.
    pub const IP_ADDRESS: u8 = 3;
    /// Primary DNS server address (RFC 1877).
    pub const PRIMARY_DNS: u8 = 129;
    /// Primary NBNS server address (RFC 1877).
    pub const PRIMARY_NBNS: u8 = 130;
    /// Secondary DNS server address (RFC 1877).
    pub const SECONDARY_DNS: u8 = 131;
    /// Secondary NBNS server address (RFC 1877).
    pub const SECONDARY_NBNS: u8 = 132;
}

/// A typed IPCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcpOption<'a> {
    /// IP-Address (3).
    IpAddress(Ipv4Addr),
    /// Primary DNS (129).
    PrimaryDns(Ipv4Addr),
    /// Primary NBNS (130).
    PrimaryNbns(Ipv4Addr),
    /// Secondary DNS (131).
    SecondaryDns(Ipv4Addr),
    /// Secondary NBNS (132).
    SecondaryNbns(Ipv4Addr),
    /// IP-Compression-Protocol (2) with its data (we always reject it).
    IpCompression(&'a [u8]),
    /// Anything else, including IP-Addresses (1).
    Unknown(RawOption<'a>),
}

impl<'a> IpcpOption<'a> {
    /// Types a raw option, checking the length its type needs.
    pub fn parse(raw: RawOption<'a>) -> Result<Self, WireError> {
        let addr = |raw: &RawOption<'_>| exact::<4>(raw).map(Ipv4Addr::from);
        Ok(match raw.kind {
            ipcp_opt::IP_ADDRESS => IpcpOption::IpAddress(addr(&raw)?),
            ipcp_opt::PRIMARY_DNS => IpcpOption::PrimaryDns(addr(&raw)?),
            ipcp_opt::PRIMARY_NBNS => IpcpOption::PrimaryNbns(addr(&raw)?),
            ipcp_opt::SECONDARY_DNS => IpcpOption::SecondaryDns(addr(&raw)?),
            ipcp_opt::SECONDARY_NBNS => IpcpOption::SecondaryNbns(addr(&raw)?),
            ipcp_opt::IP_COMPRESSION => {
                if raw.data.len() < 2 {
                    return Err(WireError::BadOptionValue {
                        kind: raw.kind,
                        length: raw.data.len() + 2,
                    });
                }
                IpcpOption::IpCompression(raw.data)
            }
            _ => IpcpOption::Unknown(raw),
        })
    }
}

/// Parses a whole LCP packet and its options if it is a Configure-*;
/// used by tests and fuzzing to exercise every parser at once.
pub fn parse_lcp(buf: &[u8]) -> Result<(Packet<'_>, Vec<LcpOption<'_>>), WireError> {
    let p = Packet::new_checked(buf)?;
    let mut opts = Vec::new();
    if matches!(u8::from(p.code()), 1..=4) {
        for raw in parse_options(p.data())? {
            opts.push(LcpOption::parse(raw)?);
        }
    }
    Ok((p, opts))
}

/// Parses a whole IPCP packet and its options if it is a Configure-*.
pub fn parse_ipcp(buf: &[u8]) -> Result<(Packet<'_>, Vec<IpcpOption<'_>>), WireError> {
    let p = Packet::new_checked(buf)?;
    let mut opts = Vec::new();
    if matches!(u8::from(p.code()), 1..=4) {
        for raw in parse_options(p.data())? {
            opts.push(IpcpOption::parse(raw)?);
        }
    }
    Ok((p, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(matches!(
            Packet::new_checked(&[1, 2, 0]),
            Err(WireError::TooShort { .. })
        ));
        assert!(matches!(
            Packet::new_checked(&[1, 2, 0, 3]),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            Packet::new_checked(&[1, 2, 0, 9, 0]),
            Err(WireError::BadLength { .. })
        ));
        let p = Packet::new_checked(&[1, 2, 0, 6, 7, 2, 0xaa]).unwrap();
        assert_eq!(p.data(), &[7, 2]);
        assert_eq!(p.raw().len(), 6);
        assert_eq!(Code::from(42), Code::Unknown(42));
        assert_eq!(u8::from(Code::Unknown(42)), 42);
    }

    #[test]
    fn option_checks() {
        assert!(parse_options(&[1]).is_err());
        assert!(parse_options(&[1, 1]).is_err());
        assert!(parse_options(&[1, 5, 0, 0]).is_err());
        let o = parse_options(&[7, 2, 5, 6, 1, 2, 3, 4]).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(
            LcpOption::parse(o[1]).unwrap(),
            LcpOption::MagicNumber(0x01020304)
        );
        assert!(
            LcpOption::parse(RawOption {
                kind: 1,
                data: &[1]
            })
            .is_err()
        );
        assert!(
            LcpOption::parse(RawOption {
                kind: 7,
                data: &[1]
            })
            .is_err()
        );
        assert!(
            IpcpOption::parse(RawOption {
                kind: 3,
                data: &[1, 2, 3]
            })
            .is_err()
        );
    }

    #[test]
    fn emit_roundtrip() {
        let opts = [
            LcpOption::Mru(1500),
            LcpOption::Accm(0),
            LcpOption::AuthProtocol {
                protocol: 0xc223,
                data: &[5],
            },
            LcpOption::MagicNumber(7),
            LcpOption::Pfc,
            LcpOption::Acfc,
        ];
        let mut buf = Vec::new();
        for o in &opts {
            o.emit(&mut buf);
        }
        let back: Vec<_> = parse_options(&buf)
            .unwrap()
            .into_iter()
            .map(|r| LcpOption::parse(r).unwrap())
            .collect();
        assert_eq!(back, opts);
    }
}
