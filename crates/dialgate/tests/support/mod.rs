//! Starting a real `dialgate serve` for a test, and talking to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ppp::link::{Event, Link, LinkConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_dialgate");

/// A test's data directory and config.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// A config with the given `[[group]]` blocks (TOML text).
    pub fn new(groups: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dialgate.toml");
        std::fs::write(&config, groups).unwrap();
        Setup { dir, config }
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// `dialgate <args>` with this setup's config and data dir.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args);
        c
    }

    pub fn add_user(&self, name: &str, password: &str) {
        self.add_user_with(name, password, &[]);
    }

    /// `dialgate user add NAME --password-stdin` with `flags` (for example
    /// `--allow-chap-md5`).
    pub fn add_user_with(&self, name: &str, password: &str, flags: &[&str]) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        args.extend_from_slice(flags);
        let mut c = self.cmd(&args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `dialgate log --json` records, as JSON values.
    pub fn records(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["log", "--json"];
        args.extend_from_slice(extra);
        let out = self.cmd(&args).output().unwrap();
        assert!(
            out.status.success(),
            "log: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until at least `n` records match `extra`, returning them.
    pub fn wait_records(
        &self,
        extra: &[&str],
        n: usize,
        limit: Duration,
    ) -> Vec<serde_json::Value> {
        let end = Instant::now() + limit;
        loop {
            let r = self.records(extra);
            if r.len() >= n || Instant::now() > end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn start(&self) -> Server {
        Server::start(self)
    }
}

/// A running server; SIGTERM and wait on drop.
pub struct Server {
    pub child: Option<Child>,
    /// `group name -> address or link` from the server's first lines.
    pub endpoints: Vec<(String, String)>,
    pub stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(s: &Setup) -> Server {
        Server::start_with_env(s, &[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with_env(s: &Setup, env: &[(&str, &str)]) -> Server {
        let mut c = s.cmd(&["serve"]);
        c.envs(env.iter().copied());
        c.env("DIALGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("DIALGATE_TEST_VERBOSE").is_some() {
                    eprintln!("server: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut endpoints = Vec::new();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let line = rx
                .recv_timeout(end.saturating_duration_since(Instant::now()))
                .expect("server did not say it was ready");
            if let Some(rest) = line.split("group ").nth(1) {
                let name = rest.split(':').next().unwrap_or("").to_string();
                if let Some(a) = rest.split("listening on ").nth(1) {
                    endpoints.push((name, a.split(',').next().unwrap().trim().to_string()));
                } else if let Some(a) = rest.split("pty port at ").nth(1) {
                    endpoints.push((name, a.split(',').next().unwrap().trim().to_string()));
                }
            }
            if line.contains("the log:") {
                break;
            }
        }
        Server {
            child: Some(child),
            endpoints,
            stderr: rx,
        }
    }

    pub fn addr(&self, group: &str) -> SocketAddr {
        self.endpoint(group).parse().unwrap()
    }

    pub fn endpoint(&self, group: &str) -> String {
        self.endpoints
            .iter()
            .find(|(n, _)| n == group)
            .unwrap_or_else(|| panic!("no group {group} in {:?}", self.endpoints))
            .1
            .clone()
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw TCP caller with a bounded read.
pub struct Caller {
    pub s: TcpStream,
    pub seen: Vec<u8>,
}

impl Caller {
    pub fn connect(addr: SocketAddr) -> Caller {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Caller {
            s,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Reads until `needle` appears (after what was already consumed) or the
    /// limit passes; returns whether it appeared.
    pub fn expect(&mut self, needle: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                self.seen.drain(..pos + needle.len());
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            match self.s.read(&mut buf) {
                Ok(0) => return find(&self.seen, needle.as_bytes()).is_some(),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return false,
            }
        }
    }

    /// Reads until `needle` and returns what came before it (both are
    /// consumed), or `None` at the limit.
    pub fn until(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let before = String::from_utf8_lossy(&self.seen[..pos]).into_owned();
                self.seen.drain(..pos + needle.len());
                return Some(before);
            }
            if Instant::now() > end {
                return None;
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until the server closes the connection (true) or the limit.
    pub fn wait_closed(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where `prog` is: itself when absolute, else on PATH or in `/usr/sbin`
/// (where Debian puts `chat`, `ip` and `freeradius`, also when PATH lacks
/// it).
pub fn find_tool(prog: &str) -> Option<PathBuf> {
    if prog.starts_with('/') {
        return Path::new(prog).exists().then(|| PathBuf::from(prog));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The Debian package that installs `prog` (for the failure message).
fn debian_package(prog: &str) -> &str {
    match prog.rsplit('/').next().unwrap_or(prog) {
        "chat" | "pppd" => "ppp",
        "ip" => "iproute2",
        "ping" => "iputils-ping",
        "cc" | "gcc" => "gcc",
        "kill" => "procps",
        "chattr" => "e2fsprogs",
        other => other,
    }
}

/// Fails the calling test unless `prog` is installed; returns its path. A
/// test that cannot run here fails, it never passes: `scripts/test`
/// installs every tool the tests use.
pub fn require_tool(prog: &str) -> PathBuf {
    find_tool(prog).unwrap_or_else(|| {
        panic!(
            "`{prog}` is not installed, so this test cannot run: install the Debian \
             package `{}` (`bash scripts/test` installs it when run as root)",
            debian_package(prog)
        )
    })
}

/// Fails the calling test unless it runs as root (`why`: what needs it).
pub fn require_root(test: &str, why: &str) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "{test} needs root ({why}), so it cannot run here: run the tests as root \
         (`sudo bash scripts/test`)"
    );
}

/// Fails the calling test unless it can make network namespaces and tun
/// devices: root, `ip` (iproute2) and `/dev/net/tun`.
pub fn require_netns(test: &str) {
    require_root(test, "network namespaces, veth pairs and tun devices");
    require_tool("ip");
    assert!(
        Path::new("/dev/net/tun").exists(),
        "{test}: /dev/net/tun is missing, so this test cannot run: load the tun \
         module (`modprobe tun`) or give the container the device"
    );
}

/// A group block for tests: `kind` tcp/telnet on port 0, users module,
/// and an exec hand-off that prints `granted USER on DEVICE`.
pub fn group(name: &str, kind: &str, extra: &str) -> String {
    let endpoint = if kind == "pty" {
        String::new()
    } else {
        "listen = \"127.0.0.1:0\"\n".to_string()
    };
    format!(
        r#"[[group]]
name = "{name}"
kind = "{kind}"
{endpoint}{extra}
[group.module]
kind = "users"
banner = "Test banner\r\n"
tries = 2
prompt_timeout = 30

[group.handoff]
kind = "exec"
program = "/bin/sh"
args = ['-c', 'printf "granted %s on %s\r\n" "$DIALGATE_USER" "$DIALGATE_DEVICE"']
"#
    )
}

/// Runs `chat -v -s -f script` on the tty at `path` (stdin and stdout),
/// for at most 30 s.
pub fn chat_on_tty(path: &Path, script: &Path) -> std::process::Output {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Command::new("timeout")
        .arg("30")
        .arg("chat")
        .args(["-v", "-s", "-f"])
        .arg(script)
        .stdin(tty.try_clone().unwrap())
        .stdout(tty)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

// ---- PPP callers, network namespaces ----

pub const NS_ENV: &str = "DIALGATE_TEST_IN_NETNS";

/// Runs the calling test again inside a fresh network namespace; returns
/// true when the caller is that inner run and should do the work.
pub fn in_netns(test: &str) -> bool {
    if std::env::var_os(NS_ENV).is_some() {
        let _ = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        return true;
    }
    require_netns(test);
    let ns = format!(
        "dgppp-{}-{}",
        std::process::id(),
        &test[..test.len().min(40)]
    );
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _guard = Ns(ns.clone());
    let out = Command::new("timeout")
        .arg("120")
        .args(["ip", "netns", "exec", &ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(NS_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "inner run failed:\n{text}"
    );
    false
}

/// Our PPP stack in the client role, for `user` with `password`.
pub fn client_link(user: &[u8], password: &str) -> Link {
    Link::new(
        LinkConfig::client(Some((user, password))),
        Instant::now(),
        Box::new(|b: &mut [u8]| rand::fill(b)),
    )
    .unwrap()
}

/// Our PPP client on a line whose reads time out (a socket with a read
/// timeout, a [`PtyLine`]): runs until `until` says stop or the limit
/// passes; returns every event seen.
pub fn pump<S: Read + Write>(
    link: &mut Link,
    s: &mut S,
    limit: Duration,
    mut until: impl FnMut(&Event, &mut Link) -> bool,
) -> Vec<Event> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        while let Some(f) = link.poll_transmit() {
            if s.write_all(&f).is_err() {
                return seen;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => {
                link.handle_hangup(Instant::now());
            }
            Ok(n) => link.handle_input(Instant::now(), &buf[..n]),
            Err(_) => {}
        }
        link.handle_timeout(Instant::now());
        while let Some(ev) = link.poll_event() {
            let stop = until(&ev, link);
            let down = matches!(ev, Event::Down { .. });
            seen.push(ev);
            if stop || down {
                while let Some(f) = link.poll_transmit() {
                    let _ = s.write_all(&f);
                }
                return seen;
            }
        }
    }
    seen
}

/// A caller's pty (a fake modem's far end, a pty port's link), opened so
/// reads give up after 20 ms: for [`pump`] and prompt reading.
pub struct PtyLine(pub std::fs::File);

impl PtyLine {
    pub fn open(path: &Path) -> PtyLine {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        PtyLine(f)
    }

    /// Reads until `needle` appeared (true) or `limit` passed; what was
    /// read goes into `seen`.
    pub fn expect(&mut self, needle: &str, seen: &mut Vec<u8>, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut b = [0u8; 512];
        while find(seen, needle.as_bytes()).is_none() {
            if Instant::now() >= end {
                return false;
            }
            if let Ok(n) = self.read(&mut b) {
                seen.extend_from_slice(&b[..n]);
            }
        }
        true
    }

    pub fn send(&mut self, b: &[u8]) {
        self.write_all(b).unwrap();
    }
}

impl Read for PtyLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.0.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u8));
        match self.0.read(buf) {
            // A pty's slave reads 0 bytes only when nothing is there.
            Ok(0) => Err(std::io::ErrorKind::WouldBlock.into()),
            r => r,
        }
    }
}

impl Write for PtyLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A PPP group `ppp0` on TCP after the `users` dialog (`tries = 1`), with
/// `[network]` on `dgp0` and a two-address pool; `auth` lists the methods
/// (`"pap", "chap-md5"`), `extra` goes into `[group.handoff]` (and may open
/// `[group.handoff.radius]`). alice (s3cret) and bob (b0bpw) are users
/// with CHAP-MD5 allowed.
pub fn ppp_group_setup(auth: &str, extra: &str) -> Setup {
    let cfg = format!(
        r#"[network]
tun = "dgp0"
address = "10.250.1.1/24"
dns = ["10.250.1.1"]

[[group]]
name = "ppp0"
kind = "tcp"
listen = "127.0.0.1:0"

[group.module]
kind = "users"
tries = 1

[group.handoff]
kind = "ppp"
auth = [{auth}]
pool = "10.250.1.10-10.250.1.11"
{extra}
"#
    );
    let s = Setup::new(&cfg);
    s.add_user_with("alice", "s3cret", &["--allow-chap-md5"]);
    s.add_user_with("bob", "b0bpw", &["--allow-chap-md5"]);
    s
}

/// Passes the users dialog as `user`, returning the line for PPP (with a
/// short read timeout: whatever else the server sent before PPP is noise
/// to the deframer).
pub fn dial_in(addr: SocketAddr, user: &str, password: &str, limit: Duration) -> TcpStream {
    let mut c = Caller::connect(addr);
    assert!(c.expect("Username: ", limit));
    c.send(format!("{user}\r").as_bytes());
    assert!(c.expect("Password: ", limit));
    c.send(format!("{password}\r").as_bytes());
    c.s.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    c.s
}
