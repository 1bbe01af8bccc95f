//! ports: TCP, telnet, pty drivers
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

pub mod port;
pub mod pty;
pub mod telnet_stream;
pub mod tun;

pub use port::{
    CLOSE_GRACE, Caller, CallerStream, PTY_LINGER, Port, PortConfig, PortError, PortKind,
};
pub use pty::{PtyPort, PtyStream};
pub use telnet_stream::TelnetStream;
