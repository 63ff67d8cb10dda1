//! The HTTP server for real: bound to 127.0.0.1:0, spoken to over TCP by a
//! real client, with a real history file and a real configuration directory.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zos_build_core::{BuildStatus, BuildUpdate};
use zos_build_server::http::signature;
use zos_build_server::{Config, RunningServer};

const SECRET: &str = "test-secret";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct Harness {
    _dir: tempfile::TempDir,
    config: Config,
    server: RunningServer,
    client: reqwest::Client,
}

fn write_catalog(root: &Path) {
    let branch = root.join("owner/repo");
    std::fs::create_dir_all(&branch).unwrap();
    std::fs::write(
        branch.join("master.yaml"),
        "buildscripts:\n  - autobuild/a.sh\n  - autobuild/b.sh\n\
         autobuild/a.sh:\n  baseimage: zos-build-test/busybox:latest\n  archives: /target\n  artifact: a.tar.gz\n\
         autobuild/b.sh:\n  baseimage: zos-build-test/busybox:latest\n  archives: /target\n  artifact: b.tar.gz\n  tag: tools\n",
    )
    .unwrap();
}

async fn harness(secret: Option<&str>) -> Harness {
    harness_with(secret, "").await
}

async fn harness_with(secret: Option<&str>, extra: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("config-repo");
    write_catalog(&catalog);
    let mut yaml = format!(
        "data-directory: {}\nhttp-port: 0\nconfiguration-repository: {}\n",
        dir.path().join("data").display(),
        catalog.display()
    );
    if let Some(secret) = secret {
        yaml.push_str(&format!("webhook-secret: {secret}\n"));
    }
    yaml.push_str(extra);
    let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
    let server = zos_build_server::start_without_builds(config.clone())
        .await
        .unwrap();
    Harness {
        _dir: dir,
        config,
        server,
        client: reqwest::Client::new(),
    }
}

