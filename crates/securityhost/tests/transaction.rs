//! One test per rule of spec sections 2, 4 and 5, on a virtual clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use securityhost::consts::*;
use securityhost::*;

const H: HPort = HPort(0x42);

type Log = Arc<Mutex<Vec<ReceiveCompletion>>>;

fn cfg() -> Config {
    Config {
        send_buffer_size: 16,
        recv_buffer_size: 8,
        backlog_max: 32,
        transmit_max: 64,
        dialog_time_limit: Duration::from_secs(60),
        grace: Duration::from_secs(5),
    }
}

struct T {
    tx: Transaction,
    t0: Instant,
    log: Log,
}

impl T {
    fn new() -> T {
        let t0 = Instant::now();
        T {
            tx: Transaction::new(H, cfg(), "tcp 127.0.0.1:5000", t0),
            t0,
            log: Arc::default(),
        }
    }
    fn at(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }
    fn begun() -> T {
        let mut t = T::new();
        let now = t.at(0);
        t.tx.begin_returned(0, now);
        t
    }
    fn event(&self) -> ReceiveEvent {
        let log = self.log.clone();
        Box::new(move |c| log.lock().unwrap().push(c))
    }
    fn receive(&mut self, room: usize, timeout: u32, s: u64) -> u32 {
        let ev = self.event();
        let now = self.at(s);
        self.tx.receive(H, room, timeout, ev, now)
    }
    /// Fires completions and returns what they delivered.
    fn fire(&mut self) -> Vec<ReceiveCompletion> {
        for (ev, c) in self.tx.take_completions() {
            ev(c);
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.tx.poll_action()).collect()
    }
}

fn success(user: &str) -> SecurityMessage {
    SecurityMessage::success(H, user, "").unwrap()
}

// ---- section 2: one transaction -----------------------------------------

#[test]
fn begin_nonzero_hangs_up_without_end() {
    let mut t = T::new();
    let now = t.at(0);
    t.tx.begin_returned(31, now);
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::BeginFailed(31))]
    );
    assert!(t.tx.is_finished());
}

#[test]
fn success_calls_end_then_finishes_with_the_verdict() {
    let mut t = T::begun();
    assert_eq!(t.tx.complete(&success("alice"), t.at(1)), NO_ERROR);
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    assert!(!t.tx.is_finished());
    t.tx.end_returned(0, t.at(1));
    let a = t.actions();
    assert_eq!(a.len(), 1);
    match &a[0] {
        Action::Finished(o) => assert_eq!(o.granted(), Some(("alice", ""))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_complete_the_transaction_is_over_whatever_end_returns() {
    for end_code in [0, 1, 600] {
        let mut t = T::begun();
        t.tx.complete(&SecurityMessage::failure(H, "bob", "D").unwrap(), t.at(1));
        t.actions();
        t.tx.end_returned(end_code, t.at(1));
        assert_eq!(
            t.actions(),
            vec![Action::Finished(Outcome::Verdict(Verdict::Failure {
                user: "bob".into(),
                domain: "D".into()
            }))]
        );
    }
}

#[test]
fn complete_inside_begin_is_acted_on_when_begin_returns() {
    let mut t = T::new();
    assert_eq!(
        t.tx.complete(&SecurityMessage::error(H, 9), t.at(0)),
        NO_ERROR
    );
    assert!(t.actions().is_empty(), "nothing before Begin returns");
    t.tx.begin_returned(0, t.at(0));
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.end_returned(0, t.at(0));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Verdict(Verdict::Error {
            code: 9
        }))]
    );
}

/// Spec section 2.5: End must return. A SUCCESS whose End never returns
/// does not stand (issue 12, hole 9).
#[test]
fn hole_9_end_that_never_returns_after_success_is_a_defect_not_a_grant() {
    let mut t = T::begun();
    t.tx.complete(&success("alice"), t.at(1));
    t.actions();
    assert_eq!(t.tx.poll_timeout(), Some(t.at(6)));
    t.tx.handle_timeout(t.at(6));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Defect(Defect::EndHung))]
    );
}

