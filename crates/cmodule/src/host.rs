//! The four host functions a C module calls (`RasSecurityDialogSend`,
//! `...Receive`, `...GetInfo`, `...Complete`), exported unmangled, and the
//! process-global registry that maps `HPORT` values to live transactions.
//!
//! Each registry entry remembers the transaction's [`Host`] (the sans-IO
//! rules live there), the two Begin buffers (so every pointer a module
//! passes is checked against them with [`check_buffer_range`] before the
//! host reads or writes a byte), and a *gate*: Receive completions write into
//! the module's memory only while the gate is open, and the gate closes
//! (under its lock, so no write is in flight) before Complete returns to the
//! module and before End is called. That is what keeps "the host stops
//! touching `pBuffer`, `pBufferLength` and `hEvent` once End or Complete has
//! returned" true even when a completion races them on another thread.
//!
//! Every exported function runs inside a panic boundary: a bug on our side
//! returns an error code to the module instead of unwinding into C.
//!
//! Defects a return code cannot tell the module about (a NULL or
//! unattributable Complete, an `hEvent` that is not an eventfd, a panic at
//! the boundary) go to the process's defect sink ([`set_defect_sink`]; the
//! worker forwards them to the server) attributed to a transaction: the one
//! whose Begin or End the calling thread is inside ([`CurrentCall`]), else
//! the live handle the module passed, else none.
//!
//! The Begin buffers are their own anonymous mappings, never part of the
//! malloc heap, and once the module has let go of them they are quarantined
//! ([`QUARANTINE_MIN`], [`QUARANTINE_MAX_BYTES`]): a dialog thread that was
//! told to stop in End but not joined, writing late, hits memory nobody else
//! uses instead of corrupting the heap.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use securityhost::consts::*;
use securityhost::{HPort, Host, ReceiveCompletion, check_buffer_range};

use crate::abi::{Hport, RasSecurityInfoC, SecurityMessageC};

/// A Begin buffer: an anonymous private mapping of its own (whole pages),
/// owned by one transaction and then by the quarantine.
pub(crate) struct CBuf {
    ptr: *mut u8,
    len: usize,
    /// The mapping's length (`len` rounded up to whole pages, at least one).
    map_len: usize,
}

// SAFETY: the pointer is an exclusive heap allocation; only its address
// moves between threads, and the bytes are touched through checked raw
// pointers only.
unsafe impl Send for CBuf {}
// SAFETY: as above; `CBuf` itself offers no access to the bytes.
unsafe impl Sync for CBuf {}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

impl CBuf {
    /// `len` zeroed bytes in a mapping of their own (at least one page, so
    /// the pointer is a real, unique mapping even for an empty buffer).
    pub(crate) fn new(len: usize) -> Option<CBuf> {
        let page = page_size();
        let map_len = len.max(1).checked_next_multiple_of(page)?;
        // SAFETY: a fresh anonymous private mapping; MAP_FAILED is handled.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(CBuf {
            ptr: ptr.cast(),
            len,
            map_len,
        })
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for CBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the start of a mapping of `map_len` bytes made in
        // `new`, unmapped once, here.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
    }
}

