//! RADIUS attributes: type numbers, enumerated values, and the typed
//! [`Attribute`] enum that keeps every attribute it does not model.

use std::net::Ipv4Addr;

/// Attribute type numbers (RFC 2865 §5, RFC 2866 §5, RFC 2869 §5, RFC 3579 §3.2).
pub mod types {
    /// User-Name (RFC 2865 §5.1).
    pub const USER_NAME: u8 = 1;
    /// User-Password (RFC 2865 §5.2).
    pub const USER_PASSWORD: u8 = 2;
    /// CHAP-Password (RFC 2865 §5.3).
    pub const CHAP_PASSWORD: u8 = 3;
    /// NAS-IP-Address (RFC 2865 §5.4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// NAS-Port (RFC 2865 §5.5).
    pub const NAS_PORT: u8 = 5;
    /// Service-Type (RFC 2865 §5.6).
    pub const SERVICE_TYPE: u8 = 6;
    /// Framed-Protocol (RFC 2865 §5.7).
    pub const FRAMED_PROTOCOL: u8 = 7;
    /// Framed-IP-Address (RFC 2865 §5.8).
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    /// Reply-Message (RFC 2865 §5.18).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (RFC 2865 §5.24).
    pub const STATE: u8 = 24;
    /// Class (RFC 2865 §5.25).
    pub const CLASS: u8 = 25;
    /// Vendor-Specific (RFC 2865 §5.26).
    pub const VENDOR_SPECIFIC: u8 = 26;
    /// Session-Timeout (RFC 2865 §5.27).
    pub const SESSION_TIMEOUT: u8 = 27;
    /// Called-Station-Id (RFC 2865 §5.30).
    pub const CALLED_STATION_ID: u8 = 30;
    /// Calling-Station-Id (RFC 2865 §5.31).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (RFC 2865 §5.32).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Proxy-State (RFC 2865 §5.33).
    pub const PROXY_STATE: u8 = 33;
    /// Acct-Status-Type (RFC 2866 §5.1).
    pub const ACCT_STATUS_TYPE: u8 = 40;
    /// Acct-Delay-Time (RFC 2866 §5.2).
    pub const ACCT_DELAY_TIME: u8 = 41;
    /// Acct-Input-Octets (RFC 2866 §5.3).
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    /// Acct-Output-Octets (RFC 2866 §5.4).
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    /// Acct-Session-Id (RFC 2866 §5.5).
    pub const ACCT_SESSION_ID: u8 = 44;
    /// Acct-Session-Time (RFC 2866 §5.7).
    pub const ACCT_SESSION_TIME: u8 = 46;
    /// Acct-Input-Packets (RFC 2866 §5.8).
    pub const ACCT_INPUT_PACKETS: u8 = 47;
    /// Acct-Output-Packets (RFC 2866 §5.9).
    pub const ACCT_OUTPUT_PACKETS: u8 = 48;
    /// Acct-Terminate-Cause (RFC 2866 §5.10).
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    /// Acct-Input-Gigawords (RFC 2869 §5.1).
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    /// Acct-Output-Gigawords (RFC 2869 §5.2).
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    /// CHAP-Challenge (RFC 2865 §5.40).
    pub const CHAP_CHALLENGE: u8 = 60;
    /// NAS-Port-Type (RFC 2865 §5.41).
    pub const NAS_PORT_TYPE: u8 = 61;
    /// Prompt (RFC 2869 §5.10).
    pub const PROMPT: u8 = 76;
    /// Message-Authenticator (RFC 3579 §3.2, formerly RFC 2869 §5.14).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
}

