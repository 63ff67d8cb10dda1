//! The step of a flist (or kernel) build: run the build script in a fresh
//! container, judge how it ended, publish its artifact.

use super::{
    FetchContext, FetchingTree, JobEnding, JobInfo, JobLog, Publication, Step, StepContext, Stop,
};
use crate::{BuildError, BuildOutcome, BuildSpec, Executor, Phase, Termination};
use async_trait::async_trait;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a build waiting for the executor asks again.
const EXECUTOR_RETRY: Duration = Duration::from_secs(2);
/// How long one question to the executor may take.
const EXECUTOR_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a [`BuildSpec`] with an [`Executor`] on the job's tree, then its
/// [`Publication`]s, in order.
pub struct ContainerStep {
    executor: Arc<dyn Executor>,
    spec: BuildSpec,
    mount: String,
    executor_wait: Duration,
    publications: Vec<Publication>,
}

impl std::fmt::Debug for ContainerStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerStep")
            .field("spec", &self.spec)
            .field("mount", &self.mount)
            .field("executor_wait", &self.executor_wait)
            .field("publications", &self.publications)
            .finish_non_exhaustive()
    }
}

impl ContainerStep {
    /// Runs `spec` (its source is set to the job's tree, copied to `mount`
    /// in the container, and its artifacts extracted into `<work>/out`)
    /// with `executor`. A build whose executor is down waits for it up to
    /// `executor_wait` (default: not at all).
    pub fn new(executor: Arc<dyn Executor>, spec: BuildSpec, mount: impl Into<String>) -> Self {
        ContainerStep {
            executor,
            spec,
            mount: mount.into(),
            executor_wait: Duration::ZERO,
            publications: Vec::new(),
        }
    }

    /// Waits up to `wait` for an executor that is down (Docker restarting).
    pub fn executor_wait(mut self, wait: Duration) -> Self {
        self.executor_wait = wait;
        self
    }

    /// Publishes an artifact after a successful run.
    pub fn publish(mut self, publication: Publication) -> Self {
        self.publications.push(publication);
        self
    }

    /// Waits until the executor can take the build, saying so in the log
    /// once, for at most `executor_wait`.
    async fn wait_for_executor(&self, log: &mut JobLog<'_>, stop: &Stop) -> Result<(), JobEnding> {
        let deadline = tokio::time::Instant::now() + self.executor_wait;
        let mut said = false;
        loop {
            let ready = tokio::time::timeout(EXECUTOR_PING_TIMEOUT, self.executor.ready()).await;
            let problem = match ready {
                Ok(Ok(())) => {
                    if said {
                        log.line("[zos-build] Docker answers again").await;
                    }
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "no answer within {}",
                    crate::units::format_duration(EXECUTOR_PING_TIMEOUT)
                ),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(JobEnding::error(format!(
                    "Docker was unreachable for {}: {problem}",
                    crate::units::format_duration(self.executor_wait)
                )));
            }
            if !said {
                said = true;
                tracing::warn!(error = %problem, "Docker is unreachable: a build waits for it");
                log.line(format!(
                    "[zos-build] Docker is unreachable ({problem}); waiting up to {} for it",
                    crate::units::format_duration(self.executor_wait)
                ))
                .await;
            }
            tokio::select! {
                () = stop.token().cancelled() => return Err(JobEnding::cancelled(stop)),
                () = tokio::time::sleep(EXECUTOR_RETRY) => {}
            }
        }
    }

    /// The ending of a run that did not succeed; None when it did.
    fn judge(&self, outcome: &BuildOutcome, stop: &Stop) -> Option<JobEnding> {
        Some(match outcome.termination {
            Termination::Exited => match outcome.exit_code {
                Some(0) => return None,
                Some(code) => JobEnding::failure(format!("build script exited with status {code}"))
                    .brief(format!("exit code {code}")),
                None => JobEnding::failure("build script exited with an unknown status"),
            },
            Termination::TimedOut => match self.spec.limits.timeout {
                Some(limit) => {
                    let limit = crate::units::format_duration(limit);
                    JobEnding::failure(format!("maximum execution time ({limit}) reached"))
                        .brief(format!("timed out after {limit}"))
                }
                None => JobEnding::failure("the time limit was reached").brief("timed out"),
            },
            Termination::Cancelled => JobEnding::cancelled(stop),
            Termination::OutOfMemory => JobEnding::failure("out of memory"),
            Termination::LogLimit => JobEnding::failure(match self.spec.limits.log_bytes {
                Some(limit) => format!(
                    "log size limit of {} reached",
                    crate::units::format_size(limit)
                ),
                None => "log size limit reached".into(),
            })
            .brief("log size limit reached"),
            _ => JobEnding::failure(outcome.describe()),
        })
    }

