//! The deployment the `chain` module is for: `users` (name and password)
//! then `totp` (a code for the same user, the name taken from `users`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{CHEAP, Driver, add};
use modules::{
    ChainModule, ChainStep, EnrollOptions, TotpModule, TotpOptions, UsersModule, UsersOptions,
};
use securityhost::consts::NO_ERROR;
use securityhost::{Outcome, Verdict};
use totp::{Totp, base32_decode};

/// A fixed instant in the middle of a 30 s step.
const T: u64 = 1_800_000_015;

struct Setup {
    _dir: tempfile::TempDir,
    chain: Arc<ChainModule>,
    totp: Totp,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "alice", "pw-alice");
    add(dir.path(), "bob", "pw-bob");
    let store = dir.path().join("totp.toml");
    let e = modules::totp_module::enroll(
        &store,
        "alice",
        EnrollOptions {
            argon2: CHEAP,
            ..EnrollOptions::default()
        },
    )
    .unwrap();
    let handle = tokio::runtime::Handle::current();
    let users: Arc<UsersModule> = Arc::new(
        UsersModule::new(
            handle.clone(),
            UsersOptions {
                users_file: dir.path().join("users.toml"),
                tries: 1,
                ..UsersOptions::default()
            },
        )
        .unwrap(),
    );
    let clock = Arc::new(AtomicU64::new(T));
    let totp = Arc::new(
        TotpModule::new(
            handle.clone(),
            TotpOptions {
                store_file: store,
                tries: 1,
                user_from_previous: true,
                now: Some(Arc::new(move || clock.load(Ordering::SeqCst))),
                ..TotpOptions::default()
            },
        )
        .unwrap(),
    );
    let t2 = totp.clone();
    let chain = ChainModule::with_steps(
        handle,
        vec![
            ChainStep::new(users),
            ChainStep::with_user(totp, move |args, user| t2.begin_for_user(args, user)),
        ],
    )
    .unwrap();
    Setup {
        _dir: dir,
        chain: Arc::new(chain),
        totp: Totp::new(base32_decode(&e.secret_base32).unwrap()),
    }
}

async fn login(s: &Setup, name: &str, password: &str, code: &str) -> (Outcome, Driver) {
    let mut d = Driver::start_default(s.chain.clone()).await;
    d.expect("Username: ").await;
    d.send(format!("{name}\r").as_bytes()).await;
    d.expect("Password: ").await;
    d.send(format!("{password}\r").as_bytes()).await;
    d.expect("Code: ").await;
    d.send(format!("{code}\r").as_bytes()).await;
    (d.finish().await, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_then_code_grants() {
    let s = setup();
    let code = s.totp.code_at(T).unwrap();
    let (o, d) = login(&s, "alice", "pw-alice", &code).await;
    assert_eq!(o.granted(), Some(("alice", "")));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
    assert_eq!(
        d.text().matches("Username: ").count(),
        1,
        "the totp step does not ask for the name again: {}",
        d.text()
    );
    assert!(!d.text().contains(&code), "the code is not echoed");
    assert_eq!(s.chain.active_dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_fails_for_the_user() {
    let s = setup();
    let good = s.totp.code_at(T).unwrap();
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let (o, _) = login(&s, "alice", "pw-alice", wrong).await;
    assert_eq!(
        o,
        Outcome::Verdict(Verdict::Failure {
            user: "alice".into(),
            domain: String::new()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_never_reaches_the_code() {
    let s = setup();
    let mut d = Driver::start_default(s.chain.clone()).await;
    d.expect("Username: ").await;
    d.send(b"alice\rnope\r").await;
    let o = d.finish().await;
    assert_eq!(o.granted(), None);
    assert!(!d.text().contains("Code: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_totp_is_refused() {
    let s = setup();
    let code = s.totp.code_at(T).unwrap();
    let (o, _) = login(&s, "bob", "pw-bob", &code).await;
    assert_eq!(o.granted(), None);
}
