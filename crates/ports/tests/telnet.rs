//! TelnetStream and telnet/TCP ports against peers that speak telnet by hand.

use std::net::SocketAddr;
use std::time::Duration;

use ports::{CallerStream, Port, PortConfig, PortKind, TelnetStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const IAC: u8 = 255;
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;
const NOP: u8 = 241;
const BINARY: u8 = 0;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const T: Duration = Duration::from_secs(5);

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(T, r.read_exact(&mut buf))
        .await
        .expect("timed out reading")
        .expect("read failed");
    buf
}

async fn telnet_pair() -> (Port, ports::Caller, TcpStream) {
    let mut port = Port::bind(PortConfig::telnet(lo()).with_max_callers(4))
        .await
        .unwrap();
    let addr = port.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let client = TcpStream::connect(addr).await.unwrap();
    let caller = timeout(T, port.accept()).await.unwrap().unwrap();
    (port, caller, client)
}

#[tokio::test]
async fn will_echo_goes_first_then_data() {
    let (_port, mut caller, mut client) = telnet_pair().await;
    assert_eq!(caller.kind, PortKind::Telnet);
    assert!(
        caller.device.starts_with("telnet 127.0.0.1:"),
        "{}",
        caller.device
    );
    assert_eq!(
        caller.remote.unwrap().to_string(),
        client.local_addr().unwrap().to_string()
    );
    caller.stream.write_all(b"Username: ").await.unwrap();
    let got = read_n(&mut client, 9 + 10).await;
    assert_eq!(
        got[..9],
        [IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA],
        "negotiation must precede data"
    );
    assert_eq!(&got[9..], b"Username: ");
    if let CallerStream::Telnet(t) = &caller.stream {
        assert!(t.get_ref().nodelay().unwrap(), "TCP_NODELAY must be set");
    } else {
        panic!("telnet port must give a telnet stream");
    }
}

#[tokio::test]
async fn iac_and_nvt_decoding_and_refusals() {
    let (_port, mut caller, mut client) = telnet_pair().await;
    // The peer answers our opening, sends data with escapes and commands,
    // and asks for NAWS (31), which we must refuse.
    let mut msg = vec![IAC, DO, ECHO, IAC, DO, SGA, IAC, WILL, SGA];
    msg.extend_from_slice(b"a\xff\xffb\r\0c");
    msg.extend_from_slice(&[IAC, NOP, IAC, WILL, 31]);
    msg.extend_from_slice(b"d\r\n");
    client.write_all(&msg).await.unwrap();
    let got = read_n(&mut caller.stream, 8).await;
    assert_eq!(got, b"a\xffb\rcd\r\n");
    // Our replies: the opening, then DONT NAWS (flushed from the read path).
    let replies = read_n(&mut client, 12).await;
    assert_eq!(
        replies[..9],
        [IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA]
    );
    assert_eq!(replies[9..], [IAC, DONT, 31]);
    if let CallerStream::Telnet(t) = &caller.stream {
        assert!(t.machine().is_local_enabled(ECHO));
        assert!(t.machine().is_remote_enabled(SGA));
    }
    // Our data: IAC doubled, bare CR as CR NUL, CR LF unchanged.
    caller.stream.write_all(b"\xff\r\r\n").await.unwrap();
    caller.stream.flush().await.unwrap();
    assert_eq!(read_n(&mut client, 6).await, b"\xff\xff\r\0\r\n");
}

#[tokio::test]
async fn binary_negotiation_for_ppp() {
    let (_port, mut caller, mut client) = telnet_pair().await;
    let peer = tokio::spawn(async move {
        let got = read_n(&mut client, 9 + 6).await;
        assert_eq!(got[9..], [IAC, WILL, BINARY, IAC, DO, BINARY]);
        // Send a PPP frame start before agreeing: it must be kept.
        let mut reply = b"early".to_vec();
        reply.extend_from_slice(&[IAC, DO, BINARY, IAC, WILL, BINARY]);
        reply.extend_from_slice(&[0x7e, 0xff, 0xff, 0x7d, 0x23, b'\r', 0]);
        client.write_all(&reply).await.unwrap();
        client
    });
    let binary = caller.stream.prepare_for_ppp(T).await.unwrap();
    assert!(binary);
    let mut client = peer.await.unwrap();
    let got = read_n(&mut caller.stream, 5 + 6).await;
    assert_eq!(&got[..5], b"early");
    // In BINARY, CR NUL is two data bytes.
    assert_eq!(&got[5..], &[0x7e, 0xff, 0x7d, 0x23, b'\r', 0]);
    caller.stream.write_all(b"\r\xff").await.unwrap();
    caller.stream.flush().await.unwrap();
    assert_eq!(read_n(&mut client, 3).await, b"\r\xff\xff");
}

