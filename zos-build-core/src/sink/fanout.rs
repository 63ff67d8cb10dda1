//! Feeding several sinks from one build.

use super::{LogSink, SinkError};
use crate::log::LogEvent;
use async_trait::async_trait;

/// Hands every batch to each of its sinks, in the order they were added.
///
/// A failing sink does not starve the others: every sink gets the batch, and
/// the first error is returned afterwards.
#[derive(Default)]
pub struct FanOut {
    sinks: Vec<Box<dyn LogSink>>,
}

impl FanOut {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: impl LogSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a sink in place.
    pub fn push(&mut self, sink: Box<dyn LogSink>) {
        self.sinks.push(sink);
    }
}

#[async_trait]
impl LogSink for FanOut {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            let result = sink.write(events).await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    async fn container_started(&mut self, container_id: &str) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            let result = sink.container_started(container_id).await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    async fn committing(&mut self) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            let result = sink.committing().await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    async fn phase(
        &mut self,
        phase: crate::Phase,
        elapsed: std::time::Duration,
    ) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            let result = sink.phase(phase, elapsed).await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in &mut self.sinks {
            let result = sink.finish().await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{lines, TailSink};

    #[tokio::test]
    async fn every_sink_sees_every_batch() {
        let (a, tail_a) = TailSink::new(10);
        let (b, tail_b) = TailSink::new(10);
        let mut fan = FanOut::new().with(a).with(b);
        fan.write(&lines(&["x", "y"])).await.unwrap();
        fan.finish().await.unwrap();
        assert_eq!(tail_a.texts(), ["x", "y"]);
        assert_eq!(tail_b.texts(), ["x", "y"]);
    }
}
