//! What operators and downloads use: `/healthz` (for load balancers and
//! service managers), `/metrics` (Prometheus) and `/artifacts/<name>` (the
//! published artifacts of the local and binary directories, and their
//! listing at `/artifacts/`).

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
    )
    .await
    {
        Ok(text) => response::with_type(StatusCode::OK, text, "text/plain; version=0.0.4"),
        Err(e) => internal(e),
    }
}

/// The most entries `/artifacts/` reads from each directory: a listing is
/// a page for people, not a dump of a directory of any size.
pub const MAX_LISTED: usize = 10_000;

/// Whether `name` is a plain file name made by `artifact_name` or
/// `link_name`: nothing that could leave a directory.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Where a published name is: the local artifacts directory first, then the
/// binary directory, whose moving links (`<…>.flist`) are followed one step
/// to the file they name in the same directory. Never follows any other
/// link: a name that is a link elsewhere, or to a link, is not served.
async fn locate(state: &AppState, name: &str) -> std::io::Result<Option<std::path::PathBuf>> {
    for dir in [
        &state.config.artifacts_directory,
        &state.config.binary_directory,
    ] {
        let path = dir.join(name);
        let metadata = match tokio::fs::symlink_metadata(&path).await {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if metadata.file_type().is_file() {
            return Ok(Some(path));
        }
        if metadata.file_type().is_symlink() {
            let target = tokio::fs::read_link(&path).await?;
            let Some(target) = target.to_str().filter(|t| is_plain(t)) else {
                return Ok(None);
            };
            let target = dir.join(target);
            let regular = tokio::fs::symlink_metadata(&target)
                .await
                .is_ok_and(|m| m.file_type().is_file());
            return Ok(regular.then_some(target));
        }
    }
    Ok(None)
}

/// `GET /artifacts/<name>`: a published artifact (or the file a binary
/// link points at), streamed.
pub async fn artifact(state: &AppState, name: &str) -> Response<Body> {
    if name.is_empty() {
        return listing(state).await;
    }
    if !is_plain(name) {
        return response::not_found("no such artifact");
    }
    let opened = match locate(state, name).await {
        Ok(Some(path)) => tokio::fs::File::open(&path).await.map_err(|e| (path, e)),
        Ok(None) => return response::not_found("no such artifact"),
        Err(e) => Err((state.config.binary_directory.join(name), e)),
    };
    match opened {
        Ok(file) => response::file(file, "application/octet-stream"),
        Err((_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
            response::not_found("no such artifact")
        }
        Err((path, e)) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read an artifact");
            response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the artifact cannot be read",
            )
        }
    }
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
