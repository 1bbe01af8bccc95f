//! Serial lines: a real RS-232 port (e.g. `/dev/ttyS0`, `/dev/ttyUSB0`) with
//! a modem on it, opened exclusively and configured raw.
//!
//! [`SerialLine::open`] takes the device for dialgate alone, in three ways at
//! once, so that neither another dialgate nor a `getty`, `minicom` or
//! `ModemManager` talks to the modem at the same time:
//!
//! * an exclusive, non-blocking `flock` on the device (the convention of
//!   most serial programs); a held lock fails the open with
//!   [`io::ErrorKind::ResourceBusy`] and a message saying the device is in
//!   use by another program;
//! * `TIOCEXCL`, after which the kernel refuses further opens of the tty by
//!   processes without `CAP_SYS_ADMIN` (`EBUSY`, reported the same way).
//!   Dropping the [`SerialLine`] clears it again (`TIOCNXCL`): on a pty the
//!   flag would otherwise outlive the close;
//! * `O_NOCTTY`, so the device never becomes dialgate's controlling terminal.
//!
//! The termios settings are raw IO (no echo, no line editing, no byte
//! translation) at the configured [`SerialSettings`], with `CLOCAL` set and
//! `HUPCL` cleared: dialgate watches Data Carrier Detect and drives Data
//! Terminal Ready itself through [`IoctlLines`], the [`modem::ModemLines`] of
//! the device, so the kernel must neither block on a missing carrier nor drop
//! DTR on close.
//!
//! Reading a hung-up tty fails with `EIO` on Linux; [`SerialLine`] reads that
//! as end of file and makes writes fail with [`io::ErrorKind::BrokenPipe`],
//! like [`crate::PtyStream`]. Shutting a [`SerialLine`] down does nothing:
//! the line stays open and configured for the next call.
//!
//! Pseudo-terminals: a pty slave is a tty that accepts all of this, which the
//! tests use (though Linux keeps it at 8 data bits without parity whatever
//! was asked), but it has no modem control lines. Linux rejects `TIOCMGET`,
//! `TIOCMBIS` and `TIOCMBIC` on ptys, so [`IoctlLines`] on a pty returns
//! errors (it never invents line states). Tests of modem logic use
//! [`modem::FakeLines`] instead.

use std::fmt;
use std::fs::{OpenOptions, TryLockError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use modem::{LineStatus, ModemLines};
use nix::sys::termios::{
    self, BaudRate, ControlFlags, FlushArg, InputFlags, SetArg, SpecialCharacterIndices, Termios,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Parity bit of each character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit (the `N` of `8N1`).
    None,
    /// Even parity (`E`); received bytes are checked (`INPCK`).
    Even,
    /// Odd parity (`O`); received bytes are checked (`INPCK`).
    Odd,
}

impl Parity {
    /// The letter of the usual `8N1` notation.
    fn letter(self) -> char {
        match self {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        }
    }
}

/// How the two ends pause each other when a buffer fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// No flow control.
    None,
    /// Hardware flow control on the RTS and CTS lines (`CRTSCTS`).
    RtsCts,
    /// Software flow control with XON (`^Q`) and XOFF (`^S`) bytes, both
    /// directions (`IXON | IXOFF`). The line is then not 8-bit clean.
    XonXoff,
}

impl FlowControl {
    fn name(self) -> &'static str {
        match self {
            FlowControl::None => "no flow control",
            FlowControl::RtsCts => "rts/cts",
            FlowControl::XonXoff => "xon/xoff",
        }
    }
}

/// Line settings of a serial port.
///
/// Shown (by [`fmt::Display`]) in the usual notation, e.g.
/// `115200 8N1 rts/cts`, `9600 7E2 xon/xoff`, `2400 8N1 no flow control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    /// Bits per second, one of the standard termios rates of Linux
    /// ([`SerialSettings::SPEEDS`]: 50 up to 4 000 000).
    pub speed: u32,
    /// Data bits per character, 5 to 8.
    pub data_bits: u8,
    /// Parity bit.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
    /// Flow control.
    pub flow: FlowControl,
}

