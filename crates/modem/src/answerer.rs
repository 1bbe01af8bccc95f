//! The sans-IO answering (and dialling) state machine.
//!
//! The driver feeds it bytes read from the port ([`Answerer::handle_input`]),
//! expired timers ([`Answerer::handle_timeout`]) and DCD changes
//! ([`Answerer::carrier_changed`]), and drains bytes to write
//! ([`Answerer::poll_transmit`]), control-line actions
//! ([`Answerer::poll_action`]) and events ([`Answerer::poll_event`]). The next
//! deadline is [`Answerer::poll_timeout`].
//!
//! While [`State::Connected`], the port's bytes belong to the call, not to the
//! modem: `handle_input` consumes nothing in that state, and returns how many
//! bytes it consumed so data following a `CONNECT` line in the same read can
//! be handed to the session. During a hang-up the driver must not write call
//! data (the `+++` escape relies on silent guard times).

use crate::parser::{ConnectInfo, Response, ResponseParser};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Tunables of the state machine. [`Config::default`] holds sane values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Commands sent in order at init, each expecting `OK` (without `\r`).
    pub init_commands: Vec<String>,
    /// Answer with `ATA` on this RING; `0` means the modem auto-answers
    /// (`S0>0`) and we only wait for `CONNECT`.
    pub answer_on_ring: u32,
    /// How long to wait for `OK` after a command.
    pub command_timeout: Duration,
    /// First back-off after a failed init attempt; doubled each attempt.
    pub init_backoff: Duration,
    /// Ceiling of the back-off.
    pub init_backoff_max: Duration,
    /// Attempts before reporting [`Event::InitFailed`].
    pub init_max_attempts: u32,
    /// After [`Event::InitFailed`], start over after this long.
    pub init_failed_retry: Duration,
    /// Time from `ATA`/`ATD` to `CONNECT`.
    pub connect_timeout: Duration,
    /// The RING count restarts when no RING came for this long.
    pub ring_reset: Duration,
    /// How long DTR is held low to hang up.
    pub dtr_drop: Duration,
    /// Silence before and after `+++` (Hayes S12 default is 1 s).
    pub guard_time: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            init_commands: vec!["ATZ".into(), "ATE0V1&C1&D2S0=0".into()],
            answer_on_ring: 1,
            command_timeout: Duration::from_secs(3),
            init_backoff: Duration::from_secs(1),
            init_backoff_max: Duration::from_secs(30),
            init_max_attempts: 5,
            init_failed_retry: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(60),
            ring_reset: Duration::from_secs(8),
            dtr_drop: Duration::from_millis(500),
            guard_time: Duration::from_millis(1100),
        }
    }
}

/// A control-line change for the driver to carry out (see
/// [`crate::apply_action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set Data Terminal Ready.
    SetDtr(bool),
    /// Set Request To Send.
    SetRts(bool),
}

/// Why one init attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFailure {
    /// The modem did not answer `OK` in time (peer misbehaved or absent).
    NoResponse {
        /// The command that got no answer.
        command: String,
    },
    /// The modem answered `ERROR` (or another failure code) to a command.
    Rejected {
        /// The rejected command.
        command: String,
        /// What the modem said.
        response: Response,
    },
}

impl fmt::Display for InitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoResponse { command } => write!(f, "modem did not answer OK to {command}"),
            Self::Rejected { command, response } => {
                write!(f, "modem rejected {command} with {response:?}")
            }
        }
    }
}

/// Why an answer or dial attempt ended without a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFailure {
    /// `NO CARRIER`.
    NoCarrier,
    /// `BUSY`.
    Busy,
    /// `ERROR`.
    Error,
    /// `NO DIALTONE`.
    NoDialtone,
    /// `NO ANSWER`.
    NoAnswer,
    /// No `CONNECT` within [`Config::connect_timeout`].
    Timeout,
}

/// How a hang-up was achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUpMethod {
    /// Dropping DTR was enough (carrier gone).
    Dtr,
    /// The carrier stayed; `+++` then `ATH` was sent. `confirmed` is whether
    /// the modem answered `OK`/`NO CARRIER` to `ATH`.
    Escape {
        /// The modem acknowledged `ATH`.
        confirmed: bool,
    },
}

