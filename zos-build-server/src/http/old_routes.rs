//! The old service's read routes, in its JSON shapes so that existing
//! dashboards keep working: `/build/status`, `/build/history`,
//! `/build/history/full`, `/build/sync`, `/report/<id>`, and
//! `/build/logs/<owner>/<repo>/<branch>` with its twin
//! `/logs/<owner>/<repo>/<branch>` (the route the old code had, answering
//! `FIXME`; its README named the other one).
//!
//! No path parameter ever reaches the filesystem as written: a build id is
//! checked for its shape and looked up in the history, and a log file's name
//! is made from that id only. Anything else is a 404.
//!
//! Nothing here grows with the history or a log: lists are pages of at most
//! [`MAX_PAGE`] builds, whose `monitor` reads at most
//! [`MONITOR_LIST_BYTES`](views::MONITOR_LIST_BYTES) of their logs in all,
//! and logs and artifacts are streamed from their files.

use super::response::{self, Body};
use super::MAX_PAGE;
use crate::state::AppState;
use crate::views;
use hyper::{Response, StatusCode};
use zos_build_core::history::is_valid_build_id;
use zos_build_core::{BuildRecord, HistoryError};

pub(super) fn internal(e: HistoryError) -> Response<Body> {
    tracing::error!(error = %e, "history query failed");
    response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the build history cannot be read",
    )
}

/// `GET /build/status`: queued and running builds, keyed by id.
pub async fn status(state: &AppState) -> Response<Body> {
    match views::status(&state.history, &state.config).await {
        Ok(value) => response::json(StatusCode::OK, &value),
        Err(e) => internal(e),
    }
}

/// `GET /build/history`: the latest finished builds, newest first.
pub async fn history(state: &AppState) -> Response<Body> {
    match views::history(&state.history, &state.config).await {
        Ok(value) => response::json(StatusCode::OK, &value),
        Err(e) => internal(e),
    }
}

/// `GET /build/history/full[?per_page=M][&before=<id>|&page=N]`: finished
/// builds, newest first, [`MAX_PAGE`] at most (and by default) per answer.
///
/// The answer is the old service's JSON array; when more builds follow, a
/// `Link: <...?per_page=M&before=<last id>>; rel="next"` header says where.
/// `before` is a cursor (nothing is seen twice while builds finish);
/// `page` (from 1) counts pages of M from the newest and is kept for the
/// clients that used it.
pub async fn history_full(state: &AppState, query: Option<&str>) -> Response<Body> {
    let mut page: Option<u64> = None;
    let mut per_page = MAX_PAGE;
    let mut before = None;
    for (key, value) in response::query_pairs(query) {
        match key.as_ref() {
            "page" => match value.parse::<u64>() {
                Ok(n) if n >= 1 => page = Some(n),
                _ => {
                    return response::error(StatusCode::BAD_REQUEST, "page must be a number from 1")
                }
            },
            "per_page" => match value.parse::<u64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => per_page = n,
                _ => {
                    return response::error(
                        StatusCode::BAD_REQUEST,
                        format!("per_page must be a number from 1 to {MAX_PAGE}"),
                    )
                }
            },
            "before" => before = Some(value.into_owned()),
            _ => {}
        }
    }
    let before = before.as_deref();
    if page.is_some() && before.is_some() {
        return response::error(
            StatusCode::BAD_REQUEST,
            "page and before cannot be combined: follow the Link header's before",
        );
    }
    if let Some(answer) = check_cursor(state, before).await {
        return answer;
    }
    let records = match page {
        Some(page) if page > 1 => state.history.finished(page - 1, per_page).await,
        // One more than asked: whether a next page exists.
        _ => state.history.page(None, true, before, per_page + 1).await,
    };
    match records {
        Ok(mut records) => {
            let more = records.len() as u64 > per_page
                || (page.is_some_and(|p| p > 1) && records.len() as u64 == per_page);
            records.truncate(per_page as usize);
            let next = records
                .last()
                .filter(|_| more)
                .map(|last| format!("/build/history/full?per_page={per_page}&before={}", last.id));
            response::with_next(history_list(state, &records).await, next)
        }
        Err(e) => internal(e),
    }
}

/// None when `before` (a page cursor) is absent or names a build; else the
/// 400 that says it does not.
pub(super) async fn check_cursor(state: &AppState, before: Option<&str>) -> Option<Response<Body>> {
    let before = before?;
    let refusal = || {
        response::error(
            StatusCode::BAD_REQUEST,
            format!("before must be the id of a build (the last of the previous page), found {before:?}"),
        )
    };
    if !is_valid_build_id(before) {
        return Some(refusal());
    }
    match state.history.get(before).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(refusal()),
        Err(e) => Some(internal(e)),
    }
}

async fn history_list(state: &AppState, records: &[BuildRecord]) -> Response<Body> {
    match views::history_list_with_monitor(&state.history, records, &state.config).await {
        Ok(list) => response::json(StatusCode::OK, &list),
        Err(e) => internal(e),
    }
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

/// `GET /build/logs/<owner>/<repo>/<branch>` and `GET /logs/<owner>/<repo>/<branch>`
/// (`rest` is `<owner>/<repo>/<branch>`): the log of the branch's latest build.
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
    let path = state.config.build_log_path(&record.id);
    // Streamed: a log of millions of lines is never held in memory whole.
    match response::log_file(&path, 0).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(build = %record.id, error = %e, "cannot read a build log");
            response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the build log cannot be read",
            )
        }
    }
}

/// `GET /build/sync`: publishes the status and history again on the live
/// feed (the old service's way to refresh every open page); answers `OK`.
pub async fn sync(state: &AppState) -> Response<Body> {
    views::announce(&state.history, &state.config, &state.live, true).await;
    response::text(StatusCode::OK, "OK")
}