impl Default for SerialSettings {
    /// `115200 8N1 rts/cts`: what a modem on a PC serial port usually wants.
    fn default() -> Self {
        SerialSettings {
            speed: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: FlowControl::RtsCts,
        }
    }
}

/// The standard rates and their termios constants, ascending.
const RATES: [(u32, BaudRate); 30] = [
    (50, BaudRate::B50),
    (75, BaudRate::B75),
    (110, BaudRate::B110),
    (134, BaudRate::B134),
    (150, BaudRate::B150),
    (200, BaudRate::B200),
    (300, BaudRate::B300),
    (600, BaudRate::B600),
    (1_200, BaudRate::B1200),
    (1_800, BaudRate::B1800),
    (2_400, BaudRate::B2400),
    (4_800, BaudRate::B4800),
    (9_600, BaudRate::B9600),
    (19_200, BaudRate::B19200),
    (38_400, BaudRate::B38400),
    (57_600, BaudRate::B57600),
    (115_200, BaudRate::B115200),
    (230_400, BaudRate::B230400),
    (460_800, BaudRate::B460800),
    (500_000, BaudRate::B500000),
    (576_000, BaudRate::B576000),
    (921_600, BaudRate::B921600),
    (1_000_000, BaudRate::B1000000),
    (1_152_000, BaudRate::B1152000),
    (1_500_000, BaudRate::B1500000),
    (2_000_000, BaudRate::B2000000),
    (2_500_000, BaudRate::B2500000),
    (3_000_000, BaudRate::B3000000),
    (3_500_000, BaudRate::B3500000),
    (4_000_000, BaudRate::B4000000),
];

impl SerialSettings {
    /// The speeds [`SerialSettings::speed`] may take, ascending: Linux's
    /// standard termios rates (`B50` … `B4000000`; `B134` is 134.5 baud).
    pub const SPEEDS: [u32; 30] = {
        let mut out = [0u32; 30];
        let mut i = 0;
        while i < RATES.len() {
            out[i] = RATES[i].0;
            i += 1;
        }
        out
    };

    /// Check every field; the error names the bad value and what is allowed.
    ///
    /// # Errors
    /// A human-readable message for the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        if baud_rate(self.speed).is_none() {
            let allowed: Vec<String> = Self::SPEEDS.iter().map(u32::to_string).collect();
            return Err(format!(
                "serial speed {} bit/s is not supported; use one of the standard rates: {}",
                self.speed,
                allowed.join(", ")
            ));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(format!(
                "serial data bits {} is not supported; use 5, 6, 7 or 8",
                self.data_bits
            ));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(format!(
                "serial stop bits {} is not supported; use 1 or 2",
                self.stop_bits
            ));
        }
        Ok(())
    }
}

impl fmt::Display for SerialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}{} {}",
            self.speed,
            self.data_bits,
            self.parity.letter(),
            self.stop_bits,
            self.flow.name()
        )
    }
}

fn baud_rate(speed: u32) -> Option<BaudRate> {
    RATES.iter().find(|(s, _)| *s == speed).map(|(_, b)| *b)
}

