//! `dialgate dial`: the caller's side. Connects to a dial-in server over
//! TCP, telnet or a serial device/pty, holds the dialog (in the terminal,
//! from a chat-like script, or not at all), then runs PPP in the client role
//! and carries IPv4 packets between the link and a tun device of its own
//! until interrupted or hung up. The exit code says how the call ended.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use ports::TelnetStream;
use ports::tun::Tun;
use ppp::link::{DownCause, Event, Link, LinkConfig, Phase};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::signal::unix::{Signal, SignalKind, signal};
use zeroize::Zeroizing;

const EXIT_CODES: &str = "\
Exit codes:
  0  the call ended cleanly by our side (Ctrl-C, SIGTERM, Ctrl-] q)
  1  local error (unreadable script or password file, terminal, runtime)
  2  invalid command line
  3  could not connect (TCP/telnet connect failed, device did not open)
  4  the dialog script failed (ABORT string seen, or an expect timed out)
  5  refused: the server hung up during the dialog or before PPP began
  6  PPP authentication failed
  7  PPP negotiation failed (LCP/IPCP failed, no answer, not up in time)
  8  the link was dropped by the peer (hang-up, Terminate, lost keepalive)
  9  tun error (cannot create or configure the tun, or it failed)";

/// How a call ended: the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// We hung up cleanly.
    Clean = 0,
    /// A local problem (files, terminal, runtime).
    Local = 1,
    /// A bad command line (clap uses 2 as well).
    Usage = 2,
    /// The connection could not be made.
    Connect = 3,
    /// The dialog script failed or timed out.
    Script = 4,
    /// The server hung up during the dialog (verdict refused).
    Refused = 5,
    /// PPP authentication failed.
    PppAuth = 6,
    /// PPP negotiation failed.
    PppNegotiation = 7,
    /// The peer dropped the link.
    Dropped = 8,
    /// The tun device failed.
    Tun = 9,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// `dialgate dial` arguments.
#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("target").required(true).args(["tcp", "telnet", "device"])),
    after_help = EXIT_CODES
)]
pub struct DialArgs {
    /// Call a raw TCP port (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// Call a telnet port (HOST:PORT); BINARY is negotiated before PPP.
    #[arg(long, value_name = "HOST:PORT")]
    telnet: Option<String>,
    /// Open a serial device or pty (made raw).
    #[arg(long, value_name = "PATH")]
    device: Option<PathBuf>,
    /// The line speed of a serial `--device` (bits per second: 9600, 19200,
    /// 38400, 57600, 115200, 230400, 460800, 921600). Default: unchanged.
    #[arg(long, value_name = "BPS", requires = "device", value_parser = parse_speed)]
    speed: Option<u32>,
    /// Follow a chat-like script of expect/send pairs instead of the
    /// interactive terminal (`TIMEOUT n`, `ABORT text`, quoting and escapes
    /// as in chat; sends end with CR unless `\c`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["no_dialog", "ppp_after"])]
    script: Option<PathBuf>,
    /// No dialog: PPP at once (dedicated PPP ports).
    #[arg(long)]
    no_dialog: bool,
    /// Interactive dialog: start PPP when the server sends this text (also
    /// Ctrl-] p at any time).
    #[arg(long, value_name = "TEXT", conflicts_with = "no_dialog")]
    ppp_after: Option<String>,
    /// The PPP user name (without it, no PPP authentication is offered).
    #[arg(long)]
    user: Option<String>,
    /// A file whose first line is the PPP password (else the environment
    /// variable DIALGATE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The tun device to create (`%d`: the first free number).
    #[arg(long, default_value = "dialgate-c%d")]
    tun: String,
    /// The tun's MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: u16,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 15)]
    connect_timeout: u64,
    /// Seconds from the start of PPP until IPCP must be up.
    #[arg(long, default_value_t = 60)]
    ppp_timeout: u64,
    /// Do not copy the scripted dialog to stderr.
    #[arg(long)]
    quiet: bool,
}

/// `dialgate dial`.
pub fn main(args: DialArgs) -> ExitCode {
    crate::logging::init("warn");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(format_args!("cannot start a runtime: {e}"));
            return Exit::Local.into();
        }
    };
    let code = rt.block_on(run(args));
    code.into()
}

/// A message on stderr. A closed stderr is no reason to stop the call.
fn say(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "dialgate dial: {msg}");
}

