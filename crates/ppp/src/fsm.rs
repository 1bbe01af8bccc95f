//! The RFC 1661 §4 option negotiation automaton, generic over a
//! [`Negotiator`] that only judges options.
//!
//! The automaton sends and receives control packets *without* the PPP
//! protocol field (the owner adds it and frames the packet), keeps the
//! restart timer as a deadline on a caller-supplied clock, and reports the
//! this-layer actions (tlu/tld/tls/tlf) as [`LayerAction`]s.
//!
//! The state transition table of RFC 1661 §4.1, implemented by
//! [`Fsm::apply`] (states 0..9 as in the RFC):
//!
//! ```text
//!       | State
//!       |    0         1         2         3         4         5         6         7         8           9
//! Events| Initial   Starting  Closed    Stopped   Closing   Stopping  Req-Sent  Ack-Rcvd  Ack-Sent    Opened
//! ------+-----------------------------------------------------------------------------------------------------
//!  Up   |    2     irc,scr/6     -         -         -         -         -         -         -           -
//!  Down |    -         -         0       tls/1       0         1         1         1         1         tld/1
//!  Open |  tls/1       1     irc,scr/6     3r        5r        5r        6         7         8           9r
//!  Close|    0       tlf/0       2         2         4         4     irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
//!   TO+ |    -         -         -         -       str/4     str/5     scr/6     scr/6     scr/8         -
//!   TO- |    -         -         -         -       tlf/2     tlf/3     tlf/3p    tlf/3p    tlf/3p        -
//!  RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5       sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
//!  RCR- |    -         -       sta/2 irc,scr,scn/6   4         5       scn/6     scn/7     scn/6   tld,scr,scn/6
//!  RCA  |    -         -       sta/2     sta/3       4         5       irc/7     scr/6x  irc,tlu/9   tld,scr/6x
//!  RCN  |    -         -       sta/2     sta/3       4         5     irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
//!  RTR  |    -         -       sta/2     sta/3     sta/4     sta/5     sta/6     sta/6     sta/6   tld,zrc,sta/5
//!  RTA  |    -         -         2         3       tlf/2     tlf/3       6         6         8       tld,scr/6
//!  RUC  |    -         -       scj/2     scj/3     scj/4     scj/5     scj/6     scj/7     scj/8       scj/9
//!  RXJ+ |    -         -         2         3         4         5         6         6         8           9
//!  RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3     tlf/3     tlf/3     tlf/3   tld,irc,str/5
//!  RXR  |    -         -         2         3         4         5         6         7         8         ser/9
//! ```
//!
//! `-` cells cannot happen (an event before the lower layer is up, or a
//! timeout with no timer running); they are ignored. The optional
//! `r` (restart), `p` (passive) and `x` (crossed connection) behaviours are
//! not implemented beyond the plain transition: `Open` in Stopped, Closing,
//! Stopping and Opened keeps the state. `ser` (Echo-Reply) is done by the
//! owner of an LCP automaton, which receives the RXR packets from
//! [`Fsm::handle_packet`] as [`Received::Extended`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::wire::{Code, Packet, RawOption, WireError, build_packet, parse_options};

/// Random source supplied by the caller.
pub type Rand<'a> = &'a mut dyn FnMut(&mut [u8]);

/// The ten states of RFC 1661 §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: lower layer down, no Open.
    Initial,
    /// 1: Open, lower layer not up yet.
    Starting,
    /// 2: lower layer up, no Open.
    Closed,
    /// 3: waiting for the peer after termination or failure.
    Stopped,
    /// 4: Terminate-Request sent after Close.
    Closing,
    /// 5: Terminate-Request sent, or received, while going down.
    Stopping,
    /// 6: Configure-Request sent.
    ReqSent,
    /// 7: our Configure-Request acked, the peer's not yet.
    AckRcvd,
    /// 8: the peer's Configure-Request acked, ours not yet.
    AckSent,
    /// 9: both acked.
    Opened,
}

impl State {
    /// All states, in the RFC's numbering order.
    pub const ALL: [State; 10] = [
        State::Initial,
        State::Starting,
        State::Closed,
        State::Stopped,
        State::Closing,
        State::Stopping,
        State::ReqSent,
        State::AckRcvd,
        State::AckSent,
        State::Opened,
    ];

    fn has_timer(self) -> bool {
        matches!(
            self,
            State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
        )
    }
}

/// Timer and counter settings (RFC 1661 §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsmConfig {
    /// Restart timer (default 3 s).
    pub restart: Duration,
    /// Max-Terminate (default 2).
    pub max_terminate: u32,
    /// Max-Configure (default 10).
    pub max_configure: u32,
    /// Max-Failure (default 5).
    pub max_failure: u32,
}

impl Default for FsmConfig {
    fn default() -> Self {
        FsmConfig {
            restart: Duration::from_secs(3),
            max_terminate: 2,
            max_configure: 10,
            max_failure: 5,
        }
    }
}

