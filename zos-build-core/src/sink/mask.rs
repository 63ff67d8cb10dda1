//! Keeping secrets out of logs.

use super::{LogSink, SinkError};
use crate::log::LogEvent;
use async_trait::async_trait;

/// Replaces every occurrence of the given secrets with `***` before the lines
/// reach the inner sink.
///
/// Longer secrets are replaced first, so a secret that contains another is
/// masked whole. Empty strings are ignored (they would match everywhere).
pub struct MaskSecrets<S> {
    inner: S,
    secrets: Vec<String>,
}

/// What a secret is replaced with.
pub const MASK: &str = "***";

impl<S: LogSink> MaskSecrets<S> {
    /// Wraps `inner`, masking `secrets`.
    pub fn new(inner: S, secrets: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        MaskSecrets { inner, secrets }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner sink.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    fn needs_mask(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }
}

#[async_trait]
impl<S: LogSink> LogSink for MaskSecrets<S> {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        // Copy the batch only when a secret is actually in it.
        if !events.iter().any(|e| self.needs_mask(&e.text)) {
            return self.inner.write(events).await;
        }
        let masked: Vec<LogEvent> = events
            .iter()
            .map(|e| LogEvent {
                text: self.mask(&e.text),
                ..e.clone()
            })
            .collect();
        self.inner.write(&masked).await
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
    async fn masks_every_occurrence_longest_first() {
        let mut sink = MaskSecrets::new(VecSink::default(), ["abc", "abcdef", ""]);
        sink.write(&lines(&["token=abcdef and abc, abc", "clean"]))
            .await
            .unwrap();
        let texts: Vec<&str> = sink.inner.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["token=*** and ***, ***", "clean"]);
    }
}
