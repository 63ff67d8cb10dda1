//! Executor benchmarks against `docker run` of the same work, measured in the
//! same run on the same machine (see docs/benchmarks.md).
//!
//! cargo bench -p zos-build-core --bench executor
//!
//! Rounds alternate ours and docker's so that drift of the machine hits both.

use zos_build_testkit::docker as common;

use std::time::{Duration, Instant};
use zos_build_core::sink::{BroadcastSink, FanOut, FileSink, Followed};
use zos_build_core::{BuildSpec, CancellationToken, Command, DockerExecutor, Executor};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn docker_run(args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = tokio::process::Command::new("docker")
        .args(["run", "--rm", common::IMAGE])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("docker run");
    assert!(status.success(), "docker run {args:?} failed");
    started.elapsed()
}

async fn ours(
    executor: &DockerExecutor,
    name: &str,
    argv: &[&str],
    log: &std::path::Path,
) -> Duration {
    let (broadcast, feed) = BroadcastSink::new(1 << 16);
    let mut follower = feed.follow().expect("feed open");
    let follow = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(item) = follower.next().await {
            match item {
                Followed::Line(_) => n += 1,
                Followed::Missed(m) => n += m,
            }
        }
        n
    });
    let _ = std::fs::remove_file(log);
    let mut sink = FanOut::new()
        .with(FileSink::create(log).await.expect("log file"))
        .with(broadcast);
    let spec = BuildSpec::new(
        common::build_id(name),
        common::IMAGE,
        Command::Exec(argv.iter().map(|s| s.to_string()).collect()),
    );
    let started = Instant::now();
    let outcome = executor
        .run(&spec, &mut sink, &CancellationToken::new())
        .await
        .expect("build ran");
    let elapsed = started.elapsed();
    assert!(outcome.succeeded());
    follow.await.expect("follower");
    elapsed
}

async fn compare(executor: &DockerExecutor, label: &str, argv: &[&str], rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("build.log");
    // One warm-up of each: page cache, image layers, Docker's own caches.
    ours(executor, label, argv, &log).await;
    docker_run(argv).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(ours(executor, label, argv, &log).await);
            b.push(docker_run(argv).await);
        } else {
            b.push(docker_run(argv).await);
            a.push(ours(executor, label, argv, &log).await);
        }
    }
    let (ours, docker) = (median(a), median(b));
    println!(
        "{label}: zos-build {:.3}s, docker run {:.3}s, ratio {:.2} (median of {rounds})",
        ours.as_secs_f64(),
        docker.as_secs_f64(),
        ours.as_secs_f64() / docker.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too, but
    // we only run when asked for explicitly.
    let executor = common::executor().await;
    compare(&executor, "log-throughput", &["seq", "1", "1000000"], 9).await;
    compare(&executor, "overhead", &["true"], 15).await;
}
