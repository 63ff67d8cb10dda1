//! The Docker executor.
//!
//! One build is one fresh container: create the container with the limits
//! and our labels (pulling the image only when the daemon answers that it
//! has none), copy the source in (one tar stream), attach, start, stream
//! the output into the sink while watching the time limits and the
//! cancellation token, collect the exit status, extract the artifacts, commit
//! if asked, and remove the container. With a tree still being fetched
//! ([`Executor::run_fetching`](crate::Executor::run_fetching)) the container
//! is created meanwhile. Each step is timed as a
//! [`Phase`](crate::Phase) told to the sink. The removal is owned by a guard, so it
//! happens on every path, including a dropped future; [`DockerExecutor::sweep`]
//! covers the one path a guard cannot: a process that died.
//!
//! Two things outlive a build, both only when the spec asks for them and
//! both labelled, so that the engine finds them again and never takes
//! someone else's for its own: the image committed from a container
//! ([`BuildSpec::commit_as`](crate::BuildSpec::commit_as), cleaned up by
//! [`DockerExecutor::remove_untagged_images`]), and cache volumes
//! ([`BuildSpec::cache_volume`](crate::BuildSpec::cache_volume), removed
//! by [`DockerExecutor::remove_cache_volume`]).

mod archive;
mod container;
mod image;
mod run;
mod volume;

pub use crate::spec::{CacheVolume, MAX_CACHE_VOLUME_NAME};

use crate::error::BuildError;
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use container::LiveSet;
use std::collections::HashMap;
use std::sync::Arc;

/// Label set on everything the engine creates: `true` on build containers
/// and cache volumes, `image` on committed images.
///
/// Images differ because a container inherits its image's labels: a
/// container someone starts from a committed image (to look into a kernel
/// build, say) would otherwise carry `zos-build.managed=true` and this
/// instance's label, and [`DockerExecutor::sweep`] would remove it. Our own
/// build containers set `true` over the inherited value.
pub const LABEL_MANAGED: &str = "zos-build.managed";
/// Label carrying the build id (on containers and committed images).
pub const LABEL_BUILD_ID: &str = "zos-build.build-id";
/// Label naming the executor instance that owns a container, a committed
/// image or a cache volume (see [`DockerExecutor::with_instance`]).
pub const LABEL_INSTANCE: &str = "zos-build.instance";
/// Label carrying a cache volume's own name; with [`LABEL_INSTANCE`] it
/// marks the volume as one the engine created (see
/// [`DockerExecutor::remove_cache_volume`]).
pub const LABEL_CACHE: &str = "zos-build.cache";

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
    /// Held for reading by a build from the check of its cache volumes until
    /// its container exists (and holds them), for writing by
    /// [`DockerExecutor::remove_cache_volume`]: a volume removed in between
    /// would be created again by Docker, without our labels.
    volumes: Arc<tokio::sync::RwLock<()>>,
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
            volumes: Arc::default(),
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

    /// The instance name (see [`DockerExecutor::with_instance`]).
    pub fn instance(&self) -> &str {
        &self.instance
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

    /// Removes the images of this instance (label `zos-build.instance`)
    /// that have no tag any more, and returns their ids.
    ///
    /// Committing a container as `x:master` takes the tag from the image
    /// committed as `x:master` before, which is then untagged: that is what
    /// this removes. An image in use (by a container, running or not, or as
    /// the parent of a tagged image) is skipped, not an error; one that lacks
    /// our instance label, or has a tag, is never touched.
    pub async fn remove_untagged_images(&self) -> Result<Vec<String>, BuildError> {
        image::remove_untagged(&self.docker, &self.instance).await
    }

    /// The same as [`DockerExecutor::remove_untagged_images`] (its former
    /// name).
    pub async fn remove_dangling_images(&self) -> Result<Vec<String>, BuildError> {
        self.remove_untagged_images().await
    }

    /// Removes the cache volume `name` (see
    /// [`BuildSpec::cache_volume`](crate::BuildSpec::cache_volume)): `true`
    /// when it was removed, `false` when there was none.
    ///
    /// Refused with an error, and nothing removed, when the volume of that
    /// name lacks this instance's labels (a typo must never delete someone
    /// else's volume), and when a container uses it (a build running now).
    pub async fn remove_cache_volume(&self, name: &str) -> Result<bool, BuildError> {
        let _no_build_between = self.volumes.write().await;
        volume::remove(&self.docker, &self.instance, name).await
    }
}
