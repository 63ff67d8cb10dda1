//! The HTTP server: hyper 1, one task per connection, a router of plain
//! `match` arms.
//!
//! Thin on purpose: handlers read the request, call the history or the
//! catalog, and shape the answer. The routes and their answers are listed in
//! `docs/server-configuration.md` (endpoints) and the old service's reference.

mod api;
mod builds;
mod monitor;
mod push;
mod response;
pub mod signature;
mod webhook;
mod ws;

pub use push::is_repository_name;
pub use webhook::MAX_BODY;

use crate::state::AppState;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use response::Body;
use std::sync::Arc;
use tokio::net::TcpListener;
use webhook::Hook;
use zos_build_core::CancellationToken;

/// Accepts connections on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, request).await) }
            });
            // Upgrades: `/buildio` turns its connection into a websocket.
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the request in flight (followed logs and
                    // websockets end on the same signal), then close.
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Dispatches one request.
async fn route(state: &Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let query = query.as_deref();
    let method = request.method().clone();
    let config = &state.config;

    let hook = if path == config.repository_push_endpoint {
        Some(Hook::RepositoryPush)
    } else if path == config.monitor_update_endpoint {
        Some(Hook::MonitorUpdate)
    } else if path == "/hook/kernel" || is_project_hook(&path) {
        Some(Hook::Kernel)
    } else {
        None
    };
    if let Some(hook) = hook {
        if method != Method::POST {
            return response::error(StatusCode::METHOD_NOT_ALLOWED, "webhooks are POSTed");
        }
        let answer = webhook::handle(state, hook, request).await;
        state.webhooks.count(answer.status().as_u16());
        return answer;
    }

    if method == Method::POST {
        if path == "/api/builds" {
            return builds::trigger(state, request).await;
        }
        if let Some(id) = path
            .strip_prefix("/api/builds/")
            .and_then(|rest| rest.strip_suffix("/cancel"))
        {
            return builds::cancel(state, id, request).await;
        }
    }
    if method != Method::GET && method != Method::HEAD {
        return response::error(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed here");
    }
    if path == "/buildio" {
        return ws::upgrade(state, request);
    }
    if let Some(answer) = monitor::monitor_asset(&path) {
        return answer;
    }
    match path.as_str() {
        "/build/status" => api::status(state).await,
        "/build/history" => api::history(state).await,
        "/build/history/full" => api::history_full(state, query).await,
        "/build/sync" => api::sync(state).await,
        "/healthz" => api::healthz(state).await,
        "/metrics" => api::metrics(state).await,
        "/api/builds" => builds::list(state, query).await,
        _ => {
            if let Some(id) = path.strip_prefix("/report/") {
                api::report(state, id).await
            } else if let Some(rest) = path.strip_prefix("/build/logs/") {
                api::branch_log(state, rest).await
            } else if let Some(name) = path.strip_prefix("/artifacts/") {
                api::artifact(state, name).await
            } else if let Some(rest) = path.strip_prefix("/api/builds/") {
                match rest.strip_suffix("/log") {
                    Some(id) => builds::log(state, id, query).await,
                    None => builds::build(state, rest).await,
                }
            } else {
                response::not_found(format!("no route {path}"))
            }
        }
    }
}

/// `/build/<project>/hook`, the old README's kernel webhook.
fn is_project_hook(path: &str) -> bool {
    path.strip_prefix("/build/")
        .and_then(|rest| rest.strip_suffix("/hook"))
        .is_some_and(|project| {
            !project.is_empty()
                && project
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}
