//! Serial lines, on pty slaves: a pty slave is a tty that accepts termios
//! and exclusive mode, but has no modem control lines (and Linux forces it
//! to 8 data bits without parity, so `CSIZE`/`PARENB` are checked by the unit
//! tests in `src/serial.rs` on the termios before it is applied).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use modem::ModemLines;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{
    self, BaudRate, ControlFlags, InputFlags, LocalFlags, OutputFlags, SpecialCharacterIndices,
    Termios,
};
use ports::{FlowControl, Parity, SerialLine, SerialSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(3);

/// A pty pair: the master (non-blocking) stands for the modem, the slave
/// path for the serial device.
struct Pty {
    master: OwnedFd,
    slave: PathBuf,
}

fn pty() -> Pty {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = PathBuf::from(ptsname_r(&master).unwrap());
    let master: OwnedFd = master.into();
    let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).unwrap());
    fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
    Pty { master, slave }
}

/// The slave's termios through a descriptor of our own. Root may open the
/// slave despite `TIOCEXCL`; anyone else gets `EBUSY` and asks the master,
/// which reports the slave's termios on Linux.
fn slave_termios(p: &Pty) -> Termios {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&p.slave)
    {
        Ok(f) => termios::tcgetattr(&f).unwrap(),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
            termios::tcgetattr(&p.master).unwrap()
        }
    }
}

/// Read exactly `n` bytes from the master within [`T`].
fn read_master(master: &OwnedFd, n: usize) -> Vec<u8> {
    let deadline = Instant::now() + T;
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got {out:?}");
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap()) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let want = (n - out.len()).min(buf.len());
        match nix::unistd::read(master, &mut buf[..want]) {
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => panic!("read master: {e}"),
        }
    }
    out
}

fn settings(
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

fn assert_raw(t: &Termios, what: &str) {
    let lf = t.local_flags;
    assert!(
        !lf.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "{what}"
    );
    assert!(!t.output_flags.contains(OutputFlags::OPOST), "{what}");
    assert!(
        !t.input_flags
            .intersects(InputFlags::ICRNL | InputFlags::INLCR | InputFlags::ISTRIP),
        "{what}"
    );
    let cf = t.control_flags;
    assert!(
        cf.contains(ControlFlags::CLOCAL | ControlFlags::CREAD),
        "{what}"
    );
    assert!(!cf.contains(ControlFlags::HUPCL), "{what}");
    assert_eq!(
        t.control_chars[SpecialCharacterIndices::VMIN as usize],
        1,
        "{what}"
    );
    assert_eq!(
        t.control_chars[SpecialCharacterIndices::VTIME as usize],
        0,
        "{what}"
    );
}

#[tokio::test]
async fn open_applies_the_settings() {
    let cases = [
        (
            settings(9_600, 7, Parity::Even, 2, FlowControl::XonXoff),
            BaudRate::B9600,
        ),
        (
            settings(115_200, 8, Parity::None, 1, FlowControl::RtsCts),
            BaudRate::B115200,
        ),
        (
            settings(300, 8, Parity::Odd, 1, FlowControl::None),
            BaudRate::B300,
        ),
    ];
    for (set, baud) in cases {
        let p = pty();
        // Leave the slave cooked, with the opposite flags, to see them reset.
        {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&p.slave)
                .unwrap();
            let mut t = termios::tcgetattr(&f).unwrap();
            t.control_flags |= ControlFlags::HUPCL | ControlFlags::CSTOPB | ControlFlags::CRTSCTS;
            t.control_flags &= !ControlFlags::CLOCAL;
            t.input_flags |= InputFlags::IXON | InputFlags::IXOFF | InputFlags::ICRNL;
            termios::cfsetspeed(&mut t, BaudRate::B38400).unwrap();
            termios::tcsetattr(&f, termios::SetArg::TCSANOW, &t).unwrap();
        }
        let line = SerialLine::open(&p.slave, &set).unwrap();
        assert_eq!(line.path(), p.slave);
        let t = slave_termios(&p);
        let what = set.to_string();
        assert_raw(&t, &what);
        assert_eq!(termios::cfgetospeed(&t), baud, "{what}");
        assert_eq!(termios::cfgetispeed(&t), baud, "{what}");
        let cf = t.control_flags;
        assert_eq!(
            cf.contains(ControlFlags::CSTOPB),
            set.stop_bits == 2,
            "{what}"
        );
        assert_eq!(
            cf.contains(ControlFlags::CRTSCTS),
            set.flow == FlowControl::RtsCts,
            "{what}"
        );
        let xon = set.flow == FlowControl::XonXoff;
        assert_eq!(t.input_flags.contains(InputFlags::IXON), xon, "{what}");
        assert_eq!(t.input_flags.contains(InputFlags::IXOFF), xon, "{what}");
        assert_eq!(
            t.input_flags.contains(InputFlags::INPCK),
            set.parity != Parity::None,
            "{what}"
        );
        drop(line);
    }
}

fn is_in_use(e: &io::Error, path: &Path) -> bool {
    let msg = e.to_string();
    e.kind() == io::ErrorKind::ResourceBusy
        && msg.contains("in use by another program")
        && msg.contains(&path.display().to_string())
}

