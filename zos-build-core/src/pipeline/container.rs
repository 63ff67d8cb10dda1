//! The step of a flist (or kernel) build: run the build script in a fresh
//! container, judge how it ended, publish its artifact.

use super::{JobEnding, JobLog, Publication, Step, StepContext};
use crate::{BuildError, BuildOutcome, BuildSpec, Executor, Termination};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

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
    async fn wait_for_executor(
        &self,
        log: &mut JobLog<'_>,
        context: &StepContext<'_>,
    ) -> Result<(), JobEnding> {
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
                () = context.stop.token().cancelled() => return Err(JobEnding::cancelled(context.stop)),
                () = tokio::time::sleep(EXECUTOR_RETRY) => {}
            }
        }
    }

    /// The ending of a run that did not succeed; None when it did.
    fn judge(&self, outcome: &BuildOutcome, context: &StepContext<'_>) -> Option<JobEnding> {
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
            Termination::Cancelled => JobEnding::cancelled(context.stop),
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
}

#[async_trait]
impl Step for ContainerStep {
    async fn run(&self, context: &StepContext<'_>, log: &mut JobLog<'_>) -> JobEnding {
        if let Err(ending) = self.wait_for_executor(log, context).await {
            return ending;
        }
        let spec = self
            .spec
            .clone()
            .source(context.tree, self.mount.as_str())
            .artifact_dir(context.work.join("out"))
            .first_log_line(log.next_seq());
        let run = self
            .executor
            .run(&spec, log.sink(), context.stop.token())
            .await;
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(BuildError::CancelledBeforeStart) => return JobEnding::cancelled(context.stop),
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
        if let Some(ending) = self.judge(&outcome, context) {
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
        for publication in &self.publications {
            // Publishing is not cancelled: the build succeeded, and its
            // file is worth having even when a newer push arrived meanwhile
            // (the link then stays with the newer build).
            match publication.run(&outcome, context.job, log).await {
                Ok(artifact) => published.push(artifact),
                Err(message) => {
                    let brief = format!("publishing failed: {message}");
                    return JobEnding::error(message).brief(brief);
                }
            }
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

/// A duration to the second, for people.
fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}
