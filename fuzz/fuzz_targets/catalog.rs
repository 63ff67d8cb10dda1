//! The catalog loader on arbitrary directory trees: the input describes up
//! to 8 entries (a path below a fresh temporary directory and either file
//! content or a symbolic link target), the tree is written to disk, and
//! `Catalog::load` must load it without panicking, consistently with its
//! reports, and the same way twice.
//!
//! Paths are made safe to create (no `..`, nothing absolute: the entries
//! stay inside the temporary directory) but keep any other byte, so names
//! that are hidden, not UTF-8, or without a YAML extension are exercised.
//! Link targets are written as given: they may point anywhere, which is
//! what the loader must cope with (it never follows a link out of the root).

#![no_main]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use zos_flist_config::Catalog;

#[derive(Arbitrary, Debug)]
struct Tree {
    entries: Vec<Entry>,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    /// `/`-separated components, sanitised by [`relative`].
    path: Vec<u8>,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    File(Vec<u8>),
    /// A branch file whose path is the entry's, with `.yaml` added.
    Yaml(String),
    Link(Vec<u8>),
    Directory,
}

/// A path that stays below the root: components without `/`, NUL, `.` or
/// `..`, at most 255 bytes each and 6 deep.
fn relative(raw: &[u8]) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in raw.split(|&b| b == b'/').filter(|c| !c.is_empty()).take(6) {
        if component == b"." || component == b".." || component.contains(&0) {
            continue;
        }
        path.push(OsStr::from_bytes(&component[..component.len().min(255)]));
    }
    (path.components().count() > 0).then_some(path)
}

fn write(root: &Path, entry: &Entry) {
    let Some(mut path) = relative(&entry.path) else {
        return;
    };
    if let Kind::Yaml(_) = entry.kind {
        let mut name = path
            .file_name()
            .map(OsStr::to_os_string)
            .unwrap_or_default();
        name.push(".yaml");
        path.set_file_name(name);
    }
    let path = root.join(path);
    // Any of these may fail (a file where a directory should be): the tree
    // is then simply what could be made.
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = match &entry.kind {
        Kind::File(bytes) => std::fs::write(&path, bytes),
        Kind::Yaml(text) => std::fs::write(&path, text),
        Kind::Link(target) if !target.contains(&0) && !target.is_empty() => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
        }
        Kind::Link(_) => Ok(()),
        Kind::Directory => std::fs::create_dir_all(&path),
    };
}

fuzz_target!(|tree: Tree| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    for entry in tree.entries.iter().take(8) {
        write(dir.path(), entry);
    }
    let catalog = match Catalog::load(dir.path()) {
        Ok(catalog) => catalog,
        Err(e) => panic!("the root exists and is readable: {e}"),
    };

    // Reports are sorted by file, each (repository, branch) tracked at most
    // once, from its first valid file.
    let files: Vec<&str> = catalog.reports().iter().map(|r| r.file.as_str()).collect();
    assert!(files.windows(2).all(|w| w[0] < w[1]), "{files:?}");
    let mut seen = HashSet::new();
    for report in catalog.reports() {
        assert!(report.file.ends_with(".yaml") || report.file.ends_with(".yml"));
        assert!(
            report.file.starts_with(&format!("{}/", report.repository)),
            "{report:?}"
        );
        assert_eq!(report.repository.matches('/').count(), 1);
        assert!(!report.branch.is_empty());
        for problem in &report.problems {
            assert_eq!(problem.file, report.file);
        }
        let first = seen.insert((report.repository.clone(), report.branch.clone()));
        let tracked = catalog.get(&report.repository, &report.branch);
        if report.is_valid() && first {
            let branch = tracked.expect("a valid first file is tracked");
            assert_eq!(branch.file, report.file);
            assert_eq!(branch.builds, report.builds);
        } else {
            assert!(report.builds.is_empty() || report.is_valid());
            if let Some(branch) = tracked {
                assert_ne!(branch.file, report.file);
            }
        }
    }
    assert_eq!(
        catalog.branches().count(),
        catalog.reports().iter().filter(|r| r.is_valid()).count()
    );
    for branch in catalog.branches() {
        assert!(catalog.has_repository(&branch.repository));
    }
    assert_eq!(
        catalog.has_errors(),
        catalog.problems().iter().any(|p| p.is_error())
    );
    let again = Catalog::load(dir.path()).expect("loads again");
    assert_eq!(again, catalog, "loading is deterministic");
});
