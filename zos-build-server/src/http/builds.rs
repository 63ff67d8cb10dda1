//! `/api/builds`: the JSON API for scripts and the terminal client.
//!
//! - `GET /api/builds[?name=owner/repo/branch][&limit=N][&before=<id>]`:
//!   builds of any status, newest first, a page of at most
//!   [`MAX_PAGE`](super::MAX_PAGE); a `Link: <...>; rel="next"` header
//!   gives the next page when there is one;
//! - `GET /api/builds/<id>`: one build;
//! - `GET /api/builds/<id>/log[?follow=1][&offset=N]`: its log, optionally
//!   followed live;
//! - `POST /api/builds` (`{"repository", "branch", "commit"?}`) and
//!   `POST /api/builds/<id>/cancel`: write actions, which need
//!   `Authorization: Bearer <admin-token>` and are refused altogether while
//!   no `admin-token` is set.
//!
//! The log file is the one source of truth: a follower reads it from a byte
//! offset and, once at its end, waits for the live feed to say the build
//! wrote more (or for a second to pass) before reading on. So a follower
//! that reconnects with `?offset=<bytes received>` gets exactly the rest,
//! never a line twice and never a gap, whatever it missed in between; and a
//! follower never holds a build up, it only reads what was written.
//! Only whole lines are sent until the build has ended.

use super::response::{self, Body};
use super::signature::same_secret;
use super::MAX_PAGE;
use crate::followers;
use crate::live::{read_log, LiveEvent, Subscription};
use crate::state::{AppState, Trigger, TriggerError, Triggered};
use crate::views;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, StatusCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zos_build_core::history::is_valid_build_id;
use zos_build_core::BuildRecord;
use zos_build_core::{CommitId, Enqueued, RepositoryName};

/// Largest chunk sent at once.
const CHUNK: u64 = 256 * 1024;
/// Events a follower reads at most before looking at the file again.
const DRAIN_AT_MOST: usize = 4096;
/// How long a follower waits for news before looking at the file anyway.
const POLL: Duration = Duration::from_secs(1);
/// The largest body of a write request.
const MAX_REQUEST: usize = 64 * 1024;

fn internal(e: impl std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %e, "history query failed");
    response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the build history cannot be read",
    )
}

/// `GET /api/builds[?name=owner/repo/branch][&limit=N][&before=<id>]`:
/// `limit` (default 25, at most [`MAX_PAGE`]) builds older than build
/// `before` (all when absent), with a `Link` to the next page if any.
pub async fn list(state: &AppState, query: Option<&str>) -> Response<Body> {
    let mut name = None;
    let mut limit = views::HISTORY_LENGTH;
    let mut before = None;
    for (key, value) in response::query_pairs(query) {
        match key.as_ref() {
            "name" => name = Some(value.into_owned()),
            "limit" => match value.parse::<u64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => {
                    return response::error(
                        StatusCode::BAD_REQUEST,
                        format!("limit must be a number from 1 to {MAX_PAGE}"),
                    )
                }
            },
            "before" => before = Some(value.into_owned()),
            _ => {}
        }
    }
    let before = before.as_deref();
    if let Some(answer) = super::old_routes::check_cursor(state, before).await {
        return answer;
    }
    // One more than asked: whether a next page exists.
    match state
        .history
        .page(name.as_deref(), false, before, limit + 1)
        .await
    {
        Ok(mut records) => {
            let more = records.len() as u64 > limit;
            records.truncate(limit as usize);
            let next = records.last().filter(|_| more).map(|last| {
                let name = name
                    .as_deref()
                    .map(|name| {
                        let encoded: String =
                            form_urlencoded::byte_serialize(name.as_bytes()).collect();
                        format!("name={encoded}&")
                    })
                    .unwrap_or_default();
                format!("/api/builds?{name}limit={limit}&before={}", last.id)
            });
            match views::history_list(&state.history, &records).await {
                Ok(list) => response::with_next(response::json(StatusCode::OK, &list), next),
                Err(e) => internal(e),
            }
        }
        Err(e) => internal(e),
    }
}

/// The refusal of a write request without the admin token; None when the
/// request carries it.
fn refusal(state: &AppState, request: &Request<Incoming>) -> Option<Response<Body>> {
    let Some(expected) = &state.config.admin_token else {
        return Some(response::error(
            StatusCode::FORBIDDEN,
            "the write API is disabled: set admin-token to enable it",
        ));
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if same_secret(token.as_bytes(), expected.as_bytes()) => None,
        Some(_) => Some(response::error(
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        )),
        None => Some(response::error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <admin-token>",
        )),
    }
}

