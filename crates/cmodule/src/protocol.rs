//! The wire protocol between the server and a module worker process, over a
//! Unix stream socket.
//!
//! Every frame is a little-endian `u32` body length (1 ..= [`MAX_BODY`])
//! followed by the body: one kind byte, then the kind's fields, fixed-width
//! little-endian integers and length-prefixed byte strings (`u32` length,
//! bounded by [`MAX_DATA`] or [`MAX_TEXT`]). A body must be consumed
//! exactly. The parser checks every length before it reads, never panics,
//! and allocates at most [`MAX_BODY`] bytes per frame.
//!
//! Request ids: the server numbers its Begin/End requests, the worker its
//! host-function calls; each side's replies carry the id of the request
//! they answer, and a Receive's completion carries the id of its Receive.
//!
//! A [`Frame::Defect`] needs no answer: the worker tells the server that
//! module code misused a host function in a way the module cannot be told
//! through a return code (a NULL or unattributable Complete, a bad
//! `hEvent`, a panic at the boundary); the server ends that transaction as
//! a module defect, or logs it when no transaction can be named.

use std::io::{self, Read, Write};

use securityhost::consts::{DNLEN, UNLEN};
use securityhost::{HPort, SecurityMessage};

/// The largest frame body.
pub const MAX_BODY: usize = 80 * 1024;
/// The most bytes of dialog data in one frame (a `WORD` count).
pub const MAX_DATA: usize = 65_535;
/// The most bytes of text (a module name, an error, a device name).
pub const MAX_TEXT: usize = 4096;

/// One message between server and worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    // ---- worker to server ----
    /// The module loaded; the worker serves requests.
    Ready {
        /// The module's short name.
        name: String,
    },
    /// The module could not be loaded; the worker exits.
    LoadFailed {
        /// What went wrong, naming the file.
        reason: String,
    },
    /// The module's Begin or End returned `code`.
    Returned {
        /// The server's request id.
        id: u64,
        /// The return value.
        code: u32,
    },
    /// `RasSecurityDialogSend`.
    Send {
        /// The worker's request id.
        id: u64,
        /// The handle.
        hport: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `RasSecurityDialogReceive`: completes later with [`Frame::ReceiveDone`].
    Receive {
        /// The worker's request id, also the completion's id.
        id: u64,
        /// The handle.
        hport: u64,
        /// Room in the module's buffer.
        room: u32,
        /// Timeout in seconds, 0 = none.
        timeout: u32,
    },
    /// `RasSecurityDialogGetInfo`.
    GetInfo {
        /// The worker's request id.
        id: u64,
        /// The handle.
        hport: u64,
    },
    /// `RasSecurityDialogComplete`.
    Complete {
        /// The worker's request id.
        id: u64,
        /// The transaction the worker attributes the Complete to: the
        /// handle of the Begin or End the calling thread is inside, else
        /// the message's own `hPort` (the transaction then checks that the
        /// message names it).
        hport: u64,
        /// The message, byte for byte as the module wrote it.
        msg: Box<SecurityMessage>,
    },
    /// Module code broke the contract in a way the worker saw; no answer.
    Defect {
        /// The transaction it is attributed to, 0 when none can be named.
        hport: u64,
        /// What was wrong (at most [`MAX_TEXT`] bytes).
        what: String,
    },
    // ---- server to worker ----
    /// Call the module's Begin.
    Begin {
        /// The server's request id.
        id: u64,
        /// The transaction's handle.
        hport: u64,
        /// Send buffer size.
        send_size: u32,
        /// Receive buffer size.
        recv_size: u32,
    },
    /// Call the module's End.
    End {
        /// The server's request id.
        id: u64,
        /// The handle.
        hport: u64,
    },
    /// The return code of a Send, Receive or Complete.
    Reply {
        /// The worker's request id.
        id: u64,
        /// The code.
        code: u32,
    },
    /// The answer to a GetInfo.
    Info {
        /// The worker's request id.
        id: u64,
        /// `NO_ERROR` or the error (then the rest is empty).
        code: u32,
        /// `LastError`.
        last_error: u32,
        /// `BytesReceived`.
        bytes_received: u32,
        /// The device name.
        device: String,
    },
    /// A Receive completed.
    ReceiveDone {
        /// The Receive's id.
        id: u64,
        /// `NO_ERROR`, 638 or 619.
        last_error: u32,
        /// The bytes (none unless `last_error == 0`).
        data: Vec<u8>,
    },
}

