//! Commit statuses: every build tells GitHub how it goes, one context per
//! build script, reliably and in order.
//!
//! Two halves joined by the history's outbox ([`History::queue_status`]):
//!
//! - [`Statuses`] is the pipeline's [`StatusReporter`]. It only writes a row
//!   (`pending`/`queued` when a build is queued, `pending`/`building` when it
//!   starts, then `success`, `failure` or `error` with what happened) and
//!   wakes the sender: a status never waits for the network, so it never
//!   holds a build up.
//! - [`Sender`] sends what is due, oldest first and one at a time, in order
//!   per (commit, context): a later status never overtakes an earlier one of
//!   the same context. 5xx answers, timeouts and connection errors are
//!   retried with exponential backoff; a rate limit (429, or 403 with
//!   `X-RateLimit-Remaining: 0`) pauses all sending for as long as GitHub
//!   says (`Retry-After`, `X-RateLimit-Reset`); a 401 or 404 gives the status
//!   up and says once in the server's log what to fix.
//!
//! Rows survive restarts, so a status queued while GitHub was down, or
//! before a crash, is sent after it; and builds a crash interrupted get
//! their `error` at the next start ([`Statuses::interrupted`]).

use super::client::{GitHub, GitHubError};
use crate::live::Live;
use crate::metrics::StatusCounters;
use async_trait::async_trait;
use reqwest::Method;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use zos_build_core::history::statuses::now_ms;
use zos_build_core::history::{NewStatus, StatusState};
use zos_build_core::pipeline::{JobEnding, JobInfo, StatusReporter};
use zos_build_core::{BuildRecord, CommitId, History, RepositoryName};

/// The context of a configuration reload, after the prefix.
pub const RELOAD_CONTEXT: &str = "configuration";
/// The description of a build a restart interrupted.
const INTERRUPTED: &str = "interrupted by a restart of the server";
/// Statuses read from the outbox at once.
const BATCH: usize = 20;
/// The first delay after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// Attempts before a status that keeps failing (5xx, timeouts) is given up:
/// with the backoff, about nine hours.
const MAX_ATTEMPTS: u32 = 60;
/// How often an idle sender looks at the outbox anyway.
const IDLE_POLL: Duration = Duration::from_secs(60);

/// Writes the statuses of builds into the outbox.
#[derive(Debug, Clone)]
pub struct Statuses {
    history: History,
    prefix: String,
    public_host: Option<String>,
    wake: Arc<Notify>,
}

impl Statuses {
    /// Statuses in `history`'s outbox, with contexts `<prefix>/<script>`
    /// and links `<public_host>/report/<id>`, waking `wake` on each.
    pub fn new(
        history: History,
        prefix: impl Into<String>,
        public_host: Option<String>,
        wake: Arc<Notify>,
    ) -> Statuses {
        Statuses {
            history,
            prefix: prefix.into(),
            public_host: public_host.map(|h| h.trim_end_matches('/').to_string()),
            wake,
        }
    }

    /// The context of build script `script` (the reload's when empty).
    pub fn context(&self, script: &str) -> String {
        let name = if script.is_empty() {
            RELOAD_CONTEXT
        } else {
            script.trim_start_matches('/')
        };
        format!("{}/{name}", self.prefix)
    }

    /// Queues `state` with `description` for `job`, when it is about a
    /// commit of a GitHub repository (an embedder's local build, or a reload
    /// of a local directory, has none).
    async fn queue(&self, job: &JobInfo, state: StatusState, description: &str) {
        if RepositoryName::parse(&job.repository).is_err() || CommitId::parse(&job.commit).is_err()
        {
            return;
        }
        let mut status = NewStatus::new(
            job.id.as_str(),
            job.repository.as_str(),
            job.commit.as_str(),
            self.context(&job.script),
            state,
            description,
        );
        if let Some(host) = &self.public_host {
            status = status.target_url(format!("{host}/report/{}", job.id));
        }
        match self.history.queue_status(status).await {
            Ok(_) => self.wake.notify_one(),
            Err(e) => {
                tracing::error!(build = %job.id, error = %e, "cannot queue a commit status")
            }
        }
    }

    /// At start-up: the `error` status of every build a crash interrupted.
    pub async fn interrupted(&self, builds: &[BuildRecord]) {
        for build in builds {
            let job = JobInfo::new(
                build.id.as_str(),
                build.repository.as_str(),
                build.branch.as_str(),
                build.commit.as_str(),
                build.script.as_str(),
            );
            self.queue(&job, StatusState::Error, INTERRUPTED).await;
        }
    }
}

#[async_trait]
impl StatusReporter for Statuses {
    async fn queued(&self, job: &JobInfo) {
        self.queue(job, StatusState::Pending, "queued").await;
    }

    async fn started(&self, job: &JobInfo) {
        self.queue(job, StatusState::Pending, "building").await;
    }

    async fn ended(&self, job: &JobInfo, ending: &JobEnding, elapsed: Duration) {
        let state = match ending {
            JobEnding::Succeeded { .. } => StatusState::Success,
            JobEnding::Failed { by_build: true, .. } => StatusState::Failure,
            _ => StatusState::Error,
        };
        self.queue(job, state, &ending.describe(elapsed)).await;
    }
}

/// Sends the outbox to GitHub.
pub struct Sender {
    history: History,
    github: GitHub,
    wake: Arc<Notify>,
    counters: Arc<StatusCounters>,
    /// Told when a status was delivered or given up, so that the pages'
    /// `github` field follows.
    live: Option<Arc<Live>>,
    /// What was already said in the server's log (a 401, a 404 per
    /// repository): said once, not once per status.
    said: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("github", &self.github)
            .finish_non_exhaustive()
    }
}

