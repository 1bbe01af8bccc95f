//! A writer stuck on a hung disk (the `StallGate` hook): appends wait,
//! records stay queued and counted, nothing is lost when the disk comes
//! back, and closing is bounded (issue 12, item 7).

use std::time::{Duration, Instant};

use eventlog::{EventLog, Filter, Kind, Options, Outcome, Reader, Record, StallGate};
use time::OffsetDateTime;

fn rec(user: &str) -> Record {
    let t = OffsetDateTime::now_utc();
    let mut r = Record::new(Kind::Dialog, t, t, "tcp0", "tcp", "users", Outcome::Failure);
    r.user = Some(user.into());
    r
}

#[tokio::test]
async fn hole_7_a_stalled_writer_keeps_records_queued_until_the_disk_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let gate = StallGate::new();
    let log = EventLog::open_with(
        &path,
        &Options {
            stall: Some(gate.clone()),
            ..Options::default()
        },
    )
    .unwrap();
    let w = log.writer();
    w.append_async(rec("before")).await.unwrap();
    gate.stall();
    // A bounded wait gives up; the record stays queued, counted.
    let waited = tokio::time::timeout(Duration::from_millis(300), w.append_async(rec("a"))).await;
    assert!(waited.is_err(), "an append finished on a stalled disk");
    let rx = w.submit(rec("b")).unwrap();
    assert_eq!(w.pending(), 2);
    gate.release();
    let id = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("committed once the disk is back")
        .unwrap()
        .unwrap();
    assert_eq!(id, 3);
    assert_eq!(w.pending(), 0);
    let users: Vec<_> = log
        .query(&Filter::default())
        .unwrap()
        .into_iter()
        .filter_map(|r| r.user)
        .collect();
    assert_eq!(users, ["before", "a", "b"], "nothing lost");
}

#[test]
fn hole_7_close_is_bounded_on_a_stalled_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let gate = StallGate::new();
    let log = EventLog::open_with(
        &path,
        &Options {
            stall: Some(gate.clone()),
            ..Options::default()
        },
    )
    .unwrap();
    let w = log.writer();
    gate.stall();
    let _rx = w.submit(rec("late")).unwrap();
    let t = Instant::now();
    assert!(!log.close_within(Duration::from_millis(300)));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(w.pending(), 1, "the unwritten record is counted");
    // The disk comes back: the queued record still lands.
    gate.release();
    let end = Instant::now() + Duration::from_secs(10);
    while w.pending() > 0 {
        assert!(Instant::now() < end, "the queued record was never written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = Reader::open_existing(&path).unwrap();
    assert_eq!(r.count().unwrap(), 1);
}
