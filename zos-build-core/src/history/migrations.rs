//! Schema migrations of the build history: how a database written by an
//! older version of zos-build is brought to this version's schema, in place.
//!
//! Why: installations keep their history across upgrades, and the schema
//! grows (new columns, new tables). The database carries its schema version
//! in `PRAGMA user_version`, a number in the file's header. `MIGRATIONS`
//! is the ordered list of schema changes; migration `n` brings a database of
//! version `n - 1` to version `n`.
//!
//! At every open, the migrations the database has not had yet run in order,
//! in ONE `IMMEDIATE` transaction that also sets `user_version`:
//!
//! - a crash or a failing migration leaves the database at its old version,
//!   whole (SQLite's DDL is transactional);
//! - two processes opening the same file at once take turns on the write
//!   lock, and the second one, re-reading the version inside its
//!   transaction, finds nothing left to do.
//!
//! A database whose version is newer than this code knows is refused with
//! [`HistoryError::NewerSchema`] before anything is written to it: running
//! old code on it could drop what that code does not know, so there is never
//! a silent downgrade.
//!
//! Databases written before versions existed have `user_version` 0 and
//! already hold migration 1's tables, which is why migration 1 is written
//! with `IF NOT EXISTS`: it upgrades them in place. Every later migration
//! may assume the version before it exactly.
//!
//! **Every later schema change adds a migration** at the end of
//! `MIGRATIONS` (a migration that has shipped is never edited) **and
//! extends the upgrade test** below, which opens
//! `tests/fixtures/history-v0.sqlite3`, a database made by the code before
//! versions, and checks that every row and field survived.

use super::HistoryError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Migration {
    /// The version the database has once it is applied (1 for the first).
    pub(super) version: u32,
    /// What it changes, in a few words (named in errors).
    pub(super) description: &'static str,
    /// The statements, run as one batch inside the upgrade's transaction.
    pub(super) sql: &'static str,
}

/// Every schema change, oldest first. Append only.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "builds and webhook deliveries",
        // The schema of the code before versions, unchanged: a database made by
        // it has these already, and IF NOT EXISTS leaves them as they are.
        sql: "
CREATE TABLE IF NOT EXISTS builds (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    repository   TEXT NOT NULL,
    branch       TEXT NOT NULL,
    commit_sha   TEXT NOT NULL,
    commits      TEXT NOT NULL,
    tag          TEXT,
    baseimage    TEXT NOT NULL,
    script       TEXT NOT NULL,
    status       TEXT NOT NULL,
    queued       INTEGER NOT NULL,
    started      INTEGER,
    ended        INTEGER,
    error        TEXT,
    artifact     TEXT,
    delivery_id  TEXT,
    container_id TEXT
);
CREATE INDEX IF NOT EXISTS builds_by_name ON builds(name, seq);
CREATE INDEX IF NOT EXISTS builds_by_status ON builds(status, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    received    INTEGER NOT NULL
);
",
    },
    Migration {
        version: 2,
        description: "where artifacts went, and the moving links",
        // `artifact_kind` says which publisher took the artifact (`local`,
        // `flist`, `binary`, `kernel`): the old JSON's `artifact` prefix is
        // made from it. `links` remembers, per link, the build it points at,
        // so that a link only moves forward across restarts.
        sql: "
ALTER TABLE builds ADD COLUMN artifact_kind TEXT;
ALTER TABLE builds ADD COLUMN artifact_location TEXT;
ALTER TABLE builds ADD COLUMN link TEXT;
CREATE TABLE links (
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    target    TEXT NOT NULL,
    build_seq INTEGER NOT NULL,
    build_id  TEXT NOT NULL,
    moved     INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);
",
    },
    Migration {
        version: 3,
        description: "commit statuses waiting to be sent",
        // The outbox of commit statuses: written when a build changes, sent
        // in order per (repository, sha, context) by the server, kept across
        // restarts. `next_attempt` is in unix milliseconds.
        sql: "
CREATE TABLE commit_statuses (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id     TEXT NOT NULL,
    repository   TEXT NOT NULL,
    sha          TEXT NOT NULL,
    context      TEXT NOT NULL,
    state        TEXT NOT NULL,
    description  TEXT NOT NULL,
    target_url   TEXT,
    queued       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivery     TEXT NOT NULL DEFAULT 'queued'
);
CREATE INDEX commit_statuses_waiting ON commit_statuses(delivery, repository, sha, context, seq);
CREATE INDEX commit_statuses_by_build ON commit_statuses(build_id, seq);
",
    },
    Migration {
        version: 4,
        description: "which pipeline each build runs",
        // Kernel builds join flist builds and configuration reloads; every
        // build recorded before is a flist build, but for the reloads, which
        // were known by their name.
        sql: "
ALTER TABLE builds ADD COLUMN pipeline TEXT NOT NULL DEFAULT 'flist';
UPDATE builds SET pipeline = 'reload' WHERE name = 'Configuration reloader';
",
    },
    Migration {
        version: 5,
        description: "how long each phase of a build took",
        // A JSON object of seconds per phase (`{"fetch":0.031,"run":0.2}`),
        // written with the build's ending; NULL for the builds before, which
        // were not timed.
        sql: "
ALTER TABLE builds ADD COLUMN phases TEXT;
",
    },
];

