//! The load generator: N callers, each looping over whole transactions
//! (connect, wait for each prompt, answer it, wait for the server to close)
//! until the run's end; and a holder of idle dialogs for the memory test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use crate::stats::Samples;

/// Most bytes a caller keeps from one call; a server that sends more is
/// counted as misbehaving and the call is dropped.
const MAX_CALL_BYTES: usize = 64 * 1024;

/// One prompt the server sends and the answer the caller types.
#[derive(Clone, Debug)]
pub struct Step {
    /// The bytes that end the prompt (e.g. `PIN: `).
    pub prompt: Vec<u8>,
    /// What the caller sends once the prompt is seen (e.g. `1234\r\n`).
    pub answer: Vec<u8>,
}

/// The byte exchange of one transaction.
#[derive(Clone, Debug)]
pub struct Script {
    /// The prompts, in order.
    pub steps: Vec<Step>,
    /// Text that, seen after the last answer, means the verdict was not the
    /// one expected (a re-prompt, `Login incorrect`, ...).
    pub wrong_verdict: Vec<Vec<u8>>,
}

/// What one load run is.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The server.
    pub addr: SocketAddr,
    /// Concurrent callers.
    pub callers: usize,
    /// Time before measuring starts (callers' starts are spread over its
    /// first half).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Longest wait for any one event (connect, a prompt, the hang-up).
    pub step_timeout: Duration,
    /// The exchange.
    pub script: Arc<Script>,
}

/// Why a transaction did not complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// connect() failed or timed out.
    pub connect: u64,
    /// The server closed before sending a prompt we waited for (e.g. `All
    /// lines are busy`).
    pub closed_early: u64,
    /// A prompt or the hang-up did not come within the step timeout.
    pub timeout: u64,
    /// Read/write errors (reset, ...).
    pub io: u64,
    /// The server sent more than `MAX_CALL_BYTES` in one call.
    pub overflow: u64,
    /// The verdict was not the one expected.
    pub wrong_verdict: u64,
}

impl Errors {
    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.closed_early += o.closed_early;
        self.timeout += o.timeout;
        self.io += o.io;
        self.overflow += o.overflow;
        self.wrong_verdict += o.wrong_verdict;
    }

    fn count(&mut self, e: TxError) {
        match e {
            TxError::Connect => self.connect += 1,
            TxError::ClosedEarly => self.closed_early += 1,
            TxError::Timeout => self.timeout += 1,
            TxError::Io => self.io += 1,
            TxError::Overflow => self.overflow += 1,
            TxError::WrongVerdict => self.wrong_verdict += 1,
        }
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.connect
            + self.closed_early
            + self.timeout
            + self.io
            + self.overflow
            + self.wrong_verdict
    }

    /// A compact description, e.g. `connect 3, timeout 1`, or `0`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("connect", self.connect),
            ("closed-early", self.closed_early),
            ("timeout", self.timeout),
            ("io", self.io),
            ("overflow", self.overflow),
            ("wrong-verdict", self.wrong_verdict),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        if parts.is_empty() {
            "0".into()
        } else {
            parts.join(", ")
        }
    }
}

/// What a load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Transactions completed inside the measured window.
    pub completed: u64,
    /// The measured window's length.
    pub window: Duration,
    /// Answer sent -> next server bytes (or the hang-up), every step.
    pub prompt: Samples,
    /// Per step, answer sent -> next server bytes.
    pub per_step: Vec<Samples>,
    /// connect() start -> the first prompt.
    pub first_prompt: Samples,
    /// The last answer sent -> the server's close.
    pub hangup: Samples,
    /// connect() start -> the server's close, whole transactions.
    pub transaction: Samples,
    /// Failures (whole run, warm-up included).
    pub errors: Errors,
}

impl LoadResult {
    /// Completed transactions per second of the window.
    pub fn tx_per_s(&self) -> f64 {
        let s = self.window.as_secs_f64();
        if s > 0.0 {
            self.completed as f64 / s
        } else {
            0.0
        }
    }
}

enum TxError {
    Connect,
    ClosedEarly,
    Timeout,
    Io,
    Overflow,
    WrongVerdict,
}

