//! Reading the old autobuilder's build history, for
//! `zos-build-server import-legacy`.
//!
//! The old service kept its finished builds in
//! `<logs-directory>/history.sqlite`, table
//! `history(id integer primary key autoincrement, created datetime, push text, content text)`:
//! `content` is the JSON of the build, `push` the webhook payload that
//! started it. This module only reads that table, row by row and raw: the
//! JSON is decoded by the server, which knows the old service's fields, and
//! the builds come back in through [`History::import`](super::History::import).
//! It lives here so that all SQLite access stays in this crate.
//!
//! The file is opened read-only: nothing of the old installation is ever
//! changed. It is read a page at a time, newest first (the order
//! [`History::import`](super::History::import) wants), so an old history of
//! any length is never held in memory whole, and a text column longer than
//! [`MAX_FIELD_BYTES`] is not read at all. A column that is not text (a
//! blob that is not UTF-8, a number) is reported as such rather than
//! failing the read: one bad row never stops an import.
//!
//! One field of the old JSON is read here too, [`old_artifact`]: the old
//! service wrote which publisher took an artifact into its name (`flist/`,
//! `binary/`, `kernel/`), and both the import and the server's views need to
//! tell that apart from a bare name, with the history's [`ArtifactKind`].

use super::{ArtifactKind, HistoryError};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The longest `push` or `content` read, in bytes: 8 MiB. The old service
/// wrote a few KB per build (`content` holds the last 20 lines of output);
/// a longer value is not one of its rows, and is reported as
/// [`LegacyText::TooLarge`] without being loaded.
pub const MAX_FIELD_BYTES: u64 = 8 * 1024 * 1024;

/// A text column of an old row, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyText {
    /// NULL.
    Null,
    /// UTF-8 text.
    Text(String),
    /// Bytes that are not UTF-8, or a number: not what the old service wrote.
    NotText,
    /// Longer than [`MAX_FIELD_BYTES`] (this many bytes); not read.
    TooLarge(u64),
}

/// One row of the old `history` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LegacyRow {
    /// The row's `id` (its place in the table, not the build's id).
    pub row_id: i64,
    /// `created`, in unix seconds, when it holds a date SQLite understands
    /// (`YYYY-MM-DD HH:MM:SS[.ffffff]`) or a number.
    pub created: Option<i64>,
    /// `push`: the webhook payload, JSON.
    pub push: LegacyText,
    /// `content`: the finished build, JSON.
    pub content: LegacyText,
}

impl LegacyRow {
    /// A row as [`LegacyHistory::newest_first`] gives it (for tests of what
    /// is done with rows).
    pub fn new(row_id: i64, created: Option<i64>, push: LegacyText, content: LegacyText) -> Self {
        LegacyRow {
            row_id,
            created,
            push,
            content,
        }
    }
}

/// The old service's history database, open read-only.
#[derive(Clone)]
pub struct LegacyHistory {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for LegacyHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyHistory")
            .field("path", &self.path)
            .finish()
    }
}

/// The columns read: `created` made unix seconds, and each text column with
/// its length in bytes, its value only when it is short enough (`?1`).
const SELECT: &str = "SELECT id, \
     CASE typeof(created) \
       WHEN 'integer' THEN created \
       WHEN 'real' THEN CAST(created AS INTEGER) \
       WHEN 'text' THEN CAST(strftime('%s', created) AS INTEGER) \
     END, \
     length(CAST(push AS BLOB)), \
     CASE WHEN length(CAST(push AS BLOB)) <= ?1 THEN push END, \
     length(CAST(content AS BLOB)), \
     CASE WHEN length(CAST(content AS BLOB)) <= ?1 THEN content END \
     FROM history";

