//! Where a build's time goes: the phases of one build, each timed.
//!
//! Why: "push to success takes 0.36 s" says nothing about what to make
//! faster. A build is six phases, always in this order (some overlap: the
//! container is created while git fetches), and each is timed where it
//! happens: the job times the [`Phase::Fetch`], the executor the container
//! work ([`Phase::Create`], [`Phase::Upload`], [`Phase::Run`],
//! [`Phase::Extract`]), the container step the [`Phase::Publish`]. They
//! reach the caller through the log ([`LogSink::phase`](crate::LogSink::phase),
//! collected by [`JobLog::phases`](crate::pipeline::JobLog::phases)), so
//! neither the executor's nor the step's signature carries them. A phase
//! that did not run is absent, never zero.
//!
//! The server keeps them in the build's history record and exposes them as
//! seconds (`{"fetch":0.031,"create":0.05,...}`), and as histograms on
//! `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

/// One phase of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// The source tree fetched (git: init, fetch of one commit, checkout).
    Fetch,
    /// The image made sure of (pulled when missing), the cache volumes
    /// checked, the container created.
    Create,
    /// The source tree (and an inline script) copied into the container.
    Upload,
    /// From attaching to the container to its exit: the build script.
    Run,
    /// The artifacts copied out of the container.
    Extract,
    /// The artifacts published (and links moved).
    Publish,
}

impl Phase {
    /// Every phase, in the order a build goes through them.
    pub const ALL: [Phase; 6] = [
        Phase::Fetch,
        Phase::Create,
        Phase::Upload,
        Phase::Run,
        Phase::Extract,
        Phase::Publish,
    ];

    /// Its name: `fetch`, `create`, `upload`, `run`, `extract`, `publish`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Fetch => "fetch",
            Phase::Create => "create",
            Phase::Upload => "upload",
            Phase::Run => "run",
            Phase::Extract => "extract",
            Phase::Publish => "publish",
        }
    }

    /// The phase named `name` ([`Phase::as_str`]).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each phase of one build took; a phase that did not run is
/// absent. A phase timed twice (never by this crate) adds up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    phases: BTreeMap<Phase, Duration>,
}

impl PhaseTimings {
    /// No phase yet.
    pub fn new() -> PhaseTimings {
        PhaseTimings::default()
    }

    /// Adds `elapsed` to `phase`.
    pub fn add(&mut self, phase: Phase, elapsed: Duration) {
        *self.phases.entry(phase).or_default() += elapsed;
    }

    /// How long `phase` took, when it ran.
    pub fn get(&self, phase: Phase) -> Option<Duration> {
        self.phases.get(&phase).copied()
    }

    /// The phases that ran, in the order of [`Phase::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        self.phases.iter().map(|(p, d)| (*p, *d))
    }

    /// True when no phase ran.
    pub fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    /// As a JSON object of seconds: `{"fetch":0.031,"create":0.05}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.iter()
                .map(|(phase, elapsed)| (phase.as_str().to_string(), seconds(elapsed)))
                .collect(),
        )
    }

    /// Reads [`PhaseTimings::to_json`]'s text back; None for text that is
    /// not such an object (an unknown phase, a negative or non-numeric
    /// value).
    pub fn from_json(text: &str) -> Option<PhaseTimings> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let mut timings = PhaseTimings::new();
        for (name, seconds) in value.as_object()? {
            let phase = Phase::parse(name)?;
            let seconds = seconds.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
            timings.add(phase, Duration::try_from_secs_f64(seconds).ok()?);
        }
        Some(timings)
    }
}

/// Seconds as a JSON number, to the microsecond.
fn seconds(elapsed: Duration) -> serde_json::Value {
    let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as f64;
    serde_json::Number::from_f64(micros / 1e6).map_or(serde_json::Value::Null, Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            ["fetch", "create", "upload", "run", "extract", "publish"]
        );
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(Phase::parse("commit"), None);
    }

    #[test]
    fn json_holds_seconds_of_the_phases_that_ran() {
        let mut timings = PhaseTimings::new();
        timings.add(Phase::Run, Duration::from_millis(250));
        timings.add(Phase::Fetch, Duration::from_micros(31_000));
        let json = timings.to_json();
        assert_eq!(json, serde_json::json!({"fetch": 0.031, "run": 0.25}));
        assert_eq!(
            PhaseTimings::from_json(&json.to_string()),
            Some(timings.clone())
        );
        assert_eq!(PhaseTimings::from_json("{\"fetch\": -1}"), None);
        assert_eq!(PhaseTimings::from_json("{\"sleep\": 1}"), None);
        assert_eq!(PhaseTimings::from_json("[1]"), None);
    }
}
