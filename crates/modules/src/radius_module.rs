//! The `radius` security module: `Username: ` (echoed), `Password: ` (not
//! echoed), checked by a RADIUS server (RFC 2865), with as many
//! Access-Challenge rounds as the server asks for (up to a bound).
//!
//! - The Access-Request carries User-Name, User-Password, NAS-Identifier,
//!   NAS-Port-Type (Virtual for a `tcp ADDR` device, Async otherwise),
//!   Calling-Station-Id (the caller's IP address for `tcp ADDR`, else the
//!   device name), Service-Type = Framed and Framed-Protocol = PPP, plus the
//!   Message-Authenticator the client always adds (RFC 3579 §3.2).
//! - Access-Challenge: its Reply-Message becomes the next prompt (line ends
//!   sent as CR LF, control characters dropped), the answer is read with
//!   echo on only if the server sent Prompt = Echo (RFC 2869 §5.10) and goes
//!   back as User-Password with the challenge's State. More than
//!   `max_challenge_rounds` challenges in one try: ERROR
//!   [`ERROR_RADIUS_TOO_MANY_CHALLENGES`].
//! - Access-Accept: SUCCESS, as the User-Name of the Accept if it has one,
//!   else as the typed name (a name that cannot be a verdict's user name:
//!   ERROR [`ERROR_RADIUS_BAD_USER_NAME`]).
//! - Access-Reject: the Reply-Message if any, else the neutral
//!   `Login incorrect`; after `tries` rejects, FAILURE with the typed name.
//! - No valid answer from any server after all retries (down, unreachable,
//!   or every reply dropped by the client's Response Authenticator or
//!   Message-Authenticator checks): ERROR [`ERROR_RADIUS_NO_ANSWER`].
//! - Replies must carry a Message-Authenticator unless
//!   [`RadiusOptions::require_message_authenticator`] says otherwise (the
//!   default is [`RequireMessageAuthenticator::Always`], against
//!   BlastRADIUS); drops for a missing one are logged at most once a
//!   minute, with the fix.
//! - Prompts time out, hang-ups, over-long lines and End behave as in the
//!   `users` module.
//!
//! # The UDP driver
//!
//! Each module instance runs **one** client task that owns the sans-IO
//! [`radius::Client`] and one UDP socket per address family of the
//! configured servers; dialogs send it requests over a bounded channel and
//! get the outcome on a oneshot. One shared client rather than one per
//! dialog because: the server's failover state (which server answered last)
//! is then shared by every call, so once a server is dead the next calls go
//! straight to the next one instead of each waiting out its retries; one
//! socket serves every dialog (the client multiplexes them over the 256
//! RADIUS identifiers per server, and queues beyond); and the number of
//! open sockets does not grow with the number of callers. At most
//! [`MAX_PENDING_REQUESTS`] requests are in the client at once (beyond
//! that, dialogs wait on the channel). A dialog stopped by End drops its
//! oneshot; the task then cancels its request, so a late reply is dropped.
//! Random Request Authenticators come from `rand::fill` (the OS-seeded
//! thread RNG), time from `Instant::now()`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use radius::RequireMessageAuthenticator;
use radius::{Attribute, Client, ClientConfig, Outcome, Request, SendError, ServerConfig, values};
use securityhost::consts::{NO_ERROR, UNLEN};
use securityhost::{BeginArgs, HPort, SecurityModule};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::codes::MODULE_CODE_BASE;
use crate::line::DEFAULT_MAX_LINE;
use crate::session::{DialogTasks, LineInput, ReadError, Session, crlf_text};
use crate::users::{INPUT_TOO_LONG, LOGIN_INCORRECT};
use crate::{MAX_BANNER, check_domain};

/// ERROR verdict: no RADIUS server gave a valid answer after all retries on
/// all servers (servers down or unreachable, wrong shared secret, or every
/// reply dropped for a bad Response Authenticator / Message-Authenticator
/// or a missing required Message-Authenticator). Decimal 536871681.
pub const ERROR_RADIUS_NO_ANSWER: u32 = MODULE_CODE_BASE | 0x301;

/// ERROR verdict: the server sent more Access-Challenges in one try than
/// [`RadiusOptions::max_challenge_rounds`] allows (the server misbehaves or
/// is misconfigured). Decimal 536871682.
pub const ERROR_RADIUS_TOO_MANY_CHALLENGES: u32 = MODULE_CODE_BASE | 0x302;

