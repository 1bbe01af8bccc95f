//! A PPP caller on a tokio TCP stream, using dialgate's own `ppp::link`
//! in the client role.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ppp::link::{Event, Link, LinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bench user's name and secret (added by the harness).
pub const USER: &str = "bench";
/// The bench user's secret.
pub const SECRET: &str = "bench-pw-4711";

/// A caller whose link has reached IPCP Opened.
pub struct Session {
    link: Link,
    line: TcpStream,
    buf: Vec<u8>,
    /// The address the server gave us.
    pub local: Ipv4Addr,
}

/// Seeds for the links' random sources, varied per link.
static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

/// A random source for one link: SplitMix64 seeded from the clock and a
/// counter. The client's random bytes (LCP magic numbers, the unused
/// MS-CHAPv2 peer challenge) need uniqueness, not secrecy, in a benchmark.
fn random_source() -> ppp::link::RandomSource {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut state = nanos ^ SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    Box::new(move |b: &mut [u8]| {
        for chunk in b.chunks_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    })
}

/// Sends every frame the link has queued.
async fn flush(link: &mut Link, line: &mut TcpStream) -> Result<(), String> {
    while let Some(f) = link.poll_transmit() {
        line.write_all(&f)
            .await
            .map_err(|e| format!("writing to the server: {e}"))?;
    }
    Ok(())
}

/// Runs the link until `stop` accepts an event (returned), the link goes
/// down (an error naming the cause) or `deadline` passes.
async fn run_until(
    link: &mut Link,
    line: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    mut stop: impl FnMut(&Event) -> bool,
) -> Result<Event, String> {
    loop {
        flush(link, line).await?;
        while let Some(ev) = link.poll_event() {
            if stop(&ev) {
                flush(link, line).await?;
                return Ok(ev);
            }
            if let Event::Down { cause } = ev {
                return Err(format!("link down: {cause}"));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("timed out in phase {:?}", link.phase()));
        }
        let wake = link.poll_timeout().map_or(deadline, |t| t.min(deadline));
        tokio::select! {
            r = line.read(buf) => match r {
                Ok(0) | Err(_) => link.handle_hangup(Instant::now()),
                Ok(n) => link.handle_input(Instant::now(), &buf[..n]),
            },
            () = tokio::time::sleep_until(wake.into()) => link.handle_timeout(Instant::now()),
        }
    }
}

impl Session {
    /// Connects to `addr` and runs LCP, CHAP and IPCP, all within `limit`.
    pub async fn up(addr: SocketAddr, limit: Duration) -> Result<Session, String> {
        let deadline = Instant::now() + limit;
        let line = tokio::time::timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = line.set_nodelay(true);
        let mut line = line;
        let mut link = Link::new(
            LinkConfig::client(Some((USER.as_bytes(), SECRET))),
            Instant::now(),
            random_source(),
        )
        .map_err(|e| format!("link config: {e}"))?;
        let mut buf = vec![0u8; 16 * 1024];
        let up = run_until(&mut link, &mut line, &mut buf, deadline, |e| {
            matches!(e, Event::Up { .. })
        })
        .await?;
        let Event::Up { local, .. } = up else {
            return Err("internal: stopped on an event other than Up".into());
        };
        Ok(Session {
            link,
            line,
            buf,
            local,
        })
    }

    /// LCP Terminate, waits for the link to finish (within `limit`), hangs up.
    pub async fn hang_up(mut self, limit: Duration) -> Result<(), String> {
        self.link.close(Instant::now(), "bench done");
        let deadline = Instant::now() + limit;
        let r = run_until(
            &mut self.link,
            &mut self.line,
            &mut self.buf,
            deadline,
            |e| matches!(e, Event::Down { .. }),
        )
        .await;
        let _ = self.line.shutdown().await;
        r.map(|_| ())
    }

    /// Sends `packet` through the link as fast as the line takes it until
    /// `until`, `batch` packets per write; adds each packet sent to `sent`.
    /// Incoming frames (echo requests, say) are handled between batches.
    pub async fn blast(
        &mut self,
        packet: &[u8],
        batch: usize,
        until: Instant,
        sent: &AtomicU64,
    ) -> Result<(), String> {
        let mut out = Vec::with_capacity(batch * (packet.len() + 16));
        while Instant::now() < until {
            for _ in 0..batch {
                self.link
                    .send_ip(packet)
                    .map_err(|e| format!("send_ip: {e}"))?;
            }
            out.clear();
            while let Some(f) = self.link.poll_transmit() {
                out.extend_from_slice(&f);
            }
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.line.write_all(&out)).await {
                Ok(Ok(())) => {
                    sent.fetch_add(batch as u64, Ordering::Relaxed);
                }
                Ok(Err(e)) => return Err(format!("writing to the server: {e}")),
                Err(_) => break,
            }
            loop {
                match self.line.try_read(&mut self.buf) {
                    Ok(0) => {
                        self.link.handle_hangup(Instant::now());
                        break;
                    }
                    Ok(n) => self.link.handle_input(Instant::now(), &self.buf[..n]),
                    Err(_) => break,
                }
            }
            self.link.handle_timeout(Instant::now());
            while let Some(ev) = self.link.poll_event() {
                if let Event::Down { cause } = ev {
                    return Err(format!("link down during the transfer: {cause}"));
                }
            }
        }
        flush(&mut self.link, &mut self.line).await
    }
}
