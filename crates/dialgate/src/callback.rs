//! Caller-set callback: after the dialog's SUCCESS, the caller types the
//! number to be called back at (RAS's "Set by caller").
//!
//! The line is edited as the dialog's are ([`modules::line::LineReader`]:
//! echo, backspace/DEL, Ctrl-U, CR, LF or CR LF to end it, a bounded
//! buffer). Bytes after the line end stay for PPP.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use modules::line::{LineEvent, LineReader};

use crate::config::CallbackConfig;

/// Tries at a valid number before giving up.
pub const TRIES: u32 = 3;
/// Longest line accepted (longer input is refused, not truncated).
const MAX_LINE: usize = 64;

/// Why no number was had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The caller hung up.
    HungUp,
    /// No complete line within the prompt timeout.
    Timeout,
    /// [`TRIES`] lines that are not dial strings.
    Invalid(String),
    /// The server is shutting down.
    Shutdown,
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::HungUp => f.write_str("the caller hung up"),
            AskError::Timeout => f.write_str("the caller typed no number in time"),
            AskError::Invalid(last) => write!(f, "{TRIES} invalid numbers (last {last:?})"),
            AskError::Shutdown => f.write_str("server shutting down"),
        }
    }
}

/// Prompts for the callback number and reads it, starting with `pending`
/// (bytes the caller typed ahead); what follows the number is left in
/// `pending`.
///
/// # Errors
/// [`AskError`] when no valid number came.
pub async fn ask_number<S>(
    stream: &mut S,
    cb: &CallbackConfig,
    pending: &mut Vec<u8>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<String, AskError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + cb.prompt_timeout;
    let mut last = String::new();
    let mut reader = LineReader::new(MAX_LINE);
    for _ in 0..TRIES {
        write(stream, cb.prompt.as_bytes()).await?;
        let line = tokio::select! {
            r = tokio::time::timeout_at(deadline, read_line(stream, &mut reader, pending)) => match r {
                Ok(r) => r?,
                Err(_) => return Err(AskError::Timeout),
            },
            _ = shutdown.wait_for(|s| *s) => return Err(AskError::Shutdown),
        };
        let line = line.unwrap_or_else(|| "(too long)".to_string());
        let n = line.trim();
        if modem::validate_number(n).is_ok() {
            write(stream, b"Calling you back. Hang up now.\r\n").await?;
            return Ok(n.to_string());
        }
        last = n.chars().take(MAX_LINE).collect();
        write(
            stream,
            b"That is not a number I can dial (digits and , * # W @ P T).\r\n",
        )
        .await?;
    }
    Err(AskError::Invalid(last))
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, b: &[u8]) -> Result<(), AskError> {
    match tokio::time::timeout(Duration::from_secs(5), stream.write_all(b)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(AskError::HungUp),
    }
}

/// One edited line (`None` when it ran past [`MAX_LINE`]); the bytes after
/// its end stay in `pending`.
async fn read_line<S>(
    stream: &mut S,
    reader: &mut LineReader,
    pending: &mut Vec<u8>,
) -> Result<Option<String>, AskError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [0u8; 128];
    loop {
        if !pending.is_empty() {
            let mut echo = Vec::new();
            let fed = reader.feed(pending, &mut echo);
            let by_cr = fed.event.is_some() && pending[fed.consumed - 1] == b'\r';
            pending.drain(..fed.consumed);
            if by_cr && pending.first() == Some(&b'\n') {
                // The LF of a CR LF is the reader's to swallow, not PPP's.
                let lf = reader.feed(&pending[..1], &mut echo);
                pending.drain(..lf.consumed);
            }
            if !echo.is_empty() {
                write(stream, &echo).await?;
            }
            match fed.event {
                Some(LineEvent::Line(l)) => {
                    return Ok(Some(String::from_utf8_lossy(&l).into_owned()));
                }
                Some(LineEvent::TooLong(_)) => return Ok(None),
                None => {}
            }
        }
        let n = stream.read(&mut buf).await.map_err(|_| AskError::HungUp)?;
        if n == 0 {
            return Err(AskError::HungUp);
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cfg() -> CallbackConfig {
        CallbackConfig {
            users: BTreeMap::new(),
            delay: Duration::from_millis(10),
            attempts: 1,
            prompt: "Callback number: ".into(),
            prompt_timeout: Duration::from_secs(2),
        }
    }

    async fn ask(input: &[u8], pending: &mut Vec<u8>) -> (Result<String, AskError>, Vec<u8>) {
        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        theirs.write_all(input).await.unwrap();
        let (_tx, rx) = watch::channel(false);
        let r = ask_number(&mut ours, &cfg(), pending, rx).await;
        drop(ours);
        let mut seen = Vec::new();
        theirs.read_to_end(&mut seen).await.unwrap();
        (r, seen)
    }

    #[tokio::test]
    async fn reads_a_number_and_leaves_the_rest() {
        let mut pending = b"55".to_vec();
        let (r, seen) = ask(b"5\x7f51234\r\n~\x7d", &mut pending).await;
        assert_eq!(r.unwrap(), "5551234");
        assert_eq!(pending, b"~\x7d");
        let seen = String::from_utf8_lossy(&seen);
        assert!(
            seen.starts_with("Callback number: 555\x08 \x0851234"),
            "{seen:?}"
        );
        assert!(seen.contains("Calling you back"));
    }

    #[tokio::test]
    async fn three_bad_numbers_give_up() {
        let mut pending = Vec::new();
        let (r, seen) = ask(b"abc\rx\r;rm -rf\r", &mut pending).await;
        assert_eq!(r, Err(AskError::Invalid(";rm -rf".into())));
        assert_eq!(
            String::from_utf8_lossy(&seen)
                .matches("not a number")
                .count(),
            3
        );
    }

    #[tokio::test]
    async fn a_second_try_may_succeed_and_long_lines_are_refused() {
        let mut pending = Vec::new();
        let long = "9".repeat(100);
        let (r, _) = ask(format!("{long}\r5551234\r").as_bytes(), &mut pending).await;
        assert_eq!(r.unwrap(), "5551234");
    }

    #[tokio::test]
    async fn hang_up_and_timeout() {
        let mut pending = Vec::new();
        let (mut ours, theirs) = tokio::io::duplex(4096);
        drop(theirs);
        let (_tx, rx) = watch::channel(false);
        let r = ask_number(&mut ours, &cfg(), &mut pending, rx).await;
        assert_eq!(r, Err(AskError::HungUp));

        let (mut ours, _theirs) = tokio::io::duplex(4096);
        let (_tx, rx) = watch::channel(false);
        let mut c = cfg();
        c.prompt_timeout = Duration::from_millis(100);
        let t0 = std::time::Instant::now();
        let r = ask_number(&mut ours, &c, &mut pending, rx).await;
        assert_eq!(r, Err(AskError::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
