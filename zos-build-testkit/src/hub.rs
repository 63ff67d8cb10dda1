//! A stand-in for the Zero-OS Hub: a small HTTP/1 server on the loopback
//! that speaks the hub's API as threefoldtech/0-hub's `src/flist-uploader.py`
//! does, records every request it receives, and fails on demand.
//!
//! Why a stand-in: the hub cannot be reached from these machines, and the
//! publisher's retry rules must be tested against a server, not against
//! mocks. Why here: `zos-build-core`'s publisher tests and the server's
//! end-to-end tests both publish to it, and one copy keeps them testing the
//! same contract (`docs/publishing.md`).
//!
//! What it speaks:
//!
//! - `POST /api/flist/me/upload`, a `multipart/form-data` body whose field
//!   `file` holds `<name>.tar.gz`; the hub stores `<name>.flist` and answers
//!   `{"status":"success","payload":{"name":"<name>.flist","files":{…}}}`;
//! - `GET /api/flist/me/<flist>/link/<link>`, which points the link at the
//!   flist (replacing an older link, refusing to replace a flist) and answers
//!   `{"status":"success"}`;
//! - errors as the hub's `{"status":"error","message":"…"}`: `401 no
//!   authorization provided`, `403 invalid token`, `404 source not found`,
//!   `401 link destination is already a file`, and the upload's rejections as
//!   500s (`no file found`, `this file is not allowed`);
//! - authentication as `hub/security.py`'s `apicall`: `Authorization: bearer
//!   <token>` with the one token given to [`HubStandIn::start`]; the cookie
//!   `active-user=<account>` makes the call act for that account (the real
//!   hub checks that the token's user is a member of it; the stand-in
//!   trusts it), else the call acts for [`TOKEN_USER`].
//!
//! What it can be told, so that every failure path has a server to face:
//! crash the next uploads or link calls with an HTML 500 page (which the
//! client retries), keep the next requests waiting, refuse every call with
//! the hub's own error, and hold back or delay the uploads of given names
//! (to make an older build finish after a newer one, without relying on
//! timing when [`HubStandIn::hold_uploads_matching`] is used).
//!
//! Bounds: a request body is read up to [`MAX_BODY_BYTES`]; a longer one is
//! answered 413 without being buffered. Dropping the stand-in stops it and
//! every connection it serves, held and stalled requests included.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The account a call acts for when it carries no `active-user` cookie: the
/// token's own user.
pub const TOKEN_USER: &str = "autobuilder";

/// The largest request body the stand-in reads (256 MiB). A test server
/// still must not buffer whatever it is sent: a longer body is answered
/// `413 {"status":"error","message":"request body too large"}`, before any of
/// it is read when its `Content-Length` says so.
pub const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// The page a crashing hub (a Python traceback behind a proxy) answers: a
/// 500 that is not the hub's JSON, which the client must retry.
const CRASH_PAGE: &str =
    "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n";

/// One part of a recorded multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field (`file` for the hub's upload).
    pub field: String,
    /// The part's file name, when its `Content-Disposition` has one: the
    /// artifact's name for the hub's upload.
    pub file_name: Option<String>,
    /// The part's content, whole.
    pub bytes: Vec<u8>,
}

/// One request the stand-in received, in the order received, as it arrived
/// (before any failure it was told to inject), so that a test can check what
/// every attempt of a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The HTTP method (`POST`, `GET`).
    pub method: String,
    /// The request's path as sent, still percent-encoded, without the query.
    pub path: String,
    /// The `Authorization` header, when there was one (`bearer <token>`).
    pub authorization: Option<String>,
    /// The `Cookie` header, when there was one (`active-user=<account>`).
    pub cookie: Option<String>,
    /// The parts of a multipart `POST` body; empty for other requests and
    /// for a body that was refused (too large, cut, malformed).
    pub parts: Vec<Part>,
}

impl Recorded {
    /// The file name of the `file` part of an upload: which artifact this
    /// request carried.
    pub fn upload_file_name(&self) -> Option<&str> {
        self.parts
            .iter()
            .find(|part| part.field == "file")
            .and_then(|part| part.file_name.as_deref())
    }
}

