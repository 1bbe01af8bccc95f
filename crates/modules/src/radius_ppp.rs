//! PPP authentication through RADIUS, and RADIUS accounting of PPP
//! sessions (RFC 2865, RFC 2866, RFC 2548, RFC 2869), for the server's PPP
//! session driver.
//!
//! # Authentication ([`RadiusPpp::verify`])
//!
//! The [`Credentials`] a [`ppp::auth::Authenticator`] asks the host to judge
//! become one Access-Request, with User-Name, Service-Type = Framed,
//! Framed-Protocol = PPP, NAS-Identifier, NAS-Port-Type and
//! Calling-Station-Id, plus (the client always adds it) a
//! Message-Authenticator, and:
//!
//! - PAP: User-Password (hidden with the server's secret);
//! - CHAP-MD5: CHAP-Password (identifier and response) and CHAP-Challenge
//!   (RFC 2865 §5.3, §5.40);
//! - MS-CHAPv2: the Microsoft vendor attributes MS-CHAP-Challenge (the
//!   authenticator challenge) and MS-CHAP2-Response (identifier, flags, peer
//!   challenge, NT-Response) (RFC 2548 §2.3.2, §2.3.3).
//!
//! Access-Accept grants (for MS-CHAPv2 only with an MS-CHAP2-Success holding
//! `S=<40 hex digits>`, the authenticator response the peer checks: an
//! Accept without one is a Reject, since the peer would fail mutual
//! authentication anyway). Access-Reject is a Reject with the server's
//! Reply-Message, else the `M=` text of an MS-CHAP-Error (without one, the
//! meaning of its `E=` code), else the neutral [`REJECT_TEXT`]. For
//! MS-CHAPv2, an MS-CHAP-Error `E=` of 646, 647, 648 or 649 (RFC 2759 §6)
//! is carried into the verdict, so the caller's Failure says `E=648`
//! (password expired) and the like, with `R=0`; any other code is 691. An Access-Challenge (PPP cannot prompt) is a Reject. No
//! valid answer from any server is a Reject with [`UNAVAILABLE_TEXT`] and an
//! error in the log. `verify` never fails otherwise and never panics on what
//! a server sends.
//!
//! # Accounting ([`RadiusPpp::start`], [`RadiusPpp::interim`], [`RadiusPpp::stop`])
//!
//! Accounting-Requests (RFC 2866) to the accounting servers, if any are
//! configured: Acct-Status-Type, Acct-Session-Id, User-Name, NAS-Identifier,
//! NAS-Port-Type, Service-Type, Framed-Protocol, Framed-IP-Address,
//! Calling-Station-Id, Class (echoed from the Accept, RFC 2865 §5.25),
//! Acct-Authentic = RADIUS and Event-Timestamp; Interim-Update and Stop add
//! the octet counters (with Acct-Input/Output-Gigawords for the multiples
//! of 2^32, RFC 2869 §5.1), packet counters and Acct-Session-Time; Stop adds
//! Acct-Terminate-Cause. A failure is logged and reported as `false`; it
//! never ends the session.
//!
//! Each of the two server sets gets its own [`RadiusClient`] task (so
//! accounting retries never delay a login); calls wait at most `timeout ×
//! (1 + retries)` per server. The session driver may spawn them if it must
//! not wait, as long as it keeps each session's Start before its Stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ppp::auth::{Credentials, Verdict};
use radius::{Attribute, ClientConfig, MsAttr, Outcome, Request, ServerConfig, values};
use tokio::runtime::Handle;

use crate::radius_module::{RadiusClient, RadiusConfigError};

/// The neutral text of a Reject when the server gave none.
pub const REJECT_TEXT: &str = "Authentication failed";

/// The text of a Reject when no RADIUS server answered.
pub const UNAVAILABLE_TEXT: &str = "Authentication service unavailable";

/// Longest reject text taken from a server (bytes, cut on a character
/// boundary).
const MAX_REJECT_TEXT: usize = 200;

/// Acct-Authentic (45, RFC 2866 §5.6).
const ACCT_AUTHENTIC: u8 = 45;
/// Acct-Authentic value RADIUS.
const ACCT_AUTHENTIC_RADIUS: u32 = 1;
/// Event-Timestamp (55, RFC 2869 §5.3).
const EVENT_TIMESTAMP: u8 = 55;
/// Acct-Interim-Interval (85, RFC 2869 §5.16).
const ACCT_INTERIM_INTERVAL: u8 = 85;

