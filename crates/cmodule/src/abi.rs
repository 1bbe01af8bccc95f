//! The `#[repr(C)]` mirror of `include/rasshost.h`: the two structures, the
//! function types of the module's exports, and a table of every size, offset
//! and constant so a test can compare them with what a C compiler makes of
//! the header.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};

use securityhost::consts;
use securityhost::{HPort, SecurityInfo, SecurityMessage};

/// `HPORT`: an opaque pointer-sized handle, never NULL.
pub type Hport = *mut c_void;

/// `SECURITY_MESSAGE`, as a C module fills it in.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SecurityMessageC {
    /// `dwMsgId`: one of `SECURITYMSG_*`.
    pub dw_msg_id: u32,
    /// `hPort`: the handle from Begin.
    pub h_port: Hport,
    /// `dwError`: non-zero only for `SECURITYMSG_ERROR`.
    pub dw_error: u32,
    /// `UserName[UNLEN + 1]`.
    pub user_name: [c_char; consts::UNLEN + 1],
    /// `Domain[DNLEN + 1]`.
    pub domain: [c_char; consts::DNLEN + 1],
}

impl SecurityMessageC {
    /// The message as the sans-IO host validates it: every byte as the
    /// module wrote it, nothing interpreted yet.
    pub fn to_message(&self) -> SecurityMessage {
        let mut m = SecurityMessage::zeroed(HPort(self.h_port as usize as u64));
        m.msg_id = self.dw_msg_id;
        m.error = self.dw_error;
        for (d, s) in m.user_name.iter_mut().zip(self.user_name.iter()) {
            *d = *s as u8;
        }
        for (d, s) in m.domain.iter_mut().zip(self.domain.iter()) {
            *d = *s as u8;
        }
        m
    }
}

/// `RAS_SECURITY_INFO`, as the host fills it in for `GetInfo`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RasSecurityInfoC {
    /// `LastError`: 0 = last Receive done, 600 = pending, else its error.
    pub last_error: u32,
    /// `BytesReceived`: valid when `LastError == 0`.
    pub bytes_received: u32,
    /// `DeviceName[MAX_DEVICE_NAME + 1]`, NUL-terminated.
    pub device_name: [c_char; consts::MAX_DEVICE_NAME + 1],
}

impl RasSecurityInfoC {
    /// The C form of `info`; the device name is cut to fit with its NUL.
    pub fn from_info(info: &SecurityInfo) -> RasSecurityInfoC {
        let mut out = RasSecurityInfoC {
            last_error: info.last_error,
            bytes_received: info.bytes_received,
            device_name: [0; consts::MAX_DEVICE_NAME + 1],
        };
        let name = info.device_name.as_bytes();
        let n = name.len().min(consts::MAX_DEVICE_NAME);
        for (d, s) in out.device_name.iter_mut().zip(&name[..n]) {
            *d = *s as c_char;
        }
        out
    }
}

/// The `RasSecurityDialogComplete` the host passes to Begin. Windows declares
/// it `VOID`; so does dialgate.
pub type CompleteFn = unsafe extern "C" fn(*mut SecurityMessageC);

/// `DWORD RasSecurityDialogBegin(HPORT, PBYTE, DWORD, PBYTE, DWORD,
/// VOID (*)(SECURITY_MESSAGE *))`, exported by a module.
pub type BeginFn = unsafe extern "C" fn(Hport, *mut u8, u32, *mut u8, u32, CompleteFn) -> u32;

/// `DWORD RasSecurityDialogEnd(HPORT)`, exported by a module.
pub type EndFn = unsafe extern "C" fn(Hport) -> u32;

/// `DWORD RasSecurityDialogSend(HPORT, PBYTE, WORD)`, provided by the host.
pub type SendFn = unsafe extern "C" fn(Hport, *mut u8, u16) -> u32;

/// `DWORD RasSecurityDialogReceive(HPORT, PBYTE, PWORD, DWORD, int)`,
/// provided by the host.
pub type ReceiveFn = unsafe extern "C" fn(Hport, *mut u8, *mut u16, u32, c_int) -> u32;