async fn run(args: DialArgs) -> Exit {
    // Everything local is checked before we call.
    let script = match &args.script {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => match parse_script(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    say(format_args!("script {}: {e}", p.display()));
                    return Exit::Local;
                }
            },
            Err(e) => {
                say(format_args!("cannot read the script {}: {e}", p.display()));
                return Exit::Local;
            }
        },
        None => None,
    };
    let password = match read_password(args.user.is_some(), args.password_file.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            say(e);
            return if args.password_file.is_some() {
                Exit::Local
            } else {
                Exit::Usage
            };
        }
    };
    let mut sigs = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            say(format_args!("cannot handle signals: {e}"));
            return Exit::Local;
        }
    };
    let tun = match Tun::create(&args.tun, args.mtu) {
        Ok(t) => t,
        Err(e) => {
            say(format_args!("tun error: {e}"));
            return Exit::Tun;
        }
    };

    let limit = Duration::from_secs(args.connect_timeout.max(1));
    let mut line = match connect(&args, limit).await {
        Ok(l) => l,
        Err(e) => {
            say(format_args!("could not connect: {e}"));
            return Exit::Connect;
        }
    };

    let dialog = if let Some(steps) = script {
        run_script(&mut line, &steps, args.quiet, &mut sigs).await
    } else if args.no_dialog {
        Ok(Vec::new())
    } else {
        run_terminal(&mut line, args.ppp_after.as_deref(), &mut sigs).await
    };
    let backlog = match dialog {
        Ok(b) => b,
        Err(exit) => return exit,
    };

    if let Line::Telnet(t) = &mut line {
        t.request_binary();
        match t.wait_binary(Duration::from_secs(10)).await {
            Ok(true) => {}
            Ok(false) => say("telnet BINARY was not agreed both ways; PPP may be corrupted"),
            Err(e) => {
                say(format_args!(
                    "the line failed while negotiating BINARY: {e}"
                ));
                return Exit::Dropped;
            }
        }
    }

    let creds = match (&args.user, &password) {
        (Some(u), Some(p)) => Some((u.as_bytes(), p.as_str())),
        _ => None,
    };
    let ppp = PppRun {
        tun: &tun,
        creds,
        backlog,
        setup_limit: Duration::from_secs(args.ppp_timeout.max(1)),
    };
    let exit = ppp.run(&mut line, &mut sigs).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), line.shutdown()).await;
    exit
}

/// The password for `--user`: `--password-file`'s first line, else
/// `DIALGATE_PASSWORD`. Never a command-line argument.
fn read_password(need: bool, file: Option<&Path>) -> Result<Option<Zeroizing<String>>, String> {
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read the password file {}: {e}", f.display()))?,
        );
        let first = text.lines().next().unwrap_or("");
        return Ok(Some(Zeroizing::new(first.to_string())));
    }
    if let Some(v) = std::env::var_os("DIALGATE_PASSWORD") {
        let Some(v) = v.to_str() else {
            return Err("DIALGATE_PASSWORD is not valid UTF-8".into());
        };
        return Ok(Some(Zeroizing::new(v.to_string())));
    }
    if need {
        return Err("--user needs a password: --password-file FILE or DIALGATE_PASSWORD".into());
    }
    Ok(None)
}

/// SIGINT and SIGTERM, handled (so they hang up cleanly).
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The line.

/// The connection to the server.
enum Line {
    Tcp(TcpStream),
    Telnet(Box<TelnetStream<TcpStream>>),
    Device(Device),
}

async fn connect(args: &DialArgs, limit: Duration) -> Result<Line, String> {
    if let Some(path) = &args.device {
        return Device::open(path, args.speed).map(Line::Device);
    }
    let (addr, telnet) = match (&args.tcp, &args.telnet) {
        (Some(a), _) => (a.as_str(), false),
        (None, Some(a)) => (a.as_str(), true),
        (None, None) => return Err("no target given".into()),
    };
    let s = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("{addr}: {e}")),
        Err(_) => return Err(format!("{addr}: no answer within {}s", limit.as_secs())),
    };
    let _ = s.set_nodelay(true);
    Ok(if telnet {
        Line::Telnet(Box::new(TelnetStream::with_machine(
            s,
            telnet::Telnet::client(),
        )))
    } else {
        Line::Tcp(s)
    })
}