/// `DELETE /api/kernels/<target>/cache`: empties the build cache of kernel
/// target `<target>` (its repository's name), removing its volume; the next
/// build starts from nothing. 409 while a build uses it.
pub async fn clear_cache(
    state: &AppState,
    target: &str,
    request: &Request<Incoming>,
) -> Response<Body> {
    if let Some(refused) = refusal(state, request) {
        return refused;
    }
    let Some(target) = state
        .config
        .kernel_targets
        .iter()
        .find(|t| t.name() == target)
    else {
        return response::not_found(format!("no kernel target {target:?}"));
    };
    let Some(scheduler) = &state.scheduler else {
        return response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server runs no builds, and has no build cache",
        );
    };
    let volume = target.cache_volume();
    match scheduler.executor().remove_cache(&volume).await {
        Ok(removed) => {
            tracing::info!(%volume, removed, "kernel build cache cleared");
            response::json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": if removed { "cleared" } else { "empty" },
                    "target": target.name(),
                    "volume": volume,
                }),
            )
        }
        Err(e) => {
            tracing::warn!(%volume, error = %e, "cannot clear a kernel build cache");
            response::error(StatusCode::CONFLICT, e.to_string())
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    repository: String,
    branch: String,
    #[serde(default)]
    commit: Option<String>,
}

/// `POST /api/builds`: builds a tracked branch at a commit (default: its head).
pub async fn trigger(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    if let Some(answer) = refusal(state, &request) {
        return answer;
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_REQUEST} bytes or unreadable"),
            )
        }
    };
    let wanted: TriggerRequest = match serde_json::from_slice(&body) {
        Ok(wanted) => wanted,
        Err(e) => {
            return response::error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"repository\": \"owner/name\", \"branch\": ..., \"commit\": optional}}: {e}"),
            )
        }
    };
    let repository = match RepositoryName::parse(&wanted.repository) {
        Ok(repository) => repository,
        Err(e) => return response::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let commit = match wanted.commit.as_deref().map(CommitId::parse).transpose() {
        Ok(commit) => commit,
        Err(e) => return response::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let trigger = Trigger::request(repository, wanted.branch.as_str(), commit);
    match state.trigger(trigger).await {
        Ok(Triggered {
            enqueued: Enqueued::Queued(records),
            commit,
        }) => {
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            tracing::info!(repository = %wanted.repository, branch = %wanted.branch, %commit, builds = ?ids, "build started through the API");
            response::json(
                StatusCode::CREATED,
                &serde_json::json!({"status": "success", "builds": ids, "commit": commit}),
            )
        }
        Ok(Triggered {
            enqueued: Enqueued::Duplicate,
            ..
        }) => response::json(StatusCode::OK, &serde_json::json!({"status": "duplicate"})),
        Err(e @ (TriggerError::RepositoryNotTracked | TriggerError::BranchNotTracked)) => {
            response::error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ TriggerError::Head(_)) => response::error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e) => internal(e),
    }
}

/// `POST /api/builds/<id>/cancel`.
pub async fn cancel(state: &AppState, id: &str, request: Request<Incoming>) -> Response<Body> {
    if let Some(answer) = refusal(state, &request) {
        return answer;
    }
    let record = match record(state, id).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    if record.status.is_finished() {
        return response::error(
            StatusCode::CONFLICT,
            format!("build {id} has already ended ({})", record.status.as_str()),
        );
    }
    let cancelled = state
        .scheduler
        .as_ref()
        .is_some_and(|scheduler| scheduler.cancel(id, "cancelled through the API"));
    if cancelled {
        response::json(StatusCode::OK, &serde_json::json!({"status": "success"}))
    } else {
        response::error(
            StatusCode::CONFLICT,
            format!("build {id} is not running on this server"),
        )
    }
}

async fn record(state: &AppState, id: &str) -> Result<BuildRecord, Response<Body>> {
    if !is_valid_build_id(id) {
        return Err(response::not_found("no such build"));
    }
    match state.history.get(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(response::not_found("no such build")),
        Err(e) => {
            tracing::error!(error = %e, "history query failed");
            Err(response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the build history cannot be read",
            ))
        }
    }
}

