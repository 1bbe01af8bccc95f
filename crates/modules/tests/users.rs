//! The `users` module driven through a real `securityhost::Port`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{CHEAP, Driver, add, contains, count};
use modules::users::{LOGIN_INCORRECT, PASSWORD_PROMPT, USERNAME_PROMPT};
use modules::{
    END_ABORTED, ERROR_USERS_FILE_INVALID, ERROR_USERS_FILE_UNREADABLE, UsersModule, UsersOptions,
    UsersStats,
};
use securityhost::consts::{ERROR_REQUEST_TIMEOUT, NO_ERROR};
use securityhost::{AbortCause, Config, Outcome, SecurityModule, Verdict};
use tempfile::TempDir;

fn opts(dir: &Path) -> UsersOptions {
    UsersOptions {
        users_file: dir.join("users.toml"),
        banner: "Welcome to dialgate\ntest line".into(),
        tries: 3,
        prompt_timeout_secs: 30,
        domain: "LAB".into(),
        verifiers: modules::Verifiers::new(2).unwrap(),
    }
}

fn module(dir: &Path) -> Arc<UsersModule> {
    Arc::new(UsersModule::new(tokio::runtime::Handle::current(), opts(dir)).unwrap())
}

fn with_alice() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "alice", "s3cret pw");
    add(dir.path(), "carol", "other");
    dir
}

fn success(user: &str, domain: &str) -> Outcome {
    Outcome::Verdict(Verdict::Success {
        user: user.into(),
        domain: domain.into(),
    })
}

fn failure(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Failure {
        user: user.into(),
        domain: "LAB".into(),
    })
}

fn error(code: u32) -> Outcome {
    Outcome::Verdict(Verdict::Error { code })
}