/// Settings of a [`RadiusPpp`].
#[derive(Clone, Debug)]
pub struct RadiusPppOptions {
    /// Authentication servers (usually port 1812) in order of preference,
    /// each with its non-empty shared secret; failover goes down the list.
    /// At least one.
    pub auth_servers: Vec<ServerConfig>,
    /// Accounting servers (usually port 1813), same rules. Empty: no
    /// accounting (the accounting calls do nothing and return `true`).
    pub acct_servers: Vec<ServerConfig>,
    /// Wait for a reply before retransmitting (more than 0, at most one
    /// hour). Default 3 s.
    pub timeout: Duration,
    /// Retransmissions to a server before failing over. Default 2.
    pub retries: u32,
    /// Which Access-* replies must carry a Message-Authenticator (against
    /// BlastRADIUS, CVE-2024-3596). Default
    /// [`radius::RequireMessageAuthenticator::Always`].
    pub require_message_authenticator: radius::RequireMessageAuthenticator,
    /// NAS-Identifier sent in every request (1 to 253 bytes). Default
    /// `dialgate`.
    pub nas_identifier: String,
}

impl Default for RadiusPppOptions {
    fn default() -> Self {
        RadiusPppOptions {
            auth_servers: Vec::new(),
            acct_servers: Vec::new(),
            timeout: Duration::from_secs(3),
            retries: 2,
            require_message_authenticator: radius::RequireMessageAuthenticator::Always,
            nas_identifier: "dialgate".to_string(),
        }
    }
}

/// NAS-Port-Type (RFC 2865 §5.41) of the port a PPP session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NasPortType {
    /// A serial line or modem (0).
    Async,
    /// A synchronous line (1).
    Sync,
    /// A virtual port: PPP over a TCP connection (5).
    Virtual,
}

impl NasPortType {
    /// The attribute value.
    pub const fn code(self) -> u32 {
        match self {
            NasPortType::Async => values::nas_port_type::ASYNC,
            NasPortType::Sync => values::nas_port_type::SYNC,
            NasPortType::Virtual => values::nas_port_type::VIRTUAL,
        }
    }
}

