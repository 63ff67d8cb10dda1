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
//! 3. With a permit: `initializing` (the pushed commit is fetched with git into
//!    `<data>/work/<id>/<repo>`), then `building` (the build script runs in a
//!    fresh container through the [`Executor`], every line going to the
//!    build's log file, the one `/report/<id>` serves).
//! 4. The outcome is written to the history: `success` with the published
//!    artifact's name, `error` with a message saying why, or `cancelled`. A
//!    last line of the log says the same, and the work directory is removed.
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
use crate::live::Live;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use zos_build_core::git::{self, Git};
use zos_build_core::log::Sequencer;
use zos_build_core::redact::redact_credentials;
use zos_build_core::sink::{FanOut, FileSink, MaskSecrets, SizeCap};
use zos_build_core::{
    artifact_name, BuildError, BuildOutcome, BuildRecord, BuildSpec, BuildStatus, BuildUpdate,
    CancellationToken, Command, Enqueued, Executor, History, HistoryError, LogSink, LogStream,
    NewBuild, Publisher, Termination,
};
use zos_flist_config::Branch;

/// The error recorded for a build cancelled because a newer push of its
/// branch arrived.
pub const SUPERSEDED: &str = "superseded by a newer push";
/// The error recorded for a build stopped because the server shut down.
pub const SHUT_DOWN: &str = "interrupted by server shutdown";
/// Room in a build's log above `log-size-limit` for the engine's own lines
/// (fetching, waiting for Docker, the ending).
const LOG_SIZE_MARGIN: u64 = 1 << 20;
/// How often a build waiting for Docker asks again.
const DOCKER_RETRY: Duration = Duration::from_secs(2);
/// How long one question to Docker may take.
const DOCKER_PING_TIMEOUT: Duration = Duration::from_secs(10);

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
    publisher: Arc<dyn Publisher>,
    /// Where every line and every change is announced.
    live: Arc<Live>,
    permits: Arc<Semaphore>,
    /// Build name → the builds of that name that are queued or running.
    active: Mutex<HashMap<String, Vec<ActiveBuild>>>,
    /// Held while a push is recorded and submitted, so that submissions
    /// follow the order of the history.
    intake: tokio::sync::Mutex<()>,
    /// Parent of every build's token: cancelled on a shutdown that cancels.
    shutdown: CancellationToken,
    /// Cancelled on any shutdown: builds still waiting for a slot stay
    /// `queued` instead of starting.
    closing: CancellationToken,
    tasks: TaskTracker,
}

struct ActiveBuild {
    id: String,
    stop: Stop,
}

