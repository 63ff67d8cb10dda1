//! The core pipeline end to end, with the real Docker daemon: one job's log
//! numbered by one sequencer, links that only move forward, and the
//! `flist-build` example run as a user would.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zos_build_core::pipeline::{
    BuildJob, ContainerStep, ForwardLinks, JobEnding, JobInfo, JobLog, LocalSource, Publication,
    Stop,
};
use zos_build_core::{
    ArtifactKind, BinaryPublisher, BuildSpec, Command, Enqueued, History, LocalPublisher, LogEvent,
    LogSink, LogStream, NewBuild, SinkError,
};
use zos_build_testkit::docker;

/// Keeps every event.
#[derive(Default)]
struct Collect(Vec<LogEvent>);

#[async_trait]
impl LogSink for Collect {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        self.0.extend_from_slice(events);
        Ok(())
    }
}

/// A source tree whose script prints `lines` lines on stdout and stderr
/// and leaves `/target/out.tar.gz` holding `content`.
fn source(dir: &Path, lines: usize, content: &str) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("build.sh"),
        format!(
            "set -e\ni=0\nwhile [ $i -lt {lines} ]; do echo out $i; echo err $i >&2; i=$((i+1)); done\n\
             mkdir -p /target\nprintf '{content}' > /target/out.tar.gz\n"
        ),
    )
    .unwrap();
    tree
}

fn spec(id: &str) -> BuildSpec {
    BuildSpec::new(
        id,
        docker::IMAGE,
        Command::ScriptFile("/src/build.sh".into()),
    )
    .artifact("/target/out.tar.gz")
}

#[tokio::test]
async fn one_sequencer_numbers_fetch_build_and_publish_without_gap_or_repeat() {
    let executor = Arc::new(docker::executor().await);
    let dir = tempfile::tempdir().unwrap();
    let tree = source(dir.path(), 200, "one");
    let id = docker::build_id("one-sequencer");
    let out = dir.path().join("out");
    let publication = Publication::new(
        Arc::new(LocalPublisher::new(&out)),
        ArtifactKind::Local,
        "o-r-m-0123456789.tar.gz",
    );
    let step = ContainerStep::new(executor.clone(), spec(&id), "/src").publish(publication);
    let job = BuildJob::new(
        JobInfo::new(id.as_str(), "o/r", "m", "", "build.sh"),
        dir.path().join("work"),
        Arc::new(LocalSource::new(&tree)),
        Arc::new(step),
    );
    let mut sink = Collect::default();
    let mut log = JobLog::new(&mut sink);
    log.line("[caller] before the job").await;
    let ending = job.run(&mut log, &Stop::new()).await;
    log.line("[caller] after the job").await;
    let JobEnding::Succeeded { published, .. } = &ending else {
        panic!("{ending:?}");
    };
    assert_eq!(published[0].published.name, "o-r-m-0123456789.tar.gz");
    assert_eq!(
        std::fs::read(out.join("o-r-m-0123456789.tar.gz")).unwrap(),
        b"one"
    );

    let events = sink.0;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (0..events.len() as u64).collect();
    assert_eq!(seqs, expected, "one numbering from 0, no gap, no repeat");
    // Every phase wrote into that numbering.
    let position = |needle: &str| {
        events
            .iter()
            .position(|e| e.text.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}"))
    };
    let fetching = position("[zos-build] fetching the directory");
    let output = position("out 199");
    let errors = position("err 199");
    let publishing = position("[zos-build] publishing o-r-m-0123456789.tar.gz");
    let last = position("[zos-build] build succeeded: published o-r-m-0123456789.tar.gz");
    assert!(0 < fetching && fetching < output.min(errors));
    assert!(output.max(errors) < publishing && publishing < last);
    assert_eq!(
        last,
        events.len() - 2,
        "the job's ending, then the caller's line"
    );
    assert_eq!(events[output].stream, LogStream::Stdout);
    assert_eq!(events[errors].stream, LogStream::Stderr);
    docker::assert_no_container(&executor, &id).await;
}

/// Records one push per commit in `history`, oldest first.
async fn builds(history: &History, commits: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for commit in commits {
        let build = NewBuild::new("o/r", "m", *commit, "build.sh", docker::IMAGE);
        let Enqueued::Queued(records) = history.enqueue(None, vec![build]).await.unwrap() else {
            panic!("recorded");
        };
        ids.push(records[0].id.clone());
    }
    ids
}

