//! Sans-IO Hayes modem driver core.
//!
//! * [`parser`]: incremental parser of modem result codes (verbose and
//!   numeric), tolerant of garbage, with a bounded line buffer.
//! * [`lines`]: the [`ModemLines`] interface to the RS-232 control lines
//!   (DTR/RTS out, DCD/DSR/RI/CTS in) and a [`FakeLines`] for tests.
//! * [`answerer`]: the [`Answerer`] state machine (init with back-off, answer
//!   on the Nth RING or auto-answer, CONNECT parsing, carrier watch, DTR
//!   hang-up with `+++`/`ATH` fallback, and dial-out for callback).
//!
//! Nothing here does IO or reads a clock: the caller passes `Instant`s in and
//! drains transmits, actions and events (quinn-style).
//!
//! # Wiring a driver
//!
//! ```
//! use modem::{Answerer, Config, Event, FakeLines, ModemLines, apply_action};
//! use std::time::Instant;
//!
//! let mut lines = FakeLines::new(); // the real port implements ModemLines
//! let mut m = Answerer::new(Config::default());
//! let now = Instant::now();
//! m.start(now);
//! // One turn of the driver loop:
//! while let Some(a) = m.poll_action() {
//!     apply_action(&mut lines, &a).unwrap();
//! }
//! let mut written = Vec::new();
//! while let Some(tx) = m.poll_transmit() {
//!     written.extend_from_slice(&tx); // write to the tty
//! }
//! assert_eq!(written, b"ATZ\r");
//! // Bytes read from the tty (the modem's echo and answer):
//! m.handle_input(now, b"ATZ\r\r\nOK\r\n");
//! assert_eq!(m.poll_transmit().as_deref(), Some(&b"ATE0V1&C1&D2S0=0\r"[..]));
//! m.handle_input(now, b"\r\nOK\r\n");
//! assert_eq!(m.poll_event(), Some(Event::Ready));
//! // DCD changes go to `carrier_changed`; sleep until `poll_timeout()` and
//! // call `handle_timeout`.
//! let dcd = lines.status().unwrap().dcd;
//! m.carrier_changed(now, dcd);
//! assert!(m.poll_timeout().is_none()); // idle: nothing scheduled
//! ```
#![forbid(unsafe_code)]

pub mod answerer;
pub mod lines;
pub mod parser;

pub use answerer::{
    Action, AnswerFailure, Answerer, Config, DialError, Event, HangUpMethod, InitFailure,
    MAX_NUMBER, State, validate_number,
};
pub use lines::{FakeLines, LineStatus, ModemLines, apply_action};
pub use parser::{ConnectInfo, MAX_LINE, Response, ResponseParser};
