//! Fetching exactly one commit of a repository.
//!
//! The old service cloned the branch head at the moment the build started,
//! so a push followed quickly by another built the second commit twice. Here
//! the pushed commit itself is fetched (`git fetch --depth 1 <url> <sha>`),
//! shallow, into a fresh directory, and checked out detached.
//!
//! git runs without a shell, with `--` before every value that came from
//! outside (URL, commit), so neither can be taken for an option, and without
//! prompts (`GIT_TERMINAL_PROMPT=0`): a repository that needs credentials
//! fails instead of hanging. Every command runs in a directory of ours (a
//! [`Git`] is made with its scratch directory, under the server's data
//! directory, never the shared `/tmp` where anyone may plant a `.git`), does
//! not look for repositories above it (`GIT_CEILING_DIRECTORIES`), ignores
//! the system-wide configuration (`GIT_CONFIG_NOSYSTEM`), and may only use
//! the transport of the configured base URL (`GIT_ALLOW_PROTOCOL`), so a
//! URL cannot make git run a command (`ext::`) or read local files when the
//! base is remote. Credentials in URLs never appear in errors.

use crate::names::CommitId;
use crate::redact::redact_credentials;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Fetching a commit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The commit is not 40 hexadecimal digits.
    #[error("commit {0:?} is not 40 hexadecimal digits")]
    InvalidCommit(String),
    /// git could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// The destination could not be prepared.
    #[error("cannot prepare {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed.
    #[error("git {step} failed for {url} at {commit}: {stderr}")]
    Failed {
        /// `init`, `fetch`, `checkout`.
        step: &'static str,
        /// The repository URL.
        url: String,
        /// The commit asked for.
        commit: String,
        /// What git printed on stderr (last lines).
        stderr: String,
    },
    /// The remote has no such branch (or no default branch).
    #[error("{url} has no {reference}")]
    NoSuchRef {
        /// The repository URL.
        url: String,
        /// `refs/heads/<branch>` or `HEAD`.
        reference: String,
    },
    /// After the checkout, HEAD is not the commit asked for.
    #[error("checked out {found} instead of {commit} from {url}")]
    WrongCommit {
        /// The repository URL.
        url: String,
        /// The commit asked for.
        commit: String,
        /// What HEAD is.
        found: String,
    },
}

/// The URL of `repository` (`owner/name`) below `base`: a URL
/// (`https://github.com`, `file:///srv/git`) or a local directory, which is
/// turned into a `file://` URL (plain paths do not support shallow fetches).
pub fn repository_url(base: &str, repository: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.contains("://") {
        format!("{base}/{repository}")
    } else {
        let absolute = std::path::absolute(base).unwrap_or_else(|_| PathBuf::from(base));
        format!("file://{}/{repository}", absolute.display())
    }
}

/// The transport git may use for repositories below `base`: the scheme of a
/// URL (`https`, `file`, `ssh`), `ssh` for `user@host:path`, `file` for a
/// local directory.
pub fn protocol_of(base: &str) -> String {
    match base.split_once("://") {
        Some((scheme, _)) => scheme.to_ascii_lowercase(),
        None if base.contains(':') && !base.starts_with('/') && !base.starts_with('.') => {
            "ssh".to_string()
        }
        None => "file".to_string(),
    }
}

/// How git is run: in which directory, with which transports allowed, and
/// with which HTTP header (a token for private repositories).
#[derive(Clone)]
pub struct Git {
    scratch: PathBuf,
    protocols: String,
    http_header: Option<String>,
}

