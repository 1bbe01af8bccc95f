//! durable event log (SQLite)
