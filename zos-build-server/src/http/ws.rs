//! `/buildio`: the live websocket of the monitor page, in the old protocol.
//!
//! Server to client only: `{"event": "server"|"history"|"status"|"update", "payload": ...}`.
//! On connect the client gets the current `history` and `status`, then a
//! `server` frame (what this server tracks); then every log line written from then
//! on, in batched `update` frames ([`crate::live::update`]: the lines of one
//! build joined by `\n`, with the `seq` of the first and their `count`), and
//! every change as a whole new `status` or `history`. With `?lines=1` on
//! the URL, a client gets one line per `update` frame instead
//! (`{"id", "seq", "line"}`), as before batching.
//!
//! A client never slows a build or another client: each one has its own
//! task reading the shared feed, on the followers' runtime
//! ([`crate::followers`]). One that falls behind the feed (a slow network,
//! a busy browser) loses events from the channel, then catches up from the
//! log files, which hold every line, in the same frames: it still receives
//! every line once and in order, only later, followed by the current
//! `status` and `history`. Only lines that cannot be read back (a log
//! removed meanwhile) are announced as lost, with
//! `{"event": "lagged", "payload": {"id", "skipped"}}`.
//!
//! The client has nothing to say in this protocol, so what it sends is
//! bounded tightly: a frame or message larger than [`MAX_WEBSOCKET_MESSAGE`]
//! is refused as soon as its header announces it (it is never buffered),
//! and its socket is closed with code 1009 (message too big). Other clients
//! are untouched. A websocket keeps its connection's `max-connections` slot
//! until it closes.

use super::response::{self, Body};
use super::ConnectionSlot;
use crate::followers;
use crate::live::ring::Lagged;
use crate::live::update::{batch_frames, line_frame};
use crate::live::{read_log, LineBatch, LiveEvent, LogPosition, Subscription};
use crate::state::AppState;
use crate::views;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// The largest message, and frame, a client may send: 64 KiB. tungstenite's
/// defaults (64 MiB messages, 16 MiB frames) would let each client make the
/// server buffer that much.
pub const MAX_WEBSOCKET_MESSAGE: usize = 64 * 1024;

/// Answers the upgrade request and serves the client on its own task.
pub fn upgrade(state: &Arc<AppState>, mut request: Request<Incoming>) -> Response<Body> {
    let headers = request.headers();
    let is_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return response::error(
            StatusCode::BAD_REQUEST,
            "/buildio is a websocket: send Upgrade: websocket and Sec-WebSocket-Key",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    // The connection's slot of `max-connections`, held while the socket lives.
    let slot = request.extensions_mut().remove::<ConnectionSlot>();
    let mode = if query_flag(request.uri().query(), "lines") {
        Mode::Lines
    } else {
        Mode::Batched
    };
    let state = state.clone();
    followers::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let limits = WebSocketConfig::default()
                    .max_message_size(Some(MAX_WEBSOCKET_MESSAGE))
                    .max_frame_size(Some(MAX_WEBSOCKET_MESSAGE))
                    .write_buffer_size(WRITE_BUFFER)
                    .read_buffer_size(READ_BUFFER);
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(limits),
                )
                .await;
                serve_client(state, socket, mode).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
        drop(slot);
    });
    let mut answer = Response::new(response::full(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    answer
}

/// Whether `name` is set in `query` (`name`, `name=1`, `name=true`).
fn query_flag(query: Option<&str>, name: &str) -> bool {
    query.unwrap_or("").split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == name && matches!(value, "" | "1" | "true" | "yes")
    })
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Events sent between two flushes at most, so a busy feed still reaches
/// the client promptly.
const FLUSH_EVERY: usize = 64;
/// What a client's socket buffers before writing: with a thousand clients,
/// tungstenite's default (128 KiB each) would be most of the server's
/// memory, and a smaller buffer costs only a few more writes.
const WRITE_BUFFER: usize = 16 * 1024;
/// What a client's socket reads at once: clients say next to nothing, and
/// tungstenite's default (128 KiB, allocated up front) would cost a thousand
/// clients 128 MiB.
const READ_BUFFER: usize = 4 * 1024;
/// The most of a log read at once when catching up: about one batch.
const CATCH_UP_CHUNK: u64 = crate::live::MAX_BATCH as u64;
/// Clients reading and encoding a piece of a log at the same time: when
/// many fell behind at once, the others wait their turn rather than each
/// holding a chunk and its frames.
static CATCHING_UP: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);
/// The longest line a catch-up reads whole (a line of the log is at most
/// [`zos_build_core::log::MAX_LINE_BYTES`] of input, up to three times that
/// once invalid UTF-8 became U+FFFD).
const CATCH_UP_LINE: u64 = 3 * zos_build_core::log::MAX_LINE_BYTES as u64 + 1;