/// The this-layer actions for the owner of the automaton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerAction {
    /// tlu: This-Layer-Up.
    Up,
    /// tld: This-Layer-Down.
    Down,
    /// tls: This-Layer-Started.
    Started,
    /// tlf: This-Layer-Finished.
    Finished,
}

/// The answer to a peer's Configure-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Configure-Ack: every option acceptable.
    Ack,
    /// Configure-Nak with these options (suggested values).
    Nak(Vec<u8>),
    /// Configure-Reject with these options (copied from the request).
    Reject(Vec<u8>),
}

/// Collects per-option verdicts into a [`Judgement`] (rejects win over
/// naks, naks over acks).
#[derive(Debug, Default)]
pub struct JudgeBuilder {
    nak: Vec<u8>,
    nak_originals: Vec<u8>,
    reject: Vec<u8>,
}

impl JudgeBuilder {
    /// A builder with no verdicts yet (everything acked).
    pub fn new() -> Self {
        Self::default()
    }

    /// Rejects an option of the request.
    pub fn reject(&mut self, opt: &RawOption<'_>) {
        opt.emit(&mut self.reject);
    }

    /// Naks an option of the request, suggesting `data` for it.
    pub fn nak(&mut self, opt: &RawOption<'_>, data: &[u8]) {
        crate::wire::push_option(&mut self.nak, opt.kind, data);
        opt.emit(&mut self.nak_originals);
    }

    /// Naks with an option the peer did not include (a hint, RFC 1661 §5.3).
    pub fn hint(&mut self, kind: u8, data: &[u8]) {
        crate::wire::push_option(&mut self.nak, kind, data);
    }

    /// The judgement. When `nak_allowed` is false (Max-Failure reached),
    /// nakked options are rejected instead and hints are dropped.
    pub fn finish(self, nak_allowed: bool) -> Judgement {
        if !self.reject.is_empty() {
            Judgement::Reject(self.reject)
        } else if self.nak.is_empty() {
            Judgement::Ack
        } else if nak_allowed {
            Judgement::Nak(self.nak)
        } else if self.nak_originals.is_empty() {
            Judgement::Ack
        } else {
            Judgement::Reject(self.nak_originals)
        }
    }
}

