//! Loading the configuration repository, at start-up and on every push to it.
//!
//! `configuration-repository` is either a local directory or a GitHub
//! `owner/name`, fetched through `git-base-url`: its default branch at
//! start-up, exactly the pushed commit afterwards (pushes to other branches
//! of it are ignored). The new catalog replaces the old one in one step, so a
//! repository or branch removed from the configuration stops being tracked at
//! once (the old service kept it until a restart), and a request in flight
//! keeps the catalog it started with.
//!
//! Each load is a build of its own in the history, named
//! `Configuration reloader` as in the old service: its log lists every error
//! and warning with file and line, and it ends `error` ("Some configuration
//! files could not be parsed correctly") when any branch file was rejected.
//! The branches that are valid are tracked either way: one broken file only
//! rejects its own branch.
//!
//! With `register-webhooks`, each load then makes sure every tracked
//! repository (and the configuration repository, when it is on GitHub) has
//! our webhook ([`crate::github::hooks`]), one line per repository in the
//! load's log. That never fails the load.
//!
//! The load's log passes through the same masking sink as a build's: a
//! secret of the configuration echoed by git, a branch file or GitHub is
//! written `***`.

use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::github::Webhooks;
use crate::live::Live;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zos_build_core::pipeline::{
    BuildJob, GitSource, JobEnding, JobInfo, JobLog, LocalSource, NoStatus, Source as TreeSource,
    StatusReporter, Step, StepContext, Stop,
};
use zos_build_core::redact::redact_credentials;
use zos_build_core::sink::{FanOut, FileSink, MaskSecrets};
use zos_build_core::{git, BuildStatus, BuildUpdate, Enqueued, History, NewBuild};
use zos_flist_config::Catalog;

/// The name of the reload builds in the history.
pub const RELOADER_NAME: &str = "Configuration reloader";
/// The error of a reload that rejected a branch file (the old service's words).
pub const REJECTED: &str = "Some configuration files could not be parsed correctly";

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory on this machine, read as it is.
    Local(PathBuf),
    /// A repository (`owner/name`) fetched through `git-base-url`.
    Git {
        /// `owner/name`.
        repository: String,
        /// Its URL.
        url: String,
    },
}

impl Source {
    /// The source `config` names; None when no configuration repository is set.
    ///
    /// An existing directory is local; otherwise the value must be `owner/name`.
    pub fn of(config: &Config) -> Result<Option<Source>, String> {
        let Some(value) = config.configuration_repository.as_deref() else {
            return Ok(None);
        };
        let path = Path::new(value);
        if path.is_dir() {
            return Ok(Some(Source::Local(path.to_path_buf())));
        }
        if zos_build_core::RepositoryName::parse(value).is_err() {
            return Err(format!(
                "configuration-repository {value:?} is neither an existing directory nor owner/name"
            ));
        }
        Ok(Some(Source::Git {
            repository: value.to_string(),
            url: git::repository_url(&config.git_base_url, value),
        }))
    }
}

/// Loads the configuration and swaps the catalog.
pub struct Reloader {
    config: Config,
    history: History,
    catalog: SharedCatalog,
    live: Arc<Live>,
    source: Source,
    /// The default branch of a git source, learnt at the first load.
    branch: std::sync::Mutex<Option<String>>,
    /// One load at a time: a later push never loses to an earlier one.
    running: tokio::sync::Mutex<()>,
    /// Told when a load is queued, starts and ends (the configuration
    /// commit's status).
    status: Arc<dyn StatusReporter>,
    /// Makes sure the repositories have our webhook after each load.
    webhooks: Option<Webhooks>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the source: its URL may hold git-base-url's credentials.
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// What a push to the configuration repository asks for.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The webhook delivery (a redelivery loads nothing).
    pub delivery: Option<String>,
    /// The pushed branch; a push to another branch than the default is ignored.
    pub branch: Option<String>,
    /// The pushed commit.
    pub commit: Option<String>,
}

impl Reloader {
    /// A reloader for `config`'s configuration repository, if it has one.
    pub fn new(
        config: Config,
        history: History,
        catalog: SharedCatalog,
        live: Arc<Live>,
    ) -> Result<Option<Reloader>, String> {
        let Some(source) = Source::of(&config)? else {
            return Ok(None);
        };
        Ok(Some(Reloader {
            config,
            history,
            catalog,
            live,
            source,
            branch: std::sync::Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            status: Arc::new(NoStatus),
            webhooks: None,
        }))
    }

