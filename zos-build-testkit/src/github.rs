//! A stand-in for the GitHub REST API: a small HTTP/1 server on the loopback
//! that speaks the part of GitHub's contract the server uses (commit statuses
//! and repository webhooks), answers with the shapes of GitHub's own recorded
//! answers, records every request it receives, and fails on demand.
//!
//! Why a stand-in: GitHub cannot be reached from these machines, and the
//! server's status reports and webhook registration must be tested against a
//! server that checks the token, validates the fields and rate-limits as
//! GitHub does, not against mocks. Why here: the server's own tests and its
//! end-to-end tests report to it, and one copy keeps them testing the same
//! contract.
//!
//! Where the shapes come from: the status object and the `Validation Failed`
//! error follow the public `@octokit/fixtures` package, which records real
//! api.github.com exchanges (scenarios `create-status` and `errors`); the hook
//! object, the `401`/`404` errors, the validation messages of the two
//! endpoints and the rate-limit answers follow GitHub's REST documentation
//! and the answers GitHub gives today, whose error bodies add a `status`
//! member (`"401"`) to the recorded shape. The URLs inside the answers
//! (`url`, `ping_url`, the creator's) point at the stand-in itself, as those
//! of a GitHub Enterprise server point at its own host.
//!
//! What it speaks, under [`GitHubStandIn::url`] (the server's
//! `github-api-url`):
//!
//! - `POST /repos/{owner}/{repo}/statuses/{sha}` with `{"state",
//!   "target_url", "description", "context"}`: `state` one of `pending`,
//!   `success`, `failure`, `error`; `description` at most
//!   [`DESCRIPTION_MAX_CHARS`] characters; `context` not empty (`"default"`
//!   when absent, as on GitHub); `sha` a full commit id. Answers `201` with
//!   the status object, else `422`: `Validation Failed` with GitHub's `errors`
//!   list, `Invalid request.` for a body off the schema, `No commit found for
//!   SHA` for a malformed commit id. `GET
//!   /repos/{owner}/{repo}/commits/{sha}/statuses` lists them, newest first.
//! - `GET` and `POST /repos/{owner}/{repo}/hooks` (list; create, `201`),
//!   `GET`, `PATCH` (update, `200`) and `DELETE` (`204`)
//!   `/repos/{owner}/{repo}/hooks/{id}`, with GitHub's hook object (`type`,
//!   `id`, `name: "web"`, `active`, `events`, `config`, dates, `url`,
//!   `test_url`, `ping_url`, `deliveries_url`, `last_response`) in which a
//!   secret shows as `"********"`. A `config` in a `PATCH` replaces the whole
//!   configuration, as on GitHub: one without `secret` removes the secret.
//!   `events` replaces the events, then `add_events` and `remove_events` edit
//!   them. A second hook to the same URL is refused `422 Hook already exists
//!   on this repository`.
//! - authentication: `Authorization: Bearer <token>` or `token <token>` with
//!   the one token given to [`GitHubStandIn::start`]; none is answered `401
//!   Requires authentication`, another token `401 Bad credentials`. A request
//!   without `User-Agent` is refused `403`, as GitHub refuses it.
//! - repositories: those the test declared
//!   ([`GitHubStandIn::add_repository`]), their names compared without case
//!   as on GitHub; any other is `404 Not Found`, as is any other route.
//! - on every answer: `X-RateLimit-Limit` ([`RATE_LIMIT`]),
//!   `X-RateLimit-Remaining`, `X-RateLimit-Used`, `X-RateLimit-Reset`,
//!   `X-RateLimit-Resource`, `X-GitHub-Request-Id`, `X-GitHub-Media-Type`, and
//!   `Content-Type: application/json; charset=utf-8` (but `text/html` for an
//!   injected failure page and `text/plain` for the missing `User-Agent`
//!   refusal, as GitHub's front end answers them).
//!
//! What it can be told, so that every failure path has a server to face. The
//! counted injections apply to the next requests of any route, after the
//! request is recorded and before its token is checked, one injection per
//! request in this order: fail with a status and an HTML page, as the proxy
//! in front of GitHub does ([`fail_next`](GitHubStandIn::fail_next)); hit the
//! secondary rate limit (`429`, `Retry-After`,
//! [`rate_limit_next`](GitHubStandIn::rate_limit_next)); hit the primary rate
//! limit (`403`, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset`,
//! [`rate_limit_primary_next`](GitHubStandIn::rate_limit_primary_next)).
//! [`stall`](GitHubStandIn::stall) keeps requests waiting, and
//! [`go_down`](GitHubStandIn::go_down) takes the whole service away until
//! [`come_back`](GitHubStandIn::come_back): its listening socket is closed,
//! so connections are refused, and the open ones are closed unanswered.
//!
//! Bounds: a request body is read up to [`MAX_BODY_BYTES`]; a longer one is
//! answered 413 without being buffered. Dropping the stand-in stops it and
//! every connection it serves, stalled requests included.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// The login of the user the token belongs to: the `creator` of every status.
pub const TOKEN_USER: &str = "zos-build-bot";

/// The id of [`TOKEN_USER`], as the primary rate-limit message names it.
pub const TOKEN_USER_ID: u64 = 1000;

/// The requests per hour GitHub grants a token, in `X-RateLimit-Limit`.
/// `X-RateLimit-Remaining` counts down from it with every answer, and starts
/// again an hour after the stand-in started.
pub const RATE_LIMIT: u64 = 5000;

/// The longest status description GitHub accepts, in characters; a longer one
/// is answered `422 description is too long (maximum is 140 characters)`.
pub const DESCRIPTION_MAX_CHARS: usize = 140;

/// The largest request body the stand-in reads (1 MiB; a status or a hook
/// takes a few hundred bytes). A longer body is answered `413` with GitHub's
/// error shape, before any of it is read when its `Content-Length` says so.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How GitHub shows a hook's secret in its answers: never the secret itself.
pub const SECRET_MASK: &str = "********";

/// The states GitHub accepts for a commit status.
const STATES: [&str; 4] = ["pending", "success", "failure", "error"];

/// The `documentation_url` of the errors that belong to no endpoint.
const DOCS: &str = "https://docs.github.com/rest";
const STATUS_DOCS: &str = "https://docs.github.com/rest/commits/statuses#create-a-commit-status";
const CREATE_HOOK_DOCS: &str =
    "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook";
const UPDATE_HOOK_DOCS: &str =
    "https://docs.github.com/rest/repos/webhooks#update-a-repository-webhook";
const RATE_LIMIT_DOCS: &str =
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api";

/// The page a failing proxy in front of GitHub answers: not JSON, which the
/// client must survive.
const FAILURE_PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
    <title>Server error &middot; GitHub stand-in</title></head>\n\
    <body><h1>The service could not produce an answer.</h1></body></html>\n";

/// What GitHub answers, as plain text, to a request without `User-Agent`.
const NO_USER_AGENT: &str = "Request forbidden: the GitHub API requires a User-Agent header \
    (https://docs.github.com/rest/using-the-rest-api/getting-started-with-the-rest-api#user-agent).\n";

/// One request the stand-in received, in the order received, as it arrived
/// (before any failure it was told to inject), so that a test can check what
/// every attempt of a client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The HTTP method (`POST`, `GET`, `PATCH`).
    pub method: String,
    /// The request's path as sent, still percent-encoded, without the query.
    pub path: String,
    /// The query, without its `?`, when there was one.
    pub query: Option<String>,
    /// The `Authorization` header (`Bearer <token>`, `token <token>`).
    pub authorization: Option<String>,
    /// The `Accept` header (`application/vnd.github+json`).
    pub accept: Option<String>,
    /// The `X-GitHub-Api-Version` header (`2022-11-28`).
    pub api_version: Option<String>,
    /// The `User-Agent` header, which GitHub requires.
    pub user_agent: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as JSON; `Null` when there was none, and for a body that is
    /// not JSON or was refused (too large, cut).
    pub body: Value,
}