/// A frame that breaks the protocol (the peer misbehaved), or IO failure.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed or closed mid-frame.
    #[error("module worker socket: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the socket between frames.
    #[error("module worker socket closed")]
    Closed,
    /// A length prefix outside 1 ..= MAX_BODY.
    #[error("malformed frame: body length {0} out of range")]
    BadLength(usize),
    /// An unknown kind byte.
    #[error("malformed frame: unknown kind {0}")]
    UnknownKind(u8),
    /// The body ended before a field.
    #[error("malformed frame: truncated {0}")]
    Truncated(&'static str),
    /// A byte string longer than its bound.
    #[error("malformed frame: {0} longer than allowed")]
    TooLong(&'static str),
    /// Bytes after the last field.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
    /// A text field that is not UTF-8.
    #[error("malformed frame: {0} is not UTF-8")]
    NotUtf8(&'static str),
}

mod kind {
    pub const READY: u8 = 1;
    pub const LOAD_FAILED: u8 = 2;
    pub const RETURNED: u8 = 3;
    pub const SEND: u8 = 4;
    pub const RECEIVE: u8 = 5;
    pub const GET_INFO: u8 = 6;
    pub const COMPLETE: u8 = 7;
    pub const DEFECT: u8 = 8;
    pub const BEGIN: u8 = 20;
    pub const END: u8 = 21;
    pub const REPLY: u8 = 22;
    pub const INFO: u8 = 23;
    pub const RECEIVE_DONE: u8 = 24;
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A byte string, cut to `max` bytes (the encoder never produces a
    /// frame the parser refuses).
    fn bytes(&mut self, b: &[u8], max: usize) -> &mut Self {
        let b = &b[..b.len().min(max)];
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn text(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(MAX_TEXT);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes(&s.as_bytes()[..end], MAX_TEXT)
    }
}

impl Frame {
    /// The frame on the wire: length prefix and body. Data and text longer
    /// than their bounds are cut to fit.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out(vec![0; 4]);
        match self {
            Frame::Ready { name } => o.u8(kind::READY).text(name),
            Frame::LoadFailed { reason } => o.u8(kind::LOAD_FAILED).text(reason),
            Frame::Returned { id, code } => o.u8(kind::RETURNED).u64(*id).u32(*code),
            Frame::Send { id, hport, data } => {
                o.u8(kind::SEND).u64(*id).u64(*hport).bytes(data, MAX_DATA)
            }
            Frame::Receive {
                id,
                hport,
                room,
                timeout,
            } => o
                .u8(kind::RECEIVE)
                .u64(*id)
                .u64(*hport)
                .u32(*room)
                .u32(*timeout),
            Frame::GetInfo { id, hport } => o.u8(kind::GET_INFO).u64(*id).u64(*hport),
            Frame::Complete { id, hport, msg } => {
                o.u8(kind::COMPLETE)
                    .u64(*id)
                    .u64(*hport)
                    .u32(msg.msg_id)
                    .u64(msg.hport.0)
                    .u32(msg.error);
                o.0.extend_from_slice(&msg.user_name);
                o.0.extend_from_slice(&msg.domain);
                &mut o
            }
            Frame::Defect { hport, what } => o.u8(kind::DEFECT).u64(*hport).text(what),
            Frame::Begin {
                id,
                hport,
                send_size,
                recv_size,
            } => o
                .u8(kind::BEGIN)
                .u64(*id)
                .u64(*hport)
                .u32(*send_size)
                .u32(*recv_size),
            Frame::End { id, hport } => o.u8(kind::END).u64(*id).u64(*hport),
            Frame::Reply { id, code } => o.u8(kind::REPLY).u64(*id).u32(*code),
            Frame::Info {
                id,
                code,
                last_error,
                bytes_received,
                device,
            } => o
                .u8(kind::INFO)
                .u64(*id)
                .u32(*code)
                .u32(*last_error)
                .u32(*bytes_received)
                .text(device),
            Frame::ReceiveDone {
                id,
                last_error,
                data,
            } => o
                .u8(kind::RECEIVE_DONE)
                .u64(*id)
                .u32(*last_error)
                .bytes(data, MAX_DATA),
        };
        let body = (o.0.len() - 4) as u32;
        o.0[..4].copy_from_slice(&body.to_le_bytes());
        o.0
    }

    /// Parses one frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, ProtocolError> {
        if body.is_empty() || body.len() > MAX_BODY {
            return Err(ProtocolError::BadLength(body.len()));
        }
        let mut r = In(body);
        let k = r.u8("kind")?;
        let f = match k {
            kind::READY => Frame::Ready {
                name: r.text("name")?,
            },
            kind::LOAD_FAILED => Frame::LoadFailed {
                reason: r.text("reason")?,
            },
            kind::RETURNED => Frame::Returned {
                id: r.u64("id")?,
                code: r.u32("code")?,
            },
            kind::SEND => Frame::Send {
                id: r.u64("id")?,
                hport: r.u64("hport")?,
                data: r.bytes("data", MAX_DATA)?.to_vec(),
            },
            kind::RECEIVE => Frame::Receive {
                id: r.u64("id")?,
                hport: r.u64("hport")?,
                room: r.u32("room")?,
                timeout: r.u32("timeout")?,
            },
            kind::GET_INFO => Frame::GetInfo {
                id: r.u64("id")?,
                hport: r.u64("hport")?,
            },
            kind::COMPLETE => {
                let id = r.u64("id")?;
                let hport = r.u64("hport")?;
                let mut msg = SecurityMessage::zeroed(HPort(0));
                msg.msg_id = r.u32("dwMsgId")?;
                msg.hport = HPort(r.u64("hPort")?);
                msg.error = r.u32("dwError")?;
                msg.user_name
                    .copy_from_slice(r.take(UNLEN + 1, "UserName")?);
                msg.domain.copy_from_slice(r.take(DNLEN + 1, "Domain")?);
                Frame::Complete {
                    id,
                    hport,
                    msg: Box::new(msg),
                }
            }
            kind::DEFECT => Frame::Defect {
                hport: r.u64("hport")?,
                what: r.text("what")?,
            },
            kind::BEGIN => Frame::Begin {
                id: r.u64("id")?,
                hport: r.u64("hport")?,
                send_size: r.u32("send_size")?,
                recv_size: r.u32("recv_size")?,
            },
            kind::END => Frame::End {
                id: r.u64("id")?,
                hport: r.u64("hport")?,
            },
            kind::REPLY => Frame::Reply {
                id: r.u64("id")?,
                code: r.u32("code")?,
            },
            kind::INFO => Frame::Info {
                id: r.u64("id")?,
                code: r.u32("code")?,
                last_error: r.u32("last_error")?,
                bytes_received: r.u32("bytes_received")?,
                device: r.text("device")?,
            },
            kind::RECEIVE_DONE => Frame::ReceiveDone {
                id: r.u64("id")?,
                last_error: r.u32("last_error")?,
                data: r.bytes("data", MAX_DATA)?.to_vec(),
            },
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(ProtocolError::Trailing(r.0.len()));
        }
        Ok(f)
    }

    /// Writes the frame.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }
}

/// Reads one frame: [`ProtocolError::Closed`] at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, ProtocolError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(ProtocolError::Closed),
            Ok(0) => return Err(ProtocolError::Truncated("length prefix")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 || n > MAX_BODY {
        return Err(ProtocolError::BadLength(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ProtocolError::Truncated("body")
        } else {
            ProtocolError::Io(e)
        }
    })?;
    Frame::decode(&body)
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Truncated(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], ProtocolError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(ProtocolError::TooLong(what));
        }
        self.take(n, what)
    }
    fn text(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let b = self.bytes(what, MAX_TEXT)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtocolError::NotUtf8(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Ready {
                name: "tokencard".into(),
            },
            Frame::LoadFailed {
                reason: "no such file".into(),
            },
            Frame::Returned { id: 1, code: 0 },
            Frame::Send {
                id: 2,
                hport: 0x100001,
                data: b"Name: ".to_vec(),
            },
            Frame::Receive {
                id: 3,
                hport: 9,
                room: 32,
                timeout: 60,
            },
            Frame::GetInfo { id: 4, hport: 9 },
            Frame::Complete {
                id: 5,
                hport: 9,
                msg: Box::new(SecurityMessage::success(HPort(9), "alice", "LAB").unwrap()),
            },
            Frame::Defect {
                hport: 9,
                what: "RasSecurityDialogComplete(NULL)".into(),
            },
            Frame::Defect {
                hport: 0,
                what: String::new(),
            },
            Frame::Begin {
                id: 6,
                hport: 9,
                send_size: 1024,
                recv_size: 1024,
            },
            Frame::End { id: 7, hport: 9 },
            Frame::Reply { id: 8, code: 600 },
            Frame::Info {
                id: 9,
                code: 0,
                last_error: 638,
                bytes_received: 0,
                device: "tcp 127.0.0.1:1".into(),
            },
            Frame::ReceiveDone {
                id: 3,
                last_error: 0,
                data: b"alice\r".to_vec(),
            },
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for f in samples() {
            let wire = f.encode();
            let got = read_frame(&mut &wire[..]).unwrap();
            assert_eq!(got, f);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused_without_panic() {
        for f in samples() {
            let wire = f.encode();
            let body = &wire[4..];
            for n in 0..body.len() {
                assert!(Frame::decode(&body[..n]).is_err(), "{f:?} cut at {n}");
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert!(matches!(
                Frame::decode(&longer),
                Err(ProtocolError::Trailing(1))
            ));
        }
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 0][..]),
            Err(ProtocolError::BadLength(0))
        ));
        let huge = ((MAX_BODY + 1) as u32).to_le_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(ProtocolError::BadLength(_))
        ));
        assert!(matches!(
            read_frame(&mut &[][..]),
            Err(ProtocolError::Closed)
        ));
        // A data length past MAX_DATA.
        let mut body = vec![kind::SEND];
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&((MAX_DATA + 1) as u32).to_le_bytes());
        assert!(matches!(
            Frame::decode(&body),
            Err(ProtocolError::TooLong("data"))
        ));
        assert!(matches!(
            Frame::decode(&[99]),
            Err(ProtocolError::UnknownKind(99))
        ));
        // Oversized data is cut by the encoder, never refused by the parser.
        let big = Frame::Send {
            id: 1,
            hport: 1,
            data: vec![7; MAX_DATA + 10],
        };
        match read_frame(&mut &big.encode()[..]).unwrap() {
            Frame::Send { data, .. } => assert_eq!(data.len(), MAX_DATA),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 12, hole 8: the server's parser refuses a malformed defect
    /// frame clearly, and a long text is bounded.
    #[test]
    fn hole_8_defect_frames_are_bounded_and_checked() {
        let mut body = vec![kind::DEFECT];
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&((MAX_TEXT + 1) as u32).to_le_bytes());
        body.extend(std::iter::repeat_n(b'x', MAX_TEXT + 1));
        assert!(matches!(
            Frame::decode(&body),
            Err(ProtocolError::TooLong("what"))
        ));
        let mut body = vec![kind::DEFECT];
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(
            Frame::decode(&body),
            Err(ProtocolError::NotUtf8("what"))
        ));
        assert!(matches!(
            Frame::decode(&[kind::DEFECT, 1, 2]),
            Err(ProtocolError::Truncated("hport"))
        ));
        let long = Frame::Defect {
            hport: 1,
            what: "é".repeat(MAX_TEXT),
        };
        match read_frame(&mut &long.encode()[..]).unwrap() {
            Frame::Defect { what, .. } => assert!(what.len() <= MAX_TEXT && !what.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