/// ERROR verdict: the Access-Accept named a user (User-Name) that cannot be
/// a verdict's user name (not UTF-8, empty, longer than 256 bytes, control
/// characters), or no User-Name came and the typed one is such a name.
/// Never a grant under another name. Decimal 536871683.
pub const ERROR_RADIUS_BAD_USER_NAME: u32 = MODULE_CODE_BASE | 0x303;

/// ERROR verdict: the module's RADIUS client task is gone (the runtime is
/// shutting down) or could not encode the request (our misuse: for example
/// a State too long to send back). Decimal 536871684.
pub const ERROR_RADIUS_CLIENT_FAILED: u32 = MODULE_CODE_BASE | 0x304;

/// A short name for this module's codes, for logs (`None` for others).
pub fn code_name(code: u32) -> Option<&'static str> {
    Some(match code {
        ERROR_RADIUS_NO_ANSWER => "ERROR_RADIUS_NO_ANSWER",
        ERROR_RADIUS_TOO_MANY_CHALLENGES => "ERROR_RADIUS_TOO_MANY_CHALLENGES",
        ERROR_RADIUS_BAD_USER_NAME => "ERROR_RADIUS_BAD_USER_NAME",
        ERROR_RADIUS_CLIENT_FAILED => "ERROR_RADIUS_CLIENT_FAILED",
        _ => return None,
    })
}

/// Most requests the shared client holds at once; further dialogs wait.
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// Capacity of the channel from dialogs to the client task.
const JOB_QUEUE: usize = 64;

/// The default prompt of a challenge without a Reply-Message.
pub const DEFAULT_CHALLENGE_PROMPT: &str = "Response: ";

/// Settings of a [`RadiusModule`].
#[derive(Clone, Debug)]
pub struct RadiusOptions {
    /// Servers in order of preference, each with its shared secret
    /// (non-empty); failover goes down the list. At least one.
    pub servers: Vec<ServerConfig>,
    /// Wait for a reply before retransmitting (more than 0, at most one
    /// hour). Default 3 s.
    pub timeout: Duration,
    /// Retransmissions to a server before failing over (each server gets
    /// `1 + retries` transmissions). Default 2.
    pub retries: u32,
    /// Which Access-* replies must carry a Message-Authenticator (against
    /// BlastRADIUS, CVE-2024-3596); replies that have one are always
    /// verified. Default [`RequireMessageAuthenticator::Always`]: a server
    /// that does not sign its replies (FreeRADIUS 3.2.4 and older unless
    /// told to) gets no answer through, and that is logged.
    pub require_message_authenticator: RequireMessageAuthenticator,
    /// NAS-Identifier sent in every request (1 to 253 bytes). Default
    /// `dialgate`.
    pub nas_identifier: String,
    /// Text sent first; `\n` line ends are sent as CR LF. Empty: none.
    pub banner: String,
    /// Default `Username: `.
    pub username_prompt: String,
    /// Default `Password: `.
    pub password_prompt: String,
    /// The prompt of a challenge that has no Reply-Message. Default
    /// `Response: `.
    pub challenge_prompt: String,
    /// Username/password pairs per call (at least 1). The RADIUS server
    /// decides; default 1.
    pub tries: u32,
    /// Access-Challenge rounds allowed in one try (0 refuses challenges).
    /// Default 10.
    pub max_challenge_rounds: u32,
    /// How long each prompt waits for its answer, in seconds; 0 = no limit.
    /// Default 60.
    pub prompt_timeout_secs: u32,
    /// The Domain of verdicts (at most 15 bytes). Default empty.
    pub domain: String,
}

impl Default for RadiusOptions {
    fn default() -> Self {
        RadiusOptions {
            servers: Vec::new(),
            timeout: Duration::from_secs(3),
            retries: 2,
            require_message_authenticator: RequireMessageAuthenticator::Always,
            nas_identifier: "dialgate".to_string(),
            banner: String::new(),
            username_prompt: "Username: ".to_string(),
            password_prompt: "Password: ".to_string(),
            challenge_prompt: DEFAULT_CHALLENGE_PROMPT.to_string(),
            tries: 1,
            max_challenge_rounds: 10,
            prompt_timeout_secs: 60,
            domain: String::new(),
        }
    }
}