#[tokio::test]
async fn a_second_open_is_refused_until_the_first_is_dropped() {
    let p = pty();
    let set = SerialSettings::default();
    let first = SerialLine::open(&p.slave, &set).unwrap();
    let err = SerialLine::open(&p.slave, &set).unwrap_err();
    assert!(is_in_use(&err, &p.slave), "{err:?}");
    // Also through another path to the same device (a symlink).
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("modem0");
    std::os::unix::fs::symlink(&p.slave, &link).unwrap();
    let err = SerialLine::open(&link, &set).unwrap_err();
    assert!(is_in_use(&err, &link), "{err:?}");

    drop(first);
    let again = SerialLine::open(&link, &set).unwrap();
    drop(again);
    SerialLine::open(&p.slave, &set).unwrap();
}

#[tokio::test]
async fn a_dup_from_lines_keeps_the_lock() {
    let p = pty();
    let set = SerialSettings::default();
    let first = SerialLine::open(&p.slave, &set).unwrap();
    let lines = first.lines().unwrap();
    drop(first);
    let err = SerialLine::open(&p.slave, &set).unwrap_err();
    assert!(is_in_use(&err, &p.slave), "{err:?}");
    drop(lines);
    SerialLine::open(&p.slave, &set).unwrap();
}

#[tokio::test]
async fn bytes_pass_both_ways_unchanged() {
    let p = pty();
    let set = settings(57_600, 8, Parity::None, 1, FlowControl::None);
    let mut line = SerialLine::open(&p.slave, &set).unwrap();

    let to_line = b"CONNECT 33600\r\n\x00\xff\x7f\x11\x13";
    assert_eq!(
        nix::unistd::write(&p.master, to_line).unwrap(),
        to_line.len()
    );
    let mut got = [0u8; 20];
    timeout(T, line.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, to_line);

    let from_line = b"ATA\r\x00\xfe\n";
    timeout(T, line.write_all(from_line))
        .await
        .unwrap()
        .unwrap();
    timeout(T, line.flush()).await.unwrap().unwrap();
    assert_eq!(read_master(&p.master, from_line.len()), from_line);

    // A large block, while the other side reads concurrently.
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let master = p.master.try_clone().unwrap();
    let n = block.len();
    let reader = std::thread::spawn(move || read_master(&master, n));
    timeout(T, line.write_all(&block)).await.unwrap().unwrap();
    assert_eq!(reader.join().unwrap(), block);

    // Shutdown leaves the line usable.
    timeout(T, line.shutdown()).await.unwrap().unwrap();
    timeout(T, line.write_all(b"x")).await.unwrap().unwrap();
    assert_eq!(read_master(&p.master, 1), b"x");
}

#[tokio::test]
async fn discard_input_drops_buffered_bytes() {
    let p = pty();
    let mut line = SerialLine::open(&p.slave, &SerialSettings::default()).unwrap();
    nix::unistd::write(&p.master, b"OK\r\nRING\r\n").unwrap();
    // Wait until the bytes reached the slave's input queue.
    let mut one = [0u8; 1];
    timeout(T, line.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&one, b"O");
    line.discard_input().unwrap();
    nix::unistd::write(&p.master, b"Z").unwrap();
    timeout(T, line.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&one, b"Z");
}

#[tokio::test]
async fn master_gone_reads_as_eof_and_writes_fail() {
    let p = pty();
    let mut line = SerialLine::open(&p.slave, &SerialSettings::default()).unwrap();
    nix::unistd::write(&p.master, b"bye").unwrap();
    let mut got = [0u8; 3];
    timeout(T, line.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    drop(p.master);
    let mut rest = Vec::new();
    let n = timeout(T, line.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    let err = timeout(T, line.write_all(b"hello"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err:?}");
}

#[tokio::test]
async fn modem_lines_on_a_pty_report_errors() {
    let p = pty();
    let line = SerialLine::open(&p.slave, &SerialSettings::default()).unwrap();
    let mut lines = line.lines().unwrap();
    let err = lines.status().unwrap_err();
    assert!(err.to_string().contains("TIOCMGET"), "{err}");
    assert!(
        err.to_string().contains(&p.slave.display().to_string()),
        "{err}"
    );
    assert!(lines.set_dtr(true).is_err());
    assert!(lines.set_dtr(false).is_err());
    assert!(lines.set_rts(true).is_err());
    assert!(lines.set_rts(false).is_err());
    assert!(format!("{lines:?}").contains("IoctlLines"));
}

#[tokio::test]
async fn invalid_settings_are_refused_with_the_value() {
    let p = pty();
    let bad = [
        (
            settings(12_345, 8, Parity::None, 1, FlowControl::None),
            "12345",
        ),
        (
            settings(9_600, 9, Parity::None, 1, FlowControl::None),
            "data bits 9",
        ),
        (
            settings(9_600, 8, Parity::None, 3, FlowControl::None),
            "stop bits 3",
        ),
    ];
    for (set, needle) in bad {
        let err = SerialLine::open(&p.slave, &set).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.contains(&p.slave.display().to_string()), "{msg}");
    }
    // Nothing was left locked by the refused opens.
    SerialLine::open(&p.slave, &SerialSettings::default()).unwrap();
}

#[tokio::test]
async fn missing_devices_and_plain_files_are_refused() {
    let set = SerialSettings::default();
    let err = SerialLine::open(Path::new("/nonexistent"), &set).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("/nonexistent"), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let file = tempfile::NamedTempFile::new().unwrap();
    let err = SerialLine::open(file.path(), &set).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&file.path().display().to_string()), "{msg}");
    assert!(msg.contains("not a serial device"), "{msg}");
}

#[test]
fn open_outside_a_runtime_is_an_error_not_a_panic() {
    let p = pty();
    let err = SerialLine::open(&p.slave, &SerialSettings::default()).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
