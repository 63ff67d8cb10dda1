//! The build's log on disk.

use super::{LogSink, SinkError};
use crate::log::LogEvent;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Appends every line to a file, as plain text, one line per line.
///
/// Each batch is handed to the operating system before the next one is
/// accepted, so a crash of the service loses nothing that was already
/// written; the file is synced to disk at the end of the build.
pub struct FileSink {
    path: PathBuf,
    file: tokio::fs::File,
    buffer: Vec<u8>,
    size: u64,
}

impl FileSink {
    /// Opens `path` for appending, creating it (and its parent directory).
    pub async fn create(path: impl AsRef<Path>) -> Result<FileSink, SinkError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SinkError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        Ok(FileSink {
            path,
            file,
            buffer: Vec::with_capacity(64 * 1024),
            size,
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size: what it held when opened plus what was written since.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[async_trait]
impl LogSink for FileSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        self.buffer.clear();
        for event in events {
            self.buffer.extend_from_slice(event.text.as_bytes());
            self.buffer.push(b'\n');
        }
        let result = async {
            self.file.write_all(&self.buffer).await?;
            // tokio writes in the background; flush waits until the bytes are
            // in the kernel, which is what makes a crash lose nothing.
            self.file.flush().await
        }
        .await;
        result.map_err(|e| self.error(e))?;
        self.size += self.buffer.len() as u64;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        let result = async {
            self.file.flush().await?;
            self.file.sync_data().await
        }
        .await;
        result.map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::lines;

    #[tokio::test]
    async fn appends_lines_and_keeps_them_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/build.log");
        let mut sink = FileSink::create(&path).await.unwrap();
        sink.write(&lines(&["a", "b;c"])).await.unwrap();
        // No finish: what was written must already be in the file.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb;c\n");
        drop(sink);
        let mut again = FileSink::create(&path).await.unwrap();
        assert_eq!(again.size(), 6, "the size counts what the file held");
        again.write(&lines(&["d"])).await.unwrap();
        assert_eq!(again.size(), 8);
        again.finish().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb;c\nd\n");
    }

    #[tokio::test]
    async fn unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let Err(err) = FileSink::create(blocker.join("log")).await else {
            panic!("a path below a regular file cannot be created");
        };
        assert!(err.to_string().contains("file/log"), "{err}");
    }
}
