//! The `totp` module driven through a real `securityhost::Port`, with an
//! injected clock.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{CHEAP, Driver, count};
use modules::totp_module::{
    ERROR_TOTP_NO_PREVIOUS_USER, ERROR_TOTP_STORE_INVALID, ERROR_TOTP_STORE_UNREADABLE,
    list_totp_users, qr_terminal, remove_totp_user,
};
use modules::{
    END_ABORTED, EnrollOptions, TotpConfigError, TotpModule, TotpOptions, TotpStoreError,
};
use securityhost::consts::NO_ERROR;
use securityhost::{AbortCause, BeginArgs, HPort, Outcome, SecurityModule, Verdict};
use totp::{Totp, base32_decode};

/// A fixed instant in the middle of a 30 s step.
const T: u64 = 1_800_000_015;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<AtomicU64>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("totp.toml");
        Fixture {
            _dir: dir,
            path,
            clock: Arc::new(AtomicU64::new(T)),
        }
    }

    /// Enrols `name` and returns its generator.
    fn enroll(&self, name: &str, pin: Option<&str>) -> Totp {
        let e = modules::totp_module::enroll(
            &self.path,
            name,
            EnrollOptions {
                pin,
                argon2: CHEAP,
                ..EnrollOptions::default()
            },
        )
        .unwrap();
        Totp::new(base32_decode(&e.secret_base32).unwrap())
    }

    fn opts(&self) -> TotpOptions {
        let c = self.clock.clone();
        TotpOptions {
            store_file: self.path.clone(),
            tries: 1,
            now: Some(Arc::new(move || c.load(Ordering::SeqCst))),
            ..TotpOptions::default()
        }
    }

    fn module(&self) -> Arc<TotpModule> {
        Arc::new(TotpModule::new(tokio::runtime::Handle::current(), self.opts()).unwrap())
    }
}

fn code(t: &Totp, unix: u64) -> String {
    t.code_at(unix).unwrap()
}

/// One full login: name, then `answer` at the code prompt.
async fn login(m: Arc<TotpModule>, name: &str, answer: &str) -> (Outcome, String) {
    let mut d = Driver::start_default(m).await;
    d.expect("Username: ").await;
    d.send(format!("{name}\r").as_bytes()).await;
    d.expect(": ").await;
    d.run_until(|d| count(&d.output, b": ") >= 2 || d.outcome.is_some())
        .await;
    d.send(format!("{answer}\r").as_bytes()).await;
    let o = d.finish().await;
    (o, d.text())
}

fn success(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Success {
        user: user.into(),
        domain: String::new(),
    })
}

