//! The catalog: every tracked (repository, branch) of a configuration
//! repository, with its builds, and a report for every branch file.
//!
//! Loading never fails because of a file's content: a broken file becomes a
//! rejected [`BranchReport`] and every other branch stays tracked. Only a root
//! directory that cannot be read at all is a [`LoadError`]. Everything is
//! sorted by file path, so two loads of the same tree compare equal and
//! print the same report.
//!
//! Loading is blocking file I/O: async callers run it on a blocking thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::branch_file::{parse_branch_bytes, too_large, BranchFile, MAX_FILE_SIZE};
use crate::build_script::BuildScript;
use crate::layout::{self, Found};
use crate::problem::{Problem, Severity};

/// The configuration directory itself could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The path does not exist.
    #[error("configuration directory {} does not exist", path.display())]
    NotFound {
        /// The path given to [`Catalog::load`].
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given to [`Catalog::load`].
        path: PathBuf,
    },
    /// Any other I/O failure on the root directory.
    #[error("cannot read configuration directory {}: {source}", path.display())]
    Io {
        /// The path given to [`Catalog::load`].
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A tracked branch: a valid branch file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Branch {
    /// `org/repo`.
    pub repository: String,
    /// The branch name; may hold `/` (`release/v1`).
    pub name: String,
    /// The branch file, relative to the configuration directory.
    pub file: String,
    /// The builds a push on this branch starts, in `buildscripts` order.
    pub builds: Vec<BuildScript>,
}

/// The outcome of one branch file, valid or not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchReport {
    /// Relative to the configuration directory, `/`-separated.
    pub file: String,
    /// `org/repo`.
    pub repository: String,
    /// The branch the file names.
    pub branch: String,
    /// The builds, in `buildscripts` order; empty when the file is rejected.
    pub builds: Vec<BuildScript>,
    /// Errors and warnings, in file order.
    pub problems: Vec<Problem>,
}

impl BranchReport {
    /// Whether the file has no error: its branch is tracked.
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }

    /// The errors, in file order.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        crate::problem::of_severity(&self.problems, Severity::Error)
    }

    /// The warnings, in file order.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        crate::problem::of_severity(&self.problems, Severity::Warning)
    }
}

/// Every tracked branch of a configuration repository, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    reports: Vec<BranchReport>,
    branches: Vec<Branch>,
    /// (repository, branch) → index into `branches`.
    index: BTreeMap<(String, String), usize>,
    layout_problems: Vec<Problem>,
}

impl Catalog {
    /// Load the configuration repository checked out at `dir`.
    ///
    /// Errs only when `dir` itself cannot be read (missing, not a directory,
    /// no permission). Problems of the files below it are in the catalog.
    pub fn load(dir: impl AsRef<Path>) -> Result<Catalog, LoadError> {
        let layout = layout::walk(dir.as_ref())?;
        let reports = layout.found.into_iter().map(read_branch_file).collect();
        Ok(Catalog::from_reports(reports, layout.problems))
    }

    /// Build a catalog from reports (sorted by file), marking a second file
    /// for the same branch (`master.yaml` and `master.yml`) as an error.
    fn from_reports(mut reports: Vec<BranchReport>, layout_problems: Vec<Problem>) -> Catalog {
        let mut branches = Vec::new();
        let mut index = BTreeMap::new();
        let mut first_file: BTreeMap<(String, String), String> = BTreeMap::new();
        for report in &mut reports {
            let key = (report.repository.clone(), report.branch.clone());
            if let Some(first) = first_file.get(&key) {
                report.problems.insert(
                    0,
                    Problem::new(
                        Severity::Error,
                        report.file.clone(),
                        None,
                        format!(
                            "branch '{}' of '{}' is already defined by {first}",
                            report.branch, report.repository
                        ),
                    ),
                );
                report.builds.clear();
                continue;
            }
            first_file.insert(key.clone(), report.file.clone());
            if report.is_valid() {
                index.insert(key, branches.len());
                branches.push(Branch {
                    repository: report.repository.clone(),
                    name: report.branch.clone(),
                    file: report.file.clone(),
                    builds: report.builds.clone(),
                });
            }
        }
        Catalog {
            reports,
            branches,
            index,
            layout_problems,
        }
    }

    /// The tracked branch `branch` of `repository` (`org/repo`), if its file is valid.
    pub fn get(&self, repository: &str, branch: &str) -> Option<&Branch> {
        self.index
            .get(&(repository.to_string(), branch.to_string()))
            .and_then(|&i| self.branches.get(i))
    }

    /// Whether any branch of `repository` (`org/repo`) is tracked.
    pub fn has_repository(&self, repository: &str) -> bool {
        self.branches.iter().any(|b| b.repository == repository)
    }

    /// The tracked branches, sorted by file path.
    pub fn branches(&self) -> impl Iterator<Item = &Branch> {
        self.branches.iter()
    }

    /// One report per branch file, valid or not, sorted by file path.
    pub fn reports(&self) -> &[BranchReport] {
        &self.reports
    }

    /// Problems that belong to no branch file: a `.yaml` outside
    /// `<org>/<repo>/`, a symbolic link not followed, an unreadable directory.
    pub fn layout_problems(&self) -> &[Problem] {
        &self.layout_problems
    }

    /// Every problem, of the layout and of the branch files, sorted by file
    /// path, then by position within a file.
    pub fn problems(&self) -> Vec<&Problem> {
        let mut all: Vec<&Problem> = self
            .layout_problems
            .iter()
            .chain(self.reports.iter().flat_map(|r| r.problems.iter()))
            .collect();
        // Stable: within one file, problems keep their file order.
        all.sort_by(|a, b| a.file.cmp(&b.file));
        all
    }

    /// Whether any problem is an error (some branch file is rejected, or a
    /// directory could not be read).
    pub fn has_errors(&self) -> bool {
        self.layout_problems.iter().any(Problem::is_error)
            || self.reports.iter().any(|r| !r.is_valid())
    }
}

/// Read and check one branch file found by the walk.
fn read_branch_file(found: Found) -> BranchReport {
    let parsed = match read_bounded(&found.path) {
        Ok(Content::Bytes(bytes)) => parse_branch_bytes(&bytes, &found.file),
        Ok(Content::TooLarge(size)) => rejected(&found.file, too_large(size)),
        Err(e) => rejected(&found.file, format!("cannot read file: {e}")),
    };
    BranchReport {
        file: found.file,
        repository: found.repository,
        branch: found.branch,
        builds: parsed.builds,
        problems: parsed.problems,
    }
}

fn rejected(file: &str, message: String) -> BranchFile {
    BranchFile {
        file: file.to_string(),
        builds: Vec::new(),
        problems: vec![Problem::new(Severity::Error, file, None, message)],
    }
}

enum Content {
    Bytes(Vec<u8>),
    TooLarge(u64),
}

/// Read a file unless it is larger than [`MAX_FILE_SIZE`]; never read more
/// than one byte past the limit, even from a file that grows meanwhile.
fn read_bounded(path: &Path) -> std::io::Result<Content> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > MAX_FILE_SIZE as u64 {
        return Ok(Content::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_FILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(Content::Bytes(bytes))
}
