//! What follows a SUCCESS: the `exec` hand-off runs a configured program with
//! the caller's connection as its stdin and stdout (stderr too, as on a
//! terminal), and `DIALGATE_USER`, `DIALGATE_DOMAIN`, `DIALGATE_PORT`,
//! `DIALGATE_DEVICE` in its environment.
//!
//! The caller's hang-up is the program's SIGHUP (then SIGKILL after a grace
//! period), as on a terminal line; a server shutdown does the same.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

use crate::config::Handoff;

/// Who the hand-off is for.
#[derive(Clone, Debug)]
pub struct Session {
    /// `UserName` from the verdict.
    pub user: String,
    /// `Domain` from the verdict.
    pub domain: String,
    /// The port group.
    pub port: String,
    /// The device name.
    pub device: String,
}

const HANGUP_GRACE: Duration = Duration::from_secs(3);
/// Longest a write to the program or to the caller may wait: a side that
/// stops reading must not hold the line (and its carrier watch) forever.
const WRITE_STALL: Duration = Duration::from_secs(10);

/// Writes to the caller; false when the caller is gone or stalled.
async fn to_caller<W: AsyncWrite + Unpin>(wr: &mut W, b: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_STALL, wr.write_all(b)).await,
        Ok(Ok(()))
    )
}

/// Runs the hand-off until the program exits or the caller hangs up.
/// Returns a description of how it ended, for the log.
pub async fn run<S>(
    handoff: &Handoff,
    session: &Session,
    stream: &mut S,
    backlog: Vec<u8>,
    mut shutdown: watch::Receiver<bool>,
) -> String
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Handoff::Exec { program, args } = handoff else {
        return "not an exec hand-off".to_string();
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("DIALGATE_USER", &session.user)
        .env("DIALGATE_DOMAIN", &session.domain)
        .env("DIALGATE_PORT", &session.port)
        .env("DIALGATE_DEVICE", &session.device)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // fork/exec blocks its thread for milliseconds (vfork until execve):
    // keep it off the reactor's workers.
    let spawned = tokio::task::spawn_blocking(move || cmd.spawn())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("spawn task failed: {e}"))));
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("hand-off: cannot start {}: {e}", program.display());
            let _ = stream.write_all(b"\r\nService unavailable.\r\n").await;
            return format!("exec {} failed to start: {e}", program.display());
        }
    };
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut rd, mut wr) = tokio::io::split(&mut *stream);
    if let Some(i) = stdin.as_mut()
        && !backlog.is_empty()
        && i.write_all(&backlog).await.is_err()
    {
        stdin = None;
    }

    let mut from_caller = vec![0u8; 4096];
    let mut from_out = vec![0u8; 4096];
    let mut from_err = vec![0u8; 1024];
    let mut caller_gone = false;
    let mut exit = None;
    let mut hangup_deadline: Option<tokio::time::Instant> = None;
    loop {
        if exit.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            r = rd.read(&mut from_caller), if !caller_gone => match r {
                Ok(0) | Err(_) => {
                    caller_gone = true;
                    stdin = None;
                    if exit.is_none() {
                        hang_up(&child);
                        hangup_deadline = Some(tokio::time::Instant::now() + HANGUP_GRACE);
                    }
                }
                Ok(n) => {
                    // A program that stops reading its input must not stall
                    // the call (carrier loss, shutdown): its input closes.
                    if let Some(i) = stdin.as_mut()
                        && !matches!(
                            tokio::time::timeout(WRITE_STALL, i.write_all(&from_caller[..n])).await,
                            Ok(Ok(()))
                        )
                    {
                        stdin = None;
                    }
                }
            },
            r = read_opt(&mut stdout, &mut from_out) => match r {
                Some(n) if n > 0 => {
                    if !caller_gone && !to_caller(&mut wr, &from_out[..n]).await {
                        caller_gone = true;
                        stdin = None;
                        if exit.is_none() {
                            hang_up(&child);
                            hangup_deadline.get_or_insert(tokio::time::Instant::now() + HANGUP_GRACE);
                        }
                    }
                }
                _ => stdout = None,
            },
            r = read_opt(&mut stderr, &mut from_err) => match r {
                Some(n) if n > 0 => {
                    if !caller_gone && !to_caller(&mut wr, &from_err[..n]).await {
                        caller_gone = true;
                        stdin = None;
                        if exit.is_none() {
                            hang_up(&child);
                            hangup_deadline.get_or_insert(tokio::time::Instant::now() + HANGUP_GRACE);
                        }
                    }
                }
                _ => stderr = None,
            },
            s = child.wait(), if exit.is_none() => {
                exit = Some(s);
                // Output still in the pipes is flushed; a grandchild that
                // keeps them open gets the grace period.
                hangup_deadline.get_or_insert(tokio::time::Instant::now() + HANGUP_GRACE);
            }
            r = shutdown.changed(), if hangup_deadline.is_none() => {
                if r.is_err() || *shutdown.borrow() {
                    hang_up(&child);
                    hangup_deadline = Some(tokio::time::Instant::now() + HANGUP_GRACE);
                }
            }
            _ = sleep_opt(hangup_deadline) => {
                if exit.is_none() {
                    let _ = child.start_kill();
                    exit = Some(child.wait().await);
                }
                break;
            }
        }
    }
    let _ = wr.flush().await;
    match exit {
        Some(Ok(s)) => match (s.code(), signal_of(&s)) {
            (Some(c), _) => format!("exec {} exit={c}", program.display()),
            (None, Some(sig)) => format!("exec {} killed by signal {sig}", program.display()),
            _ => format!("exec {} ended", program.display()),
        },
        Some(Err(e)) => format!("exec {} wait failed: {e}", program.display()),
        None => format!("exec {} ended", program.display()),
    }
}

fn signal_of(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

fn hang_up(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
}

async fn read_opt<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
