//! The sans-IO RADIUS client state machine.
//!
//! The driver owns the UDP socket(s) and the clock:
//!
//! 1. [`Client::send_request`] with the current time and 16 random octets;
//! 2. send every datagram [`Client::poll_transmit`] yields to the server address it names;
//! 3. feed received datagrams to [`Client::handle_datagram`] (with the
//!    sender's address);
//! 4. at [`Client::poll_timeout`], call [`Client::handle_timeout`];
//! 5. collect results with [`Client::poll_event`].
//!
//! Use one `Client` for authentication servers (port 1812) and another for
//! accounting servers (port 1813).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::attr::{Attribute, types, values};
use crate::auth::{Prepared, RequestKind, VerifyError, verify_response};
use crate::packet::{Code, EncodeError, RawPacket};

/// Longest per-attempt timeout [`Client::new`] accepts.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One RADIUS server.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to send (an opaque id for this crate; the driver does the UDP).
    pub addr: SocketAddr,
    /// The shared secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Servers in order of preference; failover goes down the list.
    pub servers: Vec<ServerConfig>,
    /// Time to wait for a reply before retransmitting.
    pub timeout: Duration,
    /// Retransmissions to the same server before failing over (so each
    /// server gets `1 + retries` transmissions).
    pub retries: u32,
    /// When Access-* replies without a Message-Authenticator are refused
    /// (protection against BlastRADIUS, CVE-2024-3596). Replies that carry
    /// one are always verified. Default [`RequireMessageAuthenticator::Always`].
    pub require_message_authenticator: RequireMessageAuthenticator,
}

/// Which Access-Accept, Access-Reject and Access-Challenge replies must
/// carry a Message-Authenticator (RFC 3579 §3.2) to be believed. Without
/// one, the Response Authenticator (MD5) is all that binds a reply to its
/// request, and BlastRADIUS (CVE-2024-3596) forges it by an MD5 collision.
/// A Message-Authenticator that is present is verified whatever this says;
/// Accounting-Responses never need one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RequireMessageAuthenticator {
    /// Every reply (the default). A server that does not sign its replies
    /// (FreeRADIUS 3.2.4 and older unless told to) gets no answer through:
    /// the request times out and [`Stats::dropped_missing_message_authenticator`]
    /// counts the drops.
    #[default]
    Always,
    /// Per server, from the first reply of that server that carried a valid
    /// Message-Authenticator on (FreeRADIUS's `auto`); unsigned replies are
    /// believed until then. Kept for the life of the [`Client`].
    Auto,
    /// Never required (unsigned replies are believed): open to BlastRADIUS.
    Never,
}

impl ClientConfig {
    /// Defaults: 3 s timeout, 2 retries, Message-Authenticator always
    /// required.
    pub fn new(servers: Vec<ServerConfig>) -> ClientConfig {
        ClientConfig {
            servers,
            timeout: Duration::from_secs(3),
            retries: 2,
            require_message_authenticator: RequireMessageAuthenticator::Always,
        }
    }
}

/// A configuration the client cannot work with (our misuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No server configured.
    #[error("RADIUS client configured with no servers")]
    NoServers,
    /// A zero timeout would retransmit in a busy loop.
    #[error("RADIUS client timeout must be greater than zero")]
    ZeroTimeout,
    /// A timeout above one hour is certainly a configuration mistake.
    #[error("RADIUS client timeout of {0:?} is longer than one hour")]
    TimeoutTooLong(Duration),
}

/// A request to send: its kind, attributes, and optionally a cleartext
/// password that is hidden per server (User-Password).
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    kind: RequestKind,
    attributes: Vec<Attribute>,
    password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("attributes", &self.attributes)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Request {
    /// An Access-Request with these attributes (a Message-Authenticator is
    /// always added).
    pub fn access(attributes: Vec<Attribute>) -> Request {
        Request {
            kind: RequestKind::Access,
            attributes,
            password: None,
        }
    }

    /// An Accounting-Request with these attributes.
    pub fn accounting(attributes: Vec<Attribute>) -> Request {
        Request {
            kind: RequestKind::Accounting,
            attributes,
            password: None,
        }
    }

    /// Adds a User-Password (cleartext here, hidden on the wire with each
    /// server's secret). Only meaningful for Access-Requests.
    pub fn with_password(mut self, password: &[u8]) -> Request {
        self.password = Some(password.to_vec());
        self
    }

    /// The kind.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// The attributes.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
}

