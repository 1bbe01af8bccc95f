//! HMAC (RFC 2104) over any `Digest`, written here to avoid another
//! dependency. `block` is the hash's block size in octets (64 for SHA-1 and
//! SHA-256, 128 for SHA-512).

use sha1::Digest;

pub(crate) fn hmac<D: Digest>(block: usize, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let mut inner = D::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = D::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(&inner);
    outer.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::hmac;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 2202 §3 test cases 1, 2 and 6 (HMAC-SHA-1).
    #[test]
    fn rfc2202_sha1() {
        assert_eq!(
            hmac::<sha1::Sha1>(64, &[0x0b; 20], b"Hi There"),
            hex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            hmac::<sha1::Sha1>(64, b"Jefe", b"what do ya want for nothing?"),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert_eq!(
            hmac::<sha1::Sha1>(
                64,
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            hex("aa4ae5e15272d00e95705637ce8a3b55ed402112")
        );
    }

    // RFC 4231 §4.3 test case 2 (HMAC-SHA-256 and HMAC-SHA-512).
    #[test]
    fn rfc4231_sha2() {
        assert_eq!(
            hmac::<sha2::Sha256>(64, b"Jefe", b"what do ya want for nothing?"),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            hmac::<sha2::Sha512>(128, b"Jefe", b"what do ya want for nothing?"),
            hex(concat!(
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554",
                "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
            ))
        );
    }
}