/// How the client wants its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Batched `update` frames (the default).
    Batched,
    /// One line per `update` frame (`?lines=1`).
    Lines,
}

/// How far a client got in a build's log.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// Bytes of the log file sent.
    bytes: u64,
    /// Sequence number of the next line.
    seq: u64,
}

impl From<&LogPosition> for Cursor {
    fn from(position: &LogPosition) -> Cursor {
        Cursor {
            bytes: position.end,
            seq: position.seq,
        }
    }
}

/// The client went away (or the socket failed): stop serving it.
struct Gone;

/// One websocket client: its socket, and how far it got in each build's log.
struct Client {
    state: Arc<AppState>,
    outgoing: SplitSink<Socket, Message>,
    mode: Mode,
    sent: HashMap<Arc<str>, Cursor>,
}

impl Client {
    async fn feed(&mut self, frame: Bytes) -> Result<(), Gone> {
        match Utf8Bytes::try_from(frame) {
            Ok(text) => self
                .outgoing
                .feed(Message::Text(text))
                .await
                .map_err(|_| Gone),
            // Frames are JSON made by this server: never invalid, but never a crash.
            Err(_) => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        self.outgoing.flush().await.map_err(|_| Gone)
    }

    /// The current `history` and `status`: the last ones published, or read
    /// from the history when none was published yet.
    async fn views(&mut self) -> Result<(), Gone> {
        let (history, status) = self.state.live.views();
        let history = match history {
            Some(frame) => Some(frame),
            None => views::history(&self.state.history, &self.state.config)
                .await
                .map_err(|e| tracing::error!(error = %e, "history query failed"))
                .ok()
                .map(|value| Bytes::from(views::frame("history", value))),
        };
        let status = match status {
            Some(frame) => Some(frame),
            None => views::status(&self.state.history, &self.state.config)
                .await
                .map_err(|e| tracing::error!(error = %e, "status query failed"))
                .ok()
                .map(|value| Bytes::from(views::frame("status", value))),
        };
        for frame in [history, status].into_iter().flatten() {
            self.feed(frame).await?;
        }
        Ok(())
    }

    /// The `server` frame: what this server tracks.
    async fn server(&mut self) -> Result<(), Gone> {
        let catalog = self.state.catalog();
        let value = views::server(&self.state.config, catalog.as_deref());
        self.feed(Bytes::from(views::frame("server", value))).await
    }

    /// Lines `text` of build `id`, the first numbered `seq`, in the
    /// client's mode.
    async fn send_lines(&mut self, id: &str, seq: u64, text: &str) -> Result<u64, Gone> {
        match self.mode {
            Mode::Batched => {
                let (frames, count) = batch_frames(id, seq, text);
                for frame in frames {
                    self.feed(frame).await?;
                }
                Ok(count)
            }
            Mode::Lines => {
                let text = text.strip_suffix('\n').unwrap_or(text);
                let mut count = 0;
                for line in text.split('\n') {
                    self.feed(line_frame(id, seq + count, line)).await?;
                    count += 1;
                }
                Ok(count)
            }
        }
    }

    /// A batch from the feed: sent unless the client has it already; a gap
    /// before it is filled from the log file first.
    async fn batch(&mut self, batch: &LineBatch) -> Result<(), Gone> {
        let id = &batch.id;
        let from = self.sent.get(id).copied().unwrap_or_default();
        if batch.end <= from.bytes {
            return Ok(());
        }
        if batch.start > from.bytes {
            let position = self
                .state
                .live
                .positions()
                .into_iter()
                .find(|(build, _)| build == id);
            if let Some((_, position)) = position {
                self.catch_up(id, &position.path, from, batch.start).await?;
            }
        }
        let from = self.sent.get(id).copied().unwrap_or_default();
        if batch.start == from.bytes && self.mode == Mode::Batched {
            // The usual case: the frames encoded once for every client.
            for frame in &batch.frames {
                self.feed(frame.clone()).await?;
            }
        } else if batch.start < from.bytes && from.bytes < batch.end {
            // Part of it was caught up from the file already.
            let skip = (from.bytes - batch.start) as usize;
            let rest = String::from_utf8_lossy(&batch.text[skip..]);
            self.send_lines(id, from.seq, &rest).await?;
        } else {
            let text = String::from_utf8_lossy(&batch.text);
            self.send_lines(id, batch.seq, &text).await?;
        }
        self.sent.insert(
            id.clone(),
            Cursor {
                bytes: batch.end,
                seq: batch.seq + batch.count,
            },
        );
        Ok(())
    }

    /// Sends what the client missed of every recent build, from the files;
    /// returns the builds whose missed lines could not be read.
    async fn catch_up_all(&mut self) -> Result<Vec<Arc<str>>, Gone> {
        let mut lost = Vec::new();
        for (id, position) in self.state.live.positions() {
            let from = self.sent.get(&id).copied().unwrap_or_default();
            if position.end > from.bytes
                && !self
                    .catch_up(&id, &position.path, from, position.end)
                    .await?
            {
                lost.push(id);
            }
        }
        Ok(lost)
    }

    /// Sends the lines of bytes `from..to` of build `id`'s log; false when
    /// the file does not hold them any more.
    async fn catch_up(
        &mut self,
        id: &Arc<str>,
        path: &Path,
        from: Cursor,
        to: u64,
    ) -> Result<bool, Gone> {
        self.state.live.caught_up();
        let mut cursor = from;
        let mut limit = CATCH_UP_CHUNK;
        while cursor.bytes < to {
            let wanted = (to - cursor.bytes).min(limit);
            let permit = CATCHING_UP.acquire().await;
            let bytes = match read_log(path, cursor.bytes, wanted).await {
                Ok(bytes) if !bytes.is_empty() => bytes,
                Ok(_) => return Ok(false),
                Err(e) => {
                    tracing::warn!(build = %id, error = %e, "cannot read a log to catch a client up");
                    return Ok(false);
                }
            };
            // Whole lines only: `to` ends one, so a longer read finds its end.
            let usable = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                None if (bytes.len() as u64) < wanted => return Ok(false),
                None if limit < CATCH_UP_LINE => {
                    limit = (limit * 2).min(CATCH_UP_LINE);
                    continue;
                }
                // A "line" longer than any line a log holds: not ours.
                None => return Ok(false),
            };
            limit = CATCH_UP_CHUNK;
            let text = String::from_utf8_lossy(&bytes[..usable]).into_owned();
            drop(bytes);
            drop(permit);
            let count = self.send_lines(id, cursor.seq, &text).await?;
            cursor = Cursor {
                bytes: cursor.bytes + usable as u64,
                seq: cursor.seq + count,
            };
            self.sent.insert(id.clone(), cursor);
            self.flush().await?;
        }
        Ok(true)
    }
}

