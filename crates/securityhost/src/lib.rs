//! The security host contract of `shared/spec/security-host.md`, sans-IO:
//! the types and numbers of `rasshost.h`, the Rust module trait, and the
//! per-port transaction state machine with every rule of spec sections 2, 4
//! and 5. No tokio, no unsafe, no IO: time comes in as `Instant`s.
#![forbid(unsafe_code)]

pub mod consts;
pub mod dialog;
pub mod message;
pub mod module;
pub mod port;
pub mod transaction;

pub use dialog::{Dialog, HostError, ReceiveFuture};
pub use message::{Defect, FieldTooLong, HPort, MsgId, SecurityInfo, SecurityMessage, Verdict};
pub use module::{BeginArgs, Host, ReceiveCompletion, ReceiveEvent, SecurityModule};
pub use port::{Clock, Port, PortTable, SystemClock, check_buffer_range};
pub use transaction::{AbortCause, Action, Config, MAX_DEFECTS, Outcome, Transaction};
