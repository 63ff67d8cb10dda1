//! Finding the branch files of a configuration repository.
//!
//! The directory layout is the index: `<org>/<repo>/<branch>.yaml` (or
//! `.yml`), where everything below `<org>/<repo>/` names the branch, so
//! `<org>/<repo>/release/v1.yaml` is branch `release/v1`. This module only
//! walks the tree and names what it finds; the catalog reads the files.
//!
//! What is skipped, and why:
//! - hidden entries (`.git`, `.github`, …): tooling, and git forbids branch
//!   names whose components start with `.`;
//! - files other than `.yaml`/`.yml` (a README): they are not configuration;
//! - `.yaml` files at the root or directly under `<org>/`: they name no
//!   branch, so they get a warning (probably a file in the wrong place);
//! - symbolic links that leave the directory, broken links and links to
//!   directories: with a warning. A link to a file inside the directory is
//!   followed (one branch sharing another's settings); links to directories
//!   are not, since they can loop and give one file several branch names;
//! - anything that is not a regular file (a FIFO would block the reader);
//! - directories more than 32 levels deep, with a warning.

use std::fs;
use std::path::{Path, PathBuf};

use crate::catalog::LoadError;
use crate::problem::{Problem, Severity};

/// A branch file found by the walk, not read yet.
#[derive(Debug)]
pub(crate) struct Found {
    /// Where to read it.
    pub path: PathBuf,
    /// Relative to the root, `/`-separated.
    pub file: String,
    /// `org/repo`.
    pub repository: String,
    /// Everything below `org/repo/`, without the extension.
    pub branch: String,
}

/// What the walk found: branch files, and problems of the layout itself.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub found: Vec<Found>,
    pub problems: Vec<Problem>,
}

/// Walk `root`. Only a failure to read `root` itself is an `Err`; anything
/// below it becomes a problem in the layout.
pub(crate) fn walk(root: &Path) -> Result<Layout, LoadError> {
    let metadata = fs::metadata(root).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound {
                path: root.to_path_buf(),
            }
        } else {
            LoadError::Io {
                path: root.to_path_buf(),
                source,
            }
        }
    })?;
    if !metadata.is_dir() {
        return Err(LoadError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let canonical_root = fs::canonicalize(root).map_err(|source| LoadError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    // Read the root now, so that an unreadable root is an `Err`, not a problem.
    let entries = fs::read_dir(root).map_err(|source| LoadError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut walker = Walker {
        canonical_root,
        layout: Layout::default(),
    };
    walker.directory(entries, &[]);
    walker.layout.found.sort_by(|a, b| a.file.cmp(&b.file));
    walker.layout.problems.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(walker.layout)
}

/// Deepest directory walked below the root: `<org>/<repo>/` and 30 levels
/// of branch name. It keeps the walk's recursion and open directories bounded
/// on a hostile tree; no real branch name comes near it.
const MAX_DIRECTORY_DEPTH: usize = 32;

struct Walker {
    canonical_root: PathBuf,
    layout: Layout,
}

enum Kind {
    Directory,
    File,
}

impl Walker {
    fn warning(&mut self, file: String, message: impl Into<String>) {
        self.layout
            .problems
            .push(Problem::new(Severity::Warning, file, None, message));
    }

    fn error(&mut self, file: String, message: impl Into<String>) {
        self.layout
            .problems
            .push(Problem::new(Severity::Error, file, None, message));
    }

    /// Walk one directory; `components` are its names below the root.
    fn directory(&mut self, entries: fs::ReadDir, components: &[String]) {
        let here = components.join("/");
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let label = if here.is_empty() { "." } else { &here };
                    self.error(label.to_string(), format!("cannot read directory: {e}"));
                    continue;
                }
            };
            let Ok(name) = entry.file_name().into_string() else {
                let name = entry.file_name().to_string_lossy().into_owned();
                self.warning(
                    join(&here, &name),
                    "name is not valid UTF-8; skipped".to_string(),
                );
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let file = join(&here, &name);
            let Some(kind) = self.kind(&entry, &file) else {
                continue;
            };
            let mut inner = components.to_vec();
            inner.push(name);
            match kind {
                Kind::Directory if inner.len() > MAX_DIRECTORY_DEPTH => self.warning(
                    file,
                    format!("directory is more than {MAX_DIRECTORY_DEPTH} levels deep; not read"),
                ),
                Kind::Directory => match fs::read_dir(entry.path()) {
                    Ok(entries) => self.directory(entries, &inner),
                    Err(e) => self.error(file, format!("cannot read directory: {e}")),
                },
                Kind::File => self.file(entry.path(), file, &inner),
            }
        }
    }

    /// Decide what an entry is, following a symbolic link only to a regular
    /// file inside the root. `None`: skip it (with a warning where useful).
    fn kind(&mut self, entry: &fs::DirEntry, file: &str) -> Option<Kind> {
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                self.error(file.to_string(), format!("cannot inspect: {e}"));
                return None;
            }
        };
        if file_type.is_dir() {
            return Some(Kind::Directory);
        }
        if file_type.is_file() {
            return Some(Kind::File);
        }
        if !file_type.is_symlink() {
            // Sockets, FIFOs, devices: never configuration, and a FIFO blocks.
            if is_branch_name(file) {
                self.warning(file.to_string(), "not a regular file; skipped");
            }
            return None;
        }
        let Ok(target) = fs::canonicalize(entry.path()) else {
            self.warning(file.to_string(), "broken symbolic link; skipped");
            return None;
        };
        if !target.starts_with(&self.canonical_root) {
            self.warning(
                file.to_string(),
                "symbolic link leads outside the configuration directory; not followed",
            );
            return None;
        }
        match fs::metadata(&target) {
            Ok(m) if m.is_file() => Some(Kind::File),
            Ok(m) if m.is_dir() => {
                self.warning(
                    file.to_string(),
                    "symbolic link to a directory; not followed",
                );
                None
            }
            Ok(_) => {
                if is_branch_name(file) {
                    self.warning(file.to_string(), "not a regular file; skipped");
                }
                None
            }
            Err(e) => {
                self.error(file.to_string(), format!("cannot inspect: {e}"));
                None
            }
        }
    }

    /// A regular file; `components` are its path below the root.
    fn file(&mut self, path: PathBuf, file: String, components: &[String]) {
        let Some(name) = components.last() else {
            return;
        };
        let Some(stem) = branch_stem(name) else {
            return; // Not YAML: not ours.
        };
        if components.len() < 3 {
            self.warning(
                file,
                "not a branch file: branch files live at <org>/<repo>/<branch>.yaml; ignored",
            );
            return;
        }
        let repository = format!("{}/{}", components[0], components[1]);
        let mut branch_parts: Vec<&str> = components[2..components.len() - 1]
            .iter()
            .map(String::as_str)
            .collect();
        branch_parts.push(stem);
        self.layout.found.push(Found {
            path,
            file,
            repository,
            branch: branch_parts.join("/"),
        });
    }
}

/// The name without its `.yaml`/`.yml` extension, if it has one.
fn branch_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .filter(|stem| !stem.is_empty())
}

fn is_branch_name(file: &str) -> bool {
    branch_stem(file).is_some()
}

fn join(here: &str, name: &str) -> String {
    if here.is_empty() {
        name.to_string()
    } else {
        format!("{here}/{name}")
    }
}