/// Issue 12, hole 9: the module broke (its worker died, its End panicked)
/// after a SUCCESS and before End returned: no grant, a module defect.
#[test]
fn hole_9_a_defect_before_end_returned_withdraws_the_success() {
    let mut t = T::begun();
    t.tx.complete(&success("alice"), t.at(1));
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    let died = Defect::Other("module worker died: SIGABRT".into());
    t.tx.module_defect(died.clone());
    assert_eq!(t.actions(), vec![Action::Finished(Outcome::Defect(died))]);
    // End's late return changes nothing.
    t.tx.end_returned(0, t.at(2));
    assert!(t.actions().is_empty());

    // Once End has returned, the verdict stands.
    let mut t = T::begun();
    t.tx.complete(&success("alice"), t.at(1));
    t.actions();
    t.tx.end_returned(0, t.at(2));
    let a = t.actions();
    assert!(
        matches!(
            &a[..],
            [Action::Finished(Outcome::Verdict(Verdict::Success { .. }))]
        ),
        "{a:?}"
    );
    t.tx.module_defect(Defect::Other("died later".into()));
    assert!(t.actions().is_empty());
}

// ---- aborts: hang-up, time limit, shutdown, grace -----------------------

#[test]
fn hangup_completes_pending_receive_with_619_then_calls_end() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 1), PENDING);
    t.tx.caller_hung_up(t.at(2));
    let c = t.fire();
    assert_eq!(
        c,
        vec![ReceiveCompletion {
            last_error: 619,
            data: vec![]
        }]
    );
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.end_returned(1, t.at(2));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: None
        })]
    );
}

#[test]
fn end_returning_zero_waits_the_grace_period_for_complete() {
    let mut t = T::begun();
    t.tx.caller_hung_up(t.at(1));
    t.actions();
    t.tx.end_returned(0, t.at(1));
    assert!(t.actions().is_empty());
    assert_eq!(t.tx.poll_timeout(), Some(t.at(6)));
    t.tx.handle_timeout(t.at(5));
    assert!(t.actions().is_empty());
    t.tx.handle_timeout(t.at(6));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: None
        })]
    );
}

#[test]
fn a_late_success_after_an_abort_is_never_a_grant() {
    let mut t = T::begun();
    t.tx.abort(AbortCause::Shutdown, t.at(1));
    t.actions();
    t.tx.end_returned(0, t.at(1));
    t.tx.complete(&success("alice"), t.at(2));
    let a = t.actions();
    match &a[..] {
        [Action::Finished(o)] => {
            assert_eq!(o.granted(), None);
            assert!(matches!(
                o,
                Outcome::Aborted {
                    cause: AbortCause::Shutdown,
                    late: Some(Ok(Verdict::Success { .. }))
                }
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dialog_time_limit_aborts() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert_eq!(t.tx.poll_timeout(), Some(t.at(60)));
    t.tx.handle_timeout(t.at(59));
    assert!(t.actions().is_empty());
    t.tx.handle_timeout(t.at(60));
    assert_eq!(t.fire()[0].last_error, ERROR_PORT_DISCONNECTED);
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.end_returned(5, t.at(60));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::DialogTimedOut,
            late: None
        })]
    );
}

#[test]
fn end_that_never_returns_on_abort_finishes_after_grace() {
    let mut t = T::begun();
    t.tx.abort(AbortCause::PortDisabled, t.at(1));
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.handle_timeout(t.at(6));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::PortDisabled,
            late: None
        })]
    );
    assert_eq!(t.tx.defects(), &[Defect::EndHung]);
}

#[test]
fn hangup_during_begin_calls_end_after_begin_returns() {
    let mut t = T::new();
    t.tx.caller_hung_up(t.at(0));
    assert!(t.actions().is_empty());
    // Module completed inside Begin, but the caller is gone: no grant.
    t.tx.complete(&success("alice"), t.at(0));
    t.tx.begin_returned(0, t.at(0));
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.end_returned(0, t.at(0));
    let a = t.actions();
    assert!(matches!(
        &a[..],
        [Action::Finished(Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: Some(Ok(_))
        })]
    ));
}

#[test]
fn begin_that_never_returns_ends_at_the_limit_plus_grace() {
    let mut t = T::new();
    t.tx.handle_timeout(t.at(60));
    assert!(t.actions().is_empty());
    assert_eq!(t.tx.poll_timeout(), Some(t.at(65)));
    t.tx.handle_timeout(t.at(65));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::DialogTimedOut,
            late: None
        })]
    );
    assert_eq!(t.tx.defects(), &[Defect::BeginHung]);
}

