//! PPP credentials against the local users backend ([`modules::LocalPpp`]):
//! the argon2 limiter it shares with the dialog modules, and the users and
//! secrets files parsed once per change (issue 12 hole 4).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Driver, LIMIT};
use modules::{AddOptions, Argon2Params, LocalPpp, UsersModule, UsersOptions, Verifiers};
use ppp::auth::crypto::{chap_md5_response, generate_nt_response};
use ppp::auth::{Credentials, Verdict};
use securityhost::{Outcome, Verdict as HostVerdict};
use tempfile::TempDir;

/// Dear enough that concurrent checks overlap in time, cheap enough for a
/// debug build: 16 MiB, 2 passes.
const SLOW: Argon2Params = Argon2Params {
    m_cost_kib: 16384,
    t_cost: 2,
    p_cost: 1,
};

fn add(dir: &Path, name: &str, password: &str, params: Argon2Params) {
    modules::add_user(
        &dir.join("users.toml"),
        &dir.join("secrets.toml"),
        name,
        password,
        &AddOptions {
            argon2: params,
            allow_chap_md5: true,
            ..AddOptions::default()
        },
    )
    .expect("add_user");
}

/// Waits until both files were last changed more than 2 s ago, as for
/// files written long before the server started (a version whose mtime or
/// ctime is in the last 2 s is read again at each check; see
/// `modules::filecache`; a ctime cannot be set back).
fn age(dir: &Path) {
    let newest = ["users.toml", "secrets.toml"]
        .iter()
        .map(|f| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(dir.join(f)).unwrap();
            let t = |s: i64, n: i64| {
                SystemTime::UNIX_EPOCH + Duration::new(s.max(0) as u64, n.max(0) as u32)
            };
            t(m.mtime(), m.mtime_nsec()).max(t(m.ctime(), m.ctime_nsec()))
        })
        .max()
        .unwrap();
    let old_enough = newest + modules::filecache::RACY + Duration::from_millis(50);
    if let Ok(wait) = old_enough.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

fn local(dir: &Path, v: &Verifiers) -> Arc<LocalPpp> {
    Arc::new(LocalPpp::new(
        dir.join("users.toml"),
        dir.join("secrets.toml"),
        v.clone(),
    ))
}

fn pap(user: &str, password: &str) -> Credentials {
    Credentials::Pap {
        user: user.as_bytes().to_vec(),
        password: password.as_bytes().to_vec(),
    }
}

fn chap(user: &str, password: &str) -> Credentials {
    let challenge = vec![7u8; 16];
    Credentials::ChapMd5 {
        user: user.as_bytes().to_vec(),
        id: 3,
        response: chap_md5_response(3, password.as_bytes(), &challenge),
        challenge,
    }
}

fn mschapv2(user: &str, password: &str) -> Credentials {
    let (ac, pc) = ([1u8; 16], [2u8; 16]);
    Credentials::MsChapV2 {
        user: user.as_bytes().to_vec(),
        id: 5,
        authenticator_challenge: ac,
        peer_challenge: pc,
        nt_response: generate_nt_response(&ac, &pc, user.as_bytes(), password),
        flags: 0,
    }
}

fn accepted(v: &Verdict) -> bool {
    matches!(v, Verdict::Accept { .. })
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the test took too long")
}

/// Issue 12 hole 4: a burst of concurrent PPP PAP checks never runs more
/// argon2 computations at once than the limiter allows, and each still
/// gets its own right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hole_4_a_burst_of_ppp_pap_checks_runs_at_most_the_limit_of_argon2() {
    let dir = TempDir::new().unwrap();
    add(dir.path(), "alice", "alicepass", SLOW);
    add(dir.path(), "bob", "bobpass", SLOW);
    age(dir.path());
    let v = Verifiers::new(2).unwrap();
    let l = local(dir.path(), &v);
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let l = l.clone();
            let (user, pw, ok) = match i % 3 {
                0 => ("alice", "alicepass", true),
                1 => ("bob", "wrong", false),
                _ => ("nobody", "x", false),
            };
            tokio::spawn(async move { (l.verify(pap(user, pw)).await, ok) })
        })
        .collect();
    bounded(async {
        for j in burst {
            let (verdict, ok) = j.await.unwrap();
            assert_eq!(accepted(&verdict), ok, "{verdict:?}");
        }
    })
    .await;
    let s = v.stats();
    assert_eq!(s.completed, 12);
    assert_eq!(s.running, 0);
    assert!(s.peak <= 2, "{} checks ran at once, the limit is 2", s.peak);
    assert!(s.peak >= 1);
}

