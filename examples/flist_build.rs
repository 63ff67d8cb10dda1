//! A flist build without a server: the job the server runs for a push,
//! embedded in another program.
//!
//! Reads one branch file of a configuration repository, and for each of its
//! build scripts runs the core pipeline: the tree of a local directory,
//! the script in a fresh Docker container, the artifact published into a
//! directory under the name the server would give it. Every line of the log
//! is printed as it comes, numbered.
//!
//! ```text
//! cargo run -p zos-build-core --example flist-build -- \
//!     examples/hello-source examples/flist-config/zero-os/hello/master.yaml \
//!     --repository zero-os/hello --branch master --out /tmp/flists
//! ```
//!
//! `format: binary` builds also get the branch's moving link
//! (`<owner>-<repo>[-<tag>]-<branch>.flist`) beside their file; flists go to
//! the directory as the server's local publisher puts them (with a Zero-OS
//! Hub, give the `Publication` a `HubPublisher` instead).
//!
//! Exit status: 0 when every build succeeded, 1 when one failed, 2 for bad
//! arguments.

use async_trait::async_trait;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use zos_build_core::flist_config::{parse_branch_bytes, Format};
use zos_build_core::pipeline::{
    BuildJob, ContainerStep, JobEnding, JobInfo, JobLog, LocalSource, Publication, Stop,
};
use zos_build_core::{
    artifact_name, link_name, ArtifactKind, BinaryPublisher, BuildSpec, Command, DockerExecutor,
    LocalPublisher, LogEvent, LogSink, Publisher, SinkError,
};

struct Args {
    source: PathBuf,
    branch_file: PathBuf,
    repository: String,
    branch: String,
    commit: String,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut repository = "local/build".to_string();
    let mut branch = None;
    let mut commit = "0000000000".to_string();
    let mut out = PathBuf::from("./artifacts");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--repository" => repository = value("--repository")?,
            "--branch" => branch = Some(value("--branch")?),
            "--commit" => commit = value("--commit")?,
            "--out" => out = value("--out")?.into(),
            _ => positional.push(arg),
        }
    }
    let [source, branch_file]: [String; 2] = positional.try_into().map_err(|_| {
        "usage: flist-build SOURCE_DIR BRANCH_FILE [--repository OWNER/REPO] [--branch NAME] \
         [--commit ID] [--out DIR]"
    })?;
    let branch_file = PathBuf::from(branch_file);
    // The branch is the file's name without .yaml, as in the configuration.
    let branch = match branch {
        Some(branch) => branch,
        None => branch_file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("cannot tell the branch from the file name: give --branch")?
            .to_string(),
    };
    Ok(Args {
        source: source.into(),
        branch_file,
        repository,
        branch,
        commit,
        out,
    })
}

/// Prints every line with its number and stream.
struct Print;

#[async_trait]
impl LogSink for Print {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        for event in events {
            println!(
                "{:>5} {:<6} {}",
                event.seq,
                event.stream.as_str(),
                event.text
            );
        }
        Ok(())
    }
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
    let bytes = match std::fs::read(&args.branch_file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{}: {e}", args.branch_file.display());
            return ExitCode::from(2);
        }
    };
    let file = parse_branch_bytes(&bytes, &args.branch_file.display().to_string());
    for problem in &file.problems {
        eprintln!("{problem}");
    }
    if !file.is_valid() {
        return ExitCode::from(2);
    }
    let executor = match DockerExecutor::connect().await {
        Ok(executor) => Arc::new(executor),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let repo_name = args.repository.rsplit('/').next().unwrap_or("build");
    let mut failed = false;
    for (index, script) in file.builds.iter().enumerate() {
        let id = format!("flist-build-{}-{index}", std::process::id());
        let spec = BuildSpec::new(
            id.as_str(),
            script.baseimage.as_str(),
            Command::ScriptFile(format!("/{repo_name}/{}", script.script)),
        )
        .artifact(format!(
            "{}/{}",
            script.archives.trim_end_matches('/'),
            script.artifact
        ))
        .timeout(std::time::Duration::from_secs(45 * 60));
        let tag = script.tag.as_deref();
        let name = artifact_name(&args.repository, tag, &args.branch, &args.commit);
        let publication = match script.format {
            Format::Binary => {
                let publisher: Arc<dyn Publisher> = Arc::new(BinaryPublisher::new(&args.out));
                Publication::new(publisher, ArtifactKind::Binary, name).link(link_name(
                    &args.repository,
                    tag,
                    &args.branch,
                ))
            }
            _ => Publication::new(
                Arc::new(LocalPublisher::new(&args.out)),
                ArtifactKind::Local,
                name,
            ),
        };
        let step = ContainerStep::new(executor.clone(), spec, format!("/{repo_name}"))
            .publish(publication);
        let info = JobInfo::new(
            id.as_str(),
            args.repository.as_str(),
            args.branch.as_str(),
            args.commit.as_str(),
            script.script.as_str(),
        );
        let work = std::env::temp_dir().join(&id);
        let job = BuildJob::new(
            info,
            &work,
            Arc::new(LocalSource::new(&args.source)),
            Arc::new(step),
        );
        let mut sink = Print;
        let mut log = JobLog::new(&mut sink);
        let ending = job.run(&mut log, &Stop::new()).await;
        let _ = std::fs::remove_dir_all(&work);
        match ending {
            JobEnding::Succeeded { published, .. } => {
                for artifact in published {
                    println!("published: {}", artifact.published.location);
                    if let Some(link) = artifact.published.link {
                        println!("link: {} -> {}", link.location, link.target);
                    }
                }
            }
            other => {
                eprintln!("{}: {}", script.script, other.last_line());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