struct TxTimes {
    first_prompt: Duration,
    hangup: Duration,
    steps: Vec<Duration>,
    total: Duration,
    done: Instant,
}

/// Runs `spec` and returns what it measured. Every caller stops by itself
/// at the window's end (a transaction in flight then is abandoned).
pub async fn run(spec: &LoadSpec) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let n = spec.callers.max(1);
    let spread = spec.warmup / 2;
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let offset = spread.mul_f64(i as f64 / n as f64);
        let spec = spec.clone();
        tasks.push(tokio::spawn(caller(
            spec,
            start + offset,
            measure_from,
            end,
        )));
    }
    let mut out = LoadResult {
        window: spec.duration,
        per_step: vec![Samples::new(); spec.script.steps.len()],
        ..LoadResult::default()
    };
    for t in tasks {
        // A caller task that panicked is a harness bug; count it as io.
        match t.await {
            Ok(mut c) => {
                out.completed += c.completed;
                out.prompt.merge(&mut c.prompt);
                for (a, b) in out.per_step.iter_mut().zip(c.per_step.iter_mut()) {
                    a.merge(b);
                }
                out.first_prompt.merge(&mut c.first_prompt);
                out.hangup.merge(&mut c.hangup);
                out.transaction.merge(&mut c.transaction);
                out.errors.add(&c.errors);
            }
            Err(_) => out.errors.io += 1,
        }
    }
    out
}

/// `count` transactions one after the other by a single caller (no
/// warm-up, every one measured); the window is the time they took.
pub async fn sequential(
    addr: SocketAddr,
    script: Arc<Script>,
    count: usize,
    step_timeout: Duration,
) -> LoadResult {
    let spec = LoadSpec {
        addr,
        callers: 1,
        warmup: Duration::ZERO,
        duration: Duration::ZERO,
        step_timeout,
        script,
    };
    let steps = spec.script.steps.len();
    let mut out = LoadResult {
        per_step: vec![Samples::new(); steps],
        ..LoadResult::default()
    };
    let start = Instant::now();
    let mut buf = Vec::with_capacity(256);
    for _ in 0..count {
        match transaction(&spec, &mut buf).await {
            Ok(t) => {
                out.completed += 1;
                out.first_prompt.push(t.first_prompt);
                out.hangup.push(t.hangup);
                out.transaction.push(t.total);
                for (k, d) in t.steps.iter().enumerate() {
                    out.prompt.push(*d);
                    if let Some(s) = out.per_step.get_mut(k) {
                        s.push(*d);
                    }
                }
            }
            Err(e) => out.errors.count(e),
        }
    }
    out.window = start.elapsed();
    out
}

struct CallerStats {
    completed: u64,
    prompt: Samples,
    per_step: Vec<Samples>,
    first_prompt: Samples,
    hangup: Samples,
    transaction: Samples,
    errors: Errors,
}

