//! sans-IO telnet (RFC 854, RFC 1143 Q-method)
//!
//! [`Telnet`] is a pure state machine: feed it the bytes that arrived from the
//! network with [`Telnet::receive`] (it returns the data bytes and queues any
//! negotiation replies), and turn outgoing data into network bytes with
//! [`Telnet::send`]. No IO, no clock, no allocation beyond the output it hands
//! back.
//!
//! Supported (RFC numbers name where the rules come from):
//!
//! * RFC 854: `IAC` escaping, command stripping, NVT end-of-line rules
//!   (receive: `CR NUL` → `CR`, `CR LF` and a lone `CR` are kept; send: a bare
//!   `CR` becomes `CR NUL`, `CR LF` stays).
//! * RFC 855: subnegotiations (`IAC SB ... IAC SE`) are parsed and discarded;
//!   their contents are never stored, so memory stays constant.
//! * RFC 856 BINARY, RFC 857 ECHO, RFC 858 SUPPRESS-GO-AHEAD; every other option
//!   is refused.
//! * RFC 1143 Q-method per option and side, so negotiation can never loop.
//!
//! # Ordering of output (what a driver must do)
//!
//! Everything the machine wants on the wire comes out of [`Telnet::send`] /
//! [`Telnet::send_into`] (which always emit pending negotiation first, then the
//! encoded data) or [`Telnet::take_output`] / [`Telnet::poll_output`] (pending
//! negotiation only). A driver must transmit these byte strings in the order it
//! obtained them and must not reorder or drop any. That is enough for
//! correctness: data is encoded with the mode in force at the moment of the
//! call, and every command that changed that mode was queued earlier.
//!
//! # Memory
//!
//! The machine's state is a few bytes. Pending output grows by at most the
//! number of bytes passed to one `receive` call (each 3-byte negotiation command
//! produces at most one 3-byte reply) plus the initial requests; a driver that
//! reads in bounded chunks and drains the output after each chunk (or stops
//! reading while its write buffer is full) therefore uses bounded memory for
//! any input.

use std::fmt;

/// Interpret As Command (RFC 854).
pub const IAC: u8 = 255;
/// `DONT` (RFC 854).
pub const DONT: u8 = 254;
/// `DO` (RFC 854).
pub const DO: u8 = 253;
/// `WONT` (RFC 854).
pub const WONT: u8 = 252;
/// `WILL` (RFC 854).
pub const WILL: u8 = 251;
/// Subnegotiation begin (RFC 854/855).
pub const SB: u8 = 250;
/// Go ahead (RFC 854).
pub const GA: u8 = 249;
/// Erase line (RFC 854).
pub const EL: u8 = 248;
/// Erase character (RFC 854).
pub const EC: u8 = 247;
/// Are you there (RFC 854).
pub const AYT: u8 = 246;
/// Abort output (RFC 854).
pub const AO: u8 = 245;
/// Interrupt process (RFC 854).
pub const IP: u8 = 244;
/// Break (RFC 854).
pub const BRK: u8 = 243;
/// Data mark (RFC 854).
pub const DM: u8 = 242;
/// No operation (RFC 854).
pub const NOP: u8 = 241;
/// Subnegotiation end (RFC 854/855).
pub const SE: u8 = 240;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// Telnet option codes this crate knows.
pub mod opt {
    /// TRANSMIT-BINARY (RFC 856).
    pub const BINARY: u8 = 0;
    /// ECHO (RFC 857).
    pub const ECHO: u8 = 1;
    /// SUPPRESS-GO-AHEAD (RFC 858).
    pub const SGA: u8 = 3;
}

/// Subnegotiation bytes counted before a subnegotiation is declared oversize.
/// Contents are never stored; the cap only classifies the peer's behaviour
/// (see [`Stats::oversize_subnegotiations`]).
pub const SUBNEGOTIATION_CAP: usize = 512;

/// Options that have per-side state; every other option is always disabled.
const TRACKED: [u8; 3] = [opt::BINARY, opt::ECHO, opt::SGA];

fn slot(option: u8) -> Option<usize> {
    TRACKED.iter().position(|&o| o == option)
}

/// Errors from requests made by the local program (never from peer bytes:
/// whatever the peer sends is decoded or discarded, not reported as an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelnetError {
    /// Our misuse: the option is not one this machine negotiates
    /// (only BINARY, ECHO and SGA are).
    Unsupported(u8),
    /// Our misuse: the policy refuses this option on that side, so asking for
    /// it would make us refuse our own request.
    Refused(u8),
}

