//! A small client of GitHub's REST API: the calls zos-build makes (commit
//! statuses, repository webhooks), with the headers GitHub asks for, bounded
//! answers, and failures sorted by what the caller should do about them.

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;

/// GitHub's API, when `github-api-url` is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an answer that is read.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How long to wait after a rate limit that says nothing more.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A call failed; the variant says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// 401: the token is missing, wrong or expired. Retrying cannot help.
    #[error("GitHub refused the token (HTTP 401: {0})")]
    Unauthorized(String),
    /// 404: no such repository, or the token cannot see it. Retrying cannot help.
    #[error("GitHub knows no {0} for this token (HTTP 404)")]
    NotFound(String),
    /// 403 or 429 with a rate limit: try again after `wait`.
    #[error("GitHub's rate limit (HTTP {status}): wait {}s", wait.as_secs())]
    RateLimited {
        /// 403 or 429.
        status: u16,
        /// How long to wait, from `Retry-After` or `X-RateLimit-Reset`.
        wait: Duration,
    },
    /// Any other 4xx (403 without a rate limit: the token lacks a scope; 422:
    /// GitHub refused the content). Retrying cannot help.
    #[error("GitHub refused the call (HTTP {status}: {message})")]
    Refused {
        /// The status.
        status: u16,
        /// GitHub's `message`.
        message: String,
    },
    /// A 5xx, a timeout, a connection error: it may pass.
    #[error("GitHub is unavailable: {0}")]
    Unavailable(String),
}

impl GitHubError {
    /// A short word for the history and the client: `401`, `429`, `502`,
    /// `timeout`.
    pub fn code(&self) -> String {
        match self {
            GitHubError::Unauthorized(_) => "401".into(),
            GitHubError::NotFound(_) => "404".into(),
            GitHubError::RateLimited { status, .. } | GitHubError::Refused { status, .. } => {
                status.to_string()
            }
            GitHubError::Unavailable(reason) => reason
                .split_whitespace()
                .find(|w| w.len() == 3 && w.starts_with('5'))
                .unwrap_or("unavailable")
                .to_string(),
        }
    }
}

/// The client; cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    http: reqwest::Client,
    api: Url,
}

/// The token never shows.
impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// A client of the API at `api_url` (GitHub's, an Enterprise server's
    /// `/api/v3`, or a test's) authenticated by `token`.
    pub fn new(api_url: &str, token: &str) -> Result<GitHub, String> {
        let mut api = Url::parse(api_url)
            .map_err(|e| format!("github-api-url {api_url:?} is not a URL: {e}"))?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(format!("github-api-url {api_url:?} is not an http(s) URL"));
        }
        if !api.path().ends_with('/') {
            let path = format!("{}/", api.path());
            api.set_path(&path);
        }
        let mut headers = HeaderMap::new();
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "github-token holds characters a header cannot carry".to_string())?;
        authorization.set_sensitive(true);
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static(API_VERSION),
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("zos-build/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The token must not travel to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make the GitHub client: {e}"))?;
        Ok(GitHub { http, api })
    }

    /// `method` on `segments` (each one percent-encoded as one path
    /// segment) with the JSON `body`; the answer's JSON (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        self.call_with_query(method, segments, &[], body).await
    }

    /// [`call`](Self::call) with the query `query` (each name and value
    /// percent-encoded), e.g. `[("per_page", "100"), ("page", "2")]`.
    pub async fn call_with_query(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        let mut url = self.api.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| GitHubError::Unavailable("the API URL cannot take a path".into()))?;
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| GitHubError::Unavailable(describe(&e)))?;
        let status = response.status();
        let wait = rate_limit_wait(response.headers());
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(GitHubError::Unavailable(describe(&e))),
            }
        }
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.chars().take(300).collect::<String>())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
        Err(match status {
            StatusCode::UNAUTHORIZED => GitHubError::Unauthorized(message),
            StatusCode::NOT_FOUND => GitHubError::NotFound(segments.join("/")),
            StatusCode::TOO_MANY_REQUESTS => GitHubError::RateLimited {
                status: 429,
                wait: wait.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            },
            StatusCode::FORBIDDEN if wait.is_some() || message.contains("rate limit") => {
                GitHubError::RateLimited {
                    status: 403,
                    wait: wait.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
                }
            }
            s if s.is_server_error() => GitHubError::Unavailable(format!("HTTP {}", s.as_u16())),
            s => GitHubError::Refused {
                status: s.as_u16(),
                message,
            },
        })
    }
}

/// How long a rate-limited answer asks to wait: `Retry-After` (seconds),
/// else, when `X-RateLimit-Remaining` is 0, until `X-RateLimit-Reset` (unix
/// seconds). None when the answer says neither.
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<u64> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    if let Some(seconds) = number("retry-after") {
        return Some(Duration::from_secs(seconds));
    }
    if number("x-ratelimit-remaining") == Some(0) {
        let reset = number("x-ratelimit-reset")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    None
}

/// A transport error in one line, without the URL's credentials.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    zos_build_core::redact::redact_credentials(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_read_from_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(rate_limit_wait(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(2)));
        let mut headers = HeaderMap::new();
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        let wait = rate_limit_wait(&headers).unwrap();
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("10"));
        assert_eq!(rate_limit_wait(&headers), None);
    }

    #[test]
    fn only_http_urls_are_accepted_and_the_token_never_shows() {
        assert!(GitHub::new("ftp://x", "t").is_err());
        assert!(GitHub::new("not a url", "t").is_err());
        let github = GitHub::new("https://ghe.example.org/api/v3", "secret-token").unwrap();
        assert_eq!(github.api.as_str(), "https://ghe.example.org/api/v3/");
        assert!(!format!("{github:?}").contains("secret-token"));
    }

    #[test]
    fn codes_are_short() {
        assert_eq!(GitHubError::Unavailable("HTTP 502".into()).code(), "502");
        assert_eq!(
            GitHubError::RateLimited {
                status: 429,
                wait: Duration::from_secs(2)
            }
            .code(),
            "429"
        );
        assert_eq!(
            GitHubError::Unavailable("timeout: x".into()).code(),
            "unavailable"
        );
    }
}
