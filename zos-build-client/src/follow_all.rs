//! `follow --all`: every line of every build, as the server's live feed
//! (the `/buildio` websocket of the monitor page) sends them, each prefixed
//! with its build's name, until Ctrl-C.
//!
//! The feed's `update` frames carry a build id and a batch of its lines:
//! the lines joined by `\n`, the sequence number of the first (`seq`) and
//! how many the frame completes (`count`); a line longer than a frame comes
//! in marked pieces (`piece`), put back together here. The sequence numbers
//! prove that no line is missing: a gap is noted on stderr. (Frames of
//! servers from before batching carry one line and no `count`; they print
//! as they are.) The names come from the `status` and `history` frames,
//! which hold whole build objects (a line of a build not seen yet is
//! prefixed with its id). A `lagged` frame means lines the server could not
//! read back were skipped: a note on stderr says how many. A dropped connection is made again, within
//! the same window as `follow`; what was said in between is not replayed
//! (the feed has no offsets), and a note says so: to read one build whole,
//! `follow BUILD` is the tool.
//!
//! [`Feed`] turns frames into output and is pure, so the protocol is tested
//! without a server.

use crate::api::Server;
use crate::cursor::Retry;
use crate::follow::RECONNECT_WINDOW;
use crate::outcome::{Failure, Verdict};
use crate::style;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// The longest line put back together from pieces; the rest is dropped.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// What a frame makes the client print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A line for stdout (with its newline).
    Line(String),
    /// A note for stderr (without `zos-build-client: ` nor newline).
    Note(String),
}

/// The state of the feed: the name of every build seen, and where each
/// build's lines stand.
#[derive(Debug, Default)]
pub struct Feed {
    names: HashMap<String, String>,
    /// The `seq` the next frame of each build should carry.
    next: HashMap<String, u64>,
    /// The pieces of a long line received so far, by build.
    pieces: HashMap<String, String>,
    colour: bool,
}

impl Feed {
    /// An empty feed, coloured or not.
    pub fn new(colour: bool) -> Feed {
        Feed {
            colour,
            ..Feed::default()
        }
    }

    /// A new connection: it starts where the builds stand now, so the
    /// numbering starts over (what was missed meanwhile is said once, by
    /// the caller).
    pub fn reconnected(&mut self) {
        self.next.clear();
        self.pieces.clear();
    }

    fn learn(&mut self, build: &Value) {
        let id = build.get("id").and_then(Value::as_str);
        let name = build.get("name").and_then(Value::as_str);
        if let (Some(id), Some(name)) = (id, name) {
            if !name.is_empty() {
                self.names.insert(id.to_string(), name.to_string());
            }
        }
    }

    /// The name of build `id`, or the id when it is not known yet.
    pub fn name_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map(String::as_str).unwrap_or(id)
    }

    /// What frame `text` makes the client print. Frames that are not
    /// understood (a newer server's events) print nothing.
    pub fn frame(&mut self, text: &str) -> Vec<Output> {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return Vec::new();
        };
        let payload = frame.get("payload").unwrap_or(&Value::Null);
        match frame.get("event").and_then(Value::as_str) {
            Some("status") => {
                if let Some(builds) = payload.as_object() {
                    for build in builds.values() {
                        self.learn(build);
                    }
                }
                Vec::new()
            }
            Some("history") => {
                if let Some(builds) = payload.as_array() {
                    for build in builds {
                        self.learn(build);
                    }
                }
                Vec::new()
            }
            Some("update") => {
                let id = payload.get("id").and_then(Value::as_str).unwrap_or("?");
                let Some(line) = payload.get("line").and_then(Value::as_str) else {
                    return Vec::new();
                };
                let seq = payload.get("seq").and_then(Value::as_u64);
                match (seq, payload.get("count").and_then(Value::as_u64)) {
                    (Some(seq), Some(count)) => self.batch(id, seq, count, payload, line),
                    _ => vec![Output::Line(self.line(id, line))],
                }
            }
            Some("lagged") => {
                let skipped = payload.get("skipped").and_then(Value::as_u64).unwrap_or(0);
                let whose = match payload.get("id").and_then(Value::as_str) {
                    Some(id) => format!(" (the last one of {})", self.name_of(id)),
                    None => String::new(),
                };
                vec![Output::Note(format!(
                    "this client fell behind the live feed: {skipped} lines were skipped{whose}"
                ))]
            }
            _ => Vec::new(),
        }
    }

    /// The output of a batched `update` frame of build `id`.
    fn batch(
        &mut self,
        id: &str,
        seq: u64,
        count: u64,
        payload: &Value,
        text: &str,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let expected = self.next.get(id).copied();
        if let Some(expected) = expected.filter(|&expected| seq > expected) {
            self.pieces.remove(id);
            out.push(Output::Note(format!(
                "{} lines of {} are missing from the live feed (numbers {expected} to {})",
                seq - expected,
                self.name_of(id),
                seq - 1
            )));
        } else if expected.is_some_and(|expected| seq < expected) {
            // Already shown.
            return out;
        }
        self.next.insert(id.to_string(), seq + count);
        if payload.get("piece").is_some() {
            let line = self.pieces.entry(id.to_string()).or_default();
            // A server's lines are at most 3 MiB (1 MiB of output, invalid
            // bytes made U+FFFD): pieces beyond are not kept.
            let room = MAX_LINE.saturating_sub(line.len());
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            line.push_str(&text[..cut]);
            if count == 0 {
                return out;
            }
            let line = self.pieces.remove(id).unwrap_or_default();
            out.push(Output::Line(self.line(id, &line)));
            return out;
        }
        let body = text.strip_suffix('\n').unwrap_or(text);
        out.extend(
            body.split('\n')
                .map(|line| Output::Line(self.line(id, line))),
        );
        out
    }

    /// `name | line`, the name coloured and the service's lines faint on a
    /// terminal.
    fn line(&self, id: &str, line: &str) -> String {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let name = self.name_of(id);
        if !self.colour {
            return format!("{name} | {line}\n");
        }
        let body = if line.as_bytes().starts_with(style::SYSTEM_PREFIX) {
            style::paint(line, style::DIM, true)
        } else {
            // The build's own colours stop at its line.
            format!("{line}{}", style::RESET)
        };
        format!(
            "{} | {body}\n",
            style::paint(name, style::name_colour(name), true)
        )
    }
}

