//! Commit statuses for real: signed pushes build with the real Docker
//! daemon and git, and a GitHub stand-in (the only stand-in, speaking the
//! REST API's documented shapes) hears about every build script: `pending`
//! when queued and when building, then `success`, `failure` or `error`, in
//! order, through retries, rate limits, an outage and a crash.

use zos_build_testkit::server as support;

use std::time::{Duration, Instant};
use support::{git, Harness, DOCKER, REPOSITORY};
use zos_build_core::BuildStatus;
use zos_build_testkit::github::{GitHubStandIn, StatusRecord};

const TOKEN: &str = "ghp_statusTokenNeverShown0123456789";
const PUBLIC: &str = "http://builds.example.org";

/// A script that builds its artifact, printing the token (masked).
fn script(name: &str, exit: u8) -> String {
    format!(
        "#!/bin/sh\necho '{name}: building with {TOKEN}'\nmkdir -p /target\n\
         printf '{name}' > /target/widget.tar.gz\nexit {exit}\n"
    )
}

/// A harness whose branch `master` lists two scripts, `build.sh` and
/// `tools/other.sh`, talking to `github`.
async fn two_scripts(github: &GitHubStandIn, extra: &str) -> Harness {
    github.add_repository(REPOSITORY);
    let h = Harness::prepare(&format!(
        "github-token: {TOKEN}\ngithub-api-url: {}\npublic-host: {PUBLIC}\n{extra}",
        github.url()
    ))
    .await;
    let branch_file = h.dir.path().join("config-repo/acme/widget/master.yaml");
    let one = std::fs::read_to_string(&branch_file).unwrap();
    let settings = one.split_once("build.sh:\n").unwrap().1.to_string();
    std::fs::write(
        &branch_file,
        format!(
            "buildscripts:\n  - build.sh\n  - tools/other.sh\nbuild.sh:\n{settings}tools/other.sh:\n{settings}"
        ),
    )
    .unwrap();
    h
}

/// Commits `build.sh` and `tools/other.sh`; returns the commit.
fn commit_both(h: &Harness, build: &str, other: &str) -> String {
    let repo = h.repo();
    std::fs::create_dir_all(repo.join("tools")).unwrap();
    std::fs::write(repo.join("tools/other.sh"), other).unwrap();
    git(&repo, &["add", "tools/other.sh"]);
    h.commit(build)
}