/// A hold on the uploads whose file name contains a substring, made by
/// [`HubStandIn::hold_uploads_matching`].
///
/// Why a handle and not a delay: a test that must see an older build finish
/// after a newer one holds the older upload, waits until it is held
/// ([`until_held`](Self::until_held)), lets the newer one complete, then
/// releases the older: the order is forced, whatever the machine's speed.
///
/// Dropping the handle releases the hold as [`release`](Self::release)
/// does, so a failing test never leaves an upload waiting.
#[must_use = "dropping the handle releases the hold at once"]
#[derive(Debug)]
pub struct HoldHandle {
    substring: String,
    release: watch::Sender<bool>,
    held: Arc<watch::Sender<usize>>,
}

impl HoldHandle {
    /// Lets every held upload go on (it is then stored and answered), and
    /// every later matching upload pass without waiting.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// How many matching uploads are waiting on this hold now.
    pub fn held(&self) -> usize {
        *self.held.borrow()
    }

    /// Waits until at least `count` matching uploads are waiting on this
    /// hold. It waits as long as that takes: wrap it in a
    /// `tokio::time::timeout` to bound a test.
    pub async fn until_held(&self, count: usize) {
        let mut held = self.held.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = held.wait_for(|held| *held >= count).await;
    }

    /// The substring of the file names this hold applies to.
    pub fn substring(&self) -> &str {
        &self.substring
    }
}

/// The stand-in's side of a [`HoldHandle`].
struct Hold {
    substring: String,
    release: watch::Receiver<bool>,
    held: Arc<watch::Sender<usize>>,
}

impl Hold {
    /// Whether the hold still applies: neither released nor dropped.
    fn active(&self) -> bool {
        !*self.release.borrow() && self.release.has_changed().is_ok()
    }
}

/// Counts a waiting upload on its hold while it waits, however the wait
/// ends (released, or the connection dropped).
struct Waiting(Arc<watch::Sender<usize>>);

impl Waiting {
    fn new(held: Arc<watch::Sender<usize>>) -> Waiting {
        held.send_modify(|held| *held += 1);
        Waiting(held)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.send_modify(|held| *held = held.saturating_sub(1));
    }
}

/// What the stand-in holds and is told.
struct State {
    /// The token it accepts.
    token: String,
    /// The largest body it reads ([`MAX_BODY_BYTES`]; lowered by its own
    /// tests).
    max_body_bytes: u64,
    /// Answer the next N uploads with a 500 crash page.
    failing_uploads: u32,
    /// Answer the next N link calls with a 500 crash page.
    failing_links: u32,
    /// Keep the next N requests waiting until the stand-in is dropped.
    stalls: u32,
    /// Answer every call with the hub's error: (status, message).
    refusal: Option<(u16, String)>,
    /// Uploads whose file name contains the substring wait for a release.
    holds: Vec<Hold>,
    /// Uploads whose file name contains the substring are answered late.
    delays: Vec<(String, Duration)>,
    requests: Vec<Recorded>,
    /// (account, flist name) → the archive it was made from.
    flists: BTreeMap<(String, String), Vec<u8>>,
    /// (account, link name) → flist name.
    links: BTreeMap<(String, String), String>,
}

type Shared = Arc<Mutex<State>>;

