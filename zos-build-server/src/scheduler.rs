//! The scheduler: turns queued builds into finished ones.
//!
//! Why it exists: the webhook must answer GitHub at once, so it only records a
//! push as `queued` builds in the history. Something else has to run them,
//! one container each, without running more than the machine can take, and
//! without wasting a slot on a commit that a newer push has already replaced.
//!
//! How data flows:
//!
//! 1. [`Scheduler::enqueue`] records the builds of one push as `queued` in
//!    the history and submits them (at start-up, [`Scheduler::resume`]
//!    submits what the history still holds as `queued`). Recording and
//!    submitting happen under one lock, so pushes are submitted in the order
//!    they were recorded. Builds of the same name (`owner/repo/branch`) that
//!    are still queued or running are superseded: their cancellation token is
//!    cancelled. Each new build gets a task and a token of its own.
//! 2. The task waits for a permit of a global semaphore of
//!    `max-concurrent-builds`; while it waits the build stays `queued`. A
//!    build cancelled in the queue ends `cancelled` without running.
//! 3. With a permit, the build runs as a job of the core pipeline
//!    ([`zos_build_core::pipeline::BuildJob`]): `initializing` while the
//!    pushed commit is fetched with git into `<data>/work/<id>/<repo>` and,
//!    meanwhile, the container is created (the image pulled if missing),
//!    `building` once its container started, its artifact then published
//!    where its branch file's `format` says ([`Publishers`]: the Zero-OS
//!    Hub, the binary directory, or the local directory when no hub is
//!    configured), the branch's link moved forward only. Every line goes
//!    to the build's log file (the one `/report/<id>` serves) and the live
//!    feed, secrets masked.
//! 4. The job's ending is written to the history: `success` with the
//!    published artifact (its name, kind, location and link), `error` with a
//!    message saying why, or `cancelled`, and, in the same write, how long
//!    each phase took (fetch, create, upload, run, extract, publish: what
//!    the job's log collected), which also go to the `/metrics` histograms.
//!    The log's last line says the same, and the work directory is removed
//!    once the ending is recorded.
//!
//! What a build does is the job's; this module only decides when it runs.
//!
//! [`Scheduler::cancel`] stops one build the same way, with a reason of the
//! caller's (for the API's cancel action).
//!
//! On shutdown every token is cancelled: running builds end `error`
//! ("interrupted by server shutdown") with their containers removed by the
//! executor, and builds still waiting keep `queued`, to be resumed by the next
//! start.

use crate::catalog::SharedCatalog;
use crate::config::{Config, OnShutdown};
use crate::kernel;
use crate::live::Live;
use crate::metrics::PhaseHistograms;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use zos_build_core::git::{self, Git};
use zos_build_core::history::Pipeline;
use zos_build_core::log::Sequencer;
use zos_build_core::pipeline::KernelFlist;
use zos_build_core::pipeline::{
    BuildJob, ContainerStep, ForwardLinks, GitSource, JobEnding, JobInfo, JobLog, Publication,
    StatusReporter, Stop,
};
use zos_build_core::sink::{FanOut, FileSink, MaskSecrets, SizeCap};
use zos_build_core::{
    artifact_name, link_name, ArtifactKind, BinaryPublisher, BuildRecord, BuildSpec, BuildStatus,
    BuildUpdate, CancellationToken, Command, Enqueued, Executor, History, HistoryError,
    LocalPublisher, LogSink, LogStream, NewBuild, PhaseTimings, PublishError, Publisher,
};
use zos_flist_config::{Branch, Format};