/// Enumerated attribute values.
pub mod values {
    /// Acct-Status-Type values (RFC 2866 §5.1).
    pub mod acct_status_type {
        /// Start.
        pub const START: u32 = 1;
        /// Stop.
        pub const STOP: u32 = 2;
        /// Interim-Update (RFC 2869 §2.1).
        pub const INTERIM_UPDATE: u32 = 3;
        /// Accounting-On.
        pub const ACCOUNTING_ON: u32 = 7;
        /// Accounting-Off.
        pub const ACCOUNTING_OFF: u32 = 8;
    }
    /// Acct-Terminate-Cause values (RFC 2866 §5.10).
    pub mod terminate_cause {
        /// User Request.
        pub const USER_REQUEST: u32 = 1;
        /// Lost Carrier.
        pub const LOST_CARRIER: u32 = 2;
        /// Lost Service.
        pub const LOST_SERVICE: u32 = 3;
        /// Idle Timeout.
        pub const IDLE_TIMEOUT: u32 = 4;
        /// Session Timeout.
        pub const SESSION_TIMEOUT: u32 = 5;
        /// Admin Reset.
        pub const ADMIN_RESET: u32 = 6;
        /// Admin Reboot.
        pub const ADMIN_REBOOT: u32 = 7;
        /// Port Error.
        pub const PORT_ERROR: u32 = 8;
        /// NAS Error.
        pub const NAS_ERROR: u32 = 9;
        /// NAS Request.
        pub const NAS_REQUEST: u32 = 10;
        /// NAS Reboot.
        pub const NAS_REBOOT: u32 = 11;
        /// Port Unneeded.
        pub const PORT_UNNEEDED: u32 = 12;
        /// Port Preempted.
        pub const PORT_PREEMPTED: u32 = 13;
        /// Port Suspended.
        pub const PORT_SUSPENDED: u32 = 14;
        /// Service Unavailable.
        pub const SERVICE_UNAVAILABLE: u32 = 15;
        /// Callback.
        pub const CALLBACK: u32 = 16;
        /// User Error.
        pub const USER_ERROR: u32 = 17;
        /// Host Request.
        pub const HOST_REQUEST: u32 = 18;
    }
    /// Service-Type values (RFC 2865 §5.6).
    pub mod service_type {
        /// Login.
        pub const LOGIN: u32 = 1;
        /// Framed.
        pub const FRAMED: u32 = 2;
        /// Callback Login.
        pub const CALLBACK_LOGIN: u32 = 3;
        /// Callback Framed.
        pub const CALLBACK_FRAMED: u32 = 4;
        /// Outbound.
        pub const OUTBOUND: u32 = 5;
        /// Administrative.
        pub const ADMINISTRATIVE: u32 = 6;
        /// NAS Prompt.
        pub const NAS_PROMPT: u32 = 7;
        /// Authenticate Only.
        pub const AUTHENTICATE_ONLY: u32 = 8;
    }
    /// Framed-Protocol values (RFC 2865 §5.7).
    pub mod framed_protocol {
        /// PPP.
        pub const PPP: u32 = 1;
        /// SLIP.
        pub const SLIP: u32 = 2;
    }
    /// NAS-Port-Type values (RFC 2865 §5.41).
    pub mod nas_port_type {
        /// Async (a serial line / modem).
        pub const ASYNC: u32 = 0;
        /// Sync.
        pub const SYNC: u32 = 1;
        /// ISDN Sync.
        pub const ISDN_SYNC: u32 = 2;
        /// Virtual (e.g. telnet).
        pub const VIRTUAL: u32 = 5;
    }
    /// Prompt values (RFC 2869 §5.10).
    pub mod prompt {
        /// The user's response must not be echoed.
        pub const NO_ECHO: u32 = 0;
        /// The user's response should be echoed.
        pub const ECHO: u32 = 1;
    }
}

/// The Microsoft vendor id (RFC 2548 §2).
pub const VENDOR_MICROSOFT: u32 = 311;

