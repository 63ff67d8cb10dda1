//! The build history: one row per build, in an SQLite file, that outlives
//! the process.
//!
//! Why SQLite: the old service kept its history in memory and lost it, with
//! the running builds, on every restart. An embedded database (bundled, so
//! nothing to install) in WAL mode commits each change before the call
//! returns, so a `kill -9` loses nothing that was acknowledged, and readers
//! (the HTTP API) never wait for the writer.
//!
//! Every call runs on a blocking thread (`spawn_blocking`) around one
//! connection behind a mutex: SQLite serialises writers anyway, and the async
//! worker threads never block on the disk.
//!
//! A push is recorded with [`History::enqueue`], which checks the webhook's
//! delivery id and inserts the push's builds in one transaction: a delivery
//! seen before inserts nothing, however close the two deliveries arrive.
//!
//! The database carries a schema version, and [`History::open`] upgrades an
//! older one in place (see [`migrations`]: every schema change is a
//! migration, tested from the version before it); a newer one is refused.
//! Builds of the old service come in through [`History::import`], read from
//! its database by [`legacy`].

pub mod legacy;
pub mod migrations;
pub mod statuses;

pub use migrations::SCHEMA_VERSION;
pub use statuses::{NewStatus, QueuedStatus, StatusDelivery, StatusState};

use crate::PhaseTimings;
use rusqlite::{params, Connection, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildStatus {
    /// Waiting for a free slot.
    Queued,
    /// Fetching the source, preparing the container.
    Initializing,
    /// A kernel build's `initializing`: the old kernel pipeline's word.
    Preparing,
    /// The build script runs.
    Building,
    /// A kernel build's container is committed as its base image.
    Committing,
    /// Finished, artifact published.
    Success,
    /// Finished without an artifact, for the reason in `error`.
    Error,
    /// Stopped by a newer push or by hand.
    Cancelled,
}

impl BuildStatus {
    /// The word stored and shown: `queued`, `building`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Initializing => "initializing",
            BuildStatus::Preparing => "preparing",
            BuildStatus::Building => "building",
            BuildStatus::Committing => "committing",
            BuildStatus::Success => "success",
            BuildStatus::Error => "error",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `word`.
    pub fn from_name(word: &str) -> Option<BuildStatus> {
        Some(match word {
            "queued" => BuildStatus::Queued,
            "initializing" => BuildStatus::Initializing,
            "preparing" => BuildStatus::Preparing,
            "building" => BuildStatus::Building,
            "committing" => BuildStatus::Committing,
            "success" => BuildStatus::Success,
            "error" => BuildStatus::Error,
            "cancelled" => BuildStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the build has ended (success, error or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BuildStatus::Success | BuildStatus::Error | BuildStatus::Cancelled
        )
    }

    /// Whether a container may exist for it (initializing, preparing,
    /// building or committing).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            BuildStatus::Initializing
                | BuildStatus::Preparing
                | BuildStatus::Building
                | BuildStatus::Committing
        )
    }
}

/// The statuses of running builds, as an SQL list.
const RUNNING_SQL: &str = "'initializing', 'preparing', 'building', 'committing'";

/// Which pipeline a build runs: what the scheduler makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Pipeline {
    /// A build script of the configuration repository (the default).
    #[default]
    Flist,
    /// A kernel target's build.
    Kernel,
    /// A load of the configuration repository.
    Reload,
}

impl Pipeline {
    /// The word stored: `flist`, `kernel` or `reload`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::Flist => "flist",
            Pipeline::Kernel => "kernel",
            Pipeline::Reload => "reload",
        }
    }

    /// The pipeline `word` names; `flist` for any other word.
    pub fn parse(word: &str) -> Pipeline {
        match word {
            "kernel" => Pipeline::Kernel,
            "reload" => Pipeline::Reload,
            _ => Pipeline::Flist,
        }
    }
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which publisher took a build's artifact: what the old JSON's `artifact`
/// prefix (`flist/`, `binary/`, `kernel/`) is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArtifactKind {
    /// A file in the server's local artifact directory (no hub configured).
    Local,
    /// A flist on the Zero-OS Hub.
    Flist,
    /// A file in the binary directory.
    Binary,
    /// A kernel in the kernel directory.
    Kernel,
}

impl ArtifactKind {
    /// The word stored: `local`, `flist`, `binary` or `kernel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Local => "local",
            ArtifactKind::Flist => "flist",
            ArtifactKind::Binary => "binary",
            ArtifactKind::Kernel => "kernel",
        }
    }

    /// The kind `word` names; None for any other word.
    pub fn parse(word: &str) -> Option<ArtifactKind> {
        Some(match word {
            "local" => ArtifactKind::Local,
            "flist" => ArtifactKind::Flist,
            "binary" => ArtifactKind::Binary,
            "kernel" => ArtifactKind::Kernel,
            _ => return None,
        })
    }
}

/// Where a moving link points, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkRecord {
    /// The publisher's kind: links of different publishers are apart.
    pub kind: ArtifactKind,
    /// The link's name.
    pub name: String,
    /// What it points at.
    pub target: String,
    /// The build that moved it.
    pub build_id: String,
    /// When (unix seconds).
    pub moved: i64,
}

/// A build to record, before it has an id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewBuild {
    /// `owner/repo/branch`.
    pub name: String,
    /// `owner/repo`.
    pub repository: String,
    /// The branch.
    pub branch: String,
    /// The commit to build (40 hex digits).
    pub commit: String,
    /// The push's `commits` array, as JSON text (`[]` when there is none).
    pub commits: String,
    /// The artifact's extra name part.
    pub tag: Option<String>,
    /// The image the script runs in.
    pub baseimage: String,
    /// The script, relative to the repository.
    pub script: String,
    /// The pipeline it runs.
    pub pipeline: Pipeline,
}

impl NewBuild {
    /// A build of `script` at `commit` of `repository`'s `branch`.
    pub fn new(
        repository: impl Into<String>,
        branch: impl Into<String>,
        commit: impl Into<String>,
        script: impl Into<String>,
        baseimage: impl Into<String>,
    ) -> NewBuild {
        let repository = repository.into();
        let branch = branch.into();
        NewBuild {
            name: format!("{repository}/{branch}"),
            repository,
            branch,
            commit: commit.into(),
            commits: "[]".into(),
            tag: None,
            baseimage: baseimage.into(),
            script: script.into(),
            pipeline: Pipeline::Flist,
        }
    }
}

