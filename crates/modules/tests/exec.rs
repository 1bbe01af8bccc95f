//! The `exec` module driven through a real `securityhost::Port`, with real
//! programs (`/bin/sh` and `python3` scripts written into a tempdir, and the
//! examples in `examples/exec/`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::Driver;
use modules::{
    END_ABORTED, ERROR_EXEC_BAD_EXIT, ERROR_EXEC_BAD_VERDICT, ERROR_EXEC_NO_VERDICT,
    ERROR_EXEC_SPAWN_FAILED, ExecConfigError, ExecModule, ExecOptions,
};
use securityhost::consts::NO_ERROR;
use securityhost::{AbortCause, Config, Outcome, Verdict};

const PYTHON: &str = "/usr/bin/python3";

/// Writes `body` as an executable `/bin/sh` script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn module(program: PathBuf, args: &[&str]) -> Arc<ExecModule> {
    module_with(ExecOptions {
        program,
        args: args.iter().map(|s| s.to_string()).collect(),
        kill_grace: Duration::from_millis(300),
        exit_grace: Duration::from_secs(3),
        ..ExecOptions::default()
    })
}

fn module_with(o: ExecOptions) -> Arc<ExecModule> {
    Arc::new(ExecModule::new(tokio::runtime::Handle::current(), o).unwrap())
}

fn success(user: &str, domain: &str) -> Outcome {
    Outcome::Verdict(Verdict::Success {
        user: user.into(),
        domain: domain.into(),
    })
}

fn error(code: u32) -> Outcome {
    Outcome::Verdict(Verdict::Error { code })
}

/// Runs `body` as the whole dialog with `input` typed, returning the outcome
/// and the driver.
async fn run(body: &str, input: &[u8]) -> (Outcome, Driver) {
    let dir = tempfile::tempdir().unwrap();
    let m = module(script(dir.path(), "p.sh", body), &[]);
    let mut d = Driver::start_default(m.clone()).await;
    d.send(input).await;
    let o = d.finish().await;
    assert_eq!(m.active_dialogs(), 0, "End forgot the dialog");
    (o, d)
}

/// Whether process `pid` is gone (or a zombie waiting for its parent).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_dead(pid: i32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dead(pid)
}

