//! The pty port with real processes on the slave side.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ports::{Port, PortConfig, PortKind, PtyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

fn open_slave(path: &Path) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .expect("open pty slave")
}

#[tokio::test]
async fn accept_waits_for_the_slave_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("run/pty0");
    let mut port = PtyPort::new(Some(link.clone())).unwrap();
    let first = port.slave_path().unwrap().to_path_buf();
    assert!(first.starts_with("/dev/pts"), "{}", first.display());
    assert_eq!(std::fs::read_link(&link).unwrap(), first);

    // Nobody has opened the slave: accept keeps waiting.
    assert!(
        timeout(Duration::from_millis(300), port.accept())
            .await
            .is_err()
    );

    // A program opens the link: accept returns, and the port re-arms.
    let mut slave = open_slave(&link);
    let mut stream = timeout(T, port.accept()).await.unwrap().unwrap();
    assert_eq!(stream.slave_path(), first);
    let second = port.slave_path().unwrap().to_path_buf();
    assert_ne!(second, first, "re-arm must create a fresh pty");
    assert_eq!(std::fs::read_link(&link).unwrap(), second);

    // Raw slave: bytes pass unchanged both ways (no echo, no CR/NL mapping).
    slave.write_all(b"alice\r\n\x7e\xff\x00").unwrap();
    let mut buf = [0u8; 10];
    timeout(T, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"alice\r\n\x7e\xff\x00");
    stream.write_all(b"Password:\r\n\xff").await.unwrap();
    let mut back = [0u8; 12];
    slave.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"Password:\r\n\xff");

    // The caller hangs up: EOF, not an error.
    drop(slave);
    let mut rest = Vec::new();
    let n = timeout(T, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    let e = stream.write_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);

    // The re-armed pty serves the next caller.
    let mut slave2 = open_slave(&link);
    let s2 = timeout(T, port.accept()).await.unwrap().unwrap();
    assert_eq!(s2.slave_path(), second);
    // The master can leave tokio, e.g. for a child process.
    let mut master = std::fs::File::from(s2.into_fd().unwrap());
    master.write_all(b"bye").unwrap();
    let mut got = [0u8; 3];
    slave2.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"bye");
    drop(port);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed on drop"
    );
}

#[tokio::test]
async fn data_then_close_before_the_poll_is_still_a_call() {
    let mut port = PtyPort::new(None).unwrap();
    let path = port.slave_path().unwrap().to_path_buf();
    {
        let mut s = open_slave(&path);
        s.write_all(b"hi\r").unwrap();
    }
    let mut stream = timeout(T, port.accept()).await.unwrap().unwrap();
    let mut got = Vec::new();
    timeout(T, stream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hi\r");
}

#[tokio::test]
async fn hang_up_closes_the_slave_side() {
    let mut port = Port::bind(PortConfig::pty(None)).await.unwrap();
    assert_eq!(port.kind(), PortKind::Pty);
    let path = port.pty_path().unwrap().to_path_buf();
    let slave = open_slave(&path);
    let caller = timeout(T, port.accept()).await.unwrap().unwrap();
    assert_eq!(caller.device, path.display().to_string());
    assert!(caller.remote.is_none());
    caller.hang_up().await.unwrap();
    // The slave now reads EOF or EIO (hung up), never blocks.
    let r = tokio::task::spawn_blocking(move || {
        let mut slave = slave;
        let mut b = [0u8; 4];
        slave.read(&mut b)
    });
    match timeout(T, r).await.unwrap().unwrap() {
        Ok(0) => {}
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => panic!("slave after hang-up: {other:?}"),
    }
}

#[tokio::test]
async fn pty_group_full_says_busy() {
    let mut port = Port::bind(PortConfig::pty(None).with_max_callers(1))
        .await
        .unwrap();
    let p1 = port.pty_path().unwrap().to_path_buf();
    let _s1 = open_slave(&p1);
    let _first = timeout(T, port.accept()).await.unwrap().unwrap();
    let p2 = port.pty_path().unwrap().to_path_buf();
    assert_ne!(p1, p2);
    let s2 = open_slave(&p2);
    // The second caller reads at once, as a real one would.
    let got = tokio::task::spawn_blocking(move || {
        let mut s2 = s2;
        let mut all = Vec::new();
        let mut b = [0u8; 256];
        loop {
            match s2.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&b[..n]),
            }
        }
        all
    });
    let r = timeout(Duration::from_millis(600), port.accept()).await;
    assert!(r.is_err(), "full group must not hand out a caller");
    let got = timeout(T, got).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&got).contains("busy"), "{got:?}");
}

/// `chat` (Debian `ppp`) on the slave: it answers `Username:` with `alice` and
/// a bare CR, one byte at a time.
#[tokio::test]
async fn chat_dials_in_over_the_pty() {
    let chat = Path::new("/usr/sbin/chat");
    assert!(
        chat.exists(),
        "/usr/sbin/chat is not installed, so this test cannot run: install the Debian \
         package `ppp` (`bash scripts/test` installs it when run as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pty0");
    let mut port = PtyPort::new(Some(link.clone())).unwrap();
    let slave_in = open_slave(&link);
    let slave_out = slave_in.try_clone().unwrap();
    let child = tokio::process::Command::new(chat)
        .args(["-t", "5", "-s", "-v", "Username:", "alice", "granted", ""])
        .stdin(Stdio::from(slave_in))
        .stdout(Stdio::from(slave_out))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = timeout(T, port.accept()).await.unwrap().unwrap();
    stream.write_all(b"Username: ").await.unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r") {
        let n = timeout(T, stream.read(&mut b)).await.unwrap().unwrap();
        assert_ne!(n, 0, "chat hung up early: {line:?}");
        line.push(b[0]);
    }
    assert_eq!(line, b"alice\r");
    stream.write_all(b"\r\ngranted\r\n").await.unwrap();
    let out = timeout(T, child.wait_with_output()).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "chat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // chat closed the slave: EOF on our side.
    let mut rest = Vec::new();
    timeout(T, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
}