#[tokio::test]
async fn an_older_build_finishing_last_publishes_its_file_and_leaves_the_link() {
    let executor = Arc::new(docker::executor().await);
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(dir.path().join("history.sqlite3"))
        .await
        .unwrap();
    let links = ForwardLinks::new(history.clone());
    let bin = dir.path().join("bin");
    let ids = builds(&history, &["1111111111", "2222222222"]).await;
    let run = |index: usize, content: &'static str| {
        let (executor, links, bin, id) = (
            executor.clone(),
            links.clone(),
            bin.clone(),
            ids[index].clone(),
        );
        let root = dir.path().join(format!("build-{index}"));
        async move {
            let tree = source(&root, 1, content);
            let name = format!("o-r-m-{content}.tar.gz");
            let publication = Publication::new(
                Arc::new(BinaryPublisher::new(&bin)),
                ArtifactKind::Binary,
                name,
            )
            .link_forward_only("o-r-m.flist", links);
            let step = ContainerStep::new(executor, spec(&id), "/src").publish(publication);
            let job = BuildJob::new(
                JobInfo::new(id.as_str(), "o/r", "m", "", "build.sh"),
                root.join("work"),
                Arc::new(LocalSource::new(&tree)),
                Arc::new(step),
            );
            let mut sink = Collect::default();
            let mut log = JobLog::new(&mut sink);
            let ending = job.run(&mut log, &Stop::new()).await;
            (ending, sink.0)
        }
    };
    // The newer push finishes first and moves the link.
    let (newer, _) = run(1, "newer").await;
    let JobEnding::Succeeded { published, .. } = &newer else {
        panic!("{newer:?}");
    };
    assert!(published[0].published.link.is_some());
    // The older one finishes last: its file is published, the link stays.
    let (older, log) = run(0, "older").await;
    let JobEnding::Succeeded { published, .. } = &older else {
        panic!("{older:?}");
    };
    assert_eq!(published[0].published.link, None);
    assert!(bin.join("o-r-m-older.tar.gz").is_file());
    assert_eq!(
        std::fs::read_link(bin.join("o-r-m.flist")).unwrap(),
        Path::new("o-r-m-newer.tar.gz")
    );
    assert!(
        log.iter().any(|e| e.text
            == "[zos-build] link o-r-m.flist left alone: a newer push of the branch moved it already"),
        "{log:?}"
    );
    // And after a restart (a fresh history handle) the decision holds.
    let reopened = History::open(dir.path().join("history.sqlite3"))
        .await
        .unwrap();
    assert!(!reopened
        .link_may_move(ArtifactKind::Binary, "o-r-m.flist", &ids[0])
        .await
        .unwrap());
}

/// The example binary, built by `cargo test` beside the test binaries
/// (`target/<profile>/examples/`), or built now when a filtered run did not.
fn example_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join("flist-build");
    if !binary.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "zos-build-core",
                "--example",
                "flist-build",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    binary
}

#[tokio::test]
async fn the_flist_build_example_builds_a_local_directory_from_a_branch_file() {
    docker::executor().await; // the test image is there
    let dir = tempfile::tempdir().unwrap();
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-source");
    let branch_file = dir.path().join("master.yaml");
    std::fs::write(
        &branch_file,
        format!(
            "buildscripts:\n  - autobuild/build.sh\n  - binary\n\n\
             autobuild/build.sh:\n  baseimage: {image}\n  archives: /target\n  artifact: hello.tar.gz\n\n\
             binary:\n  baseimage: {image}\n  archives: /target\n  artifact: hello.tar.gz\n  format: binary\n  tag: bin\n",
            image = docker::IMAGE
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("src/autobuild")).unwrap();
    // The second script is the same one under another name.
    let tree = dir.path().join("src");
    for name in ["autobuild/build.sh", "binary"] {
        std::fs::copy(source_dir.join("autobuild/build.sh"), tree.join(name)).unwrap();
    }
    let out = dir.path().join("out");
    let output = std::process::Command::new(example_binary())
        .arg(&tree)
        .arg(&branch_file)
        .args([
            "--repository",
            "zero-os/hello",
            "--commit",
            "0123456789abcdef",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("artifact ready: /target/hello.tar.gz"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "[zos-build] build succeeded: published zero-os-hello-master-0123456789.tar.gz"
        ),
        "{stdout}"
    );
    assert!(out.join("zero-os-hello-master-0123456789.tar.gz").is_file());
    assert!(out
        .join("zero-os-hello-bin-master-0123456789.tar.gz")
        .is_file());
    assert_eq!(
        std::fs::read_link(out.join("zero-os-hello-bin-master.flist")).unwrap(),
        Path::new("zero-os-hello-bin-master-0123456789.tar.gz")
    );
    // The published archive is what the script made: a gzip file.
    let bytes = std::fs::read(out.join("zero-os-hello-master-0123456789.tar.gz")).unwrap();
    assert_eq!(&bytes[..2], [0x1f, 0x8b]);
}
