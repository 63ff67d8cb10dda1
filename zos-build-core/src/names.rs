//! Names that come from outside (webhooks, the API, configuration), checked
//! once where they enter and carried as types from then on.
//!
//! A repository name ends up in URLs, paths and container labels, and a
//! commit in git's argument list: both are checked by exactly one function
//! each, here, so no caller can forget a check or make its own weaker one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name from outside that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not `owner/name` of GitHub's name characters.
    #[error("repository {0:?} is not owner/name")]
    Repository(String),
    /// Not 40 hexadecimal digits.
    #[error("commit {0:?} is not 40 hexadecimal digits")]
    Commit(String),
}

/// `owner/name`, each part made of letters, digits, `-`, `_` and `.`, and
/// neither `.` nor `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<RepositoryName, NameError> {
        let mut parts = name.split('/');
        let part_ok = |p: Option<&str>| {
            p.is_some_and(|p| {
                !p.is_empty()
                    && p != "."
                    && p != ".."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
        };
        if part_ok(parts.next()) && part_ok(parts.next()) && parts.next().is_none() {
            Ok(RepositoryName(name.to_string()))
        } else {
            Err(NameError::Repository(name.to_string()))
        }
    }

    /// The whole name, `owner/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `/`: the directory a checkout goes to.
    pub fn short_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// A full git commit id: 40 hexadecimal digits, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// Checks `commit` (either case).
    pub fn parse(commit: &str) -> Result<CommitId, NameError> {
        if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CommitId(commit.to_ascii_lowercase()))
        } else {
            Err(NameError::Commit(commit.to_string()))
        }
    }

    /// The 40 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first ten digits, as artifact and kernel names use them.
    pub fn short(&self) -> &str {
        &self.0[..10]
    }
}

macro_rules! text_type {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                $name::parse(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(text: String) -> Result<Self, NameError> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

text_type!(RepositoryName);
text_type!(CommitId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_owner_slash_name() {
        for good in ["acme/widget", "threefoldtech/0-initramfs", "a.b/c_d-e"] {
            let name = RepositoryName::parse(good).unwrap();
            assert_eq!(name.as_str(), good);
        }
        assert_eq!(
            RepositoryName::parse("acme/widget").unwrap().short_name(),
            "widget"
        );
        for bad in [
            "", "acme", "acme/", "/x", "a/b/c", "../x", "a/..", "a/b c", "a/b;c",
        ] {
            let err = RepositoryName::parse(bad).unwrap_err();
            assert_eq!(err, NameError::Repository(bad.to_string()));
        }
        assert_eq!(
            RepositoryName::parse("x").unwrap_err().to_string(),
            "repository \"x\" is not owner/name"
        );
    }

    #[test]
    fn commits_are_40_hex_digits_in_lower_case() {
        let commit = CommitId::parse(&"AB".repeat(20)).unwrap();
        assert_eq!(commit.as_str(), "ab".repeat(20));
        assert_eq!(commit.short(), "ababababab");
        for bad in [
            "",
            "abc",
            &"g".repeat(40),
            &"a".repeat(41),
            "--upload-pack=x",
        ] {
            assert!(CommitId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CommitId::parse("abc").unwrap_err().to_string(),
            "commit \"abc\" is not 40 hexadecimal digits"
        );
    }

    #[test]
    fn names_are_checked_when_deserialized() {
        let ok: CommitId = serde_json::from_str(&format!("\"{}\"", "a".repeat(40))).unwrap();
        assert_eq!(ok.as_str().len(), 40);
        let err = serde_json::from_str::<RepositoryName>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("is not owner/name"), "{err}");
    }
}
