//! The old service's JSON shapes and routes where `docs/api.md` promises
//! them, over HTTP and the websocket, against real builds (see `support`):
//! `monitor` of finished builds, `artifact` with the old prefixes beside its
//! own fields, and the old `/logs/<owner>/<repo>/<branch>` route.

use zos_build_testkit::server as support;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{Harness, DOCKER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use zos_build_core::history::ImportedBuild;
use zos_build_core::{ArtifactKind, BuildStatus, BuildUpdate};

/// Forty numbered lines, then the artifact.
const SCRIPT: &str = "#!/bin/sh\nset -e\nseq 1 40 | sed 's/^/widget line /'\n\
mkdir -p /target\nprintf 'widget artifact\\n' > /target/widget.tar.gz\n";

/// `GET path`: the status, the `Content-Type` and the body.
async fn get(h: &Harness, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = h.client.get(h.url(path)).send().await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.bytes().await.unwrap().to_vec())
}

async fn get_json(h: &Harness, path: &str) -> Value {
    let (status, _, body) = get(h, path).await;
    assert_eq!(status, StatusCode::OK, "{path}");
    serde_json::from_slice(&body).unwrap()
}

/// The entry of build `id` in a JSON array of builds.
fn entry<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in {list}"))
}

fn artifact_fields(entry: &Value) -> Value {
    json!([
        entry["artifact"],
        entry["artifact_name"],
        entry["artifact_kind"],
        entry["artifact_url"],
        entry["link"],
    ])
}

/// The `history` frame a websocket client gets on connect.
async fn history_frame(h: &Harness) -> Value {
    let url = h.url("/buildio").replace("http://", "ws://");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame on connect")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(frame["event"], "history", "history comes first: {frame}");
            return frame["payload"].clone();
        }
    }
}

/// A request written by hand (no client normalises its path); the answer's
/// status line and body.
async fn raw_get(h: &Harness, path: &str) -> String {
    let address = h.address.unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_finished_build_shows_its_last_lines_and_its_artifact_in_the_old_shapes() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(SCRIPT);
    let ids = h.push(&commit).await;
    let id = ids[0].as_str();
    let record = h.finished(id).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let log = h.report(id).await;
    let lines: Vec<&str> = log.lines().collect();
    let last = lines[lines.len() - 10..].join("\n");
    assert!(log.contains("widget line 1\n"), "{log}");

    // `monitor`: the last lines of the log, in every list of the history.
    let history = get_json(&h, "/build/history").await;
    let shown = entry(&history, id);
    assert_eq!(shown["monitor"], last.as_str(), "{shown}");
    assert!(
        !shown["monitor"]
            .as_str()
            .unwrap()
            .contains("widget line 1\n"),
        "only the last lines: {shown}"
    );
    let full = get_json(&h, "/build/history/full").await;
    assert_eq!(entry(&full, id)["monitor"], last.as_str());
    assert_eq!(
        entry(&history_frame(&h).await, id)["monitor"],
        last.as_str()
    );

    // A local artifact: bare, fetched where `artifact_url` says.
    let name = format!("acme-widget-master-{}.tar.gz", &commit[..10]);
    let url = format!("/artifacts/{name}");
    assert_eq!(
        artifact_fields(shown),
        json!([name, name, "local", url, null])
    );
    let (status, _, body) = get(&h, &url).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"widget artifact\n"[..])
    );
    let api = get_json(&h, &format!("/api/builds/{id}")).await;
    assert_eq!(artifact_fields(&api), artifact_fields(shown));

    // The same build, as the hub publisher will record it: the old page's
    // `flist/<flist>.md`, with the hub's URL and the link beside it.
    let flist = format!("acme-widget-master-{}.flist", &commit[..10]);
    let hub = format!("http://127.0.0.1:9/acme/{flist}");
    let state = &h.server().state;
    let update = BuildUpdate::finished(BuildStatus::Success, None, Some(flist.clone())).published(
        ArtifactKind::Flist,
        hub.as_str(),
        Some("acme-widget-master.flist".into()),
    );
    assert!(state.history.update(id, update).await.unwrap());
    // An imported build of the old service, whose `artifact` has its prefix.
    let old = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let mut imported = ImportedBuild::new(
        old,
        "acme/widget/master",
        BuildStatus::Success,
        1_500_000_000,
    );
    imported.artifact = Some("binary/acme-widget-master-0123456789.tar.gz".into());
    assert!(state.history.import(imported).await.unwrap());

    let history = get_json(&h, "/build/history").await;
    let expected = json!([
        format!("flist/{flist}.md"),
        flist,
        "flist",
        hub,
        "acme-widget-master.flist"
    ]);
    assert_eq!(artifact_fields(entry(&history, id)), expected);
    assert_eq!(entry(&history, id)["monitor"], last.as_str());
    let imported_fields = json!([
        "binary/acme-widget-master-0123456789.tar.gz",
        "acme-widget-master-0123456789.tar.gz",
        "binary",
        null,
        null
    ]);
    assert_eq!(artifact_fields(entry(&history, old)), imported_fields);
    let full = get_json(&h, "/build/history/full").await;
    assert_eq!(artifact_fields(entry(&full, id)), expected);
    // The websocket shows the same once the views are published again.
    let (status, _, body) = get(&h, "/build/sync").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"OK"[..]));
    let frame = history_frame(&h).await;
    assert_eq!(artifact_fields(entry(&frame, id)), expected);
    assert_eq!(artifact_fields(entry(&frame, old)), imported_fields);
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn the_old_logs_route_serves_what_build_logs_serves() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(SCRIPT);
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let report = h.report(&ids[0]).await;

    let new = get(&h, "/build/logs/acme/widget/master").await;
    let old = get(&h, "/logs/acme/widget/master").await;
    assert_eq!(new.0, StatusCode::OK);
    assert_eq!(old, new, "the same status, type and bytes");
    assert_eq!(String::from_utf8(old.2).unwrap(), report);
    assert!(report.contains("widget line 40"), "{report}");

    // A tracked branch without a build, an unknown one, a short path.
    for path in [
        "/logs/acme/widget/dev",
        "/logs/acme/widget/nope",
        "/logs/acme/widget",
        "/logs/",
    ] {
        let (status, _, _) = get(&h, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Never a file outside the logs: a path that would leave them is a 404.
    for path in [
        "/logs/acme/widget/..",
        "/logs/../../../etc/passwd",
        "/logs/acme/../../secret",
        "/logs/acme/widget/%2e%2e",
    ] {
        let answer = raw_get(&h, path).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(!answer.contains("root:"), "{path}: {answer}");
    }
    h.stop_and_check_clean(&ids).await;
}
