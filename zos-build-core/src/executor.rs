//! The executor trait: something that runs a [`BuildSpec`].

use crate::{BuildError, BuildOutcome, BuildSpec, LogSink};
use async_trait::async_trait;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;

/// A source tree on its way (a git fetch running): the host directory once
/// it is there, or why it will not be. See [`Executor::run_fetching`].
pub type PendingTree<'a> = Pin<Box<dyn Future<Output = Result<PathBuf, String>> + Send + 'a>>;

/// Runs builds. [`DockerExecutor`](crate::DockerExecutor) is the one this
/// crate ships; a pipeline only needs this trait, so another backend
/// (Kubernetes, a local sandbox) can take its place.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs `spec` to its end, sending every line of output to `sink`.
    ///
    /// Cancelling `cancel` stops the build promptly; the outcome then says
    /// [`Termination::Cancelled`](crate::Termination::Cancelled). The sink's
    /// `finish` is called before this returns, whatever the result.
    async fn run(
        &self,
        spec: &BuildSpec,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError>;

    /// Runs `spec` while its source tree is still being fetched: `tree`
    /// gives the host directory that goes where `spec.source` says (its
    /// `container_path`; its `host_dir` is replaced by what `tree` gives),
    /// so `spec.source` must be set.
    ///
    /// Why: creating a container and fetching a commit both take tens of
    /// milliseconds and need nothing of each other; a backend that can do
    /// its preparation meanwhile ([`DockerExecutor`](crate::DockerExecutor)
    /// creates the container) saves the shorter of the two. When `tree`
    /// fails, nothing runs, whatever was prepared is removed, and the
    /// result is [`BuildError::SourceUnavailable`] with its message. The
    /// default waits for the tree, then calls [`Executor::run`].
    async fn run_fetching(
        &self,
        spec: &BuildSpec,
        tree: PendingTree<'_>,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let Some(source) = &spec.source else {
            let _ = sink.finish().await;
            return Err(BuildError::InvalidSpec(
                "a build whose tree is being fetched needs a source path".into(),
            ));
        };
        let fetched = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(BuildError::CancelledBeforeStart),
            fetched = tree => fetched.map_err(BuildError::SourceUnavailable),
        };
        match fetched {
            Ok(dir) => {
                let spec = spec.clone().source(dir, source.container_path.clone());
                self.run(&spec, sink, cancel).await
            }
            Err(e) => {
                let _ = sink.finish().await;
                Err(e)
            }
        }
    }

    /// Answers whether the backend can take a build now (the Docker daemon
    /// answers a ping). A scheduler asks before it starts a build, and waits
    /// for a backend that is down instead of failing the build at once.
    /// The default says yes.
    async fn ready(&self) -> Result<(), BuildError> {
        Ok(())
    }

    /// The tags of `repository` among the backend's own images (`master`,
    /// `release-1`): the images a build committed
    /// ([`BuildSpec::commit_as`](crate::BuildSpec::commit_as)) that a
    /// dependent build may start from. None by default.
    async fn local_tags(&self, repository: &str) -> Result<Vec<String>, BuildError> {
        let _ = repository;
        Ok(Vec::new())
    }

    /// Removes the images of this service that lost their tag (a newer
    /// commit as the same tag replaced them), and never another image;
    /// returns their ids. Nothing by default.
    async fn prune_images(&self) -> Result<Vec<String>, BuildError> {
        Ok(Vec::new())
    }

    /// Empties the build cache `name` ([`BuildSpec::cache_volume`](crate::BuildSpec::cache_volume));
    /// false when there was none. Refuses a cache that is not this
    /// service's. Nothing by default.
    async fn remove_cache(&self, name: &str) -> Result<bool, BuildError> {
        let _ = name;
        Ok(false)
    }
}
