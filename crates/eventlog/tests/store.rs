//! The SQLite event log end to end: round trips, filters, follow, group
//! commit under concurrency, durability across reopen and across SIGKILL,
//! and the failure paths.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use eventlog::{
    Error, EventLog, Filter, Kind, Options, Outcome, PppInfo, Reader, Record, write_json_lines,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("events.db")
}

fn dialog(t: OffsetDateTime, port: &str, user: &str, outcome: Outcome) -> Record {
    let mut r = Record::new(
        Kind::Dialog,
        t,
        t + Duration::milliseconds(2100),
        port,
        format!("tcp 127.0.0.1:{}", 50_000 + t.second() as u16),
        "users",
        outcome,
    );
    r.user = Some(user.to_owned());
    r
}

fn full_dialog() -> Record {
    let mut r = Record::new(
        Kind::Dialog,
        datetime!(2026-11-24 10:00:00.123456 UTC),
        datetime!(2026-11-24 10:00:04.654321 UTC),
        "telnet0",
        "tcp 127.0.0.1:50412",
        "users",
        Outcome::Success,
    );
    r.remote = Some("127.0.0.1:50412".into());
    r.msg_id = Some(1);
    r.error_code = Some(u32::MAX);
    r.user = Some("bob \"the\" bøb\n".into());
    r.domain = Some("EXAMPLE".into());
    r.detail = Some("caller typed 3 lines; ünïcode ✓".into());
    r.handoff = Some("exec /bin/sh exit=0".into());
    r
}

fn full_ppp() -> Record {
    let mut r = Record::new(
        Kind::PppSession,
        datetime!(2026-11-24 10:00:05 UTC),
        datetime!(2026-11-24 11:30:05.000001 UTC),
        "pty0",
        "/dev/pts/3",
        "users",
        Outcome::SessionEnded,
    );
    r.user = Some("bob".into());
    r.ppp = Some(PppInfo {
        user: Some("bob".into()),
        method: Some("ms-chapv2".into()),
        address: Some("10.0.0.2".into()),
        bytes_in: i64::MAX as u64,
        bytes_out: 0,
        packets_in: 123_456_789_012,
        packets_out: 7,
        cause: Some("lcp-terminate".into()),
    });
    r
}

#[test]
fn every_field_round_trips_through_sqlite_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    let w = log.writer();
    let mut ppp_empty = full_ppp();
    ppp_empty.ppp = Some(PppInfo::default());
    let mut other = Record::new(
        Kind::Dialog,
        datetime!(2026-11-24 09:00:00 UTC),
        datetime!(2026-11-24 09:00:00 UTC),
        "",
        "",
        "",
        "radius-timeout".parse().unwrap(),
    );
    other.user = Some(String::new());
    let originals = [full_dialog(), full_ppp(), ppp_empty, other];
    let mut ids = Vec::new();
    for r in &originals {
        ids.push(w.append(r.clone()).unwrap());
    }
    let got = log.query(&Filter::default()).unwrap();
    assert_eq!(got.len(), originals.len());
    for (orig, id) in originals.iter().zip(&ids) {
        let stored = got.iter().find(|r| r.id == Some(*id)).unwrap();
        let mut want = orig.clone();
        want.id = Some(*id);
        assert_eq!(stored, &want);
        // JSON lines round trip too, id included.
        let line = stored.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(&Record::from_json_line(&line).unwrap(), stored);
    }
    let mut out = Vec::new();
    write_json_lines(&mut out, &got).unwrap();
    let text = String::from_utf8(out).unwrap();
    let back: Vec<Record> = text
        .lines()
        .map(|l| Record::from_json_line(l).unwrap())
        .collect();
    assert_eq!(back, got);
}

#[test]
fn append_normalises_times_and_ignores_given_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    let mut r = full_dialog();
    r.id = Some(999);
    r.started_at = datetime!(2026-11-24 12:00:00.123456789 +02:00);
    let id = log.writer().append(r).unwrap();
    assert_ne!(id, 999);
    let got = log.query(&Filter::default()).unwrap();
    assert_eq!(got[0].started_at, datetime!(2026-11-24 10:00:00.123456 UTC));
    assert_eq!(got[0].started_at.offset(), time::UtcOffset::UTC);
}