#[tokio::test]
async fn binary_refused_or_unanswered() {
    let (_port, mut caller, mut client) = telnet_pair().await;
    let peer = tokio::spawn(async move {
        let _ = read_n(&mut client, 9 + 6).await;
        client
            .write_all(&[IAC, DONT, BINARY, IAC, WONT, BINARY])
            .await
            .unwrap();
        client
    });
    assert!(!caller.stream.prepare_for_ppp(T).await.unwrap());
    let _client = peer.await.unwrap();

    // A peer that never answers: the wait ends at the timeout.
    let (_port2, mut caller2, _silent) = telnet_pair().await;
    let started = tokio::time::Instant::now();
    let ok = caller2
        .stream
        .prepare_for_ppp(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(!ok);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn connection_cap_says_busy_and_frees_on_hang_up() {
    let mut port = Port::bind(PortConfig::tcp(lo()).with_max_callers(1))
        .await
        .unwrap();
    let addr = port.local_addr().unwrap();
    let _c1 = TcpStream::connect(addr).await.unwrap();
    let first = timeout(T, port.accept()).await.unwrap().unwrap();
    assert_eq!(port.active_callers(), 1);
    assert!(first.device.starts_with("tcp 127.0.0.1:"));

    // A second caller while full: accepted, told busy, hung up.
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::spawn(async move {
        let r = timeout(Duration::from_millis(500), port.accept()).await;
        assert!(r.is_err(), "no caller may be handed out while full");
        port
    });
    let mut busy = Vec::new();
    timeout(T, c2.read_to_end(&mut busy))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&busy).contains("busy"), "{busy:?}");
    let mut port = waiting.await.unwrap();

    // Hang the first caller up: its place is free again.
    first.hang_up().await.unwrap();
    assert_eq!(port.active_callers(), 0);
    let _c3 = TcpStream::connect(addr).await.unwrap();
    let third = timeout(T, port.accept()).await.unwrap().unwrap();
    assert_eq!(port.active_callers(), 1);
    drop(third);
    assert_eq!(port.active_callers(), 0);
}

#[tokio::test]
async fn config_is_validated() {
    assert!(
        Port::bind(PortConfig::tcp(lo()).with_max_callers(0))
            .await
            .is_err()
    );
    let mut c = PortConfig::pty(None);
    c.bind = Some(lo());
    assert!(Port::bind(c).await.is_err());
    let mut c = PortConfig::telnet(lo());
    c.bind = None;
    let e = Port::bind(c).await.unwrap_err();
    assert!(e.to_string().contains("bind address"), "{e}");
}

/// A tiny xorshift generator: deterministic garbage without dependencies.
fn garbage(n: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(n);
    v
}

#[tokio::test]
async fn one_mib_of_garbage_with_bounded_memory() {
    let (_port, mut caller, client) = telnet_pair().await;
    let (mut cr, mut cw) = client.into_split();
    // The peer reads our replies (so nothing blocks) and sends 1 MiB.
    let drain = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = cr.read_to_end(&mut sink).await;
        sink.len()
    });
    let data = garbage(1 << 20, 0x9e37_79b9_7f4a_7c15);
    let sender = tokio::spawn(async move {
        cw.write_all(&data).await.unwrap();
        cw.shutdown().await.unwrap();
    });
    let mut buf = [0u8; 1500];
    let mut total = 0usize;
    let mut max_cap = 0usize;
    loop {
        let n = timeout(T, caller.stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if let CallerStream::Telnet(t) = &caller.stream {
            max_cap = max_cap.max(t.buffered_capacity());
        }
    }
    sender.await.unwrap();
    assert!(total > 0 && total <= 1 << 20);
    assert!(max_cap <= 64 * 1024, "telnet buffers grew to {max_cap}");
    caller.hang_up().await.unwrap();
    let replies = timeout(T, drain).await.unwrap().unwrap();
    assert!(replies >= 9);
}