/// The per-protocol part of the automaton: it only judges options.
pub trait Negotiator {
    /// Options (wire form) of our next Configure-Request.
    fn request(&mut self, rand: Rand<'_>) -> Vec<u8>;
    /// Judges the peer's Configure-Request. `nak_allowed` is false once
    /// Max-Failure Naks were sent without an Ack: nak-worthy options must
    /// then be rejected (see [`JudgeBuilder::finish`]). Implementations
    /// remember the peer's values when they ack.
    fn judge(&mut self, options: &[RawOption<'_>], nak_allowed: bool, rand: Rand<'_>) -> Judgement;
    /// Our request (these options) was acked.
    fn acked(&mut self, options: &[RawOption<'_>]);
    /// Our request was nakked with these suggestions. An error is a fatal
    /// negotiation failure (the automaton closes with it as cause).
    fn nakked(&mut self, options: &[RawOption<'_>], rand: Rand<'_>) -> Result<(), String>;
    /// These options of our request were rejected. An error is fatal.
    fn rejected(&mut self, options: &[RawOption<'_>]) -> Result<(), String>;
    /// Codes beyond 1..=7 this protocol handles itself (LCP: 8..=11).
    fn extended_code(&self, _code: u8) -> bool {
        false
    }
    /// Start afresh (called on tls). Not called on tld: a renegotiation
    /// judges the peer's new request before tld runs.
    fn reset(&mut self) {}
}

/// An event of the automaton (RFC 1661 §4.3), with the data the resulting
/// actions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Lower layer up.
    Up,
    /// Lower layer down.
    Down,
    /// Administrative Open.
    Open,
    /// Administrative Close.
    Close,
    /// Timeout with counter > 0.
    ToPlus,
    /// Timeout with counter expired.
    ToMinus,
    /// Good Configure-Request; `reply` is the Ack's options.
    RcrPlus {
        /// Identifier of the request.
        id: u8,
        /// The options to ack (the request's).
        reply: Vec<u8>,
    },
    /// Bad Configure-Request; `code` is Nak or Reject.
    RcrMinus {
        /// Identifier of the request.
        id: u8,
        /// [`Code::ConfigureNak`] or [`Code::ConfigureReject`].
        code: Code,
        /// Options of the Nak/Reject.
        reply: Vec<u8>,
    },
    /// Configure-Ack received.
    Rca {
        /// Identifier of the received packet.
        id: u8,
    },
    /// Configure-Nak/Reject received.
    Rcn {
        /// Identifier of the received packet.
        id: u8,
    },
    /// Terminate-Request received.
    Rtr {
        /// Identifier of the request.
        id: u8,
    },
    /// Terminate-Ack received.
    Rta,
    /// Unknown code received; the whole packet.
    Ruc {
        /// The packet to echo in a Code-Reject.
        packet: Vec<u8>,
    },
    /// Code-Reject or Protocol-Reject, permitted.
    RxjPlus,
    /// Code-Reject or Protocol-Reject, catastrophic.
    RxjMinus,
    /// Echo-Request, Echo-Reply or Discard-Request received.
    Rxr,
}

/// What [`Fsm::handle_packet`] did with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Consumed by the automaton.
    Handled,
    /// A code the negotiator handles itself (e.g. LCP Echo): `(code, id, data)`.
    Extended {
        /// The code.
        code: u8,
        /// The identifier.
        id: u8,
        /// The data after the header.
        data: Vec<u8>,
    },
}

/// Errors from [`Fsm::handle_packet`]: the packet was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsmError {
    /// The packet or its options were malformed (peer's fault).
    Malformed(WireError),
    /// The packet was well formed but not valid now (wrong identifier,
    /// reply to nothing, rejecting options we did not send).
    Unexpected(&'static str),
}

impl fmt::Display for FsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsmError::Malformed(e) => write!(f, "{e}"),
            FsmError::Unexpected(why) => write!(f, "peer sent an unexpected packet: {why}"),
        }
    }
}

impl std::error::Error for FsmError {}

/// Longest Code-Reject data we echo.
const MAX_REJECT_ECHO: usize = 1496;

/// The option negotiation automaton of one control protocol.
#[derive(Debug)]
pub struct Fsm<N> {
    /// The per-protocol negotiator.
    pub neg: N,
    state: State,
    config: FsmConfig,
    restart_count: u32,
    failure_count: u32,
    timer: Option<Instant>,
    next_id: u8,
    req_id: u8,
    req_options: Vec<u8>,
    /// A reply to the current request id was already processed.
    seen_reply: bool,
    retransmit: bool,
    term_reason: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    actions: VecDeque<LayerAction>,
    failure: Option<String>,
    peer_terminated: Option<Vec<u8>>,
    #[cfg(test)]
    trace: Vec<&'static str>,
}

impl<N: Negotiator> Fsm<N> {
    /// A new automaton in the Initial state.
    pub fn new(neg: N, config: FsmConfig) -> Self {
        Fsm {
            neg,
            state: State::Initial,
            config,
            restart_count: 0,
            failure_count: config.max_failure,
            timer: None,
            next_id: 1,
            req_id: 0,
            req_options: Vec::new(),
            seen_reply: false,
            retransmit: false,
            term_reason: Vec::new(),
            out: VecDeque::new(),
            actions: VecDeque::new(),
            failure: None,
            peer_terminated: None,
            #[cfg(test)]
            trace: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The restart timer deadline, if running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The next packet to send (without protocol field).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next this-layer action.
    pub fn poll_action(&mut self) -> Option<LayerAction> {
        self.actions.pop_front()
    }

    /// The fatal negotiation failure reported by the negotiator, if any.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// The data of the peer's last Terminate-Request, if it sent one.
    pub fn peer_terminate_reason(&self) -> Option<&[u8]> {
        self.peer_terminated.as_deref()
    }

    /// Lower layer is up.
    pub fn up(&mut self, now: Instant, rand: Rand<'_>) {
        self.apply(now, Event::Up, rand);
    }

    /// Lower layer is down.
    pub fn down(&mut self, now: Instant, rand: Rand<'_>) {
        self.apply(now, Event::Down, rand);
    }

    /// Administrative Open.
    pub fn open(&mut self, now: Instant, rand: Rand<'_>) {
        self.apply(now, Event::Open, rand);
    }

    /// Administrative Close; `reason` goes into the Terminate-Request.
    pub fn close(&mut self, now: Instant, reason: &[u8], rand: Rand<'_>) {
        self.term_reason = reason.to_vec();
        self.apply(now, Event::Close, rand);
    }

    /// A Code-Reject or Protocol-Reject concerning this protocol.
    pub fn rxj(&mut self, now: Instant, catastrophic: bool, rand: Rand<'_>) {
        let ev = if catastrophic {
            Event::RxjMinus
        } else {
            Event::RxjPlus
        };
        self.apply(now, ev, rand);
    }

    /// Call when `now` has reached [`Fsm::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant, rand: Rand<'_>) {
        match self.timer {
            Some(t) if now >= t => {
                self.timer = None;
                if self.restart_count > 0 {
                    self.retransmit = true;
                    self.apply(now, Event::ToPlus, rand);
                    self.retransmit = false;
                } else {
                    self.apply(now, Event::ToMinus, rand);
                }
            }
            _ => {}
        }
    }

    fn fresh_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Processes a received control packet (without protocol field).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        buf: &[u8],
        rand: Rand<'_>,
    ) -> Result<Received, FsmError> {
        let p = Packet::new_checked(buf).map_err(FsmError::Malformed)?;
        let id = p.identifier();
        let live = !matches!(self.state, State::Initial | State::Starting);
        match p.code() {
            Code::ConfigureRequest => {
                let opts = parse_options(p.data()).map_err(FsmError::Malformed)?;
                let ev = match self.state {
                    State::Stopped
                    | State::ReqSent
                    | State::AckRcvd
                    | State::AckSent
                    | State::Opened => {
                        if self.state == State::Stopped {
                            // irc,scr happen before judging in the table; the
                            // failure counter starts afresh with them.
                            self.failure_count = self.config.max_failure;
                        }
                        let nak_allowed = self.failure_count > 0;
                        match self.neg.judge(&opts, nak_allowed, rand) {
                            Judgement::Ack => Event::RcrPlus {
                                id,
                                reply: p.data().to_vec(),
                            },
                            Judgement::Nak(reply) => Event::RcrMinus {
                                id,
                                code: Code::ConfigureNak,
                                reply,
                            },
                            Judgement::Reject(reply) => Event::RcrMinus {
                                id,
                                code: Code::ConfigureReject,
                                reply,
                            },
                        }
                    }
                    // Closed answers with sta; Closing/Stopping ignore.
                    _ => Event::RcrPlus {
                        id,
                        reply: Vec::new(),
                    },
                };
                self.apply(now, ev, rand);
                Ok(Received::Handled)
            }
            Code::ConfigureAck => {
                if self.awaits_reply() {
                    if id != self.req_id || self.seen_reply {
                        return Err(FsmError::Unexpected(
                            "Configure-Ack with a stale identifier",
                        ));
                    }
                    if p.data() != self.req_options.as_slice() {
                        return Err(FsmError::Unexpected(
                            "Configure-Ack options differ from our request",
                        ));
                    }
                    self.seen_reply = true;
                    if matches!(self.state, State::ReqSent | State::AckSent) {
                        let opts = parse_options(p.data()).map_err(FsmError::Malformed)?;
                        self.neg.acked(&opts);
                    }
                }
                self.apply(now, Event::Rca { id }, rand);
                Ok(Received::Handled)
            }
            Code::ConfigureNak | Code::ConfigureReject => {
                if self.awaits_reply() {
                    if id != self.req_id || self.seen_reply {
                        return Err(FsmError::Unexpected(
                            "Configure-Nak/Reject with a stale identifier",
                        ));
                    }
                    let opts = parse_options(p.data()).map_err(FsmError::Malformed)?;
                    let result = if p.code() == Code::ConfigureNak {
                        self.neg.nakked(&opts, rand)
                    } else {
                        let ours = parse_options(&self.req_options).unwrap_or_default();
                        let subset = opts.iter().all(|o| ours.contains(o));
                        if !subset {
                            return Err(FsmError::Unexpected(
                                "Configure-Reject of options we did not request",
                            ));
                        }
                        self.neg.rejected(&opts)
                    };
                    self.seen_reply = true;
                    if let Err(cause) = result {
                        self.failure = Some(cause);
                        self.term_reason = b"Negotiation failed".to_vec();
                        self.apply(now, Event::Close, rand);
                        return Ok(Received::Handled);
                    }
                }
                self.apply(now, Event::Rcn { id }, rand);
                Ok(Received::Handled)
            }
            Code::TerminateRequest => {
                if live {
                    self.peer_terminated = Some(p.data().to_vec());
                }
                self.apply(now, Event::Rtr { id }, rand);
                Ok(Received::Handled)
            }
            Code::TerminateAck => {
                self.apply(now, Event::Rta, rand);
                Ok(Received::Handled)
            }
            Code::CodeReject => {
                let Some(&rejected) = p.data().first() else {
                    return Err(FsmError::Malformed(WireError::TooShort { len: 4 }));
                };
                // Rejecting a code the automaton needs is catastrophic.
                let catastrophic = (1..=7).contains(&rejected);
                self.rxj(now, catastrophic, rand);
                Ok(Received::Handled)
            }
            other => {
                let code = u8::from(other);
                if self.neg.extended_code(code) {
                    self.apply(now, Event::Rxr, rand);
                    Ok(Received::Extended {
                        code,
                        id,
                        data: p.data().to_vec(),
                    })
                } else {
                    self.apply(
                        now,
                        Event::Ruc {
                            packet: p.raw().to_vec(),
                        },
                        rand,
                    );
                    Ok(Received::Handled)
                }
            }
        }
    }

    fn awaits_reply(&self) -> bool {
        matches!(
            self.state,
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
        )
    }

    // --- actions -------------------------------------------------------

    fn note(&mut self, _what: &'static str) {
        #[cfg(test)]
        self.trace.push(_what);
    }

    fn tlu(&mut self) {
        self.note("tlu");
        self.actions.push_back(LayerAction::Up);
    }

    fn tld(&mut self) {
        self.note("tld");
        self.actions.push_back(LayerAction::Down);
    }

    fn tls(&mut self) {
        self.note("tls");
        self.neg.reset();
        self.actions.push_back(LayerAction::Started);
    }

    fn tlf(&mut self) {
        self.note("tlf");
        self.actions.push_back(LayerAction::Finished);
    }

    fn irc_configure(&mut self) {
        self.note("irc");
        self.restart_count = self.config.max_configure;
        self.failure_count = self.config.max_failure;
    }

    fn irc_terminate(&mut self) {
        self.note("irc");
        self.restart_count = self.config.max_terminate;
    }

    fn zrc(&mut self, now: Instant) {
        self.note("zrc");
        self.restart_count = 0;
        self.timer = Some(now + self.config.restart);
    }

    fn scr(&mut self, now: Instant, rand: Rand<'_>) {
        self.note("scr");
        let options = self.neg.request(rand);
        // Keep the identifier on a plain retransmission of the same request
        // that got no answer; change it otherwise (RFC 1661 §5.1).
        if !(self.retransmit && options == self.req_options && !self.seen_reply) || self.req_id == 0
        {
            self.req_id = self.fresh_id();
            if self.req_id == 0 {
                self.req_id = self.fresh_id();
            }
        }
        self.req_options = options;
        self.seen_reply = false;
        self.out.push_back(build_packet(
            Code::ConfigureRequest,
            self.req_id,
            &self.req_options,
        ));
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + self.config.restart);
    }

    fn sca(&mut self, id: u8, reply: &[u8]) {
        self.note("sca");
        self.failure_count = self.config.max_failure;
        self.out
            .push_back(build_packet(Code::ConfigureAck, id, reply));
    }

    fn scn(&mut self, id: u8, code: Code, reply: &[u8]) {
        self.note("scn");
        if code == Code::ConfigureNak {
            self.failure_count = self.failure_count.saturating_sub(1);
        }
        self.out.push_back(build_packet(code, id, reply));
    }

    fn str_(&mut self, now: Instant) {
        self.note("str");
        let id = self.fresh_id();
        self.out
            .push_back(build_packet(Code::TerminateRequest, id, &self.term_reason));
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + self.config.restart);
    }