/// Why a [`RadiusModule`], a [`RadiusClient`] or a
/// [`crate::radius_ppp::RadiusPpp`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RadiusConfigError {
    /// A setting shared with the other modules (tries, domain, banner,
    /// prompts).
    #[error(transparent)]
    Module(#[from] crate::ConfigError),
    /// The RADIUS client refuses the settings (no servers, timeout).
    #[error(transparent)]
    Client(#[from] radius::ConfigError),
    /// A server with an empty shared secret (RFC 2865 §3 forbids it).
    #[error("RADIUS server {0} has an empty shared secret")]
    EmptySecret(SocketAddr),
    /// The NAS-Identifier is empty or longer than 253 bytes.
    #[error("nas_identifier must be 1 to 253 bytes, got {0}")]
    BadNasIdentifier(usize),
    /// The UDP socket could not be opened.
    #[error("cannot open the RADIUS client socket on {addr}: {source}")]
    Socket {
        /// The local address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Counters of a [`RadiusModule`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadiusStats {
    /// The shared client's counters (retransmissions, failovers, replies
    /// dropped and why).
    pub client: radius::Stats,
    /// Access-Accepts that became a SUCCESS.
    pub accepted: u64,
    /// Access-Rejects.
    pub rejected: u64,
    /// Access-Challenges.
    pub challenges: u64,
    /// Requests no server answered.
    pub no_answer: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    challenges: AtomicU64,
    no_answer: AtomicU64,
}

/// The `radius` module. See the module documentation.
pub struct RadiusModule {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    client: RadiusClient,
    nas_identifier: Vec<u8>,
    banner: Vec<u8>,
    username_prompt: Vec<u8>,
    password_prompt: Vec<u8>,
    challenge_prompt: Vec<u8>,
    tries: u32,
    max_rounds: u32,
    timeout: u32,
    domain: String,
    tasks: DialogTasks,
    counters: Counters,
}

impl std::fmt::Debug for RadiusModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusModule")
            .field("dialogs", &self.inner.tasks.len())
            .finish_non_exhaustive()
    }
}

