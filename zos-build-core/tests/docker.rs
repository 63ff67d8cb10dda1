//! The Docker executor against the real daemon.
//!
//! Every test runs real containers from the busybox test image and ends by
//! asserting that no container of its build is left.

use zos_build_testkit::docker as common;

use async_trait::async_trait;
use common::{assert_no_container, build_id, containers_of, executor, IMAGE};
use std::time::Duration;
use zos_build_core::sink::{
    BroadcastSink, FanOut, FileSink, Followed, MaskSecrets, SizeCap, VecSink,
};
use zos_build_core::{
    BuildError, BuildSpec, CancellationToken, Command, DockerExecutor, Executor, LogEvent, LogSink,
    LogStream, PendingTree, Phase, SinkError, Termination,
};

fn sh(script: &str) -> Command {
    Command::Exec(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

fn texts(sink: &VecSink, stream: LogStream) -> Vec<String> {
    sink.events
        .iter()
        .filter(|e| e.stream == stream)
        .map(|e| e.text.clone())
        .collect()
}

async fn run(
    executor: &DockerExecutor,
    spec: &BuildSpec,
) -> (Result<zos_build_core::BuildOutcome, BuildError>, VecSink) {
    let mut sink = VecSink::default();
    let result = executor
        .run(spec, &mut sink, &CancellationToken::new())
        .await;
    assert_no_container(executor, &spec.build_id).await;
    (result, sink)
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let executor = executor().await;
    let ok = BuildSpec::new(build_id("exit0"), IMAGE, sh("exit 0"));
    let (outcome, sink) = run(&executor, &ok).await;
    let outcome = outcome.unwrap();
    assert!(outcome.succeeded());
    assert_eq!(outcome.exit_code, Some(0));
    assert!(sink.finished, "the sink is finished");
    assert_eq!(
        sink.container.as_deref(),
        Some(outcome.container_id.as_str()),
        "the sink learnt the container when it started"
    );

    let failing = BuildSpec::new(build_id("exit3"), IMAGE, sh("echo before; exit 3"));
    let (outcome, sink) = run(&executor, &failing).await;
    let outcome = outcome.unwrap();
    assert!(!outcome.succeeded());
    assert_eq!(outcome.termination, Termination::Exited);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.describe(), "exited with status 3");
    assert_eq!(texts(&sink, LogStream::Stdout), ["before"]);
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_in_order_with_a_partial_last_line() {
    let executor = executor().await;
    let script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf tail";
    let spec = BuildSpec::new(build_id("streams"), IMAGE, sh(script));
    let (outcome, sink) = run(&executor, &spec).await;
    assert!(outcome.unwrap().succeeded());
    assert_eq!(
        texts(&sink, LogStream::Stdout),
        ["out1", "out2", "out3", "out4", "out5", "tail"]
    );
    assert_eq!(
        texts(&sink, LogStream::Stderr),
        ["err1", "err2", "err3", "err4", "err5"]
    );
    let seqs: Vec<u64> = sink.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (0..seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "sequence numbers have no gaps");
}

#[tokio::test]
async fn binary_output_is_passed_on_lossily() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("binary"), IMAGE, sh(r"printf 'a\377b\000c\n'"));
    let (outcome, sink) = run(&executor, &spec).await;
    assert!(outcome.unwrap().succeeded());
    assert_eq!(texts(&sink, LogStream::Stdout), ["a\u{fffd}b\0c"]);
}

/// Checks every stdout line against the next expected number, without
/// keeping a million lines in memory.
struct Counting {
    next: u64,
    wrong: Vec<String>,
}