/// One build as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildRecord {
    /// Unique, letters, digits and `-`: safe in paths and container names.
    pub id: String,
    /// `owner/repo/branch`.
    pub name: String,
    /// `owner/repo`.
    pub repository: String,
    /// The branch.
    pub branch: String,
    /// The commit built.
    pub commit: String,
    /// The push's `commits` array, as JSON text.
    pub commits: String,
    /// The artifact's extra name part.
    pub tag: Option<String>,
    /// The image the script runs in.
    pub baseimage: String,
    /// The script, relative to the repository.
    pub script: String,
    /// Where it is.
    pub status: BuildStatus,
    /// When it was recorded (unix seconds).
    pub queued: i64,
    /// When it left the queue (unix seconds).
    pub started: Option<i64>,
    /// When it ended (unix seconds).
    pub ended: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The published artifact's name.
    pub artifact: Option<String>,
    /// The webhook delivery that asked for it.
    pub delivery_id: Option<String>,
    /// The container's id, once there is one.
    pub container_id: Option<String>,
    /// Which publisher took the artifact; None for builds published before
    /// it was recorded (local files) and for builds without an artifact.
    pub artifact_kind: Option<ArtifactKind>,
    /// Where the artifact went: a path or a URL.
    pub artifact_location: Option<String>,
    /// The moving link this build pointed at its artifact, if it moved one.
    pub link: Option<String>,
    /// The pipeline it runs.
    pub pipeline: Pipeline,
    /// How long each phase of the build took (recorded when it ended);
    /// empty for builds that ran none, or ended before phases were
    /// recorded.
    pub phases: PhaseTimings,
}

/// A finished build of another service (the old autobuilder), recorded
/// with its own id by [`History::import`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedBuild {
    /// Its id there, kept so that links to it keep working; it must pass
    /// [`is_valid_build_id`].
    pub id: String,
    /// `owner/repo/branch`, or `Configuration reloader`.
    pub name: String,
    /// `owner/repo`, or empty when unknown.
    pub repository: String,
    /// The branch, or empty when unknown.
    pub branch: String,
    /// The commit built, or empty when unknown.
    pub commit: String,
    /// The push's `commits` array, as JSON text (`[]` when there is none).
    pub commits: String,
    /// The artifact's extra name part.
    pub tag: Option<String>,
    /// The image the script ran in, or empty when unknown.
    pub baseimage: String,
    /// The script, or empty when unknown.
    pub script: String,
    /// How it ended: a finished status.
    pub status: BuildStatus,
    /// When it was recorded (unix seconds).
    pub queued: i64,
    /// When it started (unix seconds).
    pub started: Option<i64>,
    /// When it ended (unix seconds).
    pub ended: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The published artifact's name.
    pub artifact: Option<String>,
}

impl ImportedBuild {
    /// Build `id` named `name`, ended with `status`, recorded at `queued`;
    /// every other field empty.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        status: BuildStatus,
        queued: i64,
    ) -> ImportedBuild {
        ImportedBuild {
            id: id.into(),
            name: name.into(),
            repository: String::new(),
            branch: String::new(),
            commit: String::new(),
            commits: "[]".into(),
            tag: None,
            baseimage: String::new(),
            script: String::new(),
            status,
            queued,
            started: None,
            ended: None,
            error: None,
            artifact: None,
        }
    }
}

/// What [`History::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The delivery id was seen before: nothing was recorded.
    Duplicate,
    /// The builds were recorded as `queued`, in the order given.
    Queued(Vec<BuildRecord>),
}

/// A change to a recorded build; fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildUpdate {
    /// The new status.
    pub status: Option<BuildStatus>,
    /// Sets `started`.
    pub started: Option<i64>,
    /// Sets `ended`.
    pub ended: Option<i64>,
    /// Sets `error`.
    pub error: Option<String>,
    /// Sets `artifact`.
    pub artifact: Option<String>,
    /// Sets `container_id`.
    pub container_id: Option<String>,
    /// Sets `artifact_kind`.
    pub artifact_kind: Option<ArtifactKind>,
    /// Sets `artifact_location`.
    pub artifact_location: Option<String>,
    /// Sets `link`.
    pub link: Option<String>,
    /// Sets `phases` (when not empty).
    pub phases: Option<PhaseTimings>,
}

impl BuildUpdate {
    /// A change of status only.
    pub fn status(status: BuildStatus) -> BuildUpdate {
        BuildUpdate {
            status: Some(status),
            ..Default::default()
        }
    }

    /// The build left the queue now.
    pub fn started(status: BuildStatus) -> BuildUpdate {
        BuildUpdate {
            status: Some(status),
            started: Some(now()),
            ..Default::default()
        }
    }

    /// The build ended now with `status`.
    pub fn finished(
        status: BuildStatus,
        error: Option<String>,
        artifact: Option<String>,
    ) -> BuildUpdate {
        BuildUpdate {
            status: Some(status),
            ended: Some(now()),
            error,
            artifact,
            ..Default::default()
        }
    }

    /// Also records where the artifact went and the link moved onto it.
    pub fn published(
        mut self,
        kind: ArtifactKind,
        location: impl Into<String>,
        link: Option<String>,
    ) -> BuildUpdate {
        self.artifact_kind = Some(kind);
        self.artifact_location = Some(location.into());
        self.link = link;
        self
    }

    /// Also records how long each phase took.
    pub fn phases(mut self, phases: PhaseTimings) -> BuildUpdate {
        self.phases = (!phases.is_empty()).then_some(phases);
        self
    }

    /// Records the container's id.
    pub fn container(id: impl Into<String>) -> BuildUpdate {
        BuildUpdate {
            container_id: Some(id.into()),
            ..Default::default()
        }
    }
}

/// The history database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Opening or preparing the database file failed.
    #[error("cannot open the build history {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database's directory could not be created.
    #[error("cannot create the build history's directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A query failed.
    #[error("build history {}: cannot {action}: {source}", path.display())]
    Query {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. `update build 1a2b`.
        action: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A row holds a status this version does not know (a newer version wrote it).
    #[error("build history {}: build {id} has an unknown status {status:?}", path.display())]
    UnknownStatus {
        /// The database file.
        path: PathBuf,
        /// The build.
        id: String,
        /// What the row holds.
        status: String,
    },
    /// The database was written by a newer version of zos-build (its schema
    /// version is past [`SCHEMA_VERSION`]); it was left unchanged.
    #[error(
        "build history {} has schema version {found}, newer than this zos-build supports \
         (up to {supported}): a newer zos-build wrote it; it was left unchanged. Run that \
         version, or restore the backup made before the upgrade",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this code knows.
        supported: u32,
    },
    /// [`History::import`] was given a build it cannot record as it is.
    #[error("build history {}: cannot import build {id:?}: {reason}", path.display())]
    InvalidImport {
        /// The database file.
        path: PathBuf,
        /// The build's id, as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The blocking task running the query did not finish (the runtime shut down).
    #[error("build history task failed: {0}")]
    Task(String),
}

