//! Images: making sure one is there, committing, cleaning up.

use super::LABEL_MANAGED;
use crate::error::{docker_status, BuildError};
use crate::log::{LogEvent, LogStream, Sequencer};
use crate::sink::LogSink;
use bollard::query_parameters::{CreateImageOptions, ListImagesOptions, RemoveImageOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;

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

/// Removes dangling images (no tag left) that carry our label.
pub(crate) async fn remove_dangling(docker: &Docker) -> Result<Vec<String>, BuildError> {
    let filters = HashMap::from([
        ("dangling".to_string(), vec!["true".to_string()]),
        ("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]),
    ]);
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| BuildError::docker("list dangling images", e))?;
    let mut removed = Vec::new();
    for image in images {
        match docker
            .remove_image(&image.id, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => removed.push(image.id),
            // Still used by a container or already gone: not ours to force.
            Err(e) if matches!(docker_status(&e), Some(404 | 409)) => {}
            Err(e) => return Err(BuildError::docker(format!("remove image {}", image.id), e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::split_reference;

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