impl CBuf {
    /// Replaces the buffer's pages with an inaccessible reservation of the
    /// same addresses: the memory goes back to the system, a late write
    /// faults (the worker dies, which is a defect of its callers) and, as
    /// the addresses stay taken, no later mapping (another caller's Begin
    /// buffer, a thread stack, a large malloc) can be placed there for the
    /// late write to land in. `None` (the buffer unmapped instead) if the
    /// kernel refuses.
    fn into_tombstone(self) -> Option<Tombstone> {
        let (ptr, map_len) = (self.ptr, self.map_len);
        // SAFETY: replaces exactly our own mapping [ptr, ptr + map_len)
        // (MAP_FIXED over it, nothing else); on failure the old mapping is
        // left as it was and `self` unmaps it.
        let r = unsafe {
            libc::mmap(
                ptr.cast(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if r == libc::MAP_FAILED || r.cast::<u8>() != ptr {
            return None;
        }
        std::mem::forget(self);
        Some(Tombstone { ptr, map_len })
    }
}

/// The address range of a Begin buffer that served its quarantine: mapped
/// `PROT_NONE`, no memory behind it; unmapped on drop.
struct Tombstone {
    ptr: *mut u8,
    map_len: usize,
}

// SAFETY: only the address moves between threads; nothing reads or writes
// through it.
unsafe impl Send for Tombstone {}

impl Drop for Tombstone {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the start of the PROT_NONE mapping of `map_len`
        // bytes made in `into_tombstone`, unmapped once, here.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
    }
}

/// How many tombstones (inaccessible address ranges of retired Begin
/// buffers) are kept before the oldest is unmapped and its addresses may be
/// reused. They cost no memory, only a kernel mapping each (well within
/// `vm.max_map_count`).
pub const TOMBSTONES_MAX: usize = 16 * 1024;

static TOMBSTONES: LazyLock<Mutex<VecDeque<Tombstone>>> = LazyLock::new(Mutex::default);

/// A released Begin buffer stays mapped, untouched, for at least this long
/// after the module let go of it (End returned, or Begin failed, or the
/// late Complete of an abort came), unless the quarantine is full.
pub const QUARANTINE_MIN: Duration = Duration::from_secs(60);

/// The most bytes (whole pages) the quarantine holds; past it the oldest
/// buffers are retired early. A retired buffer's pages are replaced by an
/// inaccessible reservation of the same addresses ([`TOMBSTONES_MAX`] of
/// them kept), so a late write to one of those faults (the worker dies, its
/// callers are hung up as module defects) instead of landing in a mapping
/// made later at the same address.
pub const QUARANTINE_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Quarantine {
    bufs: VecDeque<(Instant, CBuf)>,
    bytes: usize,
    /// Buffers retired before their time since the last warning.
    early: u64,
    last_warning: Option<Instant>,
}

static QUARANTINE: LazyLock<Mutex<Quarantine>> = LazyLock::new(Mutex::default);

/// Hands buffers the module no longer owns to the quarantine, and unmaps
/// those that served their time (or the oldest, while it is over its bound).
fn quarantine(bufs: impl IntoIterator<Item = CBuf>) {
    let now = Instant::now();
    let evicted: Vec<CBuf> = {
        let mut q = lock(&QUARANTINE);
        for b in bufs {
            q.bytes += b.map_len;
            q.bufs.push_back((now, b));
        }
        let mut out = Vec::new();
        while let Some((t, _)) = q.bufs.front() {
            let served = now.saturating_duration_since(*t) >= QUARANTINE_MIN;
            if !served && q.bytes <= QUARANTINE_MAX_BYTES {
                break;
            }
            if !served {
                q.early += 1;
            }
            let (_, b) = q.bufs.pop_front().expect("front exists");
            q.bytes -= b.map_len;
            out.push(b);
        }
        // At most one warning a QUARANTINE_MIN.
        if q.early > 0
            && q.last_warning
                .is_none_or(|t| now.saturating_duration_since(t) >= QUARANTINE_MIN)
        {
            tracing::warn!(
                "Begin buffer quarantine full ({QUARANTINE_MAX_BYTES} bytes): {} buffers retired \
                 before {} s",
                q.early,
                QUARANTINE_MIN.as_secs()
            );
            q.early = 0;
            q.last_warning = Some(now);
        }
        out
    };
    // Retired outside the lock: their addresses stay reserved, so a late
    // write faults instead of landing in whatever is mapped there next.
    let stones: Vec<Tombstone> = evicted
        .into_iter()
        .filter_map(CBuf::into_tombstone)
        .collect();
    let unmapped: Vec<Tombstone> = {
        let mut t = lock(&TOMBSTONES);
        t.extend(stones);
        let excess = t.len().saturating_sub(TOMBSTONES_MAX);
        t.drain(..excess).collect()
    };
    drop(unmapped);
}

/// How many bytes of Begin buffers are in quarantine now (for tests).
pub fn quarantined_bytes() -> usize {
    lock(&QUARANTINE).bytes
}

fn release(entry: &Entry) {
    if let Some((s, r)) = lock(&entry.buffers).take() {
        quarantine([s, r]);
    }
}

thread_local! {
    static CURRENT: Cell<Option<HPort>> = const { Cell::new(None) };
}

/// Marks the calling thread as inside the module's Begin or End for a
/// handle, until dropped: host functions it calls meanwhile are attributed
/// to that transaction (spec section 4: "the calling thread tells").
pub struct CurrentCall(Option<HPort>);

impl CurrentCall {
    /// The thread is about to call Begin or End for `hport`.
    pub fn enter(hport: HPort) -> CurrentCall {
        CurrentCall(CURRENT.with(|c| c.replace(Some(hport))))
    }
}

impl Drop for CurrentCall {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

fn current_call() -> Option<HPort> {
    CURRENT.with(Cell::get)
}

/// Where defects go: `(transaction, what)`.
pub type DefectSink = Box<dyn Fn(Option<HPort>, &str) + Send + Sync>;

static DEFECT_SINK: OnceLock<DefectSink> = OnceLock::new();

/// Sets where this process's defects go (once; the worker forwards them to
/// the server). Without a sink they are only logged. Returns false if a
/// sink was already set.
pub fn set_defect_sink(sink: DefectSink) -> bool {
    DEFECT_SINK.set(sink).is_ok()
}

/// A defect of module code: logged here, and given to the sink attributed
/// to the calling thread's Begin/End, else to `given` if it is a live
/// handle, else to no transaction.
fn defect(given: Option<u64>, what: &str) {
    let hport = current_call().or_else(|| {
        given
            .filter(|h| live_entry(*h as usize as Hport).is_ok())
            .map(HPort)
    });
    match hport {
        Some(h) => tracing::error!(hport = %h, "module defect: {what}"),
        None => tracing::error!("module defect (no transaction to attribute it to): {what}"),
    }
    if let Some(sink) = DEFECT_SINK.get() {
        sink(hport, what);
    }
}

#[derive(Default)]
struct EntryState {
    /// Complete has been called (and returned) for this handle.
    completed: bool,
    /// End has returned, with this code.
    end_returned: Option<u32>,
}

/// One transaction as the C functions see it.
pub(crate) struct Entry {
    hport: HPort,
    host: Arc<dyn Host>,
    send: (usize, usize),
    recv: (usize, usize),
    /// Open while Receive completions may write into module memory.
    gate: Arc<Mutex<bool>>,
    state: Mutex<EntryState>,
    /// The Begin buffers, freed once the module has let go of them.
    buffers: Mutex<Option<(CBuf, CBuf)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Entry {
    fn close_gate(&self) {
        *lock(&self.gate) = false;
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<u64, Arc<Entry>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Makes `hport` known to the C functions with its buffers, until
/// [`end_returned`] or [`begin_failed`].
pub(crate) fn register(hport: HPort, host: Arc<dyn Host>, send: CBuf, recv: CBuf) -> Arc<Entry> {
    let entry = Arc::new(Entry {
        hport,
        host,
        send: (send.ptr() as usize, send.len()),
        recv: (recv.ptr() as usize, recv.len()),
        gate: Arc::new(Mutex::new(true)),
        state: Mutex::new(EntryState::default()),
        buffers: Mutex::new(Some((send, recv))),
    });
    lock(&REGISTRY).insert(hport.0, entry.clone());
    entry
}

fn lookup(h: u64) -> Option<Arc<Entry>> {
    lock(&REGISTRY).get(&h).cloned()
}

fn forget(entry: &Entry) {
    let mut reg = lock(&REGISTRY);
    if reg
        .get(&entry.hport.0)
        .is_some_and(|e| std::ptr::eq(&**e, entry))
    {
        reg.remove(&entry.hport.0);
    }
}

/// The buffers of `hport`, as (send pointer, send size, receive pointer,
/// receive size), for calling Begin.
pub(crate) fn buffers(entry: &Entry) -> (*mut u8, usize, *mut u8, usize) {
    (
        entry.send.0 as *mut u8,
        entry.send.1,
        entry.recv.0 as *mut u8,
        entry.recv.1,
    )
}

/// Begin returned non-zero: the dialog never started; the handle is
/// forgotten and its buffers quarantined.
pub(crate) fn begin_failed(entry: &Entry) {
    entry.close_gate();
    forget(entry);
    release(entry);
}

/// End is about to be called: no Receive completion touches module memory
/// from now on.
pub(crate) fn end_starting(entry: &Entry) {
    entry.close_gate();
}

/// End returned `code`. The handle is stale from now on for Send, Receive
/// and GetInfo. The buffers are quarantined unless End returned 0 before
/// any Complete (an abort the module asked to finish itself): then they
/// stay the module's until its late Complete, since its dialog thread may
/// still use them.
///
/// At most [`AWAITING_LATE_MAX`] handles wait for a late Complete; past it
/// the oldest is forgotten and its buffers quarantined (its late Complete,
/// if it ever comes, names no live transaction: the server has ended that
/// transaction as aborted whatever it says).
pub(crate) fn end_returned(entry: &Arc<Entry>, code: u32) {
    let keep = {
        let mut st = lock(&entry.state);
        st.end_returned = Some(code);
        code == NO_ERROR && !st.completed
    };
    if !keep {
        forget(entry);
        release(entry);
        return;
    }
    let evicted: Vec<Arc<Entry>> = {
        let mut a = lock(&AWAITING_LATE);
        // Those whose late Complete came are gone already.
        a.retain(|e| !lock(&e.state).completed);
        a.push_back(entry.clone());
        let excess = a.len().saturating_sub(AWAITING_LATE_MAX);
        a.drain(..excess).collect()
    };
    for e in evicted {
        tracing::warn!(
            hport = %e.hport,
            "End returned 0 and no late Complete came; {AWAITING_LATE_MAX} handles wait for \
             one already: this one is forgotten"
        );
        forget(&e);
        release(&e);
    }
}

/// The most handles whose End returned 0 before any Complete that wait
/// for their late Complete (each holds its Begin buffers and registry
/// entry): a module whose End returns 0 and never completes must not grow
/// the worker with every caller who hangs up.
pub const AWAITING_LATE_MAX: usize = 256;

static AWAITING_LATE: LazyLock<Mutex<VecDeque<Arc<Entry>>>> = LazyLock::new(Mutex::default);

/// How many handles the C functions know now (for tests).
pub fn registered_handles() -> usize {
    lock(&REGISTRY).len()
}

/// How many handles wait for a late Complete now (for tests).
pub fn awaiting_late_complete() -> usize {
    let mut a = lock(&AWAITING_LATE);
    a.retain(|e| !lock(&e.state).completed);
    a.len()
}

/// The entry for `hport`, if it is live.
pub(crate) fn entry(hport: HPort) -> Option<Arc<Entry>> {
    lookup(hport.0)
}

fn live_entry(h: Hport) -> Result<Arc<Entry>, u32> {
    let e = lookup(h as usize as u64).ok_or(ERROR_INVALID_PORT_HANDLE)?;
    if lock(&e.state).end_returned.is_some() {
        return Err(ERROR_INVALID_PORT_HANDLE);
    }
    Ok(e)
}

/// Runs `f` behind a panic boundary; a panic becomes `on_panic` and a
/// defect of the transaction named by `hport` (or the calling thread's).
fn boundary<R>(name: &str, hport: u64, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            // Reporting must not unwind into C either.
            let _ = catch_unwind(|| {
                defect(
                    Some(hport),
                    &format!("{name}: internal error (panic) at the host boundary"),
                )
            });
            on_panic
        }
    }
}

/// `RasSecurityDialogSend`: see `include/rasshost.h`.
///
/// # Safety
/// Called from C. `p_buffer` is only read after it was checked to lie with
/// `buffer_length` bytes inside the transaction's live send buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RasSecurityDialogSend(
    h_port: Hport,
    p_buffer: *mut u8,
    buffer_length: u16,
) -> u32 {
    let h = h_port as usize as u64;
    boundary("RasSecurityDialogSend", h, ERROR_INVALID_PARAMETER, || {
        let e = match live_entry(h_port) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let len = usize::from(buffer_length);
        if let Err(code) = check_buffer_range(e.send.0, e.send.1, p_buffer as usize, len) {
            return code;
        }
        let data = {
            // Hold the buffers so they cannot be freed while we copy.
            let bufs = lock(&e.buffers);
            if bufs.is_none() {
                return ERROR_INVALID_PORT_HANDLE;
            }
            // SAFETY: [p_buffer, p_buffer + len) lies inside the live send
            // buffer (checked above; the buffers are held by `bufs`).
            unsafe { std::slice::from_raw_parts(p_buffer.cast_const(), len) }.to_vec()
        };
        e.host.send(e.hport, &data)
    })
}

/// Raw module pointers a Receive completion writes through.
struct ReceiveTarget {
    buffer: *mut u8,
    room: usize,
    length: *mut u16,
    event: c_int,
    gate: Arc<Mutex<bool>>,
    entry: Arc<Entry>,
}

// SAFETY: the pointers are only dereferenced under the gate lock while the
// gate is open, that is before End or Complete returned, when the module
// promises they are valid; they are plain addresses otherwise.
unsafe impl Send for ReceiveTarget {}

impl ReceiveTarget {
    fn deliver(self, c: ReceiveCompletion) {
        let open = lock(&self.gate);
        if !*open {
            return;
        }
        let bufs = lock(&self.entry.buffers);
        if bufs.is_none() {
            return;
        }
        let n = c.data.len().min(self.room);
        // SAFETY: [buffer, buffer + room) was checked to lie inside the live
        // receive buffer (held by `bufs`), and n <= room.
        unsafe { std::ptr::copy_nonoverlapping(c.data.as_ptr(), self.buffer, n) };
        // SAFETY: `length` is the module's non-null PWORD, valid until the
        // event fires or End/Complete returned (the gate is open). It may be
        // unaligned in a packed struct: write it unaligned.
        unsafe { self.length.write_unaligned(n as u16) };
        drop(bufs);
        let signalled = signal_eventfd(self.event);
        drop(open);
        if !signalled {
            // Reported outside the gate's lock: the report may complete
            // other Receives (see the worker's defect sink).
            defect(
                Some(self.entry.hport.0),
                &format!(
                    "RasSecurityDialogReceive: hEvent {} is no longer an eventfd when the \
                     Receive completed; not signalled",
                    self.event
                ),
            );
        }
    }
}

/// Adds 1 to the eventfd `fd`; false (and nothing written) when `fd` is no
/// longer an eventfd.
fn signal_eventfd(fd: c_int) -> bool {
    if !is_eventfd(fd) {
        return false;
    }
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor checked to be
    // an eventfd; an error (counter full, closed meanwhile) is ignored.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    true
}

/// True when `fd` is an open eventfd of this process.
fn is_eventfd(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(target) => target.as_os_str() == "anon_inode:[eventfd]",
        // Without /proc: accept any open descriptor.
        // SAFETY: F_GETFD only queries the descriptor table.
        Err(_) => (unsafe { libc::fcntl(fd, libc::F_GETFD) }) >= 0,
    }
}

/// `RasSecurityDialogReceive`: see `include/rasshost.h`.
///
/// # Safety
/// Called from C. `p_buffer_length` must be NULL or point to a WORD that
/// stays valid until the event fires or End/Complete returned;
/// `p_buffer` is only written after it was checked against the
/// transaction's receive buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RasSecurityDialogReceive(
    h_port: Hport,
    p_buffer: *mut u8,
    p_buffer_length: *mut u16,
    timeout: u32,
    h_event: c_int,
) -> u32 {
    let h = h_port as usize as u64;
    boundary(
        "RasSecurityDialogReceive",
        h,
        ERROR_INVALID_PARAMETER,
        || {
            let e = match live_entry(h_port) {
                Ok(e) => e,
                Err(code) => return code,
            };
            if p_buffer_length.is_null() {
                return ERROR_INVALID_PARAMETER;
            }
            if !is_eventfd(h_event) {
                // The module would wait for ever on something we cannot
                // signal: a defect of its transaction, and 87.
                defect(
                    Some(h),
                    &format!("RasSecurityDialogReceive: hEvent {h_event} is not an eventfd"),
                );
                return ERROR_INVALID_PARAMETER;
            }
            // SAFETY: non-null PWORD from the module, read as it may be
            // unaligned.
            let room = usize::from(unsafe { p_buffer_length.read_unaligned() });
            if room == 0 {
                return ERROR_INVALID_PARAMETER;
            }
            if let Err(code) = check_buffer_range(e.recv.0, e.recv.1, p_buffer as usize, room) {
                return code;
            }
            let target = ReceiveTarget {
                buffer: p_buffer,
                room,
                length: p_buffer_length,
                event: h_event,
                gate: e.gate.clone(),
                entry: e.clone(),
            };
            e.host
                .receive(e.hport, room, timeout, Box::new(move |c| target.deliver(c)))
        },
    )
}

/// `RasSecurityDialogGetInfo`: see `include/rasshost.h`.
///
/// # Safety
/// Called from C. `p_buffer` must be NULL or point to a writable
/// `RAS_SECURITY_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RasSecurityDialogGetInfo(
    h_port: Hport,
    p_buffer: *mut RasSecurityInfoC,
) -> u32 {
    let h = h_port as usize as u64;
    boundary(
        "RasSecurityDialogGetInfo",
        h,
        ERROR_INVALID_PARAMETER,
        || {
            let e = match live_entry(h_port) {
                Ok(e) => e,
                Err(code) => return code,
            };
            if p_buffer.is_null() {
                return ERROR_INVALID_PARAMETER;
            }
            match e.host.get_info(e.hport) {
                Ok(info) => {
                    let c = RasSecurityInfoC::from_info(&info);
                    // SAFETY: non-null pointer to the module's RAS_SECURITY_INFO;
                    // written unaligned in case the module packed it.
                    unsafe { p_buffer.write_unaligned(c) };
                    NO_ERROR
                }
                Err(code) => code,
            }
        },
    )
}

