//! RFC 4648 §6 base32 ("A".."Z", "2".."7").

use std::fmt;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes `data` as upper-case base32 without `=` padding (the form used in
/// `otpauth://` URIs).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Why a base32 string was refused (malformed input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base32Error {
    /// A character outside the alphabet, at this character index.
    InvalidCharacter {
        /// Index (in characters) of the offending character.
        index: usize,
    },
    /// The number of symbols cannot come from whole octets (1, 3 or 6 left
    /// over in the last group), or `=` padding is followed by more symbols.
    InvalidLength,
    /// The unused low bits of the last symbol are not zero (non-canonical).
    NonZeroPadding,
}

impl fmt::Display for Base32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base32Error::InvalidCharacter { index } => {
                write!(f, "invalid base32 character at index {index}")
            }
            Base32Error::InvalidLength => f.write_str("invalid base32 length"),
            Base32Error::NonZeroPadding => f.write_str("non-canonical base32 (trailing bits set)"),
        }
    }
}

impl std::error::Error for Base32Error {}

/// Decodes base32, case-insensitively. Spaces and dashes (as people copy
/// secrets in groups) are ignored; trailing `=` padding is accepted but not
/// required.
pub fn base32_decode(text: &str) -> Result<Vec<u8>, Base32Error> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut padding = false;
    for (index, c) in text.chars().enumerate() {
        if c == ' ' || c == '-' {
            continue;
        }
        if c == '=' {
            padding = true;
            continue;
        }
        if padding {
            return Err(Base32Error::InvalidLength);
        }
        let v = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u32 - 'A' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            _ => return Err(Base32Error::InvalidCharacter { index }),
        };
        symbols += 1;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(Base32Error::InvalidLength);
    }
    if acc != 0 {
        return Err(Base32Error::NonZeroPadding);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 §10 test vectors (padding removed on output).
    #[test]
    fn rfc4648_vectors() {
        let v = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, enc) in v {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(
                base32_decode(&enc.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(base32_decode("MZXW6YQ=").unwrap(), b"foob");
        assert_eq!(base32_decode("MZXW 6YTB-OI").unwrap(), b"foobar");
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(
            base32_decode("MZ1W"),
            Err(Base32Error::InvalidCharacter { index: 2 })
        );
        assert_eq!(base32_decode("M"), Err(Base32Error::InvalidLength));
        assert_eq!(base32_decode("MZX"), Err(Base32Error::InvalidLength));
        assert_eq!(base32_decode("MY=A"), Err(Base32Error::InvalidLength));
        // "MZ" has 2 leftover bits that must be zero: "MZ" -> 'f' + bits "10".
        assert_eq!(base32_decode("MZ"), Err(Base32Error::NonZeroPadding));
        assert_eq!(
            base32_decode("é"),
            Err(Base32Error::InvalidCharacter { index: 0 })
        );
    }
}
