//! Benchmark (not a test): frames/s through the RFC 1662 framer and
//! deframer, and the CPU time of a full server-side session setup
//! (LCP + CHAP-MD5 + IPCP) against our own client role.
//!
//! Run: `cargo run --release -p ppp --example bench`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ppp::auth::AuthProtocol;
use ppp::hdlc::{Deframer, TxOptions, encode_frame};
use ppp::{Event, Link, LinkConfig};

fn xorshift(seed: u64) -> impl FnMut(&mut [u8]) + Send {
    let mut x = seed | 1;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

fn bench_framing(size: usize, accm: u32) {
    let mut rand = xorshift(1);
    let mut payload = vec![0u8; size];
    rand(&mut payload);
    let opts = TxOptions {
        accm,
        acfc: true,
        pfc: true,
    };
    let n = (20_000_000 / size.max(1)).clamp(10_000, 400_000);
    let mut out = Vec::with_capacity(size * 2 + 16);
    let t = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..n {
        out.clear();
        encode_frame(0x0021, black_box(&payload), opts, &mut out);
        bytes += out.len();
    }
    let enc = t.elapsed();
    let frame = out.clone();
    let mut stream = Vec::new();
    for _ in 0..1000 {
        stream.extend_from_slice(&frame);
    }
    let rounds = n.div_ceil(1000);
    let mut d = Deframer::new(size + 16);
    d.set_rx_accm(accm);
    let t = Instant::now();
    let mut got = 0usize;
    for _ in 0..rounds {
        d.push(black_box(&stream), |f| {
            got += 1;
            black_box(f);
        });
    }
    let dec = t.elapsed();
    assert_eq!(got, rounds * 1000);
    let mb = |b: usize, d: Duration| b as f64 / d.as_secs_f64() / 1e6;
    println!(
        "payload {size:>5} B accm {accm:#010x}: framer {:>10.0} frames/s ({:>6.1} MB/s line), deframer {:>10.0} frames/s ({:>6.1} MB/s line)",
        n as f64 / enc.as_secs_f64(),
        mb(bytes, enc),
        got as f64 / dec.as_secs_f64(),
        mb(stream.len() * rounds, dec),
    );
}

/// One session setup; returns (server CPU time, total time, frames).
fn session(seed: u64, auth: AuthProtocol) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let mut now = start;
    let mut scfg = LinkConfig::server(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(192, 0, 2, 2),
        vec![auth],
    );
    scfg.ipcp.dns = [Some(Ipv4Addr::new(192, 0, 2, 53)), None];
    let ccfg = LinkConfig::client(Some((b"alice", "s3cret")));
    let mut server_time = Duration::ZERO;
    let t = Instant::now();
    let mut server = Link::new(scfg, now, Box::new(xorshift(seed))).expect("server");
    server_time += t.elapsed();
    let mut client = Link::new(ccfg, now, Box::new(xorshift(seed ^ 0xabc))).expect("client");
    let mut frames = 0;
    for _ in 0..200 {
        if server.is_up() && client.is_up() {
            break;
        }
        let mut moved = false;
        while let Some(b) = client.poll_transmit() {
            moved = true;
            frames += 1;
            let t = Instant::now();
            server.handle_input(now, &b);
            server_time += t.elapsed();
        }
        let t = Instant::now();
        let mut to_client = Vec::new();
        while let Some(b) = server.poll_transmit() {
            to_client.push(b);
        }
        while let Some(e) = server.poll_event() {
            if let Event::Verify(v) = e {
                let verdict = v.credentials.verify_password("s3cret", "Login incorrect");
                server.verified(now, v.id, verdict).expect("verdict");
                while let Some(b) = server.poll_transmit() {
                    to_client.push(b);
                }
            }
        }
        server_time += t.elapsed();
        for b in to_client {
            moved = true;
            frames += 1;
            client.handle_input(now, &b);
        }
        while client.poll_event().is_some() {}
        if !moved {
            now += Duration::from_millis(100);
            client.handle_timeout(now);
            let t = Instant::now();
            server.handle_timeout(now);
            server_time += t.elapsed();
        }
    }
    assert!(server.is_up() && client.is_up(), "session did not come up");
    (server_time, start.elapsed(), frames)
}

fn main() {
    println!("== framing ==");
    for (size, accm) in [(64, 0), (1500, 0), (1500, 0xffff_ffff)] {
        bench_framing(size, accm);
    }
    println!("== session setup (server role vs our client role, in memory) ==");
    for auth in [
        AuthProtocol::Pap,
        AuthProtocol::ChapMd5,
        AuthProtocol::MsChapV2,
    ] {
        let n = 2000;
        let mut server = Duration::ZERO;
        let mut total = Duration::ZERO;
        let mut frames = 0;
        for i in 0..n {
            let (s, t, f) = session(i as u64 + 1, auth);
            server += s;
            total += t;
            frames += f;
        }
        println!(
            "{auth:>9}: server CPU {:>7.1} us/session, both sides {:>7.1} us/session, {} frames/session",
            server.as_secs_f64() * 1e6 / n as f64,
            total.as_secs_f64() * 1e6 / n as f64,
            frames / n
        );
    }
}