impl LegacyHistory {
    /// Opens `path` read-only; fails when it does not exist or has no
    /// `history` table of the old shape.
    pub async fn open(path: impl Into<PathBuf>) -> Result<LegacyHistory, HistoryError> {
        let path = path.into();
        let for_task = path.clone();
        let connection = tokio::task::spawn_blocking(move || open_blocking(&for_task))
            .await
            .map_err(|e| HistoryError::Task(e.to_string()))??;
        Ok(LegacyHistory {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At most `limit` rows, newest (highest row id) first, of those with a
    /// row id below `before` (all rows when `None`): pass the last row id of
    /// a page to get the next one.
    pub async fn newest_first(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LegacyRow>, HistoryError> {
        let connection = self.connection.clone();
        let path = self.path.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let query_error = |source| HistoryError::Query {
                path: path.clone(),
                action: "read the old history".into(),
                source,
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "{SELECT} WHERE ?2 IS NULL OR id < ?2 ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(query_error)?;
            let max = i64::try_from(MAX_FIELD_BYTES).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(params![max, before, limit], |row| {
                    Ok(LegacyRow {
                        row_id: row.get(0)?,
                        created: row.get(1)?,
                        push: text(row.get(2)?, row.get_ref(3)?),
                        content: text(row.get(4)?, row.get_ref(5)?),
                    })
                })
                .map_err(query_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
        })
        .await
        .map_err(|e| HistoryError::Task(format!("read the old history: {e}")))?
    }
}

fn open_blocking(path: &Path) -> Result<Connection, HistoryError> {
    let open_error = |source| HistoryError::Open {
        path: path.to_path_buf(),
        source,
    };
    // Read-only, and never created: a wrong path is an error, not an empty
    // database left in the old logs directory.
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_error)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_error)?;
    // The shape is checked once, here, so that a file of something else is
    // named as such before the import starts.
    connection
        .prepare(&format!("{SELECT} LIMIT 0"))
        .map(drop)
        .map_err(|source| HistoryError::Query {
            path: path.to_path_buf(),
            action: "find the old service's history table (id, created, push, content)".into(),
            source,
        })?;
    Ok(connection)
}

/// The publisher and the bare name of an `artifact` as the old service
/// wrote it, or `None` when `artifact` is not in one of its shapes (a name
/// this server recorded is never: its names are plain file names):
///
/// - `flist/<flist>.md`: a flist on the hub, `<flist>` being the hub's name
///   (`<owner>-<repo>[-<tag>]-<branch>-<commit10>.flist`); the old monitor
///   page linked it to the hub's page of that flist;
/// - `binary/<file>`: a file of the binary directory;
/// - `kernel/<file>`: a kernel of the kernel directory;
/// - `<file>.efi`, no prefix: a kernel of its earliest versions, which named
///   kernels bare (its page linked every unprefixed artifact to the kernel
///   host).
///
/// The name must be one path segment, not `.` or `..`: `flist/a/b.md` is
/// `None`.
pub fn old_artifact(artifact: &str) -> Option<(ArtifactKind, &str)> {
    let segment = |name: &str| !matches!(name, "" | "." | "..") && !name.contains('/');
    let (kind, name) = match artifact.split_once('/') {
        Some(("flist", rest)) => (ArtifactKind::Flist, rest.strip_suffix(".md")?),
        Some(("binary", rest)) => (ArtifactKind::Binary, rest),
        Some(("kernel", rest)) => (ArtifactKind::Kernel, rest),
        Some(_) => return None,
        None if artifact.len() > ".efi".len() && artifact.ends_with(".efi") => {
            (ArtifactKind::Kernel, artifact)
        }
        None => return None,
    };
    segment(name).then_some((kind, name))
}

/// A text column from its length in bytes and its value (NULL when it was
/// not read for its length).
fn text(length: Option<i64>, value: ValueRef<'_>) -> LegacyText {
    let Some(length) = length else {
        return LegacyText::Null;
    };
    let length = u64::try_from(length).unwrap_or(0);
    if length > MAX_FIELD_BYTES {
        return LegacyText::TooLarge(length);
    }
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => std::str::from_utf8(bytes)
            .map(|s| LegacyText::Text(s.to_string()))
            .unwrap_or(LegacyText::NotText),
        ValueRef::Null => LegacyText::Null,
        ValueRef::Integer(_) | ValueRef::Real(_) => LegacyText::NotText,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_SCHEMA: &str = "CREATE TABLE history (id integer primary key autoincrement, \
                              created datetime, push text, content text);";

    fn old_database(dir: &Path) -> PathBuf {
        let path = dir.join("history.sqlite");
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(OLD_SCHEMA).unwrap();
        let mut insert = connection
            .prepare("INSERT INTO history (created, push, content) VALUES (?1, ?2, ?3)")
            .unwrap();
        insert
            .execute(params![
                "2019-03-01 10:00:00.123456",
                "{\"ref\":1}",
                "{\"id\":\"a\"}"
            ])
            .unwrap();
        insert
            .execute(params![
                1551434400,
                rusqlite::types::Null,
                vec![0xffu8, 0xfe]
            ])
            .unwrap();
        insert.execute(params!["not a date", 5, "{}"]).unwrap();
        insert
            .execute(params![
                1551434400.9,
                "x".repeat(MAX_FIELD_BYTES as usize + 1),
                "{}"
            ])
            .unwrap();
        path
    }

    #[tokio::test]
    async fn rows_are_read_newest_first_by_page_with_odd_columns_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = old_database(dir.path());
        let before = std::fs::read(&path).unwrap();
        let old = LegacyHistory::open(&path).await.unwrap();

        let first = old.newest_first(None, 2).await.unwrap();
        assert_eq!(
            first,
            [
                LegacyRow {
                    row_id: 4,
                    created: Some(1551434400),
                    push: LegacyText::TooLarge(MAX_FIELD_BYTES + 1),
                    content: LegacyText::Text("{}".into()),
                },
                LegacyRow {
                    row_id: 3,
                    created: None,
                    // The column's text affinity stored the number as text.
                    push: LegacyText::Text("5".into()),
                    content: LegacyText::Text("{}".into()),
                },
            ]
        );
        let second = old.newest_first(Some(3), 2).await.unwrap();
        assert_eq!(
            second,
            [
                LegacyRow {
                    row_id: 2,
                    created: Some(1551434400),
                    push: LegacyText::Null,
                    content: LegacyText::NotText,
                },
                LegacyRow {
                    row_id: 1,
                    created: Some(1551434400),
                    push: LegacyText::Text("{\"ref\":1}".into()),
                    content: LegacyText::Text("{\"id\":\"a\"}".into()),
                },
            ]
        );
        assert!(old.newest_first(Some(1), 2).await.unwrap().is_empty());
        drop(old);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the old file changed"
        );
    }