/// The error recorded for a build cancelled because a newer push of its
/// branch arrived: `superseded by 1a2b3c4`, the newer commit's first 7
/// characters.
pub fn superseded_by(commit: &str) -> String {
    format!("superseded by {}", commit.get(..7).unwrap_or(commit))
}
/// The error recorded for a build stopped because the server shut down.
pub const SHUT_DOWN: &str = "interrupted by server shutdown";
/// Room in a build's log above `log-size-limit` for the engine's own lines
/// (fetching, waiting for Docker, the ending).
const LOG_SIZE_MARGIN: u64 = 1 << 20;
/// Runs queued builds. Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("available_permits", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Config,
    git: Git,
    history: History,
    catalog: SharedCatalog,
    executor: Arc<dyn Executor>,
    publishers: Publishers,
    /// Told when builds are queued, start and end.
    status: Arc<dyn StatusReporter>,
    /// Where every line and every change is announced.
    live: Arc<Live>,
    permits: Arc<Semaphore>,
    /// Build name → the builds of that name that are queued or running.
    active: Mutex<HashMap<String, Vec<ActiveBuild>>>,
    /// Held while a push is recorded and submitted, so that submissions
    /// follow the order of the history.
    intake: tokio::sync::Mutex<()>,
    /// One lock per kernel target: its builds share one cache volume, so
    /// they run one at a time (builds of other targets and flists do not wait).
    kernel_targets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Parent of every build's token: cancelled on a shutdown that cancels.
    shutdown: CancellationToken,
    /// Cancelled on any shutdown: builds still waiting for a slot stay
    /// `queued` instead of starting.
    closing: CancellationToken,
    tasks: TaskTracker,
    /// The phases of the builds ended since start-up, for `/metrics`.
    phase_histograms: PhaseHistograms,
}

struct ActiveBuild {
    id: String,
    stop: Stop,
}

impl Scheduler {
    /// A scheduler running at most `config.max_concurrent_builds` builds at
    /// once with `executor`, publishing with `publishers`, telling `status`, looking build
    /// scripts up in `catalog` and recording everything in `history`.
    pub fn new(
        config: Config,
        history: History,
        catalog: SharedCatalog,
        executor: Arc<dyn Executor>,
        publishers: Publishers,
        status: Arc<dyn StatusReporter>,
        live: Arc<Live>,
    ) -> Scheduler {
        let permits = Arc::new(Semaphore::new(config.max_concurrent_builds.max(1)));
        Scheduler {
            inner: Arc::new(Inner {
                git: config.git(),
                config,
                history,
                catalog,
                executor,
                publishers,
                status,
                live,
                permits,
                active: Mutex::new(HashMap::new()),
                intake: tokio::sync::Mutex::new(()),
                kernel_targets: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                closing: CancellationToken::new(),
                tasks: TaskTracker::new(),
                phase_histograms: PhaseHistograms::default(),
            }),
        }
    }

    /// Records the builds of one push as `queued` (see [`History::enqueue`]:
    /// nothing is recorded for a delivery seen before) and schedules them.
    pub async fn enqueue(
        &self,
        delivery_id: Option<String>,
        builds: Vec<NewBuild>,
    ) -> Result<Enqueued, HistoryError> {
        self.enqueue_unless_replayed(delivery_id, builds, None)
            .await
    }

    /// Like [`Scheduler::enqueue`], recording nothing for a replayed push
    /// (see [`History::enqueue_unless_replayed`]): what webhooks use.
    pub async fn enqueue_unless_replayed(
        &self,
        delivery_id: Option<String>,
        builds: Vec<NewBuild>,
        replay_window: Option<Duration>,
    ) -> Result<Enqueued, HistoryError> {
        let _intake = self.inner.intake.lock().await;
        let enqueued = self
            .inner
            .history
            .enqueue_unless_replayed(delivery_id, builds, replay_window)
            .await?;
        if let Enqueued::Queued(records) = &enqueued {
            self.submit(records.clone());
            self.inner.live.changed(false).await;
        }
        Ok(enqueued)
    }