    /// The spec of this build: the tree copied to the mount (from
    /// `tree`, or the directory the executor's pending tree gives), the
    /// artifacts extracted into `<work>/out`, the log continued.
    fn spec_for(&self, tree: &Path, work: &Path, log: &JobLog<'_>) -> BuildSpec {
        self.spec
            .clone()
            .source(tree, self.mount.as_str())
            .artifact_dir(work.join("out"))
            .first_log_line(log.next_seq())
    }

    /// Everything after the executor's run: the ending of a run that failed,
    /// or the publications of one that succeeded.
    async fn after_run(
        &self,
        run: Result<BuildOutcome, BuildError>,
        job: &JobInfo,
        stop: &Stop,
        log: &mut JobLog<'_>,
    ) -> JobEnding {
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(BuildError::CancelledBeforeStart) => return JobEnding::cancelled(stop),
            Err(BuildError::ArtifactMissing { path }) => {
                return JobEnding::failure(
                    BuildError::ArtifactMissing { path: path.clone() }.to_string(),
                )
                .brief(format!("artifact {path} missing"))
            }
            Err(e @ BuildError::ArtifactNotRegular { .. }) => {
                return JobEnding::failure(e.to_string())
            }
            Err(e) => return JobEnding::error(e.to_string()),
        };
        if let Some(ending) = self.judge(&outcome, stop) {
            return ending;
        }
        if let (Some(image), Some(_)) = (&self.spec.commit, &outcome.committed_image) {
            log.line(format!(
                "[zos-build] committed as {}:{}",
                image.repository, image.tag
            ))
            .await;
            // The image this commit replaced under that tag is untagged now:
            // of no use, and ours to remove (never another's).
            match self.executor.prune_images().await {
                Ok(removed) if !removed.is_empty() => {
                    log.line(format!(
                        "[zos-build] removed {} untagged image(s) of ours",
                        removed.len()
                    ))
                    .await
                }
                Ok(_) => {}
                Err(e) => {
                    log.line(format!("[zos-build] cannot remove untagged images: {e}"))
                        .await
                }
            }
        }
        let mut published = Vec::with_capacity(self.publications.len());
        let publishing = Instant::now();
        for publication in &self.publications {
            // Publishing is not cancelled: the build succeeded, and its
            // file is worth having even when a newer push arrived meanwhile
            // (the link then stays with the newer build).
            match publication.run(&outcome, job, log).await {
                Ok(artifact) => published.push(artifact),
                Err(message) => {
                    log.phase_ended(Phase::Publish, publishing.elapsed()).await;
                    let brief = format!("publishing failed: {message}");
                    return JobEnding::error(message).brief(brief);
                }
            }
        }
        if !self.publications.is_empty() {
            log.phase_ended(Phase::Publish, publishing.elapsed()).await;
        }
        let names: Vec<&str> = published
            .iter()
            .map(|p| p.published.name.as_str())
            .collect();
        let summary = if names.is_empty() {
            format!(
                "finished in {}",
                crate::units::format_duration(round(outcome.duration))
            )
        } else {
            format!("published {}", names.join(", "))
        };
        JobEnding::Succeeded { summary, published }
    }
}

#[async_trait]
impl Step for ContainerStep {
    async fn run(&self, context: &StepContext<'_>, log: &mut JobLog<'_>) -> JobEnding {
        if let Err(ending) = self.wait_for_executor(log, context.stop).await {
            return ending;
        }
        let spec = self.spec_for(context.tree, context.work, log);
        let run = self
            .executor
            .run(&spec, log.sink(), context.stop.token())
            .await;
        self.after_run(run, context.job, context.stop, log).await
    }

    /// The executor prepares the build (creates the container) while the
    /// tree is fetched, and copies the tree in once it is there.
    async fn run_fetching(
        &self,
        context: &FetchContext<'_>,
        tree: FetchingTree<'_>,
        log: &mut JobLog<'_>,
    ) -> JobEnding {
        if let Err(ending) = self.wait_for_executor(log, context.stop).await {
            return ending;
        }
        // The tree's path is the executor's to learn; until then the spec
        // names the work directory, which is never read.
        let spec = self.spec_for(context.work, context.work, log);
        // The job's ending for a fetch that failed or was stopped, kept
        // here: the executor only passes its message on.
        let fetch_ending: Mutex<Option<JobEnding>> = Mutex::new(None);
        let pending = Box::pin(async {
            tree.await.map_err(|ending| {
                let message = match &ending {
                    JobEnding::Failed { message, .. } => message.clone(),
                    other => other.last_line(),
                };
                *fetch_ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(ending);
                message
            })
        });
        let run = self
            .executor
            .run_fetching(&spec, pending, log.sink(), context.stop.token())
            .await;
        let fetch_failed = fetch_ending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ending) = fetch_failed {
            return ending;
        }
        self.after_run(run, context.job, context.stop, log).await
    }
}

/// A duration to the second, for people.
fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}
