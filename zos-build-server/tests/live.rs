//! What watchers see: the `/buildio` websocket, followed logs, the JSON API
//! with its admin token, `/metrics`, `/build/sync` and the published
//! artifacts, against real builds (see `support`).

use zos_build_testkit::server as support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Harness, DOCKER};
use tokio_tungstenite::tungstenite::Message;
use zos_build_core::BuildStatus;

const TOKEN: &str = "admin-secret-token";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(h: &Harness) -> Socket {
    connect_to(h, "/buildio").await
}

async fn connect_to(h: &Harness, path: &str) -> Socket {
    let url = h.url(path).replace("http://", "ws://");
    let (socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// A client that has read the `history`, `status` and `server` frames sent
/// on connect.
async fn connect_past_snapshot(h: &Harness) -> Socket {
    let mut socket = connect(h).await;
    for event in ["history", "status", "server"] {
        let frame = next_frame(&mut socket, Duration::from_secs(5))
            .await
            .expect("the snapshot frames on connect");
        assert_eq!(frame["event"], event);
    }
    socket
}

/// The next JSON frame, within `limit`.
async fn next_frame(socket: &mut Socket, limit: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(limit, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn lines_script(n: u32) -> String {
    format!(
        "#!/bin/sh\nset -e\nseq 1 {n} | sed 's/^/line /'\nmkdir -p /target\necho art > /target/widget.tar.gz\n"
    )
}

/// The lines of one build put back together from batched `update` frames,
/// checking as it goes that the sequence numbers leave no gap and repeat
/// nothing, and that pieces of a long line come in order.
#[derive(Debug, Default)]
struct Reassembly {
    /// The `seq` the next frame must carry.
    next_seq: u64,
    lines: Vec<String>,
    /// A long line's pieces so far, and the next piece's index.
    piece: Option<(String, u64)>,
    /// Every `line` appended, as an old client that knows nothing of
    /// `seq` does.
    appended: String,
    frames: usize,
    pieces: usize,
}

impl Reassembly {
    fn frame(&mut self, payload: &Value) {
        let seq = payload["seq"].as_u64().expect("a seq");
        let count = payload["count"].as_u64().expect("a count");
        let text = payload["line"].as_str().expect("a line");
        assert!(
            text.len() <= 64 * 1024,
            "a frame of {} bytes of text",
            text.len()
        );
        assert_eq!(seq, self.next_seq, "no gap and no repeat: {payload}");
        self.appended.push_str(text);
        self.frames += 1;
        match payload.get("piece") {
            Some(index) => {
                self.pieces += 1;
                let (mut line, expected) = self.piece.take().unwrap_or_default();
                assert_eq!(index.as_u64(), Some(expected), "pieces in order");
                line.push_str(text);
                if count == 1 {
                    assert!(line.ends_with('\n'));
                    line.pop();
                    self.lines.push(line);
                } else {
                    assert_eq!(count, 0);
                    assert!(!text.ends_with('\n'), "only the last piece ends the line");
                    self.piece = Some((line, expected + 1));
                }
            }
            None => {
                assert!(self.piece.is_none(), "a long line's pieces go alone");
                let body = text
                    .strip_suffix('\n')
                    .expect("a chunk ends with a newline");
                let before = self.lines.len();
                self.lines.extend(body.split('\n').map(str::to_string));
                assert_eq!((self.lines.len() - before) as u64, count, "{payload}");
            }
        }
        self.next_seq = seq + count;
    }
}

#[tokio::test]
async fn a_websocket_client_gets_history_status_and_every_line() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let mut socket = connect(&h).await;
    // One line per frame, the mode of the previous protocol.
    let mut single = connect_to(&h, "/buildio?lines=1").await;
    let first = next_frame(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first["event"], "history");
    // Only the configuration load of the start-up has ended so far.
    let names: Vec<&str> = first["payload"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Configuration reloader"]);
    let second = next_frame(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(second["event"], "status");
    let server = next_frame(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(server["event"], "server");
    assert_eq!(server["payload"]["repositories"], 1, "{server}");
    assert!(
        server["payload"]["configuration_repository"].is_string(),
        "{server}"
    );

    let commit = h.commit(&lines_script(2000));
    let ids = h.push(&commit).await;
    let id = ids[0].clone();
    let mut build = Reassembly::default();
    let mut statuses = Vec::new();
    let mut history = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while history.is_none() && Instant::now() < deadline {
        let Some(frame) = next_frame(&mut socket, Duration::from_secs(30)).await else {
            break;
        };
        match frame["event"].as_str().unwrap() {
            "update" => {
                assert_eq!(frame["payload"]["id"], id.as_str());
                build.frame(&frame["payload"]);
            }
            "status" => {
                if let Some(entry) = frame["payload"].get(&id) {
                    statuses.push(entry["status"].as_str().unwrap().to_string());
                    assert_eq!(entry["name"], "acme/widget/master");
                    assert_eq!(entry["commits"][0]["id"], commit.as_str());
                }
            }
            "history" => {
                let entries = frame["payload"].as_array().unwrap();
                if entries.iter().any(|e| e["id"] == id.as_str()) {
                    history = Some(frame);
                }
            }
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    let history = history.expect("a history frame with the finished build");
    assert_eq!(history["payload"][0]["status"], "success");
    let numbered: Vec<&String> = build
        .lines
        .iter()
        .filter(|l| l.starts_with("line "))
        .collect();
    assert_eq!(numbered.len(), 2000, "every line arrives once");
    for (i, line) in numbered.iter().enumerate() {
        assert_eq!(**line, format!("line {}", i + 1));
    }
    assert!(
        build.frames * 10 < build.lines.len(),
        "lines travel many to a frame: {} frames for {} lines",
        build.frames,
        build.lines.len()
    );
    // Every line went to the file too, in the same order.
    let report = h.report(&id).await;
    let from_file: Vec<&str> = report.lines().collect();
    assert_eq!(from_file, build.lines);
    assert!(statuses.contains(&"queued".to_string()), "{statuses:?}");
    assert!(statuses.contains(&"building".to_string()), "{statuses:?}");

    // The single-line client got the same lines, one per frame, numbered.
    let mut singles = Vec::new();
    while singles.len() < from_file.len() {
        let Some(frame) = next_frame(&mut single, Duration::from_secs(10)).await else {
            break;
        };
        if frame["event"] == "update" {
            assert_eq!(frame["payload"]["seq"], singles.len() as u64, "{frame}");
            assert!(frame["payload"].get("count").is_none());
            singles.push(frame["payload"]["line"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(singles, from_file);
    socket.close(None).await.ok();
    single.close(None).await.ok();
    h.stop_and_check_clean(&ids).await;
}

/// A value of `/metrics`.
async fn metric(h: &Harness, name: &str) -> u64 {
    let text = h.get_text("/metrics").await;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A line of `n` bytes: `x` repeated, then `-end`.
fn long_line(n: usize) -> String {
    format!("{}-end", "x".repeat(n - 4))
}

#[tokio::test]
async fn a_stalled_websocket_client_catches_up_with_every_line_from_the_log() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    // Read the snapshot, then nothing while a large build runs: far more
    // than the feed keeps for a subscriber and the socket buffers hold.
    let mut stalled = connect_past_snapshot(&h).await;
    // 400,000 lines of about 100 bytes, one of them 100 KiB long (past a
    // frame's 64 KiB): with their frames, more than the feed keeps (32 MiB)
    // for a client that does not read.
    let pad = "x".repeat(90);
    let script = format!(
        "#!/bin/sh\nset -e\nseq 1 200000 | sed 's/^/line {pad} /'\n\
         head -c 102396 /dev/zero | tr '\\0' x; echo -end\n\
         seq 200002 400000 | sed 's/^/line {pad} /'\n\
         mkdir -p /target\necho art > /target/widget.tar.gz\n"
    );
    let commit = h.commit(&script);
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let report = h.report(&ids[0]).await;
    let expected: Vec<&str> = report.lines().collect();
    assert!(
        expected.contains(&long_line(102_400).as_str()),
        "the script printed its long line"
    );
    assert!(report.len() > 32 << 20, "a log of {} bytes", report.len());
    // The client has read nothing yet: what the feed keeps for it is bounded.
    let held = metric(&h, "zos_build_live_held_bytes").await;
    assert!(
        held <= 32 << 20,
        "the feed holds {held} bytes for a client that reads nothing"
    );
    let mut build = Reassembly::default();
    while build.lines.len() < expected.len() {
        let Some(frame) = next_frame(&mut stalled, Duration::from_secs(30)).await else {
            break;
        };
        match frame["event"].as_str().unwrap() {
            "update" => {
                assert_eq!(frame["payload"]["id"], ids[0].as_str());
                build.frame(&frame["payload"]);
            }
            "lagged" => panic!("every line can be read back, none is lost: {frame}"),
            _ => {}
        }
    }
    assert_eq!(build.lines.len(), expected.len(), "every line, once");
    assert!(
        build.lines.iter().zip(&expected).all(|(a, b)| a == b),
        "in the order of the log"
    );
    assert_eq!(build.pieces, 2, "the long line came in two marked pieces");
    let catch_ups = metric(&h, "zos_build_live_catch_ups_total").await;
    assert!(catch_ups >= 1, "the client caught up from the log file");
    // A client of the old protocol appends the chunks: the log, exactly.
    assert!(
        build.appended == report,
        "appending the chunks gives the log byte for byte"
    );
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_follower_that_stops_reading_never_slows_the_build_and_then_catches_up() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    // Mostly waiting, so the build's own time varies little; the flood
    // before and after is far more than a socket and the feed hold.
    let script = "#!/bin/sh\nset -e\nseq 1 300000 | sed 's/^/line /'\nsleep 8\n\
                  seq 300001 600000 | sed 's/^/line /'\n\
                  mkdir -p /target\necho art > /target/widget.tar.gz\n";
    let commit = h.commit(script);
    // The reference: the same build with nobody following, from the push
    // to the end, as the followed one below.
    let start = Instant::now();
    let ids = h.push(&commit).await;
    let alone = h.finished(&ids[0]).await;
    let alone_time = start.elapsed();
    assert_eq!(alone.status, BuildStatus::Success, "{alone:?}");

    let mut slow = connect_past_snapshot(&h).await;
    let again = h.commit(&format!("{script}# again\n"));
    let start = Instant::now();
    let followed_ids = h.push(&again).await;
    // The follower reads nothing for 10 s while the build floods.
    let followed = h.finished(&followed_ids[0]).await;
    let followed_time = start.elapsed();
    assert_eq!(followed.status, BuildStatus::Success, "{followed:?}");
    let idle = Duration::from_secs(10).saturating_sub(start.elapsed());
    tokio::time::sleep(idle).await;
    assert!(
        followed_time.as_secs_f64() <= alone_time.as_secs_f64() * 1.10,
        "the build took {followed_time:?} with a follower that did not read, {alone_time:?} alone"
    );
    // Then it reads, and gets every line of the build.
    let report = h.report(&followed_ids[0]).await;
    let expected = report.lines().count();
    let mut build = Reassembly::default();
    while build.lines.len() < expected {
        let Some(frame) = next_frame(&mut slow, Duration::from_secs(30)).await else {
            break;
        };
        if frame["event"] == "update" && frame["payload"]["id"] == followed_ids[0].as_str() {
            build.frame(&frame["payload"]);
        }
        assert_ne!(frame["event"], "lagged", "nothing is lost: {frame}");
    }
    assert!(
        build.appended == report,
        "the follower caught up with the whole log"
    );
    let mut all = ids.clone();
    all.extend(followed_ids);
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn a_followed_log_streams_live_and_resumes_at_an_offset() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let script = "#!/bin/sh\nfor i in 1 2 3 4 5; do echo \"tick $i\"; sleep 1; done\nmkdir -p /target\necho a > /target/widget.tar.gz\n";
    let commit = h.commit(script);
    let ids = h.push(&commit).await;
    let id = &ids[0];
    h.wait_for_line(id, "tick 1").await;
    // Still running: the follower gets the first ticks now, the rest live.
    let mut response = h
        .client
        .get(h.url(&format!("/api/builds/{id}/log?follow=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut followed = Vec::new();
    let mut saw_running = false;
    while let Some(chunk) = response.chunk().await.unwrap() {
        if !h.record(id).await.status.is_finished() {
            saw_running = true;
        }
        followed.extend_from_slice(&chunk);
    }
    assert!(saw_running, "the log was streamed while the build ran");
    let followed = String::from_utf8(followed).unwrap();
    let report = h.report(id).await;
    assert_eq!(followed, report, "the followed log is the whole log");
    assert!(report.contains("tick 5"));
    // Resuming from an offset gives exactly the rest.
    let offset = report.find("tick 3").unwrap();
    let rest = h
        .client
        .get(h.url(&format!("/api/builds/{id}/log?follow=1&offset={offset}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(rest, report[offset..]);
    let bad = h
        .client
        .get(h.url(&format!("/api/builds/{id}/log?offset=abc")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = h
        .client
        .get(h.url("/api/builds/..%2F..%2Fetc/log"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn the_api_triggers_lists_and_cancels_with_the_admin_token() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start(&format!("admin-token: {TOKEN}\n")).await;
    let commit = h.commit("#!/bin/sh\necho waiting\nsleep 60\n");
    let trigger = |token: Option<&str>, body: Value| {
        let mut request = h.client.post(h.url("/api/builds")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let body = json!({"repository": "acme/widget", "branch": "master"});
    assert_eq!(trigger(None, body.clone()).await.unwrap().status(), 401);
    assert_eq!(
        trigger(Some("wrong"), body.clone()).await.unwrap().status(),
        401
    );
    let untracked = trigger(
        Some(TOKEN),
        json!({"repository": "acme/widget", "branch": "nope"}),
    )
    .await
    .unwrap();
    assert_eq!(untracked.status(), 404);
    let answer = trigger(Some(TOKEN), body).await.unwrap();
    assert_eq!(answer.status(), 201);
    let answer: Value = answer.json().await.unwrap();
    // No commit given: the branch head was resolved.
    assert_eq!(answer["commit"], commit.as_str());
    let id = answer["builds"][0].as_str().unwrap().to_string();
    h.wait_for_line(&id, "waiting").await;

    let listed: Value = h
        .client
        .get(h.url("/api/builds?name=acme/widget/master&limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "building");
    let one: Value = h
        .client
        .get(h.url(&format!("/api/builds/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "acme/widget/master");

    let cancel_url = h.url(&format!("/api/builds/{id}/cancel"));
    let refused = h.client.post(&cancel_url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let cancelled = h
        .client
        .post(&cancel_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let record = h.finished(&id).await;
    assert_eq!(record.status, BuildStatus::Cancelled);
    assert_eq!(record.error.as_deref(), Some("cancelled through the API"));
    let again = h
        .client
        .post(&cancel_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    h.stop_and_check_clean(&[id]).await;
}

#[tokio::test]
async fn without_an_admin_token_the_write_api_is_off() {
    let h = Harness::start("").await;
    let response = h
        .client
        .post(h.url("/api/builds"))
        .bearer_auth("anything")
        .json(&json!({"repository": "acme/widget", "branch": "master"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("admin-token"));
    h.stop_and_check_clean(&[]).await;
}

#[tokio::test]
async fn artifacts_metrics_and_sync() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(&lines_script(10));
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    let name = record.artifact.clone().expect("published");
    let artifact = h
        .client
        .get(h.url(&format!("/artifacts/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(artifact.status(), 200);
    assert_eq!(artifact.text().await.unwrap(), "art\n");
    for bad in [
        "/artifacts/..%2Fhistory.sqlite3",
        "/artifacts/.hidden",
        "/artifacts/nope.tar.gz",
    ] {
        let response = h.client.get(h.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
    }

    // A refused webhook is counted too.
    let refused = h
        .client
        .post(h.url("/hook/monitor-watch"))
        .header("X-GitHub-Event", "push")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let metrics = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        // The build, and the start-up's configuration load.
        metrics.contains("zos_build_builds{status=\"success\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("zos_build_running 0\n"), "{metrics}");
    assert!(
        metrics
            .contains("zos_build_webhook_requests_total{outcome=\"accepted\",status=\"200\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "zos_build_webhook_requests_total{outcome=\"unauthorized\",status=\"401\"} 1\n"
        ),
        "{metrics}"
    );
    let lines: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zos_build_log_lines_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(lines >= 10, "{metrics}");

    let mut socket = connect_past_snapshot(&h).await;
    let sync = h.client.get(h.url("/build/sync")).send().await.unwrap();
    assert_eq!(sync.text().await.unwrap(), "OK");
    let mut events = Vec::new();
    while let Some(frame) = next_frame(&mut socket, Duration::from_secs(2)).await {
        events.push(frame["event"].as_str().unwrap().to_string());
    }
    assert!(events.contains(&"status".to_string()), "{events:?}");
    assert!(events.contains(&"history".to_string()), "{events:?}");
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn stopping_the_server_closes_websockets_and_ends_followers() {
    let mut h = Harness::start("max-concurrent-builds: 1\n").await;
    let mut socket = connect_past_snapshot(&h).await;
    h.restart(false).await;
    // The next message is the close (or the end of the stream), promptly.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the websocket stayed open after the server stopped"
    );

    // A follower of a build that stays queued (this server runs no builds).
    let commit = h.commit(&lines_script(1));
    let ids = h.push(&commit).await;
    let mut response = h
        .client
        .get(h.url(&format!("/api/builds/{}/log?follow=1", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = response.chunk().await {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "the follower waits while the build is queued"
    );
    h.restart(false).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), reader).await;
    assert!(
        ended.is_ok(),
        "the follower's stream did not end when the server stopped"
    );
    h.stop_and_check_clean(&ids).await;
}