#[async_trait]
impl LogSink for Counting {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        for event in events.iter().filter(|e| e.stream == LogStream::Stdout) {
            self.next += 1;
            if event.text != self.next.to_string() && self.wrong.len() < 10 {
                self.wrong.push(event.text.clone());
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_lines_lose_none() {
    let executor = executor().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("build.log");
    let (broadcast, feed) = BroadcastSink::new(1 << 20);
    let mut follower = feed.follow().unwrap();
    let followed = tokio::spawn(async move {
        let (mut lines, mut missed) = (0u64, 0u64);
        while let Some(item) = follower.next().await {
            match item {
                Followed::Line(_) => lines += 1,
                Followed::Missed(n) => missed += n,
            }
        }
        (lines, missed)
    });
    let mut sink = FanOut::new()
        .with(Counting {
            next: 0,
            wrong: Vec::new(),
        })
        .with(FileSink::create(&log).await.unwrap())
        .with(broadcast);
    let spec = BuildSpec::new(build_id("million"), IMAGE, sh("seq 1 1000000"));
    let outcome = executor
        .run(&spec, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.succeeded());
    assert_eq!(outcome.log_lines, 1_000_000);
    let (lines, missed) = followed.await.unwrap();
    assert_eq!(
        lines + missed,
        1_000_000,
        "the follower accounts for every line"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1_000_000);
    assert!(text
        .lines()
        .enumerate()
        .all(|(i, l)| l == (i + 1).to_string()));
    assert_no_container(&executor, &spec.build_id).await;
}

#[tokio::test]
async fn the_overall_timeout_kills_the_build() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("timeout"), IMAGE, sh("echo started; sleep 60"))
        .timeout(Duration::from_secs(2));
    let (outcome, sink) = run(&executor, &spec).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(!outcome.succeeded());
    assert!(
        outcome.duration < Duration::from_secs(30),
        "{:?}",
        outcome.duration
    );
    assert_eq!(texts(&sink, LogStream::Stdout), ["started"]);
    let system = texts(&sink, LogStream::System);
    assert!(
        system.iter().any(|l| l.contains("time limit")),
        "{system:?}"
    );
}

#[tokio::test]
async fn the_no_output_timeout_kills_a_silent_build() {
    let executor = executor().await;
    // Output keeps it alive for 3 s, then silence.
    let script = "for i in 1 2 3; do echo tick$i; sleep 1; done; sleep 60";
    let spec = BuildSpec::new(build_id("silent"), IMAGE, sh(script))
        .no_output_timeout(Duration::from_secs(2));
    let (outcome, sink) = run(&executor, &spec).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.termination, Termination::NoOutput);
    assert_eq!(texts(&sink, LogStream::Stdout), ["tick1", "tick2", "tick3"]);
}

#[tokio::test]
async fn cancellation_stops_the_build_promptly() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("cancel"), IMAGE, sh("echo running; sleep 60"));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        trigger.cancel();
    });
    let mut sink = VecSink::default();
    let started = std::time::Instant::now();
    let outcome = executor.run(&spec, &mut sink, &cancel).await.unwrap();
    assert_eq!(outcome.termination, Termination::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(texts(&sink, LogStream::Stdout), ["running"]);
    assert_no_container(&executor, &spec.build_id).await;
}

#[tokio::test]
async fn out_of_memory_is_reported() {
    let executor = executor().await;
    // The shell keeps the whole output of the substitution in memory.
    let script = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let spec = BuildSpec::new(build_id("oom"), IMAGE, sh(script)).memory_limit(32 * 1024 * 1024);
    let (outcome, _) = run(&executor, &spec).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.termination, Termination::OutOfMemory, "{outcome:?}");
    assert!(!outcome.succeeded());
}

