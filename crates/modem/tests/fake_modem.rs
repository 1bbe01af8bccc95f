//! A script-driven fake Hayes modem talking to the `Answerer` on a virtual
//! clock, with `FakeLines` for the control lines.

use modem::{
    Action, AnswerFailure, Answerer, Config, DialError, Event, FakeLines, HangUpMethod,
    InitFailure, State, apply_action,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Something the fake modem's script does at a given virtual time.
#[derive(Debug, Clone)]
enum Step {
    /// Unsolicited output (e.g. `RING`).
    Say(&'static str),
    /// The remote end hangs up: carrier drops, `NO CARRIER`.
    RemoteHangUp,
}

/// A small Hayes modem: echoes until `E0`, answers `OK` to `AT` commands,
/// `ATA`/`ATD` get the configured result, honours (or not) DTR drops,
/// `+++` escapes to command mode, `ATH` hangs up.
struct FakeHayes {
    responds: bool,
    echo: bool,
    honours_dtr: bool,
    answer_result: &'static str,
    dial_result: &'static str,
    dcd: bool,
    online: bool,
    cmd: Vec<u8>,
    out: Vec<u8>,
    received: Vec<(Duration, Vec<u8>)>,
    commands: Vec<String>,
    script: VecDeque<(Duration, Step)>,
}

impl FakeHayes {
    fn new() -> Self {
        Self {
            responds: true,
            echo: true,
            honours_dtr: true,
            answer_result: "CONNECT 33600/V42",
            dial_result: "CONNECT 115200/ARQ/V90",
            dcd: false,
            online: false,
            cmd: Vec::new(),
            out: Vec::new(),
            received: Vec::new(),
            commands: Vec::new(),
            script: VecDeque::new(),
        }
    }

    fn say(&mut self, s: &str) {
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn receive(&mut self, at: Duration, bytes: &[u8]) {
        self.received.push((at, bytes.to_vec()));
        if self.online {
            if bytes == b"+++" {
                self.online = false;
                self.say("OK");
            }
            return;
        }
        for &b in bytes {
            if self.echo {
                self.out.push(b);
            }
            if b == b'\r' {
                let line = String::from_utf8_lossy(&self.cmd).to_ascii_uppercase();
                self.cmd.clear();
                self.command(&line);
            } else {
                self.cmd.push(b);
            }
        }
    }

    fn command(&mut self, line: &str) {
        self.commands.push(line.to_owned());
        if !self.responds {
            return;
        }
        if line.contains("E0") {
            self.echo = false;
        }
        if line == "ATA" {
            let r = self.answer_result;
            self.result(r);
        } else if line.starts_with("ATD") {
            let r = self.dial_result;
            self.result(r);
        } else if line.starts_with("ATH") {
            self.dcd = false;
            self.online = false;
            self.say("OK");
        } else if line.starts_with("AT") {
            self.say("OK");
        } else {
            self.say("ERROR");
        }
    }

    fn result(&mut self, r: &str) {
        if r.is_empty() {
            return;
        }
        if r.starts_with("CONNECT") {
            self.dcd = true;
            self.online = true;
        }
        self.say(r);
    }

    fn dtr(&mut self, on: bool) {
        if !on && self.honours_dtr && self.dcd {
            self.dcd = false;
            self.online = false;
            self.say("NO CARRIER");
        }
    }
}

struct Harness {
    m: Answerer,
    modem: FakeHayes,
    lines: FakeLines,
    base: Instant,
    now: Instant,
    events: Vec<(Duration, Event)>,
    leftover: Vec<u8>,
}

impl Harness {
    fn new(cfg: Config, modem: FakeHayes) -> Self {
        let base = Instant::now();
        let mut modem = modem;
        modem.script.make_contiguous().sort_by_key(|(d, _)| *d);
        let mut h = Self {
            m: Answerer::new(cfg),
            modem,
            lines: FakeLines::new(),
            base,
            now: base,
            events: Vec::new(),
            leftover: Vec::new(),
        };
        h.m.start(base);
        h.pump();
        h
    }

    fn t(&self) -> Duration {
        self.now - self.base
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut progress = false;
            while let Some(a) = self.m.poll_action() {
                apply_action(&mut self.lines, &a).unwrap();
                if let Action::SetDtr(on) = a {
                    self.modem.dtr(on);
                }
                progress = true;
            }
            while let Some(tx) = self.m.poll_transmit() {
                let at = self.t();
                self.modem.receive(at, &tx);
                progress = true;
            }
            if self.modem.dcd != self.lines.input.dcd {
                self.lines.input.dcd = self.modem.dcd;
                self.m.carrier_changed(self.now, self.modem.dcd);
                progress = true;
            }
            let out = std::mem::take(&mut self.modem.out);
            if !out.is_empty() {
                let used = self.m.handle_input(self.now, &out);
                assert!(used <= out.len());
                self.leftover.extend_from_slice(&out[used..]);
                progress = true;
            }
            while let Some(e) = self.m.poll_event() {
                let at = self.t();
                self.events.push((at, e));
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advance the virtual clock to `base + until`, firing timers and the
    /// modem script in order.
    fn run_until(&mut self, until: Duration) {
        let target = self.base + until;
        for _ in 0..100_000 {
            self.pump();
            let script_next = self.modem.script.front().map(|(d, _)| self.base + *d);
            let next = [self.m.poll_timeout(), script_next]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= target => {
                    self.now = self.now.max(n);
                    while let Some((d, _)) = self.modem.script.front() {
                        if self.base + *d > self.now {
                            break;
                        }
                        let (_, step) = self.modem.script.pop_front().unwrap();
                        match step {
                            Step::Say(s) => self.modem.say(s),
                            Step::RemoteHangUp => {
                                self.modem.dcd = false;
                                self.modem.online = false;
                                self.modem.say("NO CARRIER");
                            }
                        }
                    }
                    self.m.handle_timeout(self.now);
                }
                _ => {
                    self.now = target;
                    self.pump();
                    return;
                }
            }
        }
        panic!("run_until did not finish");
    }

    fn events(&self) -> Vec<Event> {
        self.events.iter().map(|(_, e)| e.clone()).collect()
    }

    fn count_cmd(&self, c: &str) -> usize {
        self.modem.commands.iter().filter(|x| *x == c).count()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cfg_ring2() -> Config {
    Config {
        answer_on_ring: 2,
        ..Config::default()
    }
}

fn connect_33600() -> Event {
    Event::Connected {
        speed: Some(33600),
        protocol: Some("V42".into()),
        outgoing: false,
    }
}

/// Harness connected on the second RING at t=13 s.
fn connected_harness(modem: FakeHayes) -> Harness {
    let mut modem = modem;
    modem.script.push_back((secs(10), Step::Say("RING")));
    modem.script.push_back((secs(13), Step::Say("RING")));
    let mut h = Harness::new(cfg_ring2(), modem);
    h.run_until(secs(20));
    assert_eq!(h.m.state(), State::Connected, "{:?}", h.events);
    h
}

#[test]
fn answers_on_second_ring_and_parses_connect() {
    let h = connected_harness(FakeHayes::new());
    assert_eq!(
        h.events(),
        vec![
            Event::Ready,
            Event::Ring { count: 1 },
            Event::Ring { count: 2 },
            Event::Answering { rings: 2 },
            connect_33600(),
        ]
    );
    assert_eq!(h.modem.commands, vec!["ATZ", "ATE0V1&C1&D2S0=0", "ATA"]);
    // ATA went out only after the second RING.
    let ata = h
        .modem
        .received
        .iter()
        .find(|(_, b)| b == b"ATA\r")
        .unwrap();
    assert_eq!(ata.0, secs(13));
    assert!(h.lines.dtr && h.lines.rts);
}

#[test]
fn carrier_lost_while_connected_rearms() {
    let mut modem = FakeHayes::new();
    modem.script.push_back((secs(30), Step::RemoteHangUp));
    modem.script.push_back((secs(40), Step::Say("RING")));
    modem.script.push_back((secs(42), Step::Say("RING")));
    let mut h = connected_harness(modem);
    h.run_until(secs(35));
    let ev = h.events();
    let lost = ev.iter().position(|e| *e == Event::CarrierLost).unwrap();
    assert_eq!(
        ev[lost..],
        [
            Event::CarrierLost,
            Event::HungUp {
                method: HangUpMethod::Dtr
            },
            Event::Ready,
        ]
    );
    // Re-armed within a second of the carrier loss.
    let ready_at = h.events.last().unwrap().0;
    assert!(ready_at < secs(31), "{ready_at:?}");
    assert!(h.lines.history.contains(&("DTR", false)));
    assert!(h.lines.dtr);
    assert_eq!(h.m.state(), State::Idle);
    // And the line takes the next call.
    h.run_until(secs(50));
    assert_eq!(h.m.state(), State::Connected);
    assert_eq!(h.events().last(), Some(&connect_33600()));
}

#[test]
fn modem_that_never_answers_ok_backs_off_and_is_bounded() {
    let mut modem = FakeHayes::new();
    modem.responds = false;
    let cfg = Config {
        command_timeout: secs(2),
        init_backoff: secs(1),
        init_backoff_max: secs(4),
        init_max_attempts: 4,
        init_failed_retry: secs(60),
        ..Config::default()
    };
    let mut h = Harness::new(cfg, modem);
    h.run_until(secs(50));
    let reason = InitFailure::NoResponse {
        command: "ATZ".into(),
    };
    assert!(reason.to_string().contains("did not answer OK to ATZ"));
    let at = |s: u64| h.base + secs(s);
    // Attempts at 0, 3, 7, 13: timeout 2 s, back-off 1, 2, 4 (capped at 4).
    assert_eq!(
        h.events(),
        vec![
            Event::InitAttemptFailed {
                reason: reason.clone(),
                attempt: 1,
                retry_at: at(3)
            },
            Event::InitAttemptFailed {
                reason: reason.clone(),
                attempt: 2,
                retry_at: at(7)
            },
            Event::InitAttemptFailed {
                reason: reason.clone(),
                attempt: 3,
                retry_at: at(13)
            },
            Event::InitFailed {
                reason: reason.clone(),
                attempts: 4,
                retry_at: at(75)
            },
        ]
    );
    assert_eq!(
        h.count_cmd("ATZ"),
        4,
        "bounded: no attempts while out of service"
    );
    assert_eq!(h.m.state(), State::InitBackoff);
    assert_eq!(h.m.poll_timeout(), Some(at(75)));
    // A new round starts at the scheduled time; once the modem recovers the
    // line becomes ready.
    h.modem.responds = true;
    h.run_until(secs(80));
    assert_eq!(h.events().last(), Some(&Event::Ready));
    assert_eq!(h.m.state(), State::Idle);
}

#[test]
fn init_error_is_reported_as_rejected() {
    let cfg = Config {
        init_commands: vec!["ATZ".into(), "BOGUS".into()],
        init_max_attempts: 1,
        ..Config::default()
    };
    let mut h = Harness::new(cfg, FakeHayes::new());
    h.run_until(secs(1));
    match &h.events()[..] {
        [Event::InitFailed { reason, .. }] => {
            assert_eq!(
                *reason,
                InitFailure::Rejected {
                    command: "BOGUS".into(),
                    response: modem::Response::Error
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dtr_hang_up() {
    let mut h = connected_harness(FakeHayes::new());
    let n = h.events.len();
    h.m.hang_up(h.now);
    h.pump();
    assert!(!h.lines.dtr);
    h.run_until(secs(25));
    assert_eq!(
        h.events()[n..],
        [
            Event::HungUp {
                method: HangUpMethod::Dtr
            },
            Event::Ready
        ]
    );
    assert!(!h.modem.received.iter().any(|(_, b)| b == b"+++"));
    assert!(h.lines.dtr, "DTR raised again");
    assert!(!h.modem.dcd);
}

#[test]
fn escape_and_ath_when_carrier_stays() {
    let mut modem = FakeHayes::new();
    modem.honours_dtr = false;
    let mut h = connected_harness(modem);
    let n = h.events.len();
    let start = h.t();
    h.m.hang_up(h.now);
    h.run_until(secs(30));
    assert_eq!(
        h.events()[n..],
        [
            Event::HungUp {
                method: HangUpMethod::Escape { confirmed: true }
            },
            Event::Ready
        ]
    );
    let guard = Config::default().guard_time;
    let plus = h
        .modem
        .received
        .iter()
        .position(|(_, b)| b == b"+++")
        .unwrap();
    let (plus_at, _) = h.modem.received[plus];
    let (ath_at, ath) = &h.modem.received[plus + 1];
    assert_eq!(ath, b"ATH\r");
    // Guard time of silence before and after the escape.
    let before = h.modem.received[plus - 1].0;
    assert!(plus_at - before >= guard && plus_at - start >= guard);
    assert!(*ath_at - plus_at >= guard);
    assert!(!h.modem.dcd);
    assert_eq!(h.count_cmd("ATZ"), 2, "re-initialised");
}

#[test]
fn escape_without_ath_answer_still_reinits() {
    let mut modem = FakeHayes::new();
    modem.honours_dtr = false;
    let mut h = connected_harness(modem);
    h.modem.responds = false; // stops answering commands (but +++ gets OK)
    let n = h.events.len();
    h.m.hang_up(h.now);
    h.run_until(secs(30));
    assert_eq!(
        h.events()[n],
        Event::HungUp {
            method: HangUpMethod::Escape { confirmed: false }
        }
    );
    assert!(
        matches!(h.m.state(), State::Initialising | State::InitBackoff),
        "{:?}",
        h.m.state()
    );
    assert!(h.count_cmd("ATZ") >= 2, "re-init attempted");
}

#[test]
fn no_carrier_during_answer_goes_idle() {
    let mut modem = FakeHayes::new();
    modem.answer_result = "NO CARRIER";
    modem.script.push_back((secs(5), Step::Say("RING")));
    let mut h = Harness::new(Config::default(), modem);
    h.run_until(secs(10));
    assert_eq!(
        h.events().last(),
        Some(&Event::CallFailed {
            reason: AnswerFailure::NoCarrier
        })
    );
    assert_eq!(h.m.state(), State::Idle);
}

#[test]
fn connect_timeout_hangs_up() {
    let mut modem = FakeHayes::new();
    modem.answer_result = "";
    modem.script.push_back((secs(5), Step::Say("RING")));
    let cfg = Config {
        connect_timeout: secs(30),
        ..Config::default()
    };
    let mut h = Harness::new(cfg, modem);
    h.run_until(secs(40));
    let ev = h.events();
    let i = ev
        .iter()
        .position(|e| {
            *e == Event::CallFailed {
                reason: AnswerFailure::Timeout,
            }
        })
        .unwrap();
    assert_eq!(h.events[i].0, secs(35));
    assert_eq!(
        ev[i + 1..],
        [
            Event::HungUp {
                method: HangUpMethod::Dtr
            },
            Event::Ready
        ]
    );
}

#[test]
fn auto_answer_waits_for_connect() {
    let mut modem = FakeHayes::new();
    modem.script.push_back((secs(5), Step::Say("RING")));
    modem.script.push_back((secs(8), Step::Say("RING")));
    modem
        .script
        .push_back((secs(20), Step::Say("CONNECT 2400")));
    let cfg = Config {
        answer_on_ring: 0,
        ..Config::default()
    };
    let mut h = Harness::new(cfg, modem);
    h.run_until(secs(25));
    assert_eq!(h.count_cmd("ATA"), 0);
    assert_eq!(
        h.events().last(),
        Some(&Event::Connected {
            speed: Some(2400),
            protocol: None,
            outgoing: false
        })
    );
}

#[test]
fn ring_count_resets_after_silence() {
    let mut modem = FakeHayes::new();
    modem.script.push_back((secs(5), Step::Say("RING")));
    modem.script.push_back((secs(30), Step::Say("RING")));
    let mut h = Harness::new(cfg_ring2(), modem);
    h.run_until(secs(35));
    assert_eq!(h.count_cmd("ATA"), 0);
    assert_eq!(h.events().last(), Some(&Event::Ring { count: 1 }));
}

#[test]
fn dial_for_callback() {
    let mut h = Harness::new(Config::default(), FakeHayes::new());
    h.run_until(secs(1));
    assert!(matches!(
        h.m.dial(h.now, "555;ATH"),
        Err(DialError::BadNumber(_))
    ));
    assert!(matches!(h.m.dial(h.now, ""), Err(DialError::BadNumber(_))));
    h.m.dial(h.now, "9W555*12#,P@T").unwrap();
    assert_eq!(
        h.m.dial(h.now, "1"),
        Err(DialError::NotIdle(State::Connecting))
    );
    h.run_until(secs(2));
    assert_eq!(h.modem.commands.last().unwrap(), "ATDT9W555*12#,P@T");
    assert_eq!(
        h.events().last(),
        Some(&Event::Connected {
            speed: Some(115_200),
            protocol: Some("ARQ/V90".into()),
            outgoing: true
        })
    );
}

#[test]
fn data_after_connect_is_left_for_the_call() {
    let mut m = Answerer::new(Config {
        init_commands: vec![],
        answer_on_ring: 0,
        ..Config::default()
    });
    let now = Instant::now();
    m.start(now);
    let input = b"\r\nCONNECT 33600/V42\r\nlogin: ";
    let used = m.handle_input(now, input);
    assert_eq!(&input[used..], b"login: ");
    assert_eq!(m.state(), State::Connected);
    assert_eq!(m.handle_input(now, b"more"), 0);
    assert!(!m.connect_lf_pending(), "the LF came with the CONNECT line");
}

#[test]
fn a_connect_line_split_before_its_lf_leaves_the_lf_to_drop() {
    let mk = || {
        let mut m = Answerer::new(Config {
            init_commands: vec![],
            answer_on_ring: 0,
            ..Config::default()
        });
        m.start(Instant::now());
        m
    };
    let now = Instant::now();
    // The LF in the next chunk handed to the machine: consumed.
    let mut m = mk();
    assert_eq!(m.handle_input(now, b"\r\nCONNECT 2400\r"), 15);
    assert_eq!(m.handle_input(now, b"\nUser"), 1);
    assert!(!m.connect_lf_pending());
    // The LF read by the call instead: the driver is told to drop it, once.
    let mut m = mk();
    m.handle_input(now, b"\r\nCONNECT 2400\r");
    assert_eq!(m.state(), State::Connected);
    assert!(m.connect_lf_pending());
    assert!(!m.connect_lf_pending());
    // A CONNECT line ended by LF alone owes nothing.
    let mut m = mk();
    m.handle_input(now, b"CONNECT 2400\n");
    assert!(!m.connect_lf_pending());
}

#[test]
fn dial_string_validation() {
    assert!(modem::validate_number("0123456789*#,WwPpTt@").is_ok());
    assert!(modem::validate_number(&"1".repeat(modem::MAX_NUMBER)).is_ok());
    assert!(modem::validate_number(&"1".repeat(modem::MAX_NUMBER + 1)).is_err());
    for bad in ["", "12;H", "12\r", "ATH", "1 2", "+++"] {
        assert!(modem::validate_number(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn stopped_machine_is_inert() {
    let mut m = Answerer::new(Config::default());
    let now = Instant::now();
    m.hang_up(now);
    m.handle_timeout(now + secs(100));
    let input = b"RING\r\nCONNECT 9600\r\n";
    assert_eq!(m.handle_input(now, input), input.len());
    assert_eq!(m.state(), State::Stopped);
    assert!(m.poll_action().is_none() && m.poll_transmit().is_none() && m.poll_event().is_none());
}

#[test]
fn late_carrier_drop_skips_the_escape() {
    let cfg = Config {
        init_commands: vec![],
        answer_on_ring: 0,
        ..Config::default()
    };
    let dtr_drop = cfg.dtr_drop;
    let mut m = Answerer::new(cfg);
    let now = Instant::now();
    m.start(now);
    m.handle_input(now, b"CONNECT 9600\r");
    assert_eq!(m.state(), State::Connected);
    assert!(m.carrier(), "carrier assumed up on CONNECT");
    while m.poll_event().is_some() {}
    m.hang_up(now);
    m.handle_timeout(now + dtr_drop);
    assert_eq!(m.state(), State::HangingUp);
    m.carrier_changed(now + dtr_drop, false);
    assert_eq!(
        m.poll_event(),
        Some(Event::HungUp {
            method: HangUpMethod::Dtr
        })
    );
    assert_eq!(m.poll_event(), Some(Event::Ready));
    while let Some(tx) = m.poll_transmit() {
        assert_ne!(tx, b"+++");
    }
}

#[test]
fn start_with_hang_up_drops_dtr_before_init_and_escapes_a_modem_left_online() {
    let cfg = Config {
        dtr_drop: Duration::from_millis(500),
        guard_time: Duration::from_secs(1),
        ..Config::default()
    };
    // A modem that went offline with DTR: straight to init afterwards.
    let t0 = Instant::now();
    let mut m = Answerer::new(cfg.clone());
    m.start_with_hang_up(t0);
    assert_eq!(m.poll_action(), Some(Action::SetRts(true)));
    assert_eq!(m.poll_action(), Some(Action::SetDtr(false)));
    assert_eq!(m.poll_transmit(), None, "nothing sent while DTR is low");
    assert_eq!(m.state(), State::HangingUp);
    m.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(m.poll_action(), Some(Action::SetDtr(true)));
    assert_eq!(m.poll_transmit(), Some(b"ATZ\r".to_vec()));
    assert_eq!(m.state(), State::Initialising);

    // A modem that keeps its carrier (ignores DTR): escape, ATH, then init.
    let mut m = Answerer::new(cfg);
    m.start_with_hang_up(t0);
    m.carrier_changed(t0 + Duration::from_millis(100), true);
    m.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(m.poll_transmit(), None, "guard time before +++");
    m.handle_timeout(t0 + Duration::from_millis(1500));
    assert_eq!(m.poll_transmit(), Some(b"+++".to_vec()));
    // The modem's OK to +++ comes a guard time later, maybe a little late:
    // it is not taken for ATH's answer, ATH waits another half guard time.
    m.handle_input(t0 + Duration::from_millis(2600), b"\r\nOK\r\n");
    m.handle_timeout(t0 + Duration::from_millis(2600));
    assert_eq!(m.poll_transmit(), None);
    m.handle_timeout(t0 + Duration::from_millis(3000));
    assert_eq!(m.poll_transmit(), Some(b"ATH\r".to_vec()));
    assert_eq!(m.state(), State::HangingUp, "waiting for ATH's own OK");
    m.carrier_changed(t0 + Duration::from_millis(3050), false);
    m.handle_input(t0 + Duration::from_millis(3100), b"\r\nOK\r\n");
    assert_eq!(m.poll_transmit(), Some(b"ATZ\r".to_vec()));
}

#[test]
fn a_command_queued_before_connect_is_not_sent_into_the_call() {
    let mut m = Answerer::new(Config {
        init_commands: vec![],
        answer_on_ring: 2,
        ..Config::default()
    });
    let now = Instant::now();
    m.start(now);
    while m.poll_transmit().is_some() {}
    // A modem left auto-answering: RING, RING and its CONNECT in one read.
    let input = b"\r\nRING\r\n\r\nRING\r\n\r\nCONNECT 2400\r\nhello";
    let used = m.handle_input(now, input);
    assert_eq!(&input[used..], b"hello");
    assert_eq!(m.state(), State::Connected);
    assert_eq!(m.poll_transmit(), None, "no ATA into the call");
}
