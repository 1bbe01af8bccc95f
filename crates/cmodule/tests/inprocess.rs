//! C modules loaded into this process (the loader and the host functions),
//! driven through a real `securityhost::Port`.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cmodule::{CModule, LoadError};
use common::*;
use securityhost::consts::*;
use securityhost::*;

struct Built {
    _dir: tempfile::TempDir,
    tokencard: Arc<CModule>,
    pin: Arc<CModule>,
    misbehave: Arc<CModule>,
    inbegin: Arc<CModule>,
    beginfails: Arc<CModule>,
    keys: std::path::PathBuf,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let load = |src: &str| Arc::new(CModule::load(&build_module(dir.path(), src)).unwrap());
        let keys = dir.path().join("tokencard.keys");
        std::fs::write(
            &keys,
            "# test keys\nalice 3132333435363738393031323334353637383930\n",
        )
        .unwrap();
        let pins = dir.path().join("pins");
        std::fs::write(&pins, "bob 4711\n").unwrap();
        // SAFETY-free: set before any module thread reads them (modules read
        // the variables at each call; the tests all use the same values).
        // The variables are set once, before the first module is loaded.
        set_env("DIALGATE_TOKENCARD_KEYS", &keys);
        set_env("DIALGATE_PIN_FILE", &pins);
        Built {
            tokencard: load("examples/modules/tokencard.c"),
            pin: load("examples/modules/pin.c"),
            misbehave: load("crates/cmodule/tests/modules/misbehave.c"),
            inbegin: load("crates/cmodule/tests/modules/inbegin.c"),
            beginfails: load("crates/cmodule/tests/modules/beginfails.c"),
            keys,
            _dir: dir,
        }
    })
}

#[allow(unsafe_code)]
fn set_env(k: &str, v: &std::path::Path) {
    // SAFETY: called once under the OnceLock initializer, before any module
    // thread that reads the environment exists.
    unsafe { std::env::set_var(k, v) };
}

fn cfg() -> Config {
    Config {
        send_buffer_size: 64,
        recv_buffer_size: 32,
        ..Config::default()
    }
}

fn start(m: &Arc<CModule>) -> Drive {
    Drive::start(m.clone(), cfg())
}

fn challenge(text: &str) -> String {
    let i = text.find("Challenge: ").expect("a challenge") + "Challenge: ".len();
    text[i..i + 16].to_string()
}

#[test]
fn tokencard_grants_the_right_response() {
    let b = built();
    let mut d = start(&b.tokencard);
    d.expect("Name: ");
    d.input("alice\r");
    d.expect("Response: ");
    let resp = token_response(b"12345678901234567890", &challenge(&d.text()));
    d.input(&format!("{resp}\r\n"));
    let (o, defects) = d.finish();
    assert_eq!(o.granted(), Some(("alice", "")), "{o:?}");
    assert!(defects.is_empty(), "{defects:?}");
    assert!(d.text().contains("Accepted."));
    assert_eq!(d.ends, 1);
}

#[test]
fn tokencard_denies_a_wrong_response_and_unknown_users() {
    let b = built();
    let mut d = start(&b.tokencard);
    d.expect("Name: ");
    d.input("alice\n");
    d.expect("Response: ");
    let good = token_response(b"12345678901234567890", &challenge(&d.text()));
    let bad = if good == "000000" {
        "000001".to_string()
    } else {
        "000000".to_string()
    };
    d.input(&format!("{bad}\r"));
    let (o, _) = d.finish();
    assert_eq!(
        o,
        Outcome::Verdict(Verdict::Failure {
            user: "alice".into(),
            domain: "".into()
        })
    );

    // An unknown name gets a challenge too, then fails.
    let mut d = start(&b.tokencard);
    d.expect("Name: ");
    d.input("mallory\r");
    d.expect("Response: ");
    d.input("123456\r");
    let (o, _) = d.finish();
    assert!(matches!(o, Outcome::Verdict(Verdict::Failure { ref user, .. }) if user == "mallory"));
    assert!(b.keys.exists());
}

