//! The bookkeeping that lets `follow` survive a dropped connection: where in
//! the log the client is, and how long it keeps trying to get back.
//!
//! The server sends a log from any byte offset (`?offset=N`), so the client
//! only has to count: every byte received is either printed or held in the
//! cursor (the start of a line whose end has not come yet), and the next
//! connection asks for the log from the count on. Nothing is printed twice,
//! nothing is skipped, wherever the connection broke, even in the middle of
//! a line or of a multi-byte character. Both pieces are pure (no I/O, the
//! clock passed in) so they are tested exhaustively.

use std::time::{Duration, Instant};

/// Where a followed log stands.
#[derive(Debug, Default)]
pub struct LogCursor {
    received: u64,
    partial: Vec<u8>,
}

impl LogCursor {
    /// At the start of the log.
    pub fn new() -> LogCursor {
        LogCursor::default()
    }

    /// The offset to ask the server for: every byte before it is printed or
    /// held.
    pub fn offset(&self) -> u64 {
        self.received
    }

    /// Takes received bytes; returns the whole lines now complete (each with
    /// its `\n`), to print. The rest waits for its end.
    pub fn accept(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.received += chunk.len() as u64;
        match chunk.iter().rposition(|&b| b == b'\n') {
            None => {
                self.partial.extend_from_slice(chunk);
                Vec::new()
            }
            Some(last) => {
                let mut lines = std::mem::take(&mut self.partial);
                lines.extend_from_slice(&chunk[..=last]);
                self.partial.extend_from_slice(&chunk[last + 1..]);
                lines
            }
        }
    }

    /// The log has ended: what is held (a last line without `\n`).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }
}

/// How long `follow` keeps trying to reconnect, and how long it waits
/// between tries: 250 ms, doubling up to 4 s, until the window (counted from
/// the first failure since the last progress) is over.
#[derive(Debug)]
pub struct Retry {
    window: Duration,
    failing_since: Option<Instant>,
    attempts: u32,
}

/// The first wait.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest wait.
const MAX_DELAY: Duration = Duration::from_secs(4);

impl Retry {
    /// Gives up after `window` without progress.
    pub fn new(window: Duration) -> Retry {
        Retry {
            window,
            failing_since: None,
            attempts: 0,
        }
    }

    /// Something was received: the next failure starts a new window.
    pub fn progressed(&mut self) {
        self.failing_since = None;
        self.attempts = 0;
    }

    /// A connection was made (the server answered): the window starts
    /// again at the next failure, but the waits keep growing, so a server
    /// that answers and then drops every connection at once is not
    /// hammered. A quiet build whose idle connections are cut now and then
    /// is followed for as long as it runs.
    pub fn connected(&mut self) {
        self.failing_since = None;
    }

    /// A try failed at `now`: how long to wait before the next one, or
    /// `None` when the window is over.
    pub fn failed(&mut self, now: Instant) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert(now);
        let spent = now.saturating_duration_since(since);
        let left = self.window.checked_sub(spent).filter(|l| !l.is_zero())?;
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << self.attempts.min(8))
            .min(MAX_DELAY);
        self.attempts += 1;
        Some(delay.min(left))
    }

    /// Tries made since the last progress.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] =
        "[zos-build] fetching\nstep 1\nünïcödé ✓\n\nno newline at the end".as_bytes();

    /// Follows LOG cut into pieces at `cuts`, the connection dropping after
    /// every piece, each new connection asking from `offset()`; returns what
    /// was printed.
    fn follow_with_drops(cuts: &[usize]) -> Vec<u8> {
        let mut cursor = LogCursor::new();
        let mut printed = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(LOG.len());
        for end in bounds {
            // The server answers from the offset asked for.
            let start = cursor.offset() as usize;
            let end = end.max(start);
            printed.extend(cursor.accept(&LOG[start..end]));
        }
        printed.extend(cursor.finish());
        printed
    }

    #[test]
    fn every_single_cut_prints_the_log_exactly_once() {
        for cut in 0..=LOG.len() {
            assert_eq!(follow_with_drops(&[cut]), LOG, "cut at {cut}");
        }
    }

    #[test]
    fn every_pair_of_cuts_prints_the_log_exactly_once() {
        for a in 0..=LOG.len() {
            for b in a..=LOG.len() {
                assert_eq!(follow_with_drops(&[a, b]), LOG, "cuts at {a} and {b}");
            }
        }
    }

    #[test]
    fn only_whole_lines_are_released_and_the_offset_counts_everything() {
        let mut cursor = LogCursor::new();
        assert_eq!(cursor.accept(b"ab"), b"");
        assert_eq!(cursor.offset(), 2);
        assert_eq!(cursor.accept(b"c\nde"), b"abc\n");
        assert_eq!(cursor.offset(), 6);
        assert_eq!(cursor.accept(b"\n\n"), b"de\n\n");
        assert_eq!(cursor.finish(), b"");
        assert_eq!(cursor.accept(b"tail"), b"");
        assert_eq!(cursor.finish(), b"tail");
        assert_eq!(cursor.offset(), 12);
    }

    #[test]
    fn retries_back_off_and_give_up_after_the_window() {
        let t0 = Instant::now();
        let mut retry = Retry::new(Duration::from_secs(30));
        let mut now = t0;
        let mut delays = Vec::new();
        while let Some(delay) = retry.failed(now) {
            delays.push(delay);
            now += delay;
        }
        assert_eq!(
            delays[..5],
            [250, 500, 1000, 2000, 4000].map(Duration::from_millis)
        );
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        let total: Duration = delays.iter().sum();
        assert_eq!(
            total,
            Duration::from_secs(30),
            "tries for the whole window, no longer"
        );
        assert_eq!(retry.attempts() as usize, delays.len());
    }

    #[test]
    fn a_connection_opens_a_new_window_but_keeps_the_pace() {
        let t0 = Instant::now();
        let mut retry = Retry::new(Duration::from_secs(10));
        assert_eq!(retry.failed(t0), Some(Duration::from_millis(250)));
        assert_eq!(retry.failed(t0), Some(Duration::from_millis(500)));
        retry.connected();
        // Cut again long after: still within a (new) window.
        let later = t0 + Duration::from_secs(300);
        assert_eq!(retry.failed(later), Some(Duration::from_millis(1000)));
        assert_eq!(retry.failed(later + Duration::from_secs(10)), None);
    }

    #[test]
    fn progress_opens_a_new_window() {
        let t0 = Instant::now();
        let mut retry = Retry::new(Duration::from_secs(10));
        assert!(retry.failed(t0).is_some());
        assert_eq!(retry.failed(t0 + Duration::from_secs(10)), None);
        retry.progressed();
        assert_eq!(
            retry.failed(t0 + Duration::from_secs(100)),
            Some(FIRST_DELAY),
            "a new window, from the first delay"
        );
        assert!(retry.failed(t0 + Duration::from_secs(105)).is_some());
        assert_eq!(retry.failed(t0 + Duration::from_secs(111)), None);
    }
}
