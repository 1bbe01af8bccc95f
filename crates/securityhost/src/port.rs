//! A transaction shared between its driver and module threads, the host
//! functions bound to it, and the table of live port handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::consts::*;
use crate::message::{HPort, SecurityInfo, SecurityMessage};
use crate::module::{Host, ReceiveEvent};
use crate::transaction::{Config, Transaction};

/// Where "now" comes from: the real clock in the server, a virtual one in
/// tests.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A transaction behind a lock, reachable from the port's driver and from
/// any module thread. Every entry point fires the Receive completions it
/// produced after releasing the lock, and module calls wake the driver.
pub struct Port {
    hport: HPort,
    tx: Mutex<Transaction>,
    wake: Box<dyn Fn() + Send + Sync>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("hport", &self.hport)
            .finish_non_exhaustive()
    }
}

impl Port {
    /// A new transaction for `hport`, started now. `wake` is called after
    /// every module call that may have produced work for the driver.
    pub fn new(
        hport: HPort,
        cfg: Config,
        device: &str,
        clock: Arc<dyn Clock>,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Port> {
        let now = clock.now();
        Arc::new(Port {
            hport,
            tx: Mutex::new(Transaction::new(hport, cfg, device, now)),
            wake,
            clock,
        })
    }

    /// The handle.
    pub fn hport(&self) -> HPort {
        self.hport
    }

    /// The clock the transaction runs on.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Runs `f` on the transaction under the lock, then fires any Receive
    /// completions outside it.
    pub fn with<R>(&self, f: impl FnOnce(&mut Transaction, Instant) -> R) -> R {
        let now = self.clock.now();
        let (r, completions) = {
            let mut tx = self.lock();
            let r = f(&mut tx, now);
            (r, tx.take_completions())
        };
        for (event, completion) in completions {
            event(completion);
        }
        r
    }

    /// Reports a module failure seen from outside (a worker process died):
    /// the transaction ends as that defect (see
    /// [`Transaction::module_defect`]) and the driver is woken.
    pub fn module_defect(&self, defect: crate::Defect) {
        self.module_call(|tx, _| tx.module_defect(defect));
    }

    fn lock(&self) -> MutexGuard<'_, Transaction> {
        // A panic elsewhere while holding the lock must not wedge the port:
        // the transaction's own methods never leave it half-updated.
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host functions bound to this transaction, for Begin. A call with
    /// any other handle gets `ERROR_INVALID_PORT_HANDLE`, and once the port
    /// is dropped every call does.
    pub fn host(self: &Arc<Self>) -> Arc<dyn Host> {
        Arc::new(BoundHost {
            hport: self.hport,
            port: Arc::downgrade(self),
        })
    }

    fn module_call<R>(&self, f: impl FnOnce(&mut Transaction, Instant) -> R) -> R {
        let r = self.with(f);
        (self.wake)();
        r
    }

    fn send(&self, data: &[u8]) -> u32 {
        self.module_call(|tx, now| tx.send(self.hport, data, now))
    }

    fn receive(&self, room: usize, timeout: u32, event: ReceiveEvent) -> u32 {
        // On an error return the event is dropped, never called.
        self.module_call(|tx, now| tx.receive(self.hport, room, timeout, event, now))
    }

    fn get_info(&self) -> Result<SecurityInfo, u32> {
        self.lock().get_info(self.hport)
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        self.module_call(|tx, now| tx.complete(msg, now))
    }
}

/// The host functions of one transaction.
struct BoundHost {
    hport: HPort,
    port: Weak<Port>,
}

impl BoundHost {
    fn port(&self, hport: HPort) -> Option<Arc<Port>> {
        if hport != self.hport {
            return None;
        }
        self.port.upgrade()
    }
}

impl Host for BoundHost {
    fn send(&self, hport: HPort, data: &[u8]) -> u32 {
        self.port(hport)
            .map_or(ERROR_INVALID_PORT_HANDLE, |p| p.send(data))
    }

    fn receive(&self, hport: HPort, room: usize, timeout_secs: u32, event: ReceiveEvent) -> u32 {
        self.port(hport).map_or(ERROR_INVALID_PORT_HANDLE, |p| {
            p.receive(room, timeout_secs, event)
        })
    }

    fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32> {
        self.port(hport)
            .map_or(Err(ERROR_INVALID_PORT_HANDLE), |p| p.get_info())
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        // A message naming another handle is this transaction's defect, not
        // someone else's verdict: the transaction validates it.
        match self.port.upgrade() {
            Some(p) => p.complete(msg),
            None => ERROR_INVALID_PORT_HANDLE,
        }
    }
}

/// The live transactions by handle, for hosts that get only a handle (the C
/// ABI). Handles are never reused while the process lives.
#[derive(Debug)]
pub struct PortTable {
    next: AtomicU64,
    ports: Mutex<HashMap<HPort, Weak<Port>>>,
}

impl Default for PortTable {
    fn default() -> Self {
        PortTable::new()
    }
}

impl PortTable {
    /// An empty table.
    pub fn new() -> PortTable {
        PortTable {
            // Start away from small integers so a module that passes a count
            // or a file descriptor as a handle is caught.
            next: AtomicU64::new(0x10_0001),
            ports: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh handle, never 0 and never handed out before.
    pub fn allocate(&self) -> HPort {
        HPort(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Makes `port` reachable by its handle until [`PortTable::remove`].
    pub fn insert(&self, port: &Arc<Port>) {
        self.lock().insert(port.hport(), Arc::downgrade(port));
    }

    /// Forgets `hport`: later calls with it get `ERROR_INVALID_PORT_HANDLE`.
    pub fn remove(&self, hport: HPort) {
        self.lock().remove(&hport);
    }

    /// The live port for `hport`.
    pub fn get(&self, hport: HPort) -> Option<Arc<Port>> {
        self.lock().get(&hport).and_then(Weak::upgrade)
    }

    /// How many handles are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<HPort, Weak<Port>>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Host for PortTable {
    fn send(&self, hport: HPort, data: &[u8]) -> u32 {
        self.get(hport)
            .map_or(ERROR_INVALID_PORT_HANDLE, |p| p.send(data))
    }

    fn receive(&self, hport: HPort, room: usize, timeout_secs: u32, event: ReceiveEvent) -> u32 {
        self.get(hport).map_or(ERROR_INVALID_PORT_HANDLE, |p| {
            p.receive(room, timeout_secs, event)
        })
    }

    fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32> {
        self.get(hport)
            .map_or(Err(ERROR_INVALID_PORT_HANDLE), |p| p.get_info())
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        self.get(msg.hport)
            .map_or(ERROR_INVALID_PORT_HANDLE, |p| p.complete(msg))
    }
}

/// The pointer checks of the C ABI, as arithmetic: is `[ptr, ptr + len)`
/// inside the buffer `[buf, buf + buf_len)`? Returns the offset of `ptr` in
/// the buffer, `ERROR_INVALID_PARAMETER` (87) for a null or outside pointer,
/// or `ERROR_BUFFER_TOO_SMALL` (603) when the length runs past the end.
pub fn check_buffer_range(
    buf: usize,
    buf_len: usize,
    ptr: usize,
    len: usize,
) -> Result<usize, u32> {
    if ptr == 0 || buf_len == 0 || ptr < buf || ptr - buf >= buf_len {
        return Err(ERROR_INVALID_PARAMETER);
    }
    let offset = ptr - buf;
    if len > buf_len - offset {
        return Err(ERROR_BUFFER_TOO_SMALL);
    }
    Ok(offset)
}
