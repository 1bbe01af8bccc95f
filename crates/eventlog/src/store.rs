//! The SQLite store: schema and migrations, the group-commit writer thread,
//! and queries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::filter::Filter;
use crate::record::{Kind, Outcome, PppInfo, Record, from_unix_micros, to_unix_micros};

/// `PRAGMA application_id` of a dialgate event log ("DGEL").
pub const APPLICATION_ID: i32 = 0x4447_454C;

/// Schema migrations; entry `n` takes the schema from version `n` to `n + 1`.
/// Never edit an entry once released: append a new one.
const MIGRATIONS: &[&str] = &[
    // Version 1. Times are microseconds since the Unix epoch, UTC.
    // AUTOINCREMENT: ids are never reused, so `follow` (id > last) never
    // misses a record even after old ones are deleted.
    // The PPP columns are all NULL when the record has no PPP part.
    "CREATE TABLE records (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT    NOT NULL,
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER NOT NULL,
        port        TEXT    NOT NULL,
        device      TEXT    NOT NULL,
        remote      TEXT,
        module      TEXT    NOT NULL,
        outcome     TEXT    NOT NULL,
        msg_id      INTEGER,
        error_code  INTEGER,
        user        TEXT,
        domain      TEXT,
        detail      TEXT,
        handoff     TEXT,
        ppp_user    TEXT,
        ppp_method  TEXT,
        ppp_address TEXT,
        bytes_in    INTEGER,
        bytes_out   INTEGER,
        packets_in  INTEGER,
        packets_out INTEGER,
        ppp_cause   TEXT
    );
    CREATE INDEX records_started ON records (started_at, id);
    CREATE INDEX records_ended ON records (ended_at);
    CREATE INDEX records_user ON records (user, started_at);
    CREATE INDEX records_outcome ON records (outcome, started_at);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const COLUMNS: &str = "id, kind, started_at, ended_at, port, device, remote, module, outcome, \
     msg_id, error_code, user, domain, detail, handoff, ppp_user, ppp_method, ppp_address, \
     bytes_in, bytes_out, packets_in, packets_out, ppp_cause";

const INSERT: &str = "INSERT INTO records (kind, started_at, ended_at, port, device, remote, \
     module, outcome, msg_id, error_code, user, domain, detail, handoff, ppp_user, ppp_method, \
     ppp_address, bytes_in, bytes_out, packets_in, packets_out, ppp_cause) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21, ?22)";

/// Records returned by one [`Reader::follow`] call when the filter sets no
/// limit.
pub const FOLLOW_BATCH: usize = 1000;

/// Tuning for [`EventLog::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long a write or read waits for another process's lock before
    /// failing with "database is locked". Default 5 s.
    pub busy_timeout: Duration,
    /// Upper bound on the database file size; once reached, appends fail
    /// with "database or disk is full" (as on a full disk). Default none.
    pub max_size_bytes: Option<u64>,
    /// Most records committed in one transaction. Default 1024.
    pub max_batch: usize,
    /// Group commit: how long the writer may wait for as many records as
    /// its previous commit held before committing fewer. Trades at most
    /// this much latency for fewer fsyncs under load. Default 200 µs.
    pub group_linger: Duration,
    /// A test hook standing in for a hung disk: while the gate is stalled
    /// the writer thread waits before each commit, and records stay queued.
    /// Default none.
    pub stall: Option<StallGate>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            busy_timeout: Duration::from_secs(5),
            max_size_bytes: None,
            max_batch: 1024,
            group_linger: Duration::from_micros(200),
            stall: None,
        }
    }
}

/// Makes the writer thread hang before its next commit, as a stalled disk
/// would (see [`Options::stall`]); for tests of what waits on the log.
#[derive(Clone, Default)]
pub struct StallGate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl StallGate {
    /// A gate that is open (the writer commits normally).
    pub fn new() -> StallGate {
        StallGate::default()
    }

