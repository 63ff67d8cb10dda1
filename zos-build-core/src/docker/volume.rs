//! Cache volumes: the named volumes that persist from one build to the next.
//!
//! A volume is looked up by the name the spec gives, so the name alone must
//! never reach a volume the engine did not make: one created here carries
//! the instance label and the cache label with its own name, and a volume
//! of that name without both is neither mounted into a build nor removed.

use super::{LABEL_CACHE, LABEL_INSTANCE, LABEL_MANAGED};
use crate::error::{docker_status, BuildError};
use crate::spec::{BuildSpec, CacheVolume};
use bollard::models::{Mount, MountType, MountVolumeOptions, Volume, VolumeCreateRequest};
use bollard::query_parameters::RemoveVolumeOptions;
use bollard::Docker;
use std::collections::HashMap;

/// The labels a cache volume `name` of `instance` is created with.
fn labels(instance: &str, name: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
        (LABEL_CACHE.to_string(), name.to_string()),
    ])
}

/// Whether `volume` is the cache volume `name` of `instance`: it carries
/// every label we give one, with our values.
fn is_ours(volume: &Volume, instance: &str, name: &str) -> bool {
    labels(instance, name)
        .iter()
        .all(|(key, value)| volume.labels.get(key) == Some(value))
}

/// The error for a volume of the right name that is not ours.
fn not_ours(volume: &Volume, instance: &str, what: &str) -> BuildError {
    let name = &volume.name;
    BuildError::InvalidSpec(format!(
        "cache volume {name:?} exists but was not created by zos-build instance {instance:?} \
         (it lacks the labels {LABEL_INSTANCE}={instance} and {LABEL_CACHE}={name}): \
         refusing to {what} it"
    ))
}

/// Makes sure the cache volume `name` exists and is ours, creating it when
/// it is missing.
pub(crate) async fn ensure(docker: &Docker, instance: &str, name: &str) -> Result<(), BuildError> {
    match docker.inspect_volume(name).await {
        Ok(volume) if is_ours(&volume, instance, name) => return Ok(()),
        Ok(volume) => return Err(not_ours(&volume, instance, "mount")),
        Err(e) if docker_status(&e) == Some(404) => {}
        Err(e) => {
            return Err(BuildError::docker(
                format!("inspect cache volume {name}"),
                e,
            ))
        }
    }
    let request = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(labels(instance, name)),
        ..Default::default()
    };
    // Creating a volume that exists answers the existing one, unchanged:
    // someone else may have made it since we looked, so look again.
    let volume = docker
        .create_volume(request)
        .await
        .map_err(|e| BuildError::docker(format!("create cache volume {name}"), e))?;
    if is_ours(&volume, instance, name) {
        Ok(())
    } else {
        Err(not_ours(&volume, instance, "mount"))
    }
}

/// Removes the cache volume `name` of `instance`: `false` when there is
/// none, an error when the volume is not ours or is in use.
pub(crate) async fn remove(
    docker: &Docker,
    instance: &str,
    name: &str,
) -> Result<bool, BuildError> {
    CacheVolume::validate_name(name).map_err(BuildError::InvalidSpec)?;
    let volume = match docker.inspect_volume(name).await {
        Ok(volume) => volume,
        Err(e) if docker_status(&e) == Some(404) => return Ok(false),
        Err(e) => {
            return Err(BuildError::docker(
                format!("inspect cache volume {name}"),
                e,
            ))
        }
    };
    if !is_ours(&volume, instance, name) {
        return Err(not_ours(&volume, instance, "remove"));
    }
    let options = RemoveVolumeOptions { force: false };
    match docker.remove_volume(name, Some(options)).await {
        Ok(()) => Ok(true),
        Err(e) if docker_status(&e) == Some(404) => Ok(false),
        Err(e) if docker_status(&e) == Some(409) => Err(BuildError::docker(
            format!(
                "remove cache volume {name}: a container still uses it (a running build, or a \
                 leftover container the next sweep removes); try again once it is gone"
            ),
            e,
        )),
        Err(e) => Err(BuildError::docker(format!("remove cache volume {name}"), e)),
    }
}

/// The mounts of the spec's cache volumes: read-write, and without Docker's
/// copy of the image's files into an empty volume, so that a volume holds
/// only what builds wrote to it.
pub(crate) fn mounts(spec: &BuildSpec) -> Vec<Mount> {
    spec.cache_volumes
        .iter()
        .map(|volume| Mount {
            target: Some(volume.container_path.clone()),
            source: Some(volume.name.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}
