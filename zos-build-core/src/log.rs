//! Log events: what a build prints, one line at a time.
//!
//! Docker hands output over in frames whose boundaries have nothing to do with
//! lines: a frame may hold half a line or a thousand. [`LineSplitter`] turns
//! those frames back into lines, one splitter per stream so that an unfinished
//! stdout line is never glued to a stderr one, and numbers them in the order
//! they were completed. Output that is not UTF-8 is passed on lossily (invalid
//! bytes become U+FFFD) rather than dropped.

use std::time::SystemTime;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// The build's standard output.
    Stdout,
    /// The build's standard error.
    Stderr,
    /// A message of the engine itself (image pull progress, timeouts, ...).
    System,
}

impl LogStream {
    /// A short lowercase name: `stdout`, `stderr` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::System => "system",
        }
    }
}

/// One line of a build's log, without its line terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Position of the line in the build's log, from 0, without gaps.
    pub seq: u64,
    /// The stream the line came from.
    pub stream: LogStream,
    /// When the engine received the line.
    pub timestamp: SystemTime,
    /// The text, decoded lossily from UTF-8.
    pub text: String,
}

/// Numbers lines across all streams of one build.
#[derive(Debug, Default)]
pub struct Sequencer {
    next: u64,
}

impl Sequencer {
    /// Makes an event with the next sequence number.
    pub fn event(&mut self, stream: LogStream, text: String) -> LogEvent {
        let seq = self.next;
        self.next += 1;
        LogEvent {
            seq,
            stream,
            timestamp: SystemTime::now(),
            text,
        }
    }

    /// How many events were numbered so far.
    pub fn count(&self) -> u64 {
        self.next
    }
}

/// Reassembles lines of one stream from arbitrary chunks of bytes.
#[derive(Debug)]
pub struct LineSplitter {
    stream: LogStream,
    partial: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: LogStream) -> Self {
        LineSplitter {
            stream,
            partial: Vec::new(),
        }
    }

    /// Feeds a chunk, pushing every line it completes onto `out`.
    ///
    /// A trailing `\r` (CRLF output) is removed with the `\n`.
    pub fn push(&mut self, chunk: &[u8], seq: &mut Sequencer, out: &mut Vec<LogEvent>) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            rest = &tail[1..];
            let text = if self.partial.is_empty() {
                decode(line)
            } else {
                self.partial.extend_from_slice(line);
                let text = decode(&self.partial);
                self.partial.clear();
                text
            };
            out.push(seq.event(self.stream, text));
        }
        self.partial.extend_from_slice(rest);
    }

    /// Delivers an unterminated last line, if any.
    pub fn finish(&mut self, seq: &mut Sequencer, out: &mut Vec<LogEvent>) {
        if !self.partial.is_empty() {
            let text = decode(&self.partial);
            self.partial.clear();
            out.push(seq.event(self.stream, text));
        }
    }
}

fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(events: &[LogEvent]) -> Vec<&str> {
        events.iter().map(|e| e.text.as_str()).collect()
    }

    #[test]
    fn splits_across_chunks_and_keeps_partial_last_line() {
        let mut seq = Sequencer::default();
        let mut split = LineSplitter::new(LogStream::Stdout);
        let mut out = Vec::new();
        split.push(b"one\ntw", &mut seq, &mut out);
        split.push(b"o\r\n\nthree", &mut seq, &mut out);
        assert_eq!(texts(&out), ["one", "two", ""]);
        split.finish(&mut seq, &mut out);
        assert_eq!(texts(&out), ["one", "two", "", "three"]);
        let seqs: Vec<u64> = out.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut seq = Sequencer::default();
        let mut split = LineSplitter::new(LogStream::Stderr);
        let mut out = Vec::new();
        split.push(b"a\xffb\n", &mut seq, &mut out);
        assert_eq!(texts(&out), ["a\u{fffd}b"]);
        assert_eq!(out[0].stream, LogStream::Stderr);
    }

    #[test]
    fn utf8_split_between_chunks_survives() {
        let mut seq = Sequencer::default();
        let mut split = LineSplitter::new(LogStream::Stdout);
        let mut out = Vec::new();
        let bytes = "é\n".as_bytes();
        split.push(&bytes[..1], &mut seq, &mut out);
        split.push(&bytes[1..], &mut seq, &mut out);
        assert_eq!(texts(&out), ["é"]);
    }
}
