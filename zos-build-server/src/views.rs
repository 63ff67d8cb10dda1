//! The JSON the old service showed of builds, built in one place for the
//! HTTP routes (`/build/status`, `/build/history`) and the websocket frames
//! (`status`, `history`), so the two can never disagree.

use crate::config::Config;
use crate::live::{read_log, Live, LiveEvent};
use serde_json::{json, Value};
use std::path::Path;
use zos_build_core::{BuildRecord, History, HistoryError};

/// Entries of `/build/history` and of the websocket's `history` frame.
pub const HISTORY_LENGTH: u64 = 25;
/// Lines of output shown in `monitor` on `/build/status`.
pub const MONITOR_LINES: usize = 10;

/// The fields the old service sent for a running build, plus `id` and
/// `baseimage` (which the old one sent in the history only).
pub fn status_entry(record: &BuildRecord, monitor: String) -> Value {
    let commits: Value = serde_json::from_str(&record.commits).unwrap_or_else(|_| json!([]));
    let docker = match &record.container_id {
        Some(id) => id.chars().take(10).collect::<String>(),
        None => "system".to_string(),
    };
    json!({
        "id": record.id,
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
        "baseimage": record.baseimage,
    })
}

/// A finished build as `/build/history` lists it.
pub fn history_entry(record: &BuildRecord) -> Value {
    status_entry(record, String::new())
}

/// `records` as a JSON array of history entries.
pub fn history_list(records: &[BuildRecord]) -> Value {
    Value::Array(records.iter().map(history_entry).collect())
}

/// Queued and running builds, keyed by id, with the last lines of each log.
pub async fn status(history: &History, config: &Config) -> Result<Value, HistoryError> {
    let active = history.active().await?;
    let mut object = serde_json::Map::new();
    for record in &active {
        let monitor = last_lines(&config.build_log_path(&record.id), MONITOR_LINES).await;
        object.insert(record.id.clone(), status_entry(record, monitor));
    }
    Ok(Value::Object(object))
}

/// The latest finished builds, newest first.
pub async fn history(history: &History) -> Result<Value, HistoryError> {
    Ok(history_list(&history.finished(0, HISTORY_LENGTH).await?))
}

/// A websocket frame `{"event": event, "payload": payload}`.
pub fn frame(event: &str, payload: Value) -> String {
    json!({"event": event, "payload": payload}).to_string()
}

/// The last `n` lines of a file, joined by `\n`; empty when it cannot be read.
pub async fn last_lines(path: &Path, n: usize) -> String {
    // Only the end of a (possibly huge) log is read.
    const TAIL_BYTES: u64 = 16 * 1024;
    let Ok(length) = tokio::fs::metadata(path).await.map(|m| m.len()) else {
        return String::new();
    };
    let Ok(bytes) = read_log(path, length.saturating_sub(TAIL_BYTES), TAIL_BYTES).await else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Publishes the running builds (and, when `history_changed`, the history)
/// to the live feed, as the websocket's `status` and `history` frames.
pub async fn announce(history: &History, config: &Config, live: &Live, history_changed: bool) {
    match status(history, config).await {
        Ok(value) => live.publish(LiveEvent::Status {
            frame: frame("status", value).into(),
        }),
        Err(e) => tracing::error!(error = %e, "cannot read the running builds"),
    }
    if history_changed {
        match self::history(history).await {
            Ok(value) => live.publish(LiveEvent::History {
                frame: frame("history", value).into(),
            }),
            Err(e) => tracing::error!(error = %e, "cannot read the history"),
        }
    }
}
