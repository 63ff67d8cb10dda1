//! Live followers of a running build.

use super::{LogSink, SinkError};
use crate::log::LogEvent;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Publishes every line to any number of live followers.
///
/// Sending never waits: the channel keeps the last `capacity` lines, and a
/// follower that falls further behind loses the oldest ones and is told how
/// many (see [`Followed::Missed`]). A stalled websocket client therefore
/// cannot slow the build or the other followers.
pub struct BroadcastSink {
    sender: Option<broadcast::Sender<Arc<LogEvent>>>,
}

/// A handle to subscribe to a build's live lines; cheap to clone and keep.
///
/// It does not keep the channel open: once the build has ended,
/// [`LogFeed::follow`] returns `None`.
#[derive(Clone, Debug)]
pub struct LogFeed {
    sender: broadcast::WeakSender<Arc<LogEvent>>,
}

/// One follower's view of the live lines.
#[derive(Debug)]
pub struct LogFollower {
    receiver: broadcast::Receiver<Arc<LogEvent>>,
}

/// What a follower receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The next line.
    Line(Arc<LogEvent>),
    /// The follower fell behind and this many lines were skipped.
    Missed(u64),
}

impl BroadcastSink {
    /// A sink that buffers at most `capacity` lines per slow follower.
    pub fn new(capacity: usize) -> (BroadcastSink, LogFeed) {
        let (sender, _) = broadcast::channel(capacity.max(1));
        let feed = LogFeed {
            sender: sender.downgrade(),
        };
        (
            BroadcastSink {
                sender: Some(sender),
            },
            feed,
        )
    }
}

impl LogFeed {
    /// Starts following from the next line, or `None` when the build has ended.
    pub fn follow(&self) -> Option<LogFollower> {
        self.sender.upgrade().map(|s| LogFollower {
            receiver: s.subscribe(),
        })
    }
}

impl LogFollower {
    /// The next line, a count of skipped lines, or `None` once the build has
    /// ended and every line was delivered.
    pub async fn next(&mut self) -> Option<Followed> {
        match self.receiver.recv().await {
            Ok(event) => Some(Followed::Line(event)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Followed::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[async_trait]
impl LogSink for BroadcastSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        if let Some(sender) = &self.sender {
            if sender.receiver_count() > 0 {
                for event in events {
                    // An error only means nobody is listening right now.
                    let _ = sender.send(Arc::new(event.clone()));
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        // Dropping the only strong sender ends every follower's stream.
        self.sender = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::lines;

    #[tokio::test]
    async fn followers_get_lines_then_end() {
        let (mut sink, feed) = BroadcastSink::new(16);
        let mut follower = feed.follow().unwrap();
        sink.write(&lines(&["a", "b"])).await.unwrap();
        sink.finish().await.unwrap();
        let mut got = Vec::new();
        while let Some(Followed::Line(e)) = follower.next().await {
            got.push(e.text.clone());
        }
        assert_eq!(got, ["a", "b"]);
        assert!(feed.follow().is_none(), "the feed ends with the build");
    }

    #[tokio::test]
    async fn a_slow_follower_learns_how_many_lines_it_missed() {
        let (mut sink, feed) = BroadcastSink::new(2);
        let mut slow = feed.follow().unwrap();
        sink.write(&lines(&["1", "2", "3", "4", "5"]))
            .await
            .unwrap();
        assert_eq!(slow.next().await, Some(Followed::Missed(3)));
        match slow.next().await {
            Some(Followed::Line(e)) => assert_eq!(e.text, "4"),
            other => panic!("expected line 4, got {other:?}"),
        }
    }
}