// ---- section 4: Send ----------------------------------------------------

#[test]
fn send_copies_and_returns_pending() {
    let mut t = T::begun();
    let mut buf = b"Username: ".to_vec();
    assert_eq!(t.tx.send(H, &buf, t.at(0)), PENDING);
    buf.fill(0); // the buffer is free again at once
    assert_eq!(t.tx.poll_transmit().unwrap(), b"Username: ");
    assert_eq!(t.tx.poll_transmit(), None);
}

#[test]
fn send_errors() {
    let mut t = T::begun();
    assert_eq!(
        t.tx.send(HPort(1), b"x", t.at(0)),
        ERROR_INVALID_PORT_HANDLE
    );
    assert_eq!(t.tx.send(H, &[0; 17], t.at(0)), ERROR_BUFFER_TOO_SMALL);
    assert_eq!(t.tx.send(H, &[0; 16], t.at(0)), PENDING);
    t.tx.caller_hung_up(t.at(0));
    assert_eq!(t.tx.send(H, b"x", t.at(0)), ERROR_PORT_DISCONNECTED);
}

#[test]
fn send_error_shows_on_next_receive_and_get_info() {
    let mut t = T::begun();
    assert_eq!(t.tx.send(H, b"hello", t.at(0)), PENDING);
    t.tx.poll_transmit();
    t.tx.transmit_failed(t.at(0));
    assert_eq!(
        t.tx.get_info(H).unwrap().last_error,
        ERROR_PORT_DISCONNECTED
    );
    assert_eq!(t.receive(4, 0, 0), ERROR_PORT_DISCONNECTED);
}

#[test]
fn a_module_flooding_a_caller_that_does_not_read_is_cut_off() {
    let mut t = T::begun();
    for _ in 0..4 {
        assert_eq!(t.tx.send(H, &[b'x'; 16], t.at(0)), PENDING);
    }
    assert_eq!(t.tx.send(H, b"y", t.at(0)), ERROR_PORT_DISCONNECTED);
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    assert!(matches!(t.tx.defects(), [Defect::Other(_)]));
}

// ---- section 4: Receive -------------------------------------------------

#[test]
fn receive_completes_with_available_bytes_at_least_one() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert!(t.fire().is_empty(), "no bytes, no completion");
    assert_eq!(t.tx.get_info(H).unwrap().last_error, PENDING);
    t.tx.caller_input(b"a");
    assert_eq!(
        t.fire(),
        vec![ReceiveCompletion {
            last_error: 0,
            data: b"a".to_vec()
        }]
    );
    let info = t.tx.get_info(H).unwrap();
    assert_eq!((info.last_error, info.bytes_received), (0, 1));
    assert_eq!(info.device_name, "tcp 127.0.0.1:5000");
}

#[test]
fn bytes_that_do_not_fit_stay_queued_for_the_next_receive() {
    let mut t = T::begun();
    t.tx.caller_input(b"0123456789");
    assert_eq!(t.receive(4, 0, 0), PENDING);
    assert_eq!(t.fire()[0].data, b"0123");
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert_eq!(t.fire()[0].data, b"456789");
}

#[test]
fn receive_timeout_is_638_with_no_bytes() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 3, 10), PENDING);
    assert_eq!(t.tx.poll_timeout(), Some(t.at(13)));
    t.tx.handle_timeout(t.at(12));
    assert!(t.fire().is_empty());
    t.tx.handle_timeout(t.at(13));
    assert_eq!(
        t.fire(),
        vec![ReceiveCompletion {
            last_error: 638,
            data: vec![]
        }]
    );
    let info = t.tx.get_info(H).unwrap();
    assert_eq!((info.last_error, info.bytes_received), (638, 0));
    // The dialog goes on: a new Receive may be made.
    assert_eq!(t.receive(8, 0, 13), PENDING);
}

#[test]
fn receive_with_zero_timeout_never_times_out() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert_eq!(t.tx.poll_timeout(), Some(t.at(60)), "only the dialog limit");
}

