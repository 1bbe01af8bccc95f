//! Port groups: a listener of one kind with a cap on simultaneous callers.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::pty::{PtyPort, PtyStream};
use crate::telnet_stream::TelnetStream;

/// How long a busy caller gets to receive the busy message, and a hanging-up
/// caller to receive our last bytes.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long hanging up a pty caller waits for it to read our last bytes
/// (or to hang up itself) before closing the master.
pub const PTY_LINGER: Duration = Duration::from_millis(500);

/// Back-off after an accept error that concerns one connection or a
/// momentary shortage (e.g. `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What kind of line a port group serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// Raw TCP: bytes as they come.
    Tcp,
    /// TCP with the telnet protocol (RFC 854).
    Telnet,
    /// A pseudo-terminal dialgate creates; a program opens its slave.
    Pty,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Tcp => "tcp",
            PortKind::Telnet => "telnet",
            PortKind::Pty => "pty",
        })
    }
}

/// Settings of one port group that the port layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Kind of line.
    pub kind: PortKind,
    /// Tcp and Telnet: address to listen on (port 0 picks a free port; see
    /// [`Port::local_addr`]). Must be `None` for Pty.
    pub bind: Option<SocketAddr>,
    /// Pty: a stable symlink kept pointing at the slave that is free for the
    /// next caller (e.g. `/run/dialgate/pty0`). Must be `None` for Tcp/Telnet.
    pub pty_link: Option<PathBuf>,
    /// Maximum simultaneous callers (at least 1).
    pub max_callers: usize,
    /// Line written to a caller who arrives while the group is full, before
    /// hanging up.
    pub busy_message: String,
}

impl PortConfig {
    fn new(kind: PortKind, bind: Option<SocketAddr>, pty_link: Option<PathBuf>) -> Self {
        PortConfig {
            kind,
            bind,
            pty_link,
            max_callers: 1,
            busy_message: "All lines are busy, try again later.\r\n".to_string(),
        }
    }

    /// A raw TCP port group.
    pub fn tcp(bind: SocketAddr) -> Self {
        Self::new(PortKind::Tcp, Some(bind), None)
    }

    /// A telnet port group.
    pub fn telnet(bind: SocketAddr) -> Self {
        Self::new(PortKind::Telnet, Some(bind), None)
    }

    /// A pty port group, optionally with a stable symlink.
    pub fn pty(link: Option<PathBuf>) -> Self {
        Self::new(PortKind::Pty, None, link)
    }

    /// Set [`PortConfig::max_callers`].
    pub fn with_max_callers(mut self, n: usize) -> Self {
        self.max_callers = n;
        self
    }

    /// Check the settings fit together.
    pub fn validate(&self) -> Result<(), PortError> {
        if self.max_callers == 0 {
            return Err(PortError::Config("max_callers must be at least 1".into()));
        }
        match self.kind {
            PortKind::Tcp | PortKind::Telnet => {
                if self.bind.is_none() {
                    return Err(PortError::Config(format!(
                        "a {} port needs a bind address",
                        self.kind
                    )));
                }
                if self.pty_link.is_some() {
                    return Err(PortError::Config(format!(
                        "a {} port takes no pty link",
                        self.kind
                    )));
                }
            }
            PortKind::Pty => {
                if self.bind.is_some() {
                    return Err(PortError::Config("a pty port takes no bind address".into()));
                }
            }
        }
        Ok(())
    }
}

/// Errors of the port layer.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Our misuse: the configuration is inconsistent.
    #[error("port configuration: {0}")]
    Config(String),
    /// The operating system refused (binding, creating a pty, accepting).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl PortError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        PortError::Io {
            context: context.into(),
            source,
        }
    }
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Pty(PtyPort),
}

/// A listening port group. Call [`Port::accept`] in a loop; it is cancel-safe,
/// so it can sit in a `select!` with a shutdown signal.
#[derive(Debug)]
pub struct Port {
    kind: PortKind,
    listener: Listener,
    permits: Arc<Semaphore>,
    max_callers: usize,
    busy_message: Arc<[u8]>,
}

impl Port {
    /// Bind the listener (Tcp/Telnet) or create the first pty (Pty).
    pub async fn bind(config: PortConfig) -> Result<Port, PortError> {
        config.validate()?;
        let listener = match (config.kind, config.bind) {
            (PortKind::Tcp | PortKind::Telnet, Some(addr)) => {
                Listener::Tcp(listen(addr).map_err(|e| {
                    PortError::io(format!("binding {} port {addr}", config.kind), e)
                })?)
            }
            (PortKind::Pty, _) => Listener::Pty(
                PtyPort::new(config.pty_link.clone())
                    .map_err(|e| PortError::io("creating a pty", e))?,
            ),
            (kind, None) => {
                return Err(PortError::Config(format!(
                    "a {kind} port needs a bind address"
                )));
            }
        };
        Ok(Port {
            kind: config.kind,
            listener,
            permits: Arc::new(Semaphore::new(config.max_callers)),
            max_callers: config.max_callers,
            busy_message: config.busy_message.into_bytes().into(),
        })
    }

    /// Kind of line.
    pub fn kind(&self) -> PortKind {
        self.kind
    }