/// Why a request could not be started (our misuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A password on an Accounting-Request.
    #[error("User-Password is only allowed on Access-Requests")]
    PasswordOnAccounting,
}

/// Identifies a request for its whole life (unique per `Client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The result of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Access-Accept, with all its attributes.
    Accept {
        /// Reply attributes.
        attrs: Vec<Attribute>,
    },
    /// Access-Reject.
    Reject {
        /// The Reply-Message attributes, concatenated in order (RFC 2865
        /// §5.18), lossily as UTF-8.
        reply_message: Option<String>,
        /// All reply attributes (for example MS-CHAP-Error).
        attrs: Vec<Attribute>,
    },
    /// Access-Challenge: show the message, send the answer with the State.
    Challenge {
        /// The State to echo in the next Access-Request (RFC 2865 §5.24).
        state: Option<Vec<u8>>,
        /// The Reply-Message attributes, concatenated.
        reply_message: Option<String>,
        /// Prompt (RFC 2869 §5.10): `true` only if the server sent Prompt =
        /// Echo (1); absent or No-Echo means do not echo.
        prompt_echo: bool,
        /// All reply attributes.
        attrs: Vec<Attribute>,
    },
    /// Accounting-Response.
    AccountingResponse {
        /// Reply attributes.
        attrs: Vec<Attribute>,
    },
    /// No server gave a valid answer after all retries on all servers.
    Timeout,
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// First transmissions (one per server tried).
    pub transmissions: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Failovers to the next server.
    pub failovers: u64,
    /// Requests that ended in [`Outcome::Timeout`].
    pub timeouts: u64,
    /// Datagrams dropped because they are not RADIUS packets.
    pub dropped_malformed: u64,
    /// Datagrams dropped because no request waits for them (unknown
    /// sender, identifier or an answer that came too late).
    pub dropped_unmatched: u64,
    /// Replies of a code that does not answer the request.
    pub dropped_unexpected_code: u64,
    /// Replies failing the Response Authenticator check.
    pub dropped_bad_authenticator: u64,
    /// Replies with an invalid Message-Authenticator.
    pub dropped_bad_message_authenticator: u64,
    /// Replies without the required Message-Authenticator.
    pub dropped_missing_message_authenticator: u64,
    /// Access-* replies accepted without a Message-Authenticator (allowed by
    /// [`RequireMessageAuthenticator::Never`], or `Auto` before the server
    /// signed a reply).
    pub accepted_without_message_authenticator: u64,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a free identifier on this server.
    Queued { server: usize },
    InFlight {
        server: usize,
        id: u8,
        packet: Vec<u8>,
        /// Transmissions so far to this server.
        sent: u32,
        deadline: Instant,
    },
}

#[derive(Debug)]
struct Pending {
    prepared: Prepared,
    random: [u8; 16],
    phase: Phase,
    /// Servers tried so far, including the current one.
    tried: usize,
}

#[derive(Debug)]
struct ServerState {
    config: ServerConfig,
    slots: Vec<Option<RequestId>>,
    next_id: u8,
    /// The server has sent a reply with a valid Message-Authenticator
    /// ([`RequireMessageAuthenticator::Auto`] then requires one).
    signs: bool,
}

impl ServerState {
    fn alloc(&mut self, req: RequestId) -> Option<u8> {
        for i in 0..=255u8 {
            let id = self.next_id.wrapping_add(i);
            if let Some(slot @ None) = self.slots.get_mut(usize::from(id)) {
                *slot = Some(req);
                self.next_id = id.wrapping_add(1);
                return Some(id);
            }
        }
        None
    }

    fn free(&mut self, id: u8) {
        if let Some(s) = self.slots.get_mut(usize::from(id)) {
            *s = None;
        }
    }
}

/// The sans-IO RADIUS client. See the module documentation for the driving
/// loop.
#[derive(Debug)]
pub struct Client {
    timeout: Duration,
    retries: u32,
    require_ma: RequireMessageAuthenticator,
    servers: Vec<ServerState>,
    /// Where new requests start (moves on when a server stops answering).
    current: usize,
    requests: BTreeMap<RequestId, Pending>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<(RequestId, Outcome)>,
    next_request: u64,
    stats: Stats,
}

