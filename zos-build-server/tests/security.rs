//! Hostile input, reproduced from the outside: each test is one hole of the
//! security review (issue 9), sent to the real server over HTTP with the
//! real Docker daemon, and fails on a server that has the hole.

use zos_build_testkit::server as support;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{common, Harness, DOCKER, REPOSITORY};
use zos_build_core::docker::{LABEL_BUILD_ID, LABEL_INSTANCE, LABEL_MANAGED};
use zos_build_core::{BuildStatus, BuildUpdate, Enqueued, NewBuild};
use zos_build_server::Config;

/// A harness whose configuration repository lists `artifact` (a file name
/// under `/target`) instead of `widget.tar.gz`.
async fn harness_with_artifact(artifact: &str, extra: &str) -> Harness {
    let mut h = Harness::prepare(extra).await;
    let branch = h.dir.path().join("config-repo").join(REPOSITORY);
    std::fs::write(
        branch.join("master.yaml"),
        format!(
            "buildscripts:\n  - build.sh\nbuild.sh:\n  baseimage: {}\n  archives: /target\n  artifact: {artifact}\n",
            common::IMAGE
        ),
    )
    .unwrap();
    h.restart(true).await;
    h
}

fn artifact_name(commit: &str) -> String {
    format!("acme-widget-master-{}.tar.gz", &commit[..10])
}

#[tokio::test]
async fn an_artifact_that_is_a_link_fails_the_build_and_publishes_nothing() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let cases = [
        (
            "ln -s /etc/hostname /target/widget.tar.gz",
            "artifact /target/widget.tar.gz is a symlink, not a regular file",
        ),
        (
            "ln -s ../../../../etc/hostname /target/widget.tar.gz",
            "artifact /target/widget.tar.gz is a symlink, not a regular file",
        ),
    ];
    let mut all = Vec::new();
    for (line, error) in cases {
        let commit = h.commit(&format!("#!/bin/sh\nset -e\nmkdir -p /target\n{line}\n"));
        let ids = h.push(&commit).await;
        let record = h.finished(&ids[0]).await;
        assert_eq!(record.status, BuildStatus::Error, "{line}: {record:?}");
        assert_eq!(record.error.as_deref(), Some(error), "{line}");
        let name = artifact_name(&commit);
        assert!(!h.config.artifacts_directory.join(&name).exists());
        let served = h
            .client
            .get(h.url(&format!("/artifacts/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), reqwest::StatusCode::NOT_FOUND, "{line}");
        all.extend(ids);
    }
    h.stop_and_check_clean(&all).await;

    // A hard link in an artifact directory: Docker's archive holds a link
    // entry, which must never be unpacked as a link on the host.
    let mut h = harness_with_artifact("dir", "").await;
    let commit = h.commit(
        "#!/bin/sh\nset -e\nmkdir -p /target/dir\necho x > /target/dir/a\nln /target/dir/a /target/dir/b\n",
    );
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("artifact /target/dir/b is a hard link, not a regular file")
    );
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_replayed_push_starts_nothing_and_cancels_nothing() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let ids = h.push(&commit).await;
    h.wait_for_line(&ids[0], "slow: started").await;
    // The same push under a new delivery id, as a replay would send it.
    h.deliveries += 10;
    let body = json!({
        "ref": "refs/heads/master",
        "after": commit,
        "deleted": false,
        "repository": {"full_name": REPOSITORY, "name": "widget"},
        "head_commit": {"id": commit, "message": "change"},
        "commits": [{"id": commit, "message": "change"}],
    })
    .to_string()
    .into_bytes();
    let answer: Value = h
        .client
        .post(h.url("/hook/monitor-watch"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "replayed-delivery")
        .header(
            "X-Hub-Signature-256",
            zos_build_server::http::signature::sign(support::SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "duplicate", "{answer}");
    let record = h.record(&ids[0]).await;
    assert_eq!(
        record.status,
        BuildStatus::Building,
        "the running build goes on: {record:?}"
    );
    let active = h.server().state.history.active().await.unwrap();
    assert_eq!(active.len(), 1, "nothing new was queued: {active:?}");
    let scheduler = h.server().state.scheduler.clone().unwrap();
    assert!(scheduler.cancel(&ids[0], "test over"));
    h.finished(&ids[0]).await;
    h.stop_and_check_clean(&ids).await;
}

/// Resident memory of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn a_300_mb_line_never_sits_in_the_servers_memory() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let commit =
        h.commit("#!/bin/sh\nhead -c 300000000 /dev/zero | tr '\\0' a\necho\necho after\n");
    let ids = h.push(&commit).await;
    let mut peak = 0;
    let start = Instant::now();
    let record = loop {
        peak = peak.max(resident_bytes(child.id()).unwrap_or(0));
        let record = h.record(&ids[0]).await;
        if record.status.is_finished() {
            break record;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the build did not end: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    println!("peak resident memory while a 300 MB line was printed: {peak} bytes");
    assert!(peak > 0, "the server's memory was read");
    assert!(peak < 150 << 20, "the server reached {} MiB", peak >> 20);
    // 300 MB is past the default log limit of 256 MiB.
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("log size limit of 256 MiB reached")
    );
    let log = h.config.build_log_path(&ids[0]);
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size <= (256 << 20) + (2 << 20), "log of {size} bytes");
}

#[tokio::test]
async fn a_2_gb_log_is_cut_at_the_limit_and_the_build_fails() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit(
        "#!/bin/sh\nyes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 2000000000\necho 'never reached'\n",
    );
    let ids = h.push(&commit).await;
    let record = h
        .wait_for(&ids[0], Duration::from_secs(300), "finished", |r| {
            r.status.is_finished()
        })
        .await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("log size limit of 256 MiB reached")
    );
    let path = h.config.build_log_path(&ids[0]);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        (255 << 20..=(256 << 20) + (1 << 20)).contains(&size),
        "log of {size} bytes"
    );
    // The last line still says why it ended.
    let text = std::fs::read(&path).unwrap();
    let tail = String::from_utf8_lossy(&text[text.len() - 4096..]);
    assert!(
        tail.contains("build failed: log size limit of 256 MiB reached"),
        "{tail}"
    );
    assert!(!tail.contains("never reached"));
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn check_config_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zos-build.yaml");
    std::fs::write(
        &file,
        "webhook-secret: hook-s3cret-value\nadmin-token: admin-s3cret-value\n\
         github-token: ghp_s3cretvalue\ngit-base-url: https://bot:git-s3cret-value@git.example.org/\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zos-build-server"))
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [
        "hook-s3cret-value",
        "admin-s3cret-value",
        "ghp_s3cretvalue",
        "git-s3cret-value",
        "bot:",
    ] {
        assert!(!text.contains(secret), "{secret} was printed:\n{text}");
    }
    assert!(text.contains("<set>"), "{text}");
    assert!(text.contains("https://***@git.example.org"), "{text}");
}

