//! Which build a command means: a build id, a branch (`OWNER/REPO/BRANCH`,
//! its newest build) or `latest` (the newest build of all).
//!
//! Parsing is local and strict, so a typo is a usage error (exit 2) before
//! anything is asked of the server. Resolving asks `/api/builds` for the
//! newest build of the name and checks the answer: a server that ignored the
//! `name` filter must not make the client follow someone else's build.

use crate::api::{ApiError, Server};
use crate::builds::Build;

/// A build as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildRef {
    /// A build id, as the server gives them.
    Id(String),
    /// `OWNER/REPO/BRANCH` (the branch may hold `/` itself).
    Branch(String),
    /// The newest build of all.
    Latest,
}

/// Why a build reference was not understood or found.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// Not a build id, a branch or `latest`.
    #[error("{0:?} is neither a build id, OWNER/REPO/BRANCH nor `latest`")]
    Invalid(String),
    /// No build matches.
    #[error("the server at {server} has no build {what}")]
    NoBuild {
        /// The server's URL.
        server: String,
        /// `of OWNER/REPO/BRANCH` or `at all`.
        what: String,
    },
    /// The server could not be asked.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl BuildRef {
    /// Reads a reference: `latest`, a name with two `/` or more, or an id
    /// (ASCII letters, digits, `-` and `_`).
    pub fn parse(text: &str) -> Result<BuildRef, RefError> {
        let invalid = || RefError::Invalid(text.to_string());
        if text == "latest" {
            return Ok(BuildRef::Latest);
        }
        if text.contains('/') {
            let parts: Vec<&str> = text.split('/').collect();
            let fine = parts.len() >= 3
                && parts.iter().all(|p| {
                    !p.is_empty() && *p != "." && *p != ".." && !p.contains(char::is_whitespace)
                });
            return if fine {
                Ok(BuildRef::Branch(text.to_string()))
            } else {
                Err(invalid())
            };
        }
        let fine = !text.is_empty()
            && text.len() <= 128
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if fine {
            Ok(BuildRef::Id(text.to_string()))
        } else {
            Err(invalid())
        }
    }

    /// Asks the server which build this is.
    pub async fn resolve(&self, server: &Server) -> Result<Build, RefError> {
        match self {
            BuildRef::Id(id) => Ok(server.build(id).await?),
            BuildRef::Branch(name) => {
                let builds = server.builds(Some(name), Some(1)).await?;
                pick_newest(builds, self).ok_or_else(|| RefError::NoBuild {
                    server: server.url().to_string(),
                    what: format!("of {name}"),
                })
            }
            BuildRef::Latest => {
                let builds = server.builds(None, Some(1)).await?;
                pick_newest(builds, self).ok_or_else(|| RefError::NoBuild {
                    server: server.url().to_string(),
                    what: "at all".to_string(),
                })
            }
        }
    }
}

/// The build `reference` means among `builds` (newest first, as
/// `/api/builds` sends them): the first whose name matches a branch
/// reference, the first of all for `latest`, the one with the id for an id.
pub fn pick_newest(builds: Vec<Build>, reference: &BuildRef) -> Option<Build> {
    builds.into_iter().find(|build| match reference {
        BuildRef::Id(id) => &build.id == id,
        BuildRef::Branch(name) => &build.name == name,
        BuildRef::Latest => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_parsed_strictly() {
        assert_eq!(BuildRef::parse("latest").ok(), Some(BuildRef::Latest));
        assert_eq!(
            BuildRef::parse("3f2a-91bc").ok(),
            Some(BuildRef::Id("3f2a-91bc".into()))
        );
        assert_eq!(
            BuildRef::parse("acme/widget/master").ok(),
            Some(BuildRef::Branch("acme/widget/master".into()))
        );
        assert_eq!(
            BuildRef::parse("acme/widget/feature/x").ok(),
            Some(BuildRef::Branch("acme/widget/feature/x".into()))
        );
        for bad in [
            "",
            "acme/widget",
            "acme//master",
            "acme/widget/",
            "acme/../master",
            "a b",
            "id?x=1",
            "acme/wid get/master",
        ] {
            let error = BuildRef::parse(bad).expect_err(bad);
            assert!(matches!(error, RefError::Invalid(_)), "{bad}: {error}");
        }
    }

    fn stub() -> Vec<Build> {
        serde_json::from_value(json!([
            {"id": "c3", "status": "building", "name": "acme/widget/master"},
            {"id": "b2", "status": "success", "name": "acme/gadget/master"},
            {"id": "a1", "status": "error", "name": "acme/widget/master"},
        ]))
        .expect("stub reads")
    }

    #[test]
    fn the_newest_build_of_the_name_is_chosen() {
        let branch = BuildRef::Branch("acme/gadget/master".into());
        assert_eq!(
            pick_newest(stub(), &branch).map(|b| b.id).as_deref(),
            Some("b2")
        );
        let widget = BuildRef::Branch("acme/widget/master".into());
        assert_eq!(
            pick_newest(stub(), &widget).map(|b| b.id).as_deref(),
            Some("c3")
        );
        assert_eq!(
            pick_newest(stub(), &BuildRef::Latest)
                .map(|b| b.id)
                .as_deref(),
            Some("c3")
        );
    }

    #[test]
    fn a_server_ignoring_the_filter_does_not_pick_another_branch() {
        let other = BuildRef::Branch("acme/other/master".into());
        assert!(pick_newest(stub(), &other).is_none());
        assert!(pick_newest(Vec::new(), &BuildRef::Latest).is_none());
    }
}
