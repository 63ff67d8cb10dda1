//! `zos_build_core::log::LineSplitter` on arbitrary output cut into
//! arbitrary chunks. The input is a list of chunks, each given as bytes or
//! as a byte pattern repeated up to 1,100,000 bytes, so that lines longer than
//! the 1 MiB cap are cheap to reach; at most 2,200,000 bytes in all, which
//! keeps runs fast.
//!
//! Invariants:
//! - no piece holds more than the cap (`MAX_LINE_BYTES`, 1,048,576 bytes) of
//!   the input. Its text may be longer: lossy decoding writes each invalid
//!   byte as U+FFFD, three bytes, so the bound checked is the text's length
//!   less 2 bytes per U+FFFD. (Checking the text alone against the cap fails
//!   at once: when the cap was 65,536, 61,787 bytes `0x93` and no newline
//!   made one event of 185,361 bytes; see the table in docs/testing.md.);
//! - sequence numbers count from 0 without gaps, on the splitter's stream;
//! - nothing is lost or invented: the pieces joined equal the input with its
//!   line ends removed, modulo lossy decoding and `\r` (compared on the
//!   ASCII characters other than `\r`, which lossy decoding never changes);
//! - every `\n` ends at least one event;
//! - when no line is longer than the cap, the events are exactly the lines,
//!   each without its `\r\n` or `\n` and decoded lossily.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use zos_build_core::log::{LineSplitter, LogStream, Sequencer};

/// The cap the splitter promises (1 MiB).
const CAP: usize = zos_build_core::log::MAX_LINE_BYTES;

#[derive(Arbitrary, Debug)]
enum Chunk {
    Bytes(Vec<u8>),
    Repeat { pattern: Vec<u8>, length: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    stderr: bool,
    chunks: Vec<Chunk>,
}

fuzz_target!(|input: Input| {
    let stream = if input.stderr {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    let mut splitter = LineSplitter::new(stream);
    let mut sequencer = Sequencer::default();
    let mut events = Vec::new();
    let mut all = Vec::new();
    for chunk in &input.chunks {
        let bytes = match chunk {
            Chunk::Bytes(bytes) => bytes.clone(),
            Chunk::Repeat { pattern, length } if !pattern.is_empty() => {
                // `repeat` copies whole patterns: far cheaper than a byte
                // iterator under the fuzzer's instrumentation.
                let length = *length as usize % 1_100_001;
                let mut bytes = pattern.repeat(length / pattern.len() + 1);
                bytes.truncate(length);
                bytes
            }
            Chunk::Repeat { .. } => Vec::new(),
        };
        if all.len() + bytes.len() > 2_200_000 {
            break;
        }
        splitter.push(&bytes, &mut sequencer, &mut events);
        all.extend_from_slice(&bytes);
    }
    splitter.finish(&mut sequencer, &mut events);

    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64);
        assert_eq!(event.stream, stream);
        let replaced = event.text.matches('\u{fffd}').count();
        assert!(
            event.text.len() - 2 * replaced <= CAP,
            "event {i} holds more than {CAP} bytes of input: {} bytes of text, {replaced} U+FFFD",
            event.text.len()
        );
    }
    assert_eq!(sequencer.count(), events.len() as u64);

    let newlines = all.iter().filter(|&&b| b == b'\n').count();
    assert!(
        events.len() >= newlines,
        "{} events, {newlines} lines",
        events.len()
    );

    // Lossy decoding keeps every ASCII byte as it is, so the input's ASCII
    // bytes can be compared with the text's directly.
    let ascii = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .copied()
            .filter(|&b| b.is_ascii() && b != b'\r' && b != b'\n')
            .collect()
    };
    let joined: Vec<u8> = events
        .iter()
        .flat_map(|e| ascii(e.text.as_bytes()))
        .collect();
    assert!(joined == ascii(&all), "text lost or invented");

    let mut lines: Vec<&[u8]> = all.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    if lines.iter().all(|line| line.len() <= CAP) {
        let expected: Vec<String> = lines
            .iter()
            .map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                String::from_utf8_lossy(line).into_owned()
            })
            .collect();
        let texts: Vec<&str> = events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, expected, "short lines come out whole");
    }
});
