//! The Docker daemon goes away and comes back: a running build ends with an
//! honest error, `/healthz` says Docker is unreachable, a build queued
//! meanwhile waits for Docker instead of failing, and no container is left
//! once Docker answers again.
//!
//! This test stops the machine's real dockerd (and starts it again with the
//! same command line, also when the test fails), so it lives in a test
//! binary of its own: nothing else of this binary uses Docker meanwhile.

use zos_build_testkit::server as support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{common, Harness};
use zos_build_core::BuildStatus;

const WIDGET: &str = "#!/bin/sh\nset -e\necho 'widget: building'\nmkdir -p /target\n\
printf 'widget artifact\\n' > /target/widget.tar.gz\n";

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The running dockerd: its pid and command line.
fn dockerd() -> Option<(u32, Vec<String>)> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_dockerd = args
            .first()
            .is_some_and(|a| a == "dockerd" || a.ends_with("/dockerd"));
        if is_dockerd {
            return Some((pid, args));
        }
    }
    None
}

/// Stops dockerd on creation; starts it again, with the same command line,
/// when asked or when dropped (a failing test leaves Docker running).
struct Outage {
    command: Vec<String>,
    restarted: bool,
}

impl Outage {
    fn begin() -> Outage {
        let (pid, command) = dockerd().expect("dockerd runs (scripts/test.sh starts it)");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "dockerd did not stop"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Outage {
            command,
            restarted: false,
        }
    }

    fn end(&mut self) {
        if self.restarted {
            return;
        }
        self.restarted = true;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from("/tmp/zos-build-dockerd.log"))
            .unwrap();
        // setsid: the daemon outlives this test process.
        Command::new("setsid")
            .arg("-f")
            .args(&self.command)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        let start = Instant::now();
        while !docker_answers() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "dockerd did not come back; see /tmp/zos-build-dockerd.log"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.end();
    }
}

async fn health(h: &Harness) -> (reqwest::StatusCode, String) {
    let response = h.client.get(h.url("/healthz")).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn wait_for_health(h: &Harness, healthy: bool) -> String {
    let start = Instant::now();
    loop {
        let (status, text) = health(h).await;
        if status.is_success() == healthy {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "/healthz still answers {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn builds_survive_a_docker_outage_and_no_container_is_left() {
    let mut h = Harness::start("").await;
    let executor = common::executor().await;
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 120\n");
    let running = h.push(&slow).await;
    h.wait_for_line(&running[0], "slow: started").await;
    let container = h.record(&running[0]).await.container_id.unwrap();

    let mut outage = Outage::begin();
    // The running build ends, honestly.
    let record = h
        .wait_for(&running[0], Duration::from_secs(60), "finished", |r| {
            r.status.is_finished()
        })
        .await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert!(!record.error.unwrap_or_default().is_empty());
    let text = wait_for_health(&h, false).await;
    assert!(text.contains(r#""docker":"unreachable""#), "{text}");

    // A push during the outage waits for Docker instead of failing.
    let commit = h.commit(WIDGET);
    let queued = h.push_to("dev", &commit).await;
    h.wait_for_line(&queued[0], "Docker is unreachable").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let record = h.record(&queued[0]).await;
    assert!(!record.status.is_finished(), "{record:?}");

    outage.end();
    wait_for_health(&h, true).await;
    let record = h
        .wait_for(&queued[0], Duration::from_secs(120), "finished", |r| {
            r.status.is_finished()
        })
        .await;
    assert_eq!(
        record.status,
        BuildStatus::Success,
        "{record:?}\n{}",
        h.report(&queued[0]).await
    );
    // The interrupted build's container, which could not be removed while
    // Docker was away, is removed once Docker answers again.
    let start = Instant::now();
    while !common::containers_of(&executor, &running[0])
        .await
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "container {container} of the interrupted build is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut all = running.clone();
    all.extend(queued);
    h.stop_and_check_clean(&all).await;
}
