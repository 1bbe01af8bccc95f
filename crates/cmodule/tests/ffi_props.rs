//! Property test: the host functions called with arbitrary handles,
//! pointers (inside, around and outside the real Begin buffers, and NULL)
//! and lengths return the right code and only ever write inside the
//! checked range. Run under valgrind to also see that nothing is read or
//! written out of bounds:
//!
//! ```text
//! cargo test -p cmodule --test ffi_props --no-run
//! PROPTEST_CASES=64 valgrind --error-exitcode=99 --leak-check=no \
//!     $CARGO_TARGET_DIR/debug/deps/ffi_props-<hash> --test-threads=1
//! ```
#![allow(unsafe_code)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cmodule::CModule;
use cmodule::abi::{Hport, RasSecurityInfoC};
use cmodule::host::{RasSecurityDialogGetInfo, RasSecurityDialogReceive, RasSecurityDialogSend};
use common::*;
use proptest::prelude::*;
use securityhost::consts::*;
use securityhost::*;

struct Fixture {
    _dir: tempfile::TempDir,
    port: Arc<Port>,
    send: (usize, usize),
    recv: (usize, usize),
    efd: i32,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let m = CModule::load(&build_module(
            dir.path(),
            "crates/cmodule/tests/modules/probe.c",
        ))
        .unwrap();
        let cfg = Config {
            send_buffer_size: 48,
            recv_buffer_size: 40,
            transmit_max: usize::MAX / 2,
            ..Config::default()
        };
        let port = Port::new(
            table().allocate(),
            cfg.clone(),
            "prop",
            Arc::new(SystemClock),
            Box::new(|| {}),
        );
        table().insert(&port);
        let code = m.begin(BeginArgs {
            hport: port.hport(),
            send_buffer_size: cfg.send_buffer_size,
            recv_buffer_size: cfg.recv_buffer_size,
            host: port.host(),
        });
        assert_eq!(code, NO_ERROR);
        port.with(|tx, now| tx.begin_returned(code, now));
        let words: Vec<usize> = port
            .with(|tx, _| tx.poll_transmit())
            .unwrap()
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()) as usize)
            .collect();
        // SAFETY: eventfd(2) with valid flags.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0);
        // The module is leaked with the fixture: its buffers live as long
        // as the test process.
        std::mem::forget(m);
        Fixture {
            _dir: dir,
            port,
            send: (words[0], words[1]),
            recv: (words[2], words[3]),
            efd,
        }
    })
}

#[derive(Clone, Debug)]
enum H {
    Real,
    Stale,
    Any(u64),
}

fn handle(h: &H, f: &Fixture) -> Hport {
    match h {
        H::Real => f.port.hport().0 as usize as Hport,
        H::Stale => 0x7777_0000usize as Hport,
        H::Any(v) => *v as usize as Hport,
    }
}

#[derive(Clone, Debug)]
enum P {
    Null,
    /// base + offset, offset from -64 to size + 64.
    Near(i64),
    Far(u64),
}

fn pointer(p: &P, (base, _): (usize, usize)) -> usize {
    match p {
        P::Null => 0,
        P::Near(off) => base.wrapping_add(*off as usize),
        P::Far(v) => *v as usize,
    }
}

fn expected(h: &H, ptr: usize, (base, size): (usize, usize), len: usize, zero_is_87: bool) -> u32 {
    if !matches!(h, H::Real) {
        return ERROR_INVALID_PORT_HANDLE;
    }
    if ptr == 0 || ptr < base || ptr - base >= size || (zero_is_87 && len == 0) {
        return ERROR_INVALID_PARAMETER;
    }
    if len > size - (ptr - base) {
        return ERROR_BUFFER_TOO_SMALL;
    }
    PENDING
}

fn arb_h() -> impl Strategy<Value = H> {
    prop_oneof![4 => Just(H::Real), 1 => Just(H::Stale), 1 => any::<u64>().prop_map(H::Any)]
}

