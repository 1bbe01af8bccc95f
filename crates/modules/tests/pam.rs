//! The `pam` module driven through a real `securityhost::Port` against real
//! PAM stacks: pam_pwdfile with a private password file and pam_oath with a
//! private usersfile, each under a service file of the test's own
//! (`/etc/pam.d/dialgate-test-<pid>-<tag>`, removed afterwards). No system
//! account is ever used.
//!
//! These need root (to write `/etc/pam.d`) and the Debian packages
//! `libpam-pwdfile` and `libpam-oath` (`scripts/test` installs them):
//! without them a test fails, naming what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Driver, count};
use modules::END_ABORTED;
use modules::pam::{ERROR_PAM_RESULT_BASE, ERROR_PAM_SERVICE_MISSING};
use modules::{PamModule, PamOptions};
use securityhost::consts::ERROR_REQUEST_TIMEOUT;
use securityhost::{AbortCause, Outcome, Verdict};

/// `openssl passwd -6 -salt dialgatepamtest alicepass`.
const ALICE_HASH: &str = "$6$dialgatepamtest$GvTT6Bc4YEIU4hDBJP0.paFZ6NxEfuHAC9v9FFeaFAGY7RcC0ysLNwM2cpxQcw6QWQ/VGQWQfKjevy/njuLm.0";
/// `openssl passwd -6 -salt dialgatepamtst2 bobpass`.
const BOB_HASH: &str = "$6$dialgatepamtst2$Y9NX3BQHgTddk0mG5C4Rj.McPRygr4ZN80xo0rQR3tYIptBoV7.xl3qCJMg9UXSqZLxm8caXs5l0Xbx.BCQ2W1";
/// The RFC 4226 / RFC 6238 test key, "12345678901234567890".
const OATH_KEY: &[u8] = b"12345678901234567890";

const MODULE_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu/security",
    "/usr/lib/x86_64-linux-gnu/security",
    "/lib/aarch64-linux-gnu/security",
    "/usr/lib/aarch64-linux-gnu/security",
    "/lib/security",
    "/usr/lib/security",
    "/lib64/security",
];

fn has_pam_module(name: &str) -> bool {
    MODULE_DIRS
        .iter()
        .any(|d| Path::new(d).join(name).is_file())
}

/// Fails the calling test unless the PAM tests can run here: root (to
/// write `/etc/pam.d`) and the PAM modules they use. A test that cannot run
/// fails; it never passes.
fn require_pam(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root (it writes a service file in /etc/pam.d), so it cannot run \
         here: run the tests as root (`sudo bash scripts/test`)"
    );
    let missing: Vec<&str> = [
        "pam_pwdfile.so",
        "pam_oath.so",
        "pam_permit.so",
        "pam_echo.so",
    ]
    .into_iter()
    .filter(|m| !has_pam_module(m))
    .collect();
    assert!(
        missing.is_empty(),
        "{test}: PAM modules {missing:?} are not installed, so it cannot run: install \
         the Debian packages `libpam-pwdfile` and `libpam-oath` (`bash scripts/test` \
         installs them when run as root)"
    );
}

/// A private PAM service: its data directory and `/etc/pam.d` file, both
/// removed on drop.
struct Service {
    name: String,
    file: PathBuf,
    dir: tempfile::TempDir,
}