/// The state, even after a panic of another request's handler (a test
/// server keeps answering so that the test reports its own failure).
fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Zero-OS Hub on `127.0.0.1` and a port of its own, for the lifetime of
/// this value; see the [module documentation](self) for what it speaks.
///
/// ```no_run
/// # async fn run() {
/// use zos_build_testkit::hub::{HubStandIn, TOKEN_USER};
/// let hub = HubStandIn::start("the.token").await;
/// // … publish to `hub.url()` with the token …
/// assert_eq!(hub.requests().len(), 2);
/// assert_eq!(
///     hub.link_target(TOKEN_USER, "acme-widget-master.flist").as_deref(),
///     Some("acme-widget-master-0123456789.flist")
/// );
/// # }
/// ```
pub struct HubStandIn {
    url: String,
    state: Shared,
    /// The accept loop; it owns every connection's task, so aborting it
    /// ends them all.
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HubStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for HubStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStandIn")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HubStandIn {
    /// Starts a hub that accepts the bearer token `token` (any other is
    /// refused `403 invalid token`, none `401 no authorization provided`),
    /// with no flist and no link yet. Panics when the loopback cannot be
    /// bound: there is no test without it.
    pub async fn start(token: &str) -> HubStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the hub stand-in");
        let address = listener
            .local_addr()
            .expect("the hub stand-in's loopback address");
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            max_body_bytes: MAX_BODY_BYTES,
            failing_uploads: 0,
            failing_links: 0,
            stalls: 0,
            refusal: None,
            holds: Vec::new(),
            delays: Vec::new(),
            requests: Vec::new(),
            flists: BTreeMap::new(),
            links: BTreeMap::new(),
        }));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve(stream, shared.clone()));
                        }
                        // Out of descriptors, or a connection reset before
                        // it was accepted: try again shortly.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        HubStandIn {
            url: format!("http://{address}"),
            state,
            server,
        }
    }

    /// The hub's website, `http://127.0.0.1:<port>` (no trailing slash): what
    /// a publisher is configured with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// The flists stored so far: (account, flist name) → the bytes of the
    /// archive uploaded for it.
    pub fn flists(&self) -> BTreeMap<(String, String), Vec<u8>> {
        lock(&self.state).flists.clone()
    }

    /// The links so far: (account, link name) → the flist it points at.
    pub fn links(&self) -> BTreeMap<(String, String), String> {
        lock(&self.state).links.clone()
    }

    /// The flist that `account`'s link `link` points at, if it exists.
    pub fn link_target(&self, account: &str, link: &str) -> Option<String> {
        lock(&self.state)
            .links
            .get(&(account.to_string(), link.to_string()))
            .cloned()
    }

    /// Stores a flist as an upload would, without a request: the state a
    /// test starts from (for example a flist named like a link, which the
    /// hub refuses to replace with one).
    pub fn insert_flist(&self, account: &str, flist: &str, bytes: impl Into<Vec<u8>>) {
        lock(&self.state)
            .flists
            .insert((account.to_string(), flist.to_string()), bytes.into());
    }

    /// Answers the next `n` uploads (replacing any count left) with a 500
    /// HTML crash page, as a hub whose conversion crashed does: the client
    /// must try again. A crashed upload stores nothing.
    pub fn fail_uploads(&self, n: u32) {
        lock(&self.state).failing_uploads = n;
    }

    /// Answers the next `n` link calls (replacing any count left) with a 500
    /// HTML crash page: the client must try again. A crashed call moves no
    /// link.
    pub fn fail_links(&self, n: u32) {
        lock(&self.state).failing_links = n;
    }

    /// Keeps the next `n` requests (replacing any count left), of any kind,
    /// waiting without an answer until the stand-in is dropped: longer than
    /// any client waits, so the client's timeout is what ends them.
    pub fn stall(&self, n: u32) {
        lock(&self.state).stalls = n;
    }

    /// Answers every call, from now until [`accept`](Self::accept), with the
    /// hub's own error `{"status":"error","message":<message>}` and the HTTP
    /// status `status`, before even checking the token: a refusal the client
    /// must not retry.
    pub fn refuse_with(&self, status: u16, message: &str) {
        lock(&self.state).refusal = Some((status, message.to_string()));
    }

    /// Ends [`refuse_with`](Self::refuse_with): calls are answered on their
    /// merits again. The other injections are left as they are.
    pub fn accept(&self) {
        lock(&self.state).refusal = None;
    }

    /// Answers every upload whose file name contains `substring` only after
    /// `delay` (the flist is stored then), for the stand-in's lifetime.
    ///
    /// Prefer [`hold_uploads_matching`](Self::hold_uploads_matching) where
    /// the order of two publications matters: a delay only makes it likely.
    pub fn delay_uploads_matching(&self, substring: &str, delay: Duration) {
        lock(&self.state)
            .delays
            .push((substring.to_string(), delay));
    }

    /// Keeps every upload whose file name contains `substring` waiting,
    /// before its flist is stored, until the returned handle is released or
    /// dropped. Retries of a held upload are held too; uploads of other
    /// names pass.
    pub fn hold_uploads_matching(&self, substring: &str) -> HoldHandle {
        let (release, receiver) = watch::channel(false);
        let held = Arc::new(watch::Sender::new(0));
        let mut state = lock(&self.state);
        state.holds.retain(Hold::active);
        state.holds.push(Hold {
            substring: substring.to_string(),
            release: receiver,
            held: held.clone(),
        });
        HoldHandle {
            substring: substring.to_string(),
            release,
            held,
        }
    }
}

