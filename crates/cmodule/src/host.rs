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
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use securityhost::consts::*;
use securityhost::{HPort, Host, ReceiveCompletion, check_buffer_range};

use crate::abi::{Hport, RasSecurityInfoC, SecurityMessageC};

/// Memory from the C heap, owned by one transaction: a Begin buffer.
pub(crate) struct CBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer is an exclusive heap allocation; only its address
// moves between threads, and the bytes are touched through checked raw
// pointers only.
unsafe impl Send for CBuf {}
// SAFETY: as above; `CBuf` itself offers no access to the bytes.
unsafe impl Sync for CBuf {}

impl CBuf {
    /// `len` zeroed bytes (at least one byte is allocated so the pointer is
    /// a real, unique allocation even for an empty buffer).
    pub(crate) fn new(len: usize) -> Option<CBuf> {
        // SAFETY: calloc with a non-zero size; a null return is handled.
        let ptr = unsafe { libc::calloc(len.max(1), 1) }.cast::<u8>();
        (!ptr.is_null()).then_some(CBuf { ptr, len })
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
        // SAFETY: `ptr` came from calloc and is freed once, here.
        unsafe { libc::free(self.ptr.cast()) }
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
/// forgotten and its buffers freed.
pub(crate) fn begin_failed(entry: &Entry) {
    entry.close_gate();
    forget(entry);
    lock(&entry.buffers).take();
}

/// End is about to be called: no Receive completion touches module memory
/// from now on.
pub(crate) fn end_starting(entry: &Entry) {
    entry.close_gate();
}

/// End returned `code`. The handle is stale from now on for Send, Receive
/// and GetInfo. The buffers are freed unless End returned 0 before any
/// Complete (an abort the module asked to finish itself): then they stay
/// until its late Complete, since its dialog thread may still use them.
pub(crate) fn end_returned(entry: &Entry, code: u32) {
    let keep = {
        let mut st = lock(&entry.state);
        st.end_returned = Some(code);
        code == NO_ERROR && !st.completed
    };
    if !keep {
        forget(entry);
        lock(&entry.buffers).take();
    }
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

/// Runs `f` behind a panic boundary; a panic becomes `on_panic`.
fn boundary<R>(name: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(
                "{name}: internal error (panic) in the host; returning an error to the module"
            );
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
    boundary("RasSecurityDialogSend", ERROR_INVALID_PARAMETER, || {
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
        signal_eventfd(self.event);
    }
}

fn signal_eventfd(fd: c_int) {
    if !is_eventfd(fd) {
        tracing::warn!(
            "Receive completion: descriptor {fd} is no longer an eventfd; not signalled"
        );
        return;
    }
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor checked to be
    // an eventfd; an error (counter full, closed meanwhile) is ignored.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
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
    boundary("RasSecurityDialogReceive", ERROR_INVALID_PARAMETER, || {
        let e = match live_entry(h_port) {
            Ok(e) => e,
            Err(code) => return code,
        };
        if p_buffer_length.is_null() || !is_eventfd(h_event) {
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
    })
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
    boundary("RasSecurityDialogGetInfo", ERROR_INVALID_PARAMETER, || {
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
    })
}

/// `RasSecurityDialogComplete`: see `include/rasshost.h`. Returns nothing,
/// as on Windows; what was wrong with a message is logged by the host.
///
/// # Safety
/// Called from C. `p_sec_msg` must be NULL or point to a readable
/// `SECURITY_MESSAGE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RasSecurityDialogComplete(p_sec_msg: *mut SecurityMessageC) {
    boundary("RasSecurityDialogComplete", (), || {
        if p_sec_msg.is_null() {
            tracing::error!("RasSecurityDialogComplete(NULL): ignored");
            return;
        }
        // SAFETY: non-null pointer to the module's SECURITY_MESSAGE, copied
        // out at once (unaligned: the module may have packed it).
        let msg = unsafe { p_sec_msg.read_unaligned() }.to_message();
        let Some(e) = lookup(msg.hport.0) else {
            tracing::error!(hport = %msg.hport, "RasSecurityDialogComplete with an unknown hPort: ignored");
            return;
        };
        let code = e.host.complete(&msg);
        if code != NO_ERROR {
            tracing::warn!(hport = %msg.hport, code, "RasSecurityDialogComplete not taken");
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
            lock(&e.buffers).take();
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
