//! Log sinks: where a build's lines go.
//!
//! The executor knows one sink; everything else is composition. A server
//! typically builds `SizeCap(MaskSecrets(FanOut[file, tail, broadcast, redis]))`:
//! secrets are masked once before any copy is made, the cap protects the disk
//! and the followers alike, and every consumer sees the same numbered lines.
//!
//! Sinks receive lines in batches (one per chunk of container output) so that a
//! build printing a million lines costs a few thousand sink calls, not a million.

mod broadcast;
mod cap;
mod fanout;
mod file;
mod mask;
mod tail;

pub use broadcast::{BroadcastSink, Followed, LogFeed, LogFollower};
pub use cap::SizeCap;
pub use fanout::FanOut;
pub use file::FileSink;
pub use mask::MaskSecrets;
pub use tail::{Tail, TailSink};

use crate::log::LogEvent;
use async_trait::async_trait;
use std::path::PathBuf;

/// Receives the lines of one build, in order.
///
/// Implement it to send logs somewhere new (a message bus, a database); wrap
/// the implementation in [`FanOut`] beside the built-in sinks.
#[async_trait]
pub trait LogSink: Send {
    /// Takes a batch of consecutive lines.
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError>;

    /// Called once when the build's container has started, with its id
    /// (status pages show it; the default ignores it).
    async fn container_started(&mut self, _container_id: &str) -> Result<(), SinkError> {
        Ok(())
    }

    /// Called once the build script has exited well, just before its
    /// container is committed as an image (only for builds that commit:
    /// status pages say `committing`; the default ignores it).
    async fn committing(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Told how long one [`Phase`](crate::Phase) of the build took, when it
    /// ends (the executor's `create`, `upload`, `run`, `extract`; the
    /// job's `fetch` and `publish` through
    /// [`JobLog`](crate::pipeline::JobLog)). The default ignores it.
    async fn phase(
        &mut self,
        _phase: crate::Phase,
        _elapsed: std::time::Duration,
    ) -> Result<(), SinkError> {
        Ok(())
    }

    /// Called once when the build has ended: flush and release resources.
    async fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink could not take the lines it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing a log file failed.
    #[error("cannot write log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A sink written outside this crate failed.
    #[error("log sink {sink} failed: {source}")]
    Custom {
        /// A name for the sink, for the message.
        sink: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Collects every line in memory; for tests and short builds.
#[derive(Debug, Default)]
pub struct VecSink {
    /// The lines received so far.
    pub events: Vec<LogEvent>,
    /// The container id, once the container has started.
    pub container: Option<String>,
    /// Whether [`LogSink::finish`] was called.
    pub finished: bool,
}

#[async_trait]
impl LogSink for VecSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        self.events.extend_from_slice(events);
        Ok(())
    }

    async fn container_started(&mut self, container_id: &str) -> Result<(), SinkError> {
        self.container = Some(container_id.to_string());
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        self.finished = true;
        Ok(())
    }
}

#[async_trait]
impl<S: LogSink + ?Sized> LogSink for Box<S> {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        (**self).write(events).await
    }

    async fn container_started(&mut self, container_id: &str) -> Result<(), SinkError> {
        (**self).container_started(container_id).await
    }

    async fn committing(&mut self) -> Result<(), SinkError> {
        (**self).committing().await
    }

    async fn phase(
        &mut self,
        phase: crate::Phase,
        elapsed: std::time::Duration,
    ) -> Result<(), SinkError> {
        (**self).phase(phase, elapsed).await
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        (**self).finish().await
    }
}

#[cfg(test)]
pub(crate) fn lines(texts: &[&str]) -> Vec<LogEvent> {
    let mut seq = crate::log::Sequencer::default();
    texts
        .iter()
        .map(|t| seq.event(crate::log::LogStream::Stdout, t.to_string()))
        .collect()
}
