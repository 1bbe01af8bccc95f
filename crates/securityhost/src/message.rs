//! `SECURITY_MESSAGE`, `RAS_SECURITY_INFO`, port handles, and the validation
//! of a module's verdict (spec sections 3 and 4, `Complete`).

use std::fmt;

use crate::consts::{
    DNLEN, MAX_DEVICE_NAME, SECURITYMSG_ERROR, SECURITYMSG_FAILURE, SECURITYMSG_SUCCESS, UNLEN,
};

/// An opaque port handle (`HPORT`). The host never issues 0, never reuses a
/// value while the process lives, and validates it on every call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HPort(pub u64);

impl fmt::Debug for HPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HPort({:#x})", self.0)
    }
}

impl fmt::Display for HPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// `dwMsgId` values a module may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgId {
    /// `SECURITYMSG_SUCCESS`.
    Success,
    /// `SECURITYMSG_FAILURE`.
    Failure,
    /// `SECURITYMSG_ERROR`.
    Error,
}

impl MsgId {
    /// The wire value.
    pub fn value(self) -> u32 {
        match self {
            MsgId::Success => SECURITYMSG_SUCCESS,
            MsgId::Failure => SECURITYMSG_FAILURE,
            MsgId::Error => SECURITYMSG_ERROR,
        }
    }

    /// The message for a wire value, if it is one.
    pub fn from_value(v: u32) -> Option<MsgId> {
        match v {
            SECURITYMSG_SUCCESS => Some(MsgId::Success),
            SECURITYMSG_FAILURE => Some(MsgId::Failure),
            SECURITYMSG_ERROR => Some(MsgId::Error),
            _ => None,
        }
    }
}

/// `SECURITY_MESSAGE`, field for field as a C module fills it in, so that the
/// host can check what a C module really wrote (a string without its NUL, a
/// bad id). Rust modules build one with [`SecurityMessage::success`],
/// [`SecurityMessage::failure`] or [`SecurityMessage::error`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityMessage {
    /// `dwMsgId`: one of `SECURITYMSG_*`.
    pub msg_id: u32,
    /// `hPort`: the handle given to Begin.
    pub hport: HPort,
    /// `dwError`: non-zero only for `SECURITYMSG_ERROR`.
    pub error: u32,
    /// `UserName[UNLEN + 1]`: UTF-8, NUL-terminated.
    pub user_name: [u8; UNLEN + 1],
    /// `Domain[DNLEN + 1]`: UTF-8, NUL-terminated.
    pub domain: [u8; DNLEN + 1],
}

impl fmt::Debug for SecurityMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityMessage")
            .field("msg_id", &self.msg_id)
            .field("hport", &self.hport)
            .field("error", &self.error)
            .field(
                "user_name",
                &String::from_utf8_lossy(until_nul(&self.user_name)),
            )
            .field("domain", &String::from_utf8_lossy(until_nul(&self.domain)))
            .finish()
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// A name did not fit its fixed-size field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTooLong {
    /// `UserName` or `Domain`.
    pub field: &'static str,
    /// Its room in bytes, without the NUL.
    pub max: usize,
}

impl std::error::Error for FieldTooLong {}

impl fmt::Display for FieldTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} longer than {} bytes", self.field, self.max)
    }
}