#[test]
fn pin_grants_after_a_wrong_try_and_denies_after_three() {
    let b = built();
    let mut d = start(&b.pin);
    d.expect("User: ");
    // One byte at a time, CR LF endings.
    for ch in "bob\r\n".chars() {
        d.input(&ch.to_string());
    }
    d.expect("PIN: ");
    d.input("1111\r");
    d.expect("Wrong. User: ");
    d.input("bob\rPIN_IGNORED".split('P').next().unwrap());
    d.expect("PIN: ");
    d.input("4711\r");
    let (o, _) = d.finish();
    assert_eq!(o.granted(), Some(("bob", "")), "{o:?}: {}", d.text());

    let mut d = start(&b.pin);
    for _ in 0..3 {
        d.until("a User prompt", |d| d.text().matches("User: ").count() > 0);
        d.input("bob\r0000\r");
    }
    let (o, _) = d.finish();
    assert!(
        matches!(o, Outcome::Verdict(Verdict::Failure { .. })),
        "{o:?}"
    );
}

/// Runs a misbehave command and returns the report lines it sent.
fn misbehave(cmd: &str) -> (String, Outcome, Vec<Defect>) {
    let mut d = start(&built().misbehave);
    d.input(&format!("{cmd}\r"));
    let (o, defects) = d.finish();
    (d.text(), o, defects)
}

#[test]
fn a_bad_handle_gets_601() {
    let (text, o, _) = misbehave("bad-handle");
    assert_eq!(text, "R 601 601 601\r\n");
    assert!(o.granted().is_some());
}

#[test]
fn pointers_outside_the_buffers_and_null_get_87() {
    let (text, _, _) = misbehave("pointers");
    assert_eq!(text, "R 87 87 87\r\nR 87 87 87\r\n");
}

#[test]
fn lengths_past_the_end_get_603() {
    let (text, _, _) = misbehave("lengths");
    assert_eq!(text, "R 603 603 603\r\n");
}

#[test]
fn a_second_receive_gets_616_and_the_first_completes() {
    let mut d = start(&built().misbehave);
    d.input("second-receive\r");
    d.expect("R 600 616 0\r\n");
    d.input("Z");
    let (o, _) = d.finish();
    assert!(
        d.text().ends_with(&format!("G 0 1 {}\r\n", b'Z')),
        "{}",
        d.text()
    );
    assert!(o.granted().is_some());
}

#[test]
fn a_receive_times_out_with_638() {
    let mut d = start(&built().misbehave);
    d.input("timeout\r");
    d.expect("waiting\r\n");
    d.advance(Duration::from_secs(2));
    let (o, _) = d.finish();
    assert!(d.text().ends_with("R 600 638 0\r\n"), "{}", d.text());
    assert!(o.granted().is_some());
}

#[test]
fn hang_up_while_pending_completes_the_receive_with_619_then_end() {
    let mut d = start(&built().misbehave);
    d.input("wait\r");
    d.expect("waiting\r\n");
    let now = d.port.now();
    d.port.with(|tx, _| tx.caller_hung_up(now));
    let (o, _) = d.finish();
    assert_eq!(
        o,
        Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: Some(Ok(Verdict::Error {
                code: ERROR_PORT_DISCONNECTED
            }))
        }
    );
    assert_eq!(d.ends, 1);
}

#[test]
fn end_arriving_while_a_receive_is_pending() {
    let mut d = start(&built().misbehave);
    d.input("wait\r");
    d.expect("waiting\r\n");
    let now = d.port.now();
    d.port.with(|tx, _| tx.abort(AbortCause::Shutdown, now));
    let (o, _) = d.finish();
    assert!(
        matches!(
            o,
            Outcome::Aborted {
                cause: AbortCause::Shutdown,
                ..
            }
        ),
        "{o:?}"
    );
}

#[test]
fn complete_twice_keeps_the_first_and_notes_a_defect() {
    let (_, o, defects) = misbehave("twice");
    assert_eq!(o.granted(), Some(("probe", "")));
    assert!(defects.contains(&Defect::SecondComplete), "{defects:?}");
}

#[test]
fn an_unterminated_message_is_a_defect_never_a_grant() {
    let (_, o, _) = misbehave("bad-message");
    assert_eq!(o, Outcome::Defect(Defect::Unterminated("UserName")));
}