async fn serve_client(state: Arc<AppState>, socket: Socket, mode: Mode) {
    let (outgoing, mut incoming) = socket.split();
    // Subscribe before anything is read: nothing published in between is lost.
    let mut live = state.live.subscribe();
    let sent = state
        .live
        .positions()
        .iter()
        .map(|(id, position)| (id.clone(), Cursor::from(position)))
        .collect();
    let mut client = Client {
        state: state.clone(),
        outgoing,
        mode,
        sent,
    };
    // `server` after the snapshot: clients of the old protocol expect
    // `history` and `status` first.
    if client.views().await.is_err()
        || client.server().await.is_err()
        || client.flush().await.is_err()
    {
        return;
    }
    loop {
        let first = tokio::select! {
            // The server stops: say goodbye, so the page shows it is offline
            // and reconnects to the next server at once.
            () = state.shutdown.cancelled() => {
                let _ = client.outgoing.send(Message::Close(None)).await;
                return;
            }
            message = incoming.next() => match message {
                // Over the limit, refused unread: say why (1009), then close.
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                    tracing::debug!(size, "websocket client sent a message over the limit");
                    let reason = format!("messages are limited to {MAX_WEBSOCKET_MESSAGE} bytes");
                    let close = CloseFrame { code: CloseCode::Size, reason: reason.into() };
                    let _ = client.outgoing.send(Message::Close(Some(close))).await;
                    return;
                }
                // Pings are answered by tungstenite on the next flush; text
                // from the client means nothing in this protocol.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {
                    if client.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
            event = live.recv() => event,
        };
        if serve_events(&mut client, &mut live, first).await.is_err() {
            return;
        }
    }
}

/// Sends `first` and whatever else is already waiting (up to
/// [`FLUSH_EVERY`] events), then flushes once: a fast build's lines go out
/// in a few large writes.
async fn serve_events(
    client: &mut Client,
    live: &mut Subscription,
    first: Result<LiveEvent, Lagged>,
) -> Result<(), Gone> {
    let mut next = Some(first);
    let mut count = 0;
    while let Some(event) = next.take() {
        count += 1;
        match event {
            Ok(LiveEvent::Lines(batch)) => client.batch(&batch).await?,
            Ok(LiveEvent::Status { frame }) | Ok(LiveEvent::History { frame }) => {
                client.feed(frame).await?
            }
            Err(Lagged(skipped)) => {
                // Behind the feed: the files have every line that was missed.
                client.flush().await?;
                for id in client.catch_up_all().await? {
                    let lagged = views::frame(
                        "lagged",
                        serde_json::json!({"id": &*id, "skipped": skipped}),
                    );
                    client.feed(Bytes::from(lagged)).await?;
                }
                client.views().await?;
            }
        }
        if count >= FLUSH_EVERY {
            break;
        }
        next = live.try_recv().transpose();
    }
    client.flush().await
}