/// Serves one connection until the client closes it.
async fn serve(stream: tokio::net::TcpStream, state: Shared) {
    let service = hyper::service::service_fn(move |request| answer(request, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

fn json(status: u16, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The hub's `api_response(message, code)`.
fn hub_error(status: u16, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"status": "error", "message": message}),
    )
}

fn crash() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(CRASH_PAGE.as_bytes())));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    response
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
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

/// The hub's request handling: the body, authentication (`hub/security.py`'s
/// `apicall`, the `active-user` switch of `hub/itsyouonline.py`), then the
/// two routes of `flist-uploader.py` the publisher uses.
async fn answer(
    request: Request<Incoming>,
    state: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let authorization = header("authorization");
    let cookie = header("cookie");
    let content_type = header("content-type").unwrap_or_default();
    let limit = lock(&state).max_body_bytes;
    let (parts, early) = match read_body(request, limit).await {
        Err(BodyError::TooLarge) => (Vec::new(), Some(hub_error(413, "request body too large"))),
        Err(BodyError::Cut) => (Vec::new(), Some(hub_error(400, "the body was cut"))),
        Ok(_) if method != "POST" => (Vec::new(), None),
        Ok(body) => match parse_multipart(&content_type, &body) {
            Some(parts) => (parts, None),
            None => (Vec::new(), Some(hub_error(400, "malformed multipart body"))),
        },
    };
    let stall = {
        let mut state = lock(&state);
        state.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            cookie: cookie.clone(),
            parts: parts.clone(),
        });
        if let Some(early) = early {
            return Ok(early);
        }
        let stall = state.stalls > 0;
        state.stalls = state.stalls.saturating_sub(1);
        stall
    };
    if stall {
        // Until the stand-in is dropped, which aborts this connection.
        std::future::pending::<()>().await;
    }

    let account = {
        let state = lock(&state);
        if let Some((status, message)) = &state.refusal {
            return Ok(hub_error(*status, message));
        }
        // `apicall`: a token is required, and must be the hub's.
        let Some(authorization) = authorization else {
            return Ok(hub_error(401, "no authorization provided"));
        };
        let token = authorization
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .and_then(|_| authorization.get(7..));
        if token != Some(state.token.as_str()) {
            return Ok(hub_error(403, "invalid token"));
        }
        // `active-user` switches to another account (the last cookie of
        // that name wins, as in a browser's header).
        cookie
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("active-user="))
            .rfind(|account| !account.is_empty())
            .unwrap_or(TOKEN_USER)
            .to_string()
    };

    let segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        // `api_my_upload` → `api_flist_upload`.
        ("POST", ["api", "flist", "me", "upload"]) => Ok(upload(&state, account, parts).await),
        // `api_my_symlink` → `api_symlink`.
        ("GET", ["api", "flist", "me", source, "link", link]) => {
            Ok(symlink(&state, account, source, link))
        }
        _ => Ok(not_found()),
    }
}

/// The upload route: checks the `file` part, waits on the holds and delays
/// that match its name, then stores the flist.
async fn upload(state: &Shared, account: String, parts: Vec<Part>) -> Response<Full<Bytes>> {
    let (holds, delay) = {
        let mut state = lock(state);
        if state.failing_uploads > 0 {
            state.failing_uploads -= 1;
            return crash();
        }
        let Some(file_name) = parts
            .iter()
            .find(|part| part.field == "file")
            .map(|part| part.file_name.clone().unwrap_or_default())
        else {
            return hub_error(500, "no file found");
        };
        state.holds.retain(Hold::active);
        let holds: Vec<_> = state
            .holds
            .iter()
            .filter(|hold| file_name.contains(&hold.substring))
            .map(|hold| (hold.release.clone(), hold.held.clone()))
            .collect();
        let delay = state
            .delays
            .iter()
            .filter(|(substring, _)| file_name.contains(substring))
            .map(|(_, delay)| *delay)
            .max();
        (holds, delay)
    };
    for (mut release, held) in holds {
        let _waiting = Waiting::new(held);
        // An error is a dropped handle: released too.
        let _ = release.wait_for(|released| *released).await;
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }

    let Some(Part {
        file_name, bytes, ..
    }) = parts.into_iter().find(|part| part.field == "file")
    else {
        return hub_error(500, "no file found");
    };
    let file_name = file_name.unwrap_or_default();
    if file_name.is_empty() {
        return hub_error(500, "no file selected");
    }
    let Some(stem) = file_name.strip_suffix(".tar.gz") else {
        return hub_error(500, "this file is not allowed");
    };
    let flist = format!("{stem}.flist");
    lock(state).flists.insert((account, flist.clone()), bytes);
    json(
        200,
        serde_json::json!({
            "status": "success",
            "payload": {"name": flist, "files": {"regular": 1, "directory": 1}},
        }),
    )
}