    /// From now on the writer waits before committing.
    pub fn stall(&self) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Lets the writer go on: everything queued is committed.
    pub fn release(&self) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.1.notify_all();
    }

    /// Whether the gate is stalled now.
    pub fn is_stalled(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self) {
        let mut stalled = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        while *stalled {
            stalled = self
                .0
                .1
                .wait(stalled)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl std::fmt::Debug for StallGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallGate")
            .field("stalled", &self.is_stalled())
            .finish()
    }
}

impl PartialEq for StallGate {
    fn eq(&self, other: &StallGate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StallGate {}

type AppendResult = Result<i64, Error>;

enum Reply {
    Blocking(mpsc::SyncSender<AppendResult>),
    Async(oneshot::Sender<AppendResult>),
}

impl Reply {
    fn send(self, r: AppendResult) {
        // The caller may have given up waiting (dropped its receiver); the
        // record's fate is then only in the database, which is fine.
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

// Nearly every message is an `Append`; boxing the record would only add an
// allocation per append.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append(Record, Reply),
    /// Commit everything queued, then stop; the sender is told when done.
    Shutdown(mpsc::SyncSender<()>),
}

/// An open event log: the group-commit writer thread plus a reader.
///
/// Dropping it (or [`EventLog::close`]) flushes every record queued so far
/// and stops the writer; [`Writer`] clones still alive then get
/// [`Error::Closed`].
pub struct EventLog {
    path: Arc<PathBuf>,
    writer: Writer,
    reader: Reader,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.path)
            .finish()
    }
}

impl EventLog {
    /// Open or create the log at `path` with default [`Options`]. The
    /// parent directory must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<EventLog, Error> {
        EventLog::open_with(path, &Options::default())
    }

