//! The part of a GitHub `push` event the server needs, checked.
//!
//! Only these fields are read; everything else in the (large) payload is
//! ignored. A missing or mistyped field is an error naming it, so a sender
//! learns what to fix from the 400 answer.
//!
//! A push updates a branch (`refs/heads/<b>`), a tag (`refs/tags/<t>`) or
//! some other ref (`refs/pull/...`, `refs/notes/...`). The name is kept whole
//! after the prefix (`refs/tags/release/1.0` is tag `release/1.0`), because
//! that is how the configuration repository names branch files
//! (`<org>/<repo>/release/1.0.yaml`). The old service looked the ref's
//! basename up instead (`1.0`), which let a branch and a tag, or two tags
//! `a/1.0` and `b/1.0`, build under one file; ours matches one ref to one
//! file.
//!
//! The commit to build is `head_commit.id`. For a branch, `after` is the
//! same commit and is accepted when `head_commit` is missing. For a tag it
//! is not: the `after` of an annotated tag is the id of the tag object, not
//! of a commit, so a tag push must carry `head_commit.id` (GitHub always
//! sends it when a tag is created or moved).

pub use crate::catalog::RefKind;
use serde::Deserialize;
use zos_build_core::{CommitId, RepositoryName};

/// A push event, reduced to what a build needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// `owner/repo` (`repository.full_name`).
    pub repository: RepositoryName,
    /// The branch (`ref` without `refs/heads/`); None for a tag or other ref.
    pub branch: Option<String>,
    /// The tag (`ref` without `refs/tags/`, whole: `release/1.0`); None for
    /// a branch or other ref.
    pub tag: Option<String>,
    /// The full ref.
    pub git_ref: String,
    /// The commit to build: `head_commit.id`, else (not for a tag) `after`;
    /// None when the push deleted the ref.
    pub commit: Option<CommitId>,
    /// Whether the push deleted the ref.
    pub deleted: bool,
    /// The `commits` array as received (for the status page).
    pub commits: serde_json::Value,
}

impl Push {
    /// The branch or tag the push updated, with its kind; None for any
    /// other ref.
    pub fn target(&self) -> Option<(RefKind, &str)> {
        match (&self.branch, &self.tag) {
            (Some(branch), _) => Some((RefKind::Branch, branch)),
            (None, Some(tag)) => Some((RefKind::Tag, tag)),
            (None, None) => None,
        }
    }
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
    let tag = git_ref.strip_prefix("refs/tags/").map(str::to_string);
    let commits = raw
        .commits
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    if raw.deleted {
        return Ok(Push {
            repository,
            branch,
            tag,
            git_ref,
            commit: None,
            deleted: true,
            commits,
        });
    }
    let head_commit = raw.head_commit.and_then(|c| c.id);
    let commit = match (head_commit, &tag) {
        (Some(commit), _) => commit,
        (None, Some(_)) => {
            return Err(
                "missing field head_commit.id: a tag push must name its commit there \
                        (its after is the tag object's id when the tag is annotated)"
                    .to_string(),
            )
        }
        (None, None) => raw.after.ok_or("missing field head_commit.id (or after)")?,
    };
    let commit = CommitId::parse(&commit).map_err(|e| e.to_string())?;
    Ok(Push {
        repository,
        branch,
        tag,
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

    const TAG_OBJECT: &str = "fedcba9876543210fedcba9876543210fedcba98";

    #[test]
    fn a_tag_push_names_the_tag_and_builds_the_tagged_commit() {
        // An annotated tag, as GitHub sends it: `after` is the tag object,
        // `head_commit` the commit it points to.
        let body = serde_json::json!({
            "ref": "refs/tags/v1.0",
            "after": TAG_OBJECT,
            "base_ref": "refs/heads/master",
            "repository": {"full_name": "owner/repo"},
            "head_commit": {"id": SHA},
            "commits": [],
        });
        let push = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(push.branch, None);
        assert_eq!(push.tag.as_deref(), Some("v1.0"));
        assert_eq!(push.target(), Some((RefKind::Tag, "v1.0")));
        assert_eq!(
            push.commit.as_ref().map(CommitId::as_str),
            Some(SHA),
            "the commit, not the tag object"
        );
        assert!(!push.deleted);
    }

    #[test]
    fn names_are_kept_whole_after_the_prefix() {
        let cases = [
            (
                "refs/heads/release/v1",
                Some((RefKind::Branch, "release/v1")),
            ),
            ("refs/tags/release/1.0", Some((RefKind::Tag, "release/1.0"))),
            ("refs/tags/v1.0", Some((RefKind::Tag, "v1.0"))),
            ("refs/pull/7/head", None),
            ("refs/notes/commits", None),
            ("refs/tagsv1.0", None),
            ("v1.0", None),
        ];
        for (git_ref, expected) in cases {
            let body = serde_json::json!({
                "ref": git_ref, "after": SHA,
                "repository": {"full_name": "o/r"}, "head_commit": {"id": SHA},
            });
            let push = parse(body.to_string().as_bytes()).unwrap();
            assert_eq!(push.target(), expected, "{git_ref}");
            assert_eq!(push.git_ref, git_ref);
            assert_eq!(
                push.branch.as_deref(),
                git_ref.strip_prefix("refs/heads/"),
                "{git_ref}"
            );
        }
    }

    #[test]
    fn a_tag_push_needs_head_commit_not_after() {
        // `after` alone could be an annotated tag's object, which is no
        // commit to fetch: refused, naming the field.
        let body = serde_json::json!({
            "ref": "refs/tags/v1.0", "after": TAG_OBJECT,
            "repository": {"full_name": "o/r"}, "head_commit": null,
        });
        let err = parse(body.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("head_commit.id"), "{err}");
        assert!(err.contains("tag"), "{err}");
        // A branch still falls back to `after`.
        let body = serde_json::json!({
            "ref": "refs/heads/v1.0", "after": SHA,
            "repository": {"full_name": "o/r"},
        });
        let push = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(push.commit.as_ref().map(CommitId::as_str), Some(SHA));
    }

    #[test]
    fn a_deleted_tag_needs_no_commit() {
        // GitHub's payload for a deleted tag (octokit's example): no
        // head_commit, `after` all zeros.
        let body = serde_json::json!({
            "ref": "refs/tags/simple-tag",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0000000000000000000000000000000000000000",
            "created": false, "deleted": true, "forced": false,
            "base_ref": null, "commits": [], "head_commit": null,
            "repository": {"full_name": "Codertocat/Hello-World"},
        });
        let push = parse(body.to_string().as_bytes()).unwrap();
        assert!(push.deleted);
        assert_eq!(push.commit, None);
        assert_eq!(push.target(), Some((RefKind::Tag, "simple-tag")));
    }
}
