//! The HTTP limits, each a reproduction of a way a client could hold on to
//! the server's resources (security issue 9, item 5): a request head that
//! never ends, a connection kept idle, more connections than
//! `max-connections`, a huge websocket message, a huge log read whole, and
//! a history answered in one piece. The real server runs in-process (see
//! `support`), reached over real TCP.

use zos_build_testkit::server as support;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use zos_build_core::{BuildStatus, BuildUpdate, Enqueued, NewBuild};
use zos_build_server::http::{MAX_PAGE, MAX_WEBSOCKET_MESSAGE};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A server on a fresh data directory that runs no build: these tests need
/// HTTP only.
async fn server(extra_config: &str) -> Harness {
    let mut h = Harness::prepare(extra_config).await;
    h.restart(false).await;
    h
}

fn address(h: &Harness) -> SocketAddr {
    h.server().address
}

/// Everything the server sends on `stream` until it closes it; Err when it
/// is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let mut received = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut received)).await {
        Ok(Ok(_)) => Ok(received),
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(received),
        Ok(Err(e)) => Err(format!("read failed: {e}")),
        Err(_) => Err(format!(
            "still open after {limit:?}, having received {:?}",
            String::from_utf8_lossy(&received)
        )),
    }
}

/// A websocket to `/buildio` that has read the `history` and `status`
/// frames sent on connect.
async fn websocket(h: &Harness) -> Socket {
    let url = h.url("/buildio").replace("http://", "ws://");
    let (mut socket, response) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the websocket handshake is answered")
    .unwrap();
    assert_eq!(response.status(), 101);
    for event in ["history", "status"] {
        let frame = next_text(&mut socket).await;
        assert_eq!(frame["event"], event, "{frame}");
    }
    socket
}

