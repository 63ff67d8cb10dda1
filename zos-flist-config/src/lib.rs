//! The flist configuration repository: which (repository, branch) pairs
//! zos-build tracks, and which build scripts a push on each one runs.
//!
//! A configuration repository is a directory tree
//! `<org>/<repo>/<branch>.yaml`; each file lists build scripts and, per
//! script, the artifact it produces and where (see
//! `docs/configuration-repository.md` for the format).
//!
//! Why a crate of its own: the server loads the catalog on every push to the
//! configuration repository, and `zos-build-client config check` runs the
//! very same rules in the configuration repository's own CI, so that a
//! broken file is caught before it is pushed. The old service crashed on a
//! YAML typo and silently skipped a script whose settings were misspelt;
//! here a bad file only rejects its own branch, and every problem is
//! reported with its file, line and column.
//!
//! - [`Catalog::load`] walks a directory into a [`Catalog`]: tracked
//!   [`Branch`]es to look up or iterate, a [`BranchReport`] per file, and the
//!   [`Problem`]s found.
//! - [`parse_branch_file`] checks one file's text on its own.
//!
//! Input is untrusted: nothing here panics on it, and YAML nesting depth and
//! alias expansion are bounded ([`MAX_YAML_DEPTH`]; [`MAX_YAML_COPIED_NODES`]
//! nodes and [`yaml_expansion_budget`] bytes of copied text, which is
//! [`YAML_EXPANSION_FACTOR`] × the file's size and at least
//! [`MIN_YAML_EXPANSION_BUDGET`]), as is the size of a file
//! ([`MAX_FILE_SIZE`]).

mod branch_file;
mod build_script;
mod catalog;
mod layout;
mod problem;
mod suggest;
mod yaml;

pub use branch_file::{parse_branch_bytes, parse_branch_file, BranchFile, MAX_FILE_SIZE};
pub use build_script::{BuildScript, Format, DEFAULT_ARCHIVES, DEFAULT_BASEIMAGE};
pub use catalog::{Branch, BranchReport, Catalog, LoadError};
pub use problem::{Problem, Severity};
pub use yaml::{
    expansion_budget as yaml_expansion_budget, EXPANSION_FACTOR as YAML_EXPANSION_FACTOR,
    MAX_COPIED_NODES as MAX_YAML_COPIED_NODES, MAX_DEPTH as MAX_YAML_DEPTH,
    MIN_EXPANSION_BUDGET as MIN_YAML_EXPANSION_BUDGET,
};
