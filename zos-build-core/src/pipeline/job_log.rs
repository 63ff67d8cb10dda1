//! One job's log: every step writes through it, so the whole log is
//! numbered by one sequencer, from 0, without gaps or repeats.

use crate::log::{LogEvent, LogStream, Sequencer};
use crate::sink::{LogSink, SinkError};
use crate::{Phase, PhaseTimings};
use async_trait::async_trait;
use std::time::Duration;

/// The log of one job.
///
/// Why: a build's log is written by several hands (the pipeline says what
/// it fetches, the executor streams the container, the publisher step says
/// where the artifact went) and [`LogEvent::seq`] promises one numbering
/// from 0 without gaps. The job's own lines get their numbers here; the
/// executor is told where to start ([`BuildSpec::first_log_line`]), and
/// every event passing through [`JobLog::sink`] moves the next number past
/// it, so whoever writes next continues the count.
///
/// It also collects the build's [`Phase`] timings ([`JobLog::phases`]):
/// every hand that times a phase tells the log it writes to, and the
/// caller, who owns the log, reads them when the job has ended.
///
/// [`BuildSpec::first_log_line`]: crate::BuildSpec::first_log_line
pub struct JobLog<'a> {
    sink: &'a mut dyn LogSink,
    seq: Sequencer,
    /// The first write error; later lines are dropped (the job goes on).
    failed: Option<String>,
    /// The phases timed so far.
    phases: PhaseTimings,
}

impl std::fmt::Debug for JobLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLog")
            .field("next", &self.seq.count())
            .field("failed", &self.failed)
            .field("phases", &self.phases)
            .finish_non_exhaustive()
    }
}

impl<'a> JobLog<'a> {
    /// A log written to `sink`, numbered from 0.
    pub fn new(sink: &'a mut dyn LogSink) -> JobLog<'a> {
        JobLog {
            sink,
            seq: Sequencer::default(),
            failed: None,
            phases: PhaseTimings::new(),
        }
    }

    /// The number the next line gets: how many lines the log holds.
    pub fn next_seq(&self) -> u64 {
        self.seq.count()
    }

    /// Writes one line of the engine's own (`system`). A sink that fails is
    /// remembered ([`JobLog::error`]) and written to no more.
    pub async fn line(&mut self, text: impl Into<String>) {
        let event = self.seq.event(LogStream::System, text.into());
        self.deliver(std::slice::from_ref(&event)).await;
    }

    /// The sink itself, for a step that makes its own events (the
    /// executor): the events written through it must carry the numbers from
    /// [`JobLog::next_seq`] on, in order, and the count continues after them.
    pub fn sink(&mut self) -> &mut dyn LogSink {
        self
    }

    /// Records that `phase` took `elapsed`, and tells the sink. A sink that
    /// fails is remembered, as for [`JobLog::line`].
    pub async fn phase_ended(&mut self, phase: Phase, elapsed: Duration) {
        self.phases.add(phase, elapsed);
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.sink.phase(phase, elapsed).await {
            self.failed = Some(e.to_string());
        }
    }

    /// The phases of the job timed so far (all of them once it has ended);
    /// a phase that did not run is absent.
    pub fn phases(&self) -> &PhaseTimings {
        &self.phases
    }

    /// Why the sink failed, if it did.
    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Flushes the sink.
    pub async fn finish(&mut self) -> Result<(), SinkError> {
        self.sink.finish().await
    }

    async fn deliver(&mut self, events: &[LogEvent]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.sink.write(events).await {
            self.failed = Some(e.to_string());
        }
    }
}

#[async_trait]
impl LogSink for JobLog<'_> {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        if let Some(last) = events.last() {
            debug_assert_eq!(
                events.first().map(|e| e.seq),
                Some(self.seq.count()),
                "a step's events continue the job's numbering"
            );
            self.seq = Sequencer::starting_at(last.seq + 1);
        }
        self.sink.write(events).await
    }

    async fn container_started(&mut self, container_id: &str) -> Result<(), SinkError> {
        self.sink.container_started(container_id).await
    }

    async fn committing(&mut self) -> Result<(), SinkError> {
        self.sink.committing().await
    }

    async fn phase(&mut self, phase: Phase, elapsed: Duration) -> Result<(), SinkError> {
        self.phases.add(phase, elapsed);
        self.sink.phase(phase, elapsed).await
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        // The executor finishes its sink when it returns; the job's log
        // goes on after it, so a step's finish only flushes.
        self.sink.finish().await
    }
}
