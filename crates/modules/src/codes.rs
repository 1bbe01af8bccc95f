//! The codes the built-in modules return, beside the Windows ones of
//! `securityhost::consts`.
//!
//! Module-defined values carry bit 29 (`0x2000_0000`), the bit Windows
//! reserves for application-defined error codes ("customer" codes: no Windows
//! system or RAS error code has it set), so they can never be mistaken for a
//! Windows number in a log. Modules also report the host's own codes: a
//! prompt that times out completes with ERROR `ERROR_REQUEST_TIMEOUT` (638).

/// Bit 29: an application-defined ("customer") code in Windows terms.
pub const MODULE_CODE_BASE: u32 = 0x2000_0000;

/// ERROR verdict: the users file could not be read (missing, unreadable,
/// too large). Logged with the path and the OS error. Decimal 536871169.
pub const ERROR_USERS_FILE_UNREADABLE: u32 = MODULE_CODE_BASE | 0x101;

/// ERROR verdict: the users file is not valid (TOML syntax, unknown keys, a
/// bad user name, a hash that is not argon2id PHC, parameters out of range).
/// Logged with the path and the culprit. Decimal 536871170.
pub const ERROR_USERS_FILE_INVALID: u32 = MODULE_CODE_BASE | 0x102;

/// ERROR verdict: the password could not be checked (the verifier task
/// failed or the runtime is shutting down). Decimal 536871171.
pub const ERROR_VERIFIER_FAILED: u32 = MODULE_CODE_BASE | 0x103;

/// What `End` returns when it aborts a dialog that has not completed: the
/// dialog task is stopped at once and no Complete will follow, so the host
/// must not wait its grace period (spec section 2: non-zero ends the
/// transaction at once). Decimal 536871184.
pub const END_ABORTED: u32 = MODULE_CODE_BASE | 0x110;

/// A short name for a module-defined code, for logs.
pub fn code_name(code: u32) -> &'static str {
    match code {
        ERROR_USERS_FILE_UNREADABLE => "ERROR_USERS_FILE_UNREADABLE",
        ERROR_USERS_FILE_INVALID => "ERROR_USERS_FILE_INVALID",
        ERROR_VERIFIER_FAILED => "ERROR_VERIFIER_FAILED",
        END_ABORTED => "END_ABORTED",
        other => securityhost::consts::error_name(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_customer_flagged() {
        let all = [
            ERROR_USERS_FILE_UNREADABLE,
            ERROR_USERS_FILE_INVALID,
            ERROR_VERIFIER_FAILED,
            END_ABORTED,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(a & MODULE_CODE_BASE, 0);
            assert_ne!(code_name(*a), "module-defined");
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(code_name(638), "ERROR_REQUEST_TIMEOUT");
    }
}
