//! The PPP link: framing, LCP, authentication, IPCP and IPv4 data, in one
//! sans-IO state machine for either role (see [`Link`]).

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::auth::{
    self, AuthProtocol, AuthStatus, Authenticator, AuthenticatorConfig, Peer, PeerConfig, Verdict,
    VerifyId, VerifyRequest,
};
use crate::fsm::{Fsm, FsmConfig, LayerAction, Received, State};
use crate::hdlc::{Deframer, DeframerStats, Frame, TxOptions, encode_frame};
use crate::ipcp::{IpcpConfig, IpcpNegotiator};
use crate::lcp::{
    LcpConfig, LcpNegotiator, parse_magic_data, parse_protocol_reject, protocol_reject_data,
};
use crate::wire::{Code, build_packet, protocol};

/// The caller's random source: fills the buffer with random bytes (use a
/// CSPRNG; challenge seeds are drawn from it).
pub type RandomSource = Box<dyn FnMut(&mut [u8]) + Send>;

/// Which end of the link we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The dial-in server: authenticator, assigns addresses.
    Server,
    /// The dialling client: authenticates itself, takes an address.
    Client,
}

/// The link phases of RFC 1661 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Link Dead: finished (a [`Link`] does not restart).
    Dead,
    /// Link Establishment: LCP negotiating.
    Establish,
    /// Authentication.
    Authenticate,
    /// Network-Layer Protocol: IPCP and IP.
    Network,
    /// Link Termination.
    Terminate,
}

/// Why the link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownCause {
    /// We closed it ([`Link::close`]) with this reason.
    LocalClose(String),
    /// The peer sent an LCP Terminate-Request (its text, lossy UTF-8).
    PeerTerminated(String),
    /// The peer stopped answering LCP (Max-Configure or Max-Terminate
    /// requests without a reply).
    NoResponse,
    /// LCP negotiation failed (the negotiator's reason).
    LcpFailed(String),
    /// Authentication failed.
    AuthFailed(auth::FailureReason),
    /// The peer rejected the authentication protocol it had agreed to.
    AuthRejected,
    /// IPCP failed or was terminated, so no network protocol runs.
    IpcpFailed(String),
    /// This many LCP Echo-Requests went unanswered.
    EchoTimeout(u32),
    /// The link is looped back (our magic number came back).
    LoopedBack,
    /// The line went away ([`Link::handle_hangup`]).
    Hangup,
    /// Authentication did not complete within
    /// [`LinkConfig::auth_timeout`] (a peer that never answers, a peer that
    /// keeps LCP from opening, or a host whose check never returns).
    AuthTimeout,
    /// The peer renegotiated LCP more often than
    /// [`LinkConfig::lcp_renegotiations_max`] allows (each renegotiation
    /// restarts authentication); the number it tried.
    TooManyRenegotiations(u32),
}

impl fmt::Display for DownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownCause::LocalClose(r) => write!(f, "closed locally: {r}"),
            DownCause::PeerTerminated(r) => write!(f, "peer terminated the link: {r:?}"),
            DownCause::NoResponse => f.write_str("peer did not answer LCP"),
            DownCause::LcpFailed(r) => write!(f, "LCP negotiation failed: {r}"),
            DownCause::AuthFailed(r) => write!(f, "authentication failed: {r:?}"),
            DownCause::AuthRejected => {
                f.write_str("peer protocol-rejected the agreed authentication protocol")
            }
            DownCause::IpcpFailed(r) => write!(f, "IPCP failed: {r}"),
            DownCause::EchoTimeout(n) => write!(f, "{n} LCP echo requests unanswered"),
            DownCause::LoopedBack => f.write_str("link is looped back"),
            DownCause::Hangup => f.write_str("line hung up"),
            DownCause::AuthTimeout => f.write_str("authentication timed out"),
            DownCause::TooManyRenegotiations(n) => {
                write!(f, "too many LCP renegotiations ({n})")
            }
        }
    }
}

/// Something the host must know about or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link entered a new phase.
    Phase(Phase),
    /// Server role: judge these credentials, then call [`Link::verified`]
    /// with the request's `id`.
    Verify(VerifyRequest),
    /// Server role: the request with this id is void (LCP went down or
    /// renegotiated, authentication restarted, or the link closed). Abort
    /// its check; a verdict for it is refused ([`LinkError::StaleVerdict`]).
    VerifyAborted(VerifyId),
    /// Authentication succeeded (server: the peer's user; client: ours).
    /// A server authenticates one user per link: after an LCP
    /// renegotiation, a request naming another user than the first
    /// success is rejected without an [`Event::Verify`] and ends the link
    /// ([`auth::FailureReason::UserChanged`]).
    Authenticated {
        /// User name (raw octets).
        user: Vec<u8>,
        /// The method.
        protocol: AuthProtocol,
    },
    /// An authentication attempt failed (final or not; a final failure is
    /// followed by [`Event::Down`]).
    AuthFailed(auth::FailureReason),
    /// IPCP is up: IPv4 packets can flow.
    Up {
        /// Our address.
        local: Ipv4Addr,
        /// The peer's address (0.0.0.0 if it never said).
        peer: Ipv4Addr,
        /// DNS servers: given to the peer (server) or received (client).
        dns: [Option<Ipv4Addr>; 2],
        /// NBNS servers, likewise.
        nbns: [Option<Ipv4Addr>; 2],
    },
    /// IPCP left the Opened state (renegotiation or termination): IPv4
    /// packets cannot flow until the next [`Event::Up`].
    IpDown,
    /// An IPv4 packet arrived.
    IpPacket(Vec<u8>),
    /// The link is finished; nothing more will happen.
    Down {
        /// Why.
        cause: DownCause,
    },
}