/// Microsoft vendor attribute type numbers (RFC 2548 §2).
pub mod ms_types {
    /// MS-CHAP-Error (RFC 2548 §2.1.5).
    pub const MS_CHAP_ERROR: u8 = 2;
    /// MS-CHAP-Challenge (RFC 2548 §2.3.2).
    pub const MS_CHAP_CHALLENGE: u8 = 11;
    /// MS-MPPE-Send-Key (RFC 2548 §2.4.2).
    pub const MS_MPPE_SEND_KEY: u8 = 16;
    /// MS-MPPE-Recv-Key (RFC 2548 §2.4.3).
    pub const MS_MPPE_RECV_KEY: u8 = 17;
    /// MS-CHAP2-Response (RFC 2548 §2.3.2).
    pub const MS_CHAP2_RESPONSE: u8 = 25;
    /// MS-CHAP2-Success (RFC 2548 §2.3.3).
    pub const MS_CHAP2_SUCCESS: u8 = 26;
}

/// A Microsoft (vendor 311) sub-attribute (RFC 2548).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsAttr {
    /// MS-CHAP-Challenge: the authenticator challenge (16 octets for MS-CHAPv2).
    ChapChallenge(Vec<u8>),
    /// MS-CHAP2-Response (50 octets on the wire: ident, flags, peer
    /// challenge, 8 reserved zero octets, NT-Response).
    Chap2Response {
        /// The PPP CHAP identifier.
        ident: u8,
        /// Flags (zero).
        flags: u8,
        /// The peer challenge.
        peer_challenge: [u8; 16],
        /// The NT-Response.
        nt_response: [u8; 24],
    },
    /// MS-CHAP2-Success: ident, then the authenticator response `S=<40 hex>`
    /// (possibly followed by ` M=<message>`).
    Chap2Success {
        /// The PPP CHAP identifier.
        ident: u8,
        /// The rest of the value.
        message: Vec<u8>,
    },
    /// MS-CHAP-Error: ident, then a text such as `E=691 R=1 C=... V=3 M=...`.
    ChapError {
        /// The PPP CHAP identifier.
        ident: u8,
        /// The rest of the value.
        message: Vec<u8>,
    },
    /// Any other Microsoft attribute (or a malformed one), kept verbatim.
    Other {
        /// Vendor type.
        vendor_type: u8,
        /// Value octets.
        value: Vec<u8>,
    },
}

impl MsAttr {
    fn decode(vendor_type: u8, v: &[u8]) -> MsAttr {
        use ms_types::*;
        let other = || MsAttr::Other {
            vendor_type,
            value: v.to_vec(),
        };
        match vendor_type {
            MS_CHAP_CHALLENGE if !v.is_empty() => MsAttr::ChapChallenge(v.to_vec()),
            MS_CHAP2_RESPONSE if v.len() == 50 && v[18..26].iter().all(|b| *b == 0) => {
                let mut peer_challenge = [0u8; 16];
                peer_challenge.copy_from_slice(&v[2..18]);
                let mut nt_response = [0u8; 24];
                nt_response.copy_from_slice(&v[26..50]);
                MsAttr::Chap2Response {
                    ident: v[0],
                    flags: v[1],
                    peer_challenge,
                    nt_response,
                }
            }
            MS_CHAP2_SUCCESS if !v.is_empty() => MsAttr::Chap2Success {
                ident: v[0],
                message: v[1..].to_vec(),
            },
            MS_CHAP_ERROR if !v.is_empty() => MsAttr::ChapError {
                ident: v[0],
                message: v[1..].to_vec(),
            },
            _ => other(),
        }
    }

    /// The vendor type and value octets of this sub-attribute.
    pub fn to_wire(&self) -> (u8, Vec<u8>) {
        use ms_types::*;
        match self {
            MsAttr::ChapChallenge(c) => (MS_CHAP_CHALLENGE, c.clone()),
            MsAttr::Chap2Response {
                ident,
                flags,
                peer_challenge,
                nt_response,
            } => {
                let mut v = Vec::with_capacity(50);
                v.push(*ident);
                v.push(*flags);
                v.extend_from_slice(peer_challenge);
                v.extend_from_slice(&[0u8; 8]);
                v.extend_from_slice(nt_response);
                (MS_CHAP2_RESPONSE, v)
            }
            MsAttr::Chap2Success { ident, message } => {
                let mut v = vec![*ident];
                v.extend_from_slice(message);
                (MS_CHAP2_SUCCESS, v)
            }
            MsAttr::ChapError { ident, message } => {
                let mut v = vec![*ident];
                v.extend_from_slice(message);
                (MS_CHAP_ERROR, v)
            }
            MsAttr::Other { vendor_type, value } => (*vendor_type, value.clone()),
        }
    }
}