/// The message given to builds found running at start-up.
pub const INTERRUPTED: &str = "interrupted by restart";

const COLUMNS: &str = "id, name, repository, branch, commit_sha, commits, tag, baseimage, script, \
     status, queued, started, ended, error, artifact, delivery_id, container_id, \
     artifact_kind, artifact_location, link, pipeline, phases";

/// The build history, cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct History {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl History {
    /// Opens (or creates) the database at `path`, and its parent directory.
    pub async fn open(path: impl Into<PathBuf>) -> Result<History, HistoryError> {
        let path = path.into();
        let for_task = path.clone();
        let connection = tokio::task::spawn_blocking(move || open_blocking(&for_task))
            .await
            .map_err(|e| HistoryError::Task(e.to_string()))??;
        Ok(History {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        action: impl Into<String>,
        f: impl FnOnce(&mut Connection, &Path) -> Result<T, HistoryError> + Send + 'static,
    ) -> Result<T, HistoryError> {
        let connection = self.connection.clone();
        let path = self.path.clone();
        let action = action.into();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard, &path)
        })
        .await
        .map_err(|e| HistoryError::Task(format!("{action}: {e}")))?
    }

    /// Records the builds of one push as `queued`, unless `delivery_id` was
    /// seen before. Both happen in one transaction.
    pub async fn enqueue(
        &self,
        delivery_id: Option<String>,
        builds: Vec<NewBuild>,
    ) -> Result<Enqueued, HistoryError> {
        self.enqueue_unless_replayed(delivery_id, builds, None)
            .await
    }

    /// Like [`History::enqueue`], and also records nothing (answering
    /// [`Enqueued::Duplicate`]) when a build of the same repository, branch,
    /// commit and pipeline is queued or running, or was queued less than
    /// `replay_window` ago and not cancelled: a push delivered again under a
    /// new delivery id (a replay) starts nothing and cancels nothing.
    pub async fn enqueue_unless_replayed(
        &self,
        delivery_id: Option<String>,
        builds: Vec<NewBuild>,
        replay_window: Option<std::time::Duration>,
    ) -> Result<Enqueued, HistoryError> {
        self.with("record a push", move |connection, path| {
            let query = |action: &str| {
                let action = action.to_string();
                let path = path.to_path_buf();
                move |source| HistoryError::Query {
                    path,
                    action,
                    source,
                }
            };
            let tx = connection
                .transaction()
                .map_err(query("begin a transaction"))?;
            let received = now();
            if let Some(delivery) = &delivery_id {
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO deliveries (delivery_id, received) VALUES (?1, ?2)",
                        params![delivery, received],
                    )
                    .map_err(query("record the delivery id"))?;
                if inserted == 0 {
                    return Ok(Enqueued::Duplicate);
                }
            }
            if let (Some(window), Some(first)) = (replay_window, builds.first()) {
                let since =
                    received.saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
                let seen: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM builds \
                         WHERE repository = ?1 AND branch = ?2 AND commit_sha = ?3 \
                         AND pipeline = ?5 AND status != 'cancelled' \
                         AND (status IN ('queued', 'initializing', 'preparing', 'building', \
                         'committing') OR queued >= ?4))",
                        params![
                            first.repository,
                            first.branch,
                            first.commit,
                            since,
                            first.pipeline.as_str()
                        ],
                        |row| row.get(0),
                    )
                    .map_err(query("look for an earlier build of the commit"))?;
                if seen {
                    return Ok(Enqueued::Duplicate);
                }
            }
            let mut records = Vec::with_capacity(builds.len());
            for build in builds {
                let id = new_id();
                tx.execute(
                    "INSERT INTO builds (id, name, repository, branch, commit_sha, commits, tag, \
                     baseimage, script, status, queued, delivery_id, pipeline) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        id,
                        build.name,
                        build.repository,
                        build.branch,
                        build.commit,
                        build.commits,
                        build.tag,
                        build.baseimage,
                        build.script,
                        BuildStatus::Queued.as_str(),
                        received,
                        delivery_id,
                        build.pipeline.as_str(),
                    ],
                )
                .map_err(query("insert a build"))?;
                records.push(BuildRecord {
                    id,
                    name: build.name,
                    repository: build.repository,
                    branch: build.branch,
                    commit: build.commit,
                    commits: build.commits,
                    tag: build.tag,
                    baseimage: build.baseimage,
                    script: build.script,
                    status: BuildStatus::Queued,
                    queued: received,
                    started: None,
                    ended: None,
                    error: None,
                    artifact: None,
                    delivery_id: delivery_id.clone(),
                    container_id: None,
                    artifact_kind: None,
                    artifact_location: None,
                    link: None,
                    pipeline: build.pipeline,
                    phases: PhaseTimings::new(),
                });
            }
            tx.commit().map_err(query("commit a push"))?;
            Ok(Enqueued::Queued(records))
        })
        .await
    }

    /// Records a finished build of another service with its own id; false
    /// (and nothing changed) when a build with that id is recorded already,
    /// so an import can run again.
    ///
    /// The build is recorded as older than every build recorded so far (it
    /// comes before them in every list, and is never the latest of its
    /// branch): import the newest first, and a history is recorded in its
    /// own order, before the builds this server made.
    ///
    /// Refused ([`HistoryError::InvalidImport`]) when the id is not a valid
    /// build id or the status is not a finished one: an imported build is
    /// never resumed or run.
    pub async fn import(&self, build: ImportedBuild) -> Result<bool, HistoryError> {
        let invalid = if !is_valid_build_id(&build.id) {
            Some("not a valid build id")
        } else if !build.status.is_finished() {
            Some("only finished builds can be imported")
        } else {
            None
        };
        if let Some(reason) = invalid {
            return Err(HistoryError::InvalidImport {
                path: self.path.clone(),
                id: build.id,
                reason,
            });
        }
        let action = format!("import build {}", build.id);
        self.with(action.clone(), move |connection, path| {
            let query = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: action.clone(),
                source,
            };
            let tx = connection.transaction().map_err(query)?;
            let present: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM builds WHERE id = ?1)",
                    [&build.id],
                    |row| row.get(0),
                )
                .map_err(query)?;
            if present {
                return Ok(false);
            }
            // Below every seq so far (0 and negative seqs are valid rowids;
            // AUTOINCREMENT goes on counting up from the largest).
            let seq: i64 = tx
                .query_row(
                    "SELECT MIN(COALESCE(MIN(seq), 1), 1) - 1 FROM builds",
                    [],
                    |row| row.get(0),
                )
                .map_err(query)?;
            tx.execute(
                "INSERT INTO builds (seq, id, name, repository, branch, commit_sha, commits, tag, \
                 baseimage, script, status, queued, started, ended, error, artifact, pipeline) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 CASE WHEN ?3 = 'Configuration reloader' THEN 'reload' \
                      WHEN ?16 LIKE 'kernel/%' OR ?16 LIKE '%.efi' THEN 'kernel' \
                      ELSE 'flist' END)",
                params![
                    seq,
                    build.id,
                    build.name,
                    build.repository,
                    build.branch,
                    build.commit,
                    build.commits,
                    build.tag,
                    build.baseimage,
                    build.script,
                    build.status.as_str(),
                    build.queued,
                    build.started,
                    build.ended,
                    build.error,
                    build.artifact,
                ],
            )
            .map_err(query)?;
            tx.commit().map_err(query)?;
            Ok(true)
        })
        .await
    }

    /// Applies `update` to build `id`; false when there is no such build.
    pub async fn update(&self, id: &str, update: BuildUpdate) -> Result<bool, HistoryError> {
        let id = id.to_string();
        self.with(format!("update build {id}"), move |connection, path| {
            let changed = connection
                .execute(
                    "UPDATE builds SET \
                     status = COALESCE(?2, status), started = COALESCE(?3, started), \
                     ended = COALESCE(?4, ended), error = COALESCE(?5, error), \
                     artifact = COALESCE(?6, artifact), container_id = COALESCE(?7, container_id), \
                     artifact_kind = COALESCE(?8, artifact_kind), \
                     artifact_location = COALESCE(?9, artifact_location), \
                     link = COALESCE(?10, link), phases = COALESCE(?11, phases) \
                     WHERE id = ?1",
                    params![
                        id,
                        update.status.map(BuildStatus::as_str),
                        update.started,
                        update.ended,
                        update.error,
                        update.artifact,
                        update.container_id,
                        update.artifact_kind.map(ArtifactKind::as_str),
                        update.artifact_location,
                        update.link,
                        update.phases.map(|p| p.to_json().to_string()),
                    ],
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: format!("update build {id}"),
                    source,
                })?;
            Ok(changed > 0)
        })
        .await
    }

    /// Whether build `id` may move link `name` of `kind`: true unless the
    /// link already points at the artifact of a newer push (a build recorded
    /// after `id`). This is what makes links move forward only, across
    /// restarts. An unknown build may not.
    pub async fn link_may_move(
        &self,
        kind: ArtifactKind,
        name: &str,
        id: &str,
    ) -> Result<bool, HistoryError> {
        let (name, id) = (name.to_string(), id.to_string());
        self.with(format!("look up link {name}"), move |connection, path| {
            connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM builds WHERE id = ?3) \
                     AND NOT EXISTS (SELECT 1 FROM links WHERE kind = ?1 AND name = ?2 \
                       AND build_seq > (SELECT seq FROM builds WHERE id = ?3))",
                    params![kind.as_str(), name, id],
                    |row| row.get(0),
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: format!("look up link {name}"),
                    source,
                })
        })
        .await
    }

    /// Records that build `id` pointed link `name` of `kind` at `target`,
    /// unless a newer build already did; false then (or for an unknown build).
    pub async fn record_link(
        &self,
        kind: ArtifactKind,
        name: &str,
        target: &str,
        id: &str,
    ) -> Result<bool, HistoryError> {
        let (name, target, id) = (name.to_string(), target.to_string(), id.to_string());
        self.with(format!("record link {name}"), move |connection, path| {
            let changed = connection
                .execute(
                    "INSERT INTO links (kind, name, target, build_seq, build_id, moved) \
                     SELECT ?1, ?2, ?3, seq, id, ?5 FROM builds WHERE id = ?4 \
                     ON CONFLICT (kind, name) DO UPDATE SET target = excluded.target, \
                       build_seq = excluded.build_seq, build_id = excluded.build_id, \
                       moved = excluded.moved \
                     WHERE excluded.build_seq >= links.build_seq",
                    params![kind.as_str(), name, target, id, now()],
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: format!("record link {name}"),
                    source,
                })?;
            Ok(changed > 0)
        })
        .await
    }

    /// Every recorded link, by kind and name.
    pub async fn links(&self) -> Result<Vec<LinkRecord>, HistoryError> {
        self.with("list links", |connection, path| {
            let query = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "list links".into(),
                source,
            };
            let mut statement = connection
                .prepare(
                    "SELECT kind, name, target, build_id, moved FROM links ORDER BY kind, name",
                )
                .map_err(query)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        LinkRecord {
                            kind: ArtifactKind::Local,
                            name: row.get(1)?,
                            target: row.get(2)?,
                            build_id: row.get(3)?,
                            moved: row.get(4)?,
                        },
                    ))
                })
                .map_err(query)?;
            let mut links = Vec::new();
            for row in rows {
                let (kind, mut link) = row.map_err(query)?;
                if let Some(kind) = ArtifactKind::parse(&kind) {
                    link.kind = kind;
                    links.push(link);
                }
            }
            Ok(links)
        })
        .await
    }

    /// At start-up: marks every build left `initializing` or `building` by a
    /// previous process as `error` ("interrupted by restart") and returns them
    /// as they were (their `container_id` says what to sweep).
    pub async fn mark_interrupted(&self) -> Result<Vec<BuildRecord>, HistoryError> {
        self.with("mark interrupted builds", |connection, path| {
            let running = format!("status IN ({RUNNING_SQL})");
            let tx = connection
                .transaction()
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "begin a transaction".into(),
                    source,
                })?;
            let records = select(
                &tx,
                path,
                &format!("SELECT {COLUMNS} FROM builds WHERE {running} ORDER BY seq"),
                [],
            )?;
            tx.execute(
                &format!(
                    "UPDATE builds SET status = 'error', error = ?1, ended = ?2 WHERE {running}"
                ),
                params![INTERRUPTED, now()],
            )
            .and_then(|_| tx.commit())
            .map_err(|source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "mark interrupted builds".into(),
                source,
            })?;
            Ok(records)
        })
        .await
    }

    /// The build `id`.
    pub async fn get(&self, id: &str) -> Result<Option<BuildRecord>, HistoryError> {
        let id = id.to_string();
        self.with("read a build", move |connection, path| {
            let mut found = select(
                connection,
                path,
                &format!("SELECT {COLUMNS} FROM builds WHERE id = ?1"),
                [id],
            )?;
            Ok(found.pop())
        })
        .await
    }

    /// The newest build named `name` (`owner/repo/branch`), finished or not.
    pub async fn latest_for_name(&self, name: &str) -> Result<Option<BuildRecord>, HistoryError> {
        let name = name.to_string();
        self.with(
            "read the latest build of a branch",
            move |connection, path| {
                let mut found = select(
                    connection,
                    path,
                    &format!(
                        "SELECT {COLUMNS} FROM builds WHERE name = ?1 ORDER BY seq DESC LIMIT 1"
                    ),
                    [name],
                )?;
                Ok(found.pop())
            },
        )
        .await
    }

    /// Builds not finished (queued, initializing, building), oldest first.
    pub async fn active(&self) -> Result<Vec<BuildRecord>, HistoryError> {
        self.with("list active builds", |connection, path| {
            select(
                connection,
                path,
                &format!(
                    "SELECT {COLUMNS} FROM builds \
                     WHERE status IN ('queued', {RUNNING_SQL}) ORDER BY seq"
                ),
                [],
            )
        })
        .await
    }

    /// Queued builds, oldest first (to resume them at start-up).
    pub async fn queued(&self) -> Result<Vec<BuildRecord>, HistoryError> {
        self.with("list queued builds", |connection, path| {
            select(
                connection,
                path,
                &format!("SELECT {COLUMNS} FROM builds WHERE status = 'queued' ORDER BY seq"),
                [],
            )
        })
        .await
    }

    /// Finished builds, newest first: `per_page` of them from page `page` (0-based).
    pub async fn finished(
        &self,
        page: u64,
        per_page: u64,
    ) -> Result<Vec<BuildRecord>, HistoryError> {
        let limit = i64::try_from(per_page).unwrap_or(i64::MAX);
        let offset = i64::try_from(page.saturating_mul(per_page)).unwrap_or(i64::MAX);
        self.with("list finished builds", move |connection, path| {
            select(
                connection,
                path,
                &format!(
                    "SELECT {COLUMNS} FROM builds \
                     WHERE status IN ('success', 'error', 'cancelled') \
                     ORDER BY seq DESC LIMIT ?1 OFFSET ?2"
                ),
                params![limit, offset],
            )
        })
        .await
    }

    /// The newest `limit` builds of any status, newest first; only those
    /// named `name` (`owner/repo/branch`) when given.
    pub async fn recent(
        &self,
        name: Option<&str>,
        limit: u64,
    ) -> Result<Vec<BuildRecord>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let name = name.map(str::to_string);
        self.with("list recent builds", move |connection, path| {
            select(
                connection,
                path,
                &format!(
                    "SELECT {COLUMNS} FROM builds \
                     WHERE ?1 IS NULL OR name = ?1 ORDER BY seq DESC LIMIT ?2"
                ),
                params![name, limit],
            )
        })
        .await
    }

    /// One page of builds, newest first: at most `limit` of them, only the
    /// finished ones when `finished_only`, only those named `name` when
    /// given, and only those recorded before build `before` when given.
    ///
    /// `before` is the id of the last build of the previous page: a cursor
    /// rather than an offset, so that builds recorded while a client pages
    /// through never make it see a build twice. A `before` that names no
    /// build gives an empty page (check it with [`History::get`] first to
    /// tell the two apart).
    pub async fn page(
        &self,
        name: Option<&str>,
        finished_only: bool,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<BuildRecord>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let name = name.map(str::to_string);
        let before = before.map(str::to_string);
        self.with("list a page of builds", move |connection, path| {
            select(
                connection,
                path,
                &format!(
                    "SELECT {COLUMNS} FROM builds \
                     WHERE (?1 IS NULL OR name = ?1) \
                     AND (?2 = 0 OR status IN ('success', 'error', 'cancelled')) \
                     AND (?3 IS NULL OR seq < (SELECT seq FROM builds WHERE id = ?3)) \
                     ORDER BY seq DESC LIMIT ?4"
                ),
                params![name, finished_only, before, limit],
            )
        })
        .await
    }

    /// How many builds there are of each status.
    pub async fn count_by_status(&self) -> Result<Vec<(String, u64)>, HistoryError> {
        self.with("count builds by status", |connection, path| {
            let query_error = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "count builds by status".into(),
                source,
            };
            let mut statement = connection
                .prepare("SELECT status, COUNT(*) FROM builds GROUP BY status ORDER BY status")
                .map_err(query_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?.max(0) as u64,
                    ))
                })
                .map_err(query_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
        })
        .await
    }

    /// How many builds have finished.
    pub async fn finished_count(&self) -> Result<u64, HistoryError> {
        self.with("count finished builds", |connection, path| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM builds WHERE status IN ('success', 'error', 'cancelled')",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "count finished builds".into(),
                    source,
                })
        })
        .await
    }

    /// Ids of the finished builds that are not among the `keep` newest of
    /// their name (repository and branch), oldest first: the builds whose
    /// logs retention may delete. Their rows stay.
    pub async fn beyond_kept(&self, keep: usize) -> Result<Vec<String>, HistoryError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.with("list builds beyond retention", move |connection, path| {
            let query_error = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "list builds beyond retention".into(),
                source,
            };
            let mut statement = connection
                .prepare(
                    "SELECT id FROM (SELECT id, seq, ROW_NUMBER() OVER \
                     (PARTITION BY name ORDER BY seq DESC) AS newer \
                     FROM builds WHERE status IN ('success', 'error', 'cancelled')) \
                     WHERE newer > ?1 ORDER BY seq",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![keep], |row| row.get::<_, String>(0))
                .map_err(query_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_error)
        })
        .await
    }

    /// Forgets the webhook delivery ids received more than `age` ago (a
    /// redelivery that old is caught by the replay check, if at all), and
    /// returns how many were removed.
    pub async fn prune_deliveries(&self, age: std::time::Duration) -> Result<usize, HistoryError> {
        let before = now().saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        self.with("prune old deliveries", move |connection, path| {
            connection
                .execute(
                    "DELETE FROM deliveries WHERE received < ?1",
                    params![before],
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "prune old deliveries".into(),
                    source,
                })
        })
        .await
    }
}