/// Misuse of the [`Link`] API by its caller (nothing is changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The configuration is inconsistent (our misuse).
    Config(&'static str),
    /// IP cannot be sent: IPCP is not Opened.
    NotUp,
    /// The packet is larger than the peer's MRU allows.
    TooBig {
        /// Packet size.
        len: usize,
        /// The peer's MRU.
        mru: u16,
    },
    /// No authentication is running, or it refused the call.
    Auth(String),
    /// A verdict for a request that is not the pending one (answered
    /// already, aborted by [`Event::VerifyAborted`], or never asked). It
    /// was dropped and authenticated nothing.
    StaleVerdict(VerifyId),
    /// The transmit queue is full ([`LinkConfig::tx_queue_max`]): the IP
    /// packet was dropped.
    QueueFull {
        /// Octets queued.
        pending: usize,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Config(w) => write!(f, "invalid link configuration (caller): {w}"),
            LinkError::NotUp => f.write_str("caller sent IP before IPCP is up"),
            LinkError::TooBig { len, mru } => {
                write!(
                    f,
                    "caller's IP packet of {len} octets exceeds the peer MRU {mru}"
                )
            }
            LinkError::Auth(w) => write!(f, "caller misused authentication: {w}"),
            LinkError::StaleVerdict(id) => write!(
                f,
                "caller gave a verdict for request {} which is not the pending one",
                id.0
            ),
            LinkError::QueueFull { pending } => {
                write!(f, "transmit queue full ({pending} octets): packet dropped")
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// Configuration of a [`Link`].
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Our role.
    pub role: Role,
    /// LCP options. A server lists the methods it requires in
    /// `lcp.require_auth`; a client the methods it accepts in
    /// `lcp.accept_auth`.
    pub lcp: LcpConfig,
    /// IPCP options.
    pub ipcp: IpcpConfig,
    /// Restart timer and counters for LCP and IPCP.
    pub fsm: FsmConfig,
    /// Authenticator settings (server role with `require_auth`). Its
    /// `challenge_seed` is replaced by bytes from the link's random source.
    pub authenticator: Option<AuthenticatorConfig>,
    /// Our credentials (client role with `accept_auth`). Its
    /// `challenge_seed` is replaced by bytes from the link's random source.
    pub credentials: Option<PeerConfig>,
    /// LCP Echo-Request interval once LCP is open (`None`: no keepalive).
    pub echo_interval: Option<Duration>,
    /// Unanswered Echo-Requests tolerated before the link is closed.
    pub echo_max_missed: u32,
    /// How long the link may go unauthenticated before it closes with
    /// [`DownCause::AuthTimeout`] (`None`: unbounded; default 30 s): from
    /// [`Link::new`] to the first success, and from each LCP renegotiation
    /// after a success to the next. LCP negotiation counts: a peer that
    /// never lets LCP open (Configure-Naks reset the restart counter) is
    /// bounded too, and renegotiating before the first success does not
    /// restart the deadline.
    pub auth_timeout: Option<Duration>,
    /// LCP renegotiations allowed after the first negotiation (each one
    /// restarts authentication); one more closes the link with
    /// [`DownCause::TooManyRenegotiations`]. Default 4.
    pub lcp_renegotiations_max: u32,
    /// Octets of encoded frames the link holds for the line at most
    /// ([`Link::pending_tx_bytes`]); IP is dropped tail-first to make room
    /// for control frames, and a frame that still does not fit is dropped.
    /// One frame is always accepted into an empty queue. Default
    /// [`DEFAULT_TX_QUEUE_MAX`].
    pub tx_queue_max: usize,
    /// Echo-Replies and Protocol-Rejects sent per second at most (a token
    /// bucket holding as many; more are not sent). Default 10.
    pub control_reply_rate: u32,
}

/// Default [`LinkConfig::tx_queue_max`]: 16 KiB, five 1500-octet packets
/// with worst-case HDLC escaping plus margin.
pub const DEFAULT_TX_QUEUE_MAX: usize = 16 * 1024;
/// Default [`LinkConfig::auth_timeout`].
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`LinkConfig::lcp_renegotiations_max`].
pub const DEFAULT_LCP_RENEGOTIATIONS_MAX: u32 = 4;
/// Default [`LinkConfig::control_reply_rate`].
pub const DEFAULT_CONTROL_REPLY_RATE: u32 = 10;

impl LinkConfig {
    /// A server that assigns `peer` to the client, with `local` as its own
    /// address, requiring `auth` (in order of preference).
    pub fn server(local: Ipv4Addr, peer: Ipv4Addr, auth: Vec<AuthProtocol>) -> Self {
        let authenticator = (!auth.is_empty()).then(|| AuthenticatorConfig::new([0; 32]));
        LinkConfig {
            role: Role::Server,
            lcp: LcpConfig {
                require_auth: auth,
                ..LcpConfig::default()
            },
            ipcp: IpcpConfig {
                local: Some(local),
                peer: Some(peer),
                ..IpcpConfig::default()
            },
            fsm: FsmConfig::default(),
            authenticator,
            credentials: None,
            echo_interval: Some(Duration::from_secs(30)),
            echo_max_missed: 4,
            auth_timeout: Some(DEFAULT_AUTH_TIMEOUT),
            lcp_renegotiations_max: DEFAULT_LCP_RENEGOTIATIONS_MAX,
            tx_queue_max: DEFAULT_TX_QUEUE_MAX,
            control_reply_rate: DEFAULT_CONTROL_REPLY_RATE,
        }
    }

    /// A client that accepts every method for `user`/`password` (or none
    /// if `credentials` is `None`), asks for an address and DNS servers.
    pub fn client(credentials: Option<(&[u8], &str)>) -> Self {
        let (accept, creds) = match credentials {
            Some((u, p)) => (
                vec![
                    AuthProtocol::MsChapV2,
                    AuthProtocol::ChapMd5,
                    AuthProtocol::Pap,
                ],
                Some(PeerConfig::new(u, p, [0; 32])),
            ),
            None => (Vec::new(), None),
        };
        LinkConfig {
            role: Role::Client,
            lcp: LcpConfig {
                accept_auth: accept,
                ..LcpConfig::default()
            },
            ipcp: IpcpConfig {
                request_dns: true,
                ..IpcpConfig::default()
            },
            fsm: FsmConfig::default(),
            authenticator: None,
            credentials: creds,
            echo_interval: Some(Duration::from_secs(30)),
            echo_max_missed: 4,
            auth_timeout: Some(DEFAULT_AUTH_TIMEOUT),
            lcp_renegotiations_max: DEFAULT_LCP_RENEGOTIATIONS_MAX,
            tx_queue_max: DEFAULT_TX_QUEUE_MAX,
            control_reply_rate: DEFAULT_CONTROL_REPLY_RATE,
        }
    }
}

/// Counters of a [`Link`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// The deframer's counters.
    pub deframer: DeframerStats,
    /// Frames sent.
    pub frames_out: u64,
    /// Control packets discarded as malformed or unexpected.
    pub discarded: u64,
    /// Frames of a known protocol discarded because of the phase.
    pub out_of_phase: u64,
    /// Protocol-Rejects sent.
    pub protocol_rejects: u64,
    /// IPv4 packets received.
    pub ip_in: u64,
    /// IPv4 packets sent.
    pub ip_out: u64,
    /// Frames dropped because the transmit queue was full (IP dropped
    /// tail-first, or a control frame that did not fit).
    pub tx_dropped: u64,
    /// Echo-Replies and Protocol-Rejects not sent because of the rate limit.
    pub replies_limited: u64,
    /// Verdicts refused as stale ([`LinkError::StaleVerdict`]).
    pub stale_verdicts: u64,
}