/// The next text frame, as JSON.
async fn next_text(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Sends a ping and waits for its pong: the server still serves `socket`.
async fn assert_served(socket: &mut Socket, what: &str) {
    socket
        .send(Message::Ping(what.as_bytes().to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot send a ping: {e}"));
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: no pong within 30 s"))
            .unwrap_or_else(|| panic!("{what}: the socket was closed"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Message::Pong(payload) = message {
            assert_eq!(&payload[..], what.as_bytes());
            return;
        }
    }
}

#[tokio::test]
async fn an_unfinished_request_head_is_cut() {
    let h = server("").await;
    let mut slow = TcpStream::connect(address(&h)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut slow, Duration::from_secs(60))
        .await
        .expect("the server closes a connection whose head never ends");
    assert!(
        received.is_empty(),
        "nothing is answered to half a head: {:?}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn a_webhook_body_that_never_ends_is_cut() {
    let h = server("").await;
    let mut slow = TcpStream::connect(address(&h)).await.unwrap();
    // The head is whole; the body promises 1000 bytes and sends one.
    slow.write_all(
        b"POST /hook/monitor-watch HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let received = read_until_closed(&mut slow, Duration::from_secs(60))
        .await
        .expect("the server gives up on a body that never arrives");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let h = server("").await;
    let mut idle = TcpStream::connect(address(&h)).await.unwrap();
    idle.write_all(b"GET /build/history HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // One whole answer, then silence from the client.
    let received = read_until_closed(&mut idle, Duration::from_secs(60))
        .await
        .expect("the server closes a kept-alive connection left idle");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with(']'), "the whole answer came first: {text}");
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_for_a_free_slot() {
    let h = server("max-connections: 2\n").await;
    let mut first = websocket(&h).await;
    let mut second = websocket(&h).await;

    // A third connection: the kernel takes it, the server does not.
    let mut third = TcpStream::connect(address(&h)).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(2), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open: {early:?}"
    );
    assert_served(&mut first, "first").await;
    assert_served(&mut second, "second").await;

    // The first websocket closes: its slot goes to the waiting connection.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = first.next().await {}
    let received = read_until_closed(&mut third, Duration::from_secs(30))
        .await
        .expect("the waiting connection is answered once a slot is free");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // The one left open was never dropped, and the freed slots serve again.
    assert_served(&mut second, "second, later").await;
    let mut fourth = websocket(&h).await;
    assert_served(&mut fourth, "fourth").await;
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_closes_only_its_socket() {
    let h = server("").await;
    let mut bystander = websocket(&h).await;
    let mut sender = websocket(&h).await;

    let huge = "a".repeat(1024 * 1024);
    assert!(huge.len() > MAX_WEBSOCKET_MESSAGE);
    // The server may close before the whole message is written.
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        sender.send(Message::Text(huge.into())),
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match sender.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                // Closed without (or before reading) a close frame.
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the socket of a 1 MiB message is closed");
    if let Some(code) = closed {
        assert_eq!(code, CloseCode::Size, "closed as 'message too big'");
    }

    assert_served(&mut bystander, "bystander").await;
    let mut fresh = websocket(&h).await;
    assert_served(&mut fresh, "fresh").await;
    // A message within the limit is fine.
    fresh
        .send(Message::Text("a".repeat(1000).into()))
        .await
        .unwrap();
    assert_served(&mut fresh, "fresh, after a small message").await;
}

/// This process's resident memory, in bytes (the server runs in it).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Line `i` of the big log: fixed width, so any byte's place is known.
fn log_line(i: u64) -> String {
    format!("log line {i:012} of a large build log, padded to a fixed width..\n")
}

/// Reads `path` of the server, checking it against the big log from
/// `offset`; returns the bytes received and the most resident memory seen
/// while they came.
async fn read_big_log(h: &Harness, path: &str, offset: u64, line_length: u64) -> (u64, u64) {
    let mut response = h.client.get(h.url(path)).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
    let mut received = offset;
    let mut peak = resident_bytes();
    let mut next_sample = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        // Spot checks: the first byte of every chunk is where it should be.
        let line = log_line(received / line_length);
        assert_eq!(
            chunk[0],
            line.as_bytes()[(received % line_length) as usize],
            "{path}: byte {received}"
        );
        received += chunk.len() as u64;
        if received >= next_sample {
            peak = peak.max(resident_bytes());
            next_sample = received + 1024 * 1024;
        }
    }
    (received - offset, peak)
}

#[tokio::test]
async fn a_large_log_is_streamed_with_bounded_memory() {
    let h = server("").await;
    let history = &h.server().state.history;
    let Enqueued::Queued(records) = history
        .enqueue(
            None,
            vec![NewBuild::new(
                "acme/widget",
                "big",
                "0123456789012345678901234567890123456789",
                "build.sh",
                "busybox",
            )],
        )
        .await
        .unwrap()
    else {
        panic!("recorded")
    };
    let id = records[0].id.clone();

    // 64 MiB of log, written a line at a time (never held whole here).
    let line_length = log_line(0).len() as u64;
    let lines = 64 * 1024 * 1024 / line_length;
    let size = lines * line_length;
    let path = h.config.build_log_path(&id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..lines {
        file.write_all(log_line(i).as_bytes()).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    history
        .update(&id, BuildUpdate::finished(BuildStatus::Success, None, None))
        .await
        .unwrap();

    let before = resident_bytes();
    let (received, peak) = read_big_log(&h, &format!("/api/builds/{id}/log"), 0, line_length).await;
    assert_eq!(received, size, "the whole log, exactly");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < size / 4,
        "serving a {size}-byte log took {growth} more bytes of memory"
    );

    // From an offset, and through the other log routes.
    let offset = 1000 * line_length + 7;
    let (received, _) = read_big_log(
        &h,
        &format!("/api/builds/{id}/log?offset={offset}"),
        offset,
        line_length,
    )
    .await;
    assert_eq!(received, size - offset);
    let (received, _) = read_big_log(&h, &format!("/report/{id}"), 0, line_length).await;
    assert_eq!(received, size);
    let (received, _) = read_big_log(&h, "/build/logs/acme/widget/big", 0, line_length).await;
    assert_eq!(received, size);
}

/// Follows `first` and the `Link: <...>; rel="next"` headers to the end;
/// returns every page's ids, checking that none is larger than `max`.
async fn all_pages(h: &Harness, first: &str, max: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next.take() {
        let response = h.client.get(h.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        next = response
            .headers()
            .get("link")
            .map(|link| link.to_str().unwrap().to_string())
            .map(|link| {
                let (target, rel) = link.split_once("; ").unwrap();
                assert_eq!(rel, r#"rel="next""#);
                target
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            });
        let list: Value = response.json().await.unwrap();
        let ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= max, "{path}: {} entries", ids.len());
        assert!(
            next.is_none() || !ids.is_empty(),
            "{path}: an empty page links to another"
        );
        pages.push(ids);
        assert!(pages.len() < 100, "the pages never end");
    }
    pages
}

/// Checks that `pages` hold exactly `expected` (newest first) once each.
fn assert_cover(pages: &[Vec<String>], expected: &[String], what: &str) {
    let seen: Vec<&String> = pages.iter().flatten().collect();
    let unique: HashSet<&String> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "{what}: a build was listed twice");
    let expected: Vec<&String> = expected.iter().collect();
    assert_eq!(seen, expected, "{what}: every build once, newest first");
}

#[tokio::test]
async fn history_and_build_lists_are_paged() {
    let h = server("").await;
    let history = &h.server().state.history;
    let max = MAX_PAGE as usize;
    // Builds on two branches, all finished but the last few.
    let builds: Vec<NewBuild> = (0..2 * max + 50)
        .map(|i| {
            let branch = if i % 3 == 0 { "dev" } else { "master" };
            NewBuild::new(
                "acme/widget",
                branch,
                format!("{i:040x}"),
                "build.sh",
                "busybox",
            )
        })
        .collect();
    let Enqueued::Queued(records) = history.enqueue(None, builds).await.unwrap() else {
        panic!("recorded")
    };
    for record in &records[..records.len() - 5] {
        history
            .update(
                &record.id,
                BuildUpdate::finished(BuildStatus::Success, None, None),
            )
            .await
            .unwrap();
    }
    // What the history holds, newest first (with the configuration reloads).
    let finished: Vec<String> = history
        .finished(0, u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let all: Vec<String> = history
        .recent(None, u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let dev: Vec<String> = history
        .recent(Some("acme/widget/dev"), u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(finished.len() > 2 * max);

    // The old route's default answer: its first page, at most MAX_PAGE.
    let pages = all_pages(&h, "/build/history/full", max).await;
    assert_eq!(pages[0].len(), max);
    assert_cover(&pages, &finished, "/build/history/full");
    let pages = all_pages(&h, "/build/history/full?per_page=200", 200).await;
    assert_cover(&pages, &finished, "/build/history/full?per_page=200");
    // Numbered pages still work.
    let pages = all_pages(&h, "/build/history/full?page=2&per_page=200", 200).await;
    assert_eq!(pages[0][..], finished[200..400]);
    assert_cover(&pages, &finished[200..], "/build/history/full?page=2");

    let pages = all_pages(&h, &format!("/api/builds?limit={max}"), max).await;
    assert_eq!(pages[0].len(), max);
    assert_cover(&pages, &all, "/api/builds");
    let pages = all_pages(&h, "/api/builds?name=acme%2Fwidget%2Fdev&limit=100", 100).await;
    assert_cover(&pages, &dev, "/api/builds?name=acme/widget/dev");

    // A cursor is stable: builds recorded meanwhile do not shift the pages.
    let response = h
        .client
        .get(h.url("/api/builds?limit=100"))
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_string();
    let first: Value = response.json().await.unwrap();
    let first: Vec<String> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect();
    history
        .enqueue(
            None,
            vec![NewBuild::new(
                "acme/widget",
                "master",
                "f".repeat(40),
                "build.sh",
                "busybox",
            )],
        )
        .await
        .unwrap();
    let (target, _) = link.trim_start_matches('<').split_once('>').unwrap();
    let mut pages = vec![first];
    pages.extend(all_pages(&h, target, 100).await);
    assert_cover(&pages, &all, "pages around a new build");

    // Too large a page is refused, naming the parameter.
    for (path, parameter) in [
        (format!("/api/builds?limit={}", max + 1), "limit"),
        (
            format!("/build/history/full?per_page={}", max + 1),
            "per_page",
        ),
        ("/api/builds?before=ffff-0000".to_string(), "before"),
        ("/build/history/full?before=..%2Fx".to_string(), "before"),
    ] {
        let response = h.client.get(h.url(&path)).send().await.unwrap();
        assert_eq!(
            response.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{path}"
        );
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["message"].as_str().unwrap().starts_with(parameter),
            "{path}: {answer}"
        );
    }
}
