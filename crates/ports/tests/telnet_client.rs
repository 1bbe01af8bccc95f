//! Debian's `telnet` client, driven by `expect`, against a tiny dialog server
//! built on the telnet port: after `WILL ECHO` the client must not echo what
//! the caller types, so a password the server does not echo never appears.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ports::{Caller, Port, PortConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

/// Fails the calling test unless Debian's `telnet` and `expect` are
/// installed: a test that cannot run fails, it never passes.
fn require_tools() {
    for (tool, package) in [("/usr/bin/telnet", "telnet"), ("/usr/bin/expect", "expect")] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is not installed, so this test cannot run: install the Debian package \
             `{package}` (`bash scripts/test` installs it when run as root)"
        );
    }
}

/// Read one answer ending in CR, LF or CR LF; echo it back if asked.
async fn read_line(caller: &mut Caller, echo: bool) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = caller.stream.read(&mut b).await.unwrap();
        if n == 0 {
            return line;
        }
        match b[0] {
            b'\r' | b'\n' if line.is_empty() => continue, // LF of a previous CR LF
            b'\r' | b'\n' => return line,
            c => {
                line.push(c);
                if echo {
                    caller.stream.write_all(&[c]).await.unwrap();
                }
            }
        }
    }
}

/// Serve one dialog: `Username:` echoed by the server when it negotiated
/// ECHO, `Password:` never echoed.
async fn serve_one(mut port: Port, negotiate_echo: bool) {
    let mut caller = timeout(T, port.accept()).await.unwrap().unwrap();
    let dialog = async {
        caller.stream.write_all(b"Username: ").await.unwrap();
        let user = read_line(&mut caller, negotiate_echo).await;
        caller.stream.write_all(b"\r\nPassword: ").await.unwrap();
        let _pw = read_line(&mut caller, false).await;
        let msg = format!("\r\ngranted {}\r\n", String::from_utf8_lossy(&user));
        caller.stream.write_all(msg.as_bytes()).await.unwrap();
        caller.stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    timeout(T, dialog).await.unwrap();
    let _ = caller.hang_up().await;
}

async fn run_expect(addr: SocketAddr) -> std::process::Output {
    // Exit 0: granted seen and the password never shown; 2: the password was
    // shown (local echo); 3: timeout; 4: connection closed early.
    // (expect treats a braced pattern list written on one line as a single
    // pattern, hence the newlines.)
    let script = format!(
        "set timeout 5
         spawn telnet {} {}
         expect {{
           \"Username:\" {{}}
           timeout {{exit 3}}
           eof {{exit 4}}
         }}
         send \"alice\\r\"
         expect {{
           \"Password:\" {{}}
           timeout {{exit 3}}
           eof {{exit 4}}
         }}
         send \"s3cret\\r\"
         expect {{
           \"s3cret\" {{exit 2}}
           \"granted alice\" {{exit 0}}
           timeout {{exit 3}}
           eof {{exit 4}}
         }}",
        addr.ip(),
        addr.port()
    );
    let child = tokio::process::Command::new("/usr/bin/expect")
        .args(["-c", &script])
        .kill_on_drop(true)
        .output();
    timeout(Duration::from_secs(20), child)
        .await
        .expect("expect timed out")
        .expect("expect failed to run")
}

#[tokio::test]
async fn telnet_client_does_not_echo_the_password() {
    require_tools();
    let port = Port::bind(PortConfig::telnet("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = port.local_addr().unwrap();
    let server = tokio::spawn(serve_one(port, true));
    let out = run_expect(addr).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "expect saw:\n{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("alice"),
        "the server's echo of the name: {shown}"
    );
    timeout(T, server).await.unwrap().unwrap();
}

/// The same client against a raw TCP port (no WILL ECHO): the client echoes
/// locally, so the password shows. This proves the test above can fail.
#[tokio::test]
async fn without_will_echo_the_password_shows() {
    require_tools();
    let port = Port::bind(PortConfig::tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = port.local_addr().unwrap();
    let server = tokio::spawn(serve_one(port, false));
    let out = run_expect(addr).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "expect saw:\n{shown}");
    let _ = timeout(T, server).await;
}