/// How a build is stopped: its token (a child of the shutdown token) and
/// why it was cancelled, when it was cancelled for itself.
#[derive(Clone)]
struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Stop {
    /// Cancels with `reason` (the first reason given is kept); false when
    /// it was cancelled already.
    fn cancel(&self, reason: &str) -> bool {
        let _ = self.reason.set(reason.to_string());
        let fresh = !self.token.is_cancelled();
        self.token.cancel();
        fresh
    }

    /// Why it was cancelled; None when only the shutdown cancelled it.
    fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

/// How a build ended, before it is written down.
enum Ending {
    Success { artifact: String },
    Failed(String),
    Cancelled(String),
    Interrupted,
}

impl Scheduler {
    /// A scheduler running at most `config.max_concurrent_builds` builds at
    /// once with `executor`, publishing with `publisher`, looking build
    /// scripts up in `catalog` and recording everything in `history`.
    pub fn new(
        config: Config,
        history: History,
        catalog: SharedCatalog,
        executor: Arc<dyn Executor>,
        publisher: Arc<dyn Publisher>,
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
                publisher,
                live,
                permits,
                active: Mutex::new(HashMap::new()),
                intake: tokio::sync::Mutex::new(()),
                shutdown: CancellationToken::new(),
                closing: CancellationToken::new(),
                tasks: TaskTracker::new(),
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
            let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
            for name in names {
                for old in active.get(name).into_iter().flatten() {
                    if !new_ids.contains(old.id.as_str()) && old.stop.cancel(SUPERSEDED) {
                        tracing::info!(build = %old.id, %name, "superseded by a newer push: cancelling");
                    }
                }
            }
            for record in &records {
                let stop = Stop {
                    token: inner.shutdown.child_token(),
                    reason: Arc::default(),
                };
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
        let permit = tokio::select! {
            biased;
            () = stop.token.cancelled() => None,
            () = self.closing.cancelled() => None,
            permit = self.permits.clone().acquire_owned() => permit.ok(),
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
            tracing::info!(build = %id, "cancelled while queued");
            return;
        };
        self.record(id, BuildUpdate::started(BuildStatus::Initializing))
            .await;
        tracing::info!(build = %id, name = %record.name, commit = %record.commit, "build started");
        let work = self.config.build_work_directory(id);
        let log = self.config.build_log_path(id);
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
                let masked = MaskSecrets::new(copies, self.config.secrets());
                let mut sink = SizeCap::new(
                    masked,
                    self.config.log_size_limit.saturating_add(LOG_SIZE_MARGIN),
                );
                let ending = self.build(&record, &work, &mut sink, &stop).await;
                let mut seq = Sequencer::default();
                let last = seq.event(LogStream::System, last_line(&ending));
                let written = async {
                    sink.write(&[last]).await?;
                    sink.finish().await
                };
                if let Err(e) = written.await {
                    tracing::warn!(build = %id, error = %e, "cannot write the last log line");
                }
                ending
            }
            Err(e) => Ending::Failed(e.to_string()),
        };
        remove_work_directory(id, &work).await;
        let update = match &ending {
            Ending::Success { artifact } => {
                BuildUpdate::finished(BuildStatus::Success, None, Some(artifact.clone()))
            }
            Ending::Failed(message) => {
                BuildUpdate::finished(BuildStatus::Error, Some(redact_credentials(message)), None)
            }
            Ending::Cancelled(reason) => {
                BuildUpdate::finished(BuildStatus::Cancelled, Some(reason.clone()), None)
            }
            Ending::Interrupted => {
                BuildUpdate::finished(BuildStatus::Error, Some(SHUT_DOWN.into()), None)
            }
        };
        self.record(id, update).await;
        tracing::info!(build = %id, ending = %last_line(&ending), "build ended");
    }

    /// Fetches, runs and publishes; everything between `initializing` and the end.
    async fn build(
        &self,
        record: &BuildRecord,
        work: &Path,
        sink: &mut dyn LogSink,
        stop: &Stop,
    ) -> Ending {
        let cancel = &stop.token;
        let mut seq = Sequencer::default();
        let Some(script) = self.catalog.get().and_then(|catalog| {
            catalog
                .get(&record.repository, &record.branch)
                .and_then(|branch| branch.builds.iter().find(|b| b.script == record.script))
                .cloned()
        }) else {
            return Ending::Failed(format!(
                "build script {} of {} is no longer in the configuration",
                record.script, record.name
            ));
        };
        let repo_name = record
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&record.repository);
        let source = work.join(repo_name);
        let url = git::repository_url(&self.config.git_base_url, &record.repository);
        let line = seq.event(
            LogStream::System,
            format!(
                "[zos-build] fetching {} at {}",
                redact_credentials(&url),
                record.commit
            ),
        );
        if let Err(e) = sink.write(&[line]).await {
            return Ending::Failed(e.to_string());
        }
        let fetched = tokio::select! {
            () = cancel.cancelled() => return cancelled(stop),
            fetched = self.git.fetch_commit(&url, &record.commit, &source) => fetched,
        };
        if let Err(e) = fetched {
            return Ending::Failed(format!("cannot fetch the source: {e}"));
        }
        if let Err(ending) = self.wait_for_executor(sink, &mut seq, stop).await {
            return ending;
        }
        self.record(&record.id, BuildUpdate::status(BuildStatus::Building))
            .await;
        let script_path = format!("/{repo_name}/{}", record.script.trim_start_matches('/'));
        let artifact_path = format!(
            "{}/{}",
            script.archives.trim_end_matches('/'),
            script.artifact
        );
        let mut spec = BuildSpec::new(
            record.id.as_str(),
            record.baseimage.as_str(),
            Command::ScriptFile(script_path),
        )
        .source(&source, format!("/{repo_name}"))
        .artifact(artifact_path)
        .artifact_dir(work.join("out"))
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
        let outcome = match self.executor.run(&spec, sink, cancel).await {
            Ok(outcome) => outcome,
            Err(BuildError::CancelledBeforeStart) => return cancelled(stop),
            Err(e) => return Ending::Failed(e.to_string()),
        };
        match self.judge(&outcome, stop) {
            Some(ending) => ending,
            None => self.publish(record, &outcome).await,
        }
    }

    /// Waits until the executor can take the build (the Docker daemon
    /// answers), saying so in the log once, for at most `docker-wait`.
    async fn wait_for_executor(
        &self,
        sink: &mut dyn LogSink,
        seq: &mut Sequencer,
        stop: &Stop,
    ) -> Result<(), Ending> {
        let deadline = tokio::time::Instant::now() + self.config.docker_wait;
        let mut said = false;
        loop {
            let problem = match tokio::time::timeout(DOCKER_PING_TIMEOUT, self.executor.ready())
                .await
            {
                Ok(Ok(())) => {
                    if said {
                        let line =
                            seq.event(LogStream::System, "[zos-build] Docker answers again".into());
                        let _ = sink.write(&[line]).await;
                    }
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}", format_duration(DOCKER_PING_TIMEOUT)),
            };
            if !said {
                said = true;
                tracing::warn!(error = %problem, "Docker is unreachable: a build waits for it");
                let line = seq.event(
                    LogStream::System,
                    format!(
                        "[zos-build] Docker is unreachable ({problem}); waiting up to {} for it",
                        format_duration(self.config.docker_wait)
                    ),
                );
                let _ = sink.write(&[line]).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Ending::Failed(format!(
                    "Docker was unreachable for {}: {problem}",
                    format_duration(self.config.docker_wait)
                )));
            }
            tokio::select! {
                () = stop.token.cancelled() => return Err(cancelled(stop)),
                () = tokio::time::sleep(DOCKER_RETRY) => {}
            }
        }
    }

    /// The ending of a build that did not succeed; None when it did.
    fn judge(&self, outcome: &BuildOutcome, stop: &Stop) -> Option<Ending> {
        Some(match outcome.termination {
            Termination::Exited => match outcome.exit_code {
                Some(0) => return None,
                Some(code) => Ending::Failed(format!("build script exited with status {code}")),
                None => Ending::Failed("build script exited with an unknown status".into()),
            },
            Termination::TimedOut => Ending::Failed(format!(
                "maximum execution time ({}) reached",
                format_duration(self.config.maximum_execution_time)
            )),
            Termination::Cancelled => cancelled(stop),
            Termination::OutOfMemory => Ending::Failed("out of memory".into()),
            Termination::LogLimit => Ending::Failed(format!(
                "log size limit of {} reached",
                format_size(self.config.log_size_limit)
            )),
            _ => Ending::Failed(outcome.describe()),
        })
    }

    /// Publishes the artifact of a successful build under its name.
    async fn publish(&self, record: &BuildRecord, outcome: &BuildOutcome) -> Ending {
        let Some(artifact) = outcome.artifacts.first() else {
            return Ending::Failed("the build produced no artifact".into());
        };
        let name = artifact_name(
            &record.repository,
            record.tag.as_deref(),
            &record.branch,
            &record.commit,
        );
        match self
            .publisher
            .publish(&zos_build_core::PublishRequest::new(artifact, &name))
            .await
        {
            Ok(published) => {
                tracing::info!(build = %record.id, artifact = %published.name, location = %published.location, "artifact published");
                Ending::Success {
                    artifact: published.name,
                }
            }
            Err(e) => Ending::Failed(format!("cannot publish the artifact: {e}")),
        }
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
/// so that `/build/status` shows it (`docker`) while the build runs.
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
        if let Err(e) = self
            .history
            .update(&self.id, BuildUpdate::container(container_id))
            .await
        {
            tracing::error!(build = %self.id, error = %e, "cannot record a build's container");
        }
        self.live.changed(false).await;
        Ok(())
    }
}

/// A build stopped by its token: cancelled for a reason, or the server is stopping.
fn cancelled(stop: &Stop) -> Ending {
    match stop.reason() {
        Some(reason) => Ending::Cancelled(reason.to_string()),
        None => Ending::Interrupted,
    }
}

/// The last line of a build's log.
fn last_line(ending: &Ending) -> String {
    match ending {
        Ending::Success { artifact } => {
            format!("[zos-build] build succeeded: published {artifact}")
        }
        Ending::Failed(message) => format!("[zos-build] build failed: {message}"),
        Ending::Cancelled(reason) => format!("[zos-build] build cancelled: {reason}"),
        Ending::Interrupted => format!("[zos-build] build stopped: {SHUT_DOWN}"),
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

/// `256 MiB`, `16 GiB`, `1000 bytes`: a size as people read it.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// `45m`, `1h30m`, `2s`, `500ms`: how durations are written in the configuration.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_with_binary_units() {
        assert_eq!(format_size(256 << 20), "256 MiB");
        assert_eq!(format_size(16 << 30), "16 GiB");
        assert_eq!(format_size(3 << 10), "3 KiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_are_written_as_in_the_configuration() {
        assert_eq!(format_duration(Duration::from_secs(45 * 60)), "45m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
