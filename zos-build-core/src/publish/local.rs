//! The local directory: the default destination when no hub is configured,
//! so a first build works with no network. The server serves the directory
//! under `/artifacts/`. It has no moving link: a request's link is ignored.

use super::{check_names, copy_into, PublishError, PublishRequest, Published, Publisher};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Copies artifacts into a directory (served over HTTP by the server).
///
/// The copy is written under a temporary name and renamed into place, so a
/// reader never sees half an artifact, and a republished name is replaced whole.
#[derive(Debug, Clone)]
pub struct LocalPublisher {
    dir: PathBuf,
}

impl LocalPublisher {
    /// A publisher into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalPublisher { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Publisher for LocalPublisher {
    /// Copies the artifact; `request.link` is ignored (the local directory
    /// keeps no links), so [`Published::link`] is always `None`.
    async fn publish(&self, request: &PublishRequest<'_>) -> Result<Published, PublishError> {
        check_names(request)?;
        let target = copy_into(&self.dir, request.artifact, request.name).await?;
        Ok(Published {
            name: request.name.to_string(),
            location: target.display().to_string(),
            link: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn publish(
        publisher: &LocalPublisher,
        artifact: &Path,
        name: &str,
    ) -> Result<Published, PublishError> {
        publisher
            .publish(&PublishRequest::new(artifact, name))
            .await
    }

    #[tokio::test]
    async fn copies_under_the_name_and_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out.tar.gz");
        std::fs::write(&artifact, b"first").unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        let published = publish(&publisher, &artifact, "o-r-m-0123456789.tar.gz")
            .await
            .unwrap();
        let target = dir.path().join("artifacts/o-r-m-0123456789.tar.gz");
        assert_eq!(published.location, target.display().to_string());
        assert_eq!(published.link, None);
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        std::fs::write(&artifact, b"second").unwrap();
        publish(&publisher, &artifact, "o-r-m-0123456789.tar.gz")
            .await
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("artifacts"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    }

    #[tokio::test]
    async fn keeps_no_links() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out.tar.gz");
        std::fs::write(&artifact, b"x").unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        let request =
            PublishRequest::new(&artifact, "o-r-m-0123456789.tar.gz").with_link("o-r-m.flist");
        let published = publisher.publish(&request).await.unwrap();
        assert_eq!(published.link, None);
        assert!(!dir.path().join("artifacts/o-r-m.flist").exists());
    }

    #[tokio::test]
    async fn refuses_names_that_leave_the_directory_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("a");
        std::fs::write(&artifact, b"x").unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        for name in ["", "..", "../x", "a/b", ".hidden"] {
            let err = publish(&publisher, &artifact, name).await.unwrap_err();
            assert!(matches!(err, PublishError::InvalidName(_)), "{name}: {err}");
        }
        let err = publish(&publisher, &dir.path().join("missing"), "x.tar.gz")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn publishes_regular_files_only_with_mode_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.tar.gz");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        let err = publish(&publisher, &link, "x.tar.gz").await.unwrap_err();
        assert!(matches!(err, PublishError::NotRegular(_)), "{err}");
        assert!(!dir.path().join("artifacts/x.tar.gz").exists());

        let file = dir.path().join("f.tar.gz");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4777)).unwrap();
        publish(&publisher, &file, "x.tar.gz").await.unwrap();
        let mode = std::fs::metadata(dir.path().join("artifacts/x.tar.gz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
    }
}