#[tokio::test]
async fn artifacts_are_extracted_and_a_missing_one_is_named() {
    let executor = executor().await;
    let dir = tempfile::tempdir().unwrap();
    let script = "mkdir -p /target/tree/sub && echo payload > /target/result.tar.gz && echo deep > /target/tree/sub/file";
    let spec = BuildSpec::new(build_id("artifact"), IMAGE, sh(script))
        .artifact("/target/result.tar.gz")
        .artifact("/target/tree")
        .artifact_dir(dir.path());
    let (outcome, _) = run(&executor, &spec).await;
    let outcome = outcome.unwrap();
    assert_eq!(
        outcome.artifacts,
        [dir.path().join("result.tar.gz"), dir.path().join("tree")]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("result.tar.gz")).unwrap(),
        "payload\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tree/sub/file")).unwrap(),
        "deep\n"
    );

    let missing = BuildSpec::new(build_id("no-artifact"), IMAGE, sh("true"))
        .artifact("/target/nothing.tar.gz")
        .artifact_dir(dir.path());
    let (result, _) = run(&executor, &missing).await;
    match result {
        Err(BuildError::ArtifactMissing { path }) => assert_eq!(path, "/target/nothing.tar.gz"),
        other => panic!("expected a missing artifact, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_image_is_an_error_naming_it() {
    let executor = executor().await;
    let image = "zos-build-test/does-not-exist:never";
    let spec = BuildSpec::new(build_id("no-image"), image, sh("true"));
    let (result, sink) = run(&executor, &spec).await;
    let err = result.unwrap_err();
    assert!(matches!(err, BuildError::Image { .. }), "{err:?}");
    assert!(err.to_string().contains(image), "{err}");
    let system = texts(&sink, LogStream::System);
    assert!(
        system.iter().any(|l| l.contains("pulling image")),
        "{system:?}"
    );
}

#[tokio::test]
async fn the_source_tree_is_copied_in_and_its_script_runs() {
    let executor = executor().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("autobuild")).unwrap();
    std::fs::write(src.path().join("README"), "hello from the host\n").unwrap();
    // Not executable on the host: the executor makes it so, as the old service did.
    std::fs::write(
        src.path().join("autobuild/build.sh"),
        "#!/bin/sh\nset -e\ncat /myrepo/README\nls /myrepo/autobuild\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("README", src.path().join("link")).unwrap();
    let spec = BuildSpec::new(
        build_id("source"),
        IMAGE,
        Command::ScriptFile("/myrepo/autobuild/build.sh".into()),
    )
    .source(src.path(), "/myrepo");
    let (outcome, sink) = run(&executor, &spec).await;
    assert!(outcome.unwrap().succeeded(), "{:?}", sink.events);
    assert_eq!(
        texts(&sink, LogStream::Stdout),
        ["hello from the host", "build.sh"]
    );
}

/// Lines and the phases the executor timed.
#[derive(Default)]
struct PhaseSink {
    lines: VecSink,
    phases: Vec<(Phase, Duration)>,
}

#[async_trait]
impl LogSink for PhaseSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        self.lines.write(events).await
    }

    async fn phase(&mut self, phase: Phase, elapsed: Duration) -> Result<(), SinkError> {
        self.phases.push((phase, elapsed));
        Ok(())
    }
}

