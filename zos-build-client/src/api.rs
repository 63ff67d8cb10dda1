//! The HTTP client of the zos-build server: one method per route the
//! terminal client uses, and one error type that always says which server
//! was asked and what was asked of it.
//!
//! Nothing here prints or decides an exit status: the commands do. The
//! errors are sorted by what a command does about them: a server that
//! cannot be reached or a connection that broke mid-answer
//! ([`ApiError::is_transient`]) is worth another try when following a log;
//! an answer the server gave on purpose (404 unknown build, 401 bad token,
//! 409 already finished) is final and shown with the server's own message.

use crate::builds::{self, Build};
use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request that is not a followed log may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a followed log may stay silent before the client reconnects:
/// a connection that died without a word (a sleeping laptop, a dropped NAT
/// entry) is noticed; a quiet build only costs a reconnection, which
/// repeats and skips nothing.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Builds asked for per page of `/build/history/full` (the server's maximum).
const HISTORY_PAGE: usize = 500;

/// A request to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// `--server` is not an `http://` or `https://` URL.
    #[error("{url:?} is not a server URL: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made, or no answer came in time.
    #[error("cannot reach the server at {server} ({what}): {cause}")]
    Unreachable {
        /// The server's URL.
        server: String,
        /// The request, e.g. `GET /build/status`.
        what: String,
        /// What the network said.
        cause: String,
    },
    /// The connection broke while the answer was being received.
    #[error("the connection to {server} broke ({what}): {cause}")]
    Interrupted {
        /// The server's URL.
        server: String,
        /// The request.
        what: String,
        /// What the network said.
        cause: String,
    },
    /// The server answered with an error status.
    #[error("the server at {server} refused {what}: {status}: {message}")]
    Rejected {
        /// The server's URL.
        server: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: StatusCode,
        /// The server's `message`, or the body, or the status's reason.
        message: String,
    },
    /// The answer was not what this route sends.
    #[error("the server at {server} answered {what} with something unexpected: {detail}")]
    Unexpected {
        /// The server's URL.
        server: String,
        /// The request.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A write request without a token.
    #[error("{what} needs the server's admin token: pass --token or set ZOS_BUILD_TOKEN")]
    NoToken {
        /// The request.
        what: String,
    },
}

impl ApiError {
    /// Whether trying again later may work: the server was not reached, the
    /// connection broke, or a proxy in front of it said the server is away.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } | ApiError::Interrupted { .. } => true,
            ApiError::Rejected { status, .. } => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            _ => false,
        }
    }

    /// The HTTP status of a rejection.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The innermost cause of a network error, which is the informative one
