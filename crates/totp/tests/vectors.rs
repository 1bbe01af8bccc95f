//! RFC 4226 / RFC 6238 test vectors, window edges, replay, base32, URIs.

use proptest::prelude::*;
use totp::*;

const SEED20: &[u8] = b"12345678901234567890";
const SEED32: &[u8] = b"12345678901234567890123456789012";
const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: HOTP values for counters 0..=9.
#[test]
fn rfc4226_appendix_d() {
    let expected = [
        755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
    ];
    for (counter, want) in expected.into_iter().enumerate() {
        assert_eq!(
            hotp(Algorithm::Sha1, SEED20, counter as u64, Digits::SIX),
            want,
            "counter {counter}"
        );
    }
}

/// RFC 6238 Appendix B: TOTP values, 8 digits, X = 30, T0 = 0.
#[test]
fn rfc6238_appendix_b() {
    let table: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];
    for (t, sha1, sha256, sha512) in table {
        for (alg, seed, want) in [
            (Algorithm::Sha1, SEED20, sha1),
            (Algorithm::Sha256, SEED32, sha256),
            (Algorithm::Sha512, SEED64, sha512),
        ] {
            let totp = Totp::new(seed.to_vec())
                .with_algorithm(alg)
                .with_digits(Digits::EIGHT);
            assert_eq!(totp.code_at(t).as_deref(), Some(want), "{alg:?} at {t}");
            assert_eq!(totp.verify(want, t, 0, None), Ok(t / 30));
        }
    }
}

#[test]
fn window_edges() {
    let totp = Totp::new(SEED20.to_vec());
    let now = 1_700_000_015; // inside step 56666667
    let step = now / 30;
    let code = |s: u64| format_code(totp.code_for_step(s), Digits::SIX);
    // Exactly -1 and +1 step accepted with the default window of 1.
    assert_eq!(totp.verify(&code(step - 1), now, 1, None), Ok(step - 1));
    assert_eq!(totp.verify(&code(step), now, 1, None), Ok(step));
    assert_eq!(totp.verify(&code(step + 1), now, 1, None), Ok(step + 1));
    // ±2 refused.
    assert_eq!(
        totp.verify(&code(step - 2), now, 1, None),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        totp.verify(&code(step + 2), now, 1, None),
        Err(VerifyError::Mismatch)
    );
    // Window 0 means only the current step.
    assert_eq!(
        totp.verify(&code(step + 1), now, 0, None),
        Err(VerifyError::Mismatch)
    );
    // The step boundary: the last second of a step and the first of the next.
    let boundary = (step + 1) * 30;
    assert_eq!(totp.step_at(boundary - 1), Some(step));
    assert_eq!(totp.step_at(boundary), Some(step + 1));
}

#[test]
fn replay_refused() {
    let totp = Totp::new(SEED20.to_vec());
    let now = 1_234_567_890;
    let step = now / 30;
    let code = totp.code_at(now).unwrap();
    let used = totp.verify(&code, now, 1, None).unwrap();
    assert_eq!(used, step);
    // Same code again, even a few seconds later in the window: refused.
    assert_eq!(
        totp.verify(&code, now + 20, 1, Some(used)),
        Err(VerifyError::Replayed { step })
    );
    // An older code (previous step) is refused after a newer one was used.
    let older = format_code(totp.code_for_step(step - 1), Digits::SIX);
    assert_eq!(
        totp.verify(&older, now, 1, Some(used)),
        Err(VerifyError::Replayed { step: step - 1 })
    );
    // The next step's code is still fine.
    let newer = format_code(totp.code_for_step(step + 1), Digits::SIX);
    assert_eq!(totp.verify(&newer, now, 1, Some(used)), Ok(step + 1));
}

#[test]
fn malformed_and_parameters() {
    let totp = Totp::new(SEED20.to_vec());
    for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345"] {
        assert_eq!(
            totp.verify(bad, 59, 1, None),
            Err(VerifyError::Malformed),
            "{bad:?}"
        );
    }
    assert_eq!(Digits::new(5), None);
    assert_eq!(Digits::new(9), None);
    assert_eq!(Digits::new(7).map(Digits::get), Some(7));
    assert!(Totp::new(vec![1]).with_period(0).is_none());
    let t = Totp::new(SEED20.to_vec()).with_t0(1000);
    assert_eq!(t.code_at(999), None);
    assert_eq!(
        t.verify("000000", 999, 1, None),
        Err(VerifyError::BeforeEpoch)
    );
    // T0 shifts the steps: at T0 + 59 the code is the RFC's code of T = 1.
    assert_eq!(
        t.clone()
            .with_digits(Digits::EIGHT)
            .code_at(1059)
            .as_deref(),
        Some("94287082")
    );
    // Window at step 0 does not underflow.
    let z = Totp::new(SEED20.to_vec());
    let c0 = z.code_at(0).unwrap();
    assert_eq!(z.verify(&c0, 0, 5, None), Ok(0));
    // Period 60.
    let p = Totp::new(SEED20.to_vec()).with_period(60).unwrap();
    assert_eq!(p.step_at(119), Some(1));
    assert_eq!(format_code(42, Digits::SIX), "000042");
    assert!(!format!("{:?}", z).contains("1234"));
    assert_eq!(Algorithm::from_name("sha-256"), Some(Algorithm::Sha256));
    assert_eq!(Algorithm::from_name("md5"), None);
}

#[test]
fn otpauth_uri() {
    let t = Totp::new(b"Hello!\xde\xad\xbe\xef".to_vec());
    assert_eq!(
        t.otpauth_uri("Example Co", "alice@example.com"),
        "otpauth://totp/Example%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXP\
         &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30"
    );
    let t8 = Totp::new(vec![0; 10])
        .with_algorithm(Algorithm::Sha256)
        .with_digits(Digits::EIGHT)
        .with_period(60)
        .unwrap();
    assert_eq!(
        t8.otpauth_uri("", "bob"),
        "otpauth://totp/bob?secret=AAAAAAAAAAAAAAAA&algorithm=SHA256&digits=8&period=60"
    );
}

proptest! {
    #[test]
    fn base32_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let enc = base32_encode(&data);
        prop_assert!(!enc.contains('='));
        prop_assert_eq!(base32_decode(&enc).unwrap(), data.clone());
        prop_assert_eq!(base32_decode(&enc.to_lowercase()).unwrap(), data);
    }

    #[test]
    fn base32_decode_never_panics(s in ".{0,40}") {
        let _ = base32_decode(&s);
    }

    #[test]
    fn current_code_always_verifies(secret in proptest::collection::vec(any::<u8>(), 1..64),
                                    now in 0u64..4_000_000_000, digits in 6u8..=8) {
        let t = Totp::new(secret).with_digits(Digits::new(digits).unwrap());
        let code = t.code_at(now).unwrap();
        prop_assert_eq!(code.len(), usize::from(digits));
        prop_assert_eq!(t.verify(&code, now, 1, None), Ok(now / 30));
        prop_assert!(t.verify(&code, now, 1, Some(now / 30)).is_err());
    }
}
