//! Websocket followers of a 1,000,000-line build, against the same build
//! with no follower, and the server's memory during and after (see
//! docs/benchmarks.md, "Followers of a 1,000,000-line build").
//!
//! cargo bench -p zos-build-server --bench followers
//!
//! The real `zos-build-server` binary (bench profile) is started with a
//! configuration file as in the end-to-end tests (`zos_build_testkit::server`).
//! The followers run in a separate process: this same benchmark binary,
//! started again with `ZOS_BENCH_FOLLOWERS=<n>`, which opens `n` `/buildio`
//! websockets and reads every frame as fast as it can. Where the machine has
//! two cores or more, the followers are pinned with `taskset` to the last
//! core and the server to the others, so the followers' CPU is their own and
//! is accounted apart (from `/proc/<pid>/stat` of each process). Docker and
//! the build's container are not pinned. The followers also run at the
//! lowest priority (`nice -n 19`, in a session of their own whose autogroup
//! is set to nice 19 too, since the kernel weighs sessions against each
//! other before nice values): they stand for clients on other
//! machines, and on a 2-core machine their own parsing (a full core for
//! seconds with 1,000 of them) would otherwise take the core Docker and the
//! build's container share, which measures the benchmark's clients rather
//! than the server.
//!
//! Each round pushes the same build, `seq 1 1000000` then the artifact,
//! with 0, 100 or 1,000 followers (the order rotates), and times it from the
//! push to the history saying `success`. Every follower checks the batched
//! `update` frames of the build: the sequence numbers run from 0 without a
//! gap or a repeat, up to the number of lines the log holds. Then 8 bursts
//! of 100 followers, and the server's resident memory once idle.
//!
//! Set `ZOS_BENCH_ROUNDS` (default 3) for more rounds (0: only the bursts). Everything is bounded
//! (every wait has a deadline) and every process started is stopped on every
//! way out; loopback only.

use zos_build_testkit::server as support;

use futures_util::StreamExt;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Harness;
use tokio_tungstenite::tungstenite::Message;
use zos_build_testkit::measure::{
    cpu_of, load_average, median, mib, secs, status_field, StopOnDrop,
};

/// Numbered lines the build prints.
const LINES: u64 = 1_000_000;
/// Follower counts compared (0 is the reference).
const VARIANTS: [usize; 3] = [0, 100, 1000];
/// Bursts of 100 followers before the idle memory is read.
const BURSTS: usize = 8;
/// The longest any one build, or any one follower, is waited for.
const LIMIT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------- processes

/// The cores of the server and of the followers, as `taskset -c` lists.
fn cores() -> Option<(String, String)> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n < 2 {
        return None;
    }
    let server = if n == 2 {
        "0".to_string()
    } else {
        format!("0-{}", n - 2)
    };
    Some((server, (n - 1).to_string()))
}

/// `program args` under `taskset -c cores` when there are cores to pin to.
fn pinned(cores: Option<&str>, program: &str) -> Command {
    match cores {
        Some(cores) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cores, program]);
            command
        }
        None => Command::new(program),
    }
}

/// Resets the peak resident size (`VmHWM`) of a process.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

// --------------------------------------------------------- the followers

/// One frame, as much of it as a follower needs.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize, Default)]
struct Payload<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    count: Option<u64>,
}

/// What one follower saw of each build: the next `seq`, or an error.
#[derive(Default)]
struct Seen {
    next: HashMap<String, Result<u64, String>>,
    frames: u64,
    last_frame: Option<Instant>,
}

impl Seen {
    fn frame(&mut self, text: &str) {
        self.frames += 1;
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            return;
        };
        if frame.event == "lagged" {
            for next in self.next.values_mut() {
                *next = Err("a lagged frame: lines were lost".to_string());
            }
            return;
        }
        let (Some(payload), "update") = (frame.payload, frame.event.as_ref()) else {
            return;
        };
        let (Some(id), Some(seq), Some(count)) = (payload.id, payload.seq, payload.count) else {
            return;
        };
        self.last_frame = Some(Instant::now());
        let next = self.next.entry(id.into_owned()).or_insert(Ok(0));
        if let Ok(expected) = *next {
            *next = if seq == expected {
                Ok(seq + count)
            } else {
                Err(format!("seq {seq} where {expected} was due"))
            };
        }
    }
}