#[test]
fn complete_from_inside_begin_and_a_second_one_from_end() {
    let mut d = start(&built().inbegin);
    let (o, defects) = d.finish();
    assert_eq!(o.granted(), Some(("early", "")));
    assert!(defects.contains(&Defect::SecondComplete), "{defects:?}");
}

#[test]
fn begin_failing_hangs_up_with_its_code() {
    let mut d = start(&built().beginfails);
    let (o, _) = d.finish();
    assert_eq!(o, Outcome::BeginFailed(1234));
    assert_eq!(d.ends, 0);
}

#[test]
fn a_module_that_never_completes_ends_at_the_dialog_time_limit() {
    let mut d = start(&built().misbehave);
    d.input("never\r");
    d.expect("silent\r\n");
    d.advance(Duration::from_secs(121));
    d.until("End", |d| d.ends == 1);
    // Its End returns 0: the host waits the grace period for a late Complete.
    d.until("End returned", |d| {
        d.port.with(|tx, _| tx.poll_timeout()).is_some()
    });
    std::thread::sleep(Duration::from_millis(50));
    d.step();
    d.advance(Duration::from_secs(6));
    let (o, _) = d.finish();
    assert_eq!(
        o,
        Outcome::Aborted {
            cause: AbortCause::DialogTimedOut,
            late: None
        }
    );
}

#[test]
fn a_stale_handle_is_601_after_end() {
    // After the transaction, its handle is unknown to every host function.
    let mut d = start(&built().inbegin);
    let h = d.port.hport();
    d.finish();
    let mut info = std::mem::MaybeUninit::<cmodule::abi::RasSecurityInfoC>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: a valid out-pointer; the handle is stale so nothing is written.
    let r = unsafe {
        cmodule::host::RasSecurityDialogGetInfo(
            h.0 as usize as cmodule::abi::Hport,
            info.as_mut_ptr(),
        )
    };
    assert_eq!(r, ERROR_INVALID_PORT_HANDLE);
}

#[test]
fn load_errors_name_the_file_and_the_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.so");
    let e = CModule::load(&missing).unwrap_err();
    assert!(matches!(e, LoadError::Missing { .. }));
    assert!(e.to_string().contains("nope.so"), "{e}");

    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let e = CModule::load(&junk).unwrap_err();
    assert!(matches!(e, LoadError::Unloadable { .. }), "{e}");
    assert!(e.to_string().contains("junk.so"), "{e}");

    let noend = build_module(dir.path(), "crates/cmodule/tests/modules/noend.c");
    let e = CModule::load(&noend).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::MissingExport {
                symbol: "RasSecurityDialogEnd",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("noend.so") && e.to_string().contains("RasSecurityDialogEnd"));
}

/// A module whose End returns 0 ("I will complete later") and never
/// completes: every caller who hangs up left its handle, registry entry
/// and Begin buffers in the process for ever. At most
/// `AWAITING_LATE_MAX` wait for their late Complete.
#[test]
fn handles_waiting_for_a_late_complete_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let m = CModule::load(&build_module(
        dir.path(),
        "crates/cmodule/tests/modules/endzero.c",
    ))
    .unwrap();
    let cfg = Config {
        send_buffer_size: 64,
        recv_buffer_size: 32,
        ..Config::default()
    };
    for _ in 0..cmodule::host::AWAITING_LATE_MAX + 100 {
        let port = Port::new(
            table().allocate(),
            cfg.clone(),
            "tcp 127.0.0.1:5555",
            Arc::new(SystemClock),
            Box::new(|| {}),
        );
        let args = BeginArgs {
            hport: port.hport(),
            send_buffer_size: cfg.send_buffer_size,
            recv_buffer_size: cfg.recv_buffer_size,
            host: port.host(),
        };
        assert_eq!(m.begin(args), NO_ERROR);
        assert_eq!(m.end(port.hport()), NO_ERROR);
    }
    // Other tests of this binary hold a few live handles meanwhile.
    let n = cmodule::host::registered_handles();
    assert!(
        n <= cmodule::host::AWAITING_LATE_MAX + 32,
        "{n} handles still registered"
    );
    assert!(cmodule::host::awaiting_late_complete() <= cmodule::host::AWAITING_LATE_MAX);
}