/// The NAS-Port-Type and Calling-Station-Id of a port from its device name,
/// as the `radius` security module sends them: `tcp ADDR` is a
/// [`NasPortType::Virtual`] port called from ADDR's IP address; anything
/// else (a serial device) is [`NasPortType::Async`] with the device name as
/// the calling station (`None` if empty).
pub fn device_port(device: &str) -> (NasPortType, Option<String>) {
    if let Some(rest) = device.strip_prefix("tcp ") {
        let rest = rest.trim();
        let calling = match rest.parse::<SocketAddr>() {
            Ok(a) => a.ip().to_string(),
            Err(_) => rest.to_string(),
        };
        (NasPortType::Virtual, non_empty(calling))
    } else {
        (NasPortType::Async, non_empty(device.to_string()))
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Why a session ended, as Acct-Terminate-Cause (RFC 2866 §5.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminateCause {
    /// The user ended the session (1): the peer sent LCP Terminate.
    UserRequest,
    /// The carrier dropped (2): hang-up, or the peer stopped answering.
    LostCarrier,
    /// The service can no longer be provided (3).
    LostService,
    /// Idle timer expired (4).
    IdleTimeout,
    /// Maximum session time reached (5).
    SessionTimeout,
    /// An administrator ended the session (6).
    AdminReset,
    /// An administrator is rebooting the NAS (7).
    AdminReboot,
    /// The NAS detected an error on the port (8).
    PortError,
    /// A non-recoverable NAS error (9).
    NasError,
    /// The NAS ended the session for a non-error reason (10): shutdown,
    /// local close.
    NasRequest,
    /// The NAS restarted (11).
    NasReboot,
    /// The port is no longer needed (12).
    PortUnneeded,
    /// The port was taken for another use (13).
    PortPreempted,
    /// The port was suspended (14).
    PortSuspended,
    /// The NAS cannot provide the requested service (15): no network
    /// protocol came up.
    ServiceUnavailable,
    /// The session ended for a callback (16).
    Callback,
    /// Error in user input (17): failed negotiation or authentication.
    UserError,
    /// The login host ended the session (18).
    HostRequest,
}

impl TerminateCause {
    /// The attribute value (RFC 2866 §5.10).
    pub const fn code(self) -> u32 {
        use values::terminate_cause as t;
        match self {
            TerminateCause::UserRequest => t::USER_REQUEST,
            TerminateCause::LostCarrier => t::LOST_CARRIER,
            TerminateCause::LostService => t::LOST_SERVICE,
            TerminateCause::IdleTimeout => t::IDLE_TIMEOUT,
            TerminateCause::SessionTimeout => t::SESSION_TIMEOUT,
            TerminateCause::AdminReset => t::ADMIN_RESET,
            TerminateCause::AdminReboot => t::ADMIN_REBOOT,
            TerminateCause::PortError => t::PORT_ERROR,
            TerminateCause::NasError => t::NAS_ERROR,
            TerminateCause::NasRequest => t::NAS_REQUEST,
            TerminateCause::NasReboot => t::NAS_REBOOT,
            TerminateCause::PortUnneeded => t::PORT_UNNEEDED,
            TerminateCause::PortPreempted => t::PORT_PREEMPTED,
            TerminateCause::PortSuspended => t::PORT_SUSPENDED,
            TerminateCause::ServiceUnavailable => t::SERVICE_UNAVAILABLE,
            TerminateCause::Callback => t::CALLBACK,
            TerminateCause::UserError => t::USER_ERROR,
            TerminateCause::HostRequest => t::HOST_REQUEST,
        }
    }

    /// The usual cause for why a PPP link went down. The driver knows
    /// better for its own closes (idle or session timeout, admin reset,
    /// shutdown) and should pass those explicitly.
    pub fn from_down_cause(cause: &ppp::link::DownCause) -> TerminateCause {
        use ppp::link::DownCause as D;
        match cause {
            D::LocalClose(_) => TerminateCause::NasRequest,
            D::PeerTerminated(_) => TerminateCause::UserRequest,
            D::NoResponse | D::EchoTimeout(_) | D::Hangup => TerminateCause::LostCarrier,
            D::LcpFailed(_)
            | D::AuthFailed(_)
            | D::AuthRejected
            | D::AuthTimeout
            | D::TooManyRenegotiations(_) => TerminateCause::UserError,
            D::IpcpFailed(_) => TerminateCause::ServiceUnavailable,
            D::LoopedBack => TerminateCause::PortError,
        }
    }
}

/// What a successful [`RadiusPpp::authenticate`] brought besides the
/// verdict (all from the Access-Accept; empty for a Reject).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptInfo {
    /// Framed-IP-Address: the address the server assigns to the peer
    /// (255.255.255.254 and 255.255.255.255 are the RFC 2865 §5.8 "let the
    /// NAS choose / the user chooses" values, passed on as they are).
    pub framed_ip: Option<Ipv4Addr>,
    /// Session-Timeout in seconds.
    pub session_timeout: Option<u32>,
    /// Acct-Interim-Interval in seconds (RFC 2869 §5.16).
    pub interim_interval: Option<u32>,
    /// Class attributes, to be echoed unmodified in accounting
    /// ([`AcctSession::class`]).
    pub class: Vec<Vec<u8>>,
}

/// The result of [`RadiusPpp::authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PppAuthResult {
    /// The verdict for [`ppp::auth::Authenticator::verified`].
    pub verdict: Verdict,
    /// The Accept's extra attributes.
    pub info: AcceptInfo,
}

/// One PPP session as accounting sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcctSession {
    /// Acct-Session-Id: unique per session ([`AcctSession::new_session_id`]).
    pub session_id: String,
    /// User-Name: the authenticated user.
    pub user: Vec<u8>,
    /// Framed-IP-Address: the peer's address, once IPCP gave it one.
    pub framed_ip: Option<Ipv4Addr>,
    /// Calling-Station-Id (see [`device_port`]).
    pub calling_station: Option<String>,
    /// NAS-Port-Type (see [`device_port`]).
    pub nas_port_type: NasPortType,
    /// Class attributes of the Access-Accept ([`AcceptInfo::class`]).
    pub class: Vec<Vec<u8>>,
}

impl AcctSession {
    /// A session of `user` on the port named `device` (see
    /// [`device_port`]) with a fresh session id and no Class.
    pub fn new(user: &[u8], framed_ip: Option<Ipv4Addr>, device: &str) -> AcctSession {
        let (nas_port_type, calling_station) = device_port(device);
        AcctSession {
            session_id: AcctSession::new_session_id(),
            user: user.to_vec(),
            framed_ip,
            calling_station,
            nas_port_type,
            class: Vec::new(),
        }
    }

    /// 16 hex digits from 8 random bytes (the OS-seeded thread RNG).
    pub fn new_session_id() -> String {
        let mut b = [0u8; 8];
        rand::fill(&mut b);
        hex::encode(b)
    }
}

/// A session's counters so far (from the point of view of the NAS: "in" is
/// what the peer sent us).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcctCounters {
    /// Octets received from the peer.
    pub octets_in: u64,
    /// Octets sent to the peer.
    pub octets_out: u64,
    /// Packets received from the peer (saturates at 2^32 - 1 on the wire).
    pub packets_in: u64,
    /// Packets sent to the peer (saturates at 2^32 - 1 on the wire).
    pub packets_out: u64,
    /// Time since the session started (whole seconds on the wire).
    pub session_time: Duration,
}