fn push_body(repository: &str, branch: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "after": SHA,
        "deleted": false,
        "repository": {"full_name": repository, "name": repository.split('/').nth(1)},
        "head_commit": {"id": SHA, "message": "change"},
        "commits": [{"id": SHA, "message": "<script>alert(1)</script>"}],
    })
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.address)
    }

    /// POSTs `body` to `path` as GitHub would: event, delivery id, signature.
    async fn hook(
        &self,
        path: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn signed(
        &self,
        path: &str,
        event: &str,
        delivery: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let bytes = body.to_string().into_bytes();
        let signature = signature::sign(SECRET.as_bytes(), &bytes);
        let (status, text) = self
            .hook(path, event, delivery, &bytes, Some(signature))
            .await;
        (status, parse(&text))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn active_count(&self) -> usize {
        self.server.state.history.active().await.unwrap().len()
    }
}

/// A history list without the `Configuration reloader` builds, which every
/// start adds (the configuration repository is loaded as a build of its own).
fn without_reloads(list: Value) -> Value {
    Value::Array(
        list.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] != "Configuration reloader")
            .cloned()
            .collect(),
    )
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Sends raw bytes and returns the status line and the rest: for paths a
/// client library would normalise, and for bodies without a length.
async fn raw(
    address: std::net::SocketAddr,
    head: &str,
    chunks: impl IntoIterator<Item = Vec<u8>>,
) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        // The server may answer and close before everything is sent.
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn signatures_are_required_when_a_secret_is_set() {
    let h = harness(Some(SECRET)).await;
    let body = push_body("owner/repo", "master").to_string().into_bytes();
    let (status, text) = h
        .hook("/hook/monitor-watch", "push", "d1", &body, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("missing"), "{text}");
    let wrong = signature::sign(b"another secret", &body);
    let (status, _) = h
        .hook("/hook/monitor-watch", "push", "d2", &body, Some(wrong))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .hook(
            "/hook/monitor-watch",
            "push",
            "d3",
            &body,
            Some("sha256=nothex".into()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A signature of another body does not pass either.
    let other = signature::sign(SECRET.as_bytes(), b"{}");
    let (status, _) = h
        .hook("/hook/monitor-watch", "push", "d4", &body, Some(other))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unsigned pings are refused too: nothing passes the gate unsigned.
    let (status, _) = h
        .hook("/hook/monitor-watch", "ping", "d5", b"{}", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.active_count().await, 0, "nothing was recorded");
    // The same push, signed, is accepted.
    let (status, answer) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "d1",
            &push_body("owner/repo", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    h.server.stop().await;
}

#[tokio::test]
async fn events_other_than_push_are_answered_and_ignored() {
    let h = harness(Some(SECRET)).await;
    let (status, answer) = h
        .signed("/hook/monitor-watch", "ping", "p1", &json!({"zen": "x"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, "PONG");
    let (status, answer) = h
        .signed("/hook/monitor-watch", "issues", "i1", &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["status"], "ignored");
    let mut deleted = push_body("owner/repo", "master");
    deleted["deleted"] = json!(true);
    deleted["head_commit"] = Value::Null;
    let (status, answer) = h
        .signed("/hook/monitor-watch", "push", "del", &deleted)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("deleted"),
        "{answer}"
    );
    // No event header: the old service's 400.
    let body = b"{}".to_vec();
    let response = h
        .client
        .post(h.url("/hook/monitor-watch"))
        .header(
            "X-Hub-Signature-256",
            signature::sign(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("X-GitHub-Event"));
    // Kernel hooks take the pushes of the kernel targets (the defaults,
    // 0-initramfs and 0-fs) with the old service's word, and refuse the
    // others (tests/kernel.rs builds them).
    for (path, repository) in [
        ("/hook/kernel", "threefoldtech/0-initramfs"),
        ("/build/zero-os/hook", "threefoldtech/0-fs"),
    ] {
        let bytes = push_body(repository, "master").to_string().into_bytes();
        let signature = signature::sign(SECRET.as_bytes(), &bytes);
        let (status, text) = h
            .hook(path, "push", &format!("k{path}"), &bytes, Some(signature))
            .await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "STARTED"),
            "{path}"
        );
    }
    let (status, answer) = h
        .signed(
            "/hook/kernel",
            "push",
            "k-other",
            &push_body("owner/repo", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // Webhooks are POSTed.
    let (status, _) = h.get("/hook/monitor-watch").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.active_count().await, 2, "the two kernel pushes only");
    h.server.stop().await;
}

#[tokio::test]
async fn malformed_and_incomplete_pushes_are_400_naming_the_problem() {
    let h = harness(Some(SECRET)).await;
    let bytes = b"{\"ref\": ".to_vec();
    let sig = signature::sign(SECRET.as_bytes(), &bytes);
    let (status, text) = h
        .hook("/hook/monitor-watch", "push", "m1", &bytes, Some(sig))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("malformed JSON"), "{text}");
    let mut no_repo = push_body("owner/repo", "master");
    no_repo.as_object_mut().unwrap().remove("repository");
    let (status, answer) = h
        .signed("/hook/monitor-watch", "push", "m2", &no_repo)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("repository.full_name"),
        "{answer}"
    );
    let mut no_commit = push_body("owner/repo", "master");
    no_commit.as_object_mut().unwrap().remove("head_commit");
    no_commit.as_object_mut().unwrap().remove("after");
    let (status, answer) = h
        .signed("/hook/monitor-watch", "push", "m3", &no_commit)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("head_commit.id"),
        "{answer}"
    );
    assert_eq!(h.active_count().await, 0);
    h.server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_are_413_with_or_without_a_length() {
    let h = harness(Some(SECRET)).await;
    let big = vec![b' '; zos_build_server::http::MAX_BODY + 1];
    let (status, _) = h
        .hook("/hook/monitor-watch", "push", "big", &big, None)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, no Content-Length: refused while reading, after 10 MB.
    let head = "POST /hook/monitor-watch HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let chunk = vec![b' '; 1024 * 1024];
    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
    framed.extend_from_slice(&chunk);
    framed.extend_from_slice(b"\r\n");
    let answer = raw(h.server.address, head, std::iter::repeat_n(framed, 12)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // Exactly at the limit is not too large (it is a malformed push instead).
    let fits = vec![b' '; zos_build_server::http::MAX_BODY];
    let sig = signature::sign(SECRET.as_bytes(), &fits);
    let (status, _) = h
        .hook("/hook/monitor-watch", "push", "fits", &fits, Some(sig))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    h.server.stop().await;
}

#[tokio::test]
async fn untracked_pushes_are_refused_in_the_old_shape() {
    let h = harness(Some(SECRET)).await;
    let (status, answer) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "u1",
            &push_body("someone/else", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"status": "error", "message": "repository not tracked"})
    );
    let (status, answer) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "u2",
            &push_body("owner/repo", "dev"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"status": "error", "message": "branch not tracked"})
    );
    let (status, answer) = h
        .signed(
            "/hook/monitor-update",
            "push",
            "u3",
            &push_body("owner/repo", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["message"],
        "repository not configured as configuration-repository"
    );
    assert_eq!(h.active_count().await, 0);
    h.server.stop().await;
}