#[test]
fn receive_errors() {
    let mut t = T::begun();
    assert_eq!(t.receive(0, 0, 0), ERROR_INVALID_PARAMETER);
    assert_eq!(t.receive(9, 0, 0), ERROR_BUFFER_TOO_SMALL);
    let ev = t.event();
    assert_eq!(
        t.tx.receive(HPort(3), 1, 0, ev, t.at(0)),
        ERROR_INVALID_PORT_HANDLE
    );
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert_eq!(t.receive(8, 0, 0), ERROR_ASYNC_REQUEST_PENDING);
    assert!(
        t.fire().is_empty(),
        "failed Receives never signal their event"
    );
}

#[test]
fn receive_after_hangup_is_619() {
    let mut t = T::begun();
    t.tx.caller_hung_up(t.at(0));
    assert_eq!(t.receive(8, 0, 0), ERROR_PORT_DISCONNECTED);
}

#[test]
fn complete_drops_a_pending_receive_without_its_event() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 0), PENDING);
    t.tx.complete(&success("alice"), t.at(0));
    t.tx.caller_input(b"late");
    assert!(t.fire().is_empty());
    assert_eq!(t.receive(8, 0, 0), ERROR_INVALID_PORT_HANDLE);
    assert_eq!(t.tx.send(H, b"x", t.at(0)), ERROR_INVALID_PORT_HANDLE);
    // The unread bytes go on to what follows the dialog.
    assert_eq!(t.tx.take_backlog(), b"late");
}

#[test]
fn backlog_is_capped_by_input_room() {
    let mut t = T::begun();
    assert_eq!(t.tx.input_room(), 32);
    t.tx.caller_input(&[b'x'; 30]);
    assert_eq!(t.tx.input_room(), 2);
    t.tx.caller_input(&[b'x'; 2]);
    assert_eq!(t.tx.input_room(), 0);
    assert_eq!(t.receive(8, 0, 0), PENDING);
    t.fire();
    assert_eq!(t.tx.input_room(), 8);
}

#[test]
fn ppp_frames_during_the_dialog_are_only_dialog_bytes() {
    let mut t = T::begun();
    let lcp = [
        0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04, 0x7e,
    ];
    t.tx.caller_input(&lcp);
    assert_eq!(t.receive(8, 0, 0), PENDING);
    assert_eq!(t.fire()[0].data, &lcp[..8]);
    assert!(t.actions().is_empty(), "no verdict from bytes alone");
}

// ---- section 4: Complete validation -------------------------------------

#[test]
fn invalid_complete_is_a_defect_never_a_grant() {
    let mut m = success("alice");
    m.msg_id = 7;
    let mut t = T::begun();
    assert_eq!(t.tx.complete(&m, t.at(0)), ERROR_INVALID_PARAMETER);
    assert_eq!(t.actions(), vec![Action::CallEnd]);
    t.tx.end_returned(0, t.at(0));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Defect(Defect::BadMsgId(7)))]
    );
}

#[test]
fn second_complete_is_ignored_and_logged() {
    let mut t = T::begun();
    t.tx.complete(&SecurityMessage::failure(H, "bob", "").unwrap(), t.at(0));
    assert_eq!(
        t.tx.complete(&success("bob"), t.at(0)),
        ERROR_INVALID_PARAMETER
    );
    t.tx.end_returned(0, t.at(0));
    let a = t.actions();
    assert!(matches!(
        &a[..],
        [
            Action::CallEnd,
            Action::Finished(Outcome::Verdict(Verdict::Failure { .. }))
        ]
    ));
    assert_eq!(t.tx.defects(), &[Defect::SecondComplete]);
}