/// One RADIUS attribute, typed where this crate knows the type.
///
/// Decoding never fails: an attribute of an unknown type, or of a known type
/// whose value has the wrong size (RFC 6929 §2.8 "invalid attribute"), becomes
/// [`Attribute::Other`] with its octets kept, so re-encoding is lossless.
/// String/text values are kept as octets (RADIUS text is UTF-8 by
/// specification, but a peer may send anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// User-Name (1).
    UserName(Vec<u8>),
    /// User-Password (2), in its **hidden** on-the-wire form (see
    /// [`crate::hide_password`]). To send a password, use
    /// [`crate::Request::with_password`], which hides it per server.
    UserPassword(Vec<u8>),
    /// CHAP-Password (3): the CHAP identifier and the 16-octet response.
    ChapPassword {
        /// PPP CHAP identifier.
        ident: u8,
        /// MD5(ident + password + challenge).
        response: [u8; 16],
    },
    /// NAS-IP-Address (4).
    NasIpAddress(Ipv4Addr),
    /// NAS-Port (5).
    NasPort(u32),
    /// Service-Type (6); see [`values::service_type`].
    ServiceType(u32),
    /// Framed-Protocol (7); see [`values::framed_protocol`].
    FramedProtocol(u32),
    /// Framed-IP-Address (8).
    FramedIpAddress(Ipv4Addr),
    /// Reply-Message (18), text.
    ReplyMessage(Vec<u8>),
    /// State (24), opaque.
    State(Vec<u8>),
    /// Class (25), opaque.
    Class(Vec<u8>),
    /// A Microsoft vendor attribute (Vendor-Specific, vendor 311, holding
    /// exactly one sub-attribute).
    Microsoft(MsAttr),
    /// Any other Vendor-Specific (26) attribute: vendor id and the raw
    /// vendor data.
    VendorSpecific {
        /// SMI network management private enterprise code.
        vendor_id: u32,
        /// The octets after the vendor id.
        data: Vec<u8>,
    },
    /// Session-Timeout (27), seconds.
    SessionTimeout(u32),
    /// Called-Station-Id (30).
    CalledStationId(Vec<u8>),
    /// Calling-Station-Id (31).
    CallingStationId(Vec<u8>),
    /// NAS-Identifier (32).
    NasIdentifier(Vec<u8>),
    /// Proxy-State (33).
    ProxyState(Vec<u8>),
    /// Acct-Status-Type (40); see [`values::acct_status_type`].
    AcctStatusType(u32),
    /// Acct-Delay-Time (41), seconds.
    AcctDelayTime(u32),
    /// Acct-Input-Octets (42), modulo 2^32 (see gigawords).
    AcctInputOctets(u32),
    /// Acct-Output-Octets (43), modulo 2^32.
    AcctOutputOctets(u32),
    /// Acct-Session-Id (44).
    AcctSessionId(Vec<u8>),
    /// Acct-Session-Time (46), seconds.
    AcctSessionTime(u32),
    /// Acct-Input-Packets (47).
    AcctInputPackets(u32),
    /// Acct-Output-Packets (48).
    AcctOutputPackets(u32),
    /// Acct-Terminate-Cause (49); see [`values::terminate_cause`].
    AcctTerminateCause(u32),
    /// Acct-Input-Gigawords (52): how many times Acct-Input-Octets wrapped.
    AcctInputGigawords(u32),
    /// Acct-Output-Gigawords (53).
    AcctOutputGigawords(u32),
    /// CHAP-Challenge (60).
    ChapChallenge(Vec<u8>),
    /// NAS-Port-Type (61); see [`values::nas_port_type`].
    NasPortType(u32),
    /// Prompt (76); see [`values::prompt`].
    Prompt(u32),
    /// Message-Authenticator (80). The encoders in this crate compute it; a
    /// value given by the caller is replaced.
    MessageAuthenticator([u8; 16]),
    /// An attribute of a type not modelled here, or a malformed one, verbatim.
    Other {
        /// Attribute type.
        typ: u8,
        /// Value octets.
        value: Vec<u8>,
    },
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