/// A token bucket on the caller's clock (GCRA form): `rate` per second,
/// bursts of `rate`.
#[derive(Debug, Clone, Copy)]
struct RateLimit {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        RateLimit {
            interval,
            tolerance: interval * (per_second - 1),
            tat: None,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let tat = self.tat.map_or(now, |t| t.max(now));
        if tat.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        self.tat = Some(tat + self.interval);
        true
    }
}

enum AuthMachine {
    None,
    Server(Box<Authenticator>),
    Client(Box<Peer>),
}

/// A PPP link, sans-IO, in the style of quinn-proto.
///
/// # Call order
///
/// 1. [`Link::new`] when the line is connected: the first LCP
///    Configure-Request is queued at once (and retransmitted on the
///    restart timer, so it does not matter if the peer missed it).
/// 2. Whenever something happens, call the matching input:
///    [`handle_input`](Link::handle_input) with the bytes read from the
///    line (any chunking), [`handle_timeout`](Link::handle_timeout) when
///    the instant of [`poll_timeout`](Link::poll_timeout) has passed,
///    [`verified`](Link::verified) with the host's verdict on an
///    [`Event::Verify`] and that request's id (after an
///    [`Event::VerifyAborted`] for it, abort the check: its verdict will
///    be refused), [`send_ip`](Link::send_ip),
///    [`close`](Link::close), [`handle_hangup`](Link::handle_hangup).
/// 3. After each input, drain [`poll_transmit`](Link::poll_transmit)
///    (write the bytes to the line, in order; while
///    [`pending_tx_bytes`](Link::pending_tx_bytes) is at
///    [`tx_queue_max`](Link::tx_queue_max), stop reading the line and the
///    packet source: the queue is bounded and drops beyond it) and
///    [`poll_event`](Link::poll_event) until `None`, then re-arm the timer
///    from [`poll_timeout`](Link::poll_timeout).
/// 4. After [`Event::Down`], the link is [`Phase::Dead`]: drain the last
///    frames (a Terminate-Ack, say), then drop it and hang up the line.
///
/// `now` must not go backwards. Nothing a peer sends can make a method
/// panic; malformed or unexpected packets are discarded and counted in
/// [`stats`](Link::stats).
pub struct Link {
    role: Role,
    rand: RandomSource,
    deframer: Deframer,
    tx_opts: TxOptions,
    peer_mru: u16,
    lcp: Fsm<LcpNegotiator>,
    ipcp: Fsm<IpcpNegotiator>,
    auth: AuthMachine,
    authenticator: Option<AuthenticatorConfig>,
    credentials: Option<PeerConfig>,
    phase: Phase,
    authenticated: bool,
    /// Encoded frames for the line, each marked whether it is IP.
    transmit: VecDeque<(Vec<u8>, bool)>,
    tx_bytes: usize,
    tx_max: usize,
    replies: RateLimit,
    /// The id the next verification request gets (unique for the link's
    /// life, across authenticator restarts).
    next_verify: u64,
    /// The request the host is judging, if any.
    pending_verify: Option<VerifyId>,
    /// Server role: the user the first success authenticated. A later
    /// authentication (after an LCP renegotiation) must name the same user
    /// (the host's session, accounting and record are that user's).
    first_user: Option<Vec<u8>>,
    auth_timeout: Option<Duration>,
    /// Armed while the link is not authenticated (from `new`, and from an
    /// LCP Down after a success); cleared by a success.
    auth_deadline: Option<Instant>,
    /// Times LCP reached Opened.
    lcp_ups: u32,
    lcp_renegotiations_max: u32,
    events: VecDeque<Event>,
    echo_interval: Option<Duration>,
    echo_max_missed: u32,
    echo_next: Option<Instant>,
    echo_missed: u32,
    echo_id: u8,
    lcp_id: u8,
    cause: Option<DownCause>,
    stats: LinkStats,
    last_discard: Option<String>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("lcp", &self.lcp.state())
            .field("ipcp", &self.ipcp.state())
            .finish_non_exhaustive()
    }
}

