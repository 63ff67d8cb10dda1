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
    let url = h.url("/buildio").replace("http://", "ws://");
    let (socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// A client that has read the `history` and `status` frames sent on connect.
async fn connect_past_snapshot(h: &Harness) -> Socket {
    let mut socket = connect(h).await;
    for event in ["history", "status"] {
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

#[tokio::test]
async fn a_websocket_client_gets_history_status_and_every_line() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let mut socket = connect(&h).await;
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

    let commit = h.commit(&lines_script(2000));
    let ids = h.push(&commit).await;
    let id = ids[0].clone();
    let mut lines = Vec::new();
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
                lines.push(frame["payload"]["line"].as_str().unwrap().to_string());
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
    let numbered: Vec<&String> = lines.iter().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(numbered.len(), 2000, "every line arrives once");
    for (i, line) in numbered.iter().enumerate() {
        assert_eq!(**line, format!("line {}", i + 1));
    }
    // Every line went to the file too, in the same order.
    let report = h.report(&id).await;
    let from_file: Vec<&str> = report.lines().collect();
    assert_eq!(
        from_file,
        lines.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(statuses.contains(&"queued".to_string()), "{statuses:?}");
    assert!(statuses.contains(&"building".to_string()), "{statuses:?}");
    socket.close(None).await.ok();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_stalled_websocket_client_catches_up_with_every_line_from_the_log() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    // Read the snapshot, then nothing while a large build runs: far more
    // than the feed keeps for a subscriber and the socket buffers hold.
    let mut stalled = connect_past_snapshot(&h).await;
    let commit = h.commit(&lines_script(400_000));
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let report = h.report(&ids[0]).await;
    let expected: Vec<&str> = report.lines().collect();
    let mut received: Vec<String> = Vec::with_capacity(expected.len());
    while received.len() < expected.len() {
        let Some(frame) = next_frame(&mut stalled, Duration::from_secs(30)).await else {
            break;
        };
        match frame["event"].as_str().unwrap() {
            "update" => {
                assert_eq!(frame["payload"]["id"], ids[0].as_str());
                received.push(frame["payload"]["line"].as_str().unwrap().to_string());
            }
            "lagged" => panic!("every line can be read back, none is lost: {frame}"),
            _ => {}
        }
    }
    assert_eq!(received.len(), expected.len(), "every line, once");
    assert!(
        received.iter().zip(&expected).all(|(a, b)| a == b),
        "in the order of the log"
    );
    h.stop_and_check_clean(&ids).await;
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
