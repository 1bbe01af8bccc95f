//! The pty port: dialgate creates a pseudo-terminal and a program (`chat`, a
//! terminal, a script) opens its slave side to call in.
//!
//! What Linux does (checked on this kernel with a probe that polls the master,
//! and by the tests in `tests/pty.rs`):
//!
//! * a freshly created master whose slave was **never** opened polls as
//!   writable only — no `POLLHUP`;
//! * once the slave has been opened and every slave descriptor closed, the
//!   master polls `POLLHUP` (plus `POLLIN` if the slave wrote data before
//!   closing) and `read` on it fails with `EIO` after the buffered data;
//! * opening the slave again clears `POLLHUP`;
//! * the slave's termios survives the close and reopen while the master
//!   stays open.
//!
//! So arming a port opens the slave once (to make it raw) and closes it: from
//! then on `POLLHUP` means "nobody has the slave open". [`PtyPort::accept`]
//! polls the master every [`PtyPort::POLL_INTERVAL`] until `POLLHUP` clears
//! (or data arrived), hands the master over as a [`PtyStream`] and re-arms
//! with a fresh pty. epoll cannot report `POLLHUP` *clearing*, hence the timer.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{self, ControlFlags, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pty created and waiting for a caller to open its slave.
#[derive(Debug)]
struct Armed {
    master: OwnedFd,
    path: PathBuf,
}

/// A port whose callers arrive on pseudo-terminals that dialgate creates.
#[derive(Debug)]
pub struct PtyPort {
    link: Option<PathBuf>,
    armed: Option<Armed>,
    poll_interval: Duration,
}

impl PtyPort {
    /// How often [`PtyPort::accept`] looks whether the slave was opened.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

    /// Create the first pty and, if `link` is given, a symlink at `link`
    /// pointing to its slave (an existing symlink there is replaced; any
    /// other file there is an error).
    pub fn new(link: Option<PathBuf>) -> io::Result<Self> {
        let mut port = PtyPort {
            link,
            armed: None,
            poll_interval: Self::POLL_INTERVAL,
        };
        port.arm()?;
        Ok(port)
    }

    /// The slave device a caller should open now (e.g. `/dev/pts/3`), if armed.
    pub fn slave_path(&self) -> Option<&Path> {
        self.armed.as_ref().map(|a| a.path.as_path())
    }

    /// The stable symlink, if configured.
    pub fn link(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// Wait until a caller opens the slave; return the caller's stream over
    /// the master, and re-arm (fresh pty, symlink re-pointed) for the next
    /// caller. Cancel-safe: a cancelled wait leaves the pty armed.
    pub async fn accept(&mut self) -> io::Result<PtyStream> {
        loop {
            let opened = match &self.armed {
                Some(a) => slave_opened(&a.master)?,
                None => {
                    self.arm()?;
                    continue;
                }
            };
            if opened {
                break;
            }
            tokio::time::sleep(self.poll_interval).await;
        }
        let Some(armed) = self.armed.take() else {
            return Err(io::Error::other("pty port lost its armed pty"));
        };
        let stream = PtyStream::new(armed.master, armed.path)?;
        if let Err(e) = self.arm() {
            // The caller is served anyway; the next accept retries.
            tracing::warn!(error = %e, "pty port: re-arming failed");
        }
        Ok(stream)
    }

    /// Create a fresh pty pair, make its slave raw, point the link at it.
    fn arm(&mut self) -> io::Result<()> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let path = PathBuf::from(ptsname_r(&master)?);
        {
            // O_NOCTTY: never make the slave our controlling terminal.
            let slave = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(&path)?;
            let mut t = termios::tcgetattr(&slave)?;
            // Raw: no echo, no CR/NL translation, no signals, 8 bits.
            termios::cfmakeraw(&mut t);
            t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
            termios::tcsetattr(&slave, SetArg::TCSANOW, &t)?;
            // Closing it here makes the master report POLLHUP until a caller
            // opens the slave.
        }
        let master: OwnedFd = master.into();
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        if let Some(link) = &self.link {
            relink(link, &path)?;
        }
        tracing::debug!(slave = %path.display(), "pty port armed");
        self.armed = Some(Armed { master, path });
        Ok(())
    }
}