impl AsyncRead for Line {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Line::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Line::Telnet(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Line::Device(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Line {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Line::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Line::Telnet(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Line::Device(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Line::Tcp(s) => Pin::new(s).poll_flush(cx),
            Line::Telnet(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Line::Device(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Line::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Line::Telnet(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Line::Device(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A serial device or pty slave in raw mode, non-blocking.
struct Device {
    fd: AsyncFd<std::fs::File>,
}

impl Device {
    fn open(path: &Path, speed: Option<u32>) -> Result<Device, String> {
        use nix::sys::termios::{self, ControlFlags, SetArg, SpecialCharacterIndices};
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut t = termios::tcgetattr(&file)
            .map_err(|e| format!("{}: not a terminal device ({e})", path.display()))?;
        termios::cfmakeraw(&mut t);
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        if let Some(bps) = speed {
            let rate = baud_rate(bps).ok_or_else(|| format!("unsupported speed {bps}"))?;
            termios::cfsetspeed(&mut t, rate)
                .map_err(|e| format!("{}: cannot set {bps} bps ({e})", path.display()))?;
        }
        termios::tcsetattr(&file, SetArg::TCSANOW, &t)
            .map_err(|e| format!("{}: cannot make it raw ({e})", path.display()))?;
        let fd = register(file).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Device { fd })
    }
}

#[allow(unsafe_code)]
fn register(file: std::fs::File) -> std::io::Result<AsyncFd<std::fs::File>> {
    // SAFETY: `file` is an open descriptor owned by the `File` moved into the
    // `AsyncFd`; nothing else closes or replaces it, and its `as_raw_fd`
    // returns that same descriptor until the `AsyncFd` drops it.
    let fd = unsafe { AsyncFd::register(file) }?;
    Ok(fd)
}

/// The termios rate of a line speed in bits per second.
fn baud_rate(bps: u32) -> Option<nix::sys::termios::BaudRate> {
    use nix::sys::termios::BaudRate as B;
    Some(match bps {
        9600 => B::B9600,
        19200 => B::B19200,
        38400 => B::B38400,
        57600 => B::B57600,
        115_200 => B::B115200,
        230_400 => B::B230400,
        460_800 => B::B460800,
        921_600 => B::B921600,
        _ => return None,
    })
}

fn parse_speed(s: &str) -> Result<u32, String> {
    let bps: u32 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    baud_rate(bps)
        .map(|_| bps)
        .ok_or_else(|| format!("unsupported speed {bps} (9600 to 921600, the standard rates)"))
}

/// A tty whose other side went away reads EOF or fails with EIO: a hang-up.
fn is_hangup(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}

impl AsyncRead for Device {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| {
                let mut r: &std::fs::File = f.get_ref();
                r.read(unfilled)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if is_hangup(&e) => return Poll::Ready(Ok(())),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Device {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| {
                let mut w: &std::fs::File = f.get_ref();
                w.write(buf)
            }) {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------
// The script.

/// One step of a dial script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `TIMEOUT n`: the limit of the following expects.
    Timeout(Duration),
    /// `ABORT text`: fail the script when the line shows `text`.
    Abort(Vec<u8>),
    /// Wait for these bytes (empty: nothing to wait for).
    Expect(Vec<u8>),
    /// Send this (with the CR already appended unless `\c`).
    Send(Vec<SendPart>),
}

/// A piece of a send string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendPart {
    /// Bytes to write.
    Bytes(Vec<u8>),
    /// A pause (`\d` one second, `\p` a tenth).
    Delay(Duration),
}

/// The expect limit before any `TIMEOUT` (chat's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);
/// The largest `TIMEOUT` accepted, in seconds.
const MAX_TIMEOUT: u64 = 24 * 3600;

/// A token of the script: its raw text (escapes not yet applied), whether
/// it was quoted, and its line.
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let mut chars = l.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let Some(&c) = chars.peek() else { break };
            if c == '#' {
                break;
            }
            let mut tok = String::new();
            if c == '\'' || c == '"' {
                chars.next();
                let mut closed = false;
                while let Some(ch) = chars.next() {
                    if ch == '\\' {
                        tok.push(ch);
                        match chars.next() {
                            Some(n) => tok.push(n),
                            None => return Err(format!("line {line}: a `\\` ends the line")),
                        }
                    } else if ch == c {
                        closed = true;
                        break;
                    } else {
                        tok.push(ch);
                    }
                }
                if !closed {
                    return Err(format!("line {line}: unterminated {c}quote{c}"));
                }
                out.push(Token {
                    text: tok,
                    quoted: true,
                    line,
                });
            } else {
                while let Some(ch) = chars.next_if(|c| !c.is_whitespace()) {
                    tok.push(ch);
                    if ch == '\\' {
                        match chars.next() {
                            Some(n) => tok.push(n),
                            None => return Err(format!("line {line}: a `\\` ends the line")),
                        }
                    }
                }
                out.push(Token {
                    text: tok,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(out)
}

/// Applies chat's escapes to a token. For a send string returns the parts
/// and whether the final CR is wanted; expect strings allow no pauses and
/// no `\c`.
fn unescape(tok: &Token, send: bool) -> Result<(Vec<SendPart>, bool), String> {
    let mut parts = Vec::new();
    let mut cur = Vec::new();
    let mut cr = true;
    let mut chars = tok.text.chars();
    let line = tok.line;
    let only_send = |what: &str| -> Result<(), String> {
        if send {
            Ok(())
        } else {
            Err(format!("line {line}: {what} is only for send strings"))
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') => cur.push(0x08),
                Some('c') => {
                    only_send("\\c")?;
                    cr = false;
                }
                Some('d') => {
                    only_send("\\d")?;
                    parts.push(SendPart::Bytes(std::mem::take(&mut cur)));
                    parts.push(SendPart::Delay(Duration::from_secs(1)));
                }
                Some('p') => {
                    only_send("\\p")?;
                    parts.push(SendPart::Bytes(std::mem::take(&mut cur)));
                    parts.push(SendPart::Delay(Duration::from_millis(100)));
                }
                Some('n') => cur.push(b'\n'),
                Some('N') => cur.push(0),
                Some('r') => cur.push(b'\r'),
                Some('s') => cur.push(b' '),
                Some('t') => cur.push(b'\t'),
                Some(ch @ ('\\' | '\'' | '"' | '^')) => cur.push(ch as u8),
                Some(other) => {
                    return Err(format!("line {line}: unsupported escape `\\{other}`"));
                }
                None => return Err(format!("line {line}: a `\\` ends the string")),
            },
            '^' => match chars.next() {
                Some(ch) if ch.is_ascii() && ch != '\0' => cur.push((ch as u8) & 0x1f),
                _ => {
                    return Err(format!(
                        "line {line}: `^` needs an ASCII character after it"
                    ));
                }
            },
            c => {
                let mut b = [0u8; 4];
                cur.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    if send && cr {
        cur.push(b'\r');
    }
    parts.push(SendPart::Bytes(cur));
    parts.retain(|p| !matches!(p, SendPart::Bytes(b) if b.is_empty()));
    Ok((parts, cr))
}

fn flatten(parts: Vec<SendPart>) -> Vec<u8> {
    parts
        .into_iter()
        .flat_map(|p| match p {
            SendPart::Bytes(b) => b,
            SendPart::Delay(_) => Vec::new(),
        })
        .collect()
}

/// Parses a chat-like script: whitespace-separated strings (quoted with
/// `'` or `"` to hold spaces; `#` starts a comment), alternately expected
/// and sent; `TIMEOUT n` sets the limit of the following expects in
/// seconds, `ABORT text` adds a string that fails the script. Escapes:
/// `\b \n \N \r \s \t \\ \' \" \^`, `^X` for a control character, and in
/// send strings `\c` (no final CR), `\d` (1 s pause), `\p` (0.1 s pause).
pub fn parse_script(text: &str) -> Result<Vec<Step>, String> {
    let toks = tokenize(text)?;
    let mut steps = Vec::new();
    let mut expect_next = true;
    let mut it = toks.into_iter();
    while let Some(t) = it.next() {
        if !t.quoted && (t.text == "TIMEOUT" || t.text == "ABORT") {
            let Some(arg) = it.next() else {
                return Err(format!("line {}: {} needs an argument", t.line, t.text));
            };
            if t.text == "TIMEOUT" {
                let n: u64 = arg
                    .text
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_TIMEOUT).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "line {}: TIMEOUT wants whole seconds from 1 to {MAX_TIMEOUT}, not {:?}",
                            arg.line, arg.text
                        )
                    })?;
                steps.push(Step::Timeout(Duration::from_secs(n)));
            } else {
                let (parts, _) = unescape(&arg, false)?;
                let b = flatten(parts);
                if b.is_empty() {
                    return Err(format!("line {}: an empty ABORT string", arg.line));
                }
                steps.push(Step::Abort(b));
            }
            continue;
        }
        if expect_next {
            let (parts, _) = unescape(&t, false)?;
            steps.push(Step::Expect(flatten(parts)));
        } else {
            let (parts, _) = unescape(&t, true)?;
            steps.push(Step::Send(parts));
        }
        expect_next = !expect_next;
    }
    Ok(steps)
}

/// What is kept of the line's output while expecting.
const SEEN_CAP: usize = 64 * 1024;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Runs the script; returns what the line sent after the last match.
async fn run_script(
    line: &mut Line,
    steps: &[Step],
    quiet: bool,
    sigs: &mut Signals,
) -> Result<Vec<u8>, Exit> {
    let mut timeout = DEFAULT_TIMEOUT;
    let mut aborts: Vec<Vec<u8>> = Vec::new();
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut err = std::io::stderr();
    for step in steps {
        match step {
            Step::Timeout(t) => timeout = *t,
            Step::Abort(a) => aborts.push(a.clone()),
            Step::Send(parts) => {
                for p in parts {
                    match p {
                        SendPart::Bytes(b) => {
                            let w = async {
                                line.write_all(b).await?;
                                line.flush().await
                            };
                            tokio::select! {
                                r = tokio::time::timeout(timeout, w) => match r {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => {
                                        say(format_args!("the line failed during the dialog: {e}"));
                                        return Err(Exit::Refused);
                                    }
                                    Err(_) => {
                                        say("the line did not take our data in time");
                                        return Err(Exit::Script);
                                    }
                                },
                                _ = sigs.recv() => return Err(interrupted()),
                            }
                        }
                        SendPart::Delay(d) => tokio::select! {
                            _ = tokio::time::sleep(*d) => {}
                            _ = sigs.recv() => return Err(interrupted()),
                        },
                    }
                }
            }
            Step::Expect(needle) => {
                let end = tokio::time::Instant::now() + timeout;
                loop {
                    if let Some(a) = aborts.iter().find(|a| find(&seen, a).is_some()) {
                        say(format_args!(
                            "script aborted: the line said {:?}",
                            String::from_utf8_lossy(a)
                        ));
                        return Err(Exit::Script);
                    }
                    if let Some(pos) = find(&seen, needle) {
                        seen.drain(..pos + needle.len());
                        break;
                    }
                    tokio::select! {
                        r = line.read(&mut buf) => match r {
                            Ok(0) | Err(_) => {
                                say(format_args!(
                                    "the server hung up during the dialog while we expected {:?}",
                                    String::from_utf8_lossy(needle)
                                ));
                                return Err(Exit::Refused);
                            }
                            Ok(n) => {
                                let got = &buf[..n];
                                if !quiet {
                                    let _ = err.write_all(got);
                                    let _ = err.flush();
                                }
                                seen.extend_from_slice(got);
                                if seen.len() > SEEN_CAP {
                                    let cut = seen.len() - SEEN_CAP / 2;
                                    seen.drain(..cut);
                                }
                            }
                        },
                        _ = tokio::time::sleep_until(end) => {
                            say(format_args!(
                                "script failed: {:?} did not come within {}s",
                                String::from_utf8_lossy(needle),
                                timeout.as_secs()
                            ));
                            return Err(Exit::Script);
                        }
                        _ = sigs.recv() => return Err(interrupted()),
                    }
                }
            }
        }
    }
    if !quiet {
        let _ = err.write_all(b"\n");
    }
    Ok(seen)
}

fn interrupted() -> Exit {
    say("interrupted: hanging up");
    Exit::Clean
}

// ---------------------------------------------------------------------------
// The interactive terminal.

/// The escape key of the terminal window: Ctrl-].
const ESCAPE: u8 = 0x1d;

/// The terminal in raw mode; restored when dropped (every exit path,
/// panics included).
struct RawTerm {
    saved: nix::sys::termios::Termios,
}

impl RawTerm {
    fn enter() -> Option<RawTerm> {
        use nix::sys::termios::{self, SetArg};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).ok()?;
        Some(RawTerm { saved })
    }
}

impl Drop for RawTerm {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSADRAIN,
            &self.saved,
        );
    }
}

/// Keystrokes from stdin, read on a thread of their own (a blocked read
/// there never holds up the exit).
fn keyboard() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// What the chord state machine decided about a chunk of keystrokes.
#[derive(Debug, PartialEq, Eq)]
enum Keys {
    /// Send these bytes to the line.
    Send(Vec<u8>),
    /// Send these, then start PPP.
    Ppp(Vec<u8>),
    /// Send these, then hang up.
    Quit(Vec<u8>),
    /// Send these, then show the help.
    Help(Vec<u8>),
}

/// Splits keystrokes into line bytes and the Ctrl-] chords: `p` starts PPP,
/// `q` hangs up, Ctrl-] again sends one Ctrl-], anything else shows help.
fn keys(pending: &mut bool, input: &[u8]) -> Keys {
    let mut out = Vec::new();
    for &b in input {
        if *pending {
            *pending = false;
            match b {
                b'p' | b'P' => return Keys::Ppp(out),
                b'q' | b'Q' | b'.' => return Keys::Quit(out),
                ESCAPE => out.push(ESCAPE),
                _ => return Keys::Help(out),
            }
        } else if b == ESCAPE {
            *pending = true;
        } else {
            out.push(b);
        }
    }
    Keys::Send(out)
}

const TERMINAL_HELP: &str =
    "[dialgate dial: Ctrl-] p starts PPP, Ctrl-] q hangs up, Ctrl-] Ctrl-] sends Ctrl-]]\r\n";

/// The terminal window: keystrokes to the line, the line to the screen,
/// until Ctrl-] p or `ppp_after`; returns what followed the trigger.
async fn run_terminal(
    line: &mut Line,
    ppp_after: Option<&str>,
    sigs: &mut Signals,
) -> Result<Vec<u8>, Exit> {
    let raw = RawTerm::enter();
    let mut kb = keyboard();
    let mut kb_open = true;
    let mut out = std::io::stdout();
    let mut pending = false;
    let mut window: Vec<u8> = Vec::new();
    let trigger = ppp_after.map(str::as_bytes).filter(|t| !t.is_empty());
    let mut buf = vec![0u8; 4096];
    let _ = out.write_all(TERMINAL_HELP.as_bytes());
    let _ = out.flush();
    let result = loop {
        tokio::select! {
            r = line.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    drop(raw);
                    say("the server hung up during the dialog");
                    return Err(Exit::Refused);
                }
                Ok(n) => {
                    let got = &buf[..n];
                    let _ = out.write_all(got);
                    let _ = out.flush();
                    if let Some(t) = trigger {
                        window.extend_from_slice(got);
                        if let Some(pos) = find(&window, t) {
                            break Ok(window.split_off(pos + t.len()));
                        }
                        let keep = t.len().saturating_sub(1);
                        if window.len() > keep {
                            window.drain(..window.len() - keep);
                        }
                    }
                }
            },
            k = kb.recv(), if kb_open => match k {
                None => kb_open = false,
                Some(bytes) => {
                    let (send, next) = match keys(&mut pending, &bytes) {
                        Keys::Send(b) => (b, None),
                        Keys::Ppp(b) => (b, Some(true)),
                        Keys::Quit(b) => (b, Some(false)),
                        Keys::Help(b) => {
                            let _ = out.write_all(TERMINAL_HELP.as_bytes());
                            let _ = out.flush();
                            (b, None)
                        }
                    };
                    if !send.is_empty() && line.write_all(&send).await.is_err() {
                        drop(raw);
                        say("the server hung up during the dialog");
                        return Err(Exit::Refused);
                    }
                    let _ = line.flush().await;
                    match next {
                        Some(true) => break Ok(Vec::new()),
                        Some(false) => break Err(Exit::Clean),
                        None => {}
                    }
                }
            },
            _ = sigs.recv() => break Err(Exit::Clean),
        }
    };
    drop(raw);
    let _ = out.write_all(b"\r\n");
    match &result {
        Ok(_) => say("starting PPP"),
        Err(_) => say("hanging up"),
    }
    result
}

// ---------------------------------------------------------------------------
// PPP.

struct PppRun<'a> {
    tun: &'a Tun,
    creds: Option<(&'a [u8], &'a str)>,
    backlog: Vec<u8>,
    setup_limit: Duration,
}

/// Counters printed at the end.
#[derive(Default)]
struct Counters {
    bytes_in: u64,
    packets_in: u64,
    bytes_out: u64,
    packets_out: u64,
}

impl PppRun<'_> {
    async fn run(self, line: &mut Line, sigs: &mut Signals) -> Exit {
        let now = Instant::now();
        let mut link = match Link::new(
            LinkConfig::client(self.creds),
            now,
            Box::new(|b: &mut [u8]| rand::fill(b)),
        ) {
            Ok(l) => l,
            Err(e) => {
                say(format_args!("PPP could not start: {e}"));
                return Exit::Local;
            }
        };
        if !self.backlog.is_empty() {
            link.handle_input(now, &self.backlog);
        }
        let tun = self.tun;
        let (mut rd, mut wr) = tokio::io::split(line);
        let mut buf = vec![0u8; 8192];
        let mut tbuf = vec![0u8; 65536];
        let mut out: Vec<u8> = Vec::new();
        let mut off = 0usize;
        let mut eof = false;
        let mut up = false;
        let mut began = false;
        let mut by_us = false;
        let mut timed_out = false;
        let mut auth_failed: Option<String> = None;
        let mut tun_failed: Option<String> = None;
        let mut cause: Option<DownCause> = None;
        let mut n = Counters::default();
        let mut setup_deadline = Some(tokio::time::Instant::now() + self.setup_limit);
        let mut close_deadline: Option<tokio::time::Instant> = None;
        let mut flush_deadline: Option<tokio::time::Instant> = None;
        let started = Instant::now();
        let mut peer_closing = false;
        // We called `close` (signal, tun error, setup timeout).
        let mut we_close = false;

        loop {
            while let Some(ev) = link.poll_event() {
                match ev {
                    Event::Phase(p) => {
                        if matches!(p, Phase::Authenticate | Phase::Network) {
                            began = true;
                        }
                        // Terminate without a close of ours: the peer's
                        // Terminate-Request (it may hang up before our
                        // Stopping state ends).
                        if p == Phase::Terminate && !we_close {
                            peer_closing = true;
                        }
                    }
                    Event::Verify(_) | Event::VerifyAborted(_) => {}
                    Event::Authenticated { user, protocol } => say(format_args!(
                        "authenticated as {} with {protocol:?}",
                        String::from_utf8_lossy(&user)
                    )),
                    Event::AuthFailed(r) => {
                        say(format_args!("PPP authentication failed: {r:?}"));
                        auth_failed = Some(format!("{r:?}"));
                    }
                    Event::Up {
                        local, peer, dns, ..
                    } => match configure_tun(tun, local, peer) {
                        Ok(()) => {
                            up = true;
                            setup_deadline = None;
                            let dns: Vec<String> =
                                dns.iter().flatten().map(|a| a.to_string()).collect();
                            let dns = if dns.is_empty() {
                                "none".to_string()
                            } else {
                                dns.join(" ")
                            };
                            let mut o = std::io::stdout();
                            let _ = writeln!(
                                o,
                                "dialgate dial: PPP up on {}: local {local}, peer {peer}, DNS {dns}",
                                tun.name()
                            );
                            let _ = o.flush();
                        }
                        Err(e) => {
                            say(format_args!("tun error: {e}"));
                            tun_failed = Some(e.to_string());
                            we_close = true;
                            link.close(Instant::now(), "Client tun error");
                        }
                    },
                    Event::IpDown => up = false,
                    Event::IpPacket(p) => {
                        n.packets_in += 1;
                        n.bytes_in += p.len() as u64;
                        if let Err(e) = tun.send(&p).await {
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::NetworkDown
                            ) {
                                tracing::debug!("packet from the link dropped: {e}");
                            } else if tun_failed.is_none() {
                                say(format_args!("tun error: {e}"));
                                tun_failed = Some(e.to_string());
                                we_close = true;
                                link.close(Instant::now(), "Client tun error");
                            }
                        }
                    }
                    Event::Down { cause: c } => cause = Some(c),
                }
            }
            if out.is_empty() {
                while let Some(frame) = link.poll_transmit() {
                    out.extend_from_slice(&frame);
                    if out.len() >= link.tx_queue_max() {
                        break;
                    }
                }
                off = 0;
            }
            if cause.is_some() {
                if out.is_empty() || eof {
                    break;
                }
                flush_deadline.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(2));
            }
            let timer = link.poll_timeout().map(tokio::time::Instant::from_std);
            // Back-pressure: while the link's transmit queue is full, read
            // neither the line (its answers would queue) nor the tun.
            let room = link.pending_tx_bytes() < link.tx_queue_max();
            let tun_live = up && tun_failed.is_none() && room;
            tokio::select! {
                r = rd.read(&mut buf), if !eof && room => match r {
                    Ok(0) | Err(_) => {
                        eof = true;
                        out.clear();
                        link.handle_hangup(Instant::now());
                    }
                    Ok(k) => link.handle_input(Instant::now(), &buf[..k]),
                },
                r = wr.write(&out[off..]), if off < out.len() && !eof => match r {
                    Ok(0) | Err(_) => {
                        eof = true;
                        out.clear();
                        link.handle_hangup(Instant::now());
                    }
                    Ok(k) => {
                        off += k;
                        if off >= out.len() {
                            out.clear();
                            off = 0;
                        }
                    }
                },
                r = tun.recv(&mut tbuf), if tun_live => match r {
                    Ok(k) => {
                        let p = &tbuf[..k];
                        // IPv4 only: IPCP is the one network protocol.
                        if p.first().is_some_and(|b| b >> 4 == 4) {
                            match link.send_ip(p) {
                                Ok(()) => {
                                    n.packets_out += 1;
                                    n.bytes_out += k as u64;
                                }
                                Err(e) => tracing::debug!("packet to the link dropped: {e}"),
                            }
                        }
                    }
                    Err(e) => {
                        say(format_args!("tun error: {e}"));
                        tun_failed = Some(e.to_string());
                        we_close = true;
                        link.close(Instant::now(), "Client tun error");
                    }
                },
                _ = sleep_opt(timer) => link.handle_timeout(Instant::now()),
                _ = sleep_opt(setup_deadline) => {
                    setup_deadline = None;
                    timed_out = true;
                    say(format_args!("PPP was not up within {}s", self.setup_limit.as_secs()));
                    we_close = true;
                    link.close(Instant::now(), "PPP setup timed out");
                    close_deadline.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(10));
                }
                _ = sleep_opt(close_deadline) => break,
                _ = sleep_opt(flush_deadline) => break,
                _ = sigs.recv() => {
                    if by_us {
                        break;
                    }
                    by_us = true;
                    say("hanging up");
                    we_close = true;
                    link.close(Instant::now(), "User request");
                    close_deadline.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(10));
                }
            }
        }
        let _ = wr.flush().await;
        let secs = started.elapsed().as_secs();
        say(format_args!(
            "link down after {secs}s ({}); received {} bytes in {} packets, sent {} bytes in {} packets",
            match &cause {
                None => "no answer to our Terminate-Request".to_string(),
                Some(DownCause::Hangup) if peer_closing => {
                    "peer terminated the link and hung up".to_string()
                }
                Some(c) => c.to_string(),
            },
            n.bytes_in,
            n.packets_in,
            n.bytes_out,
            n.packets_out
        ));
        exit_for(
            cause.as_ref(),
            &Outcome {
                began,
                by_us,
                timed_out,
                auth_failed: auth_failed.is_some(),
                tun_failed: tun_failed.is_some(),
            },
        )
    }
}