    /// Schedules the builds of one push (recorded as `queued`), cancelling
    /// the queued or running builds of the same names that are not among them.
    fn submit(&self, records: Vec<BuildRecord>) {
        let inner = &self.inner;
        let new_ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let mut tokens = Vec::with_capacity(records.len());
        {
            let mut active = inner.lock_active();
            let names: HashMap<&str, &str> = records
                .iter()
                .map(|r| (r.name.as_str(), r.commit.as_str()))
                .collect();
            for (name, commit) in names {
                let reason = superseded_by(commit);
                for old in active.get(name).into_iter().flatten() {
                    if !new_ids.contains(old.id.as_str()) && old.stop.cancel(&reason) {
                        tracing::info!(build = %old.id, %name, "superseded by a newer push: cancelling");
                    }
                }
            }
            for record in &records {
                let stop = Stop::with_token(inner.shutdown.child_token());
                active
                    .entry(record.name.clone())
                    .or_default()
                    .push(ActiveBuild {
                        id: record.id.clone(),
                        stop: stop.clone(),
                    });
                tokens.push(stop);
            }
        }
        for (record, stop) in records.into_iter().zip(tokens) {
            let inner = inner.clone();
            // Every line of the server's log about this build, here or in
            // the engine, carries its id as the field `build`.
            let span = tracing::info_span!("build", build = %record.id);
            let task = async move {
                let registration = Registration {
                    inner: inner.clone(),
                    name: record.name.clone(),
                    id: record.id.clone(),
                };
                inner.status.queued(&job_info(&record)).await;
                inner.run(record, stop).await;
                drop(registration);
            };
            self.inner.tasks.clone().spawn(task.instrument(span));
        }
    }

    /// Resumes the builds the history holds as `queued` (at start-up),
    /// oldest first, one submission per push, so that a newer push still
    /// supersedes an older one of the same branch.
    pub async fn resume(&self) -> Result<usize, HistoryError> {
        let _intake = self.inner.intake.lock().await;
        let queued = self.inner.history.queued().await?;
        let count = queued.len();
        let mut group: Vec<BuildRecord> = Vec::new();
        for record in queued {
            let same_push = group.first().is_some_and(|first| {
                first.name == record.name
                    && first.commit == record.commit
                    && first.queued == record.queued
                    && first.delivery_id == record.delivery_id
            });
            if !same_push && !group.is_empty() {
                self.submit(std::mem::take(&mut group));
            }
            group.push(record);
        }
        if !group.is_empty() {
            self.submit(group);
        }
        Ok(count)
    }

    /// Cancels build `id` if it is queued or running: a queued build ends
    /// `cancelled` without running, a running one is stopped and ends
    /// `cancelled`; `reason` is recorded as its error. False when the
    /// build is not queued or running here (or was cancelled already).
    pub fn cancel(&self, id: &str, reason: &str) -> bool {
        let active = self.inner.lock_active();
        let found = active.values().flatten().find(|b| b.id == id);
        match found {
            Some(build) => {
                tracing::info!(build = %id, %reason, "cancelling");
                build.stop.cancel(reason)
            }
            None => false,
        }
    }