/// The schema version this code writes and reads: that of the last migration.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The database's `user_version`.
fn user_version(connection: &Connection, path: &Path) -> Result<i64, HistoryError> {
    connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| HistoryError::Query {
            path: path.to_path_buf(),
            action: "read the schema version".into(),
            source,
        })
}

/// Refuses a database written by a newer version (or with a version that is
/// not ours), before anything is written to it; returns its version.
pub(super) fn refuse_newer(
    connection: &Connection,
    path: &Path,
    supported: u32,
) -> Result<i64, HistoryError> {
    let found = user_version(connection, path)?;
    if found < 0 || found > i64::from(supported) {
        return Err(HistoryError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(found)
}

/// Applies the migrations of `MIGRATIONS` the database has not had.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), HistoryError> {
    migrate_with(connection, path, MIGRATIONS)
}

/// Applies the migrations of `migrations` past the database's version, in
/// one immediate transaction, and sets its version to the last one's.
fn migrate_with(
    connection: &mut Connection,
    path: &Path,
    migrations: &[Migration],
) -> Result<(), HistoryError> {
    let latest = migrations.last().map_or(0, |m| m.version);
    // Up to date: no write lock taken, the common case of every start.
    if refuse_newer(connection, path, latest)? == i64::from(latest) {
        return Ok(());
    }
    let query = |action: String| {
        move |source| HistoryError::Query {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(query("begin the schema upgrade".into()))?;
    // Another process may have upgraded it while this one waited for the lock.
    let current = refuse_newer(&tx, path, latest)?;
    let empty = tx
        .query_row("SELECT COUNT(*) = 0 FROM sqlite_master", [], |row| {
            row.get::<_, bool>(0)
        })
        .map_err(query("read the schema".into()))?;
    for migration in migrations.iter().filter(|m| i64::from(m.version) > current) {
        tx.execute_batch(migration.sql).map_err(query(format!(
            "apply schema migration {} ({})",
            migration.version, migration.description
        )))?;
    }
    tx.pragma_update(None, "user_version", latest)
        .map_err(query(format!("set the schema version to {latest}")))?;
    tx.commit().map_err(query(format!(
        "commit the schema upgrade to version {latest}"
    )))?;
    if empty {
        tracing::debug!(path = %path.display(), version = latest, "build history created");
    } else if current < i64::from(latest) {
        tracing::info!(path = %path.display(), from = current, to = latest, "build history schema upgraded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{BuildRecord, BuildStatus, Enqueued, History, NewBuild, Pipeline};

    const FIXTURE_V0: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/history-v0.sqlite3"
    );

    fn version_of(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// Names and SQL of every table and index, to compare schemas.
    fn schema_of(path: &Path) -> Vec<(String, Option<String>)> {
        let connection = Connection::open(path).unwrap();
        let mut statement = connection
            .prepare("SELECT name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn migrations_are_numbered_from_one_in_order() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{migration:?}");
            assert!(!migration.description.is_empty());
        }
        assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    }

    /// The database of the code before versions, upgraded in place: every
    /// build, field by field, and every delivery survived. Each later
    /// migration extends this test with what it adds.
    #[tokio::test]
    async fn a_database_made_before_versions_is_upgraded_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::copy(FIXTURE_V0, &path).unwrap();
        assert_eq!(version_of(&path), 0, "the fixture predates versions");

        let history = History::open(&path).await.unwrap();
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));

        let commits = r#"[{"id":"0123456789abcdef0123456789abcdef01234567","message":"first"}]"#;
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let expected = [
            BuildRecord {
                id: "18bcfe56800-5e3a9c1f".into(),
                name: "owner/repo/master".into(),
                repository: "owner/repo".into(),
                branch: "master".into(),
                commit: sha.into(),
                commits: commits.into(),
                tag: Some("tools".into()),
                baseimage: "ubuntu:18.04".into(),
                script: "autobuild/tools.sh".into(),
                status: BuildStatus::Success,
                queued: 1700000000,
                started: Some(1700000001),
                ended: Some(1700000090),
                error: None,
                artifact: Some("owner-repo-tools-master-0123456789.tar.gz".into()),
                delivery_id: Some("d-1".into()),
                container_id: Some("c0ffee0123456789".into()),
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Flist,
                phases: crate::PhaseTimings::new(),
            },
            BuildRecord {
                id: "18bcfe56800-0a1b2c3d".into(),
                name: "owner/repo/master".into(),
                repository: "owner/repo".into(),
                branch: "master".into(),
                commit: sha.into(),
                commits: commits.into(),
                tag: None,
                baseimage: "ubuntu:18.04".into(),
                script: "autobuild/main.sh".into(),
                status: BuildStatus::Error,
                queued: 1700000000,
                started: Some(1700000002),
                ended: Some(1700000030),
                error: Some("the build script exited with status 2\nsee the log: été".into()),
                artifact: None,
                delivery_id: Some("d-1".into()),
                container_id: Some("abcdef9876543210".into()),
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Flist,
                phases: crate::PhaseTimings::new(),
            },
            BuildRecord {
                id: "18bcfe5a680-77777777".into(),
                name: "owner/repo/dev".into(),
                repository: "owner/repo".into(),
                branch: "dev".into(),
                commit: "89abcdef0123456789abcdef0123456789abcdef".into(),
                commits: "[]".into(),
                tag: None,
                baseimage: "alpine:3".into(),
                script: "build.sh".into(),
                status: BuildStatus::Cancelled,
                queued: 1700001000,
                started: None,
                ended: Some(1700001005),
                error: Some("superseded by a newer push".into()),
                artifact: None,
                delivery_id: None,
                container_id: None,
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Flist,
                phases: crate::PhaseTimings::new(),
            },
            BuildRecord {
                id: "18bcfe5e500-00000001".into(),
                name: "Configuration reloader".into(),
                repository: "owner/config".into(),
                branch: String::new(),
                commit: "fedcba9876543210fedcba9876543210fedcba98".into(),
                commits: "[]".into(),
                tag: None,
                baseimage: String::new(),
                script: String::new(),
                status: BuildStatus::Success,
                queued: 1700002000,
                started: Some(1700002000),
                ended: Some(1700002001),
                error: None,
                artifact: None,
                delivery_id: Some("d-2".into()),
                container_id: None,
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Reload,
                phases: crate::PhaseTimings::new(),
            },
            BuildRecord {
                id: "18bcfe62380-12345678".into(),
                name: "owner/repo/master".into(),
                repository: "owner/repo".into(),
                branch: "master".into(),
                commit: sha.into(),
                commits: commits.into(),
                tag: None,
                baseimage: "ubuntu:18.04".into(),
                script: "autobuild/main.sh".into(),
                status: BuildStatus::Queued,
                queued: 1700003000,
                started: None,
                ended: None,
                error: None,
                artifact: None,
                delivery_id: None,
                container_id: None,
                artifact_kind: None,
                artifact_location: None,
                link: None,
                pipeline: Pipeline::Flist,
                phases: crate::PhaseTimings::new(),
            },
        ];
        for build in &expected {
            assert_eq!(
                history.get(&build.id).await.unwrap().as_ref(),
                Some(build),
                "build {}",
                build.id
            );
        }
        // Nothing more, and in the order they were recorded.
        let mut newest_first: Vec<BuildRecord> = expected.to_vec();
        newest_first.reverse();
        assert_eq!(history.recent(None, 100).await.unwrap(), newest_first);
        assert_eq!(history.queued().await.unwrap(), [expected[4].clone()]);

        // The deliveries survived: both are still recognised as seen.
        for delivery in ["d-1", "d-2"] {
            let again = history
                .enqueue(
                    Some(delivery.into()),
                    vec![NewBuild::new("owner/repo", "master", sha, "a.sh", "x")],
                )
                .await
                .unwrap();
            assert_eq!(again, Enqueued::Duplicate, "delivery {delivery}");
        }
        // And the sequence went on from where it was: a new build is the newest.
        let Enqueued::Queued(new) = history
            .enqueue(
                Some("d-3".into()),
                vec![NewBuild::new("owner/repo", "master", sha, "a.sh", "x")],
            )
            .await
            .unwrap()
        else {
            panic!("a new delivery is recorded");
        };
        assert_eq!(history.recent(None, 1).await.unwrap(), new);
        drop(history);
        let connection = Connection::open(&path).unwrap();
        let deliveries: Vec<(String, i64)> = connection
            .prepare("SELECT delivery_id, received FROM deliveries ORDER BY delivery_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            deliveries[..2],
            [("d-1".into(), 1700000000), ("d-2".into(), 1700002000)]
        );
        assert_eq!(deliveries.len(), 3);
    }

    /// Version 1 (the fixture brought to it by migration 1 alone, as the
    /// code of that version left it) to the latest: the builds are whole,
    /// the new columns empty, no link is recorded yet, and links then move
    /// forward only.
    #[tokio::test]
    async fn a_version_1_database_gains_artifact_kinds_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::copy(FIXTURE_V0, &path).unwrap();
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate_with(&mut connection, &path, &MIGRATIONS[..1]).unwrap();
        }
        assert_eq!(version_of(&path), 1);
        let history = History::open(&path).await.unwrap();
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));

        let old = history.get("18bcfe56800-5e3a9c1f").await.unwrap().unwrap();
        assert_eq!(old.status, BuildStatus::Success);
        assert_eq!(
            old.artifact.as_deref(),
            Some("owner-repo-tools-master-0123456789.tar.gz")
        );
        assert_eq!(
            (old.artifact_kind, old.artifact_location, old.link),
            (None, None, None)
        );
        assert_eq!(history.links().await.unwrap(), []);

        // The queued build (recorded last) moves the link; the older one may
        // not move it back, neither now nor after a reopen.
        let (older, newer) = ("18bcfe56800-5e3a9c1f", "18bcfe62380-12345678");
        let kind = crate::history::ArtifactKind::Flist;
        assert!(history
            .link_may_move(kind, "o-r-m.flist", older)
            .await
            .unwrap());
        assert!(history
            .record_link(kind, "o-r-m.flist", "new.flist", newer)
            .await
            .unwrap());
        drop(history);
        let history = History::open(&path).await.unwrap();
        assert!(!history
            .link_may_move(kind, "o-r-m.flist", older)
            .await
            .unwrap());
        assert!(!history
            .record_link(kind, "o-r-m.flist", "old.flist", older)
            .await
            .unwrap());
        assert!(history
            .link_may_move(kind, "o-r-m.flist", newer)
            .await
            .unwrap());
        // Another publisher's link of the same name is apart.
        let binary = crate::history::ArtifactKind::Binary;
        assert!(history
            .link_may_move(binary, "o-r-m.flist", older)
            .await
            .unwrap());
        // An unknown build moves nothing.
        assert!(!history
            .link_may_move(kind, "x.flist", "nope")
            .await
            .unwrap());
        let links = history.links().await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].target.as_str(), links[0].build_id.as_str()),
            ("new.flist", newer)
        );

        // The new columns are written and read back.
        let update = crate::history::BuildUpdate::finished(
            BuildStatus::Success,
            None,
            Some("a.flist".into()),
        )
        .published(kind, "http://hub/a.flist", Some("o-r-m.flist".into()));
        history.update(newer, update).await.unwrap();
        let got = history.get(newer).await.unwrap().unwrap();
        assert_eq!(got.artifact_kind, Some(kind));
        assert_eq!(got.artifact_location.as_deref(), Some("http://hub/a.flist"));
        assert_eq!(got.link.as_deref(), Some("o-r-m.flist"));
    }

    /// Version 2 to the latest: builds and links whole, the outbox of
    /// commit statuses empty and usable.
    #[tokio::test]
    async fn a_version_2_database_gains_the_commit_status_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::copy(FIXTURE_V0, &path).unwrap();
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate_with(&mut connection, &path, &MIGRATIONS[..2]).unwrap();
            connection
                .execute_batch(
                    "UPDATE builds SET artifact_kind = 'binary', link = 'l.flist' \
                       WHERE id = '18bcfe56800-5e3a9c1f';
                     INSERT INTO links VALUES ('binary', 'l.flist', 't.tar.gz', 1, \
                       '18bcfe56800-5e3a9c1f', 1700000100);",
                )
                .unwrap();
        }
        assert_eq!(version_of(&path), 2);
        let history = History::open(&path).await.unwrap();
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));
        let build = history.get("18bcfe56800-5e3a9c1f").await.unwrap().unwrap();
        assert_eq!(
            build.artifact_kind,
            Some(crate::history::ArtifactKind::Binary)
        );
        assert_eq!(build.link.as_deref(), Some("l.flist"));
        let links = history.links().await.unwrap();
        assert_eq!((links.len(), links[0].target.as_str()), (1, "t.tar.gz"));
        assert_eq!(history.next_status_due().await.unwrap(), None);
        let status = crate::history::NewStatus::new(
            build.id.as_str(),
            "owner/repo",
            build.commit.as_str(),
            "zos-build/autobuild/tools.sh",
            crate::history::StatusState::Success,
            "built in 89 s",
        );
        let seq = history.queue_status(status.clone()).await.unwrap();
        let due = history.due_statuses(i64::MAX, 10).await.unwrap();
        assert_eq!((due[0].seq, &due[0].status), (seq, &status));
    }

    /// Version 3 to the latest: every build says which pipeline it runs,
    /// the reloads known by their name, the rest flist builds.
    #[tokio::test]
    async fn a_version_3_database_learns_each_builds_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::copy(FIXTURE_V0, &path).unwrap();
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate_with(&mut connection, &path, &MIGRATIONS[..3]).unwrap();
        }
        assert_eq!(version_of(&path), 3);
        let history = History::open(&path).await.unwrap();
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));
        let pipelines: Vec<(String, Pipeline)> = history
            .recent(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.name, b.pipeline))
            .collect();
        assert_eq!(pipelines.len(), 5);
        for (name, pipeline) in pipelines {
            let expected = if name == "Configuration reloader" {
                Pipeline::Reload
            } else {
                Pipeline::Flist
            };
            assert_eq!(pipeline, expected, "{name}");
        }
        // New builds record theirs.
        let mut kernel = NewBuild::new("o/k", "master", "0".repeat(40), "k.sh", "ubuntu:18.04");
        kernel.pipeline = Pipeline::Kernel;
        let Enqueued::Queued(records) = history.enqueue(None, vec![kernel]).await.unwrap() else {
            panic!("recorded");
        };
        let got = history.get(&records[0].id).await.unwrap().unwrap();
        assert_eq!(got.pipeline, Pipeline::Kernel);
    }

    /// Version 4 to the latest: every build kept whole, with no phases
    /// (they were not timed), and a build that ends now records its own.
    #[tokio::test]
    async fn a_version_4_database_gains_the_phases_of_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::copy(FIXTURE_V0, &path).unwrap();
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate_with(&mut connection, &path, &MIGRATIONS[..4]).unwrap();
            connection
                .execute_batch(
                    "UPDATE builds SET pipeline = 'kernel', artifact_kind = 'kernel' \
                       WHERE id = '18bcfe56800-5e3a9c1f';",
                )
                .unwrap();
        }
        assert_eq!(version_of(&path), 4);
        let before = {
            let connection = Connection::open(&path).unwrap();
            let count: i64 = connection
                .query_row("SELECT COUNT(*) FROM builds", [], |r| r.get(0))
                .unwrap();
            count
        };
        let history = History::open(&path).await.unwrap();
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));
        let builds = history.recent(None, 100).await.unwrap();
        assert_eq!(builds.len() as i64, before);
        assert!(builds.iter().all(|b| b.phases.is_empty()), "{builds:?}");
        let kernel = history.get("18bcfe56800-5e3a9c1f").await.unwrap().unwrap();
        assert_eq!(
            (kernel.pipeline, kernel.artifact_kind),
            (Pipeline::Kernel, Some(crate::history::ArtifactKind::Kernel))
        );
        assert_eq!(kernel.status, BuildStatus::Success);

        // A build of the upgraded database records its phases with its ending.
        let Enqueued::Queued(records) = history
            .enqueue(
                None,
                vec![NewBuild::new(
                    "o/r",
                    "master",
                    "1".repeat(40),
                    "b.sh",
                    "img",
                )],
            )
            .await
            .unwrap()
        else {
            panic!("recorded");
        };
        let mut phases = crate::PhaseTimings::new();
        phases.add(crate::Phase::Fetch, std::time::Duration::from_millis(31));
        phases.add(crate::Phase::Run, std::time::Duration::from_millis(200));
        let update = crate::history::BuildUpdate::finished(BuildStatus::Success, None, None)
            .phases(phases.clone());
        assert!(history.update(&records[0].id, update).await.unwrap());
        let got = history.get(&records[0].id).await.unwrap().unwrap();
        assert_eq!(got.phases, phases);
        // A later update without phases keeps them.
        let update = crate::history::BuildUpdate::status(BuildStatus::Success);
        history.update(&records[0].id, update).await.unwrap();
        let got = history.get(&records[0].id).await.unwrap().unwrap();
        assert_eq!(got.phases, phases);
    }

    #[tokio::test]
    async fn a_database_of_a_newer_version_is_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let newer = i64::from(SCHEMA_VERSION) + 1;
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(&format!(
                    "PRAGMA journal_mode = DELETE;
                     CREATE TABLE builds (seq INTEGER PRIMARY KEY, id TEXT, future TEXT);
                     INSERT INTO builds (id, future) VALUES ('a', 'kept');
                     PRAGMA user_version = {newer};"
                ))
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();

        let err = History::open(&path).await.unwrap_err();
        match &err {
            HistoryError::NewerSchema {
                path: named,
                found,
                supported,
            } => {
                assert_eq!(named, &path);
                assert_eq!(*found, newer);
                assert_eq!(*supported, SCHEMA_VERSION);
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("version {newer}")), "{message}");
        assert!(
            message.contains(&format!("up to {SCHEMA_VERSION}")),
            "{message}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file was changed"
        );
        assert!(!dir.path().join("history.sqlite3-wal").exists());

        // A version that is not ours at all is refused the same way.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", -1)
            .unwrap();
        let err = History::open(&path).await.unwrap_err();
        assert!(
            matches!(err, HistoryError::NewerSchema { found: -1, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn opening_twice_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        for path in [
            dir.path().join("new.sqlite3"),
            dir.path().join("v0.sqlite3"),
        ] {
            if path.ends_with("v0.sqlite3") {
                std::fs::copy(FIXTURE_V0, &path).unwrap();
            }
            let history = History::open(&path).await.unwrap();
            history
                .enqueue(
                    Some("once".into()),
                    vec![NewBuild::new("o/r", "b", "c", "s", "i")],
                )
                .await
                .unwrap();
            let builds = history.recent(None, 100).await.unwrap();
            drop(history);
            let schema = schema_of(&path);

            let again = History::open(&path).await.unwrap();
            assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));
            assert_eq!(schema_of(&path), schema, "{}", path.display());
            assert_eq!(again.recent(None, 100).await.unwrap(), builds);
        }
    }

    #[tokio::test]
    async fn processes_opening_a_new_database_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        // Separate connections, as separate processes would have.
        let opens: Vec<_> = (0..4)
            .map(|_| tokio::spawn(History::open(path.clone())))
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
        assert_eq!(version_of(&path), i64::from(SCHEMA_VERSION));
    }

    #[test]
    fn a_failing_migration_leaves_the_database_at_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let mut connection = Connection::open(&path).unwrap();
        let migrations = [
            Migration {
                version: 1,
                description: "a table",
                sql: "CREATE TABLE one (x INTEGER);",
            },
            Migration {
                version: 2,
                description: "a broken change",
                sql: "CREATE TABLE two (y INTEGER); ALTER TABLE missing ADD COLUMN z;",
            },
        ];
        let err = migrate_with(&mut connection, &path, &migrations).unwrap_err();
        assert!(
            err.to_string()
                .contains("apply schema migration 2 (a broken change)"),
            "{err}"
        );
        drop(connection);
        assert_eq!(version_of(&path), 0);
        assert!(schema_of(&path).is_empty(), "{:?}", schema_of(&path));

        // Without the broken one, both the first and the version land.
        let mut connection = Connection::open(&path).unwrap();
        migrate_with(&mut connection, &path, &migrations[..1]).unwrap();
        drop(connection);
        assert_eq!(version_of(&path), 1);
        assert_eq!(schema_of(&path).len(), 1);
    }
}