    /// Open or create the log at `path`: WAL mode, `synchronous=FULL`,
    /// schema migrated to [`SCHEMA_VERSION`], writer thread started.
    pub fn open_with(path: impl AsRef<Path>, opts: &Options) -> Result<EventLog, Error> {
        let path = Arc::new(path.as_ref().to_path_buf());
        check_parent(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path.as_path(), flags)
            .map_err(|e| sqlite(&path, "open", e))?;
        // SQLite silently falls back to read-only when the file cannot be
        // opened for writing; the writer must know now, not at the first
        // append.
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| sqlite(&path, "open", e))?
        {
            return Err(Error::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        setup_connection(&conn, &path, opts)?;
        migrate(&mut conn, &path)?;
        // A bigger page cache than SQLite's 2 MiB default keeps the index
        // pages the appends touch in memory (fewer reads per insert).
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(|e| sqlite(&path, "set cache size", e))?;
        // After a burst, shrink the WAL back to at most 64 MiB once it has
        // been checkpointed.
        let _: i64 = conn
            .pragma_update_and_check(None, "journal_size_limit", 64 << 20, |r| r.get(0))
            .map_err(|e| sqlite(&path, "set WAL size limit", e))?;
        if let Some(max) = opts.max_size_bytes {
            let page_size: i64 = conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .map_err(|e| sqlite(&path, "read page size", e))?;
            let pages = max / u64::try_from(page_size.max(512)).unwrap_or(4096);
            let pages = i64::try_from(pages.max(1)).unwrap_or(i64::MAX);
            let _: i64 = conn
                .pragma_update_and_check(None, "max_page_count", pages, |r| r.get(0))
                .map_err(|e| sqlite(&path, "set size limit", e))?;
        }
        let reader = Reader::open_conn(path.clone(), opts)?;
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(StatsCell::default());
        let wopts = WriterOpts {
            max_batch: opts.max_batch.max(1),
            linger: opts.group_linger,
            stats: stats.clone(),
            stall: opts.stall.clone(),
        };
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || writer_thread(conn, rx, &thread_path, wopts))
            .map_err(|source| Error::Thread {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(EventLog {
            writer: Writer {
                tx,
                path: path.clone(),
                stats,
            },
            path,
            reader,
            thread: Some(thread),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> Stats {
        self.writer.stats()
    }

    /// A handle for appending; clone it freely.
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }

    /// The reader of this log.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// See [`Reader::query`].
    pub fn query(&self, filter: &Filter) -> Result<Vec<Record>, Error> {
        self.reader.query(filter)
    }

    /// See [`Reader::follow`].
    pub fn follow(&self, last_id: i64, filter: &Filter) -> Result<Vec<Record>, Error> {
        self.reader.follow(last_id, filter)
    }

    /// See [`Reader::last_id`].
    pub fn last_id(&self) -> Result<Option<i64>, Error> {
        self.reader.last_id()
    }

    /// Commit every record queued so far, stop the writer thread and close
    /// the database. Appends through remaining [`Writer`] clones then fail
    /// with [`Error::Closed`].
    pub fn close(mut self) {
        self.shutdown();
    }

    /// [`EventLog::close`], waiting at most `limit` for the records queued
    /// (a hung disk can hold them for ever). `true` when everything was
    /// committed and the writer stopped; `false` when the limit passed
    /// first: [`Writer::pending`] records were then not written, and the
    /// writer thread is left to finish them (or to end with the process).
    pub fn close_within(mut self, limit: Duration) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.writer.tx.send(Msg::Shutdown(done_tx)).is_ok()
            && let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit)
        {
            return false;
        }
        if thread.join().is_err() {
            tracing::error!(path = %self.path.display(), "event log writer thread panicked");
        }
        true
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.writer.tx.send(Msg::Shutdown(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
        if thread.join().is_err() {
            tracing::error!(path = %self.path.display(), "event log writer thread panicked");
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A cloneable handle that appends records through the writer thread.
///
/// Every append returns only after the transaction holding the record has
/// committed with `synchronous=FULL`: the record is on disk and survives a
/// `kill -9` or a power cut the moment `append` returns `Ok`.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    path: Arc<PathBuf>,
    stats: Arc<StatsCell>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

impl Writer {
    /// Append a record and wait until it is durably committed; returns the
    /// id it was given. Blocks the calling thread: from async code use
    /// [`Writer::append_async`].
    ///
    /// The record is normalised first (see [`Record::normalize`]); its `id`
    /// field is ignored. On error (disk full, read-only, locked, corrupt,
    /// writer closed) nothing was stored, and the error names the file and
    /// the cause.
    pub fn append(&self, rec: Record) -> Result<i64, Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(rec, Reply::Blocking(tx))?;
        rx.recv().unwrap_or_else(|_| Err(self.closed()))
    }

    /// Queue a record and return a receiver that yields its id once it is
    /// durably committed (or the error). Never blocks; the receiver can be
    /// awaited from async code or polled with `blocking_recv` elsewhere.
    /// A dropped receiver does not cancel the write.
    pub fn submit(&self, rec: Record) -> Result<oneshot::Receiver<Result<i64, Error>>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(rec, Reply::Async(tx))?;
        Ok(rx)
    }

    /// [`Writer::append`] for async code: does not block the reactor.
    /// Cancelling this future does not cancel the write.
    pub async fn append_async(&self, rec: Record) -> Result<i64, Error> {
        let rx = self.submit(rec)?;
        rx.await.unwrap_or_else(|_| Err(self.closed()))
    }

    /// The log file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.snapshot()
    }

    fn send(&self, mut rec: Record, reply: Reply) -> Result<(), Error> {
        rec.normalize();
        rec.id = None;
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Msg::Append(rec, reply)).map_err(|_| {
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            self.closed()
        })
    }

    /// Records queued and not yet answered (committed or failed): more than
    /// a few only while the writer is slow or stalled.
    pub fn pending(&self) -> u64 {
        self.stats.pending.load(Ordering::Relaxed)
    }

    fn closed(&self) -> Error {
        Error::Closed {
            path: self.path.to_path_buf(),
        }
    }
}

/// Read access to an event log (the `dialgate log` side). Safe to use while
/// a server appends from another process: WAL readers never block the writer.
pub struct Reader {
    path: Arc<PathBuf>,
    conn: Mutex<Connection>,
    /// Opened with `immutable=1` because no WAL index could be made (a
    /// directory we cannot write, and no writer had the log open). Reopened
    /// normally once a writer shows up (its `-wal` file appears).
    immutable: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

impl Reader {
    /// Open an existing log for queries, **read-only**: the file is never
    /// written, created ([`Error::NotFound`] if missing), migrated or
    /// switched to WAL. A schema newer ([`Error::NewerSchema`]) or older
    /// ([`Error::OlderSchema`]: only the writer migrates) than this build's
    /// is refused. A log in a directory the reader cannot write (no WAL
    /// index can be made) is read as immutable while no writer has it open.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Reader, Error> {
        let path = Arc::new(path.as_ref().to_path_buf());
        if !path.exists() {
            return Err(Error::NotFound {
                path: path.to_path_buf(),
            });
        }
        let (conn, immutable) = open_read_only(&path)?;
        check_schema_read_only(&conn, &path)?;
        Ok(Reader {
            path,
            conn: Mutex::new(conn),
            immutable: std::sync::atomic::AtomicBool::new(immutable),
        })
    }

    /// After an immutable open, switch to a normal read-only connection as
    /// soon as a writer has the log open, so `follow` sees its records.
    fn refresh(&self) {
        if !self.immutable.load(Ordering::Relaxed) || !wal_path(&self.path).exists() {
            return;
        }
        if let Ok(conn) = plain_read_only(&self.path)
            && probe(&conn).is_ok()
        {
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = conn;
            self.immutable.store(false, Ordering::Relaxed);
        }
    }

    fn open_conn(path: Arc<PathBuf>, opts: &Options) -> Result<Reader, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path.as_path(), flags)
            .map_err(|e| sqlite(&path, "open reader", e))?;
        conn.busy_timeout(opts.busy_timeout)
            .map_err(|e| sqlite(&path, "set busy timeout", e))?;
        Ok(Reader {
            path,
            conn: Mutex::new(conn),
            immutable: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records matching `filter`, oldest first (by `started_at`, then id).
    /// With `filter.limit = Some(n)`, the **most recent** `n` matches, still
    /// oldest first (like `tail -n`).
    pub fn query(&self, filter: &Filter) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        self.query_each(filter, |r| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    /// Like [`Reader::query`] but hands records one at a time to `f` (which
    /// returns `false` to stop), so a large export needs no memory for all.
    pub fn query_each(
        &self,
        filter: &Filter,
        mut f: impl FnMut(Record) -> bool,
    ) -> Result<(), Error> {
        let (where_sql, args) = where_clause(filter);
        let sql = match filter.limit {
            Some(n) => {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                format!(
                    "SELECT * FROM (SELECT {COLUMNS} FROM records WHERE {where_sql} \
                     ORDER BY started_at DESC, id DESC LIMIT {n}) ORDER BY started_at, id"
                )
            }
            None => {
                format!("SELECT {COLUMNS} FROM records WHERE {where_sql} ORDER BY started_at, id")
            }
        };
        self.run(&sql, args, "query", &mut f)
    }

    /// Polling support for `dialgate log --follow`: records with
    /// `id > last_id` that match `filter`'s other fields, in id (= commit)
    /// order, at most `filter.limit` (default [`FOLLOW_BATCH`]) of them.
    ///
    /// Ids grow in commit order and are never reused, so a poller that
    /// passes the largest id it has seen (0, or [`Reader::last_id`], to
    /// start) sees every later record exactly once. When a call returns a
    /// full batch, call again at once; when it returns fewer, sleep and poll.
    pub fn follow(&self, last_id: i64, filter: &Filter) -> Result<Vec<Record>, Error> {
        self.refresh();
        let (where_sql, mut args) = where_clause(filter);
        args.push(rusqlite::types::Value::Integer(last_id));
        let n = i64::try_from(filter.limit.unwrap_or(FOLLOW_BATCH)).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE {where_sql} AND id > ?{} ORDER BY id LIMIT {n}",
            args.len()
        );
        let mut out = Vec::new();
        self.run(&sql, args, "follow", &mut |r| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    /// The largest id stored, `None` if the log is empty.
    pub fn last_id(&self) -> Result<Option<i64>, Error> {
        self.refresh();
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT max(id) FROM records", [], |r| r.get(0))
            .map_err(|e| sqlite(&self.path, "read last id", e))
    }

    /// Number of records stored.
    pub fn count(&self) -> Result<u64, Error> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .map_err(|e| sqlite(&self.path, "count records", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn run(
        &self,
        sql: &str,
        args: Vec<rusqlite::types::Value>,
        op: &'static str,
        f: &mut dyn FnMut(Record) -> bool,
    ) -> Result<(), Error> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare(sql).map_err(|e| sqlite(&self.path, op, e))?;
        let mut rows = stmt
            .query(params_from_iter(args))
            .map_err(|e| sqlite(&self.path, op, e))?;
        while let Some(row) = rows.next().map_err(|e| sqlite(&self.path, op, e))? {
            let rec = decode_row(row, &self.path)?;
            if !f(rec) {
                break;
            }
        }
        Ok(())
    }
}

/// SQL condition and its positional arguments (`?1`, `?2`...) for a filter.
fn where_clause(filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds: Vec<String> = vec!["1".into()];
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &str, v: Value, args: &mut Vec<Value>| {
        args.push(v);
        conds.push(cond.replace('?', &format!("?{}", args.len())));
    };
    // A record matches a time range when it overlaps it.
    if let Some(t) = filter.since {
        push(
            "ended_at >= ?",
            Value::Integer(to_unix_micros(t)),
            &mut args,
        );
    }
    if let Some(t) = filter.until {
        push(
            "started_at <= ?",
            Value::Integer(to_unix_micros(t)),
            &mut args,
        );
    }
    if let Some(u) = &filter.user {
        push("user = ?", Value::Text(u.clone()), &mut args);
    }
    if let Some(o) = &filter.outcome {
        push("outcome = ?", Value::Text(o.as_str().into()), &mut args);
    }
    if let Some(k) = filter.kind {
        push("kind = ?", Value::Text(k.as_str().into()), &mut args);
    }
    if let Some(p) = &filter.port {
        push(
            "(instr(port, ?) > 0 OR instr(device, ?) > 0)",
            Value::Text(p.clone()),
            &mut args,
        );
    }
    (conds.join(" AND "), args)
}

fn decode_row(row: &Row<'_>, path: &Path) -> Result<Record, Error> {
    let id: i64 = row.get(0).map_err(|e| sqlite(path, "decode", e))?;
    let bad = |why: String| Error::Malformed {
        path: path.to_path_buf(),
        id,
        why,
    };
    let get_err = |e: rusqlite::Error| bad(e.to_string());
    let kind: String = row.get(1).map_err(get_err)?;
    let kind: Kind = kind
        .parse()
        .map_err(|e: crate::record::ParseNameError| bad(e.to_string()))?;
    let time = |i: usize, name: &str| -> Result<_, Error> {
        let us: i64 = row.get(i).map_err(get_err)?;
        from_unix_micros(us).ok_or_else(|| bad(format!("{name} {us} out of range")))
    };
    let started_at = time(2, "started_at")?;
    let ended_at = time(3, "ended_at")?;
    let outcome: String = row.get(8).map_err(get_err)?;
    let outcome: Outcome = outcome
        .parse()
        .map_err(|e: crate::record::ParseNameError| bad(e.to_string()))?;
    let u32_col = |i: usize, name: &str| -> Result<Option<u32>, Error> {
        let v: Option<i64> = row.get(i).map_err(get_err)?;
        v.map(|v| u32::try_from(v).map_err(|_| bad(format!("{name} {v} is not a u32"))))
            .transpose()
    };
    let u64_col = |i: usize, name: &str| -> Result<Option<u64>, Error> {
        let v: Option<i64> = row.get(i).map_err(get_err)?;
        v.map(|v| u64::try_from(v).map_err(|_| bad(format!("{name} {v} is negative"))))
            .transpose()
    };
    let bytes_in = u64_col(18, "bytes_in")?;
    let ppp = match bytes_in {
        None => None,
        Some(bytes_in) => Some(PppInfo {
            user: row.get(15).map_err(get_err)?,
            method: row.get(16).map_err(get_err)?,
            address: row.get(17).map_err(get_err)?,
            bytes_in,
            bytes_out: u64_col(19, "bytes_out")?.unwrap_or(0),
            packets_in: u64_col(20, "packets_in")?.unwrap_or(0),
            packets_out: u64_col(21, "packets_out")?.unwrap_or(0),
            cause: row.get(22).map_err(get_err)?,
        }),
    };
    Ok(Record {
        id: Some(id),
        kind,
        started_at,
        ended_at,
        port: row.get(4).map_err(get_err)?,
        device: row.get(5).map_err(get_err)?,
        remote: row.get(6).map_err(get_err)?,
        module: row.get(7).map_err(get_err)?,
        outcome,
        msg_id: u32_col(9, "msg_id")?,
        error_code: u32_col(10, "error_code")?,
        user: row.get(11).map_err(get_err)?,
        domain: row.get(12).map_err(get_err)?,
        detail: row.get(13).map_err(get_err)?,
        handoff: row.get(14).map_err(get_err)?,
        ppp,
    })
}

fn sqlite(path: &Path, op: &'static str, source: rusqlite::Error) -> Error {
    Error::Sqlite {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn check_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(Error::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn plain_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Options::default().busy_timeout)?;
    Ok(conn)
}

/// Reads page 1: a WAL log needs its WAL index (`-shm`) for that.
fn probe(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
}

/// A `file:` URI for `path` with `immutable=1` (RFC 3986 escapes).
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// A read-only connection (never `SQLITE_OPEN_READ_WRITE`, so nothing this
/// process does can write the file), and whether it is immutable.
///
/// Reading a WAL log needs its `-shm` WAL index, which SQLite creates (with
/// an empty `-wal`) when missing, and cannot in a directory the reader may
/// not write. So while no writer has the log open (no `-wal` file: a
/// writer that closes checkpoints and removes it) the file is read with
/// `immutable=1`, which creates nothing; [`Reader::refresh`] switches to a
/// normal connection once a writer appears.
fn open_read_only(path: &Path) -> Result<(Connection, bool), Error> {
    if wal_path(path).exists() {
        let conn = plain_read_only(path).map_err(|e| sqlite(path, "open", e))?;
        probe(&conn).map_err(|e| sqlite(path, "open", e))?;
        return Ok((conn, false));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(immutable_uri(path), flags)
        .map_err(|e| sqlite(path, "open", e))?;
    probe(&conn).map_err(|e| sqlite(path, "open", e))?;
    Ok((conn, true))
}

/// The file's schema version, refused when negative or newer than this
/// build's.
fn schema_version(
    conn: &Connection,
    path: &Path,
    op: impl Fn(rusqlite::Error) -> Error,
) -> Result<i64, Error> {
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .map_err(op)?;
    if version < 0 {
        return Err(Error::NotAnEventLog {
            path: path.to_path_buf(),
            why: format!("its schema version is {version}"),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// The checks of `migrate`, without writing: an event log of exactly this
/// build's schema version.
fn check_schema_read_only(conn: &Connection, path: &Path) -> Result<(), Error> {
    let op = |e| sqlite(path, "read schema version", e);
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(op)?;
    if app_id != APPLICATION_ID {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(op)?;
        let why = match (app_id, tables) {
            (0, 0) => "it is empty (has the server run yet?)".to_string(),
            (0, _) => "it is a SQLite database with other tables".to_string(),
            (id, _) => format!("its application_id is {id:#x}"),
        };
        return Err(Error::NotAnEventLog {
            path: path.to_path_buf(),
            why,
        });
    }
    let version = schema_version(conn, path, op)?;
    if version < SCHEMA_VERSION {
        return Err(Error::OlderSchema {
            path: path.to_path_buf(),
            found: version,
            current: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn setup_connection(conn: &Connection, path: &Path, opts: &Options) -> Result<(), Error> {
    conn.busy_timeout(opts.busy_timeout)
        .map_err(|e| sqlite(path, "set busy timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| sqlite(path, "enable WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    // FULL: in WAL mode every commit fsyncs the WAL, so a record is on disk
    // when its append returns.
    let sync: i64 = conn
        .pragma_update(None, "synchronous", "FULL")
        .and_then(|()| conn.pragma_query_value(None, "synchronous", |r| r.get(0)))
        .map_err(|e| sqlite(path, "set synchronous=FULL", e))?;
    // 2 = FULL (https://sqlite.org/pragma.html#pragma_synchronous).
    if sync != 2 {
        return Err(Error::NotDurable {
            path: path.to_path_buf(),
            level: sync,
        });
    }
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let op = |e| sqlite(path, "migrate schema", e);
    // Fast path without the write lock: already a current event log.
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(op)?;
    if app_id == APPLICATION_ID {
        let version: Option<i64> = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(op)?;
        if version == Some(SCHEMA_VERSION) {
            return Ok(());
        }
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(op)?;
    let app_id: i32 = tx
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(op)?;
    let tables: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(op)?;
    if app_id != APPLICATION_ID {
        if app_id != 0 {
            return Err(Error::NotAnEventLog {
                path: path.to_path_buf(),
                why: format!("its application_id is {app_id:#x}"),
            });
        }
        if tables > 0 {
            return Err(Error::NotAnEventLog {
                path: path.to_path_buf(),
                why: "it is a SQLite database with other tables".into(),
            });
        }
        tx.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (0);",
        )
        .map_err(op)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(op)?;
    }
    let version = schema_version(&tx, path, op)?;
    let from = usize::try_from(version).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql).map_err(op)?;
        tracing::info!(path = %path.display(), version = i + 1, "event log schema migrated");
    }
    if from < MIGRATIONS.len() {
        tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
            .map_err(op)?;
    }
    tx.commit().map_err(op)
}

fn writer_thread(mut conn: Connection, rx: mpsc::Receiver<Msg>, path: &Path, opts: WriterOpts) {
    let max_batch = opts.max_batch;
    let mut batch: Vec<(Record, Reply)> = Vec::with_capacity(max_batch);
    let mut done: Option<mpsc::SyncSender<()>> = None;
    // How many callers the previous commit answered: most of them will
    // append again within microseconds, so the next commit waits (at most
    // `linger`) for that many, instead of paying an fsync for a few.
    let mut last_batch = 1usize;
    let take = |msg: Msg, batch: &mut Vec<(Record, Reply)>, done: &mut Option<_>| match msg {
        Msg::Append(r, reply) => batch.push((r, reply)),
        Msg::Shutdown(d) => *done = Some(d),
    };
    loop {
        match rx.recv() {
            Ok(msg) => take(msg, &mut batch, &mut done),
            Err(_) => break,
        }
        // Group commit: take whatever else is already waiting...
        while done.is_none() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut batch, &mut done),
                Err(_) => break,
            }
        }
        // ...and linger briefly for the callers of the last commit.
        let want = last_batch.min(max_batch);
        if done.is_none() && batch.len() < want && !opts.linger.is_zero() {
            let deadline = Instant::now() + opts.linger;
            while done.is_none() && batch.len() < want {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(msg) => take(msg, &mut batch, &mut done),
                    Err(_) => break,
                }
            }
        }
        if done.is_some() {
            // Flush everything queued before we stop.
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Append(r, reply) = msg {
                    batch.push((r, reply));
                    if batch.len() >= max_batch {
                        commit_batch(&mut conn, &mut batch, path, &opts.stats);
                    }
                }
            }
        }
        last_batch = batch.len().max(1);
        if let Some(g) = &opts.stall {
            g.wait();
        }
        commit_batch(&mut conn, &mut batch, path, &opts.stats);
        if done.is_some() {
            break;
        }
    }
    // Appends racing with shutdown find the channel closed (Error::Closed).
    drop(rx);
    if let Err((_, e)) = conn.close() {
        tracing::warn!(path = %path.display(), error = %e, "event log close failed");
    }
    if let Some(d) = done {
        let _ = d.send(());
    }
}

struct WriterOpts {
    max_batch: usize,
    linger: Duration,
    stats: Arc<StatsCell>,
    stall: Option<StallGate>,
}

#[derive(Default)]
struct StatsCell {
    records: AtomicU64,
    commits: AtomicU64,
    failed: AtomicU64,
    /// Appended and not yet answered.
    pending: AtomicU64,
}

impl StatsCell {
    fn snapshot(&self) -> Stats {
        Stats {
            records: self.records.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Counters of the writer since the log was opened (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records durably committed.
    pub records: u64,
    /// Transactions committed; `records / commits` is the mean group size.
    pub commits: u64,
    /// Appends that failed (nothing stored).
    pub failed: u64,
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<(Record, Reply)>,
    path: &Path,
    stats: &StatsCell,
) {
    if batch.is_empty() {
        return;
    }
    let items = std::mem::take(batch);
    match insert_all(conn, items.iter().map(|(r, _)| r)) {
        Ok(ids) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.records.fetch_add(
                u64::try_from(ids.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            // Records are not logged here: the caller emits the human line
            // (or, on failure, says what went unrecorded).
            for ((_, reply), id) in items.into_iter().zip(ids) {
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                reply.send(Ok(id));
            }
        }
        Err(rusqlite::Error::SqliteFailure(code, msg)) => {
            // The database itself is failing (full, read-only, locked,
            // corrupt, I/O): every record in the batch gets the error.
            tracing::error!(
                path = %path.display(),
                error = %rusqlite::Error::SqliteFailure(code, msg.clone()),
                records = items.len(),
                "event log append failed"
            );
            stats.failed.fetch_add(
                u64::try_from(items.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            for (_, reply) in items {
                let e = rusqlite::Error::SqliteFailure(code, msg.clone());
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                reply.send(Err(sqlite(path, "append", e)));
            }
        }
        Err(e) if items.len() == 1 => {
            tracing::error!(path = %path.display(), error = %e, "event log append failed");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            if let Some((_, reply)) = items.into_iter().next() {
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                reply.send(Err(sqlite(path, "append", e)));
            }
        }
        Err(_) => {
            // Something specific to one record: commit each alone so the
            // others are not lost with it.
            for item in items {
                let mut one = vec![item];
                commit_batch(conn, &mut one, path, stats);
            }
        }
    }
}

fn insert_all<'a>(
    conn: &mut Connection,
    recs: impl Iterator<Item = &'a Record>,
) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::new();
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in recs {
            let ppp = r.ppp.as_ref();
            let sat = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            stmt.execute(params![
                r.kind.as_str(),
                to_unix_micros(r.started_at),
                to_unix_micros(r.ended_at),
                r.port,
                r.device,
                r.remote,
                r.module,
                r.outcome.as_str(),
                r.msg_id,
                r.error_code,
                r.user,
                r.domain,
                r.detail,
                r.handoff,
                ppp.and_then(|p| p.user.as_deref()),
                ppp.and_then(|p| p.method.as_deref()),
                ppp.and_then(|p| p.address.as_deref()),
                ppp.map(|p| sat(p.bytes_in)),
                ppp.map(|p| sat(p.bytes_out)),
                ppp.map(|p| sat(p.packets_in)),
                ppp.map(|p| sat(p.packets_out)),
                ppp.and_then(|p| p.cause.as_deref()),
            ])?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit()?;
    Ok(ids)
}
