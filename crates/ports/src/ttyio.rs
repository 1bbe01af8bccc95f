//! Non-blocking reads and writes on a tty descriptor (a serial line, a pty
//! master) registered with tokio, shared by [`crate::serial`] and
//! [`crate::pty`]. `EIO` is how a tty says the other end hung up: reads
//! report it as [`Io::HungUp`] so each caller can turn it into its own
//! end-of-file or error.

use std::io;
use std::os::fd::OwnedFd;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;
use tokio::io::unix::AsyncFd;

/// What one read or write did.
pub(crate) enum Io {
    /// Bytes moved (for a read, they are in the buffer).
    Done(usize),
    /// The tty answered `EIO`: the other end is gone.
    HungUp,
}

/// Reads what is there into `buf` (which has room); waits when nothing is.
pub(crate) fn poll_read(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<Io>> {
    loop {
        let mut guard = ready!(fd.poll_read_ready(cx))?;
        let dst = buf.initialize_unfilled();
        match guard.try_io(|f| nix::unistd::read(f.get_ref(), dst).map_err(io::Error::from)) {
            Ok(Ok(n)) => {
                buf.advance(n);
                return Poll::Ready(Ok(Io::Done(n)));
            }
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                return Poll::Ready(Ok(Io::HungUp));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Poll::Ready(Err(e)),
            Err(_would_block) => {}
        }
    }
}

/// Writes what the tty takes of `buf` (not empty); waits when it takes
/// nothing.
pub(crate) fn poll_write(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<Io>> {
    loop {
        let mut guard = ready!(fd.poll_write_ready(cx))?;
        match guard.try_io(|f| nix::unistd::write(f.get_ref(), buf).map_err(io::Error::from)) {
            Ok(Ok(n)) => return Poll::Ready(Ok(Io::Done(n))),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                return Poll::Ready(Ok(Io::HungUp));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Poll::Ready(Err(e)),
            Err(_would_block) => {}
        }
    }
}
