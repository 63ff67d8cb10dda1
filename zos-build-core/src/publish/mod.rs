//! Where a finished artifact goes.
//!
//! A [`Publisher`] takes a [`PublishRequest`]: the extracted artifact, the
//! name it is published under and, optionally, the moving link of its
//! branch to point at it. Three destinations implement it, so that the
//! pipeline never changes when a destination is added:
//!
//! - [`LocalPublisher`] copies into a directory the server serves (the
//!   default when no hub is configured; it has no links);
//! - [`HubPublisher`] uploads to the Zero-OS Hub (`format: flist`) and moves
//!   the hub's link with the hub's own API;
//! - [`BinaryPublisher`] copies into the binary directory (`format: binary`)
//!   and moves a relative symlink onto the copy.
//!
//! Whether a link moves is the caller's decision, not the publisher's: the
//! link of a branch only moves forward (an older build that finishes after a
//! newer one still publishes its file, but leaves the link alone), and only
//! the pipeline knows which build is the newest. A request without a link
//! publishes the file and touches no link.
//!
//! The names are the old service's, so existing links stay valid: the file
//! is [`artifact_name()`](crate::artifact_name()), the link is
//! [`link_name()`] (`<owner>-<repo>[-<tag>]-<branch>.flist`, for the binary
//! directory too). Every name is checked as a plain file name before it
//! reaches a path or a URL.
//!
//! The old service reported a failed hub upload as a success; here a
//! publisher's error fails the build.
//!
//! The pipeline ([`crate::pipeline`]) publishes the file with
//! [`Publisher::publish`] and then, when the history says this build is the
//! newest of its branch, moves the link with [`Publisher::move_link`].

mod binary;
mod hub;
mod local;

pub use binary::BinaryPublisher;
pub use hub::{
    HubPublisher, HubPublisherBuilder, RetryPolicy, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_UPLOAD_TIMEOUT, MAX_ANSWER_BYTES,
};
pub use local::LocalPublisher;

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest published file or link name, in bytes: the temporary names
/// made beside it (a dot, a process id, a counter and a suffix) must still
/// fit the file systems' 255-byte limit.
pub const MAX_NAME_BYTES: usize = 200;

/// The moving link of a branch, as the old service named it:
/// `<owner>-<repo>[-<tag>]-<branch>.flist`, every `/` written `-`. The
/// binary directory's symlink carries the same name, `.flist` included.
pub fn link_name(repository: &str, tag: Option<&str>, branch: &str) -> String {
    format!("{}.flist", crate::latest_name(repository, tag, branch))
}

/// What to publish: one artifact, its name, and optionally the link to move
/// onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishRequest<'a> {
    /// The extracted artifact (a regular file; a link is refused).
    pub artifact: &'a Path,
    /// The published name ([`artifact_name()`](crate::artifact_name())).
    pub name: &'a str,
    /// The link to point at the published file ([`link_name()`]), or `None`
    /// to leave every link alone.
    pub link: Option<&'a str>,
}

impl<'a> PublishRequest<'a> {
    /// Publish `artifact` as `name`, moving no link.
    pub fn new(artifact: &'a Path, name: &'a str) -> Self {
        PublishRequest {
            artifact,
            name,
            link: None,
        }
    }

    /// Also move the link `link` onto the published file.
    pub fn with_link(mut self, link: &'a str) -> Self {
        self.link = Some(link);
        self
    }
}

/// Where and under which name an artifact was published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The published name (for the hub, the flist's name:
    /// `<artifact name without .tar.gz>.flist`).
    pub name: String,
    /// Where to find it: a path or a URL.
    pub location: String,
    /// The link that was moved onto it, or `None` when none moved.
    pub link: Option<PublishedLink>,
}

/// A link that now points at a published file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedLink {
    /// The link's name (`<owner>-<repo>[-<tag>]-<branch>.flist`).
    pub name: String,
    /// Where the link is: a path or a URL.
    pub location: String,
    /// What it points at: [`Published::name`].
    pub target: String,
}

/// Publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The name would leave the destination (`/`, `..`, empty, hidden,
    /// control characters, longer than [`MAX_NAME_BYTES`]).
    #[error("artifact name {0:?} is not a plain file name")]
    InvalidName(String),
    /// The link name is not a plain file name, or is the published name.
    #[error("link name {0:?} is not a plain file name distinct from the artifact's")]
    InvalidLink(String),
    /// The hub converts `.tar.gz` archives only.
    #[error(
        "artifact name {0:?} does not end with .tar.gz, the only archive the Zero-OS Hub converts"
    )]
    NotAnArchive(String),
    /// The artifact is not a regular file (a symlink, a directory, a device).
    #[error("artifact {} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// The artifact cannot be read.
    #[error("cannot read artifact {}: {source}", path.display())]
    Artifact {
        /// The extracted artifact.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
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
    /// The link's place holds something that is not a link (a file, a
    /// directory): it is never replaced.
    #[error("cannot move link {}: it exists and is not a symbolic link", .0.display())]
    NotALink(PathBuf),
    /// Making or moving a link failed.
    #[error("cannot point link {} at {target}: {source}", link.display())]
    Link {
        /// The link.
        link: PathBuf,
        /// What it was to point at.
        target: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The hub publisher's settings are unusable (the website URL, the token
    /// or the username); the token itself is never shown.
    #[error("invalid Zero-OS Hub settings: {0}")]
    HubSettings(String),
    /// The hub answered with an error: a 4xx, or its own
    /// `{"status":"error","message":…}`. Not retried.
    #[error("the Zero-OS Hub refused {url} (HTTP {status}): {message}")]
    HubRefused {
        /// The URL called (credentials redacted).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The hub's message.
        message: String,
    },
    /// The hub answered something that is not its API's answer (not JSON,
    /// an unknown status, a redirect, an unusable name). Not retried.
    #[error("unexpected answer from the Zero-OS Hub at {url} (HTTP {status}): {reason}")]
    HubAnswer {
        /// The URL called (credentials redacted).
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },
    /// The hub could not be reached, timed out or answered 5xx on every
    /// attempt of the retry policy.
    #[error("the Zero-OS Hub at {url} failed {attempts} attempt(s); last: {reason}")]
    HubUnavailable {
        /// The URL called (credentials redacted).
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// What happened on the last one.
        reason: String,
    },
}

/// Publishes artifacts.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes `request.artifact` as `request.name` and, when
    /// `request.link` is set, moves that link onto it.
    async fn publish(&self, request: &PublishRequest<'_>) -> Result<Published, PublishError>;

    /// Moves the link `link` onto `published` (what [`Publisher::publish`]
    /// returned), as a separate step: a pipeline publishes the file first
    /// and decides afterwards whether the link moves (it only moves
    /// forward). `Ok(None)` from a destination without links, which is the
    /// default.
    async fn move_link(
        &self,
        published: &Published,
        link: &str,
    ) -> Result<Option<PublishedLink>, PublishError> {
        let _ = (published, link);
        Ok(None)
    }

    /// Values that must never reach a log (a token): a pipeline gives them
    /// to its masking sink. None by default.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether `name` can be used as a file name inside a directory, and as one
/// path segment of a URL: not empty, not `.` or `..`, not hidden, no
/// separator, no control character, at most [`MAX_NAME_BYTES`].
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// `name` and `link` checked as plain names.
fn check_names(request: &PublishRequest<'_>) -> Result<(), PublishError> {
    if !is_plain_name(request.name) {
        return Err(PublishError::InvalidName(request.name.to_string()));
    }
    if let Some(link) = request.link {
        // A link over its own target would replace the file it points at.
        if !is_plain_name(link) || link == request.name {
            return Err(PublishError::InvalidLink(link.to_string()));
        }
    }
    Ok(())
}

/// A hidden name beside `name`, unique within the process, for a file or a
/// link that is renamed into place once complete. Published names are never
/// hidden, so it cannot collide with one.
fn temporary_name(name: &str, suffix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}-{n}.{suffix}", std::process::id())
}

/// Copies the regular file `artifact` into `dir` as `name` (mode 0644),
/// through a temporary name renamed into place, so a reader never sees half
/// an artifact and a republished name is replaced whole. Returns the path.
async fn copy_into(dir: &Path, artifact: &Path, name: &str) -> Result<PathBuf, PublishError> {
    let target = dir.join(name);
    let partial = dir.join(temporary_name(name, "partial"));
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
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    if let Err(e) = tokio::fs::copy(artifact, &partial).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(io(e));
    }
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
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for good in ["o-r-m-0123456789.tar.gz", "o-r-m.flist", "a", "a..b"] {
            assert!(is_plain_name(good), "{good}");
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a\nb", "a\0b", &long,
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(is_plain_name(&"x".repeat(MAX_NAME_BYTES)));
    }

    #[test]
    fn the_link_is_the_old_services_name() {
        assert_eq!(
            link_name("threefoldfoundation/tfchain", Some("faucet"), "master"),
            "threefoldfoundation-tfchain-faucet-master.flist"
        );
        assert_eq!(link_name("o/r", None, "a/b"), "o-r-a-b.flist");
    }

    #[test]
    fn requests_move_no_link_unless_asked() {
        let request = PublishRequest::new(Path::new("/a"), "n.tar.gz");
        assert_eq!(request.link, None);
        assert_eq!(request.with_link("n.flist").link, Some("n.flist"));
        let err = check_names(&request.with_link("../n.flist")).unwrap_err();
        assert!(matches!(err, PublishError::InvalidLink(_)), "{err}");
    }

    #[test]
    fn temporary_names_are_hidden_and_unique() {
        let a = temporary_name("x.tar.gz", "partial");
        let b = temporary_name("x.tar.gz", "partial");
        assert!(
            a.starts_with(".x.tar.gz.") && a.ends_with(".partial"),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