impl Service {
    /// A service `dialgate-test-<pid>-<tag>` whose file is `body`, with
    /// `@DIR@` replaced by the data directory.
    fn new(tag: &str, body: &str) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("dialgate-test-{}-{tag}", std::process::id());
        let file = Path::new("/etc/pam.d").join(&name);
        let body = body.replace("@DIR@", &dir.path().display().to_string());
        std::fs::write(&file, format!("# dialgate module tests only\n{body}")).expect("write");
        Service { name, file, dir }
    }

    /// A pam_pwdfile service over alice and bob; `pre` lines go first.
    fn pwdfile(tag: &str, pre: &str) -> Service {
        let s = Service::new(
            tag,
            &format!(
                "{pre}auth required pam_pwdfile.so pwdfile=@DIR@/passwd nodelay\n\
                 account required pam_permit.so\n\
                 session required pam_permit.so\n\
                 password required pam_deny.so\n"
            ),
        );
        s.write("passwd", &format!("alice:{ALICE_HASH}\nbob:{BOB_HASH}\n"));
        s
    }

    /// A pam_oath service with one TOTP user.
    fn oath(tag: &str, user: &str) -> Service {
        let s = Service::new(
            tag,
            "auth required pam_oath.so usersfile=@DIR@/users.oath window=5 digits=6\n\
             account required pam_permit.so\n\
             session required pam_permit.so\n\
             password required pam_deny.so\n",
        );
        s.write(
            "users.oath",
            &format!("HOTP/T30 {user} - {}\n", hex::encode(OATH_KEY)),
        );
        s
    }

    fn write(&self, file: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(file);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn module(&self, o: PamOptions) -> Arc<PamModule> {
        Arc::new(
            PamModule::new(
                tokio::runtime::Handle::current(),
                PamOptions {
                    service: self.name.clone(),
                    ..o
                },
            )
            .expect("options"),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn opts() -> PamOptions {
    PamOptions {
        tries: 2,
        prompt_timeout_secs: 10,
        ..PamOptions::default()
    }
}

fn failure(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Failure {
        user: user.into(),
        domain: String::new(),
    })
}

/// Waits (bounded) until no PAM thread of `m` runs.
async fn threads_end(m: &PamModule) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while m.active_pam_threads() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "PAM thread still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn totp_now() -> (totp::Totp, u64) {
    let t = totp::Totp::new(OATH_KEY.to_vec());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (t, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pwdfile_grants_the_right_password() {
    require_pam("pwdfile_grants_the_right_password");
    let svc = Service::pwdfile("grant", "");
    let m = svc.module(PamOptions {
        domain: "LAB".into(),
        ..opts()
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    d.type_slowly(b"alice\r").await;
    d.expect("Password: ").await;
    d.type_slowly(b"alicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "LAB")));
    assert_eq!(
        d.text(),
        "Username: alice\r\nPassword: \r\n",
        "no password echo"
    );
    assert_eq!(m.stats().granted, 1);
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pwdfile_refuses_wrong_password_and_unknown_user() {
    require_pam("pwdfile_refuses_wrong_password_and_unknown_user");
    let svc = Service::pwdfile("refuse", "");
    let m = svc.module(opts());
    // Wrong password twice: two tries, FAILURE with the typed name.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\nbobpass\nalice\nwrong\n").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(count(&d.output, b"Login incorrect\r\n"), 2);
    assert_eq!(count(&d.output, b"Password: "), 2);
    // An unknown user is asked for a password too, then refused.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"mallory\nx\nmallory\ny\n").await;
    assert_eq!(d.finish().await, failure("mallory"));
    // A wrong try, then the right one.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"bob\nnope\nbob\nbobpass\n").await;
    assert_eq!(d.finish().await.granted(), Some(("bob", "")));
    assert_eq!(count(&d.output, b"Login incorrect\r\n"), 1);
    // An empty password is refused (PAM_DISALLOW_NULL_AUTHTOK), not granted.
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n\nalice\n\n").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(m.stats().refused, 7);
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_management_must_pass_too() {
    require_pam("account_management_must_pass_too");
    // The right password, but the account stack refuses.
    let svc = Service::new(
        "acct",
        "auth required pam_pwdfile.so pwdfile=@DIR@/passwd nodelay\n\
         account required pam_deny.so\n",
    );
    svc.write("passwd", &format!("alice:{ALICE_HASH}\n"));
    let m = svc.module(PamOptions { tries: 1, ..opts() });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\nalicepass\n").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(m.stats().granted, 0);
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pam_own_name_prompt_is_echoed() {
    require_pam("pam_own_name_prompt_is_echoed");
    let svc = Service::pwdfile("ownname2", "");
    let m = svc.module(PamOptions {
        ask_username: false,
        ..opts()
    });
    let mut d = Driver::start_default(m.clone()).await;
    // PAM asks (pam_get_user, with the PAM_USER_PROMPT the module sets);
    // the answer is echoed.
    d.expect("Username: ").await;
    assert_eq!(m.active_pam_threads(), 1, "the prompt comes from PAM");
    d.type_slowly(b"alice\r").await;
    d.expect("alice\r\n").await;
    d.expect("Password: ").await;
    d.type_slowly(b"alicepass\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    // And a refusal reports the name PAM was given.
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Username: ").await;
    d.send(b"bob\nwrong\nbob\nwrong\n").await;
    assert_eq!(d.finish().await, failure("bob"));
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_message_is_shown_on_its_own_line() {
    require_pam("info_message_is_shown_on_its_own_line");
    let svc = Service::pwdfile(
        "info",
        "auth optional pam_echo.so Welcome to the dialgate PAM test\n",
    );
    let m = svc.module(opts());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    d.expect("Password: ").await;
    assert_eq!(
        d.text(),
        "Username: alice\r\nWelcome to the dialgate PAM test\r\nPassword: "
    );
    d.send(b"alicepass\n").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oath_totp_code_is_accepted() {
    require_pam("oath_totp_code_is_accepted");
    let svc = Service::oath("totp-ok", "totpuser");
    let m = svc.module(opts());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"totpuser\n").await;
    d.expect("One-time password (OATH) for `totpuser': ").await;
    let (t, now) = totp_now();
    let code = t.code_at(now).expect("code");
    d.type_slowly(format!("{code}\r").as_bytes()).await;
    assert_eq!(d.finish().await.granted(), Some(("totpuser", "")));
    assert!(!d.text().contains(&code), "the code is not echoed");
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oath_wrong_code_is_refused() {
    require_pam("oath_wrong_code_is_refused");
    let svc = Service::oath("totp-bad", "totpuser");
    let m = svc.module(PamOptions { tries: 1, ..opts() });
    let (t, now) = totp_now();
    let step = t.step_at(now).expect("step");
    // Not a valid code anywhere near the window pam_oath looks at.
    let near: Vec<String> = (step.saturating_sub(8)..=step + 8)
        .map(|s| totp::format_code(t.code_for_step(s), t.digits()))
        .collect();
    let wrong = (0..10u32)
        .map(|i| format!("{}", i).repeat(6))
        .find(|c| !near.contains(c))
        .expect("a wrong code");
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"totpuser\n").await;
    d.expect("One-time password (OATH) for `totpuser': ").await;
    d.send(format!("{wrong}\n").as_bytes()).await;
    assert_eq!(d.finish().await, failure("totpuser"));
    assert_eq!(count(&d.output, b"Login incorrect\r\n"), 1);
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_timeout_is_error_638() {
    require_pam("prompt_timeout_is_error_638");
    let svc = Service::pwdfile("timeout", "");
    let m = svc.module(PamOptions {
        prompt_timeout_secs: 1,
        ..opts()
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    d.expect("Password: ").await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error {
            code: ERROR_REQUEST_TIMEOUT
        })
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_during_a_pam_prompt_ends_the_pam_thread() {
    require_pam("end_during_a_pam_prompt_ends_the_pam_thread");
    let svc = Service::pwdfile("end", "");
    let m = svc.module(PamOptions {
        prompt_timeout_secs: 0,
        ..opts()
    });
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    d.expect("Password: ").await;
    assert_eq!(m.active_pam_threads(), 1, "PAM waits in its conversation");
    d.abort(AbortCause::PortDisabled).await;
    assert!(matches!(
        d.finish().await,
        Outcome::Aborted { late: None, .. }
    ));
    assert_eq!(d.end_codes, vec![END_ABORTED]);
    threads_end(&m).await;
    assert_eq!(m.active_dialogs(), 0);
    assert_eq!(m.stats().granted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_during_a_pam_prompt_stops_without_verdict() {
    require_pam("hang_up_during_a_pam_prompt_stops_without_verdict");
    let svc = Service::pwdfile("hangup", "");
    let m = svc.module(opts());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    d.expect("Password: ").await;
    d.hang_up().await;
    let o = d.finish().await;
    assert!(o.granted().is_none(), "{o:?}");
    threads_end(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pam_module_is_an_error_not_a_grant() {
    require_pam("missing_pam_module_is_an_error_not_a_grant");
    let svc = Service::new(
        "nomodule",
        "auth required pam_dialgate_no_such_module.so\naccount required pam_permit.so\n",
    );
    let m = svc.module(opts());
    let mut d = Driver::start_default(m.clone()).await;
    d.send(b"alice\n").await;
    match d.finish().await {
        Outcome::Verdict(Verdict::Error { code }) => {
            eprintln!("missing module: ERROR {code:#x}");
            assert!(
                (ERROR_PAM_RESULT_BASE..=0x2000_04ff).contains(&code),
                "{code:#x}"
            );
        }
        o => panic!("expected ERROR, got {o:?}"),
    }
    threads_end(&m).await;
}

/// Needs neither root nor PAM modules: the service file is checked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_service_file_is_an_error_without_calling_pam() {
    let m = Arc::new(
        PamModule::new(
            tokio::runtime::Handle::current(),
            PamOptions {
                service: format!("dialgate-test-{}-absent", std::process::id()),
                ..opts()
            },
        )
        .unwrap(),
    );
    let mut d = Driver::start_default(m.clone()).await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error {
            code: ERROR_PAM_SERVICE_MISSING
        })
    );
    assert_eq!(d.text(), "", "nothing is asked");
    assert_eq!(m.stats().transactions, 0);
}
