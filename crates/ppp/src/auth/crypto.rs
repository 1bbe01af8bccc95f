//! Cryptography of CHAP-MD5 (RFC 1994 §4.1) and MS-CHAPv2 (RFC 2759 §8).
//!
//! Every function here is pure: no IO, no randomness. The function names
//! follow the RFC 2759 pseudo-code (`NtPasswordHash` → [`nt_password_hash`],
//! and so on) so the code can be checked against the RFC line by line.
//!
//! Secrets and responses must be compared with [`ct_eq`] (constant time in
//! the length of the inputs). Intermediate key material created here is
//! overwritten with zeros before it goes out of scope (best effort: see
//! [`wipe`]).

use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::Md4;
use md5::Md5;
use sha1::{Digest, Sha1};

/// Length of an MS-CHAPv2 authenticator challenge (RFC 2759 §4).
pub const MSCHAPV2_CHALLENGE_LEN: usize = 16;
/// Length of an MS-CHAPv2 peer challenge (RFC 2759 §4).
pub const MSCHAPV2_PEER_CHALLENGE_LEN: usize = 16;
/// Length of an MS-CHAPv2 NT-Response (RFC 2759 §4).
pub const NT_RESPONSE_LEN: usize = 24;
/// Length of an MS-CHAPv2 authenticator response (SHA-1 digest, RFC 2759 §8.7).
pub const AUTHENTICATOR_RESPONSE_LEN: usize = 20;
/// Length of an NT password hash (MD4 digest, RFC 2759 §8.3).
pub const NT_HASH_LEN: usize = 16;
/// Length of a CHAP-MD5 response value (RFC 1994 §4.1, MD5 digest).
pub const CHAP_MD5_RESPONSE_LEN: usize = 16;

/// RFC 2759 §8.7 `Magic1`: "Magic server to client signing constant".
const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
/// RFC 2759 §8.7 `Magic2`: "Pad to make it do more than one iteration".
const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";

/// Compares two byte strings without an early exit on the first difference.
///
/// The running time depends only on the lengths, never on the contents; a
/// length mismatch returns `false` (lengths of responses are public).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff: u8 = 0;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Compares two secrets of possibly different lengths without revealing,
/// through timing, where they differ or how long the expected one is: both
/// are hashed (SHA-1) and the digests compared with [`ct_eq`].
#[must_use]
pub fn ct_eq_any_len(a: &[u8], b: &[u8]) -> bool {
    let mut da: [u8; 20] = Sha1::digest(a).into();
    let mut db: [u8; 20] = Sha1::digest(b).into();
    let ok = ct_eq(&da, &db);
    wipe(&mut da);
    wipe(&mut db);
    ok
}

/// Overwrites `buf` with zeros (best effort, no `unsafe`: the write is
/// followed by an optimisation barrier so it is not elided as a dead store).
pub fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b = 0;
    }
    std::hint::black_box(&*buf);
}

/// CHAP-MD5 response (RFC 1994 §4.1): `MD5(Identifier || secret || challenge)`.
#[must_use]
pub fn chap_md5_response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; CHAP_MD5_RESPONSE_LEN] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}

/// Checks a CHAP-MD5 response in constant time against the expected value.
#[must_use]
pub fn verify_chap_md5(id: u8, secret: &[u8], challenge: &[u8], response: &[u8]) -> bool {
    let mut expected = chap_md5_response(id, secret, challenge);
    let ok = ct_eq(&expected, response);
    wipe(&mut expected);
    ok
}

/// RFC 2759 §8.3 `NtPasswordHash`: MD4 of the password in UTF-16LE.
///
/// This is the value a server stores instead of the clear-text password
/// (the `users` file keeps it); everything an MS-CHAPv2 authenticator needs is
/// computable from it.
#[must_use]
pub fn nt_password_hash(password: &str) -> [u8; NT_HASH_LEN] {
    let mut unicode: Vec<u8> = Vec::with_capacity(password.len() * 2);
    for unit in password.encode_utf16() {
        unicode.extend_from_slice(&unit.to_le_bytes());
    }
    let out: [u8; NT_HASH_LEN] = Md4::digest(&unicode).into();
    wipe(&mut unicode);
    out
}

