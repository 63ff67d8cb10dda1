//! Images: making sure one is there, committing, cleaning up.

use super::LABEL_INSTANCE;
use crate::error::{docker_status, BuildError};
use crate::log::{LogEvent, LogStream, Sequencer};
use crate::sink::LogSink;
use bollard::query_parameters::{CreateImageOptions, ListImagesOptions, RemoveImageOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};

/// Splits `name[:tag]` (the tag defaults to `latest`; a digest is kept whole).
pub(crate) fn split_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (image[..at].to_string(), image[at + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Uses the local image, or pulls it, reporting progress as system lines.
///
/// An image present locally is never pulled, not even to refresh it: an
/// image committed by an earlier build (`threefoldtech/0-initramfs:master`)
/// exists only on this daemon, and a pull would fail or, worse, replace it
/// with a registry's image of the same name.
pub(crate) async fn ensure_image(
    docker: &Docker,
    image: &str,
    sink: &mut dyn LogSink,
    seq: &mut Sequencer,
) -> Result<(), BuildError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if docker_status(&e) == Some(404) => {}
        Err(e) => return Err(BuildError::docker(format!("inspect image {image}"), e)),
    }
    let (name, tag) = split_reference(image);
    let options = CreateImageOptions {
        from_image: Some(name),
        tag: (!tag.is_empty()).then_some(tag),
        ..Default::default()
    };
    let say =
        |seq: &mut Sequencer, text: String| -> LogEvent { seq.event(LogStream::System, text) };
    sink.write(&[say(seq, format!("[zos-build] pulling image {image}"))])
        .await?;
    let mut pull = docker.create_image(Some(options), None, None);
    // Progress bars change many times a second; only report status changes.
    let mut last_status: HashMap<String, String> = HashMap::new();
    while let Some(item) = pull.next().await {
        let info = item.map_err(|e| BuildError::Image {
            image: image.to_string(),
            message: e.to_string(),
        })?;
        let status = info.status.unwrap_or_default();
        let layer = info.id.unwrap_or_default();
        if last_status.get(&layer) != Some(&status) {
            let text = if layer.is_empty() {
                format!("[zos-build] {status}")
            } else {
                format!("[zos-build] {layer}: {status}")
            };
            last_status.insert(layer, status);
            sink.write(&[say(seq, text)]).await?;
        }
    }
    // A pull can end without an error and without the image (a registry that
    // answers oddly); check rather than fail later at create time.
    docker
        .inspect_image(image)
        .await
        .map(|_| ())
        .map_err(|e| BuildError::Image {
            image: image.to_string(),
            message: format!("pull finished but the image is not there: {e}"),
        })
}

/// Most listings one call of [`remove_untagged`] makes. Each one after the
/// first finds the untagged parents the previous one freed (an image built
/// on an image of ours that has since lost its tag too), so a chain of that
/// many images goes in one call and a longer one in the next calls.
const MAX_UNTAGGED_ROUNDS: usize = 64;

/// Whether an image has no tag: no `RepoTags`, or only `<none>:<none>`
/// (what older daemons list for an untagged image).
fn is_untagged(repo_tags: &[String]) -> bool {
    repo_tags.iter().all(|tag| tag == "<none>:<none>")
}

/// Removes the images that carry the label `zos-build.instance=<instance>`
/// and no tag; an image in use (by a container, or as the parent of another
/// image) is skipped. Returns the ids removed.
///
/// Docker's `dangling=true` filter lists the untagged images that are no
/// other image's parent, which is what a commit leaves behind when it takes
/// the tag from an older commit. Each image is removed without pruning its
/// parents (`noprune`): a parent is removed only when a later listing shows
/// it as ours and dangling, so nothing that lacks our label ever goes.
pub(crate) async fn remove_untagged(
    docker: &Docker,
    instance: &str,
) -> Result<Vec<String>, BuildError> {
    let label = format!("{LABEL_INSTANCE}={instance}");
    let filters = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        ("label".to_string(), vec![label]),
    ]);
    let options = RemoveImageOptions {
        force: false,
        noprune: true,
        ..Default::default()
    };
    let mut removed = Vec::new();
    let mut in_use: HashSet<String> = HashSet::new();
    for _ in 0..MAX_UNTAGGED_ROUNDS {
        let images = docker
            .list_images(Some(ListImagesOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| BuildError::docker("list untagged images", e))?;
        let mut progress = false;
        for image in images {
            // The filters did this; checked again because removing a tagged
            // image or another instance's would be unforgivable.
            let ours = image.labels.get(LABEL_INSTANCE).map(String::as_str) == Some(instance);
            if !ours || !is_untagged(&image.repo_tags) || in_use.contains(&image.id) {
                continue;
            }
            match docker
                .remove_image(&image.id, Some(options.clone()), None)
                .await
            {
                Ok(_) => {
                    progress = true;
                    removed.push(image.id);
                }
                // Gone already: someone else cleaned up.
                Err(e) if docker_status(&e) == Some(404) => {}
                // Used by a container (running or not) or by a child image:
                // not ours to force; a later call takes it once it is free.
                Err(e) if docker_status(&e) == Some(409) => {
                    tracing::debug!(image = %image.id, error = %e, "untagged image in use, left for later");
                    in_use.insert(image.id);
                }
                Err(e) => return Err(BuildError::docker(format!("remove image {}", image.id), e)),
            }
        }
        if !progress {
            break;
        }
    }
    Ok(removed)
}

/// The tags of `repository` among the daemon's images (`master` for
/// `acme/kernel:master`), sorted.
pub(super) async fn local_tags(
    docker: &Docker,
    repository: &str,
) -> Result<Vec<String>, BuildError> {
    let filters = HashMap::from([("reference".to_string(), vec![format!("{repository}:*")])]);
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| BuildError::docker(format!("list the images of {repository}"), e))?;
    let prefix = format!("{repository}:");
    let mut tags: Vec<String> = images
        .iter()
        .flat_map(|image| image.repo_tags.iter())
        .filter_map(|tag| tag.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    tags.sort();
    tags.dedup();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::{is_untagged, split_reference};

    #[test]
    fn untagged_means_no_tag_or_only_none() {
        assert!(is_untagged(&[]));
        assert!(is_untagged(&["<none>:<none>".into()]));
        assert!(!is_untagged(&["x:master".into()]));
        assert!(!is_untagged(&["<none>:<none>".into(), "x:master".into()]));
    }

    #[test]
    fn references_default_to_latest_and_respect_registry_ports() {
        assert_eq!(
            split_reference("ubuntu"),
            ("ubuntu".into(), "latest".into())
        );
        assert_eq!(
            split_reference("ubuntu:18.04"),
            ("ubuntu".into(), "18.04".into())
        );
        assert_eq!(
            split_reference("reg:5000/org/img"),
            ("reg:5000/org/img".into(), "latest".into())
        );
        assert_eq!(
            split_reference("reg:5000/org/img:v1"),
            ("reg:5000/org/img".into(), "v1".into())
        );
        assert_eq!(
            split_reference("img@sha256:ab"),
            ("img@sha256:ab".into(), String::new())
        );
    }
}
