//! The HTTP server: hyper 1, one task per connection, a router of plain
//! `match` arms.
//!
//! Thin on purpose: handlers read the request, call the history or the
//! catalog, and shape the answer. The routes and their answers are listed in
//! `docs/api.md`.
//!
//! The server faces anyone who can reach its port, so every way a client
//! can hold on to its resources is bounded here, by name:
//!
//! - [`HEADER_READ_TIMEOUT`]: a request's head must arrive in full within
//!   it, so a client that sends half a header and goes quiet (slowloris)
//!   loses its connection; [`IDLE_TIMEOUT`]: a kept-alive connection with
//!   no request is closed after it;
//! - `max-connections` ([`crate::Config::max_connections`]): connections
//!   served at once. Each holds a slot from a semaphore for as long as it
//!   lives, a websocket or a followed log included; when none is free the
//!   server stops accepting, so new connections wait in the kernel's
//!   backlog and none that is open is ever dropped for it;
//! - [`MAX_WEBSOCKET_MESSAGE`]: what a websocket client may send at once;
//! - [`MAX_PAGE`]: builds in one answer of `/build/history/full` and
//!   `/api/builds`;
//! - files (logs, artifacts, kernels) are streamed in chunks, never read
//!   whole, and a file under a name of a URL is found by one rule
//!   (`files`): a plain name, a regular file or a link followed one step
//!   within its directory;
//! - webhook and API request bodies have their own limits ([`MAX_BODY`]).

mod builds;
mod feed;
mod files;
mod kernels;
mod monitor;
mod old_routes;
mod operations;
mod push;
mod response;
pub mod signature;
mod webhook;
mod ws;

pub use feed::frames;
pub use push::{parse as parse_push, Push};
pub use webhook::MAX_BODY;
pub use ws::MAX_WEBSOCKET_MESSAGE;

use crate::state::AppState;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use response::Body;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use webhook::Hook;
use zos_build_core::CancellationToken;

/// How long a client has to send a request's whole head (request line and
/// headers), counted from when the connection starts waiting for it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a kept-alive connection may stay idle between two requests.
///
/// hyper has no separate knob for it, and needs none: it starts the
/// [`HEADER_READ_TIMEOUT`] clock as soon as a connection waits for the head
/// of its next request, so an idle connection and a half-sent head are the
/// same case and end after the same time. Websockets and followed logs are
/// not idle in this sense (their response is still being sent) and are
/// bounded by `max-connections` instead.
pub const IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// The most builds one answer of `/build/history/full` or `/api/builds`
/// holds; a larger `per_page` or `limit` is refused with 400.
pub const MAX_PAGE: u64 = 500;

/// A connection's slot of `max-connections`, carried in each request's
/// extensions so that a websocket, which outlives its HTTP connection,
/// keeps the slot until it closes. The slot frees when the last clone drops.
#[derive(Clone)]
struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// Accepts connections on `listener` until `shutdown` is cancelled, at most
/// `max-connections` at once.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        // A free slot first: while there is none, nothing is accepted and
        // new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => ConnectionSlot { _permit: Arc::new(slot) },
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
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
        let builder = builder.clone();
        tokio::spawn(async move {
            let for_requests = slot.clone();
            let service = service_fn(move |mut request: Request<Incoming>| {
                let state = state.clone();
                request.extensions_mut().insert(for_requests.clone());
                async move { Ok::<_, std::convert::Infallible>(route(&state, request).await) }
            });
            // Upgrades: `/buildio` turns its connection into a websocket.
            let connection = builder
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
            match result {
                Err(e) if e.is_timeout() => {
                    tracing::debug!(%peer, "connection closed: no request head within {HEADER_READ_TIMEOUT:?}")
                }
                Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                Ok(()) => {}
            }
            drop(slot);
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

    // Read-only, with its own 405 (`Allow: GET, HEAD`).
    if let Some(rest) = path.strip_prefix("/kernels") {
        if rest.is_empty() || rest.starts_with('/') {
            return kernels::handle(&config.kernel_directory, &method, request.headers(), rest)
                .await;
        }
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
    if method == Method::DELETE {
        if let Some(target) = path
            .strip_prefix("/api/kernels/")
            .and_then(|rest| rest.strip_suffix("/cache"))
        {
            return builds::clear_cache(state, target, &request).await;
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
        "/build/status" => old_routes::status(state).await,
        "/build/history" => old_routes::history(state).await,
        "/build/history/full" => old_routes::history_full(state, query).await,
        "/build/sync" => old_routes::sync(state).await,
        "/healthz" => operations::healthz(state).await,
        "/metrics" => operations::metrics(state).await,
        "/api/builds" => builds::list(state, query).await,
        _ => {
            if let Some(id) = path.strip_prefix("/report/") {
                old_routes::report(state, id).await
            } else if let Some(rest) = path
                .strip_prefix("/build/logs/")
                .or_else(|| path.strip_prefix("/logs/"))
            {
                old_routes::branch_log(state, rest).await
            } else if let Some(name) = path.strip_prefix("/artifacts/") {
                operations::artifact(state, name).await
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