/// `follow --all`: until Ctrl-C (exit 0), or until the feed is lost for
/// good (exit 2).
pub async fn run(server: &Server, colour: bool) -> Result<Verdict, Failure> {
    tokio::select! {
        result = feed(server, colour) => result,
        _ = tokio::signal::ctrl_c() => Ok(Verdict::Positive),
    }
}

fn websocket_failure(
    server: &Server,
    url: &str,
    what: &str,
    error: &tungstenite::Error,
) -> Failure {
    Failure::Websocket {
        server: server.url().to_string(),
        url: url.to_string(),
        what: what.to_string(),
        cause: error.to_string(),
    }
}

/// Whether a failure to connect may pass: the network, not an answer of
/// the server that it has no such websocket.
fn is_transient(error: &tungstenite::Error) -> bool {
    match error {
        tungstenite::Error::Http(response) => response.status().is_server_error(),
        tungstenite::Error::Io(_)
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(_) => true,
        _ => false,
    }
}

async fn feed(server: &Server, colour: bool) -> Result<Verdict, Failure> {
    let url = server.websocket_url().to_string();
    let mut feed = Feed::new(colour);
    let mut retry = Retry::new(RECONNECT_WINDOW);
    let mut reconnecting = false;
    let mut ever_connected = false;
    loop {
        let failure = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((mut socket, _)) => {
                retry.connected();
                ever_connected = true;
                feed.reconnected();
                if reconnecting {
                    eprintln!("zos-build-client: back on the live feed; lines sent while it was lost are not shown");
                    reconnecting = false;
                }
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) => {
                            retry.progressed();
                            show(feed.frame(text.as_str()))?;
                        }
                        Some(Ok(Message::Close(_))) | None => {
                            break Failure::Websocket {
                                server: server.url().to_string(),
                                url: url.clone(),
                                what: "reading".to_string(),
                                cause: "the server closed the connection".to_string(),
                            };
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break websocket_failure(server, &url, "reading", &e),
                    }
                }
            }
            // Only a feed that was there is waited for: a wrong URL or a
            // server that is down fails at once.
            Err(e) if ever_connected && is_transient(&e) => {
                websocket_failure(server, &url, "connecting", &e)
            }
            Err(e) => return Err(websocket_failure(server, &url, "connecting", &e)),
        };
        let Some(delay) = retry.failed(Instant::now()) else {
            return Err(failure);
        };
        if !reconnecting {
            eprintln!("zos-build-client: {failure}; reconnecting");
            reconnecting = true;
        }
        tokio::time::sleep(delay).await;
    }
}

