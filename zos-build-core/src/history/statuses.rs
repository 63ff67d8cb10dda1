//! The outbox of commit statuses: what a forge (GitHub) must be told about
//! builds, kept in the history until it was told.
//!
//! Why in the database: a status must survive a restart (a crash between
//! "build ended" and "GitHub heard it" must not leave `pending` forever), must
//! be sent in order per (repository, commit, context) (a late `pending` must
//! never overwrite a `success`), and must never hold a build up. So the
//! pipeline only writes a row here (a local insert), and a sender reads the
//! rows due, oldest first, and records what happened to each: `sent`,
//! `retrying` (with the time of the next attempt and the last error) or
//! `failed` (given up). Nothing here knows how statuses are sent.

use super::{now, History, HistoryError};
use rusqlite::params;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The state a commit status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusState {
    /// Queued or running.
    Pending,
    /// Built and published.
    Success,
    /// The build itself failed (its script, its limits).
    Failure,
    /// The engine failed it, or it was cancelled or interrupted.
    Error,
}

impl StatusState {
    /// The word GitHub uses: `pending`, `success`, `failure`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }

    fn parse(word: &str) -> StatusState {
        match word {
            "success" => StatusState::Success,
            "failure" => StatusState::Failure,
            "error" => StatusState::Error,
            _ => StatusState::Pending,
        }
    }
}

/// A status to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewStatus {
    /// The build it is about.
    pub build_id: String,
    /// `owner/repo`.
    pub repository: String,
    /// The commit.
    pub sha: String,
    /// The context: one per build script (`zos-build/build.sh`).
    pub context: String,
    /// The state.
    pub state: StatusState,
    /// What happened, in at most 140 characters.
    pub description: String,
    /// The link to the build's log.
    pub target_url: Option<String>,
}

impl NewStatus {
    /// A status `state` with `description` for `context` on `sha` of
    /// `repository`, about build `build_id`.
    pub fn new(
        build_id: impl Into<String>,
        repository: impl Into<String>,
        sha: impl Into<String>,
        context: impl Into<String>,
        state: StatusState,
        description: impl Into<String>,
    ) -> NewStatus {
        NewStatus {
            build_id: build_id.into(),
            repository: repository.into(),
            sha: sha.into(),
            context: context.into(),
            state,
            description: description.into(),
            target_url: None,
        }
    }

    /// Links the status to `url`.
    pub fn target_url(mut self, url: impl Into<String>) -> NewStatus {
        self.target_url = Some(url.into());
        self
    }
}

/// A status waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedStatus {
    /// Its place in the outbox (the order it is sent in).
    pub seq: i64,
    /// What to send.
    pub status: NewStatus,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Where a build's latest status is on its way to the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusDelivery {
    /// `queued`, `retrying`, `sent` or `failed`.
    pub delivery: String,
    /// The state of that status (`pending`, `success`...).
    pub state: StatusState,
    /// The last error, for `retrying` and `failed` (`429`, `HTTP 401: Bad credentials`).
    pub last_error: Option<String>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Statuses not yet sent or given up, in one condition.
const WAITING: &str = "delivery IN ('queued', 'retrying')";