/// What one attempt leads to.
enum Next {
    /// Go on with the next status.
    Continue,
    /// Send nothing before this instant (a rate limit).
    PauseUntil(tokio::time::Instant),
}

impl Sender {
    /// A sender of `history`'s outbox through `github`, woken by `wake`,
    /// counting in `counters`.
    pub fn new(
        history: History,
        github: GitHub,
        wake: Arc<Notify>,
        counters: Arc<StatusCounters>,
    ) -> Sender {
        Sender {
            history,
            github,
            wake,
            counters,
            live: None,
            said: Mutex::new(HashSet::new()),
        }
    }

    /// Announces every delivery on `live` (the monitor page and followers
    /// show where each build's status is).
    pub fn announcing(mut self, live: Arc<Live>) -> Sender {
        self.live = Some(live);
        self
    }

    /// Sends until `shutdown` is cancelled.
    pub fn spawn(self, shutdown: tokio_util::sync::CancellationToken) {
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = self.run() => {}
            }
        });
    }

    async fn run(&self) {
        loop {
            let due = match self.history.due_statuses(now_ms(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the commit statuses to send");
                    Vec::new()
                }
            };
            let mut pause = None;
            for queued in &due {
                if let Next::PauseUntil(until) = self.send(queued).await {
                    pause = Some(until);
                    break;
                }
            }
            if let Some(until) = pause {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if due.len() == BATCH {
                continue;
            }
            // Nothing more is due: sleep until the next retry, a new status,
            // or the idle poll.
            let wait = match self.history.next_status_due().await {
                Ok(Some(at)) => {
                    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(IDLE_POLL)
                }
                _ => IDLE_POLL,
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn send(&self, queued: &zos_build_core::history::QueuedStatus) -> Next {
        let status = &queued.status;
        let Some((owner, repo)) = status.repository.split_once('/') else {
            let _ = self
                .history
                .status_failed(queued.seq, "not owner/name")
                .await;
            return Next::Continue;
        };
        let mut body = serde_json::json!({
            "state": status.state.as_str(),
            "description": status.description,
            "context": status.context,
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = serde_json::json!(url);
        }
        let sent = self
            .github
            .call(
                Method::POST,
                &["repos", owner, repo, "statuses", &status.sha],
                Some(&body),
            )
            .await;
        let recorded = match &sent {
            Ok(_) => {
                self.counters.sent();
                tracing::debug!(build = %status.build_id, context = %status.context, state = status.state.as_str(), "commit status sent");
                self.history.status_sent(queued.seq).await
            }
            Err(e @ GitHubError::RateLimited { wait, .. }) => {
                self.counters.retried();
                tracing::warn!(error = %e, "GitHub rate limit: commit statuses wait");
                let until = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                let recorded = self
                    .history
                    .status_retry(queued.seq, until, &e.code())
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "cannot record a commit status");
                }
                return Next::PauseUntil(tokio::time::Instant::now() + *wait);
            }
            Err(e @ GitHubError::Unavailable(_)) if queued.attempts + 1 < MAX_ATTEMPTS => {
                self.counters.retried();
                let delay = backoff(queued.attempts);
                tracing::info!(error = %e, retry_in = ?delay, "a commit status is retried");
                let until = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                self.history
                    .status_retry(queued.seq, until, &e.code())
                    .await
            }
            Err(e) => {
                self.counters.failed();
                self.say_once(status, e);
                self.history
                    .status_failed(queued.seq, &format!("{}: {e}", e.code()))
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a commit status");
        }
        if let Some(live) = &self.live {
            live.changed(false).await;
        }
        Next::Continue
    }

    /// Says in the server's log what to fix, once per cause.
    fn say_once(&self, status: &NewStatus, error: &GitHubError) {
        let (key, advice) = match error {
            GitHubError::Unauthorized(_) => (
                "401".to_string(),
                "check github-token: it must be valid and have the repo:status scope \
                 (classic), or commit statuses write access (fine-grained)"
                    .to_string(),
            ),
            GitHubError::NotFound(_) => (
                format!("404 {}", status.repository),
                format!(
                    "check the repository name {} and that github-token can see it",
                    status.repository
                ),
            ),
            other => (
                format!("{} {}", other.code(), status.repository),
                "this status is given up".to_string(),
            ),
        };
        let fresh = self
            .said
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
        if fresh {
            tracing::error!(repository = %status.repository, error = %error, "GitHub refused a commit status: {advice}; such statuses are not retried");
        }
    }
}

/// The delay after `attempts` failed attempts: 1 s, 2 s, 4 s… up to 10 min.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.min(20))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn contexts_are_per_script() {
        let dir = tempfile::tempdir().unwrap();
        let history = futures_executor(History::open(dir.path().join("h.sqlite3")));
        let statuses = Statuses::new(
            history,
            "zos-build",
            Some("https://b.example/".into()),
            Arc::default(),
        );
        assert_eq!(
            statuses.context("autobuild/a.sh"),
            "zos-build/autobuild/a.sh"
        );
        assert_eq!(statuses.context("/b.sh"), "zos-build/b.sh");
        assert_eq!(statuses.context(""), "zos-build/configuration");
        assert_eq!(statuses.public_host.as_deref(), Some("https://b.example"));
    }

    fn futures_executor<
        F: std::future::Future<Output = Result<History, zos_build_core::HistoryError>>,
    >(
        future: F,
    ) -> History {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
            .unwrap()
    }
}
