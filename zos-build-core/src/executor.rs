//! The executor trait: something that runs a [`BuildSpec`].

use crate::{BuildError, BuildOutcome, BuildSpec, LogSink};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

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
