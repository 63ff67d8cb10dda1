//! The `update` frames of the live feed: log lines as the websocket sends them.
//!
//! The old service's `update` frames carried chunks of output, and its page
//! appended them; one frame per line (what this server sent before) costs a
//! frame, an encoding and a parse per line, which a million-line build turns
//! into seconds. So a frame carries every line of one build that is ready,
//! up to [`MAX_UPDATE`] bytes of text:
//!
//! ```json
//! {"event":"update","payload":{"id":"…","seq":120,"count":3,"line":"a\nb\nc\n"}}
//! ```
//!
//! `line` is the lines joined by `\n`, with a trailing `\n`, so a client that
//! appends the chunks gets the log byte for byte. `seq` is the sequence
//! number of the first line and `count` the number of lines the frame
//! completes: per build, each frame's `seq` is the previous frame's
//! `seq + count`, which lets a client prove it missed nothing.
//!
//! A line whose text and newline do not fit in [`MAX_UPDATE`] goes alone,
//! in pieces cut at character boundaries, each marked `"piece": <n>` (from
//! 0) and carrying the line's `seq`; every piece but the last has
//! `count: 0` and no newline, the last has `count: 1` and ends with `\n`.
//!
//! The same function encodes the lines a build just printed and the lines a
//! client that fell behind reads back from the log file (whose bytes are
//! exactly these chunks), so both look alike on the wire.
//!
//! A client that connects with `?lines=1` gets the previous protocol: one
//! frame per line, `{"id","seq","line"}`, the line without its newline.

use bytes::Bytes;
use serde::Serialize;

/// The most text one `update` frame carries: 64 KiB.
pub const MAX_UPDATE: usize = 64 * 1024;

#[derive(Serialize)]
struct Frame<P> {
    event: &'static str,
    payload: P,
}

#[derive(Serialize)]
struct Batch<'a> {
    id: &'a str,
    seq: u64,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    piece: Option<u64>,
    line: &'a str,
}

#[derive(Serialize)]
struct Single<'a> {
    id: &'a str,
    seq: u64,
    line: &'a str,
}

fn encode<P: Serialize>(payload: P) -> Bytes {
    let frame = Frame {
        event: "update",
        payload,
    };
    // Strings and numbers always serialise.
    Bytes::from(serde_json::to_vec(&frame).unwrap_or_default())
}

/// The frame of one line in the `?lines=1` mode; `text` without its newline.
pub fn line_frame(id: &str, seq: u64, text: &str) -> Bytes {
    encode(Single {
        id,
        seq,
        line: text,
    })
}

/// The batched frames of `text`: whole lines, each ending with `\n`, the
/// first numbered `seq`. Returns the frames and the number of lines.
///
/// Text after the last `\n` (a log's whole lines have none) is sent as one
/// more line, with the newline a chunk promises, so nothing is dropped.
pub fn batch_frames(id: &str, seq: u64, text: &str) -> (Vec<Bytes>, u64) {
    if !text.is_empty() && !text.ends_with('\n') {
        return batch_frames(id, seq, &format!("{text}\n"));
    }
    let mut frames = Vec::new();
    let mut next = seq;
    // The frame being filled: text[start..offset], `count` lines.
    let (mut start, mut offset, mut count) = (0, 0, 0u64);
    while offset < text.len() {
        let len = text[offset..]
            .find('\n')
            .map_or(text.len() - offset, |i| i + 1);
        if offset + len - start > MAX_UPDATE {
            if count > 0 {
                frames.push(batch(id, next - count, count, &text[start..offset]));
            }
            count = 0;
            start = offset;
            if len > MAX_UPDATE {
                pieces(id, next, &text[offset..offset + len], &mut frames);
                start = offset + len;
                next += 1;
                offset += len;
                continue;
            }
        }
        count += 1;
        next += 1;
        offset += len;
    }
    if count > 0 {
        frames.push(batch(id, next - count, count, &text[start..offset]));
    }
    (frames, next - seq)
}