fn configure_tun(
    tun: &Tun,
    local: std::net::Ipv4Addr,
    peer: std::net::Ipv4Addr,
) -> std::io::Result<()> {
    if peer.is_unspecified() || peer == local {
        // The server never said its address: a host address, no peer route.
        tun.set_ipv4(local, 32)?;
    } else {
        tun.set_peer(local, peer)?;
    }
    tun.up()
}

/// What happened on the link besides its cause of death.
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    /// LCP opened (authentication or the network phase was reached).
    began: bool,
    /// We hung up (signal).
    by_us: bool,
    /// PPP was not up in time.
    timed_out: bool,
    /// An authentication failure was seen.
    auth_failed: bool,
    /// The tun failed.
    tun_failed: bool,
}

/// The exit code of a PPP link that ended with `cause` (`None`: we gave up
/// waiting for the end of our own Terminate).
fn exit_for(cause: Option<&DownCause>, o: &Outcome) -> Exit {
    if o.tun_failed {
        return Exit::Tun;
    }
    if o.auth_failed || matches!(cause, Some(DownCause::AuthFailed(_))) {
        return Exit::PppAuth;
    }
    if o.timed_out {
        return Exit::PppNegotiation;
    }
    match cause {
        None | Some(DownCause::LocalClose(_)) => {
            if o.by_us {
                Exit::Clean
            } else {
                Exit::PppNegotiation
            }
        }
        Some(DownCause::Hangup) if o.by_us => Exit::Clean,
        Some(DownCause::Hangup) if !o.began => Exit::Refused,
        Some(DownCause::Hangup | DownCause::PeerTerminated(_) | DownCause::EchoTimeout(_)) => {
            Exit::Dropped
        }
        Some(
            DownCause::NoResponse
            | DownCause::LcpFailed(_)
            | DownCause::IpcpFailed(_)
            | DownCause::AuthRejected
            | DownCause::AuthTimeout
            | DownCause::TooManyRenegotiations(_)
            | DownCause::LoopedBack,
        ) => Exit::PppNegotiation,
        Some(DownCause::AuthFailed(_)) => Exit::PppAuth,
    }
}

