//! The webhook handler's header and body handling, end to end: three real
//! servers run in this process (`start_without_builds`: no Docker), and each
//! input becomes one HTTP/1.1 request written to one of them over loopback.
//!
//! - `signed`: `webhook-secret` set, tracking `acme/widget` `master` from a
//!   configuration repository made at start (a `file://` git URL);
//! - `refusing`: no secret (unsigned pushes are refused with 403);
//! - `open`: no secret and `allow-unsigned-webhooks: true`.
//!
//! The input chooses the endpoint, method, event, delivery id, signature
//! (the right one, none, or given bytes), extra headers, the body (raw bytes
//! or a push payload with chosen fields) and its framing (length, chunked,
//! or a given `Content-Length` value).
//!
//! Invariants: no panic anywhere in the server (libFuzzer's panic hook
//! aborts the process, whatever thread panics); no answer is a 5xx; a
//! well-formed request always gets an answer; on the signed server a hook
//! request without the right signature is refused (401) and nothing else
//! happens; on the refusing server a push is refused (403); no answer shows
//! the content of a file beside the data directories.

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use zos_build_server::http::signature;
use zos_build_server::{Config, RunningServer};

const SECRET: &str = "fuzz-secret";
const SENTINEL: &str = "ZOS-BUILD-FUZZ-SENTINEL-7d2f0c";
const WIDGET: &str = "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: widget.tar.gz\n";

struct Servers {
    _runtime: tokio::runtime::Runtime,
    _servers: Vec<RunningServer>,
    _dir: tempfile::TempDir,
    signed: SocketAddr,
    refusing: SocketAddr,
    open: SocketAddr,
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "fuzz")
        .env("GIT_AUTHOR_EMAIL", "fuzz@example.org")
        .env("GIT_COMMITTER_NAME", "fuzz")
        .env("GIT_COMMITTER_EMAIL", "fuzz@example.org")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_repo = dir.path().join("git/acme/config");
        std::fs::create_dir_all(config_repo.join("acme/widget")).expect("mkdir");
        git(&config_repo, &["init", "-q", "-b", "main"]);
        std::fs::write(config_repo.join("acme/widget/master.yaml"), WIDGET).expect("write");
        git(&config_repo, &["add", "-A"]);
        git(&config_repo, &["commit", "-q", "-m", "track widget master"]);
        // A file no answer may ever show (`/artifacts/../..`, `/report/..`).
        std::fs::write(dir.path().join("sentinel"), SENTINEL).expect("write");

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = |name: &str, extra: &str| {
            let yaml = format!(
                "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: acme/config\n\
                 git-base-url: file://{git}\n{extra}",
                data = dir.path().join(name).display(),
                git = dir.path().join("git").display(),
            );
            Config::from_yaml(&yaml, Path::new("fuzz.yaml")).expect("configuration")
        };
        let configs = [
            config("signed", &format!("webhook-secret: {SECRET}\n")),
            config("refusing", ""),
            config("open", "allow-unsigned-webhooks: true\n"),
        ];
        let servers: Vec<RunningServer> = configs
            .into_iter()
            .map(|c| {
                runtime
                    .block_on(zos_build_server::start_without_builds(c))
                    .expect("server starts")
            })
            .collect();
        Servers {
            signed: servers[0].address,
            refusing: servers[1].address,
            open: servers[2].address,
            _runtime: runtime,
            _servers: servers,
            _dir: dir,
        }
    })
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Server {
    Signed,
    Refusing,
    Open,
}

