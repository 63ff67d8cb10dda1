//! `zos-build-server import-legacy`: the old autobuilder's history brought
//! into this server's, so that its builds are listed with ours and the links
//! its GitHub statuses point at (`/report/<uuid>`) answer with the old logs.
//!
//! How data flows: the rows of `<logs-directory>/history.sqlite` are read,
//! read-only and newest first, by [`LegacyHistory`]; each row's `content`
//! JSON becomes an [`ImportedBuild`] that keeps the old uuid as its id, with
//! the old status mapped onto ours ([`map_status`]) and the repository,
//! branch and commit taken from its name and its push payload; its log,
//! `<logs-directory>/commits/<uuid>`, is copied to
//! [`Config::build_log_path`]; then the build is recorded with
//! [`History::import`], which places it before every build this server made.
//!
//! `artifact` is kept as the old service wrote it, prefix included
//! (`flist/<flist>.md`, `binary/<file>`, `kernel/<file>`): the history has
//! no kind for it, and the views read the kind from that shape
//! ([`old_artifact`](zos_build_core::history::legacy::old_artifact)), so an
//! imported build shows the `artifact` the old page showed, never prefixed
//! twice.
//!
//! The log is copied before the build is recorded, so an import stopped
//! half-way (a crash, a full disk) is simply run again: a recorded build is
//! skipped as already present, one that is not is done again whole. That is
//! also why a second run imports nothing.
//!
//! What the old service left is input like any other: an id that is not a
//! uuid is refused (it becomes a file name), a log file that is not a
//! regular file (a symlink to elsewhere) is not followed, a log is copied by
//! streaming whatever its size, and a row that cannot be read (broken JSON,
//! no id) is skipped and named in the [`ImportReport`], without stopping the
//! rest.

use crate::config::Config;
use crate::reloader::RELOADER_NAME;
use serde_json::Value;
use std::path::{Path, PathBuf};
use zos_build_core::history::legacy::{LegacyHistory, LegacyRow, LegacyText, MAX_FIELD_BYTES};
use zos_build_core::history::{is_valid_build_id, ImportedBuild};
use zos_build_core::{BuildStatus, History, HistoryError};

/// The old service's history database, in its logs directory.
pub const LEGACY_DATABASE: &str = "history.sqlite";
/// The old service's directory of build logs (`<id>`), in its logs directory.
pub const LEGACY_LOGS: &str = "commits";
/// Rows read from the old database at a time.
const PAGE: usize = 200;

/// The old service's status `old` as ours, with the error message an
/// unfinished build gets: `success` and `error` stay what they are; any
/// other (a build the old service lost while it ran: `creating`,
/// `initializing`, `building`, `committing`) becomes `error`.
pub fn map_status(old: &str) -> (BuildStatus, Option<String>) {
    match old {
        "success" => (BuildStatus::Success, None),
        "error" => (BuildStatus::Error, None),
        other => {
            // Only a plain word is repeated: the message is shown on the page.
            let known = !other.is_empty()
                && other.len() <= 20
                && other.bytes().all(|b| b.is_ascii_lowercase());
            let was = if known { other } else { "in an unknown state" };
            (
                BuildStatus::Error,
                Some(format!(
                    "interrupted (imported from the old service, where it was {was})"
                )),
            )
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Builds recorded.
    pub imported: usize,
    /// Builds whose id was recorded already (by an earlier import): skipped.
    pub already_present: usize,
    /// Rows that are not a build this import can read: skipped. In the old
    /// table's order.
    pub malformed: Vec<SkippedRow>,
    /// Logs copied.
    pub logs_copied: usize,
    /// Builds imported without their log (it is replaced by one line saying
    /// so). In the old table's order.
    pub logs_missing: Vec<MissingLog>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported: {}, already present: {}, skipped as malformed: {}, logs copied: {}, logs missing: {}",
            self.imported,
            self.already_present,
            self.malformed.len(),
            self.logs_copied,
            self.logs_missing.len()
        )
    }
}

/// A row skipped as malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedRow {
    /// Its `id` in the old table.
    pub row_id: i64,
    /// Why it cannot be imported.
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {} skipped as malformed: {}",
            self.row_id, self.reason
        )
    }
}

/// A build imported without its log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingLog {
    /// Its `id` in the old table.
    pub row_id: i64,
    /// The build.
    pub id: String,
    /// What was found instead.
    pub reason: String,
}

impl std::fmt::Display for MissingLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}, build {}: log missing: {}",
            self.row_id, self.id, self.reason
        )
    }
}

