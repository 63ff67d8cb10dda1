//! Why a build could not run to an outcome.

use crate::sink::SinkError;
use std::path::PathBuf;

/// A build that could not be carried out, as opposed to one that ran and
/// failed (that is a [`BuildOutcome`](crate::BuildOutcome) with a non-zero
/// exit code or a [`Termination`](crate::Termination) other than `Exited`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The build spec is inconsistent.
    #[error("invalid build spec: {0}")]
    InvalidSpec(String),
    /// The Docker daemon could not be reached.
    #[error("cannot reach the Docker daemon at {address}: {source}")]
    DockerUnavailable {
        /// The address tried (`unix:///var/run/docker.sock`, `tcp://...`).
        address: String,
        /// What failed.
        #[source]
        source: bollard::errors::Error,
    },
    /// The image is neither present nor pullable.
    #[error("image {image} is not available: {message}")]
    Image {
        /// The image reference.
        image: String,
        /// What the daemon or registry said.
        message: String,
    },
    /// A Docker call failed.
    #[error("Docker failed to {action}: {source}")]
    Docker {
        /// What we were doing, e.g. `create the container for build x`.
        action: String,
        /// What the daemon said.
        #[source]
        source: bollard::errors::Error,
    },
    /// The source tree could not be read or copied in.
    #[error("cannot copy source tree {path} into the container: {source}")]
    Source {
        /// The host directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The source tree never came: its fetch, running while the container
    /// was created ([`Executor::run_fetching`](crate::Executor::run_fetching)),
    /// failed or was stopped. The container was removed.
    #[error("the source tree is not available: {0}")]
    SourceUnavailable(String),
    /// A requested artifact does not exist in the container.
    #[error("artifact {path} was not found in the container")]
    ArtifactMissing {
        /// The path inside the container.
        path: String,
    },
    /// The artifact (or an entry of an artifact directory) is a symlink, a
    /// hard link or a device: refused, since publishing it would publish
    /// a file of the host.
    #[error("artifact {path} is a {kind}, not a regular file")]
    ArtifactNotRegular {
        /// The path inside the container.
        path: String,
        /// What it is instead: `symlink`, `hard link`, ...
        kind: &'static str,
    },
    /// An artifact could not be extracted to the host.
    #[error("cannot extract artifact {path} into {dir}: {source}")]
    Artifact {
        /// The path inside the container.
        path: String,
        /// The host directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The build was cancelled before its container started (while the
    /// image was being pulled, for instance); nothing ran.
    #[error("the build was cancelled before its container started")]
    CancelledBeforeStart,
    /// A log sink failed; the log would be incomplete, so the build is not trusted.
    #[error(transparent)]
    LogSink(#[from] SinkError),
}

impl BuildError {
    pub(crate) fn docker(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        BuildError::Docker {
            action: action.into(),
            source,
        }
    }
}

/// The HTTP status of a Docker error response, if it was one.
pub(crate) fn docker_status(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
