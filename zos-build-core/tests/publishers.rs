//! The publishers against what they publish to: a Zero-OS Hub stand-in and
//! a real directory.
//!
//! The hub cannot be reached from here, so it is the one stand-in: a small
//! HTTP server on the loopback, written below, that speaks the hub's API as
//! threefoldtech/0-hub's `src/flist-uploader.py` does (the `bearer` token,
//! the `active-user` cookie, the multipart upload whose field `file` becomes
//! `<name>.flist`, the link call, and its `{"status": …}` answers) and
//! records every request it receives. It can be told to fail the next
//! calls with a 500 crash page, to answer the hub's own error, or to keep a
//! request waiting, so that the retry rules are tested against a server and
//! not against mocks. Everything else (files, symlinks) is real.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zos_build_core::{
    link_name, BinaryPublisher, HubPublisher, PublishError, PublishRequest, Publisher, RetryPolicy,
};

/// The token the stand-in accepts, with the dots of a JWT.
const TOKEN: &str = "eyJhbGciOi.eyJ1c2VyIjoiYm90Iiwic2VjcmV0IjoieCJ9.s1gnatur3-S3CRET";
/// The token's own user, and the account it is a member of.
const TOKEN_USER: &str = "autobuilder";
const MEMBER_OF: &str = "acme";

const ARTIFACT: &str = "acme-widget-master-0123456789.tar.gz";
const FLIST: &str = "acme-widget-master-0123456789.flist";
const LINK: &str = "acme-widget-master.flist";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    authorization: Option<String>,
    cookie: Option<String>,
    /// The multipart parts of an upload: (field, file name, bytes).
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

/// What the stand-in holds and is told.
#[derive(Default)]
struct State {
    /// Answer the next N uploads with a 500 crash page.
    failing_uploads: u32,
    /// Answer the next N link calls with a 500 crash page.
    failing_links: u32,
    /// Keep the next N requests waiting (longer than any client waits).
    stalls: u32,
    /// Answer every call with the hub's error: (status, message).
    error: Option<(u16, String)>,
    requests: Vec<Recorded>,
    /// (account, flist name) → the archive it was made from.
    flists: BTreeMap<(String, String), Vec<u8>>,
    /// (account, link name) → flist name.
    links: BTreeMap<(String, String), String>,
}

struct HubStandIn {
    url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HubStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl HubStandIn {
    async fn start() -> HubStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| answer(request, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HubStandIn { url, state, server }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// A publisher of this hub acting for `acme`, retrying quickly.
    fn publisher(&self, attempts: u32) -> HubPublisher {
        HubPublisher::builder(&self.url, TOKEN)
            .username(Some(MEMBER_OF.into()))
            .retry(RetryPolicy::new(attempts, Duration::from_millis(5)))
            .build()
            .unwrap()
    }
}

fn json(status: u16, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{value}\n"))))
        .unwrap()
}

/// The hub's `api_response(message, code)`.
fn hub_error(status: u16, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"status": "error", "message": message}),
    )
}