async fn sleep_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> SendPart {
        SendPart::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn pairs_quoting_and_comments() {
        let s = parse_script(
            "# log in\n'' ''\n\"Username: \" alice\n'Password: ' 's3 cr\\'t'  # trailing\n",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                Step::Expect(vec![]),
                Step::Send(vec![bytes("\r")]),
                Step::Expect(b"Username: ".to_vec()),
                Step::Send(vec![bytes("alice\r")]),
                Step::Expect(b"Password: ".to_vec()),
                Step::Send(vec![bytes("s3 cr't\r")]),
            ]
        );
    }

    #[test]
    fn timeout_and_abort_do_not_break_the_pairing() {
        let s = parse_script("TIMEOUT 5\nABORT 'Access denied'\nlogin: bob\nABORT BUSY\nok: go")
            .unwrap();
        assert_eq!(
            s,
            vec![
                Step::Timeout(Duration::from_secs(5)),
                Step::Abort(b"Access denied".to_vec()),
                Step::Expect(b"login:".to_vec()),
                Step::Send(vec![bytes("bob\r")]),
                Step::Abort(b"BUSY".to_vec()),
                Step::Expect(b"ok:".to_vec()),
                Step::Send(vec![bytes("go\r")]),
            ]
        );
        // Quoted, TIMEOUT is a plain string.
        let s = parse_script("'TIMEOUT' x").unwrap();
        assert_eq!(s[0], Step::Expect(b"TIMEOUT".to_vec()));
    }

    #[test]
    fn escapes_and_no_cr() {
        let s = parse_script(r"x 'a\sb\tc\c' y ^C\c z 'p\dq' w '\\\N\r\n\b'").unwrap();
        assert_eq!(s[1], Step::Send(vec![bytes("a b\tc")]));
        assert_eq!(s[3], Step::Send(vec![SendPart::Bytes(vec![3])]));
        assert_eq!(
            s[5],
            Step::Send(vec![
                bytes("p"),
                SendPart::Delay(Duration::from_secs(1)),
                bytes("q\r")
            ])
        );
        assert_eq!(
            s[7],
            Step::Send(vec![SendPart::Bytes(b"\\\0\r\n\x08\r".to_vec())])
        );
        // An expect-only last line is allowed.
        assert_eq!(
            parse_script("a b CONNECT").unwrap().last(),
            Some(&Step::Expect(b"CONNECT".to_vec()))
        );
    }

    #[test]
    fn bad_scripts_name_the_line() {
        for (text, what) in [
            ("TIMEOUT", "needs an argument"),
            ("a b\nTIMEOUT 0", "line 2: TIMEOUT"),
            ("TIMEOUT soon", "whole seconds"),
            ("TIMEOUT 99999999", "whole seconds"),
            ("ABORT ''", "empty ABORT"),
            ("a 'b", "line 1: unterminated"),
            ("a\n\"b", "line 2: unterminated"),
            ("a \\q", "unsupported escape"),
            ("x\\c y", "only for send"),
            ("x\\d y", "only for send"),
            ("a b\\", "ends the line"),
            ("a ^", "`^` needs"),
        ] {
            let e = parse_script(text).unwrap_err();
            assert!(e.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn speeds() {
        assert_eq!(parse_speed("115200"), Ok(115_200));
        assert!(parse_speed("115201").unwrap_err().contains("unsupported"));
        assert!(parse_speed("fast").is_err());
    }

    #[test]
    fn the_escape_chord() {
        let mut p = false;
        assert_eq!(keys(&mut p, b"abc"), Keys::Send(b"abc".to_vec()));
        assert_eq!(keys(&mut p, b"x\x1d"), Keys::Send(b"x".to_vec()));
        assert!(p);
        assert_eq!(keys(&mut p, b"p"), Keys::Ppp(vec![]));
        assert!(!p);
        assert_eq!(keys(&mut p, b"a\x1dq"), Keys::Quit(b"a".to_vec()));
        assert_eq!(keys(&mut p, b"\x1d\x1dz"), Keys::Send(b"\x1dz".to_vec()));
        assert_eq!(keys(&mut p, b"\x1d?"), Keys::Help(vec![]));
    }

    #[test]
    fn exit_codes_follow_the_cause() {
        let o = Outcome::default();
        let began = Outcome { began: true, ..o };
        let us = Outcome {
            by_us: true,
            ..began
        };
        assert_eq!(exit_for(Some(&DownCause::Hangup), &o), Exit::Refused);
        assert_eq!(exit_for(Some(&DownCause::Hangup), &began), Exit::Dropped);
        assert_eq!(
            exit_for(Some(&DownCause::LocalClose("User request".into())), &us),
            Exit::Clean
        );
        assert_eq!(exit_for(None, &us), Exit::Clean);
        assert_eq!(
            exit_for(Some(&DownCause::PeerTerminated("bye".into())), &began),
            Exit::Dropped
        );
        assert_eq!(
            exit_for(Some(&DownCause::EchoTimeout(4)), &began),
            Exit::Dropped
        );
        assert_eq!(
            exit_for(Some(&DownCause::NoResponse), &o),
            Exit::PppNegotiation
        );
        let auth = Outcome {
            auth_failed: true,
            ..began
        };
        assert_eq!(
            exit_for(Some(&DownCause::PeerTerminated("x".into())), &auth),
            Exit::PppAuth
        );
        let tun = Outcome {
            tun_failed: true,
            ..us
        };
        assert_eq!(
            exit_for(Some(&DownCause::LocalClose("t".into())), &tun),
            Exit::Tun
        );
        let late = Outcome {
            timed_out: true,
            ..began
        };
        assert_eq!(
            exit_for(Some(&DownCause::LocalClose("t".into())), &late),
            Exit::PppNegotiation
        );
    }
}
