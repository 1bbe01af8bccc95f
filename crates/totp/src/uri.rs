//! `otpauth://` key URIs (the de-facto Google Authenticator format).

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret_b32: &str,
    algorithm: &str,
    digits: u8,
    period: u64,
) -> String {
    let label = if issuer.is_empty() {
        percent_encode(account)
    } else {
        format!("{}:{}", percent_encode(issuer), percent_encode(account))
    };
    let mut uri = format!("otpauth://totp/{label}?secret={secret_b32}");
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        uri.push_str(&percent_encode(issuer));
    }
    uri.push_str(&format!(
        "&algorithm={algorithm}&digits={digits}&period={period}"
    ));
    uri
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn encodes_reserved() {
        assert_eq!(percent_encode("a b:c/d?é"), "a%20b%3Ac%2Fd%3F%C3%A9");
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
    }
}
