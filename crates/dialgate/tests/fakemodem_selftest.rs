//! The fake modem (tests/fakemodem) against raw AT commands and against the
//! real sans-IO `modem::Answerer`, driven by a small blocking loop here.

mod fakemodem;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use fakemodem::{FakeModem, FakeModemLines, FakeModemOptions};
use modem::{Answerer, Config, Event, HangUpMethod, InitFailure, ModemLines, State, apply_action};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Upper bound of every wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

fn open_tty(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .unwrap()
}

/// Wait up to `d` for `f` to be readable.
fn wait_readable(f: &File, d: Duration) -> bool {
    let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

fn write_all(f: &mut File, mut bytes: &[u8]) {
    let end = Instant::now() + LIMIT;
    while !bytes.is_empty() {
        match f.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < end, "write stuck");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Read everything that arrives within `d`.
fn read_for(f: &mut File, d: Duration) -> Vec<u8> {
    let end = Instant::now() + d;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_readable(f, left) {
            return got;
        }
        if let Ok(n) = f.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// Read until exactly `want.len()` bytes came (or `LIMIT`), then wait a
/// little for stray extra bytes, and compare.
fn expect_bytes(f: &mut File, want: &[u8]) {
    let end = Instant::now() + LIMIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want.len() && Instant::now() < end {
        if wait_readable(f, Duration::from_millis(50))
            && let Ok(n) = f.read(&mut buf)
        {
            got.extend_from_slice(&buf[..n]);
        }
    }
    got.extend(read_for(f, Duration::from_millis(30)));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "bytes from the pty"
    );
}

/// The server side: the Answerer on the device pty and the lines handle.
struct Server {
    port: File,
    lines: FakeModemLines,
    m: Answerer,
    events: VecDeque<Event>,
    /// Call data read from the port.
    data: Vec<u8>,
    /// Every byte read from the port.
    read_total: usize,
}

fn config() -> Config {
    Config {
        command_timeout: Duration::from_secs(1),
        guard_time: Duration::from_millis(200),
        dtr_drop: Duration::from_millis(50),
        answer_on_ring: 2,
        ..Config::default()
    }
}

impl Server {
    fn start(fake: &FakeModem) -> Server {
        let mut s = Server {
            port: open_tty(&fake.device()),
            lines: fake.lines(),
            m: Answerer::new(config()),
            events: VecDeque::new(),
            data: Vec::new(),
            read_total: 0,
        };
        s.m.start(Instant::now());
        s
    }

    /// One turn of the driver loop (sleeps at most 20 ms).
    fn turn(&mut self) {
        while let Some(a) = self.m.poll_action() {
            apply_action(&mut self.lines, &a).unwrap();
        }
        while let Some(tx) = self.m.poll_transmit() {
            write_all(&mut self.port, &tx);
        }
        let now = Instant::now();
        let wait = self
            .m
            .poll_timeout()
            .map_or(Duration::MAX, |d| d.saturating_duration_since(now))
            .min(Duration::from_millis(20));
        if wait_readable(&self.port, wait) {
            let mut buf = [0u8; 1024];
            if let Ok(n) = self.port.read(&mut buf) {
                self.read_total += n;
                let chunk = &buf[..n];
                let used = if self.m.state() == State::Connected {
                    0
                } else {
                    self.m.handle_input(Instant::now(), chunk)
                };
                self.data.extend_from_slice(&chunk[used..]);
            }
        }
        let now = Instant::now();
        let dcd = self.lines.status().unwrap().dcd;
        self.m.carrier_changed(now, dcd);
        self.m.handle_timeout(now);
        while let Some(e) = self.m.poll_event() {
            self.events.push_back(e);
        }
        while let Some(a) = self.m.poll_action() {
            apply_action(&mut self.lines, &a).unwrap();
        }
    }

    /// The next event (panics after `LIMIT`).
    fn next_event(&mut self) -> Event {
        let end = Instant::now() + LIMIT;
        loop {
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            assert!(Instant::now() < end, "no event within {LIMIT:?}");
            self.turn();
        }
    }

    /// Turn until `done` holds (panics after `LIMIT`).
    fn turn_until(&mut self, what: &str, done: impl Fn(&Server) -> bool) {
        let end = Instant::now() + LIMIT;
        while !done(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            self.turn();
        }
    }

    fn send_data(&mut self, bytes: &[u8]) {
        assert_eq!(self.m.state(), State::Connected);
        write_all(&mut self.port, bytes);
    }
}

fn connected_event(outgoing: bool) -> Event {
    Event::Connected {
        speed: Some(33600),
        protocol: Some("V42".into()),
        outgoing,
    }
}

/// Init, then a call answered on the second RING.
fn answer_call(fake: &FakeModem, server: &mut Server) {
    assert_eq!(server.next_event(), Event::Ready);
    std::thread::scope(|s| {
        let ringer = s.spawn(|| fake.call(Duration::from_millis(300), 5));
        assert_eq!(server.next_event(), Event::Ring { count: 1 });
        assert_eq!(server.next_event(), Event::Ring { count: 2 });
        assert_eq!(server.next_event(), Event::Answering { rings: 2 });
        assert_eq!(server.next_event(), connected_event(false));
        assert_eq!(ringer.join().unwrap(), Some(2));
    });
    assert!(fake.connected());
    assert!(fake.dcd());
}

#[test]
fn raw_commands_echo_results_and_chains() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut dev = open_tty(&fake.device());
    write_all(&mut dev, b"AT\r");
    expect_bytes(&mut dev, b"AT\r\r\nOK\r\n");
    write_all(&mut dev, b"ate0\r");
    expect_bytes(&mut dev, b"ate0\r\r\nOK\r\n");
    write_all(&mut dev, b"ATV1&C1&D2S0=0 X4M0L1&K3\r");
    expect_bytes(&mut dev, b"\r\nOK\r\n");
    write_all(&mut dev, b"ATJ\r");
    expect_bytes(&mut dev, b"\r\nERROR\r\n");
    write_all(&mut dev, b"ATE0X9\r");
    expect_bytes(&mut dev, b"\r\nERROR\r\n");
    write_all(&mut dev, b"ATS7=45S7?\r");
    expect_bytes(&mut dev, b"\r\n045\r\n\r\nOK\r\n");
    write_all(&mut dev, b"ATO\r"); // no carrier to return to
    expect_bytes(&mut dev, b"\r\nERROR\r\n");
    write_all(&mut dev, b"ATV0\r");
    expect_bytes(&mut dev, b"0\r");
    write_all(&mut dev, b"hello\r"); // not a command: ignored
    expect_bytes(&mut dev, b"");
    write_all(&mut dev, b"ATZ\r"); // reset: echo and verbose back on
    expect_bytes(&mut dev, b"\r\nOK\r\n");
    write_all(&mut dev, b"AT\r");
    expect_bytes(&mut dev, b"AT\r\r\nOK\r\n");
    assert_eq!(
        fake.commands(),
        [
            "AT",
            "ate0",
            "ATV1&C1&D2S0=0 X4M0L1&K3",
            "ATJ",
            "ATE0X9",
            "ATS7=45S7?",
            "ATO",
            "ATV0",
            "ATZ",
            "AT"
        ]
    );
    assert!(!fake.connected() && !fake.dcd());
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(1), "drop is quick");
}