/// The follower process: `n` websockets; says `ready` once all have their
/// snapshot, notes the time of `push` on stdin, and once told `<id>
/// <lines>`, reports per follower when it had every line of build `id`.
fn follower_process(n: usize, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let (target_tx, target_rx) = tokio::sync::watch::channel(None::<(String, u64)>);
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut socket, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("websocket connected");
            // `history`, `status`, `server`: then the client is subscribed.
            for _ in 0..3 {
                socket.next().await.expect("snapshot").expect("snapshot");
            }
            sockets.push(socket);
        }
        for mut socket in sockets {
            let done = done_tx.clone();
            let mut target = target_rx.clone();
            tokio::spawn(async move {
                let mut seen = Seen::default();
                loop {
                    let complete = target.borrow().as_ref().and_then(|(id, lines)| {
                        match seen.next.get(id) {
                            Some(Ok(next)) if next >= lines => Some(Ok(seen.last_frame)),
                            Some(Err(e)) => Some(Err(e.clone())),
                            _ => None,
                        }
                    });
                    if let Some(result) = complete {
                        let _ = done.send((result, seen.frames));
                        return;
                    }
                    tokio::select! {
                        message = socket.next() => match message {
                            Some(Ok(Message::Text(text))) => seen.frame(text.as_str()),
                            Some(Ok(_)) => {}
                            _ => {
                                let _ = done.send((Err("the socket closed".to_string()), seen.frames));
                                return;
                            }
                        },
                        _ = target.changed() => {}
                    }
                }
            });
        }
        drop(done_tx);
        println!("ready");
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt;
        stdin.read_line(&mut line).await.expect("stdin");
        let pushed = Instant::now();
        line.clear();
        stdin.read_line(&mut line).await.expect("stdin");
        let mut words = line.split_whitespace();
        let id = words.next().expect("a build id").to_string();
        let lines: u64 = words.next().and_then(|w| w.parse().ok()).expect("lines");
        let _ = target_tx.send(Some((id, lines)));
        let (mut complete, mut failures, mut times, mut frames) = (0, Vec::new(), Vec::new(), 0);
        while let Ok(Some((result, count))) =
            tokio::time::timeout(LIMIT, done_rx.recv()).await
        {
            frames += count;
            match result {
                Ok(last) => {
                    complete += 1;
                    times.push(last.map_or(Duration::ZERO, |t| t.duration_since(pushed)));
                }
                Err(e) => failures.push(e),
            }
        }
        times.sort();
        let pick = |q: usize| times.get(q).map_or(-1.0, |d: &Duration| d.as_secs_f64());
        println!(
            "complete {complete} of {n}; last line after push: min {:.3} median {:.3} max {:.3}; \
             frames {frames}; failures {:?}",
            pick(0),
            pick(times.len() / 2),
            pick(times.len().saturating_sub(1)),
            &failures[..failures.len().min(3)]
        );
    });
}