impl Client {
    /// Creates a client.
    pub fn new(config: ClientConfig) -> Result<Client, ConfigError> {
        if config.servers.is_empty() {
            return Err(ConfigError::NoServers);
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if config.timeout > MAX_TIMEOUT {
            return Err(ConfigError::TimeoutTooLong(config.timeout));
        }
        Ok(Client {
            timeout: config.timeout,
            retries: config.retries,
            require_ma: config.require_message_authenticator,
            servers: config
                .servers
                .into_iter()
                .map(|c| ServerState {
                    config: c,
                    slots: vec![None; 256],
                    next_id: 0,
                    signs: false,
                })
                .collect(),
            current: 0,
            requests: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_request: 0,
            stats: Stats::default(),
        })
    }

    /// Starts a request. `random` must be 16 unpredictable octets (the
    /// Request Authenticator of Access-Requests; unused for accounting).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        random: [u8; 16],
    ) -> Result<RequestId, SendError> {
        if request.kind == RequestKind::Accounting && request.password.is_some() {
            return Err(SendError::PasswordOnAccounting);
        }
        let prepared = Prepared::new(
            request.kind,
            &request.attributes,
            request.password.as_deref(),
        )?;
        let rid = RequestId(self.next_request);
        self.next_request += 1;
        let server = self.current;
        self.requests.insert(
            rid,
            Pending {
                prepared,
                random,
                phase: Phase::Queued { server },
                tried: 1,
            },
        );
        self.dispatch(now, rid);
        Ok(rid)
    }

    /// Abandons a request; a late reply to it is dropped.
    pub fn cancel(&mut self, request: RequestId) {
        if let Some(p) = self.requests.remove(&request)
            && let Phase::InFlight { server, id, .. } = p.phase
        {
            self.release(server, id);
        }
    }