    /// Tells `status` how each load goes.
    pub fn with_status(mut self, status: Arc<dyn StatusReporter>) -> Reloader {
        self.status = status;
        self
    }

    /// After each load, makes sure every tracked repository has our
    /// webhook (see [`crate::github::hooks`]); None: nothing is registered.
    pub fn with_webhooks(mut self, webhooks: Option<Webhooks>) -> Reloader {
        self.webhooks = webhooks;
        self
    }

    /// Where the configuration comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether a push of `repository` is a push to the configuration repository.
    pub fn is_configuration_push(&self, repository: &str) -> bool {
        matches!(&self.source, Source::Git { repository: r, .. } if r == repository)
    }

    fn default_branch(&self) -> Option<String> {
        self.branch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads the configuration now (the default branch's head for a git
    /// source) and records the load; returns the reloader build's id.
    pub async fn load(&self) -> Option<String> {
        self.run(None, None).await
    }

    /// Loads the pushed commit, when the push is on the default branch;
    /// returns the reloader build's id, None when nothing was loaded.
    pub async fn reload(&self, push: Reload) -> Option<String> {
        if let (Some(pushed), Some(default)) = (&push.branch, self.default_branch()) {
            if *pushed != default {
                tracing::info!(branch = %pushed, "push to a branch of the configuration repository other than {default}: ignored");
                return None;
            }
        }
        self.run(push.delivery, push.commit).await
    }

    async fn run(&self, delivery: Option<String>, commit: Option<String>) -> Option<String> {
        let _one_at_a_time = self.running.lock().await;
        let (repository, location) = match &self.source {
            Source::Local(dir) => (dir.display().to_string(), dir.display().to_string()),
            Source::Git { repository, url } => (repository.clone(), url.clone()),
        };
        let mut build = NewBuild::new(&repository, "", commit.clone().unwrap_or_default(), "", "");
        build.name = RELOADER_NAME.to_string();
        build.pipeline = zos_build_core::history::Pipeline::Reload;
        // A push of a commit loaded within `replay-window` is a replay.
        let window = commit.as_ref().map(|_| self.config.replay_window);
        let record = match self
            .history
            .enqueue_unless_replayed(delivery, vec![build], window)
            .await
        {
            Ok(Enqueued::Queued(mut records)) if !records.is_empty() => records.remove(0),
            Ok(_) => {
                tracing::info!("configuration push delivered twice, or replayed: ignored");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record a configuration reload");
                return None;
            }
        };
        let id = record.id.clone();
        self.update(&id, BuildUpdate::started(BuildStatus::Building), false)
            .await;
        let path = self.config.build_log_path(&id);
        let copies = match FileSink::create(&path).await {
            Ok(file) => {
                let live = self.live.sink(&id, &path, file.size());
                FanOut::new().with(file).with(live)
            }
            Err(e) => {
                // The reload matters more than its log.
                tracing::warn!(error = %e, "cannot write the configuration reload's log");
                FanOut::new()
            }
        };
        // Masked before any copy is made, as a build's log is.
        let mut sink = MaskSecrets::new(copies, self.config.secrets());
        let mut log = JobLog::new(&mut sink);
        log.line(format!(
            "[zos-build] loading the configuration from {}",
            redact_credentials(&location)
        ))
        .await;
        let ending = match self.source_of(commit).await {
            Ok((source, commit)) => {
                let work = self
                    .config
                    .data_directory
                    .join("configuration")
                    .join(&commit);
                let _ = tokio::fs::remove_dir_all(&work).await;
                let info = JobInfo::new(id.as_str(), repository.as_str(), "", commit, "");
                let step = CatalogStep {
                    catalog: self.catalog.clone(),
                    webhooks: self.webhooks.clone(),
                    configuration_repository: match &self.source {
                        Source::Git { repository, .. } => Some(repository.clone()),
                        Source::Local(_) => None,
                    },
                };
                let job = BuildJob::new(info, &work, source, Arc::new(step))
                    .reporter(self.status.clone());
                let ending = job.run(&mut log, &Stop::new()).await;
                remove_other_checkouts(&work).await;
                ending
            }
            Err(message) => {
                let ending = JobEnding::error(message);
                log.line(ending.last_line()).await;
                ending
            }
        };
        if let Err(e) = log.finish().await {
            tracing::warn!(error = %e, "cannot write the configuration reload's log");
        }
        let (status, error) = match ending {
            JobEnding::Succeeded { .. } => (BuildStatus::Success, None),
            JobEnding::Failed { message, .. } => {
                tracing::warn!(error = %message, "configuration reload");
                (BuildStatus::Error, Some(message))
            }
            other => (BuildStatus::Error, Some(other.last_line())),
        };
        self.update(&id, BuildUpdate::finished(status, error, None), true)
            .await;
        Some(id)
    }

    /// Where to load from: the local directory, or `commit` of the
    /// repository (default: its default branch's head, learnt here), with
    /// the commit (empty for a directory).
    async fn source_of(
        &self,
        commit: Option<String>,
    ) -> Result<(Arc<dyn TreeSource>, String), String> {
        let url = match &self.source {
            Source::Local(dir) => return Ok((Arc::new(LocalSource::new(dir)), "local".into())),
            Source::Git { url, .. } => url.clone(),
        };
        let commit = match commit {
            Some(commit) => commit,
            None => {
                let (branch, head) =
                    self.config.git().default_branch(&url).await.map_err(|e| {
                        format!("cannot find the configuration's default branch: {e}")
                    })?;
                *self
                    .branch
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(branch);
                head
            }
        };
        let source = GitSource::new(self.config.git(), url, &commit, "tree");
        Ok((Arc::new(source), commit))
    }

    async fn update(&self, id: &str, update: BuildUpdate, finished: bool) {
        if let Err(e) = self.history.update(id, update).await {
            tracing::error!(build = %id, error = %e, "cannot record a configuration reload");
        }
        self.live.changed(finished).await;
    }
}

/// The reload's step: the tree becomes the new catalog, every problem
/// with file and line in the log. One broken branch file rejects its own
/// branch only; the valid ones are tracked either way. Then, with
/// `register-webhooks`, the webhooks of the repositories now tracked.
struct CatalogStep {
    catalog: SharedCatalog,
    webhooks: Option<Webhooks>,
    /// The configuration repository, when it is on GitHub (`owner/name`).
    configuration_repository: Option<String>,
}

#[async_trait::async_trait]
impl Step for CatalogStep {
    async fn run(&self, context: &StepContext<'_>, log: &mut JobLog<'_>) -> JobEnding {
        let dir = context.tree.to_path_buf();
        let catalog = match tokio::task::spawn_blocking(move || Catalog::load(dir)).await {
            Ok(Ok(catalog)) => catalog,
            Ok(Err(e)) => return JobEnding::failure(e.to_string()),
            Err(e) => return JobEnding::error(format!("the load did not finish: {e}")),
        };
        for problem in catalog.problems() {
            log.line(problem.to_string()).await;
        }
        let branches = catalog.branches().count();
        let rejected = catalog.reports().iter().filter(|r| !r.is_valid()).count();
        let summary = format!("{branches} branches tracked, {rejected} branch files rejected");
        log.line(format!("[zos-build] {summary}")).await;
        let failed = catalog.has_errors();
        let catalog_first_error = catalog
            .problems()
            .into_iter()
            .find(|p| p.severity == zos_flist_config::Severity::Error)
            .map(ToString::to_string);
        let tracked: Vec<String> = catalog
            .branches()
            .map(|branch| branch.repository.clone())
            .collect();
        self.catalog.set(catalog);
        tracing::info!(branches, rejected, "configuration loaded");
        if let Some(webhooks) = &self.webhooks {
            // Never fails the load: a failure is a line of its log.
            webhooks
                .register(tracked, self.configuration_repository.as_deref(), log)
                .await;
        }
        if failed {
            // For the configuration commit's status: how many files, and
            // the first error with its file and line.
            let first = catalog_first_error.unwrap_or_default();
            JobEnding::failure(REJECTED).brief(format!("{rejected} rejected: {first}"))
        } else {
            JobEnding::Succeeded {
                summary,
                published: Vec::new(),
            }
        }
    }
}

/// Removes the checkouts of the configuration beside `current`: older
/// commits are of no use any more.
async fn remove_other_checkouts(current: &Path) {
    let Some(root) = current.parent() else {
        return;
    };
    if let Ok(mut entries) = tokio::fs::read_dir(root).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.path() != current {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }
}
