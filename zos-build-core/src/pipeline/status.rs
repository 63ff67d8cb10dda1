//! Telling the outside world how a build goes: the hook commit statuses
//! hang on.

use super::JobEnding;
use async_trait::async_trait;

/// Who and what a build is, as a status reporter needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobInfo {
    /// The build's id (in the history, the log's URL).
    pub id: String,
    /// `owner/repo`, or a local name for an embedder's build.
    pub repository: String,
    /// The branch (or tag) built.
    pub branch: String,
    /// The commit built (empty when there is none: a local directory).
    pub commit: String,
    /// The build script, relative to the repository: one status context
    /// per script.
    pub script: String,
}

impl JobInfo {
    /// A build `id` of `script` at `commit` of `repository`'s `branch`.
    pub fn new(
        id: impl Into<String>,
        repository: impl Into<String>,
        branch: impl Into<String>,
        commit: impl Into<String>,
        script: impl Into<String>,
    ) -> JobInfo {
        JobInfo {
            id: id.into(),
            repository: repository.into(),
            branch: branch.into(),
            commit: commit.into(),
            script: script.into(),
        }
    }
}

/// Hears when a build is queued, starts and ends: what GitHub commit
/// statuses are made from.
///
/// A reporter must never hold a build up: it should record what it has to
/// say and return (a reporter that talks to a slow network queues the call).
/// Every method does nothing by default.
#[async_trait]
pub trait StatusReporter: Send + Sync {
    /// The build was recorded and waits for a slot (said by the scheduler,
    /// which owns the queue).
    async fn queued(&self, job: &JobInfo) {
        let _ = job;
    }

    /// The build left the queue and starts fetching.
    async fn started(&self, job: &JobInfo) {
        let _ = job;
    }

    /// The build ended so, `elapsed` after it started (zero when it never
    /// started: cancelled in the queue).
    async fn ended(&self, job: &JobInfo, ending: &JobEnding, elapsed: std::time::Duration) {
        let _ = (job, ending, elapsed);
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatus;

impl StatusReporter for NoStatus {}
