//! The `chain` module driven through a real `securityhost::Port`, with
//! `pin` and `exec` modules (real `/bin/sh` programs) inside.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Driver, count};
use modules::{
    ChainConfigError, ChainModule, ChainStep, END_ABORTED, ExecModule, ExecOptions, PinModule,
    PinOptions, previous_user,
};
use securityhost::consts::NO_ERROR;
use securityhost::{
    AbortCause, BeginArgs, Defect, HPort, Outcome, SecurityMessage, SecurityModule, Verdict,
};

fn pin(user: &str, code: &str, prompt: &str) -> Arc<PinModule> {
    Arc::new(
        PinModule::new(
            tokio::runtime::Handle::current(),
            PinOptions {
                user: user.into(),
                pin: code.into(),
                prompt: prompt.into(),
                tries: 2,
                ..PinOptions::default()
            },
        )
        .unwrap(),
    )
}

fn chain(mods: Vec<Arc<dyn SecurityModule>>) -> Arc<ChainModule> {
    Arc::new(ChainModule::new(tokio::runtime::Handle::current(), mods).unwrap())
}

fn exec(dir: &Path, body: &str) -> Arc<ExecModule> {
    use std::os::unix::fs::PermissionsExt;
    let p: PathBuf = dir.join("p.sh");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    Arc::new(
        ExecModule::new(
            tokio::runtime::Handle::current(),
            ExecOptions {
                program: p,
                kill_grace: Duration::from_millis(200),
                ..ExecOptions::default()
            },
        )
        .unwrap(),
    )
}

