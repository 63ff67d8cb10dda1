//! The one rule by which a name in a URL becomes a file served from a
//! directory, shared by `/artifacts/<name>` and `/kernels/<name>`.
//!
//! Publishers write the files of these directories (artifacts, binaries,
//! kernels) under hidden names, rename them into place, and point moving
//! links at them: relative symlinks holding the plain name of a file of the
//! same directory. So a served name is plain ([`is_plain`]), it is a regular
//! file or such a link, and a link is followed one step only: a link
//! elsewhere (`/etc/passwd`, `../x`), to a link, or to anything that is not
//! a regular file is refused. The file opened is then checked to be the
//! very file that was inspected (same device and inode), so a link or file
//! swapped between the check and the open is never served in its place.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most entries a listing (`/artifacts/`, `/kernels/`) reads from one
/// directory: a listing is a page for people, not a dump of a directory of
/// any size.
pub const MAX_LISTED: usize = 10_000;

/// How many times [`open`] inspects and opens again when the file changed
/// in between (a publisher moved a link or replaced a file meanwhile).
const OPEN_ATTEMPTS: usize = 3;

/// Whether `name` is a plain file name as publishers make them: of
/// `[A-Za-z0-9._-]`, not empty and not starting with `.` (so neither `.`,
/// `..` nor a hidden, in-progress write): nothing that could leave a
/// directory.
pub fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What a name stands for in a directory, by the rule of this module.
#[derive(Debug)]
pub enum Found {
    /// A regular file to serve: the name itself, or the file of the same
    /// directory its link names. `metadata` is the file's (not the link's).
    File {
        /// The file's path (the link's target, for a link).
        path: PathBuf,
        /// The file's own metadata, read without following links.
        metadata: Metadata,
    },
    /// Nothing of that name, or something that is neither a file nor a
    /// link (a directory): another directory may have it.
    Absent,
    /// A name that must not be served: not plain, or a link that breaks
    /// the rule.
    Refused,
}

/// Looks `name` up in `dir` by the rule of this module, reading only
/// metadata and the link itself. Blocking: call it off the runtime's
/// worker threads.
pub fn find(dir: &Path, name: &str) -> io::Result<Found> {
    if !is_plain(name) {
        return Ok(Found::Refused);
    }
    let path = dir.join(name);
    let metadata = match std::fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    if metadata.file_type().is_file() {
        return Ok(Found::File { path, metadata });
    }
    if !metadata.file_type().is_symlink() {
        return Ok(Found::Absent);
    }
    let target = match std::fs::read_link(&path) {
        Ok(target) => target,
        // Removed meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    let Some(target) = target.to_str().filter(|t| is_plain(t)) else {
        return Ok(Found::Refused);
    };
    let path = dir.join(target);
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) if metadata.file_type().is_file() => Ok(Found::File { path, metadata }),
        Ok(_) => Ok(Found::Refused),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Refused),
        Err(e) => Err(e),
    }
}

/// What [`open`] found.
#[derive(Debug)]
pub enum Opened {
    /// The file, open for reading, and its metadata (read from the open
    /// file itself).
    File {
        /// The open file, at its start (boxed: a tokio file is large).
        file: Box<tokio::fs::File>,
        /// The open file's metadata.
        metadata: Metadata,
    },
    /// See [`Found::Absent`].
    Absent,
    /// See [`Found::Refused`]; also a file that kept changing while it
    /// was being opened.
    Refused,
}

/// Finds `name` in `dir` ([`find`]) and opens the file it stands for,
/// making sure the file opened is the one inspected: a regular file with
/// the same device and inode. Runs off the runtime's worker threads.
pub async fn open(dir: &Path, name: &str) -> io::Result<Opened> {
    let dir = dir.to_path_buf();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || open_blocking(&dir, &name))
        .await
        .map_err(io::Error::other)?
}

fn open_blocking(dir: &Path, name: &str) -> io::Result<Opened> {
    for _ in 0..OPEN_ATTEMPTS {
        let (path, inspected) = match find(dir, name)? {
            Found::File { path, metadata } => (path, metadata),
            Found::Absent => return Ok(Opened::Absent),
            Found::Refused => return Ok(Opened::Refused),
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            // Removed between the two: look again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let metadata = file.metadata()?;
        if metadata.file_type().is_file()
            && metadata.dev() == inspected.dev()
            && metadata.ino() == inspected.ino()
        {
            return Ok(Opened::File {
                file: Box::new(tokio::fs::File::from_std(file)),
                metadata,
            });
        }
        // Swapped between the check and the open: look again.
    }
    Ok(Opened::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_plain_and_nothing_else_is() {
        for good in ["a", "zero-os-master-generic.efi", "x_1.2-3", "a..b"] {
            assert!(is_plain(good), "{good}");
        }
        for bad in [
            "", ".", "..", ".hidden", "../x", "a/b", "/etc", "a b", "a%2Fb", "é", "a\0b",
        ] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }

    #[test]
    fn links_are_followed_one_step_within_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("file"), b"x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("file", d.join("good")).unwrap();
        std::os::unix::fs::symlink("good", d.join("twice")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("absolute")).unwrap();
        std::os::unix::fs::symlink("../file", d.join("up")).unwrap();
        std::os::unix::fs::symlink("sub", d.join("to-dir")).unwrap();
        std::os::unix::fs::symlink("missing", d.join("dangling")).unwrap();
        assert!(
            matches!(find(d, "file").unwrap(), Found::File { path, .. } if path == d.join("file"))
        );
        assert!(
            matches!(find(d, "good").unwrap(), Found::File { path, .. } if path == d.join("file"))
        );
        for refused in [
            "twice", "absolute", "up", "to-dir", "dangling", ".file", "../file",
        ] {
            assert!(
                matches!(find(d, refused).unwrap(), Found::Refused),
                "{refused}"
            );
        }
        for absent in ["nothing", "sub"] {
            assert!(
                matches!(find(d, absent).unwrap(), Found::Absent),
                "{absent}"
            );
        }
    }
}
