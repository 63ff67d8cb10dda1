//! The live feed: every log line of every build, and every change of the
//! status and history, for the websocket clients and the log followers.
//!
//! One broadcast channel for the whole service. Frames are encoded once, when
//! they are published, and shared by every subscriber, so a hundred monitor
//! pages cost a hundred pointer copies per line, not a hundred encodings.
//! Publishing never waits: a subscriber that falls more than
//! [`LIVE_CAPACITY`] events behind loses the oldest ones and is told how
//! many, so a stalled browser tab cannot slow a build or the other clients.

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;
use zos_build_core::{LogEvent, LogSink, SinkError};

/// Events a subscriber may fall behind before it starts losing them.
pub const LIVE_CAPACITY: usize = 16 * 1024;

/// One event of the feed.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A line of build `id`; `frame` is the websocket frame
    /// `{"event":"update","payload":{"id":...,"line":...}}`.
    Line {
        /// The build.
        id: Arc<str>,
        /// The encoded frame.
        frame: Bytes,
    },
    /// The set of queued and running builds changed; `frame` is the
    /// `{"event":"status",...}` frame.
    Status {
        /// The encoded frame.
        frame: Bytes,
    },
    /// A build finished; `frame` is the `{"event":"history",...}` frame.
    History {
        /// The encoded frame.
        frame: Bytes,
    },
}

/// The service's live feed.
#[derive(Debug)]
pub struct Live {
    sender: broadcast::Sender<LiveEvent>,
    lines: Arc<AtomicU64>,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    /// An empty feed.
    pub fn new() -> Live {
        let (sender, _) = broadcast::channel(LIVE_CAPACITY);
        Live {
            sender,
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Receives every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// Publishes an event; nobody listening is not an error.
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.sender.send(event);
    }

    /// Log lines published since start-up (for `/metrics`).
    pub fn lines_published(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// A log sink publishing the lines of build `id`.
    pub fn sink(&self, id: &str) -> LiveSink {
        LiveSink {
            id: Arc::from(id),
            sender: self.sender.clone(),
            lines: self.lines.clone(),
        }
    }
}

/// Publishes the lines of one build to the live feed.
pub struct LiveSink {
    id: Arc<str>,
    sender: broadcast::Sender<LiveEvent>,
    lines: Arc<AtomicU64>,
}

/// The websocket frame of one line.
pub fn line_frame(id: &str, text: &str) -> String {
    serde_json::json!({"event": "update", "payload": {"id": id, "line": text}}).to_string()
}

#[async_trait]
impl LogSink for LiveSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        self.lines.fetch_add(events.len() as u64, Ordering::Relaxed);
        // Followers of the log file wake up on these too, so publish even
        // when no websocket client is connected, unless nobody at all listens.
        if self.sender.receiver_count() == 0 {
            return Ok(());
        }
        for event in events {
            let frame = line_frame(&self.id, &event.text);
            let _ = self.sender.send(LiveEvent::Line {
                id: self.id.clone(),
                frame: Bytes::from(frame),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_build_core::log::Sequencer;
    use zos_build_core::LogStream;

    #[tokio::test]
    async fn lines_become_update_frames() {
        let live = Live::new();
        let mut receiver = live.subscribe();
        let mut sink = live.sink("b1");
        let mut seq = Sequencer::default();
        let line = seq.event(LogStream::Stdout, "a \"quoted\" <b>line</b>".into());
        sink.write(&[line]).await.unwrap();
        match receiver.recv().await.unwrap() {
            LiveEvent::Line { id, frame } => {
                assert_eq!(&*id, "b1");
                let value: serde_json::Value = serde_json::from_slice(&frame).unwrap();
                assert_eq!(value["event"], "update");
                assert_eq!(value["payload"]["id"], "b1");
                assert_eq!(value["payload"]["line"], "a \"quoted\" <b>line</b>");
            }
            other => panic!("expected a line, got {other:?}"),
        }
        assert_eq!(live.lines_published(), 1);
    }
}