#[tokio::test]
async fn a_tracked_push_is_recorded_once_and_shown_in_the_old_shapes() {
    let h = harness(Some(SECRET)).await;
    let (status, answer) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "t1",
            &push_body("owner/repo", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "success");
    let ids: Vec<String> = answer["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "one build per listed script");
    let (status, again) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "t1",
            &push_body("owner/repo", "master"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, json!({"status": "duplicate"}));
    assert_eq!(h.active_count().await, 2, "the redelivery recorded nothing");

    let (status, text) = h.get("/build/status").await;
    assert_eq!(status, StatusCode::OK);
    let running = parse(&text);
    let entry = &running[&ids[1]];
    assert_eq!(entry["status"], "queued");
    assert_eq!(entry["name"], "owner/repo/master");
    assert_eq!(entry["docker"], "system");
    assert_eq!(entry["tag"], "tools");
    assert_eq!(entry["commits"][0]["message"], "<script>alert(1)</script>");
    for key in ["monitor", "started", "ended", "error", "artifact"] {
        assert!(entry.get(key).is_some(), "{key} missing from {entry}");
    }

    // Finish both (as the pipeline will), with a log for the first.
    let history = &h.server.state.history;
    history
        .update(&ids[0], BuildUpdate::started(BuildStatus::Building))
        .await
        .unwrap();
    history
        .update(&ids[0], BuildUpdate::container("0123456789abcdef"))
        .await
        .unwrap();
    std::fs::create_dir_all(&h.config.logs_directory).unwrap();
    let log: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    std::fs::write(
        h.config.logs_directory.join(format!("{}.log", ids[0])),
        &log,
    )
    .unwrap();
    let (_, text) = h.get("/build/status").await;
    let entry = &parse(&text)[&ids[0]];
    assert_eq!(entry["docker"], "0123456789");
    assert_eq!(entry["status"], "building");
    assert!(
        entry["monitor"]
            .as_str()
            .unwrap()
            .ends_with("line 29\nline 30"),
        "{entry}"
    );
    assert!(
        !entry["monitor"].as_str().unwrap().contains("line 20\n"),
        "only the last lines"
    );
    history
        .update(
            &ids[0],
            BuildUpdate::finished(
                BuildStatus::Success,
                None,
                Some("owner-repo-master-0123456789.tar.gz".into()),
            ),
        )
        .await
        .unwrap();
    history
        .update(
            &ids[1],
            BuildUpdate::finished(
                BuildStatus::Error,
                Some("exited with status 2".into()),
                None,
            ),
        )
        .await
        .unwrap();

    let (_, text) = h.get("/build/status").await;
    assert_eq!(parse(&text), json!({}), "nothing is running any more");
    let (status, text) = h.get("/build/history").await;
    assert_eq!(status, StatusCode::OK);
    let list = without_reloads(parse(&text));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], ids[1].as_str(), "newest first");
    assert_eq!(list[0]["error"], "exited with status 2");
    assert_eq!(list[1]["artifact"], "owner-repo-master-0123456789.tar.gz");
    assert_eq!(list[1]["baseimage"], "zos-build-test/busybox:latest");
    assert!(
        list[1]["started"].is_i64() && list[1]["ended"].is_i64(),
        "{}",
        list[1]
    );
    let (_, text) = h.get("/build/history/full?page=2&per_page=1").await;
    let page = parse(&text);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], ids[0].as_str());
    let (_, text) = h.get("/build/history/full").await;
    assert_eq!(without_reloads(parse(&text)).as_array().unwrap().len(), 2);
    let (status, _) = h.get("/build/history/full?per_page=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, text) = h.get(&format!("/report/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, log);
    let (status, text) = h.get(&format!("/report/{}", ids[1])).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, ""),
        "a build without output has an empty log"
    );
    let (status, _) = h.get("/report/ffff-0000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The latest build of the branch is the second one (no output).
    let (status, text) = h.get("/build/logs/owner/repo/master").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    let (status, _) = h.get("/build/logs/owner/repo/dev").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, text) = h.get("/healthz").await;
    assert_eq!(
        (status, parse(&text)),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    h.server.stop().await;
}

