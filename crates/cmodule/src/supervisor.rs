//! The server's side of module isolation: [`WorkerModule`], a
//! [`SecurityModule`] whose Begin and End run in a worker process (see
//! [`crate::worker`]). Host-function calls from the worker are served
//! against the [`Host`] each transaction got at Begin; a worker may only
//! touch the handles the server gave it.
//!
//! When the worker dies (crash, abort, killed because Begin or End did not
//! return within [`WorkerOptions::call_timeout`], or a protocol violation),
//! every transaction it held is reported to the death callback
//! ([`WorkerModule::on_worker_death`]) as a module defect, its driver is
//! woken, pending Begin/End calls return [`WORKER_GONE`], and the next Begin
//! starts a fresh worker.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use securityhost::consts::*;
use securityhost::{BeginArgs, Defect, HPort, Host, SecurityMessage, SecurityModule};

use crate::protocol::{Frame, ProtocolError, read_frame};

/// What Begin and End return when the worker is gone: an
/// application-defined code (bit 29 set, as Windows reserves for
/// applications), never a Windows one.
pub const WORKER_GONE: u32 = 0x2000_0001;

/// The descriptor number the worker finds its socket on.
pub const WORKER_FD: i32 = 3;

/// How to start a worker: a program and its leading arguments; the
/// supervisor appends `--module PATH --fd 3`. For dialgate:
/// `WorkerCommand::new(current_exe).arg("module-worker")`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    program: PathBuf,
    args: Vec<OsString>,
}

impl WorkerCommand {
    /// The program to run.
    pub fn new(program: impl Into<PathBuf>) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Adds a leading argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> WorkerCommand {
        self.args.push(a.into());
        self
    }
}

/// Limits of the supervisor.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// How long Begin or End may take before the worker is killed (an
    /// endless loop in module code).
    pub call_timeout: Duration,
    /// How long a new worker may take to load its module.
    pub start_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            call_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The worker program could not be run.
    #[error("cannot start the module worker {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The worker could not load the module (the text names the file and,
    /// for a missing export, the symbol).
    #[error("{0}")]
    Load(String),
    /// The worker died or broke the protocol before it was ready.
    #[error("security module {module}: the module worker failed to start: {reason}")]
    Failed {
        /// The module file.
        module: PathBuf,
        /// What happened.
        reason: String,
    },
}

/// Called once per transaction a dead worker held, with the defect to
/// record; see [`WorkerModule::on_worker_death`].
pub type DeathCallback = Arc<dyn Fn(HPort, Defect) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct TxState {
    host: Arc<dyn Host>,
    completed: bool,
    end_returned: bool,
}

#[derive(Default)]
struct Live {
    /// Set once the worker is dead: nothing new is accepted.
    dead: bool,
    /// Transactions this worker holds.
    txs: HashMap<HPort, TxState>,
    /// Begin/End calls waiting for their return, by id.
    calls: HashMap<u64, mpsc::SyncSender<u32>>,
}

/// One worker process.
struct Worker {
    pid: u32,
    child: Mutex<Child>,
    /// The socket's sending side. Replies to the worker's host calls are
    /// written directly from the reader thread (the fast path of a dialog
    /// round trip); Begin, End and Receive completions go through `out` to
    /// a writer thread, in order (a completion may fire on the server's
    /// reactor thread and must never block it, and must reach the worker
    /// before an End that follows it).
    writer: Mutex<UnixStream>,
    out: Mutex<mpsc::Sender<Vec<u8>>>,
    next_id: AtomicU64,
    live: Mutex<Live>,
    /// Why we killed it, if we did.
    kill_reason: Mutex<Option<String>>,
}

impl Worker {
    /// Writes a frame. The socket has a write timeout: a worker that stops
    /// reading (stopped, or its reader wedged) is killed, not waited for.
    fn post(&self, f: &Frame) {
        if let Err(e) = lock(&self.writer).write_all(&f.encode()) {
            self.kill(format!("killed: cannot write to it: {e}"));
        }
    }

    /// Queues a frame for the writer thread, after every frame queued
    /// before it.
    fn queue(&self, f: &Frame) {
        let _ = lock(&self.out).send(f.encode());
    }

    fn is_dead(&self) -> bool {
        lock(&self.live).dead
    }

    /// Kills the worker for `reason`, unless it already exited (then its
    /// own exit status tells why).
    fn kill(&self, reason: String) {
        let mut child = lock(&self.child);
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        lock(&self.kill_reason).get_or_insert(reason);
        let _ = child.kill();
    }

