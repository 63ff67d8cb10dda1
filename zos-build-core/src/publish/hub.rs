//! The Zero-OS Hub (`format: flist`): the artifact is uploaded, the hub
//! converts it to a flist, and the branch's link is moved onto that flist.
//!
//! This is what Zero-OS nodes boot from, so it is the service's real
//! product. The contract is the hub's own (threefoldtech/0-hub: its README's
//! API section and `src/flist-uploader.py`):
//!
//! - every call carries `Authorization: bearer <token>`, and the cookie
//!   `active-user=<username>` when a username is set (the hub then acts for
//!   that account, if the token's user is a member of it);
//! - upload: `POST {website}/api/flist/me/upload`, a multipart form whose
//!   field `file` holds the `.tar.gz`, streamed from the file (never read
//!   whole into memory). The hub stores `<name without .tar.gz>.flist` and
//!   answers its name in `payload.name`, which is used from then on;
//! - link: `GET {website}/api/flist/me/<flist>/link/<link>`, which replaces
//!   an older link of that name (and refuses to replace a regular file);
//! - answers are `{"status":"success","payload":{…}}` (the payload is
//!   optional), or `{"status":"error","message":"…"}` with a 4xx or a 5xx.
//!
//! Failures are sorted in two. The hub's own error answer (any 4xx, or a
//! `{"status":"error"}` body whatever the code: the hub answers its
//! rejections as 500 too) fails at once with the hub's message: retrying
//! cannot change it. What may pass (a connection error, a timeout, a 5xx that
//! is not the hub's JSON, such as a proxy's 502 or a crash page) is retried
//! with exponential backoff, up to the [`RetryPolicy`]'s attempts, then fails
//! naming the URL and the last reason. Both calls are idempotent on the hub
//! (an upload of the same name replaces the flist, a link is replaced), so a
//! retry after a timeout whose request did arrive does no harm.
//!
//! Bounds: connecting takes at most [`DEFAULT_CONNECT_TIMEOUT`], an upload
//! (sending the archive, the hub's conversion, the answer) at most
//! [`DEFAULT_UPLOAD_TIMEOUT`], a link call at most
//! [`DEFAULT_REQUEST_TIMEOUT`]; an answer is read up to [`MAX_ANSWER_BYTES`].
//! Redirects are not followed (a multipart stream cannot be replayed, and
//! the token must not travel to another host): the configured website must
//! be the API's final address.
//!
//! The token never appears in an error or a `Debug` output: the publisher's
//! `Debug` is written by hand, and every text that comes from the network is
//! passed through [`redact_credentials`] and has the token masked. Keeping it
//! out of the build log is the masking sink's job: the pipeline must give it
//! the token.

use super::{
    check_names, is_plain_name, PublishError, PublishRequest, Published, PublishedLink, Publisher,
};
use crate::redact::redact_credentials;
use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, COOKIE, LOCATION};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode, Url};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long connecting to the hub may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one upload may take, from connecting to the end of the answer:
/// sending the archive and the hub's conversion of it to a flist (which
/// unpacks it and stores every file in its backend) included.
pub const DEFAULT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long one link call may take, answer included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an answer that is read; the hub's answers are a few hundred
/// bytes, and the rest of a longer one is ignored.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of the hub's message (or of an unexpected answer) an error shows.
const MAX_MESSAGE_CHARS: usize = 500;

/// How often and how patiently a failing call is tried again.
///
/// The delay after attempt `n` is `first_delay × 2ⁿ⁻¹`, at most `max_delay`.
/// The default makes 5 attempts with 2, 4, 8 and 16 s between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    first_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    /// `attempts` tries in all (at least 1), the first delay `first_delay`,
    /// doubling up to 30 s (or `first_delay` if longer).
    pub fn new(attempts: u32, first_delay: Duration) -> Self {
        RetryPolicy {
            attempts: attempts.max(1),
            first_delay,
            max_delay: first_delay.max(Duration::from_secs(30)),
        }
    }

    /// The longest delay between two attempts.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// How many attempts are made in all.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay after the failed attempt `attempt` (counted from 1).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(5, Duration::from_secs(2))
    }
}