    /// The executor builds run on (for what only it can do: clearing a
    /// build cache).
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.inner.executor
    }

    /// How long the phases of the builds ended since start-up took.
    pub fn phase_histograms(&self) -> &PhaseHistograms {
        &self.inner.phase_histograms
    }

    /// Whether build `id` is queued or running now.
    pub fn is_active(&self, id: &str) -> bool {
        self.inner
            .lock_active()
            .values()
            .flatten()
            .any(|b| b.id == id)
    }

    /// Ids of the builds queued or running now.
    pub fn active_ids(&self) -> Vec<String> {
        self.inner
            .lock_active()
            .values()
            .flatten()
            .map(|b| b.id.clone())
            .collect()
    }

    /// Starts nothing more and waits until the running builds have ended
    /// and their containers are gone: cancelled at once with
    /// [`OnShutdown::Cancel`], run to their end with [`OnShutdown::Finish`].
    /// Builds still waiting keep `queued`, for the next start.
    pub async fn shutdown(&self, mode: OnShutdown) {
        self.inner.closing.cancel();
        if mode == OnShutdown::Cancel {
            self.inner.shutdown.cancel();
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// Removes a build from the active map when its task ends, however it ends.
struct Registration {
    inner: Arc<Inner>,
    name: String,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut active = self.inner.lock_active();
        if let Some(list) = active.get_mut(&self.name) {
            list.retain(|b| b.id != self.id);
            if list.is_empty() {
                active.remove(&self.name);
            }
        }
    }
}

impl Inner {
    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ActiveBuild>>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One build, from the queue to its end.
    async fn run(&self, record: BuildRecord, stop: Stop) {
        let id = record.id.as_str();
        // A kernel build first waits for its target's earlier builds (their
        // shared cache), without holding a slot meanwhile.
        let target_lock = match record.pipeline {
            Pipeline::Kernel => {
                let lock = self
                    .kernel_targets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(record.repository.to_ascii_lowercase())
                    .or_default()
                    .clone();
                tokio::select! {
                    biased;
                    () = stop.token().cancelled() => None,
                    () = self.closing.cancelled() => None,
                    guard = lock.lock_owned() => Some(guard),
                }
            }
            _ => None,
        };
        let waited = record.pipeline != Pipeline::Kernel || target_lock.is_some();
        let permit = if !waited {
            None
        } else {
            tokio::select! {
                biased;
                () = stop.token().cancelled() => None,
                () = self.closing.cancelled() => None,
                permit = self.permits.clone().acquire_owned() => permit.ok(),
            }
        };
        let Some(_permit) = permit else {
            let Some(reason) = stop.reason() else {
                tracing::info!(build = %id, "server stopping: the build stays queued");
                return;
            };
            let log = self.config.build_log_path(id);
            append_line(
                &log,
                &format!("[zos-build] cancelled before it started: {reason}"),
            )
            .await;
            self.record(
                id,
                BuildUpdate::finished(BuildStatus::Cancelled, Some(reason.into()), None),
            )
            .await;
            let ending = JobEnding::cancelled(&stop);
            self.status
                .ended(&job_info(&record), &ending, Duration::ZERO)
                .await;
            tracing::info!(build = %id, "cancelled while queued");
            return;
        };
        // The kernel pipeline keeps the old service's word.
        let first = match record.pipeline {
            Pipeline::Kernel => BuildStatus::Preparing,
            _ => BuildStatus::Initializing,
        };
        self.record(id, BuildUpdate::started(first)).await;
        tracing::info!(build = %id, name = %record.name, commit = %record.commit, "build started");
        let work = self.config.build_work_directory(id);
        let log = self.config.build_log_path(id);
        let mut phases = PhaseTimings::new();
        let ending = match FileSink::create(&log).await {
            Ok(file) => {
                // The file first: a follower woken by the live line finds it there.
                let live = self.live.sink(id, &log, file.size());
                let copies = FanOut::new().with(file).with(live).with(ContainerRecorder {
                    id: id.to_string(),
                    history: self.history.clone(),
                    live: self.live.clone(),
                });
                // Secrets are masked before any copy is made; the cap is a
                // second bound behind the executor's log limit, for the
                // engine's own lines.
                let mut secrets = self.config.secrets();
                secrets.extend(self.publishers.secrets());
                let masked = MaskSecrets::new(copies, secrets);
                let mut sink = SizeCap::new(
                    masked,
                    self.config.log_size_limit.saturating_add(LOG_SIZE_MARGIN),
                );
                let mut log = JobLog::new(&mut sink);
                let job = match record.pipeline {
                    Pipeline::Kernel => self.kernel_job(&record, &work).await,
                    _ => self.job(&record, &work),
                };
                let ending = match job {
                    Ok(job) => {
                        let ending = job.run(&mut log, &stop).await;
                        phases = log.phases().clone();
                        ending
                    }
                    Err(message) => {
                        let ending = JobEnding::error(message);
                        log.line(ending.last_line()).await;
                        self.status
                            .ended(&job_info(&record), &ending, Duration::ZERO)
                            .await;
                        ending
                    }
                };
                if let Err(e) = log.finish().await {
                    tracing::warn!(build = %id, error = %e, "cannot finish the build's log");
                }
                ending
            }
            Err(e) => {
                // No log to write to: the build cannot run, and says so.
                let ending = JobEnding::error(e.to_string());
                self.status
                    .ended(&job_info(&record), &ending, Duration::ZERO)
                    .await;
                ending
            }
        };
        let update = match &ending {
            JobEnding::Succeeded { published, .. } => {
                let first = published.first();
                let update = BuildUpdate::finished(
                    BuildStatus::Success,
                    None,
                    first.map(|p| p.published.name.clone()),
                );
                match first {
                    Some(p) => update.published(
                        p.kind,
                        p.published.location.clone(),
                        p.published.link.as_ref().map(|l| l.name.clone()),
                    ),
                    None => update,
                }
            }
            JobEnding::Failed { message, .. } => {
                BuildUpdate::finished(BuildStatus::Error, Some(message.clone()), None)
            }
            JobEnding::Cancelled {
                reason: Some(reason),
            } => BuildUpdate::finished(BuildStatus::Cancelled, Some(reason.clone()), None),
            JobEnding::Cancelled { reason: None } => {
                BuildUpdate::finished(BuildStatus::Error, Some(SHUT_DOWN.into()), None)
            }
            _ => BuildUpdate::finished(BuildStatus::Error, Some("unknown ending".into()), None),
        };
        // With the ending, in the same write.
        self.phase_histograms.observe(&phases);
        self.record(id, update.phases(phases)).await;
        // After the record: nobody waits for it (the build is still active
        // here, so the sweeper leaves the directory to this task).
        remove_work_directory(id, &work).await;
        tracing::info!(build = %id, ending = %ending.last_line(), "build ended");
    }

    /// The job of build `record`: its commit fetched with git, its build
    /// script run in a container, its artifact published where its
    /// branch file's `format` says. An error when the script is no longer in
    /// the configuration.
    fn job(&self, record: &BuildRecord, work: &Path) -> Result<BuildJob, String> {
        let Some(script) = self.catalog.get().and_then(|catalog| {
            catalog
                .get(&record.repository, &record.branch)
                .and_then(|branch| branch.builds.iter().find(|b| b.script == record.script))
                .cloned()
        }) else {
            return Err(format!(
                "build script {} of {} is no longer in the configuration",
                record.script, record.name
            ));
        };
        let repo_name = record
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&record.repository);
        let url = git::repository_url(&self.config.git_base_url, &record.repository);
        let source = GitSource::new(self.git.clone(), url, &record.commit, repo_name);
        let script_path = format!("/{repo_name}/{}", record.script.trim_start_matches('/'));
        let artifact_path = format!(
            "{}/{}",
            script.archives.trim_end_matches('/'),
            script.artifact
        );
        let spec = self
            .limits(BuildSpec::new(
                record.id.as_str(),
                record.baseimage.as_str(),
                Command::ScriptFile(script_path),
            ))
            .artifact(artifact_path);
        let name = artifact_name(
            &record.repository,
            record.tag.as_deref(),
            &record.branch,
            &record.commit,
        );
        let link = link_name(&record.repository, record.tag.as_deref(), &record.branch);
        let publication = self.publishers.publication(script.format, name, link);
        let step = ContainerStep::new(self.executor.clone(), spec, format!("/{repo_name}"))
            .executor_wait(self.config.docker_wait)
            .publish(publication);
        Ok(
            BuildJob::new(job_info(record), work, Arc::new(source), Arc::new(step))
                .reporter(self.status.clone()),
        )
    }

    /// The job of kernel build `record`: its commit fetched with git, the
    /// target's script run as `bash /<repo>/<script> <branch> <repo>
    /// [release]` with the target's build cache mounted, `vmlinuz.efi`
    /// published to the kernel directory (and as a kernel flist), and the
    /// container committed as `<repository>:<branch>` when the target says
    /// so. An error when the repository is no kernel target any more, or
    /// when a dependent target finds no image to start from.
    async fn kernel_job(&self, record: &BuildRecord, work: &Path) -> Result<BuildJob, String> {
        let Some(target) = self
            .config
            .kernel_targets
            .iter()
            .find(|t| t.repository.eq_ignore_ascii_case(&record.repository))
        else {
            return Err(format!(
                "{} is no longer a kernel target",
                record.repository
            ));
        };
        let repo_name = target.name();
        let image = match &target.base_from {
            None => target.baseimage.clone(),
            Some(base) => {
                let repository = base.to_ascii_lowercase();
                let tags = self
                    .executor
                    .local_tags(&repository)
                    .await
                    .map_err(|e| format!("cannot list the images of {repository}: {e}"))?;
                match kernel::pick_base_tag(&tags, &record.branch) {
                    Some(tag) => format!("{repository}:{tag}"),
                    None => {
                        return Err(format!("no base image found for branch {}", record.branch))
                    }
                }
            }
        };
        let url = git::repository_url(&self.config.git_base_url, &record.repository);
        let source = GitSource::new(self.git.clone(), url, &record.commit, repo_name);
        let mut argv = vec![
            "bash".to_string(),
            format!("/{repo_name}/{}", target.script),
            record.branch.clone(),
            repo_name.to_string(),
        ];
        if record.tag.as_deref() == Some(kernel::RELEASE) {
            argv.push(kernel::RELEASE.to_string());
        }
        let mut spec = self
            .limits(BuildSpec::new(
                record.id.as_str(),
                image,
                Command::Exec(argv),
            ))
            .artifact(kernel::KERNEL_ARTIFACT)
            .cache_volume(
                target.cache_volume(),
                self.config.kernel_cache_path.as_str(),
            )
            .label("org.zos-build.kernel-target", target.name());
        if target.commit_image {
            spec = spec.commit_as(target.image(), kernel::image_tag(&record.branch));
        }
        let names = target.names(&record.branch, &record.commit);
        let kernel_file = Publication::new(
            self.publishers.kernel.clone(),
            ArtifactKind::Kernel,
            names.kernel,
        )
        .link_forward_only(names.kernel_link, self.publishers.links.clone());
        let flist = self
            .publishers
            .publication(Format::Flist, names.flist, names.flist_link)
            .derived(Arc::new(KernelFlist));
        let step = ContainerStep::new(self.executor.clone(), spec, format!("/{repo_name}"))
            .executor_wait(self.config.docker_wait)
            .publish(kernel_file)
            .publish(flist);
        Ok(
            BuildJob::new(job_info(record), work, Arc::new(source), Arc::new(step))
                .reporter(self.status.clone()),
        )
    }

    /// `spec` with the server's limits: time, memory, processes, log size,
    /// capabilities, CPUs and extra hosts.
    fn limits(&self, mut spec: BuildSpec) -> BuildSpec {
        spec = spec
            .timeout(self.config.maximum_execution_time)
            .memory_limit(i64::try_from(self.config.build_memory_limit).unwrap_or(i64::MAX))
            .pids_limit(self.config.build_pids_limit)
            .log_size_limit(self.config.log_size_limit);
        for capability in &self.config.build_capabilities {
            spec = spec.capability(capability.as_str());
        }
        if let Some(cpus) = self.config.build_cpus {
            spec = spec.cpus(cpus);
        }
        for (name, ip) in &self.config.extra_hosts {
            spec = spec.extra_host(name.as_str(), ip.as_str());
        }
        spec
    }

    /// Writes `update` to the history and announces it; a failure is logged
    /// (the build goes on).
    async fn record(&self, id: &str, update: BuildUpdate) {
        let finished = update.status.is_some_and(BuildStatus::is_finished);
        if let Err(e) = self.history.update(id, update).await {
            tracing::error!(build = %id, error = %e, "cannot record a build's progress");
        }
        self.live.changed(finished).await;
    }
}

