//! The baseline: a bare tokio TCP server doing the same byte exchange as a
//! dialgate dialog (prompt, read a line, reply, close) with no
//! authentication and no event log. It runs as a child process of the
//! harness (`dialgate-bench bare-server`), like dialgate, so both are
//! measured the same way (own runtime, own RSS, own CPU time).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest line the bare server accepts.
const MAX_LINE: usize = 1024;

/// How long a bare dialog may last (it mirrors a dialog time limit).
const DIALOG_LIMIT: Duration = Duration::from_secs(3600);

/// Serves on `listen` until standard input closes (the harness's end).
/// Prints `listening on ADDR` on standard output once bound.
pub fn main(listen: SocketAddr, prompts: Vec<Vec<u8>>, reply: Vec<u8>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async move {
        let l = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        println!("listening on {local}");
        let prompts: std::sync::Arc<[Vec<u8>]> = prompts.into();
        let reply: std::sync::Arc<[u8]> = reply.into();
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        loop {
            tokio::select! {
                r = l.accept() => match r {
                    Ok((s, _)) => {
                        let prompts = prompts.clone();
                        let reply = reply.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(DIALOG_LIMIT, dialog(s, &prompts, &reply)).await;
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                r = stdin.read(&mut sink) => {
                    if matches!(r, Ok(0) | Err(_)) {
                        return Ok(());
                    }
                }
            }
        }
    })
}

/// One bare dialog: each prompt and a line read back, then `reply`, then close.
pub(crate) async fn dialog(
    mut s: TcpStream,
    prompts: &[Vec<u8>],
    reply: &[u8],
) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut line = LineReader::default();
    for p in prompts {
        s.write_all(p).await?;
        if !line.next_line(&mut s).await? {
            return Ok(());
        }
    }
    s.write_all(reply).await?;
    Ok(())
}

/// Lines ending in CR, LF or CR LF, at most `MAX_LINE` bytes.
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
    after_cr: bool,
}

impl LineReader {
    /// Consumes one line; `false` when the peer closed or sent too much.
    async fn next_line(&mut self, s: &mut TcpStream) -> std::io::Result<bool> {
        loop {
            if let Some(rest) = self.take_line() {
                self.buf = rest;
                return Ok(true);
            }
            if self.buf.len() > MAX_LINE {
                return Ok(false);
            }
            let mut chunk = [0u8; 256];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }

    /// When the buffer holds a whole line, what follows it.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        if self.after_cr && self.buf.first() == Some(&b'\n') {
            self.buf.remove(0);
            self.after_cr = false;
        }
        let end = self.buf.iter().position(|&b| b == b'\r' || b == b'\n')?;
        let cr = self.buf.get(end) == Some(&b'\r');
        let mut next = end + 1;
        if cr && self.buf.get(next) == Some(&b'\n') {
            next += 1;
            self.after_cr = false;
        } else {
            self.after_cr = cr;
        }
        Some(self.buf.get(next..).unwrap_or(&[]).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> (usize, Vec<u8>) {
        let mut r = LineReader {
            buf: input.to_vec(),
            after_cr: false,
        };
        let mut n = 0;
        while let Some(rest) = r.take_line() {
            r.buf = rest;
            n += 1;
        }
        (n, r.buf)
    }

    #[test]
    fn line_ends() {
        assert_eq!(lines(b"1234\r\n"), (1, vec![]));
        assert_eq!(lines(b"a\rb\nc\r\nd"), (3, b"d".to_vec()));
        assert_eq!(lines(b"no end"), (0, b"no end".to_vec()));
    }

    #[test]
    fn cr_then_lf_in_a_later_read() {
        let mut r = LineReader {
            buf: b"user\r".to_vec(),
            after_cr: false,
        };
        let rest = r.take_line().expect("a line");
        assert!(rest.is_empty());
        r.buf = b"\npass\r\n".to_vec();
        let rest = r.take_line().expect("second line");
        assert!(rest.is_empty());
        r.buf = rest;
        assert!(r.take_line().is_none());
    }

    #[tokio::test]
    async fn serves_the_exchange() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            dialog(s, &[b"PIN: ".to_vec()], b"OK\r\n").await
        });
        let mut c = TcpStream::connect(addr).await.expect("connect");
        let mut got = Vec::new();
        let mut chunk = [0u8; 64];
        while !got.ends_with(b"PIN: ") {
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut chunk))
                .await
                .expect("prompt in time")
                .expect("read");
            assert!(n > 0, "closed before the prompt");
            got.extend_from_slice(&chunk[..n]);
        }
        c.write_all(b"1234\r\n").await.expect("write");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("close in time")
            .expect("read");
        assert_eq!(rest, b"OK\r\n");
        server.await.expect("join").expect("dialog");
    }
}