    /// Sends Begin or End and waits for its return.
    fn call(&self, make: impl FnOnce(u64) -> Frame, timeout: Duration, what: &str) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut live = lock(&self.live);
            if live.dead {
                return WORKER_GONE;
            }
            live.calls.insert(id, tx);
        }
        // Queued, not written directly: a Receive completion the driver
        // produced before it called End must reach the worker first (the
        // module's event is signalled before End, never after).
        self.queue(&make(id));
        match rx.recv_timeout(timeout) {
            Ok(code) => code,
            Err(mpsc::RecvTimeoutError::Disconnected) => WORKER_GONE,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill(format!(
                    "killed: {what} did not return within {} s",
                    timeout.as_secs_f32()
                ));
                // Wait for the death to be processed, so the transactions
                // hear of the defect before this call returns.
                let _ = rx.recv_timeout(Duration::from_secs(5));
                WORKER_GONE
            }
        }
    }

    fn host_for(&self, hport: HPort) -> Option<Arc<dyn Host>> {
        lock(&self.live).txs.get(&hport).map(|t| t.host.clone())
    }

    /// Serves one frame from the worker. `Err` is a protocol violation.
    fn serve(&self, f: Frame) -> Result<(), String> {
        match f {
            Frame::Returned { id, code } => {
                if let Some(w) = lock(&self.live).calls.remove(&id) {
                    let _ = w.send(code);
                }
            }
            Frame::Send { id, hport, data } => {
                let code = self
                    .host_for(HPort(hport))
                    .map_or(ERROR_INVALID_PORT_HANDLE, |h| h.send(HPort(hport), &data));
                self.post(&Frame::Reply { id, code });
            }
            Frame::Receive {
                id,
                hport,
                room,
                timeout,
            } => {
                let code = match self.host_for(HPort(hport)) {
                    None => ERROR_INVALID_PORT_HANDLE,
                    Some(h) => {
                        let out = lock(&self.out).clone();
                        h.receive(
                            HPort(hport),
                            room as usize,
                            timeout,
                            Box::new(move |c| {
                                let _ = out.send(
                                    Frame::ReceiveDone {
                                        id,
                                        last_error: c.last_error,
                                        data: c.data,
                                    }
                                    .encode(),
                                );
                            }),
                        )
                    }
                };
                self.post(&Frame::Reply { id, code });
            }
            Frame::GetInfo { id, hport } => {
                let r = match self.host_for(HPort(hport)) {
                    None => Err(ERROR_INVALID_PORT_HANDLE),
                    Some(h) => h.get_info(HPort(hport)),
                };
                let f = match r {
                    Ok(i) => Frame::Info {
                        id,
                        code: NO_ERROR,
                        last_error: i.last_error,
                        bytes_received: i.bytes_received,
                        device: i.device_name,
                    },
                    Err(code) => Frame::Info {
                        id,
                        code,
                        last_error: 0,
                        bytes_received: 0,
                        device: String::new(),
                    },
                };
                self.post(&f);
            }
            Frame::Complete { id, msg } => {
                let code = self.complete(&msg);
                self.post(&Frame::Reply { id, code });
            }
            other => return Err(format!("unexpected frame from the worker: {other:?}")),
        }
        Ok(())
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        let Some(host) = self.host_for(msg.hport) else {
            return ERROR_INVALID_PORT_HANDLE;
        };
        let code = host.complete(msg);
        let mut live = lock(&self.live);
        if let Some(t) = live.txs.get_mut(&msg.hport) {
            t.completed = true;
            if t.end_returned {
                live.txs.remove(&msg.hport);
            }
        }
        code
    }

    /// The worker is gone: report every transaction, release every call.
    fn died(&self, cause: &str, on_death: Option<DeathCallback>) {
        let status = {
            let mut child = lock(&self.child);
            let _ = child.kill();
            child.wait().ok()
        };
        let how = match status {
            Some(s) => match (s.signal(), s.code()) {
                (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
                (None, Some(c)) => format!("exited with status {c}"),
                _ => s.to_string(),
            },
            None => "gone".to_string(),
        };
        let why = lock(&self.kill_reason)
            .clone()
            .unwrap_or_else(|| cause.to_string());
        let text = format!("module worker (pid {}) died: {how}; {why}", self.pid);
        let (txs, calls) = {
            let mut live = lock(&self.live);
            live.dead = true;
            (
                std::mem::take(&mut live.txs),
                std::mem::take(&mut live.calls),
            )
        };
        tracing::error!(pid = self.pid, transactions = txs.len(), "{text}");
        for (hport, t) in txs {
            if let Some(cb) = &on_death {
                cb(hport, Defect::Other(text.clone()));
            }
            // Wake the transaction's driver: a host call always does, and
            // this one changes nothing (an empty Send).
            let _ = t.host.send(hport, &[]);
        }
        drop(calls);
    }
}