/// Who and what build `record` is, for the status reporter.
fn job_info(record: &BuildRecord) -> JobInfo {
    JobInfo::new(
        record.id.as_str(),
        record.repository.as_str(),
        record.branch.as_str(),
        record.commit.as_str(),
        record.script.as_str(),
    )
}

/// Where artifacts go, by the branch file's `format`.
#[derive(Clone)]
pub struct Publishers {
    /// The local artifacts directory: flists when no hub is configured.
    pub local: Arc<dyn Publisher>,
    /// The Zero-OS Hub, when configured.
    pub hub: Option<Arc<dyn Publisher>>,
    /// The binary directory.
    pub binary: Arc<dyn Publisher>,
    /// The kernel directory (kernels and their links).
    pub kernel: Arc<dyn Publisher>,
    /// The forward-only memory of links.
    pub links: ForwardLinks,
}

impl Publishers {
    /// The publishers `config` names, their links kept in `history`.
    pub fn from_config(config: &Config, history: &History) -> Result<Publishers, PublishError> {
        Ok(Publishers {
            local: Arc::new(LocalPublisher::new(config.artifacts_directory.clone())),
            hub: config
                .hub_publisher()?
                .map(|hub| Arc::new(hub) as Arc<dyn Publisher>),
            binary: Arc::new(BinaryPublisher::new(config.binary_directory.clone())),
            kernel: Arc::new(BinaryPublisher::new(config.kernel_directory.clone())),
            links: ForwardLinks::new(history.clone()),
        })
    }