#[tokio::test]
async fn path_traversal_is_404_and_never_reads_a_file() {
    let h = harness(None).await;
    // A log file placed where a traversal would land.
    std::fs::create_dir_all(&h.config.logs_directory).unwrap();
    std::fs::write(h.config.data_directory.join("secret.log"), "SECRET").unwrap();
    for path in [
        "/report/../secret",
        "/report/..%2Fsecret",
        "/report/%2e%2e%2fsecret",
        "/build/logs/owner/../../secret",
        "/build/logs/owner/repo/..",
        "/build/logs/../../../etc/passwd",
        "/report/../../../../etc/passwd",
    ] {
        let answer = raw(
            h.server.address,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            [],
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(
            !answer.contains("SECRET") && !answer.contains("root:"),
            "{path}: {answer}"
        );
    }
    h.server.stop().await;
}

#[tokio::test]
async fn without_a_secret_every_hook_refuses_unsigned_pushes() {
    let h = harness(None).await;
    let body = push_body("owner/repo", "master").to_string().into_bytes();
    for path in [
        "/hook/monitor-watch",
        "/hook/monitor-update",
        "/hook/kernel",
        "/build/0-initramfs/hook",
    ] {
        let (status, text) = h.hook(path, "push", "n1", &body, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {text}");
        assert!(text.contains("webhook-secret"), "{path}: {text}");
        // Not even a signature of a guessed secret gets through.
        let guessed = signature::sign(b"", &body);
        let (status, _) = h.hook(path, "push", "n2", &body, Some(guessed)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(h.active_count().await, 0, "nothing was recorded");
    // GitHub's ping, sent when a webhook is added, is still answered.
    let ping = json!({"zen": "x"}).to_string().into_bytes();
    let (status, text) = h
        .hook("/hook/monitor-watch", "ping", "p1", &ping, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    h.server.stop().await;

    // On a closed network, allow-unsigned-webhooks lifts the refusal.
    let h = harness_with(None, "allow-unsigned-webhooks: true\n").await;
    let (status, text) = h
        .hook("/hook/monitor-watch", "push", "n1", &body, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(h.active_count().await, 2);
    h.server.stop().await;
}

#[tokio::test]
async fn a_restart_marks_running_builds_interrupted_and_keeps_the_history() {
    let h = harness(Some(SECRET)).await;
    let (_, answer) = h
        .signed(
            "/hook/monitor-watch",
            "push",
            "r1",
            &push_body("owner/repo", "master"),
        )
        .await;
    let ids: Vec<String> = answer["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let history = h.server.state.history.clone();
    history
        .update(&ids[0], BuildUpdate::started(BuildStatus::Building))
        .await
        .unwrap();
    let config = h.config.clone();
    h.server.stop().await;
    drop(history);

    let server = zos_build_server::start_without_builds(config)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/build/history", server.address);
    let list: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let list = without_reloads(list);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], ids[0].as_str());
    assert_eq!(list[0]["status"], "error");
    assert_eq!(list[0]["error"], "interrupted by restart");
    let url = format!("http://{}/build/status", server.address);
    let status: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        status[&ids[1]]["status"], "queued",
        "the queued build is still queued"
    );
    // The delivery id is remembered across the restart.
    let body = push_body("owner/repo", "master").to_string().into_bytes();
    let answer: Value = client
        .post(format!("http://{}/hook/monitor-watch", server.address))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "r1")
        .header(
            "X-Hub-Signature-256",
            signature::sign(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "duplicate"}));
    server.stop().await;
    drop(h._dir);
}