#[tokio::test]
async fn a_tree_still_being_fetched_goes_into_a_container_created_meanwhile() {
    let executor = executor().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("autobuild")).unwrap();
    std::fs::write(src.path().join("README"), "not executable\n").unwrap();
    // Not executable on the host: its entry in the upload says it is, and
    // nothing else becomes executable.
    std::fs::write(
        src.path().join("autobuild/build.sh"),
        "#!/bin/sh\nset -e\n[ -x \"$0\" ] && echo script executable\n\
         [ -x /myrepo/README ] || echo readme not executable\n\
         mkdir -p /out; echo built > /out/a.txt\n",
    )
    .unwrap();
    let id = build_id("fetching");
    let out = tempfile::tempdir().unwrap();
    let spec = BuildSpec::new(
        id.clone(),
        IMAGE,
        Command::ScriptFile("/myrepo/autobuild/build.sh".into()),
    )
    .source("/the/tree/is/not/known/yet", "/myrepo")
    .artifact("/out/a.txt")
    .artifact_dir(out.path());
    // The tree comes only once the container exists: the executor created
    // it without waiting for the tree.
    let (executor_ref, dir) = (&executor, src.path().to_path_buf());
    let tree: PendingTree<'_> = Box::pin(async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while containers_of(executor_ref, &id).await.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err("no container was created while the tree was fetched".to_string());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(dir)
    });
    let mut sink = PhaseSink::default();
    let outcome = executor
        .run_fetching(&spec, tree, &mut sink, &CancellationToken::new())
        .await;
    assert_no_container(&executor, &spec.build_id).await;
    let outcome = outcome.unwrap();
    assert!(outcome.succeeded(), "{:?}", sink.lines.events);
    assert_eq!(
        texts(&sink.lines, LogStream::Stdout),
        ["script executable", "readme not executable"]
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("a.txt")).unwrap(),
        "built\n"
    );
    let phases: Vec<Phase> = sink.phases.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        phases,
        [Phase::Create, Phase::Upload, Phase::Run, Phase::Extract]
    );

    // A fetch that fails runs nothing, and the container goes, whether it
    // fails before the container exists (while the create call is in
    // flight) or after.
    // (A create call takes about 10 ms here: 2 ms in, it is in flight.)
    for (name, delay) in [("fetch-fails-early", 2), ("fetch-fails-later", 300)] {
        let failing = BuildSpec::new(
            build_id(name),
            IMAGE,
            Command::ScriptFile("/myrepo/autobuild/build.sh".into()),
        )
        .source("/not/yet", "/myrepo");
        let tree: PendingTree<'_> = Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Err("git said no".to_string())
        });
        let mut sink = PhaseSink::default();
        let result = executor
            .run_fetching(&failing, tree, &mut sink, &CancellationToken::new())
            .await;
        // Long enough for a create call left behind to have made its container.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_no_container(&executor, &failing.build_id).await;
        match result {
            Err(BuildError::SourceUnavailable(message)) => assert_eq!(message, "git said no"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(sink.lines.events.is_empty(), "{:?}", sink.lines.events);
    }
}

#[tokio::test]
async fn inline_scripts_env_and_workdir() {
    let executor = executor().await;
    let spec = BuildSpec::new(
        build_id("inline"),
        IMAGE,
        Command::Inline {
            interpreter: vec!["/bin/sh".into(), "-e".into()],
            script: "echo \"$GREETING from $(pwd)\"\n".into(),
        },
    )
    .env("GREETING", "hi; there")
    .workdir("/tmp");
    let (outcome, sink) = run(&executor, &spec).await;
    assert!(outcome.unwrap().succeeded());
    assert_eq!(texts(&sink, LogStream::Stdout), ["hi; there from /tmp"]);
}

#[tokio::test]
async fn secrets_are_masked() {
    let executor = executor().await;
    let spec = BuildSpec::new(
        build_id("secret"),
        IMAGE,
        sh("echo token=s3cr3t-value; echo again s3cr3t-value >&2"),
    );
    let mut sink = MaskSecrets::new(VecSink::default(), ["s3cr3t-value"]);
    let outcome = executor
        .run(&spec, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.succeeded());
    assert_no_container(&executor, &spec.build_id).await;
    assert_eq!(texts(sink.inner(), LogStream::Stdout), ["token=***"]);
    assert_eq!(texts(sink.inner(), LogStream::Stderr), ["again ***"]);
    // And on disk, through the file sink.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut sink = MaskSecrets::new(FileSink::create(&log).await.unwrap(), ["s3cr3t-value"]);
    let spec = BuildSpec::new(build_id("secret2"), IMAGE, sh("echo token=s3cr3t-value"));
    executor
        .run(&spec, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "token=***\n");
    assert_no_container(&executor, &spec.build_id).await;
}