/// `GET /api/builds/<id>`: the build as the history shows it.
pub async fn build(state: &AppState, id: &str) -> Response<Body> {
    match record(state, id).await {
        Ok(record) => match views::build_entry(&state.history, &record).await {
            Ok(entry) => response::json(StatusCode::OK, &entry),
            Err(e) => internal(e),
        },
        Err(answer) => answer,
    }
}

struct Query {
    follow: bool,
    offset: u64,
}

fn parse_query(query: Option<&str>) -> Result<Query, String> {
    let mut parsed = Query {
        follow: false,
        offset: 0,
    };
    for (key, value) in response::query_pairs(query) {
        match key.as_ref() {
            "follow" => parsed.follow = matches!(value.as_ref(), "" | "1" | "true" | "yes"),
            "offset" => {
                parsed.offset = value
                    .parse()
                    .map_err(|_| format!("offset must be a number of bytes, found {value:?}"))?
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// `GET /api/builds/<id>/log[?follow=1][&offset=N]`: the log from byte `N`;
/// with `follow`, streamed until the build has ended.
pub async fn log(state: &Arc<AppState>, id: &str, query: Option<&str>) -> Response<Body> {
    let query = match parse_query(query) {
        Ok(query) => query,
        Err(message) => return response::error(StatusCode::BAD_REQUEST, message),
    };
    // Subscribe before the first read, so no news between the two is missed.
    let news = state.live.subscribe();
    let record = match record(state, id).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let path = state.config.build_log_path(&record.id);
    if !query.follow {
        // Streamed from the file: never held in memory whole.
        return match response::log_file(&path, query.offset).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(build = %record.id, error = %e, "cannot read a build log");
                response::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the build log cannot be read",
                )
            }
        };
    }
    let follower = Follower {
        state: state.clone(),
        id: record.id,
        path,
        offset: query.offset,
        news,
        done: false,
    };
    // The file is read on the followers' runtime, a chunk ahead of the
    // client at most; this connection only passes the chunks on.
    let (chunks, receiver) = tokio::sync::mpsc::channel(1);
    followers::spawn(async move {
        let mut follower = follower;
        while let Some(chunk) = follower.next_chunk().await {
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    response::text_stream(stream)
}

struct Follower {
    state: Arc<AppState>,
    id: String,
    path: PathBuf,
    offset: u64,
    news: Subscription,
    done: bool,
}

impl Follower {
    /// The next piece of the log, or None once the build has ended and all
    /// of it was sent.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.done {
                return None;
            }
            let finished = match self.state.history.get(&self.id).await {
                Ok(Some(record)) => record.status.is_finished(),
                Ok(None) => true,
                Err(e) => return Some(Err(std::io::Error::other(e))),
            };
            let bytes = match read_log(&self.path, self.offset, CHUNK).await {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(e)),
            };
            // While the build runs, only whole lines: the sink may be mid-write.
            let usable = if finished {
                bytes.len()
            } else {
                bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
            };
            if usable > 0 {
                self.offset += usable as u64;
                return Some(Ok(Bytes::from(bytes).slice(..usable)));
            }
            if finished {
                self.done = true;
                return None;
            }
            self.wait().await;
        }
    }

    /// Until this build wrote something, its status changed, or a second
    /// passed; a server that stops ends the stream (the client reconnects
    /// at its offset).
    async fn wait(&mut self) {
        // What came while the file was read: all of it is read at once (the
        // feed keeps an event until every subscriber has read it, so news
        // left unread would be held for this follower).
        let mut news = false;
        // Bounded, in case builds publish faster than this drains.
        for _ in 0..DRAIN_AT_MOST {
            match self.news.try_recv() {
                Ok(Some(event)) => news |= self.concerns(&event),
                Ok(None) => break,
                Err(_) => news = true,
            }
        }
        if news {
            return;
        }
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = self.state.shutdown.cancelled() => {
                    self.done = true;
                    return;
                }
                () = &mut deadline => return,
                event = self.news.recv() => match event {
                    Ok(event) if self.concerns(&event) => return,
                    Ok(_) => {}
                    // Behind on news: the file says what happened.
                    Err(_) => return,
                },
            }
        }
    }

    /// Whether `event` may mean more to read or an end: lines of this
    /// build, or a change of status.
    fn concerns(&self, event: &LiveEvent) -> bool {
        match event {
            LiveEvent::Lines(batch) => *batch.id == *self.id,
            LiveEvent::Status { .. } | LiveEvent::History { .. } => true,
        }
    }
}
