//! The pipeline for real: signed pushes build, publish, fail, time out and
//! supersede each other, with the real Docker daemon (see `support`).

use zos_build_testkit::server as support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{common, Harness, DOCKER};
use zos_build_core::BuildStatus;

const WIDGET: &str = "#!/bin/sh\nset -e\necho 'widget: compiling'\necho 'widget: linking' >&2\n\
mkdir -p /target\nprintf 'widget artifact\\n' > /target/widget.tar.gz\necho 'widget: done'\n";

#[tokio::test]
async fn a_signed_push_builds_and_publishes_the_artifact() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(WIDGET);
    let ids = h.push(&commit).await;
    assert_eq!(ids.len(), 1, "one build per listed script");
    let record = h.finished(&ids[0]).await;
    let log = h.report(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");
    assert_eq!(record.commit, commit);
    let name = format!("acme-widget-master-{}.tar.gz", &commit[..10]);
    assert_eq!(record.artifact.as_deref(), Some(name.as_str()));
    assert!(record.started.is_some() && record.ended.is_some());
    let published = h.config.artifacts_directory.join(&name);
    assert_eq!(
        std::fs::read_to_string(&published).unwrap(),
        "widget artifact\n",
        "{} holds the script's artifact",
        published.display()
    );
    for line in ["widget: compiling", "widget: linking", "widget: done"] {
        assert!(log.contains(line), "{line:?} missing from the log:\n{log}");
    }
    assert!(
        log.trim_end().ends_with(&format!("published {name}")),
        "the last line says how it ended:\n{log}"
    );
    h.stop_and_check_clean(&ids).await;
}

/// The seconds of each phase in `GET /api/builds/<id>`'s `phases`, by name.
fn phases_of(build: &Value) -> Vec<(String, f64)> {
    let phases = build["phases"]
        .as_object()
        .unwrap_or_else(|| panic!("no phases object: {build}"));
    phases
        .iter()
        .map(|(name, seconds)| {
            let seconds = seconds
                .as_f64()
                .unwrap_or_else(|| panic!("{name} is no number of seconds: {build}"));
            (name.clone(), seconds)
        })
        .collect()
}