    fn sta(&mut self, id: u8) {
        self.note("sta");
        self.out
            .push_back(build_packet(Code::TerminateAck, id, &[]));
    }

    fn scj(&mut self, packet: &[u8]) {
        self.note("scj");
        let echo = packet.get(..MAX_REJECT_ECHO).unwrap_or(packet);
        let id = self.fresh_id();
        self.out.push_back(build_packet(Code::CodeReject, id, echo));
    }

    fn set_state(&mut self, s: State) {
        self.state = s;
        if !s.has_timer() {
            self.timer = None;
        }
    }

    /// Applies one event of the RFC 1661 §4.1 table (see the module docs).
    pub fn apply(&mut self, now: Instant, ev: Event, rand: Rand<'_>) {
        use State::*;
        let s = self.state;
        let next = match (&ev, s) {
            // Up
            (Event::Up, Initial) => Closed,
            (Event::Up, Starting) => {
                self.irc_configure();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Up, _) => s,
            // Down
            (Event::Down, Closed) => Initial,
            (Event::Down, Stopped) => {
                self.tls();
                Starting
            }
            (Event::Down, Closing) => Initial,
            (Event::Down, Stopping | ReqSent | AckRcvd | AckSent) => Starting,
            (Event::Down, Opened) => {
                self.tld();
                Starting
            }
            (Event::Down, _) => s,
            // Open
            (Event::Open, Initial) => {
                self.tls();
                Starting
            }
            (Event::Open, Starting) => Starting,
            (Event::Open, Closed) => {
                self.irc_configure();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Open, Closing) => Stopping,
            (Event::Open, _) => s,
            // Close
            (Event::Close, Initial) => Initial,
            (Event::Close, Starting) => {
                self.tlf();
                Initial
            }
            (Event::Close, Closed | Stopped) => Closed,
            (Event::Close, Closing | Stopping) => Closing,
            (Event::Close, ReqSent | AckRcvd | AckSent) => {
                self.irc_terminate();
                self.str_(now);
                Closing
            }
            (Event::Close, Opened) => {
                self.tld();
                self.irc_terminate();
                self.str_(now);
                Closing
            }
            // TO+
            (Event::ToPlus, Closing | Stopping) => {
                self.str_(now);
                s
            }
            (Event::ToPlus, ReqSent | AckRcvd) => {
                self.scr(now, rand);
                ReqSent
            }
            (Event::ToPlus, AckSent) => {
                self.scr(now, rand);
                AckSent
            }
            (Event::ToPlus, _) => s,
            // TO-
            (Event::ToMinus, Closing) => {
                self.tlf();
                Closed
            }
            (Event::ToMinus, Stopping | ReqSent | AckRcvd | AckSent) => {
                self.tlf();
                Stopped
            }
            (Event::ToMinus, _) => s,
            // RCR+
            (Event::RcrPlus { id, .. }, Closed) => {
                self.sta(*id);
                Closed
            }
            (Event::RcrPlus { id, reply }, Stopped) => {
                self.irc_configure();
                self.scr(now, rand);
                self.sca(*id, reply);
                AckSent
            }
            (Event::RcrPlus { id, reply }, ReqSent | AckSent) => {
                self.sca(*id, reply);
                AckSent
            }
            (Event::RcrPlus { id, reply }, AckRcvd) => {
                self.sca(*id, reply);
                self.tlu();
                Opened
            }
            (Event::RcrPlus { id, reply }, Opened) => {
                self.tld();
                self.scr(now, rand);
                self.sca(*id, reply);
                AckSent
            }
            (Event::RcrPlus { .. }, _) => s,
            // RCR-
            (Event::RcrMinus { id, .. }, Closed) => {
                self.sta(*id);
                Closed
            }
            (Event::RcrMinus { id, code, reply }, Stopped) => {
                self.irc_configure();
                self.scr(now, rand);
                self.scn(*id, *code, reply);
                ReqSent
            }
            (Event::RcrMinus { id, code, reply }, ReqSent | AckSent) => {
                self.scn(*id, *code, reply);
                ReqSent
            }
            (Event::RcrMinus { id, code, reply }, AckRcvd) => {
                self.scn(*id, *code, reply);
                AckRcvd
            }
            (Event::RcrMinus { id, code, reply }, Opened) => {
                self.tld();
                self.scr(now, rand);
                self.scn(*id, *code, reply);
                ReqSent
            }
            (Event::RcrMinus { .. }, _) => s,
            // RCA
            (Event::Rca { id }, Closed | Stopped) => {
                self.sta(*id);
                s
            }
            (Event::Rca { .. }, ReqSent) => {
                self.irc_configure();
                AckRcvd
            }
            (Event::Rca { .. }, AckRcvd) => {
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rca { .. }, AckSent) => {
                self.irc_configure();
                self.tlu();
                Opened
            }
            (Event::Rca { .. }, Opened) => {
                self.tld();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rca { .. }, _) => s,
            // RCN
            (Event::Rcn { id }, Closed | Stopped) => {
                self.sta(*id);
                s
            }
            (Event::Rcn { .. }, ReqSent) => {
                self.irc_configure();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rcn { .. }, AckRcvd) => {
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rcn { .. }, AckSent) => {
                self.irc_configure();
                self.scr(now, rand);
                AckSent
            }
            (Event::Rcn { .. }, Opened) => {
                self.tld();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rcn { .. }, _) => s,
            // RTR
            (Event::Rtr { id }, Closed | Stopped | Closing | Stopping) => {
                self.sta(*id);
                s
            }
            (Event::Rtr { id }, ReqSent | AckRcvd | AckSent) => {
                self.sta(*id);
                ReqSent
            }
            (Event::Rtr { id }, Opened) => {
                self.tld();
                self.zrc(now);
                self.sta(*id);
                Stopping
            }
            (Event::Rtr { .. }, _) => s,
            // RTA
            (Event::Rta, Closing) => {
                self.tlf();
                Closed
            }
            (Event::Rta, Stopping) => {
                self.tlf();
                Stopped
            }
            (Event::Rta, AckRcvd) => ReqSent,
            (Event::Rta, Opened) => {
                self.tld();
                self.scr(now, rand);
                ReqSent
            }
            (Event::Rta, _) => s,
            // RUC
            (Event::Ruc { packet }, Initial | Starting) => {
                let _ = packet;
                s
            }
            (Event::Ruc { packet }, _) => {
                self.scj(packet);
                s
            }
            // RXJ+
            (Event::RxjPlus, AckRcvd) => ReqSent,
            (Event::RxjPlus, _) => s,
            // RXJ-
            (Event::RxjMinus, Closed | Closing) => {
                self.tlf();
                Closed
            }
            (Event::RxjMinus, Stopped | Stopping | ReqSent | AckRcvd | AckSent) => {
                self.tlf();
                Stopped
            }
            (Event::RxjMinus, Opened) => {
                self.tld();
                self.irc_terminate();
                self.str_(now);
                Stopping
            }
            (Event::RxjMinus, _) => s,
            // RXR: ser in Opened is done by the owner (Received::Extended).
            (Event::Rxr, _) => s,
        };
        self.set_state(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negotiator that accepts everything and requests one option.
    struct Dummy;
    impl Negotiator for Dummy {
        fn request(&mut self, _rand: Rand<'_>) -> Vec<u8> {
            vec![1, 4, 5, 220]
        }
        fn judge(
            &mut self,
            options: &[RawOption<'_>],
            nak_allowed: bool,
            _r: Rand<'_>,
        ) -> Judgement {
            let mut j = JudgeBuilder::new();
            for o in options {
                if o.kind == 9 {
                    j.nak(o, &[1]);
                } else if o.kind == 10 {
                    j.reject(o);
                }
            }
            j.finish(nak_allowed)
        }
        fn acked(&mut self, _o: &[RawOption<'_>]) {}
        fn nakked(&mut self, _o: &[RawOption<'_>], _r: Rand<'_>) -> Result<(), String> {
            Ok(())
        }
        fn rejected(&mut self, _o: &[RawOption<'_>]) -> Result<(), String> {
            Ok(())
        }
    }

    fn no_rand(b: &mut [u8]) {
        b.fill(7);
    }

    const TABLE: &str = "
 Up   |    2     irc,scr/6     -         -         -         -         -         -         -           -
 Down |    -         -         0       tls/1       0         1         1         1         1         tld/1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r        6         7         8           9r
 Close|    0       tlf/0       2         2         4         4     irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
  TO+ |    -         -         -         -       str/4     str/5     scr/6     scr/6     scr/8         -
  TO- |    -         -         -         -       tlf/2     tlf/3     tlf/3p    tlf/3p    tlf/3p        -
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5       sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5       scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |    -         -       sta/2     sta/3       4         5       irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |    -         -       sta/2     sta/3       4         5     irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5     sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3       6         6         8       tld,scr/6
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5     scj/6     scj/7     scj/8       scj/9
 RXJ+ |    -         -         2         3         4         5         6         6         8           9
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3     tlf/3     tlf/3     tlf/3   tld,irc,str/5
 RXR  |    -         -         2         3         4         5         6         7         8         ser/9
";

    fn event(name: &str) -> Event {
        match name {
            "Up" => Event::Up,
            "Down" => Event::Down,
            "Open" => Event::Open,
            "Close" => Event::Close,
            "TO+" => Event::ToPlus,
            "TO-" => Event::ToMinus,
            "RCR+" => Event::RcrPlus {
                id: 42,
                reply: vec![],
            },
            "RCR-" => Event::RcrMinus {
                id: 42,
                code: Code::ConfigureNak,
                reply: vec![9, 3, 1],
            },
            "RCA" => Event::Rca { id: 42 },
            "RCN" => Event::Rcn { id: 42 },
            "RTR" => Event::Rtr { id: 42 },
            "RTA" => Event::Rta,
            "RUC" => Event::Ruc {
                packet: vec![99, 1, 0, 4],
            },
            "RXJ+" => Event::RxjPlus,
            "RXJ-" => Event::RxjMinus,
            "RXR" => Event::Rxr,
            other => panic!("unknown event {other}"),
        }
    }

    /// Every cell of the RFC 1661 §4.1 table: from each state, apply each
    /// event and compare the actions taken and the next state.
    #[test]
    fn every_cell_of_the_state_table() {
        let now = Instant::now();
        let mut cells = 0;
        for line in TABLE.lines().filter(|l| !l.trim().is_empty()) {
            let (ev_name, cells_str) = line.split_once('|').unwrap();
            let ev_name = ev_name.trim();
            let row: Vec<&str> = cells_str.split_whitespace().collect();
            assert_eq!(row.len(), 10, "row {ev_name}");
            for (i, cell) in row.iter().enumerate() {
                let from = State::ALL[i];
                let mut f = Fsm::new(Dummy, FsmConfig::default());
                f.state = from;
                f.restart_count = 5;
                if from.has_timer() {
                    f.timer = Some(now);
                }
                f.apply(now, event(ev_name), &mut no_rand);
                let (want_actions, want_state): (Vec<&str>, State) = if *cell == "-" {
                    (vec![], from)
                } else {
                    let cell = cell.trim_end_matches(['r', 'p', 'x']);
                    let (acts, st) = match cell.split_once('/') {
                        Some((a, s)) => (a.split(',').collect(), s),
                        None => (vec![], cell),
                    };
                    let n: usize = st.parse().unwrap();
                    // ser is done by the LCP owner, not the automaton.
                    let acts = acts.into_iter().filter(|a| *a != "ser").collect();
                    (acts, State::ALL[n])
                };
                assert_eq!(
                    f.trace, want_actions,
                    "{ev_name} in {from:?}: actions (cell {cell})"
                );
                assert_eq!(f.state, want_state, "{ev_name} in {from:?}: next state");
                // Sent packets match the send actions.
                let sends = want_actions
                    .iter()
                    .filter(|a| matches!(**a, "scr" | "sca" | "scn" | "str" | "sta" | "scj"))
                    .count();
                assert_eq!(f.out.len(), sends, "{ev_name} in {from:?}: packets");
                for (pkt, act) in f.out.iter().zip(
                    want_actions
                        .iter()
                        .filter(|a| matches!(**a, "scr" | "sca" | "scn" | "str" | "sta" | "scj")),
                ) {
                    let code = match *act {
                        "scr" => 1,
                        "sca" => 2,
                        "scn" => 3,
                        "str" => 5,
                        "sta" => 6,
                        _ => 7,
                    };
                    assert_eq!(pkt[0], code, "{ev_name} in {from:?}: {act}");
                }
                // The timer runs exactly in the states that need it.
                assert_eq!(
                    f.timer.is_some(),
                    want_state.has_timer() && (from.has_timer() || sends > 0),
                    "{ev_name} in {from:?}: timer"
                );
                cells += 1;
            }
        }
        assert_eq!(cells, 160);
    }

    fn packet_of(f: &mut Fsm<Dummy>) -> Vec<u8> {
        f.poll_transmit().expect("a packet")
    }

    #[test]
    fn negotiation_via_packets() {
        let now = Instant::now();
        let mut a = Fsm::new(Dummy, FsmConfig::default());
        let mut b = Fsm::new(Dummy, FsmConfig::default());
        for f in [&mut a, &mut b] {
            f.open(now, &mut no_rand);
            f.up(now, &mut no_rand);
            assert_eq!(f.state(), State::ReqSent);
        }
        let ra = packet_of(&mut a);
        let rb = packet_of(&mut b);
        b.handle_packet(now, &ra, &mut no_rand).unwrap();
        a.handle_packet(now, &rb, &mut no_rand).unwrap();
        let acka = packet_of(&mut a);
        let ackb = packet_of(&mut b);
        a.handle_packet(now, &ackb, &mut no_rand).unwrap();
        b.handle_packet(now, &acka, &mut no_rand).unwrap();
        assert_eq!(a.state(), State::Opened);
        assert_eq!(b.state(), State::Opened);
        assert_eq!(a.poll_timeout(), None);
        // A duplicate Ack is discarded (no renegotiation).
        assert!(a.handle_packet(now, &ackb, &mut no_rand).is_err());
        assert_eq!(a.state(), State::Opened);
    }

    #[test]
    fn retransmit_then_give_up() {
        let t0 = Instant::now();
        let cfg = FsmConfig {
            max_configure: 3,
            ..FsmConfig::default()
        };
        let mut f = Fsm::new(Dummy, cfg);
        f.open(t0, &mut no_rand);
        f.up(t0, &mut no_rand);
        let first = packet_of(&mut f);
        let mut now = t0;
        let mut sent = 1;
        while let Some(t) = f.poll_timeout() {
            now = t;
            f.handle_timeout(now, &mut no_rand);
            if let Some(p) = f.poll_transmit() {
                assert_eq!(p, first, "retransmission keeps id and content");
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        assert_eq!(f.state(), State::Stopped);
        assert_eq!(now, t0 + cfg.restart * 3);
        let acts: Vec<_> = std::iter::from_fn(|| f.poll_action()).collect();
        assert_eq!(acts, vec![LayerAction::Started, LayerAction::Finished]);
    }

    #[test]
    fn max_failure_turns_nak_into_reject() {
        let now = Instant::now();
        let cfg = FsmConfig {
            max_failure: 2,
            ..FsmConfig::default()
        };
        let mut f = Fsm::new(Dummy, cfg);
        f.open(now, &mut no_rand);
        f.up(now, &mut no_rand);
        f.poll_transmit();
        let req = build_packet(Code::ConfigureRequest, 5, &[9, 3, 0]);
        for expect in [3u8, 3, 4] {
            f.handle_packet(now, &req, &mut no_rand).unwrap();
            assert_eq!(packet_of(&mut f)[0], expect);
        }
    }

    #[test]
    fn unknown_code_is_code_rejected() {
        let now = Instant::now();
        let mut f = Fsm::new(Dummy, FsmConfig::default());
        f.open(now, &mut no_rand);
        f.up(now, &mut no_rand);
        f.poll_transmit();
        f.handle_packet(now, &[0x55, 9, 0, 5, 0xaa], &mut no_rand)
            .unwrap();
        let cj = packet_of(&mut f);
        assert_eq!(&cj[0..1], &[7]);
        assert_eq!(&cj[4..], &[0x55, 9, 0, 5, 0xaa]);
        // Code-Reject of a Configure-Request is catastrophic.
        f.handle_packet(now, &[7, 1, 0, 8, 1, 1, 0, 4], &mut no_rand)
            .unwrap();
        assert_eq!(f.state(), State::Stopped);
    }
}
