//! The client binary against the real server: `zos-build-server` started
//! in-process on a temporary data directory, with a configuration repository
//! and a source repository made by the test (a `file://` git base URL), real
//! builds in Docker with the busybox test image, and the client run as a
//! separate process, the way a person runs it (stdout a pipe, so plain text).

use zos_build_testkit::server as support;

use serde_json::Value;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{DOCKER, REPOSITORY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NAME: &str = "acme/widget/master";
const TOKEN: &str = "client-test-token";
const CLIENT: &str = env!("CARGO_BIN_EXE_zos-build-client");

/// The server's own test harness (a server tracking `acme/widget` `master`:
/// script `build.sh`, artifact `/target/widget.tar.gz`), with the write API
/// enabled by [`TOKEN`], and what the client's tests add to it.
struct Harness(support::Harness);

impl Harness {
    async fn start() -> Harness {
        Harness(support::Harness::start(&format!("admin-token: {TOKEN}\n")).await)
    }

    fn address(&self) -> SocketAddr {
        self.0.address.expect("the server runs")
    }

    fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// Commits `script` as `build.sh` on master.
    fn commit(&self, script: &str) -> String {
        self.0.commit(script)
    }

    /// Starts the branch's builds through the API; returns their ids.
    async fn trigger(&self) -> Vec<String> {
        let response = self
            .0
            .client
            .post(format!("{}/api/builds", self.url()))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"repository": REPOSITORY, "branch": "master"}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{answer}");
        answer["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect()
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, Vec<u8>) {
        let response = self
            .0
            .client
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// The build's whole log as the server has it.
    async fn log(&self, id: &str) -> Vec<u8> {
        let (status, bytes) = self.get(&format!("/report/{id}")).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        bytes
    }

    async fn build(&self, id: &str) -> Value {
        let (status, bytes) = self.get(&format!("/api/builds/{id}")).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Waits until the build's log holds `text`.
    async fn wait_for_log(&self, id: &str, text: &str) {
        let start = Instant::now();
        while !contains(&self.log(id).await, text) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{text:?} never appeared in the log of {id}: {}",
                self.build(id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the build has ended; returns its status.
    async fn finished(&self, id: &str) -> String {
        let start = Instant::now();
        loop {
            let build = self.build(id).await;
            let status = build["status"].as_str().unwrap().to_string();
            if matches!(status.as_str(), "success" | "error" | "cancelled") {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{build}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the client against this server.
    async fn client(&self, args: &[&str]) -> Output {
        run_client(&self.url(), args).await
    }

    async fn stop(mut self) {
        if let Some(server) = self.0.server.take() {
            server.stop().await;
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Runs the client binary with `--server server` and `args`, stdout and
/// stderr captured (pipes: no colours, no spinner), at most two minutes.
async fn run_client(server: &str, args: &[&str]) -> Output {
    let child = tokio::process::Command::new(CLIENT)
        .arg("--server")
        .arg(server)
        .args(args)
        .env_remove("ZOS_BUILD_SERVER")
        .env_remove("ZOS_BUILD_TOKEN")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("zos-build-client {args:?} did not end in 2 minutes"))
        .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A script printing `steps` numbered lines, `pause` seconds apart, then
/// publishing its artifact.
fn slow_script(steps: u32, pause: &str) -> String {
    format!(
        "#!/bin/sh\nset -e\ni=1\nwhile [ $i -le {steps} ]; do\n  printf 'step %02d of the slow build\\n' $i\n  i=$((i+1))\n  sleep {pause}\ndone\n\
         mkdir -p /target\nprintf 'widget\\n' > /target/widget.tar.gz\necho 'all steps done'\n"
    )
}

#[tokio::test]
async fn follow_of_a_running_build_prints_exactly_its_log_and_exits_0() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit(&slow_script(6, "0.3"));
    let ids = h.trigger().await;
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    // Running for real, and not near its end: follow joins a live build.
    h.wait_for_log(id, "step 01").await;
    assert!(
        !contains(&h.log(id).await, "step 06"),
        "the build is still running when follow starts"
    );
    let output = h.client(&["follow", id]).await;
    let log = h.log(id).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&log),
        "stdout is the build's log, byte for byte"
    );
    assert!(contains(&log, "step 06 of the slow build") && contains(&log, "all steps done"));
    assert!(
        !contains(&output.stdout, "\u{1b}["),
        "no colour into a pipe"
    );

    // The same build found by its branch and as the latest build: a build
    // that has ended prints its whole log at once.
    for reference in [NAME, "latest"] {
        let again = h.client(&["follow", reference]).await;
        assert_eq!(
            again.status.code(),
            Some(0),
            "{reference}: {}",
            describe(&again)
        );
        assert_eq!(again.stdout, log, "{reference}");
    }
    // A branch without builds and an unknown id: exit 2, with the reason.
    let none = h.client(&["follow", "acme/widget/never-built"]).await;
    assert_eq!(none.status.code(), Some(2), "{}", describe(&none));
    assert!(
        contains(&none.stderr, "no build of acme/widget/never-built"),
        "{}",
        describe(&none)
    );
    let unknown = h.client(&["follow", "0123abcd-0000"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
    assert!(contains(&unknown.stderr, "404"), "{}", describe(&unknown));
    h.stop().await;
}

#[tokio::test]
async fn trigger_follow_of_a_failing_script_exits_1() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit("#!/bin/sh\necho 'about to fail'\nsleep 0.5\necho 'failing now' >&2\nexit 3\n");
    let output = h
        .client(&[
            "trigger", REPOSITORY, "master", "--follow", "--token", TOKEN,
        ])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("zos-build-client: following build "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no build id on stderr: {}", describe(&output)))
        .to_string();
    assert_eq!(h.finished(&id).await, "error");
    let log = h.log(&id).await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&log),
        "stdout is the build's log"
    );
    assert!(contains(&log, "about to fail") && contains(&log, "failing now"));
    assert!(contains(
        &log,
        "build failed: build script exited with status 3"
    ));

    // Without --follow: the ids on stdout, exit 0 at once.
    let started = h
        .client(&["trigger", REPOSITORY, "master", "--token", TOKEN])
        .await;
    assert_eq!(started.status.code(), Some(0), "{}", describe(&started));
    let ids: Vec<String> = String::from_utf8_lossy(&started.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 1, "{}", describe(&started));
    assert_eq!(h.build(&ids[0]).await["name"], NAME);
    assert_eq!(h.finished(&ids[0]).await, "error");

    // A wrong token and an untracked branch: exit 2 with the server's word.
    let refused = h
        .client(&["trigger", REPOSITORY, "master", "--token", "wrong"])
        .await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(contains(&refused.stderr, "401"), "{}", describe(&refused));
    assert!(
        contains(&refused.stderr, &h.url()),
        "{}",
        describe(&refused)
    );
    let untracked = h
        .client(&["trigger", REPOSITORY, "no-such-branch", "--token", TOKEN])
        .await;
    assert_eq!(untracked.status.code(), Some(2), "{}", describe(&untracked));
    h.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_running_build_and_follow_then_exits_1() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit("#!/bin/sh\necho 'long: started'\nsleep 60\necho 'long: finished'\n");
    let ids = h.trigger().await;
    let id = &ids[0];
    h.wait_for_log(id, "long: started").await;
    let without_token = h.client(&["cancel", id]).await;
    assert_eq!(
        without_token.status.code(),
        Some(2),
        "{}",
        describe(&without_token)
    );
    assert!(contains(&without_token.stderr, "ZOS_BUILD_TOKEN"));
    let start = Instant::now();
    let follow_args = ["follow", id.as_str()];
    let (cancel, follow) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            h.client(&["cancel", id, "--token", TOKEN]).await
        },
        h.client(&follow_args),
    );
    assert_eq!(cancel.status.code(), Some(0), "{}", describe(&cancel));
    assert_eq!(follow.status.code(), Some(1), "{}", describe(&follow));
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "follow ended with the cancellation, not after the script's sleep"
    );
    assert_eq!(h.finished(id).await, "cancelled");
    assert_eq!(follow.stdout, h.log(id).await);
    assert!(!contains(&follow.stdout, "long: finished"));
    // Cancelling what has ended is a "no": exit 1.
    let again = h.client(&["cancel", id, "--token", TOKEN]).await;
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    h.stop().await;
}

#[tokio::test]
async fn status_and_history_show_tables_and_the_servers_json() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit(&slow_script(1, "0"));
    let ids = h.trigger().await;
    assert_eq!(h.finished(&ids[0]).await, "success");

    let (_, body) = h.get("/build/history").await;
    let json = h.client(&["history", "--json"]).await;
    assert_eq!(json.status.code(), Some(0), "{}", describe(&json));
    assert_eq!(
        String::from_utf8_lossy(&json.stdout),
        format!("{}\n", String::from_utf8_lossy(&body)),
        "the server's JSON as it is"
    );
    let table = run_client_with_width(&h.url(), &["history"], 100).await;
    assert_eq!(table.status.code(), Some(0), "{}", describe(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains(&ids[0]) && text.contains("success"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");

    let status = h.client(&["status"]).await;
    assert_eq!(status.status.code(), Some(0), "{}", describe(&status));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "no build is queued or running\n"
    );
    let status_json = h.client(&["status", "--json"]).await;
    assert_eq!(String::from_utf8_lossy(&status_json.stdout), "{}\n");
    h.stop().await;
}

async fn run_client_with_width(server: &str, args: &[&str], width: usize) -> Output {
    let child = tokio::process::Command::new(CLIENT)
        .arg("--server")
        .arg(server)
        .args(args)
        .env("COLUMNS", width.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client ends")
        .unwrap()
}

#[tokio::test]
async fn a_server_that_is_not_there_gives_2_and_a_message_naming_it() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for args in [
        &["follow", "latest"][..],
        &["follow", "0123abcd"],
        &["status"],
        &["history", "--full"],
        &["follow", "--all"],
        &["trigger", REPOSITORY, "master", "--token", TOKEN],
        &["cancel", "0123abcd", "--token", TOKEN],
    ] {
        let output = run_client(&url, args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&url),
            "{args:?}: the server is named: {stderr}"
        );
        assert!(
            stderr.contains("refused") || stderr.contains("cannot reach"),
            "{args:?}: what failed: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// A TCP proxy in front of the server that cuts the first connection whose
/// answer carries `marker`, in the middle of it (after its first
/// `cut_inside` bytes), and records the `offset=` of every log request.
struct CuttingProxy {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    offsets: Arc<Mutex<Vec<u64>>>,
    /// Bytes the server has sent through the proxy.
    answered: Arc<AtomicUsize>,
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr, marker: &'static str, cut_inside: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let offsets = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let proxy = CuttingProxy {
            address,
            cut: cut.clone(),
            offsets: offsets.clone(),
            answered: answered.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(
                    client,
                    server,
                    marker.as_bytes(),
                    cut_inside,
                    cut.clone(),
                    offsets.clone(),
                    answered.clone(),
                ));
            }
        });
        proxy
    }
}

/// The offsets asked for in `request` bytes (`...log?follow=1&offset=N`).
fn offsets_in(request: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(request);
    text.match_indices("/log?")
        .filter_map(|(at, _)| {
            let line = text[at..].lines().next()?;
            let value = line.split("offset=").nth(1)?;
            value
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    marker: &'static [u8],
    cut_inside: usize,
    cut: Arc<AtomicBool>,
    offsets: Arc<Mutex<Vec<u64>>>,
    answered: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            offsets.lock().unwrap().extend(offsets_in(&buffer[..n]));
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let mut buffer = vec![0u8; 16 * 1024];
        // The last bytes forwarded, so a marker split across two reads is
        // still found.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let data = &buffer[..n];
            answered.fetch_add(n, Ordering::SeqCst);
            if !cut.load(Ordering::SeqCst) {
                let mut seen = tail.clone();
                seen.extend_from_slice(data);
                if let Some(at) = seen.windows(marker.len()).position(|w| w == marker) {
                    cut.store(true, Ordering::SeqCst);
                    let keep = (at + cut_inside).saturating_sub(tail.len()).min(n);
                    let _ = client_write.write_all(&data[..keep]).await;
                    let _ = client_write.flush().await;
                    // Returning drops both connections: a cut mid-answer.
                    return;
                }
                let from = seen.len().saturating_sub(marker.len());
                tail = seen[from..].to_vec();
            }
            if client_write.write_all(data).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

#[tokio::test]
async fn follow_reconnects_across_a_dropped_connection_without_duplicates() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit(&slow_script(30, "0.1"));
    let ids = h.trigger().await;
    let id = &ids[0];
    h.wait_for_log(id, "step 01").await;
    // Cut in the middle of the line "step 12 ...": after "step 1".
    let proxy = CuttingProxy::start(h.address(), "step 12 of", 6).await;
    let output = run_client(&format!("http://{}", proxy.address), &["follow", id]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(proxy.cut.load(Ordering::SeqCst), "the connection was cut");
    let log = h.log(id).await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&log),
        "every line once, in order, nothing skipped"
    );
    for step in 1..=30 {
        let line = format!("step {step:02} of the slow build\n");
        let count = output
            .stdout
            .windows(line.len())
            .filter(|w| *w == line.as_bytes())
            .count();
        assert_eq!(count, 1, "{line:?} printed {count} times");
    }
    let offsets = proxy.offsets.lock().unwrap().clone();
    assert!(
        offsets.len() >= 2,
        "the log was asked for again: {offsets:?}"
    );
    assert_eq!(offsets[0], 0, "from the first byte: {offsets:?}");
    let resumed = offsets[1];
    let cut_at = log
        .windows(b"step 12 of".len())
        .position(|w| w == b"step 12 of")
        .unwrap() as u64
        + 6;
    assert_eq!(
        resumed, cut_at,
        "resumed at the byte after the last one received, mid-line: {offsets:?}"
    );
    assert!(
        contains(&output.stderr, "reconnecting from byte"),
        "{}",
        describe(&output)
    );
    h.stop().await;
}

#[tokio::test]
async fn follow_all_prefixes_every_line_with_the_build_name_until_ctrl_c() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start().await;
    h.commit(&slow_script(5, "0.1"));
    // Through a proxy that cuts nothing, to know when the feed is open.
    let proxy = CuttingProxy::start(h.address(), "\u{0}never sent", 0).await;
    let child = tokio::process::Command::new(CLIENT)
        .args([
            "--server",
            &format!("http://{}", proxy.address),
            "follow",
            "--all",
        ])
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while proxy.answered.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the feed never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = h.trigger().await;
    assert_eq!(h.finished(&ids[0]).await, "success");
    // The feed is live: give the last frames a moment, then Ctrl-C.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("Ctrl-C ends follow --all")
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected: Vec<String> = (1..=5)
        .map(|n| format!("{NAME} | step {n:02} of the slow build"))
        .chain([format!("{NAME} | all steps done")])
        .collect();
    let shown: Vec<&str> = stdout
        .lines()
        .filter(|l| expected.iter().any(|e| e == l))
        .collect();
    assert_eq!(
        shown, expected,
        "every line once, in order, named:\n{stdout}"
    );
    assert!(
        stdout.lines().all(|l| l.starts_with(&format!("{NAME} | "))),
        "every line is prefixed with the build's name:\n{stdout}"
    );
    h.stop().await;
}

#[tokio::test]
async fn cache_clear_empties_a_kernel_targets_build_cache_with_the_admin_token() {
    let _docker = DOCKER.lock().await;
    // A kernel target of a name no other run uses; its cache volume made by
    // a build of the server's own instance (as a kernel build makes it).
    let target = format!("k-client-{}", std::process::id());
    let h = Harness(
        support::Harness::start(&format!(
            "admin-token: {TOKEN}\nkernel-targets:\n  - {{repository: acme/{target}, script: b.sh}}\n"
        ))
        .await,
    );
    let instance = zos_build_server::server::instance_name(&h.0.config.data_directory);
    let executor = support::common::executor().await.with_instance(instance);
    let volume = format!("zos-build-cache-{target}");
    let spec = zos_build_core::BuildSpec::new(
        format!("cache-{target}"),
        support::common::IMAGE,
        zos_build_core::Command::Exec(vec!["sh".into(), "-c".into(), "echo x > /cache/x".into()]),
    )
    .cache_volume(volume.as_str(), "/cache");
    let mut sink = zos_build_core::sink::VecSink::default();
    use zos_build_core::Executor;
    let outcome = executor
        .run(&spec, &mut sink, &zos_build_core::CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.succeeded(), "{outcome:?}");

    let refused = h.client(&["cache", "clear", &target]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        contains(&refused.stderr, "admin token"),
        "{}",
        describe(&refused)
    );
    let cleared = h
        .client(&["--token", TOKEN, "cache", "clear", &target])
        .await;
    assert_eq!(cleared.status.code(), Some(0), "{}", describe(&cleared));
    assert!(
        contains(&cleared.stdout, &format!("build cache of {target} cleared")),
        "{}",
        describe(&cleared)
    );
    assert!(
        executor.docker().inspect_volume(&volume).await.is_err(),
        "the volume is gone"
    );
    let again = h
        .client(&["--token", TOKEN, "cache", "clear", &target])
        .await;
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(contains(&again.stdout, "was empty"), "{}", describe(&again));
    let unknown = h
        .client(&["--token", TOKEN, "cache", "clear", "nope"])
        .await;
    assert_ne!(unknown.status.code(), Some(0), "{}", describe(&unknown));
    h.stop().await;
}