fn arb_p() -> impl Strategy<Value = P> {
    prop_oneof![1 => Just(P::Null), 6 => (-64i64..120).prop_map(P::Near), 1 => any::<u64>().prop_map(P::Far)]
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

fn drain_event(efd: i32) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
    let n = unsafe { libc::read(efd, (&raw mut v).cast(), 8) };
    if n == 8 { v } else { 0 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn send_checks_every_pointer_and_length(h in arb_h(), p in arb_p(), len in prop_oneof![0u16..80, any::<u16>()]) {
        let f = fixture();
        let ptr = pointer(&p, f.send);
        let want = expected(&h, ptr, f.send, usize::from(len), false);
        if want == PENDING {
            // The "module" writes its text first, through the valid range.
            let tag = SERIAL.fetch_add(1, Ordering::Relaxed) as u8;
            for i in 0..usize::from(len) {
                // SAFETY: inside the send buffer (checked by `expected`).
                unsafe { *((ptr + i) as *mut u8) = tag.wrapping_add(i as u8) };
            }
            // SAFETY: the arguments are what a module could pass.
            let got = unsafe { RasSecurityDialogSend(handle(&h, f), ptr as *mut u8, len) };
            prop_assert_eq!(got, PENDING);
            let sent = f.port.with(|tx, _| tx.poll_transmit()).unwrap_or_default();
            let want_bytes: Vec<u8> = (0..usize::from(len)).map(|i| tag.wrapping_add(i as u8)).collect();
            prop_assert_eq!(sent, want_bytes);
        } else {
            // SAFETY: as above; the host must refuse without touching memory.
            let got = unsafe { RasSecurityDialogSend(handle(&h, f), ptr as *mut u8, len) };
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn receive_writes_only_inside_the_checked_range(h in arb_h(), p in arb_p(), room in 0u16..100, input in proptest::collection::vec(any::<u8>(), 1..120)) {
        let f = fixture();
        let ptr = pointer(&p, f.recv);
        let want = expected(&h, ptr, f.recv, usize::from(room), true);
        // Fill the whole receive buffer with a marker.
        let (base, size) = f.recv;
        for i in 0..size {
            // SAFETY: inside the receive buffer.
            unsafe { *((base + i) as *mut u8) = 0xEE };
        }
        let mut len: u16 = room;
        // SAFETY: `len` is a live WORD that outlives the completion (the
        // input below completes it before this scope ends).
        let got = unsafe { RasSecurityDialogReceive(handle(&h, f), ptr as *mut u8, &mut len, 0, f.efd) };
        prop_assert_eq!(got, want);
        if got == PENDING {
            f.port.with(|tx, _| {
                let _ = tx.take_backlog();
                tx.caller_input(&input)
            });
            prop_assert_eq!(drain_event(f.efd), 1);
            let n = usize::from(room).min(input.len());
            prop_assert_eq!(usize::from(len), n);
            let off = ptr - base;
            for i in 0..size {
                // SAFETY: inside the receive buffer.
                let b = unsafe { *((base + i) as *const u8) };
                if i >= off && i < off + n {
                    prop_assert_eq!(b, input[i - off]);
                } else {
                    prop_assert_eq!(b, 0xEE, "byte {} outside the range was written", i);
                }
            }
            f.port.with(|tx, _| { let _ = tx.take_backlog(); });
        } else {
            prop_assert_eq!(len, room, "length written on a refused Receive");
            prop_assert_eq!(drain_event(f.efd), 0);
        }
    }

    #[test]
    fn get_info_and_null_pointers(h in arb_h(), null in any::<bool>()) {
        let f = fixture();
        let mut info = RasSecurityInfoC { last_error: 1, bytes_received: 1, device_name: [1; 129] };
        let p = if null { std::ptr::null_mut() } else { &raw mut info };
        // SAFETY: NULL or a live RAS_SECURITY_INFO.
        let got = unsafe { RasSecurityDialogGetInfo(handle(&h, f), p) };
        let want = match (&h, null) {
            (H::Real, false) => NO_ERROR,
            (H::Real, true) => ERROR_INVALID_PARAMETER,
            _ => ERROR_INVALID_PORT_HANDLE,
        };
        prop_assert_eq!(got, want);
        if got == NO_ERROR {
            prop_assert_eq!(&info.device_name[..5], &[b'p' as _, b'r' as _, b'o' as _, b'p' as _, 0][..]);
        }
    }
}
