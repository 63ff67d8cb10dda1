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
//! fails instead of hanging.

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

/// Fetches `commit` of `url` into `dest` (created; must not exist or be
/// empty) and checks it out detached. `dest` keeps a shallow `.git`.
pub async fn fetch_commit(url: &str, commit: &str, dest: &Path) -> Result<(), GitError> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::InvalidCommit(commit.to_string()));
    }
    let commit = commit.to_ascii_lowercase();
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(|source| GitError::Directory {
            path: dest.to_path_buf(),
            source,
        })?;
    run_git(dest, url, &commit, "init", &["init", "-q"]).await?;
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
    run_git(dest, url, &commit, "fetch", &fetch).await?;
    let checkout = [
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        "--detach",
        "FETCH_HEAD",
    ];
    run_git(dest, url, &commit, "checkout", &checkout).await?;
    let head = run_git(dest, url, &commit, "rev-parse", &["rev-parse", "HEAD"]).await?;
    if head != commit {
        return Err(GitError::WrongCommit {
            url: url.to_string(),
            commit,
            found: head,
        });
    }
    Ok(())
}

/// The commit `reference` (`HEAD`, the default branch, or
/// `refs/heads/<branch>`) of `url` points to now.
pub async fn resolve(url: &str, reference: &str) -> Result<String, GitError> {
    let dir = std::env::temp_dir();
    let args = ["ls-remote", "--", url, reference];
    let listing = run_git(&dir, url, reference, "ls-remote", &args).await?;
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(_, name)| *name == reference)
        .map(|(commit, _)| commit.to_string())
        .filter(|commit| commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| GitError::NoSuchRef {
            url: url.to_string(),
            reference: reference.to_string(),
        })
}

/// The default branch of `url` (what `HEAD` points to) and its commit.
pub async fn default_branch(url: &str) -> Result<(String, String), GitError> {
    let dir = std::env::temp_dir();
    let args = ["ls-remote", "--symref", "--", url, "HEAD"];
    let listing = run_git(&dir, url, "HEAD", "ls-remote", &args).await?;
    let no_head = || GitError::NoSuchRef {
        url: url.to_string(),
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
        .filter(|commit| commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(no_head)?;
    Ok((branch, commit))
}

/// Runs `git -C dest args...`, returning its trimmed stdout.
async fn run_git(
    dest: &Path,
    url: &str,
    commit: &str,
    step: &'static str,
    args: &[&str],
) -> Result<String, GitError> {
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dest)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    Err(GitError::Failed {
        step,
        url: url.to_string(),
        commit: commit.to_string(),
        stderr: lines[lines.len().saturating_sub(5)..].join(" / "),
    })
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
        fetch_commit(&url, &first, &dest).await.unwrap();
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
        assert_eq!(resolve(&url, "refs/heads/master").await.unwrap(), second);
        assert_eq!(resolve(&url, "HEAD").await.unwrap(), second);
        assert_eq!(
            default_branch(&url).await.unwrap(),
            ("master".to_string(), second.clone())
        );
        let err = resolve(&url, "refs/heads/nope").await.unwrap_err();
        assert!(matches!(err, GitError::NoSuchRef { .. }), "{err}");
        assert!(err.to_string().contains("refs/heads/nope"), "{err}");
    }

    #[tokio::test]
    async fn refuses_bad_input_and_names_the_failing_step() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("git");
        two_commits(&base);
        let url = repository_url(&format!("file://{}", base.display()), "owner/repo");
        let err = fetch_commit(&url, "--upload-pack=touch /tmp/x", &dir.path().join("a"))
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::InvalidCommit(_)), "{err}");
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = fetch_commit(&url, missing, &dir.path().join("b"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GitError::Failed { step: "fetch", .. }),
            "{err}"
        );
        assert!(err.to_string().contains(missing), "{err}");
        // A URL that looks like an option is passed after `--`: it is a
        // (missing) repository to git, never an option.
        let err = fetch_commit("--upload-pack=touch", missing, &dir.path().join("c"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GitError::Failed { step: "fetch", .. }),
            "{err}"
        );
    }
}
