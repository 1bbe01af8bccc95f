//! Errors of the event log. Each names the file and what was being done.

use std::path::PathBuf;

/// An event-log failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory that should hold the log does not exist (the caller
    /// creates it; we do not guess permissions).
    #[error("event log {path}: directory {dir} does not exist (create it first)")]
    NoDirectory {
        /// The log file.
        path: PathBuf,
        /// Its missing parent.
        dir: PathBuf,
    },
    /// `open_existing` on a file that does not exist.
    #[error("event log {path}: no such file (has the server run yet?)")]
    NotFound {
        /// The log file.
        path: PathBuf,
    },
    /// The file can only be opened read-only (permissions, immutable flag,
    /// read-only filesystem): no record could be written.
    #[error("event log {path}: file is read-only, records cannot be written")]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// SQLite failed while doing `op` (open, migrate, append, query...).
    /// The source says why: disk full, read-only, locked, corrupt...
    #[error("event log {path}: {op} failed: {source}")]
    Sqlite {
        /// The log file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is a SQLite database but not a dialgate event log.
    #[error("event log {path}: not a dialgate event log ({why})")]
    NotAnEventLog {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        why: String,
    },
    /// The file was written by a newer dialgate with a schema we do not know.
    #[error(
        "event log {path}: schema version {found} is newer than this dialgate supports ({supported}); upgrade dialgate"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A reader found a schema older than this build's: only the writer
    /// ([`crate::EventLog::open`], i.e. `dialgate serve`) migrates, a
    /// reader never writes the file.
    #[error(
        "event log {path}: schema version {found} is older than this dialgate's ({current}); `dialgate serve` migrates it when it next starts"
    )]
    OlderSchema {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// The version this build writes.
        current: i64,
    },
    /// SQLite refused to use write-ahead logging for this file.
    #[error("event log {path}: cannot enable WAL mode (journal mode is `{mode}`)")]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// SQLite did not accept `synchronous=FULL`.
    #[error("event log {path}: cannot set synchronous=FULL (level is {level})")]
    NotDurable {
        /// The file.
        path: PathBuf,
        /// The level SQLite kept.
        level: i64,
    },
    /// A stored row could not be decoded (hand-edited or corrupt file).
    #[error("event log {path}: record {id} is malformed: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Row id.
        id: i64,
        /// What is wrong.
        why: String,
    },
    /// The writer has shut down (or its thread is gone): nothing was written.
    #[error("event log {path}: writer is closed, record not written")]
    Closed {
        /// The file.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("event log {path}: cannot start writer thread: {source}")]
    Thread {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True if this error means records cannot currently be written (the
    /// server must refuse new callers rather than serve them unrecorded).
    pub fn is_write_failure(&self) -> bool {
        matches!(
            self,
            Error::Sqlite { .. } | Error::Closed { .. } | Error::ReadOnly { .. }
        )
    }

    /// SQLite's primary error code, if this came from SQLite.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Error::Sqlite { source, .. } => source.sqlite_error_code(),
            _ => None,
        }
    }
}
