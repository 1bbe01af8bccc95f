//! The dialgate event log: one durable record per security-host dialog and
//! per PPP session, in SQLite (bundled), with group commit.
//!
//! - [`Record`] is one entry; [`Outcome`] and [`Kind`] have stable
//!   lowercase names; records serialise to JSON lines.
//! - [`EventLog::open`] opens or creates the file (WAL, `synchronous=FULL`,
//!   schema migrations) and starts a writer thread. [`Writer::append`]
//!   (blocking) and [`Writer::append_async`] return once the record is
//!   committed to disk; the writer commits every record waiting in one
//!   transaction (group commit), so many concurrent callers share one fsync.
//! - [`Reader`] answers [`Filter`] queries and `--follow` polling.
//! - [`parse_time_arg`] reads `--since`/`--until` arguments.
//!
//! This crate does not echo records to `tracing`: the caller does, with
//! [`Record::human_line`], once [`Writer::append`] has answered (so it can
//! also say "unrecorded" when the append failed). The writer thread only
//! logs its own failures.
//!
//! **Secrets never go in here.** Callers must not put passwords, OTPs, PPP
//! secrets or anything typed at a hidden prompt in any field, `detail`
//! included: the log is readable by operators, exported as JSON and echoed
//! to the journal.

/// The `time` crate this API uses (for [`time::OffsetDateTime`] values).
pub use time;

mod error;
mod filter;
mod record;
mod store;

pub use error::Error;
pub use filter::{Filter, TimeArgError, parse_time_arg};
pub use record::{
    Kind, MAX_OUTCOME_LEN, MAX_TEXT_LEN, OtherOutcome, Outcome, ParseNameError, PppInfo, Record,
    TRUNCATED_MARK, normalize_time, write_json_lines,
};
pub use store::{
    APPLICATION_ID, EventLog, FOLLOW_BATCH, Options, Reader, SCHEMA_VERSION, StallGate, Stats,
    Writer,
};
