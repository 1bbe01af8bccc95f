//! The byte stream from a (possibly compromised) module worker, read the way
//! the server's reader thread reads its socket: `read_frame` in a loop
//! until the first error, through a reader that returns short reads and
//! `Interrupted` errors as a Unix socket may. Asserted:
//!
//! - no panic, and the frames and the final error do not depend on how the
//!   stream is cut into reads (short reads and EINTR change nothing);
//! - every frame is the exact decoding of the bytes it consumed: encoding
//!   it again gives those bytes back (the parser accepts one spelling per
//!   frame, so nothing can be smuggled in padding or slack);
//! - every field is within its bound (data `MAX_DATA`, text `MAX_TEXT`,
//!   body `MAX_BODY`), so a frame costs the server bounded memory.
//!
//! The existing `cmodule_protocol` target checks decode/encode round trips
//! of single bodies; this one covers the server's streaming read.
#![no_main]

use std::io::{self, Read};

use cmodule::protocol::{Frame, MAX_BODY, MAX_DATA, MAX_TEXT, read_frame};
use libfuzzer_sys::fuzz_target;

/// Hands out at most `cut` bytes per read, and fails every third read
/// with `Interrupted` before giving anything.
struct Choppy<'a> {
    data: &'a [u8],
    cut: usize,
    /// Keep `cut` as it is (else it varies from read to read).
    fixed: bool,
    calls: usize,
    consumed: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.cut.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.consumed += n;
        if !self.fixed {
            self.cut = self.cut * 5 % 13 + 1;
        }
        Ok(n)
    }
}

fn check_bounds(f: &Frame) {
    match f {
        Frame::Ready { name } => assert!(name.len() <= MAX_TEXT),
        Frame::LoadFailed { reason } => assert!(reason.len() <= MAX_TEXT),
        Frame::Defect { what, .. } => assert!(what.len() <= MAX_TEXT),
        Frame::Info { device, .. } => assert!(device.len() <= MAX_TEXT),
        Frame::Send { data, .. } | Frame::ReceiveDone { data, .. } => {
            assert!(data.len() <= MAX_DATA)
        }
        _ => {}
    }
}

/// Reads frames until the first error; returns them with the error's text.
fn read_all(r: &mut Choppy<'_>, whole: &[u8]) -> (Vec<Frame>, String) {
    let mut frames = Vec::new();
    loop {
        let before = r.consumed;
        match read_frame(r) {
            Ok(f) => {
                let used = &whole[before..r.consumed];
                assert!(used.len() <= 4 + MAX_BODY);
                assert_eq!(f.encode(), used, "{f:?} is not the bytes it came from");
                check_bounds(&f);
                frames.push(f);
            }
            Err(e) => return (frames, e.to_string()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    // Whole reads (still interrupted now and then), then short ones.
    let mut whole = Choppy {
        data: stream,
        cut: usize::MAX,
        fixed: true,
        calls: 1,
        consumed: 0,
    };
    let a = read_all(&mut whole, stream);
    let mut choppy = Choppy {
        data: stream,
        cut: usize::from(ctl % 11) + 1,
        fixed: false,
        calls: 0,
        consumed: 0,
    };
    let b = read_all(&mut choppy, stream);
    assert_eq!(
        a, b,
        "the cut of the stream into reads changed what was read"
    );
});