/// The hub's request handling: authentication (`hub/security.py`'s
/// `apicall`, the `active-user` switch of `hub/itsyouonline.py`), then the
/// two routes of `flist-uploader.py` we use.
async fn answer(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
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
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(hub_error(400, "the body was cut")),
    };
    let parts = if method == "POST" {
        match parse_multipart(&content_type, &body) {
            Some(parts) => parts,
            None => return Ok(hub_error(400, "malformed multipart body")),
        }
    } else {
        Vec::new()
    };
    let stall = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            cookie: cookie.clone(),
            parts: parts.clone(),
        });
        let stall = state.stalls > 0;
        state.stalls = state.stalls.saturating_sub(1);
        stall
    };
    if stall {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }

    let mut state = state.lock().unwrap();
    if let Some((status, message)) = &state.error {
        return Ok(hub_error(*status, message));
    }
    // `apicall`: a token is required; a JWT (it has dots) is checked.
    let Some(authorization) = authorization else {
        return Ok(hub_error(401, "no authorization provided"));
    };
    let token = authorization
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| &authorization[7..]);
    if token != Some(TOKEN) {
        return Ok(hub_error(403, "invalid token"));
    }
    // `active-user` switches to an account the token's user is a member of.
    let active = cookie
        .as_deref()
        .unwrap_or("")
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("active-user="))
        .next_back();
    let account = match active {
        Some(MEMBER_OF) => MEMBER_OF,
        _ => TOKEN_USER,
    }
    .to_string();

    let segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    const CRASH: &str = "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n";
    let crash = || {
        Response::builder()
            .status(500)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from(CRASH)))
            .unwrap()
    };
    match (method.as_str(), segments.as_slice()) {
        // `api_my_upload` → `api_flist_upload`.
        ("POST", ["api", "flist", "me", "upload"]) => {
            if state.failing_uploads > 0 {
                state.failing_uploads -= 1;
                return Ok(crash());
            }
            let Some((_, filename, bytes)) = parts.iter().find(|(field, _, _)| field == "file")
            else {
                return Ok(hub_error(500, "no file found"));
            };
            let filename = filename.clone().unwrap_or_default();
            if filename.is_empty() {
                return Ok(hub_error(500, "no file selected"));
            }
            let Some(stem) = filename.strip_suffix(".tar.gz") else {
                return Ok(hub_error(500, "this file is not allowed"));
            };
            let flist = format!("{stem}.flist");
            state.flists.insert((account, flist.clone()), bytes.clone());
            Ok(json(
                200,
                serde_json::json!({
                    "status": "success",
                    "payload": {"name": flist, "files": {"regular": 1, "directory": 1}},
                }),
            ))
        }
        // `api_my_symlink` → `api_symlink`.
        ("GET", ["api", "flist", "me", source, "link", link]) => {
            if state.failing_links > 0 {
                state.failing_links -= 1;
                return Ok(crash());
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
                return Ok(hub_error(404, "source not found"));
            }
            if state.flists.contains_key(&(account.clone(), link.clone())) {
                return Ok(hub_error(401, "link destination is already a file"));
            }
            state.links.insert((account, link), source);
            Ok(json(200, serde_json::json!({"status": "success"})))
        }
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from("not found")))
            .unwrap()),
    }
}

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

/// The parts of a `multipart/form-data` body (RFC 7578): (field name, file
/// name, bytes). `None` when the body does not follow the format.
#[allow(clippy::type_complexity)]
fn parse_multipart(
    content_type: &str,
    body: &[u8],
) -> Option<Vec<(String, Option<String>, Vec<u8>)>> {
    let (kind, params) = content_type.split_once(';')?;
    if kind.trim() != "multipart/form-data" {
        return None;
    }
    let boundary = params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
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
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())?;
        let content = rest[..end].to_vec();
        rest = &rest[end + 2 + delimiter.len()..];
        let disposition = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-disposition")
                .then_some(value)
        })?;
        let mut field = None;
        let mut filename = None;
        for param in disposition.split(';').map(str::trim) {
            if let Some((key, value)) = param.split_once('=') {
                let value = value.trim_matches('"').to_string();
                match key {
                    "name" => field = Some(value),
                    "filename" => filename = Some(value),
                    _ => {}
                }
            }
        }
        parts.push((field?, filename, content));
    }
}

/// An artifact whose bytes include every byte value and multipart-looking
/// lines, large enough to go out in several chunks.
fn write_artifact(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut bytes = Vec::new();
    for round in 0..2000u32 {
        bytes.extend((0..=255u8).map(|b| b.wrapping_add(round as u8)));
        bytes.extend_from_slice(b"\r\n--not-the-boundary\r\n\r\n");
    }
    let path = dir.join("archive.tar.gz");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn an_upload_carries_the_artifact_and_the_token_then_the_link_moves() {
    let hub = HubStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bytes) = write_artifact(dir.path());
    let publisher: Arc<dyn Publisher> = Arc::new(hub.publisher(3));
    let link = link_name("acme/widget", None, "master");
    assert_eq!(link, LINK);

    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(&link);
    let published = publisher.publish(&request).await.unwrap();

    let requests = hub.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let (upload, link_call) = (&requests[0], &requests[1]);
    assert_eq!(
        (upload.method.as_str(), upload.path.as_str()),
        ("POST", "/api/flist/me/upload")
    );
    assert_eq!(upload.parts.len(), 1);
    let (field, filename, received) = &upload.parts[0];
    assert_eq!(field, "file");
    assert_eq!(filename.as_deref(), Some(ARTIFACT));
    assert!(*received == bytes, "the artifact's bytes, whole");
    assert_eq!(
        (link_call.method.as_str(), link_call.path.as_str()),
        ("GET", format!("/api/flist/me/{FLIST}/link/{LINK}").as_str())
    );
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("bearer {TOKEN}").as_str())
        );
        assert_eq!(request.cookie.as_deref(), Some("active-user=acme"));
    }
    let state = hub.state();
    assert!(state.flists.contains_key(&(MEMBER_OF.into(), FLIST.into())));
    assert_eq!(
        state
            .links
            .get(&(MEMBER_OF.into(), LINK.into()))
            .map(String::as_str),
        Some(FLIST)
    );

    assert_eq!(published.name, FLIST);
    assert_eq!(published.location, format!("{}/acme/{FLIST}", hub.url));
    let moved = published.link.expect("the link moved");
    assert_eq!((moved.name.as_str(), moved.target.as_str()), (LINK, FLIST));
    assert_eq!(moved.location, format!("{}/acme/{LINK}", hub.url));
}