/// `RasSecurityDialogComplete`: see `include/rasshost.h`. Returns nothing,
/// as on Windows. Inside Begin or End the message goes to that call's
/// transaction, whatever `hPort` it names (the transaction then finds a
/// wrong `hPort` a defect); elsewhere to the transaction `hPort` names. A
/// NULL message, or one naming no live transaction, is a defect.
///
/// # Safety
/// Called from C. `p_sec_msg` must be NULL or point to a readable
/// `SECURITY_MESSAGE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RasSecurityDialogComplete(p_sec_msg: *mut SecurityMessageC) {
    boundary("RasSecurityDialogComplete", 0, (), || {
        if p_sec_msg.is_null() {
            defect(None, "RasSecurityDialogComplete(NULL)");
            return;
        }
        // SAFETY: non-null pointer to the module's SECURITY_MESSAGE, copied
        // out at once (unaligned: the module may have packed it).
        let msg = unsafe { p_sec_msg.read_unaligned() }.to_message();
        let target = current_call().unwrap_or(msg.hport);
        let Some(e) = lookup(target.0) else {
            defect(
                None,
                &format!(
                    "RasSecurityDialogComplete with hPort {}, which names no live transaction",
                    msg.hport
                ),
            );
            return;
        };
        let code = e.host.complete(&msg);
        if code != NO_ERROR {
            tracing::warn!(hport = %e.hport, code, "RasSecurityDialogComplete not taken");
        }
        // From here on no Receive completion touches module memory.
        e.close_gate();
        let free_now = {
            let mut st = lock(&e.state);
            st.completed = true;
            st.end_returned.is_some()
        };
        if free_now {
            // The late Complete of an abort whose End returned 0.
            forget(&e);
            release(&e);
        }
    })
}