fn fill<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], FieldTooLong> {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    if b.len() >= N || b.contains(&0) {
        return Err(FieldTooLong { field, max: N - 1 });
    }
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

impl SecurityMessage {
    /// An all-zero message for `hport` (every field as `memset(0)` leaves it).
    pub fn zeroed(hport: HPort) -> SecurityMessage {
        SecurityMessage {
            msg_id: 0,
            hport,
            error: 0,
            user_name: [0; UNLEN + 1],
            domain: [0; DNLEN + 1],
        }
    }

    /// `SECURITYMSG_SUCCESS` for `user` in `domain`.
    pub fn success(hport: HPort, user: &str, domain: &str) -> Result<Self, FieldTooLong> {
        Self::named(SECURITYMSG_SUCCESS, hport, user, domain)
    }

    /// `SECURITYMSG_FAILURE` for `user` in `domain`.
    pub fn failure(hport: HPort, user: &str, domain: &str) -> Result<Self, FieldTooLong> {
        Self::named(SECURITYMSG_FAILURE, hport, user, domain)
    }

    /// `SECURITYMSG_ERROR` with `code` in `dwError`.
    pub fn error(hport: HPort, code: u32) -> SecurityMessage {
        SecurityMessage {
            msg_id: SECURITYMSG_ERROR,
            error: code,
            ..Self::zeroed(hport)
        }
    }

    fn named(msg_id: u32, hport: HPort, user: &str, domain: &str) -> Result<Self, FieldTooLong> {
        Ok(SecurityMessage {
            msg_id,
            hport,
            error: 0,
            user_name: fill("UserName", user)?,
            domain: fill("Domain", domain)?,
        })
    }

    /// Checks the message as the host must (spec section 4, Complete) for the
    /// transaction whose handle is `expected`. An invalid message is never a
    /// grant: it comes back as the [`Defect`] that describes it.
    pub fn validate(&self, expected: HPort) -> Result<Verdict, Defect> {
        let id = MsgId::from_value(self.msg_id).ok_or(Defect::BadMsgId(self.msg_id))?;
        if self.hport != expected {
            return Err(Defect::WrongPort {
                got: self.hport,
                expected,
            });
        }
        match id {
            MsgId::Error => {
                if self.error == 0 {
                    return Err(Defect::ErrorWithoutCode);
                }
                Ok(Verdict::Error { code: self.error })
            }
            MsgId::Success | MsgId::Failure => {
                let user = c_string("UserName", &self.user_name)?;
                let domain = c_string("Domain", &self.domain)?;
                if user.is_empty() {
                    return Err(Defect::EmptyUserName(id));
                }
                if self.error != 0 {
                    return Err(Defect::ErrorCodeWithVerdict(id, self.error));
                }
                Ok(if id == MsgId::Success {
                    Verdict::Success { user, domain }
                } else {
                    Verdict::Failure { user, domain }
                })
            }
        }
    }
}

fn c_string(field: &'static str, bytes: &[u8]) -> Result<String, Defect> {
    let n = bytes
        .iter()
        .position(|&c| c == 0)
        .ok_or(Defect::Unterminated(field))?;
    String::from_utf8(bytes[..n].to_vec()).map_err(|_| Defect::NotUtf8(field))
}

/// A valid verdict from a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `SECURITYMSG_SUCCESS`: PPP authentication proceeds for `user`.
    Success {
        /// `UserName`.
        user: String,
        /// `Domain`.
        domain: String,
    },
    /// `SECURITYMSG_FAILURE`: hang up, log the failed authentication.
    Failure {
        /// `UserName`.
        user: String,
        /// `Domain`.
        domain: String,
    },
    /// `SECURITYMSG_ERROR`: hang up, log `dwError`.
    Error {
        /// `dwError`, never 0.
        code: u32,
    },
}

impl Verdict {
    /// The `dwMsgId` this verdict came from.
    pub fn msg_id(&self) -> MsgId {
        match self {
            Verdict::Success { .. } => MsgId::Success,
            Verdict::Failure { .. } => MsgId::Failure,
            Verdict::Error { .. } => MsgId::Error,
        }
    }
}

/// Something a module did against the contract. Each one hangs up the caller
/// and is logged; none is ever taken as a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Defect {
    /// `dwMsgId` not 1, 2 or 3.
    BadMsgId(u32),
    /// `hPort` in the message is not the transaction's.
    WrongPort {
        /// What the module wrote.
        got: HPort,
        /// The transaction's handle.
        expected: HPort,
    },
    /// SUCCESS or FAILURE with an empty `UserName`.
    EmptyUserName(MsgId),
    /// SUCCESS or FAILURE with a non-zero `dwError`.
    ErrorCodeWithVerdict(MsgId, u32),
    /// ERROR with `dwError == 0`.
    ErrorWithoutCode,
    /// A string field without its NUL.
    Unterminated(&'static str),
    /// A string field that is not UTF-8.
    NotUtf8(&'static str),
    /// A second Complete for the same transaction (ignored).
    SecondComplete,
    /// End did not return within the grace period.
    EndHung,
    /// Begin did not return within the dialog time limit.
    BeginHung,
    /// The module's code panicked, crashed or otherwise broke the contract;
    /// the text says how (for example "module process died: SIGSEGV").
    Other(String),
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::BadMsgId(v) => write!(f, "dwMsgId {v} is not 1, 2 or 3"),
            Defect::WrongPort { got, expected } => {
                write!(f, "hPort {got} is not this transaction's ({expected})")
            }
            Defect::EmptyUserName(id) => write!(f, "{id:?} with an empty UserName"),
            Defect::ErrorCodeWithVerdict(id, e) => write!(f, "{id:?} with dwError {e}"),
            Defect::ErrorWithoutCode => write!(f, "ERROR with dwError 0"),
            Defect::Unterminated(field) => write!(f, "{field} without its NUL"),
            Defect::NotUtf8(field) => write!(f, "{field} is not UTF-8"),
            Defect::SecondComplete => write!(f, "a second Complete (ignored)"),
            Defect::EndHung => write!(f, "End did not return within the grace period"),
            Defect::BeginHung => write!(f, "Begin did not return within the dialog time limit"),
            Defect::Other(s) => f.write_str(s),
        }
    }
}