    /// What a build of `format` publishes as `name`, moving `link` forward.
    fn publication(&self, format: Format, name: String, link: String) -> Publication {
        let (publisher, kind) = match (format, &self.hub) {
            (Format::Binary, _) => (self.binary.clone(), ArtifactKind::Binary),
            (_, Some(hub)) => (hub.clone(), ArtifactKind::Flist),
            (_, None) => {
                // The quickstart: no hub, a file served under /artifacts/,
                // and no link (the local directory has none).
                return Publication::new(self.local.clone(), ArtifactKind::Local, name);
            }
        };
        Publication::new(publisher, kind, name).link_forward_only(link, self.links.clone())
    }

    /// The publishers' secrets (the hub token), for the masking sink.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = self.local.secrets();
        secrets.extend(self.binary.secrets());
        if let Some(hub) = &self.hub {
            secrets.extend(hub.secrets());
        }
        secrets
    }
}

/// The builds a push of `commit` on `branch` starts: one per build script,
/// in the configuration's order. `commits` is the push's `commits` array as
/// JSON text (kept for the status page).
pub fn builds_of(branch: &Branch, commit: &str, commits: &str) -> Vec<NewBuild> {
    branch
        .builds
        .iter()
        .map(|script| {
            let mut build = NewBuild::new(
                &branch.repository,
                &branch.name,
                commit,
                &script.script,
                &script.baseimage,
            );
            build.commits = commits.to_string();
            build.tag = script.tag.clone();
            build
        })
        .collect()
}

