//! The read routes, in the old service's JSON shapes so that existing
//! dashboards keep working: `/build/status`, `/build/history`,
//! `/build/history/full`, `/report/<id>`, `/build/logs/<owner>/<repo>/<branch>`
//! and `/healthz`.
//!
//! No path parameter ever reaches the filesystem as written: a build id is
//! checked for its shape and looked up in the history, and a log file's name
//! is made from that id only. Anything else is a 404.

use super::response::{self, Body};
use crate::state::AppState;
use hyper::{Response, StatusCode};
use std::path::PathBuf;
use zos_build_core::history::is_valid_build_id;
use zos_build_core::{BuildRecord, HistoryError};

/// Entries of `/build/history`.
pub const HISTORY_LENGTH: u64 = 25;
/// The largest page of `/build/history/full`.
pub const MAX_PER_PAGE: u64 = 1000;
/// Lines of output shown in `monitor` on `/build/status`.
pub const MONITOR_LINES: usize = 10;

/// The log file of build `id` (an id already checked by [`is_valid_build_id`]).
pub fn log_path(state: &AppState, id: &str) -> PathBuf {
    state.config.logs_directory.join(format!("{id}.log"))
}

fn internal(e: HistoryError) -> Response<Body> {
    tracing::error!(error = %e, "history query failed");
    response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the build history cannot be read",
    )
}

/// The fields the old service sent for a build.
fn status_entry(record: &BuildRecord, monitor: String) -> serde_json::Value {
    let commits: serde_json::Value =
        serde_json::from_str(&record.commits).unwrap_or_else(|_| serde_json::json!([]));
    let docker = match &record.container_id {
        Some(id) => id.chars().take(10).collect::<String>(),
        None => "system".to_string(),
    };
    serde_json::json!({
        "status": record.status.as_str(),
        "name": record.name,
        "monitor": monitor,
        "docker": docker,
        "started": record.started,
        "ended": record.ended,
        "error": record.error,
        "commits": commits,
        "artifact": record.artifact,
        "tag": record.tag,
    })
}

fn history_entry(record: &BuildRecord) -> serde_json::Value {
    let mut entry = status_entry(record, String::new());
    if let Some(object) = entry.as_object_mut() {
        object.insert("id".into(), record.id.clone().into());
        object.insert("baseimage".into(), record.baseimage.clone().into());
    }
    entry
}

/// `GET /build/status`: queued and running builds, keyed by id.
pub async fn status(state: &AppState) -> Response<Body> {
    let active = match state.history.active().await {
        Ok(active) => active,
        Err(e) => return internal(e),
    };
    let mut object = serde_json::Map::new();
    for record in &active {
        let monitor = last_lines(log_path(state, &record.id), MONITOR_LINES).await;
        object.insert(record.id.clone(), status_entry(record, monitor));
    }
    response::json(StatusCode::OK, &serde_json::Value::Object(object))
}

/// `GET /build/history`: the latest finished builds, newest first.
pub async fn history(state: &AppState) -> Response<Body> {
    match state.history.finished(0, HISTORY_LENGTH).await {
        Ok(records) => history_list(&records),
        Err(e) => internal(e),
    }
}

/// `GET /build/history/full[?page=N&per_page=M]`: every finished build, or
/// page N (from 1) of M.
pub async fn history_full(state: &AppState, query: Option<&str>) -> Response<Body> {
    let mut page: u64 = 1;
    let mut per_page: Option<u64> = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = value.parse::<u64>().ok();
        match (key, number) {
            ("page", Some(n)) if n >= 1 => page = n,
            ("per_page", Some(n)) if (1..=MAX_PER_PAGE).contains(&n) => per_page = Some(n),
            ("page", _) => {
                return response::error(StatusCode::BAD_REQUEST, "page must be a number from 1")
            }
            ("per_page", _) => {
                return response::error(
                    StatusCode::BAD_REQUEST,
                    format!("per_page must be a number from 1 to {MAX_PER_PAGE}"),
                )
            }
            _ => {}
        }
    }
    let (page, per_page) = match per_page {
        Some(n) => (page - 1, n),
        // No page size: everything (the old service's behaviour).
        None if page == 1 => (0, u64::MAX),
        None => (page - 1, HISTORY_LENGTH),
    };
    match state.history.finished(page, per_page).await {
        Ok(records) => history_list(&records),
        Err(e) => internal(e),
    }
}

fn history_list(records: &[BuildRecord]) -> Response<Body> {
    let list: Vec<serde_json::Value> = records.iter().map(history_entry).collect();
    response::json(StatusCode::OK, &serde_json::Value::Array(list))
}

/// `GET /report/<id>`: the build's full log.
pub async fn report(state: &AppState, id: &str) -> Response<Body> {
    if !is_valid_build_id(id) {
        return response::not_found("no such build");
    }
    match state.history.get(id).await {
        Ok(Some(record)) => log_of(state, &record).await,
        Ok(None) => response::not_found("no such build"),
        Err(e) => internal(e),
    }
}

/// `GET /build/logs/<owner>/<repo>/<branch>`: the log of the branch's latest build.
pub async fn branch_log(state: &AppState, rest: &str) -> Response<Body> {
    let parts: Vec<&str> = rest.split('/').collect();
    let safe = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() < 3 || !parts.iter().all(safe) {
        return response::not_found("no such branch");
    }
    match state.history.latest_for_name(rest).await {
        Ok(Some(record)) => log_of(state, &record).await,
        Ok(None) => response::not_found("no build of this branch"),
        Err(e) => internal(e),
    }
}

async fn log_of(state: &AppState, record: &BuildRecord) -> Response<Body> {
    if !is_valid_build_id(&record.id) {
        return response::not_found("no such build");
    }
    match tokio::fs::read(log_path(state, &record.id)).await {
        Ok(bytes) => response::text(StatusCode::OK, bytes),
        // Queued builds have written nothing yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => response::text(StatusCode::OK, ""),
        Err(e) => {
            tracing::error!(build = %record.id, error = %e, "cannot read a build log");
            response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the build log cannot be read",
            )
        }
    }
}

/// `GET /healthz`: the server answers and its history can be read.
pub async fn healthz(state: &AppState) -> Response<Body> {
    match state.history.finished_count().await {
        Ok(_) => response::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the build history cannot be read",
            )
        }
    }
}

/// The last `n` lines of a file, joined by `\n`; empty when it cannot be read.
async fn last_lines(path: PathBuf, n: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    // Only the end of a (possibly huge) log is read.
    const TAIL_BYTES: u64 = 16 * 1024;
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return String::new();
    };
    let Ok(length) = file.metadata().await.map(|m| m.len()) else {
        return String::new();
    };
    if file
        .seek(std::io::SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))
        .await
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).await.is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
