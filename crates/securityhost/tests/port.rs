//! The shared port, the host functions bound to it, the handle table, and
//! the Dialog convenience, with module code on real threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use securityhost::consts::*;
use securityhost::*;

struct VirtualClock(Mutex<Instant>);
impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

fn port(table: &PortTable) -> (Arc<Port>, Arc<AtomicUsize>, Arc<VirtualClock>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let clock = Arc::new(VirtualClock(Mutex::new(Instant::now())));
    let p = Port::new(
        table.allocate(),
        Config::default(),
        "pty /dev/pts/9",
        clock.clone(),
        Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
    );
    table.insert(&p);
    (p, wakes, clock)
}

#[test]
fn handles_are_unique_nonzero_and_stale_after_removal() {
    let table = PortTable::new();
    let a = table.allocate();
    let b = table.allocate();
    assert_ne!(a, b);
    assert_ne!(a.0, 0);
    let (p, _, _) = port(&table);
    let h = p.hport();
    assert_eq!(table.send(h, b"hi"), PENDING);
    table.remove(h);
    assert_eq!(table.send(h, b"hi"), ERROR_INVALID_PORT_HANDLE);
    assert_eq!(table.get_info(h), Err(ERROR_INVALID_PORT_HANDLE));
    assert_eq!(
        table.complete(&SecurityMessage::success(h, "a", "").unwrap()),
        ERROR_INVALID_PORT_HANDLE
    );
}

#[test]
fn a_dropped_port_makes_its_bound_host_stale() {
    let table = PortTable::new();
    let (p, _, _) = port(&table);
    let h = p.hport();
    let host = p.host();
    drop(p);
    assert_eq!(host.send(h, b"x"), ERROR_INVALID_PORT_HANDLE);
    assert!(table.get(h).is_none());
}

#[test]
fn bound_host_refuses_other_handles_and_wakes_the_driver() {
    let table = PortTable::new();
    let (p, wakes, _) = port(&table);
    let host = p.host();
    assert_eq!(host.send(HPort(1), b"x"), ERROR_INVALID_PORT_HANDLE);
    assert_eq!(host.send(p.hport(), b"x"), PENDING);
    assert!(wakes.load(Ordering::SeqCst) >= 1);
    assert_eq!(p.with(|tx, _| tx.poll_transmit()), Some(b"x".to_vec()));
    // A Complete naming another handle is this transaction's defect.
    let m = SecurityMessage::success(HPort(12345), "alice", "").unwrap();
    assert_eq!(host.complete(&m), ERROR_INVALID_PARAMETER);
}

#[test]
fn receive_completion_fires_outside_the_lock_and_may_call_back() {
    let table = PortTable::new();
    let (p, _, _) = port(&table);
    let host = p.host();
    let h = p.hport();
    p.with(|tx, now| tx.begin_returned(0, now));
    let got = Arc::new(Mutex::new(None));
    let (g, host2) = (got.clone(), host.clone());
    // The event calls the host again (a new Receive): would deadlock if it
    // ran under the port's lock.
    let r = host.receive(
        h,
        64,
        0,
        Box::new(move |c| {
            let again = host2.receive(h, 64, 0, Box::new(|_| {}));
            *g.lock().unwrap() = Some((c, again));
        }),
    );
    assert_eq!(r, PENDING);
    p.with(|tx, _| tx.caller_input(b"x"));
    let (c, again) = got.lock().unwrap().take().unwrap();
    assert_eq!(c.data, b"x");
    assert_eq!(again, PENDING);
}

struct Flag(Mutex<bool>);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.0.lock().unwrap() = true;
    }
}

#[test]
fn dialog_receive_future_resolves_when_bytes_arrive() {
    let table = PortTable::new();
    let (p, _, _) = port(&table);
    p.with(|tx, now| tx.begin_returned(0, now));
    let args = BeginArgs {
        hport: p.hport(),
        send_buffer_size: 4,
        recv_buffer_size: 16,
        host: p.host(),
    };
    let d = Dialog::new(&args);
    d.send(b"Username: ").unwrap();
    assert_eq!(
        p.with(|tx, _| tx.poll_transmit()),
        Some(b"Username: ".to_vec())
    );
    let mut fut = Box::pin(d.receive(0));
    let flag = Arc::new(Flag(Mutex::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    p.with(|tx, _| tx.caller_input(b"alice\r"));
    assert!(*flag.0.lock().unwrap(), "woken");
    assert_eq!(
        fut.as_mut().poll(&mut cx),
        Poll::Ready(Ok(b"alice\r".to_vec()))
    );
    // Receive errors come straight back.
    let mut bad = Box::pin(
        Dialog::new(&BeginArgs {
            hport: HPort(3),
            ..args
        })
        .receive(0),
    );
    assert_eq!(
        bad.as_mut().poll(&mut cx),
        Poll::Ready(Err(ERROR_INVALID_PORT_HANDLE))
    );
}

#[test]
fn dialog_blocking_receive_on_a_module_thread() {
    let table = PortTable::new();
    let (p, _, clock) = port(&table);
    p.with(|tx, now| tx.begin_returned(0, now));
    let d = Dialog::new(&BeginArgs {
        hport: p.hport(),
        send_buffer_size: 64,
        recv_buffer_size: 64,
        host: p.host(),
    });
    let d2 = d.clone();
    let t = std::thread::spawn(move || d2.receive_blocking(5));
    // Give the thread time to make its Receive, then time it out.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.with(|tx, _| tx.get_info(tx.hport()).unwrap().last_error) != PENDING {
        assert!(Instant::now() < deadline, "Receive never made");
        std::thread::sleep(Duration::from_millis(1));
    }
    let later = clock.now() + Duration::from_secs(5);
    *clock.0.lock().unwrap() = later;
    p.with(|tx, now| tx.handle_timeout(now));
    assert_eq!(t.join().unwrap(), Err(ERROR_REQUEST_TIMEOUT));
    assert_eq!(d.succeed("alice", ""), NO_ERROR);
    assert_eq!(
        d.succeed("alice", ""),
        ERROR_INVALID_PARAMETER,
        "second Complete"
    );
}

#[test]
fn dialog_fail_and_error_never_send_invalid_messages() {
    let table = PortTable::new();
    let (p, _, _) = port(&table);
    p.with(|tx, now| tx.begin_returned(0, now));
    let d = Dialog::new(&BeginArgs {
        hport: p.hport(),
        send_buffer_size: 64,
        recv_buffer_size: 64,
        host: p.host(),
    });
    // An empty typed name still makes a valid FAILURE.
    assert_eq!(d.fail("", ""), NO_ERROR);
    p.with(|tx, now| tx.end_returned(0, now));
    let a = p.with(|tx, _| std::iter::from_fn(|| tx.poll_action()).collect::<Vec<_>>());
    assert!(matches!(
        a.last(),
        Some(Action::Finished(Outcome::Verdict(Verdict::Failure { .. })))
    ));
}