/// Waits until `context` of `sha` has `count` statuses on the stand-in.
async fn statuses_of(
    github: &GitHubStandIn,
    sha: &str,
    context: &str,
    count: usize,
    limit: Duration,
) -> Vec<StatusRecord> {
    let start = Instant::now();
    loop {
        let all: Vec<StatusRecord> = github
            .statuses(REPOSITORY, sha)
            .into_iter()
            .filter(|s| s.context == context)
            .collect();
        if all.len() >= count {
            return all;
        }
        assert!(
            start.elapsed() < limit,
            "{context}: {} statuses of {count} after {limit:?}: {all:#?}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of `GET path`.
async fn text_of(h: &Harness, path: &str) -> String {
    let response = h.client.get(h.url(path)).send().await.unwrap();
    response.text().await.unwrap()
}

/// Every build of `/api/builds` shows its status's delivery as `github`
/// (but the loads of the local configuration directory, which have no
/// commit and so no status).
async fn assert_every_build_says(h: &Harness, github: &str) {
    let builds: serde_json::Value = serde_json::from_str(&text_of(h, "/api/builds").await).unwrap();
    let builds = builds.as_array().unwrap();
    assert!(!builds.is_empty());
    for build in builds
        .iter()
        .filter(|b| b["name"] != "Configuration reloader")
    {
        assert_eq!(build["github"], github, "{build}");
    }
}

fn summary(statuses: &[StatusRecord]) -> Vec<(String, String)> {
    statuses
        .iter()
        .map(|s| (s.state.clone(), s.description.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn each_build_script_has_its_context_going_pending_then_success_or_failure() {
    let _docker = DOCKER.lock().await;
    let github = GitHubStandIn::start(TOKEN).await;
    let mut h = two_scripts(&github, "").await;
    h.restart(true).await;
    let commit = commit_both(&h, &script("build", 0), &script("other", 0));
    let ids = h.push(&commit).await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert_eq!(h.finished(id).await.status, BuildStatus::Success);
    }
    for (id, context) in ids
        .iter()
        .zip(["zos-build/build.sh", "zos-build/tools/other.sh"])
    {
        let statuses = statuses_of(&github, &commit, context, 3, Duration::from_secs(30)).await;
        let states = summary(&statuses);
        assert_eq!(states.len(), 3, "{states:?}");
        assert_eq!(states[0], ("pending".into(), "queued".into()));
        assert_eq!(states[1], ("pending".into(), "building".into()));
        assert_eq!(states[2].0, "success");
        assert!(
            states[2].1.starts_with("built in ") && states[2].1.ends_with(" s"),
            "{states:?}"
        );
        for status in &statuses {
            assert_eq!(
                status.target_url.as_deref(),
                Some(format!("{PUBLIC}/report/{id}").as_str())
            );
        }
    }
    // Every request carried GitHub's headers.
    let requests = github.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(
            request.accept.as_deref(),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.api_version.as_deref(), Some("2022-11-28"));
        assert!(request
            .user_agent
            .as_deref()
            .unwrap_or("")
            .starts_with("zos-build/"));
    }

    // A failing script: `failure` with its exit code, the other `success`.
    let commit = commit_both(&h, &script("build", 0), &script("other", 2));
    let failing = h.push(&commit).await;
    let record = h.finished(&failing[1]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let statuses = statuses_of(
        &github,
        &commit,
        "zos-build/tools/other.sh",
        3,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        summary(&statuses)[2],
        ("failure".into(), "exit code 2".into())
    );
    let statuses = statuses_of(
        &github,
        &commit,
        "zos-build/build.sh",
        3,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(summary(&statuses)[2].0, "success");

    // The token is in no log and no answer.
    for id in ids.iter().chain(&failing) {
        let log = h.report(id).await;
        assert!(log.contains("building with ***"), "{log}");
        assert!(!log.contains(TOKEN), "{log}");
    }
    for path in [
        "/build/status",
        "/build/history",
        "/build/history/full",
        "/api/builds",
        "/metrics",
    ] {
        let body = text_of(&h, path).await;
        assert!(!body.contains(TOKEN), "{path}: {body}");
    }
    let metrics = text_of(&h, "/metrics").await;
    assert!(
        metrics.contains("zos_build_github_statuses_total{outcome=\"sent\"} 12"),
        "{metrics}"
    );
    // Each build says where its status is.
    assert_every_build_says(&h, "sent").await;
    let all = [ids, failing].concat();
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn a_502_is_retried_and_a_429_waits_as_long_as_github_says() {
    let _docker = DOCKER.lock().await;
    let github = GitHubStandIn::start(TOKEN).await;
    let mut h = two_scripts(&github, "max-concurrent-builds: 1\n").await;
    h.restart(true).await;
    // The first status (queued, build.sh) meets a 502, then a 429 asking
    // for 2 s.
    github.fail_next(1, 502);
    let commit = commit_both(&h, &script("build", 0), &script("other", 0));
    let ids = h.push(&commit).await;
    let statuses = statuses_of(
        &github,
        &commit,
        "zos-build/build.sh",
        3,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(summary(&statuses)[0], ("pending".into(), "queued".into()));
    assert_eq!(summary(&statuses)[2].0, "success");
    for id in &ids {
        h.finished(id).await;
    }
    statuses_of(
        &github,
        &commit,
        "zos-build/tools/other.sh",
        3,
        Duration::from_secs(60),
    )
    .await;

    github.rate_limit_next(1, 2);
    let limited_at = Instant::now();
    let commit = commit_both(&h, &script("build again", 0), &script("other again", 0));
    let more = h.push(&commit).await;
    let statuses = statuses_of(
        &github,
        &commit,
        "zos-build/build.sh",
        3,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        statuses[0].received.duration_since(limited_at) >= Duration::from_secs(2),
        "the status after a 429 with Retry-After: 2 waited 2 s"
    );
    assert_eq!(summary(&statuses)[0], ("pending".into(), "queued".into()));
    for id in &more {
        h.finished(id).await;
    }
    statuses_of(
        &github,
        &commit,
        "zos-build/tools/other.sh",
        3,
        Duration::from_secs(60),
    )
    .await;
    let metrics = text_of(&h, "/metrics").await;
    assert!(
        metrics.contains("zos_build_github_statuses_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    let all = [ids, more].concat();
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn a_401_is_said_once_and_never_retried() {
    let _docker = DOCKER.lock().await;
    let github = GitHubStandIn::start("another-token").await;
    let mut h = two_scripts(&github, "").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let commit = commit_both(&h, &script("build", 0), &script("other", 0));
    let ids = h.push(&commit).await;
    for id in &ids {
        h.finished(id).await;
    }
    // 2 scripts × 3 statuses, each tried once.
    let start = Instant::now();
    while github.requests().len() < 6 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:#?}",
            github.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(github.requests().len(), 6, "a 401 is not retried");
    assert!(github.statuses(REPOSITORY, &commit).is_empty());
    let metrics = text_of(&h, "/metrics").await;
    assert!(
        metrics.contains("zos_build_github_statuses_total{outcome=\"failed\"} 6"),
        "{metrics}"
    );
    assert_every_build_says(&h, "failed (401)").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let output = h.server_output();
    assert_eq!(
        output.matches("GitHub refused a commit status").count(),
        1,
        "said once:\n{output}"
    );
    assert!(output.contains("repo:status"), "{output}");
    assert!(!output.contains(TOKEN), "{output}");
    h.restart(true).await;
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn statuses_survive_an_outage_and_a_crash_ends_in_error() {
    let _docker = DOCKER.lock().await;
    let github = GitHubStandIn::start(TOKEN).await;
    let mut h = two_scripts(&github, "").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;

    // GitHub is down for a whole build: its statuses wait, and arrive in
    // order once it is back.
    github.go_down().await;
    let commit = commit_both(&h, &script("build", 0), &script("other", 0));
    let ids = h.push(&commit).await;
    for id in &ids {
        h.finished(id).await;
    }
    assert!(github.statuses(REPOSITORY, &commit).is_empty());
    github.come_back().await;
    for context in ["zos-build/build.sh", "zos-build/tools/other.sh"] {
        let statuses = statuses_of(&github, &commit, context, 3, Duration::from_secs(60)).await;
        let states: Vec<String> = summary(&statuses).into_iter().map(|(s, _)| s).collect();
        assert_eq!(states, ["pending", "pending", "success"], "{context}");
    }

    // kill -9 mid-build: after the restart, the interrupted build's
    // context ends `error`, nothing stays `pending`.
    let slow = commit_both(
        &h,
        "#!/bin/sh\necho 'slow: started'\nsleep 60\n",
        &script("other", 0),
    );
    let running = h.push(&slow).await;
    h.wait_for_line(&running[0], "slow: started").await;
    statuses_of(
        &github,
        &slow,
        "zos-build/build.sh",
        2,
        Duration::from_secs(30),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    h.restart(true).await;
    let statuses = statuses_of(
        &github,
        &slow,
        "zos-build/build.sh",
        3,
        Duration::from_secs(30),
    )
    .await;
    let last = statuses.last().unwrap();
    assert_eq!(last.state, "error", "{statuses:#?}");
    assert_eq!(
        last.description.as_deref(),
        Some("interrupted by a restart of the server")
    );
    // The other script of that push ends too, one way or the other.
    let other = h.finished(&running[1]).await;
    let statuses = statuses_of(
        &github,
        &slow,
        "zos-build/tools/other.sh",
        1,
        Duration::from_secs(30),
    )
    .await;
    let start = Instant::now();
    let mut last_state = statuses.last().unwrap().state.clone();
    while last_state == "pending" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{other:?}: stays pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        last_state = github
            .statuses(REPOSITORY, &slow)
            .into_iter()
            .rfind(|s| s.context == "zos-build/tools/other.sh")
            .unwrap()
            .state;
    }
    let all = [ids, running].concat();
    h.stop_and_check_clean(&all).await;
}
