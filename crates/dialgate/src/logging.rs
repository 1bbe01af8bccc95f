//! The process's log subscriber: plain lines on stderr, `DIALGATE_LOG`
//! filters (`info` for `serve`, `warn` for `dial` by default).

use std::ffi::OsStr;
use std::io::IsTerminal;

/// Colours only for a person at a terminal, and never with `NO_COLOR` set
/// to a non-empty value (<https://no-color.org>).
pub(crate) fn ansi_wanted(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the subscriber (once; later calls do nothing).
pub(crate) fn init(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("DIALGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = ansi_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_at_a_terminal_without_no_color() {
        assert!(ansi_wanted(true, None));
        assert!(ansi_wanted(true, Some(OsStr::new(""))));
        assert!(!ansi_wanted(true, Some(OsStr::new("1"))));
        assert!(!ansi_wanted(false, None));
        assert!(!ansi_wanted(false, Some(OsStr::new("1"))));
    }
}