/// One commit status the stand-in accepted, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    /// The status's context (`"default"` when the request had none).
    pub context: String,
    /// The description, when there was one.
    pub description: Option<String>,
    /// The link to the build, when there was one.
    pub target_url: Option<String>,
    /// When the stand-in accepted it, to check the order and timing of a
    /// build's reports.
    pub received: Instant,
}

/// A repository webhook as the stand-in holds it: the one of GitHub's `web`
/// kind, with its real secret (answers show [`SECRET_MASK`] instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The hook's id, unique in the stand-in.
    pub id: u64,
    /// Whether GitHub would deliver its events.
    pub active: bool,
    /// The events it is delivered (`push`, `create`, …), in the order given.
    pub events: Vec<String>,
    /// Where and how it is delivered.
    pub config: HookConfig,
    /// When it was created, as GitHub writes it (`2024-01-15T10:30:00Z`).
    pub created_at: String,
    /// When it was last changed, in the same form.
    pub updated_at: String,
}

/// A hook's `config`: where GitHub delivers and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    /// The URL events are posted to.
    pub url: String,
    /// `json` or `form` (`form` when not given, as on GitHub).
    pub content_type: String,
    /// `"0"` to verify the receiver's certificate, `"1"` not to (`"0"` when
    /// not given; a number is kept as its string).
    pub insecure_ssl: String,
    /// The secret deliveries are signed with, if set (an empty one is none).
    pub secret: Option<String>,
}

/// A repository the test declared, with what was sent to it.
struct Repository {
    /// `owner/name` as declared: the form the answers' URLs use.
    full_name: String,
    /// Lowercase commit id → its statuses, oldest first.
    statuses: BTreeMap<String, Vec<StoredStatus>>,
    hooks: Vec<Hook>,
}

/// A status as accepted, with what GitHub answers about it besides.
struct StoredStatus {
    id: u64,
    created_at: String,
    record: StatusRecord,
}

/// What the stand-in holds and is told.
struct State {
    /// The token it accepts.
    token: String,
    /// Its own base URL, which the answers' URLs start with.
    base: String,
    /// The largest body it reads ([`MAX_BODY_BYTES`]; lowered by its own
    /// tests).
    max_body_bytes: u64,
    /// Between `go_down` and `come_back`: connections and requests are
    /// dropped without an answer.
    down: bool,
    /// Answer the next N requests with this status and an HTML page.
    failing: u32,
    failing_status: u16,
    /// Answer the next N requests with the secondary rate limit and this
    /// `Retry-After`.
    secondary_limits: u32,
    retry_after_secs: u64,
    /// Answer the next N requests with the primary rate limit, reset this
    /// many seconds later.
    primary_limits: u32,
    reset_in_secs: u64,
    /// Keep the next N requests waiting until the stand-in is dropped or goes
    /// down.
    stalls: u32,
    requests: Vec<Recorded>,
    /// Lowercase `owner/name` → the repository.
    repositories: BTreeMap<String, Repository>,
    next_status_id: u64,
    next_hook_id: u64,
    /// Answers given so far: the requests' ids.
    answered: u64,
    /// Requests counted against [`RATE_LIMIT`] in the current hour.
    used: u64,
    /// When the current hour ends (Unix seconds).
    window_reset: u64,
    port: u16,
}

impl State {
    /// The repository `owner/name`, whatever the case of either.
    fn repository_mut(&mut self, full_name: &str) -> Option<&mut Repository> {
        self.repositories.get_mut(&full_name.to_ascii_lowercase())
    }

    fn add_repository(&mut self, full_name: &str) -> &mut Repository {
        self.repositories
            .entry(full_name.to_ascii_lowercase())
            .or_insert_with(|| Repository {
                full_name: full_name.to_string(),
                statuses: BTreeMap::new(),
                hooks: Vec::new(),
            })
    }
}

type Shared = Arc<Mutex<State>>;

/// The state, even after a panic of another request's handler (a test
/// server keeps answering so that the test reports its own failure).
fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`GitHubStandIn::go_down`] and [`GitHubStandIn::come_back`] ask of
/// the accept loop, which owns the listening socket; each answers once done.
enum Control {
    Down(oneshot::Sender<()>),
    Up(oneshot::Sender<std::io::Result<()>>),
}