/// (`Connection refused (os error 111)`), rather than reqwest's summary.
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_string();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// A zos-build server, and the token for its write routes.
#[derive(Debug, Clone)]
pub struct Server {
    base: Url,
    shown: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Server {
    /// The server at `url` (`http://host:port`, possibly with a path prefix
    /// when it sits behind a reverse proxy).
    pub fn new(url: &str, token: Option<String>) -> Result<Server, ApiError> {
        let bad = |reason: &str| ApiError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if !url.contains("://") {
            return Err(bad(&format!("it has no scheme: write http://{url}")));
        }
        let mut base = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("it must not have a query or a fragment"));
        }
        // A prefix is a directory: routes are appended to it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let shown = base.as_str().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("zos-build-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(&format!("cannot set up an HTTP client: {}", cause(&e))))?;
        Ok(Server {
            base,
            shown,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The server's URL as the user gave it, for messages.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The URL of the route made of `segments` (each percent-encoded).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `METHOD /path?query`, for messages.
    fn describe(method: &Method, url: &Url) -> String {
        match url.query() {
            Some(query) => format!("{method} {}?{query}", url.path()),
            None => format!("{method} {}", url.path()),
        }
    }

    fn unreachable(&self, what: &str, error: &reqwest::Error) -> ApiError {
        ApiError::Unreachable {
            server: self.shown.clone(),
            what: what.to_string(),
            cause: cause(error),
        }
    }

    fn unexpected(&self, what: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Unexpected {
            server: self.shown.clone(),
            what: what.to_string(),
            detail: detail.into(),
        }
    }

    /// Sends a request; an answer with an error status becomes
    /// [`ApiError::Rejected`] carrying the server's message.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        needs_token: bool,
        streaming: bool,
    ) -> Result<(String, reqwest::Response), ApiError> {
        let what = Self::describe(&method, &url);
        let mut request = self.http.request(method, url);
        if !streaming {
            request = request.timeout(REQUEST_TIMEOUT);
        }
        if needs_token {
            let Some(token) = &self.token else {
                return Err(ApiError::NoToken { what });
            };
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(&what, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok((what, response));
        }
        let text = response.text().await.unwrap_or_default();
        Err(ApiError::Rejected {
            server: self.shown.clone(),
            what,
            status,
            message: rejection_message(status, &text),
        })
    }

    /// The whole body of a successful answer, as text.
    async fn text(&self, what: &str, response: reqwest::Response) -> Result<String, ApiError> {
        response.text().await.map_err(|e| ApiError::Interrupted {
            server: self.shown.clone(),
            what: what.to_string(),
            cause: cause(&e),
        })
    }

    /// A GET whose answer is JSON: the body as sent, and parsed.
    async fn get_json(&self, url: Url) -> Result<(String, Value, String), ApiError> {
        let (what, response) = self.send(Method::GET, url, None, false, false).await?;
        let text = self.text(&what, response).await?;
        let value = serde_json::from_str(&text)
            .map_err(|e| self.unexpected(&what, format!("not JSON: {e}")))?;
        Ok((text, value, what))
    }

    /// `GET /build/status`: the body as sent, and parsed.
    pub async fn status(&self) -> Result<(String, Vec<Build>), ApiError> {
        let (text, value, what) = self.get_json(self.endpoint(&["build", "status"])).await?;
        let builds = builds::from_status_object(&value)
            .map_err(|e| self.unexpected(&what, e.to_string()))?;
        Ok((text, builds))
    }

    /// `GET /build/history` (the latest finished builds) or, with `full`,
    /// `/build/history/full` (all of them, page after page): the body as
    /// sent (the pages joined into one array), and parsed.
    pub async fn history(&self, full: bool) -> Result<(String, Vec<Build>), ApiError> {
        if !full {
            let (text, value, what) = self.get_json(self.endpoint(&["build", "history"])).await?;
            let builds =
                builds::from_array(&value).map_err(|e| self.unexpected(&what, e.to_string()))?;
            return Ok((text, builds));
        }
        // The server answers at most HISTORY_PAGE builds at once; the next
        // page starts before the last build of this one.
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut url = self.endpoint(&["build", "history", "full"]);
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("per_page", &HISTORY_PAGE.to_string());
                if let Some(before) = &before {
                    query.append_pair("before", before);
                }
            }
            let (_, value, what) = self.get_json(url).await?;
            let Value::Array(page) = value else {
                return Err(self.unexpected(&what, "not a JSON array".to_string()));
            };
            let full_page = page.len() >= HISTORY_PAGE;
            before = page
                .last()
                .and_then(|last| last.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            all.extend(page);
            if !full_page || before.is_none() {
                break;
            }
        }
        let value = Value::Array(all);
        let builds = builds::from_array(&value)
            .map_err(|e| self.unexpected("GET /build/history/full", e.to_string()))?;
        Ok((value.to_string(), builds))
    }

    /// `GET /api/builds[?name=NAME][&limit=N]`: builds of any status,
    /// newest first.
    pub async fn builds(
        &self,
        name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Build>, ApiError> {
        let mut url = self.endpoint(&["api", "builds"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(name) = name {
                query.append_pair("name", name);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let (_, value, what) = self.get_json(url).await?;
        builds::from_array(&value).map_err(|e| self.unexpected(&what, e.to_string()))
    }

    /// `GET /api/builds/<id>`.
    pub async fn build(&self, id: &str) -> Result<Build, ApiError> {
        let (_, value, what) = self.get_json(self.endpoint(&["api", "builds", id])).await?;
        serde_json::from_value(value).map_err(|e| self.unexpected(&what, e.to_string()))
    }

    /// `GET /api/builds/<id>/log?follow=1&offset=N`: the log from byte
    /// `offset`, live until the build ends.
    pub async fn follow_log(&self, id: &str, offset: u64) -> Result<LogStream, ApiError> {
        let mut url = self.endpoint(&["api", "builds", id, "log"]);
        url.query_pairs_mut()
            .append_pair("follow", "1")
            .append_pair("offset", &offset.to_string());
        let (what, response) = self.send(Method::GET, url, None, false, true).await?;
        Ok(LogStream {
            server: self.shown.clone(),
            what,
            response,
        })
    }

    /// `POST /api/builds`: starts the builds of `repository` (`OWNER/REPO`)
    /// at `branch` (its head, or `commit`); returns their ids.
    pub async fn trigger(
        &self,
        repository: &str,
        branch: &str,
        commit: Option<&str>,
    ) -> Result<Vec<String>, ApiError> {
        let mut body = serde_json::json!({"repository": repository, "branch": branch});
        if let Some(commit) = commit {
            body["commit"] = Value::from(commit);
        }
        let url = self.endpoint(&["api", "builds"]);
        let (what, response) = self
            .send(Method::POST, url, Some(&body), true, false)
            .await?;
        let text = self.text(&what, response).await?;
        parse_started(&text).map_err(|detail| self.unexpected(&what, detail))
    }

    /// `POST /api/builds/<id>/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<(), ApiError> {
        let url = self.endpoint(&["api", "builds", id, "cancel"]);
        let (what, response) = self.send(Method::POST, url, None, true, false).await?;
        // Read the answer so the request is complete; its content is only
        // `{"status":"success"}`.
        self.text(&what, response).await.map(drop)
    }

    /// `DELETE /api/kernels/<target>/cache`: empties a kernel target's
    /// build cache; true when there was one to remove.
    pub async fn clear_cache(&self, target: &str) -> Result<bool, ApiError> {
        let url = self.endpoint(&["api", "kernels", target, "cache"]);
        let (what, response) = self.send(Method::DELETE, url, None, true, false).await?;
        let text = self.text(&what, response).await?;
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(answer["status"] == "cleared")
    }

    /// The URL of the live websocket (`/buildio`), `ws:` or `wss:` after
    /// the server's own scheme.
    pub fn websocket_url(&self) -> Url {
        let mut url = self.endpoint(&["buildio"]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Both are special schemes of the same kind: the change is accepted.
        let _ = url.set_scheme(scheme);
        url
    }
}

/// A followed log being received.
#[derive(Debug)]
pub struct LogStream {
    server: String,
    what: String,
    response: reqwest::Response,
}

impl LogStream {
    /// The next bytes of the log; `None` when the server ended the answer.
    ///
    /// Safe to cancel (in a `select!`): nothing is taken from the
    /// connection until the future completes.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.response
            .chunk()
            .await
            .map_err(|e| ApiError::Interrupted {
                server: self.server.clone(),
                what: self.what.clone(),
                cause: cause(&e),
            })
    }
}

/// What to show of an error answer: its JSON `message`, else its text (one
/// line, bounded), else the status's reason.
pub fn rejection_message(status: StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    if let Some(message) = from_json.filter(|m| !m.is_empty()) {
        return message;
    }
    if body.trim_start().starts_with('<') {
        // A proxy's error page, or another web server altogether.
        return "an HTML page, not an answer of the zos-build API (is this the right server?)"
            .to_string();
    }
    let text: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    }
}

/// The build ids of a `POST /api/builds` answer.
pub fn parse_started(body: &str) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let ids = value
        .get("builds")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no \"builds\" list in {body}"))?;
    ids.iter()
        .map(|id| {
            id.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("a build id that is not a string: {id}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_appended_to_the_server_url_and_escaped() {
        let server = Server::new("http://127.0.0.1:5560", None).expect("valid");
        assert_eq!(server.url(), "http://127.0.0.1:5560");
        assert_eq!(
            server.endpoint(&["api", "builds", "ab-12", "log"]).as_str(),
            "http://127.0.0.1:5560/api/builds/ab-12/log"
        );
        // A hostile id stays one path segment.
        assert_eq!(
            server.endpoint(&["api", "builds", "../x?y"]).as_str(),
            "http://127.0.0.1:5560/api/builds/..%2Fx%3Fy"
        );
        let behind_proxy = Server::new("https://ci.example.org/zos/", None).expect("valid");
        assert_eq!(behind_proxy.url(), "https://ci.example.org/zos");
        assert_eq!(
            behind_proxy.endpoint(&["build", "status"]).as_str(),
            "https://ci.example.org/zos/build/status"
        );
        assert_eq!(
            behind_proxy.websocket_url().as_str(),
            "wss://ci.example.org/zos/buildio"
        );
        assert_eq!(
            server.websocket_url().as_str(),
            "ws://127.0.0.1:5560/buildio"
        );
    }

    #[test]
    fn bad_server_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("127.0.0.1:5560", "scheme"),
            ("ftp://host", "scheme"),
            ("http://host/?a=1", "query"),
            ("localhost:5560", "write http://localhost:5560"),
            ("http://", "empty host"),
        ] {
            let error = Server::new(url, None).expect_err(url).to_string();
            assert!(error.contains(url), "{error}");
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn an_empty_token_is_no_token() {
        let server = Server::new("http://h", Some(String::new())).expect("valid");
        assert!(server.token.is_none());
    }

    #[test]
    fn rejection_messages_prefer_the_servers_message() {
        assert_eq!(
            rejection_message(
                StatusCode::NOT_FOUND,
                r#"{"status":"error","message":"no such build"}"#
            ),
            "no such build"
        );
        assert_eq!(
            rejection_message(StatusCode::BAD_GATEWAY, "bad \n  gateway\n"),
            "bad gateway"
        );
        assert!(
            rejection_message(StatusCode::NOT_FOUND, "\n<!DOCTYPE html><p>x</p>")
                .starts_with("an HTML page")
        );
        assert_eq!(rejection_message(StatusCode::CONFLICT, ""), "Conflict");
        assert_eq!(
            rejection_message(StatusCode::BAD_REQUEST, &"x".repeat(500)).len(),
            200
        );
    }

    #[test]
    fn started_builds_are_read_from_the_answer() {
        assert_eq!(
            parse_started(r#"{"status":"success","builds":["a1","b2"]}"#),
            Ok(vec!["a1".to_string(), "b2".to_string()])
        );
        assert!(parse_started(r#"{"status":"success"}"#).is_err());
        assert!(parse_started(r#"{"builds":[1]}"#).is_err());
        assert!(parse_started("oops").is_err());
    }

    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        let rejected = |status| ApiError::Rejected {
            server: "s".into(),
            what: "w".into(),
            status,
            message: "m".into(),
        };
        assert!(rejected(StatusCode::BAD_GATEWAY).is_transient());
        assert!(!rejected(StatusCode::NOT_FOUND).is_transient());
        assert_eq!(
            rejected(StatusCode::CONFLICT).status(),
            Some(StatusCode::CONFLICT)
        );
        let unreachable = ApiError::Unreachable {
            server: "http://127.0.0.1:9".into(),
            what: "GET /build/status".into(),
            cause: "Connection refused (os error 111)".into(),
        };
        assert!(unreachable.is_transient());
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the server at http://127.0.0.1:9 (GET /build/status): Connection refused (os error 111)"
        );
    }
}