fn open_blocking(path: &Path) -> Result<Connection, HistoryError> {
    let open_error = |source| HistoryError::Open {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| HistoryError::Directory {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut connection = Connection::open(path).map_err(open_error)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_error)?;
    // Before anything is written, not even the journal mode: a database of
    // a newer version is left exactly as it is.
    migrations::refuse_newer(&connection, path, SCHEMA_VERSION)?;
    // WAL: readers never wait for the writer, and a commit is durable once
    // it is in the log. NORMAL sync is safe in WAL mode against a process
    // crash (kill -9); only a power loss can lose the last commits.
    // Switching to WAL takes a lock that SQLite does not wait for (no busy
    // handler): another process upgrading the schema at this moment answers
    // "database is locked" at once. Wait for it, as busy_timeout would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(open_error(e)),
        }
    }
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_error)?;
    migrations::migrate(&mut connection, path)?;
    Ok(connection)
}

fn select<P: rusqlite::Params>(
    connection: &Connection,
    path: &Path,
    sql: &str,
    params: P,
) -> Result<Vec<BuildRecord>, HistoryError> {
    let query_error = |source| HistoryError::Query {
        path: path.to_path_buf(),
        action: "read builds".into(),
        source,
    };
    let mut statement = connection.prepare_cached(sql).map_err(query_error)?;
    let rows = statement
        .query_map(params, raw_row)
        .map_err(query_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(query_error)?;
    rows.into_iter()
        .map(|(record, status)| match BuildStatus::from_name(&status) {
            Some(status) => Ok(BuildRecord { status, ..record }),
            None => Err(HistoryError::UnknownStatus {
                path: path.to_path_buf(),
                id: record.id,
                status,
            }),
        })
        .collect()
}

/// A row, with its status still as text (checked by the caller).
fn raw_row(row: &Row<'_>) -> rusqlite::Result<(BuildRecord, String)> {
    let status: String = row.get(9)?;
    Ok((
        BuildRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            repository: row.get(2)?,
            branch: row.get(3)?,
            commit: row.get(4)?,
            commits: row.get(5)?,
            tag: row.get(6)?,
            baseimage: row.get(7)?,
            script: row.get(8)?,
            status: BuildStatus::Queued,
            queued: row.get(10)?,
            started: row.get(11)?,
            ended: row.get(12)?,
            error: row.get(13)?,
            artifact: row.get(14)?,
            delivery_id: row.get(15)?,
            container_id: row.get(16)?,
            artifact_kind: row
                .get::<_, Option<String>>(17)?
                .as_deref()
                .and_then(ArtifactKind::parse),
            artifact_location: row.get(18)?,
            link: row.get(19)?,
            pipeline: Pipeline::parse(&row.get::<_, String>(20)?),
            // Written by this code only; text it cannot read (edited by
            // hand) counts as no phases rather than hiding the build.
            phases: row
                .get::<_, Option<String>>(21)?
                .as_deref()
                .and_then(PhaseTimings::from_json)
                .unwrap_or_default(),
        },
        status,
    ))
}