/// The GitHub REST API on `127.0.0.1` and a port of its own, for the lifetime
/// of this value; see the [module documentation](self) for what it speaks.
///
/// ```no_run
/// # async fn run() {
/// use zos_build_testkit::github::GitHubStandIn;
/// let github = GitHubStandIn::start("ghp_test").await;
/// github.add_repository("acme/widget");
/// // … start the server with `github-api-url` = `github.url()`, push …
/// let statuses = github.statuses("acme/widget", "0123456789abcdef0123456789abcdef01234567");
/// assert_eq!(statuses.last().map(|s| s.state.as_str()), Some("success"));
/// # }
/// ```
pub struct GitHubStandIn {
    url: String,
    state: Shared,
    control: mpsc::UnboundedSender<Control>,
    /// The accept loop; it owns every connection's task, so aborting it
    /// ends them all.
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GitHubStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for GitHubStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubStandIn")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl GitHubStandIn {
    /// Starts a GitHub that accepts the token `token` (as `Bearer <token>` or
    /// `token <token>`), with no repository yet. Panics when the loopback
    /// cannot be bound: there is no test without it.
    pub async fn start(token: &str) -> GitHubStandIn {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the GitHub stand-in");
        let address = listener
            .local_addr()
            .expect("the GitHub stand-in's loopback address");
        let url = format!("http://{address}");
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            base: url.clone(),
            max_body_bytes: MAX_BODY_BYTES,
            down: false,
            failing: 0,
            failing_status: 502,
            secondary_limits: 0,
            retry_after_secs: 0,
            primary_limits: 0,
            reset_in_secs: 0,
            stalls: 0,
            requests: Vec::new(),
            repositories: BTreeMap::new(),
            next_status_id: 1,
            next_hook_id: 1,
            answered: 0,
            used: 0,
            window_reset: unix_now() + 3600,
            port: address.port(),
        }));
        let (control, orders) = mpsc::unbounded_channel();
        let server = tokio::spawn(accept_loop(listener, address, state.clone(), orders));
        GitHubStandIn {
            url,
            state,
            control,
            server,
        }
    }

    /// The API's base, `http://127.0.0.1:<port>` (no trailing slash): what
    /// the server's `github-api-url` is set to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Declares the repository `owner/name`: from now on its statuses and
    /// hooks are served. Declaring it again changes nothing.
    pub fn add_repository(&self, full_name: &str) {
        lock(&self.state).add_repository(full_name);
    }

    /// The statuses accepted for commit `sha` of `repository` (names and
    /// commit id compared without case), in the order they arrived; empty for
    /// an unknown repository or commit.
    pub fn statuses(&self, repository: &str, sha: &str) -> Vec<StatusRecord> {
        lock(&self.state)
            .repository_mut(repository)
            .and_then(|repository| repository.statuses.get(&sha.to_ascii_lowercase()))
            .map(|statuses| {
                statuses
                    .iter()
                    .map(|stored| stored.record.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The hooks of `repository` now, in the order they were created, with
    /// their real secrets; empty for an unknown repository.
    pub fn hooks(&self, repository: &str) -> Vec<Hook> {
        lock(&self.state)
            .repository_mut(repository)
            .map(|repository| repository.hooks.clone())
            .unwrap_or_default()
    }

    /// Creates an active hook without a request, as another tool or an older
    /// configuration left it: the state a test starts from (a foreign hook to
    /// leave alone, a stale one to update). It has no secret and verifies
    /// certificates. Declares the repository if needed. Returns its id.
    pub fn insert_hook(
        &self,
        repository: &str,
        url: &str,
        events: &[&str],
        content_type: &str,
    ) -> u64 {
        let mut state = lock(&self.state);
        let id = state.next_hook_id;
        state.next_hook_id += 1;
        let now = iso8601(unix_now());
        state.add_repository(repository).hooks.push(Hook {
            id,
            active: true,
            events: events.iter().map(|event| event.to_string()).collect(),
            config: HookConfig {
                url: url.to_string(),
                content_type: content_type.to_string(),
                insecure_ssl: "0".to_string(),
                secret: None,
            },
            created_at: now.clone(),
            updated_at: now,
        });
        id
    }

    /// Answers the next `n` requests (replacing any count left) with the
    /// HTTP status `status` and an HTML page, as the proxy in front of GitHub
    /// does when GitHub fails (`502`, `503`, `504`). A failed request changes
    /// nothing.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut state = lock(&self.state);
        state.failing = n;
        state.failing_status = status;
    }

    /// Answers the next `n` requests (replacing any count left) as GitHub's
    /// secondary rate limit does: `429`, `Retry-After: <retry_after_secs>` and
    /// `{"message":"You have exceeded a secondary rate limit…",
    /// "documentation_url","status"}`. A limited request changes nothing.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
        let mut state = lock(&self.state);
        state.secondary_limits = n;
        state.retry_after_secs = retry_after_secs;
    }

    /// Answers the next `n` requests (replacing any count left) as GitHub's
    /// exhausted primary rate limit does: `403`, `X-RateLimit-Remaining: 0`,
    /// `X-RateLimit-Reset` `reset_in_secs` from now (Unix seconds), and
    /// `{"message":"API rate limit exceeded for user ID …",
    /// "documentation_url","status"}`. A limited request changes nothing.
    pub fn rate_limit_primary_next(&self, n: u32, reset_in_secs: u64) {
        let mut state = lock(&self.state);
        state.primary_limits = n;
        state.reset_in_secs = reset_in_secs;
    }

    /// Keeps the next `n` requests (replacing any count left), of any kind,
    /// waiting without an answer until the stand-in is dropped or goes down:
    /// longer than any client waits, so the client's timeout is what ends
    /// them.
    pub fn stall(&self, n: u32) {
        lock(&self.state).stalls = n;
    }

    /// Takes the service away until [`come_back`](Self::come_back): the
    /// listening socket is closed, so a new connection is refused
    /// (`ECONNREFUSED`, as from a host whose service is stopped), and every
    /// open connection is closed, stalled requests included, without an
    /// answer. Nothing is recorded while down.
    ///
    /// Async so that it returns only once the socket is closed and the
    /// connections are gone: the next request of the test meets the outage,
    /// whatever the scheduling.
    pub async fn go_down(&self) {
        lock(&self.state).down = true;
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Down(done)).is_ok() {
            let _ = finished.await;
        }
    }

    /// Ends [`go_down`](Self::go_down): the service listens again on the same
    /// address, with the repositories, statuses, hooks and injections it had.
    /// Returns once it accepts connections. Panics when the port cannot be
    /// bound again within a few seconds (another socket took it meanwhile).
    pub async fn come_back(&self) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Up(done)).is_ok() {
            if let Ok(Err(e)) = finished.await {
                panic!(
                    "the GitHub stand-in could not listen on {} again: {e}",
                    self.url
                );
            }
        }
        lock(&self.state).down = false;
    }
}

/// Accepts connections, and closes or opens the listening socket when told,
/// until the stand-in is dropped.
async fn accept_loop(
    listener: TcpListener,
    address: SocketAddr,
    state: Shared,
    mut orders: mpsc::UnboundedReceiver<Control>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    // Accepted just before going down: dropped unanswered.
                    if !lock(&state).down {
                        connections.spawn(serve(stream, state.clone()));
                    }
                }
                // Out of descriptors, or a connection reset before it was
                // accepted: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            order = orders.recv() => match order {
                Some(Control::Down(done)) => {
                    listener = None;
                    connections.shutdown().await;
                    let _ = done.send(());
                }
                Some(Control::Up(done)) => {
                    let result = match listener {
                        Some(_) => Ok(()),
                        None => bind_again(address).await.map(|bound| {
                            listener = Some(bound);
                        }),
                    };
                    let _ = done.send(result);
                }
                // The stand-in is gone.
                None => return,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The next connection, or never while the socket is closed.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Listens on `address` again. The port was ours a moment ago and is reused
/// at once (`SO_REUSEADDR`, which tokio sets, covers the closed connections
/// in `TIME_WAIT`); a few retries cover a socket that still holds it briefly.
async fn bind_again(address: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) if attempts >= 50 => return Err(e),
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one connection until the client closes it.
async fn serve(stream: TcpStream, state: Shared) {
    let service = hyper::service::service_fn(move |request| answer(request, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// What a request handler returns to make hyper drop the connection without
/// an answer: the stand-in went down.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the GitHub stand-in is down")
    }
}

impl std::error::Error for Dropped {}

/// A request body as read.
enum Body {
    /// No body at all.
    Empty,
    Json(Value),
    /// Bytes that are not JSON.
    Malformed,
}

/// Why a body was not read whole.
enum BodyError {
    TooLarge,
    Cut,
}

/// The body, if it is at most `limit` bytes; a declared length over the
/// limit is refused before any byte is read.
async fn read_body(request: Request<Incoming>, limit: u64) -> Result<Bytes, BodyError> {
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Cut),
    }
}

/// The parts of a request the routes look at.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    authorization: Option<&'a str>,
    user_agent: Option<&'a str>,
    body: &'a Body,
}

/// The stand-in's request handling: the body, the record, the stall, then
/// [`respond`] and GitHub's headers.
async fn answer(
    request: Request<Incoming>,
    state: Shared,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let limit = {
        let state = lock(&state);
        if state.down {
            return Err(Dropped);
        }
        state.max_body_bytes
    };
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let authorization = header("authorization");
    let accept = header("accept");
    let api_version = header("x-github-api-version");
    let user_agent = header("user-agent");
    let content_type = header("content-type");
    let (body, early) = match read_body(request, limit).await {
        Err(BodyError::TooLarge) => (Body::Empty, Some((413, "Request body too large"))),
        Err(BodyError::Cut) => (Body::Empty, Some((400, "Problems parsing JSON"))),
        Ok(bytes) if bytes.is_empty() => (Body::Empty, None),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => (Body::Json(value), None),
            Err(_) => (Body::Malformed, None),
        },
    };
    let stall = {
        let mut state = lock(&state);
        state.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query,
            authorization: authorization.clone(),
            accept,
            api_version,
            user_agent: user_agent.clone(),
            content_type,
            body: match &body {
                Body::Json(value) => value.clone(),
                Body::Empty | Body::Malformed => Value::Null,
            },
        });
        let stall = early.is_none() && state.stalls > 0;
        state.stalls = state.stalls.saturating_sub(u32::from(stall));
        stall
    };
    if stall {
        // Until the stand-in is dropped or goes down, which ends this
        // connection's task.
        std::future::pending::<()>().await;
    }

    let mut state = lock(&state);
    if state.down {
        return Err(Dropped);
    }
    let request_id = next_request_id(&mut state);
    let response = match early {
        Some((status, message)) => github_error(status, message, DOCS),
        None => respond(
            &mut state,
            &Call {
                method: &method,
                path: &path,
                authorization: authorization.as_deref(),
                user_agent: user_agent.as_deref(),
                body: &body,
            },
            &request_id,
        ),
    };
    Ok(with_github_headers(&state, &request_id, response))
}