/// The import could not be carried out (what was done so far stays, and a
/// new run goes on from there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// There is no old database where it was looked for.
    #[error(
        "no old history at {}: --logs-directory must be the old service's logs-directory \
         (the one holding {LEGACY_DATABASE} and {LEGACY_LOGS}/)",
        path.display()
    )]
    NoDatabase {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The old database or ours failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An old log exists but could not be copied.
    #[error("cannot copy the log {} to {}: {source}", from.display(), to.display())]
    Log {
        /// The old log.
        from: PathBuf,
        /// Its copy.
        to: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The logs directory could not be created.
    #[error("cannot create the logs directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task did not finish.
    #[error("import task failed: {0}")]
    Task(String),
}

/// Imports the old service's history from its `logs_directory` into the
/// history and logs directory of `config`.
pub async fn import(config: &Config, logs_directory: &Path) -> Result<ImportReport, ImportError> {
    let database = logs_directory.join(LEGACY_DATABASE);
    match tokio::fs::metadata(&database).await {
        Ok(metadata) if metadata.is_file() => {}
        _ => return Err(ImportError::NoDatabase { path: database }),
    }
    let old = LegacyHistory::open(&database).await?;
    let history = History::open(config.history_path()).await?;
    tokio::fs::create_dir_all(&config.logs_directory)
        .await
        .map_err(|source| ImportError::Directory {
            path: config.logs_directory.clone(),
            source,
        })?;
    let old_logs = logs_directory.join(LEGACY_LOGS);
    let mut report = ImportReport::default();
    let mut before = None;
    loop {
        let rows = old.newest_first(before, PAGE).await?;
        let Some(last) = rows.last() else {
            break;
        };
        before = Some(last.row_id);
        for row in rows {
            let build = match imported_build(&row) {
                Ok(build) => build,
                Err(reason) => {
                    report.malformed.push(SkippedRow {
                        row_id: row.row_id,
                        reason,
                    });
                    continue;
                }
            };
            if history.get(&build.id).await?.is_some() {
                report.already_present += 1;
                continue;
            }
            // The id is a uuid: both paths stay in their directories.
            let from = old_logs.join(&build.id);
            let to = config.build_log_path(&build.id);
            let copied = tokio::task::spawn_blocking(move || copy_log(&from, &to))
                .await
                .map_err(|e| ImportError::Task(e.to_string()))??;
            let id = build.id.clone();
            if !history.import(build).await? {
                report.already_present += 1;
                continue;
            }
            report.imported += 1;
            match copied {
                Ok(()) => report.logs_copied += 1,
                Err(reason) => report.logs_missing.push(MissingLog {
                    row_id: row.row_id,
                    id,
                    reason,
                }),
            }
        }
    }
    // Read newest first; told in the old table's order.
    report.malformed.reverse();
    report.logs_missing.reverse();
    Ok(report)
}

/// The build of an old row, or why it is not one.
fn imported_build(row: &LegacyRow) -> Result<ImportedBuild, String> {
    let content = match &row.content {
        LegacyText::Text(text) => text,
        LegacyText::Null => return Err("its content is empty".into()),
        LegacyText::NotText => return Err("its content is not text".into()),
        LegacyText::TooLarge(bytes) => {
            return Err(format!(
                "its content is {bytes} bytes, more than the {MAX_FIELD_BYTES} read"
            ))
        }
        _ => return Err("its content cannot be read".into()),
    };
    let content: Value = serde_json::from_str(content)
        .map_err(|e| format!("its content is not valid JSON ({e})"))?;
    let Value::Object(content) = content else {
        return Err("its content is not a JSON object".into());
    };
    let id = match content.get("id") {
        Some(Value::String(id)) => id,
        Some(_) => return Err("its build id is not a string".into()),
        None => return Err("it has no build id".into()),
    };
    if !is_uuid(id) || !is_valid_build_id(id) {
        return Err(format!("its build id {} is not a uuid", shown(id)));
    }
    let name = match content.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => return Err(format!("build {id} has no name")),
    };
    let (status, interrupted) = match content.get("status") {
        Some(Value::String(status)) => map_status(status),
        _ => return Err(format!("build {id} has no status")),
    };
    let string = |key: &str| match content.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let seconds = |key: &str| content.get(key).and_then(unix_seconds);
    let started = seconds("started");
    let ended = seconds("ended");
    let queued = started.or(row.created).or(ended).unwrap_or(0);
    let mut build = ImportedBuild::new(id.clone(), name.clone(), status, queued);
    build.started = started;
    build.ended = ended;
    build.error = string("error").or(interrupted);
    build.artifact = string("artifact");
    build.tag = string("tag");
    build.baseimage = string("baseimage").unwrap_or_default();
    if let Some(commits @ Value::Array(_)) = content.get("commits") {
        build.commits = commits.to_string();
    }
    let push = match &row.push {
        LegacyText::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let (repository, branch) = repository_and_branch(name, &push);
    build.repository = repository;
    build.branch = branch;
    build.commit = [&push["after"], &push["head_commit"]["id"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|c| is_commit(c))
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(build)
}

/// The repository and branch of a build named `name` started by `push`;
/// empty strings where neither says.
fn repository_and_branch(name: &str, push: &Value) -> (String, String) {
    let from_push = push["repository"]["full_name"]
        .as_str()
        .filter(|r| is_repository(r));
    let from_name = name
        .split_once('/')
        .and_then(|(owner, rest)| {
            let (repo, branch) = rest.split_once('/')?;
            Some((format!("{owner}/{repo}"), branch))
        })
        .filter(|(repository, branch)| is_repository(repository) && !branch.is_empty());
    let repository = from_push
        .map(str::to_string)
        .or_else(|| from_name.as_ref().map(|(r, _)| r.clone()))
        .unwrap_or_default();
    // The configuration reloader's builds have no branch, as ours.
    if name == RELOADER_NAME {
        return (repository, String::new());
    }
    let branch = match from_name {
        Some((named, branch)) if named == repository => branch.to_string(),
        _ => push["ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .unwrap_or_default()
            .to_string(),
    };
    (repository, branch)
}

/// Copies the log `from` to `to`, streaming. `Err(reason)` when there is no
/// log to copy (then `to` gets one line saying so); an error reading or
/// writing an existing log fails the import.
fn copy_log(from: &Path, to: &Path) -> Result<Result<(), String>, ImportError> {
    let log_error = |source| ImportError::Log {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    let missing = |reason: &str, line: &str| -> Result<Result<(), String>, ImportError> {
        std::fs::write(
            to,
            format!("[zos-build] this build was imported from the old service, {line}\n"),
        )
        .map_err(log_error)?;
        Ok(Err(format!("{} {reason}", from.display())))
    };
    let found = match std::fs::symlink_metadata(from) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return missing("does not exist", "which had no log for it")
        }
        Err(e) => return Err(log_error(e)),
    };
    if !found.file_type().is_file() {
        return missing(
            "is not a regular file (not followed)",
            "whose log for it was not a regular file, and was not copied",
        );
    }
    let mut source = std::fs::File::open(from).map_err(log_error)?;
    // The file opened is the one looked at, not a symlink put in its place since.
    let opened = source.metadata().map_err(log_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (found.dev(), found.ino()) {
            return missing(
                "changed while it was read (not copied)",
                "whose log for it changed while it was read, and was not copied",
            );
        }
    }
    if !opened.is_file() {
        return missing(
            "is not a regular file (not followed)",
            "whose log for it was not a regular file, and was not copied",
        );
    }
    let mut target = std::fs::File::create(to).map_err(log_error)?;
    std::io::copy(&mut source, &mut target).map_err(log_error)?;
    Ok(Ok(()))
}

/// Unix seconds from a JSON number (the old service wrote integers, and
/// floats in places); `None` for anything else.
fn unix_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

/// `8-4-4-4-12` hex digits, as Python's `str(uuid.uuid4())`.
fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// 40 hex digits.
fn is_commit(commit: &str) -> bool {
    commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `owner/name`, of the characters GitHub allows.
fn is_repository(repository: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    repository
        .split_once('/')
        .is_some_and(|(owner, name)| part(owner) && part(name))
}

/// An outside value for a message: quoted and escaped, and cut short.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(64).collect();
    let more = if cut.len() < value.len() { "..." } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn old_statuses_map_onto_ours() {
        assert_eq!(map_status("success"), (BuildStatus::Success, None));
        assert_eq!(map_status("error"), (BuildStatus::Error, None));
        for unfinished in ["creating", "initializing", "building", "committing"] {
            let (status, message) = map_status(unfinished);
            assert_eq!(status, BuildStatus::Error, "{unfinished}");
            assert_eq!(
                message.as_deref(),
                Some(
                    format!(
                        "interrupted (imported from the old service, where it was {unfinished})"
                    )
                    .as_str()
                )
            );
        }
        let (status, message) = map_status("<b>\u{1b}[31m");
        assert_eq!(status, BuildStatus::Error);
        assert_eq!(
            message.as_deref(),
            Some("interrupted (imported from the old service, where it was in an unknown state)")
        );
    }

    fn row(push: Value, content: &str) -> LegacyRow {
        LegacyRow::new(
            7,
            Some(1_500_000_000),
            LegacyText::Text(push.to_string()),
            LegacyText::Text(content.into()),
        )
    }

    const ID: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_build_takes_repository_branch_and_commit_from_its_name_and_push() {
        let push = json!({
            "ref": "refs/heads/feature/x",
            "after": SHA.to_uppercase(),
            "repository": {"full_name": "owner/repo"},
        });
        let content = json!({
            "id": ID, "name": "owner/repo/feature/x", "status": "building",
            "started": 1_500_000_010.7, "ended": null, "error": null,
            "commits": [{"id": SHA}], "artifact": null, "tag": "t",
            "baseimage": "ubuntu:16.04", "monitor": "…", "docker": "abc",
        });
        let build = imported_build(&row(push, &content.to_string())).unwrap();
        assert_eq!(build.id, ID);
        assert_eq!(build.repository, "owner/repo");
        assert_eq!(build.branch, "feature/x");
        assert_eq!(build.commit, SHA);
        assert_eq!(build.status, BuildStatus::Error);
        assert_eq!(
            build.error.as_deref(),
            Some("interrupted (imported from the old service, where it was building)")
        );
        assert_eq!(build.started, Some(1_500_000_010));
        assert_eq!(build.queued, 1_500_000_010);
        assert_eq!(build.ended, None);
        assert_eq!(build.commits, format!(r#"[{{"id":"{SHA}"}}]"#));
        assert_eq!(build.tag.as_deref(), Some("t"));
        assert_eq!(build.baseimage, "ubuntu:16.04");

        // Without a push: from the name alone; the creation time for `queued`.
        let content = json!({"id": ID, "name": "a/b/master", "status": "success"});
        let build = imported_build(&row(Value::Null, &content.to_string())).unwrap();
        assert_eq!(
            (build.repository.as_str(), build.branch.as_str()),
            ("a/b", "master")
        );
        assert_eq!((build.commit.as_str(), build.queued), ("", 1_500_000_000));
        assert_eq!(build.commits, "[]");

        // The configuration reloader has a repository and no branch, as ours.
        let push = json!({"ref": "refs/heads/master", "head_commit": {"id": SHA},
                          "repository": {"full_name": "owner/config"}});
        let content = json!({"id": ID, "name": "Configuration reloader", "status": "success"});
        let build = imported_build(&row(push, &content.to_string())).unwrap();
        assert_eq!(
            (
                build.repository.as_str(),
                build.branch.as_str(),
                build.commit.as_str()
            ),
            ("owner/config", "", SHA)
        );
    }

    #[test]
    fn an_artifact_is_kept_as_the_old_service_wrote_it() {
        for artifact in [
            "flist/owner-repo-master-0123456789.flist.md",
            "binary/owner-repo-master-0123456789.tar.gz",
            "kernel/zero-os-master-generic-0123456789.efi",
            "zero-os-master-generic-0123456789.efi",
        ] {
            let content = json!({"id": ID, "name": "owner/repo/master", "status": "success",
                                 "artifact": artifact});
            let build = imported_build(&row(Value::Null, &content.to_string())).unwrap();
            assert_eq!(build.artifact.as_deref(), Some(artifact));
        }
    }

    #[test]
    fn rows_that_are_not_builds_say_why() {
        let cases = [
            ("{not json", "not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"name": "a/b/c", "status": "success"}"#, "no build id"),
            (
                r#"{"id": 5, "name": "a/b/c", "status": "success"}"#,
                "not a string",
            ),
            (
                r#"{"id": "../../etc/x", "name": "a/b/c", "status": "success"}"#,
                r#"build id "../../etc/x" is not a uuid"#,
            ),
            (
                r#"{"id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "status": "success"}"#,
                "has no name",
            ),
            (
                r#"{"id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "name": "a/b/c"}"#,
                "has no status",
            ),
        ];
        for (content, reason) in cases {
            let err = imported_build(&row(Value::Null, content)).unwrap_err();
            assert!(err.contains(reason), "{content}: {err}");
        }
        let mut empty = row(Value::Null, "");
        empty.content = LegacyText::Null;
        assert!(imported_build(&empty).unwrap_err().contains("empty"));
        // An id is shown escaped and cut short, never raw.
        let hostile = format!(
            r#"{{"id": "\u001b[2J{}", "name": "n", "status": "error"}}"#,
            "x".repeat(500)
        );
        let err = imported_build(&row(Value::Null, &hostile)).unwrap_err();
        assert!(!err.contains('\u{1b}') && err.len() < 200, "{err}");
    }
}