impl fmt::Display for TelnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelnetError::Unsupported(o) => {
                write!(
                    f,
                    "telnet option {o} is not supported by this implementation"
                )
            }
            TelnetError::Refused(o) => {
                write!(f, "telnet option {o} is refused by the local policy")
            }
        }
    }
}

impl std::error::Error for TelnetError {}

/// RFC 1143 state of one side of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionState {
    /// Disabled (RFC 1143 `NO`).
    No,
    /// Enabled (RFC 1143 `YES`).
    Yes,
    /// We asked to disable and wait for the answer (`WANTNO`).
    WantNo,
    /// We asked to enable and wait for the answer (`WANTYES`).
    WantYes,
}

/// RFC 1143 queue bit: a request to flip again once the pending one is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Empty,
    Opposite,
}

#[derive(Debug, Clone, Copy)]
struct Side {
    state: OptionState,
    queue: Queue,
}

const SIDE_NO: Side = Side {
    state: OptionState::No,
    queue: Queue::Empty,
};

/// Which options we accept on each side. Only BINARY, ECHO and SGA can be
/// listed; any other option is always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Options we agree to perform ourselves (peer sends `DO`, we answer `WILL`).
    pub local: &'static [u8],
    /// Options we agree to let the peer perform (peer sends `WILL`, we answer `DO`).
    pub remote: &'static [u8],
}

impl Policy {
    /// A dialgate server: we echo (so the security module controls echo),
    /// SGA and BINARY both ways; the peer may not echo.
    pub const SERVER: Policy = Policy {
        local: &[opt::BINARY, opt::ECHO, opt::SGA],
        remote: &[opt::BINARY, opt::SGA],
    };
    /// A client: lets the server echo, SGA and BINARY both ways.
    pub const CLIENT: Policy = Policy {
        local: &[opt::BINARY, opt::SGA],
        remote: &[opt::BINARY, opt::ECHO, opt::SGA],
    };
}

/// Counters of what the peer sent besides data, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Two-byte commands (`NOP`, `AYT`, `IP`, ...) stripped from the data.
    pub commands: u64,
    /// `WILL`/`WONT`/`DO`/`DONT` received.
    pub negotiations: u64,
    /// Negotiations for options we do not support (refused).
    pub unsupported: u64,
    /// Subnegotiations discarded.
    pub subnegotiations: u64,
    /// Subnegotiations longer than [`SUBNEGOTIATION_CAP`] (peer misbehaved).
    pub oversize_subnegotiations: u64,
    /// `IAC` followed by a byte that is not a command (peer misbehaved).
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    Data,
    Iac,
    Verb(u8),
    /// Inside `IAC SB`; the count of content bytes seen.
    Sb(usize),
    /// `IAC` seen inside a subnegotiation.
    SbIac(usize),
}

/// The telnet machine for one connection. See the crate documentation.
#[derive(Debug, Clone)]
pub struct Telnet {
    policy: Policy,
    local: [Side; 3],
    remote: [Side; 3],
    rx: Rx,
    /// The last data byte delivered in NVT mode was CR.
    after_cr: bool,
    out: Vec<u8>,
    stats: Stats,
}

impl Default for Telnet {
    fn default() -> Self {
        Self::server()
    }
}

