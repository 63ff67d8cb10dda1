//! One build, from its source to its ending: the frame every pipeline shares.

use super::{JobInfo, JobLog, NoStatus, Source, StatusReporter, Stop};
use crate::history::ArtifactKind;
use crate::{Phase, Published};
use async_trait::async_trait;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What a job does with its tree: run a container and publish (a flist
/// build, [`ContainerStep`](super::ContainerStep)), or anything else that
/// reads the tree (the server's configuration reload).
#[async_trait]
pub trait Step: Send + Sync {
    /// Runs on `context.tree`, writing to `log`, and says how it ended.
    /// Must return promptly with [`JobEnding::Cancelled`] once
    /// `context.stop` is cancelled, for any work that can wait.
    async fn run(&self, context: &StepContext<'_>, log: &mut JobLog<'_>) -> JobEnding;

    /// Runs while the tree is still being fetched: what the job calls. A
    /// step with work that needs no tree (creating a container) does it
    /// meanwhile, and awaits `tree` when it needs it; `tree` ends in the
    /// job's ending when the fetch fails or the job is stopped, and the
    /// step then returns that ending. The default awaits the tree, then
    /// calls [`Step::run`].
    async fn run_fetching(
        &self,
        context: &FetchContext<'_>,
        tree: FetchingTree<'_>,
        log: &mut JobLog<'_>,
    ) -> JobEnding {
        let tree = match tree.await {
            Ok(tree) => tree,
            Err(ending) => return ending,
        };
        let context = StepContext {
            job: context.job,
            tree: &tree,
            work: context.work,
            stop: context.stop,
        };
        self.run(&context, log).await
    }
}

/// The job's tree while it is being fetched: the directory once it is
/// there, or the job's ending (the fetch failed, the job was stopped).
pub type FetchingTree<'a> = Pin<Box<dyn Future<Output = Result<PathBuf, JobEnding>> + Send + 'a>>;

/// What a step is given while its tree is being fetched
/// ([`Step::run_fetching`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct FetchContext<'a> {
    /// The build.
    pub job: &'a JobInfo,
    /// The job's work directory (the tree will be inside it, or not).
    pub work: &'a Path,
    /// The job's cancellation.
    pub stop: &'a Stop,
}

/// What a step is given.
#[derive(Debug)]
#[non_exhaustive]
pub struct StepContext<'a> {
    /// The build.
    pub job: &'a JobInfo,
    /// The tree the source gave.
    pub tree: &'a Path,
    /// The job's work directory (the tree may be inside it).
    pub work: &'a Path,
    /// The job's cancellation.
    pub stop: &'a Stop,
}

/// One artifact that went somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedArtifact {
    /// Which kind of destination took it.
    pub kind: ArtifactKind,
    /// Where it went, and the link moved onto it (None when the link was
    /// left alone: a newer push had moved it already).
    pub published: Published,
}

/// How a job ended: one honest outcome for the whole build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEnding {
    /// Everything succeeded.
    Succeeded {
        /// One line saying what was done (`published x.flist`).
        summary: String,
        /// What was published, in the order of the publications.
        published: Vec<PublishedArtifact>,
    },
    /// It failed.
    Failed {
        /// Why, in one line (credentials redacted).
        message: String,
        /// The same in a few words, at most [`BRIEF_CHARS`] characters, for
        /// a commit status: `exit code 2`, `timed out after 45m`.
        brief: String,
        /// True when the build itself failed (its script exited non-zero,
        /// ran too long, printed too much, left no artifact); false when the
        /// engine failed it (the source, Docker, the hub): what GitHub calls
        /// `failure` and `error`.
        by_build: bool,
    },
    /// It was stopped by its [`Stop`].
    Cancelled {
        /// Why, when it was given a reason; None when a parent token
        /// stopped it (the process is shutting down).
        reason: Option<String>,
    },
}

/// The longest [`JobEnding::describe`]: GitHub's limit of a status's
/// description.
pub const BRIEF_CHARS: usize = 140;

impl JobEnding {
    /// An engine failure saying `message` (its brief: the message, cut).
    pub fn error(message: impl Into<String>) -> JobEnding {
        let message = crate::redact::redact_credentials(&message.into());
        JobEnding::Failed {
            brief: cut(&message),
            message,
            by_build: false,
        }
    }

    /// A failure of the build itself, saying `message` (its brief: the
    /// message, cut).
    pub fn failure(message: impl Into<String>) -> JobEnding {
        let message = message.into();
        JobEnding::Failed {
            brief: cut(&message),
            message,
            by_build: true,
        }
    }

    /// The same failure with `brief` as its few words.
    pub fn brief(self, brief: impl Into<String>) -> JobEnding {
        match self {
            JobEnding::Failed {
                message, by_build, ..
            } => JobEnding::Failed {
                message,
                by_build,
                brief: cut(&brief.into()),
            },
            other => other,
        }
    }

