//! A small host for module tests: a real `securityhost::Port` driven the
//! way the server's port task drives it (Begin and End on the blocking
//! pool, caller bytes fed only while the transaction has room, timers run at
//! `poll_timeout`), with everything the module sent kept for inspection.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use modules::{AddOptions, Argon2Params};
use securityhost::{
    AbortCause, Action, BeginArgs, Config, HPort, Outcome, Port, SecurityModule, SystemClock,
};
use tokio::sync::Notify;

/// Every wait in a test is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Argon2 parameters cheap enough for debug-build tests.
pub const CHEAP: Argon2Params = Argon2Params {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

pub fn cheap_add() -> AddOptions {
    AddOptions {
        argon2: CHEAP,
        ..AddOptions::default()
    }
}

/// Adds `name` with `password` to the users/secrets files in `dir`.
pub fn add(dir: &Path, name: &str, password: &str) {
    modules::add_user(
        &dir.join("users.toml"),
        &dir.join("secrets.toml"),
        name,
        password,
        &cheap_add(),
    )
    .expect("add_user");
}

static NEXT_HPORT: AtomicU64 = AtomicU64::new(0x7700_0001);

/// One transaction between a module and a scripted caller.
pub struct Driver {
    pub port: Arc<Port>,
    module: Arc<dyn SecurityModule>,
    notify: Arc<Notify>,
    /// Everything the module sent, in order.
    pub output: Vec<u8>,
    /// What each End call returned.
    pub end_codes: Vec<u32>,
    /// Caller bytes not yet taken by the transaction (it takes them only
    /// while it has room: the backpressure that bounds memory).
    input: VecDeque<u8>,
    /// Caller bytes the transaction took.
    pub fed: usize,
    pub outcome: Option<Outcome>,
}

impl Driver {
    /// Begins a transaction with `module` under `cfg`.
    pub async fn start(module: Arc<dyn SecurityModule>, cfg: Config) -> Driver {
        let hport = HPort(NEXT_HPORT.fetch_add(1, Ordering::Relaxed));
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let port = Port::new(
            hport,
            cfg.clone(),
            "test 127.0.0.1:1",
            Arc::new(SystemClock),
            Box::new(move || n.notify_one()),
        );
        let args = BeginArgs {
            hport,
            send_buffer_size: cfg.send_buffer_size,
            recv_buffer_size: cfg.recv_buffer_size,
            host: port.host(),
        };
        let m = module.clone();
        let code = tokio::task::spawn_blocking(move || m.begin(args))
            .await
            .expect("begin panicked");
        port.with(|tx, now| tx.begin_returned(code, now));
        let mut d = Driver {
            port,
            module,
            notify,
            output: Vec::new(),
            end_codes: Vec::new(),
            input: VecDeque::new(),
            fed: 0,
            outcome: None,
        };
        d.pump().await;
        d
    }

    /// Begins with the default limits.
    pub async fn start_default(module: Arc<dyn SecurityModule>) -> Driver {
        Driver::start(module, Config::default()).await
    }

    /// Does everything due now: feeds waiting caller bytes, collects what
    /// the module sent, runs timers, calls End when asked.
    pub async fn pump(&mut self) {
        loop {
            let (sent, action) = self.port.with(|tx, now| {
                if let Some(t) = tx.poll_timeout()
                    && t <= now
                {
                    tx.handle_timeout(now);
                }
                let room = tx.input_room();
                if room > 0 && !self.input.is_empty() && !tx.is_finished() {
                    let n = room.min(self.input.len());
                    let chunk: Vec<u8> = self.input.drain(..n).collect();
                    self.fed += n;
                    tx.caller_input(&chunk);
                }
                (tx.poll_transmit(), tx.poll_action())
            });
            let mut progressed = false;
            if let Some(b) = sent {
                self.output.extend_from_slice(&b);
                progressed = true;
            }
            match action {
                Some(Action::CallEnd) => {
                    let m = self.module.clone();
                    let h = self.port.hport();
                    let code = tokio::task::spawn_blocking(move || m.end(h))
                        .await
                        .expect("end panicked");
                    self.end_codes.push(code);
                    self.port.with(|tx, now| tx.end_returned(code, now));
                    progressed = true;
                }
                Some(Action::Finished(o)) => {
                    assert!(self.outcome.is_none(), "two outcomes");
                    self.outcome = Some(o);
                    progressed = true;
                }
                None => {}
            }
            if !progressed {
                return;
            }
        }
    }

    /// Pumps until `done(self)` holds, waiting for module calls and timers
    /// in between. Panics after [`LIMIT`].
    pub async fn run_until(&mut self, mut done: impl FnMut(&Driver) -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            self.pump().await;
            if done(self) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; output so far: {:?}",
                String::from_utf8_lossy(&self.output)
            );
            let timer = self
                .port
                .with(|tx, _| tx.poll_timeout())
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(timer) => {}
                // Module tasks do not always call the host when they make
                // progress (argon2 on the blocking pool): look again soon.
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }

    /// Waits until the module has sent `needle` (anywhere in its output).
    pub async fn expect(&mut self, needle: &str) {
        let n = needle.as_bytes().to_vec();
        self.run_until(|d| contains(&d.output, &n) || d.outcome.is_some())
            .await;
        assert!(
            contains(&self.output, &n),
            "expected {needle:?} in {:?} (outcome {:?})",
            String::from_utf8_lossy(&self.output),
            self.outcome
        );
    }

    /// Waits until the module has sent `needle` for the `n`th time.
    pub async fn expect_count(&mut self, needle: &str, n: usize) {
        let b = needle.as_bytes().to_vec();
        self.run_until(|d| count(&d.output, &b) >= n || d.outcome.is_some())
            .await;
        assert!(
            count(&self.output, &b) >= n,
            "expected {needle:?} x{n} in {:?}",
            String::from_utf8_lossy(&self.output)
        );
    }

    /// The caller sends `bytes` (all at once, as room allows).
    pub async fn send(&mut self, bytes: &[u8]) {
        self.input.extend(bytes);
        self.pump().await;
    }

    /// The caller types `bytes` one at a time: each byte is its own
    /// `caller_input`, and the next comes only once the module has taken
    /// it (or the transaction is over).
    pub async fn type_slowly(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.input.push_back(b);
            self.run_until(|d| {
                d.outcome.is_some()
                    || (d.input.is_empty()
                        && d.port
                            .with(|tx, _| tx.input_room() == tx.config().backlog_max))
            })
            .await;
            if self.outcome.is_some() {
                return;
            }
        }
    }

    /// The caller hangs up.
    pub async fn hang_up(&mut self) {
        self.port.with(|tx, now| tx.caller_hung_up(now));
        self.pump().await;
    }

    /// The host ends the dialog (shutdown, port disabled).
    pub async fn abort(&mut self, cause: AbortCause) {
        self.port.with(|tx, now| tx.abort(cause, now));
        self.pump().await;
    }

    /// Waits for the outcome.
    pub async fn finish(&mut self) -> Outcome {
        self.run_until(|d| d.outcome.is_some()).await;
        self.outcome.clone().expect("outcome")
    }

    /// The output as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