/// The addresses of the four host functions, to check that the running
/// executable exports them (and to keep the linker from dropping them).
pub(crate) fn host_symbols() -> [(&'static str, usize); 4] {
    [
        (
            "RasSecurityDialogSend",
            RasSecurityDialogSend as *const () as usize,
        ),
        (
            "RasSecurityDialogReceive",
            RasSecurityDialogReceive as *const () as usize,
        ),
        (
            "RasSecurityDialogGetInfo",
            RasSecurityDialogGetInfo as *const () as usize,
        ),
        (
            "RasSecurityDialogComplete",
            RasSecurityDialogComplete as *const () as usize,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hole 10's bound: a released buffer stays mapped and writable (a late
    /// write lands in memory nobody else uses), and the quarantine never
    /// holds more than QUARANTINE_MAX_BYTES, however many are released.
    #[test]
    fn hole_10_the_quarantine_keeps_buffers_mapped_and_is_bounded() {
        let b = CBuf::new(100).unwrap();
        let (p, n) = (b.ptr(), b.len());
        quarantine([b]);
        // SAFETY: the mapping is in quarantine (not unmapped: far fewer
        // than QUARANTINE_MAX_BYTES released, and not 60 s old), so the
        // range is still mapped read-write; the test plays the late module.
        unsafe { p.write_bytes(b'L', n) };
        // SAFETY: as above.
        assert_eq!(unsafe { p.read() }, b'L');
        let page = page_size();
        for _ in 0..QUARANTINE_MAX_BYTES / page + 64 {
            quarantine([CBuf::new(1).unwrap()]);
            assert!(quarantined_bytes() <= QUARANTINE_MAX_BYTES);
        }
        assert!(quarantined_bytes() > QUARANTINE_MAX_BYTES - 2 * page);
    }

    /// The permissions of the mapping holding `addr` in /proc/self/maps.
    fn perms_at(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().find_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (a <= addr && addr < b).then(|| rest[..4].to_string())
        })
    }

    /// Hole 10: a buffer retired from the quarantine (early, because it is
    /// full) keeps its addresses, inaccessible, so no later Begin buffer is
    /// placed there: a late write to it faults instead of landing in
    /// another caller's buffer.
    #[test]
    fn hole_10_a_retired_buffer_is_never_reused_for_another_buffer() {
        let b = CBuf::new(1).unwrap();
        let p = b.ptr() as usize;
        quarantine([b]);
        let page = page_size();
        let mut later = Vec::new();
        for _ in 0..QUARANTINE_MAX_BYTES / page + 64 {
            let n = CBuf::new(1).unwrap();
            assert_ne!(n.ptr() as usize, p, "a retired buffer's address was reused");
            later.push(n.ptr() as usize);
            quarantine([n]);
        }
        for _ in 0..64 {
            let n = CBuf::new(1).unwrap();
            assert_ne!(n.ptr() as usize, p, "a retired buffer's address was reused");
            later.push(n.ptr() as usize);
            drop(n);
        }
        // Long retired by now (the quarantine is FIFO): mapped, inaccessible.
        assert_eq!(perms_at(p).as_deref(), Some("---p"));
        assert!(!later.contains(&p));
    }
}
