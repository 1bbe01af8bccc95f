//! The module worker process: it loads one C module and runs its Begin and
//! End on plain threads at the server's request, forwarding every host
//! function the module calls to the server over the socket. A crash or hang
//! in module code takes down this process only.
//!
//! The server side is [`crate::WorkerModule`]; the protocol is
//! [`crate::protocol`]. Defects the host functions see are sent to the
//! server as [`Frame::Defect`]; the worker logs to its stderr, which the
//! server reads into its own log.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use securityhost::consts::*;
use securityhost::{
    BeginArgs, HPort, Host, ReceiveEvent, SecurityInfo, SecurityMessage, SecurityModule,
};

use crate::loader::CModule;
use crate::protocol::{Frame, ProtocolError, read_frame};

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The descriptor is not a Unix stream socket (our misuse).
    #[error("module worker: descriptor {0} is not a Unix stream socket")]
    NotASocket(RawFd),
    /// The module could not be loaded (reported to the server too).
    #[error("{0}")]
    Load(#[from] crate::LoadError),
    /// The server broke the protocol, or the socket failed.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[allow(unsafe_code)]
fn adopt_socket(fd: RawFd) -> Result<UnixStream, WorkerError> {
    // Refuse anything but an open AF_UNIX stream socket, so a wrong --fd
    // cannot make us write protocol frames into some other file.
    let mut domain: libc::c_int = 0;
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt with a valid out-pointer and its length; fails
    // harmlessly on a descriptor that is not an open socket.
    let r1 = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &mut len,
        )
    };
    let mut len2 = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above.
    let r2 = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &mut len2,
        )
    };
    if fd < 0 || r1 != 0 || r2 != 0 || domain != libc::AF_UNIX || ty != libc::SOCK_STREAM {
        return Err(WorkerError::NotASocket(fd));
    }
    // SAFETY: the descriptor is an open Unix stream socket that the server
    // passed to this process for exactly this use; `run` is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Keep it out of any process a module starts.
    // SAFETY: F_SETFD on a descriptor we own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(UnixStream::from(owned))
}

/// The worker's main loop: loads the module at `module`, tells the server
/// (Ready, or LoadFailed and an error), then serves Begin and End requests
/// until the server closes the socket (`Ok`) or breaks the protocol.
///
/// `fd` is the worker's end of the socket pair the server made, an open
/// Unix stream socket inherited by this process (`--fd N`); `run` takes
/// ownership of it and must be called once, from the worker's `main`. The
/// executable must export the host functions (see the crate's `build.rs`).
pub fn run(module: &Path, fd: RawFd) -> Result<(), WorkerError> {
    init_log();
    let sock = adopt_socket(fd)?;
    let writer = Arc::new(Mutex::new(sock.try_clone().map_err(ProtocolError::Io)?));
    let send = |f: &Frame| -> Result<(), ProtocolError> {
        lock(&writer)
            .write_all(&f.encode())
            .map_err(ProtocolError::Io)
    };
    let m = match CModule::load(module) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            send(&Frame::LoadFailed {
                reason: e.to_string(),
            })?;
            return Err(e.into());
        }
    };
    send(&Frame::Ready {
        name: m.name().to_string(),
    })?;
    let shared = Arc::new(Shared {
        writer: writer.clone(),
        next_id: AtomicU64::new(1),
        waiting: Mutex::new(HashMap::new()),
        events: Mutex::new(HashMap::new()),
    });
    let sink = shared.clone();
    crate::host::set_defect_sink(Box::new(move |hport, what| {
        sink.post(&Frame::Defect {
            hport: hport.map_or(0, |h| h.0),
            what: what.to_string(),
        });
        // The server ends that dialog at once and drops its pending
        // Receive; as on every abort, the module's Receive completes first
        // (619), so its dialog thread wakes and its End can return.
        if let Some(h) = hport {
            let events: Vec<ReceiveEvent> = {
                let mut ev = lock(&sink.events);
                let ids: Vec<u64> = ev
                    .iter()
                    .filter(|(_, (eh, _))| *eh == h)
                    .map(|(id, _)| *id)
                    .collect();
                ids.iter()
                    .filter_map(|id| ev.remove(id))
                    .map(|(_, e)| e)
                    .collect()
            };
            for event in events {
                event(securityhost::ReceiveCompletion {
                    last_error: ERROR_PORT_DISCONNECTED,
                    data: Vec::new(),
                });
            }
        }
    }));
    let mut reader = sock;
    loop {
        let frame = match read_frame(&mut reader) {
            Ok(f) => f,
            Err(ProtocolError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match frame {
            Frame::Begin {
                id,
                hport,
                send_size,
                recv_size,
            } => {
                let (m, shared) = (m.clone(), shared.clone());
                let args = BeginArgs {
                    hport: HPort(hport),
                    send_buffer_size: send_size as usize,
                    recv_buffer_size: recv_size as usize,
                    host: Arc::new(ProxyHost {
                        shared: shared.clone(),
                        hport: HPort(hport),
                    }),
                };
                let s2 = shared.clone();
                let r = std::thread::Builder::new().spawn(move || {
                    let code = m.begin(args);
                    s2.post(&Frame::Returned { id, code });
                });
                if r.is_err() {
                    shared.post(&Frame::Returned {
                        id,
                        code: crate::loader::ERROR_NOT_ENOUGH_MEMORY,
                    });
                }
            }
            Frame::End { id, hport } => {
                let (m, shared) = (m.clone(), shared.clone());
                let s2 = shared.clone();
                let r = std::thread::Builder::new().spawn(move || {
                    let code = m.end(HPort(hport));
                    s2.post(&Frame::Returned { id, code });
                });
                if r.is_err() {
                    shared.post(&Frame::Returned {
                        id,
                        code: crate::loader::ERROR_NOT_ENOUGH_MEMORY,
                    });
                }
            }
            Frame::Reply { id, .. } | Frame::Info { id, .. } => {
                if let Some(w) = lock(&shared.waiting).remove(&id) {
                    let _ = w.send(frame);
                }
            }
            Frame::ReceiveDone {
                id,
                last_error,
                data,
            } => {
                let event = lock(&shared.events).remove(&id);
                if let Some((_, event)) = event {
                    event(securityhost::ReceiveCompletion { last_error, data });
                }
            }
            other => {
                return Err(ProtocolError::Io(std::io::Error::other(format!(
                    "the server sent a worker-to-server frame: {other:?}"
                )))
                .into());
            }
        }
    }
}

/// What the worker's threads share.
struct Shared {
    writer: Arc<Mutex<UnixStream>>,
    next_id: AtomicU64,
    /// Host calls waiting for their reply, by id.
    waiting: Mutex<HashMap<u64, mpsc::SyncSender<Frame>>>,
    /// Receive events and their handle, by the Receive's id.
    events: Mutex<HashMap<u64, (HPort, ReceiveEvent)>>,
}

impl Shared {
    /// Sends a frame; a broken socket means the server is gone, and the
    /// reader loop ends the process.
    fn post(&self, f: &Frame) {
        let _ = lock(&self.writer).write_all(&f.encode());
    }

    /// Sends a request and waits for its reply; `None` when the server is
    /// gone.
    fn call(&self, make: impl FnOnce(u64) -> Frame) -> Option<Frame> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.waiting).insert(id, tx);
        self.post(&make(id));
        let r = rx.recv().ok();
        lock(&self.waiting).remove(&id);
        r
    }

    fn code(&self, make: impl FnOnce(u64) -> Frame) -> u32 {
        match self.call(make) {
            Some(Frame::Reply { code, .. }) => code,
            _ => ERROR_PORT_DISCONNECTED,
        }
    }
}