    /// The bound address of a Tcp/Telnet port (the real port when bound to 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Pty(_) => None,
        }
    }

    /// The pty slave free for the next caller (Pty ports).
    pub fn pty_path(&self) -> Option<&Path> {
        match &self.listener {
            Listener::Pty(p) => p.slave_path(),
            Listener::Tcp(_) => None,
        }
    }

    /// Callers currently holding a line of this group.
    pub fn active_callers(&self) -> usize {
        self.max_callers - self.permits.available_permits()
    }

    /// Wait for the next caller. When the group already has `max_callers`
    /// callers, a newcomer is accepted, sent the busy message, and hung up
    /// (in a background task, bounded by [`CLOSE_GRACE`]) so the caller sees
    /// why; then the wait continues. Errors that concern one connection or a
    /// momentary shortage (aborted connection, too many open files) are
    /// logged and retried after a short pause; others are returned.
    /// Cancel-safe.
    pub async fn accept(&mut self) -> Result<Caller, PortError> {
        loop {
            let (stream, device, remote) = match &mut self.listener {
                Listener::Tcp(l) => match l.accept().await {
                    Ok((tcp, addr)) => {
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, peer = %addr, "TCP_NODELAY refused");
                        }
                        let device = format!("{} {addr}", self.kind);
                        let stream = if self.kind == PortKind::Telnet {
                            let mut t = TelnetStream::new(tcp);
                            t.start();
                            CallerStream::Telnet(t)
                        } else {
                            CallerStream::Tcp(tcp)
                        };
                        (stream, device, Some(addr))
                    }
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, kind = %self.kind, "accept failed; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                    Err(e) => return Err(PortError::io("accepting a connection", e)),
                },
                Listener::Pty(p) => match p.accept().await {
                    Ok(s) => {
                        let device = s.slave_path().display().to_string();
                        (CallerStream::Pty(s), device, None)
                    }
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, "pty accept failed; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                    Err(e) => return Err(PortError::io("waiting for a pty caller", e)),
                },
            };
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => {
                    tracing::debug!(%device, "caller accepted");
                    return Ok(Caller {
                        device,
                        remote,
                        kind: self.kind,
                        stream,
                        _permit: permit,
                    });
                }
                Err(_) => {
                    tracing::info!(%device, max = self.max_callers, "port group full; caller told busy");
                    let message = Arc::clone(&self.busy_message);
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ = tokio::time::timeout(CLOSE_GRACE, stream.write_all(&message)).await;
                        let _ = stream.hang_up().await;
                    });
                }
            }
        }
    }
}

/// The listen backlog asked of the kernel (it caps it at `somaxconn`):
/// tokio's default of 1,024 overflows under a burst of callers, and every
/// overflow costs a caller a SYN retry of a second or more.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As TcpListener::bind does: a restarted server can bind at once.
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(LISTEN_BACKLOG)
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::OutOfMemory
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
    )
}

/// One caller on a line. Holding it holds one of the group's
/// `max_callers` places; dropping it (or [`Caller::hang_up`]) frees it.
#[derive(Debug)]
pub struct Caller {
    /// Human-readable line name: `tcp 127.0.0.1:50412`,
    /// `telnet 127.0.0.1:50412`, `/dev/pts/3`.
    pub device: String,
    /// The peer's address (TCP and telnet).
    pub remote: Option<SocketAddr>,
    /// Kind of line.
    pub kind: PortKind,
    /// The caller's bytes.
    pub stream: CallerStream,
    _permit: OwnedSemaphorePermit,
}

impl Caller {
    /// Send what is buffered (within [`CLOSE_GRACE`]), close the line and free
    /// the caller's place in the group.
    pub async fn hang_up(mut self) -> io::Result<()> {
        self.stream.hang_up().await
    }
}

/// The byte stream of a caller, whatever the line kind.
// The telnet variant is the common one and the largest (a few hundred bytes);
// boxing it would add an allocation per caller without saving memory for it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CallerStream {
    /// Raw TCP.
    Tcp(TcpStream),
    /// Telnet over TCP.
    Telnet(TelnetStream<TcpStream>),
    /// A pty master.
    Pty(PtyStream),
}

impl CallerStream {
    /// Make the line 8-bit clean for PPP. Telnet: request BINARY both ways and
    /// wait up to `wait` for the answers; returns whether BINARY is on both
    /// ways. TCP and pty lines are already clean: returns `true` at once.
    pub async fn prepare_for_ppp(&mut self, wait: Duration) -> io::Result<bool> {
        match self {
            CallerStream::Telnet(t) => {
                t.request_binary();
                t.wait_binary(wait).await
            }
            CallerStream::Tcp(_) | CallerStream::Pty(_) => Ok(true),
        }
    }

    /// Flush and shut the line down, giving up after [`CLOSE_GRACE`]. TCP and
    /// telnet: FIN. Pty: after up to [`PTY_LINGER`] for the caller to read
    /// what we sent (its input is discarded), the master is closed, which
    /// the caller sees as a hang-up.
    pub async fn hang_up(&mut self) -> io::Result<()> {
        if let CallerStream::Pty(p) = self {
            // Linux discards what the caller has not read yet when the master
            // closes: give it PTY_LINGER (or until it hangs up itself).
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(PTY_LINGER, async {
                while let Ok(1..) = p.read(&mut sink).await {}
            })
            .await;
            p.close();
            return Ok(());
        }
        tokio::time::timeout(CLOSE_GRACE, self.shutdown())
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "caller did not take our last bytes in time",
                ))
            })
    }
}

impl AsyncRead for CallerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CallerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            CallerStream::Telnet(s) => Pin::new(s).poll_read(cx, buf),
            CallerStream::Pty(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for CallerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            CallerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            CallerStream::Telnet(s) => Pin::new(s).poll_write(cx, buf),
            CallerStream::Pty(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CallerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            CallerStream::Telnet(s) => Pin::new(s).poll_flush(cx),
            CallerStream::Pty(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CallerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            CallerStream::Telnet(s) => Pin::new(s).poll_shutdown(cx),
            CallerStream::Pty(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
