//! What every request handler shares: the settings, the history, the
//! catalog of tracked branches and the scheduler that runs builds; and the
//! one way a push becomes builds ([`AppState::trigger`]), for the webhook
//! and the API alike.
//!
//! Imports go one way: `http` uses this module; this module uses the
//! scheduler, the reloader and what they use (`live`, `catalog`, `config`),
//! never `http` or `views`.

use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::live::Live;
use crate::metrics::WebhookCounter;
use crate::pipeline::builds_of;
use crate::pipeline::Scheduler;
use crate::reloader::Reloader;
use crate::sweeper::DockerHealth;
use std::sync::Arc;
use zos_build_core::git::{self, GitError};
use zos_build_core::{
    CancellationToken, CommitId, Enqueued, History, HistoryError, RepositoryName,
};
use zos_flist_config::Catalog;

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The settings, fixed for the life of the process.
    pub config: Config,
    /// The build history.
    pub history: History,
    /// Runs queued builds; None when the server was started without builds
    /// ([`crate::start_without_builds`]): pushes are then only recorded.
    pub scheduler: Option<Scheduler>,
    /// Every log line and every change, for the websocket and log followers.
    pub live: Arc<Live>,
    /// Webhook requests by answer, for `/metrics`.
    pub webhooks: WebhookCounter,
    /// Loads the configuration repository again on a push to it; None when
    /// no configuration repository is set.
    pub reloader: Option<Arc<Reloader>>,
    /// Cancelled when the server stops: the listener, the websockets and the
    /// log followers end on it.
    pub shutdown: CancellationToken,
    /// Whether Docker answers; None when the server runs no builds.
    pub docker: Option<Arc<DockerHealth>>,
    catalog: SharedCatalog,
}

impl AppState {
    /// State over `history` and `catalog`, with the scheduler that runs builds (if any).
    pub fn new(
        config: Config,
        history: History,
        catalog: SharedCatalog,
        scheduler: Option<Scheduler>,
        live: Arc<Live>,
        reloader: Option<Arc<Reloader>>,
    ) -> AppState {
        AppState {
            config,
            history,
            scheduler,
            live,
            webhooks: WebhookCounter::default(),
            reloader,
            shutdown: CancellationToken::new(),
            docker: None,
            catalog,
        }
    }

    /// The catalog now; None when no configuration repository is loaded.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.get()
    }

    /// Replaces the catalog.
    pub fn set_catalog(&self, catalog: Catalog) {
        self.catalog.set(catalog);
    }

    /// Turns a push (webhook) or a request (API) into builds: looks the
    /// branch up in the catalog, finds the commit (the branch's head when
    /// none is given), records one build per build script as `queued` and
    /// hands them to the scheduler (without a scheduler they are only
    /// recorded). The handlers only map the errors to their answers.
    pub async fn trigger(&self, trigger: Trigger) -> Result<Triggered, TriggerError> {
        let catalog = self
            .catalog()
            .filter(|catalog| catalog.has_repository(trigger.repository.as_str()))
            .ok_or(TriggerError::RepositoryNotTracked)?;
        let branch = catalog
            .get(trigger.repository.as_str(), &trigger.branch)
            .ok_or(TriggerError::BranchNotTracked)?;
        let commit = match trigger.commit {
            Some(commit) => commit,
            None => {
                let url =
                    git::repository_url(&self.config.git_base_url, trigger.repository.as_str());
                let head = self
                    .config
                    .git()
                    .resolve(&url, &format!("refs/heads/{}", trigger.branch))
                    .await
                    .map_err(TriggerError::Head)?;
                CommitId::parse(&head)
                    .map_err(|e| TriggerError::Head(GitError::InvalidCommit(e.to_string())))?
            }
        };
        let builds = builds_of(branch, commit.as_str(), &trigger.commits);
        let window = trigger.refuse_replays.then_some(self.config.replay_window);
        let enqueued = match &self.scheduler {
            Some(scheduler) => {
                scheduler
                    .enqueue_unless_replayed(trigger.delivery, builds, window)
                    .await
            }
            None => {
                self.history
                    .enqueue_unless_replayed(trigger.delivery, builds, window)
                    .await
            }
        }
        .map_err(TriggerError::History)?;
        Ok(Triggered { commit, enqueued })
    }
}

/// What asks for builds: a push, or a request of the API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Trigger {
    /// The repository.
    pub repository: RepositoryName,
    /// The branch.
    pub branch: String,
    /// The commit; None for the branch's head now.
    pub commit: Option<CommitId>,
    /// The push's `commits` array as JSON text (shown on the status page).
    pub commits: String,
    /// The webhook delivery id: a delivery seen before records nothing.
    pub delivery: Option<String>,
    /// Whether a commit already queued, running or built within
    /// `replay-window` records nothing (a replayed push).
    pub refuse_replays: bool,
}

impl Trigger {
    /// A push of `commit` on `branch`, as a webhook delivers it: replays
    /// are refused.
    pub fn push(
        repository: RepositoryName,
        branch: impl Into<String>,
        commit: CommitId,
        commits: String,
        delivery: Option<String>,
    ) -> Trigger {
        Trigger {
            repository,
            branch: branch.into(),
            commit: Some(commit),
            commits,
            delivery,
            refuse_replays: true,
        }
    }

    /// A build of `branch` asked for on purpose (at `commit`, else at its
    /// head): it runs even when the commit was built before.
    pub fn request(
        repository: RepositoryName,
        branch: impl Into<String>,
        commit: Option<CommitId>,
    ) -> Trigger {
        Trigger {
            repository,
            branch: branch.into(),
            commit,
            commits: "[]".to_string(),
            delivery: None,
            refuse_replays: false,
        }
    }
}

/// What [`AppState::trigger`] recorded.
#[derive(Debug, Clone)]
pub struct Triggered {
    /// The commit built.
    pub commit: CommitId,
    /// The builds recorded, or that nothing was (a duplicate or a replay).
    pub enqueued: Enqueued,
}

/// Why [`AppState::trigger`] recorded nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// No branch of the repository is tracked.
    #[error("repository not tracked")]
    RepositoryNotTracked,
    /// The repository is tracked, not this branch.
    #[error("branch not tracked")]
    BranchNotTracked,
    /// No commit was given and the branch's head could not be found.
    #[error("cannot find the head of the branch: {0}")]
    Head(#[source] GitError),
    /// The history could not record the builds.
    #[error("cannot record the push: {0}")]
    History(#[source] HistoryError),
}