/// Records the build's container in the history as soon as it has started,
/// so that `/build/status` shows it (`docker`) while the build runs, and
/// moves the build from `initializing` (fetching, waiting for Docker,
/// pulling the image) to `building`.
struct ContainerRecorder {
    id: String,
    history: History,
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl LogSink for ContainerRecorder {
    async fn write(
        &mut self,
        _events: &[zos_build_core::LogEvent],
    ) -> Result<(), zos_build_core::SinkError> {
        Ok(())
    }

    async fn container_started(
        &mut self,
        container_id: &str,
    ) -> Result<(), zos_build_core::SinkError> {
        // The container runs: the build is `building` from here on.
        let mut update = BuildUpdate::container(container_id);
        update.status = Some(BuildStatus::Building);
        if let Err(e) = self.history.update(&self.id, update).await {
            tracing::error!(build = %self.id, error = %e, "cannot record a build's container");
        }
        self.live.changed(false).await;
        Ok(())
    }

    async fn committing(&mut self) -> Result<(), zos_build_core::SinkError> {
        let update = BuildUpdate::status(BuildStatus::Committing);
        if let Err(e) = self.history.update(&self.id, update).await {
            tracing::error!(build = %self.id, error = %e, "cannot record a build's progress");
        }
        self.live.changed(false).await;
        Ok(())
    }
}

/// Appends one line to a log file; a failure is logged.
async fn append_line(path: &Path, text: &str) {
    let result = async {
        let mut sink = FileSink::create(path).await?;
        let mut seq = Sequencer::default();
        sink.write(&[seq.event(LogStream::System, text.to_string())])
            .await?;
        sink.finish().await
    };
    if let Err(e) = result.await {
        tracing::warn!(path = %path.display(), error = %e, "cannot write to a build log");
    }
}

async fn remove_work_directory(id: &str, work: &PathBuf) {
    match tokio::fs::remove_dir_all(work).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(build = %id, path = %work.display(), error = %e, "cannot remove a build's work directory");
        }
    }
}

pub use zos_build_core::units::{format_duration, format_size};
