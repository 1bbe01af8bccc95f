//! The `pin` module driven through a real `securityhost::Port`.

mod common;

use std::sync::Arc;

use common::{Driver, count};
use modules::{ConfigError, END_ABORTED, PinModule, PinOptions};
use securityhost::consts::NO_ERROR;
use securityhost::{AbortCause, Outcome, Verdict};

fn opts() -> PinOptions {
    PinOptions {
        user: "bench".into(),
        pin: "4711".into(),
        tries: 2,
        ..PinOptions::default()
    }
}

fn module(o: PinOptions) -> Arc<PinModule> {
    Arc::new(PinModule::new(tokio::runtime::Handle::current(), o).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_pin_succeeds_as_the_configured_user() {
    let mut d = Driver::start_default(module(opts())).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"4711\r\n").await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Success {
            user: "bench".into(),
            domain: String::new()
        })
    );
    assert_eq!(d.end_codes, vec![NO_ERROR]);
    assert_eq!(d.text(), "PIN: \r\n", "the PIN is not echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_fails_after_the_tries() {
    for wrong in ["4712", "471", "47111", ""] {
        let mut d = Driver::start_default(module(opts())).await;
        d.send(format!("{wrong}\n{wrong}\n").as_bytes()).await;
        assert_eq!(
            d.finish().await,
            Outcome::Verdict(Verdict::Failure {
                user: "bench".into(),
                domain: String::new()
            }),
            "{wrong:?}"
        );
        assert_eq!(count(&d.output, b"Login incorrect"), 2);
        assert_eq!(count(&d.output, b"PIN: "), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_prompt_and_domain() {
    let m = module(PinOptions {
        prompt: "Code> ".into(),
        domain: "LAB".into(),
        ..opts()
    });
    let mut d = Driver::start_default(m).await;
    d.expect("Code> ").await;
    d.send(b"4711\r").await;
    assert_eq!(d.finish().await.granted(), Some(("bench", "LAB")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_before_complete_aborts() {
    let m = module(opts());
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("PIN: ").await;
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
    let mut d = Driver::start_default(module(opts())).await;
    d.send(&vec![b'x'; 1 << 20]).await;
    assert_eq!(d.finish().await.granted(), None);
    assert!(d.fed < 64 * 1024);
}

#[test]
fn bad_options_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let h = || rt.handle().clone();
    let cases = [
        (
            PinOptions {
                user: String::new(),
                ..opts()
            },
            "user",
        ),
        (
            PinOptions {
                user: "x".repeat(257),
                ..opts()
            },
            "user",
        ),
        (
            PinOptions {
                pin: String::new(),
                ..opts()
            },
            "pin",
        ),
        (
            PinOptions {
                pin: "12\r34".into(),
                ..opts()
            },
            "pin",
        ),
        (
            PinOptions {
                pin: "1".repeat(257),
                ..opts()
            },
            "pin",
        ),
        (PinOptions { tries: 0, ..opts() }, "tries"),
        (
            PinOptions {
                domain: "x".repeat(16),
                ..opts()
            },
            "domain",
        ),
    ];
    for (o, what) in cases {
        let e = PinModule::new(h(), o).unwrap_err();
        let ok = match what {
            "user" => matches!(e, ConfigError::BadUser(_)),
            "pin" => e == ConfigError::BadPin,
            "tries" => e == ConfigError::NoTries,
            _ => matches!(e, ConfigError::BadDomain(_)),
        };
        assert!(ok, "{what}: {e}");
    }
    assert!(PinModule::new(h(), opts()).is_ok());
}