#[derive(Arbitrary, Debug)]
enum Endpoint {
    RepositoryPush,
    MonitorUpdate,
    Kernel,
    Project(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Method {
    Post,
    Get,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Event {
    Push,
    Ping,
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    Right,
    Uppercase,
    Missing,
    Given(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    ContentType,
    UserAgent,
    Event,
    Signature,
    Delivery,
    ContentLength,
    TransferEncoding,
    Expect,
    Connection,
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Repository {
    Widget,
    Config,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Ref {
    Master,
    Main,
    Branch(String),
    Tag(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Commit {
    Hex([u8; 20]),
    Other(String),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Push {
        repository: Repository,
        git_ref: Ref,
        commit: Commit,
        deleted: Option<bool>,
        commits: Option<Vec<String>>,
    },
}

#[derive(Arbitrary, Debug)]
enum Framing {
    Length,
    Chunked(Vec<u8>),
    Declared(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    server: Server,
    endpoint: Endpoint,
    method: Method,
    event: Option<Event>,
    delivery: Option<Vec<u8>>,
    signature: Signature,
    headers: Vec<(HeaderName, Vec<u8>)>,
    body: Body,
    framing: Framing,
}

/// Keeps what a request line or header can carry without being a CR, LF
/// or NUL (those make the request malformed, which `Other` names cover).
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0' | ' '))
        .collect()
}

/// A header value HTTP allows: tab, space, visible ASCII and bytes from
/// 0x80 (anything else is answered 400 before any handler runs).
fn valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
}

/// A header value as the server sees it: without surrounding spaces and tabs.
fn trim(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

fn body_bytes(body: &Body) -> Vec<u8> {
    let (repository, git_ref, commit, deleted, commits) = match body {
        Body::Raw(bytes) => return bytes.clone(),
        Body::Push {
            repository,
            git_ref,
            commit,
            deleted,
            commits,
        } => (repository, git_ref, commit, deleted, commits),
    };
    let repository = match repository {
        Repository::Widget => "acme/widget".to_string(),
        Repository::Config => "acme/config".to_string(),
        Repository::Other(name) => name.clone(),
    };
    let git_ref = match git_ref {
        Ref::Master => "refs/heads/master".to_string(),
        Ref::Main => "refs/heads/main".to_string(),
        Ref::Branch(name) => format!("refs/heads/{name}"),
        Ref::Tag(name) => format!("refs/tags/{name}"),
        Ref::Other(name) => name.clone(),
    };
    let mut push = serde_json::json!({
        "ref": git_ref,
        "repository": {"full_name": repository},
    });
    match commit {
        Commit::Hex(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            push["after"] = hex.clone().into();
            push["head_commit"] = serde_json::json!({ "id": hex });
        }
        Commit::Other(text) => push["after"] = text.clone().into(),
        Commit::Missing => {}
    }
    if let Some(deleted) = deleted {
        push["deleted"] = (*deleted).into();
    }
    if let Some(commits) = commits {
        push["commits"] = commits.clone().into();
    }
    push.to_string().into_bytes()
}

fuzz_target!(|input: Input| {
    let servers = servers();
    let address = match input.server {
        Server::Signed => servers.signed,
        Server::Refusing => servers.refusing,
        Server::Open => servers.open,
    };
    let body = body_bytes(&input.body);
    let mut well_formed = true;

    let (path, hook) = match &input.endpoint {
        Endpoint::RepositoryPush => ("/hook/monitor-watch".to_string(), true),
        Endpoint::MonitorUpdate => ("/hook/monitor-update".to_string(), true),
        Endpoint::Kernel => ("/hook/kernel".to_string(), true),
        Endpoint::Project(name) => (format!("/build/{}/hook", printable(name)), false),
        Endpoint::Other(path) => (format!("/{}", printable(path)), false),
    };
    let (method, post) = match &input.method {
        Method::Post => ("POST".to_string(), true),
        Method::Get => ("GET".to_string(), false),
        Method::Other(m) => {
            let m = printable(m);
            well_formed &= !m.is_empty() && m.chars().all(|c| c.is_ascii_alphabetic());
            (m, false)
        }
    };
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
            .into_bytes();
    let mut header = |name: &[u8], value: &[u8]| {
        request.extend_from_slice(name);
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    };
    match &input.event {
        Some(Event::Push) => header(b"X-GitHub-Event", b"push"),
        Some(Event::Ping) => header(b"X-GitHub-Event", b"ping"),
        Some(Event::Other(value)) => {
            well_formed &= valid_value(value);
            header(b"X-GitHub-Event", value)
        }
        None => {}
    }
    if let Some(id) = &input.delivery {
        well_formed &= valid_value(id);
        header(b"X-GitHub-Delivery", id);
    }
    let right = signature::sign(SECRET.as_bytes(), &body);
    let signed_right = match &input.signature {
        Signature::Right => {
            header(b"X-Hub-Signature-256", right.as_bytes());
            true
        }
        Signature::Uppercase => {
            let upper = format!("sha256={}", right["sha256=".len()..].to_ascii_uppercase());
            header(b"X-Hub-Signature-256", upper.as_bytes());
            true
        }
        Signature::Missing => false,
        Signature::Given(value) => {
            well_formed &= valid_value(value);
            header(b"X-Hub-Signature-256", value);
            trim(value).to_ascii_lowercase() == right.as_bytes()
        }
    };
    for (name, value) in input.headers.iter().take(8) {
        let name: &[u8] = match name {
            HeaderName::ContentType => b"Content-Type",
            HeaderName::UserAgent => b"User-Agent",
            // A second event, signature or delivery header.
            HeaderName::Event => b"X-GitHub-Event",
            HeaderName::Signature => b"X-Hub-Signature-256",
            HeaderName::Delivery => b"X-GitHub-Delivery",
            HeaderName::ContentLength => {
                well_formed = false;
                b"Content-Length"
            }
            HeaderName::TransferEncoding => {
                well_formed = false;
                b"Transfer-Encoding"
            }
            HeaderName::Expect => b"Expect",
            HeaderName::Connection => {
                well_formed = false;
                b"Connection"
            }
            HeaderName::Other(name) => {
                well_formed = false;
                name
            }
        };
        well_formed &= valid_value(value);
        header(name, value);
    }
    // A second signature or event header makes the verdict the server's
    // choice among them: only the plain cases are checked below.
    let repeated = input
        .headers
        .iter()
        .take(8)
        .any(|(n, _)| matches!(n, HeaderName::Event | HeaderName::Signature));
    match &input.framing {
        Framing::Length => {
            header(b"Content-Length", body.len().to_string().as_bytes());
            request.extend_from_slice(b"\r\n");
            request.extend_from_slice(&body);
        }
        Framing::Chunked(sizes) => {
            header(b"Transfer-Encoding", b"chunked");
            request.extend_from_slice(b"\r\n");
            let mut rest = &body[..];
            let mut sizes = sizes.iter().map(|&s| usize::from(s).max(1)).cycle();
            while !rest.is_empty() {
                let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
                request.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                request.extend_from_slice(&rest[..n]);
                request.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            request.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::Declared(length) => {
            well_formed = false;
            header(b"Content-Length", printable(length).as_bytes());
            request.extend_from_slice(b"\r\n");
            request.extend_from_slice(&body);
        }
    }

    let Some(answer) = exchange(address, &request, well_formed) else {
        assert!(!well_formed, "no answer to a well-formed request");
        return;
    };
    assert!(
        !answer
            .windows(SENTINEL.len())
            .any(|w| w == SENTINEL.as_bytes()),
        "an answer showed a file outside the data directory"
    );
    let status = status_of(&answer);
    if well_formed {
        assert!(
            status.is_some(),
            "no status line: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let Some(status) = status else {
        return;
    };
    assert!(
        status < 500,
        "{status}: {}",
        String::from_utf8_lossy(&answer)
    );
    if !well_formed || !hook || !post || repeated {
        return;
    }
    match input.server {
        Server::Signed if !signed_right => assert_eq!(status, 401, "unsigned on the signed server"),
        Server::Refusing if matches!(input.event, Some(Event::Push)) => {
            assert_eq!(status, 403, "unsigned push on the refusing server")
        }
        _ => {}
    }
});

/// Writes `request`, reads the answer until the server closes. `None` when
/// nothing came back in time.
fn exchange(address: SocketAddr, request: &[u8], well_formed: bool) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(address).expect("the server accepts");
    let patience = if well_formed { 20 } else { 2 };
    stream
        .set_read_timeout(Some(Duration::from_secs(patience)))
        .expect("timeout");
    // The server may answer (413, 400) and close before reading it all.
    let _ = stream.write_all(request);
    if !well_formed {
        // The server must not wait for more of a malformed request.
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            if answer.is_empty() {
                return None;
            }
        }
        Err(e) => panic!("reading the answer: {e}"),
    }
    (!answer.is_empty()).then_some(answer)
}

/// The status of the final answer (after any `100 Continue`).
fn status_of(answer: &[u8]) -> Option<u16> {
    let mut rest = answer;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&rest[..line_end]).ok()?;
        let status: u16 = line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
        if status != 100 {
            return Some(status);
        }
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        rest = &rest[head_end + 4..];
    }
}