fn signal_name(sig: i32) -> &'static str {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str(),
        Err(_) => "unknown",
    }
}

/// A C module run in a worker process.
pub struct WorkerModule {
    name: String,
    module: PathBuf,
    command: WorkerCommand,
    opts: WorkerOptions,
    current: Mutex<Option<Arc<Worker>>>,
    on_death: Arc<Mutex<Option<DeathCallback>>>,
}

impl std::fmt::Debug for WorkerModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerModule")
            .field("name", &self.name)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl WorkerModule {
    /// Starts a worker for the module at `module` and waits until it loaded
    /// it: a missing or unloadable module, or one without the two exports,
    /// is an error here (the server must not start).
    pub fn start(
        command: WorkerCommand,
        module: &Path,
        opts: WorkerOptions,
    ) -> Result<WorkerModule, StartError> {
        let m = WorkerModule {
            name: crate::module_name(module),
            module: module.to_path_buf(),
            command,
            opts,
            current: Mutex::new(None),
            on_death: Arc::new(Mutex::new(None)),
        };
        let w = m.spawn()?;
        *lock(&m.current) = Some(w);
        Ok(m)
    }

    /// Sets what the server does for each transaction a dead worker held:
    /// end it as a module defect, for example
    /// `move |h, d| if let Some(p) = table.get(h) { p.with(|tx, _| tx.module_defect(d)) }`.
    /// After the callback the supervisor wakes the transaction's driver
    /// (with an empty Send through its `Host`). Without a callback, such a
    /// transaction ends at its dialog time limit (End then returns
    /// [`WORKER_GONE`]).
    pub fn on_worker_death(&self, cb: impl Fn(HPort, Defect) + Send + Sync + 'static) {
        *lock(&self.on_death) = Some(Arc::new(cb));
    }

    /// The current worker's process id, if one is running.
    pub fn worker_pid(&self) -> Option<u32> {
        lock(&self.current)
            .as_ref()
            .filter(|w| !w.is_dead())
            .map(|w| w.pid)
    }

    /// The live worker, starting a new one if the last one died.
    fn worker(&self) -> Result<Arc<Worker>, StartError> {
        let mut cur = lock(&self.current);
        if let Some(w) = cur.as_ref()
            && !w.is_dead()
        {
            return Ok(w.clone());
        }
        let w = self.spawn()?;
        tracing::info!(module = %self.name, pid = w.pid, "started a new module worker");
        *cur = Some(w.clone());
        Ok(w)
    }

    #[allow(unsafe_code)]
    fn spawn(&self) -> Result<Arc<Worker>, StartError> {
        let failed = |reason: String| StartError::Failed {
            module: self.module.clone(),
            reason,
        };
        let (ours, theirs): (OwnedFd, OwnedFd) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| failed(format!("socketpair: {e}")))?;
        let child_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .arg("--module")
            .arg(&self.module)
            .arg("--fd")
            .arg(WORKER_FD.to_string())
            .stdin(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls dup2 and fcntl, which are async-signal-safe. Both ends
        // of the pair are close-on-exec, so no other child of the server
        // inherits them (a leaked copy would hide the worker's death); the
        // worker gets its end as descriptor 3, without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if child_fd == WORKER_FD {
                    if libc::fcntl(WORKER_FD, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(child_fd, WORKER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| StartError::Spawn {
            program: self.command.program.clone(),
            source,
        })?;
        drop(theirs);
        let pid = child.id();
        let mut sock = UnixStream::from(ours);
        // The first frame: Ready or LoadFailed.
        let first = (|| {
            sock.set_read_timeout(Some(self.opts.start_timeout))?;
            let f = read_frame(&mut sock);
            sock.set_read_timeout(None)?;
            Ok::<_, std::io::Error>(f)
        })();
        let mut child = child;
        let fail = |child: &mut Child, e: StartError| {
            let _ = child.kill();
            let _ = child.wait();
            e
        };
        match first {
            Ok(Ok(Frame::Ready { .. })) => {}
            Ok(Ok(Frame::LoadFailed { reason })) => {
                return Err(fail(&mut child, StartError::Load(reason)));
            }
            Ok(Ok(other)) => {
                return Err(fail(
                    &mut child,
                    failed(format!("unexpected first frame {other:?}")),
                ));
            }
            Ok(Err(ProtocolError::Closed)) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(failed(format!("it exited before it was ready ({status})")));
            }
            Ok(Err(e)) => return Err(fail(&mut child, failed(e.to_string()))),
            Err(e) => return Err(fail(&mut child, failed(e.to_string()))),
        }
        let writer = sock
            .try_clone()
            .and_then(|w| {
                w.set_write_timeout(Some(self.opts.call_timeout))?;
                Ok(w)
            })
            .map_err(|e| fail(&mut child, failed(e.to_string())))?;
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
        let w = Arc::new(Worker {
            pid,
            child: Mutex::new(child),
            writer: Mutex::new(writer),
            out: Mutex::new(out_tx),
            next_id: AtomicU64::new(1),
            live: Mutex::new(Live::default()),
            kill_reason: Mutex::new(None),
        });
        // The writer of queued frames (Receive completions).
        let ww = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name(format!("cmodule-w{pid}"))
            .spawn(move || {
                while let Ok(buf) = out_rx.recv() {
                    let Some(w) = ww.upgrade() else { break };
                    if let Err(e) = lock(&w.writer).write_all(&buf) {
                        w.kill(format!("killed: cannot write to it: {e}"));
                        break;
                    }
                }
            })
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        let (reader_w, on_death) = (w.clone(), self.on_death.clone());
        std::thread::Builder::new()
            .name(format!("cmodule-r{pid}"))
            .spawn(move || {
                let w = reader_w;
                let mut sock = sock;
                let cause = loop {
                    match read_frame(&mut sock) {
                        Ok(f) => {
                            if let Err(e) = w.serve(f) {
                                w.kill(format!("killed: protocol violation: {e}"));
                                break e;
                            }
                        }
                        Err(ProtocolError::Closed) => break "its socket closed".to_string(),
                        Err(e) => {
                            w.kill(format!("killed: {e}"));
                            break e.to_string();
                        }
                    }
                };
                let cb = lock(&on_death).clone();
                w.died(&cause, cb);
            })
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        Ok(w)
    }

    /// Finds the worker that holds `hport`.
    fn holder(&self, hport: HPort) -> Option<Arc<Worker>> {
        lock(&self.current)
            .as_ref()
            .filter(|w| lock(&w.live).txs.contains_key(&hport))
            .cloned()
    }
}

