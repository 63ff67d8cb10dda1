//! Moving files in and out of containers through Docker's archive API.
//!
//! No bind mounts: the files travel as tar streams over the API connection,
//! so the same code works against the local daemon, from inside a container
//! that was given the host's socket, and against a remote Docker host.
//! Tar is written and read on blocking threads and streamed in 64 KiB chunks,
//! so a large source tree never sits in memory whole.

use crate::error::{docker_status, BuildError};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

const CHUNK: usize = 64 * 1024;

/// A `Write` that hands full chunks to an async receiver.
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<io::Result<Bytes>>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "Docker stopped reading the archive",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Streams a tar written by `fill` into the container, extracted at `/`.
async fn upload(
    docker: &Docker,
    container: &str,
    what: &Path,
    fill: impl FnOnce(&mut tar::Builder<ChannelWriter>) -> io::Result<()> + Send + 'static,
) -> Result<(), BuildError> {
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(8);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut builder = tar::Builder::new(ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            sender,
        });
        builder.follow_symlinks(false);
        fill(&mut builder)?;
        builder.into_inner()?.flush()
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let options = UploadToContainerOptions {
        path: "/".into(),
        ..Default::default()
    };
    let sent = docker
        .upload_to_container(container, Some(options), bollard::body_try_stream(body))
        .await;
    // A failure to read the tree explains a failed upload better than Docker does.
    let written = writer.await.unwrap_or_else(|e| Err(io::Error::other(e)));
    if let Err(source) = written {
        return Err(BuildError::Source {
            path: what.to_path_buf(),
            source,
        });
    }
    sent.map_err(|e| BuildError::docker(format!("copy {} into the container", what.display()), e))
}

/// What goes into a container before it starts, as one tar stream: the
/// source tree and the inline script.
#[derive(Debug, Default)]
pub(crate) struct BuildFiles<'a> {
    /// The host directory copied to an absolute path of the container.
    pub(crate) tree: Option<(&'a Path, &'a str)>,
    /// A file placed at an absolute path with a mode (the inline script).
    pub(crate) file: Option<(&'a str, Vec<u8>, u32)>,
    /// The absolute path, inside the tree, of a file that must be
    /// executable (the build script run by `Command::ScriptFile`): its
    /// entry gets the execute bits, so no `chmod` has to run in the
    /// container.
    pub(crate) executable: Option<&'a str>,
}

/// Copies `files` into the container in one upload (one tar stream, one
/// request to the daemon); nothing to copy, no request.
pub(crate) async fn upload_build_files(
    docker: &Docker,
    container: &str,
    files: BuildFiles<'_>,
) -> Result<(), BuildError> {
    if files.tree.is_none() && files.file.is_none() {
        return Ok(());
    }
    let tree = match files.tree {
        Some((host_dir, container_path)) => {
            let metadata =
                tokio::fs::metadata(host_dir)
                    .await
                    .map_err(|source| BuildError::Source {
                        path: host_dir.to_path_buf(),
                        source,
                    })?;
            if !metadata.is_dir() {
                return Err(BuildError::Source {
                    path: host_dir.to_path_buf(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
                });
            }
            Some((
                host_dir.to_path_buf(),
                container_path.trim_matches('/').to_string(),
            ))
        }
        None => None,
    };
    let what = match (&tree, files.file.as_ref()) {
        (Some((dir, _)), _) => dir.clone(),
        (None, Some((path, _, _))) => PathBuf::from(path),
        (None, None) => PathBuf::new(),
    };
    let executable = files
        .executable
        .map(|path| path.trim_start_matches('/').to_string());
    let file = files
        .file
        .map(|(path, contents, mode)| (path.trim_start_matches('/').to_string(), contents, mode));
    upload(docker, container, &what, move |tar| {
        if let Some((dir, inside)) = &tree {
            append_tree(tar, dir, Path::new(inside), executable.as_deref())?;
        }
        if let Some((inside, contents, mode)) = file {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, &inside, contents.as_slice())?;
        }
        Ok(())
    })
    .await
}

/// Appends the directory `dir` as `name` and everything below it, links as
/// links (never followed), in a stable order; the regular file named
/// `executable` gets its execute bits.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    executable: Option<&str>,
) -> io::Result<()> {
    // A link of the tree is copied as a link: following it would copy a
    // file of the host (or loop).
    tar.follow_symlinks(false);
    tar.append_dir(name, dir)?;
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let inside = name.join(entry.file_name());
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            append_tree(tar, &path, &inside, executable)?;
        } else if file_type.is_file() && executable.is_some_and(|e| Path::new(e) == inside) {
            let metadata = std::fs::symlink_metadata(&path)?;
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
            header.set_mode(header.mode()? | 0o111);
            tar.append_data(&mut header, &inside, std::fs::File::open(&path)?)?;
        } else {
            tar.append_path_with_name(&path, &inside)?;
        }
    }
    Ok(())
}

