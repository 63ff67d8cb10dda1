//! The part of a GitHub `push` event the server needs, checked.
//!
//! Only these fields are read; everything else in the (large) payload is
//! ignored. A missing or mistyped field is an error naming it, so a sender
//! learns what to fix from the 400 answer.

use serde::Deserialize;
use zos_build_core::{CommitId, RepositoryName};

/// A push event, reduced to what a build needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// `owner/repo` (`repository.full_name`).
    pub repository: RepositoryName,
    /// The branch (`ref` without `refs/heads/`); None for a tag or other ref.
    pub branch: Option<String>,
    /// The full ref.
    pub git_ref: String,
    /// The commit to build: `head_commit.id`, else `after`; None when the
    /// push deleted the ref.
    pub commit: Option<CommitId>,
    /// Whether the push deleted the ref.
    pub deleted: bool,
    /// The `commits` array as received (for the status page).
    pub commits: serde_json::Value,
}

#[derive(Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    repository: Option<RawRepository>,
    head_commit: Option<RawCommit>,
    #[serde(default)]
    commits: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct RawCommit {
    id: Option<String>,
}

/// Parses a push payload; the error says what is missing or malformed.
pub fn parse(body: &[u8]) -> Result<Push, String> {
    let raw: RawPush =
        serde_json::from_slice(body).map_err(|e| format!("malformed JSON body: {e}"))?;
    let repository = raw
        .repository
        .and_then(|r| r.full_name)
        .ok_or("missing field repository.full_name")?;
    let repository = RepositoryName::parse(&repository)
        .map_err(|_| format!("repository.full_name {repository:?} is not owner/name"))?;
    let git_ref = raw.git_ref.ok_or("missing field ref")?;
    let branch = git_ref.strip_prefix("refs/heads/").map(str::to_string);
    let commits = raw
        .commits
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    if raw.deleted {
        return Ok(Push {
            repository,
            branch,
            git_ref,
            commit: None,
            deleted: true,
            commits,
        });
    }
    let commit = raw
        .head_commit
        .and_then(|c| c.id)
        .or(raw.after)
        .ok_or("missing field head_commit.id (or after)")?;
    let commit = CommitId::parse(&commit).map_err(|e| e.to_string())?;
    Ok(Push {
        repository,
        branch,
        git_ref,
        commit: Some(commit),
        deleted: false,
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn reads_the_fields_a_build_needs() {
        let body = serde_json::json!({
            "ref": "refs/heads/release/v1",
            "after": "ffffffffffffffffffffffffffffffffffffffff",
            "repository": {"full_name": "owner/repo", "name": "repo"},
            "head_commit": {"id": SHA},
            "commits": [{"id": SHA, "message": "<b>hi</b>"}],
        });
        let push = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(push.repository.as_str(), "owner/repo");
        assert_eq!(push.branch.as_deref(), Some("release/v1"));
        assert_eq!(
            push.commit.as_ref().map(CommitId::as_str),
            Some(SHA),
            "head_commit wins over after"
        );
        assert_eq!(push.commits[0]["message"], "<b>hi</b>");
    }

    #[test]
    fn names_what_is_missing() {
        let cases = [
            (
                serde_json::json!({"ref": "refs/heads/m", "after": SHA}),
                "repository.full_name",
            ),
            (
                serde_json::json!({"repository": {"full_name": "o/r"}, "after": SHA}),
                "ref",
            ),
            (
                serde_json::json!({"repository": {"full_name": "o/r"}, "ref": "refs/heads/m"}),
                "head_commit.id",
            ),
            (
                serde_json::json!({"repository": {"full_name": "o/r"}, "ref": "refs/heads/m", "after": "12"}),
                "40 hexadecimal",
            ),
            (
                serde_json::json!({"repository": {"full_name": "../x"}, "ref": "refs/heads/m", "after": SHA}),
                "owner/name",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
        assert!(parse(b"{not json").unwrap_err().contains("malformed JSON"));
    }

    #[test]
    fn a_deleted_branch_needs_no_commit() {
        let body = serde_json::json!({
            "ref": "refs/heads/gone", "deleted": true,
            "after": "0000000000000000000000000000000000000000",
            "repository": {"full_name": "o/r"}, "head_commit": null,
        });
        let push = parse(body.to_string().as_bytes()).unwrap();
        assert!(push.deleted);
        assert_eq!(push.commit, None);
    }
}
