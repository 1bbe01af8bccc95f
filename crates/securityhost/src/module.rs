//! The Rust face of `rasshost.h`: what a module implements
//! ([`SecurityModule`]: `RasSecurityDialogBegin` / `RasSecurityDialogEnd`)
//! and what the host offers it ([`Host`]: `RasSecurityDialogSend`,
//! `...Receive`, `...GetInfo`, `...Complete`).
//!
//! The functions mirror the C ones one for one, with the same return codes,
//! so a module ports between the two with small changes. Where C passes a
//! buffer pointer, Rust passes a slice (the pointer checks of the C ABI live
//! in [`crate::check_buffer_range`]); where C passes an `eventfd`, Rust passes
//! a [`ReceiveEvent`] callback.

use std::sync::Arc;

use crate::message::{HPort, SecurityInfo, SecurityMessage};

/// The result of an asynchronous Receive, as the C host would leave it in
/// `*pBufferLength` and `RAS_SECURITY_INFO.LastError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveCompletion {
    /// `NO_ERROR`, `ERROR_REQUEST_TIMEOUT` or `ERROR_PORT_DISCONNECTED`.
    pub last_error: u32,
    /// The bytes received: at least one when `last_error == 0`, none otherwise.
    pub data: Vec<u8>,
}

/// The `hEvent` of a Receive: called once when the Receive completes (never
/// when Receive itself returned an error, and never after Complete or End
/// returned). It is called without any host lock held, so it may call the
/// host again.
pub type ReceiveEvent = Box<dyn FnOnce(ReceiveCompletion) + Send>;

/// The host functions a module calls. Every call validates `hport` (a stale or
/// unknown handle gets `ERROR_INVALID_PORT_HANDLE`) and may be made from any
/// thread, also from inside Begin and End.
pub trait Host: Send + Sync {
    /// `RasSecurityDialogSend`: queues `data` for the caller. The bytes are
    /// copied before it returns `PENDING`; a write error shows on the next
    /// Receive or GetInfo. Errors: 601, 619, 603 (longer than the send buffer).
    fn send(&self, hport: HPort, data: &[u8]) -> u32;

    /// `RasSecurityDialogReceive`: asks for up to `room` bytes (at most the
    /// receive buffer size), completing through `event` with whatever bytes
    /// are available, at least one, or with 638 after `timeout_secs` (0 = no
    /// timeout) or 619 when the caller hangs up. Returns `PENDING`, or 601,
    /// 619, 616 (one is pending), 87 (`room == 0`), 603 (`room` past the end
    /// of the receive buffer).
    fn receive(&self, hport: HPort, room: usize, timeout_secs: u32, event: ReceiveEvent) -> u32;

    /// `RasSecurityDialogGetInfo`: the state of the last Receive and the
    /// device name. Errors: 601.
    fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32>;

    /// `RasSecurityDialogComplete`: the module's verdict. Returns `NO_ERROR`
    /// when taken, 87 when the message is invalid or a second one (the
    /// transaction then ends as a module defect, or keeps its first verdict),
    /// 601 when the handle is unknown.
    fn complete(&self, msg: &SecurityMessage) -> u32;
}

/// What Begin gets: the handle, the sizes of the two buffers, and the host.
#[derive(Clone)]
pub struct BeginArgs {
    /// The transaction's port handle.
    pub hport: HPort,
    /// Size of the send buffer: the most one Send may carry.
    pub send_buffer_size: usize,
    /// Size of the receive buffer: the most one Receive may ask for.
    pub recv_buffer_size: usize,
    /// The host functions, bound to this transaction.
    pub host: Arc<dyn Host>,
}

impl std::fmt::Debug for BeginArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeginArgs")
            .field("hport", &self.hport)
            .field("send_buffer_size", &self.send_buffer_size)
            .field("recv_buffer_size", &self.recv_buffer_size)
            .finish_non_exhaustive()
    }
}

/// A security module: `RasSecurityDialogBegin` and `RasSecurityDialogEnd`.
///
/// The host calls both off its async reactor threads; Begin must return
/// quickly and run the dialog on a thread or task of the module's own.
pub trait SecurityModule: Send + Sync + 'static {
    /// A short name for logs and the event log (for example `users`).
    fn name(&self) -> &str;

    /// `RasSecurityDialogBegin`: start a dialog. 0 means the dialog runs and
    /// the module will call Complete; anything else hangs up the caller and
    /// is logged, with no Complete expected.
    fn begin(&self, args: BeginArgs) -> u32;

    /// `RasSecurityDialogEnd`: release the port, after Complete (cleanup) or
    /// to abort a dialog. When aborting, non-zero ends the transaction at
    /// once; 0 lets the module finish within the grace period.
    fn end(&self, hport: HPort) -> u32;
}