/// The settings of a [`HubPublisher`], checked by [`build`](Self::build).
#[derive(Clone)]
pub struct HubPublisherBuilder {
    website: String,
    token: String,
    username: Option<String>,
    retry: RetryPolicy,
    connect_timeout: Duration,
    upload_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for HubPublisherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubPublisherBuilder")
            .field("website", &redact_credentials(&self.website))
            .field("token", &"***")
            .field("username", &self.username)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("upload_timeout", &self.upload_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl HubPublisherBuilder {
    /// Act for the hub account `username` (the `active-user` cookie); `None`
    /// acts for the token's own user.
    pub fn username(mut self, username: Option<String>) -> Self {
        self.username = username.filter(|u| !u.is_empty());
        self
    }

    /// How failing calls are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long connecting may take (default: [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one upload may take (default: [`DEFAULT_UPLOAD_TIMEOUT`]).
    pub fn upload_timeout(mut self, timeout: Duration) -> Self {
        self.upload_timeout = timeout;
        self
    }

    /// How long one link call may take (default: [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The publisher, once the website is an `http`/`https` URL without
    /// credentials, query or fragment, the token a non-empty header value and the
    /// username a plain cookie value.
    pub fn build(self) -> Result<HubPublisher, PublishError> {
        let shown = redact_credentials(&self.website);
        let website = Url::parse(&self.website).map_err(|e| {
            PublishError::HubSettings(format!("the website {shown:?} is not a URL: {e}"))
        })?;
        if !matches!(website.scheme(), "http" | "https")
            || website.cannot_be_a_base()
            || website.query().is_some()
            || website.fragment().is_some()
        {
            return Err(PublishError::HubSettings(format!(
                "the website {shown:?} must be an http or https URL without query or fragment"
            )));
        }
        if !website.username().is_empty() || website.password().is_some() {
            return Err(PublishError::HubSettings(format!(
                "the website {shown:?} must not carry credentials: the token is the hub's"
            )));
        }
        if self.token.is_empty() {
            return Err(PublishError::HubSettings("the token is empty".into()));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("bearer {}", self.token)).map_err(|_| {
                PublishError::HubSettings(
                    "the token holds characters an HTTP header cannot carry".into(),
                )
            })?;
        authorization.set_sensitive(true);
        let cookie = match &self.username {
            None => None,
            Some(username) => {
                let plain = username
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\' | '='));
                if !plain {
                    return Err(PublishError::HubSettings(format!(
                        "the username {username:?} cannot be sent as the active-user cookie"
                    )));
                }
                let value = HeaderValue::from_str(&format!("active-user={username}"))
                    .map_err(|e| PublishError::HubSettings(format!("the username: {e}")))?;
                Some(value)
            }
        };
        let client = Client::builder()
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("zos-build/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PublishError::HubSettings(format!("cannot make the HTTP client: {e}")))?;
        Ok(HubPublisher {
            client,
            website,
            token: self.token,
            authorization,
            cookie,
            username: self.username,
            retry: self.retry,
            upload_timeout: self.upload_timeout,
            request_timeout: self.request_timeout,
        })
    }
}

/// Uploads artifacts to the Zero-OS Hub and moves their branch's link.
///
/// ```no_run
/// # async fn run() -> Result<(), zos_build_core::PublishError> {
/// use zos_build_core::{link_name, HubPublisher, PublishRequest, Publisher};
/// let hub = HubPublisher::builder("https://hub.grid.tf", "<token>")
///     .username(Some("tf-autobuilder".into()))
///     .build()?;
/// let artifact = std::path::Path::new("/tmp/build/archive.tar.gz");
/// let link = link_name("acme/widget", None, "master");
/// let request = PublishRequest::new(artifact, "acme-widget-master-0123456789.tar.gz")
///     .with_link(&link);
/// let published = hub.publish(&request).await?;
/// assert_eq!(published.name, "acme-widget-master-0123456789.flist");
/// # Ok(()) }
/// ```
pub struct HubPublisher {
    client: Client,
    website: Url,
    token: String,
    authorization: HeaderValue,
    cookie: Option<HeaderValue>,
    username: Option<String>,
    retry: RetryPolicy,
    upload_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for HubPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubPublisher")
            .field("website", &redact_credentials(self.website.as_str()))
            .field("token", &"***")
            .field("username", &self.username)
            .field("retry", &self.retry)
            .field("upload_timeout", &self.upload_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// One call of the contract.
enum Call<'a> {
    Upload { artifact: &'a Path, name: &'a str },
    Link,
}

/// How one attempt ended, when it did not fail for good.
enum Attempt {
    /// The hub's success, with its payload if any.
    Done(Option<serde_json::Value>),
    /// Worth another attempt: why this one failed.
    Transient(String),
}

/// The hub's answer, `{"status": …, "message": …, "payload": …}`.
#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

impl HubPublisher {
    /// The settings of a publisher to the hub at `website` (for example
    /// `https://hub.grid.tf`) with the API token `token`.
    pub fn builder(website: impl Into<String>, token: impl Into<String>) -> HubPublisherBuilder {
        HubPublisherBuilder {
            website: website.into(),
            token: token.into(),
            username: None,
            retry: RetryPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The hub's website.
    pub fn website(&self) -> &Url {
        &self.website
    }

    /// The secrets a masking log sink must hide: the token.
    pub fn secrets(&self) -> Vec<String> {
        vec![self.token.clone()]
    }

    /// The website's URL with `segments` appended, each percent-encoded as
    /// one path segment.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, PublishError> {
        let mut url = self.website.clone();
        url.path_segments_mut()
            .map_err(|()| {
                PublishError::HubSettings(format!(
                    "the website {} cannot carry a path",
                    self.shown(&self.website)
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `url` as errors show it.
    fn shown(&self, url: &Url) -> String {
        redact_credentials(url.as_str())
    }

    /// `text` (from the network) on one line, with URL credentials and the
    /// token masked, and cut to [`MAX_MESSAGE_CHARS`].
    fn clean(&self, text: &str) -> String {
        let text = redact_credentials(text).replace(&self.token, "***");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match text.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None => text.to_string(),
        }
    }

    /// A transport error and its causes, on one line (the URL is said once,
    /// by the error that carries this text).
    fn describe(&self, error: reqwest::Error) -> String {
        let error = error.without_url();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.clean(&text)
    }

    /// Where the hub serves `name`: `{website}/<username>/<name>` when the
    /// account is known, else the API's view of one's own flist.
    fn location(&self, name: &str) -> Result<String, PublishError> {
        let url = match &self.username {
            Some(username) => self.endpoint(&[username, name])?,
            None => self.endpoint(&["api", "flist", "me", name])?,
        };
        Ok(self.shown(&url))
    }

    /// Makes `call` until it succeeds, fails for good, or the retry policy
    /// is spent.
    async fn call(
        &self,
        call: Call<'_>,
        url: &Url,
    ) -> Result<Option<serde_json::Value>, PublishError> {
        let mut attempt = 1;
        loop {
            match self.attempt(&call, url).await? {
                Attempt::Done(payload) => return Ok(payload),
                Attempt::Transient(reason) if attempt >= self.retry.attempts => {
                    return Err(PublishError::HubUnavailable {
                        url: self.shown(url),
                        attempts: attempt,
                        reason,
                    });
                }
                Attempt::Transient(reason) => {
                    let delay = self.retry.delay_after(attempt);
                    tracing::warn!(
                        url = %self.shown(url), attempt, ?delay, %reason,
                        "the Zero-OS Hub failed; trying again"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt of `call`.
    async fn attempt(&self, call: &Call<'_>, url: &Url) -> Result<Attempt, PublishError> {
        let request = match call {
            Call::Upload { artifact, name } => {
                let (file, length) = open_regular(artifact).await?;
                let part = Part::stream_with_length(file, length).file_name(name.to_string());
                self.client
                    .post(url.clone())
                    .multipart(Form::new().part("file", part))
                    .timeout(self.upload_timeout)
            }
            Call::Link => self.client.get(url.clone()).timeout(self.request_timeout),
        };
        let mut request = request.header(AUTHORIZATION, self.authorization.clone());
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Ok(Attempt::Transient(self.describe(e))),
        };
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Ok(Attempt::Transient(self.describe(e))),
            }
        }
        self.judge(url, status, location, &body)
    }

    /// What an answer means.
    fn judge(
        &self,
        url: &Url,
        status: StatusCode,
        location: Option<String>,
        body: &[u8],
    ) -> Result<Attempt, PublishError> {
        let answer: Option<Answer> = serde_json::from_slice(body).ok();
        let text = self.clean(&String::from_utf8_lossy(body));
        let refused = |message: Option<&serde_json::Value>| {
            let message = match message {
                Some(serde_json::Value::String(m)) => self.clean(m),
                Some(other) => self.clean(&other.to_string()),
                None if !text.is_empty() => text.clone(),
                None => status.canonical_reason().unwrap_or("no message").into(),
            };
            PublishError::HubRefused {
                url: self.shown(url),
                status: status.as_u16(),
                message,
            }
        };
        let unexpected = |reason: String| PublishError::HubAnswer {
            url: self.shown(url),
            status: status.as_u16(),
            reason,
        };
        match answer {
            _ if status.is_redirection() => Err(unexpected(format!(
                "a redirect to {}; configure the hub's final address",
                self.clean(location.as_deref().unwrap_or("nowhere"))
            ))),
            Some(answer) if answer.status == "error" => Err(refused(answer.message.as_ref())),
            _ if status.is_server_error() => Ok(Attempt::Transient(format!(
                "HTTP {}: {}",
                status.as_u16(),
                if text.is_empty() { "no body" } else { &text }
            ))),
            _ if status.is_client_error() => Err(refused(None)),
            Some(answer) if answer.status == "success" && status.is_success() => {
                Ok(Attempt::Done(answer.payload))
            }
            Some(answer) => Err(unexpected(format!(
                "status {:?} is neither \"success\" nor \"error\"",
                self.clean(&answer.status)
            ))),
            None => Err(unexpected(format!("not the hub's JSON: {text}"))),
        }
    }
}

/// Opens `artifact` for reading if it is a regular file, not a link; with
/// its length.
async fn open_regular(artifact: &Path) -> Result<(tokio::fs::File, u64), PublishError> {
    let failed = |source| PublishError::Artifact {
        path: artifact.to_path_buf(),
        source,
    };
    let before = tokio::fs::symlink_metadata(artifact)
        .await
        .map_err(failed)?;
    if !before.file_type().is_file() {
        return Err(PublishError::NotRegular(artifact.to_path_buf()));
    }
    let file = tokio::fs::File::open(artifact).await.map_err(failed)?;
    let opened = file.metadata().await.map_err(failed)?;
    // The file opened is the one checked, not a link put in its place.
    #[cfg(unix)]
    let same = {
        use std::os::unix::fs::MetadataExt;
        before.dev() == opened.dev() && before.ino() == opened.ino()
    };
    #[cfg(not(unix))]
    let same = true;
    if !opened.is_file() || !same {
        return Err(PublishError::NotRegular(artifact.to_path_buf()));
    }
    Ok((file, opened.len()))
}

#[async_trait]
impl Publisher for HubPublisher {
    /// Uploads the artifact (its name must end with `.tar.gz`) and, when
    /// `request.link` is set, points that link at the uploaded flist.
    async fn publish(&self, request: &PublishRequest<'_>) -> Result<Published, PublishError> {
        check_names(request)?;
        let stem = request
            .name
            .strip_suffix(".tar.gz")
            .filter(|stem| !stem.is_empty())
            .ok_or_else(|| PublishError::NotAnArchive(request.name.to_string()))?;
        let upload = self.endpoint(&["api", "flist", "me", "upload"])?;
        let call = Call::Upload {
            artifact: request.artifact,
            name: request.name,
        };
        let payload = self.call(call, &upload).await?;
        // The hub's name for the flist (it may clean the file name), or the
        // one its conversion gives when the answer has none.
        let flist = match payload.as_ref().and_then(|p| p.get("name")) {
            None => format!("{stem}.flist"),
            Some(serde_json::Value::String(name))
                if is_plain_name(name) && name.ends_with(".flist") =>
            {
                name.clone()
            }
            Some(other) => {
                return Err(PublishError::HubAnswer {
                    url: self.shown(&upload),
                    status: 200,
                    reason: format!(
                        "the flist's name {} is not a plain .flist file name",
                        self.clean(&other.to_string())
                    ),
                });
            }
        };
        let mut published = Published {
            location: self.location(&flist)?,
            name: flist,
            link: None,
        };
        if let Some(link) = request.link {
            published.link = self.move_link(&published, link).await?;
        }
        Ok(published)
    }

    /// Points the hub's link `link` at the flist `published.name`.
    async fn move_link(
        &self,
        published: &Published,
        link: &str,
    ) -> Result<Option<PublishedLink>, PublishError> {
        let flist = &published.name;
        if !is_plain_name(link) || link == flist {
            return Err(PublishError::InvalidLink(link.to_string()));
        }
        let url = self.endpoint(&["api", "flist", "me", flist, "link", link])?;
        self.call(Call::Link, &url).await?;
        Ok(Some(PublishedLink {
            name: link.to_string(),
            location: self.location(link)?,
            target: flist.clone(),
        }))
    }

    fn secrets(&self) -> Vec<String> {
        HubPublisher::secrets(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> HubPublisher {
        HubPublisher::builder("https://hub.example.org/", "tok.en-s3cret")
            .username(Some("acme".into()))
            .build()
            .unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let policy =
            RetryPolicy::new(6, Duration::from_secs(1)).with_max_delay(Duration::from_secs(5));
        let delays: Vec<_> = (1..=5).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(RetryPolicy::new(0, Duration::ZERO).attempts(), 1);
        let default = RetryPolicy::default();
        assert_eq!(default.attempts(), 5);
        assert_eq!(default.delay_after(4), Duration::from_secs(16));
        assert_eq!(
            RetryPolicy::new(3, Duration::from_secs(1)).delay_after(u32::MAX),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn settings_are_checked_without_showing_the_token() {
        for website in [
            "hub.example.org",
            "ftp://hub.example.org",
            "https://h/?a=b",
            "https://u:pw@h/",
        ] {
            let err = HubPublisher::builder(website, "t").build().unwrap_err();
            assert!(
                matches!(err, PublishError::HubSettings(_)),
                "{website}: {err}"
            );
        }
        let err = HubPublisher::builder("https://u:pw@h/", "t")
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let err = HubPublisher::builder("https://h", "").build().unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = HubPublisher::builder("https://h", "se\ncret")
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("se\ncret"), "{err}");
        for username in ["a;b", "a b", "a=b"] {
            let err = HubPublisher::builder("https://h", "t")
                .username(Some(username.into()))
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("active-user"), "{err}");
        }
        let builder = HubPublisher::builder("https://u:pw@h", "tok.en-s3cret");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn endpoints_keep_the_websites_path_and_encode_names() {
        let hub = HubPublisher::builder("https://h/hub/", "t")
            .build()
            .unwrap();
        assert_eq!(
            hub.endpoint(&["api", "flist", "me", "a b#.flist", "link", "c?.flist"])
                .unwrap()
                .as_str(),
            "https://h/hub/api/flist/me/a%20b%23.flist/link/c%3F.flist"
        );
        assert_eq!(
            publisher().location("x.flist").unwrap(),
            "https://hub.example.org/acme/x.flist"
        );
        let anonymous = HubPublisher::builder("https://h", "t").build().unwrap();
        assert_eq!(
            anonymous.location("x.flist").unwrap(),
            "https://h/api/flist/me/x.flist"
        );
    }

    #[test]
    fn answers_are_judged_by_the_contract() {
        let hub = publisher();
        let url = hub.endpoint(&["api"]).unwrap();
        let judge = |status: u16, body: &str| {
            hub.judge(
                &url,
                StatusCode::from_u16(status).unwrap(),
                None,
                body.as_bytes(),
            )
        };
        let ok = judge(200, r#"{"status":"success","payload":{"name":"x.flist"}}"#);
        assert!(matches!(ok, Ok(Attempt::Done(Some(_)))));
        assert!(matches!(
            judge(200, r#"{"status":"success"}"#),
            Ok(Attempt::Done(None))
        ));
        for status in [500, 502, 503] {
            match judge(status, "<html>\n<h1>Internal Server Error</h1>\n</html>\n") {
                Ok(Attempt::Transient(reason)) => assert_eq!(
                    reason,
                    format!("HTTP {status}: <html> <h1>Internal Server Error</h1> </html>")
                ),
                other => panic!("{status}: {:?}", other.map(|_| ())),
            }
        }
        for status in [200, 401, 500] {
            let body = r#"{"status":"error","message":"link destination is already a file"}"#;
            match judge(status, body) {
                Err(PublishError::HubRefused { message, .. }) => {
                    assert_eq!(message, "link destination is already a file")
                }
                other => panic!("{status}: {:?}", other.map(|_| ())),
            }
        }
        let forbidden = judge(403, "").map(|_| ()).unwrap_err();
        assert!(forbidden.to_string().contains("Forbidden"), "{forbidden}");
        let echo = judge(403, r#"{"status":"error","message":"bad tok.en-s3cret"}"#)
            .map(|_| ())
            .unwrap_err();
        assert!(!echo.to_string().contains("s3cret"), "{echo}");
        for body in ["<html>", r#"{"status":"maybe"}"#] {
            let err = judge(200, body).map(|_| ()).unwrap_err();
            assert!(matches!(err, PublishError::HubAnswer { .. }), "{err}");
        }
        let redirect = hub
            .judge(&url, StatusCode::FOUND, Some("https://login".into()), b"")
            .map(|_| ())
            .unwrap_err();
        assert!(redirect.to_string().contains("https://login"), "{redirect}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", publisher());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("hub.example.org") && shown.contains("acme"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn only_tar_gz_regular_files_are_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("a");
        std::fs::write(&artifact, b"x").unwrap();
        // Port 9 of the loopback: nothing is ever reached, as every case
        // fails before the network.
        let hub = HubPublisher::builder("http://127.0.0.1:9", "t")
            .retry(RetryPolicy::new(1, Duration::ZERO))
            .build()
            .unwrap();
        for name in ["x.tgz", ".tar.gz", "x.tar"] {
            let err = hub
                .publish(&PublishRequest::new(&artifact, name))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    PublishError::NotAnArchive(_) | PublishError::InvalidName(_)
                ),
                "{name}: {err}"
            );
        }
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&artifact, &link).unwrap();
            let err = hub
                .publish(&PublishRequest::new(&link, "x.tar.gz"))
                .await
                .unwrap_err();
            assert!(matches!(err, PublishError::NotRegular(_)), "{err}");
        }
        let err = hub
            .publish(&PublishRequest::new(
                &dir.path().join("missing"),
                "x.tar.gz",
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Artifact { .. }), "{err}");
    }
}