    /// The next datagram to send, and the server to send it to.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next finished request.
    pub fn poll_event(&mut self) -> Option<(RequestId, Outcome)> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.requests
            .values()
            .filter_map(|p| match p.phase {
                Phase::InFlight { deadline, .. } => Some(deadline),
                Phase::Queued { .. } => None,
            })
            .min()
    }

    /// Number of requests not finished yet.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Retransmits, fails over or times out every request whose deadline
    /// is `<= now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, p)| matches!(p.phase, Phase::InFlight { deadline, .. } if deadline <= now))
            .map(|(r, _)| *r)
            .collect();
        let n_servers = self.servers.len();
        for rid in due {
            let Some(p) = self.requests.get_mut(&rid) else {
                continue;
            };
            let Phase::InFlight {
                server,
                id,
                packet,
                sent,
                deadline,
            } = &mut p.phase
            else {
                continue;
            };
            if *sent <= self.retries {
                *sent = sent.saturating_add(1);
                *deadline = now + self.timeout;
                self.stats.retransmissions += 1;
                let addr = self.servers[*server].config.addr;
                self.transmits.push_back((addr, packet.clone()));
                continue;
            }
            let (server, id) = (*server, *id);
            if self.current == server {
                self.current = (server + 1) % n_servers;
            }
            if p.tried < n_servers {
                p.tried += 1;
                p.phase = Phase::Queued {
                    server: (server + 1) % n_servers,
                };
                self.stats.failovers += 1;
                self.release(server, id);
                self.dispatch(now, rid);
            } else {
                self.requests.remove(&rid);
                self.stats.timeouts += 1;
                self.events.push_back((rid, Outcome::Timeout));
                self.release(server, id);
            }
        }
        self.dispatch_queued(now);
    }

    /// Processes a datagram received from `from`. Anything that is not a
    /// valid answer to a pending request is dropped and counted in
    /// [`Client::stats`].
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(raw) = RawPacket::parse(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let id = raw.identifier();
        let found = self.servers.iter().enumerate().find_map(|(i, s)| {
            if s.config.addr != from {
                return None;
            }
            s.slots
                .get(usize::from(id))
                .copied()
                .flatten()
                .map(|r| (i, r))
        });
        let Some((server, rid)) = found else {
            self.stats.dropped_unmatched += 1;
            return;
        };
        let Some(p) = self.requests.get(&rid) else {
            self.stats.dropped_unmatched += 1;
            return;
        };
        let Phase::InFlight { packet, .. } = &p.phase else {
            self.stats.dropped_unmatched += 1;
            return;
        };
        let code = raw.code();
        let kind = p.prepared.kind;
        let expected = match kind {
            RequestKind::Access => matches!(
                code,
                Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
            ),
            RequestKind::Accounting => code == Code::AccountingResponse,
        };
        if !expected {
            self.stats.dropped_unexpected_code += 1;
            return;
        }
        let mut req_auth = [0u8; 16];
        if let Some(a) = packet.get(4..20) {
            req_auth.copy_from_slice(a);
        }
        let access = kind == RequestKind::Access;
        let require = access
            && match self.require_ma {
                RequireMessageAuthenticator::Always => true,
                RequireMessageAuthenticator::Auto => self.servers[server].signs,
                RequireMessageAuthenticator::Never => false,
            };
        let secret = &self.servers[server].config.secret;
        match verify_response(&raw, &req_auth, secret, require) {
            Ok(()) => {
                // Verified: a Message-Authenticator in it is a valid one.
                let signed = raw
                    .attributes()
                    .any(|a| a.typ == types::MESSAGE_AUTHENTICATOR);
                if signed {
                    self.servers[server].signs = true;
                } else if access {
                    self.stats.accepted_without_message_authenticator += 1;
                }
            }
            Err(VerifyError::BadAuthenticator) => {
                self.stats.dropped_bad_authenticator += 1;
                return;
            }
            Err(VerifyError::BadMessageAuthenticator) => {
                self.stats.dropped_bad_message_authenticator += 1;
                return;
            }
            Err(VerifyError::MissingMessageAuthenticator) => {
                self.stats.dropped_missing_message_authenticator += 1;
                return;
            }
        }
        self.requests.remove(&rid);
        self.release(server, id);
        let attrs = raw.to_packet().attributes;
        let outcome = match code {
            Code::AccessAccept => Outcome::Accept { attrs },
            Code::AccessReject => Outcome::Reject {
                reply_message: reply_message(&attrs),
                attrs,
            },
            Code::AccessChallenge => Outcome::Challenge {
                state: attrs.iter().find_map(|a| match a {
                    Attribute::State(s) => Some(s.clone()),
                    _ => None,
                }),
                reply_message: reply_message(&attrs),
                prompt_echo: attrs
                    .iter()
                    .any(|a| matches!(a, Attribute::Prompt(values::prompt::ECHO))),
                attrs,
            },
            _ => Outcome::AccountingResponse { attrs },
        };
        self.events.push_back((rid, outcome));
        self.dispatch_queued(now);
    }

    fn release(&mut self, server: usize, id: u8) {
        if let Some(s) = self.servers.get_mut(server) {
            s.free(id);
        }
    }

    /// Moves a queued request in flight if its server has a free identifier.
    fn dispatch(&mut self, now: Instant, rid: RequestId) {
        let Some(p) = self.requests.get_mut(&rid) else {
            return;
        };
        let Phase::Queued { server } = p.phase else {
            return;
        };
        let Some(s) = self.servers.get_mut(server) else {
            return;
        };
        let Some(id) = s.alloc(rid) else {
            return;
        };
        let packet = p.prepared.build(id, &p.random, &s.config.secret);
        self.transmits.push_back((s.config.addr, packet.clone()));
        self.stats.transmissions += 1;
        p.phase = Phase::InFlight {
            server,
            id,
            packet,
            sent: 1,
            deadline: now + self.timeout,
        };
    }

    fn dispatch_queued(&mut self, now: Instant) {
        let queued: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, p)| matches!(p.phase, Phase::Queued { .. }))
            .map(|(r, _)| *r)
            .collect();
        for rid in queued {
            self.dispatch(now, rid);
        }
    }
}

/// Concatenates all Reply-Message attributes (RFC 2865 §5.18: in order).
fn reply_message(attrs: &[Attribute]) -> Option<String> {
    let mut msg: Option<Vec<u8>> = None;
    for a in attrs {
        if let Attribute::ReplyMessage(m) = a {
            msg.get_or_insert_with(Vec::new).extend_from_slice(m);
        }
    }
    msg.map(|m| String::from_utf8_lossy(&m).into_owned())
}
