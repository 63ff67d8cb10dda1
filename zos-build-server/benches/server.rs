//! Server benchmarks, each against a reference measured in the same run on
//! the same machine (see docs/benchmarks.md, "Server").
//!
//! cargo bench -p zos-build-server --bench server
//! ZOS_BENCH=trivial cargo bench -p zos-build-server --bench server (only that part;
//! also `intake`, comma-separated; unset: both)
//!
//! The real `zos-build-server` binary (bench profile) is started with a
//! configuration file, as in the end-to-end tests (`zos_build_testkit::server`): a
//! temporary data directory, a local configuration repository tracking
//! `acme/widget`, a `file://` git base URL, a webhook secret and the busybox
//! test image. Then, on loopback only:
//!
//! 1. webhook intake with `wrk` and `benches/webhook.lua`: ignored events
//!    (202) and duplicate deliveries (200 `duplicate`), every request signed,
//!    against `GET /healthz` on the same server;
//! 2. push-to-success of a trivial build against `docker run` of the same
//!    script, alternating rounds;
//! 3. the server's resident memory, after start-up and after each part.
//!
//! Websocket followers have a benchmark of their own (`benches/followers.rs`).
//!
//! Everything is bounded: wrk runs for a fixed time, every wait has a
//! deadline, and the server is stopped with SIGTERM on every way out.

use zos_build_testkit::server as support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{common, Harness, REPOSITORY, SECRET};
use zos_build_server::http::signature;
use zos_build_testkit::measure::{self, load_average, median, mib, secs, status_field, StopOnDrop};

/// The trivial build: its script, and the same work for `docker run`.
const TRIVIAL_SCRIPT: &str = "#!/bin/sh\nmkdir -p /target; echo x > /target/widget.tar.gz\n";
const TRIVIAL_SHELL: &str = "mkdir -p /target; echo x > /target/widget.tar.gz";
/// Rounds of each side of the push-to-success comparison.
const TRIVIAL_ROUNDS: usize = 9;
/// wrk: duration, connections, threads.
const WRK_SECONDS: u64 = 10;
const WRK_CONNECTIONS: u32 = 32;
const WRK_THREADS: u32 = 2;
/// Webhook bodies are padded to about the size of a real GitHub push
/// payload, so that the signature check hashes a realistic amount.
const BODY_SIZE: usize = 6 * 1024;
/// Delivery ids of the intake benchmark.
const DUPLICATE_DELIVERY: &str = "bench-duplicate-delivery";
const IGNORED_DELIVERY: &str = "bench-ignored-delivery";

// ---------------------------------------------------------------- the server

fn print_memory(pid: u32, when: &str) {
    println!(
        "memory {when}: VmRSS {} (peak so far VmHWM {}), {} threads",
        mib(status_field(pid, "VmRSS:")),
        mib(status_field(pid, "VmHWM:")),
        status_field(pid, "Threads:")
    );
}

// ------------------------------------------------------------------ helpers

/// The status of a build, from `GET /api/builds/<id>`.
async fn status_of(h: &Harness, id: &str) -> Option<String> {
    let response = h
        .client
        .get(h.url(&format!("/api/builds/{id}")))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let value: Value = response.json().await.ok()?;
    value["status"].as_str().map(str::to_string)
}

/// Polls (every 5 ms, at most `limit`) until the build has finished; fails
/// unless it succeeded.
async fn wait_success(h: &Harness, id: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        match status_of(h, id).await.as_deref() {
            Some("success") => return,
            Some(status @ ("error" | "cancelled")) => panic!(
                "build {id} ended {status}:\n{}",
                tail(&h.report(id).await, 20)
            ),
            _ => {}
        }
        assert!(
            start.elapsed() < limit,
            "build {id} not finished after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A new commit of `script` (with a comment making it unique), so that
/// every push is a push of a commit never built: the server refuses a
/// replayed push of a commit it built within `replay-window`.
fn fresh_commit(h: &Harness, script: &str) -> String {
    static PUSHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    h.commit(&format!("{script}# push {n}\n"))
}

/// From the signed push request to the history saying `success`, for a
/// fresh commit of `script` (made before the clock starts).
async fn push_to_success(h: &mut Harness, script: &str, limit: Duration) -> Duration {
    push_and_wait(h, script, limit).await.0
}

/// [`push_to_success`], also returning the build's id.
async fn push_and_wait(h: &mut Harness, script: &str, limit: Duration) -> (Duration, String) {
    let commit = fresh_commit(h, script);
    let start = Instant::now();
    let ids = h.push(&commit).await;
    assert_eq!(ids.len(), 1, "one build script, one build: {ids:?}");
    wait_success(h, &ids[0], limit).await;
    (start.elapsed(), ids[0].clone())
}

async fn docker_run(script: &str) -> Duration {
    measure::docker_run(
        &[common::IMAGE, "sh", "-c", script],
        Duration::from_secs(120),
    )
    .await
}

// ------------------------------------------------------------ 1. intake (wrk)

/// What wrk measured.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// "Non-2xx or 3xx responses" and "Socket errors" lines, if any.
    problems: Vec<String>,
}

fn parse_latency(text: &str) -> Option<Duration> {
    let (number, unit) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return None;
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| Duration::from_secs_f64(n * unit))
}

