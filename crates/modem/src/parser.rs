//! Incremental parser of Hayes result codes.
//!
//! Lines end with CR and/or LF; empty lines are skipped. A line longer than
//! [`MAX_LINE`] is discarded up to its terminator (the buffer never grows past
//! that bound). Lines that start with `AT` (any case) are the echo of our own
//! commands and are dropped. Numeric result codes (`ATV0`) and verbose ones
//! (`ATV1`) are both recognised; anything else is reported as
//! [`Response::Other`] so the caller can log it.

/// Longest response line kept, in bytes; longer lines are discarded.
pub const MAX_LINE: usize = 256;

/// The details of a `CONNECT` result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectInfo {
    /// Line speed in bit/s, if the modem reported one (`CONNECT 33600`).
    pub speed: Option<u32>,
    /// Protocol suffix after the first `/`, e.g. `V42` or `ARQ/V90`.
    pub protocol: Option<String>,
}

/// One result line from the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `OK` / `0`.
    Ok,
    /// `CONNECT [speed[/protocol...]]` / `1` (and the legacy numeric speeds).
    Connect(ConnectInfo),
    /// `RING` / `2`.
    Ring,
    /// `NO CARRIER` / `3`.
    NoCarrier,
    /// `ERROR` / `4`.
    Error,
    /// `NO DIALTONE` (also `NO DIAL TONE`) / `6`.
    NoDialtone,
    /// `BUSY` / `7`.
    Busy,
    /// `NO ANSWER` / `8`.
    NoAnswer,
    /// Any other non-empty line (informational text, garbage), lossily
    /// decoded and at most [`MAX_LINE`] bytes long.
    Other(String),
}

/// Incremental, bounded line parser. Feed it bytes; it yields responses.
#[derive(Debug, Default, Clone)]
pub struct ResponseParser {
    buf: Vec<u8>,
    overflow: bool,
}

impl ResponseParser {
    /// A parser with an empty buffer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any partial line (e.g. after leaving data mode).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflow = false;
    }

    /// Bytes of the current partial line held (always `<= MAX_LINE`).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feed one byte; returns a response when it completes a line.
    pub fn push(&mut self, byte: u8) -> Option<Response> {
        if byte == b'\r' || byte == b'\n' {
            let overflowed = std::mem::replace(&mut self.overflow, false);
            let line = std::mem::take(&mut self.buf);
            if overflowed {
                return None;
            }
            return parse_line(&line);
        }
        if byte == 0 || self.overflow {
            return None;
        }
        if self.buf.len() >= MAX_LINE {
            self.buf.clear();
            self.overflow = true;
            return None;
        }
        self.buf.push(byte);
        None
    }

    /// Feed a chunk; returns every response it completes, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Response> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }
}

/// Parse one complete line (without terminator). `None` for empty lines and
/// for the echo of our own `AT` commands.
#[must_use]
pub fn parse_line(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    if line.is_empty() {
        return None;
    }
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("AT") {
        return None;
    }
    let r = match upper.as_str() {
        "OK" | "0" => Response::Ok,
        "CONNECT" | "1" => Response::Connect(ConnectInfo::default()),
        "RING" | "2" => Response::Ring,
        "NO CARRIER" | "3" => Response::NoCarrier,
        "ERROR" | "4" => Response::Error,
        // Hayes legacy numeric codes 5 and 10: CONNECT 1200 / CONNECT 2400.
        "5" => Response::Connect(ConnectInfo {
            speed: Some(1200),
            protocol: None,
        }),
        "10" => Response::Connect(ConnectInfo {
            speed: Some(2400),
            protocol: None,
        }),
        "NO DIALTONE" | "NO DIAL TONE" | "6" => Response::NoDialtone,
        "BUSY" | "7" => Response::Busy,
        "NO ANSWER" | "8" => Response::NoAnswer,
        _ => {
            if let Some(rest) = upper.strip_prefix("CONNECT ") {
                return Some(parse_connect(
                    line.get(line.len() - rest.len()..).unwrap_or(rest),
                ));
            }
            Response::Other(line.to_owned())
        }
    };
    Some(r)
}