impl SecurityModule for WorkerModule {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let w = match self.worker() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(module = %self.name, "{e}");
                return WORKER_GONE;
            }
        };
        let hport = args.hport;
        {
            let mut live = lock(&w.live);
            if live.dead {
                return WORKER_GONE;
            }
            // Forget transactions whose End returned 0 on an abort and whose
            // late Complete never came, once the server dropped them.
            live.txs
                .retain(|h, t| !t.end_returned || t.host.get_info(*h).is_ok());
            live.txs.insert(
                hport,
                TxState {
                    host: args.host.clone(),
                    completed: false,
                    end_returned: false,
                },
            );
        }
        let code = w.call(
            |id| Frame::Begin {
                id,
                hport: hport.0,
                send_size: args.send_buffer_size.min(u32::MAX as usize) as u32,
                recv_size: args.recv_buffer_size.min(u32::MAX as usize) as u32,
            },
            self.opts.call_timeout,
            "Begin",
        );
        if code != NO_ERROR {
            lock(&w.live).txs.remove(&hport);
        }
        code
    }

    fn end(&self, hport: HPort) -> u32 {
        let Some(w) = self.holder(hport) else {
            return WORKER_GONE;
        };
        let code = w.call(
            |id| Frame::End { id, hport: hport.0 },
            self.opts.call_timeout,
            "End",
        );
        let mut live = lock(&w.live);
        if let Some(t) = live.txs.get_mut(&hport) {
            t.end_returned = true;
            // Keep it for a late Complete when End returned 0 on an abort.
            if code != NO_ERROR || t.completed {
                live.txs.remove(&hport);
            }
        }
        code
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Normally reaped by `died` already; this covers a worker whose
        // threads could not be started.
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for WorkerModule {
    fn drop(&mut self) {
        if let Some(w) = lock(&self.current).take() {
            w.kill("killed: the module was dropped (shutdown)".into());
        }
    }
}
