//! ports: TCP, telnet, pty, serial drivers
//!
//! The IO edge of dialgate's lines. A [`Port`] is one port group: a TCP or
//! telnet listener, or a pseudo-terminal that dialgate creates, with a cap on
//! simultaneous callers. [`Port::accept`] hands out [`Caller`]s whose
//! [`CallerStream`] carries the caller's data bytes whatever the line kind:
//!
//! * Tcp: the socket as is (`TCP_NODELAY` set);
//! * Telnet: a [`TelnetStream`] driving the sans-IO [`telnet::Telnet`] machine
//!   (IAC escaping, NVT rules, ECHO/SGA/BINARY, RFC 1143);
//! * Pty: a [`PtyStream`] over the master of a raw pty; see [`pty`] for what
//!   Linux does with pty masters and how a caller's arrival is detected.
//!
//! Every port re-arms itself: a TCP listener keeps listening, a pty port
//! creates a fresh pty (and re-points its symlink) as soon as a caller took
//! the previous one.
//!
//! Serial lines (a modem on `/dev/ttyS0`, `/dev/ttyUSB0`, …) are a separate
//! kind: a [`SerialLine`] opens the device exclusively (`flock` and
//! `TIOCEXCL`), configures it raw with [`SerialSettings`] (speed, data bits,
//! [`Parity`], stop bits, [`FlowControl`]) and carries the bytes, while its
//! [`IoctlLines`] implement [`modem::ModemLines`] (DTR/RTS out, DCD/DSR/RI/CTS
//! in) for the modem driver. The line stays open from call to call; see
//! [`serial`].

pub mod port;
pub mod pty;
pub mod serial;
pub mod telnet_stream;
mod ttyio;
pub mod tun;

pub use port::{
    CLOSE_GRACE, Caller, CallerStream, PTY_LINGER, Port, PortConfig, PortError, PortKind,
};
pub use pty::{PtyPort, PtyStream};
pub use serial::{FlowControl, IoctlLines, Parity, SerialLine, SerialSettings};
pub use telnet_stream::TelnetStream;
