//! `/buildio`: the live websocket of the monitor page, in the old protocol.
//!
//! Server to client only: `{"event": "history"|"status"|"update", "payload": ...}`.
//! On connect the client gets the current `history` and `status`; then every
//! log line written from then on as an `update` (`{"id", "line"}`), and every
//! change as a whole new `status` or `history`.
//!
//! A client never slows a build or another client: each one has its own
//! task reading the shared feed. One that falls behind the feed (a slow
//! network, a busy browser) loses events from the channel, then catches up
//! from the log files, which hold every line: it still receives every line
//! once and in order, only later, followed by the current `status` and
//! `history`. Only lines that cannot be read back (a log removed meanwhile)
//! are announced as lost, with `{"event": "lagged", "payload": {"id", "skipped"}}`.
//!
//! The client has nothing to say in this protocol, so what it sends is
//! bounded tightly: a frame or message larger than [`MAX_WEBSOCKET_MESSAGE`]
//! is refused as soon as its header announces it (it is never buffered),
//! and its socket is closed with code 1009 (message too big). Other clients
//! are untouched. A websocket keeps its connection's `max-connections` slot
//! until it closes.

use super::response::{self, Body};
use super::ConnectionSlot;
use crate::live::{line_frame, read_log, LiveEvent};
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
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
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
    let state = state.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let limits = WebSocketConfig::default()
                    .max_message_size(Some(MAX_WEBSOCKET_MESSAGE))
                    .max_frame_size(Some(MAX_WEBSOCKET_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(limits),
                )
                .await;
                serve_client(state, socket).await;
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

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Events sent between two flushes at most, so a busy feed still reaches
/// the client promptly.
const FLUSH_EVERY: usize = 1024;
/// The most of a log read at once when catching up.
const CATCH_UP_CHUNK: u64 = 256 * 1024;

/// The client went away (or the socket failed): stop serving it.
struct Gone;

/// One websocket client: its socket, and how far it got in each build's log.
struct Client {
    state: Arc<AppState>,
    outgoing: SplitSink<Socket, Message>,
    /// Bytes of each build's log file already sent as `update` frames.
    sent: HashMap<Arc<str>, u64>,
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

    /// One line from the feed: sent unless the client has it already; a gap
    /// before it is filled from the log file first.
    async fn line(&mut self, id: Arc<str>, frame: Bytes, start: u64, end: u64) -> Result<(), Gone> {
        let from = self.sent.get(&id).copied().unwrap_or(0);
        if end <= from {
            return Ok(());
        }
        if start > from {
            if let Some(position) = self
                .state
                .live
                .positions()
                .into_iter()
                .find(|(build, _)| *build == id)
            {
                self.catch_up(&id, &position.1.path, from, start).await?;
            }
        }
        self.feed(frame).await?;
        self.sent.insert(id, end);
        Ok(())
    }

    /// Sends what the client missed of every recent build, from the files;
    /// returns the builds whose missed lines could not be read.
    async fn catch_up_all(&mut self) -> Result<Vec<Arc<str>>, Gone> {
        let mut lost = Vec::new();
        for (id, position) in self.state.live.positions() {
            let from = self.sent.get(&id).copied().unwrap_or(0);
            if position.end > from
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
        from: u64,
        to: u64,
    ) -> Result<bool, Gone> {
        let mut offset = from;
        while offset < to {
            let bytes = match read_log(path, offset, (to - offset).min(CATCH_UP_CHUNK)).await {
                Ok(bytes) if !bytes.is_empty() => bytes,
                Ok(_) => return Ok(false),
                Err(e) => {
                    tracing::warn!(build = %id, error = %e, "cannot read a log to catch a client up");
                    return Ok(false);
                }
            };
            // Whole lines only; a single line longer than a chunk goes as it is.
            let usable = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                None => bytes.len(),
            };
            let text = &bytes[..usable];
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            for line in text.split(|&b| b == b'\n') {
                self.feed(line_frame(id, &String::from_utf8_lossy(line)))
                    .await?;
            }
            offset += usable as u64;
            self.sent.insert(id.clone(), offset);
            self.flush().await?;
        }
        Ok(true)
    }
}

async fn serve_client(state: Arc<AppState>, socket: Socket) {
    let (outgoing, mut incoming) = socket.split();
    // Subscribe before anything is read: nothing published in between is lost.
    let mut live = state.live.subscribe();
    let sent = state
        .live
        .positions()
        .into_iter()
        .map(|(id, position)| (id, position.end))
        .collect();
    let mut client = Client {
        state: state.clone(),
        outgoing,
        sent,
    };
    if client.views().await.is_err() || client.flush().await.is_err() {
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
/// in a few large writes rather than one per line.
async fn serve_events(
    client: &mut Client,
    live: &mut tokio::sync::broadcast::Receiver<LiveEvent>,
    first: Result<LiveEvent, RecvError>,
) -> Result<(), Gone> {
    let mut next = Some(first);
    let mut count = 0;
    while let Some(event) = next.take() {
        count += 1;
        match event {
            Ok(LiveEvent::Line {
                id,
                frame,
                start,
                end,
            }) => client.line(id, frame, start, end).await?,
            Ok(LiveEvent::Status { frame }) | Ok(LiveEvent::History { frame }) => {
                client.feed(frame).await?
            }
            Err(RecvError::Lagged(skipped)) => {
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
            Err(RecvError::Closed) => return Err(Gone),
        }
        if count >= FLUSH_EVERY {
            break;
        }
        next = match live.try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => return Err(Gone),
        };
    }
    client.flush().await
}