#[tokio::test]
async fn the_size_cap_cuts_the_log_with_one_marker() {
    let executor = executor().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut sink = SizeCap::new(FileSink::create(&log).await.unwrap(), 1000);
    let spec = BuildSpec::new(build_id("cap"), IMAGE, sh("seq 1 100000"));
    let outcome = executor
        .run(&spec, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.succeeded(), "the build itself is not affected");
    assert_no_container(&executor, &spec.build_id).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (marker, kept) = lines.split_last().unwrap();
    assert!(marker.contains("log truncated"), "{marker}");
    assert!(kept.iter().map(|l| l.len() + 1).sum::<usize>() <= 1000);
    assert_eq!(kept.first(), Some(&"1"));
    assert_eq!(text.matches("log truncated").count(), 1);
}

#[tokio::test]
async fn network_off_leaves_only_loopback() {
    let executor = executor().await;
    let off = BuildSpec::new(build_id("net-off"), IMAGE, sh("ls /sys/class/net")).network(false);
    let (outcome, sink) = run(&executor, &off).await;
    assert!(outcome.unwrap().succeeded());
    assert_eq!(texts(&sink, LogStream::Stdout), ["lo"]);

    let on = BuildSpec::new(build_id("net-on"), IMAGE, sh("ls /sys/class/net"))
        .extra_host("hub.example", "127.0.0.9");
    let (outcome, sink) = run(&executor, &on).await;
    assert!(outcome.unwrap().succeeded());
    let interfaces = texts(&sink, LogStream::Stdout);
    assert!(interfaces.len() > 1, "{interfaces:?}");

    let hosts = BuildSpec::new(build_id("hosts"), IMAGE, sh("grep hub.example /etc/hosts"))
        .extra_host("hub.example", "127.0.0.9");
    let (outcome, sink) = run(&executor, &hosts).await;
    assert!(outcome.unwrap().succeeded());
    assert!(texts(&sink, LogStream::Stdout)[0].starts_with("127.0.0.9"));
}

#[tokio::test]
async fn dropping_the_build_future_removes_the_container() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("dropped"), IMAGE, sh("echo up; sleep 60"));
    let mut sink = VecSink::default();
    let cancel = CancellationToken::new();
    let run = executor.run(&spec, &mut sink, &cancel);
    // The future is dropped when the timeout fires, mid-build.
    let result = tokio::time::timeout(Duration::from_secs(3), run).await;
    assert!(result.is_err(), "the build cannot have finished");
    assert_eq!(
        containers_of(&executor, &spec.build_id).await.len(),
        1,
        "the container existed while the build ran"
    );
    let mut gone = false;
    for _ in 0..100 {
        if containers_of(&executor, &spec.build_id).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the container of a dropped build is removed");
}