/// The log subscriber of the worker process: plain lines on stderr
/// (`LEVEL message`, no colours, no time: the server adds its own), which
/// the server reads into its log; the level is `DIALGATE_LOG` (inherited
/// from the server), else `info`.
pub fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIALGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// The host functions in the worker, bound to the transaction of one
/// Begin: each one a request to the server.
struct ProxyHost {
    shared: Arc<Shared>,
    hport: HPort,
}

impl Host for ProxyHost {
    fn send(&self, hport: HPort, data: &[u8]) -> u32 {
        if data.len() > crate::protocol::MAX_DATA {
            return ERROR_BUFFER_TOO_SMALL;
        }
        self.shared.code(|id| Frame::Send {
            id,
            hport: hport.0,
            data: data.to_vec(),
        })
    }

    fn receive(&self, hport: HPort, room: usize, timeout_secs: u32, event: ReceiveEvent) -> u32 {
        let s = &self.shared;
        let id = s.next_id.fetch_add(1, Ordering::Relaxed);
        // Registered first: the completion may overtake the reply.
        lock(&s.events).insert(id, (hport, event));
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&s.waiting).insert(id, tx);
        s.post(&Frame::Receive {
            id,
            hport: hport.0,
            room: room.min(u32::MAX as usize) as u32,
            timeout: timeout_secs,
        });
        let code = match rx.recv() {
            Ok(Frame::Reply { code, .. }) => code,
            _ => ERROR_PORT_DISCONNECTED,
        };
        lock(&s.waiting).remove(&id);
        if code != PENDING {
            lock(&s.events).remove(&id);
        }
        code
    }

    fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32> {
        match self.shared.call(|id| Frame::GetInfo { id, hport: hport.0 }) {
            Some(Frame::Info {
                code: NO_ERROR,
                last_error,
                bytes_received,
                device,
                ..
            }) => Ok(SecurityInfo {
                last_error,
                bytes_received,
                device_name: device,
            }),
            Some(Frame::Info { code, .. }) | Some(Frame::Reply { code, .. }) => Err(code),
            _ => Err(ERROR_PORT_DISCONNECTED),
        }
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        // Attributed to this proxy's transaction: the host module chose it
        // (the calling thread's Begin/End, else the message's hPort).
        self.shared.code(|id| Frame::Complete {
            id,
            hport: self.hport.0,
            msg: Box::new(msg.clone()),
        })
    }
}