/// `RAS_SECURITY_INFO`: the state of the last Receive and the device name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityInfo {
    /// 0 = the last Receive is done, 600 = pending, else its error.
    pub last_error: u32,
    /// Valid when `last_error == 0`.
    pub bytes_received: u32,
    /// For example `tcp 198.51.100.7:50412` or `/dev/ttyS0`; at most
    /// [`MAX_DEVICE_NAME`] bytes.
    pub device_name: String,
}

/// Cuts `name` to at most [`MAX_DEVICE_NAME`] bytes on a character boundary.
pub fn device_name(name: &str) -> String {
    let mut end = name.len().min(MAX_DEVICE_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: HPort = HPort(7);

    #[test]
    fn success_is_valid() {
        let m = SecurityMessage::success(P, "alice", "LAB").unwrap();
        assert_eq!(
            m.validate(P),
            Ok(Verdict::Success {
                user: "alice".into(),
                domain: "LAB".into()
            })
        );
    }

    #[test]
    fn failure_and_error_are_valid() {
        let m = SecurityMessage::failure(P, "bob", "").unwrap();
        assert_eq!(m.validate(P).unwrap().msg_id(), MsgId::Failure);
        let m = SecurityMessage::error(P, 5);
        assert_eq!(m.validate(P), Ok(Verdict::Error { code: 5 }));
    }

    #[test]
    fn bad_msg_id_is_a_defect() {
        for v in [0, 4, 600, u32::MAX] {
            let mut m = SecurityMessage::success(P, "alice", "").unwrap();
            m.msg_id = v;
            assert_eq!(m.validate(P), Err(Defect::BadMsgId(v)));
        }
    }

    #[test]
    fn wrong_port_is_a_defect() {
        let m = SecurityMessage::success(HPort(8), "alice", "").unwrap();
        assert!(matches!(m.validate(P), Err(Defect::WrongPort { .. })));
    }

    #[test]
    fn empty_user_is_a_defect_for_success_and_failure() {
        let mut m = SecurityMessage::zeroed(P);
        m.msg_id = SECURITYMSG_SUCCESS;
        assert_eq!(m.validate(P), Err(Defect::EmptyUserName(MsgId::Success)));
        m.msg_id = SECURITYMSG_FAILURE;
        assert_eq!(m.validate(P), Err(Defect::EmptyUserName(MsgId::Failure)));
    }

    #[test]
    fn error_code_with_success_is_a_defect() {
        let mut m = SecurityMessage::success(P, "alice", "").unwrap();
        m.error = 1;
        assert_eq!(
            m.validate(P),
            Err(Defect::ErrorCodeWithVerdict(MsgId::Success, 1))
        );
    }

    #[test]
    fn error_without_code_is_a_defect() {
        let m = SecurityMessage::error(P, 0);
        assert_eq!(m.validate(P), Err(Defect::ErrorWithoutCode));
    }

    #[test]
    fn unterminated_strings_are_defects() {
        let mut m = SecurityMessage::success(P, "alice", "").unwrap();
        m.user_name = [b'a'; UNLEN + 1];
        assert_eq!(m.validate(P), Err(Defect::Unterminated("UserName")));
        let mut m = SecurityMessage::success(P, "alice", "").unwrap();
        m.domain = [b'd'; DNLEN + 1];
        assert_eq!(m.validate(P), Err(Defect::Unterminated("Domain")));
    }

    #[test]
    fn non_utf8_is_a_defect() {
        let mut m = SecurityMessage::success(P, "alice", "").unwrap();
        m.user_name[0] = 0xff;
        assert_eq!(m.validate(P), Err(Defect::NotUtf8("UserName")));
    }

    #[test]
    fn names_longer_than_fields_are_refused() {
        let long = "x".repeat(UNLEN + 1);
        assert!(SecurityMessage::success(P, &long, "").is_err());
        let fits = "x".repeat(UNLEN);
        assert!(SecurityMessage::success(P, &fits, "").is_ok());
        assert!(SecurityMessage::success(P, "a", &"d".repeat(DNLEN + 1)).is_err());
        assert!(SecurityMessage::success(P, "a\0b", "").is_err());
    }

    #[test]
    fn device_name_is_cut_on_a_char_boundary() {
        let s = "é".repeat(100);
        let d = device_name(&s);
        assert!(d.len() <= MAX_DEVICE_NAME);
        assert!(s.starts_with(&d));
    }
}
