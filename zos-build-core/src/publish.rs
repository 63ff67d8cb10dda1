//! Where a finished artifact goes.
//!
//! A [`Publisher`] takes the extracted artifact and its published name. The
//! local-directory publisher is the first one; the Zero-OS Hub upload and the
//! `binary` format's symlinks come later behind the same trait, so that the
//! pipeline never changes when a destination is added.
//!
//! The old service reported a failed hub upload as a success; here a
//! publisher's error fails the build.

use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Where and under which name an artifact was published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The published name.
    pub name: String,
    /// Where to find it: a path or a URL.
    pub location: String,
}

/// Publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The name would leave the destination (`/`, `..`, empty).
    #[error("artifact name {0:?} is not a plain file name")]
    InvalidName(String),
    /// The artifact is not a regular file (a symlink, a directory, a device).
    #[error("artifact {} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// Copying into the directory failed.
    #[error("cannot publish {} as {}: {source}", from.display(), to.display())]
    Io {
        /// The extracted artifact.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Publishes artifacts.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes the file `artifact` as `name`.
    async fn publish(&self, artifact: &Path, name: &str) -> Result<Published, PublishError>;
}

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
    async fn publish(&self, artifact: &Path, name: &str) -> Result<Published, PublishError> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.starts_with('.')
            && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(PublishError::InvalidName(name.to_string()));
        }
        let target = self.dir.join(name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let io = |source| PublishError::Io {
            from: artifact.to_path_buf(),
            to: target.clone(),
            source,
        };
        // Never follow a link: what is published is what the build made.
        let metadata = tokio::fs::symlink_metadata(artifact).await.map_err(io)?;
        if !metadata.file_type().is_file() {
            return Err(PublishError::NotRegular(artifact.to_path_buf()));
        }
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        tokio::fs::copy(artifact, &partial).await.map_err(io)?;
        // Readable by all, writable by the server, executable by nobody,
        // whatever mode the build gave it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o644);
            if let Err(e) = tokio::fs::set_permissions(&partial, mode).await {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(io(e));
            }
        }
        if let Err(e) = tokio::fs::rename(&partial, &target).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(io(e));
        }
        Ok(Published {
            name: name.to_string(),
            location: target.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_under_the_name_and_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out.tar.gz");
        std::fs::write(&artifact, b"first").unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        let published = publisher
            .publish(&artifact, "o-r-m-0123456789.tar.gz")
            .await
            .unwrap();
        let target = dir.path().join("artifacts/o-r-m-0123456789.tar.gz");
        assert_eq!(published.location, target.display().to_string());
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        std::fs::write(&artifact, b"second").unwrap();
        publisher
            .publish(&artifact, "o-r-m-0123456789.tar.gz")
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
    async fn refuses_names_that_leave_the_directory_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("a");
        std::fs::write(&artifact, b"x").unwrap();
        let publisher = LocalPublisher::new(dir.path().join("artifacts"));
        for name in ["", "..", "../x", "a/b", ".hidden"] {
            let err = publisher.publish(&artifact, name).await.unwrap_err();
            assert!(matches!(err, PublishError::InvalidName(_)), "{name}: {err}");
        }
        let err = publisher
            .publish(&dir.path().join("missing"), "x.tar.gz")
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
        let err = publisher.publish(&link, "x.tar.gz").await.unwrap_err();
        assert!(matches!(err, PublishError::NotRegular(_)), "{err}");
        assert!(!dir.path().join("artifacts/x.tar.gz").exists());

        let file = dir.path().join("f.tar.gz");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4777)).unwrap();
        publisher.publish(&file, "x.tar.gz").await.unwrap();
        let mode = std::fs::metadata(dir.path().join("artifacts/x.tar.gz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
    }
}
