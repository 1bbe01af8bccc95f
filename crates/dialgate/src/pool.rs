//! Per-port-group IPv4 address pools for PPP sessions.
//!
//! An address is never handed to two live sessions: a lease is a value that
//! gives its address back when dropped, so a session that ends in any way
//! (hang-up, error, panic unwinding) returns it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

/// A range of addresses, inclusive.
#[derive(Debug)]
pub struct Pool {
    first: u32,
    last: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_use: BTreeSet<u32>,
    /// Where the next search starts, so freed addresses are not reused at
    /// once (stale packets for a previous session then go nowhere).
    next: u32,
}

/// The pool's reason for refusing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// Every address is leased.
    Exhausted {
        /// The pool's size.
        size: u32,
    },
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Exhausted { size } => {
                write!(f, "address pool exhausted (all {size} in use)")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// One leased address; dropping it returns the address to the pool.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    addr: u32,
}

impl Lease {
    /// The address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.pool.lock();
        s.in_use.remove(&self.addr);
    }
}

impl Pool {
    /// A pool of `first..=last`. `None` when the range is empty.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Arc<Pool>> {
        let (first, last) = (u32::from(first), u32::from(last));
        (first <= last).then(|| {
            Arc::new(Pool {
                first,
                last,
                state: Mutex::new(State {
                    in_use: BTreeSet::new(),
                    next: first,
                }),
            })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of addresses.
    pub fn size(&self) -> u32 {
        self.last - self.first + 1
    }

    /// Addresses leased now.
    pub fn in_use(&self) -> usize {
        self.lock().in_use.len()
    }

    /// Leases a free address.
    pub fn lease(self: &Arc<Self>) -> Result<Lease, PoolError> {
        let mut s = self.lock();
        let size = u64::from(self.size());
        if s.in_use.len() as u64 >= size {
            return Err(PoolError::Exhausted { size: self.size() });
        }
        let mut a = s.next;
        loop {
            if !s.in_use.contains(&a) {
                s.in_use.insert(a);
                s.next = if a == self.last { self.first } else { a + 1 };
                return Ok(Lease {
                    pool: self.clone(),
                    addr: a,
                });
            }
            a = if a == self.last { self.first } else { a + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn leases_are_unique_and_come_back() {
        let p = Pool::new(ip("10.0.0.10"), ip("10.0.0.12")).unwrap();
        let a = p.lease().unwrap();
        let b = p.lease().unwrap();
        let c = p.lease().unwrap();
        let mut all = vec![a.addr(), b.addr(), c.addr()];
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 3);
        assert_eq!(p.lease().unwrap_err(), PoolError::Exhausted { size: 3 });
        let freed = b.addr();
        drop(b);
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.lease().unwrap().addr(), freed);
    }

    #[test]
    fn a_freed_address_is_not_reused_at_once() {
        let p = Pool::new(ip("10.0.0.1"), ip("10.0.0.100")).unwrap();
        let a = p.lease().unwrap();
        let first = a.addr();
        drop(a);
        assert_ne!(p.lease().unwrap().addr(), first);
    }

    #[test]
    fn concurrent_leases_never_collide() {
        let p = Pool::new(ip("10.1.0.0"), ip("10.1.3.255")).unwrap();
        let leases: Vec<Lease> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let p = p.clone();
                    s.spawn(move || (0..128).map(|_| p.lease().unwrap()).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let set: BTreeSet<Ipv4Addr> = leases.iter().map(Lease::addr).collect();
        assert_eq!(set.len(), 1024);
        assert!(p.lease().is_err());
    }

    #[test]
    fn empty_range_is_refused() {
        assert!(Pool::new(ip("10.0.0.2"), ip("10.0.0.1")).is_none());
        assert!(Pool::new(ip("10.0.0.2"), ip("10.0.0.2")).is_some());
    }
}