fn filter_fixture(log: &EventLog) {
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let w = log.writer();
    let recs = [
        dialog(t0, "telnet0", "alice", Outcome::Success),
        dialog(
            t0 + Duration::minutes(10),
            "telnet0",
            "bob",
            Outcome::Failure,
        ),
        dialog(
            t0 + Duration::minutes(20),
            "telnet1",
            "bob",
            Outcome::Success,
        ),
        dialog(
            t0 + Duration::minutes(30),
            "pty0",
            "alice",
            Outcome::CallerHungUp,
        ),
        dialog(
            t0 + Duration::minutes(40),
            "telnet0",
            "carol",
            Outcome::Failure,
        ),
    ];
    // Append out of time order: queries must still come back ordered.
    for i in [2, 0, 4, 1, 3] {
        w.append(recs[i].clone()).unwrap();
    }
    let mut ppp = full_ppp();
    ppp.started_at = t0 + Duration::minutes(21);
    ppp.ended_at = t0 + Duration::minutes(90);
    ppp.port = "telnet1".into();
    w.append(ppp).unwrap();
}

fn users(recs: &[Record]) -> Vec<String> {
    recs.iter()
        .map(|r| {
            format!(
                "{}@{}",
                r.user.as_deref().unwrap_or("-"),
                r.started_at.minute()
            )
        })
        .collect()
}