/// Something the driver should know (log, end a session, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Init succeeded; the line waits for RING (or is ready to dial).
    Ready,
    /// One init attempt failed; the next starts at `retry_at`.
    InitAttemptFailed {
        /// The failure.
        reason: InitFailure,
        /// 1-based attempt number.
        attempt: u32,
        /// When the next attempt starts.
        retry_at: Instant,
    },
    /// [`Config::init_max_attempts`] attempts failed; the line is out of
    /// service until `retry_at`, when a new round of attempts starts.
    InitFailed {
        /// The last failure.
        reason: InitFailure,
        /// Attempts made in this round.
        attempts: u32,
        /// When the next round starts.
        retry_at: Instant,
    },
    /// A RING; `count` is its number in the current call.
    Ring {
        /// 1-based ring count.
        count: u32,
    },
    /// We sent `ATA` (answer) after `rings` rings.
    Answering {
        /// Rings counted.
        rings: u32,
    },
    /// A call is up.
    Connected {
        /// Speed from `CONNECT <speed>`, if any.
        speed: Option<u32>,
        /// Protocol suffix, e.g. `V42` or `ARQ/V90`.
        protocol: Option<String>,
        /// Whether we dialled out (callback) rather than answered.
        outgoing: bool,
    },
    /// An answer/dial attempt failed; the line is idle again (after a
    /// hang-up for a timeout).
    CallFailed {
        /// The reason.
        reason: AnswerFailure,
    },
    /// DCD dropped while connected; a hang-up and re-init follow.
    CarrierLost,
    /// The hang-up finished; re-init follows.
    HungUp {
        /// How.
        method: HangUpMethod,
    },
}

/// Why [`Answerer::dial`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    /// Our misuse: the line is not idle.
    NotIdle(State),
    /// Malformed input: the number is empty, too long, or has a character
    /// outside `0-9 * # , W @ P T`.
    BadNumber(String),
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIdle(s) => write!(f, "cannot dial: line is {s:?}, not idle"),
            Self::BadNumber(n) => write!(f, "invalid dial string {n:?}"),
        }
    }
}

impl std::error::Error for DialError {}

/// Longest accepted dial string.
pub const MAX_NUMBER: usize = 40;

/// Coarse state, for logging and assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Stopped,
    /// Sending the init commands.
    Initialising,
    /// Waiting between init attempts (or rounds).
    InitBackoff,
    /// Idle, waiting for RING.
    Idle,
    /// `ATA` or `ATD` sent, waiting for `CONNECT`.
    Connecting,
    /// A call is up.
    Connected,
    /// Hanging up.
    HangingUp,
}

#[derive(Debug, Clone)]
enum Phase {
    Stopped,
    Init {
        step: usize,
        attempt: u32,
        deadline: Instant,
    },
    Backoff {
        attempt: u32,
        until: Instant,
    },
    Idle {
        rings: u32,
        reset_at: Option<Instant>,
    },
    Connecting {
        deadline: Instant,
        outgoing: bool,
    },
    Connected,
    DtrLow {
        until: Instant,
    },
    GuardBefore {
        until: Instant,
    },
    GuardAfter {
        until: Instant,
    },
    WaitAth {
        deadline: Instant,
    },
}

