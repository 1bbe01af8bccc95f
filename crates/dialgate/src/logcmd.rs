//! `dialgate log`: query and follow the event log.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use eventlog::{Filter, Kind, Outcome, Reader, parse_time_arg};
use time::OffsetDateTime;

use crate::config::Config;

/// Filters and output of `dialgate log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Records at or after this time: RFC 3339, a date, or an age (30m, 2h, 1d).
    #[arg(long)]
    since: Option<String>,
    /// Records at or before this time.
    #[arg(long)]
    until: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this outcome (dialogs: success, failure, error, module-defect,
    /// begin-failed, caller-hung-up, dialog-timeout, shutdown, refused; PPP:
    /// session-ended, ppp-auth-failed, ppp-name-mismatch, callback; lines:
    /// callback-connected, callback-failed, modem-init-failed).
    #[arg(long)]
    outcome: Option<String>,
    /// Only port groups or devices containing this text.
    #[arg(long)]
    port: Option<String>,
    /// Only this kind (dialog, ppp-session, line).
    #[arg(long)]
    kind: Option<String>,
    /// At most this many (the most recent).
    #[arg(long, short = 'n')]
    limit: Option<usize>,
    /// One JSON object a line.
    #[arg(long)]
    json: bool,
    /// Keep printing new records as they are written (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    follow: bool,
}

fn filter(args: &LogArgs) -> Result<Filter, String> {
    let now = OffsetDateTime::now_utc();
    let time = |s: &Option<String>| -> Result<Option<OffsetDateTime>, String> {
        s.as_deref()
            .map(|s| parse_time_arg(s, now).map_err(|e| e.to_string()))
            .transpose()
    };
    Ok(Filter {
        since: time(&args.since)?,
        until: time(&args.until)?,
        user: args.user.clone(),
        outcome: args
            .outcome
            .as_deref()
            .map(|o| o.parse::<Outcome>().map_err(|e| e.to_string()))
            .transpose()?,
        port: args.port.clone(),
        kind: args
            .kind
            .as_deref()
            .map(|k| k.parse::<Kind>().map_err(|e| e.to_string()))
            .transpose()?,
        limit: args.limit,
    })
}

/// Runs `dialgate log`.
pub fn main(cfg: &Config, args: LogArgs) -> ExitCode {
    let f = match filter(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dialgate log: {e}");
            return ExitCode::from(2);
        }
    };
    // Read-only: never created, migrated or written (the errors name the
    // file: missing, not an event log, older or newer schema).
    let reader = match Reader::open_existing(&cfg.event_log) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialgate log: cannot read the event log: {e}");
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let print = |out: &mut std::io::StdoutLock<'_>, r: &eventlog::Record| -> std::io::Result<()> {
        if args.json {
            writeln!(out, "{}", r.to_json_line())
        } else {
            writeln!(out, "{}", r.human_line())
        }
    };
    let records = match reader.query(&f) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialgate log: {e}");
            return ExitCode::from(1);
        }
    };
    let mut last = records.iter().filter_map(|r| r.id).max().unwrap_or(0);
    for r in &records {
        if print(&mut out, r).is_err() {
            return ExitCode::SUCCESS; // stdout closed (a pager quit)
        }
    }
    if !args.follow {
        return ExitCode::SUCCESS;
    }
    if last == 0 {
        last = match reader.last_id() {
            Ok(id) => id.unwrap_or(0),
            Err(e) => {
                eprintln!("dialgate log: {e}");
                return ExitCode::from(1);
            }
        };
    }
    let follow = Filter {
        limit: Some(1000),
        ..f
    };
    loop {
        let _ = out.flush();
        match reader.follow(last, &follow) {
            Ok(new) => {
                for r in &new {
                    if print(&mut out, r).is_err() {
                        return ExitCode::SUCCESS;
                    }
                    last = last.max(r.id.unwrap_or(last));
                }
                if !new.is_empty() {
                    continue;
                }
            }
            Err(e) => {
                eprintln!("dialgate log: {e}");
                return ExitCode::from(1);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
