//! The argon2 limiter: how many password checks (argon2id, tens of MiB
//! each) run at once, shared by every module and the PPP verification of a
//! process.
//!
//! A [`Verifiers`] is a counting semaphore plus counters. [`Verifiers::run`]
//! waits for a permit, then runs the check on tokio's blocking pool; the
//! permit moves into the blocking job and is released only when the job
//! returns, so dropping (aborting) the waiting future never lets more jobs
//! run than there are permits. [`Verifiers::default`] is the one limiter of
//! the process (as many permits as CPUs): the `users` and `totp` modules,
//! [`crate::LocalPpp`] and anything else built with default options share
//! it, so a burst of dialog logins and PPP logins together never runs more
//! argon2 computations at once than the machine has CPUs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use crate::ConfigError;

/// Counters of a [`Verifiers`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifierStats {
    /// Checks running now.
    pub running: usize,
    /// The most checks that ever ran at once.
    pub peak: usize,
    /// Checks run to their end.
    pub completed: u64,
}

struct Inner {
    sem: Arc<Semaphore>,
    permits: usize,
    running: AtomicUsize,
    peak: AtomicUsize,
    completed: AtomicU64,
}

/// The argon2 limiter (see the module documentation). Cheap to clone:
/// clones share the permits.
#[derive(Clone)]
pub struct Verifiers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifiers")
            .field("permits", &self.inner.permits)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The check could not run: the blocking pool is gone (the runtime is
/// shutting down) or the check panicked. Callers refuse the login.
#[derive(Debug, thiserror::Error)]
#[error("the password verifier failed: {0}")]
pub struct VerifierFailed(String);

impl Verifiers {
    /// A limiter of its own with `permits` checks at once (at least 1).
    pub fn new(permits: usize) -> Result<Verifiers, ConfigError> {
        if permits == 0 {
            return Err(ConfigError::NoVerifiers);
        }
        Ok(Verifiers {
            inner: Arc::new(Inner {
                sem: Arc::new(Semaphore::new(permits)),
                permits,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                completed: AtomicU64::new(0),
            }),
        })
    }

    /// The process's limiter: as many permits as CPUs (2 if unknown),
    /// made on first use and shared by every caller.
    pub fn process() -> Verifiers {
        static PROCESS: OnceLock<Verifiers> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let n = std::thread::available_parallelism().map_or(2, |n| n.get());
                Verifiers::new(n.max(1)).expect("at least one permit")
            })
            .clone()
    }

    /// How many checks may run at once.
    pub fn permits(&self) -> usize {
        self.inner.permits
    }

    /// True when `self` and `other` share their permits.
    pub fn same(&self, other: &Verifiers) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The counters so far.
    pub fn stats(&self) -> VerifierStats {
        VerifierStats {
            running: self.inner.running.load(Ordering::SeqCst),
            peak: self.inner.peak.load(Ordering::SeqCst),
            completed: self.inner.completed.load(Ordering::SeqCst),
        }
    }

    /// Waits for a permit, then runs `check` on the blocking pool and
    /// returns its result. The permit is held until `check` returns, even
    /// if this future is dropped meanwhile.
    pub async fn run<T, F>(&self, check: F) -> Result<T, VerifierFailed>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        // The semaphore is never closed.
        let permit = self
            .inner
            .sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| VerifierFailed(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let _running = Running(&inner);
            check()
        })
        .await
        .map_err(|e| VerifierFailed(e.to_string()))
    }
}

impl Default for Verifiers {
    /// [`Verifiers::process`]: the process's one limiter.
    fn default() -> Self {
        Verifiers::process()
    }
}

/// Decrements the running count when the check ends, panics included.
struct Running<'a>(&'a Inner);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.completed.fetch_add(1, Ordering::SeqCst);
    }
}
