//! Where a build's tree comes from.

use crate::git::Git;
use crate::redact::redact_credentials;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Gives a build its tree: the directory copied into the container.
///
/// The server's builds fetch exactly the pushed commit with git
/// ([`GitSource`]); an embedder may build a directory it already has
/// ([`LocalSource`]), and a test may do the same without a git server.
#[async_trait]
pub trait Source: Send + Sync {
    /// What is fetched, for the log (credentials redacted):
    /// `https://github.com/acme/widget at 0123…`.
    fn describe(&self) -> String;

    /// Makes the tree available under the job's work directory `work` (a
    /// fresh directory that the job's owner removes afterwards) and returns
    /// where it is.
    async fn fetch(&self, work: &Path) -> Result<PathBuf, SourceError>;
}

/// The tree could not be had.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch the source: {0}")]
pub struct SourceError(String);

impl SourceError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError(message.into())
    }
}

/// One commit of a git repository, fetched into `<work>/<directory>`.
#[derive(Debug, Clone)]
pub struct GitSource {
    git: Git,
    url: String,
    commit: String,
    directory: String,
}

impl GitSource {
    /// Commit `commit` of the repository at `url`, checked out into the
    /// work directory's `directory` (the repository's name: the build
    /// script finds its tree at `/<name>`, as in the old service).
    pub fn new(
        git: Git,
        url: impl Into<String>,
        commit: impl Into<String>,
        directory: impl Into<String>,
    ) -> GitSource {
        GitSource {
            git,
            url: url.into(),
            commit: commit.into(),
            directory: directory.into(),
        }
    }
}

#[async_trait]
impl Source for GitSource {
    fn describe(&self) -> String {
        format!("{} at {}", redact_credentials(&self.url), self.commit)
    }

    async fn fetch(&self, work: &Path) -> Result<PathBuf, SourceError> {
        if !crate::publish::is_plain_name(&self.directory) {
            return Err(SourceError::new(format!(
                "{:?} is not a plain directory name",
                self.directory
            )));
        }
        let dest = work.join(&self.directory);
        self.git
            .fetch_commit(&self.url, &self.commit, &dest)
            .await
            .map_err(|e| SourceError::new(redact_credentials(&e.to_string())))?;
        Ok(dest)
    }
}

/// A directory that is already there, used as it is (not copied: the
/// executor copies it into the container).
#[derive(Debug, Clone)]
pub struct LocalSource {
    dir: PathBuf,
}

impl LocalSource {
    /// The directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalSource {
        LocalSource { dir: dir.into() }
    }
}

#[async_trait]
impl Source for LocalSource {
    fn describe(&self) -> String {
        format!("the directory {}", self.dir.display())
    }

    async fn fetch(&self, _work: &Path) -> Result<PathBuf, SourceError> {
        match tokio::fs::metadata(&self.dir).await {
            Ok(metadata) if metadata.is_dir() => Ok(self.dir.clone()),
            Ok(_) => Err(SourceError::new(format!(
                "{} is not a directory",
                self.dir.display()
            ))),
            Err(e) => Err(SourceError::new(format!("{}: {e}", self.dir.display()))),
        }
    }
}