fn parse_wrk(output: &str) -> Wrk {
    let mut wrk = Wrk::default();
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => wrk.p50 = parse_latency(value).unwrap_or_default(),
            ["99%", value] => wrk.p99 = parse_latency(value).unwrap_or_default(),
            ["Requests/sec:", value] => wrk.per_second = value.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => wrk.requests = n.parse().unwrap_or(0),
            _ if line.starts_with("Non-2xx") || line.starts_with("Socket errors") => {
                wrk.problems.push(line.to_string())
            }
            _ => {}
        }
    }
    wrk
}

/// Runs wrk against `url` for [`WRK_SECONDS`]; `script` is the Lua script's
/// arguments (event, delivery, signature, body file), if any.
async fn wrk(url: &str, script: Option<[&str; 4]>) -> Wrk {
    let mut command = tokio::process::Command::new("wrk");
    command.args([
        "-t",
        &WRK_THREADS.to_string(),
        "-c",
        &WRK_CONNECTIONS.to_string(),
        "-d",
        &format!("{WRK_SECONDS}s"),
        "--timeout",
        "5s",
        "--latency",
    ]);
    if script.is_some() {
        command
            .arg("-s")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/webhook.lua"));
    }
    command.arg(url);
    if let Some(args) = script {
        command.arg("--").args(args);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wrk runs (apt-get install -y wrk)");
    let output = tokio::time::timeout(
        Duration::from_secs(WRK_SECONDS + 30),
        child.wait_with_output(),
    )
    .await
    .expect("wrk finished in time")
    .expect("wrk output");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed = parse_wrk(&text);
    assert!(parsed.requests > 0, "wrk sent nothing: {text}");
    parsed
}

/// `zos_build_webhook_requests_total` for one HTTP status, from `/metrics`.
async fn webhook_count(h: &Harness, status: u16) -> u64 {
    let text = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics text");
    let label = format!("status=\"{status}\"}}");
    text.lines()
        .filter(|line| {
            line.starts_with("zos_build_webhook_requests_total{") && line.contains(&label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `value` with a padding field that brings its JSON to about [`BODY_SIZE`].
fn padded(mut value: Value) -> Vec<u8> {
    let size = value.to_string().len();
    value["zos_build_bench_padding"] = json!("x".repeat(BODY_SIZE.saturating_sub(size + 30)));
    value.to_string().into_bytes()
}

fn print_wrk(label: &str, w: &Wrk, reference: &Wrk) {
    println!(
        "intake {label}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms ({} requests); \
         /healthz {:.0} req/s, p99 {:.3} ms; ratio req/s {:.2}, p99 {:.2}{}",
        w.per_second,
        w.p50.as_secs_f64() * 1e3,
        w.p99.as_secs_f64() * 1e3,
        w.requests,
        reference.per_second,
        reference.p99.as_secs_f64() * 1e3,
        w.per_second / reference.per_second,
        w.p99.as_secs_f64() / reference.p99.as_secs_f64(),
        if w.problems.is_empty() {
            String::new()
        } else {
            format!(" [{}]", w.problems.join("; "))
        }
    );
}

async fn intake(h: &mut Harness, commit: &str) {
    let dir = h.dir.path().to_path_buf();
    // An event we do not handle, as GitHub sends when issues are enabled.
    let ignored = padded(json!({
        "action": "opened",
        "issue": {"number": 1, "title": "bench", "body": "an issue"},
        "repository": {"full_name": REPOSITORY, "name": "widget"},
    }));
    // A push on the tracked branch; the harness delivers it once (a real
    // build), then wrk redelivers it with the same delivery id.
    let push = padded(json!({
        "ref": "refs/heads/master",
        "after": commit,
        "deleted": false,
        "repository": {"full_name": REPOSITORY, "name": "widget"},
        "head_commit": {"id": commit, "message": "change"},
        "commits": [{"id": commit, "message": "change"}],
    }));
    let ignored_file = dir.join("ignored.json");
    let push_file = dir.join("push.json");
    std::fs::write(&ignored_file, &ignored).expect("body file");
    std::fs::write(&push_file, &push).expect("body file");
    let ignored_signature = signature::sign(SECRET.as_bytes(), &ignored);
    let push_signature = signature::sign(SECRET.as_bytes(), &push);
    println!(
        "intake bodies: issues event {} bytes, push {} bytes, both signed",
        ignored.len(),
        push.len()
    );

    let first = h
        .client
        .post(h.url("/hook/monitor-watch"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", DUPLICATE_DELIVERY)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", &push_signature)
        .body(push.clone())
        .send()
        .await
        .expect("first delivery");
    let answer: Value = first.json().await.expect("JSON answer");
    assert_eq!(answer["status"], "success", "{answer}");
    let id = answer["builds"][0]
        .as_str()
        .expect("a build id")
        .to_string();
    wait_success(h, &id, Duration::from_secs(120)).await;

    let hook = h.url("/hook/monitor-watch");
    let healthz = wrk(&h.url("/healthz"), None).await;

    let (before_202, before_401) = (webhook_count(h, 202).await, webhook_count(h, 401).await);
    let ignored_run = wrk(
        &hook,
        Some([
            "issues",
            IGNORED_DELIVERY,
            &ignored_signature,
            &ignored_file.to_string_lossy(),
        ]),
    )
    .await;
    let answered_202 = webhook_count(h, 202).await - before_202;

    let before_200 = webhook_count(h, 200).await;
    let duplicate_run = wrk(
        &hook,
        Some([
            "push",
            DUPLICATE_DELIVERY,
            &push_signature,
            &push_file.to_string_lossy(),
        ]),
    )
    .await;
    let answered_200 = webhook_count(h, 200).await - before_200;
    let refused = webhook_count(h, 401).await - before_401;

    println!(
        "intake /healthz (reference): {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms ({} requests){}",
        healthz.per_second,
        healthz.p50.as_secs_f64() * 1e3,
        healthz.p99.as_secs_f64() * 1e3,
        healthz.requests,
        if healthz.problems.is_empty() {
            String::new()
        } else {
            format!(" [{}]", healthz.problems.join("; "))
        }
    );
    print_wrk("ignored (issues -> 202)", &ignored_run, &healthz);
    print_wrk(
        "duplicate (push -> 200 duplicate)",
        &duplicate_run,
        &healthz,
    );
    println!(
        "intake check (/metrics): {answered_202} answered 202 during the ignored run \
         (wrk counted {}), {answered_200} answered 200 during the duplicate run \
         (wrk counted {}), {refused} refused 401",
        ignored_run.requests, duplicate_run.requests
    );
    assert_eq!(refused, 0, "some requests failed the signature check");
    assert!(answered_202 >= ignored_run.requests && answered_200 >= duplicate_run.requests);
    // Nothing but the first delivery started a build: the history holds the
    // configuration load and that build, and nothing is queued or running.
    let history = h.client.get(h.url("/build/history/full")).send().await;
    let history: Value = history
        .expect("history")
        .json()
        .await
        .expect("history JSON");
    let status = h.client.get(h.url("/build/status")).send().await;
    let status: Value = status.expect("status").json().await.expect("status JSON");
    let finished = history.as_array().map_or(0, Vec::len);
    println!("intake check (history): {finished} builds finished, status {status}");
    assert_eq!(finished, 2, "a duplicate started a build: {history}");
    assert_eq!(status, json!({}), "a duplicate queued a build");
}

// ------------------------------------------------------- 2. push-to-success

async fn trivial(h: &mut Harness) {
    let limit = Duration::from_secs(120);
    // One warm-up of each.
    push_to_success(h, TRIVIAL_SCRIPT, limit).await;
    docker_run(TRIVIAL_SHELL).await;
    let (mut ours, mut docker, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..TRIVIAL_ROUNDS {
        if round % 2 == 0 {
            let (time, id) = push_and_wait(h, TRIVIAL_SCRIPT, limit).await;
            ours.push(time);
            ids.push(id);
            docker.push(docker_run(TRIVIAL_SHELL).await);
        } else {
            docker.push(docker_run(TRIVIAL_SHELL).await);
            let (time, id) = push_and_wait(h, TRIVIAL_SCRIPT, limit).await;
            ours.push(time);
            ids.push(id);
        }
    }
    // A component of ours, alone: the fetch of exactly the pushed commit.
    let commit = &fresh_commit(h, TRIVIAL_SCRIPT);
    let url = zos_build_core::git::repository_url(
        &format!("file://{}", h.dir.path().join("git").display()),
        REPOSITORY,
    );
    let mut fetches = Vec::new();
    for round in 0..TRIVIAL_ROUNDS {
        let dest = h.dir.path().join(format!("fetch-{round}"));
        let start = Instant::now();
        zos_build_core::git::Git::new(h.dir.path().join("scratch"), &url)
            .fetch_commit(&url, commit, &dest)
            .await
            .expect("git fetch");
        fetches.push(start.elapsed());
        let _ = std::fs::remove_dir_all(&dest);
    }
    let (ours_all, docker_all) = (ours.clone(), docker.clone());
    let (ours, docker) = (median(ours), median(docker));
    println!(
        "push-to-success (trivial build): zos-build {}, docker run {}, ratio {:.2} \
         (median of {TRIVIAL_ROUNDS}); git fetch of the commit alone {} (median)",
        secs(ours),
        secs(docker),
        ours.as_secs_f64() / docker.as_secs_f64(),
        secs(median(fetches)),
    );
    println!(
        "  rounds: zos-build {:?}\n          docker run {:?}",
        ours_all.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        docker_all.iter().map(|d| secs(*d)).collect::<Vec<_>>()
    );
    steps(&h.server_output(), &ids);
    phase_medians(h, &ids).await;
}

/// The median of each phase of the builds `ids`, from their records
/// (`GET /api/builds/<id>`, `phases`), and of what the phases leave out.
async fn phase_medians(h: &Harness, ids: &[String]) {
    let names = ["fetch", "create", "upload", "run", "extract", "publish"];
    let mut by_phase: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for id in ids {
        let build: Value = match h
            .client
            .get(h.url(&format!("/api/builds/{id}")))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        for (k, name) in names.iter().enumerate() {
            if let Some(seconds) = build["phases"][name].as_f64() {
                by_phase[k].push(Duration::from_secs_f64(seconds.max(0.0)));
            }
        }
    }
    let shown: Vec<String> = names
        .iter()
        .zip(by_phase)
        .map(|(name, samples)| match samples.is_empty() {
            true => format!("{name} -"),
            false => format!("{name} {}", secs(median(samples))),
        })
        .collect();
    println!(
        "  phases (medians of the builds' records): {}",
        shown.join(", ")
    );
}

/// Seconds since midnight (UTC) of a server log line, and the line without
/// its colours.
fn log_line(line: &str) -> Option<(f64, String)> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour: ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let time = plain.split_whitespace().next()?.split_once('T')?.1;
    let mut parts = time.trim_end_matches('Z').split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let seconds =
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    Some((seconds, plain))
}

/// Where the time of the trivial builds goes, from the server's own log:
/// the medians of the intervals between its info lines for each build.
fn steps(output: &str, ids: &[String]) {
    let lines: Vec<(f64, String)> = output.lines().filter_map(log_line).collect();
    let marks = [
        "push recorded",
        "build started",
        "artifact published",
        "build ended",
    ];
    let mut intervals: Vec<Vec<Duration>> = vec![Vec::new(); marks.len() - 1];
    for id in ids {
        let times: Vec<Option<f64>> = marks
            .iter()
            .map(|mark| {
                lines
                    .iter()
                    .find(|(_, text)| text.contains(mark) && text.contains(id.as_str()))
                    .map(|(t, _)| *t)
            })
            .collect();
        for (k, pair) in times.windows(2).enumerate() {
            if let [Some(a), Some(b)] = pair {
                intervals[k].push(Duration::from_secs_f64((b - a).max(0.0)));
            }
        }
    }
    if intervals.iter().any(Vec::is_empty) {
        println!("  (the server's log did not show every step of the trivial builds)");
        return;
    }
    let medians: Vec<Duration> = intervals.into_iter().map(median).collect();
    println!(
        "  server log, medians: push recorded -> build started {}, build started -> \
         artifact published (fetch, container, upload, run, extraction, publication) {}, \
         artifact published -> build ended {}",
        secs(medians[0]),
        secs(medians[1]),
        secs(medians[2]),
    );
}

// ------------------------------------------------------------------- main

fn binary_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_zos-build-server"));
    println!(
        "machine: {} cores, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!(
        "server binary: {} ({:.1} MiB)",
        binary.display(),
        binary_size(binary) as f64 / (1024.0 * 1024.0)
    );
    // ZOS_BENCH=trivial (or intake; comma-separated) runs only those
    // parts; unset, all of them.
    let only = std::env::var("ZOS_BENCH").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let mut h = Harness::prepare("").await;
    let trivial_commit = h.commit(TRIVIAL_SCRIPT);
    let server = StopOnDrop(h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await);
    let pid = server.pid();
    // Let the start-up configuration load finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    print_memory(pid, "after start-up (idle)");

    if runs("intake") {
        intake(&mut h, &trivial_commit).await;
        print_memory(pid, "after the intake benchmark");
    }

    if runs("trivial") {
        trivial(&mut h).await;
        print_memory(pid, "after the push-to-success benchmark");
    }

    println!("load average {} at the end", load_average());
    drop(server);
}