/// The header holds a token: never shown.
impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Git")
            .field("scratch", &self.scratch)
            .field("protocols", &self.protocols)
            .field("http_header", &self.http_header.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Git {
    /// git with `scratch` (created when needed) as the working directory of
    /// the commands that need no checkout, allowed only the transport of
    /// `base_url` (see [`protocol_of`]).
    pub fn new(scratch: impl Into<PathBuf>, base_url: &str) -> Git {
        Git {
            scratch: scratch.into(),
            protocols: protocol_of(base_url),
            http_header: None,
        }
    }

    /// Sends `header` (`Authorization: Basic …`) with every HTTP request
    /// git makes: how a token reaches a private repository. It is given to
    /// git through its environment (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_0`
    /// `= http.extraHeader`, `GIT_CONFIG_VALUE_0`), never in a URL or an
    /// argument, so it shows in no process list, no remote URL kept in the
    /// checkout's `.git/config`, and no error message.
    pub fn with_http_header(mut self, header: impl Into<String>) -> Git {
        self.http_header = Some(header.into());
        self
    }

    /// Allows these transports instead (`https:file`), for callers that
    /// fetch from more than one kind of place.
    pub fn with_protocols(mut self, protocols: impl Into<String>) -> Git {
        self.protocols = protocols.into();
        self
    }

    /// The transports allowed, as `GIT_ALLOW_PROTOCOL` takes them.
    pub fn protocols(&self) -> &str {
        &self.protocols
    }

    /// The scratch directory, created.
    async fn scratch(&self) -> Result<&Path, GitError> {
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|source| GitError::Directory {
                path: self.scratch.clone(),
                source,
            })?;
        Ok(&self.scratch)
    }

    /// Fetches `commit` of `url` into `dest` (created; must not exist or be
    /// empty) and checks it out detached. `dest` keeps a shallow `.git`.
    pub async fn fetch_commit(&self, url: &str, commit: &str, dest: &Path) -> Result<(), GitError> {
        let commit = CommitId::parse(commit)
            .map_err(|_| GitError::InvalidCommit(commit.to_string()))?
            .to_string();
        tokio::fs::create_dir_all(dest)
            .await
            .map_err(|source| GitError::Directory {
                path: dest.to_path_buf(),
                source,
            })?;
        self.run(dest, url, &commit, "init", &["init", "-q"])
            .await?;
        let fetch = [
            "fetch",
            "-q",
            "--no-tags",
            "--depth",
            "1",
            "--",
            url,
            &commit,
        ];
        self.run(dest, url, &commit, "fetch", &fetch).await?;
        let checkout = [
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            "FETCH_HEAD",
        ];
        self.run(dest, url, &commit, "checkout", &checkout).await?;
        let head = self
            .run(dest, url, &commit, "rev-parse", &["rev-parse", "HEAD"])
            .await?;
        if head != commit {
            return Err(GitError::WrongCommit {
                url: redact_credentials(url),
                commit,
                found: head,
            });
        }
        Ok(())
    }

    /// The commit `reference` (`HEAD`, the default branch, or
    /// `refs/heads/<branch>`) of `url` points to now.
    pub async fn resolve(&self, url: &str, reference: &str) -> Result<String, GitError> {
        let dir = self.scratch().await?;
        let args = ["ls-remote", "--", url, reference];
        let listing = self.run(dir, url, reference, "ls-remote", &args).await?;
        listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(_, name)| *name == reference)
            .map(|(commit, _)| commit.to_string())
            .filter(|commit| CommitId::parse(commit).is_ok())
            .ok_or_else(|| GitError::NoSuchRef {
                url: redact_credentials(url),
                reference: reference.to_string(),
            })
    }

    /// The default branch of `url` (what `HEAD` points to) and its commit.
    pub async fn default_branch(&self, url: &str) -> Result<(String, String), GitError> {
        let dir = self.scratch().await?;
        let args = ["ls-remote", "--symref", "--", url, "HEAD"];
        let listing = self.run(dir, url, "HEAD", "ls-remote", &args).await?;
        let no_head = || GitError::NoSuchRef {
            url: redact_credentials(url),
            reference: "HEAD".to_string(),
        };
        let branch = listing
            .lines()
            .filter_map(|line| line.strip_prefix("ref: "))
            .filter_map(|rest| rest.split_once('\t'))
            .find(|(_, name)| *name == "HEAD")
            .and_then(|(target, _)| target.strip_prefix("refs/heads/"))
            .map(str::to_string)
            .ok_or_else(no_head)?;
        let commit = listing
            .lines()
            .filter(|line| !line.starts_with("ref: "))
            .filter_map(|line| line.split_once('\t'))
            .find(|(_, name)| *name == "HEAD")
            .map(|(commit, _)| commit.to_string())
            .filter(|commit| CommitId::parse(commit).is_ok())
            .ok_or_else(no_head)?;
        Ok((branch, commit))
    }
}