/// Turn `t` into the termios of a raw line with `s` (which must be valid).
fn apply_settings(t: &mut Termios, s: &SerialSettings) -> io::Result<()> {
    let baud = baud_rate(s.speed).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("serial speed {} is not supported", s.speed),
        )
    })?;
    // No echo, no line editing, no signals, no CR/NL mapping, no output
    // processing, 8 bits without parity (refined below).
    termios::cfmakeraw(t);
    // Receiver on; ignore DCD in the kernel (we watch it through the modem
    // lines); keep DTR up on close (we drive it ourselves).
    t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    t.control_flags &= !ControlFlags::HUPCL;

    t.control_flags &= !ControlFlags::CSIZE;
    t.control_flags |= match s.data_bits {
        5 => ControlFlags::CS5,
        6 => ControlFlags::CS6,
        7 => ControlFlags::CS7,
        _ => ControlFlags::CS8,
    };

    // Parity: a byte that fails the check reads as NUL (INPCK without IGNPAR
    // or PARMRK); whatever a previous owner left there is reset.
    t.control_flags &= !(ControlFlags::PARENB | ControlFlags::PARODD);
    t.input_flags &= !(InputFlags::INPCK | InputFlags::IGNPAR | InputFlags::PARMRK);
    match s.parity {
        Parity::None => {}
        Parity::Even => {
            t.control_flags |= ControlFlags::PARENB;
            t.input_flags |= InputFlags::INPCK;
        }
        Parity::Odd => {
            t.control_flags |= ControlFlags::PARENB | ControlFlags::PARODD;
            t.input_flags |= InputFlags::INPCK;
        }
    }

    t.control_flags.set(ControlFlags::CSTOPB, s.stop_bits == 2);

    t.control_flags
        .set(ControlFlags::CRTSCTS, s.flow == FlowControl::RtsCts);
    t.input_flags &= !(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
    if s.flow == FlowControl::XonXoff {
        t.input_flags |= InputFlags::IXON | InputFlags::IXOFF;
        t.control_chars[SpecialCharacterIndices::VSTART as usize] = 0x11;
        t.control_chars[SpecialCharacterIndices::VSTOP as usize] = 0x13;
    }

    // A read returns as soon as one byte is there (non-blocking anyway).
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;

    termios::cfsetspeed(t, baud)?;
    Ok(())
}

/// The error for a device somebody else holds.
fn in_use(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!(
            "serial device {} is in use by another program",
            path.display()
        ),
    )
}

/// `e` with the device path and what we were doing in its message.
fn with_path(path: &Path, what: &str, e: impl Into<io::Error>) -> io::Error {
    let e = e.into();
    io::Error::new(
        e.kind(),
        format!("serial device {}: {what}: {e}", path.display()),
    )
}

