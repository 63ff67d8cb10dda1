//! The catalog of tracked branches, as the running server holds it.
//!
//! The catalog sits behind a lock holding an `Arc`, so a reload swaps it in
//! one step and a request in flight keeps the catalog it started with. The
//! lock is shared by the handlers, the reloader (which replaces it) and the
//! scheduler (which looks a build script's archive and artifact up when the
//! build starts).
//!
//! A branch file is looked up by the whole name of the pushed ref, whether
//! the ref is a branch or a tag ([`RefKind`]): a push of `refs/tags/v1.0`
//! builds the branch file `<org>/<repo>/v1.0.yaml`, as a push of
//! `refs/heads/v1.0` would, and `refs/tags/release/1.0` builds
//! `release/1.0.yaml`. The build's branch is then the tag's name, so its
//! artifact and "latest" link carry it. The old service also looked tags up
//! as branch files, by the ref's basename; the whole name keeps one ref to
//! one file (`docs/configuration-repository.md`, "Tags").

use std::sync::{Arc, PoisonError, RwLock};
use zos_flist_config::Catalog;

/// What a pushed ref names, and so how a branch file is found for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// `refs/heads/<name>`: the branch file `<name>.yaml`.
    Branch,
    /// `refs/tags/<name>`: the branch file `<name>.yaml` too.
    Tag,
}

impl RefKind {
    /// `branch` or `tag`, as answers and logs say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }

    /// The full ref of `name`: `refs/heads/<name>` or `refs/tags/<name>`.
    pub fn git_ref(self, name: &str) -> String {
        match self {
            RefKind::Branch => format!("refs/heads/{name}"),
            RefKind::Tag => format!("refs/tags/{name}"),
        }
    }
}

impl std::fmt::Display for RefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current catalog, shared by the handlers and the scheduler.
#[derive(Debug, Clone, Default)]
pub struct SharedCatalog {
    inner: Arc<RwLock<Option<Arc<Catalog>>>>,
}

impl SharedCatalog {
    /// A shared catalog holding `catalog` (None: nothing is tracked).
    pub fn new(catalog: Option<Catalog>) -> SharedCatalog {
        SharedCatalog {
            inner: Arc::new(RwLock::new(catalog.map(Arc::new))),
        }
    }

    /// The catalog now; None when no configuration repository is loaded.
    pub fn get(&self) -> Option<Arc<Catalog>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the catalog.
    pub fn set(&self, catalog: Catalog) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(catalog));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_names_its_refs() {
        assert_eq!(
            RefKind::Branch.git_ref("release/v1"),
            "refs/heads/release/v1"
        );
        assert_eq!(RefKind::Tag.git_ref("release/1.0"), "refs/tags/release/1.0");
        assert_eq!(RefKind::Branch.to_string(), "branch");
        assert_eq!(RefKind::Tag.as_str(), "tag");
    }
}
