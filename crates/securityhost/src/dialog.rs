//! A convenience for modules written in Rust: the host functions of one
//! transaction with Receive as a future (or a blocking call), Send split to
//! the send buffer's size. Pure std: it runs on any executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::consts::*;
use crate::message::{HPort, SecurityInfo, SecurityMessage};
use crate::module::{BeginArgs, Host, ReceiveCompletion};

/// One dialog's end of the host functions.
#[derive(Clone)]
pub struct Dialog {
    hport: HPort,
    host: Arc<dyn Host>,
    send_size: usize,
    recv_size: usize,
}

impl std::fmt::Debug for Dialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialog")
            .field("hport", &self.hport)
            .finish_non_exhaustive()
    }
}

/// A Receive that did not bring bytes: the host error code (619 hung up, 638
/// timed out, or what Receive itself returned).
pub type HostError = u32;

impl Dialog {
    /// The dialog Begin was called for.
    pub fn new(args: &BeginArgs) -> Dialog {
        Dialog {
            hport: args.hport,
            host: args.host.clone(),
            send_size: args.send_buffer_size.max(1),
            recv_size: args.recv_buffer_size.max(1),
        }
    }

    /// The port handle.
    pub fn hport(&self) -> HPort {
        self.hport
    }

    /// Sends all of `data`, in pieces no larger than the send buffer.
    pub fn send(&self, data: &[u8]) -> Result<(), HostError> {
        for chunk in data.chunks(self.send_size) {
            let r = self.host.send(self.hport, chunk);
            if r != PENDING {
                return Err(r);
            }
        }
        Ok(())
    }

    /// Receives whatever bytes are available (at least one), waiting up to
    /// `timeout_secs` (0 = no limit).
    pub fn receive(&self, timeout_secs: u32) -> ReceiveFuture {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let s2 = slot.clone();
        let r = self.host.receive(
            self.hport,
            self.recv_size,
            timeout_secs,
            Box::new(move |c: ReceiveCompletion| {
                let mut s = s2.lock().unwrap_or_else(|e| e.into_inner());
                s.done = Some(c);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }),
        );
        if r != PENDING {
            slot.lock().unwrap_or_else(|e| e.into_inner()).done = Some(ReceiveCompletion {
                last_error: r,
                data: Vec::new(),
            });
        }
        ReceiveFuture { slot }
    }

    /// Like [`Dialog::receive`], blocking the calling thread (for modules
    /// that run a thread per dialog, such as PAM).
    pub fn receive_blocking(&self, timeout_secs: u32) -> Result<Vec<u8>, HostError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let r = self.host.receive(
            self.hport,
            self.recv_size,
            timeout_secs,
            Box::new(move |c| {
                let _ = tx.send(c);
            }),
        );
        if r != PENDING {
            return Err(r);
        }
        match rx.recv() {
            Ok(c) => completion_result(c),
            // The host dropped the event: Complete or End came first.
            Err(_) => Err(ERROR_INVALID_PORT_HANDLE),
        }
    }

    /// `RasSecurityDialogGetInfo`.
    pub fn info(&self) -> Result<SecurityInfo, HostError> {
        self.host.get_info(self.hport)
    }

    /// `RasSecurityDialogComplete` with `msg`.
    pub fn complete(&self, msg: &SecurityMessage) -> u32 {
        self.host.complete(msg)
    }

    /// Completes with SUCCESS for `user`. A name too long for the message
    /// becomes an ERROR verdict instead (never a truncated grant).
    pub fn succeed(&self, user: &str, domain: &str) -> u32 {
        match SecurityMessage::success(self.hport, user, domain) {
            Ok(m) => self.complete(&m),
            Err(_) => self.complete(&SecurityMessage::error(self.hport, ERROR_BUFFER_TOO_SMALL)),
        }
    }

    /// Completes with FAILURE for `user` (cut to fit the message, on a
    /// character boundary).
    pub fn fail(&self, user: &str, domain: &str) -> u32 {
        let user = if user.is_empty() { "?" } else { user };
        let m = SecurityMessage::failure(self.hport, fit(user, UNLEN), fit(domain, DNLEN))
            .unwrap_or_else(|_| SecurityMessage::error(self.hport, ERROR_INVALID_PARAMETER));
        self.complete(&m)
    }

    /// Completes with ERROR `code` (0 is replaced by `ERROR_INVALID_PARAMETER`,
    /// since an ERROR must carry a code).
    pub fn error(&self, code: u32) -> u32 {
        let code = if code == 0 {
            ERROR_INVALID_PARAMETER
        } else {
            code
        };
        self.complete(&SecurityMessage::error(self.hport, code))
    }
}

fn fit(s: &str, max: usize) -> &str {
    let clean = s.find('\0').map_or(s, |n| &s[..n]);
    let mut end = clean.len().min(max);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    &clean[..end]
}

fn completion_result(c: ReceiveCompletion) -> Result<Vec<u8>, HostError> {
    if c.last_error == NO_ERROR && !c.data.is_empty() {
        Ok(c.data)
    } else if c.last_error == NO_ERROR {
        Err(ERROR_INVALID_PARAMETER)
    } else {
        Err(c.last_error)
    }
}

#[derive(Default)]
struct Slot {
    done: Option<ReceiveCompletion>,
    waker: Option<Waker>,
}

/// A Receive in flight. Dropping it before it resolves leaves the Receive
/// pending in the host (as in C).
pub struct ReceiveFuture {
    slot: Arc<Mutex<Slot>>,
}

impl std::fmt::Debug for ReceiveFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiveFuture")
    }
}

impl Future for ReceiveFuture {
    type Output = Result<Vec<u8>, HostError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.done.take() {
            Some(c) => Poll::Ready(completion_result(c)),
            None => {
                // The host drops the event (never calls it) once Complete or
                // End has returned; a holder of the future then waits until
                // its task is dropped by the module's End.
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
