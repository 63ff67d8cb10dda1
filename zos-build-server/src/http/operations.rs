//! What operators and downloads use: `/healthz` (for load balancers and
//! service managers), `/metrics` (Prometheus) and `/artifacts/<name>` (the
//! published artifacts of the local publisher).

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
        state.live.lines_published(),
    )
    .await
    {
        Ok(text) => response::with_type(StatusCode::OK, text, "text/plain; version=0.0.4"),
        Err(e) => internal(e),
    }
}

/// `GET /artifacts/<name>`: a published artifact, streamed.
pub async fn artifact(state: &AppState, name: &str) -> Response<Body> {
    // A plain file name made by `artifact_name`: nothing that could leave
    // the artifacts directory.
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return response::not_found("no such artifact");
    }
    let path = state.config.artifacts_directory.join(name);
    match tokio::fs::File::open(&path).await {
        Ok(file) => response::file(file, "application/octet-stream"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            response::not_found("no such artifact")
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read an artifact");
            response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the artifact cannot be read",
            )
        }
    }
}