/// Counters of a [`RadiusPpp`] (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadiusPppStats {
    /// The authentication client's counters.
    pub auth_client: radius::Stats,
    /// The accounting client's counters (zero without accounting).
    pub acct_client: radius::Stats,
    /// Access-Accepts that became an Accept.
    pub accepted: u64,
    /// Rejects (Access-Reject, an unusable Accept, a Challenge,
    /// credentials RADIUS cannot carry).
    pub rejected: u64,
    /// Access-Requests no server answered.
    pub no_answer: u64,
    /// Accounting-Requests answered.
    pub acct_ok: u64,
    /// Accounting-Requests that failed (no answer, client gone).
    pub acct_failed: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    no_answer: AtomicU64,
    acct_ok: AtomicU64,
    acct_failed: AtomicU64,
}

/// PPP authentication and accounting through RADIUS. See the module
/// documentation. Share it between sessions (`Arc<RadiusPpp>`).
pub struct RadiusPpp {
    auth: RadiusClient,
    acct: Option<RadiusClient>,
    nas_identifier: Vec<u8>,
    counters: Counters,
}

impl std::fmt::Debug for RadiusPpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusPpp")
            .field("accounting", &self.acct.is_some())
            .finish_non_exhaustive()
    }
}

impl RadiusPpp {
    /// Checks `opts`, opens the client sockets and spawns the client
    /// task(s) on `handle`.
    ///
    /// Errors: no authentication server, an empty shared secret, a bad
    /// timeout or NAS-Identifier, or a socket that cannot be opened.
    pub fn new(handle: Handle, opts: RadiusPppOptions) -> Result<RadiusPpp, RadiusConfigError> {
        let nas = opts.nas_identifier.as_bytes();
        if nas.is_empty() || nas.len() > radius::MAX_VALUE_LEN {
            return Err(RadiusConfigError::BadNasIdentifier(nas.len()));
        }
        let config = |servers: Vec<ServerConfig>| ClientConfig {
            servers,
            timeout: opts.timeout,
            retries: opts.retries,
            require_message_authenticator: opts.require_message_authenticator,
        };
        let auth = RadiusClient::spawn(&handle, config(opts.auth_servers.clone()))?;
        let acct = if opts.acct_servers.is_empty() {
            None
        } else {
            Some(RadiusClient::spawn(
                &handle,
                config(opts.acct_servers.clone()),
            )?)
        };
        Ok(RadiusPpp {
            auth,
            acct,
            nas_identifier: nas.to_vec(),
            counters: Counters::default(),
        })
    }

    /// Whether accounting servers are configured.
    pub fn accounting(&self) -> bool {
        self.acct.is_some()
    }

    /// The counters so far.
    pub fn stats(&self) -> RadiusPppStats {
        let c = &self.counters;
        RadiusPppStats {
            auth_client: self.auth.stats(),
            acct_client: self
                .acct
                .as_ref()
                .map(RadiusClient::stats)
                .unwrap_or_default(),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            no_answer: c.no_answer.load(Ordering::Relaxed),
            acct_ok: c.acct_ok.load(Ordering::Relaxed),
            acct_failed: c.acct_failed.load(Ordering::Relaxed),
        }
    }

    /// Judges `creds` by the RADIUS server: the verdict for
    /// [`ppp::auth::Authenticator::verified`]. `calling_station` is the
    /// Calling-Station-Id (see [`device_port`]); the NAS-Port-Type is
    /// Virtual when it is an IP address, else Async.
    pub async fn verify(&self, creds: &Credentials, calling_station: Option<&str>) -> Verdict {
        self.authenticate(creds, calling_station).await.verdict
    }

