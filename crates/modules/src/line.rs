//! The dialog line reader: caller bytes in, completed lines and echo out.
//!
//! Pure (no IO, no tokio). Callers type or script one byte at a time and end
//! an answer with CR alone (chat, Dial-Up Networking), LF, or CR LF (spec
//! section 7), so:
//! - CR, LF and CR LF each end a line. A CR ends it at once: the reader never
//!   waits for the byte after it. An LF that is the very next byte after a CR
//!   is swallowed, even when it arrives in a later chunk (or after the module
//!   has moved on to its next prompt); any other byte cancels that.
//! - Backspace (0x08) and DEL (0x7f) erase the last character (a whole UTF-8
//!   character, at most 4 bytes), Ctrl-U (0x15) erases the line, NUL and every
//!   other control byte below 0x20 are ignored. Bytes from 0x80 up are kept as
//!   they come (UTF-8 is not validated here).
//! - A line holds at most `max` bytes. One byte more yields
//!   [`LineEvent::TooLong`] and the rest of that line is discarded up to its
//!   terminator. The buffer is allocated once with room for `max` bytes and
//!   never grows, so garbage without a newline keeps memory bounded.
//! - Echo is chosen per prompt ([`LineReader::set_echo`]): on, each kept byte
//!   is echoed and an erase echoes `BS SP BS` per character; off, nothing is
//!   echoed. Either way, the end of a line echoes CR LF.
//!
//! [`LineReader::feed`] stops right after the first completed line (or the
//! overflow) and says how many bytes it consumed: the rest belongs to the
//! next prompt, whose echo setting may differ (type-ahead of a password).
//!
//! Everything the reader held is zeroed when a line is handed out, cleared,
//! or the reader is dropped: the lines are passwords.

use zeroize::{Zeroize, Zeroizing};

/// The default longest line: `UNLEN`, the longest user name a verdict holds.
pub const DEFAULT_MAX_LINE: usize = 256;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const BS: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_U: u8 = 0x15;

/// The echo of the end of a line.
pub const ECHO_NEWLINE: &[u8] = b"\r\n";
/// The echo that erases one character on a terminal.
pub const ECHO_ERASE: &[u8] = b"\x08 \x08";

/// What a [`LineReader::feed`] call produced besides echo.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A completed line, without its terminator.
    Line(Zeroizing<Vec<u8>>),
    /// The line ran past the maximum: what was typed of it so far (exactly
    /// `max` bytes). The rest of it, up to its terminator, is discarded.
    TooLong(Zeroizing<Vec<u8>>),
}

/// The result of one [`LineReader::feed`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// How many bytes of the input were consumed. Less than the input's
    /// length only when `event` is `Some`: feed the rest again afterwards.
    pub consumed: usize,
    /// A completed line or an overflow, if one happened.
    pub event: Option<LineEvent>,
}