async fn read_pids(path: &Path) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + common::LIMIT;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            let v: Vec<i32> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() >= 2 {
                return v;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no pid file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_with_the_dialog_on_stdin_and_stdout() {
    let body = r#"
printf 'dev=%s\r\n' "$DIALGATE_DEVICE"
printf 'Name: '
IFS= read -r name
printf 'Secret: '
IFS= read -r pw
if [ "$pw" = "s3cret" ]; then echo "SUCCESS $name LAB" >&3; echo bye; else echo "FAILURE $name" >&3; fi
"#;
    let (o, d) = run(body, b"alice\ns3cret\n").await;
    assert_eq!(o, success("alice", "LAB"));
    assert!(
        d.text().contains("dev=test 127.0.0.1:1\r\n"),
        "{}",
        d.text()
    );
    assert!(d.text().contains("Name: Secret: bye\n"), "{}", d.text());
    assert_eq!(d.end_codes, vec![NO_ERROR]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses() {
    let body = r#"IFS= read -r name; echo "FAILURE $name" >&3"#;
    let (o, _) = run(body, b"mallory\n").await;
    assert_eq!(
        o,
        Outcome::Verdict(Verdict::Failure {
            user: "mallory".into(),
            domain: String::new()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_its_error_code() {
    let (o, _) = run("echo 'ERROR 1234' >&3; exit 3", b"").await;
    assert_eq!(o, error(1234));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_verdict_lines_are_errors_never_grants() {
    for line in [
        r"printf 'GRANT alice\n' >&3",
        r"printf 'SUCCESS alice' >&3",
        r"printf 'SUCCESS alice\r\n' >&3",
        r"printf 'success alice\n' >&3",
        r"printf 'SUCCESS a b c\n' >&3",
        r"printf 'ERROR 0\n' >&3",
        r"printf 'SUCCESS alice\nSUCCESS bob\n' >&3",
        r"printf 'SUCCESS alice\n' >&3; printf x >&3",
        "head -c 5000 /dev/zero | tr '\\0' 'a' >&3",
    ] {
        let (o, _) = run(line, b"").await;
        assert_eq!(o, error(ERROR_EXEC_BAD_VERDICT), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_without_a_verdict_is_a_defect() {
    let (o, d) = run("echo hello; exit 0", b"").await;
    assert_eq!(o, error(ERROR_EXEC_NO_VERDICT));
    assert_eq!(d.text(), "hello\n");
    // Closing fd 3 early counts the same.
    let (o, _) = run("exec 3>&-; sleep 0.1; exit 0", b"").await;
    assert_eq!(o, error(ERROR_EXEC_NO_VERDICT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dying_from_a_signal() {
    let (o, _) = run("kill -SEGV $$", b"").await;
    assert_eq!(o, error(ERROR_EXEC_NO_VERDICT));
    // A SUCCESS followed by a crash is not a grant.
    let (o, _) = run("echo 'SUCCESS alice' >&3; kill -KILL $$", b"").await;
    assert_eq!(o, error(ERROR_EXEC_BAD_EXIT));
    // Nor is a SUCCESS followed by a failing exit status.
    let (o, _) = run("echo 'SUCCESS alice' >&3; exit 2", b"").await;
    assert_eq!(o, error(ERROR_EXEC_BAD_EXIT));
    // A FAILURE stays a FAILURE whatever the exit.
    let (o, _) = run("echo 'FAILURE alice' >&3; kill -KILL $$", b"").await;
    assert_eq!(o.granted(), None);
    assert!(matches!(o, Outcome::Verdict(Verdict::Failure { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_program_is_killed_by_end() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // Ignores SIGTERM, so only the SIGKILL after the grace ends it; its
    // child in the same process group must die too.
    let body = format!(
        "trap '' TERM\nsleep 1000 &\necho $$ $! > {}\nprintf 'Say: '\nwhile :; do sleep 1; done",
        pids.display()
    );
    let m = module(script(dir.path(), "hang.sh", &body), &[]);
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Say: ").await;
    let p = read_pids(&pids).await;
    assert!(!dead(p[0]) && !dead(p[1]));
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
    for pid in p {
        assert!(wait_dead(pid, Duration::from_secs(5)).await, "{pid} lives");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_program_meets_the_dialog_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let body = format!("sleep 1000 &\necho $$ $! > {}\nwait", pids.display());
    let m = module(script(dir.path(), "hang.sh", &body), &[]);
    let cfg = Config {
        dialog_time_limit: Duration::from_millis(500),
        ..Config::default()
    };
    let mut d = Driver::start(m, cfg).await;
    let p = read_pids(&pids).await;
    assert_eq!(
        d.finish().await,
        Outcome::Aborted {
            cause: AbortCause::DialogTimedOut,
            late: None
        }
    );
    for pid in p {
        assert!(wait_dead(pid, Duration::from_secs(5)).await, "{pid} lives");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_child_holding_fd3_does_not_stall_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    for (verdict, want) in [
        ("", error(ERROR_EXEC_NO_VERDICT)),
        ("echo 'SUCCESS eve' >&3", success("eve", "")),
    ] {
        let body = format!(
            "{verdict}\nsleep 1000 &\necho $$ $! > {}\nexit 0",
            pids.display()
        );
        let m = module_with(ExecOptions {
            program: script(dir.path(), "bg.sh", &body),
            exit_grace: Duration::from_millis(300),
            kill_grace: Duration::from_millis(100),
            ..ExecOptions::default()
        });
        let mut d = Driver::start_default(m).await;
        let p = read_pids(&pids).await;
        let started = tokio::time::Instant::now();
        assert_eq!(d.finish().await, want);
        assert!(started.elapsed() < Duration::from_secs(5));
        // End after Complete kills what the program left behind.
        for pid in p {
            assert!(wait_dead(pid, Duration::from_secs(5)).await, "{pid} lives");
        }
        std::fs::remove_file(&pids).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hang_up_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = module(
        script(
            dir.path(),
            "p.sh",
            "printf 'Name: '; IFS= read -r n; echo \"SUCCESS $n\" >&3",
        ),
        &[],
    );
    let mut d = Driver::start_default(m.clone()).await;
    d.expect("Name: ").await;
    d.hang_up().await;
    let o = d.finish().await;
    assert_eq!(o.granted(), None);
    assert_eq!(m.active_dialogs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_output_is_chunked_and_stderr_is_bounded() {
    let body = "head -c 100000 /dev/zero | tr '\\0' 'x'\n\
                i=0; while [ $i -lt 200 ]; do echo \"noise $i\" >&2; i=$((i+1)); done\n\
                head -c 300000 /dev/zero >&2\n\
                echo 'SUCCESS bob' >&3";
    let (o, d) = run(body, b"").await;
    assert_eq!(o, success("bob", ""));
    assert_eq!(d.output.len(), 100_000);
    assert!(d.output.iter().all(|&b| b == b'x'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_cleared_and_configured() {
    let dir = tempfile::tempdir().unwrap();
    let m = module_with(ExecOptions {
        program: script(
            dir.path(),
            "env.sh",
            r#"echo "A=$1 B=${FOO-unset} H=${HOME-unset} P=$PATH D=$(pwd) HP=$DIALGATE_HPORT"; echo 'SUCCESS x' >&3"#,
        ),
        args: vec!["arg one".into()],
        env: vec![("FOO".into(), "bar baz".into())].into(),
        working_dir: dir.path().to_path_buf(),
        ..ExecOptions::default()
    });
    let mut d = Driver::start_default(m).await;
    assert_eq!(d.finish().await, success("x", ""));
    let want = format!(
        "A=arg one B=bar baz H=unset P=/usr/local/bin:/usr/bin:/bin D={} HP={}\n",
        dir.path().display(),
        d.port.hport().0
    );
    assert_eq!(d.text(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_an_error() {
    let m = module("/nonexistent/dialgate-exec".into(), &[]);
    let mut d = Driver::start_default(m).await;
    assert_eq!(d.finish().await, error(ERROR_EXEC_SPAWN_FAILED));
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/exec")
}

async fn example_dialog(program: PathBuf, args: Vec<String>) {
    let users = examples().join("users.txt");
    let mk = || {
        let mut a = args.clone();
        a.push(users.display().to_string());
        a.push("2".into());
        module_with(ExecOptions {
            program: program.clone(),
            args: a,
            ..ExecOptions::default()
        })
    };
    let mut d = Driver::start_default(mk()).await;
    d.expect("Username: ").await;
    d.send(b"alice\r\nwonderland\r\n").await;
    assert_eq!(d.finish().await, success("alice", ""));
    assert!(
        d.text().starts_with("Welcome to test 127.0.0.1:1\r\n"),
        "{}",
        d.text()
    );
    assert!(d.text().contains("Welcome, alice."));

    let mut d = Driver::start_default(mk()).await;
    d.send(b"alice\nwrong\nbob\nwonderland\n").await;
    assert_eq!(
        d.finish().await,
        Outcome::Verdict(Verdict::Failure {
            user: "bob".into(),
            domain: String::new()
        })
    );
    assert_eq!(common::count(&d.output, b"Login incorrect"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_example() {
    example_dialog(examples().join("userpass.sh"), vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example() {
    example_dialog(
        PYTHON.into(),
        vec![examples().join("userpass.py").display().to_string()],
    )
    .await;
}

#[test]
fn bad_options_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let base = || ExecOptions {
        program: "/bin/true".into(),
        ..ExecOptions::default()
    };
    let h = || rt.handle().clone();
    assert!(matches!(
        ExecModule::new(
            h(),
            ExecOptions {
                program: "true".into(),
                ..base()
            }
        ),
        Err(ExecConfigError::ProgramNotAbsolute(_))
    ));
    assert_eq!(
        ExecModule::new(
            h(),
            ExecOptions {
                args: vec!["a\0b".into()],
                ..base()
            }
        )
        .unwrap_err(),
        ExecConfigError::BadArg(0)
    );
    for (k, v) in [
        ("", "x"),
        ("A=B", "x"),
        ("DIALGATE_DEVICE", "x"),
        ("A", "x\0"),
    ] {
        assert!(matches!(
            ExecModule::new(
                h(),
                ExecOptions {
                    env: vec![(k.into(), v.into())].into(),
                    ..base()
                }
            ),
            Err(ExecConfigError::BadEnv(_))
        ));
    }
    assert_eq!(
        ExecModule::new(
            h(),
            ExecOptions {
                kill_grace: Duration::ZERO,
                ..base()
            }
        )
        .unwrap_err(),
        ExecConfigError::BadGrace
    );
    assert!(ExecModule::new(h(), base()).is_ok());
}
