//! The binary directory (`format: binary`): the artifact is copied in, and
//! the branch's relative symlink is moved onto the copy.
//!
//! The symlink keeps the old service's name, `<owner>-<repo>[-<tag>]-<branch>.flist`
//! (`.flist` included, although the file is a binary), so the URLs people
//! download from keep working. It is relative (it holds the file name only),
//! so the directory can be moved or served from another mount point.
//!
//! Moving the link is atomic: a new symlink is made under a hidden temporary
//! name, then renamed over the old one. A reader following the link sees the
//! old file or the new one, never a missing link. Only a symbolic link is
//! ever replaced: a file or directory in its place is an error.

use super::{
    check_names, copy_into, temporary_name, PublishError, PublishRequest, Published, PublishedLink,
    Publisher,
};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Copies artifacts into the binary directory and moves their branch's
/// relative symlink onto them.
#[derive(Debug, Clone)]
pub struct BinaryPublisher {
    dir: PathBuf,
}

impl BinaryPublisher {
    /// A publisher into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BinaryPublisher { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Points the symlink `link` at `target` (a name in the same directory).
    async fn point_link(&self, link: &str, target: &str) -> Result<PathBuf, PublishError> {
        let path = self.dir.join(link);
        let failed = |source| PublishError::Link {
            link: path.clone(),
            target: target.to_string(),
            source,
        };
        match tokio::fs::symlink_metadata(&path).await {
            Ok(metadata) if !metadata.file_type().is_symlink() => {
                return Err(PublishError::NotALink(path));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let temporary = self.dir.join(temporary_name(link, "link"));
        symlink(target, &temporary).await.map_err(failed)?;
        if let Err(e) = tokio::fs::rename(&temporary, &path).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(failed(e));
        }
        Ok(path)
    }
}

#[async_trait]
impl Publisher for BinaryPublisher {
    async fn publish(&self, request: &PublishRequest<'_>) -> Result<Published, PublishError> {
        check_names(request)?;
        let target = copy_into(&self.dir, request.artifact, request.name).await?;
        let mut published = Published {
            name: request.name.to_string(),
            location: target.display().to_string(),
            link: None,
        };
        if let Some(link) = request.link {
            published.link = self.move_link(&published, link).await?;
        }
        Ok(published)
    }

    async fn move_link(
        &self,
        published: &Published,
        link: &str,
    ) -> Result<Option<PublishedLink>, PublishError> {
        check_names(&PublishRequest::new(Path::new(""), &published.name).with_link(link))?;
        let path = self.point_link(link, &published.name).await?;
        Ok(Some(PublishedLink {
            name: link.to_string(),
            location: path.display().to_string(),
            target: published.name.clone(),
        }))
    }
}

#[cfg(unix)]
async fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    tokio::fs::symlink(target, link).await
}

#[cfg(not(unix))]
async fn symlink(_target: &str, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the binary directory's links need a Unix system",
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_link_is_relative_and_moves_with_each_publish() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out");
        let publisher = BinaryPublisher::new(dir.path().join("bin"));

        std::fs::write(&artifact, b"one").unwrap();
        let request =
            PublishRequest::new(&artifact, "o-r-m-1111111111.tar.gz").with_link("o-r-m.flist");
        let published = publisher.publish(&request).await.unwrap();
        let link = dir.path().join("bin/o-r-m.flist");
        assert_eq!(
            published.link,
            Some(PublishedLink {
                name: "o-r-m.flist".into(),
                location: link.display().to_string(),
                target: "o-r-m-1111111111.tar.gz".into(),
            })
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("o-r-m-1111111111.tar.gz")
        );

        std::fs::write(&artifact, b"two").unwrap();
        let request =
            PublishRequest::new(&artifact, "o-r-m-2222222222.tar.gz").with_link("o-r-m.flist");
        publisher.publish(&request).await.unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"two");

        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "o-r-m-1111111111.tar.gz",
                "o-r-m-2222222222.tar.gz",
                "o-r-m.flist"
            ],
            "no temporary file or link is left"
        );
    }

    #[tokio::test]
    async fn never_replaces_a_file_with_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out");
        std::fs::write(&artifact, b"x").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("o-r-m.flist"), b"a file").unwrap();
        let publisher = BinaryPublisher::new(&bin);
        let request =
            PublishRequest::new(&artifact, "o-r-m-1111111111.tar.gz").with_link("o-r-m.flist");
        let err = publisher.publish(&request).await.unwrap_err();
        assert!(matches!(err, PublishError::NotALink(_)), "{err}");
        assert_eq!(std::fs::read(bin.join("o-r-m.flist")).unwrap(), b"a file");
    }

    #[tokio::test]
    async fn refuses_link_names_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("out");
        std::fs::write(&artifact, b"x").unwrap();
        let publisher = BinaryPublisher::new(dir.path().join("bin"));
        for link in ["../o-r-m.flist", "a/b", ".o-r-m.flist", "", "x.tar.gz"] {
            let request = PublishRequest::new(&artifact, "x.tar.gz").with_link(link);
            let err = publisher.publish(&request).await.unwrap_err();
            assert!(matches!(err, PublishError::InvalidLink(_)), "{link}: {err}");
        }
        assert!(!dir.path().join("bin").exists(), "nothing was published");
    }
}