fn failure(user: &str) -> Outcome {
    Outcome::Verdict(Verdict::Failure {
        user: user.into(),
        domain: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pins_both_grant() {
    let (a, b) = (
        pin("alice", "1111", "PIN1: "),
        pin("alice", "2222", "PIN2: "),
    );
    let c = chain(vec![a.clone(), b.clone()]);
    let mut d = Driver::start_default(c.clone()).await;
    d.expect("PIN1: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("PIN2: ").await;
    d.type_slowly(b"2222\r").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
    assert_eq!(d.text(), "PIN1: \r\nPIN2: \r\n");
    assert_eq!(
        (a.active_dialogs(), b.active_dialogs(), c.active_dialogs()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_refuses() {
    let b = pin("alice", "2222", "PIN2: ");
    let c = chain(vec![pin("alice", "1111", "PIN1: "), b.clone()]);
    let mut d = Driver::start_default(c).await;
    d.expect("PIN1: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("PIN2: ").await;
    d.type_slowly(b"1111\r1111\r").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(count(&d.output, b"Login incorrect"), 2);
    assert_eq!(b.active_dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_refusal_wins_and_the_second_never_runs() {
    let b = pin("alice", "2222", "PIN2: ");
    let mut d = Driver::start_default(chain(vec![pin("alice", "1111", "PIN1: "), b])).await;
    d.expect("PIN1: ").await;
    d.type_slowly(b"0\r0\r").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert!(!d.text().contains("PIN2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_disagree() {
    let c = chain(vec![
        pin("alice", "1111", "PIN1: "),
        pin("bob", "2222", "PIN2: "),
    ]);
    let mut d = Driver::start_default(c).await;
    d.expect("PIN1: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("PIN2: ").await;
    d.type_slowly(b"2222\r").await;
    assert_eq!(d.finish().await, failure("alice"));
    assert_eq!(d.end_codes, vec![NO_ERROR]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_during_the_second_module() {
    let (a, b) = (
        pin("alice", "1111", "PIN1: "),
        pin("alice", "2222", "PIN2: "),
    );
    let c = chain(vec![a.clone(), b.clone()]);
    let mut d = Driver::start_default(c.clone()).await;
    d.expect("PIN1: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("PIN2: ").await;
    // Begin registers the dialog right after spawning it: the prompt can
    // come first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.active_dialogs() != 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(b.active_dialogs(), 1);
    d.abort(AbortCause::Shutdown).await;
    assert_eq!(
        d.finish().await,
        Outcome::Aborted {
            cause: AbortCause::Shutdown,
            late: None
        }
    );
    assert_eq!(d.end_codes, vec![END_ABORTED]);
    assert_eq!(
        (a.active_dialogs(), b.active_dialogs(), c.active_dialogs()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_during_a_second_exec_kills_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let e = exec(
        dir.path(),
        &format!(
            "echo $$ > {}\nprintf 'Code: '\nwhile :; do sleep 1; done",
            pidfile.display()
        ),
    );
    let mut d = Driver::start_default(chain(vec![pin("alice", "1111", "PIN: "), e.clone()])).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("Code: ").await;
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.abort(AbortCause::PortDisabled).await;
    assert!(matches!(d.finish().await, Outcome::Aborted { .. }));
    assert_eq!(d.end_codes, vec![END_ABORTED]);
    assert_eq!(e.active_dialogs(), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        });
        if gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "program {pid} lives"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_then_exec_grants() {
    let dir = tempfile::tempdir().unwrap();
    let e = exec(
        dir.path(),
        "printf 'Code: '; IFS= read -r c; if [ \"$c\" = 42 ]; then echo 'SUCCESS alice' >&3; else echo 'FAILURE alice' >&3; fi",
    );
    let mut d = Driver::start_default(chain(vec![pin("alice", "1111", "PIN: "), e])).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    d.expect("Code: ").await;
    d.send(b"42\n").await;
    assert_eq!(d.finish().await.granted(), Some(("alice", "")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_then_pin_hands_over_the_pending_receive() {
    // The exec module completes while its Receive is still pending: the
    // chain keeps it, and the pin module's answer arrives through it.
    let dir = tempfile::tempdir().unwrap();
    let e = exec(
        dir.path(),
        "printf 'Name: '; IFS= read -r n; echo \"SUCCESS $n\" >&3",
    );
    let p = pin("carol", "1111", "PIN: ");
    let mut d = Driver::start_default(chain(vec![e, p.clone()])).await;
    d.expect("Name: ").await;
    d.send(b"carol\n").await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    assert_eq!(d.finish().await.granted(), Some(("carol", "")));
    assert_eq!(p.active_dialogs(), 0);
}

/// A test module that completes inside Begin, with what [`previous_user`]
/// says (or a Begin failure, or an invalid message).
struct Probe {
    begin_code: u32,
    bad_message: bool,
}

impl SecurityModule for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        if self.begin_code != NO_ERROR {
            return self.begin_code;
        }
        let msg = if self.bad_message {
            let mut m = SecurityMessage::zeroed(args.hport);
            m.msg_id = 9;
            m
        } else {
            match previous_user(args.hport) {
                Some((u, d)) => SecurityMessage::success(args.hport, &u, &d).unwrap(),
                None => SecurityMessage::error(args.hport, 4242),
            }
        };
        let r = args.host.complete(&msg);
        if !self.bad_message {
            assert_eq!(r, NO_ERROR);
        }
        NO_ERROR
    }

    fn end(&self, _hport: HPort) -> u32 {
        NO_ERROR
    }
}

fn probe(begin_code: u32, bad_message: bool) -> Arc<dyn SecurityModule> {
    Arc::new(Probe {
        begin_code,
        bad_message,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_module_learns_the_previous_user() {
    let c = chain(vec![pin("dave", "1111", "PIN: "), probe(0, false)]);
    let mut d = Driver::start_default(c).await;
    d.expect("PIN: ").await;
    let h = d.port.hport();
    assert_eq!(previous_user(h), None);
    d.type_slowly(b"1111\r").await;
    assert_eq!(d.finish().await.granted(), Some(("dave", "")));
    assert_eq!(previous_user(h), None, "forgotten at End");
    // As the first module, the probe has no previous user.
    let mut d = Driver::start_default(chain(vec![probe(0, false)])).await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error { code: 4242 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_begin_failure_is_an_error() {
    let c = chain(vec![pin("dave", "1111", "PIN: "), probe(77, false)]);
    let mut d = Driver::start_default(c).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Error { code: 77 })
    );
    // A first Begin failure is the chain's Begin failure.
    let mut d = Driver::start_default(chain(vec![probe(78, false)])).await;
    assert_eq!(d.finish().await, Outcome::BeginFailed(78));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_defect_reaches_the_host() {
    let c = chain(vec![pin("dave", "1111", "PIN: "), probe(0, true)]);
    let mut d = Driver::start_default(c).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    assert_eq!(d.finish().await, Outcome::Defect(Defect::BadMsgId(9)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_begun_with_the_previous_user() {
    let seen = Arc::new(std::sync::Mutex::new(None::<String>));
    let s2 = seen.clone();
    let inner = probe(0, false);
    let i2 = inner.clone();
    let step = ChainStep::with_user(inner, move |args, user| {
        *s2.lock().unwrap() = Some(user.to_string());
        i2.begin(args)
    });
    let c = Arc::new(
        ChainModule::with_steps(
            tokio::runtime::Handle::current(),
            vec![ChainStep::new(pin("erin", "1111", "PIN: ")), step],
        )
        .unwrap(),
    );
    let mut d = Driver::start_default(c).await;
    d.expect("PIN: ").await;
    d.type_slowly(b"1111\r").await;
    assert_eq!(d.finish().await.granted(), Some(("erin", "")));
    assert_eq!(seen.lock().unwrap().as_deref(), Some("erin"));
}

#[test]
fn empty_chain_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        ChainModule::new(rt.handle().clone(), Vec::new()).unwrap_err(),
        ChainConfigError::Empty
    );
    let first = ChainStep::with_user(probe(0, false), |_, _| 0);
    assert_eq!(
        ChainModule::with_steps(rt.handle().clone(), vec![first]).unwrap_err(),
        ChainConfigError::UserForFirst
    );
}