impl Telnet {
    /// A machine with the given acceptance policy; every option starts disabled.
    pub fn new(policy: Policy) -> Self {
        Telnet {
            policy,
            local: [SIDE_NO; 3],
            remote: [SIDE_NO; 3],
            rx: Rx::Data,
            after_cr: false,
            out: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// A machine with [`Policy::SERVER`].
    pub fn server() -> Self {
        Self::new(Policy::SERVER)
    }

    /// A machine with [`Policy::CLIENT`].
    pub fn client() -> Self {
        Self::new(Policy::CLIENT)
    }

    /// The policy this machine was built with.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Counters of non-data input seen so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- queries -------------------------------------------------------

    /// RFC 1143 state of `option` on our side (`NO` for untracked options).
    pub fn local_state(&self, option: u8) -> OptionState {
        slot(option).map_or(OptionState::No, |i| self.local[i].state)
    }

    /// RFC 1143 state of `option` on the peer's side.
    pub fn remote_state(&self, option: u8) -> OptionState {
        slot(option).map_or(OptionState::No, |i| self.remote[i].state)
    }

    /// We perform `option` (we said `WILL` and the peer agreed, or vice versa).
    pub fn is_local_enabled(&self, option: u8) -> bool {
        self.local_state(option) == OptionState::Yes
    }

    /// The peer performs `option`.
    pub fn is_remote_enabled(&self, option: u8) -> bool {
        self.remote_state(option) == OptionState::Yes
    }

    /// Data we send is transmitted in BINARY (RFC 856) rather than NVT.
    pub fn sending_binary(&self) -> bool {
        self.is_local_enabled(opt::BINARY)
    }

    /// Data we receive is BINARY rather than NVT.
    pub fn receiving_binary(&self) -> bool {
        self.is_remote_enabled(opt::BINARY)
    }

    /// BINARY is in force in both directions.
    pub fn binary_both_ways(&self) -> bool {
        self.sending_binary() && self.receiving_binary()
    }

    /// Some negotiation we started is still unanswered.
    pub fn negotiating(&self) -> bool {
        self.local
            .iter()
            .chain(self.remote.iter())
            .any(|s| matches!(s.state, OptionState::WantNo | OptionState::WantYes))
    }

    // ----- requests ------------------------------------------------------

    /// The server's opening: `WILL ECHO`, `WILL SGA`, `DO SGA` (queued).
    pub fn initial_negotiation(&mut self) {
        // The three options are supported and accepted by Policy::SERVER; with
        // another policy a refused one is simply not requested.
        let _ = self.enable_local(opt::ECHO);
        let _ = self.enable_local(opt::SGA);
        let _ = self.enable_remote(opt::SGA);
    }

    /// Ask for BINARY both ways (`WILL BINARY`, `DO BINARY`), e.g. before PPP.
    pub fn request_binary(&mut self) {
        let _ = self.enable_local(opt::BINARY);
        let _ = self.enable_remote(opt::BINARY);
    }

    fn check(&self, option: u8, local: bool) -> Result<usize, TelnetError> {
        let i = slot(option).ok_or(TelnetError::Unsupported(option))?;
        let accepted = if local {
            self.policy.local
        } else {
            self.policy.remote
        };
        if accepted.contains(&option) {
            Ok(i)
        } else {
            Err(TelnetError::Refused(option))
        }
    }

    /// Ask to perform `option` ourselves (sends `WILL` unless already enabled
    /// or pending). Redundant requests are no-ops (RFC 1143 "errors").
    pub fn enable_local(&mut self, option: u8) -> Result<(), TelnetError> {
        let i = self.check(option, true)?;
        if let Some(verb) = request_enable(&mut self.local[i]) {
            self.queue(if verb { WILL } else { WONT }, option);
        }
        Ok(())
    }

    /// Ask the peer to perform `option` (sends `DO`).
    pub fn enable_remote(&mut self, option: u8) -> Result<(), TelnetError> {
        let i = self.check(option, false)?;
        if let Some(verb) = request_enable(&mut self.remote[i]) {
            self.queue(if verb { DO } else { DONT }, option);
        }
        Ok(())
    }

    /// Stop performing `option` (sends `WONT`). Disabling an option that is
    /// off or unsupported is a no-op.
    pub fn disable_local(&mut self, option: u8) {
        if let Some(i) = slot(option)
            && let Some(verb) = request_disable(&mut self.local[i])
        {
            self.queue(if verb { WILL } else { WONT }, option);
        }
    }

    /// Ask the peer to stop performing `option` (sends `DONT`).
    pub fn disable_remote(&mut self, option: u8) {
        if let Some(i) = slot(option)
            && let Some(verb) = request_disable(&mut self.remote[i])
        {
            self.queue(if verb { DO } else { DONT }, option);
        }
    }

    fn queue(&mut self, verb: u8, option: u8) {
        self.out.extend_from_slice(&[IAC, verb, option]);
    }

    // ----- output --------------------------------------------------------

    /// Pending negotiation output exists.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Number of pending negotiation bytes.
    pub fn pending_output_len(&self) -> usize {
        self.out.len()
    }

    /// Take the pending negotiation bytes (empty if none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Take the pending negotiation bytes, or `None` if there are none.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.take_output())
        }
    }

    /// Append the pending negotiation bytes to `out`.
    pub fn drain_output_into(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    // ----- send ----------------------------------------------------------

    /// Encode `data` for the network, preceded by any pending negotiation.
    pub fn send(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.out.len() + data.len() + data.len() / 8 + 2);
        self.send_into(data, &mut out);
        out
    }

