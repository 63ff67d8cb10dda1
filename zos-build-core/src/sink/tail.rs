//! The last lines of a build, for status pages.

use super::{LogSink, SinkError};
use crate::log::LogEvent;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Keeps the last `capacity` lines; older ones are forgotten.
pub struct TailSink {
    shared: Arc<Mutex<VecDeque<LogEvent>>>,
    capacity: usize,
}

/// A reader of a [`TailSink`]'s lines, cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct Tail {
    shared: Arc<Mutex<VecDeque<LogEvent>>>,
}

impl TailSink {
    /// A sink that keeps the last `capacity` lines, and the handle to read them.
    pub fn new(capacity: usize) -> (TailSink, Tail) {
        let shared = Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(4096))));
        (
            TailSink {
                shared: shared.clone(),
                capacity,
            },
            Tail { shared },
        )
    }
}

impl Tail {
    /// A copy of the lines kept now, oldest first.
    pub fn lines(&self) -> Vec<LogEvent> {
        let guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        guard.iter().cloned().collect()
    }

    /// The texts of the lines kept now, oldest first.
    pub fn texts(&self) -> Vec<String> {
        let guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        guard.iter().map(|e| e.text.clone()).collect()
    }
}

#[async_trait]
impl LogSink for TailSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        if self.capacity == 0 {
            return Ok(());
        }
        // Only the last `capacity` events of a large batch can survive it.
        let keep = &events[events.len().saturating_sub(self.capacity)..];
        let mut guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let overflow = (guard.len() + keep.len()).saturating_sub(self.capacity);
        let drop = overflow.min(guard.len());
        guard.drain(..drop);
        guard.extend(keep.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::lines;

    #[tokio::test]
    async fn keeps_only_the_last_lines() {
        let (mut sink, tail) = TailSink::new(3);
        sink.write(&lines(&["1", "2"])).await.unwrap();
        sink.write(&lines(&["3", "4"])).await.unwrap();
        assert_eq!(tail.texts(), ["2", "3", "4"]);
        sink.write(&lines(&["5", "6", "7", "8"])).await.unwrap();
        assert_eq!(tail.texts(), ["6", "7", "8"]);
    }
}
