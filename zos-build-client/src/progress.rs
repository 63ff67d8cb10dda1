//! The waiting line: while a followed build is queued or preparing and has
//! printed nothing yet, a spinner on stderr says so and for how long, on a
//! terminal only. It is erased for good when the first log line comes or
//! the build's status moves on, so it never ends up in the log on screen,
//! and it never reaches a file or a pipe.

use crate::builds::BuildStatus;
use std::io::Write;
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// How often the spinner turns.
pub const TICK: Duration = Duration::from_millis(120);
/// Erases the current line of a terminal.
const ERASE_LINE: &str = "\r\x1b[2K";

/// The text of the waiting line.
pub fn waiting_line(frame: usize, id: &str, status: &BuildStatus, waited: Duration) -> String {
    let glyph = FRAMES[frame % FRAMES.len()];
    let what = match status {
        BuildStatus::Queued => "is queued, waiting for a free slot",
        BuildStatus::Initializing | BuildStatus::Preparing => "is preparing (source, base image)",
        _ => "is starting",
    };
    format!(
        "{glyph} build {id} {what} ({})",
        crate::clock::duration(waited.as_secs_f64())
    )
}

/// The spinner of one followed build.
#[derive(Debug)]
pub struct Spinner {
    id: String,
    status: BuildStatus,
    since: Instant,
    frame: usize,
    enabled: bool,
    drawn: bool,
}

impl Spinner {
    /// A spinner for build `id` in `status`; it only ever draws when
    /// `enabled` (stderr is a terminal) and while the status is waiting.
    pub fn new(id: &str, status: BuildStatus, enabled: bool) -> Spinner {
        Spinner {
            id: id.to_string(),
            status,
            since: Instant::now(),
            frame: 0,
            enabled,
            drawn: false,
        }
    }

    /// Whether it still has something to show.
    pub fn is_active(&self) -> bool {
        self.enabled && self.status.is_waiting()
    }

    /// The build's status changed.
    pub fn set_status(&mut self, status: BuildStatus, err: &mut impl Write) {
        self.status = status;
        if !self.is_active() {
            self.erase(err);
        }
    }

    /// Draws the next frame.
    pub fn tick(&mut self, err: &mut impl Write) {
        if !self.is_active() {
            return;
        }
        let line = waiting_line(self.frame, &self.id, &self.status, self.since.elapsed());
        self.frame += 1;
        // The spinner is decoration: a stderr that cannot be written is no
        // reason to stop following.
        let _ = write!(err, "{ERASE_LINE}{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line for good: the build's log has started, and speaks
    /// for itself.
    pub fn stop(&mut self, err: &mut impl Write) {
        self.erase(err);
        self.enabled = false;
    }

    /// Erases the line if it is drawn (before a log line is printed).
    pub fn erase(&mut self, err: &mut impl Write) {
        if self.drawn {
            let _ = write!(err, "{ERASE_LINE}");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_line_says_what_and_how_long() {
        let line = waiting_line(0, "a1", &BuildStatus::Queued, Duration::from_secs(75));
        assert_eq!(
            line,
            "⠋ build a1 is queued, waiting for a free slot (1m15s)"
        );
        let line = waiting_line(11, "a1", &BuildStatus::Initializing, Duration::ZERO);
        assert_eq!(line, "⠙ build a1 is preparing (source, base image) (0s)");
    }

    #[test]
    fn it_draws_only_when_enabled_and_waiting_and_erases_itself() {
        let mut err = Vec::new();
        let mut off = Spinner::new("a1", BuildStatus::Queued, false);
        off.tick(&mut err);
        assert!(err.is_empty(), "not a terminal: nothing");

        let mut spinner = Spinner::new("a1", BuildStatus::Queued, true);
        assert!(spinner.is_active());
        spinner.tick(&mut err);
        let drawn = String::from_utf8_lossy(&err).into_owned();
        assert!(
            drawn.starts_with(ERASE_LINE) && drawn.contains("queued"),
            "{drawn:?}"
        );
        err.clear();
        spinner.set_status(BuildStatus::Building, &mut err);
        assert_eq!(err, ERASE_LINE.as_bytes(), "erased once the script runs");
        assert!(!spinner.is_active());
        err.clear();
        spinner.tick(&mut err);
        spinner.erase(&mut err);
        assert!(err.is_empty(), "nothing more once running: {err:?}");

        let mut stopped = Spinner::new("b2", BuildStatus::Initializing, true);
        stopped.tick(&mut err);
        err.clear();
        stopped.stop(&mut err);
        assert_eq!(err, ERASE_LINE.as_bytes(), "erased when the log starts");
        assert!(!stopped.is_active());
        err.clear();
        stopped.tick(&mut err);
        assert!(err.is_empty(), "and not drawn again");
    }
}