    /// Like [`Telnet::send`], appending to `out`.
    ///
    /// `IAC` is doubled. In NVT mode (our BINARY off) a `CR` followed by `LF`
    /// in `data` is sent as is and any other `CR` (including one at the end of
    /// `data`) as `CR NUL`; the receiver decodes both to the same bytes.
    pub fn send_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.drain_output_into(out);
        let binary = self.sending_binary();
        for (i, &b) in data.iter().enumerate() {
            out.push(b);
            if b == IAC {
                out.push(IAC);
            } else if b == CR && !binary && data.get(i + 1) != Some(&LF) {
                out.push(NUL);
            }
        }
    }

    /// Encoded length of `data[i]` as [`Telnet::send_into`] would produce it
    /// now (1 or 2; 0 if `i` is out of range).
    pub fn encoded_len(&self, data: &[u8], i: usize) -> usize {
        match data.get(i) {
            None => 0,
            Some(&IAC) => 2,
            Some(&CR) if !self.sending_binary() && data.get(i + 1) != Some(&LF) => 2,
            Some(_) => 1,
        }
    }

    /// For a driver whose transport accepted only the first `written` bytes of
    /// the encoding of `data` (as produced by [`Telnet::send_into`] with no
    /// negotiation pending): returns `(consumed, tail)` where `consumed` is the
    /// number of input bytes whose encoding has started and `tail` the number
    /// of bytes of the last one's encoding still to transmit (0 or 1).
    pub fn split_written(&self, data: &[u8], written: usize) -> (usize, usize) {
        let mut pos = 0;
        for i in 0..data.len() {
            if pos >= written {
                return (i, 0);
            }
            pos += self.encoded_len(data, i);
            if pos > written {
                return (i + 1, pos - written);
            }
        }
        (data.len(), 0)
    }

    // ----- receive -------------------------------------------------------

    /// Decode network bytes; returns the data bytes. Negotiation replies are
    /// queued (see [`Telnet::take_output`]).
    pub fn receive(&mut self, input: &[u8]) -> Vec<u8> {
        let mut data = Vec::with_capacity(input.len());
        self.receive_into(input, &mut data);
        data
    }

    /// Like [`Telnet::receive`], appending the data bytes to `data`.
    pub fn receive_into(&mut self, input: &[u8], data: &mut Vec<u8>) {
        for &b in input {
            if let Some(d) = self.step(b) {
                data.push(d);
            }
        }
    }

    /// Decode `buf` in place (the data never is longer than its encoding);
    /// returns how many data bytes now start `buf`.
    pub fn receive_in_place(&mut self, buf: &mut [u8]) -> usize {
        let mut w = 0;
        for r in 0..buf.len() {
            if let Some(d) = self.step(buf[r]) {
                buf[w] = d;
                w += 1;
            }
        }
        w
    }

    /// One network byte in; at most one data byte out.
    fn step(&mut self, b: u8) -> Option<u8> {
        match self.rx {
            Rx::Data => {
                if b == IAC {
                    self.rx = Rx::Iac;
                    None
                } else {
                    self.data_byte(b)
                }
            }
            Rx::Iac => {
                self.rx = Rx::Data;
                match b {
                    IAC => self.data_byte(IAC),
                    WILL | WONT | DO | DONT => {
                        self.rx = Rx::Verb(b);
                        None
                    }
                    SB => {
                        self.rx = Rx::Sb(0);
                        None
                    }
                    SE => {
                        // SE outside a subnegotiation: peer misbehaved; ignore.
                        self.stats.malformed += 1;
                        None
                    }
                    NOP | DM | BRK | IP | AO | AYT | EC | EL | GA => {
                        self.stats.commands += 1;
                        None
                    }
                    _ => {
                        // Not a command (RFC 854 defines none below SE): drop
                        // both bytes, count the peer's mistake.
                        self.stats.malformed += 1;
                        None
                    }
                }
            }
            Rx::Verb(verb) => {
                self.rx = Rx::Data;
                self.negotiation(verb, b);
                None
            }
            Rx::Sb(n) => {
                self.rx = if b == IAC {
                    Rx::SbIac(n)
                } else {
                    Rx::Sb(self.sb_count(n))
                };
                None
            }
            Rx::SbIac(n) => {
                match b {
                    IAC => self.rx = Rx::Sb(self.sb_count(n)),
                    SE => {
                        self.rx = Rx::Data;
                        self.stats.subnegotiations += 1;
                    }
                    _ => {
                        // IAC + command inside SB: the peer forgot SE. End the
                        // subnegotiation and interpret the command.
                        self.stats.subnegotiations += 1;
                        self.stats.malformed += 1;
                        self.rx = Rx::Iac;
                        return self.step(b);
                    }
                }
                None
            }
        }
    }

    fn sb_count(&mut self, n: usize) -> usize {
        if n == SUBNEGOTIATION_CAP {
            self.stats.oversize_subnegotiations += 1;
        }
        n.saturating_add(1).min(SUBNEGOTIATION_CAP + 1)
    }

    fn data_byte(&mut self, b: u8) -> Option<u8> {
        if self.receiving_binary() {
            self.after_cr = false;
            return Some(b);
        }
        // RFC 854 NVT: CR NUL means a bare CR; CR LF and CR x are kept.
        if self.after_cr && b == NUL {
            self.after_cr = false;
            return None;
        }
        self.after_cr = b == CR;
        Some(b)
    }

    fn negotiation(&mut self, verb: u8, option: u8) {
        self.stats.negotiations += 1;
        let Some(i) = slot(option) else {
            // RFC 1143: an untracked option is always NO; WILL/DO are refused,
            // WONT/DONT are already true and need no answer.
            self.stats.unsupported += 1;
            match verb {
                WILL => self.queue(DONT, option),
                DO => self.queue(WONT, option),
                _ => {}
            }
            return;
        };
        let reply = match verb {
            WILL => {
                let agree = self.policy.remote.contains(&option);
                receive_enable(&mut self.remote[i], agree).map(|v| if v { DO } else { DONT })
            }
            WONT => receive_disable(&mut self.remote[i]).map(|v| if v { DO } else { DONT }),
            DO => {
                let agree = self.policy.local.contains(&option);
                receive_enable(&mut self.local[i], agree).map(|v| if v { WILL } else { WONT })
            }
            DONT => receive_disable(&mut self.local[i]).map(|v| if v { WILL } else { WONT }),
            _ => None,
        };
        if let Some(v) = reply {
            self.queue(v, option);
        }
    }
}