#[test]
fn filters_alone_and_combined() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    filter_fixture(&log);
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let q = |f: Filter| users(&log.query(&f).unwrap());

    assert_eq!(
        q(Filter::default()),
        [
            "alice@0", "bob@10", "bob@20", "bob@21", "alice@30", "carol@40"
        ]
    );
    // Alone.
    let user = |u: &str| Some(u.to_owned());
    assert_eq!(
        q(Filter {
            user: user("bob"),
            ..Filter::default()
        }),
        ["bob@10", "bob@20", "bob@21"]
    );
    assert_eq!(
        q(Filter {
            user: user("bo"),
            ..Filter::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        q(Filter {
            outcome: Some(Outcome::Failure),
            ..Filter::default()
        }),
        ["bob@10", "carol@40"]
    );
    assert_eq!(
        q(Filter {
            kind: Some(Kind::PppSession),
            ..Filter::default()
        }),
        ["bob@21"]
    );
    assert_eq!(
        q(Filter {
            port: user("telnet1"),
            ..Filter::default()
        }),
        ["bob@20", "bob@21"]
    );
    // Substring of the group name or of the device.
    assert_eq!(
        q(Filter {
            port: user("pty"),
            ..Filter::default()
        }),
        ["alice@30"],
        "group pty0"
    );
    assert_eq!(
        q(Filter {
            port: user("/dev/pts"),
            ..Filter::default()
        }),
        ["bob@21"],
        "device /dev/pts/3 (group telnet1)"
    );
    assert_eq!(
        q(Filter {
            port: user("pt"),
            ..Filter::default()
        }),
        ["bob@21", "alice@30"],
        "either"
    );
    assert_eq!(
        q(Filter {
            port: user("127.0.0.1:50000"),
            ..Filter::default()
        }),
        ["alice@0", "bob@10", "bob@20", "alice@30", "carol@40"]
    );
    // Time range: records overlapping [since, until].
    assert_eq!(
        q(Filter {
            since: Some(t0 + Duration::minutes(25)),
            ..Filter::default()
        }),
        ["bob@21", "alice@30", "carol@40"]
    );
    assert_eq!(
        q(Filter {
            until: Some(t0 + Duration::minutes(20)),
            ..Filter::default()
        }),
        ["alice@0", "bob@10", "bob@20"]
    );
    assert_eq!(
        q(Filter {
            since: Some(t0 + Duration::minutes(10) + Duration::seconds(2)),
            until: Some(t0 + Duration::minutes(30)),
            ..Filter::default()
        }),
        ["bob@10", "bob@20", "bob@21", "alice@30"],
        "bob@10 ended 2.1 s after 10:10, so it overlaps"
    );
    // Limit: the most recent n, still oldest first.
    assert_eq!(
        q(Filter {
            limit: Some(2),
            ..Filter::default()
        }),
        ["alice@30", "carol@40"]
    );
    assert_eq!(
        q(Filter {
            limit: Some(0),
            ..Filter::default()
        }),
        Vec::<String>::new()
    );
    // Combined.
    assert_eq!(
        q(Filter {
            user: user("bob"),
            kind: Some(Kind::Dialog),
            outcome: Some(Outcome::Success),
            ..Filter::default()
        }),
        ["bob@20"]
    );
    assert_eq!(
        q(Filter {
            port: user("telnet0"),
            outcome: Some(Outcome::Failure),
            since: Some(t0 + Duration::minutes(15)),
            ..Filter::default()
        }),
        ["carol@40"]
    );
    assert_eq!(
        q(Filter {
            user: user("alice"),
            port: user("telnet"),
            limit: Some(5),
            ..Filter::default()
        }),
        ["alice@0"]
    );
    assert_eq!(
        q(Filter {
            user: user("carol"),
            outcome: Some(Outcome::Success),
            ..Filter::default()
        }),
        Vec::<String>::new()
    );
}

#[test]
fn follow_returns_each_later_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    assert_eq!(log.last_id().unwrap(), None);
    assert!(log.follow(0, &Filter::default()).unwrap().is_empty());
    filter_fixture(&log);
    let all = log.follow(0, &Filter::default()).unwrap();
    assert_eq!(all.len(), 6);
    let ids: Vec<i64> = all.iter().map(|r| r.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "commit order: {ids:?}");
    let last = log.last_id().unwrap().unwrap();
    assert_eq!(last, *ids.last().unwrap());

    // A second reader (the CLI in another process) polls in small batches.
    let reader = Reader::open_existing(log.path()).unwrap();
    let batch = Filter {
        limit: Some(4),
        ..Filter::default()
    };
    let first = reader.follow(0, &batch).unwrap();
    assert_eq!(first.len(), 4);
    let rest = reader.follow(first[3].id.unwrap(), &batch).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(reader.follow(last, &batch).unwrap().is_empty());

    let w = log.writer();
    let t = datetime!(2026-11-24 09:00:00 UTC);
    let new_bob = w
        .append(dialog(t, "telnet9", "bob", Outcome::Refused))
        .unwrap();
    w.append(dialog(t, "telnet9", "dave", Outcome::Refused))
        .unwrap();
    let bobs = Filter {
        user: Some("bob".into()),
        ..Filter::default()
    };
    let got = reader.follow(last, &bobs).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, Some(new_bob));
    assert_eq!(reader.count().unwrap(), 8);
}

#[test]
fn group_commit_under_concurrency() {
    const THREADS: usize = 8;
    const EACH: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let ids: Vec<(i64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let w = log.writer();
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let tag = format!("t{th}-{i}");
                            let mut r = dialog(t0, "telnet0", &tag, Outcome::Failure);
                            r.detail = Some(tag.clone());
                            (w.append(r).unwrap(), tag)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), THREADS * EACH);
    let stats: eventlog::Stats = log.stats();
    assert_eq!(stats.records, (THREADS * EACH) as u64);
    assert_eq!(stats.failed, 0);
    assert!(
        stats.commits < stats.records,
        "concurrent appends share commits: {stats:?}"
    );
    let unique: HashSet<i64> = ids.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), THREADS * EACH, "ids are unique");
    let stored = log.query(&Filter::default()).unwrap();
    assert_eq!(stored.len(), THREADS * EACH);
    for r in &stored {
        let id = r.id.unwrap();
        let tag = ids.iter().find(|(i, _)| *i == id).map(|(_, t)| t.as_str());
        assert_eq!(
            tag,
            r.detail.as_deref(),
            "record {id} holds what its caller sent"
        );
        assert_eq!(r.user.as_deref(), r.detail.as_deref());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_appends_do_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(db(&dir)).unwrap();
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let w = log.writer();
        tasks.spawn(async move {
            w.append_async(dialog(t0, "telnet0", &format!("u{i}"), Outcome::Success))
                .await
        });
    }
    let mut ids = HashSet::new();
    let all = tokio::time::timeout(StdDuration::from_secs(60), async {
        while let Some(r) = tasks.join_next().await {
            assert!(ids.insert(r.unwrap().unwrap()));
        }
    });
    all.await.expect("appends finish");
    assert_eq!(log.reader().count().unwrap(), 200);
}