/// RFC 2759 §8.4 `HashNtPasswordHash`: MD4 of the NT password hash.
#[must_use]
pub fn hash_nt_password_hash(nt_hash: &[u8; NT_HASH_LEN]) -> [u8; NT_HASH_LEN] {
    Md4::digest(nt_hash).into()
}

/// RFC 2759 §8.2 `ChallengeHash`: the first 8 bytes of
/// `SHA1(PeerChallenge || AuthenticatorChallenge || UserName)`.
///
/// `user_name` is hashed as given; see [`mschap_hash_user`] for the
/// "DOMAIN\user" convention.
#[must_use]
pub fn challenge_hash(
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer_challenge);
    h.update(authenticator_challenge);
    h.update(user_name);
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The part of an MS-CHAP user name that goes into [`challenge_hash`].
///
/// Microsoft clients send `DOMAIN\user` as the CHAP Name but hash only
/// `user` (the text after the last backslash); pppd does the same on both
/// sides. A name without a backslash is returned unchanged.
#[must_use]
pub fn mschap_hash_user(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'\\') {
        Some(pos) => name.get(pos + 1..).unwrap_or(&[]),
        None => name,
    }
}

/// Expands 7 key bytes into an 8-byte DES key (RFC 2759 §8.6 `DesEncrypt`:
/// each output byte carries 7 key bits in its high bits; the low, parity,
/// bit is left 0 because DES ignores it).
fn des_key_from_7(k: &[u8; 7]) -> [u8; 8] {
    let mut bits: u64 = 0;
    for &b in k {
        bits = (bits << 8) | u64::from(b);
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        // Take 7 bits at a time, most significant first (56 bits in total).
        let shift = 49 - 7 * i as u32;
        let seven = ((bits >> shift) & 0x7f) as u8;
        *o = seven << 1;
    }
    bits = 0;
    std::hint::black_box(bits);
    out
}