impl Drop for PtyPort {
    fn drop(&mut self) {
        if let (Some(link), Some(armed)) = (&self.link, &self.armed)
            && std::fs::read_link(link).is_ok_and(|t| t == armed.path)
        {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// Replace `link` by a symlink to `target` atomically (symlink + rename).
fn relink(link: &Path, target: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if !m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "pty link {} exists and is not a symlink; refusing to replace it",
                    link.display()
                ),
            ));
        }
        _ => {}
    }
    if let Some(dir) = link.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// True once someone has the slave open (no `POLLHUP`), or when the slave
/// wrote data (`POLLIN`) even if it closed again already.
fn slave_opened(master: &OwnedFd) -> io::Result<bool> {
    let ev = poll_now(master.as_fd())?;
    Ok(!ev.contains(PollFlags::POLLHUP) || ev.contains(PollFlags::POLLIN))
}

/// The master's poll flags right now (zero timeout).
fn poll_now(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<PollFlags> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "pty caller closed the slave")
}

/// A caller on a pty: reads and writes the master side. The caller closing
/// the slave reads as EOF (Linux's `EIO` on the master is mapped to EOF) and
/// makes writes fail with `BrokenPipe` (Linux would accept them into a
/// buffer nobody reads, so every write first checks for `POLLHUP`).
/// Shutting the stream down closes the master, which hangs the caller up;
/// Linux then discards what the caller had not read yet, so
/// [`crate::CallerStream::hang_up`] lingers briefly first.
#[derive(Debug)]
pub struct PtyStream {
    fd: Option<AsyncFd<OwnedFd>>,
    path: PathBuf,
    hung_up: bool,
}

impl PtyStream {
    #[allow(unsafe_code)]
    fn new(master: OwnedFd, path: PathBuf) -> io::Result<Self> {
        // SAFETY: `master` is an open descriptor owned by the `OwnedFd` we move
        // into the `AsyncFd`; nothing else can close it, and `OwnedFd::as_raw_fd`
        // returns the same descriptor until the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register(master) }?;
        Ok(PtyStream {
            fd: Some(fd),
            path,
            hung_up: false,
        })
    }

    /// The slave device the caller opened (e.g. `/dev/pts/3`).
    pub fn slave_path(&self) -> &Path {
        &self.path
    }

    /// Close the master now (the caller sees a hang-up). Later reads return
    /// EOF and writes fail with `NotConnected`.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// The caller closed the slave (seen by a read or a write).
    pub fn caller_gone(&self) -> bool {
        self.hung_up
    }

    /// Take the master descriptor out of tokio (e.g. to give it to a child
    /// process as stdin/stdout). It stays non-blocking. `None` if already
    /// closed.
    pub fn into_fd(mut self) -> Option<OwnedFd> {
        self.fd.take().map(AsyncFd::into_inner)
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "pty stream already hung up")
}

impl AsyncRead for PtyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(fd) = &this.fd else {
            return Poll::Ready(Ok(()));
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // EIO: the caller closed the slave, the end of the call.
        if let crate::ttyio::Io::HungUp = ready!(crate::ttyio::poll_read(fd, cx, buf))? {
            this.hung_up = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PtyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(fd) = &this.fd else {
            return Poll::Ready(Err(closed()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.hung_up || poll_now(fd.as_fd())?.contains(PollFlags::POLLHUP) {
            this.hung_up = true;
            return Poll::Ready(Err(broken_pipe()));
        }
        match ready!(crate::ttyio::poll_write(fd, cx, buf))? {
            crate::ttyio::Io::Done(n) => Poll::Ready(Ok(n)),
            crate::ttyio::Io::HungUp => {
                this.hung_up = true;
                Poll::Ready(Err(broken_pipe()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel's pty buffer.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().close();
        Poll::Ready(Ok(()))
    }
}