#[tokio::test]
async fn without_a_username_the_tokens_own_account_is_used() {
    let hub = HubStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(&hub.url, TOKEN).build().unwrap();
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let published = publisher.publish(&request).await.unwrap();
    assert!(hub.requests().iter().all(|r| r.cookie.is_none()));
    assert_eq!(
        hub.state()
            .links
            .get(&(TOKEN_USER.into(), LINK.into()))
            .map(String::as_str),
        Some(FLIST)
    );
    assert_eq!(
        published.location,
        format!("{}/api/flist/me/{FLIST}", hub.url)
    );
}

#[tokio::test]
async fn a_crashing_hub_is_tried_again_until_it_succeeds() {
    let hub = HubStandIn::start().await;
    hub.state().failing_uploads = 2;
    hub.state().failing_links = 1;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bytes) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let published = hub.publisher(3).publish(&request).await.unwrap();
    assert_eq!(published.name, FLIST);

    let calls: Vec<_> = hub
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.parts.len()))
        .collect();
    let upload = ("POST".to_string(), 1);
    let link = ("GET".to_string(), 0);
    assert_eq!(
        calls,
        [upload.clone(), upload.clone(), upload, link.clone(), link],
        "three uploads (two crashed), two link calls (one crashed)"
    );
    for request in hub.requests().iter().filter(|r| r.method == "POST") {
        assert!(
            request.parts[0].2 == bytes,
            "every attempt sends the whole file"
        );
    }
    assert_eq!(
        hub.state()
            .links
            .get(&(MEMBER_OF.into(), LINK.into()))
            .map(String::as_str),
        Some(FLIST)
    );
}

#[tokio::test]
async fn retries_are_bounded() {
    let hub = HubStandIn::start().await;
    hub.state().failing_uploads = 100;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let err = hub.publisher(3).publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubUnavailable { attempts: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(
        text.contains(&format!("{}/api/flist/me/upload", hub.url)),
        "{text}"
    );
    assert_eq!(hub.requests().len(), 3, "three uploads, no link call");
}

#[tokio::test]
async fn a_hub_that_keeps_a_request_waiting_is_tried_again() {
    let hub = HubStandIn::start().await;
    hub.state().stalls = 1;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(&hub.url, TOKEN)
        .retry(RetryPolicy::new(2, Duration::from_millis(5)))
        .upload_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, ARTIFACT))
        .await
        .unwrap();
    assert_eq!(published.name, FLIST);
    let methods: Vec<_> = hub.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        ["POST", "POST"],
        "the waiting upload was made again"
    );
}