    /// [`RadiusPpp::verify`], also returning what the Accept brought
    /// (Framed-IP-Address, Session-Timeout, Class ...).
    pub async fn authenticate(
        &self,
        creds: &Credentials,
        calling_station: Option<&str>,
    ) -> PppAuthResult {
        let user = creds.user();
        let who = String::from_utf8_lossy(user);
        let Some(request) = self.access_request(creds, calling_station) else {
            tracing::info!(user = %who, protocol = %creds.protocol(), "PPP credentials RADIUS cannot carry: rejected");
            return self.rejected(REJECT_TEXT);
        };
        let outcome = match self.auth.request(request).await {
            Ok(o) => o,
            Err(_) => {
                // `request` logged why.
                self.counters.no_answer.fetch_add(1, Ordering::Relaxed);
                return PppAuthResult {
                    verdict: Verdict::reject(UNAVAILABLE_TEXT),
                    info: AcceptInfo::default(),
                };
            }
        };
        match outcome {
            Outcome::Accept { attrs } => {
                let verdict = match creds {
                    Credentials::MsChapV2 { .. } => match mschapv2_success(&attrs) {
                        Some(v) => v,
                        None => {
                            tracing::warn!(user = %who, "RADIUS Access-Accept for MS-CHAPv2 without a usable MS-CHAP2-Success: rejected");
                            return self.rejected(REJECT_TEXT);
                        }
                    },
                    _ => Verdict::Accept {
                        authenticator_response: None,
                    },
                };
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(user = %who, protocol = %creds.protocol(), "PPP authentication accepted by RADIUS");
                PppAuthResult {
                    verdict,
                    info: accept_info(&attrs),
                }
            }
            Outcome::Reject {
                reply_message,
                attrs,
            } => {
                let text = reject_text(reply_message.as_deref(), &attrs);
                let code = match creds {
                    Credentials::MsChapV2 { .. } => mschap_error_code(&attrs),
                    _ => None,
                };
                tracing::info!(user = %who, protocol = %creds.protocol(), message = %text, code, "PPP authentication rejected by RADIUS");
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                PppAuthResult {
                    verdict: match code {
                        Some(c) => Verdict::reject_with_code(&text, c),
                        None => Verdict::reject(&text),
                    },
                    info: AcceptInfo::default(),
                }
            }
            Outcome::Challenge { .. } => {
                tracing::warn!(user = %who, "RADIUS Access-Challenge for a PPP authentication (PPP cannot prompt): rejected");
                self.rejected(REJECT_TEXT)
            }
            Outcome::Timeout => {
                self.counters.no_answer.fetch_add(1, Ordering::Relaxed);
                tracing::error!(user = %who, "no RADIUS server answered the PPP authentication");
                PppAuthResult {
                    verdict: Verdict::reject(UNAVAILABLE_TEXT),
                    info: AcceptInfo::default(),
                }
            }
            Outcome::AccountingResponse { .. } => {
                // The client only yields this for Accounting-Requests.
                tracing::error!(
                    "RADIUS client answered an Access-Request with an accounting outcome"
                );
                self.rejected(UNAVAILABLE_TEXT)
            }
        }
    }

    fn rejected(&self, text: &str) -> PppAuthResult {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        PppAuthResult {
            verdict: Verdict::reject(text),
            info: AcceptInfo::default(),
        }
    }

    /// The Access-Request for `creds`, or `None` when RADIUS cannot carry
    /// them (empty or over-long name, password over 128 bytes, empty or
    /// over-long CHAP challenge).
    fn access_request(&self, creds: &Credentials, calling: Option<&str>) -> Option<Request> {
        let user = creds.user();
        if user.is_empty() || user.len() > radius::MAX_VALUE_LEN {
            return None;
        }
        let port_type = match calling.map(str::parse::<IpAddr>) {
            Some(Ok(_)) => NasPortType::Virtual,
            _ => NasPortType::Async,
        };
        let mut attrs = vec![
            Attribute::UserName(user.to_vec()),
            Attribute::NasIdentifier(self.nas_identifier.clone()),
            Attribute::NasPortType(port_type.code()),
            Attribute::ServiceType(values::service_type::FRAMED),
            Attribute::FramedProtocol(values::framed_protocol::PPP),
        ];
        if let Some(c) = calling.and_then(bounded) {
            attrs.push(Attribute::CallingStationId(c));
        }
        match creds {
            Credentials::Pap { password, .. } => {
                if password.len() > radius::MAX_PASSWORD_LEN {
                    return None;
                }
                return Some(Request::access(attrs).with_password(password));
            }
            Credentials::ChapMd5 {
                id,
                challenge,
                response,
                ..
            } => {
                if challenge.is_empty() || challenge.len() > radius::MAX_VALUE_LEN {
                    return None;
                }
                attrs.push(Attribute::ChapPassword {
                    ident: *id,
                    response: *response,
                });
                attrs.push(Attribute::ChapChallenge(challenge.clone()));
            }
            Credentials::MsChapV2 {
                id,
                authenticator_challenge,
                peer_challenge,
                nt_response,
                flags,
                ..
            } => {
                attrs.push(Attribute::Microsoft(MsAttr::ChapChallenge(
                    authenticator_challenge.to_vec(),
                )));
                attrs.push(Attribute::Microsoft(MsAttr::Chap2Response {
                    ident: *id,
                    flags: *flags,
                    peer_challenge: *peer_challenge,
                    nt_response: *nt_response,
                }));
            }
        }
        Some(Request::access(attrs))
    }

    /// Accounting Start of `s` (after IPCP is up). `true` when a server
    /// acknowledged it, or when no accounting is configured; failures are
    /// logged.
    pub async fn start(&self, s: &AcctSession) -> bool {
        let attrs = self.acct_attributes(s, values::acct_status_type::START, None, None);
        self.send_acct(s, "Start", attrs).await
    }

    /// Accounting Interim-Update of `s` with its counters so far.
    pub async fn interim(&self, s: &AcctSession, counters: &AcctCounters) -> bool {
        let attrs = self.acct_attributes(
            s,
            values::acct_status_type::INTERIM_UPDATE,
            Some(counters),
            None,
        );
        self.send_acct(s, "Interim-Update", attrs).await
    }