impl RadiusModule {
    /// A module whose dialogs, and whose one shared RADIUS client task, run
    /// on `handle`. Opens the client's UDP socket(s) now.
    pub fn new(handle: Handle, opts: RadiusOptions) -> Result<RadiusModule, RadiusConfigError> {
        if opts.tries == 0 {
            return Err(crate::ConfigError::NoTries.into());
        }
        check_domain(&opts.domain)?;
        if opts.banner.len() > MAX_BANNER {
            return Err(crate::ConfigError::BannerTooLong.into());
        }
        for p in [
            &opts.username_prompt,
            &opts.password_prompt,
            &opts.challenge_prompt,
        ] {
            if p.len() > MAX_BANNER {
                return Err(crate::ConfigError::PromptTooLong.into());
            }
        }
        let nas = opts.nas_identifier.as_bytes();
        if nas.is_empty() || nas.len() > radius::MAX_VALUE_LEN {
            return Err(RadiusConfigError::BadNasIdentifier(nas.len()));
        }
        let client = RadiusClient::spawn(
            &handle,
            ClientConfig {
                servers: opts.servers.clone(),
                timeout: opts.timeout,
                retries: opts.retries,
                require_message_authenticator: opts.require_message_authenticator,
            },
        )?;
        Ok(RadiusModule {
            inner: Arc::new(Inner {
                handle,
                client,
                nas_identifier: nas.to_vec(),
                banner: crlf_text(&opts.banner),
                username_prompt: opts.username_prompt.into_bytes(),
                password_prompt: opts.password_prompt.into_bytes(),
                challenge_prompt: opts.challenge_prompt.into_bytes(),
                tries: opts.tries,
                max_rounds: opts.max_challenge_rounds,
                timeout: opts.prompt_timeout_secs,
                domain: opts.domain,
                tasks: DialogTasks::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// The counters so far (the client's as of its last wake-up).
    pub fn stats(&self) -> RadiusStats {
        let c = &self.inner.counters;
        RadiusStats {
            client: self.inner.client.stats(),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            challenges: c.challenges.load(Ordering::Relaxed),
            no_answer: c.no_answer.load(Ordering::Relaxed),
        }
    }

    /// Dialogs begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl SecurityModule for RadiusModule {
    fn name(&self) -> &str {
        "radius"
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let inner = self.inner.clone();
        self.inner
            .tasks
            .start(&self.inner.handle, &args, move |session| async move {
                inner.dialog(session).await;
            });
        NO_ERROR
    }

    fn end(&self, hport: HPort) -> u32 {
        self.inner.tasks.end(hport)
    }
}

/// How one username/password try (with its challenges) ended.
enum Try {
    Granted(String),
    /// Rejected, with the server's Reply-Message if any.
    Denied(Option<String>),
}

/// Why a try could not finish.
enum Stop {
    /// Complete ERROR with this code.
    Code(u32),
    /// A line could not be read.
    Read(ReadError),
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Self {
        Stop::Read(e)
    }
}

impl Inner {
    async fn dialog(&self, session: Session) {
        let device = match session.dialog.info() {
            Ok(info) => info.device_name,
            Err(code) => {
                session.on_read_error(&ReadError::Host(code));
                return;
            }
        };
        let base = self.base_attributes(&device);
        if !self.banner.is_empty() && session.send(&self.banner).is_err() {
            return;
        }
        let mut input = LineInput::new(DEFAULT_MAX_LINE, self.timeout);
        let mut last_name = String::new();
        for _ in 0..self.tries {
            match self
                .one_try(&session, &mut input, &base, &mut last_name)
                .await
            {
                Ok(Try::Granted(user)) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(hport = %session.dialog.hport(), user = %user, "RADIUS login granted");
                    session.succeed(&user, &self.domain);
                    return;
                }
                Ok(Try::Denied(msg)) => {
                    let text = match msg.as_deref().map(clean_text) {
                        Some(t) if !t.is_empty() => with_crlf(t),
                        _ => LOGIN_INCORRECT.to_vec(),
                    };
                    if session.send(&text).is_err() {
                        return;
                    }
                }
                Err(Stop::Code(code)) => {
                    session.error(code);
                    return;
                }
                Err(Stop::Read(e)) => {
                    if session.on_read_error(&e) {
                        if let ReadError::TooLong(part) = &e
                            && last_name.is_empty()
                        {
                            last_name = String::from_utf8_lossy(part).into_owned();
                        }
                        let _ = session.send(INPUT_TOO_LONG);
                        session.fail(&last_name, &self.domain);
                    }
                    return;
                }
            }
        }
        tracing::info!(hport = %session.dialog.hport(), user = %last_name, "RADIUS login refused");
        session.fail(&last_name, &self.domain);
    }

    /// The attributes of every Access-Request of a dialog on `device`.
    fn base_attributes(&self, device: &str) -> Vec<Attribute> {
        let (port_type, calling) = port_attributes(device);
        let mut attrs = vec![
            Attribute::NasIdentifier(self.nas_identifier.clone()),
            Attribute::NasPortType(port_type),
            Attribute::ServiceType(values::service_type::FRAMED),
            Attribute::FramedProtocol(values::framed_protocol::PPP),
        ];
        if let Some(c) = calling {
            attrs.push(Attribute::CallingStationId(c));
        }
        attrs
    }

    /// One Username/Password pair, then the challenges.
    async fn one_try(
        &self,
        session: &Session,
        input: &mut LineInput,
        base: &[Attribute],
        last_name: &mut String,
    ) -> Result<Try, Stop> {
        last_name.clear();
        let name = input.prompt(session, &self.username_prompt, true).await?;
        *last_name = String::from_utf8_lossy(&name).into_owned();
        // RADIUS cannot carry an empty name or one over 253 bytes: a try
        // lost, the same way as a wrong password.
        if name.is_empty() || name.len() > radius::MAX_VALUE_LEN {
            return Ok(Try::Denied(None));
        }
        let mut answer = input.prompt(session, &self.password_prompt, false).await?;
        let mut state: Option<Vec<u8>> = None;
        let mut rounds = 0u32;
        loop {
            if answer.len() > radius::MAX_PASSWORD_LEN {
                return Ok(Try::Denied(None));
            }
            let mut attrs = Vec::with_capacity(base.len() + 2);
            attrs.push(Attribute::UserName(name.to_vec()));
            attrs.extend_from_slice(base);
            if let Some(s) = state.take() {
                attrs.push(Attribute::State(s));
            }
            let request = Request::access(attrs).with_password(&answer);
            match self.client.request(request).await.map_err(Stop::Code)? {
                Outcome::Accept { attrs } => {
                    let granted = attrs.iter().find_map(|a| match a {
                        Attribute::UserName(n) => Some(n.as_slice()),
                        _ => None,
                    });
                    let user = granted.unwrap_or(&name);
                    return match verdict_name(user) {
                        Some(u) => Ok(Try::Granted(u)),
                        None => {
                            tracing::warn!(
                                hport = %session.dialog.hport(),
                                user = %String::from_utf8_lossy(user),
                                "RADIUS server accepted a user name that cannot be granted"
                            );
                            Err(Stop::Code(ERROR_RADIUS_BAD_USER_NAME))
                        }
                    };
                }
                Outcome::Reject { reply_message, .. } => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return Ok(Try::Denied(reply_message));
                }
                Outcome::Challenge {
                    state: st,
                    reply_message,
                    prompt_echo,
                    ..
                } => {
                    self.counters.challenges.fetch_add(1, Ordering::Relaxed);
                    rounds += 1;
                    if rounds > self.max_rounds {
                        tracing::warn!(
                            hport = %session.dialog.hport(),
                            max = self.max_rounds,
                            "RADIUS server sent too many Access-Challenges"
                        );
                        return Err(Stop::Code(ERROR_RADIUS_TOO_MANY_CHALLENGES));
                    }
                    let prompt = challenge_prompt(reply_message.as_deref(), &self.challenge_prompt);
                    answer = input.prompt(session, &prompt, prompt_echo).await?;
                    state = st;
                }
                Outcome::Timeout => {
                    self.counters.no_answer.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(hport = %session.dialog.hport(), "no RADIUS server answered");
                    return Err(Stop::Code(ERROR_RADIUS_NO_ANSWER));
                }
                Outcome::AccountingResponse { .. } => {
                    // The client only yields this for Accounting-Requests.
                    return Err(Stop::Code(ERROR_RADIUS_CLIENT_FAILED));
                }
            }
        }
    }
}

/// NAS-Port-Type and Calling-Station-Id for a device name: `tcp ADDR` is a
/// Virtual port called from ADDR's IP address; anything else (a serial
/// device) is Async, with the device name as the calling station.
fn port_attributes(device: &str) -> (u32, Option<Vec<u8>>) {
    if let Some(rest) = device.strip_prefix("tcp ") {
        let rest = rest.trim();
        let calling = match rest.parse::<SocketAddr>() {
            Ok(a) => a.ip().to_string(),
            Err(_) => rest.to_string(),
        };
        (values::nas_port_type::VIRTUAL, bounded(calling))
    } else {
        (values::nas_port_type::ASYNC, bounded(device.to_string()))
    }
}

/// A non-empty attribute value cut to 253 bytes on a character boundary.
fn bounded(s: String) -> Option<Vec<u8>> {
    let mut end = s.len().min(radius::MAX_VALUE_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let v = &s.as_bytes()[..end];
    (!v.is_empty()).then(|| v.to_vec())
}

/// The user name a verdict may carry, if `name` is one: UTF-8, 1 to
/// `UNLEN` bytes, no control characters.
fn verdict_name(name: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(name).ok()?;
    if s.is_empty() || s.len() > UNLEN || s.chars().any(char::is_control) {
        return None;
    }
    Some(s.to_string())
}

/// Server text made safe for a terminal: CR, LF and CR LF become CR LF, tabs
/// stay, every other control character (C0, DEL, C1: escape sequences) is
/// dropped.
fn clean_text(msg: &str) -> Vec<u8> {
    let mut out = String::with_capacity(msg.len() + 8);
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// `text` ending with CR LF.
fn with_crlf(mut text: Vec<u8>) -> Vec<u8> {
    if !text.ends_with(b"\r\n") {
        text.extend_from_slice(b"\r\n");
    }
    text
}

/// The prompt for a challenge: its Reply-Message made safe, with a space
/// after it unless it ends in white space; the default prompt if it has no
/// visible text.
fn challenge_prompt(msg: Option<&str>, default: &[u8]) -> Vec<u8> {
    let mut text = msg.map(clean_text).unwrap_or_default();
    if text.iter().all(u8::is_ascii_whitespace) {
        return default.to_vec();
    }
    if !matches!(text.last(), Some(b' ' | b'\t' | b'\n')) {
        text.push(b' ');
    }
    text
}

/// One request for the client task.
struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Outcome, SendError>>,
}

/// The requests in the client task, by id, with where their outcome goes.
type Waiting = BTreeMap<radius::RequestId, oneshot::Sender<Result<Outcome, SendError>>>;

/// A RADIUS client over UDP: one task on a tokio runtime that owns the
/// sans-IO [`radius::Client`] and its socket(s) (see the module
/// documentation, "The UDP driver"). Callers share it by reference (it is
/// `Send + Sync`); the task ends when the `RadiusClient` is dropped.
pub struct RadiusClient {
    jobs: mpsc::Sender<Job>,
    stats: Arc<Mutex<radius::Stats>>,
}

impl std::fmt::Debug for RadiusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusClient")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RadiusClient {
    /// Checks `cfg` (at least one server, non-empty shared secrets, a
    /// timeout of more than 0 and at most one hour), opens the socket(s)
    /// (one per address family of the servers) and spawns the client task
    /// on `handle`.
    pub fn spawn(handle: &Handle, cfg: ClientConfig) -> Result<RadiusClient, RadiusConfigError> {
        if let Some(s) = cfg.servers.iter().find(|s| s.secret.is_empty()) {
            return Err(RadiusConfigError::EmptySecret(s.addr));
        }
        let servers = cfg.servers.clone();
        if cfg.require_message_authenticator == RequireMessageAuthenticator::Never {
            tracing::warn!(
                "RADIUS replies without a Message-Authenticator are believed \
                 (require_message_authenticator = false): open to BlastRADIUS, CVE-2024-3596"
            );
        }
        let client = Client::new(cfg)?;
        let _entered = handle.enter();
        let v4 = open_socket(&servers, true)?;
        let v6 = open_socket(&servers, false)?;
        let (tx, rx) = mpsc::channel(JOB_QUEUE);
        let stats = Arc::new(Mutex::new(radius::Stats::default()));
        handle.spawn(run_client(client, v4, v6, rx, stats.clone()));
        Ok(RadiusClient { jobs: tx, stats })
    }

    /// The client's counters as of its last wake-up.
    pub fn stats(&self) -> radius::Stats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `request` and waits for its outcome (bounded by the client's
    /// timeouts and retries over all servers; [`Outcome::Timeout`] when no
    /// server gave a valid answer). `Err` is
    /// [`ERROR_RADIUS_CLIENT_FAILED`] (logged): the client task is gone (the
    /// runtime is shutting down) or the request cannot be encoded (our
    /// misuse). Dropping the future cancels the request.
    pub async fn request(&self, request: Request) -> Result<Outcome, u32> {
        let (tx, rx) = oneshot::channel();
        let job = Job { request, reply: tx };
        if self.jobs.send(job).await.is_err() {
            tracing::error!("the RADIUS client task is gone");
            return Err(ERROR_RADIUS_CLIENT_FAILED);
        }
        match rx.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot send the RADIUS request");
                Err(ERROR_RADIUS_CLIENT_FAILED)
            }
            Err(_) => {
                tracing::error!("the RADIUS client task is gone");
                Err(ERROR_RADIUS_CLIENT_FAILED)
            }
        }
    }
}

/// A socket for the servers of one family, if there are any: bound to the
/// loopback address when all of them are on loopback, else to the
/// unspecified address; an ephemeral port either way.
fn open_socket(servers: &[ServerConfig], v4: bool) -> Result<Option<UdpSocket>, RadiusConfigError> {
    let family: Vec<IpAddr> = servers
        .iter()
        .map(|s| s.addr.ip())
        .filter(|ip| ip.is_ipv4() == v4)
        .collect();
    if family.is_empty() {
        return Ok(None);
    }
    let loopback = family.iter().all(IpAddr::is_loopback);
    let ip: IpAddr = match (v4, loopback) {
        (true, true) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv4Addr::UNSPECIFIED.into(),
        (false, true) => Ipv6Addr::LOCALHOST.into(),
        (false, false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let addr = SocketAddr::new(ip, 0);
    let err = |source| RadiusConfigError::Socket { addr, source };
    let std_sock = std::net::UdpSocket::bind(addr).map_err(err)?;
    std_sock.set_nonblocking(true).map_err(err)?;
    UdpSocket::from_std(std_sock).map(Some).map_err(err)
}

/// Receives on `sock`, or never when there is none.
async fn recv_on(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// The shared client task: runs until every [`RadiusClient`] (the module
/// and its dialogs) is gone.
async fn run_client(
    mut client: Client,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    mut jobs: mpsc::Receiver<Job>,
    stats: Arc<Mutex<radius::Stats>>,
) {
    let mut waiting = Waiting::new();
    let mut unsigned = UnsignedWarning::default();
    let mut buf4 = vec![0u8; radius::MAX_PACKET_LEN];
    let mut buf6 = vec![0u8; radius::MAX_PACKET_LEN];
    loop {
        while let Some((to, packet)) = client.poll_transmit() {
            let sock = if to.is_ipv4() {
                v4.as_ref()
            } else {
                v6.as_ref()
            };
            if let Some(s) = sock
                && let Err(e) = s.send_to(&packet, to).await
            {
                // The retransmission timer deals with it like a lost packet.
                tracing::debug!(server = %to, error = %e, "RADIUS send failed");
            }
        }
        while let Some((rid, outcome)) = client.poll_event() {
            if let Some(tx) = waiting.remove(&rid) {
                let _ = tx.send(Ok(outcome));
            }
        }
        cancel_abandoned(&mut client, &mut waiting);
        unsigned.check(&client.stats());
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = client.stats();
        let deadline = client.poll_timeout();
        tokio::select! {
            job = jobs.recv(), if client.pending() < MAX_PENDING_REQUESTS => {
                let Some(job) = job else { break };
                let mut random = [0u8; 16];
                rand::fill(&mut random);
                match client.send_request(Instant::now(), job.request, random) {
                    Ok(rid) => {
                        waiting.insert(rid, job.reply);
                    }
                    Err(e) => {
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
            r = recv_on(v4.as_ref(), &mut buf4) => on_received(&mut client, r, &buf4).await,
            r = recv_on(v6.as_ref(), &mut buf6) => on_received(&mut client, r, &buf6).await,
            () = sleep_until(deadline) => {
                // Not a retransmission or a timeout for a dialog gone since.
                cancel_abandoned(&mut client, &mut waiting);
                client.handle_timeout(Instant::now());
            }
        }
    }
}

/// Logs, at most once a minute, that replies were dropped for lacking the
/// required Message-Authenticator: the usual cause is a server that does
/// not sign its replies, and the operator must learn why logins fail.
#[derive(Default)]
struct UnsignedWarning {
    seen: u64,
    last: Option<Instant>,
}

impl UnsignedWarning {
    fn check(&mut self, stats: &radius::Stats) {
        let n = stats.dropped_missing_message_authenticator;
        if n <= self.seen {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        tracing::warn!(
            dropped = n - self.seen,
            "RADIUS replies without a Message-Authenticator were dropped: make the server sign \
             its replies (FreeRADIUS 3.2.4 and older: update reply {{ &Message-Authenticator := 0x00 }}), \
             or set require_message_authenticator = \"auto\" or false (BlastRADIUS, CVE-2024-3596)"
        );
        self.seen = n;
        self.last = Some(now);
    }
}

/// Cancels the requests of dialogs stopped by End (their oneshot receiver
/// is gone), so a late reply is dropped and nothing is retransmitted.
fn cancel_abandoned(client: &mut Client, waiting: &mut Waiting) {
    waiting.retain(|rid, tx| {
        if tx.is_closed() {
            client.cancel(*rid);
            false
        } else {
            true
        }
    });
}

async fn on_received(client: &mut Client, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
    match r {
        Ok((n, from)) => {
            if let Some(datagram) = buf.get(..n) {
                client.handle_datagram(Instant::now(), from, datagram);
            }
        }
        Err(e) => {
            // An ICMP error reported on the socket, for example: the
            // retransmission timer handles it. Pause so a persistent error
            // cannot spin.
            tracing::debug!(error = %e, "RADIUS receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_range_distinct_and_named() {
        let all = [
            ERROR_RADIUS_NO_ANSWER,
            ERROR_RADIUS_TOO_MANY_CHALLENGES,
            ERROR_RADIUS_BAD_USER_NAME,
            ERROR_RADIUS_CLIENT_FAILED,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!((0x2000_0300..=0x2000_03ff).contains(a));
            assert!(code_name(*a).is_some());
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(code_name(638), None);
    }

    #[test]
    fn tcp_devices_are_virtual_from_the_ip() {
        assert_eq!(
            port_attributes("tcp 198.51.100.7:50412"),
            (
                values::nas_port_type::VIRTUAL,
                Some(b"198.51.100.7".to_vec())
            )
        );
        assert_eq!(
            port_attributes("tcp [2001:db8::1]:23"),
            (
                values::nas_port_type::VIRTUAL,
                Some(b"2001:db8::1".to_vec())
            )
        );
        assert_eq!(
            port_attributes("/dev/ttyS0"),
            (values::nas_port_type::ASYNC, Some(b"/dev/ttyS0".to_vec()))
        );
        assert_eq!(port_attributes(""), (values::nas_port_type::ASYNC, None));
        let long = "é".repeat(200);
        let (_, c) = port_attributes(&long);
        let c = c.unwrap();
        assert!(c.len() <= 253 && std::str::from_utf8(&c).is_ok());
    }

    #[test]
    fn server_text_is_made_safe() {
        assert_eq!(clean_text("a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
        // ESC, CSI (C1) and BEL dropped: no terminal control from a server.
        assert_eq!(clean_text("x\x1b[2Jy\u{9b}z\x07\tw"), b"x[2Jyz\tw");
    }

    #[test]
    fn challenge_prompts() {
        let d = b"Response: ";
        assert_eq!(challenge_prompt(None, d), d);
        assert_eq!(challenge_prompt(Some(" \r\n"), d), d);
        assert_eq!(challenge_prompt(Some("Enter PIN:"), d), b"Enter PIN: ");
        assert_eq!(challenge_prompt(Some("Code? "), d), b"Code? ");
        assert_eq!(
            challenge_prompt(Some("Token 42\nEnter code:"), d),
            b"Token 42\r\nEnter code: "
        );
        assert_eq!(challenge_prompt(Some("Next line\n"), d), b"Next line\r\n");
    }

    #[test]
    fn verdict_names() {
        assert_eq!(verdict_name(b"alice").as_deref(), Some("alice"));
        assert_eq!(verdict_name(b""), None);
        assert_eq!(verdict_name(b"\xff"), None);
        assert_eq!(verdict_name(b"a\x07"), None);
        assert_eq!(verdict_name(&[b'a'; 257]), None);
        assert!(verdict_name(&[b'a'; 256]).is_some());
    }

    fn opts() -> RadiusOptions {
        RadiusOptions {
            servers: vec![ServerConfig {
                addr: "127.0.0.1:1812".parse().unwrap(),
                secret: b"s3cret".to_vec(),
            }],
            ..RadiusOptions::default()
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let check = |o: RadiusOptions| RadiusModule::new(h.clone(), o).err().map(|e| e.to_string());
        assert!(check(opts()).is_none());
        assert!(check(RadiusOptions { tries: 0, ..opts() }).is_some());
        assert!(
            check(RadiusOptions {
                servers: vec![],
                ..opts()
            })
            .unwrap()
            .contains("no servers")
        );
        let mut o = opts();
        o.servers[0].secret.clear();
        assert!(check(o).unwrap().contains("empty shared secret"));
        assert!(
            check(RadiusOptions {
                nas_identifier: String::new(),
                ..opts()
            })
            .is_some()
        );
        assert!(
            check(RadiusOptions {
                timeout: Duration::ZERO,
                ..opts()
            })
            .is_some()
        );
        assert!(
            check(RadiusOptions {
                domain: "x".repeat(16),
                ..opts()
            })
            .is_some()
        );
        assert!(
            check(RadiusOptions {
                challenge_prompt: "x".repeat(MAX_BANNER + 1),
                ..opts()
            })
            .is_some()
        );
    }

    /// An idle dialog is one task whose state is this future: keep it
    /// small, like the other modules'.
    #[test]
    fn an_idle_dialog_is_small() {
        use securityhost::{Config, Port, SystemClock};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = RadiusModule::new(rt.handle().clone(), opts()).unwrap();
        let port = Port::new(
            HPort(9),
            Config::default(),
            "t",
            Arc::new(SystemClock),
            Box::new(|| {}),
        );
        let args = BeginArgs {
            hport: HPort(9),
            send_buffer_size: 1024,
            recv_buffer_size: 1024,
            host: port.host(),
        };
        let fut = m.inner.dialog(Session::detached(&args));
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 4096, "dialog future is {size} bytes");
    }

    proptest::proptest! {
        /// Whatever a server sends, the caller's terminal gets no control
        /// byte but CR LF pairs and tabs, and a prompt is never empty.
        #[test]
        fn server_text_never_controls_the_terminal(msg in ".{0,300}") {
            let out = clean_text(&msg);
            let text = String::from_utf8(out.clone()).unwrap();
            let mut prev = '\0';
            for c in text.chars() {
                proptest::prop_assert!(!c.is_control() || matches!(c, '\r' | '\n' | '\t'));
                if c == '\n' {
                    proptest::prop_assert_eq!(prev, '\r');
                }
                if prev == '\r' {
                    proptest::prop_assert_eq!(c, '\n');
                }
                prev = c;
            }
            proptest::prop_assert!(prev != '\r');
            let p = challenge_prompt(Some(&msg), b"Response: ");
            proptest::prop_assert!(!p.is_empty());
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!("{:?}", opts());
        assert!(!s.contains("s3cret"), "{s}");
    }
}
