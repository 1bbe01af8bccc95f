//! Property: whatever a module and a caller do, in any order, the outcome is
//! a grant only when the first Complete was a valid SUCCESS that came before
//! any abort, End returned after it before any module defect was reported
//! (spec section 2.5), and every run ends within bounded time.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use securityhost::consts::*;
use securityhost::*;

const H: HPort = HPort(0x77);

#[derive(Clone, Debug)]
enum Op {
    BeginReturned(u32),
    EndReturned(u32),
    Input(Vec<u8>),
    HangUp,
    Shutdown,
    Tick(u64),
    Send(usize),
    Receive(usize, u32),
    CompleteValidSuccess,
    CompleteFailure,
    CompleteError(u32),
    CompleteGarbage(u32, u64, u32, u8),
    ModuleDefect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop_oneof![Just(0u32), 1u32..5].prop_map(Op::BeginReturned),
        prop_oneof![Just(0u32), 1u32..5].prop_map(Op::EndReturned),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Input),
        Just(Op::HangUp),
        Just(Op::Shutdown),
        (0u64..20).prop_map(Op::Tick),
        (0usize..40).prop_map(Op::Send),
        ((0usize..40), (0u32..4)).prop_map(|(r, t)| Op::Receive(r, t)),
        Just(Op::CompleteValidSuccess),
        Just(Op::CompleteFailure),
        (0u32..3).prop_map(Op::CompleteError),
        (
            any::<u32>(),
            prop_oneof![Just(0x77u64), any::<u64>()],
            any::<u32>(),
            any::<u8>()
        )
            .prop_map(|(a, b, c, d)| Op::CompleteGarbage(a, b, c, d)),
        Just(Op::ModuleDefect),
    ]
}

proptest! {
    #[test]
    fn never_a_grant_by_mistake(ops in proptest::collection::vec(op(), 0..60)) {
        let cfg = Config {
            send_buffer_size: 16,
            recv_buffer_size: 16,
            backlog_max: 64,
            transmit_max: 128,
            dialog_time_limit: Duration::from_secs(30),
            grace: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let mut now = t0;
        let mut tx = Transaction::new(H, cfg, "test", now);
        let mut first_complete_was_valid_success_before_abort: Option<bool> = None;
        let mut aborted = false;
        let mut outcome = None;
        let mut end_calls = 0;
        // After the first Complete: End returned before any module defect.
        let mut end_returned_after_complete = false;
        let mut defect_before_end_returned = false;
        let run = |tx: &mut Transaction, op: &Op, now: Instant| {
            match op {
                Op::BeginReturned(c) => tx.begin_returned(*c, now),
                Op::EndReturned(c) => tx.end_returned(*c, now),
                Op::Input(d) => { if tx.input_room() > 0 { tx.caller_input(d) } }
                Op::HangUp => tx.caller_hung_up(now),
                Op::Shutdown => tx.abort(AbortCause::Shutdown, now),
                Op::Tick(_) => tx.handle_timeout(now),
                Op::Send(n) => { tx.send(H, &vec![b'x'; *n], now); }
                Op::Receive(r, t) => { tx.receive(H, *r, *t, Box::new(|_| {}), now); }
                Op::CompleteValidSuccess => { tx.complete(&SecurityMessage::success(H, "alice", "").unwrap(), now); }
                Op::CompleteFailure => { tx.complete(&SecurityMessage::failure(H, "bob", "").unwrap(), now); }
                Op::CompleteError(c) => { tx.complete(&SecurityMessage::error(H, *c), now); }
                Op::CompleteGarbage(id, hp, err, fillb) => {
                    let mut m = SecurityMessage::zeroed(HPort(*hp));
                    m.msg_id = *id; m.error = *err;
                    m.user_name = [*fillb; UNLEN + 1];
                    tx.complete(&m, now);
                }
                Op::ModuleDefect => tx.module_defect(Defect::Other("worker died".into())),
            }
        };
        for op in &ops {
            if let Op::Tick(s) = op { now += Duration::from_secs(*s); }
            let was_finished = tx.is_finished();
            let complete_op = matches!(op, Op::CompleteValidSuccess | Op::CompleteFailure | Op::CompleteError(_) | Op::CompleteGarbage(..));
            if complete_op && first_complete_was_valid_success_before_abort.is_none() && !was_finished {
                first_complete_was_valid_success_before_abort = Some(matches!(op, Op::CompleteValidSuccess) && !aborted);
            }
            let aborting = matches!(op, Op::HangUp | Op::Shutdown)
                || (matches!(op, Op::Tick(_)) && now >= t0 + Duration::from_secs(30));
            if aborting && first_complete_was_valid_success_before_abort.is_none() {
                aborted = true;
            }
            if first_complete_was_valid_success_before_abort.is_some() && !was_finished {
                match op {
                    Op::EndReturned(_) if !defect_before_end_returned => end_returned_after_complete = true,
                    Op::ModuleDefect if !end_returned_after_complete => defect_before_end_returned = true,
                    _ => {}
                }
            }
            run(&mut tx, op, now);
            for _ in tx.take_completions() {}
            while let Some(a) = tx.poll_action() {
                match a {
                    Action::CallEnd => end_calls += 1,
                    Action::Finished(o) => { prop_assert!(outcome.is_none()); outcome = Some(o); }
                }
            }
        }
        // Drive to the end: End returns 0, time passes.
        for _ in 0..10 {
            if outcome.is_some() { break; }
            tx.begin_returned(0, now);
            tx.end_returned(0, now);
            now += Duration::from_secs(40);
            tx.handle_timeout(now);
            while let Some(a) = tx.poll_action() {
                match a {
                    Action::CallEnd => end_calls += 1,
                    Action::Finished(o) => { prop_assert!(outcome.is_none()); outcome = Some(o); }
                }
            }
        }
        let outcome = outcome.expect("every transaction ends");
        prop_assert!(end_calls <= 1, "End called at most once");
        if outcome.granted().is_some() {
            prop_assert_eq!(first_complete_was_valid_success_before_abort, Some(true));
            prop_assert!(!defect_before_end_returned, "a defect before End returned never grants");
        }
        prop_assert_eq!(tx.poll_timeout(), None);
    }
}
