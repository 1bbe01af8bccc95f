//! `Reader` (what `dialgate log` uses) never writes the log: no schema
//! migration, no journal-mode change, nothing created, and it reads a file
//! nobody may write (issue 12, item 13).

use std::path::{Path, PathBuf};
use std::process::Command;

use eventlog::{Error, EventLog, Filter, Kind, Outcome, Reader, Record};
use time::OffsetDateTime;

fn rec(user: &str) -> Record {
    let t = OffsetDateTime::now_utc();
    let mut r = Record::new(
        Kind::Dialog,
        t,
        t,
        "tcp0",
        "tcp 127.0.0.1:5000",
        "users",
        Outcome::Success,
    );
    r.user = Some(user.into());
    r
}

/// Every file in `dir` with its bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// A log as a dialgate with schema version 0 left it: the version table and
/// the application id, no `records` table yet, rollback journal (not WAL).
fn older_schema_log(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES (0);",
    )
    .unwrap();
    c.pragma_update(None, "application_id", eventlog::APPLICATION_ID)
        .unwrap();
    drop(c);
}

#[test]
fn hole_13_reader_leaves_an_older_schema_log_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    older_schema_log(&path);
    let before = snapshot(dir.path());
    let r = Reader::open_existing(&path);
    let after = snapshot(dir.path());
    assert!(before == after, "the reader changed or created files");
    let e = r.expect_err("an older schema cannot be read without migrating it");
    let msg = e.to_string();
    assert!(matches!(e, Error::OlderSchema { found: 0, .. }), "{msg}");
    assert!(
        msg.contains("events.sqlite") && msg.contains("dialgate serve"),
        "{msg}"
    );
}

#[test]
fn hole_13_reader_refuses_a_newer_schema_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    {
        let log = EventLog::open(&path).unwrap();
        log.writer().append(rec("alice")).unwrap();
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("UPDATE schema_version SET version = 7")
        .unwrap();
    // Back to a rollback journal, so a reader that set WAL would show.
    let _: String = c
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    drop(c);
    let before = snapshot(dir.path());
    let e = Reader::open_existing(&path).unwrap_err();
    assert!(
        before == snapshot(dir.path()),
        "the reader changed the file"
    );
    assert!(matches!(e, Error::NewerSchema { found: 7, .. }), "{e}");
    assert!(e.to_string().contains("upgrade dialgate"), "{e}");
}

#[test]
fn hole_13_reader_of_a_current_log_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    {
        let log = EventLog::open(&path).unwrap();
        log.writer().append(rec("alice")).unwrap();
    }
    let before = snapshot(dir.path());
    let r = Reader::open_existing(&path).unwrap();
    assert_eq!(r.query(&Filter::default()).unwrap().len(), 1);
    assert_eq!(r.last_id().unwrap(), Some(1));
    drop(r);
    assert!(
        before == snapshot(dir.path()),
        "the reader changed the file"
    );
    // A missing file stays missing.
    let gone = dir.path().join("absent.sqlite");
    assert!(matches!(
        Reader::open_existing(&gone),
        Err(Error::NotFound { .. })
    ));
    assert!(!gone.exists());
}

/// `chattr +i` on the paths (stops even root), undone on drop.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[PathBuf]) -> Immutable {
        let st = Command::new("chattr")
            .arg("+i")
            .args(paths)
            .status()
            .expect("chattr (e2fsprogs) is needed: scripts/test installs it");
        assert!(
            st.success(),
            "chattr +i failed: this test needs root and an ext4-like filesystem for its temp dir"
        );
        Immutable(paths.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[test]
fn hole_13_reader_reads_a_log_nobody_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("events.sqlite");
    {
        let log = EventLog::open(&path).unwrap();
        for u in ["alice", "bob"] {
            log.writer().append(rec(u)).unwrap();
        }
    }
    // Closed cleanly: no -wal or -shm left, and none can be created.
    let before = snapshot(&sub);
    assert_eq!(
        before.len(),
        1,
        "{:?}",
        before.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    let guard = Immutable::set(&[path.clone(), sub.clone()]);
    let r = Reader::open_existing(&path).unwrap_or_else(|e| panic!("{e}"));
    let got = r
        .query(&Filter::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let users: Vec<_> = got.iter().filter_map(|r| r.user.clone()).collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(r.follow(1, &Filter::default()).unwrap().len(), 1);
    drop(r);
    drop(guard);
    assert!(before == snapshot(&sub));
}

#[test]
fn hole_13_follow_started_before_the_server_sees_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    drop(EventLog::open(&path).unwrap());
    // No writer: the reader opens the file as immutable...
    let r = Reader::open_existing(&path).unwrap();
    assert_eq!(r.last_id().unwrap(), None);
    // ...then a server starts and writes: `follow` must see it.
    let log = EventLog::open(&path).unwrap();
    log.writer().append(rec("carol")).unwrap();
    let got = r.follow(0, &Filter::default()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user.as_deref(), Some("carol"));
    log.writer().append(rec("dave")).unwrap();
    assert_eq!(r.follow(1, &Filter::default()).unwrap().len(), 1);
}