#[test]
fn raw_call_escape_guard_times_dtr_and_auto_answer() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut lines = fake.lines();
    let mut dev = open_tty(&fake.device());
    let mut caller = open_tty(&fake.caller_path());
    lines.set_dtr(true).unwrap();
    write_all(&mut dev, b"ATE0S0=2\r");
    expect_bytes(&mut dev, b"ATE0S0=2\r\r\nOK\r\n");
    // Caller bytes with no call up are discarded.
    write_all(&mut caller, b"junk");
    std::thread::sleep(Duration::from_millis(50));
    // Auto-answer on the second ring.
    assert_eq!(fake.call(Duration::from_millis(100), 4), Some(2));
    expect_bytes(
        &mut dev,
        b"\r\nRING\r\n\r\nRING\r\n\r\nCONNECT 33600/V42\r\n",
    );
    let st = lines.status().unwrap();
    assert!(st.dcd && st.dsr && st.cts);
    // Relay, and "+++" inside data (no guard silence) is data.
    write_all(&mut caller, b"from caller");
    expect_bytes(&mut dev, b"from caller");
    write_all(&mut dev, b"a+++b");
    expect_bytes(&mut caller, b"a+++b");
    assert!(!fake.commands().contains(&"+++".to_owned()));
    // Escape: silence, "+++", silence -> OK, online command mode.
    std::thread::sleep(Duration::from_millis(250));
    write_all(&mut dev, b"+++");
    expect_bytes(&mut dev, b"\r\nOK\r\n");
    expect_bytes(&mut caller, b"+++"); // relayed, like a real modem
    assert!(fake.connected());
    write_all(&mut caller, b"lost"); // online command mode: discarded
    std::thread::sleep(Duration::from_millis(50)); // let the fake read it first
    write_all(&mut dev, b"ATO\r");
    expect_bytes(&mut dev, b"\r\nCONNECT 33600/V42\r\n");
    write_all(&mut dev, b"back");
    expect_bytes(&mut caller, b"back");
    // &D2: dropping DTR hangs up.
    lines.set_dtr(false).unwrap();
    expect_bytes(&mut dev, b"\r\nNO CARRIER\r\n");
    assert!(!fake.connected() && !lines.status().unwrap().dcd);
    write_all(&mut caller, b"gone");
    lines.set_dtr(true).unwrap();
    write_all(&mut dev, b"AT\r");
    expect_bytes(&mut dev, b"\r\nOK\r\n");
    assert_eq!(fake.dtr_history(), [true, false, true]);
    assert_eq!(
        fake.commands(),
        ["ATE0S0=2", "+++", "ATO", "AT"],
        "an auto-answered call has no ATA"
    );
}

