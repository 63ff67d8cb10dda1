//! What every request handler shares: the settings, the history, the
//! catalog of tracked branches and the scheduler that runs builds; and the
//! one way a push becomes builds ([`AppState::trigger`]), for the webhook
//! and the API alike.
//!
//! Imports go one way: `http` uses this module; this module uses the
//! scheduler, the reloader and what they use (`live`, `catalog`, `config`),
//! never `http` or `views`.

use crate::catalog::{RefKind, SharedCatalog};
use crate::config::Config;
use crate::kernel::{KernelTarget, RELEASE};
use crate::live::Live;
use crate::metrics::{StatusCounters, WebhookCounter};
use crate::reloader::Reloader;
use crate::scheduler::builds_of;
use crate::scheduler::Scheduler;
use crate::sweeper::DockerHealth;
use std::sync::Arc;
use zos_build_core::git::{self, GitError};
use zos_build_core::history::Pipeline;
use zos_build_core::NewBuild;
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
    /// Commit statuses sent, retried and failed, for `/metrics`.
    pub github_statuses: Arc<StatusCounters>,
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
            github_statuses: Arc::default(),
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
    /// branch file of the branch or tag up in the catalog, finds the commit
    /// (the ref's commit now when none is given), records one build per
    /// build script as `queued` and hands them to the scheduler (without a
    /// scheduler they are only recorded). The handlers only map the errors
    /// to their answers.
    pub async fn trigger(&self, trigger: Trigger) -> Result<Triggered, TriggerError> {
        let catalog = self
            .catalog()
            .filter(|catalog| catalog.has_repository(trigger.repository.as_str()))
            .ok_or(TriggerError::RepositoryNotTracked)?;
        let branch = catalog
            .get(trigger.repository.as_str(), &trigger.branch)
            .ok_or_else(|| match trigger.kind {
                RefKind::Branch => TriggerError::BranchNotTracked,
                RefKind::Tag => TriggerError::TagNotTracked(trigger.branch.clone()),
            })?;
        let commit = match trigger.commit.clone() {
            Some(commit) => commit,
            None => self.commit_of(&trigger).await?,
        };
        let builds = builds_of(branch, commit.as_str(), &trigger.commits);
        let enqueued = self.enqueue(&trigger, builds).await?;
        Ok(Triggered { commit, enqueued })
    }

    /// Records `builds` as `queued` and hands them to the scheduler (without
    /// one they are only recorded), refusing replays when `trigger` says so.
    async fn enqueue(
        &self,
        trigger: &Trigger,
        builds: Vec<NewBuild>,
    ) -> Result<Enqueued, TriggerError> {
        let window = trigger.refuse_replays.then_some(self.config.replay_window);
        let delivery = trigger.delivery.clone();
        match &self.scheduler {
            Some(scheduler) => {
                scheduler
                    .enqueue_unless_replayed(delivery, builds, window)
                    .await
            }
            None => {
                self.history
                    .enqueue_unless_replayed(delivery, builds, window)
                    .await
            }
        }
        .map_err(TriggerError::History)
    }

    /// Turns a push of a kernel target (`target`) into its build: one
    /// `queued` build of the kernel pipeline. A tag is a release build.
    pub async fn trigger_kernel(
        &self,
        target: &KernelTarget,
        trigger: Trigger,
    ) -> Result<Triggered, TriggerError> {
        let commit = match trigger.commit.clone() {
            Some(commit) => commit,
            None => self.commit_of(&trigger).await?,
        };
        let baseimage = match &target.base_from {
            Some(base) => format!("{} (committed image)", base.to_ascii_lowercase()),
            None => target.baseimage.clone(),
        };
        let mut build = NewBuild::new(
            trigger.repository.as_str(),
            trigger.branch.as_str(),
            commit.as_str(),
            target.script.as_str(),
            baseimage,
        );
        build.commits = trigger.commits.clone();
        build.pipeline = Pipeline::Kernel;
        if trigger.kind == RefKind::Tag {
            build.tag = Some(RELEASE.to_string());
        }
        let enqueued = self.enqueue(&trigger, vec![build]).await?;
        Ok(Triggered { commit, enqueued })
    }

    /// The kernel target of `repository`, if it is one.
    pub fn kernel_target(&self, repository: &str) -> Option<&KernelTarget> {
        self.config
            .kernel_targets
            .iter()
            .find(|t| t.repository.eq_ignore_ascii_case(repository))
    }

    /// The commit the trigger's branch or tag points to now: for an
    /// annotated tag, the commit it tags (`refs/tags/<t>^{}`), not the tag
    /// object, which is no commit to fetch.
    async fn commit_of(&self, trigger: &Trigger) -> Result<CommitId, TriggerError> {
        let url = git::repository_url(&self.config.git_base_url, trigger.repository.as_str());
        let git = self.config.git();
        let reference = trigger.kind.git_ref(&trigger.branch);
        // A tag: the commit it tags. A lightweight tag has no peeled entry
        // (`^{}`): it names the commit itself.
        let tagged = |name: String| {
            let (git, url) = (&git, &url);
            async move {
                let tag = RefKind::Tag.git_ref(&name);
                match git.resolve(url, &format!("{tag}^{{}}")).await {
                    Err(GitError::NoSuchRef { .. }) => git.resolve(url, &tag).await,
                    peeled => peeled,
                }
            }
        };
        let head = match trigger.kind {
            // A request of the API names a branch file; when no branch has
            // its name, a tag of that name is what it builds.
            RefKind::Branch => match git.resolve(&url, &reference).await {
                Err(GitError::NoSuchRef { .. }) if !trigger.refuse_replays => {
                    tagged(trigger.branch.clone()).await
                }
                head => head,
            },
            RefKind::Tag => tagged(trigger.branch.clone()).await,
        }
        .map_err(TriggerError::Head)?;
        CommitId::parse(&head)
            .map_err(|e| TriggerError::Head(GitError::InvalidCommit(e.to_string())))
    }
}

/// What asks for builds: a push, or a request of the API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Trigger {
    /// The repository.
    pub repository: RepositoryName,
    /// The name of the branch or tag (`kind`): the branch file built, and
    /// the builds' branch.
    pub branch: String,
    /// Whether `branch` names a branch or a tag of the repository.
    pub kind: RefKind,
    /// The commit; None for the commit the branch or tag points to now.
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
        Trigger::push_of(
            RefKind::Branch,
            repository,
            branch,
            commit,
            commits,
            delivery,
        )
    }

    /// A push of `commit` on the branch or tag (`kind`) `name`, as a
    /// webhook delivers it: replays are refused. A tag builds the branch
    /// file named like it.
    pub fn push_of(
        kind: RefKind,
        repository: RepositoryName,
        name: impl Into<String>,
        commit: CommitId,
        commits: String,
        delivery: Option<String>,
    ) -> Trigger {
        Trigger {
            repository,
            branch: name.into(),
            kind,
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
            kind: RefKind::Branch,
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
    /// The repository is tracked, but has no branch file named like this
    /// tag.
    #[error("tag not tracked: {0}")]
    TagNotTracked(String),
    /// No commit was given and the branch's head (or the tag's commit)
    /// could not be found.
    #[error("cannot find the head of the branch: {0}")]
    Head(#[source] GitError),
    /// The history could not record the builds.
    #[error("cannot record the push: {0}")]
    History(#[source] HistoryError),
}