/// The follower process, started and ready.
struct Followers {
    process: StopOnDrop,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Followers {
    fn start(n: usize, url: &str, cores: Option<&str>) -> Followers {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        // A session of its own, so that its priority counts against
        // Docker's processes too: with autogroup scheduling, nice values only
        // weigh within a session; the session's own weight is set below.
        let mut child = pinned(cores, "setsid")
            .args(["nice", "-n", "19"])
            .arg(&exe)
            .env("ZOS_BENCH_FOLLOWERS", n.to_string())
            .env("ZOS_BENCH_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the follower process");
        let autogroup = format!("/proc/{}/autogroup", child.id());
        if std::fs::write(&autogroup, "19").is_err() {
            eprintln!("cannot lower the followers' autogroup ({autogroup})");
        }
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the followers' first line");
        assert_eq!(line.trim(), "ready", "the followers did not connect");
        Followers {
            process: StopOnDrop(child),
            stdin,
            stdout,
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("to the followers");
        self.stdin.flush().expect("to the followers");
    }

    fn report(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the followers' report");
        line.trim().to_string()
    }
}

// ------------------------------------------------------------------ rounds

/// Polls every 5 ms until build `id` has finished; fails unless it
/// succeeded.
async fn wait_success(h: &Harness, id: &str) {
    let start = Instant::now();
    loop {
        let value = h.get_json(&format!("/api/builds/{id}")).await;
        match value["status"].as_str() {
            Some("success") => return,
            Some(status @ ("error" | "cancelled")) => panic!("build {id} ended {status}"),
            _ => {}
        }
        assert!(start.elapsed() < LIMIT, "build {id} not finished in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Round {
    build: Duration,
    server_cpu: Duration,
    followers_cpu: Duration,
    peak_kib: u64,
    /// Catch-ups from the log files since the server started.
    catch_ups: u64,
    report: String,
}

/// The long build's script; each push needs a commit of its own (a commit
/// pushed again is a replay).
fn script(round: usize) -> String {
    format!(
        "#!/bin/sh\nseq 1 {LINES}\nmkdir -p /target; echo x > /target/widget.tar.gz\n# {round}\n"
    )
}

async fn round(h: &mut Harness, server: u32, n: usize, cores: Option<&str>) -> Round {
    static ROUNDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let commit = h.commit(&script(
        ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    ));
    let url = h.url("/buildio").replace("http://", "ws://");
    let mut followers = (n > 0).then(|| Followers::start(n, &url, cores));
    reset_peak(server);
    let server_before = cpu_of(server);
    let followers_before = followers
        .as_ref()
        .map_or(Duration::ZERO, |f| cpu_of(f.process.pid()));
    if let Some(f) = followers.as_mut() {
        f.say("push");
    }
    let start = Instant::now();
    let ids = h.push(&commit).await;
    wait_success(h, &ids[0]).await;
    let build = start.elapsed();
    let mut round = Round {
        build,
        server_cpu: Duration::ZERO,
        followers_cpu: Duration::ZERO,
        peak_kib: 0,
        catch_ups: 0,
        report: String::new(),
    };
    if let Some(mut f) = followers {
        let lines = h.report(&ids[0]).await.lines().count();
        f.say(&format!("{} {lines}", ids[0]));
        round.report = f.report();
        round.followers_cpu = cpu_of(f.process.pid()).saturating_sub(followers_before);
        assert!(
            round.report.starts_with(&format!("complete {n} of {n};")),
            "not every follower got every line: {}",
            round.report
        );
    }
    round.server_cpu = cpu_of(server).saturating_sub(server_before);
    let metrics = h.client.get(h.url("/metrics")).send().await;
    let metrics = match metrics {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    round.catch_ups = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zos_build_live_catch_ups_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    round.peak_kib = status_field(server, "VmHWM:");
    round
}

async fn bench() {
    let rounds: usize = std::env::var("ZOS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cores = cores();
    println!(
        "machine: {} cores, load average {}; server on cores {:?}, followers on {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        cores.as_ref().map(|c| &c.0),
        cores.as_ref().map(|c| &c.1),
    );
    for name in ["MALLOC_ARENA_MAX", "ZOS_BUILD_ALLOCATOR"] {
        if let Ok(value) = std::env::var(name) {
            println!("environment: {name}={value}");
        }
    }
    let mut h = Harness::prepare("max-connections: 4096\n").await;
    // The server, pinned, on a port of its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("a port")
        .port();
    let config = h.dir.path().join("zos-build.yaml");
    std::fs::write(
        &config,
        h.yaml
            .replace("http-port: 0\n", &format!("http-port: {port}\n")),
    )
    .expect("the configuration file");
    let output = std::fs::File::create(h.dir.path().join("server.out")).expect("server.out");
    let server = StopOnDrop(
        pinned(
            cores.as_ref().map(|c| c.0.as_str()),
            env!("CARGO_BIN_EXE_zos-build-server"),
        )
        .arg("--config")
        .arg(&config)
        .stdout(output.try_clone().expect("server.out"))
        .stderr(output)
        .spawn()
        .expect("the server"),
    );
    h.address = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let start = Instant::now();
    while h.client.get(h.url("/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "server idle after start-up: VmRSS {}",
        mib(status_field(pid, "VmRSS:"))
    );
    let follower_cores = cores.as_ref().map(|c| c.1.as_str());

    // One warm-up build, then the variants in rotating order.
    round(&mut h, pid, 0, follower_cores).await;
    let mut results: HashMap<usize, Vec<Round>> = HashMap::new();
    for r in 0..rounds {
        for k in 0..VARIANTS.len() {
            let n = VARIANTS[(r + k) % VARIANTS.len()];
            let result = round(&mut h, pid, n, follower_cores).await;
            println!(
                "  round {r}, {n} followers: push-to-success {}, CPU server {} followers {}, \
                 server peak RSS {}, catch-ups so far {}{}",
                secs(result.build),
                secs(result.server_cpu),
                secs(result.followers_cpu),
                mib(result.peak_kib),
                result.catch_ups,
                if result.report.is_empty() {
                    String::new()
                } else {
                    format!("; followers: {}", result.report)
                }
            );
            results.entry(n).or_default().push(result);
        }
    }
    if rounds > 0 {
        let reference = median(results[&0].iter().map(|r| r.build).collect());
        for n in VARIANTS {
            let of = &results[&n];
            let build = median(of.iter().map(|r| r.build).collect());
            let peak = of.iter().map(|r| r.peak_kib).max().unwrap_or(0);
            println!(
                "{n} followers: push-to-success median {} ({:.2}x no follower), CPU server {} \
                 followers {} (medians), server peak RSS max {}",
                secs(build),
                build.as_secs_f64() / reference.as_secs_f64(),
                secs(median(of.iter().map(|r| r.server_cpu).collect())),
                secs(median(of.iter().map(|r| r.followers_cpu).collect())),
                mib(peak),
            );
        }
    }

    // Bursts, then the idle server's memory.
    for burst in 0..BURSTS {
        let result = round(&mut h, pid, 100, follower_cores).await;
        println!(
            "  burst {burst}: push-to-success {}, VmRSS after {}",
            secs(result.build),
            mib(status_field(pid, "VmRSS:"))
        );
    }
    // Idle threads of the blocking pools exit after 10 s.
    tokio::time::sleep(Duration::from_secs(15)).await;
    println!(
        "idle 15 s after {BURSTS} bursts of 100 followers: VmRSS {} (peak since the last reset {})",
        mib(status_field(pid, "VmRSS:")),
        mib(status_field(pid, "VmHWM:"))
    );
    println!("load average {} at the end", load_average());
    drop(server);
}

fn main() {
    if let (Ok(n), Ok(url)) = (
        std::env::var("ZOS_BENCH_FOLLOWERS"),
        std::env::var("ZOS_BENCH_URL"),
    ) {
        follower_process(n.parse().expect("a number of followers"), &url);
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}