#[tokio::test]
async fn a_hub_error_fails_at_once_with_the_hubs_message() {
    let hub = HubStandIn::start().await;
    let message = "unauthorized upload, contents is not fully present on backend";
    hub.state().error = Some((500, message.into()));
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let err = hub.publisher(5).publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubRefused { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(message), "{err}");
    assert_eq!(hub.requests().len(), 1, "not retried, no link call");

    // The hub's own refusal of a token: a 4xx, not retried either.
    hub.state().error = None;
    let stranger = HubPublisher::builder(&hub.url, "not.the.token")
        .retry(RetryPolicy::new(5, Duration::from_millis(5)))
        .build()
        .unwrap();
    let err = stranger.publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubRefused { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("invalid token"), "{err}");
    assert_eq!(hub.requests().len(), 2);

    // A link the hub refuses fails the publication after the upload.
    hub.state()
        .flists
        .insert((MEMBER_OF.into(), LINK.into()), Vec::new());
    let err = hub.publisher(5).publish(&request).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("link destination is already a file"),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_appears_in_no_error_nor_debug_output() {
    let hub = HubStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let publisher = hub.publisher(2);
    let secret = "S3CRET";
    assert!(TOKEN.contains(secret));
    let mut shown = vec![format!("{publisher:?}")];

    // A hub that echoes the token in its message.
    hub.state().error = Some((403, format!("token {TOKEN} is not allowed here")));
    let err = publisher.publish(&request).await.unwrap_err();
    assert!(
        err.to_string().contains("token *** is not allowed"),
        "{err}"
    );
    shown.extend([err.to_string(), format!("{err:?}")]);

    // Retries spent on crashes.
    hub.state().error = None;
    hub.state().failing_uploads = 10;
    let err = publisher.publish(&request).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);

    // An unreachable hub.
    let closed = closed_port().await;
    let unreachable = HubPublisher::builder(format!("http://127.0.0.1:{closed}"), TOKEN)
        .retry(RetryPolicy::new(1, Duration::ZERO))
        .build()
        .unwrap();
    shown.push(format!("{unreachable:?}"));
    let err = unreachable.publish(&request).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);

    for text in &shown {
        assert!(!text.contains(secret), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn publishing_without_the_link_makes_no_link_call() {
    let hub = HubStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let published = hub
        .publisher(3)
        .publish(&PublishRequest::new(&artifact, ARTIFACT))
        .await
        .unwrap();
    assert_eq!(published.name, FLIST);
    assert_eq!(published.link, None);
    let requests = hub.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].path, "/api/flist/me/upload");
    assert!(hub.state().links.is_empty());
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_hub_fails_after_the_bounded_retries_naming_its_url() {
    let port = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(format!("http://127.0.0.1:{port}"), TOKEN)
        .retry(RetryPolicy::new(3, Duration::from_millis(5)))
        .build()
        .unwrap();
    let err = publisher
        .publish(&PublishRequest::new(&artifact, ARTIFACT).with_link(LINK))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::HubUnavailable { attempts: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/api/flist/me/upload")),
        "{text}"
    );
    assert!(text.contains("3 attempt"), "{text}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_directory_link_moves_forward_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("binaries");
    let artifact = dir.path().join("out");
    let publisher: Arc<dyn Publisher> = Arc::new(BinaryPublisher::new(&bin));
    let link = link_name("acme/widget", Some("cli"), "release/v1");
    assert_eq!(link, "acme-widget-cli-release-v1.flist");
    let first = "acme-widget-cli-release-v1-1111111111.tar.gz";
    let second = "acme-widget-cli-release-v1-2222222222.tar.gz";
    let older = "acme-widget-cli-release-v1-0000000000.tar.gz";

    std::fs::write(&artifact, b"first build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, first).with_link(&link))
        .await
        .unwrap();
    assert_eq!(published.location, bin.join(first).display().to_string());
    let link_path = bin.join(&link);
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(first));
    assert_eq!(std::fs::read(&link_path).unwrap(), b"first build");
    assert_eq!(
        std::fs::canonicalize(&link_path).unwrap(),
        std::fs::canonicalize(bin.join(first)).unwrap()
    );

    // A newer build moves the link.
    std::fs::write(&artifact, b"second build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, second).with_link(&link))
        .await
        .unwrap();
    assert_eq!(
        published.link.map(|l| (l.name, l.target)),
        Some((link.clone(), second.to_string()))
    );
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(second));
    assert_eq!(std::fs::read(&link_path).unwrap(), b"second build");

    // An older build finishing later publishes its file, not the link.
    std::fs::write(&artifact, b"older build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, older))
        .await
        .unwrap();
    assert_eq!(published.link, None);
    assert_eq!(std::fs::read(bin.join(older)).unwrap(), b"older build");
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(second));

    // The directory survives a move: the link is relative.
    let moved = dir.path().join("moved");
    std::fs::rename(&bin, &moved).unwrap();
    assert_eq!(std::fs::read(moved.join(&link)).unwrap(), b"second build");
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_directory_refuses_a_symlinked_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("binaries");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"not a build's").unwrap();
    let artifact = dir.path().join("out");
    std::os::unix::fs::symlink(&secret, &artifact).unwrap();
    let err = BinaryPublisher::new(&bin)
        .publish(
            &PublishRequest::new(&artifact, "a-b-m-1111111111.tar.gz").with_link("a-b-m.flist"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::NotRegular(_)), "{err}");
    assert!(!bin.join("a-b-m-1111111111.tar.gz").exists());
    assert!(std::fs::symlink_metadata(bin.join("a-b-m.flist")).is_err());
}