fn batch(id: &str, seq: u64, count: u64, text: &str) -> Bytes {
    encode(Batch {
        id,
        seq,
        count,
        piece: None,
        line: text,
    })
}

/// `line` (with its newline) in pieces of at most [`MAX_UPDATE`] bytes.
fn pieces(id: &str, seq: u64, line: &str, frames: &mut Vec<Bytes>) {
    let mut rest = line;
    let mut index = 0;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_UPDATE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let last = cut == rest.len();
        frames.push(encode(Batch {
            id,
            seq,
            count: u64::from(last),
            piece: Some(index),
            line: &rest[..cut],
        }));
        rest = &rest[cut..];
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn payloads(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| {
                let v: Value = serde_json::from_slice(f).unwrap();
                assert_eq!(v["event"], "update");
                let text = v["payload"]["line"].as_str().unwrap();
                assert!(text.len() <= MAX_UPDATE, "{} bytes of text", text.len());
                v["payload"].clone()
            })
            .collect()
    }

    /// Checks the chain of seq/count and returns the appended text.
    fn appended(frames: &[Bytes], seq: u64) -> (String, u64) {
        let mut next = seq;
        let mut text = String::new();
        for p in payloads(frames) {
            assert_eq!(p["id"], "b");
            assert_eq!(p["seq"].as_u64().unwrap(), next, "{p}");
            let line = p["line"].as_str().unwrap();
            let count = p["count"].as_u64().unwrap();
            if p.get("piece").is_some() {
                assert_eq!(line.ends_with('\n'), count == 1);
            } else {
                assert!(line.ends_with('\n'));
                assert_eq!(line.matches('\n').count() as u64, count);
            }
            next += count;
            text.push_str(line);
        }
        (text, next - seq)
    }

    #[test]
    fn lines_go_many_to_a_frame_and_append_to_the_text() {
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let (frames, count) = batch_frames("b", 7, &text);
        assert_eq!(count, 100_000);
        assert!(frames.len() < 30, "{} frames", frames.len());
        assert_eq!(appended(&frames, 7), (text, 100_000));
    }

    #[test]
    fn a_long_line_goes_alone_in_marked_pieces() {
        let long = "é".repeat(100_000); // 200,000 bytes
        let text = format!("before\n{long}\nafter\n");
        let (frames, count) = batch_frames("b", 0, &text);
        assert_eq!(count, 3);
        let p = payloads(&frames);
        assert_eq!(
            p.len(),
            1 + 4 + 1,
            "{:?}",
            p.iter().map(|p| p["count"].clone()).collect::<Vec<_>>()
        );
        assert_eq!(p[1]["piece"], 0);
        assert_eq!(p[4]["piece"], 3);
        assert_eq!(p[4]["seq"], 1);
        assert_eq!(appended(&frames, 0), (text, 3));
    }

    #[test]
    fn a_line_of_exactly_the_limit_keeps_its_newline_in_a_last_piece() {
        let text = format!("{}\n", "x".repeat(MAX_UPDATE));
        let (frames, _) = batch_frames("b", 3, &text);
        let p = payloads(&frames);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1]["line"], "\n");
        assert_eq!(appended(&frames, 3), (text, 1));
        let fits = format!("{}\n", "x".repeat(MAX_UPDATE - 1));
        assert_eq!(payloads(&batch_frames("b", 0, &fits).0).len(), 1);
    }

    #[test]
    fn an_unterminated_tail_is_a_line_too() {
        let (frames, count) = batch_frames("b", 0, "a\nb");
        assert_eq!(count, 2);
        assert_eq!(appended(&frames, 0), ("a\nb\n".to_string(), 2));
        assert_eq!(batch_frames("b", 0, ""), (Vec::new(), 0));
    }

    #[test]
    fn the_single_line_mode_keeps_the_previous_shape() {
        let v: Value = serde_json::from_slice(&line_frame("b", 4, "a \"q\"")).unwrap();
        assert_eq!(
            v["payload"],
            serde_json::json!({"id": "b", "seq": 4, "line": "a \"q\""})
        );
    }
}