fn ip_of(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// Largest value of one attribute (255 minus type and length octets).
pub const MAX_VALUE_LEN: usize = 253;

impl Attribute {
    /// Decodes one attribute from its type and value octets. Never fails.
    pub fn decode(typ: u8, v: &[u8]) -> Attribute {
        use types::*;
        let s = || (!v.is_empty()).then(|| v.to_vec());
        let decoded = match typ {
            USER_NAME => s().map(Attribute::UserName),
            USER_PASSWORD => s().map(Attribute::UserPassword),
            CHAP_PASSWORD if v.len() == 17 => {
                let mut response = [0u8; 16];
                response.copy_from_slice(&v[1..]);
                Some(Attribute::ChapPassword {
                    ident: v[0],
                    response,
                })
            }
            NAS_IP_ADDRESS => ip_of(v).map(Attribute::NasIpAddress),
            NAS_PORT => u32_of(v).map(Attribute::NasPort),
            SERVICE_TYPE => u32_of(v).map(Attribute::ServiceType),
            FRAMED_PROTOCOL => u32_of(v).map(Attribute::FramedProtocol),
            FRAMED_IP_ADDRESS => ip_of(v).map(Attribute::FramedIpAddress),
            REPLY_MESSAGE => s().map(Attribute::ReplyMessage),
            STATE => s().map(Attribute::State),
            CLASS => s().map(Attribute::Class),
            VENDOR_SPECIFIC => decode_vsa(v),
            SESSION_TIMEOUT => u32_of(v).map(Attribute::SessionTimeout),
            CALLED_STATION_ID => s().map(Attribute::CalledStationId),
            CALLING_STATION_ID => s().map(Attribute::CallingStationId),
            NAS_IDENTIFIER => s().map(Attribute::NasIdentifier),
            PROXY_STATE => s().map(Attribute::ProxyState),
            ACCT_STATUS_TYPE => u32_of(v).map(Attribute::AcctStatusType),
            ACCT_DELAY_TIME => u32_of(v).map(Attribute::AcctDelayTime),
            ACCT_INPUT_OCTETS => u32_of(v).map(Attribute::AcctInputOctets),
            ACCT_OUTPUT_OCTETS => u32_of(v).map(Attribute::AcctOutputOctets),
            ACCT_SESSION_ID => s().map(Attribute::AcctSessionId),
            ACCT_SESSION_TIME => u32_of(v).map(Attribute::AcctSessionTime),
            ACCT_INPUT_PACKETS => u32_of(v).map(Attribute::AcctInputPackets),
            ACCT_OUTPUT_PACKETS => u32_of(v).map(Attribute::AcctOutputPackets),
            ACCT_TERMINATE_CAUSE => u32_of(v).map(Attribute::AcctTerminateCause),
            ACCT_INPUT_GIGAWORDS => u32_of(v).map(Attribute::AcctInputGigawords),
            ACCT_OUTPUT_GIGAWORDS => u32_of(v).map(Attribute::AcctOutputGigawords),
            CHAP_CHALLENGE => s().map(Attribute::ChapChallenge),
            NAS_PORT_TYPE => u32_of(v).map(Attribute::NasPortType),
            PROMPT => u32_of(v).map(Attribute::Prompt),
            MESSAGE_AUTHENTICATOR => <[u8; 16]>::try_from(v)
                .ok()
                .map(Attribute::MessageAuthenticator),
            _ => None,
        };
        decoded.unwrap_or_else(|| Attribute::Other {
            typ,
            value: v.to_vec(),
        })
    }

    /// The attribute type number.
    pub fn type_code(&self) -> u8 {
        use types::*;
        match self {
            Attribute::UserName(_) => USER_NAME,
            Attribute::UserPassword(_) => USER_PASSWORD,
            Attribute::ChapPassword { .. } => CHAP_PASSWORD,
            Attribute::NasIpAddress(_) => NAS_IP_ADDRESS,
            Attribute::NasPort(_) => NAS_PORT,
            Attribute::ServiceType(_) => SERVICE_TYPE,
            Attribute::FramedProtocol(_) => FRAMED_PROTOCOL,
            Attribute::FramedIpAddress(_) => FRAMED_IP_ADDRESS,
            Attribute::ReplyMessage(_) => REPLY_MESSAGE,
            Attribute::State(_) => STATE,
            Attribute::Class(_) => CLASS,
            Attribute::Microsoft(_) | Attribute::VendorSpecific { .. } => VENDOR_SPECIFIC,
            Attribute::SessionTimeout(_) => SESSION_TIMEOUT,
            Attribute::CalledStationId(_) => CALLED_STATION_ID,
            Attribute::CallingStationId(_) => CALLING_STATION_ID,
            Attribute::NasIdentifier(_) => NAS_IDENTIFIER,
            Attribute::ProxyState(_) => PROXY_STATE,
            Attribute::AcctStatusType(_) => ACCT_STATUS_TYPE,
            Attribute::AcctDelayTime(_) => ACCT_DELAY_TIME,
            Attribute::AcctInputOctets(_) => ACCT_INPUT_OCTETS,
            Attribute::AcctOutputOctets(_) => ACCT_OUTPUT_OCTETS,
            Attribute::AcctSessionId(_) => ACCT_SESSION_ID,
            Attribute::AcctSessionTime(_) => ACCT_SESSION_TIME,
            Attribute::AcctInputPackets(_) => ACCT_INPUT_PACKETS,
            Attribute::AcctOutputPackets(_) => ACCT_OUTPUT_PACKETS,
            Attribute::AcctTerminateCause(_) => ACCT_TERMINATE_CAUSE,
            Attribute::AcctInputGigawords(_) => ACCT_INPUT_GIGAWORDS,
            Attribute::AcctOutputGigawords(_) => ACCT_OUTPUT_GIGAWORDS,
            Attribute::ChapChallenge(_) => CHAP_CHALLENGE,
            Attribute::NasPortType(_) => NAS_PORT_TYPE,
            Attribute::Prompt(_) => PROMPT,
            Attribute::MessageAuthenticator(_) => MESSAGE_AUTHENTICATOR,
            Attribute::Other { typ, .. } => *typ,
        }
    }

    /// The value octets as sent on the wire (without type and length).
    /// The caller checks the size against [`MAX_VALUE_LEN`]; the packet
    /// encoders do.
    pub fn value_bytes(&self) -> Vec<u8> {
        match self {
            Attribute::UserName(v)
            | Attribute::UserPassword(v)
            | Attribute::ReplyMessage(v)
            | Attribute::State(v)
            | Attribute::Class(v)
            | Attribute::CalledStationId(v)
            | Attribute::CallingStationId(v)
            | Attribute::NasIdentifier(v)
            | Attribute::ProxyState(v)
            | Attribute::AcctSessionId(v)
            | Attribute::ChapChallenge(v) => v.clone(),
            Attribute::ChapPassword { ident, response } => {
                let mut v = vec![*ident];
                v.extend_from_slice(response);
                v
            }
            Attribute::NasIpAddress(a) | Attribute::FramedIpAddress(a) => a.octets().to_vec(),
            Attribute::NasPort(n)
            | Attribute::ServiceType(n)
            | Attribute::FramedProtocol(n)
            | Attribute::SessionTimeout(n)
            | Attribute::AcctStatusType(n)
            | Attribute::AcctDelayTime(n)
            | Attribute::AcctInputOctets(n)
            | Attribute::AcctOutputOctets(n)
            | Attribute::AcctSessionTime(n)
            | Attribute::AcctInputPackets(n)
            | Attribute::AcctOutputPackets(n)
            | Attribute::AcctTerminateCause(n)
            | Attribute::AcctInputGigawords(n)
            | Attribute::AcctOutputGigawords(n)
            | Attribute::NasPortType(n)
            | Attribute::Prompt(n) => n.to_be_bytes().to_vec(),
            Attribute::Microsoft(ms) => {
                let (vt, value) = ms.to_wire();
                let mut v = VENDOR_MICROSOFT.to_be_bytes().to_vec();
                v.push(vt);
                // A sub-attribute longer than 253 makes the whole attribute
                // too long; the packet encoder refuses it by total size, and
                // the saturated length octet is never emitted.
                v.push(u8::try_from(value.len() + 2).unwrap_or(u8::MAX));
                v.extend_from_slice(&value);
                v
            }
            Attribute::VendorSpecific { vendor_id, data } => {
                let mut v = vendor_id.to_be_bytes().to_vec();
                v.extend_from_slice(data);
                v
            }
            Attribute::MessageAuthenticator(m) => m.to_vec(),
            Attribute::Other { value, .. } => value.clone(),
        }
    }
}

/// Decodes Vendor-Specific: vendor 311 with exactly one well-formed
/// sub-attribute becomes [`Attribute::Microsoft`]; anything else with at
/// least a vendor id stays [`Attribute::VendorSpecific`].
fn decode_vsa(v: &[u8]) -> Option<Attribute> {
    let (id, data) = v.split_first_chunk::<4>()?;
    let vendor_id = u32::from_be_bytes(*id);
    if vendor_id == VENDOR_MICROSOFT
        && let [vt, vlen, rest @ ..] = data
        && usize::from(*vlen) == data.len()
    {
        let ms = MsAttr::decode(*vt, rest);
        // Only keep the typed form when re-encoding gives the same octets
        // (it always does for a length-consistent sub-attribute).
        return Some(Attribute::Microsoft(ms));
    }
    Some(Attribute::VendorSpecific {
        vendor_id,
        data: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_bad_sizes_become_other() {
        for typ in 0..=255u8 {
            for len in [0usize, 1, 3, 4, 5, 16, 17, 50] {
                let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let a = Attribute::decode(typ, &v);
                assert_eq!(a.type_code(), typ);
                assert_eq!(a.value_bytes(), v, "type {typ} len {len}: {a:?}");
            }
        }
        assert_eq!(
            Attribute::decode(types::NAS_PORT, &[0, 0, 1]),
            Attribute::Other {
                typ: types::NAS_PORT,
                value: vec![0, 0, 1]
            }
        );
    }

    #[test]
    fn microsoft_vsa() {
        // MS-CHAP-Error "\x01E=691" in a VSA: vendor 311, type 2, length 8.
        let v = [0, 0, 1, 0x37, 2, 8, 1, b'E', b'=', b'6', b'9', b'1'];
        let a = Attribute::decode(types::VENDOR_SPECIFIC, &v);
        assert_eq!(
            a,
            Attribute::Microsoft(MsAttr::ChapError {
                ident: 1,
                message: b"E=691".to_vec()
            })
        );
        assert_eq!(a.value_bytes(), v);
        // Two sub-attributes in one VSA stay raw.
        let v2 = [0, 0, 1, 0x37, 11, 3, 9, 11, 3, 8];
        assert!(matches!(
            Attribute::decode(types::VENDOR_SPECIFIC, &v2),
            Attribute::VendorSpecific { vendor_id: 311, .. }
        ));
        let r = MsAttr::Chap2Response {
            ident: 7,
            flags: 0,
            peer_challenge: [1; 16],
            nt_response: [2; 24],
        };
        let wire = Attribute::Microsoft(r.clone()).value_bytes();
        assert_eq!(wire.len(), 4 + 2 + 50);
        assert_eq!(
            Attribute::decode(types::VENDOR_SPECIFIC, &wire),
            Attribute::Microsoft(r)
        );
    }
}