#[tokio::test]
async fn credentials_in_the_git_base_url_are_never_shown() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    // Port 9 (discard) refuses: the fetch fails, and its error is shown.
    h.yaml = h.yaml.replace(
        &format!(
            "git-base-url: file://{}\n",
            h.dir.path().join("git").display()
        ),
        "git-base-url: http://robot:pa55w0rd-value@127.0.0.1:9\n",
    );
    h.config = Config::from_yaml(&h.yaml, Path::new("test.yaml")).unwrap();
    h.restart(true).await;
    let commit = h.commit("#!/bin/sh\necho hi\n");
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(
        error.contains("http://***@127.0.0.1:9/acme/widget"),
        "{error}"
    );
    let mut seen = String::new();
    for path in [
        format!("/report/{}", ids[0]),
        format!("/api/builds/{}", ids[0]),
        "/build/history".to_string(),
        "/build/status".to_string(),
        "/api/builds".to_string(),
    ] {
        let text = h
            .client
            .get(h.url(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push_str(&text);
        assert!(
            !text.contains("pa55w0rd-value") && !text.contains("robot:"),
            "{path} shows the credentials:\n{text}"
        );
    }
    assert!(seen.contains("***@127.0.0.1:9"), "{seen}");
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_running_build_container_has_the_default_limits() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("").await;
    let commit = h.commit("#!/bin/sh\necho 'slow: started'\nsleep 60\n");
    let ids = h.push(&commit).await;
    h.wait_for_line(&ids[0], "slow: started").await;
    let record = h.record(&ids[0]).await;
    let container = record
        .container_id
        .clone()
        .expect("the container is recorded");
    let executor = common::executor().await;
    let info = executor
        .docker()
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = info.host_config.unwrap();
    assert_eq!(host.pids_limit, Some(4096));
    assert_eq!(host.memory, Some(16 << 30));
    assert_eq!(host.memory_swap, Some(16 << 30));
    assert_eq!(
        host.security_opt.as_deref(),
        Some(&["no-new-privileges".to_string()][..])
    );
    assert!(host.cap_add.unwrap_or_default().is_empty());
    assert_ne!(host.privileged, Some(true));
    let scheduler = h.server().state.scheduler.clone().unwrap();
    assert!(scheduler.cancel(&ids[0], "test over"));
    h.finished(&ids[0]).await;
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn retention_deletes_the_logs_beyond_the_newest_50_and_keeps_the_builds() {
    let h = Harness::start("sweep-interval: 1s\n").await;
    let history = h.server().state.history.clone();
    let mut ids = Vec::new();
    for i in 0..51 {
        let commit = format!("{i:040x}");
        let build = NewBuild::new(REPOSITORY, "master", &commit, "build.sh", common::IMAGE);
        let Enqueued::Queued(records) = history.enqueue(None, vec![build]).await.unwrap() else {
            panic!("queued");
        };
        let id = records[0].id.clone();
        std::fs::create_dir_all(&h.config.logs_directory).unwrap();
        std::fs::write(h.config.build_log_path(&id), format!("log of build {i}\n")).unwrap();
        history
            .update(&id, BuildUpdate::finished(BuildStatus::Success, None, None))
            .await
            .unwrap();
        ids.push(id);
    }
    let oldest = h.config.build_log_path(&ids[0]);
    let start = Instant::now();
    while std::fs::read_to_string(&oldest).unwrap() == "log of build 0\n" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the 51st-newest log is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, id) in ids.iter().enumerate().skip(1) {
        let log = std::fs::read_to_string(h.config.build_log_path(id)).unwrap();
        assert_eq!(log, format!("log of build {i}\n"), "{id} lost its log");
    }
    let report = h.report(&ids[0]).await;
    assert_eq!(report, zos_build_server::sweeper::PRUNED_LOG);
    let entry = h
        .client
        .get(h.url(&format!("/api/builds/{}", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(entry.status(), reqwest::StatusCode::OK, "the entry is kept");
    assert_eq!(h.report(&ids[50]).await, "log of build 50\n");
}

#[tokio::test]
async fn the_periodic_sweep_removes_an_orphan_container() {
    let _docker = DOCKER.lock().await;
    let h = Harness::start("sweep-interval: 1s\n").await;
    let executor = common::executor().await;
    let instance = zos_build_server::server::instance_name(&h.config.data_directory);
    let build_id = common::build_id("orphan");
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_INSTANCE.to_string(), instance),
        (LABEL_BUILD_ID.to_string(), build_id.clone()),
    ]);
    let created = executor
        .docker()
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(common::IMAGE.to_string()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(labels),
                host_config: Some(HostConfig::default()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    executor
        .docker()
        .start_container(&created.id, None)
        .await
        .unwrap();
    let start = Instant::now();
    while !common::containers_of(&executor, &build_id).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the orphan container is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A running build is never swept, though sweeps run every second.
    let mut h = h;
    let commit =
        h.commit("#!/bin/sh\nset -e\nsleep 4\nmkdir -p /target\necho ok > /target/widget.tar.gz\n");
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn secrets_printed_by_a_build_are_masked_in_its_log() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::start("admin-token: adm1n-t0ken-value\n").await;
    let commit = h.commit(&format!(
        "#!/bin/sh\necho 'hook {}'\necho 'admin adm1n-t0ken-value'\nmkdir -p /target\necho x > /target/widget.tar.gz\n",
        support::SECRET
    ));
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let log = h.report(&ids[0]).await;
    assert!(
        log.contains("hook ***\n") && log.contains("admin ***\n"),
        "{log}"
    );
    assert!(
        !log.contains(support::SECRET) && !log.contains("adm1n-t0ken-value"),
        "{log}"
    );
    h.stop_and_check_clean(&ids).await;
}
