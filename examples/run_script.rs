//! Embedding the zos-build engine in another Rust program.
//!
//! Runs a build script from a local directory in a fresh container, prints
//! its log live, and extracts the artifact:
//!
//! ```text
//! cargo run -p zos-build-core --example run-script -- \
//!     examples/hello-source autobuild/build.sh /target/hello.tar.gz \
//!     --image busybox:latest --out /tmp/hello-out
//! ```
//!
//! The source directory is copied to `/src` in the container; the script path
//! is relative to it. The image is pulled when it is not present.

use std::path::PathBuf;
use std::process::ExitCode;
use zos_build_core::sink::{BroadcastSink, FanOut, Followed, TailSink};
use zos_build_core::{BuildSpec, CancellationToken, Command, DockerExecutor, Executor, LogStream};

struct Args {
    source: PathBuf,
    script: String,
    artifact: String,
    image: String,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut image = "busybox:latest".to_string();
    let mut out = PathBuf::from("./artifacts");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--image" => image = args.next().ok_or("--image needs a value")?,
            "--out" => out = args.next().ok_or("--out needs a value")?.into(),
            _ => positional.push(arg),
        }
    }
    let [source, script, artifact]: [String; 3] = positional
        .try_into()
        .map_err(|_| "usage: run-script SOURCE_DIR SCRIPT ARTIFACT [--image IMAGE] [--out DIR]")?;
    Ok(Args {
        source: source.into(),
        script,
        artifact,
        image,
        out,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let executor = match DockerExecutor::connect().await {
        Ok(executor) => executor,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let spec = BuildSpec::new(
        format!("example-{}", std::process::id()),
        &args.image,
        Command::ScriptFile(format!("/src/{}", args.script.trim_start_matches('/'))),
    )
    .source(&args.source, "/src")
    .artifact(&args.artifact)
    .artifact_dir(&args.out);

    // Print lines as they arrive: follow a broadcast sink from another task.
    let (broadcast, feed) = BroadcastSink::new(4096);
    let (tail, _tail) = TailSink::new(100);
    let mut follower = feed.follow().expect("the build has not started yet");
    let printer = tokio::spawn(async move {
        while let Some(item) = follower.next().await {
            match item {
                Followed::Line(line) if line.stream == LogStream::Stderr => {
                    eprintln!("{}", line.text)
                }
                Followed::Line(line) => println!("{}", line.text),
                Followed::Missed(n) => eprintln!("[{n} lines skipped]"),
            }
        }
    });

    // Ctrl-C cancels the build; the container is removed either way.
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });

    let mut sink = FanOut::new().with(broadcast).with(tail);
    let result = executor.run(&spec, &mut sink, &cancel).await;
    let _ = printer.await;
    match result {
        Ok(outcome) if outcome.succeeded() => {
            for artifact in &outcome.artifacts {
                println!("artifact: {}", artifact.display());
            }
            println!("build succeeded in {:.1?}", outcome.duration);
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            eprintln!("build failed: {}", outcome.describe());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
