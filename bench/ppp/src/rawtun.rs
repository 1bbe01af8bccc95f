//! The raw tun read/write rate, measured the way
//! `crates/ports/examples/tun_rate.rs` does it: ICMP echo requests written
//! into a tun, the kernel's replies read back, a bounded window of
//! requests outstanding.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ports::tun::Tun;
use tokio::sync::Semaphore;

use crate::packet;

/// The raw tun's own address.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 251, 6, 1);
/// The (imaginary) peer the echo requests come from.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 251, 6, 2);
/// Requests outstanding at most (below the tun's transmit queue of 500).
pub const WINDOW: usize = 256;

/// One raw measurement.
#[derive(Debug, Clone, Copy)]
pub struct RawRate {
    /// Echo round trips per second.
    pub round_trips: f64,
    /// Megabytes (10^6) of IP packets written into the tun per second.
    pub write_mb: f64,
    /// Megabytes (10^6) of IP packets read from the tun per second.
    pub read_mb: f64,
}

/// The raw tun device for the run, configured and up.
pub fn create(name: &str) -> std::io::Result<Arc<Tun>> {
    let tun = Tun::create(name, 1500)?;
    tun.set_ipv4(LOCAL, 24)?;
    tun.up()?;
    Ok(Arc::new(tun))
}

/// Echo round trips of `size`-byte packets for `dur`.
pub async fn measure(tun: &Arc<Tun>, size: usize, dur: Duration) -> Result<RawRate, String> {
    let request = packet::echo_request(PEER, LOCAL, 0x5254, size)
        .ok_or_else(|| format!("packet size {size} is not 28 to 65535"))?;
    let permits = Arc::new(Semaphore::new(WINDOW));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (tun, permits, received, stop) = (
            Arc::clone(tun),
            Arc::clone(&permits),
            Arc::clone(&received),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let n = match tokio::time::timeout(Duration::from_millis(200), tun.recv(&mut buf))
                    .await
                {
                    Ok(r) => r?,
                    Err(_) => continue,
                };
                if packet::is_echo_reply(&buf[..n], size) {
                    received.fetch_add(1, Ordering::Relaxed);
                    permits.add_permits(1);
                }
            }
            Ok::<(), std::io::Error>(())
        })
    };

    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut error = None;
    while start.elapsed() < dur {
        match tokio::time::timeout(Duration::from_secs(1), permits.acquire()).await {
            Ok(Ok(p)) => p.forget(),
            _ => break, // replies stopped coming back
        }
        if let Err(e) = tun.send(&request).await {
            error = Some(format!("raw tun write: {e}"));
            break;
        }
        sent += 1;
    }
    let elapsed = start.elapsed();
    let drain = Instant::now();
    while received.load(Ordering::Relaxed) < sent && drain.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed_all = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    match tokio::time::timeout(Duration::from_secs(2), reader).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("raw tun read: {e}")),
        Ok(Err(e)) => return Err(format!("raw tun reader task: {e}")),
        Err(_) => return Err("raw tun reader did not stop within 2 s".into()),
    }
    if let Some(e) = error {
        return Err(e);
    }
    let got = received.load(Ordering::Relaxed);
    if got == 0 {
        return Err("no echo reply came back through the raw tun".into());
    }
    let (secs, secs_all) = (elapsed.as_secs_f64(), elapsed_all.as_secs_f64());
    Ok(RawRate {
        round_trips: got as f64 / secs_all,
        write_mb: sent as f64 * size as f64 / secs / 1e6,
        read_mb: got as f64 * size as f64 / secs_all / 1e6,
    })
}
