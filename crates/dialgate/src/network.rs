//! The network side of PPP sessions: one tun device for all of them, and the
//! routing of packets from the tun to the session that owns the destination
//! address (as l2tpns does).

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ports::tun::Tun;
use tokio::sync::{mpsc, watch};

use crate::config::NetworkConfig;

/// Packets queued for one session before the tun reader drops more.
const SESSION_QUEUE: usize = 256;

/// The tun and the table of live sessions by address.
pub struct Network {
    tun: Tun,
    routes: Mutex<HashMap<Ipv4Addr, mpsc::Sender<Vec<u8>>>>,
    /// The server's own address (IPCP local address of every session).
    pub local: Ipv4Addr,
    /// The tun's MTU.
    pub mtu: u16,
    /// DNS servers given to callers.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Packets from the tun with no session to take them.
    pub unroutable: AtomicU64,
    /// Packets dropped because a session's queue was full.
    pub overflow: AtomicU64,
}

/// A session's place in the routing table; dropping it removes the route.
pub struct Route {
    net: Arc<Network>,
    addr: Ipv4Addr,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.net.lock().remove(&self.addr);
    }
}

impl Network {
    /// Creates and configures the tun, and starts its reader task.
    pub fn start(cfg: &NetworkConfig, shutdown: watch::Receiver<bool>) -> io::Result<Arc<Network>> {
        let tun = Tun::create(&cfg.tun, cfg.mtu)?;
        tun.set_ipv4(cfg.address, cfg.prefix_len)?;
        tun.up()?;
        let mut dns = [None, None];
        for (slot, d) in dns.iter_mut().zip(&cfg.dns) {
            *slot = Some(*d);
        }
        let net = Arc::new(Network {
            tun,
            routes: Mutex::new(HashMap::new()),
            local: cfg.address,
            mtu: cfg.mtu,
            dns,
            unroutable: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
        });
        tokio::spawn(reader(net.clone(), shutdown));
        Ok(net)
    }

    /// The tun's name.
    pub fn tun_name(&self) -> &str {
        self.tun.name()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, mpsc::Sender<Vec<u8>>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes packets for `addr` to the returned receiver until the `Route`
    /// is dropped. `None` if `addr` already has a live session (never two).
    pub fn register(self: &Arc<Self>, addr: Ipv4Addr) -> Option<(Route, mpsc::Receiver<Vec<u8>>)> {
        let mut routes = self.lock();
        if routes.contains_key(&addr) {
            return None;
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        routes.insert(addr, tx);
        Some((
            Route {
                net: self.clone(),
                addr,
            },
            rx,
        ))
    }

    /// Sends a packet from a session to the network.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.tun.send(packet).await
    }
}

/// The destination of an IPv4 packet, if it is one.
pub fn ipv4_dst(p: &[u8]) -> Option<Ipv4Addr> {
    (p.len() >= 20 && p[0] >> 4 == 4).then(|| Ipv4Addr::new(p[16], p[17], p[18], p[19]))
}

/// The source of an IPv4 packet, if it is one.
pub fn ipv4_src(p: &[u8]) -> Option<Ipv4Addr> {
    (p.len() >= 20 && p[0] >> 4 == 4).then(|| Ipv4Addr::new(p[12], p[13], p[14], p[15]))
}

async fn reader(net: Arc<Network>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; usize::from(net.mtu).max(1500) + 64];
    loop {
        tokio::select! {
            r = net.tun.recv(&mut buf) => match r {
                Ok(n) => {
                    let pkt = &buf[..n];
                    let tx = ipv4_dst(pkt).and_then(|d| net.lock().get(&d).cloned());
                    match tx {
                        Some(tx) => {
                            if tx.try_send(pkt.to_vec()).is_err() {
                                net.overflow.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => {
                            net.unroutable.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("tun {}: read failed: {e}", net.tun.name());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_ipv4_packets() {
        let mut p = vec![0x45u8; 20];
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(ipv4_src(&p), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(ipv4_dst(&p), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(ipv4_dst(&p[..19]), None);
        p[0] = 0x60;
        assert_eq!(ipv4_src(&p), None);
    }
}
