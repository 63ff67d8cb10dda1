//! The server's own log (not the builds' logs, which go through the log
//! sinks): what it writes, and in which form.
//!
//! Why it is shaped this way: the log goes to a terminal while someone
//! watches, and to a file, journald or a log shipper the rest of the time.
//! Colours help the first and are noise (escape codes) in the others, so
//! they are used only when standard error is a terminal and `NO_COLOR` is not
//! set; a shipper wants one JSON object per line (`log-format: json`). The
//! level comes from `RUST_LOG` (default `info`). Every line about a build
//! carries its id as the field `build`, because the scheduler runs each
//! build inside a span of that name.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Whether the text log is coloured: on a terminal, unless `NO_COLOR` is set
/// (to anything but the empty string, as <https://no-color.org> says).
pub fn use_colours(no_color: Option<&str>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the log for the whole process; call once, first thing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => {
            let colours = use_colours(
                std::env::var("NO_COLOR").ok().as_deref(),
                std::io::stderr().is_terminal(),
            );
            builder.with_ansi(colours).init()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colours(None, true));
        assert!(!use_colours(None, false));
        assert!(!use_colours(Some("1"), true));
        assert!(use_colours(Some(""), true), "an empty NO_COLOR is unset");
    }
}
