//! Test support: compiling C modules into a temporary directory, and a
//! driver that runs one transaction on a real `securityhost::Port` with a
//! virtual clock, calling Begin and End on their own threads as the server
//! does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use securityhost::*;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `src` (a path relative to the repository root) into `dir` with
/// plain `cc -shared -fPIC`, returning the `.so`.
pub fn build_module(dir: &Path, src: &str) -> PathBuf {
    let src = crate_dir().join("../..").join(src);
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("{stem}.so"));
    let st = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc failed for {}", src.display());
    out
}

/// Compiles `src` into `dir/NAME.so` with `cc -shared -fPIC` and the
/// extra arguments (a `-D` choosing what a test module does).
pub fn build_module_as(dir: &Path, src: &str, name: &str, extra: &[&str]) -> PathBuf {
    let src = crate_dir().join("../..").join(src);
    let out = dir.join(format!("{name}.so"));
    let st = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .args(extra)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc failed for {}", src.display());
    out
}

/// Everything this test process logged (the server's log, in the
/// supervisor tests): a subscriber installed on first use.
pub fn log_text() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

/// Installs the capturing subscriber (call before the code that logs).
pub fn capture_log() {
    let _ = log_buffer();
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static B: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(w.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (at most 10 s) until the captured log contains `text`.
pub fn wait_log(text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if log_text().contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A clock the test moves.
pub struct VClock(Mutex<Instant>);

impl VClock {
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
}

impl Clock for VClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

type Wake = Arc<(Mutex<u64>, Condvar)>;

/// One transaction driven like the server drives it.
pub struct Drive {
    pub port: Arc<Port>,
    pub clock: Arc<VClock>,
    module: Arc<dyn SecurityModule>,
    wake: Wake,
    begin: Option<JoinHandle<u32>>,
    end: Option<JoinHandle<u32>>,
    /// Everything the module sent.
    pub out: Vec<u8>,
    /// The outcome, once finished.
    pub outcome: Option<Outcome>,
    /// End was called this many times.
    pub ends: usize,
}

/// The handle table shared by the test's transactions.
pub fn table() -> &'static PortTable {
    static T: std::sync::OnceLock<PortTable> = std::sync::OnceLock::new();
    T.get_or_init(PortTable::new)
}

impl Drive {
    /// Starts a transaction: Begin runs on its own thread.
    pub fn start(module: Arc<dyn SecurityModule>, cfg: Config) -> Drive {
        let wake: Wake = Arc::new((Mutex::new(0), Condvar::new()));
        let w = wake.clone();
        let clock = Arc::new(VClock(Mutex::new(Instant::now())));
        let port = Port::new(
            table().allocate(),
            cfg.clone(),
            "tcp 127.0.0.1:5555",
            clock.clone(),
            Box::new(move || {
                *w.0.lock().unwrap() += 1;
                w.1.notify_all();
            }),
        );
        table().insert(&port);
        let args = BeginArgs {
            hport: port.hport(),
            send_buffer_size: cfg.send_buffer_size,
            recv_buffer_size: cfg.recv_buffer_size,
            host: port.host(),
        };
        let m = module.clone();
        let begin = Some(std::thread::spawn(move || m.begin(args)));
        Drive {
            port,
            clock,
            module,
            wake,
            begin,
            end: None,
            out: Vec::new(),
            outcome: None,
            ends: 0,
        }
    }

    /// One round of the driver's loop.
    pub fn step(&mut self) {
        if self.begin.as_ref().is_some_and(|b| b.is_finished()) {
            let code = self.begin.take().unwrap().join().expect("Begin panicked");
            self.port.with(|tx, now| tx.begin_returned(code, now));
        }
        if self.end.as_ref().is_some_and(|b| b.is_finished()) {
            let code = self.end.take().unwrap().join().expect("End panicked");
            self.port.with(|tx, now| tx.end_returned(code, now));
        }
        loop {
            let (out, action) = self
                .port
                .with(|tx, _| (tx.poll_transmit(), tx.poll_action()));
            if let Some(o) = out {
                self.out.extend(o);
            }
            match action {
                None => break,
                Some(Action::CallEnd) => {
                    self.ends += 1;
                    let (m, h) = (self.module.clone(), self.port.hport());
                    self.end = Some(std::thread::spawn(move || m.end(h)));
                }
                Some(Action::Finished(o)) => {
                    self.outcome = Some(o);
                }
            }
        }
    }

    /// Drives until `done` holds, failing after 10 s of real time.
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&Drive) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.step();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; sent so far: {:?}; outcome {:?}",
                String::from_utf8_lossy(&self.out),
                self.outcome
            );
            let g = self.wake.0.lock().unwrap();
            let _ = self
                .wake
                .1
                .wait_timeout(g, Duration::from_millis(5))
                .unwrap();
        }
    }

    /// Drives until the module sent `text`.
    pub fn expect(&mut self, text: &str) {
        self.until(&format!("{text:?}"), |d| {
            String::from_utf8_lossy(&d.out).contains(text)
        });
    }

    /// The caller types `text`.
    pub fn input(&mut self, text: &str) {
        self.port.with(|tx, _| tx.caller_input(text.as_bytes()));
    }

    /// Drives to the end, returning the outcome and the side defects.
    pub fn finish(&mut self) -> (Outcome, Vec<Defect>) {
        self.until("the outcome", |d| d.outcome.is_some());
        // Let a running End return, so the module is done with the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.end.as_ref().is_some_and(|e| !e.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let defects = self.port.with(|tx, _| tx.defects().to_vec());
        table().remove(self.port.hport());
        (self.outcome.clone().unwrap(), defects)
    }

    /// Moves the virtual clock and runs the timers.
    pub fn advance(&mut self, d: Duration) {
        self.clock.advance(d);
        self.port.with(|tx, now| tx.handle_timeout(now));
    }

    /// The text the module sent.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

/// The RFC 4226 response of `tokencard.c`: dynamic truncation of
/// HMAC-SHA-1(key, challenge) mod 10^6 (RFC 2104 HMAC over the `sha1` crate).
pub fn token_response(key: &[u8], challenge: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha1::new()
        .chain_update(&ipad)
        .chain_update(challenge.as_bytes())
        .finalize();
    let mac = Sha1::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    let off = usize::from(mac[19] & 0x0f);
    let bin = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}