/// A new build id: the time in milliseconds and 32 random bits, in hex
/// (`18c4f2a9b10-5e3a9c1f`). Sortable by creation, unique across processes,
/// and made only of characters that are safe in paths and container names.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    // RandomState is seeded from the operating system's randomness per process;
    // the counter makes two ids of the same process and millisecond differ.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u64(millis);
    format!("{millis:x}-{:08x}", hasher.finish() as u32)
}

/// Whether `id` has the shape of a build id (checked before it is used in a path).
pub fn is_valid_build_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && !id.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(branch: &str, script: &str) -> NewBuild {
        let mut b = NewBuild::new(
            "owner/repo",
            branch,
            "0123456789abcdef0123456789abcdef01234567",
            script,
            "ubuntu:18.04",
        );
        b.commits = r#"[{"id":"0123","message":"first"}]"#.into();
        b.tag = Some("tools".into());
        b
    }

    #[tokio::test]
    async fn a_push_is_recorded_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/history.sqlite3");
        let history = History::open(&path).await.unwrap();
        let Enqueued::Queued(records) = history
            .enqueue(
                Some("d-1".into()),
                vec![build("master", "a.sh"), build("master", "b.sh")],
            )
            .await
            .unwrap()
        else {
            panic!("a new delivery is queued");
        };
        assert_eq!(records.len(), 2);
        assert_ne!(records[0].id, records[1].id);
        assert!(
            records.iter().all(|r| is_valid_build_id(&r.id)),
            "{records:?}"
        );
        assert_eq!(records[0].name, "owner/repo/master");
        let id = records[0].id.clone();
        assert!(history
            .update(&id, BuildUpdate::started(BuildStatus::Building))
            .await
            .unwrap());
        assert!(history
            .update(&id, BuildUpdate::container("c0ffee"))
            .await
            .unwrap());
        assert!(history
            .update(
                &id,
                BuildUpdate::finished(BuildStatus::Success, None, Some("x.tar.gz".into()))
            )
            .await
            .unwrap());
        assert!(!history
            .update("nope", BuildUpdate::status(BuildStatus::Error))
            .await
            .unwrap());
        drop(history);

        let again = History::open(&path).await.unwrap();
        let got = again
            .get(&id)
            .await
            .unwrap()
            .expect("the build is still there");
        assert_eq!(got.status, BuildStatus::Success);
        assert_eq!(got.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(got.artifact.as_deref(), Some("x.tar.gz"));
        assert_eq!(got.commits, r#"[{"id":"0123","message":"first"}]"#);
        assert_eq!(got.tag.as_deref(), Some("tools"));
        assert_eq!(got.delivery_id.as_deref(), Some("d-1"));
        assert!(got.started.is_some() && got.ended.is_some());
        assert_eq!(again.queued().await.unwrap().len(), 1);
        // The WAL mode is persistent, in the file itself.
        let mode: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_repeated_delivery_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let first = history
            .enqueue(Some("same".into()), vec![build("master", "a.sh")])
            .await
            .unwrap();
        assert!(matches!(first, Enqueued::Queued(ref r) if r.len() == 1));
        let second = history
            .enqueue(Some("same".into()), vec![build("master", "a.sh")])
            .await
            .unwrap();
        assert_eq!(second, Enqueued::Duplicate);
        assert_eq!(history.active().await.unwrap().len(), 1);
        // Without a delivery id there is nothing to compare: both are recorded.
        history
            .enqueue(None, vec![build("master", "a.sh")])
            .await
            .unwrap();
        history
            .enqueue(None, vec![build("master", "a.sh")])
            .await
            .unwrap();
        assert_eq!(history.active().await.unwrap().len(), 3);
        // And the delivery id is remembered across a reopen.
        drop(history);
        let again = History::open(dir.path().join("h.db")).await.unwrap();
        let third = again
            .enqueue(Some("same".into()), vec![build("master", "a.sh")])
            .await
            .unwrap();
        assert_eq!(third, Enqueued::Duplicate);
    }

    #[tokio::test]
    async fn running_builds_are_marked_interrupted_and_queued_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let history = History::open(&path).await.unwrap();
        let Enqueued::Queued(records) = history
            .enqueue(
                None,
                vec![
                    build("a", "1.sh"),
                    build("b", "2.sh"),
                    build("c", "3.sh"),
                    build("d", "4.sh"),
                ],
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        history
            .update(ids[0], BuildUpdate::started(BuildStatus::Initializing))
            .await
            .unwrap();
        history
            .update(ids[1], BuildUpdate::started(BuildStatus::Building))
            .await
            .unwrap();
        history
            .update(ids[1], BuildUpdate::container("abc"))
            .await
            .unwrap();
        history
            .update(
                ids[2],
                BuildUpdate::finished(BuildStatus::Success, None, None),
            )
            .await
            .unwrap();
        drop(history);

        let history = History::open(&path).await.unwrap();
        let interrupted = history.mark_interrupted().await.unwrap();
        let interrupted_ids: Vec<&str> = interrupted.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(interrupted_ids, [ids[0], ids[1]]);
        assert_eq!(interrupted[1].container_id.as_deref(), Some("abc"));
        for id in &ids[..2] {
            let r = history.get(id).await.unwrap().unwrap();
            assert_eq!(r.status, BuildStatus::Error);
            assert_eq!(r.error.as_deref(), Some(INTERRUPTED));
            assert!(r.ended.is_some());
        }
        assert_eq!(
            history.get(ids[2]).await.unwrap().unwrap().status,
            BuildStatus::Success
        );
        let queued = history.queued().await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id, ids[3]);
        assert!(history.mark_interrupted().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn finished_builds_are_listed_newest_first_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..7 {
            let Enqueued::Queued(r) = history
                .enqueue(None, vec![build("master", &format!("{i}.sh"))])
                .await
                .unwrap()
            else {
                panic!()
            };
            let status = if i % 2 == 0 {
                BuildStatus::Success
            } else {
                BuildStatus::Error
            };
            history
                .update(&r[0].id, BuildUpdate::finished(status, None, None))
                .await
                .unwrap();
            ids.push(r[0].id.clone());
        }
        // One still queued: never in the finished list.
        history
            .enqueue(None, vec![build("master", "q.sh")])
            .await
            .unwrap();
        assert_eq!(history.finished_count().await.unwrap(), 7);
        let page0: Vec<String> = history
            .finished(0, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let page2: Vec<String> = history
            .finished(2, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(page0, [ids[6].clone(), ids[5].clone(), ids[4].clone()]);
        assert_eq!(page2, [ids[0].clone()]);
        assert!(history.finished(3, 3).await.unwrap().is_empty());
        let latest = history
            .latest_for_name("owner/repo/master")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest.script, "q.sh");
        assert!(history
            .latest_for_name("owner/repo/other")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn recent_builds_of_any_status_and_counts_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let mut ids = Vec::new();
        for (branch, script) in [("master", "a.sh"), ("dev", "b.sh"), ("master", "c.sh")] {
            let Enqueued::Queued(r) = history
                .enqueue(None, vec![build(branch, script)])
                .await
                .unwrap()
            else {
                panic!()
            };
            ids.push(r[0].id.clone());
        }
        history
            .update(
                &ids[0],
                BuildUpdate::finished(BuildStatus::Success, None, None),
            )
            .await
            .unwrap();
        let names = |records: Vec<BuildRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.script).collect()
        };
        assert_eq!(
            names(history.recent(None, 10).await.unwrap()),
            ["c.sh", "b.sh", "a.sh"]
        );
        assert_eq!(
            names(history.recent(Some("owner/repo/master"), 10).await.unwrap()),
            ["c.sh", "a.sh"]
        );
        assert_eq!(names(history.recent(None, 1).await.unwrap()), ["c.sh"]);
        assert!(history
            .recent(Some("owner/repo/none"), 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            history.count_by_status().await.unwrap(),
            [("queued".to_string(), 2), ("success".to_string(), 1)]
        );
    }

    #[tokio::test]
    async fn an_unopenable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let err = History::open(blocker.join("h.db")).await.unwrap_err();
        assert!(matches!(err, HistoryError::Directory { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&blocker.display().to_string()),
            "{err}"
        );
    }

    fn queued(enqueued: Enqueued) -> Vec<BuildRecord> {
        match enqueued {
            Enqueued::Queued(records) => records,
            Enqueued::Duplicate => panic!("expected the builds to be queued"),
        }
    }

    #[tokio::test]
    async fn a_replayed_push_records_nothing_unless_its_build_was_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let window = Some(std::time::Duration::from_secs(3600));
        let first = queued(
            history
                .enqueue_unless_replayed(Some("d-1".into()), vec![build("master", "a.sh")], window)
                .await
                .unwrap(),
        );
        // Another delivery id, same repository, branch and commit: queued.
        let again = history
            .enqueue_unless_replayed(Some("d-2".into()), vec![build("master", "a.sh")], window)
            .await
            .unwrap();
        assert_eq!(again, Enqueued::Duplicate);
        // Finished, within the window: still a replay.
        history
            .update(
                &first[0].id,
                BuildUpdate::finished(BuildStatus::Error, None, None),
            )
            .await
            .unwrap();
        let again = history
            .enqueue_unless_replayed(Some("d-3".into()), vec![build("master", "a.sh")], window)
            .await
            .unwrap();
        assert_eq!(again, Enqueued::Duplicate);
        // The same commit for another pipeline (a kernel target that is
        // also a tracked repository) is another push.
        let mut kernel = build("master", "a.sh");
        kernel.pipeline = Pipeline::Kernel;
        queued(
            history
                .enqueue_unless_replayed(Some("d-3k".into()), vec![kernel], window)
                .await
                .unwrap(),
        );
        // Another branch is another push; no window means no check.
        queued(
            history
                .enqueue_unless_replayed(Some("d-4".into()), vec![build("dev", "a.sh")], window)
                .await
                .unwrap(),
        );
        queued(
            history
                .enqueue(Some("d-5".into()), vec![build("master", "a.sh")])
                .await
                .unwrap(),
        );
        // Cancelled builds do not count: a push back to a superseded commit builds.
        for record in history.active().await.unwrap() {
            history
                .update(
                    &record.id,
                    BuildUpdate::finished(BuildStatus::Cancelled, None, None),
                )
                .await
                .unwrap();
        }
        history
            .update(
                &first[0].id,
                BuildUpdate::finished(BuildStatus::Cancelled, None, None),
            )
            .await
            .unwrap();
        queued(
            history
                .enqueue_unless_replayed(Some("d-6".into()), vec![build("master", "a.sh")], window)
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn retention_lists_finished_builds_beyond_the_newest_of_each_name() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let mut master = Vec::new();
        for _ in 0..4 {
            let records = queued(
                history
                    .enqueue(None, vec![build("master", "a.sh")])
                    .await
                    .unwrap(),
            );
            master.push(records[0].id.clone());
        }
        let dev = queued(
            history
                .enqueue(None, vec![build("dev", "a.sh")])
                .await
                .unwrap(),
        );
        for id in master.iter().take(3).chain([&dev[0].id]) {
            history
                .update(id, BuildUpdate::finished(BuildStatus::Success, None, None))
                .await
                .unwrap();
        }
        // master: 3 finished + 1 queued; keeping 2 leaves the oldest finished one.
        assert_eq!(history.beyond_kept(2).await.unwrap(), [master[0].clone()]);
        assert_eq!(
            history.beyond_kept(1).await.unwrap(),
            [master[0].clone(), master[1].clone()]
        );
        assert!(history.beyond_kept(50).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn old_deliveries_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        queued(
            history
                .enqueue(Some("d-1".into()), vec![build("master", "a.sh")])
                .await
                .unwrap(),
        );
        assert_eq!(
            history
                .prune_deliveries(std::time::Duration::from_secs(60))
                .await
                .unwrap(),
            0
        );
        history
            .with("age the delivery", |connection, _| {
                connection
                    .execute("UPDATE deliveries SET received = received - 31 * 86400", [])
                    .map(|_| ())
                    .map_err(|e| HistoryError::Task(e.to_string()))
            })
            .await
            .unwrap();
        let thirty_days = std::time::Duration::from_secs(30 * 86400);
        assert_eq!(history.prune_deliveries(thirty_days).await.unwrap(), 1);
        // Forgotten: the same delivery id is recorded again.
        queued(
            history
                .enqueue(Some("d-1".into()), vec![build("dev", "a.sh")])
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn imported_builds_keep_their_id_once_and_come_before_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let native = queued(
            history
                .enqueue(None, vec![build("master", "a.sh")])
                .await
                .unwrap(),
        );
        let old = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let older = "0a1b2c3d-4f89-11d3-9a0c-0305e82c3301";
        let mut newest = ImportedBuild::new(old, "owner/repo/master", BuildStatus::Error, 200);
        newest.repository = "owner/repo".into();
        newest.branch = "master".into();
        newest.commit = "0123456789abcdef0123456789abcdef01234567".into();
        newest.commits = r#"[{"id":"0123"}]"#.into();
        newest.tag = Some("tools".into());
        newest.baseimage = "ubuntu:16.04".into();
        newest.started = Some(200);
        newest.ended = Some(260);
        newest.error = Some("artifact not found".into());
        newest.artifact = Some("x.tar.gz".into());
        // Newest first, as an import reads them.
        assert!(history.import(newest.clone()).await.unwrap());
        let oldest = ImportedBuild::new(older, "owner/repo/master", BuildStatus::Success, 100);
        assert!(history.import(oldest.clone()).await.unwrap());
        // Again: nothing changes.
        let mut changed = newest.clone();
        changed.status = BuildStatus::Success;
        assert!(!history.import(changed).await.unwrap());

        let got = history.get(old).await.unwrap().unwrap();
        assert_eq!(
            got,
            BuildRecord {
                id: old.into(),
                name: "owner/repo/master".into(),
                repository: "owner/repo".into(),
                branch: "master".into(),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                commits: r#"[{"id":"0123"}]"#.into(),
                tag: Some("tools".into()),
                baseimage: "ubuntu:16.04".into(),
                script: String::new(),
                status: BuildStatus::Error,
                queued: 200,
                started: Some(200),
                ended: Some(260),
                error: Some("artifact not found".into()),
                artifact: Some("x.tar.gz".into()),
                delivery_id: None,
                container_id: None,
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Flist,
                phases: crate::PhaseTimings::new(),
            }
        );
        // The build this server made stays the newest, and the latest of its
        // branch; the imported ones follow in their own order.
        let order: Vec<String> = history
            .recent(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(order, [native[0].id.as_str(), old, older]);
        assert_eq!(
            history
                .latest_for_name("owner/repo/master")
                .await
                .unwrap()
                .unwrap()
                .id,
            native[0].id
        );
        // And a build recorded after the import is newer than all of them.
        let later = queued(
            history
                .enqueue(None, vec![build("master", "b.sh")])
                .await
                .unwrap(),
        );
        assert_eq!(history.recent(None, 1).await.unwrap(), later);
        assert!(history.queued().await.unwrap().iter().all(|r| r.id != old));
    }

    #[tokio::test]
    async fn an_import_that_could_run_or_escape_its_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        for (id, status) in [
            ("../../etc/x", BuildStatus::Success),
            ("", BuildStatus::Error),
            ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", BuildStatus::Queued),
            (
                "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                BuildStatus::Building,
            ),
        ] {
            let err = history
                .import(ImportedBuild::new(id, "n", status, 1))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, HistoryError::InvalidImport { id: named, .. } if named == id),
                "{err:?}"
            );
        }
        assert!(history.recent(None, 10).await.unwrap().is_empty());
    }

    #[test]
    fn build_ids_are_checked_before_use_in_paths() {
        assert!(is_valid_build_id(&new_id()));
        assert!(!is_valid_build_id("../etc"));
        assert!(!is_valid_build_id(""));
        assert!(!is_valid_build_id("abc/def"));
        // The old service's ids are uuids: kept as they are when imported.
        assert!(is_valid_build_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
        assert_ne!(new_id(), new_id());
    }
}