impl Git {
    /// Runs `git -C dir args...`, returning its trimmed stdout.
    async fn run(
        &self,
        dir: &Path,
        url: &str,
        commit: &str,
        step: &'static str,
        args: &[&str],
    ) -> Result<String, GitError> {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-C")
            .arg(dir)
            .args(args)
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ALLOW_PROTOCOL", &self.protocols)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(parent) = dir.parent() {
            command.env("GIT_CEILING_DIRECTORIES", parent);
        }
        // Configuration from the environment: ours, or none at all (a
        // variable inherited from the server's own environment could add
        // any setting).
        command.env_remove("GIT_CONFIG_PARAMETERS");
        match &self.http_header {
            Some(header) => {
                command
                    .env("GIT_CONFIG_COUNT", "1")
                    .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                    .env("GIT_CONFIG_VALUE_0", header);
            }
            None => {
                command.env_remove("GIT_CONFIG_COUNT");
            }
        }
        let output = command.output().await.map_err(GitError::Spawn)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        Err(GitError::Failed {
            step,
            url: redact_credentials(url),
            commit: commit.to_string(),
            stderr: redact_credentials(&lines[lines.len().saturating_sub(5)..].join(" / ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn git_for(dir: &Path, base: &str) -> Git {
        Git::new(dir.join("scratch"), base)
    }

    /// `<base>/owner/repo` with two commits on master; returns both shas.
    fn two_commits(base: &Path) -> (String, String) {
        let repo = base.join("owner/repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "master"]);
        std::fs::write(repo.join("file.txt"), "one\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "one"]);
        let first = git(&repo, &["rev-parse", "HEAD"]);
        std::fs::write(repo.join("file.txt"), "two\n").unwrap();
        git(&repo, &["commit", "-q", "-am", "two"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        (first, second)
    }

    #[tokio::test]
    async fn fetches_the_commit_asked_for_not_the_branch_head() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        let (first, second) = two_commits(&base);
        let url = repository_url(&base.display().to_string(), "owner/repo");
        assert!(url.starts_with("file:///"), "{url}");
        let dest = dir.path().join("checkout");
        git_for(dir.path(), &url)
            .fetch_commit(&url, &first, &dest)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("file.txt")).unwrap(),
            "one\n"
        );
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), first);
        assert_ne!(first, second);
        // Shallow: the history of the commit is not there.
        assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "1");
    }

    #[tokio::test]
    async fn resolves_branches_and_the_default_branch() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        let (_, second) = two_commits(&base);
        let url = repository_url(&base.display().to_string(), "owner/repo");
        let git = git_for(dir.path(), &url);
        assert_eq!(
            git.resolve(&url, "refs/heads/master").await.unwrap(),
            second
        );
        assert_eq!(git.resolve(&url, "HEAD").await.unwrap(), second);
        assert_eq!(
            git.default_branch(&url).await.unwrap(),
            ("master".to_string(), second.clone())
        );
        let err = git.resolve(&url, "refs/heads/nope").await.unwrap_err();
        assert!(matches!(err, GitError::NoSuchRef { .. }), "{err}");
        assert!(err.to_string().contains("refs/heads/nope"), "{err}");
    }