/// Issue an ioctl that takes no argument (`TIOCEXCL`, `TIOCNXCL`).
#[allow(unsafe_code)]
fn ioctl_none(fd: BorrowedFd<'_>, request: libc::Ioctl) -> io::Result<()> {
    // SAFETY: `fd` is a valid open descriptor for the duration of the call,
    // and the requests used here take no argument, so no memory is accessed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Issue an ioctl that reads or writes one `c_int` through its argument
/// (`TIOCMGET`, `TIOCMBIS`, `TIOCMBIC`, `TIOCOUTQ`).
#[allow(unsafe_code)]
fn ioctl_int(fd: BorrowedFd<'_>, request: libc::Ioctl, value: &mut libc::c_int) -> io::Result<()> {
    let ptr: *mut libc::c_int = value;
    // SAFETY: `fd` is a valid open descriptor for the duration of the call;
    // these requests read or write exactly one `c_int` at the
    // pointer, which points to a live, exclusively borrowed `c_int`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, ptr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An open, exclusively held and configured serial device.
///
/// Bytes flow through [`AsyncRead`]/[`AsyncWrite`]; the modem control lines
/// are reached through [`SerialLine::lines`]. The lock and exclusive mode end
/// when the line is dropped (the `flock` lasts while an [`IoctlLines`] made
/// from it still holds a duplicate of the descriptor).
#[derive(Debug)]
pub struct SerialLine {
    fd: AsyncFd<OwnedFd>,
    path: PathBuf,
}

impl SerialLine {
    /// Open `path` exclusively and configure it with `settings`.
    ///
    /// The device is opened `O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC`,
    /// locked with `flock(LOCK_EX | LOCK_NB)`, put in exclusive mode
    /// (`TIOCEXCL`), made raw with `settings` (see the module docs), and its
    /// buffers are flushed both ways.
    ///
    /// Must be called inside a tokio runtime (the descriptor is registered
    /// with its reactor).
    ///
    /// `tcsetattr` succeeds when the driver took any part of the settings;
    /// what it did not take (a pty, for one, forces 8 data bits without
    /// parity) is logged as a warning, not an error.
    ///
    /// # Errors
    /// * invalid `settings`: [`io::ErrorKind::InvalidInput`], with the
    ///   message of [`SerialSettings::validate`];
    /// * a missing device, no permission, a file that is not a tty: the
    ///   matching kind, with the path in the message;
    /// * the device is locked or in exclusive mode by someone else:
    ///   [`io::ErrorKind::ResourceBusy`], "… is in use by another program";
    /// * any termios call the device refuses; no tokio runtime.
    pub fn open(path: &Path, settings: &SerialSettings) -> io::Result<SerialLine> {
        settings.validate().map_err(|m| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("serial device {}: {m}", path.display()),
            )
        })?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(format!(
                "serial device {}: SerialLine::open needs a tokio runtime",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                // Another program put the tty in exclusive mode (TIOCEXCL).
                Some(libc::EBUSY) => in_use(path),
                Some(libc::ENOENT) => io::Error::new(
                    e.kind(),
                    format!("serial device {} does not exist", path.display()),
                ),
                Some(libc::EACCES) => io::Error::new(
                    e.kind(),
                    format!(
                        "serial device {}: permission denied (is the user in the device's group, \
                         e.g. dialout?)",
                        path.display()
                    ),
                ),
                _ => with_path(path, "cannot open", e),
            })?;
        if !nix::unistd::isatty(&file).map_err(|e| with_path(path, "isatty", e))? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a serial device (not a terminal)", path.display()),
            ));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(path)),
            Err(TryLockError::Error(e)) => return Err(with_path(path, "flock", e)),
        }
        let fd = OwnedFd::from(file);
        ioctl_none(fd.as_fd(), libc::TIOCEXCL).map_err(|e| with_path(path, "TIOCEXCL", e))?;
        // From here on, leaving with an error must undo TIOCEXCL.
        let configure = || -> io::Result<()> {
            let mut t = termios::tcgetattr(&fd).map_err(|e| with_path(path, "tcgetattr", e))?;
            apply_settings(&mut t, settings).map_err(|e| with_path(path, "settings", e))?;
            termios::tcsetattr(&fd, SetArg::TCSANOW, &t)
                .map_err(|e| with_path(path, "tcsetattr", e))?;
            check_applied(&fd, path, settings, &t);
            termios::tcflush(&fd, FlushArg::TCIOFLUSH).map_err(|e| with_path(path, "tcflush", e))
        };
        if let Err(e) = configure() {
            let _ = ioctl_none(fd.as_fd(), libc::TIOCNXCL);
            return Err(e);
        }
        let undo = fd.try_clone().ok();
        let fd = register(fd).map_err(|e| {
            if let Some(u) = &undo {
                let _ = ioctl_none(u.as_fd(), libc::TIOCNXCL);
            }
            with_path(path, "registering with tokio", e)
        })?;
        drop(undo);
        tracing::debug!(device = %path.display(), settings = %settings, "serial line open");
        Ok(SerialLine {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The device path given to [`SerialLine::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drop whatever input the kernel buffered (tcflush `TCIFLUSH`), e.g. a
    /// modem's leftover result codes before a new call.
    ///
    /// # Errors
    /// When the device refuses the flush.
    pub fn discard_input(&self) -> io::Result<()> {
        termios::tcflush(self.fd.get_ref(), FlushArg::TCIFLUSH)
            .map_err(|e| with_path(&self.path, "tcflush", e))
    }

    /// Bytes written but not yet sent by the device (`TIOCOUTQ`). A pty
    /// reports 0.
    ///
    /// # Errors
    /// When the device refuses the ioctl.
    pub fn output_pending(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        ioctl_int(self.fd.get_ref().as_fd(), libc::TIOCOUTQ, &mut n)
            .map_err(|e| with_path(&self.path, "TIOCOUTQ", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Waits (polling every 5 ms) until everything written has left the
    /// device, or `limit` passed: a hang-up must not cut the caller's last
    /// message (at 9600 bit/s, 100 bytes take 0.1 s). Returns whether the
    /// output drained; an ioctl error counts as drained.
    pub async fn drain(&self, limit: std::time::Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            match self.output_pending() {
                Ok(0) | Err(_) => return true,
                Ok(_) if tokio::time::Instant::now() >= end => return false,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    /// The modem control lines of this device, on a dup of its descriptor.
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated.
    pub fn lines(&self) -> io::Result<IoctlLines> {
        let fd = self
            .fd
            .get_ref()
            .try_clone()
            .map_err(|e| with_path(&self.path, "dup", e))?;
        Ok(IoctlLines {
            fd,
            path: self.path.clone(),
        })
    }
}

/// Register `fd` with the current tokio reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is an open descriptor owned by the `OwnedFd` we move into
    // the `AsyncFd`; nothing else can close it, and `OwnedFd::as_raw_fd`
    // returns the same descriptor until the `AsyncFd` drops it.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

/// Log what the driver did not take over from `wanted` (`tcsetattr`
/// succeeds when any part of the change succeeded).
fn check_applied(fd: &OwnedFd, path: &Path, settings: &SerialSettings, wanted: &Termios) {
    let Ok(got) = termios::tcgetattr(fd) else {
        return;
    };
    let mask = ControlFlags::CSIZE
        | ControlFlags::PARENB
        | ControlFlags::PARODD
        | ControlFlags::CSTOPB
        | ControlFlags::CRTSCTS;
    if termios::cfgetospeed(&got) != termios::cfgetospeed(wanted)
        || got.control_flags & mask != wanted.control_flags & mask
    {
        tracing::warn!(
            device = %path.display(),
            settings = %settings,
            "serial device did not accept all line settings"
        );
    }
}

impl Drop for SerialLine {
    fn drop(&mut self) {
        // Output that never left (flow control stuck: CTS low) is dropped,
        // or the kernel's close would wait for it (`closing_wait`, 30 s by
        // default) on a runtime thread; hang-ups drain before they come.
        let _ = termios::tcflush(self.fd.get_ref(), FlushArg::TCOFLUSH);
        // Leave the tty openable by others (a pty slave keeps the flag while
        // its master is open); the flock goes with the last descriptor.
        let _ = ioctl_none(self.fd.get_ref().as_fd(), libc::TIOCNXCL);
    }
}

impl AsFd for SerialLine {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

fn hung_up() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "serial line hung up")
}

impl AsyncRead for SerialLine {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // A hung-up tty: the end of the data.
        ready!(crate::ttyio::poll_read(&this.fd, cx, buf))?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SerialLine {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match ready!(crate::ttyio::poll_write(&this.fd, cx, buf))? {
            crate::ttyio::Io::Done(n) => Poll::Ready(Ok(n)),
            crate::ttyio::Io::HungUp => Poll::Ready(Err(hung_up())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel's tty buffer.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The line stays open: its owner re-uses it for the next call.
        Poll::Ready(Ok(()))
    }
}

/// The modem control lines of a serial device, through the `TIOCM*`
/// ioctls: DTR and RTS are set with `TIOCMBIS`/`TIOCMBIC`, DCD, DSR, RI and
/// CTS read with `TIOCMGET`. On a pty every call fails (see the module docs).
#[derive(Debug)]
pub struct IoctlLines {
    fd: OwnedFd,
    path: PathBuf,
}

impl IoctlLines {
    fn set_bits(&self, bits: libc::c_int, on: bool) -> io::Result<()> {
        let (request, name) = if on {
            (libc::TIOCMBIS, "TIOCMBIS")
        } else {
            (libc::TIOCMBIC, "TIOCMBIC")
        };
        let mut value = bits;
        ioctl_int(self.fd.as_fd(), request, &mut value).map_err(|e| with_path(&self.path, name, e))
    }
}

impl ModemLines for IoctlLines {
    type Error = io::Error;

    fn set_dtr(&mut self, on: bool) -> io::Result<()> {
        self.set_bits(libc::TIOCM_DTR, on)
    }

    fn set_rts(&mut self, on: bool) -> io::Result<()> {
        self.set_bits(libc::TIOCM_RTS, on)
    }

    fn status(&mut self) -> io::Result<LineStatus> {
        let mut bits: libc::c_int = 0;
        ioctl_int(self.fd.as_fd(), libc::TIOCMGET, &mut bits)
            .map_err(|e| with_path(&self.path, "TIOCMGET", e))?;
        Ok(LineStatus {
            dcd: bits & libc::TIOCM_CAR != 0,
            dsr: bits & libc::TIOCM_DSR != 0,
            ri: bits & libc::TIOCM_RNG != 0,
            cts: bits & libc::TIOCM_CTS != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(
        speed: u32,
        data_bits: u8,
        parity: Parity,
        stop_bits: u8,
        flow: FlowControl,
    ) -> SerialSettings {
        SerialSettings {
            speed,
            data_bits,
            parity,
            stop_bits,
            flow,
        }
    }

    #[test]
    fn default_is_115200_8n1_rts_cts() {
        let d = SerialSettings::default();
        assert_eq!(d, s(115_200, 8, Parity::None, 1, FlowControl::RtsCts));
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.to_string(), "115200 8N1 rts/cts");
    }

    #[test]
    fn display_uses_the_usual_notation() {
        assert_eq!(
            s(9_600, 7, Parity::Even, 2, FlowControl::XonXoff).to_string(),
            "9600 7E2 xon/xoff"
        );
        assert_eq!(
            s(300, 5, Parity::Odd, 1, FlowControl::None).to_string(),
            "300 5O1 no flow control"
        );
    }

    #[test]
    fn every_standard_speed_validates_and_others_do_not() {
        for speed in SerialSettings::SPEEDS {
            let set = SerialSettings {
                speed,
                ..SerialSettings::default()
            };
            assert_eq!(set.validate(), Ok(()), "{speed}");
        }
        assert!(SerialSettings::SPEEDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SerialSettings::SPEEDS[0], 50);
        assert_eq!(SerialSettings::SPEEDS[29], 4_000_000);
        for speed in [0, 1, 12_345, 14_400, 115_201, 4_000_001, u32::MAX] {
            let set = SerialSettings {
                speed,
                ..SerialSettings::default()
            };
            let err = set.validate().unwrap_err();
            assert!(err.contains(&format!("speed {speed} ")), "{err}");
            assert!(err.contains("115200") && err.contains("4000000"), "{err}");
        }
    }

    #[test]
    fn data_and_stop_bits_are_range_checked() {
        for bits in 5..=8 {
            let set = SerialSettings {
                data_bits: bits,
                ..SerialSettings::default()
            };
            assert_eq!(set.validate(), Ok(()));
        }
        for bits in [0, 4, 9, 255] {
            let set = SerialSettings {
                data_bits: bits,
                ..SerialSettings::default()
            };
            let err = set.validate().unwrap_err();
            assert!(err.contains(&format!("data bits {bits} ")), "{err}");
            assert!(err.contains("5, 6, 7 or 8"), "{err}");
        }
        for bits in [0, 3] {
            let set = SerialSettings {
                stop_bits: bits,
                ..SerialSettings::default()
            };
            let err = set.validate().unwrap_err();
            assert!(err.contains(&format!("stop bits {bits} ")), "{err}");
            assert!(err.contains("1 or 2"), "{err}");
        }
    }

    /// A termios as a previous owner might leave it: cooked, with every
    /// flag this module must reset switched on.
    fn dirty_termios() -> Termios {
        let master =
            nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
                .unwrap();
        let mut t = termios::tcgetattr(&master).unwrap();
        t.control_flags |= ControlFlags::HUPCL
            | ControlFlags::PARENB
            | ControlFlags::PARODD
            | ControlFlags::CSTOPB
            | ControlFlags::CRTSCTS;
        t.input_flags |= InputFlags::IXON
            | InputFlags::IXOFF
            | InputFlags::IXANY
            | InputFlags::INPCK
            | InputFlags::IGNPAR;
        t.control_flags &= !(ControlFlags::CLOCAL | ControlFlags::CREAD);
        t
    }

    #[test]
    fn termios_flags_follow_the_settings() {
        let cases = [
            (
                s(9_600, 7, Parity::Even, 2, FlowControl::XonXoff),
                BaudRate::B9600,
            ),
            (
                s(115_200, 8, Parity::None, 1, FlowControl::RtsCts),
                BaudRate::B115200,
            ),
            (
                s(2_400, 5, Parity::Odd, 1, FlowControl::None),
                BaudRate::B2400,
            ),
            (
                s(4_000_000, 6, Parity::None, 2, FlowControl::None),
                BaudRate::B4000000,
            ),
        ];
        for (set, baud) in cases {
            let mut t = dirty_termios();
            apply_settings(&mut t, &set).unwrap();
            let cf = t.control_flags;
            let inf = t.input_flags;
            assert_eq!(termios::cfgetospeed(&t), baud, "{set}");
            assert_eq!(termios::cfgetispeed(&t), baud, "{set}");
            let size = match set.data_bits {
                5 => ControlFlags::CS5,
                6 => ControlFlags::CS6,
                7 => ControlFlags::CS7,
                _ => ControlFlags::CS8,
            };
            assert_eq!(cf & ControlFlags::CSIZE, size, "{set}");
            assert_eq!(
                cf.contains(ControlFlags::PARENB),
                set.parity != Parity::None,
                "{set}"
            );
            assert_eq!(
                cf.contains(ControlFlags::PARODD),
                set.parity == Parity::Odd,
                "{set}"
            );
            assert_eq!(
                inf.contains(InputFlags::INPCK),
                set.parity != Parity::None,
                "{set}"
            );
            assert!(!inf.contains(InputFlags::IGNPAR), "{set}");
            assert_eq!(
                cf.contains(ControlFlags::CSTOPB),
                set.stop_bits == 2,
                "{set}"
            );
            assert_eq!(
                cf.contains(ControlFlags::CRTSCTS),
                set.flow == FlowControl::RtsCts,
                "{set}"
            );
            let xon = set.flow == FlowControl::XonXoff;
            assert_eq!(inf.contains(InputFlags::IXON), xon, "{set}");
            assert_eq!(inf.contains(InputFlags::IXOFF), xon, "{set}");
            assert!(!inf.contains(InputFlags::IXANY), "{set}");
            assert!(
                cf.contains(ControlFlags::CLOCAL | ControlFlags::CREAD),
                "{set}"
            );
            assert!(!cf.contains(ControlFlags::HUPCL), "{set}");
            assert!(
                !t.local_flags.contains(termios::LocalFlags::ICANON),
                "{set}"
            );
            assert!(!t.local_flags.contains(termios::LocalFlags::ECHO), "{set}");
            assert!(
                !t.output_flags.contains(termios::OutputFlags::OPOST),
                "{set}"
            );
            assert_eq!(t.control_chars[SpecialCharacterIndices::VMIN as usize], 1);
            assert_eq!(t.control_chars[SpecialCharacterIndices::VTIME as usize], 0);
        }
    }
}