#[test]
fn records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let id = {
        let log = EventLog::open(&path).unwrap();
        log.writer().append(full_dialog()).unwrap()
    };
    let log = EventLog::open(&path).unwrap();
    let got = log.query(&Filter::default()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, Some(id));
    // Ids keep growing after a reopen.
    let id2 = log.writer().append(full_ppp()).unwrap();
    assert!(id2 > id);
    drop(log);
    let reader = Reader::open_existing(&path).unwrap();
    assert_eq!(reader.count().unwrap(), 2);
}

#[test]
fn close_flushes_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let log = EventLog::open(&path).unwrap();
    let w = log.writer();
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let pending: Vec<_> = (0..1000)
        .map(|i| {
            w.submit(dialog(t0, "telnet0", &format!("u{i}"), Outcome::Shutdown))
                .unwrap()
        })
        .collect();
    log.close();
    for rx in pending {
        let id = rx.blocking_recv().expect("a reply").expect("committed");
        assert!(id > 0);
    }
    // The writer is gone now: a clear error, nothing written.
    let e = w.append(full_dialog()).unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
    assert!(e.is_write_failure());
    assert!(e.to_string().contains("events.db"), "{e}");
    assert_eq!(Reader::open_existing(&path).unwrap().count().unwrap(), 1000);
}

#[test]
fn a_full_disk_fails_appends_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let opts = Options {
        max_size_bytes: Some(64 * 1024),
        ..Options::default()
    };
    let log = EventLog::open_with(&path, &opts).unwrap();
    let w = log.writer();
    let mut r = full_dialog();
    r.detail = Some("x".repeat(2000));
    let mut stored = 0;
    let err = loop {
        match w.append(r.clone()) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000, "the size limit never hit");
    };
    assert!(stored > 0);
    assert!(err.is_write_failure());
    assert_eq!(err.sqlite_code(), Some(rusqlite::ErrorCode::DiskFull));
    let msg = err.to_string();
    eprintln!("disk full: {msg}");
    assert!(
        msg.contains("events.db") && msg.contains("append") && msg.contains("full"),
        "{msg}"
    );
    // Nothing half-written; earlier records intact; it keeps failing cleanly.
    assert_eq!(log.reader().count().unwrap(), stored);
    assert!(w.append(r).is_err());
    let stats = log.stats();
    assert_eq!((stats.records, stats.failed), (stored, 2));
}

#[test]
fn a_locked_database_fails_appends_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let opts = Options {
        busy_timeout: StdDuration::from_millis(100),
        ..Options::default()
    };
    let log = EventLog::open_with(&path, &opts).unwrap();
    let w = log.writer();
    w.append(full_dialog()).unwrap();
    // Another process holds the write lock (e.g. a stuck sqlite3 shell).
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = w.append(full_dialog()).unwrap_err();
    assert!(err.is_write_failure());
    assert_eq!(err.sqlite_code(), Some(rusqlite::ErrorCode::DatabaseBusy));
    eprintln!("locked: {err}");
    assert!(err.to_string().contains("locked"), "{err}");
    other.execute_batch("ROLLBACK").unwrap();
    w.append(full_dialog()).unwrap();
    assert_eq!(log.reader().count().unwrap(), 2);
}