#[tokio::test]
async fn peer_that_never_reads_cannot_grow_our_buffers() {
    let (_port, mut caller, client) = telnet_pair().await;
    // Shrink the peer's receive buffer is not possible portably; instead send
    // so many refusable requests that the replies exceed any socket buffer.
    let mut flood = Vec::with_capacity(3 << 20);
    for _ in 0..(1 << 20) {
        flood.extend_from_slice(&[IAC, WILL, 31]);
    }
    let flooder = tokio::spawn(async move {
        let mut client = client;
        let _ = client.write_all(&flood).await;
        client // never reads
    });
    let mut buf = [0u8; 512];
    // No data ever arrives; reading must stall rather than buffer replies.
    let r = timeout(Duration::from_secs(3), caller.stream.read(&mut buf)).await;
    assert!(r.is_err(), "no data was sent, read must not complete");
    if let CallerStream::Telnet(t) = &caller.stream {
        assert!(
            t.buffered_capacity() <= 64 * 1024,
            "buffers grew to {}",
            t.buffered_capacity()
        );
        assert!(t.machine().stats().unsupported > 0);
    }
    flooder.abort();
}

#[tokio::test]
async fn telnet_stream_over_duplex_round_trips_with_small_buffers() {
    // Tiny transport buffers force partial writes of escapes.
    let (a, b) = tokio::io::duplex(7);
    let mut server = TelnetStream::new(a);
    let mut client = TelnetStream::with_machine(b, telnet::Telnet::client());
    server.start();
    let payload: Vec<u8> = garbage(20_000, 7)
        .into_iter()
        .map(|b| if b == b'\r' { b'x' } else { b })
        .collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&payload).await.unwrap();
        server.flush().await.unwrap();
        let mut sink = [0u8; 64];
        // Keep reading so the client's negotiation replies are consumed.
        let _ = timeout(Duration::from_millis(200), server.read(&mut sink)).await;
        server.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    timeout(T, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(got, expected);
    assert!(client.machine().is_remote_enabled(ECHO));
}

/// A reader task and a writer task share one stream (tokio::io::split) while
/// the peer floods negotiation requests whose replies compete with the data
/// for the transport: neither side may lose its wake-up.
#[tokio::test]
async fn split_reader_and_writer_both_make_progress() {
    let (a, b) = tokio::io::duplex(64);
    let mut server = TelnetStream::new(a);
    server.start();
    let (mut sr, mut sw) = tokio::io::split(server);
    let payload = garbage(200_000, 99);
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        sw.write_all(&payload).await.unwrap();
        sw.shutdown().await.unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        sr.read_to_end(&mut got).await.unwrap();
        got
    });
    let (mut pr, mut pw) = tokio::io::split(b);
    let flooder = tokio::spawn(async move {
        for _ in 0..20_000 {
            pw.write_all(&[IAC, WILL, 31, b'k']).await.unwrap();
        }
        pw.shutdown().await.unwrap();
    });
    // The peer decodes what we send with its own telnet machine.
    let mut peer = telnet::Telnet::client();
    let mut decoded = Vec::new();
    let mut buf = [0u8; 4096];
    let peer_read = async {
        loop {
            let n = pr.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            peer.receive_into(&buf[..n], &mut decoded);
        }
    };
    timeout(Duration::from_secs(20), peer_read)
        .await
        .expect("peer read stalled");
    timeout(T, writer).await.unwrap().unwrap();
    timeout(T, flooder).await.unwrap().unwrap();
    let got = timeout(T, reader).await.unwrap().unwrap();
    assert_eq!(got, vec![b'k'; 20_000]);
    assert_eq!(decoded, expected);
}