#[tokio::test]
async fn sweep_removes_containers_no_build_owns() {
    let executor = executor().await;
    let instance = build_id("sweep-instance");
    let executor = executor.with_instance(instance.clone());
    // A container left by a crashed process: our labels, nobody running it.
    let labels = std::collections::HashMap::from([
        ("zos-build.managed".to_string(), "true".to_string()),
        ("zos-build.instance".to_string(), instance.clone()),
        ("zos-build.build-id".to_string(), instance.clone()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let left = executor
        .docker()
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .unwrap();
    executor
        .docker()
        .start_container(&left.id, None)
        .await
        .unwrap();
    assert_eq!(
        executor.list_managed().await.unwrap(),
        vec![left.id.clone()]
    );

    // A live build of the same instance must survive the sweep.
    let live_id = build_id("sweep-live");
    let spec = BuildSpec::new(live_id.clone(), IMAGE, sh("sleep 4; echo survived"));
    let runner = executor.clone();
    let live = tokio::spawn(async move {
        let mut sink = VecSink::default();
        let outcome = runner
            .run(&spec, &mut sink, &CancellationToken::new())
            .await;
        (outcome, sink)
    });
    for _ in 0..100 {
        if !containers_of(&executor, &live_id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = executor.sweep().await.unwrap();
    assert_eq!(removed, vec![left.id.clone()]);
    let (outcome, sink) = live.await.unwrap();
    assert!(outcome.unwrap().succeeded());
    assert_eq!(texts(&sink, LogStream::Stdout), ["survived"]);
    assert!(executor.list_managed().await.unwrap().is_empty());
}

#[tokio::test]
async fn commit_tags_an_image_and_dangling_ones_are_removed() {
    let executor = executor().await;
    let tag = build_id("commit");
    let repository = "zos-build-test/committed";
    let reference = format!("{repository}:{tag}");
    let first = BuildSpec::new(build_id("commit1"), IMAGE, sh("echo one > /version"))
        .commit_as(repository, &tag);
    let (outcome, _) = run(&executor, &first).await;
    let first_image = outcome.unwrap().committed_image.expect("an image id");
    let check = BuildSpec::new(
        build_id("commit-check"),
        reference.clone(),
        sh("cat /version"),
    );
    let (outcome, sink) = run(&executor, &check).await;
    assert!(outcome.unwrap().succeeded());
    assert_eq!(texts(&sink, LogStream::Stdout), ["one"]);

    // Committing the tag again leaves the first image dangling.
    let second = BuildSpec::new(build_id("commit2"), IMAGE, sh("echo two > /version"))
        .commit_as(repository, &tag);
    let (outcome, _) = run(&executor, &second).await;
    outcome.unwrap();
    let removed = executor.remove_dangling_images().await.unwrap();
    assert!(
        removed.contains(&first_image),
        "{removed:?} should hold {first_image}"
    );
    assert!(executor.docker().inspect_image(&first_image).await.is_err());
    executor
        .docker()
        .remove_image(
            &reference,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_absent_daemon_is_an_error_naming_the_address() {
    let address = "unix:///nonexistent/zos-build/docker.sock";
    let err = DockerExecutor::connect_to(address).await.unwrap_err();
    assert!(
        matches!(err, BuildError::DockerUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(address), "{err}");
}

#[tokio::test]
async fn an_invalid_spec_is_refused_before_docker_is_asked() {
    let executor = executor().await;
    let spec = BuildSpec::new("bad id!", IMAGE, sh("true"));
    let (result, _) = run(&executor, &spec).await;
    assert!(matches!(result, Err(BuildError::InvalidSpec(_))));
}

#[tokio::test]
async fn a_build_cancelled_before_it_starts_runs_nothing() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("precancel"), IMAGE, sh("echo must-not-run"));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut sink = VecSink::default();
    let result = executor.run(&spec, &mut sink, &cancel).await;
    assert!(
        matches!(result, Err(BuildError::CancelledBeforeStart)),
        "{result:?}"
    );
    assert!(texts(&sink, LogStream::Stdout).is_empty());
    assert!(sink.finished);
    assert_no_container(&executor, &spec.build_id).await;
}

/// A sink that breaks after its first batch, like a full disk.
struct Broken;

#[async_trait]
impl LogSink for Broken {
    async fn write(&mut self, _: &[LogEvent]) -> Result<(), SinkError> {
        Err(SinkError::Custom {
            sink: "broken".into(),
            source: "disk full".into(),
        })
    }
}

#[tokio::test]
async fn a_failing_sink_aborts_the_build_and_still_removes_the_container() {
    let executor = executor().await;
    let spec = BuildSpec::new(build_id("broken-sink"), IMAGE, sh("echo one; sleep 60"));
    let started = std::time::Instant::now();
    let result = executor
        .run(&spec, &mut Broken, &CancellationToken::new())
        .await;
    match result {
        Err(err @ BuildError::LogSink(_)) => {
            assert!(err.to_string().contains("disk full"), "{err}")
        }
        other => panic!("expected a log sink error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait for the sleep"
    );
    assert_no_container(&executor, &spec.build_id).await;
}