/// Room for address, control, protocol and FCS around the MRU.
const FRAME_OVERHEAD: usize = 8;

impl Link {
    /// A link on a connected line. `rand` fills buffers with random bytes
    /// (magic numbers, challenge seeds); give it a CSPRNG.
    pub fn new(config: LinkConfig, now: Instant, rand: RandomSource) -> Result<Link, LinkError> {
        match config.role {
            Role::Server => {
                if !config.lcp.require_auth.is_empty() && config.authenticator.is_none() {
                    return Err(LinkError::Config(
                        "a server requiring authentication needs an authenticator config",
                    ));
                }
                if !config.lcp.accept_auth.is_empty() {
                    return Err(LinkError::Config("a server does not authenticate itself"));
                }
            }
            Role::Client => {
                if !config.lcp.accept_auth.is_empty() && config.credentials.is_none() {
                    return Err(LinkError::Config(
                        "a client accepting auth needs credentials",
                    ));
                }
                if !config.lcp.require_auth.is_empty() {
                    return Err(LinkError::Config(
                        "a client does not authenticate the server",
                    ));
                }
            }
        }
        if config.lcp.mru < crate::lcp::MIN_MRU {
            return Err(LinkError::Config("MRU below 128"));
        }
        let max_frame = usize::from(config.lcp.mru).max(1500) + FRAME_OVERHEAD;
        let mut link = Link {
            role: config.role,
            rand,
            deframer: Deframer::new(max_frame),
            tx_opts: TxOptions::DEFAULT,
            peer_mru: crate::lcp::DEFAULT_MRU,
            lcp: Fsm::new(LcpNegotiator::new(config.lcp), config.fsm),
            ipcp: Fsm::new(IpcpNegotiator::new(config.ipcp), config.fsm),
            auth: AuthMachine::None,
            authenticator: config.authenticator,
            credentials: config.credentials,
            phase: Phase::Dead,
            authenticated: false,
            transmit: VecDeque::new(),
            tx_bytes: 0,
            tx_max: config.tx_queue_max,
            replies: RateLimit::new(config.control_reply_rate),
            next_verify: 0,
            pending_verify: None,
            first_user: None,
            auth_timeout: config.auth_timeout,
            auth_deadline: None,
            lcp_ups: 0,
            lcp_renegotiations_max: config.lcp_renegotiations_max,
            events: VecDeque::new(),
            echo_interval: config.echo_interval,
            echo_max_missed: config.echo_max_missed.max(1),
            echo_next: None,
            echo_missed: 0,
            echo_id: 0,
            lcp_id: 0x80,
            cause: None,
            stats: LinkStats::default(),
            last_discard: None,
        };
        // Authentication may be asked for: the deadline runs from now.
        if link.may_auth() {
            link.auth_deadline = link.auth_timeout.map(|d| now + d);
        }
        link.set_phase(Phase::Establish);
        let rand = &mut *link.rand;
        link.lcp.open(now, rand);
        link.lcp.up(now, rand);
        link.pump(now);
        Ok(link)
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The LCP automaton's state.
    pub fn lcp_state(&self) -> State {
        self.lcp.state()
    }

    /// The IPCP automaton's state.
    pub fn ipcp_state(&self) -> State {
        self.ipcp.state()
    }

    /// The LCP negotiator (negotiated values).
    pub fn lcp(&self) -> &LcpNegotiator {
        &self.lcp.neg
    }

    /// The IPCP negotiator (negotiated addresses).
    pub fn ipcp(&self) -> &IpcpNegotiator {
        &self.ipcp.neg
    }

    /// Whether IPv4 packets can flow.
    pub fn is_up(&self) -> bool {
        self.ipcp.state() == State::Opened && self.phase == Phase::Network
    }

    /// Whether the link is finished.
    pub fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// The cause, once the link is down.
    pub fn down_cause(&self) -> Option<&DownCause> {
        if self.is_dead() {
            self.cause.as_ref()
        } else {
            None
        }
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            deframer: self.deframer.stats(),
            ..self.stats
        }
    }

    /// Why the last discarded packet was discarded (for logs).
    pub fn last_discard(&self) -> Option<&str> {
        self.last_discard.as_deref()
    }