/// Issue 12 hole 4: the dialog's `users` module and PPP share one limiter:
/// with one permit, dialog logins and PPP checks running together never
/// overlap; and the defaults of both are the process's one limiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hole_4_dialog_and_ppp_checks_share_one_limiter() {
    assert!(Verifiers::default().same(&Verifiers::default()));
    assert!(
        UsersOptions::default()
            .verifiers
            .same(&Verifiers::process())
    );
    assert!(
        modules::TotpOptions::default()
            .verifiers
            .same(&Verifiers::process())
    );

    let dir = TempDir::new().unwrap();
    add(dir.path(), "alice", "alicepass", SLOW);
    age(dir.path());
    let v = Verifiers::new(1).unwrap();
    let l = local(dir.path(), &v);
    let m = Arc::new(
        UsersModule::new(
            tokio::runtime::Handle::current(),
            UsersOptions {
                users_file: dir.path().join("users.toml"),
                verifiers: v.clone(),
                ..UsersOptions::default()
            },
        )
        .unwrap(),
    );
    let dialogs: Vec<_> = (0..3)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut d = Driver::start_default(m).await;
                d.expect("Username: ").await;
                d.send(b"alice\r").await;
                d.expect("Password: ").await;
                d.send(b"alicepass\r").await;
                d.finish().await
            })
        })
        .collect();
    let ppp: Vec<_> = (0..4)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move { l.verify(pap("alice", "alicepass")).await })
        })
        .collect();
    bounded(async {
        for d in dialogs {
            assert!(matches!(
                d.await.unwrap(),
                Outcome::Verdict(HostVerdict::Success { .. })
            ));
        }
        for p in ppp {
            assert!(accepted(&p.await.unwrap()));
        }
    })
    .await;
    let s = v.stats();
    assert_eq!(s.completed, 7, "{s:?}");
    assert_eq!(s.peak, 1, "{s:?}");
}

/// Issue 12 hole 4: many checks of every method parse each file once; a
/// change (`dialgate user add` rewrites by rename) is seen by the next
/// check: the new password works, the old one no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_4_files_are_parsed_once_and_read_again_after_a_change() {
    let dir = TempDir::new().unwrap();
    add(dir.path(), "alice", "alicepass", common::CHEAP);
    age(dir.path());
    let l = local(dir.path(), &Verifiers::new(2).unwrap());
    bounded(async {
        for _ in 0..5 {
            assert!(accepted(&l.verify(pap("alice", "alicepass")).await));
            assert!(accepted(&l.verify(chap("alice", "alicepass")).await));
            assert!(accepted(&l.verify(mschapv2("alice", "alicepass")).await));
            assert!(!accepted(&l.verify(pap("alice", "nope")).await));
        }
    })
    .await;
    let s = l.stats();
    assert_eq!((s.users_loads, s.secrets_loads), (1, 1), "{s:?}");

    add(dir.path(), "alice", "newpass", common::CHEAP);
    bounded(async {
        assert!(accepted(&l.verify(pap("alice", "newpass")).await));
        assert!(!accepted(&l.verify(pap("alice", "alicepass")).await));
        assert!(accepted(&l.verify(chap("alice", "newpass")).await));
        assert!(!accepted(&l.verify(mschapv2("alice", "alicepass")).await));
    })
    .await;
    let after = l.stats();
    assert!(
        after.users_loads >= 2 && after.secrets_loads >= 2,
        "{after:?}"
    );

    // Once it is old, the new version is parsed once more and then kept.
    age(dir.path());
    bounded(async {
        for _ in 0..3 {
            assert!(accepted(&l.verify(pap("alice", "newpass")).await));
        }
    })
    .await;
    let s = l.stats();
    bounded(async {
        for _ in 0..3 {
            assert!(accepted(&l.verify(chap("alice", "newpass")).await));
        }
    })
    .await;
    assert_eq!(l.stats().users_loads, s.users_loads);
}

/// Failing closed (the cache must not keep a good version): a users file broken after a change
/// rejects every login (the good version before it is not kept), a secrets
/// file made readable by others is refused, and each works again once
/// fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_after_a_change_fails_closed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    add(dir.path(), "alice", "alicepass", common::CHEAP);
    let l = local(dir.path(), &Verifiers::new(1).unwrap());
    bounded(async {
        assert!(accepted(&l.verify(pap("alice", "alicepass")).await));
        assert!(accepted(&l.verify(chap("alice", "alicepass")).await));
    })
    .await;

    let users = dir.path().join("users.toml");
    let good = std::fs::read(&users).unwrap();
    std::fs::write(&users, b"[users.alice]\nhash = \"not a hash\"\n").unwrap();
    let unavailable = Verdict::reject(modules::ppp_local::UNAVAILABLE_TEXT);
    bounded(async {
        assert_eq!(l.verify(pap("alice", "alicepass")).await, unavailable);
        assert_eq!(l.verify(chap("alice", "alicepass")).await, unavailable);
    })
    .await;
    std::fs::remove_file(&users).unwrap();
    bounded(async {
        assert_eq!(l.verify(pap("alice", "alicepass")).await, unavailable);
    })
    .await;
    std::fs::write(&users, &good).unwrap();
    bounded(async {
        assert!(accepted(&l.verify(pap("alice", "alicepass")).await));
    })
    .await;

    let secrets = dir.path().join("secrets.toml");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    bounded(async {
        assert_eq!(l.verify(chap("alice", "alicepass")).await, unavailable);
        assert_eq!(l.verify(mschapv2("alice", "alicepass")).await, unavailable);
    })
    .await;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    bounded(async {
        assert!(accepted(&l.verify(chap("alice", "alicepass")).await));
    })
    .await;
}
