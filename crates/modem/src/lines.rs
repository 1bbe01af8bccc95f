//! The RS-232 modem control lines, as an interface.
//!
//! The real implementation (TIOCMGET/TIOCMBIS/TIOCMBIC ioctls) belongs to the
//! serial-port layer; this crate only defines the trait, a fake for tests, and
//! [`apply_action`] to carry an [`Action`] of the state machine out.

use crate::answerer::Action;
use std::convert::Infallible;

/// Snapshot of the input control lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineStatus {
    /// Data Carrier Detect: the modem has a carrier (a call is up).
    pub dcd: bool,
    /// Data Set Ready: the modem is powered and ready.
    pub dsr: bool,
    /// Ring Indicator.
    pub ri: bool,
    /// Clear To Send (hardware flow control).
    pub cts: bool,
}

/// Access to a serial port's modem control lines.
pub trait ModemLines {
    /// The error of the underlying device.
    type Error;
    /// Raise (`true`) or drop (`false`) Data Terminal Ready.
    ///
    /// # Errors
    /// When the device rejects the request.
    fn set_dtr(&mut self, on: bool) -> Result<(), Self::Error>;
    /// Raise or drop Request To Send.
    ///
    /// # Errors
    /// When the device rejects the request.
    fn set_rts(&mut self, on: bool) -> Result<(), Self::Error>;
    /// Read DCD/DSR/RI/CTS.
    ///
    /// # Errors
    /// When the device cannot be queried.
    fn status(&mut self) -> Result<LineStatus, Self::Error>;
}

/// Carry out one [`Action`] on a [`ModemLines`].
///
/// # Errors
/// Whatever the device returns.
pub fn apply_action<L: ModemLines + ?Sized>(
    lines: &mut L,
    action: &Action,
) -> Result<(), L::Error> {
    match *action {
        Action::SetDtr(on) => lines.set_dtr(on),
        Action::SetRts(on) => lines.set_rts(on),
    }
}

/// In-memory control lines for tests: outputs are recorded, inputs are set by
/// the test (or by a fake modem).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeLines {
    /// Current DTR output.
    pub dtr: bool,
    /// Current RTS output.
    pub rts: bool,
    /// Input lines the test controls.
    pub input: LineStatus,
    /// Every output change in order, as `("DTR"|"RTS", level)`.
    pub history: Vec<(&'static str, bool)>,
}

impl FakeLines {
    /// Fake lines with everything low and no history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl ModemLines for FakeLines {
    type Error = Infallible;
    fn set_dtr(&mut self, on: bool) -> Result<(), Infallible> {
        self.dtr = on;
        self.history.push(("DTR", on));
        Ok(())
    }
    fn set_rts(&mut self, on: bool) -> Result<(), Infallible> {
        self.rts = on;
        self.history.push(("RTS", on));
        Ok(())
    }
    fn status(&mut self) -> Result<LineStatus, Infallible> {
        Ok(self.input)
    }
}