fn parse_connect(rest: &str) -> Response {
    let rest = rest.trim();
    let (speed_part, proto_part) = match rest.split_once('/') {
        Some((s, p)) => (s.trim(), Some(p.trim())),
        None => (rest, None),
    };
    // Some modems append text after the speed ("CONNECT 33600 V42bis").
    let (speed_tok, extra) = match speed_part.split_once(' ') {
        Some((s, e)) => (s, Some(e.trim())),
        None => (speed_part, None),
    };
    let speed = speed_tok.parse::<u32>().ok();
    let mut protocol = String::new();
    if speed.is_none() && !speed_tok.is_empty() {
        protocol.push_str(speed_tok);
    }
    for piece in [extra, proto_part].into_iter().flatten() {
        if piece.is_empty() {
            continue;
        }
        if !protocol.is_empty() {
            protocol.push('/');
        }
        protocol.push_str(piece);
    }
    Response::Connect(ConnectInfo {
        speed,
        protocol: (!protocol.is_empty()).then_some(protocol),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(speed: Option<u32>, p: Option<&str>) -> Response {
        Response::Connect(ConnectInfo {
            speed,
            protocol: p.map(str::to_owned),
        })
    }

    #[test]
    fn verbose_and_numeric() {
        let mut p = ResponseParser::new();
        let got = p.feed(b"OK\r\n0\rRING\r\n2\nNO CARRIER\r\n3\r4\rERROR\r\nNO DIALTONE\r6\rBUSY\r7\rNO ANSWER\r8\r1\r");
        assert_eq!(
            got,
            vec![
                Response::Ok,
                Response::Ok,
                Response::Ring,
                Response::Ring,
                Response::NoCarrier,
                Response::NoCarrier,
                Response::Error,
                Response::Error,
                Response::NoDialtone,
                Response::NoDialtone,
                Response::Busy,
                Response::Busy,
                Response::NoAnswer,
                Response::NoAnswer,
                c(None, None),
            ]
        );
    }

    #[test]
    fn connect_variants() {
        let mut p = ResponseParser::new();
        let got = p.feed(b"CONNECT 33600/V42\r\nCONNECT 115200/ARQ/V90\r\nconnect 2400\r\nCONNECT 28800 V42BIS\r\nCONNECT FAST\r\n");
        assert_eq!(
            got,
            vec![
                c(Some(33600), Some("V42")),
                c(Some(115_200), Some("ARQ/V90")),
                c(Some(2400), None),
                c(Some(28800), Some("V42BIS")),
                c(None, Some("FAST")),
            ]
        );
    }

    #[test]
    fn echo_empty_and_split_lines() {
        let mut p = ResponseParser::new();
        assert!(p.feed(b"ATZ\r\r\nO").is_empty());
        assert_eq!(p.feed(b"K\r\n"), vec![Response::Ok]);
        assert_eq!(p.feed(b"at&c1\r\n\r\n\n"), vec![]);
    }

    #[test]
    fn long_line_discarded_then_recovers() {
        let mut p = ResponseParser::new();
        let long = vec![b'x'; MAX_LINE * 3];
        assert!(p.feed(&long).is_empty());
        assert!(p.buffered() <= MAX_LINE);
        assert!(
            p.feed(b"OK\r").is_empty(),
            "tail of the long line is dropped"
        );
        assert_eq!(p.feed(b"OK\r"), vec![Response::Ok]);
    }

    #[test]
    fn garbage_is_other() {
        let mut p = ResponseParser::new();
        assert_eq!(
            p.feed(b"\xff\xfeRING\r"),
            vec![Response::Other("\u{fffd}\u{fffd}RING".into())]
        );
    }
}