/// Issue 12 (no unbounded queue): a module that calls Complete in a loop,
/// before and after its transaction ended, cannot grow the defect list
/// (server memory, and the event-log record it becomes) without bound; the
/// last entry counts what was not recorded.
#[test]
fn defects_beside_the_outcome_are_bounded() {
    let mut t = T::begun();
    t.tx.complete(&success("bob"), t.at(0));
    for _ in 0..50_000 {
        t.tx.complete(&success("bob"), t.at(0));
    }
    t.tx.end_returned(0, t.at(0));
    assert!(matches!(
        &t.actions()[..],
        [
            Action::CallEnd,
            Action::Finished(Outcome::Verdict(Verdict::Success { .. }))
        ]
    ));
    for _ in 0..50_000 {
        t.tx.complete(&success("bob"), t.at(1));
        t.tx.module_defect(Defect::Other("later".into()));
    }
    let d = t.tx.defects();
    assert_eq!(d.len(), MAX_DEFECTS, "{} defects kept", d.len());
    assert_eq!(d[0], Defect::SecondComplete);
    let dropped = 50_000 + 2 * 50_000 - (MAX_DEFECTS - 1);
    assert_eq!(
        d[MAX_DEFECTS - 1],
        Defect::Other(format!("{dropped} more defects not recorded"))
    );
}

#[test]
fn complete_with_another_handle_is_a_defect() {
    let mut t = T::begun();
    let m = SecurityMessage::success(HPort(99), "alice", "").unwrap();
    t.tx.complete(&m, t.at(0));
    t.tx.end_returned(0, t.at(0));
    let a = t.actions();
    assert!(matches!(
        &a[..],
        [
            Action::CallEnd,
            Action::Finished(Outcome::Defect(Defect::WrongPort { .. }))
        ]
    ));
}

#[test]
fn get_info_with_a_wrong_handle_is_601() {
    let t = T::begun();
    assert_eq!(t.tx.get_info(HPort(5)), Err(ERROR_INVALID_PORT_HANDLE));
}

#[test]
fn check_buffer_range_rules() {
    let buf = 0x1000;
    assert_eq!(check_buffer_range(buf, 100, buf, 100), Ok(0));
    assert_eq!(check_buffer_range(buf, 100, buf + 10, 90), Ok(10));
    assert_eq!(
        check_buffer_range(buf, 100, buf + 10, 91),
        Err(ERROR_BUFFER_TOO_SMALL)
    );
    assert_eq!(
        check_buffer_range(buf, 100, buf + 100, 0),
        Err(ERROR_INVALID_PARAMETER)
    );
    assert_eq!(
        check_buffer_range(buf, 100, buf - 1, 1),
        Err(ERROR_INVALID_PARAMETER)
    );
    assert_eq!(
        check_buffer_range(buf, 100, 0, 1),
        Err(ERROR_INVALID_PARAMETER)
    );
    assert_eq!(
        check_buffer_range(buf, 100, usize::MAX, 1),
        Err(ERROR_INVALID_PARAMETER)
    );
    assert_eq!(
        check_buffer_range(buf, 100, buf + 99, usize::MAX),
        Err(ERROR_BUFFER_TOO_SMALL)
    );
}

#[test]
fn a_module_crash_during_the_dialog_is_a_defect() {
    let mut t = T::begun();
    assert_eq!(t.receive(8, 0, 0), PENDING);
    t.tx.module_defect(Defect::Other("worker died: SIGSEGV".into()));
    assert!(t.fire().is_empty());
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Defect(Defect::Other(
            "worker died: SIGSEGV".into()
        )))]
    );
}

/// A crash after SUCCESS and before End returned withdraws the grant
/// (`hole_9_a_defect_before_end_returned_withdraws_the_success`); after a
/// denial the denial stands and the defect is noted.
#[test]
fn a_module_crash_after_failure_keeps_the_denial_and_notes_the_defect() {
    let mut t = T::begun();
    let msg = SecurityMessage::failure(H, "mallory", "").unwrap();
    t.tx.complete(&msg, t.at(0));
    t.actions();
    t.tx.module_defect(Defect::Other("End panicked".into()));
    let a = t.actions();
    assert!(
        matches!(
            &a[..],
            [Action::Finished(Outcome::Verdict(Verdict::Failure { .. }))]
        ),
        "{a:?}"
    );
    assert_eq!(t.tx.defects().len(), 1);
}

#[test]
fn a_module_crash_during_an_abort_keeps_the_cause() {
    let mut t = T::begun();
    t.tx.caller_hung_up(t.at(0));
    t.actions();
    t.tx.module_defect(Defect::Other("End panicked".into()));
    assert_eq!(
        t.actions(),
        vec![Action::Finished(Outcome::Aborted {
            cause: AbortCause::CallerHungUp,
            late: None
        })]
    );
}
