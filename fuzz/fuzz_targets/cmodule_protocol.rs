//! The server/worker protocol parser of `cmodule`: arbitrary bytes from a
//! (possibly compromised) worker never panic the parser, and every frame it
//! accepts encodes back to a frame that parses to the same value.
#![no_main]

use cmodule::protocol::{Frame, read_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As one frame body.
    if let Ok(f) = Frame::decode(data) {
        let wire = f.encode();
        assert_eq!(read_frame(&mut &wire[..]).ok(), Some(f));
    }
    // As a stream of length-prefixed frames.
    let mut r = data;
    while let Ok(f) = read_frame(&mut r) {
        let wire = f.encode();
        assert_eq!(Frame::decode(&wire[4..]).ok(), Some(f));
    }
});
