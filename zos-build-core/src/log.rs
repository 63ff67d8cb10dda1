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
    /// A sequencer whose first event is numbered `seq`: for a log that
    /// already holds `seq` lines.
    pub fn starting_at(seq: u64) -> Sequencer {
        Sequencer { next: seq }
    }

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

    /// The number the next event gets (the count of events numbered, for a
    /// sequencer started at 0).
    pub fn count(&self) -> u64 {
        self.next
    }

    /// Takes back the numbers from `next` on, for events that were made
    /// but will never be delivered, so that the numbering keeps no gap.
    pub(crate) fn rewind(&mut self, next: u64) {
        self.next = self.next.min(next);
    }
}

/// The longest line a log holds, in bytes of input: a longer one is cut into
/// pieces of at most this size, so that a build printing a gigabyte without
/// a newline never makes anyone buffer it whole. 1 MiB keeps the long lines
/// builds really print (a minified file, a JSON document) whole; the live
/// feed sends a line longer than its 64 KiB frames in marked pieces.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Reassembles lines of one stream from arbitrary chunks of bytes.
///
/// A line longer than [`MAX_LINE_BYTES`] is delivered as consecutive pieces
/// of at most that size; the splitter never holds more than one piece.
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
        loop {
            // `partial` is always shorter than a piece; a newline may follow
            // a full piece directly.
            let room = MAX_LINE_BYTES - self.partial.len();
            let window = &rest[..rest.len().min(room + 1)];
            if let Some(pos) = window.iter().position(|&b| b == b'\n') {
                let line = &rest[..pos];
                rest = &rest[pos + 1..];
                let text = if self.partial.is_empty() {
                    decode(line)
                } else {
                    self.partial.extend_from_slice(line);
                    let text = decode(&self.partial);
                    self.partial.clear();
                    text
                };
                out.push(seq.event(self.stream, text));
            } else if rest.len() > room {
                // Too long: deliver a full piece, keep an unfinished character.
                self.partial.extend_from_slice(&rest[..room]);
                rest = &rest[room..];
                let cut = char_boundary(&self.partial);
                let tail = self.partial.split_off(cut);
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial = tail;
                out.push(seq.event(self.stream, text));
            } else {
                self.partial.extend_from_slice(rest);
                return;
            }
        }
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

/// Where to cut `bytes` so that a UTF-8 character at its end is not split:
/// its length, or the start of an unfinished last character.
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte & 0xC0 != 0x80 {
            let width = match byte {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if width > back { len - back } else { len };
        }
    }
    len
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
    fn long_lines_are_cut_into_pieces_never_buffered_whole() {
        let mut seq = Sequencer::default();
        let mut split = LineSplitter::new(LogStream::Stdout);
        let mut out = Vec::new();
        // Three caps and 8 KiB without a newline, fed in odd chunks, then a
        // short line.
        let long = vec![b'a'; 3 * MAX_LINE_BYTES + 8 * 1024];
        for chunk in long.chunks(70_000) {
            split.push(chunk, &mut seq, &mut out);
            assert!(split.partial.len() < MAX_LINE_BYTES);
        }
        split.push(b"\nshort\n", &mut seq, &mut out);
        let lengths: Vec<usize> = out.iter().map(|e| e.text.len()).collect();
        assert_eq!(
            lengths,
            [MAX_LINE_BYTES, MAX_LINE_BYTES, MAX_LINE_BYTES, 8 * 1024, 5]
        );
        // A line of exactly the maximum stays one line.
        let mut out = Vec::new();
        let mut exact = vec![b'b'; MAX_LINE_BYTES];
        exact.push(b'\n');
        split.push(&exact, &mut seq, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text.len(), MAX_LINE_BYTES);
    }

    #[test]
    fn pieces_are_cut_between_characters() {
        let mut seq = Sequencer::default();
        let mut split = LineSplitter::new(LogStream::Stdout);
        let mut out = Vec::new();
        let text = "é".repeat(MAX_LINE_BYTES); // two bytes each
        let mut bytes = b"x".to_vec(); // puts every cut inside a character
        bytes.extend_from_slice(text.as_bytes());
        split.push(&bytes, &mut seq, &mut out);
        split.finish(&mut seq, &mut out);
        assert!(out.iter().all(|e| !e.text.contains('\u{fffd}')));
        assert!(out.iter().all(|e| e.text.len() <= MAX_LINE_BYTES));
        let joined: String = out.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(joined, format!("x{text}"));
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
