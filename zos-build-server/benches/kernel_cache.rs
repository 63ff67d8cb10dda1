//! The kernel build cache: a second build of a kernel target against the
//! first, in the same run (see docs/benchmarks.md, "Kernel build cache").
//!
//! cargo bench -p zos-build-server --bench kernel_cache
//!
//! The server runs in-process, as in `tests/kernel.rs`
//! (`zos_build_testkit::server::Harness`): a temporary data directory, one
//! kernel target of a name no other run uses (`acme/kbench<pid>`, built from
//! the bash test image, `commit-image: true` like the default targets), and
//! a `file://` git repository holding its build script. The script does an
//! expensive step (compressing about 200 MB of generated text with `gzip`)
//! only when the step's result is not in the target's cache directory, then
//! leaves the first 10 MiB of that result as the kernel.
//!
//! Each round clears the cache volume (the executor's `remove_cache`), then
//! pushes two commits of master one after the other through the signed
//! kernel hook and times each from the push request to the history saying
//! `success`: the first build fills the cache, the second finds it. The
//! log of each build is checked to say which of the two it was. The
//! expensive step alone, run with `docker run` of the same image, is timed
//! in each round too, as the measure of what the cache can save. One
//! warm-up round, then [`ROUNDS`] rounds; min and median of each.
//!
//! Everything is bounded (every wait has a deadline), on loopback and the
//! local Docker daemon only. What the run creates in Docker (the committed
//! images, untagged or not, any container and the cache volume) carries this
//! server's instance label or name and is removed on every way out,
//! a panic included.

use zos_build_testkit::measure::{self, load_average};
use zos_build_testkit::server as support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{common, git, Harness, SECRET};
use zos_build_core::{BuildStatus, Executor};
use zos_build_server::http::signature;

/// Numbers `seq` writes for the expensive step: about 214 MB of text,
/// about 55 MB once compressed.
const SEQ_COUNT: u64 = 25_000_000;
/// The size of the kernel the script leaves (a Zero-OS kernel with its
/// initramfs is of this order).
const KERNEL_BYTES: u64 = 10 << 20;
/// Measured rounds, after one warm-up round.
const ROUNDS: usize = 5;
/// The longest a build may take here.
const BUILD_LIMIT: Duration = Duration::from_secs(300);
/// Where the script finds its cache: the default `kernel-cache-path`.
const CACHE_PATH: &str = "/root/.cache/zos-build";

/// The kernel build script (`$1` branch, `$2` repository name): the
/// expensive step only when its result is not cached, then the kernel.
fn script() -> String {
    format!(
        r#"set -e
cache={CACHE_PATH}
mkdir -p "$cache" /target
if [ -f "$cache/result.gz" ]; then
  echo "cache: warm"
else
  echo "cache: cold, compressing"
  seq 1 {SEQ_COUNT} | gzip -c > "$cache/result.gz.part"
  mv "$cache/result.gz.part" "$cache/result.gz"
fi
head -c {KERNEL_BYTES} "$cache/result.gz" > /target/vmlinuz.efi
echo "kernel: $1 $2"
"#
    )
}

/// The expensive step alone, as `docker run` runs it.
fn step_alone() -> String {
    format!("seq 1 {SEQ_COUNT} | gzip -c > /tmp/result.gz")
}

/// Removes what the run made in Docker when dropped, whichever way the
/// benchmark ends: the containers and images carrying this server's
/// instance label (the committed `<repository>:master` and the untagged
/// ones), and the cache volume. Through the Docker CLI, which works in a
/// `Drop` and during a panic.
struct Cleanup {
    instance: String,
    volume: String,
}