    #[tokio::test]
    async fn refuses_bad_input_and_names_the_failing_step() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        two_commits(&base);
        let url = repository_url(&format!("file://{}", base.display()), "owner/repo");
        let git = git_for(dir.path(), &url);
        let err = git
            .fetch_commit(&url, "--upload-pack=touch /tmp/x", &dir.path().join("a"))
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::InvalidCommit(_)), "{err}");
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = git
            .fetch_commit(&url, missing, &dir.path().join("b"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GitError::Failed { step: "fetch", .. }),
            "{err}"
        );
        assert!(err.to_string().contains(missing), "{err}");
        // A URL that looks like an option is passed after `--`: it is a
        // (missing) repository to git, never an option.
        let err = git
            .fetch_commit("--upload-pack=touch", missing, &dir.path().join("c"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GitError::Failed { step: "fetch", .. }),
            "{err}"
        );
    }

    #[test]
    fn the_allowed_transport_is_the_base_urls() {
        assert_eq!(protocol_of("https://github.com"), "https");
        assert_eq!(protocol_of("file:///srv/git"), "file");
        assert_eq!(protocol_of("/srv/git"), "file");
        assert_eq!(protocol_of("./git"), "file");
        assert_eq!(protocol_of("git@github.com:org"), "ssh");
        assert_eq!(protocol_of("HTTP://h"), "http");
    }

    #[tokio::test]
    async fn other_transports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        let (first, _) = two_commits(&base);
        let url = repository_url(&base.display().to_string(), "owner/repo");
        // A server whose repositories are on GitHub never reads local files,
        // nor runs `ext::` commands.
        let git = Git::new(dir.path().join("scratch"), "https://github.com");
        let err = git
            .fetch_commit(&url, &first, &dir.path().join("a"))
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
        let marker = dir.path().join("pwned");
        let ext = format!("ext::sh -c touch% {}", marker.display());
        let git = Git::new(dir.path().join("scratch"), "file:///srv");
        assert!(git.resolve(&ext, "HEAD").await.is_err());
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_planted_repository_above_the_scratch_directory_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        let (_, second) = two_commits(&base);
        // A `.git` in the scratch directory's parent, as one planted in a
        // shared /tmp would be, configuring a command for every fetch.
        let outer = dir.path().join("shared");
        std::fs::create_dir_all(&outer).unwrap();
        git(&outer, &["init", "-q"]);
        let marker = dir.path().join("pwned");
        git(
            &outer,
            &[
                "config",
                "core.sshCommand",
                &format!("touch {}", marker.display()),
            ],
        );
        git(&outer, &["config", "protocol.file.allow", "never"]);
        let url = repository_url(&base.display().to_string(), "owner/repo");
        let git = Git::new(outer.join("scratch"), &url);
        assert_eq!(git.resolve(&url, "HEAD").await.unwrap(), second);
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn credentials_never_appear_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path().join("scratch"), "http://127.0.0.1:9");
        let err = git
            .resolve("http://user:hunter2@127.0.0.1:9/owner/repo", "HEAD")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("user:"),
            "{text}"
        );
        assert!(text.contains("http://***@127.0.0.1:9/owner/repo"), "{text}");
    }

    #[tokio::test]
    async fn the_http_header_reaches_git_through_its_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        let header = "Authorization: Basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0";
        let with =
            Git::new(dir.path().join("scratch"), "https://github.com").with_http_header(header);
        let seen = with
            .run(
                &repo,
                "u",
                "c",
                "read config",
                &["config", "--get", "http.extraheader"],
            )
            .await
            .unwrap();
        assert_eq!(seen, header);
        assert!(!format!("{with:?}").contains("eC1hY2Nlc3M"), "{with:?}");
        // Not stored in the checkout.
        let stored = std::fs::read_to_string(repo.join(".git/config")).unwrap();
        assert!(!stored.contains("extraheader"), "{stored}");
        let without = Git::new(dir.path().join("scratch"), "https://github.com");
        let err = without
            .run(
                &repo,
                "u",
                "c",
                "read config",
                &["config", "--get", "http.extraheader"],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
    }
}