/// Extracts `container_path` (a file or a directory) into `dir` and returns
/// the host path of what was extracted.
pub(crate) async fn download(
    docker: &Docker,
    container: &str,
    container_path: &str,
    dir: &Path,
) -> Result<PathBuf, BuildError> {
    let artifact_error = |source: io::Error| BuildError::Artifact {
        path: container_path.to_string(),
        dir: dir.to_path_buf(),
        source,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(artifact_error)?;
    let options = DownloadFromContainerOptions {
        path: container_path.to_string(),
    };
    let mut stream = docker
        .download_from_container(container, Some(options))
        .boxed();
    // The daemon answers 404 for a missing path before sending any data.
    let first = match stream.next().await {
        Some(Err(e)) if docker_status(&e) == Some(404) => {
            return Err(BuildError::ArtifactMissing {
                path: container_path.to_string(),
            })
        }
        Some(Err(e)) => {
            return Err(BuildError::docker(
                format!("read {container_path} from the container"),
                e,
            ))
        }
        Some(Ok(bytes)) => bytes,
        None => Bytes::new(),
    };
    let rest = stream.map_err(io::Error::other);
    let all = futures_util::stream::once(async move { Ok(first) })
        .chain(rest)
        .boxed();
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(all));
    let target = dir.to_path_buf();
    let name = Path::new(container_path)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = container_path.to_string();
    tokio::task::spawn_blocking(move || extract_regular(reader, &target, &path))
        .await
        .unwrap_or_else(|e| Err(artifact_error(io::Error::other(e))))?;
    Ok(dir.join(name))
}

/// Unpacks Docker's tar of an artifact into `target`, accepting only regular
/// files and directories.
///
/// Why: a build controls what the archive holds. A symlink (absolute, or
/// relative with `..`), a hard link or a device node would make the server
/// read or publish a file of the host, so the first such entry fails the
/// build. Every entry is unpacked with `unpack_in`, which refuses paths that
/// would leave `target`.
fn extract_regular(
    reader: impl std::io::Read,
    target: &Path,
    container_path: &str,
) -> Result<(), BuildError> {
    let artifact_error = |source: io::Error| BuildError::Artifact {
        path: container_path.to_string(),
        dir: target.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(artifact_error)? {
        let mut entry = entry.map_err(artifact_error)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {
                None
            }
            tar::EntryType::Symlink => Some("symlink"),
            tar::EntryType::Link => Some("hard link"),
            tar::EntryType::Char => Some("character device"),
            tar::EntryType::Block => Some("block device"),
            tar::EntryType::Fifo => Some("named pipe"),
            // PAX and GNU extension headers are consumed by `entries`; anything
            // else is not a file we can vouch for.
            _ => Some("special file"),
        };
        if let Some(kind) = kind {
            let inside = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(BuildError::ArtifactNotRegular {
                path: entry_path(container_path, &inside),
                kind,
            });
        }
        let unpacked = entry.unpack_in(target).map_err(artifact_error)?;
        if !unpacked {
            return Err(artifact_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "an entry of the archive would leave the work directory",
            )));
        }
    }
    Ok(())
}

/// The container path of an archive entry: Docker's archive of `/a/b` holds
/// `b` and `b/...`.
fn entry_path(container_path: &str, inside: &str) -> String {
    let parent = Path::new(container_path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{}/{}", parent.trim_end_matches('/'), inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_with(kind: tar::EntryType, link: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(0o777);
        builder
            .append_link(&mut header, "widget.tar.gz", link)
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn links_and_devices_are_refused_and_nothing_is_created() {
        for (kind, link, word) in [
            (tar::EntryType::Symlink, "/etc/hostname", "symlink"),
            (
                tar::EntryType::Symlink,
                "../../../../etc/hostname",
                "symlink",
            ),
            (tar::EntryType::Link, "/etc/hostname", "hard link"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let tar = archive_with(kind, link);
            let err = extract_regular(tar.as_slice(), dir.path(), "/tmp/archives/widget.tar.gz")
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("artifact /tmp/archives/widget.tar.gz is a {word}, not a regular file")
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn the_tree_keeps_its_modes_and_links_and_only_the_script_becomes_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("autobuild")).unwrap();
        std::fs::write(dir.path().join("autobuild/build.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("README"), "x").unwrap();
        for file in ["autobuild/build.sh", "README"] {
            let mode = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(dir.path().join(file), mode).unwrap();
        }
        std::os::unix::fs::symlink("README", dir.path().join("link")).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        append_tree(
            &mut builder,
            dir.path(),
            Path::new("widget"),
            Some("widget/autobuild/build.sh"),
        )
        .unwrap();
        let tar = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let header = e.header();
                let path = e.path().unwrap().display().to_string();
                (path, header.mode().unwrap() & 0o777, header.entry_type())
            })
            .collect();
        let find = |name: &str| {
            entries
                .iter()
                .find(|(path, _, _)| path.trim_end_matches('/') == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} missing: {entries:?}"))
        };
        assert_eq!(find("widget/autobuild/build.sh").1, 0o755);
        assert_eq!(find("widget/README").1, 0o644);
        assert_eq!(find("widget/link").2, tar::EntryType::Symlink);
        assert_eq!(find("widget/autobuild").2, tar::EntryType::Directory);
        assert_eq!(find("widget").2, tar::EntryType::Directory);
    }

    #[test]
    fn regular_files_are_extracted() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o4755);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "x.tar.gz", &b"abc"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        extract_regular(tar.as_slice(), dir.path(), "/out/x.tar.gz").unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.tar.gz")).unwrap(), b"abc");
    }
}
