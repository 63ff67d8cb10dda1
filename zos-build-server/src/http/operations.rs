//! What operators and downloads use: `/healthz` (for load balancers and
//! service managers), `/metrics` (Prometheus) and `/artifacts/<name>` (the
//! published artifacts of the local and binary directories, and their
//! listing at `/artifacts/`).

use super::files::{self, is_plain, Opened, MAX_LISTED};
use super::old_routes::internal;
use super::response::{self, Body};
use crate::state::AppState;
use hyper::{Response, StatusCode};

/// `GET /healthz`: the server answers, its history can be read, and Docker
/// answers (503 `{"docker":"unreachable"}` when it does not).
pub async fn healthz(state: &AppState) -> Response<Body> {
    if state.docker.as_ref().is_some_and(|d| !d.reachable()) {
        return response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "docker": "unreachable"}),
        );
    }
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

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: &AppState) -> Response<Body> {
    match crate::metrics::render(
        &state.history,
        &state.webhooks,
        &state.github_statuses,
        state.live.lines_published(),
        state.scheduler.as_ref().map(|s| s.phase_histograms()),
    )
    .await
    {
        Ok(mut text) => {
            text.push_str(&crate::metrics::live_feed(&state.live));
            response::with_type(StatusCode::OK, text, "text/plain; version=0.0.4")
        }
        Err(e) => internal(e),
    }
}

/// `GET /artifacts/<name>`: a published artifact (or the file a binary
/// link points at), streamed. The local artifacts directory is looked in
/// first, then the binary directory, each by the rule of [`files`]: a
/// plain name, a regular file or a link followed one step to a file of the
/// same directory, and nothing else.
pub async fn artifact(state: &AppState, name: &str) -> Response<Body> {
    if name.is_empty() {
        return listing(state).await;
    }
    if !is_plain(name) {
        return response::not_found("no such artifact");
    }
    for dir in [
        &state.config.artifacts_directory,
        &state.config.binary_directory,
    ] {
        match files::open(dir, name).await {
            Ok(Opened::File { file, .. }) => {
                return response::file(*file, "application/octet-stream")
            }
            Ok(Opened::Absent) => continue,
            Ok(Opened::Refused) => break,
            Err(e) => {
                tracing::error!(path = %dir.join(name).display(), error = %e, "cannot read an artifact");
                return response::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the artifact cannot be read",
                );
            }
        }
    }
    response::not_found("no such artifact")
}

/// `GET /artifacts/`: the published files of the local and binary
/// directories, and the binary directory's moving links with their
/// targets, as JSON: `{"files":[{"name","size","directory"}],
/// "links":[{"name","target"}]}`, sorted by name, at most [`MAX_LISTED`]
/// entries read per directory (`"truncated": true` then).
pub async fn listing(state: &AppState) -> Response<Body> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut truncated = false;
    for (dir, kind) in [
        (&state.config.artifacts_directory, "local"),
        (&state.config.binary_directory, "binary"),
    ] {
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::error!(path = %dir.display(), error = %e, "cannot list artifacts");
                return response::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the artifacts cannot be listed",
                );
            }
        };
        let mut read = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            read += 1;
            if read > MAX_LISTED {
                truncated = true;
                break;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_plain(&name) {
                continue; // hidden: a publish in progress
            }
            let Ok(metadata) = tokio::fs::symlink_metadata(entry.path()).await else {
                continue;
            };
            if metadata.file_type().is_file() {
                files.push(
                    serde_json::json!({"name": name, "size": metadata.len(), "directory": kind}),
                );
            } else if metadata.file_type().is_symlink() {
                if let Ok(target) = tokio::fs::read_link(entry.path()).await {
                    links.push(
                        serde_json::json!({"name": name, "target": target.to_string_lossy()}),
                    );
                }
            }
        }
    }
    let by_name =
        |a: &serde_json::Value, b: &serde_json::Value| a["name"].as_str().cmp(&b["name"].as_str());
    files.sort_by(by_name);
    links.sort_by(by_name);
    response::json(
        StatusCode::OK,
        &serde_json::json!({"files": files, "links": links, "truncated": truncated}),
    )
}