#[test]
fn open_errors_name_the_culprit() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("no/such/dir/events.db");
    let e = EventLog::open(&missing).unwrap_err();
    assert!(matches!(e, Error::NoDirectory { .. }), "{e}");
    assert!(e.to_string().contains("no/such/dir"), "{e}");

    let e = Reader::open_existing(dir.path().join("absent.db")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        !dir.path().join("absent.db").exists(),
        "a reader creates nothing"
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let e = EventLog::open(&garbage).unwrap_err();
    assert!(matches!(e, Error::Sqlite { .. }), "{e}");
    assert!(
        e.to_string().contains("garbage.db") && e.to_string().contains("not a database"),
        "{e}"
    );

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let e = EventLog::open(&foreign).unwrap_err();
    assert!(matches!(e, Error::NotAnEventLog { .. }), "{e}");

    let newer = dir.path().join("newer.db");
    drop(EventLog::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("UPDATE schema_version SET version = 99")
        .unwrap();
    let e = EventLog::open(&newer).unwrap_err();
    assert!(matches!(e, Error::NewerSchema { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("upgrade"), "{e}");
}

#[test]
fn the_file_is_wal_and_durable_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(EventLog::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = c
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, eventlog::SCHEMA_VERSION);
    let app: i32 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, eventlog::APPLICATION_ID);
    let idx: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(idx >= 4, "indexes for the filters: {idx}");
    // Reopening does not re-run migrations.
    drop(c);
    drop(EventLog::open(&path).unwrap());
}

#[test]
fn malformed_rows_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let log = EventLog::open(&path).unwrap();
    let id = log.writer().append(full_ppp()).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE records SET bytes_out = -1 WHERE id = ?1", [id])
        .unwrap();
    let e = log.query(&Filter::default()).unwrap_err();
    assert!(
        matches!(e, Error::Malformed { id: i, .. } if i == id),
        "{e}"
    );
    c.execute(
        "UPDATE records SET bytes_out = 1, kind = 'fax' WHERE id = ?1",
        [id],
    )
    .unwrap();
    let e = log.query(&Filter::default()).unwrap_err();
    assert!(e.to_string().contains("fax"), "{e}");
}

// ---- crash test: a child process appends, the parent SIGKILLs it ----

const CHILD_ENV: &str = "EVENTLOG_TEST_CRASH_CHILD_DB";
const CHILD_MODE_ENV: &str = "EVENTLOG_TEST_CRASH_CHILD_MODE";
const CHILD_THREADS: usize = 4;

/// Not a test by itself: the body of the child process of
/// `records_survive_sigkill`. Ignored, and a no-op without its variable.
///
/// Mode `stream`: four threads append as fast as they can, printing each id
/// once `append` returned. Mode `one`: each thread appends one record,
/// prints it, then idles until killed (so a record acknowledged before its
/// COMMIT would be lost for sure).
#[test]
#[ignore = "helper process for records_survive_sigkill"]
fn crash_child_helper() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let one = std::env::var(CHILD_MODE_ENV).is_ok_and(|m| m == "one");
    let log = EventLog::open(&path).unwrap();
    let t0 = datetime!(2026-11-24 10:00:00 UTC);
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    std::thread::scope(|s| {
        for th in 0..CHILD_THREADS {
            let w = log.writer();
            s.spawn(move || {
                let mut i = 0u32;
                while std::time::Instant::now() < deadline && !(one && i == 1) {
                    let tag = format!("c{th}-{i}-{}", std::process::id());
                    let mut r = dialog(t0, "telnet0", &tag, Outcome::Success);
                    r.detail = Some(tag.clone());
                    let id = w.append(r).unwrap();
                    // Only after append returned do we claim the record.
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "APPENDED {id} {tag}").unwrap();
                    out.flush().unwrap();
                    i += 1;
                }
                while std::time::Instant::now() < deadline {
                    std::thread::sleep(StdDuration::from_millis(50));
                }
            });
        }
    });
}

