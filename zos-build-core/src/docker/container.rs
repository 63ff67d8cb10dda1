//! Creating containers, and making sure they go away.

use super::{LABEL_BUILD_ID, LABEL_INSTANCE, LABEL_MANAGED};
use crate::spec::BuildSpec;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// The ids of the builds of this process that may own a container right now
/// (from just before the container is created until it is removed).
pub(crate) type LiveSet = Arc<Mutex<HashSet<String>>>;

/// Marks a build as live while it exists; dropped, however the build ends.
///
/// Taken before the container is created, so that a sweep running while
/// the create call is in flight leaves the new container alone; and
/// released even when the build's future is dropped in the middle of that
/// call, so that the next sweep removes a container nobody will ever own.
pub(crate) struct Reservation {
    live: LiveSet,
    build_id: String,
}

impl Reservation {
    pub(crate) fn new(live: LiveSet, build_id: &str) -> Self {
        live.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(build_id.to_string());
        Reservation {
            live,
            build_id: build_id.to_string(),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.build_id);
    }
}

/// The labels of the container of `spec`, and of the image committed from
/// it: the spec's own, then ours (which win), with `managed` as the value
/// of [`LABEL_MANAGED`].
pub(crate) fn labels(spec: &BuildSpec, instance: &str, managed: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_MANAGED.into(), managed.into());
    labels.insert(LABEL_BUILD_ID.into(), spec.build_id.clone());
    labels.insert(LABEL_INSTANCE.into(), instance.into());
    labels
}

/// The container configuration for `spec`.
pub(crate) fn create_body(spec: &BuildSpec, instance: &str) -> ContainerCreateBody {
    let labels = labels(spec, instance, "true");

    let limits = &spec.limits;
    let host_config = HostConfig {
        memory: limits.memory_bytes,
        // Swap equal to memory: the limit holds instead of spilling to swap.
        memory_swap: limits.memory_bytes,
        nano_cpus: limits.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: limits.pids,
        network_mode: (!spec.network).then(|| "none".to_string()),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| {
            spec.extra_hosts
                .iter()
                .map(|(name, ip)| format!("{name}:{ip}"))
                .collect()
        }),
        cap_add: (!spec.capabilities.is_empty()).then(|| spec.capabilities.clone()),
        privileged: Some(spec.privileged),
        // No setuid binary inside the build gains privileges it was not
        // started with: always on, whatever the spec says.
        security_opt: Some(vec!["no-new-privileges".into()]),
        // We capture every line ourselves; a second copy in the daemon's
        // json-file log would only cost disk and time.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        // Named volumes only, never a host path (see `volume.rs`).
        mounts: (!spec.cache_volumes.is_empty()).then(|| super::volume::mounts(spec)),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.argv()),
        // The image's entrypoint would wrap our argv in something unknown.
        entrypoint: Some(vec![]),
        env: (!spec.env.is_empty())
            .then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.workdir.clone(),
        labels: Some(labels),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Owns a container: removes it when dropped, whatever path the build took.
///
/// The normal path calls [`ContainerGuard::remove`] and waits for it; when the
/// build's future is dropped or panics, `Drop` hands the removal to the
/// runtime instead. A removal that fails (Docker unreachable) leaves the
/// container to the next sweep, which runs periodically and when Docker
/// answers again.
pub(crate) struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    pub(crate) fn new(docker: Docker, id: String) -> Self {
        ContainerGuard {
            docker,
            id: Some(id),
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Removes the container now, reporting failure.
    pub(crate) async fn remove(mut self) -> Result<(), bollard::errors::Error> {
        let Some(id) = self.id.take() else {
            return Ok(());
        };
        remove_container(&self.docker, &id).await
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let docker = self.docker.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = remove_container(&docker, &id).await {
                        tracing::warn!(container = %id, error = %e, "could not remove an abandoned build container; the next sweep will");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(container = %id, "no runtime to remove an abandoned build container; the next sweep will");
            }
        }
    }
}

/// Force-removes a container with its anonymous volumes; a container that is
/// already gone counts as removed.
pub(crate) async fn remove_container(
    docker: &Docker,
    id: &str,
) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Err(e) if crate::error::docker_status(&e) == Some(404) => Ok(()),
        other => other,
    }
}