    /// What happened in at most [`BRIEF_CHARS`] characters, for a commit
    /// status: `built in 42 s`, `exit code 2`, `cancelled: superseded by
    /// 1a2b3c4`; `elapsed` is how long the job took.
    pub fn describe(&self, elapsed: std::time::Duration) -> String {
        match self {
            JobEnding::Succeeded { .. } => format!("built in {} s", elapsed.as_secs()),
            JobEnding::Failed { brief, .. } => brief.clone(),
            JobEnding::Cancelled {
                reason: Some(reason),
            } => cut(&format!("cancelled: {reason}")),
            JobEnding::Cancelled { reason: None } => "interrupted: the server stopped".into(),
        }
    }

    /// The ending of a job stopped by `stop`.
    pub fn cancelled(stop: &Stop) -> JobEnding {
        JobEnding::Cancelled {
            reason: stop.reason().map(str::to_string),
        }
    }

    /// The last line of the build's log.
    pub fn last_line(&self) -> String {
        match self {
            JobEnding::Succeeded { summary, .. } => {
                format!("[zos-build] build succeeded: {summary}")
            }
            JobEnding::Failed { message, .. } => format!("[zos-build] build failed: {message}"),
            JobEnding::Cancelled {
                reason: Some(reason),
            } => format!("[zos-build] build cancelled: {reason}"),
            JobEnding::Cancelled { reason: None } => {
                "[zos-build] build stopped: interrupted (the process is stopping)".into()
            }
        }
    }
}

/// `text` on one line, at most [`BRIEF_CHARS`] characters (an ellipsis
/// marks a cut).
fn cut(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= BRIEF_CHARS && !text.contains('\n') {
        return line.to_string();
    }
    let mut short: String = line.chars().take(BRIEF_CHARS - 1).collect();
    short.push('…');
    short
}

/// One build: fetch the tree from its [`Source`], run its [`Step`] on it,
/// write the ending as the log's last line, and tell the
/// [`StatusReporter`]. The log is the caller's [`JobLog`], so that lines
/// the caller writes before or after stay in the same numbering.
pub struct BuildJob {
    info: JobInfo,
    work: PathBuf,
    source: Arc<dyn Source>,
    step: Arc<dyn Step>,
    reporter: Arc<dyn StatusReporter>,
}

impl std::fmt::Debug for BuildJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildJob")
            .field("info", &self.info)
            .field("work", &self.work)
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

impl BuildJob {
    /// The build `info`, working in `work` (created when needed, removed by
    /// the caller afterwards), on the tree of `source`, doing `step`.
    pub fn new(
        info: JobInfo,
        work: impl Into<PathBuf>,
        source: Arc<dyn Source>,
        step: Arc<dyn Step>,
    ) -> BuildJob {
        BuildJob {
            info,
            work: work.into(),
            source,
            step,
            reporter: Arc::new(NoStatus),
        }
    }

    /// Tells `reporter` when the build starts and ends.
    pub fn reporter(mut self, reporter: Arc<dyn StatusReporter>) -> BuildJob {
        self.reporter = reporter;
        self
    }

    /// The build.
    pub fn info(&self) -> &JobInfo {
        &self.info
    }

    /// Runs the build to its end. Never panics on bad input: every failure
    /// is an ending.
    pub async fn run(&self, log: &mut JobLog<'_>, stop: &Stop) -> JobEnding {
        let start = std::time::Instant::now();
        self.reporter.started(&self.info).await;
        let ending = self.fetch_and_step(log, stop).await;
        log.line(ending.last_line()).await;
        self.reporter
            .ended(&self.info, &ending, start.elapsed())
            .await;
        ending
    }

    async fn fetch_and_step(&self, log: &mut JobLog<'_>, stop: &Stop) -> JobEnding {
        if let Err(e) = tokio::fs::create_dir_all(&self.work).await {
            return JobEnding::error(format!(
                "cannot create the work directory {}: {e}",
                self.work.display()
            ));
        }
        log.line(format!("[zos-build] fetching {}", self.source.describe()))
            .await;
        // The fetch is a task of its own, so that it makes progress
        // whatever the step does meanwhile (the executor creates the
        // container); dropping the job aborts it (and git is killed with it).
        let fetching = Instant::now();
        let fetch_time: Arc<OnceLock<Duration>> = Arc::default();
        let task = {
            let (source, work) = (self.source.clone(), self.work.clone());
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                source.fetch(&work).await
            }))
        };
        let timed = fetch_time.clone();
        let tree: FetchingTree<'_> = Box::pin(async move {
            let fetched = tokio::select! {
                () = stop.token().cancelled() => return Err(JobEnding::cancelled(stop)),
                fetched = task => fetched,
            };
            let _ = timed.set(fetching.elapsed());
            match fetched {
                Ok(Ok(tree)) => Ok(tree),
                Ok(Err(e)) => Err(JobEnding::error(e.to_string())),
                Err(e) => Err(JobEnding::error(format!("the fetch stopped: {e}"))),
            }
        });
        let context = FetchContext {
            job: &self.info,
            work: &self.work,
            stop,
        };
        let ending = self.step.run_fetching(&context, tree, log).await;
        if let Some(elapsed) = fetch_time.get() {
            log.phase_ended(Phase::Fetch, *elapsed).await;
        }
        ending
    }
}