/// The link route: the flist must exist and the link must not be a flist.
fn symlink(state: &Shared, account: String, source: &str, link: &str) -> Response<Full<Bytes>> {
    let mut state = lock(state);
    if state.failing_links > 0 {
        state.failing_links -= 1;
        return crash();
    }
    let with_extension = |name: &str| {
        if name.ends_with(".flist") {
            name.to_string()
        } else {
            format!("{name}.flist")
        }
    };
    let (source, link) = (with_extension(source), with_extension(link));
    if !state
        .flists
        .contains_key(&(account.clone(), source.clone()))
    {
        return hub_error(404, "source not found");
    }
    if state.flists.contains_key(&(account.clone(), link.clone())) {
        return hub_error(401, "link destination is already a file");
    }
    state.links.insert((account, link), source);
    json(200, serde_json::json!({"status": "success"}))
}

/// A path segment with its `%XX` escapes decoded (a malformed escape is
/// kept as it is).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a `multipart/form-data` body (RFC 7578); `None` when the
/// body does not follow the format.
fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    if boundary.is_empty() {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let separator = format!("\r\n{delimiter}");
    let mut rest = body.strip_prefix(delimiter.as_bytes())?;
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        rest = &rest[head_end + 4..];
        let end = find(rest, separator.as_bytes())?;
        let content = rest[..end].to_vec();
        rest = &rest[end + separator.len()..];
        let disposition = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(value)
        })?;
        let mut field = None;
        let mut file_name = None;
        for param in disposition.split(';').map(str::trim) {
            if let Some((key, value)) = param.split_once('=') {
                let value = value.trim_matches('"').to_string();
                match key {
                    "name" => field = Some(value),
                    "filename" => file_name = Some(value),
                    _ => {}
                }
            }
        }
        parts.push(Part {
            field: field?,
            file_name,
            bytes: content,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TOKEN: &str = "a.b.c";

    /// Sends `head` then `body` on a new connection and returns the answer's
    /// status and body (the connection is closed after one request).
    async fn send(hub: &HubStandIn, head: &str, body: &[u8]) -> (u16, String) {
        let address = hub.url().trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before it has read all of it.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn upload_request(name: &str, content: &[u8], cookie: Option<&str>) -> (String, Vec<u8>) {
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /api/flist/me/upload HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\
             Authorization: bearer {TOKEN}\r\n{cookie}\
             Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        (head, body)
    }

    #[tokio::test]
    async fn the_contract_of_the_upload_the_link_and_the_token() {
        let hub = HubStandIn::start(TOKEN).await;
        let (head, body) = upload_request("a-b-m-1.tar.gz", b"archive\r\n--XyY", None);
        let (status, answer) = send(&hub, &head, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains(r#""name":"a-b-m-1.flist""#), "{answer}");
        assert_eq!(
            hub.flists()
                .get(&(TOKEN_USER.into(), "a-b-m-1.flist".into()))
                .map(Vec::as_slice),
            Some(&b"archive\r\n--XyY"[..])
        );
        let recorded = &hub.requests()[0];
        assert_eq!(recorded.upload_file_name(), Some("a-b-m-1.tar.gz"));

        let link = |authorization: &str| {
            format!(
                "GET /api/flist/me/a-b-m-1.flist/link/a-b-m.flist HTTP/1.1\r\nHost: hub\r\n\
                 Connection: close\r\n{authorization}\r\n"
            )
        };
        let (status, answer) = send(&hub, &link(""), b"").await;
        assert_eq!(status, 401);
        assert!(answer.contains("no authorization provided"), "{answer}");
        let (status, answer) = send(&hub, &link("Authorization: bearer x.y.z\r\n"), b"").await;
        assert_eq!(status, 403);
        assert!(answer.contains("invalid token"), "{answer}");
        assert_eq!(hub.link_target(TOKEN_USER, "a-b-m.flist"), None);
        let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
        let (status, answer) = send(&hub, &link(&bearer), b"").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            hub.link_target(TOKEN_USER, "a-b-m.flist").as_deref(),
            Some("a-b-m-1.flist")
        );

        // Another account's flists are its own.
        let (head, body) = upload_request("a-b-m-2.tar.gz", b"x", Some("active-user=acme"));
        assert_eq!(send(&hub, &head, &body).await.0, 200);
        assert!(hub
            .flists()
            .contains_key(&("acme".into(), "a-b-m-2.flist".into())));
        let (head, body) = upload_request("a-b-m-3.tgz", b"x", None);
        let (status, answer) = send(&hub, &head, &body).await;
        assert_eq!(status, 500);
        assert!(answer.contains("this file is not allowed"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_unread() {
        let hub = HubStandIn::start(TOKEN).await;
        // Declared too long: refused on the headers alone.
        let head = format!(
            "POST /api/flist/me/upload HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\
             Authorization: bearer {TOKEN}\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let (status, answer) = send(&hub, &head, b"").await;
        assert_eq!(status, 413, "{answer}");
        assert!(answer.contains("request body too large"), "{answer}");
        assert!(hub.flists().is_empty());

        // Sent in chunks without a length: cut at the limit.
        lock(&hub.state).max_body_bytes = 1024;
        let chunk = vec![b'x'; 1000];
        let mut body = Vec::new();
        for _ in 0..3 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let head = format!(
            "POST /api/flist/me/upload HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\
             Authorization: bearer {TOKEN}\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let (status, _) = send(&hub, &head, &body).await;
        assert_eq!(status, 413);
        let requests = hub.requests();
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|r| r.parts.is_empty()));
    }

    #[tokio::test]
    async fn a_held_upload_waits_for_its_release_and_a_delayed_one_for_its_delay() {
        let hub = Arc::new(HubStandIn::start(TOKEN).await);
        let hold = hub.hold_uploads_matching("-old-");
        let (head, body) = upload_request("a-old-1.tar.gz", b"old", None);
        let held = {
            let hub = hub.clone();
            tokio::spawn(async move { send(&hub, &head, &body).await })
        };
        tokio::time::timeout(Duration::from_secs(30), hold.until_held(1))
            .await
            .expect("the upload reached the hold");
        assert_eq!(hold.held(), 1);
        assert!(hub.flists().is_empty(), "nothing stored while held");

        // Other names pass; a delayed one takes at least its delay.
        hub.delay_uploads_matching("-slow-", Duration::from_millis(300));
        let (head, body) = upload_request("a-slow-1.tar.gz", b"slow", None);
        let started = std::time::Instant::now();
        assert_eq!(send(&hub, &head, &body).await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!held.is_finished());
        assert_eq!(hub.flists().len(), 1);

        hold.release();
        assert_eq!(held.await.unwrap().0, 200);
        assert_eq!(hold.held(), 0);
        assert_eq!(hub.flists().len(), 2);
        // Released for good: the next one passes.
        let (head, body) = upload_request("a-old-2.tar.gz", b"old", None);
        assert_eq!(send(&hub, &head, &body).await.0, 200);
    }

    #[tokio::test]
    async fn injected_failures_are_counted_and_refusals_last_until_accepted() {
        let hub = HubStandIn::start(TOKEN).await;
        hub.fail_uploads(1);
        let (head, body) = upload_request("a-1.tar.gz", b"x", None);
        let (status, answer) = send(&hub, &head, &body).await;
        assert_eq!(status, 500);
        assert!(
            answer.contains("<h1>Internal Server Error</h1>"),
            "{answer}"
        );
        assert!(hub.flists().is_empty());
        assert_eq!(send(&hub, &head, &body).await.0, 200);

        hub.refuse_with(503, "backend is down");
        for _ in 0..2 {
            let (status, answer) = send(&hub, &head, &body).await;
            assert_eq!(status, 503);
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(
                answer,
                serde_json::json!({"status": "error", "message": "backend is down"})
            );
        }
        hub.accept();
        assert_eq!(send(&hub, &head, &body).await.0, 200);
        assert_eq!(hub.requests().len(), 5);
    }
}