    /// The next bytes to write to the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let (f, _) = self.transmit.pop_front()?;
        self.tx_bytes -= f.len();
        Some(f)
    }

    /// Octets of frames queued for the line (not yet taken by
    /// [`poll_transmit`](Link::poll_transmit)). At most
    /// [`tx_queue_max`](Link::tx_queue_max) plus one frame.
    pub fn pending_tx_bytes(&self) -> usize {
        self.tx_bytes
    }

    /// The transmit queue's bound ([`LinkConfig::tx_queue_max`]). A driver
    /// should stop reading the line and its packet source while
    /// [`pending_tx_bytes`](Link::pending_tx_bytes) is at or above it.
    pub fn tx_queue_max(&self) -> usize {
        self.tx_max
    }

    /// The request the host is judging (server role), if any.
    pub fn pending_verify(&self) -> Option<VerifyId> {
        self.pending_verify
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Link::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_dead() {
            return None;
        }
        let auth = match &self.auth {
            AuthMachine::None => None,
            AuthMachine::Server(a) => a.poll_timeout(),
            AuthMachine::Client(p) => p.poll_timeout(),
        };
        [
            self.lcp.poll_timeout(),
            self.ipcp.poll_timeout(),
            auth,
            self.echo_next,
            self.auth_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes read from the line.
    pub fn handle_input(&mut self, now: Instant, mut data: &[u8]) {
        while !data.is_empty() && !self.is_dead() {
            let (used, frame) = self.deframer.push_until_frame(data);
            data = data.get(used..).unwrap_or(&[]);
            if let Some(f) = frame {
                self.handle_frame(now, f);
                self.pump(now);
            }
        }
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_dead() {
            return;
        }
        let rand = &mut *self.rand;
        self.lcp.handle_timeout(now, rand);
        self.ipcp.handle_timeout(now, rand);
        match &mut self.auth {
            AuthMachine::None => {}
            AuthMachine::Server(a) => a.handle_timeout(now),
            AuthMachine::Client(p) => p.handle_timeout(now),
        }
        if self.echo_next.is_some_and(|t| now >= t) {
            self.echo_tick(now);
        }
        // After the layers ran: a link that ended at this instant for its
        // own reason (LCP gave up) keeps that cause.
        self.pump(now);
        if !self.is_dead() && self.auth_deadline.is_some_and(|t| now >= t) {
            self.auth_deadline = None;
            if !self.authenticated {
                self.close_with(now, DownCause::AuthTimeout, "Authentication timed out");
                self.pump(now);
            }
        }
    }

    /// The host's verdict on the [`Event::Verify`] whose id is `request`
    /// (server role).
    ///
    /// # Errors
    /// [`LinkError::StaleVerdict`] when `request` is not the pending
    /// request (answered already, aborted by [`Event::VerifyAborted`], or
    /// unknown): the verdict is dropped and changes nothing, in particular
    /// it authenticates nobody. [`LinkError::Auth`] when the authenticator
    /// refused it (an MS-CHAPv2 Accept without the authenticator response);
    /// the request stays pending.
    pub fn verified(
        &mut self,
        now: Instant,
        request: VerifyId,
        verdict: Verdict,
    ) -> Result<(), LinkError> {
        if self.pending_verify != Some(request) {
            self.stats.stale_verdicts += 1;
            return Err(LinkError::StaleVerdict(request));
        }
        let AuthMachine::Server(a) = &mut self.auth else {
            // Unreachable: a pending request implies a running authenticator.
            self.pending_verify = None;
            self.stats.stale_verdicts += 1;
            return Err(LinkError::StaleVerdict(request));
        };
        match a.verified(now, request, verdict) {
            Ok(()) => {}
            Err(auth::AuthError::StaleVerdict) => {
                self.stats.stale_verdicts += 1;
                return Err(LinkError::StaleVerdict(request));
            }
            Err(e) => return Err(LinkError::Auth(e.to_string())),
        }
        self.pending_verify = None;
        self.pump(now);
        Ok(())
    }

    /// Sends an IPv4 packet (IPCP must be up).
    pub fn send_ip(&mut self, packet: &[u8]) -> Result<(), LinkError> {
        if !self.is_up() {
            return Err(LinkError::NotUp);
        }
        if packet.len() > usize::from(self.peer_mru) {
            return Err(LinkError::TooBig {
                len: packet.len(),
                mru: self.peer_mru,
            });
        }
        if !self.send(protocol::IPV4, packet) {
            return Err(LinkError::QueueFull {
                pending: self.tx_bytes,
            });
        }
        self.stats.ip_out += 1;
        Ok(())
    }

    /// Closes the link: LCP Terminate-Request with `reason`, then
    /// [`Event::Down`] once the peer acks or the restart timer gives up.
    pub fn close(&mut self, now: Instant, reason: &str) {
        if self.is_dead() {
            return;
        }
        self.close_with(now, DownCause::LocalClose(reason.to_string()), reason);
        self.pump(now);
    }

    /// The line went away (carrier lost): the link is down at once.
    pub fn handle_hangup(&mut self, now: Instant) {
        if self.is_dead() {
            return;
        }
        // The peer asked to terminate, we acked, and it hung up before our
        // Stopping state ran out (RFC 1661 §3.7 lets it): that is the
        // peer's termination, not a dropped line.
        if self.cause.is_none()
            && self.lcp.state() == State::Stopping
            && let Some(r) = self.lcp.peer_terminate_reason()
        {
            self.cause = Some(DownCause::PeerTerminated(
                String::from_utf8_lossy(r).into_owned(),
            ));
        }
        let rand = &mut *self.rand;
        self.ipcp.down(now, rand);
        self.lcp.down(now, rand);
        self.cause.get_or_insert(DownCause::Hangup);
        self.finish();
    }

    // ------------------------------------------------------------------

    fn set_phase(&mut self, p: Phase) {
        if self.phase != p {
            self.phase = p;
            self.events.push_back(Event::Phase(p));
        }
    }

    fn discard(&mut self, why: String) {
        self.stats.discarded += 1;
        self.last_discard = Some(why);
    }

    /// Queues a frame; `false` if it was dropped because the queue is full.
    fn send(&mut self, proto: u16, payload: &[u8]) -> bool {
        let mut out = Vec::new();
        encode_frame(
            proto,
            payload,
            self.tx_opts.for_packet(proto, payload),
            &mut out,
        );
        let is_ip = proto == protocol::IPV4;
        if !is_ip {
            // Control frames first: drop queued IP from the tail for room.
            while self.tx_bytes + out.len() > self.tx_max {
                let Some(i) = self.transmit.iter().rposition(|(_, ip)| *ip) else {
                    break;
                };
                if let Some((f, _)) = self.transmit.remove(i) {
                    self.tx_bytes -= f.len();
                    self.stats.tx_dropped += 1;
                }
            }
        }
        if !self.transmit.is_empty() && self.tx_bytes + out.len() > self.tx_max {
            self.stats.tx_dropped += 1;
            return false;
        }
        self.stats.frames_out += 1;
        self.tx_bytes += out.len();
        self.transmit.push_back((out, is_ip));
        true
    }

    /// Drops the authentication machine; a request the host is still
    /// judging becomes void ([`Event::VerifyAborted`]).
    fn drop_auth(&mut self) {
        self.auth = AuthMachine::None;
        if let Some(id) = self.pending_verify.take() {
            self.events.push_back(Event::VerifyAborted(id));
        }
    }

    fn close_with(&mut self, now: Instant, cause: DownCause, reason: &str) {
        self.cause.get_or_insert(cause);
        let rand = &mut *self.rand;
        self.lcp.close(now, reason.as_bytes(), rand);
        if matches!(self.lcp.state(), State::Closed | State::Initial) {
            // Nothing to terminate (LCP was not running).
            self.finish();
        }
    }

    fn finish(&mut self) {
        if self.is_dead() {
            return;
        }
        self.drop_auth();
        self.echo_next = None;
        self.set_phase(Phase::Dead);
        let cause = self
            .cause
            .clone()
            .unwrap_or(DownCause::LcpFailed("LCP finished".to_string()));
        self.cause = Some(cause.clone());
        self.events.push_back(Event::Down { cause });
    }

    fn handle_frame(&mut self, now: Instant, f: Frame) {
        let lcp_open = self.lcp.state() == State::Opened;
        match f.protocol {
            protocol::LCP => {
                let rand = &mut *self.rand;
                match self.lcp.handle_packet(now, &f.payload, rand) {
                    Ok(Received::Handled) => {}
                    Ok(Received::Extended { code, id, data }) => {
                        if lcp_open {
                            self.lcp_extended(now, code, id, &data);
                        } else {
                            self.stats.out_of_phase += 1;
                        }
                    }
                    Err(e) => self.discard(format!("LCP: {e}")),
                }
            }
            protocol::PAP | protocol::CHAP => {
                let running = match &self.auth {
                    AuthMachine::None => None,
                    AuthMachine::Server(a) => Some(a.protocol()),
                    AuthMachine::Client(p) => Some(p.protocol()),
                };
                match running {
                    Some(p) if p.ppp_protocol() == f.protocol => {
                        let r = match &mut self.auth {
                            AuthMachine::Server(a) => a.handle_packet(now, &f.payload),
                            AuthMachine::Client(p) => p.handle_packet(now, &f.payload),
                            AuthMachine::None => Ok(()),
                        };
                        if let Err(e) = r {
                            self.discard(e.to_string());
                        }
                    }
                    Some(_) => self.protocol_reject(now, f.protocol, &f.payload),
                    None if lcp_open => self.protocol_reject(now, f.protocol, &f.payload),
                    None => self.stats.out_of_phase += 1,
                }
            }
            protocol::IPCP => {
                if self.phase == Phase::Network {
                    let rand = &mut *self.rand;
                    if let Err(e) = self.ipcp.handle_packet(now, &f.payload, rand) {
                        self.discard(format!("IPCP: {e}"));
                    }
                } else {
                    // RFC 1661 §3.5: NCP packets before the Network phase
                    // are silently discarded.
                    self.stats.out_of_phase += 1;
                }
            }
            protocol::IPV4 => {
                if self.is_up() {
                    self.stats.ip_in += 1;
                    self.events.push_back(Event::IpPacket(f.payload));
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
            protocol::VJ_COMPRESSED | protocol::VJ_UNCOMPRESSED => {
                // We never agree to VJ; a peer sending it anyway is ignored.
                self.discard("Van Jacobson packet without negotiation".to_string());
            }
            other => {
                if lcp_open {
                    self.protocol_reject(now, other, &f.payload);
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
        }
    }

    fn next_lcp_id(&mut self) -> u8 {
        self.lcp_id = self.lcp_id.wrapping_add(1);
        self.lcp_id
    }

    fn protocol_reject(&mut self, now: Instant, rejected: u16, info: &[u8]) {
        if !self.replies.allow(now) {
            self.stats.replies_limited += 1;
            return;
        }
        let data = protocol_reject_data(rejected, info, self.peer_mru);
        let id = self.next_lcp_id();
        let pkt = build_packet(Code::ProtocolReject, id, &data);
        self.stats.protocol_rejects += 1;
        self.send(protocol::LCP, &pkt);
    }

    fn lcp_extended(&mut self, now: Instant, code: u8, id: u8, data: &[u8]) {
        let ours = self.lcp.neg.our_magic();
        match Code::from(code) {
            Code::EchoRequest => {
                let Some((magic, rest)) = parse_magic_data(data) else {
                    self.discard("LCP Echo-Request shorter than its magic number".to_string());
                    return;
                };
                if ours != 0 && magic == ours {
                    self.lcp.neg.note_loopback();
                    return;
                }
                if !self.replies.allow(now) {
                    self.stats.replies_limited += 1;
                    return;
                }
                let mut reply = ours.to_be_bytes().to_vec();
                let room = usize::from(self.peer_mru).saturating_sub(8);
                reply.extend_from_slice(rest.get(..room).unwrap_or(rest));
                let pkt = build_packet(Code::EchoReply, id, &reply);
                self.send(protocol::LCP, &pkt);
            }
            Code::EchoReply => {
                let Some((magic, _)) = parse_magic_data(data) else {
                    self.discard("LCP Echo-Reply shorter than its magic number".to_string());
                    return;
                };
                if ours != 0 && magic == ours {
                    self.lcp.neg.note_loopback();
                } else {
                    self.echo_missed = 0;
                }
            }
            Code::ProtocolReject => {
                let Some(rejected) = parse_protocol_reject(data) else {
                    self.discard("LCP Protocol-Reject without a protocol".to_string());
                    return;
                };
                let rand = &mut *self.rand;
                match rejected {
                    protocol::IPCP => self.ipcp.rxj(now, true, rand),
                    protocol::LCP => self.lcp.rxj(now, true, rand),
                    protocol::PAP | protocol::CHAP if !matches!(self.auth, AuthMachine::None) => {
                        self.close_with(now, DownCause::AuthRejected, "Authentication failed");
                    }
                    _ => {}
                }
            }
            // Discard-Request: nothing to do (RFC 1661 §5.8).
            _ => {}
        }
    }

    fn echo_tick(&mut self, now: Instant) {
        let Some(interval) = self.echo_interval else {
            self.echo_next = None;
            return;
        };
        if self.lcp.state() != State::Opened {
            self.echo_next = None;
            return;
        }
        if self.echo_missed >= self.echo_max_missed {
            self.echo_next = None;
            let n = self.echo_missed;
            self.close_with(now, DownCause::EchoTimeout(n), "Peer not responding");
            return;
        }
        self.echo_missed += 1;
        let id = self.echo_id;
        self.echo_id = self.echo_id.wrapping_add(1);
        let pkt = build_packet(
            Code::EchoRequest,
            id,
            &self.lcp.neg.our_magic().to_be_bytes(),
        );
        self.send(protocol::LCP, &pkt);
        self.echo_next = Some(now + interval);
    }

    /// Moves packets and actions between the layers until nothing moves.
    fn pump(&mut self, now: Instant) {
        for _ in 0..64 {
            let mut progress = false;
            while let Some(p) = self.lcp.poll_transmit() {
                self.send(protocol::LCP, &p);
                progress = true;
            }
            while let Some(a) = self.lcp.poll_action() {
                self.lcp_action(now, a);
                progress = true;
            }
            if let Some(f) = self.lcp.take_failure() {
                self.cause.get_or_insert(DownCause::LcpFailed(f));
                progress = true;
            }
            if self.lcp.neg.looped_back() && self.cause.is_none() {
                self.close_with(now, DownCause::LoopedBack, "Looped back");
                progress = true;
            }
            while let Some(p) = self.ipcp.poll_transmit() {
                self.send(protocol::IPCP, &p);
                progress = true;
            }
            while let Some(a) = self.ipcp.poll_action() {
                self.ipcp_action(now, a);
                progress = true;
            }
            progress |= self.pump_auth(now);
            if !progress {
                break;
            }
        }
    }

    fn pump_auth(&mut self, now: Instant) -> bool {
        let mut progress = false;
        let mut packets = Vec::new();
        let mut events = Vec::new();
        let (proto, failed) = match &mut self.auth {
            AuthMachine::None => return false,
            AuthMachine::Server(a) => {
                while let Some(p) = a.poll_transmit() {
                    packets.push(p);
                }
                while let Some(e) = a.poll_event() {
                    events.push(e);
                }
                (
                    a.protocol().ppp_protocol(),
                    a.status() == AuthStatus::Failed,
                )
            }
            AuthMachine::Client(p) => {
                while let Some(pk) = p.poll_transmit() {
                    packets.push(pk);
                }
                while let Some(e) = p.poll_event() {
                    events.push(e);
                }
                (
                    p.protocol().ppp_protocol(),
                    p.status() == AuthStatus::Failed,
                )
            }
        };
        for p in packets {
            self.send(proto, &p);
            progress = true;
        }
        for e in events {
            progress = true;
            match e {
                auth::Event::Verify(v) => {
                    self.next_verify = v.id.0.wrapping_add(1);
                    if self
                        .first_user
                        .as_ref()
                        .is_some_and(|u| u.as_slice() != v.credentials.user())
                    {
                        self.refuse_user_change(now, v.id, proto);
                        continue;
                    }
                    self.pending_verify = Some(v.id);
                    self.events.push_back(Event::Verify(v));
                }
                auth::Event::Succeeded { user, protocol } => {
                    if self.role == Role::Server && self.first_user.is_none() {
                        self.first_user = Some(user.clone());
                    }
                    self.events
                        .push_back(Event::Authenticated { user, protocol });
                    if !self.authenticated {
                        self.authenticated = true;
                        self.auth_deadline = None;
                        self.start_network(now);
                    }
                }
                auth::Event::Failed { reason, .. } => {
                    self.events.push_back(Event::AuthFailed(reason.clone()));
                    if failed {
                        self.close_with(
                            now,
                            DownCause::AuthFailed(reason),
                            "Authentication failed",
                        );
                    }
                }
            }
        }
        progress
    }

    /// An authentication after a renegotiation named another user than the
    /// first success: rejected without asking the host (its Nak/Failure
    /// goes out), final, like a re-challenge answered under another name.
    fn refuse_user_change(&mut self, now: Instant, id: VerifyId, proto: u16) {
        let mut packets = Vec::new();
        if let AuthMachine::Server(a) = &mut self.auth {
            let v = Verdict::reject("User name differs from the one that authenticated this link");
            let _ = a.verified(now, id, v);
            while let Some(p) = a.poll_transmit() {
                packets.push(p);
            }
            // Its own Failed event (if any) is replaced by ours.
            while a.poll_event().is_some() {}
        }
        for p in packets {
            self.send(proto, &p);
        }
        let reason = auth::FailureReason::UserChanged;
        self.events.push_back(Event::AuthFailed(reason.clone()));
        self.close_with(now, DownCause::AuthFailed(reason), "Authentication failed");
    }

    fn start_network(&mut self, now: Instant) {
        if self.lcp.state() != State::Opened {
            return;
        }
        self.set_phase(Phase::Network);
        let rand = &mut *self.rand;
        self.ipcp.open(now, rand);
        self.ipcp.up(now, rand);
    }

    fn lcp_action(&mut self, now: Instant, a: LayerAction) {
        match a {
            LayerAction::Up => {
                let tx = self.lcp.neg.tx();
                let rx = self.lcp.neg.rx();
                self.tx_opts = TxOptions {
                    accm: tx.accm,
                    acfc: tx.acfc,
                    pfc: tx.pfc,
                };
                self.peer_mru = tx.mru;
                self.deframer.set_rx_accm(rx.accm);
                self.echo_missed = 0;
                self.echo_next = self.echo_interval.map(|i| now + i);
                self.authenticated = false;
                self.drop_auth();
                self.lcp_ups = self.lcp_ups.saturating_add(1);
                let renegotiations = self.lcp_ups - 1;
                if renegotiations > self.lcp_renegotiations_max {
                    self.close_with(
                        now,
                        DownCause::TooManyRenegotiations(renegotiations),
                        "Too many LCP renegotiations",
                    );
                    return;
                }
                match self.start_auth(now) {
                    Ok(true) => {
                        // The deadline armed when the link became
                        // unauthenticated keeps running (LCP time counts).
                        if let Some(d) = self.auth_timeout {
                            self.auth_deadline.get_or_insert(now + d);
                        }
                        self.set_phase(Phase::Authenticate);
                    }
                    Ok(false) => {
                        self.authenticated = true;
                        self.auth_deadline = None;
                        self.start_network(now);
                    }
                    Err(e) => {
                        self.close_with(now, DownCause::LcpFailed(e), "Authentication failed");
                    }
                }
            }
            LayerAction::Down => {
                self.tx_opts = TxOptions::DEFAULT;
                self.peer_mru = crate::lcp::DEFAULT_MRU;
                self.deframer.set_rx_accm(crate::hdlc::DEFAULT_ACCM);
                self.echo_next = None;
                self.drop_auth();
                self.authenticated = false;
                let rand = &mut *self.rand;
                self.ipcp.down(now, rand);
                // IPCP's reaction: at most a tld; nothing is sent on Down.
                while let Some(a) = self.ipcp.poll_action() {
                    if a == LayerAction::Down {
                        self.events.push_back(Event::IpDown);
                    }
                }
                while self.ipcp.poll_transmit().is_some() {}
                if matches!(self.lcp.state(), State::Closing | State::Stopping) {
                    self.set_phase(Phase::Terminate);
                } else {
                    // A renegotiation: unauthenticated until LCP reopens
                    // and the peer authenticates again; a fresh deadline
                    // after a success, the running one before it.
                    if let Some(d) = self.auth_timeout.filter(|_| self.may_auth()) {
                        self.auth_deadline.get_or_insert(now + d);
                    }
                    self.set_phase(Phase::Establish);
                }
            }
            LayerAction::Started => {}
            LayerAction::Finished => {
                if self.cause.is_none() {
                    let c = match self.lcp.peer_terminate_reason() {
                        Some(r) => {
                            DownCause::PeerTerminated(String::from_utf8_lossy(r).into_owned())
                        }
                        None => DownCause::NoResponse,
                    };
                    self.cause = Some(c);
                }
                self.finish();
            }
        }
    }

    /// Whether LCP may agree on authentication (server: it requires some;
    /// client: it accepts some).
    fn may_auth(&self) -> bool {
        let c = self.lcp.neg.config();
        match self.role {
            Role::Server => !c.require_auth.is_empty(),
            Role::Client => !c.accept_auth.is_empty(),
        }
    }

    /// Creates the authentication machine LCP agreed on. `Ok(false)`: none.
    fn start_auth(&mut self, now: Instant) -> Result<bool, String> {
        let Some(proto) = self.lcp.neg.auth() else {
            if self.role == Role::Server && !self.lcp.neg.config().require_auth.is_empty() {
                return Err("LCP opened without an agreed authentication protocol".to_string());
            }
            return Ok(false);
        };
        let mut seed = [0u8; 32];
        (self.rand)(&mut seed);
        match self.role {
            Role::Server => {
                let mut cfg = self
                    .authenticator
                    .clone()
                    .ok_or("no authenticator configuration")?;
                cfg.challenge_seed = seed;
                let mut a = Authenticator::new(proto, cfg).map_err(|e| e.to_string())?;
                a.continue_verify_ids(VerifyId(self.next_verify));
                a.start(now);
                self.auth = AuthMachine::Server(Box::new(a));
            }
            Role::Client => {
                let mut cfg = self.credentials.clone().ok_or("no credentials")?;
                cfg.challenge_seed = seed;
                let mut p = Peer::new(proto, cfg).map_err(|e| e.to_string())?;
                p.start(now);
                self.auth = AuthMachine::Client(Box::new(p));
            }
        }
        Ok(true)
    }

    fn ipcp_action(&mut self, now: Instant, a: LayerAction) {
        match a {
            LayerAction::Up => {
                let r = self.ipcp.neg.result();
                self.events.push_back(Event::Up {
                    local: r.local,
                    peer: r.peer,
                    dns: r.dns,
                    nbns: r.nbns,
                });
            }
            LayerAction::Down => self.events.push_back(Event::IpDown),
            LayerAction::Started => {}
            LayerAction::Finished => {
                if self.lcp.state() == State::Opened {
                    let why = self
                        .ipcp
                        .take_failure()
                        .unwrap_or_else(|| "no network protocol running".to_string());
                    self.close_with(
                        now,
                        DownCause::IpcpFailed(why),
                        "No network protocols running",
                    );
                }
            }
        }
    }
}