/// The answering state machine of one modem line.
#[derive(Debug)]
pub struct Answerer {
    cfg: Config,
    phase: Phase,
    parser: ResponseParser,
    dcd: bool,
    /// The `CONNECT` line ended with CR and its LF has not come yet.
    lf_pending: bool,
    transmits: VecDeque<Vec<u8>>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Answerer {
    /// A stopped machine; call [`Answerer::start`].
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            phase: Phase::Stopped,
            parser: ResponseParser::new(),
            dcd: false,
            lf_pending: false,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Raise DTR and RTS and start the init sequence.
    pub fn start(&mut self, now: Instant) {
        self.actions.push_back(Action::SetDtr(true));
        self.actions.push_back(Action::SetRts(true));
        self.begin_init(now, 1);
    }

    /// Start with a hang-up: DTR is held low for `dtr_drop` first, so a
    /// modem left online (a crashed or killed server keeps DTR up) hangs
    /// up before it gets init commands; if the driver reports DCD still
    /// high by then, the `+++`/`ATH` escape follows as for any hang-up.
    /// Then DTR goes up and the init sequence runs.
    pub fn start_with_hang_up(&mut self, now: Instant) {
        self.actions.push_back(Action::SetRts(true));
        self.actions.push_back(Action::SetDtr(false));
        self.phase = Phase::DtrLow {
            until: now + self.cfg.dtr_drop,
        };
    }

    /// The coarse state.
    #[must_use]
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Stopped => State::Stopped,
            Phase::Init { .. } => State::Initialising,
            Phase::Backoff { .. } => State::InitBackoff,
            Phase::Idle { .. } => State::Idle,
            Phase::Connecting { .. } => State::Connecting,
            Phase::Connected => State::Connected,
            Phase::DtrLow { .. }
            | Phase::GuardBefore { .. }
            | Phase::GuardAfter { .. }
            | Phase::WaitAth { .. } => State::HangingUp,
        }
    }

    /// Last known DCD level.
    #[must_use]
    pub fn carrier(&self) -> bool {
        self.dcd
    }

    /// Next bytes to write to the port.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Next control-line change to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The deadline at which [`Answerer::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Stopped | Phase::Connected => None,
            Phase::Idle { reset_at, .. } => reset_at,
            Phase::Init { deadline, .. }
            | Phase::Connecting { deadline, .. }
            | Phase::WaitAth { deadline } => Some(deadline),
            Phase::Backoff { until, .. }
            | Phase::DtrLow { until }
            | Phase::GuardBefore { until }
            | Phase::GuardAfter { until } => Some(until),
        }
    }

    /// Bytes read from the port. Returns how many were consumed as modem
    /// responses; the rest (after a `CONNECT` line and its line end, when
    /// both are in this chunk) belong to the call. In [`State::Connected`]
    /// nothing is consumed (returns 0), except the `CONNECT` line's LF when
    /// it starts the chunk: route call data elsewhere (and see
    /// [`Answerer::connect_lf_pending`]).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(self.phase, Phase::Connected) {
                // The LF of the CONNECT line's CR LF is still ours.
                if b == b'\n' && self.lf_pending {
                    self.lf_pending = false;
                    continue;
                }
                self.lf_pending = false;
                return i;
            }
            if let Some(r) = self.parser.push(b) {
                self.on_response(now, r);
                if matches!(self.phase, Phase::Connected) {
                    self.lf_pending = b == b'\r';
                }
            }
        }
        bytes.len()
    }

    /// After [`Event::Connected`]: whether the `CONNECT` line's LF has not
    /// arrived yet (it came in a later read). The driver should drop a
    /// first `\n` of the call's data; reading it clears this.
    pub fn connect_lf_pending(&mut self) -> bool {
        std::mem::take(&mut self.lf_pending)
    }

    /// DCD changed (or was polled) at `now`.
    pub fn carrier_changed(&mut self, now: Instant, dcd: bool) {
        self.dcd = dcd;
        if dcd {
            return;
        }
        match self.phase {
            Phase::Connected => {
                self.events.push_back(Event::CarrierLost);
                self.hang_up(now);
            }
            // The modem dropped the call late (after DTR came back up but
            // before we escaped): no `+++` needed.
            Phase::GuardBefore { .. } => {
                self.events.push_back(Event::HungUp {
                    method: HangUpMethod::Dtr,
                });
                self.begin_init(now, 1);
            }
            _ => {}
        }
    }

    /// Hang up (or abort whatever is going on) and re-init afterwards: drop
    /// DTR; if the carrier stays, escape with `+++` and send `ATH`.
    pub fn hang_up(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Stopped) {
            return;
        }
        self.actions.push_back(Action::SetDtr(false));
        self.phase = Phase::DtrLow {
            until: now + self.cfg.dtr_drop,
        };
    }

    /// Dial out (callback): sends `ATDT<number>`. Only when idle.
    ///
    /// # Errors
    /// [`DialError::NotIdle`] outside [`State::Idle`],
    /// [`DialError::BadNumber`] for an invalid dial string.
    pub fn dial(&mut self, now: Instant, number: &str) -> Result<(), DialError> {
        if !matches!(self.phase, Phase::Idle { .. }) {
            return Err(DialError::NotIdle(self.state()));
        }
        validate_number(number)?;
        self.send(&format!("ATDT{number}"));
        self.phase = Phase::Connecting {
            deadline: now + self.cfg.connect_timeout,
            outgoing: true,
        };
        Ok(())
    }

    /// A timer may have expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.phase.clone() {
            Phase::Stopped | Phase::Connected => {}
            Phase::Init { step, attempt, .. } => {
                let command = self
                    .cfg
                    .init_commands
                    .get(step)
                    .cloned()
                    .unwrap_or_default();
                self.init_failed(now, attempt, InitFailure::NoResponse { command });
            }
            Phase::Backoff { attempt, .. } => self.begin_init(now, attempt),
            Phase::Idle { .. } => {
                self.phase = Phase::Idle {
                    rings: 0,
                    reset_at: None,
                };
            }
            Phase::Connecting { .. } => {
                self.events.push_back(Event::CallFailed {
                    reason: AnswerFailure::Timeout,
                });
                self.hang_up(now);
            }
            Phase::DtrLow { .. } => {
                self.actions.push_back(Action::SetDtr(true));
                if self.dcd {
                    self.phase = Phase::GuardBefore {
                        until: now + self.cfg.guard_time,
                    };
                } else {
                    self.events.push_back(Event::HungUp {
                        method: HangUpMethod::Dtr,
                    });
                    self.begin_init(now, 1);
                }
            }
            Phase::GuardBefore { .. } => {
                self.transmits.push_back(b"+++".to_vec());
                // The modem answers `+++` with OK once the guard time has
                // passed; half a guard time more lets that OK arrive (and be
                // ignored) before `ATH` goes out, so it is never taken for
                // the answer to `ATH` (and `ATH`'s for the next command).
                self.phase = Phase::GuardAfter {
                    until: now + self.cfg.guard_time + self.cfg.guard_time / 2,
                };
            }
            Phase::GuardAfter { .. } => {
                self.parser.reset();
                self.send("ATH");
                self.phase = Phase::WaitAth {
                    deadline: now + self.cfg.command_timeout,
                };
            }
            Phase::WaitAth { .. } => self.escape_done(now, false),
        }
    }

    fn send(&mut self, cmd: &str) {
        let mut v = Vec::with_capacity(cmd.len() + 1);
        v.extend_from_slice(cmd.as_bytes());
        v.push(b'\r');
        self.transmits.push_back(v);
    }

    fn begin_init(&mut self, now: Instant, attempt: u32) {
        self.parser.reset();
        if self.cfg.init_commands.is_empty() {
            self.go_idle();
            self.events.push_back(Event::Ready);
            return;
        }
        let first = self.cfg.init_commands.first().cloned().unwrap_or_default();
        self.send(&first);
        self.phase = Phase::Init {
            step: 0,
            attempt,
            deadline: now + self.cfg.command_timeout,
        };
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle {
            rings: 0,
            reset_at: None,
        };
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        self.cfg
            .init_backoff
            .saturating_mul(1u32 << shift)
            .min(self.cfg.init_backoff_max)
    }

    fn init_failed(&mut self, now: Instant, attempt: u32, reason: InitFailure) {
        if attempt >= self.cfg.init_max_attempts.max(1) {
            let retry_at = now + self.cfg.init_failed_retry;
            self.events.push_back(Event::InitFailed {
                reason,
                attempts: attempt,
                retry_at,
            });
            self.phase = Phase::Backoff {
                attempt: 1,
                until: retry_at,
            };
        } else {
            let retry_at = now + self.backoff(attempt);
            self.events.push_back(Event::InitAttemptFailed {
                reason,
                attempt,
                retry_at,
            });
            self.phase = Phase::Backoff {
                attempt: attempt + 1,
                until: retry_at,
            };
        }
    }

    fn escape_done(&mut self, now: Instant, confirmed: bool) {
        self.events.push_back(Event::HungUp {
            method: HangUpMethod::Escape { confirmed },
        });
        self.begin_init(now, 1);
    }

    fn connected(&mut self, info: ConnectInfo, outgoing: bool) {
        self.dcd = true; // assumed until the driver reports otherwise
        self.parser.reset();
        // A command still queued (an `ATA` for a RING that came in the same
        // read as the modem's own CONNECT) would go to the caller as data.
        self.transmits.clear();
        self.phase = Phase::Connected;
        self.events.push_back(Event::Connected {
            speed: info.speed,
            protocol: info.protocol,
            outgoing,
        });
    }

    fn on_response(&mut self, now: Instant, r: Response) {
        match self.phase.clone() {
            Phase::Stopped | Phase::Connected | Phase::Backoff { .. } => {}
            Phase::DtrLow { .. } | Phase::GuardBefore { .. } | Phase::GuardAfter { .. } => {}
            Phase::Init { step, attempt, .. } => match r {
                Response::Ok => {
                    let next = step + 1;
                    if let Some(cmd) = self.cfg.init_commands.get(next).cloned() {
                        self.send(&cmd);
                        self.phase = Phase::Init {
                            step: next,
                            attempt,
                            deadline: now + self.cfg.command_timeout,
                        };
                    } else {
                        self.go_idle();
                        self.events.push_back(Event::Ready);
                    }
                }
                // A modem reports the end of the previous call (`NO CARRIER`)
                // whenever it notices it, which can be after our first init
                // command went out: not an answer to that command.
                Response::NoCarrier => {}
                Response::Error | Response::NoDialtone | Response::Busy | Response::NoAnswer => {
                    let command = self
                        .cfg
                        .init_commands
                        .get(step)
                        .cloned()
                        .unwrap_or_default();
                    self.init_failed(
                        now,
                        attempt,
                        InitFailure::Rejected {
                            command,
                            response: r,
                        },
                    );
                }
                Response::Ring | Response::Connect(_) | Response::Other(_) => {}
            },
            Phase::Idle { rings, .. } => match r {
                Response::Ring => {
                    let count = rings.saturating_add(1);
                    self.events.push_back(Event::Ring { count });
                    if self.cfg.answer_on_ring > 0 && count >= self.cfg.answer_on_ring {
                        self.events.push_back(Event::Answering { rings: count });
                        self.parser.reset();
                        self.send("ATA");
                        self.phase = Phase::Connecting {
                            deadline: now + self.cfg.connect_timeout,
                            outgoing: false,
                        };
                    } else {
                        self.phase = Phase::Idle {
                            rings: count,
                            reset_at: Some(now + self.cfg.ring_reset),
                        };
                    }
                }
                // Auto-answer (or an unexpected connection): take the call.
                Response::Connect(info) => self.connected(info, false),
                _ => {}
            },
            Phase::Connecting { outgoing, .. } => {
                let reason = match r {
                    Response::Connect(info) => return self.connected(info, outgoing),
                    Response::NoCarrier => AnswerFailure::NoCarrier,
                    Response::Busy => AnswerFailure::Busy,
                    Response::Error => AnswerFailure::Error,
                    Response::NoDialtone => AnswerFailure::NoDialtone,
                    Response::NoAnswer => AnswerFailure::NoAnswer,
                    Response::Ok | Response::Ring | Response::Other(_) => return,
                };
                self.events.push_back(Event::CallFailed { reason });
                self.go_idle();
            }
            Phase::WaitAth { .. } => {
                if matches!(r, Response::Ok | Response::NoCarrier) {
                    self.escape_done(now, true);
                }
            }
        }
    }
}

/// Check a dial string: 1..=[`MAX_NUMBER`] characters from
/// `0-9 * # , W @ P T` (case-insensitive letters).
///
/// # Errors
/// [`DialError::BadNumber`] naming the string.
pub fn validate_number(number: &str) -> Result<(), DialError> {
    let ok = !number.is_empty()
        && number.len() <= MAX_NUMBER
        && number.bytes().all(|b| {
            b.is_ascii_digit()
                || matches!(
                    b.to_ascii_uppercase(),
                    b'*' | b'#' | b',' | b'W' | b'@' | b'P' | b'T'
                )
        });
    if ok {
        Ok(())
    } else {
        Err(DialError::BadNumber(
            number.chars().take(MAX_NUMBER + 8).collect(),
        ))
    }
}