/// The line reader of one dialog. See the module documentation.
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
    echo: bool,
    /// The previous byte was the CR that ended a line.
    swallow_lf: bool,
    /// Discarding the rest of a line that ran too long.
    discarding: bool,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes: they may be a password.
        f.debug_struct("LineReader")
            .field("len", &self.buf.len())
            .field("max", &self.max)
            .field("echo", &self.echo)
            .field("swallow_lf", &self.swallow_lf)
            .field("discarding", &self.discarding)
            .finish()
    }
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new(DEFAULT_MAX_LINE)
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl LineReader {
    /// A reader for lines of at most `max` bytes (at least 1), echo on.
    pub fn new(max: usize) -> LineReader {
        let max = max.max(1);
        LineReader {
            buf: Vec::with_capacity(max),
            max,
            echo: true,
            swallow_lf: false,
            discarding: false,
        }
    }

    /// Turns echo on or off, from the next byte fed.
    pub fn set_echo(&mut self, on: bool) {
        self.echo = on;
    }

    /// Whether typed bytes are echoed.
    pub fn echo(&self) -> bool {
        self.echo
    }

    /// The longest line, in bytes.
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Bytes of the line being typed.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// The room held for the line being typed: never more than allocated at
    /// creation (`max` bytes, rounded up by the allocator).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets (and zeroes) the line being typed, for example when the
    /// module prints a new prompt. A pending CR-LF swallow is kept.
    pub fn clear(&mut self) {
        self.buf.zeroize();
        self.discarding = false;
    }

    /// Takes bytes from `input` until a line completes or overflows, or the
    /// input runs out; appends what to echo to `echo` (at most
    /// `4 * consumed + 3 * max` bytes: each kept byte once, each erased
    /// character `BS SP BS`).
    pub fn feed(&mut self, input: &[u8], echo: &mut Vec<u8>) -> Fed {
        for (i, &b) in input.iter().enumerate() {
            if std::mem::take(&mut self.swallow_lf) && b == LF {
                continue;
            }
            if let Some(event) = self.byte(b, echo) {
                return Fed {
                    consumed: i + 1,
                    event: Some(event),
                };
            }
        }
        Fed {
            consumed: input.len(),
            event: None,
        }
    }

    fn byte(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<LineEvent> {
        match b {
            CR | LF => {
                self.swallow_lf = b == CR;
                if self.discarding {
                    self.discarding = false;
                    return None;
                }
                echo.extend_from_slice(ECHO_NEWLINE);
                Some(LineEvent::Line(self.take()))
            }
            _ if self.discarding => None,
            BS | DEL => {
                if self.erase_char() && self.echo {
                    echo.extend_from_slice(ECHO_ERASE);
                }
                None
            }
            CTRL_U => {
                while self.erase_char() {
                    if self.echo {
                        echo.extend_from_slice(ECHO_ERASE);
                    }
                }
                None
            }
            0x00..=0x1f => None,
            _ => {
                if self.buf.len() >= self.max {
                    self.discarding = true;
                    return Some(LineEvent::TooLong(self.take()));
                }
                self.buf.push(b);
                if self.echo {
                    echo.push(b);
                }
                None
            }
        }
    }

    /// Erases the last character; false when the line was empty.
    fn erase_char(&mut self) -> bool {
        let Some(last) = self.buf.pop() else {
            return false;
        };
        // A UTF-8 continuation byte (10xx_xxxx): erase back to the lead
        // byte, at most 4 bytes in all, so malformed input cannot make one
        // erase swallow the whole line.
        let mut cur = last;
        let mut erased = 1;
        while cur & 0xc0 == 0x80 && erased < 4 {
            match self.buf.last() {
                Some(&prev) if prev >= 0x80 => {
                    cur = prev;
                    self.buf.pop();
                    erased += 1;
                }
                _ => break,
            }
        }
        true
    }

    fn take(&mut self) -> Zeroizing<Vec<u8>> {
        let line = Zeroizing::new(self.buf.clone());
        // `zeroize` on a Vec wipes its bytes and empties it, keeping the
        // allocation.
        self.buf.zeroize();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(r: &mut LineReader, mut input: &[u8]) -> (Vec<LineEvent>, Vec<u8>) {
        let mut events = Vec::new();
        let mut echo = Vec::new();
        while !input.is_empty() {
            let fed = r.feed(input, &mut echo);
            assert!(fed.consumed <= input.len());
            assert!(fed.consumed > 0);
            input = &input[fed.consumed..];
            events.extend(fed.event);
        }
        (events, echo)
    }

    fn line(s: &[u8]) -> LineEvent {
        LineEvent::Line(Zeroizing::new(s.to_vec()))
    }

    #[test]
    fn cr_ends_a_line_at_once() {
        let mut r = LineReader::new(16);
        let mut echo = Vec::new();
        let fed = r.feed(b"alice\r", &mut echo);
        assert_eq!(fed.consumed, 6);
        assert_eq!(fed.event, Some(line(b"alice")));
        assert_eq!(echo, b"alice\r\n");
    }

    #[test]
    fn lf_after_cr_is_swallowed_even_in_a_later_chunk() {
        let mut r = LineReader::new(16);
        let (ev, _) = feed_all(&mut r, b"a\r");
        assert_eq!(ev, vec![line(b"a")]);
        let (ev, _) = feed_all(&mut r, b"\nb\n");
        assert_eq!(ev, vec![line(b"b")]);
    }

    #[test]
    fn lf_swallow_applies_only_to_the_very_next_byte() {
        let mut r = LineReader::new(16);
        let (ev, _) = feed_all(&mut r, b"a\rx\n\n");
        assert_eq!(ev, vec![line(b"a"), line(b"x"), line(b"")]);
        // CR CR: two lines, the second empty.
        let (ev, _) = feed_all(&mut r, b"\r\r\n");
        assert_eq!(ev, vec![line(b""), line(b"")]);
    }

    #[test]
    fn stops_after_each_line_so_echo_can_change() {
        let mut r = LineReader::new(16);
        let mut echo = Vec::new();
        let input = b"bob\rsecret\r";
        let fed = r.feed(input, &mut echo);
        assert_eq!(fed.consumed, 4);
        r.set_echo(false);
        let fed2 = r.feed(&input[4..], &mut echo);
        assert_eq!(fed2.event, Some(line(b"secret")));
        assert_eq!(echo, b"bob\r\n\r\n");
    }

    #[test]
    fn backspace_and_del_erase_with_echo() {
        let mut r = LineReader::new(16);
        let (ev, echo) = feed_all(&mut r, b"abx\x08c\x7f\x7fd\r");
        assert_eq!(ev, vec![line(b"ad")]);
        assert_eq!(echo, b"abx\x08 \x08c\x08 \x08\x08 \x08d\r\n");
        // Erasing an empty line echoes nothing.
        let (ev, echo) = feed_all(&mut r, b"\x08\x08z\n");
        assert_eq!(ev, vec![line(b"z")]);
        assert_eq!(echo, b"z\r\n");
    }

    #[test]
    fn backspace_erases_a_whole_utf8_char() {
        let mut r = LineReader::new(32);
        let s = "aé€😀";
        let mut input = s.as_bytes().to_vec();
        input.extend_from_slice(b"\x08\x08\x08\r");
        let (ev, _) = feed_all(&mut r, &input);
        assert_eq!(ev, vec![line(b"a")]);
    }

    #[test]
    fn ctrl_u_erases_the_line() {
        let mut r = LineReader::new(16);
        let (ev, echo) = feed_all(&mut r, b"ab\x15c\r");
        assert_eq!(ev, vec![line(b"c")]);
        assert_eq!(echo, b"ab\x08 \x08\x08 \x08c\r\n");
    }

    #[test]
    fn echo_off_echoes_only_the_newline() {
        let mut r = LineReader::new(16);
        r.set_echo(false);
        let (ev, echo) = feed_all(&mut r, b"pw\x08x\r\n");
        assert_eq!(ev, vec![line(b"px")]);
        assert_eq!(echo, b"\r\n");
    }

    #[test]
    fn nul_and_control_bytes_are_ignored() {
        let mut r = LineReader::new(16);
        let (ev, echo) = feed_all(&mut r, b"\0a\x01\x1b\tb\x07\r");
        assert_eq!(ev, vec![line(b"ab")]);
        assert_eq!(echo, b"ab\r\n");
    }

    #[test]
    fn too_long_reports_once_then_discards_to_the_terminator() {
        let mut r = LineReader::new(4);
        let (ev, echo) = feed_all(&mut r, b"abcdefgh\r\nok\r");
        assert_eq!(
            ev,
            vec![
                LineEvent::TooLong(Zeroizing::new(b"abcd".to_vec())),
                line(b"ok")
            ]
        );
        assert_eq!(echo, b"abcdok\r\n");
    }

    #[test]
    fn exactly_max_is_fine() {
        let mut r = LineReader::new(4);
        let (ev, _) = feed_all(&mut r, b"abcd\n");
        assert_eq!(ev, vec![line(b"abcd")]);
    }

    #[test]
    fn a_mebibyte_of_garbage_keeps_memory_bounded() {
        let mut r = LineReader::new(DEFAULT_MAX_LINE);
        let cap = r.capacity();
        let garbage: Vec<u8> = (0..1 << 20).map(|i| b'!' + (i % 90) as u8).collect();
        let mut echo = Vec::new();
        let mut events = 0;
        for chunk in garbage.chunks(1000) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let fed = r.feed(rest, &mut echo);
                rest = &rest[fed.consumed..];
                events += usize::from(fed.event.is_some());
            }
            echo.clear();
            assert!(r.pending_len() <= DEFAULT_MAX_LINE);
            assert_eq!(r.capacity(), cap, "the buffer never grows");
        }
        assert_eq!(events, 1, "one TooLong, then discarding");
    }

    #[test]
    fn clear_forgets_the_partial_line() {
        let mut r = LineReader::new(8);
        let (ev, _) = feed_all(&mut r, b"abc");
        assert!(ev.is_empty());
        assert_eq!(r.pending_len(), 3);
        r.clear();
        let (ev, _) = feed_all(&mut r, b"d\r");
        assert_eq!(ev, vec![line(b"d")]);
    }
}