/// One login attempt, answering each prompt once it shows.
async fn login(d: &mut Driver, n: usize, user: &str, password: &str) {
    d.expect_count("Username: ", n).await;
    d.send(format!("{user}\r").as_bytes()).await;
    d.expect_count("Password: ", n).await;
    d.send(format!("{password}\r").as_bytes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_password_succeeds_with_the_name_and_domain() {
    let dir = with_alice();
    let m = module(dir.path());
    let mut d = Driver::start_default(m.clone()).await;
    login(&mut d, 1, "alice", "s3cret pw").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));
    assert_eq!(d.end_codes, vec![NO_ERROR], "End after Complete is cleanup");
    assert!(
        d.text()
            .starts_with("Welcome to dialgate\r\ntest line\r\nUsername: ")
    );
    assert_eq!(m.active_dialogs(), 0);
    // Read at Begin and at the check; the second is a read again only
    // while the file is less than 2 s old (see filecache).
    let reloads = m.stats().reloads;
    assert!((1..=2).contains(&reloads), "{reloads}");
    assert_eq!(
        m.stats(),
        UsersStats {
            verifications: 1,
            dummy_verifications: 0,
            granted: 1,
            reloads
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_domain_wins() {
    let dir = tempfile::tempdir().unwrap();
    modules::add_user(
        &dir.path().join("users.toml"),
        &dir.path().join("secrets.toml"),
        "dave",
        "pw",
        &modules::AddOptions {
            domain: Some("CORP".into()),
            ..common::cheap_add()
        },
    )
    .unwrap();
    let mut d = Driver::start_default(module(dir.path())).await;
    login(&mut d, 1, "dave", "pw").await;
    assert_eq!(d.finish().await, success("dave", "CORP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_is_echoed_password_is_not() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    login(&mut d, 1, "alice", "s3cret pw").await;
    d.finish().await;
    let t = d.text();
    assert!(t.contains("Username: alice\r\nPassword: \r\n"), "{t:?}");
    assert!(!t.contains("s3cret"), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_ahead_password_is_not_echoed_either() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    d.send(b"alice\rs3cret pw\r").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));
    assert!(!d.text().contains("s3cret"), "{:?}", d.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_after_the_tries_with_the_typed_name() {
    let dir = with_alice();
    let m = module(dir.path());
    let mut d = Driver::start_default(m.clone()).await;
    for n in 1..=3 {
        login(&mut d, n, "alice", "wrong").await;
    }
    assert_eq!(d.finish().await, failure("alice"));
    let t = d.text();
    assert_eq!(count(t.as_bytes(), LOGIN_INCORRECT), 3, "{t:?}");
    assert_eq!(count(t.as_bytes(), USERNAME_PROMPT), 3);
    assert_eq!(count(t.as_bytes(), PASSWORD_PROMPT), 3);
    let lower = t.to_lowercase();
    for leak in ["unknown", "no such", "invalid", "wrong", "not found"] {
        assert!(!lower.contains(leak), "{leak} in {t:?}");
    }
    assert_eq!(m.stats().verifications, 3);
    assert_eq!(m.stats().granted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_try_may_succeed() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    login(&mut d, 1, "alice", "wrong").await;
    login(&mut d, 2, "alice", "s3cret pw").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));
    assert_eq!(count(&d.output, LOGIN_INCORRECT), 1);
}

/// What the caller saw, with the typed name replaced, so that two dialogs
/// can be compared byte for byte.
async fn transcript(dir: &Path, user: &str, password: &str) -> (Outcome, String, UsersStats) {
    let m = module(dir);
    let mut d = Driver::start_default(m.clone()).await;
    for n in 1..=3 {
        login(&mut d, n, user, password).await;
    }
    let o = d.finish().await;
    (o, d.text().replace(user, "NAME"), m.stats())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_looks_exactly_like_a_wrong_password() {
    let dir = with_alice();
    let (o1, t1, s1) = transcript(dir.path(), "alice", "wrong").await;
    let (o2, t2, s2) = transcript(dir.path(), "mallory", "wrong").await;
    assert_eq!(o1, failure("alice"));
    assert_eq!(o2, failure("mallory"));
    assert_eq!(t1, t2, "same dialog, same record shape");
    // The unknown name was verified against the dummy hash each time: the
    // same argon2 work as a known name.
    assert_eq!((s1.verifications, s1.dummy_verifications), (3, 0));
    assert_eq!((s2.verifications, s2.dummy_verifications), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_fails_like_a_wrong_password() {
    let dir = with_alice();
    let (_, t_wrong, _) = transcript(dir.path(), "alice", "wrong").await;
    assert!(modules::set_disabled(&dir.path().join("users.toml"), "alice", true).unwrap());
    let (o, t_disabled, s) = transcript(dir.path(), "alice", "s3cret pw").await;
    assert_eq!(o, failure("alice"));
    assert_eq!(t_disabled, t_wrong);
    assert_eq!(s.verifications, 3, "the hash is still checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_ending_with_cr_lf_or_crlf_typed_one_byte_at_a_time() {
    let dir = with_alice();
    for end in ["\r", "\n", "\r\n"] {
        let m = module(dir.path());
        let mut d = Driver::start_default(m.clone()).await;
        d.expect("Username: ").await;
        // A wrong try first, so that the byte after a CR meets the next prompt.
        for (n, pw) in [(1, "nope"), (2, "s3cret pw")] {
            d.expect_count("Username: ", n).await;
            d.type_slowly(format!("alice{end}").as_bytes()).await;
            d.expect_count("Password: ", n).await;
            d.type_slowly(format!("{pw}{end}").as_bytes()).await;
        }
        assert_eq!(d.finish().await, success("alice", "LAB"), "ending {end:?}");
        assert_eq!(count(&d.output, LOGIN_INCORRECT), 1, "ending {end:?}");
        assert_eq!(m.stats().verifications, 2, "ending {end:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cr_is_answered_without_waiting_for_more_bytes() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    d.expect("Username: ").await;
    d.send(b"alice\r").await;
    // No LF follows: the password prompt must come anyway.
    d.expect("Password: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_of_garbage_fails_cleanly_with_bounded_memory() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    let garbage: Vec<u8> = (0..1usize << 20).map(|i| b'!' + (i % 90) as u8).collect();
    d.send(&garbage).await;
    let o = d.finish().await;
    let expected: String = String::from_utf8(garbage[..256].to_vec()).unwrap();
    assert_eq!(o, failure(&expected));
    assert!(d.text().contains("Input too long"));
    // The host stops reading while its backlog is full, and the module never
    // buffers more than a line and one Receive: most of the garbage was
    // never even taken from the caller.
    let cfg = Config::default();
    assert!(
        d.fed <= 256 + cfg.recv_buffer_size + cfg.backlog_max,
        "fed {}",
        d.fed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_too_long_fails_with_the_name() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    d.expect("Username: ").await;
    d.send(b"alice\r").await;
    d.expect("Password: ").await;
    d.send(&[b'p'; 300]).await;
    assert_eq!(d.finish().await, failure("alice"));
    assert!(!d.text().contains("ppp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppp_frames_instead_of_answers_never_bypass_the_dialog() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    // LCP Configure-Request, HDLC-framed with an escaped control byte.
    let lcp = b"\x7e\xff\x7d\x23\xc0\x21\x01\x01\x00\x04\x7e";
    for _ in 0..10 {
        d.send(lcp).await;
    }
    d.send(b"\r").await;
    for _ in 0..10 {
        d.send(lcp).await;
        d.send(b"\r").await;
    }
    let o = d.finish().await;
    assert!(o.granted().is_none(), "{o:?}");
    assert!(
        matches!(o, Outcome::Verdict(Verdict::Failure { .. })),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_users_file_is_an_error_never_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Driver::start_default(module(dir.path())).await;
    d.send(b"alice\rs3cret pw\r").await;
    assert_eq!(d.finish().await, error(ERROR_USERS_FILE_UNREADABLE));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_users_file_is_an_error_never_a_grant() {
    let dir = with_alice();
    let path = dir.path().join("users.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let m = module(dir.path());
    for garbled in [
        "[users.alice\nhash = ".to_string(),
        good.replace("$argon2id$", "$argon2i$"),
        format!("{good}\n[users.eve]\nhash = \"x\"\n"),
        format!("{good}\nextra = 1\n"),
    ] {
        std::fs::write(&path, &garbled).unwrap();
        let mut d = Driver::start_default(m.clone()).await;
        d.send(b"alice\rs3cret pw\r").await;
        assert_eq!(
            d.finish().await,
            error(ERROR_USERS_FILE_INVALID),
            "{garbled}"
        );
    }
    // Repaired: works again without a restart.
    std::fs::write(&path, &good).unwrap();
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\rs3cret pw\r").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_file_is_reloaded_after_add_user() {
    let dir = with_alice();
    let m = module(dir.path());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\rbobpw\r").await;
    d.expect("Login incorrect").await;
    d.hang_up().await;
    d.finish().await;
    // At Begin and at the check (read again: the file is new).
    let before = m.stats().reloads;
    assert!((1..=2).contains(&before), "{before}");

    add(dir.path(), "bob", "bobpw");
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\rbobpw\r").await;
    assert_eq!(d.finish().await, success("bob", "LAB"));
    assert!(m.stats().reloads > before);

    // A version changed less than 2 s ago is read again at each Begin (an
    // edit in place within the kernel's clock tick would be missed
    // otherwise); once older, an unchanged file is not read again. (Its
    // ctime counts too, and cannot be set back: wait.)
    tokio::time::sleep(modules::filecache::RACY + Duration::from_millis(100)).await;
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\rs3cret pw\r").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));
    let n = m.stats().reloads;
    for _ in 0..3 {
        let mut d = Driver::start_default(m.clone()).await;
        d.send(b"alice\rs3cret pw\r").await;
        assert_eq!(d.finish().await, success("alice", "LAB"));
    }
    assert_eq!(m.stats().reloads, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_timeout_is_error_638() {
    let dir = with_alice();
    let o = UsersOptions {
        prompt_timeout_secs: 1,
        ..opts(dir.path())
    };
    let m = Arc::new(UsersModule::new(tokio::runtime::Handle::current(), o).unwrap());
    let mut d = Driver::start_default(m).await;
    d.expect("Username: ").await;
    let t0 = std::time::Instant::now();
    assert_eq!(d.finish().await, error(ERROR_REQUEST_TIMEOUT));
    assert!(t0.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_typing_does_not_reset_the_prompt_timeout() {
    let dir = with_alice();
    let o = UsersOptions {
        prompt_timeout_secs: 2,
        ..opts(dir.path())
    };
    let m = Arc::new(UsersModule::new(tokio::runtime::Handle::current(), o).unwrap());
    let mut d = Driver::start_default(m).await;
    d.expect("Username: ").await;
    let t0 = std::time::Instant::now();
    while d.outcome.is_none() {
        d.send(b"a").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.pump().await;
        assert!(t0.elapsed() < Duration::from_secs(10), "never timed out");
    }
    assert_eq!(d.outcome, Some(error(ERROR_REQUEST_TIMEOUT)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_ends_the_dialog_and_end_aborts_it() {
    let dir = with_alice();
    let m = module(dir.path());
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    d.send(b"ali").await;
    d.hang_up().await;
    let o = d.finish().await;
    assert_eq!(
        o,
        Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: None
        }
    );
    assert_eq!(
        d.end_codes,
        vec![END_ABORTED],
        "End before Complete is non-zero"
    );
    assert_eq!(m.active_dialogs(), 0);
}

/// End before Complete stops the dialog task at once: checked on a runtime
/// of its own, whose live tasks can be counted.
#[test]
fn end_before_complete_stops_the_task() {
    let dir = with_alice();
    let module_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let m = Arc::new(UsersModule::new(module_rt.handle().clone(), opts(dir.path())).unwrap());
    let driver_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    driver_rt.block_on(async {
        let mut d = Driver::start_default(m.clone()).await;
        d.expect("Username: ").await;
        assert_eq!(module_rt.metrics().num_alive_tasks(), 1);
        d.abort(AbortCause::Shutdown).await;
        let o = d.finish().await;
        assert_eq!(
            o,
            Outcome::Aborted {
                cause: AbortCause::Shutdown,
                late: None
            }
        );
        assert_eq!(d.end_codes, vec![END_ABORTED]);
        let t0 = std::time::Instant::now();
        while module_rt.metrics().num_alive_tasks() != 0 {
            assert!(t0.elapsed() < common::LIMIT, "the dialog task still runs");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // End for a port the module does not know (or twice) is harmless.
    assert_eq!(m.end(securityhost::HPort(1)), NO_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_name_counts_as_a_try() {
    let dir = with_alice();
    let mut d = Driver::start_default(module(dir.path())).await;
    d.send(b"\r\r\r").await;
    assert_eq!(d.finish().await, failure("?"));
    assert!(!contains(&d.output, PASSWORD_PROMPT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_dialogs_at_once() {
    let dir = with_alice();
    let m = module(dir.path());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let m = m.clone();
        set.spawn(async move {
            let mut d = Driver::start_default(m).await;
            let pw = if i % 2 == 0 { "s3cret pw" } else { "bad" };
            d.send(format!("alice\r{pw}\r").as_bytes()).await;
            if i % 2 == 1 {
                d.expect("Login incorrect").await;
                d.hang_up().await;
            }
            (i, d.finish().await)
        });
    }
    while let Some(r) = set.join_next().await {
        let (i, o) = r.unwrap();
        if i % 2 == 0 {
            assert_eq!(o, success("alice", "LAB"));
        } else {
            assert!(o.granted().is_none());
        }
    }
    assert_eq!(m.active_dialogs(), 0);
}

#[test]
fn bad_options_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = opts(dir.path());
    for bad in [
        UsersOptions {
            tries: 0,
            ..base.clone()
        },
        UsersOptions {
            domain: "0123456789abcdef".into(),
            ..base.clone()
        },
        UsersOptions {
            banner: "x".repeat(modules::MAX_BANNER + 1),
            ..base.clone()
        },
    ] {
        assert!(UsersModule::new(rt.handle().clone(), bad).is_err());
    }
    assert!(UsersModule::new(rt.handle().clone(), base).is_ok());
    assert_eq!(
        modules::Verifiers::new(0).err(),
        Some(modules::ConfigError::NoVerifiers)
    );
}

/// Unknown names cost what known ones do: the least thread CPU time of
/// several interleaved checks with cheap parameters, within a generous
/// factor (CPU time and minima, so that a loaded machine does not make it
/// flaky).
#[test]
fn unknown_user_check_takes_as_long_as_a_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = modules::Argon2Params {
        m_cost_kib: 2048,
        ..CHEAP
    };
    modules::add_user(
        &dir.path().join("users.toml"),
        &dir.path().join("secrets.toml"),
        "alice",
        "pw",
        &modules::AddOptions {
            argon2: p,
            ..Default::default()
        },
    )
    .unwrap();
    let db = modules::UsersDb::load(&dir.path().join("users.toml")).unwrap();
    assert_eq!(db.dummy_params(), p);
    let cpu = || {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        Duration::from(t)
    };
    let time = |name: &[u8]| {
        let t = cpu();
        let _ = db.check(name, b"wrong");
        cpu() - t
    };
    let (k, u): (Vec<Duration>, Vec<Duration>) =
        (0..15).map(|_| (time(b"alice"), time(b"mallory"))).unzip();
    let known = k.into_iter().min().unwrap();
    let unknown = u.into_iter().min().unwrap();
    assert!(
        unknown * 3 >= known && known * 3 >= unknown,
        "known {known:?} unknown {unknown:?}"
    );
    // And the check really costs argon2 work: far more than a lookup.
    assert!(unknown >= Duration::from_micros(200), "unknown {unknown:?}");
}

/// The users file is judged when the password is checked, not when the
/// dialog began: a caller who connected before the operator disabled a
/// user, removed one or changed a password cannot log in with what the
/// file said then (the dialog can last tries × 2 prompts × the prompt
/// timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_the_users_file_during_the_dialog_applies_to_its_check() {
    let dir = with_alice();
    let users = dir.path().join("users.toml");
    let m = module(dir.path());

    // Disabled while the caller sits at the prompt.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    assert!(modules::set_disabled(&users, "alice", true).unwrap());
    login(&mut d, 1, "alice", "s3cret pw").await;
    d.expect("Login incorrect").await;
    d.hang_up().await;
    assert_ne!(d.finish().await, success("alice", "LAB"));
    assert!(modules::set_disabled(&users, "alice", false).unwrap());

    // Password changed while the caller sits at the prompt.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    add(dir.path(), "alice", "new secret");
    login(&mut d, 1, "alice", "s3cret pw").await;
    d.expect("Login incorrect").await;
    login(&mut d, 2, "alice", "new secret").await;
    assert_eq!(d.finish().await, success("alice", "LAB"));

    // Removed while the caller sits at the prompt.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    modules::remove_user(&users, &dir.path().join("secrets.toml"), "carol").unwrap();
    login(&mut d, 1, "carol", "other").await;
    d.expect("Login incorrect").await;
    d.hang_up().await;
    assert_ne!(d.finish().await, success("carol", "LAB"));

    // The file made unusable while the caller sits at the prompt: no grant.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    std::fs::write(&users, "not [toml").unwrap();
    login(&mut d, 1, "alice", "new secret").await;
    assert_eq!(d.finish().await, error(ERROR_USERS_FILE_INVALID));
}