#[test]
fn answerer_answers_on_second_ring_and_data_flows() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut server = Server::start(&fake);
    answer_call(&fake, &mut server);
    assert_eq!(fake.commands(), ["ATZ", "ATE0V1&C1&D2S0=0", "ATA"]);
    assert!(fake.dtr());

    let mut caller = open_tty(&fake.caller_path());
    write_all(&mut caller, b"hello server\n");
    server.turn_until("caller data", |s| s.data == b"hello server\n");
    server.send_data(b"hello caller\r\n");
    expect_bytes(&mut caller, b"hello caller\r\n");
}

#[test]
fn answerer_sees_carrier_loss() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut server = Server::start(&fake);
    answer_call(&fake, &mut server);
    fake.drop_carrier();
    assert!(!fake.connected() && !fake.dcd());
    assert_eq!(server.next_event(), Event::CarrierLost);
    assert_eq!(
        server.next_event(),
        Event::HungUp {
            method: HangUpMethod::Dtr
        }
    );
    assert_eq!(server.next_event(), Event::Ready);
    assert_eq!(fake.dtr_history(), [true, false, true]);
}

#[test]
fn answerer_hangs_up_with_dtr() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut server = Server::start(&fake);
    answer_call(&fake, &mut server);
    server.m.hang_up(Instant::now());
    assert_eq!(
        server.next_event(),
        Event::HungUp {
            method: HangUpMethod::Dtr
        }
    );
    assert!(!fake.connected());
    assert_eq!(server.next_event(), Event::Ready);
    assert_eq!(fake.dtr_history(), [true, false, true]);
    assert!(!fake.commands().contains(&"+++".to_owned()));
}

#[test]
fn answerer_falls_back_to_escape_when_dtr_is_ignored() {
    let fake = FakeModem::new(FakeModemOptions {
        ignore_dtr: true,
        ..FakeModemOptions::default()
    });
    let mut server = Server::start(&fake);
    answer_call(&fake, &mut server);
    server.m.hang_up(Instant::now());
    assert_eq!(
        server.next_event(),
        Event::HungUp {
            method: HangUpMethod::Escape { confirmed: true }
        }
    );
    assert!(!fake.connected());
    assert_eq!(server.next_event(), Event::Ready);
    let cmds = fake.commands();
    let esc = cmds
        .iter()
        .position(|c| c == "+++")
        .expect("+++ recognised");
    assert_eq!(cmds[esc + 1], "ATH");
    assert_eq!(fake.dtr_history(), [true, false, true]);
}

#[test]
fn answerer_init_fails_when_modem_never_answers() {
    let fake = FakeModem::new(FakeModemOptions {
        never_ok: true,
        ..FakeModemOptions::default()
    });
    let mut server = Server::start(&fake);
    match server.next_event() {
        Event::InitAttemptFailed {
            reason: InitFailure::NoResponse { command },
            attempt: 1,
            ..
        } => assert_eq!(command, "ATZ"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fake.commands(), ["ATZ"]);
    assert_eq!(server.read_total, 0, "a dead modem sends nothing");
    fake.ring();
    assert!(read_for(&mut server.port, Duration::from_millis(100)).is_empty());
}

#[test]
fn answerer_dials_out_for_callback() {
    let fake = FakeModem::new(FakeModemOptions::default());
    let mut server = Server::start(&fake);
    assert_eq!(server.next_event(), Event::Ready);
    let mut caller = open_tty(&fake.caller_path());
    server.m.dial(Instant::now(), "5551234").unwrap();
    assert_eq!(server.next_event(), connected_event(true));
    assert_eq!(fake.dialled(), ["5551234"]);
    assert_eq!(
        fake.commands().last().map(String::as_str),
        Some("ATDT5551234")
    );
    assert!(fake.connected());
    server.send_data(b"called back\r\n");
    expect_bytes(&mut caller, b"called back\r\n");
    write_all(&mut caller, b"thanks");
    server.turn_until("caller data", |s| s.data == b"thanks");
}