/// RFC 2759 §8.6 `DesEncrypt`: DES-encrypts 8 clear bytes with a 7-byte key.
fn des_encrypt(clear: &[u8; 8], key7: &[u8; 7]) -> [u8; 8] {
    let mut key = des_key_from_7(key7);
    let cipher = Des::new(&key.into());
    wipe(&mut key);
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// RFC 2759 §8.5 `ChallengeResponse`: the 16-byte hash is zero-padded to 21
/// bytes, split in three 7-byte DES keys, each of which encrypts the 8-byte
/// challenge.
#[must_use]
pub fn challenge_response(
    challenge: &[u8; 8],
    nt_hash: &[u8; NT_HASH_LEN],
) -> [u8; NT_RESPONSE_LEN] {
    let mut z = [0u8; 21];
    z[..NT_HASH_LEN].copy_from_slice(nt_hash);
    let mut out = [0u8; NT_RESPONSE_LEN];
    for i in 0..3 {
        let mut k = [0u8; 7];
        k.copy_from_slice(&z[7 * i..7 * i + 7]);
        let part = des_encrypt(challenge, &k);
        wipe(&mut k);
        out[8 * i..8 * i + 8].copy_from_slice(&part);
    }
    wipe(&mut z);
    out
}

/// RFC 2759 §8.1 `GenerateNTResponse`, from the NT password hash (what a
/// server that stores only the hash can compute).
#[must_use]
pub fn generate_nt_response_from_hash(
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    user_name: &[u8],
    nt_hash: &[u8; NT_HASH_LEN],
) -> [u8; NT_RESPONSE_LEN] {
    let ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    challenge_response(&ch, nt_hash)
}

/// RFC 2759 §8.1 `GenerateNTResponse`, from the clear-text password.
#[must_use]
pub fn generate_nt_response(
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    user_name: &[u8],
    password: &str,
) -> [u8; NT_RESPONSE_LEN] {
    let mut h = nt_password_hash(password);
    let out =
        generate_nt_response_from_hash(authenticator_challenge, peer_challenge, user_name, &h);
    wipe(&mut h);
    out
}

/// RFC 2759 §8.7 `GenerateAuthenticatorResponse`, from the NT password hash.
///
/// Returns the 20-byte digest; [`authenticator_response_string`] formats it
/// as the `S=<40 hex>` text of a Success message.
#[must_use]
pub fn generate_authenticator_response_from_hash(
    nt_hash: &[u8; NT_HASH_LEN],
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; AUTHENTICATOR_RESPONSE_LEN] {
    let mut hash_hash = hash_nt_password_hash(nt_hash);
    let mut h = Sha1::new();
    h.update(hash_hash);
    h.update(nt_response);
    h.update(MAGIC1);
    let mut digest: [u8; 20] = h.finalize().into();
    wipe(&mut hash_hash);
    let ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    let mut h = Sha1::new();
    h.update(digest);
    h.update(ch);
    h.update(MAGIC2);
    let out: [u8; 20] = h.finalize().into();
    wipe(&mut digest);
    out
}

/// RFC 2759 §8.7 `GenerateAuthenticatorResponse`, from the clear-text password.
#[must_use]
pub fn generate_authenticator_response(
    password: &str,
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; AUTHENTICATOR_RESPONSE_LEN] {
    let mut h = nt_password_hash(password);
    let out = generate_authenticator_response_from_hash(
        &h,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user_name,
    );
    wipe(&mut h);
    out
}

/// Formats an authenticator response as RFC 2759 §5 wants it in a Success
/// packet: `S=` followed by 40 upper-case hex digits.
#[must_use]
pub fn authenticator_response_string(resp: &[u8; AUTHENTICATOR_RESPONSE_LEN]) -> String {
    let mut s = String::with_capacity(42);
    s.push_str("S=");
    push_hex_upper(&mut s, resp);
    s
}

/// RFC 2759 §8.8 `CheckAuthenticatorResponse` (peer side, mutual
/// authentication): recomputes the authenticator response from the password
/// and compares it, in constant time, with the one the authenticator sent.
#[must_use]
pub fn check_authenticator_response(
    password: &str,
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    user_name: &[u8],
    received: &[u8; AUTHENTICATOR_RESPONSE_LEN],
) -> bool {
    let mut mine = generate_authenticator_response(
        password,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user_name,
    );
    let ok = ct_eq(&mine, received);
    wipe(&mut mine);
    ok
}

/// Server-side MS-CHAPv2 check with only the NT password hash known.
///
/// Recomputes the NT-Response (RFC 2759 §8.1) for `user_name` and compares
/// it in constant time with `nt_response`. On a match, returns the
/// authenticator response (RFC 2759 §8.7) to put in the Success packet;
/// on a mismatch, `None`. `user_name` is hashed as given (apply
/// [`mschap_hash_user`] to a CHAP Name first).
#[must_use]
pub fn verify_nt_response(
    nt_hash: &[u8; NT_HASH_LEN],
    authenticator_challenge: &[u8; MSCHAPV2_CHALLENGE_LEN],
    peer_challenge: &[u8; MSCHAPV2_PEER_CHALLENGE_LEN],
    user_name: &[u8],
    nt_response: &[u8; NT_RESPONSE_LEN],
) -> Option<[u8; AUTHENTICATOR_RESPONSE_LEN]> {
    let expected =
        generate_nt_response_from_hash(authenticator_challenge, peer_challenge, user_name, nt_hash);
    if !ct_eq(&expected, nt_response) {
        return None;
    }
    Some(generate_authenticator_response_from_hash(
        nt_hash,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        user_name,
    ))
}

pub(crate) fn push_hex_upper(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// Decodes exactly `N` bytes from `2 * N` hex digits (either case).
pub(crate) fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = hex_val(*pair.first()?)?;
        let lo = hex_val(*pair.get(1)?)?;
        *o = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }
    fn arr<const N: usize>(s: &str) -> [u8; N] {
        h(s).try_into().unwrap()
    }

    // RFC 2759 §9.2 "Sample Data", every intermediate value.
    const USER: &[u8] = b"User";
    const PASSWORD: &str = "clientPass";
    const AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
    const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
    const CHALLENGE: &str = "D0 2E 43 86 BC E9 12 26";
    const NT_RESPONSE: &str =
        "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
    const PASSWORD_HASH: &str = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE";
    const PASSWORD_HASH_HASH: &str = "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F";
    const AUTH_RESPONSE: &str = "S=407A5589115FD0D6209F510FE9C04566932CDA56";

    #[test]
    fn rfc2759_9_2_vector() {
        let ac: [u8; 16] = arr(AUTH_CHALLENGE);
        let pc: [u8; 16] = arr(PEER_CHALLENGE);
        let nth = nt_password_hash(PASSWORD);
        assert_eq!(nth.to_vec(), h(PASSWORD_HASH));
        assert_eq!(hash_nt_password_hash(&nth).to_vec(), h(PASSWORD_HASH_HASH));
        assert_eq!(challenge_hash(&pc, &ac, USER).to_vec(), h(CHALLENGE));
        let ntr = generate_nt_response(&ac, &pc, USER, PASSWORD);
        assert_eq!(ntr.to_vec(), h(NT_RESPONSE));
        assert_eq!(
            challenge_response(&arr(CHALLENGE), &nth).to_vec(),
            h(NT_RESPONSE)
        );
        let ar = generate_authenticator_response(PASSWORD, &ntr, &pc, &ac, USER);
        assert_eq!(authenticator_response_string(&ar), AUTH_RESPONSE);
        assert!(check_authenticator_response(
            PASSWORD, &ntr, &pc, &ac, USER, &ar
        ));
        let mut bad = ar;
        bad[19] ^= 1;
        assert!(!check_authenticator_response(
            PASSWORD, &ntr, &pc, &ac, USER, &bad
        ));
        // Server side with only the hash.
        assert_eq!(verify_nt_response(&nth, &ac, &pc, USER, &ntr), Some(ar));
        let mut wrong = ntr;
        wrong[0] ^= 0x80;
        assert_eq!(verify_nt_response(&nth, &ac, &pc, USER, &wrong), None);
        assert_eq!(
            verify_nt_response(&nt_password_hash("clientPasS"), &ac, &pc, USER, &ntr),
            None
        );
    }

    #[test]
    fn rfc2759_9_2_des_key_expansion() {
        // RFC 2759 §9.2 gives the UNICODE password; check our UTF-16LE too by
        // hashing it directly.
        let unicode = h("63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00");
        let direct: [u8; 16] = Md4::digest(&unicode).into();
        assert_eq!(direct, nt_password_hash(PASSWORD));
        // Key expansion: 7 bytes of ones give 8 bytes of 0xfe (parity 0).
        assert_eq!(des_key_from_7(&[0xff; 7]), [0xfe; 8]);
        // 0x80 0 0 0 0 0 0 -> first byte 0x80 (bit 55 -> bit 7 of byte 0).
        assert_eq!(
            des_key_from_7(&[0x80, 0, 0, 0, 0, 0, 0]),
            [0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        // The last bit of the 7 bytes lands in bit 1 of the last byte.
        assert_eq!(
            des_key_from_7(&[0, 0, 0, 0, 0, 0, 1]),
            [0, 0, 0, 0, 0, 0, 0, 2]
        );
    }

    #[test]
    fn chap_md5_hand_checked() {
        // MD5(0x01 || "secret" || 00 01 .. 0f), computed independently with
        // Python's hashlib: hashlib.md5(b'\x01secret' + bytes(range(16))).
        let challenge: Vec<u8> = (0u8..16).collect();
        let r = chap_md5_response(1, b"secret", &challenge);
        assert_eq!(r.to_vec(), h("740e86463bda3a4d7017d6e0fba0699d"));
        assert!(verify_chap_md5(1, b"secret", &challenge, &r));
        assert!(!verify_chap_md5(2, b"secret", &challenge, &r));
        assert!(!verify_chap_md5(1, b"secreT", &challenge, &r));
        assert!(!verify_chap_md5(1, b"secret", &challenge, &r[..15]));
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq_any_len(b"s3cret", b"s3cret"));
        assert!(!ct_eq_any_len(b"s3cret", b"s3cre"));
        assert!(!ct_eq_any_len(b"s3cret", b"s3creT"));
        assert!(ct_eq_any_len(b"", b""));
    }

    #[test]
    fn hash_user_strips_domain() {
        assert_eq!(mschap_hash_user(b"DOM\\alice"), b"alice");
        assert_eq!(mschap_hash_user(b"alice"), b"alice");
        assert_eq!(mschap_hash_user(b"a\\b\\"), b"");
    }

    #[test]
    fn hex_round_trip() {
        let mut s = String::new();
        push_hex_upper(&mut s, &[0x00, 0xab, 0x7f]);
        assert_eq!(s, "00AB7F");
        assert_eq!(decode_hex::<3>(b"00ab7F"), Some([0, 0xab, 0x7f]));
        assert_eq!(decode_hex::<3>(b"00ab7"), None);
        assert_eq!(decode_hex::<1>(b"g0"), None);
    }
}