async fn caller(
    spec: LoadSpec,
    start_at: Instant,
    measure_from: Instant,
    end: Instant,
) -> CallerStats {
    let steps = spec.script.steps.len();
    let mut st = CallerStats {
        completed: 0,
        prompt: Samples::new(),
        per_step: vec![Samples::new(); steps],
        first_prompt: Samples::new(),
        hangup: Samples::new(),
        transaction: Samples::new(),
        errors: Errors::default(),
    };
    sleep_until(start_at).await;
    let mut buf = Vec::with_capacity(256);
    while Instant::now() < end {
        match timeout_at(end, transaction(&spec, &mut buf)).await {
            Err(_) => break,
            Ok(Ok(t)) => {
                if t.done >= measure_from && t.done <= end {
                    st.completed += 1;
                    st.first_prompt.push(t.first_prompt);
                    st.hangup.push(t.hangup);
                    st.transaction.push(t.total);
                    for (k, d) in t.steps.iter().enumerate() {
                        st.prompt.push(*d);
                        if let Some(s) = st.per_step.get_mut(k) {
                            s.push(*d);
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                st.errors.count(e);
                // Do not spin against a server that refuses at once.
                let pause = Instant::now() + Duration::from_millis(10);
                sleep_until(pause.min(end)).await;
            }
        }
    }
    st
}

/// Reads more bytes into `buf`; `Ok(0)` is the server's close.
async fn read_more(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, TxError> {
    let mut chunk = [0u8; 1024];
    let n = match timeout(limit, s.read(&mut chunk)).await {
        Err(_) => return Err(TxError::Timeout),
        Ok(Err(_)) => return Err(TxError::Io),
        Ok(Ok(n)) => n,
    };
    if buf.len() + n > MAX_CALL_BYTES {
        return Err(TxError::Overflow);
    }
    buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    Ok(n)
}

/// Position just past the first `needle` in `hay[from..]`.
pub fn find_after(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let tail = hay.get(from..)?;
    if needle.is_empty() {
        return Some(from);
    }
    tail.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p + needle.len())
}

async fn transaction(spec: &LoadSpec, buf: &mut Vec<u8>) -> Result<TxTimes, TxError> {
    let limit = spec.step_timeout;
    let t0 = Instant::now();
    let mut s = match timeout(limit, TcpStream::connect(spec.addr)).await {
        Ok(Ok(s)) => s,
        _ => return Err(TxError::Connect),
    };
    let _ = s.set_nodelay(true);
    buf.clear();
    let mut seen = 0usize;
    let mut first_prompt = Duration::ZERO;
    let mut steps = Vec::with_capacity(spec.script.steps.len());
    let mut closed = false;
    let mut last_sent = t0;
    let last = spec.script.steps.len().saturating_sub(1);
    for (k, step) in spec.script.steps.iter().enumerate() {
        // Wait for the prompt.
        loop {
            if let Some(p) = find_after(buf, seen, &step.prompt) {
                seen = p;
                break;
            }
            if read_more(&mut s, buf, limit).await? == 0 {
                return Err(TxError::ClosedEarly);
            }
        }
        if k == 0 {
            first_prompt = t0.elapsed();
        }
        let sent = Instant::now();
        last_sent = sent;
        if s.write_all(&step.answer).await.is_err() {
            return Err(TxError::Io);
        }
        // The next bytes, or the close (only right after the last answer).
        // Bytes already buffered past the prompt arrived before the answer
        // and do not count.
        let n = read_more(&mut s, buf, limit).await?;
        steps.push(sent.elapsed());
        if n == 0 {
            if k != last {
                return Err(TxError::ClosedEarly);
            }
            closed = true;
        }
    }
    while !closed {
        closed = read_more(&mut s, buf, limit).await? == 0;
    }
    let total = t0.elapsed();
    let hangup = last_sent.elapsed();
    let done = Instant::now();
    for w in &spec.script.wrong_verdict {
        if find_after(buf, seen, w).is_some() {
            return Err(TxError::WrongVerdict);
        }
    }
    Ok(TxTimes {
        first_prompt,
        hangup,
        steps,
        total,
        done,
    })
}

/// Idle dialogs held open: the streams, and how many could not be opened.
pub struct Idle {
    /// The open connections, each past its first prompt.
    pub streams: Vec<TcpStream>,
    /// connect() failures.
    pub connect_failed: usize,
    /// Closed or timed out before the prompt.
    pub no_prompt: usize,
    /// How long opening them all took.
    pub took: Duration,
}

/// Opens `n` connections (at most `parallel` connecting at once), each
/// read until `prompt` has arrived, and keeps them open without answering.
pub async fn open_idle(
    addr: SocketAddr,
    n: usize,
    prompt: &[u8],
    parallel: usize,
    limit: Duration,
) -> Idle {
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let prompt: Arc<[u8]> = Arc::from(prompt);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        let prompt = prompt.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(_permit) = gate.acquire().await else {
                return Err(true);
            };
            let mut s = match timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                _ => return Err(true),
            };
            let mut buf = Vec::with_capacity(64);
            loop {
                if find_after(&buf, 0, &prompt).is_some() {
                    return Ok(s);
                }
                match read_more(&mut s, &mut buf, limit).await {
                    Ok(n) if n > 0 => {}
                    _ => return Err(false),
                }
            }
        }));
    }
    let mut idle = Idle {
        streams: Vec::with_capacity(n),
        connect_failed: 0,
        no_prompt: 0,
        took: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => idle.streams.push(s),
            Ok(Err(true)) | Err(_) => idle.connect_failed += 1,
            Ok(Err(false)) => idle.no_prompt += 1,
        }
    }
    idle.took = start.elapsed();
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_after_is_bounded() {
        assert_eq!(find_after(b"PIN: ", 0, b"PIN: "), Some(5));
        assert_eq!(find_after(b"xxPIN: yy", 0, b"PIN: "), Some(7));
        assert_eq!(find_after(b"PIN: PIN: ", 5, b"PIN: "), Some(10));
        assert_eq!(find_after(b"PIN: ", 5, b"PIN: "), None);
        assert_eq!(find_after(b"PIN", 0, b"PIN: "), None);
        assert_eq!(find_after(b"abc", 10, b"a"), None);
        assert_eq!(find_after(b"abc", 1, b""), Some(1));
    }

    /// A local server running `serve` on every connection, for at most
    /// 20 s.
    async fn local_server<F, Fut>(serve: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(20);
            while let Ok(Ok((s, _))) = timeout_at(end, l.accept()).await {
                tokio::spawn(serve(s));
            }
        });
        addr
    }

    fn pin_script(answer: &str, wrong: &[&str]) -> Arc<Script> {
        Arc::new(Script {
            steps: vec![Step {
                prompt: b"PIN: ".to_vec(),
                answer: answer.as_bytes().to_vec(),
            }],
            wrong_verdict: wrong.iter().map(|w| w.as_bytes().to_vec()).collect(),
        })
    }

    #[tokio::test]
    async fn counts_transactions_against_the_bare_exchange() {
        let addr = local_server(|s| async move {
            let _ = crate::bare::dialog(s, &[b"PIN: ".to_vec()], b"OK\r\n").await;
        })
        .await;
        let spec = LoadSpec {
            addr,
            callers: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            step_timeout: Duration::from_secs(5),
            script: pin_script("4242\r\n", &["nope"]),
        };
        let mut r = run(&spec).await;
        assert!(r.completed > 0, "{r:?}");
        assert_eq!(r.errors, Errors::default());
        assert!(r.tx_per_s() > 0.0);
        assert!(r.prompt.quantile(0.99).is_some());
        assert!(r.transaction.quantile(0.5).is_some());
        let mut s = sequential(addr, pin_script("4242\r\n", &[]), 3, Duration::from_secs(5)).await;
        assert_eq!(s.completed, 3);
        assert!(s.hangup.quantile(0.5).is_some());
    }

    #[tokio::test]
    async fn classifies_failures() {
        // Closes before any prompt ("All lines are busy").
        let busy = local_server(|mut s| async move {
            let _ = s.write_all(b"All lines are busy.\r\n").await;
        })
        .await;
        let r = sequential(busy, pin_script("1\r\n", &[]), 2, Duration::from_secs(5)).await;
        assert_eq!(r.completed, 0);
        assert_eq!(r.errors.closed_early, 2);
        // A refusal where a grant was expected.
        let refuse = local_server(|s| async move {
            let _ = crate::bare::dialog(s, &[b"PIN: ".to_vec()], b"Login incorrect\r\n").await;
        })
        .await;
        let r = sequential(
            refuse,
            pin_script("1\r\n", &["Login incorrect"]),
            2,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.errors.wrong_verdict, 2);
        // Never prompts: the step timeout ends the call.
        let silent = local_server(|s| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(s);
        })
        .await;
        let r = sequential(
            silent,
            pin_script("1\r\n", &[]),
            1,
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(r.errors.timeout, 1);
        // Idle dialogs are held past their prompt.
        let addr = local_server(|s| async move {
            let _ = crate::bare::dialog(s, &[b"PIN: ".to_vec()], b"OK\r\n").await;
        })
        .await;
        let idle = open_idle(addr, 20, b"PIN: ", 4, Duration::from_secs(5)).await;
        assert_eq!(idle.streams.len(), 20);
        assert_eq!(idle.connect_failed + idle.no_prompt, 0);
    }

    #[test]
    fn errors_describe() {
        let mut e = Errors::default();
        assert_eq!(e.describe(), "0");
        e.connect = 2;
        e.wrong_verdict = 1;
        assert_eq!(e.describe(), "connect 2, wrong-verdict 1");
        assert_eq!(e.total(), 3);
    }
}