fn failure(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Failure {
        user: user.into(),
        domain: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_code_is_granted_and_not_echoed() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    let c = code(&t, T);
    let mut d = Driver::start_default(f.module()).await;
    d.expect("Username: ").await;
    d.type_slowly(b"alice\r\n").await;
    d.expect("Code: ").await;
    d.type_slowly(format!("{c}\r\n").as_bytes()).await;
    assert_eq!(d.finish().await, success("alice"));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
    assert_eq!(
        d.text(),
        "Username: alice\r\nCode: \r\n",
        "the code is not echoed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_is_refused_after_the_tries() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    let right = code(&t, T);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let m = Arc::new(
        TotpModule::new(
            tokio::runtime::Handle::current(),
            TotpOptions {
                tries: 2,
                ..f.opts()
            },
        )
        .unwrap(),
    );
    let mut d = Driver::start_default(m.clone()).await;
    d.send(format!("alice\n{wrong}\nalice\n12345\n").as_bytes())
        .await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(count(&d.output, b"Login incorrect"), 2);
    assert_eq!(count(&d.output, b"Code: "), 2);
    assert_eq!(m.stats().granted, 0);
    assert_eq!(m.stats().verifications, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_code_is_refused_also_after_a_restart() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    let c = code(&t, T);
    let m = f.module();
    assert_eq!(login(m.clone(), "alice", &c).await.0, success("alice"));
    let text = std::fs::read_to_string(&f.path).unwrap();
    let step = T / 30;
    assert!(text.contains(&format!("last_step = {step}")), "{text}");

    // Same module, same code, same instant.
    let (o, out) = login(m.clone(), "alice", &c).await;
    assert_eq!(o, failure("alice"));
    assert!(out.contains("Login incorrect"));
    assert_eq!(m.stats().replays, 1);

    // Later in the window: the code is still valid at step+1 but used.
    f.clock.store(T + 30, Ordering::SeqCst);
    assert_eq!(login(m, "alice", &c).await.0, failure("alice"));

    // "Restart": a new module instance reading the store afresh.
    let m2 = f.module();
    let (o, _) = login(m2.clone(), "alice", &c).await;
    assert_eq!(o, failure("alice"));
    assert_eq!(m2.stats().replays, 1);
    // The next code works.
    let next = code(&t, T + 30);
    assert_eq!(login(m2, "alice", &next).await.0, success("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_edges() {
    let f = Fixture::new();
    for (i, (offset, granted)) in [(-30i64, true), (30, true), (-60, false), (60, false)]
        .into_iter()
        .enumerate()
    {
        let name = format!("u{i}");
        let t = f.enroll(&name, None);
        let c = code(&t, T.checked_add_signed(offset).unwrap());
        let (o, _) = login(f.module(), &name, &c).await;
        let want = if granted {
            success(&name)
        } else {
            failure(&name)
        };
        assert_eq!(o, want, "offset {offset}");
    }
    // A window of 0: only the current step.
    let t = f.enroll("w0", None);
    let m0 = Arc::new(
        TotpModule::new(
            tokio::runtime::Handle::current(),
            TotpOptions {
                window: 0,
                ..f.opts()
            },
        )
        .unwrap(),
    );
    assert_eq!(
        login(m0.clone(), "w0", &code(&t, T + 30)).await.0,
        failure("w0")
    );
    assert_eq!(login(m0, "w0", &code(&t, T)).await.0, success("w0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_and_code() {
    let f = Fixture::new();
    let t = f.enroll("carol", Some("2468"));
    let c = code(&t, T);
    let m = f.module();
    for wrong in [
        format!("2469{c}"),
        format!("246{c}"),
        c.clone(),
        "2468".to_string(),
        String::new(),
    ] {
        let (o, out) = login(m.clone(), "carol", &wrong).await;
        assert_eq!(o, failure("carol"), "{wrong:?}");
        assert!(out.contains("PIN+code: "), "{out}");
        assert!(!out.contains("2468"), "the PIN is not echoed");
    }
    // The wrong-PIN attempts did not burn the code.
    let (o, out) = login(m.clone(), "carol", &format!("2468{c}")).await;
    assert_eq!(o, success("carol"));
    assert_eq!(out, "Username: carol\r\nPIN+code: \r\n");
    assert!(m.stats().pin_checks >= 6);
    let text = std::fs::read_to_string(&f.path).unwrap();
    assert!(!text.contains("2468"), "the PIN is stored hashed only");
    assert!(text.contains("$argon2id$"));
}

/// The transcript of an unknown user is the known user's with the name
/// replaced; the unknown one is checked against the dummy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_gets_the_same_transcript() {
    for pin in [None, Some("1357")] {
        let f = Fixture::new();
        f.enroll("alice", pin);
        let m = f.module();
        let (o1, known) = login(m.clone(), "alice", "1357000000").await;
        let (o2, unknown) = login(m.clone(), "mallory", "1357000000").await;
        assert_eq!(o1, failure("alice"));
        assert_eq!(o2, failure("mallory"));
        assert_eq!(known.replace("alice", "mallory"), unknown, "pin {pin:?}");
        let s = m.stats();
        assert_eq!((s.verifications, s.dummy_verifications), (1, 1));
        if pin.is_some() {
            assert_eq!(
                s.pin_checks, 2,
                "the unknown user costs an argon2 check too"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_is_private_and_listed() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    f.enroll("bob", Some("12"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.path), 0o600);
    assert_eq!(
        login(f.module(), "alice", &code(&t, T)).await.0,
        success("alice")
    );
    assert_eq!(mode(&f.path), 0o600, "kept by the step rewrite");
    assert_eq!(
        list_totp_users(&f.path).unwrap(),
        vec![("alice".to_string(), false), ("bob".to_string(), true)]
    );
    assert!(remove_totp_user(&f.path, "bob").unwrap());
    assert!(!remove_totp_user(&f.path, "bob").unwrap());
    // A store others can read is refused: ERROR, never a grant.
    std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut d = Driver::start_default(f.module()).await;
    d.send(b"alice\n").await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error {
            code: ERROR_TOTP_STORE_INVALID
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_store_is_an_error() {
    let f = Fixture::new();
    let mut d = Driver::start_default(f.module()).await;
    d.send(b"alice\n").await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error {
            code: ERROR_TOTP_STORE_UNREADABLE
        })
    );
}

#[test]
fn enrolment_uri_and_qr() {
    let f = Fixture::new();
    let e = modules::totp_module::enroll(
        &f.path,
        "alice@lab",
        EnrollOptions {
            issuer: "Dial Gate",
            digits: 8,
            period: 60,
            pin: None,
            argon2: CHEAP,
        },
    )
    .unwrap();
    assert_eq!(base32_decode(&e.secret_base32).unwrap().len(), 20);
    assert_eq!(
        *e.uri,
        format!(
            "otpauth://totp/Dial%20Gate:alice%40lab?secret={}&issuer=Dial%20Gate&algorithm=SHA1&digits=8&period=60",
            *e.secret_base32
        )
    );
    let text = std::fs::read_to_string(&f.path).unwrap();
    assert!(text.contains("digits = 8") && text.contains("period = 60"));
    // A second enrolment makes a new secret.
    let e2 = modules::totp_module::enroll(&f.path, "alice@lab", EnrollOptions::default()).unwrap();
    assert_ne!(*e.secret_base32, *e2.secret_base32);

    let qr = qr_terminal(&e.uri).unwrap();
    let lines: Vec<&str> = qr.lines().collect();
    assert!(lines.len() > 10, "{qr}");
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width));
    assert!(qr.contains('▀') || qr.contains('▄'));
    assert!(matches!(
        qr_terminal(&"x".repeat(8000)),
        Err(TotpStoreError::Qr(_))
    ));
}

/// A chain's second step: the user comes from the first module.
struct Second {
    m: Arc<TotpModule>,
    user: &'static str,
}

impl SecurityModule for Second {
    fn name(&self) -> &str {
        "second"
    }
    fn begin(&self, args: BeginArgs) -> u32 {
        self.m.begin_for_user(args, self.user)
    }
    fn end(&self, hport: HPort) -> u32 {
        self.m.end(hport)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_from_previous_module() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    let m = Arc::new(
        TotpModule::new(
            tokio::runtime::Handle::current(),
            TotpOptions {
                user_from_previous: true,
                ..f.opts()
            },
        )
        .unwrap(),
    );
    assert!(m.user_from_previous());
    let mut d = Driver::start_default(Arc::new(Second {
        m: m.clone(),
        user: "alice",
    }))
    .await;
    d.expect("Code: ").await;
    d.send(format!("{}\r", code(&t, T)).as_bytes()).await;
    assert_eq!(d.finish().await, success("alice"));
    assert!(!d.text().contains("Username"));

    // Unknown previous user: refused under that name.
    let mut d = Driver::start_default(Arc::new(Second {
        m: m.clone(),
        user: "bob",
    }))
    .await;
    d.expect("Code: ").await;
    d.send(b"000000\r").await;
    assert_eq!(d.finish().await, failure("bob"));

    // Begun alone: a configuration error.
    let mut d = Driver::start_default(m).await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error {
            code: ERROR_TOTP_NO_PREVIOUS_USER
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_before_complete_aborts() {
    let f = Fixture::new();
    f.enroll("alice", None);
    let m = f.module();
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    d.expect("Code: ").await;
    d.abort(AbortCause::PortDisabled).await;
    assert_eq!(
        d.finish().await,
        Outcome::Aborted {
            cause: AbortCause::PortDisabled,
            late: None
        }
    );
    assert_eq!(d.end_codes, vec![END_ABORTED]);
    assert_eq!(m.active_dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_fails_cleanly() {
    let f = Fixture::new();
    f.enroll("alice", None);
    let mut d = Driver::start_default(f.module()).await;
    d.send(&vec![b'x'; 1 << 20]).await;
    assert_eq!(d.finish().await.granted(), None);
    assert!(d.fed < 64 * 1024);
}

#[test]
fn bad_options_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bad = |o: TotpOptions| TotpModule::new(rt.handle().clone(), o).err();
    assert_eq!(
        bad(TotpOptions {
            window: 11,
            ..TotpOptions::default()
        }),
        Some(TotpConfigError::WindowTooLarge(11))
    );
    assert!(
        bad(TotpOptions {
            tries: 0,
            ..TotpOptions::default()
        })
        .is_some()
    );
    assert!(
        bad(TotpOptions {
            domain: "x".repeat(16),
            ..TotpOptions::default()
        })
        .is_some()
    );
    assert!(bad(TotpOptions::default()).is_none());
}

/// Two dialogs racing with the same code: the store's lock lets one win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_code_two_dialogs_one_grant() {
    let f = Fixture::new();
    let t = f.enroll("alice", None);
    let c = code(&t, T);
    let m = f.module();
    let mut d1 = Driver::start_default(m.clone()).await;
    let mut d2 = Driver::start_default(m.clone()).await;
    d1.send(format!("alice\r{c}\r").as_bytes()).await;
    d2.send(format!("alice\r{c}\r").as_bytes()).await;
    let o1 = d1.finish().await;
    let o2 = d2.finish().await;
    let granted = [&o1, &o2].iter().filter(|o| o.granted().is_some()).count();
    assert_eq!(granted, 1, "{o1:?} {o2:?}");
    assert_eq!(m.stats().granted, 1);
}