fn show(outputs: Vec<Output>) -> Result<(), Failure> {
    if outputs.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for output in outputs {
        match output {
            Output::Line(line) => out.write_all(line.as_bytes())?,
            Output::Note(note) => eprintln!("zos-build-client: {note}"),
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(event: &str, payload: Value) -> String {
        json!({"event": event, "payload": payload}).to_string()
    }

    #[test]
    fn lines_are_prefixed_with_the_name_learnt_from_status_and_history() {
        let mut feed = Feed::new(false);
        assert_eq!(
            feed.frame(&frame("update", json!({"id": "a1", "line": "early"}))),
            [Output::Line("a1 | early\n".into())],
            "not known yet: the id"
        );
        assert!(feed
            .frame(&frame(
                "status",
                json!({"a1": {"id": "a1", "name": "acme/widget/master", "status": "building"}})
            ))
            .is_empty());
        assert!(feed
            .frame(&frame(
                "history",
                json!([{"id": "b2", "name": "acme/gadget/dev", "status": "success"}])
            ))
            .is_empty());
        assert_eq!(
            feed.frame(&frame("update", json!({"id": "a1", "line": "compiling\n"}))),
            [Output::Line("acme/widget/master | compiling\n".into())]
        );
        assert_eq!(
            feed.frame(&frame("update", json!({"id": "b2", "line": "x | y"}))),
            [Output::Line("acme/gadget/dev | x | y\n".into())]
        );
    }

    #[test]
    fn batches_print_a_line_each_and_pieces_make_one_line() {
        let mut feed = Feed::new(false);
        let update = |seq: u64, count: u64, line: &str| {
            frame(
                "update",
                json!({"id": "a1", "seq": seq, "count": count, "line": line}),
            )
        };
        assert_eq!(
            feed.frame(&update(0, 2, "one\ntwo | x\n")),
            [
                Output::Line("a1 | one\n".into()),
                Output::Line("a1 | two | x\n".into())
            ]
        );
        let piece = |index: u64, count: u64, line: &str| {
            frame(
                "update",
                json!({"id": "a1", "seq": 2, "count": count, "piece": index, "line": line}),
            )
        };
        assert!(feed.frame(&piece(0, 0, "lo")).is_empty());
        assert!(feed.frame(&piece(1, 0, "ng")).is_empty());
        assert_eq!(
            feed.frame(&piece(2, 1, " line\n")),
            [Output::Line("a1 | long line\n".into())]
        );
        // A gap is said, then the lines that did come are shown.
        assert_eq!(
            feed.frame(&update(10, 1, "ten\n")),
            [
                Output::Note(
                    "7 lines of a1 are missing from the live feed (numbers 3 to 9)".into()
                ),
                Output::Line("a1 | ten\n".into())
            ]
        );
        // Frames already shown are not shown twice.
        assert!(feed.frame(&update(5, 1, "five\n")).is_empty());
        // A new connection numbers afresh.
        feed.reconnected();
        assert_eq!(
            feed.frame(&update(40, 1, "forty\n")),
            [Output::Line("a1 | forty\n".into())]
        );
    }

    #[test]
    fn pieces_never_make_a_line_longer_than_the_bound() {
        let mut feed = Feed::new(false);
        let piece = "é".repeat(600 * 1024); // 1.2 MB
        for index in 0..10 {
            let frame = frame(
                "update",
                json!({"id": "a1", "seq": 0, "count": 0, "piece": index, "line": piece}),
            );
            assert!(feed.frame(&frame).is_empty());
        }
        let last = frame(
            "update",
            json!({"id": "a1", "seq": 0, "count": 1, "piece": 10, "line": "end\n"}),
        );
        match feed.frame(&last).as_slice() {
            [Output::Line(line)] => {
                assert!(
                    line.len() <= MAX_LINE + "a1 | \n".len(),
                    "{} bytes",
                    line.len()
                );
                assert!(line.starts_with("a1 | éé"));
            }
            other => panic!("one line expected, got {} outputs", other.len()),
        }
    }

    #[test]
    fn lagging_is_noted_on_stderr() {
        let mut feed = Feed::new(false);
        feed.frame(&frame(
            "status",
            json!({"a1": {"id": "a1", "name": "acme/widget/master"}}),
        ));
        assert_eq!(
            feed.frame(&frame("lagged", json!({"id": "a1", "skipped": 120}))),
            [Output::Note(
                "this client fell behind the live feed: 120 lines were skipped (the last one of acme/widget/master)"
                    .into()
            )]
        );
        assert_eq!(
            feed.frame(&frame("lagged", json!({"id": null, "skipped": 3}))),
            [Output::Note(
                "this client fell behind the live feed: 3 lines were skipped".into()
            )]
        );
    }

    #[test]
    fn unknown_or_broken_frames_print_nothing() {
        let mut feed = Feed::new(false);
        assert!(feed.frame("not json").is_empty());
        assert!(feed.frame(&frame("future-event", json!({}))).is_empty());
        assert!(feed.frame(&frame("update", json!({"id": "a1"}))).is_empty());
        assert!(feed.frame(&frame("status", json!([1]))).is_empty());
    }

    #[test]
    fn colour_tints_the_name_and_dims_the_services_lines() {
        let mut feed = Feed::new(true);
        feed.frame(&frame(
            "status",
            json!({"a1": {"id": "a1", "name": "o/r/b"}}),
        ));
        let colour = style::name_colour("o/r/b");
        assert_eq!(
            feed.frame(&frame(
                "update",
                json!({"id": "a1", "line": "[zos-build] pulling image x"})
            )),
            [Output::Line(format!(
                "{colour}o/r/b{reset} | {dim}[zos-build] pulling image x{reset}\n",
                reset = style::RESET,
                dim = style::DIM
            ))]
        );
        assert_eq!(
            feed.frame(&frame(
                "update",
                json!({"id": "a1", "line": "\u{1b}[31mred"})
            )),
            [Output::Line(format!(
                "{colour}o/r/b{reset} | \u{1b}[31mred{reset}\n",
                reset = style::RESET
            ))]
        );
    }
}