#[tokio::test]
async fn each_build_records_its_phases_and_metrics_count_them() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(WIDGET);
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let build = h.get_json(&format!("/api/builds/{}", ids[0])).await;
    let phases = phases_of(&build);
    let names: Vec<&str> = phases.iter().map(|(name, _)| name.as_str()).collect();
    let mut expected = ["fetch", "create", "upload", "run", "extract", "publish"];
    expected.sort_unstable();
    assert_eq!(names, expected, "{build}");
    for (name, seconds) in &phases {
        assert!(seconds.is_finite() && *seconds >= 0.0, "{name}: {seconds}");
    }
    // The history holds the same.
    assert_eq!(record.phases.iter().count(), 6, "{record:?}");

    // A build whose script fails extracts and publishes nothing: those
    // phases are absent.
    let failing = h.commit("#!/bin/sh\nexit 3\n");
    let failed = h.push(&failing).await;
    let record = h.finished(&failed[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let build = h.get_json(&format!("/api/builds/{}", failed[0])).await;
    let names: Vec<String> = phases_of(&build).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["create", "fetch", "run", "upload"], "{build}");

    let metrics = h.get_text("/metrics").await;
    assert!(
        metrics.contains("# TYPE zos_build_phase_seconds histogram\n"),
        "{metrics}"
    );
    for (phase, builds) in [
        ("fetch", 2),
        ("create", 2),
        ("upload", 2),
        ("run", 2),
        ("extract", 1),
        ("publish", 1),
    ] {
        let count = format!("zos_build_phase_seconds_count{{phase=\"{phase}\"}} ");
        let line = metrics
            .lines()
            .find(|line| line.starts_with(&count))
            .unwrap_or_else(|| panic!("no {count}: {metrics}"));
        let n: u64 = line[count.len()..].parse().unwrap();
        assert_eq!(n, builds, "{line}");
        let infinite =
            format!("zos_build_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {builds}");
        assert!(metrics.contains(&infinite), "{infinite}: {metrics}");
        let sum = format!("zos_build_phase_seconds_sum{{phase=\"{phase}\"}} ");
        assert!(metrics.contains(&sum), "{sum}: {metrics}");
    }
    let mut ids = ids;
    ids.extend(failed);
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_failing_script_ends_in_error_with_its_status() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit("#!/bin/sh\necho 'about to fail'\nexit 3\n");
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("build script exited with status 3")
    );
    assert_eq!(record.artifact, None);
    let log = h.report(&ids[0]).await;
    assert!(log.contains("about to fail"), "{log}");
    assert!(
        log.trim_end()
            .ends_with("build failed: build script exited with status 3"),
        "{log}"
    );
    let published: Vec<_> = std::fs::read_dir(&h.config.artifacts_directory)
        .map(|dir| dir.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert!(published.is_empty(), "nothing is published: {published:?}");
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_newer_push_cancels_the_running_build_of_the_branch() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("max-concurrent-builds: 1\n").await;
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\necho 'slow: finished'\n");
    let first = h.push(&slow).await;
    // Running for real: the script has printed its first line.
    h.wait_for_line(&first[0], "slow: started").await;
    // /build/status shows it building, with its last lines.
    let status: Value = h
        .client
        .get(h.url("/build/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &status[&first[0]];
    assert_eq!(entry["status"], "building", "{status}");
    assert!(
        entry["monitor"].as_str().unwrap().contains("slow: started"),
        "{entry}"
    );
    // The container is known while the build runs: its short id.
    let docker = entry["docker"].as_str().unwrap();
    assert!(
        docker.len() == 10 && docker.bytes().all(|b| b.is_ascii_hexdigit()),
        "{entry}"
    );
    let start = Instant::now();
    let fast = h.commit(WIDGET);
    let second = h.push(&fast).await;
    let cancelled = h.finished(&first[0]).await;
    assert_eq!(cancelled.status, BuildStatus::Cancelled, "{cancelled:?}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "cancelled promptly, not after the script's sleep"
    );
    let log = h.report(&first[0]).await;
    assert!(!log.contains("slow: finished"), "{log}");
    assert!(
        log.trim_end()
            .ends_with(&format!("build cancelled: superseded by {}", &fast[..7])),
        "{log}"
    );
    // The slot is freed and the newer push builds.
    let built = h.finished(&second[0]).await;
    assert_eq!(built.status, BuildStatus::Success, "{built:?}");
    let name = format!("acme-widget-master-{}.tar.gz", &fast[..10]);
    assert!(h.config.artifacts_directory.join(&name).is_file());
    assert!(
        !h.config
            .artifacts_directory
            .join(format!("acme-widget-master-{}.tar.gz", &slow[..10]))
            .exists(),
        "the cancelled build published nothing"
    );
    let ids = [first, second].concat();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_queued_build_superseded_by_a_newer_push_never_runs() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("max-concurrent-builds: 1\n").await;
    // dev holds the only slot for a few seconds.
    let busy = h.commit("#!/bin/sh\necho 'busy: started'\nsleep 3\nmkdir -p /target\necho busy > /target/widget.tar.gz\n");
    let holder = h.push_to("dev", &busy).await;
    h.wait_for_line(&holder[0], "busy: started").await;
    let older = h.commit(WIDGET);
    let queued = h.push(&older).await;
    assert_eq!(h.record(&queued[0]).await.status, BuildStatus::Queued);
    let newer = h.commit(&WIDGET.replace("widget: done", "widget: done again"));
    let latest = h.push(&newer).await;
    let cancelled = h.finished(&queued[0]).await;
    assert_eq!(cancelled.status, BuildStatus::Cancelled, "{cancelled:?}");
    assert_eq!(cancelled.started, None, "it never left the queue");
    assert_eq!(
        cancelled.error,
        Some(format!("superseded by {}", &newer[..7]))
    );
    let log = h.report(&queued[0]).await;
    assert!(!log.contains("widget: compiling"), "it never ran:\n{log}");
    assert!(log.contains("cancelled before it started"), "{log}");
    // The other branch is not affected, and the newer push builds.
    assert_eq!(h.finished(&holder[0]).await.status, BuildStatus::Success);
    let built = h.finished(&latest[0]).await;
    assert_eq!(built.status, BuildStatus::Success, "{built:?}");
    assert!(h.report(&latest[0]).await.contains("widget: done again"));
    let ids = [holder, queued, latest].concat();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn the_maximum_execution_time_ends_a_build_in_error() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("maximum-execution-time: 2s\n").await;
    let commit = h.commit("#!/bin/sh\necho 'sleeping'\nsleep 60\n");
    let started = Instant::now();
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("maximum execution time (2s) reached")
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = h.report(&ids[0]).await;
    assert!(log.contains("sleeping"), "{log}");
    assert!(
        log.trim_end()
            .ends_with("build failed: maximum execution time (2s) reached"),
        "{log}"
    );
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn queued_builds_are_resumed_at_start_up_and_stopping_interrupts_running_ones() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    // Recorded by a server that runs nothing, then resumed by one that does.
    h.restart(false).await;
    let commit = h.commit(WIDGET);
    let ids = h.push(&commit).await;
    assert_eq!(h.record(&ids[0]).await.status, BuildStatus::Queued);
    h.restart(true).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");

    // Stopping the server stops a running build and removes its container.
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let running = h.push(&slow).await;
    h.wait_for_line(&running[0], "slow: started").await;
    let started = Instant::now();
    h.restart(false).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped promptly"
    );
    let record = h.record(&running[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("interrupted by server shutdown")
    );
    let ids = [ids, running].concat();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn with_on_shutdown_finish_a_running_build_ends_and_a_waiting_one_stays_queued() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("on-shutdown: finish\nmax-concurrent-builds: 1\n").await;
    let slow = h.commit(
        "#!/bin/sh\necho 'slow: started'\nsleep 3\nmkdir -p /target\necho x > /target/widget.tar.gz\n",
    );
    let running = h.push(&slow).await;
    h.wait_for_line(&running[0], "slow: started").await;
    // Another branch waits for the only slot.
    let waiting = h.push_to("dev", &slow).await;
    assert_eq!(h.record(&waiting[0]).await.status, BuildStatus::Queued);
    h.restart(false).await;
    let record = h.record(&running[0]).await;
    assert_eq!(
        record.status,
        BuildStatus::Success,
        "it ran to its end: {record:?}"
    );
    let record = h.record(&waiting[0]).await;
    assert_eq!(
        record.status,
        BuildStatus::Queued,
        "nothing new started: {record:?}"
    );
    let ids = [running, waiting].concat();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn out_of_memory_a_missing_artifact_and_an_unknown_commit_are_named() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("build-memory-limit: 32M\n").await;
    // The shell keeps the whole output of the substitution in memory.
    let hungry = h.commit("#!/bin/sh\nx=$(head -c 200000000 /dev/zero | tr '\\0' a)\necho ${#x}\n");
    let oom = h.push(&hungry).await;
    let record = h.finished(&oom[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(record.error.as_deref(), Some("out of memory"));

    let forgetful = h.commit("#!/bin/sh\necho 'no artifact today'\n");
    let missing = h.push(&forgetful).await;
    let record = h.finished(&missing[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("/target/widget.tar.gz") && error.contains("not found"),
        "{error}"
    );
    assert!(h.report(&missing[0]).await.contains("no artifact today"));

    let unknown = h.push("0123456789abcdef0123456789abcdef01234567").await;
    let record = h.finished(&unknown[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(error.starts_with("cannot fetch the source:"), "{error}");
    assert!(error.contains("0123456789abcdef"), "{error}");
    let log = h.report(&unknown[0]).await;
    assert!(log.contains("[zos-build] fetching file://"), "{log}");
    assert!(log.trim_end().ends_with(&error), "{log}");
    let ids = [oom, missing, unknown].concat();
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_build_can_be_cancelled_by_id_with_a_reason() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let ids = h.push(&slow).await;
    h.wait_for_line(&ids[0], "slow: started").await;
    let scheduler = h.server().state.scheduler.clone().unwrap();
    assert_eq!(scheduler.active_ids(), ids);
    let started = Instant::now();
    assert!(scheduler.cancel(&ids[0], "cancelled by an administrator"));
    assert!(
        !scheduler.cancel(&ids[0], "again"),
        "a build is cancelled once"
    );
    let record = h.finished(&ids[0]).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(record.status, BuildStatus::Cancelled, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("cancelled by an administrator")
    );
    let log = h.report(&ids[0]).await;
    assert!(
        log.trim_end()
            .ends_with("build cancelled: cancelled by an administrator"),
        "{log}"
    );
    assert!(!scheduler.cancel(&ids[0], "after the end"));
    assert!(!scheduler.cancel("ffff-0000", "unknown"));
    assert!(scheduler.active_ids().is_empty());
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn sigterm_stops_the_binary_and_its_running_build() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let ids = h.push(&slow).await;
    h.wait_for_line(&ids[0], "slow: started").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = h.server_output();
    assert!(exit.success(), "{exit:?}\n{out}");
    assert!(out.contains("SIGTERM"), "{out}");
    let record = h.record(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("interrupted by server shutdown")
    );
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn kill_9_mid_build_then_a_restart_loses_no_history_and_no_container_stays() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let commit = h.commit(WIDGET);
    let done = h.push(&commit).await;
    let before = h.finished(&done[0]).await;
    assert_eq!(before.status, BuildStatus::Success, "{before:?}");
    let slow = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let running = h.push(&slow).await;
    h.wait_for_line(&running[0], "slow: started").await;
    // SIGKILL: no handler runs, nothing is cleaned up by the process.
    child.kill().unwrap();
    child.wait().unwrap();
    let executor = common::executor().await;
    assert_eq!(
        common::containers_of(&executor, &running[0]).await.len(),
        1,
        "the killed server left its build's container behind"
    );

    h.restart(true).await;
    let record = h.record(&running[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(record.error.as_deref(), Some("interrupted by restart"));
    common::assert_no_container(&executor, &running[0]).await;
    assert_eq!(
        h.record(&done[0]).await,
        before,
        "the finished build is intact"
    );
    let log = h.report(&running[0]).await;
    assert!(
        log.contains("slow: started"),
        "the log written so far survives: {log}"
    );
    let ids = [done, running].concat();
    h.stop_and_check_clean(&ids).await;
}
