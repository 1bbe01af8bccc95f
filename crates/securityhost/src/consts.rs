//! The numbers of `rasshost.h` and the dialgate decisions (spec section 3).
//!
//! Windows numbers are kept as they are: modules log and compare them.

/// Grant: PPP authentication proceeds.
pub const SECURITYMSG_SUCCESS: u32 = 1;
/// Deny: hang up, log failed authentication.
pub const SECURITYMSG_FAILURE: u32 = 2;
/// Could not validate: hang up, log `dwError`.
pub const SECURITYMSG_ERROR: u32 = 3;

/// Success of a call that completes at once (`GetInfo`, `Begin`, `End`).
pub const NO_ERROR: u32 = 0;
/// Success return of `Send` and `Receive`.
pub const PENDING: u32 = 600;
/// Unknown or stale port handle.
pub const ERROR_INVALID_PORT_HANDLE: u32 = 601;
/// A length runs past the end of its buffer.
pub const ERROR_BUFFER_TOO_SMALL: u32 = 603;
/// `Receive` while one is pending.
pub const ERROR_ASYNC_REQUEST_PENDING: u32 = 616;
/// The caller hung up.
pub const ERROR_PORT_DISCONNECTED: u32 = 619;
/// `Receive` timed out.
pub const ERROR_REQUEST_TIMEOUT: u32 = 638;
/// A pointer outside the Begin buffers, a null pointer, a zero-length receive.
pub const ERROR_INVALID_PARAMETER: u32 = 87;

/// Longest user name, without its NUL (`UserName[UNLEN + 1]`).
pub const UNLEN: usize = 256;
/// Longest domain, without its NUL (`Domain[DNLEN + 1]`).
pub const DNLEN: usize = 15;
/// Longest device name, without its NUL (`DeviceName[MAX_DEVICE_NAME + 1]`).
pub const MAX_DEVICE_NAME: usize = 128;

/// A short name for a host error code, for logs.
pub fn error_name(code: u32) -> &'static str {
    match code {
        NO_ERROR => "NO_ERROR",
        PENDING => "PENDING",
        ERROR_INVALID_PORT_HANDLE => "ERROR_INVALID_PORT_HANDLE",
        ERROR_BUFFER_TOO_SMALL => "ERROR_BUFFER_TOO_SMALL",
        ERROR_ASYNC_REQUEST_PENDING => "ERROR_ASYNC_REQUEST_PENDING",
        ERROR_PORT_DISCONNECTED => "ERROR_PORT_DISCONNECTED",
        ERROR_REQUEST_TIMEOUT => "ERROR_REQUEST_TIMEOUT",
        ERROR_INVALID_PARAMETER => "ERROR_INVALID_PARAMETER",
        _ => "module-defined",
    }
}