// RFC 1143 section 7, written once for both sides. `Some(true)` means "send
// the positive verb" (WILL/DO), `Some(false)` the negative one (WONT/DONT).

/// The peer sent WILL (for its side) or DO (for ours).
fn receive_enable(s: &mut Side, agree: bool) -> Option<bool> {
    use OptionState::*;
    match (s.state, s.queue) {
        (No, _) => {
            if agree {
                s.state = Yes;
                Some(true)
            } else {
                Some(false)
            }
        }
        (Yes, _) => None,
        // Our "disable" was answered by "enable": RFC 1143 treats it as a
        // refusal of the disable that we accept.
        (WantNo, Queue::Empty) => {
            s.state = No;
            None
        }
        (WantNo, Queue::Opposite) => {
            s.state = Yes;
            s.queue = Queue::Empty;
            None
        }
        (WantYes, Queue::Empty) => {
            s.state = Yes;
            None
        }
        (WantYes, Queue::Opposite) => {
            s.state = WantNo;
            s.queue = Queue::Empty;
            Some(false)
        }
    }
}

/// The peer sent WONT (its side) or DONT (ours).
fn receive_disable(s: &mut Side) -> Option<bool> {
    use OptionState::*;
    match (s.state, s.queue) {
        (No, _) => None,
        (Yes, _) => {
            s.state = No;
            Some(false)
        }
        (WantNo, Queue::Empty) => {
            s.state = No;
            None
        }
        (WantNo, Queue::Opposite) => {
            s.state = WantYes;
            s.queue = Queue::Empty;
            Some(true)
        }
        (WantYes, _) => {
            s.state = No;
            s.queue = Queue::Empty;
            None
        }
    }
}

/// We want the option enabled.
fn request_enable(s: &mut Side) -> Option<bool> {
    use OptionState::*;
    match (s.state, s.queue) {
        (No, _) => {
            s.state = WantYes;
            Some(true)
        }
        (Yes, _) | (WantYes, Queue::Empty) | (WantNo, Queue::Opposite) => None,
        (WantNo, Queue::Empty) => {
            s.queue = Queue::Opposite;
            None
        }
        (WantYes, Queue::Opposite) => {
            s.queue = Queue::Empty;
            None
        }
    }
}

/// We want the option disabled.
fn request_disable(s: &mut Side) -> Option<bool> {
    use OptionState::*;
    match (s.state, s.queue) {
        (Yes, _) => {
            s.state = WantNo;
            Some(false)
        }
        (No, _) | (WantNo, Queue::Empty) | (WantYes, Queue::Opposite) => None,
        (WantNo, Queue::Opposite) => {
            s.queue = Queue::Empty;
            None
        }
        (WantYes, Queue::Empty) => {
            s.queue = Queue::Opposite;
            None
        }
    }
}

#[cfg(test)]
mod tests;