/// Counts the request against the hour's limit and names it as GitHub's
/// `X-GitHub-Request-Id` does (`XXXX:XXXXX:XXXXXXX:XXXXXXX:XXXXXXXX`).
fn next_request_id(state: &mut State) -> String {
    let now = unix_now();
    if now >= state.window_reset {
        state.window_reset = now + 3600;
        state.used = 0;
    }
    state.used = (state.used + 1).min(RATE_LIMIT);
    state.answered += 1;
    let n = state.answered;
    format!(
        "{:04X}:{:05X}:{:07X}:{:07X}:{:08X}",
        state.port,
        n & 0xF_FFFF,
        n,
        n,
        state.window_reset & 0xFFFF_FFFF
    )
}

/// Adds the headers GitHub puts on every answer, keeping those the answer
/// set itself (the primary rate limit's, the failure page's content type).
fn with_github_headers(
    state: &State,
    request_id: &str,
    mut response: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let defaults = [
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        (
            "x-ratelimit-remaining",
            (RATE_LIMIT - state.used).to_string(),
        ),
        ("x-ratelimit-reset", state.window_reset.to_string()),
        ("x-ratelimit-used", state.used.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        ("x-github-request-id", request_id.to_string()),
        ("x-github-media-type", "github.v3; format=json".to_string()),
    ];
    let no_content = response.status() == StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    for (name, value) in defaults {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.entry(name).or_insert(value);
        }
    }
    if !no_content {
        headers
            .entry(hyper::header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json; charset=utf-8"));
    }
    response
}

/// Injected failures, the `User-Agent` and token checks, then the routes.
fn respond(state: &mut State, call: &Call<'_>, request_id: &str) -> Response<Full<Bytes>> {
    if state.failing > 0 {
        state.failing -= 1;
        return failure_page(state.failing_status);
    }
    if state.secondary_limits > 0 {
        state.secondary_limits -= 1;
        let message = format!(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you \
             try again. If you reach out to GitHub Support for help, please include the \
             request ID {request_id}."
        );
        let docs = format!("{RATE_LIMIT_DOCS}#about-secondary-rate-limits");
        let mut response = github_error(429, &message, &docs);
        set_header(
            &mut response,
            "retry-after",
            state.retry_after_secs.to_string(),
        );
        return response;
    }
    if state.primary_limits > 0 {
        state.primary_limits -= 1;
        let now = unix_now();
        let message = format!(
            "API rate limit exceeded for user ID {TOKEN_USER_ID}. If you reach out to GitHub \
             Support for help, please include the request ID {request_id} and timestamp {}.",
            iso8601(now)
        );
        let docs = format!("{RATE_LIMIT_DOCS}#about-the-primary-rate-limit");
        let mut response = github_error(403, &message, &docs);
        set_header(&mut response, "x-ratelimit-remaining", "0".to_string());
        set_header(&mut response, "x-ratelimit-used", RATE_LIMIT.to_string());
        set_header(
            &mut response,
            "x-ratelimit-reset",
            (now + state.reset_in_secs).to_string(),
        );
        return response;
    }

    if call.user_agent.is_none_or(|agent| agent.trim().is_empty()) {
        let mut response = Response::new(Full::new(Bytes::from_static(NO_USER_AGENT.as_bytes())));
        *response.status_mut() = StatusCode::FORBIDDEN;
        set_header(
            &mut response,
            "content-type",
            "text/plain; charset=utf-8".to_string(),
        );
        return response;
    }
    let Some(authorization) = call.authorization else {
        return github_error(401, "Requires authentication", DOCS);
    };
    if token(authorization) != Some(state.token.as_str()) {
        return github_error(401, "Bad credentials", DOCS);
    }

    let segments: Vec<String> = call.path.split('/').skip(1).map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (call.method, segments.as_slice()) {
        ("POST", ["repos", owner, name, "statuses", sha]) => {
            create_status(state, &format!("{owner}/{name}"), sha, call.body)
        }
        ("GET", ["repos", owner, name, "commits", sha, "statuses"]) => {
            list_statuses(state, &format!("{owner}/{name}"), sha)
        }
        ("GET", ["repos", owner, name, "hooks"]) => list_hooks(state, &format!("{owner}/{name}")),
        ("POST", ["repos", owner, name, "hooks"]) => {
            create_hook(state, &format!("{owner}/{name}"), call.body)
        }
        ("GET", ["repos", owner, name, "hooks", id]) => {
            get_hook(state, &format!("{owner}/{name}"), id)
        }
        ("PATCH", ["repos", owner, name, "hooks", id]) => {
            update_hook(state, &format!("{owner}/{name}"), id, call.body)
        }
        ("DELETE", ["repos", owner, name, "hooks", id]) => {
            delete_hook(state, &format!("{owner}/{name}"), id)
        }
        _ => not_found(),
    }
}

/// The token of an `Authorization` header: `Bearer <token>` or `token
/// <token>`, the scheme in any case.
fn token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim())
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`.
fn create_status(
    state: &mut State,
    full_name: &str,
    sha: &str,
    body: &Body,
) -> Response<Full<Bytes>> {
    if state.repository_mut(full_name).is_none() {
        return not_found();
    }
    let Some(object) = body_object(body) else {
        return problems_parsing_json();
    };
    if !is_commit_id(sha) {
        return github_error(422, &format!("No commit found for SHA: {sha}"), STATUS_DOCS);
    }
    let record = match parse_status(&object) {
        Ok(record) => record,
        Err(refusal) => return refused(refusal, STATUS_DOCS),
    };
    let stored = StoredStatus {
        id: state.next_status_id,
        created_at: iso8601(unix_now()),
        record,
    };
    state.next_status_id += 1;
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    let sha = sha.to_ascii_lowercase();
    let answer = status_json(&base, &repository.full_name, &sha, &stored);
    repository.statuses.entry(sha).or_default().push(stored);
    let mut response = json_response(201, &answer);
    if let Some(url) = answer["url"].as_str() {
        set_header(&mut response, "location", url.to_string());
    }
    response
}

/// GitHub's status object, as the `create-status` fixture records it.
fn status_json(base: &str, full_name: &str, sha: &str, stored: &StoredStatus) -> Value {
    let status = &stored.record;
    json!({
        "url": format!("{base}/repos/{full_name}/statuses/{sha}"),
        "avatar_url": avatar_url(base),
        "id": stored.id,
        "node_id": node_id("SC", stored.id),
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": stored.created_at,
        "updated_at": stored.created_at,
        "creator": creator(base),
    })
}

/// The fields of a status request, or GitHub's refusal.
fn parse_status(object: &Map<String, Value>) -> Result<StatusRecord, Refusal> {
    let state = match object.get("state") {
        None | Some(Value::Null) => {
            return Err(Refusal::Schema("\"state\" wasn't supplied.".to_string()))
        }
        Some(Value::String(state)) => state.clone(),
        Some(other) => {
            return Err(Refusal::Schema(format!(
                "For 'properties/state', {other} is not a string."
            )))
        }
    };
    let target_url = optional_string(object, "target_url")?;
    let description = optional_string(object, "description")?;
    let context = optional_string(object, "context")?.unwrap_or_else(|| "default".to_string());
    let mut errors = Vec::new();
    if !STATES.contains(&state.as_str()) {
        errors.push(json!({
            "resource": "Status",
            "code": "custom",
            "field": "state",
            "message": "state is not included in the list",
        }));
    }
    if description
        .as_ref()
        .is_some_and(|description| description.chars().count() > DESCRIPTION_MAX_CHARS)
    {
        errors.push(json!({
            "resource": "Status",
            "code": "custom",
            "field": "description",
            "message": format!("description is too long (maximum is {DESCRIPTION_MAX_CHARS} characters)"),
        }));
    }
    if context.trim().is_empty() {
        errors.push(json!({"resource": "Status", "code": "missing_field", "field": "context"}));
    }
    if errors.is_empty() {
        Ok(StatusRecord {
            state,
            context,
            description,
            target_url,
            received: Instant::now(),
        })
    } else {
        Err(Refusal::Validation(errors))
    }
}

/// `GET /repos/{owner}/{repo}/commits/{sha}/statuses`: newest first, as
/// GitHub lists them.
fn list_statuses(state: &mut State, full_name: &str, sha: &str) -> Response<Full<Bytes>> {
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    let sha = sha.to_ascii_lowercase();
    let listed: Vec<Value> = repository
        .statuses
        .get(&sha)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|stored| status_json(&base, &repository.full_name, &sha, stored))
        .collect();
    json_response(200, &Value::Array(listed))
}

/// `GET /repos/{owner}/{repo}/hooks`.
fn list_hooks(state: &mut State, full_name: &str) -> Response<Full<Bytes>> {
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    let hooks: Vec<Value> = repository
        .hooks
        .iter()
        .map(|hook| hook_json(&base, &repository.full_name, hook))
        .collect();
    json_response(200, &Value::Array(hooks))
}

/// `GET /repos/{owner}/{repo}/hooks/{id}`.
fn get_hook(state: &mut State, full_name: &str, id: &str) -> Response<Full<Bytes>> {
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    match id
        .parse::<u64>()
        .ok()
        .and_then(|id| repository.hooks.iter().find(|hook| hook.id == id))
    {
        Some(hook) => json_response(200, &hook_json(&base, &repository.full_name, hook)),
        None => not_found(),
    }
}

/// `DELETE /repos/{owner}/{repo}/hooks/{id}`.
fn delete_hook(state: &mut State, full_name: &str, id: &str) -> Response<Full<Bytes>> {
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    let before = repository.hooks.len();
    if let Ok(id) = id.parse::<u64>() {
        repository.hooks.retain(|hook| hook.id != id);
    }
    if repository.hooks.len() == before {
        return not_found();
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `POST /repos/{owner}/{repo}/hooks`.
fn create_hook(state: &mut State, full_name: &str, body: &Body) -> Response<Full<Bytes>> {
    if state.repository_mut(full_name).is_none() {
        return not_found();
    }
    let Some(object) = body_object(body) else {
        return problems_parsing_json();
    };
    let parsed = (|| {
        let name = optional_string(&object, "name")?;
        if name.is_some_and(|name| name != "web") {
            return Err(Refusal::Validation(vec![
                json!({"resource": "Hook", "code": "invalid", "field": "name"}),
            ]));
        }
        let config = match object.get("config") {
            None | Some(Value::Null) => {
                return Err(Refusal::Schema("\"config\" wasn't supplied.".to_string()))
            }
            Some(config) => parse_config(config)?,
        };
        let events =
            optional_strings(&object, "events")?.unwrap_or_else(|| vec!["push".to_string()]);
        let active = optional_bool(&object, "active")?.unwrap_or(true);
        Ok((config, events, active))
    })();
    let (config, events, active) = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => return refused(refusal, CREATE_HOOK_DOCS),
    };
    let id = state.next_hook_id;
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    if repository
        .hooks
        .iter()
        .any(|hook| hook.config.url == config.url)
    {
        return refused(
            Refusal::Validation(vec![json!({
                "resource": "Hook",
                "code": "custom",
                "message": "Hook already exists on this repository",
            })]),
            CREATE_HOOK_DOCS,
        );
    }
    let now = iso8601(unix_now());
    let hook = Hook {
        id,
        active,
        events: deduplicated(events),
        config,
        created_at: now.clone(),
        updated_at: now,
    };
    let answer = hook_json(&base, &repository.full_name, &hook);
    repository.hooks.push(hook);
    state.next_hook_id += 1;
    let mut response = json_response(201, &answer);
    if let Some(url) = answer["url"].as_str() {
        set_header(&mut response, "location", url.to_string());
    }
    response
}

/// `PATCH /repos/{owner}/{repo}/hooks/{id}`: every field is checked before
/// any is applied, so a refused update changes nothing.
fn update_hook(state: &mut State, full_name: &str, id: &str, body: &Body) -> Response<Full<Bytes>> {
    let base = state.base.clone();
    let Some(repository) = state.repository_mut(full_name) else {
        return not_found();
    };
    let Some(hook_index) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| repository.hooks.iter().position(|hook| hook.id == id))
    else {
        return not_found();
    };
    let Some(object) = body_object(body) else {
        return problems_parsing_json();
    };
    let parsed = (|| {
        let config = match object.get("config") {
            None | Some(Value::Null) => None,
            Some(config) => Some(parse_config(config)?),
        };
        Ok((
            config,
            optional_strings(&object, "events")?,
            optional_strings(&object, "add_events")?,
            optional_strings(&object, "remove_events")?,
            optional_bool(&object, "active")?,
        ))
    })();
    let (config, events, add_events, remove_events, active) = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => return refused(refusal, UPDATE_HOOK_DOCS),
    };
    let full_name = repository.full_name.clone();
    let hook = &mut repository.hooks[hook_index];
    if let Some(config) = config {
        hook.config = config;
    }
    if let Some(events) = events {
        hook.events = deduplicated(events);
    }
    for event in add_events.unwrap_or_default() {
        if !hook.events.contains(&event) {
            hook.events.push(event);
        }
    }
    if let Some(remove) = remove_events {
        hook.events.retain(|event| !remove.contains(event));
    }
    if let Some(active) = active {
        hook.active = active;
    }
    hook.updated_at = iso8601(unix_now());
    json_response(200, &hook_json(&base, &full_name, hook))
}

/// A hook's `config` as sent: `url` required, the rest GitHub's defaults.
fn parse_config(config: &Value) -> Result<HookConfig, Refusal> {
    let Value::Object(config) = config else {
        return Err(Refusal::Schema(format!(
            "For 'properties/config', {config} is not an object."
        )));
    };
    let url = optional_string(config, "url")?.unwrap_or_default();
    if url.trim().is_empty() {
        return Err(Refusal::Validation(vec![
            json!({"resource": "Hook", "code": "missing_field", "field": "url"}),
        ]));
    }
    let insecure_ssl = match config.get("insecure_ssl") {
        None | Some(Value::Null) => "0".to_string(),
        Some(Value::String(value)) => value.clone(),
        Some(Value::Number(value)) => value.to_string(),
        Some(other) => {
            return Err(Refusal::Schema(format!(
                "For 'properties/insecure_ssl', {other} is not a string or number."
            )))
        }
    };
    Ok(HookConfig {
        url,
        content_type: optional_string(config, "content_type")?
            .unwrap_or_else(|| "form".to_string()),
        insecure_ssl,
        secret: optional_string(config, "secret")?.filter(|secret| !secret.is_empty()),
    })
}

/// GitHub's hook object, the secret masked.
fn hook_json(base: &str, full_name: &str, hook: &Hook) -> Value {
    let url = format!("{base}/repos/{full_name}/hooks/{}", hook.id);
    let mut config = json!({
        "content_type": hook.config.content_type,
        "insecure_ssl": hook.config.insecure_ssl,
        "url": hook.config.url,
    });
    if hook.config.secret.is_some() {
        config["secret"] = json!(SECRET_MASK);
    }
    json!({
        "type": "Repository",
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": hook.events,
        "config": config,
        "updated_at": hook.updated_at,
        "created_at": hook.created_at,
        "url": url,
        "test_url": format!("{url}/test"),
        "ping_url": format!("{url}/pings"),
        "deliveries_url": format!("{url}/deliveries"),
        "last_response": {"code": null, "status": "unused", "message": null},
    })
}

/// The events in their order, each once.
fn deduplicated(events: Vec<String>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !unique.contains(&event) {
            unique.push(event);
        }
    }
    unique
}

/// The `creator` of a status: [`TOKEN_USER`] as GitHub's simple user object.
fn creator(base: &str) -> Value {
    let user = format!("{base}/users/{TOKEN_USER}");
    json!({
        "login": TOKEN_USER,
        "id": TOKEN_USER_ID,
        "node_id": node_id("U", TOKEN_USER_ID),
        "avatar_url": avatar_url(base),
        "gravatar_id": "",
        "url": user,
        "html_url": format!("{base}/{TOKEN_USER}"),
        "followers_url": format!("{user}/followers"),
        "following_url": format!("{user}/following{{/other_user}}"),
        "gists_url": format!("{user}/gists{{/gist_id}}"),
        "starred_url": format!("{user}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{user}/subscriptions"),
        "organizations_url": format!("{user}/orgs"),
        "repos_url": format!("{user}/repos"),
        "events_url": format!("{user}/events{{/privacy}}"),
        "received_events_url": format!("{user}/received_events"),
        "type": "User",
        "site_admin": false,
    })
}

fn avatar_url(base: &str) -> String {
    format!("{base}/avatars/u/{TOKEN_USER_ID}?v=4")
}

/// An opaque global node id, in the form of GitHub's current ones.
fn node_id(kind: &str, id: u64) -> String {
    format!("{kind}_kwDO{id:08X}")
}

/// A full commit id: 40 hexadecimal digits (64 in a SHA-256 repository).
fn is_commit_id(sha: &str) -> bool {
    (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A request body as the object GitHub expects: none is an empty object;
/// `None` for a body that is not a JSON object.
fn body_object(body: &Body) -> Option<Map<String, Value>> {
    match body {
        Body::Empty => Some(Map::new()),
        Body::Json(Value::Object(object)) => Some(object.clone()),
        Body::Json(_) | Body::Malformed => None,
    }
}

/// How GitHub refuses a body it parsed: `422` either way.
enum Refusal {
    /// Off the endpoint's schema (a member missing or of the wrong type):
    /// `Invalid request.\n\n<detail>`.
    Schema(String),
    /// Fields that break a rule: `Validation Failed` with GitHub's `errors`.
    Validation(Vec<Value>),
}

fn refused(refusal: Refusal, documentation_url: &str) -> Response<Full<Bytes>> {
    match refusal {
        Refusal::Schema(detail) => github_error(
            422,
            &format!("Invalid request.\n\n{detail}"),
            documentation_url,
        ),
        Refusal::Validation(errors) => json_response(
            422,
            &json!({
                "message": "Validation Failed",
                "errors": errors,
                "documentation_url": documentation_url,
                "status": "422",
            }),
        ),
    }
}

/// A member that must be a string when present and not null.
fn optional_string(object: &Map<String, Value>, field: &str) -> Result<Option<String>, Refusal> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(other) => Err(Refusal::Schema(format!(
            "For 'properties/{field}', {other} is not a string or null."
        ))),
    }
}

/// A member that must be a boolean when present and not null.
fn optional_bool(object: &Map<String, Value>, field: &str) -> Result<Option<bool>, Refusal> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(Refusal::Schema(format!(
            "For 'properties/{field}', {other} is not a boolean."
        ))),
    }
}

/// A member that must be an array of strings when present and not null.
fn optional_strings(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<String>>, Refusal> {
    let not_strings = |value: &Value| {
        Refusal::Schema(format!(
            "For 'properties/{field}', {value} is not an array of strings."
        ))
    };
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| not_strings(value))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(not_strings(other)),
    }
}

fn json_response(status: u16, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// GitHub's error body: `{"message","documentation_url","status"}`.
fn github_error(status: u16, message: &str, documentation_url: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({
            "message": message,
            "documentation_url": documentation_url,
            "status": status.to_string(),
        }),
    )
}

fn not_found() -> Response<Full<Bytes>> {
    github_error(404, "Not Found", DOCS)
}

fn problems_parsing_json() -> Response<Full<Bytes>> {
    github_error(400, "Problems parsing JSON", DOCS)
}

fn failure_page(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(FAILURE_PAGE.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    set_header(
        &mut response,
        "content-type",
        "text/html; charset=utf-8".to_string(),
    );
    response
}

fn set_header(response: &mut Response<Full<Bytes>>, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// `secs` after the Unix epoch as GitHub writes a time: `2017-10-10T16:00:00Z`
/// (the civil-from-days conversion of the proleptic Gregorian calendar).
fn iso8601(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let seconds = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// A path segment with its `%XX` escapes decoded (a malformed escape is
/// kept as it is).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TOKEN: &str = "ghp_0123456789abcdef";
    const REPO: &str = "Acme/Widget";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// An answer as read off the wire.
    struct Answer {
        status: u16,
        head: String,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then_some(value.trim())
            })
        }

        fn json(&self) -> Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
        }
    }

    /// Sends one request on a new connection (closed after it) and reads the
    /// whole answer. `headers` are extra header lines, each ending in CRLF.
    async fn send(
        github: &GitHubStandIn,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> Answer {
        send_raw(github, method, path, headers, body.as_bytes()).await
    }

    async fn send_raw(
        github: &GitHubStandIn,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> Answer {
        let address = github.url().trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before it has read all of it.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .map(|(head, body)| (head.to_string(), body.to_string()))
            .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status: {head:?}"));
        Answer { status, head, body }
    }

    /// The headers of a well-behaved client.
    fn client(authorization: &str) -> String {
        format!(
            "Authorization: {authorization}\r\nUser-Agent: zos-build-test\r\n\
             Accept: application/vnd.github+json\r\nX-GitHub-Api-Version: 2022-11-28\r\n\
             Content-Type: application/json\r\n"
        )
    }

    fn bearer() -> String {
        client(&format!("Bearer {TOKEN}"))
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {value}"))
            .keys()
            .cloned()
            .collect()
    }

    /// The names of a space-separated list.
    fn set(names: &str) -> BTreeSet<String> {
        names.split_whitespace().map(str::to_string).collect()
    }

    #[tokio::test]
    async fn the_token_the_user_agent_and_the_repository_are_checked_as_github_does() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let hooks = "/repos/acme/widget/hooks";

        let answer = send(&github, "GET", hooks, "User-Agent: t\r\n", "").await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.json(),
            json!({"message": "Requires authentication", "documentation_url": DOCS, "status": "401"})
        );
        let answer = send(&github, "GET", hooks, &client("Bearer nope"), "").await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.json(),
            json!({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
        );
        // GitHub's usual headers are on refusals too.
        assert_eq!(
            answer.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(answer.header("x-ratelimit-limit"), Some("5000"));
        assert!(answer.header("x-ratelimit-reset").is_some());
        assert!(answer.header("x-github-request-id").is_some());

        // Both schemes, the repository's name in any case.
        let answer = send(&github, "GET", hooks, &bearer(), "").await;
        assert_eq!((answer.status, answer.json()), (200, json!([])));
        let answer = send(
            &github,
            "GET",
            "/repos/ACME/widget/hooks?per_page=100",
            &client(&format!("token {TOKEN}")),
            "",
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);

        let answer = send(&github, "GET", "/repos/acme/gadget/hooks", &bearer(), "").await;
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.json(),
            json!({"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        );

        let no_agent = format!("Authorization: Bearer {TOKEN}\r\n");
        let answer = send(&github, "GET", hooks, &no_agent, "").await;
        assert_eq!(answer.status, 403);
        assert!(answer.body.contains("User-Agent"), "{}", answer.body);

        let requests = github.requests();
        assert_eq!(requests.len(), 6);
        assert_eq!(
            requests[2].authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(requests[2].api_version.as_deref(), Some("2022-11-28"));
        assert_eq!(
            requests[2].accept.as_deref(),
            Some("application/vnd.github+json")
        );
        assert_eq!(requests[2].user_agent.as_deref(), Some("zos-build-test"));
        assert_eq!(requests[3].path, "/repos/ACME/widget/hooks");
        assert_eq!(requests[3].query.as_deref(), Some("per_page=100"));
        assert_eq!(requests[3].body, Value::Null);
    }

    #[tokio::test]
    async fn a_status_round_trip_answers_the_fixture_shape() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let path = format!("/repos/acme/widget/statuses/{SHA}");
        let body = json!({
            "state": "failure",
            "target_url": "https://builds.example/1",
            "description": "x".repeat(DESCRIPTION_MAX_CHARS),
            "context": "zos-build/master",
        });
        let answer = send(&github, "POST", &path, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let status = answer.json();
        assert_eq!(
            keys(&status),
            set("url avatar_url id node_id state description target_url context created_at updated_at creator")
        );
        assert_eq!(
            keys(&status["creator"]),
            set("login id node_id avatar_url gravatar_id url html_url followers_url following_url gists_url starred_url subscriptions_url organizations_url repos_url events_url received_events_url type site_admin")
        );
        assert_eq!(status["state"], "failure");
        assert_eq!(status["context"], "zos-build/master");
        assert_eq!(status["target_url"], "https://builds.example/1");
        assert!(status["id"].is_u64());
        assert_eq!(status["creator"]["login"], TOKEN_USER);
        assert_eq!(status["creator"]["site_admin"], false);
        let url = format!("{}/repos/{REPO}/statuses/{SHA}", github.url());
        assert_eq!(status["url"], url.as_str());
        assert_eq!(answer.header("location"), Some(url.as_str()));
        let created = status["created_at"].as_str().unwrap();
        assert_eq!(created.len(), "2017-10-10T16:00:00Z".len(), "{created}");
        assert!(created.ends_with('Z'));

        // No context is GitHub's "default"; no description is null; the
        // commit id in capitals is the same commit.
        let body = json!({"state": "success"}).to_string();
        let answer = send(
            &github,
            "POST",
            &format!("/repos/acme/widget/statuses/{}", SHA.to_uppercase()),
            &bearer(),
            &body,
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.json()["context"], "default");
        assert_eq!(answer.json()["description"], Value::Null);

        let statuses = github.statuses("acme/WIDGET", SHA);
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].state, "failure");
        assert_eq!(statuses[0].context, "zos-build/master");
        assert_eq!(statuses[0].description.as_deref().map(str::len), Some(140));
        assert_eq!(
            statuses[0].target_url.as_deref(),
            Some("https://builds.example/1")
        );
        assert_eq!(
            (
                statuses[1].state.as_str(),
                statuses[1].description.as_deref()
            ),
            ("success", None)
        );
        assert!(statuses[0].received <= statuses[1].received);
        assert!(github.statuses(REPO, &SHA.replace('0', "f")).is_empty());

        // Listed newest first, as in the fixture.
        let listed = send(
            &github,
            "GET",
            &format!("/repos/acme/widget/commits/{SHA}/statuses"),
            &bearer(),
            "",
        )
        .await;
        assert_eq!(listed.status, 200);
        let states: Vec<_> = listed
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].clone())
            .collect();
        assert_eq!(states, [json!("success"), json!("failure")]);
        assert_eq!(listed.json()[1], status, "the same object as created");
        assert_eq!(github.requests()[0].body["context"], "zos-build/master");
    }

    #[tokio::test]
    async fn invalid_statuses_are_refused_422_and_not_stored() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let path = format!("/repos/acme/widget/statuses/{SHA}");
        let body = json!({
            "state": "cancelled",
            "description": "é".repeat(DESCRIPTION_MAX_CHARS + 1),
            "context": "",
        });
        let answer = send(&github, "POST", &path, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 422);
        let error = answer.json();
        assert_eq!(keys(&error), set("message errors documentation_url status"));
        assert_eq!(error["message"], "Validation Failed");
        assert_eq!(error["status"], "422");
        assert_eq!(error["documentation_url"], STATUS_DOCS);
        let fields: Vec<_> = error["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(
            fields,
            [json!("state"), json!("description"), json!("context")]
        );
        assert_eq!(error["errors"][0]["resource"], "Status");
        assert_eq!(error["errors"][0]["code"], "custom");
        assert_eq!(
            error["errors"][0]["message"],
            "state is not included in the list"
        );
        assert_eq!(
            error["errors"][1]["message"],
            "description is too long (maximum is 140 characters)"
        );

        let answer = send(&github, "POST", &path, &bearer(), r#"{"context":"c"}"#).await;
        assert_eq!(answer.status, 422);
        assert!(answer.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid request."));
        let answer = send(
            &github,
            "POST",
            &path,
            &bearer(),
            r#"{"state":"success","description":5}"#,
        )
        .await;
        assert_eq!(answer.status, 422);
        let answer = send(
            &github,
            "POST",
            "/repos/acme/widget/statuses/main",
            &bearer(),
            r#"{"state":"success"}"#,
        )
        .await;
        assert_eq!(answer.status, 422);
        assert_eq!(answer.json()["message"], "No commit found for SHA: main");
        let answer = send(&github, "POST", &path, &bearer(), "{not json").await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["message"], "Problems parsing JSON");

        assert!(github.statuses(REPO, SHA).is_empty());
        assert_eq!(github.requests().len(), 5);
    }

    #[tokio::test]
    async fn hooks_are_created_listed_and_patched_with_the_secret_masked() {
        let github = GitHubStandIn::start(TOKEN).await;
        let foreign = github.insert_hook(REPO, "https://ci.example/hook", &["push"], "form");
        let hooks = "/repos/acme/widget/hooks";
        let body = json!({
            "name": "web",
            "active": true,
            "events": ["push", "create", "push"],
            "config": {"url": "https://builds.example/hook", "content_type": "json", "insecure_ssl": "0", "secret": "s3cret"},
        });
        let answer = send(&github, "POST", hooks, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let hook = answer.json();
        assert_eq!(
            keys(&hook),
            set("type id name active events config updated_at created_at url test_url ping_url deliveries_url last_response")
        );
        assert_eq!(hook["type"], "Repository");
        assert_eq!(hook["name"], "web");
        assert_eq!(hook["events"], json!(["push", "create"]));
        assert_eq!(
            hook["config"],
            json!({"content_type": "json", "insecure_ssl": "0", "url": "https://builds.example/hook", "secret": SECRET_MASK})
        );
        assert_eq!(
            hook["last_response"],
            json!({"code": null, "status": "unused", "message": null})
        );
        let id = hook["id"].as_u64().unwrap();
        let url = format!("{}/repos/{REPO}/hooks/{id}", github.url());
        assert_eq!(hook["url"], url.as_str());
        assert_eq!(hook["ping_url"], format!("{url}/pings").as_str());
        assert_eq!(answer.header("location"), Some(url.as_str()));
        assert!(!answer.body.contains("s3cret"));

        // The same URL again is refused.
        let answer = send(&github, "POST", hooks, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 422);
        assert_eq!(
            answer.json()["errors"][0]["message"],
            "Hook already exists on this repository"
        );

        let answer = send(&github, "GET", hooks, &bearer(), "").await;
        assert_eq!(answer.status, 200);
        let listed = answer.json();
        assert_eq!(listed.as_array().map(Vec::len), Some(2));
        assert_eq!(listed[0]["id"], foreign);
        assert!(
            listed[0]["config"].get("secret").is_none(),
            "no secret, no mask"
        );
        assert_eq!(listed[1]["config"]["secret"], SECRET_MASK);
        assert!(!answer.body.contains("s3cret"));
        let held = github.hooks("acme/widget");
        assert_eq!(held[1].config.secret.as_deref(), Some("s3cret"));
        assert_eq!(held[0].config.content_type, "form");

        // Events edited in place; the config untouched.
        let patch = format!("{hooks}/{id}");
        let body = json!({"add_events": ["pull_request", "push"], "remove_events": ["create"], "active": false});
        let answer = send(&github, "PATCH", &patch, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["events"], json!(["push", "pull_request"]));
        assert_eq!(answer.json()["active"], false);
        assert_eq!(
            github.hooks(REPO)[1].config.secret.as_deref(),
            Some("s3cret")
        );

        // A config replaces the whole config: without a secret, none is left.
        let body = json!({"config": {"url": "https://builds.example/hook2"}});
        let answer = send(&github, "PATCH", &patch, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.json()["config"],
            json!({"content_type": "form", "insecure_ssl": "0", "url": "https://builds.example/hook2"})
        );
        let hook = &github.hooks(REPO)[1];
        assert_eq!((hook.config.secret.as_deref(), hook.active), (None, false));

        // A refused update changes nothing; an unknown hook is 404.
        let body = json!({"events": ["push"], "config": {"content_type": "json"}});
        let answer = send(&github, "PATCH", &patch, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 422);
        assert_eq!(github.hooks(REPO)[1].events, ["push", "pull_request"]);
        let answer = send(&github, "PATCH", &format!("{hooks}/999"), &bearer(), "{}").await;
        assert_eq!(answer.status, 404);

        let answer = send(
            &github,
            "DELETE",
            &format!("{hooks}/{foreign}"),
            &bearer(),
            "",
        )
        .await;
        assert_eq!(answer.status, 204);
        assert_eq!(github.hooks(REPO).len(), 1);
    }

    #[tokio::test]
    async fn injected_failures_and_rate_limits_are_counted() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let hooks = "/repos/acme/widget/hooks";

        github.fail_next(1, 502);
        let answer = send(&github, "GET", hooks, &bearer(), "").await;
        assert_eq!(answer.status, 502);
        assert_eq!(
            answer.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(answer.body.contains("<html>"), "{}", answer.body);
        assert_eq!(send(&github, "GET", hooks, &bearer(), "").await.status, 200);

        github.rate_limit_next(2, 7);
        for _ in 0..2 {
            let answer = send(&github, "GET", hooks, &bearer(), "").await;
            assert_eq!(answer.status, 429);
            assert_eq!(answer.header("retry-after"), Some("7"));
            let body = answer.json();
            assert_eq!(keys(&body), set("message documentation_url status"));
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains("secondary rate limit"));
        }
        assert_eq!(send(&github, "GET", hooks, &bearer(), "").await.status, 200);

        github.rate_limit_primary_next(1, 60);
        let answer = send(&github, "GET", hooks, &bearer(), "").await;
        assert_eq!(answer.status, 403);
        assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
        let reset: u64 = answer.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            (unix_now() + 55..=unix_now() + 65).contains(&reset),
            "{reset}"
        );
        assert!(answer.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for"));
        let answer = send(&github, "GET", hooks, &bearer(), "").await;
        assert_eq!(answer.status, 200);
        // Seven answers so far.
        assert_eq!(answer.header("x-ratelimit-remaining"), Some("4993"));
        assert_eq!(answer.header("x-ratelimit-used"), Some("7"));

        // An injected failure stores nothing.
        github.fail_next(1, 503);
        let path = format!("/repos/acme/widget/statuses/{SHA}");
        let answer = send(&github, "POST", &path, &bearer(), r#"{"state":"success"}"#).await;
        assert_eq!(answer.status, 503);
        assert!(github.statuses(REPO, SHA).is_empty());

        github.stall(1);
        let stalled = tokio::time::timeout(
            Duration::from_millis(300),
            send(&github, "GET", hooks, &bearer(), ""),
        )
        .await;
        assert!(stalled.is_err(), "a stalled request is not answered");
        assert_eq!(send(&github, "GET", hooks, &bearer(), "").await.status, 200);
        assert_eq!(github.requests().len(), 10);
    }

    #[tokio::test]
    async fn down_refuses_connections_until_it_comes_back() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let address = github.url().trim_start_matches("http://").to_string();
        let mut open = TcpStream::connect(&address).await.unwrap();
        github.stall(1);
        let stalled = {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await.unwrap();
                let head = format!(
                    "GET /repos/acme/widget/hooks HTTP/1.1\r\nHost: api\r\n{}\r\n",
                    bearer()
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer).await;
                answer
            })
        };
        while github.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        github.go_down().await;
        let refused = TcpStream::connect(&address).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // Open connections are closed, the stalled one without an answer.
        let mut buffer = [0u8; 16];
        assert!(matches!(open.read(&mut buffer).await, Ok(0) | Err(_)));
        let stalled = tokio::time::timeout(Duration::from_secs(10), stalled)
            .await
            .expect("the stalled connection was closed")
            .unwrap();
        assert!(stalled.is_empty());

        github.come_back().await;
        let answer = send(&github, "GET", "/repos/acme/widget/hooks", &bearer(), "").await;
        assert_eq!(answer.status, 200);
        assert_eq!(github.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_413() {
        let github = GitHubStandIn::start(TOKEN).await;
        github.add_repository(REPO);
        let hooks = "/repos/acme/widget/hooks";
        let body = vec![b' '; usize::try_from(MAX_BODY_BYTES).unwrap() + 1];
        let answer = send_raw(&github, "POST", hooks, &bearer(), &body).await;
        assert_eq!(answer.status, 413);
        assert_eq!(answer.json()["status"], "413");

        lock(&github.state).max_body_bytes = 64;
        let body = json!({"config": {"url": "https://builds.example/a-long-enough-hook-url"}});
        let answer = send(&github, "POST", hooks, &bearer(), &body.to_string()).await;
        assert_eq!(answer.status, 413);
        assert!(github.hooks(REPO).is_empty());
        assert!(github.requests().iter().all(|r| r.body.is_null()));
    }

    #[test]
    fn times_are_written_as_github_writes_them() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // The date of the recorded fixtures.
        assert_eq!(iso8601(1_507_651_200), "2017-10-10T16:00:00Z");
        assert_eq!(iso8601(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
        assert_eq!(token("Bearer abc"), Some("abc"));
        assert_eq!(token("TOKEN abc"), Some("abc"));
        assert_eq!(token("Basic abc"), None);
    }
}
