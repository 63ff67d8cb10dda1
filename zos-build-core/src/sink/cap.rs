//! Bounding how much a build may log.

use super::{LogSink, SinkError};
use crate::log::{LogEvent, LogStream};
use async_trait::async_trait;
use std::time::SystemTime;

/// Passes lines on until `max_bytes` of text (newlines included) have gone
/// through; then one marker line, then nothing.
///
/// A runaway build cannot fill the disk or flood the followers, and whoever
/// reads the log sees plainly that it was cut and where.
pub struct SizeCap<S> {
    inner: S,
    max_bytes: u64,
    written: u64,
    capped: bool,
}

impl<S: LogSink> SizeCap<S> {
    /// Wraps `inner`, letting at most `max_bytes` through.
    pub fn new(inner: S, max_bytes: u64) -> Self {
        SizeCap {
            inner,
            max_bytes,
            written: 0,
            capped: false,
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner sink.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

#[async_trait]
impl<S: LogSink> LogSink for SizeCap<S> {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        if self.capped {
            return Ok(());
        }
        let mut allowed = 0;
        for event in events {
            let size = event.text.len() as u64 + 1;
            if self.written + size > self.max_bytes {
                self.capped = true;
                break;
            }
            self.written += size;
            allowed += 1;
        }
        if allowed > 0 {
            self.inner.write(&events[..allowed]).await?;
        }
        if self.capped {
            let marker = LogEvent {
                seq: events[allowed].seq,
                stream: LogStream::System,
                timestamp: SystemTime::now(),
                text: format!(
                    "[zos-build] log truncated: the limit of {} bytes was reached; later output is discarded",
                    self.max_bytes
                ),
            };
            self.inner.write(std::slice::from_ref(&marker)).await?;
        }
        Ok(())
    }

    async fn container_started(&mut self, container_id: &str) -> Result<(), SinkError> {
        self.inner.container_started(container_id).await
    }

    async fn committing(&mut self) -> Result<(), SinkError> {
        self.inner.committing().await
    }

    async fn phase(
        &mut self,
        phase: crate::Phase,
        elapsed: std::time::Duration,
    ) -> Result<(), SinkError> {
        self.inner.phase(phase, elapsed).await
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        self.inner.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{lines, VecSink};

    #[tokio::test]
    async fn one_marker_then_nothing() {
        let mut sink = SizeCap::new(VecSink::default(), 8);
        sink.write(&lines(&["abc", "def", "ghi"])).await.unwrap();
        sink.write(&lines(&["jkl"])).await.unwrap();
        let events = &sink.inner.events;
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].text, "abc");
        assert_eq!(events[1].text, "def");
        assert!(
            events[2].text.contains("log truncated"),
            "{}",
            events[2].text
        );
        assert_eq!(events[2].stream, LogStream::System);
    }
}
