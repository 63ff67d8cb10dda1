//! `/buildio`: the live websocket of the monitor page, in the old protocol.
//!
//! Server to client only: `{"event": "history"|"status"|"update", "payload": ...}`.
//! On connect the client gets the current `history` and `status`; then every
//! log line as an `update` (`{"id", "line"}`) and every change as a whole new
//! `status` or `history`. A client that falls behind the live feed gets
//! `{"event": "lagged", "payload": {"id": ..., "skipped": N}}` followed by a
//! fresh `status` and `history`, and goes on; it never slows anyone else.

use super::response::{self, Body};
use crate::live::LiveEvent;
use crate::state::AppState;
use crate::views;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

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
    let state = state.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve_client(state, socket).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
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

fn text(frame: Bytes) -> Option<Message> {
    Utf8Bytes::try_from(frame).ok().map(Message::Text)
}

async fn snapshot(state: &AppState) -> Vec<Message> {
    let mut frames = Vec::with_capacity(2);
    match views::history(&state.history).await {
        Ok(history) => frames.push(views::frame("history", history)),
        Err(e) => tracing::error!(error = %e, "history query failed"),
    }
    match views::status(&state.history, &state.config).await {
        Ok(status) => frames.push(views::frame("status", status)),
        Err(e) => tracing::error!(error = %e, "status query failed"),
    }
    frames
        .into_iter()
        .map(|f| Message::Text(f.into()))
        .collect()
}

async fn serve_client(state: Arc<AppState>, socket: Socket) {
    let (mut outgoing, mut incoming) = socket.split();
    // Subscribe before the snapshot: nothing published in between is lost.
    let mut live = state.live.subscribe();
    for message in snapshot(&state).await {
        if outgoing.feed(message).await.is_err() {
            return;
        }
    }
    if outgoing.flush().await.is_err() {
        return;
    }
    let mut skipped: u64 = 0;
    loop {
        let first = tokio::select! {
            // The server stops: say goodbye, so the page shows it is offline
            // and reconnects to the next server at once.
            () = state.shutdown.cancelled() => {
                let _ = outgoing.send(Message::Close(None)).await;
                return;
            }
            message = incoming.next() => match message {
                // Pings are answered by tungstenite on the next flush; text
                // from the client means nothing in this protocol.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {
                    if outgoing.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
            event = live.recv() => event,
        };
        // Send everything already waiting, then flush once: a fast build's
        // lines go out in a few large writes rather than one per line.
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(event) = next.take() {
            batch += 1;
            let messages = match event {
                Ok(LiveEvent::Line { id, frame }) => {
                    let mut messages = Vec::with_capacity(2);
                    if skipped > 0 {
                        let lagged = views::frame(
                            "lagged",
                            serde_json::json!({"id": &*id, "skipped": skipped}),
                        );
                        messages.push(Message::Text(lagged.into()));
                        messages.extend(snapshot(&state).await);
                        skipped = 0;
                    }
                    messages.extend(text(frame));
                    messages
                }
                Ok(LiveEvent::Status { frame }) | Ok(LiveEvent::History { frame }) => {
                    text(frame).into_iter().collect()
                }
                Err(RecvError::Lagged(n)) => {
                    skipped += n;
                    Vec::new()
                }
                Err(RecvError::Closed) => return,
            };
            for message in messages {
                if outgoing.feed(message).await.is_err() {
                    return;
                }
            }
            if batch >= FLUSH_EVERY {
                break;
            }
            next = match live.try_recv() {
                Ok(event) => Some(Ok(event)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Closed) => return,
            };
        }
        if skipped > 0 {
            // The lag was followed by silence: say so now, with a fresh view.
            let lagged = views::frame(
                "lagged",
                serde_json::json!({"id": null, "skipped": skipped}),
            );
            skipped = 0;
            let mut messages = vec![Message::Text(lagged.into())];
            messages.extend(snapshot(&state).await);
            for message in messages {
                if outgoing.feed(message).await.is_err() {
                    return;
                }
            }
        }
        if outgoing.flush().await.is_err() {
            return;
        }
    }
}
