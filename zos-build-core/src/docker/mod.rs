//! The Docker executor.
//!
//! One build is one fresh container: ensure the image, create the container
//! with the limits and our labels, copy the source in, attach, start, stream
//! the output into the sink while watching the time limits and the
//! cancellation token, collect the exit status, extract the artifacts, commit
//! if asked, and remove the container. The removal is owned by a guard, so it
//! happens on every path, including a dropped future; [`DockerExecutor::sweep`]
//! covers the one path a guard cannot: a process that died.

mod archive;
mod container;
mod image;
mod run;

use crate::error::BuildError;
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use container::LiveSet;
use std::collections::HashMap;

/// Label set to `true` on every container and image the engine creates.
pub const LABEL_MANAGED: &str = "zos-build.managed";
/// Label carrying the build id.
pub const LABEL_BUILD_ID: &str = "zos-build.build-id";
/// Label naming the executor instance that owns a container (see
/// [`DockerExecutor::with_instance`]).
pub const LABEL_INSTANCE: &str = "zos-build.instance";

const DEFAULT_ADDRESS: &str = "unix:///var/run/docker.sock";

/// Runs builds in Docker containers through the Docker API.
///
/// Cheap to clone; clones share the connection and the set of live builds.
#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    address: String,
    instance: String,
    name_prefix: String,
    live: LiveSet,
}

impl std::fmt::Debug for DockerExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerExecutor")
            .field("address", &self.address)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl DockerExecutor {
    /// Connects to `DOCKER_HOST`, or to the local socket when it is unset.
    pub async fn connect() -> Result<Self, BuildError> {
        let address = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        Self::connect_to(&address).await
    }

    /// Connects to `address` (`unix:///path` or `tcp://host:port`), negotiates
    /// the API version and checks that the daemon answers.
    pub async fn connect_to(address: &str) -> Result<Self, BuildError> {
        let unavailable = |source| BuildError::DockerUnavailable {
            address: crate::redact::redact_credentials(address),
            source,
        };
        let docker = Docker::connect_with_host(address).map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        Ok(DockerExecutor {
            docker,
            address: address.to_string(),
            instance: "default".into(),
            name_prefix: "zos-build-".into(),
            live: LiveSet::default(),
        })
    }

    /// Names this executor's instance (label `zos-build.instance`), so that
    /// several services sharing one Docker daemon sweep only their own
    /// containers. Default: `default`.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = instance.into();
        self
    }

    /// Sets the container name prefix (the old `flist-autobuilder-prefix`);
    /// containers are named `<prefix><build id>`. Default: `zos-build-`.
    pub fn with_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// The underlying Docker client, for what this crate does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Removes every container of this instance that no build of this
    /// executor is using (left behind by a crash, by a removal that failed
    /// while Docker was unreachable, or by a build dropped while its
    /// container was being created), and returns their ids.
    ///
    /// A container that cannot be removed is logged and skipped, so one
    /// stuck container does not keep the others; only a daemon that cannot
    /// list containers fails the sweep.
    pub async fn sweep(&self) -> Result<Vec<String>, BuildError> {
        let ours = self.managed_containers().await?;
        let mut removed = Vec::new();
        for (id, build_id) in ours {
            let live = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&build_id);
            if live {
                continue;
            }
            match container::remove_container(&self.docker, &id).await {
                Ok(()) => removed.push(id),
                Err(e) => {
                    tracing::warn!(container = %id, build = %build_id, error = %e, "cannot remove a leftover build container; the next sweep will try again");
                }
            }
        }
        Ok(removed)
    }

    /// Ids of the containers of this instance that exist now, running or not.
    pub async fn list_managed(&self) -> Result<Vec<String>, BuildError> {
        Ok(self
            .managed_containers()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Answers when the daemon answers a ping: for health checks, and to
    /// wait for a daemon that went away.
    pub async fn ping(&self) -> Result<(), BuildError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|source| BuildError::DockerUnavailable {
                address: crate::redact::redact_credentials(&self.address),
                source,
            })
    }

    /// `(container id, build id)` of the containers of this instance.
    async fn managed_containers(&self) -> Result<Vec<(String, String)>, BuildError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_INSTANCE}={}", self.instance),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| BuildError::docker("list build containers", e))?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let build_id = c
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(LABEL_BUILD_ID))
                    .cloned()
                    .unwrap_or_default();
                c.id.map(|id| (id, build_id))
            })
            .collect())
    }

    /// Removes images that carry our label and lost their tag (an image
    /// committed again under the same tag leaves the old one dangling).
    pub async fn remove_dangling_images(&self) -> Result<Vec<String>, BuildError> {
        image::remove_dangling(&self.docker).await
    }
}