    #[tokio::test]
    async fn the_old_database_is_never_written_nor_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("history.sqlite");
        let err = LegacyHistory::open(&missing).await.unwrap_err();
        assert!(matches!(err, HistoryError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));
        assert!(!missing.exists(), "opening created the file");

        let path = old_database(dir.path());
        let old = LegacyHistory::open(&path).await.unwrap();
        let write = old
            .connection
            .lock()
            .unwrap()
            .execute("DELETE FROM history", []);
        assert!(write.is_err(), "a write went through: {write:?}");
    }

    #[test]
    fn the_old_artifact_shapes_are_read_and_others_are_not() {
        let flist = "threefoldfoundation-tfchain-faucet-master-0123456789.flist";
        assert_eq!(
            old_artifact(&format!("flist/{flist}.md")),
            Some((ArtifactKind::Flist, flist))
        );
        assert_eq!(
            old_artifact("binary/o-r-master-0123456789.tar.gz"),
            Some((ArtifactKind::Binary, "o-r-master-0123456789.tar.gz"))
        );
        assert_eq!(
            old_artifact("kernel/zero-os-master-generic-0123456789.efi"),
            Some((
                ArtifactKind::Kernel,
                "zero-os-master-generic-0123456789.efi"
            ))
        );
        assert_eq!(
            old_artifact("zero-os-master-generic-0123456789.efi"),
            Some((
                ArtifactKind::Kernel,
                "zero-os-master-generic-0123456789.efi"
            ))
        );
        for other in [
            // This server's own names: plain, never prefixed.
            "o-r-master-0123456789.tar.gz",
            "flist/x.flist",
            "flist/.md",
            "flist/a/b.md",
            "binary/",
            "binary/a/b",
            "kernel/../x",
            "binary/..",
            "local/x.tar.gz",
            "/x.efi",
            ".efi",
            "",
        ] {
            assert_eq!(old_artifact(other), None, "{other:?}");
        }
    }

    #[tokio::test]
    async fn a_database_without_the_old_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE builds (id TEXT);")
            .unwrap();
        let err = LegacyHistory::open(&path).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("history table"), "{message}");
    }
}