impl History {
    /// Puts `status` in the outbox; returns its place.
    pub async fn queue_status(&self, status: NewStatus) -> Result<i64, HistoryError> {
        self.with("queue a commit status", move |connection, path| {
            connection
                .execute(
                    "INSERT INTO commit_statuses (build_id, repository, sha, context, state, \
                     description, target_url, queued) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        status.build_id,
                        status.repository,
                        status.sha,
                        status.context,
                        status.state.as_str(),
                        status.description,
                        status.target_url,
                        now(),
                    ],
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "queue a commit status".into(),
                    source,
                })?;
            Ok(connection.last_insert_rowid())
        })
        .await
    }

    /// Up to `limit` statuses to send now (unix ms `now_ms`), oldest first:
    /// for each (repository, sha, context), only the oldest one still
    /// waiting, and only when its next attempt is due.
    pub async fn due_statuses(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedStatus>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with("read the commit statuses due", move |connection, path| {
            let query = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "read the commit statuses due".into(),
                source,
            };
            let mut statement = connection
                .prepare(&format!(
                    "SELECT seq, build_id, repository, sha, context, state, description, \
                     target_url, attempts FROM commit_statuses s \
                     WHERE {WAITING} AND next_attempt <= ?1 AND NOT EXISTS ( \
                       SELECT 1 FROM commit_statuses o WHERE o.{WAITING} \
                       AND o.repository = s.repository AND o.sha = s.sha \
                       AND o.context = s.context AND o.seq < s.seq) \
                     ORDER BY seq LIMIT ?2"
                ))
                .map_err(query)?;
            let rows = statement
                .query_map(params![now_ms, limit], |row| {
                    Ok(QueuedStatus {
                        seq: row.get(0)?,
                        status: NewStatus {
                            build_id: row.get(1)?,
                            repository: row.get(2)?,
                            sha: row.get(3)?,
                            context: row.get(4)?,
                            state: StatusState::parse(&row.get::<_, String>(5)?),
                            description: row.get(6)?,
                            target_url: row.get(7)?,
                        },
                        attempts: row.get(8)?,
                    })
                })
                .map_err(query)?;
            rows.collect::<Result<_, _>>().map_err(query)
        })
        .await
    }

    /// When the next status that may be sent is due (unix ms: the earliest
    /// of the oldest waiting of each commit and context); None when none
    /// waits.
    pub async fn next_status_due(&self) -> Result<Option<i64>, HistoryError> {
        self.with("read the next commit status due", |connection, path| {
            connection
                .query_row(
                    &format!(
                        "SELECT MIN(next_attempt) FROM commit_statuses s WHERE {WAITING} \
                         AND NOT EXISTS (SELECT 1 FROM commit_statuses o WHERE o.{WAITING} \
                           AND o.repository = s.repository AND o.sha = s.sha \
                           AND o.context = s.context AND o.seq < s.seq)"
                    ),
                    [],
                    |row| row.get(0),
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "read the next commit status due".into(),
                    source,
                })
        })
        .await
    }

    /// Status `seq` was delivered.
    pub async fn status_sent(&self, seq: i64) -> Result<(), HistoryError> {
        self.set_delivery(seq, "sent", None, None).await
    }

    /// Status `seq` failed with `error` and is tried again at `next_ms`.
    pub async fn status_retry(
        &self,
        seq: i64,
        next_ms: i64,
        error: &str,
    ) -> Result<(), HistoryError> {
        self.set_delivery(seq, "retrying", Some(next_ms), Some(error.to_string()))
            .await
    }

    /// Status `seq` is given up, for `error`.
    pub async fn status_failed(&self, seq: i64, error: &str) -> Result<(), HistoryError> {
        self.set_delivery(seq, "failed", None, Some(error.to_string()))
            .await
    }

    async fn set_delivery(
        &self,
        seq: i64,
        delivery: &'static str,
        next_ms: Option<i64>,
        error: Option<String>,
    ) -> Result<(), HistoryError> {
        self.with(
            format!("record a commit status as {delivery}"),
            move |connection, path| {
                connection
                    .execute(
                        "UPDATE commit_statuses SET delivery = ?2, attempts = attempts + 1, \
                         next_attempt = COALESCE(?3, next_attempt), \
                         last_error = COALESCE(?4, last_error) WHERE seq = ?1",
                        params![seq, delivery, next_ms, error],
                    )
                    .map_err(|source| HistoryError::Query {
                        path: path.to_path_buf(),
                        action: format!("record a commit status as {delivery}"),
                        source,
                    })?;
                Ok(())
            },
        )
        .await
    }

    /// Where the latest status of each of `build_ids` is on its way (builds
    /// with no status are left out).
    pub async fn status_deliveries(
        &self,
        build_ids: Vec<String>,
    ) -> Result<HashMap<String, StatusDelivery>, HistoryError> {
        self.with("read commit status deliveries", move |connection, path| {
            let query = |source| HistoryError::Query {
                path: path.to_path_buf(),
                action: "read commit status deliveries".into(),
                source,
            };
            let mut statement = connection
                .prepare(
                    "SELECT delivery, state, last_error FROM commit_statuses \
                     WHERE build_id = ?1 ORDER BY seq DESC LIMIT 1",
                )
                .map_err(query)?;
            let mut deliveries = HashMap::new();
            for id in build_ids {
                let found = statement.query_row([&id], |row| {
                    Ok(StatusDelivery {
                        delivery: row.get(0)?,
                        state: StatusState::parse(&row.get::<_, String>(1)?),
                        last_error: row.get(2)?,
                    })
                });
                match found {
                    Ok(delivery) => {
                        deliveries.insert(id, delivery);
                    }
                    Err(rusqlite::Error::QueryReturnedNoRows) => {}
                    Err(e) => return Err(query(e)),
                }
            }
            Ok(deliveries)
        })
        .await
    }

    /// Forgets statuses sent or given up more than `age` ago (the sweep's
    /// job); returns how many.
    pub async fn prune_statuses(&self, age: std::time::Duration) -> Result<usize, HistoryError> {
        let before = now().saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        self.with("prune old commit statuses", move |connection, path| {
            connection
                .execute(
                    &format!("DELETE FROM commit_statuses WHERE NOT {WAITING} AND queued < ?1"),
                    [before],
                )
                .map_err(|source| HistoryError::Query {
                    path: path.to_path_buf(),
                    action: "prune old commit statuses".into(),
                    source,
                })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(sha: &str, context: &str, state: StatusState) -> NewStatus {
        NewStatus::new("b", "o/r", sha, context, state, state.as_str())
    }

    #[tokio::test]
    async fn statuses_go_out_in_order_per_commit_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.sqlite3")).await.unwrap();
        let a1 = history
            .queue_status(status("a", "x", StatusState::Pending))
            .await
            .unwrap();
        let a2 = history
            .queue_status(status("a", "x", StatusState::Success))
            .await
            .unwrap();
        let b1 = history
            .queue_status(status("a", "y", StatusState::Pending))
            .await
            .unwrap();
        let now = now_ms();
        let due: Vec<i64> = history
            .due_statuses(now, 10)
            .await
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(due, [a1, b1], "one per (commit, context), the oldest");

        // a1 waits for a retry: a2 may not pass it.
        history
            .status_retry(a1, now + 60_000, "HTTP 502")
            .await
            .unwrap();
        let due: Vec<i64> = history
            .due_statuses(now, 10)
            .await
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(due, [b1]);
        assert_eq!(history.next_status_due().await.unwrap(), Some(0));
        let deliveries = history
            .status_deliveries(vec!["b".into(), "none".into()])
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(
            deliveries["b"].delivery, "queued",
            "the latest status of b is b1"
        );

        history.status_sent(b1).await.unwrap();
        assert_eq!(history.next_status_due().await.unwrap(), Some(now + 60_000));
        let later = history.due_statuses(now + 60_000, 10).await.unwrap();
        assert_eq!(later[0].seq, a1);
        assert_eq!(later[0].attempts, 1);
        history.status_sent(a1).await.unwrap();
        let due: Vec<i64> = history
            .due_statuses(now, 10)
            .await
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(due, [a2], "then the next of the same context");

        // Given up is over: it no longer holds the queue.
        history
            .status_failed(a2, "HTTP 401: Bad credentials")
            .await
            .unwrap();
        assert!(history.due_statuses(now, 10).await.unwrap().is_empty());
        assert_eq!(history.next_status_due().await.unwrap(), None);
        assert_eq!(
            history
                .prune_statuses(std::time::Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            history
                .prune_statuses(std::time::Duration::ZERO)
                .await
                .unwrap(),
            0,
            "queued this second"
        );
    }
}