    /// Accounting Stop of `s` with its final counters and why it ended.
    pub async fn stop(
        &self,
        s: &AcctSession,
        counters: &AcctCounters,
        cause: TerminateCause,
    ) -> bool {
        let attrs = self.acct_attributes(
            s,
            values::acct_status_type::STOP,
            Some(counters),
            Some(cause),
        );
        self.send_acct(s, "Stop", attrs).await
    }

    async fn send_acct(&self, s: &AcctSession, what: &str, attrs: Vec<Attribute>) -> bool {
        let Some(client) = &self.acct else {
            return true;
        };
        let ok = match client.request(Request::accounting(attrs)).await {
            Ok(Outcome::AccountingResponse { .. }) => true,
            Ok(Outcome::Timeout) => {
                tracing::error!(session = %s.session_id, kind = what, "no RADIUS accounting server answered");
                false
            }
            Ok(other) => {
                tracing::error!(session = %s.session_id, kind = what, outcome = ?other, "unexpected answer to a RADIUS Accounting-Request");
                false
            }
            // `request` logged why.
            Err(_) => false,
        };
        let c = if ok {
            &self.counters.acct_ok
        } else {
            &self.counters.acct_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
        ok
    }

    fn acct_attributes(
        &self,
        s: &AcctSession,
        status: u32,
        counters: Option<&AcctCounters>,
        cause: Option<TerminateCause>,
    ) -> Vec<Attribute> {
        let mut attrs = vec![Attribute::AcctStatusType(status)];
        if let Some(id) = bounded(&s.session_id) {
            attrs.push(Attribute::AcctSessionId(id));
        }
        if !s.user.is_empty() {
            let end = s.user.len().min(radius::MAX_VALUE_LEN);
            attrs.push(Attribute::UserName(s.user[..end].to_vec()));
        }
        attrs.extend([
            Attribute::NasIdentifier(self.nas_identifier.clone()),
            Attribute::NasPortType(s.nas_port_type.code()),
            Attribute::ServiceType(values::service_type::FRAMED),
            Attribute::FramedProtocol(values::framed_protocol::PPP),
            Attribute::Other {
                typ: ACCT_AUTHENTIC,
                value: ACCT_AUTHENTIC_RADIUS.to_be_bytes().to_vec(),
            },
        ]);
        if let Some(ip) = s.framed_ip {
            attrs.push(Attribute::FramedIpAddress(ip));
        }
        if let Some(c) = s.calling_station.as_deref().and_then(bounded) {
            attrs.push(Attribute::CallingStationId(c));
        }
        for class in &s.class {
            if !class.is_empty() && class.len() <= radius::MAX_VALUE_LEN {
                attrs.push(Attribute::Class(class.clone()));
            }
        }
        if let Some(c) = counters {
            let (in_giga, in_low) = split_octets(c.octets_in);
            let (out_giga, out_low) = split_octets(c.octets_out);
            attrs.extend([
                Attribute::AcctInputOctets(in_low),
                Attribute::AcctOutputOctets(out_low),
            ]);
            if in_giga > 0 {
                attrs.push(Attribute::AcctInputGigawords(in_giga));
            }
            if out_giga > 0 {
                attrs.push(Attribute::AcctOutputGigawords(out_giga));
            }
            attrs.extend([
                Attribute::AcctInputPackets(saturate(c.packets_in)),
                Attribute::AcctOutputPackets(saturate(c.packets_out)),
                Attribute::AcctSessionTime(saturate(c.session_time.as_secs())),
            ]);
        }
        if let Some(cause) = cause {
            attrs.push(Attribute::AcctTerminateCause(cause.code()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| saturate(d.as_secs()))
            .unwrap_or(0);
        attrs.push(Attribute::Other {
            typ: EVENT_TIMESTAMP,
            value: now.to_be_bytes().to_vec(),
        });
        attrs
    }
}

/// An octet count as (Gigawords, Octets): the multiples of 2^32 and the
/// rest (RFC 2869 §5.1, §5.2). Gigawords saturate at 2^32 - 1.
pub fn split_octets(n: u64) -> (u32, u32) {
    let giga = saturate(n >> 32);
    // Truncation intended: the low 32 bits.
    let low = (n & 0xffff_ffff) as u32;
    (giga, low)
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A non-empty text value cut to 253 bytes on a character boundary.
fn bounded(s: &str) -> Option<Vec<u8>> {
    let mut end = s.len().min(radius::MAX_VALUE_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let v = &s.as_bytes()[..end];
    (!v.is_empty()).then(|| v.to_vec())
}

/// The MS-CHAPv2 Accept from the first MS-CHAP2-Success of an Accept:
/// `S=<40 hex>`, possibly followed by ` M=<message>` (RFC 2759 §5), which
/// is dropped (the verdict carries only the authenticator response).
fn mschapv2_success(attrs: &[Attribute]) -> Option<Verdict> {
    let message = attrs.iter().find_map(|a| match a {
        Attribute::Microsoft(MsAttr::Chap2Success { message, .. }) => Some(message.as_slice()),
        _ => None,
    })?;
    let s = message.split(|b| *b == b' ').next()?;
    Verdict::accept_mschapv2_text(std::str::from_utf8(s).ok()?)
}

/// What an Accept brought besides the verdict.
fn accept_info(attrs: &[Attribute]) -> AcceptInfo {
    let mut info = AcceptInfo::default();
    for a in attrs {
        match a {
            Attribute::FramedIpAddress(ip) if info.framed_ip.is_none() => {
                info.framed_ip = Some(*ip);
            }
            Attribute::SessionTimeout(t) if info.session_timeout.is_none() => {
                info.session_timeout = Some(*t);
            }
            Attribute::Class(c) => info.class.push(c.clone()),
            Attribute::Other { typ, value }
                if *typ == ACCT_INTERIM_INTERVAL && info.interim_interval.is_none() =>
            {
                if let Ok(v) = <[u8; 4]>::try_from(value.as_slice()) {
                    info.interim_interval = Some(u32::from_be_bytes(v));
                }
            }
            _ => {}
        }
    }
    info
}

/// The first MS-CHAP-Error's text (RFC 2548 §2.1.5), if any.
fn mschap_error(attrs: &[Attribute]) -> Option<&[u8]> {
    attrs.iter().find_map(|a| match a {
        Attribute::Microsoft(MsAttr::ChapError { message, .. }) => Some(message.as_slice()),
        _ => None,
    })
}

/// The `E=` code of the MS-CHAP-Error of a Reject, when it is one of the
/// RFC 2759 reasons other than a wrong password (646 restricted logon
/// hours, 647 account disabled, 648 password expired, 649 no dial-in
/// permission): the PPP Failure then carries it. Anything else (691, an
/// unknown code, no or a malformed MS-CHAP-Error) is `None`: 691.
fn mschap_error_code(attrs: &[Attribute]) -> Option<u32> {
    let f = ppp::auth::MsChapV2Failure::parse(mschap_error(attrs)?).ok()?;
    let code = ppp::auth::wire::mschap_failure_code(Some(f.error));
    (code != ppp::auth::wire::MSCHAP_ERROR_AUTHENTICATION_FAILURE).then_some(code)
}

/// What the caller is told for a known MS-CHAPv2 error code without text.
fn mschap_error_text(code: u32) -> &'static str {
    use ppp::auth::wire as w;
    match code {
        w::MSCHAP_ERROR_RESTRICTED_LOGON_HOURS => "Restricted logon hours",
        w::MSCHAP_ERROR_ACCT_DISABLED => "Account disabled",
        w::MSCHAP_ERROR_PASSWD_EXPIRED => "Password expired",
        w::MSCHAP_ERROR_NO_DIALIN_PERMISSION => "No dial-in permission",
        _ => REJECT_TEXT,
    }
}

/// The text of a Reject: the Reply-Message, else the `M=` part of an
/// MS-CHAP-Error (for one without `M=`: the meaning of its `E=` code, or
/// its whole text when it does not parse), else [`REJECT_TEXT`]; control
/// characters dropped, at most 200 bytes.
fn reject_text(reply_message: Option<&str>, attrs: &[Attribute]) -> String {
    if let Some(t) = reply_message.map(safe_text).filter(|t| !t.is_empty()) {
        return t;
    }
    let error = mschap_error(attrs);
    if let Some(f) = error.and_then(|e| ppp::auth::MsChapV2Failure::parse(e).ok())
        && safe_text(&String::from_utf8_lossy(f.message)).is_empty()
    {
        return mschap_error_text(ppp::auth::wire::mschap_failure_code(Some(f.error))).to_string();
    }
    if let Some(e) = error {
        let e = String::from_utf8_lossy(e);
        let text = match e.find("M=") {
            Some(i) => &e[i + 2..],
            None => &e[..],
        };
        let t = safe_text(text);
        if !t.is_empty() {
            return t;
        }
    }
    REJECT_TEXT.to_string()
}

/// `s` without control characters, trimmed, cut to [`MAX_REJECT_TEXT`]
/// bytes on a character boundary.
fn safe_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_REJECT_TEXT));
    for c in s.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_REJECT_TEXT {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octets_split_into_gigawords() {
        assert_eq!(split_octets(0), (0, 0));
        assert_eq!(split_octets(4_294_967_295), (0, u32::MAX));
        assert_eq!(split_octets(4_294_967_296), (1, 0));
        assert_eq!(split_octets(5 * (1 << 32) + 1234), (5, 1234));
        assert_eq!(split_octets(u64::MAX), (u32::MAX, u32::MAX));
    }

    #[test]
    fn terminate_causes_have_the_rfc_values() {
        assert_eq!(TerminateCause::UserRequest.code(), 1);
        assert_eq!(TerminateCause::LostCarrier.code(), 2);
        assert_eq!(TerminateCause::IdleTimeout.code(), 4);
        assert_eq!(TerminateCause::SessionTimeout.code(), 5);
        assert_eq!(TerminateCause::AdminReset.code(), 6);
        assert_eq!(TerminateCause::PortError.code(), 8);
        assert_eq!(TerminateCause::NasRequest.code(), 10);
        assert_eq!(TerminateCause::HostRequest.code(), 18);
        use ppp::link::DownCause;
        assert_eq!(
            TerminateCause::from_down_cause(&DownCause::PeerTerminated("bye".into())),
            TerminateCause::UserRequest
        );
        assert_eq!(
            TerminateCause::from_down_cause(&DownCause::Hangup),
            TerminateCause::LostCarrier
        );
    }

    #[test]
    fn ports_from_device_names() {
        assert_eq!(
            device_port("tcp 198.51.100.7:50412"),
            (NasPortType::Virtual, Some("198.51.100.7".to_string()))
        );
        assert_eq!(
            device_port("/dev/ttyS0"),
            (NasPortType::Async, Some("/dev/ttyS0".to_string()))
        );
        assert_eq!(device_port(""), (NasPortType::Async, None));
    }

    #[test]
    fn session_ids_are_16_hex_digits_and_differ() {
        let a = AcctSession::new_session_id();
        let b = AcctSession::new_session_id();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reject_texts() {
        assert_eq!(reject_text(Some("No\x1b[2J way\r\n"), &[]), "No[2J way");
        assert_eq!(reject_text(Some(" \r\n"), &[]), REJECT_TEXT);
        assert_eq!(reject_text(None, &[]), REJECT_TEXT);
        let err = |m: &[u8]| {
            vec![Attribute::Microsoft(MsAttr::ChapError {
                ident: 1,
                message: m.to_vec(),
            })]
        };
        assert_eq!(
            reject_text(None, &err(b"E=691 R=1 C=00 V=3 M=Bad password")),
            "Bad password"
        );
        assert_eq!(reject_text(None, &err(b"E=691 R=0")), REJECT_TEXT);
        assert_eq!(
            reject_text(None, &err(b"E=648 R=0 V=3")),
            "Password expired"
        );
        assert_eq!(
            reject_text(None, &err(b"E=649 R=0 V=3")),
            "No dial-in permission"
        );
        assert_eq!(reject_text(None, &err(b"E=646")), "Restricted logon hours");
        assert_eq!(reject_text(None, &err(b"E=647 R=0")), "Account disabled");
        assert_eq!(reject_text(None, &err(b"not an error")), "not an error");
        assert_eq!(reject_text(None, &err(b"E=648 M=Change it")), "Change it");
        assert_eq!(reject_text(None, &err(b"\xff\xfe")), "\u{fffd}\u{fffd}");
        assert!(reject_text(Some(&"é".repeat(300)), &[]).len() <= MAX_REJECT_TEXT);
    }

    #[test]
    fn mschapv2_success_needs_s_and_40_hex_digits() {
        let ok = |m: &[u8]| {
            mschapv2_success(&[Attribute::Microsoft(MsAttr::Chap2Success {
                ident: 7,
                message: m.to_vec(),
            })])
        };
        let s = format!("S={}", "0123456789ABCDEF0123456789ABCDEF01234567");
        assert!(matches!(
            ok(s.as_bytes()),
            Some(Verdict::Accept {
                authenticator_response: Some(_)
            })
        ));
        assert!(ok(format!("{s} M=Welcome").as_bytes()).is_some());
        assert!(ok(b"S=0123").is_none());
        assert!(ok(b"").is_none());
        assert!(ok(b"\xff").is_none());
        assert!(mschapv2_success(&[]).is_none());
    }

    #[test]
    fn accept_info_is_collected() {
        let info = accept_info(&[
            Attribute::FramedIpAddress(Ipv4Addr::new(10, 0, 0, 9)),
            Attribute::SessionTimeout(60),
            Attribute::Class(b"c1".to_vec()),
            Attribute::Class(b"c2".to_vec()),
            Attribute::Other {
                typ: ACCT_INTERIM_INTERVAL,
                value: vec![0, 0, 1, 44],
            },
            Attribute::Other {
                typ: ACCT_INTERIM_INTERVAL,
                value: vec![1],
            },
        ]);
        assert_eq!(info.framed_ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(info.session_timeout, Some(60));
        assert_eq!(info.interim_interval, Some(300));
        assert_eq!(info.class, vec![b"c1".to_vec(), b"c2".to_vec()]);
    }
}