impl Cleanup {
    fn ids(args: &[&str]) -> Vec<String> {
        std::process::Command::new("docker")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn docker(args: &[String]) {
        let _ = std::process::Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=zos-build.instance={}", self.instance);
        let containers = Cleanup::ids(&["ps", "-aq", "--filter", &label]);
        if !containers.is_empty() {
            let mut args = vec!["rm".to_string(), "-f".to_string()];
            args.extend(containers);
            Cleanup::docker(&args);
        }
        // Newest first, so that a child goes before its parent.
        let images = Cleanup::ids(&["image", "ls", "-aq", "--no-trunc", "--filter", &label]);
        for image in images {
            Cleanup::docker(&["rmi".to_string(), "-f".to_string(), image]);
        }
        Cleanup::docker(&["volume".to_string(), "rm".to_string(), self.volume.clone()]);
    }
}

struct Bench {
    h: Harness,
    /// `acme/kbench<pid>`.
    repository: String,
    /// The repository's git directory.
    repo: PathBuf,
}

impl Bench {
    /// Commits the script again (a new commit, so the push is no replay);
    /// returns the commit.
    fn commit(&self, n: usize) -> String {
        std::fs::write(
            self.repo.join("autobuild/build.sh"),
            format!("{}# commit {n}\n", script()),
        )
        .unwrap();
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", &format!("kernel {n}")]);
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    /// From the signed push of `commit` on master to the build's `success`
    /// in the history; returns the time, when each phase began, and the
    /// build's log.
    async fn push_to_success(&mut self, commit: &str) -> (Duration, Phases, String) {
        self.h.deliveries += 1;
        let body = serde_json::json!({
            "ref": "refs/heads/master",
            "after": commit,
            "deleted": false,
            "repository": {"full_name": self.repository},
            "head_commit": {"id": commit, "message": "kernel"},
            "commits": [{"id": commit, "message": "kernel"}],
        })
        .to_string()
        .into_bytes();
        let start = Instant::now();
        let response = self
            .h
            .client
            .post(self.h.url("/hook/kernel"))
            .header("X-GitHub-Event", "push")
            .header(
                "X-GitHub-Delivery",
                format!("kernel-bench-{}", self.h.deliveries),
            )
            .header("Accept", "application/json")
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the kernel hook answers");
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.expect("a JSON answer");
        assert_eq!(answer["status"], "started", "{answer}");
        let id = answer["builds"][0]
            .as_str()
            .expect("the build's id")
            .to_string();
        let mut phases = Phases::default();
        loop {
            let record = self.h.record(&id).await;
            let now = start.elapsed();
            let seen = match record.status {
                BuildStatus::Building => Some(&mut phases.building),
                BuildStatus::Committing => Some(&mut phases.committing),
                _ => None,
            };
            if let Some(seen) = seen {
                seen.get_or_insert(now);
            }
            match record.status {
                BuildStatus::Success => break,
                status if status.is_finished() => panic!(
                    "build {id} ended {status:?}: {:?}\n{}",
                    record.error,
                    self.h.report(&id).await
                ),
                _ => {}
            }
            assert!(
                start.elapsed() < BUILD_LIMIT,
                "build {id} not finished after {BUILD_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = start.elapsed();
        (elapsed, phases, self.h.report(&id).await)
    }
}

/// When a build was first seen `building` (its container started) and
/// `committing` (its script ended and its kernel was extracted), from the
/// push; polled every 10 ms, so each is up to 10 ms late.
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    building: Option<Duration>,
    committing: Option<Duration>,
}

impl Phases {
    /// Seconds from the push to `building`, from `building` to
    /// `committing`, and from `committing` to `success` (`total`).
    fn split(&self, total: Duration) -> [f64; 3] {
        let building = self.building.unwrap_or_default();
        let committing = self.committing.unwrap_or(total).max(building);
        [
            building.as_secs_f64(),
            (committing - building).as_secs_f64(),
            (total - committing).as_secs_f64(),
        ]
    }
}

/// `docker run --rm <kernel image> sh -c <script>`.
async fn docker_run(script: &str) -> Duration {
    measure::docker_run(&[common::KERNEL_IMAGE, "sh", "-c", script], BUILD_LIMIT).await
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// `min <x>, median <y>` of `samples`, formatted by `show`.
fn min_median(samples: &[f64], show: impl Fn(f64) -> String) -> String {
    let samples = sorted(samples.to_vec());
    format!(
        "min {}, median {}",
        show(samples[0]),
        show(samples[samples.len() / 2])
    )
}

#[tokio::main]
async fn main() {
    println!(
        "machine: {} cores, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let executor = common::kernel_executor().await;
    let pid = std::process::id();
    let repository = format!("acme/kbench{pid}");
    let name = repository.rsplit('/').next().unwrap().to_string();
    let extra = format!(
        "kernel-targets:\n\
         \x20 - {{repository: {repository}, script: autobuild/build.sh, baseimage: {image}, commit-image: true}}\n",
        image = common::KERNEL_IMAGE
    );
    let mut h = Harness::prepare(&extra).await;
    let instance = zos_build_server::server::instance_name(&h.config.data_directory);
    let volume = format!("zos-build-cache-{name}");
    let _cleanup = Cleanup {
        instance: instance.clone(),
        volume: volume.clone(),
    };
    let executor = executor.with_instance(instance);
    let repo = h.dir.path().join("git").join(&repository);
    std::fs::create_dir_all(repo.join("autobuild")).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    h.restart(true).await;
    let mut bench = Bench {
        h,
        repository,
        repo,
    };
    println!(
        "workload: seq 1 {SEQ_COUNT} | gzip -c into the cache when it is not there, \
         then a {} MiB kernel from it",
        KERNEL_BYTES >> 20
    );

    let (mut cold, mut warm, mut ratios, mut alone) = (vec![], vec![], vec![], vec![]);
    let (mut cold_phases, mut warm_phases) = (vec![], vec![]);
    let mut commits = 0;
    for round in 0..=ROUNDS {
        // An empty cache: the volume goes (the first round has none yet),
        // and the next build makes it again.
        let removed = executor
            .remove_cache(&volume)
            .await
            .expect("the cache volume can be removed");
        assert_eq!(removed, round > 0, "the previous round made the volume");
        commits += 1;
        let commit = bench.commit(commits);
        let (first, first_phases, log) = bench.push_to_success(&commit).await;
        assert!(
            log.contains("cache: cold"),
            "the first build fills the cache:\n{log}"
        );
        commits += 1;
        let commit = bench.commit(commits);
        let (second, second_phases, log) = bench.push_to_success(&commit).await;
        assert!(
            log.contains("cache: warm"),
            "the second build finds the cache:\n{log}"
        );
        let step = docker_run(&step_alone()).await;
        let ratio = second.as_secs_f64() / first.as_secs_f64();
        let what = if round == 0 { "warm-up" } else { "round" };
        println!(
            "{what} {round}: first (cold cache) {:.3}s, second (warm cache) {:.3}s, \
             ratio {ratio:.3}; the step alone (docker run) {:.3}s; load average {}",
            first.as_secs_f64(),
            second.as_secs_f64(),
            step.as_secs_f64(),
            load_average()
        );
        let [a, b, c] = first_phases.split(first);
        let [d, e, f] = second_phases.split(second);
        println!(
            "  phases (push to building, building to committing, committing to success): \
             first {a:.3}s + {b:.3}s + {c:.3}s, second {d:.3}s + {e:.3}s + {f:.3}s"
        );
        if round > 0 {
            cold_phases.push([a, b, c]);
            warm_phases.push([d, e, f]);
            cold.push(first.as_secs_f64());
            warm.push(second.as_secs_f64());
            ratios.push(ratio);
            alone.push(step.as_secs_f64());
        }
    }
    let s = |x: f64| format!("{x:.3}s");
    println!("first build, cold cache: {}", min_median(&cold, s));
    println!("second build, warm cache: {}", min_median(&warm, s));
    println!(
        "ratio second/first, per round: {}",
        min_median(&ratios, |x| format!("{x:.3}"))
    );
    let saved: Vec<f64> = cold.iter().zip(&warm).map(|(c, w)| c - w).collect();
    println!(
        "saved by the cache (first - second): {}",
        min_median(&saved, s)
    );
    println!("the step alone (docker run): {}", min_median(&alone, s));
    for (which, phases) in [("first", &cold_phases), ("second", &warm_phases)] {
        let medians: Vec<String> = (0..3)
            .map(|i| {
                let column: Vec<f64> = phases.iter().map(|p: &[f64; 3]| p[i]).collect();
                s(sorted(column)[phases.len() / 2])
            })
            .collect();
        println!(
            "{which} build, median of each phase: push to building {}, building to \
             committing {}, committing to success {}",
            medians[0], medians[1], medians[2]
        );
    }

    let ids: Vec<String> = bench
        .h
        .server()
        .state
        .history
        .recent(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    let kernel_builds = bench
        .h
        .server()
        .state
        .history
        .recent(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.repository == bench.repository)
        .count();
    // The history also holds the configuration's load, a build of its own.
    assert_eq!(kernel_builds, 2 * (ROUNDS + 1), "every push built once");
    bench.h.stop_and_check_clean(&ids).await;
}