/// Runs the child in `mode`, SIGKILLs it once it has claimed `kill_after`
/// records, and returns every record it claimed.
fn crash_child(path: &Path, mode: &str, kill_after: usize) -> Vec<(i64, String)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(CHILD_MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print `test crash_child_helper ... ` before the
            // first line.
            if let Some((_, rest)) = line.split_once("APPENDED ") {
                let mut it = rest.split(' ');
                let id: i64 = it.next().unwrap().parse().unwrap();
                let tag = it.next().unwrap().to_owned();
                if tx.send((id, tag)).is_err() {
                    break;
                }
            }
        }
    });
    let mut claimed = Vec::new();
    while claimed.len() < kill_after {
        let got = rx.recv_timeout(StdDuration::from_secs(30));
        if got.is_err() {
            let _ = child.kill();
        }
        claimed.push(got.expect("the child appends"));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    reader.join().unwrap();
    claimed.extend(rx.try_iter());
    claimed
}

#[test]
fn records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut claimed = Vec::new();
    // Killed mid-stream, with appends in flight in four threads...
    claimed.extend(crash_child(&path, "stream", 300));
    claimed.extend(crash_child(&path, "stream", 400));
    // ...and killed right after append returned, the writer idle.
    let last = crash_child(&path, "one", CHILD_THREADS);
    assert_eq!(last.len(), CHILD_THREADS);
    claimed.extend(last);

    let log = EventLog::open(&path).unwrap();
    let stored = log.query(&Filter::default()).unwrap();
    let by_id: std::collections::HashMap<i64, &Record> =
        stored.iter().map(|r| (r.id.unwrap(), r)).collect();
    for (id, tag) in &claimed {
        let r = by_id
            .get(id)
            .unwrap_or_else(|| panic!("record {id} ({tag}) lost after SIGKILL"));
        assert_eq!(r.detail.as_deref(), Some(tag.as_str()));
    }
    assert!(stored.len() >= claimed.len());
    let c = rusqlite::Connection::open(&path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// Makes files immutable (`chattr +i`, which stops even root) and undoes it
/// on drop so the temp dir can be removed.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// `None` if this system cannot (no chattr, not root, filesystem without
    /// the flag).
    fn set(paths: &[PathBuf]) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .args(paths)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let guard = Immutable(paths.to_vec());
        ok.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[test]
fn a_read_only_file_fails_appends_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let log = EventLog::open(&path).unwrap();
    let w = log.writer();
    w.append(full_dialog()).unwrap();
    let wal = dir.path().join("events.db-wal");
    assert!(wal.exists());
    let Some(guard) = Immutable::set(&[path.clone(), wal]) else {
        panic!(
            "chattr +i failed, so this test cannot run: it needs root, `chattr` (Debian \
             package `e2fsprogs`, which `bash scripts/test` installs when run as root) \
             and a temporary directory on a filesystem with the immutable flag (ext4, \
             xfs, btrfs, tmpfs; set TMPDIR)"
        );
    };
    let err = w.append(full_dialog()).unwrap_err();
    assert!(err.is_write_failure(), "{err}");
    let msg = err.to_string();
    eprintln!("read-only: {msg}");
    assert!(
        msg.contains("events.db") && msg.contains("append failed"),
        "{msg}"
    );
    // Opening a second log on the read-only file fails clearly too.
    drop(log);
    let e = EventLog::open(&path).unwrap_err();
    eprintln!("read-only at open: {e}");
    assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
    assert!(e.to_string().contains("events.db"), "{e}");
    // The CLI can still read it.
    assert_eq!(Reader::open_existing(&path).unwrap().count().unwrap(), 1);
    // Writable again: the log works and nothing half-written shows up.
    drop(guard);
    let log = EventLog::open(&path).unwrap();
    log.writer().append(full_dialog()).unwrap();
    assert_eq!(log.reader().count().unwrap(), 2);
}