/// `DWORD RasSecurityDialogGetInfo(HPORT, RAS_SECURITY_INFO *)`, provided by
/// the host.
pub type GetInfoFn = unsafe extern "C" fn(Hport, *mut RasSecurityInfoC) -> u32;

/// Every size and offset of the header, by the name the layout test prints
/// (`sizeof(X)`, `offsetof(X, f)`).
pub fn layout() -> Vec<(&'static str, u64)> {
    type M = SecurityMessageC;
    type I = RasSecurityInfoC;
    vec![
        ("sizeof(DWORD)", size_of::<u32>() as u64),
        ("sizeof(WORD)", size_of::<u16>() as u64),
        ("sizeof(BYTE)", size_of::<u8>() as u64),
        ("sizeof(CHAR)", size_of::<c_char>() as u64),
        ("sizeof(HPORT)", size_of::<Hport>() as u64),
        ("sizeof(SECURITY_MESSAGE)", size_of::<M>() as u64),
        (
            "offsetof(SECURITY_MESSAGE,dwMsgId)",
            offset_of!(M, dw_msg_id) as u64,
        ),
        (
            "offsetof(SECURITY_MESSAGE,hPort)",
            offset_of!(M, h_port) as u64,
        ),
        (
            "offsetof(SECURITY_MESSAGE,dwError)",
            offset_of!(M, dw_error) as u64,
        ),
        (
            "offsetof(SECURITY_MESSAGE,UserName)",
            offset_of!(M, user_name) as u64,
        ),
        (
            "offsetof(SECURITY_MESSAGE,Domain)",
            offset_of!(M, domain) as u64,
        ),
        ("sizeof(RAS_SECURITY_INFO)", size_of::<I>() as u64),
        (
            "offsetof(RAS_SECURITY_INFO,LastError)",
            offset_of!(I, last_error) as u64,
        ),
        (
            "offsetof(RAS_SECURITY_INFO,BytesReceived)",
            offset_of!(I, bytes_received) as u64,
        ),
        (
            "offsetof(RAS_SECURITY_INFO,DeviceName)",
            offset_of!(I, device_name) as u64,
        ),
    ]
}

/// Every constant of the header with its value.
pub fn constants() -> Vec<(&'static str, u64)> {
    use consts::*;
    vec![
        ("SECURITYMSG_SUCCESS", SECURITYMSG_SUCCESS.into()),
        ("SECURITYMSG_FAILURE", SECURITYMSG_FAILURE.into()),
        ("SECURITYMSG_ERROR", SECURITYMSG_ERROR.into()),
        ("NO_ERROR", NO_ERROR.into()),
        ("PENDING", PENDING.into()),
        ("ERROR_INVALID_PARAMETER", ERROR_INVALID_PARAMETER.into()),
        (
            "ERROR_INVALID_PORT_HANDLE",
            ERROR_INVALID_PORT_HANDLE.into(),
        ),
        ("ERROR_BUFFER_TOO_SMALL", ERROR_BUFFER_TOO_SMALL.into()),
        (
            "ERROR_ASYNC_REQUEST_PENDING",
            ERROR_ASYNC_REQUEST_PENDING.into(),
        ),
        ("ERROR_PORT_DISCONNECTED", ERROR_PORT_DISCONNECTED.into()),
        ("ERROR_REQUEST_TIMEOUT", ERROR_REQUEST_TIMEOUT.into()),
        ("UNLEN", UNLEN as u64),
        ("DNLEN", DNLEN as u64),
        ("MAX_DEVICE_NAME", MAX_DEVICE_NAME as u64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sizes_of_the_spec_on_x86_64() {
        assert_eq!(size_of::<SecurityMessageC>(), 296);
        assert_eq!(size_of::<RasSecurityInfoC>(), 140);
    }

    #[test]
    fn info_device_name_is_cut_with_its_nul() {
        let info = SecurityInfo {
            last_error: 0,
            bytes_received: 3,
            device_name: "x".repeat(300),
        };
        let c = RasSecurityInfoC::from_info(&info);
        assert_eq!(c.device_name[consts::MAX_DEVICE_NAME], 0);
        assert_eq!(c.device_name[consts::MAX_DEVICE_NAME - 1], b'x' as c_char);
    }
}
