//! One build, from image to removed container.

use super::archive;
use super::container::{self, ContainerGuard, Reservation};
use super::image;
use super::volume;
use super::DockerExecutor;
use crate::error::{docker_status, BuildError};
use crate::log::{LineSplitter, LogEvent, LogStream, Sequencer};
use crate::outcome::{BuildOutcome, Termination};
use crate::sink::LogSink;
use crate::spec::{BuildSpec, Command, INLINE_SCRIPT_PATH};
use crate::{Executor, PendingTree, Phase};
use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, CreateContainerOptions, KillContainerOptions,
};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long output is still read after the engine killed a build.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(5);
/// Stands in for "no limit" in `select!` timers.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

#[async_trait]
impl Executor for DockerExecutor {
    async fn run(
        &self,
        spec: &BuildSpec,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let result = self.run_build(spec, None, sink, cancel).await;
        let finished = sink.finish().await;
        let outcome = result?;
        finished?;
        Ok(outcome)
    }

    async fn run_fetching(
        &self,
        spec: &BuildSpec,
        tree: PendingTree<'_>,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let result = self.run_build(spec, Some(tree), sink, cancel).await;
        let finished = sink.finish().await;
        let outcome = result?;
        finished?;
        Ok(outcome)
    }

    async fn ready(&self) -> Result<(), BuildError> {
        self.ping().await
    }

    async fn local_tags(&self, repository: &str) -> Result<Vec<String>, BuildError> {
        image::local_tags(&self.docker, repository).await
    }

    async fn prune_images(&self) -> Result<Vec<String>, BuildError> {
        self.remove_untagged_images().await
    }

    async fn remove_cache(&self, name: &str) -> Result<bool, BuildError> {
        self.remove_cache_volume(name).await
    }
}

impl DockerExecutor {
    /// One build; with `tree`, the container is created while the tree is
    /// still being fetched, and the tree goes where `spec.source` says.
    async fn run_build(
        &self,
        spec: &BuildSpec,
        tree: Option<PendingTree<'_>>,
        sink: &mut dyn LogSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        spec.validate().map_err(BuildError::InvalidSpec)?;
        if tree.is_some() && spec.source.is_none() {
            return Err(BuildError::InvalidSpec(
                "a build whose tree is being fetched needs a source path".into(),
            ));
        }
        if cancel.is_cancelled() {
            return Err(BuildError::CancelledBeforeStart);
        }
        let mut seq = Sequencer::starting_at(spec.first_log_line);
        let creating = Instant::now();
        // Cancelled when the fetch fails: a pull under way stops.
        let abandon = cancel.child_token();
        let create = self.create(spec, sink, &mut seq, &abandon);
        let (created, fetched) = match tree {
            None => (create.await, None),
            Some(mut tree) => {
                // Both at once. A fetch that fails ends the build without
                // waiting for a pull (it can take minutes), but a create
                // call in flight is waited for, so that its container is
                // removed here rather than left to the next sweep.
                tokio::pin!(create);
                let mut fetched = None;
                let created = loop {
                    tokio::select! {
                        done = &mut tree, if fetched.is_none() => match done {
                            Ok(dir) => fetched = Some(dir),
                            Err(message) => {
                                abandon.cancel();
                                if let Ok((_live, guard)) = create.await {
                                    let id = guard.id().to_string();
                                    if let Err(e) = guard.remove().await {
                                        tracing::warn!(container = %id, error = %e, "cannot remove the container of a build whose fetch failed; the next sweep will");
                                    }
                                }
                                return Err(BuildError::SourceUnavailable(message));
                            }
                        },
                        created = &mut create => break created,
                    }
                };
                (created, Some(fetched.ok_or(tree)))
            }
        };
        let (_live, guard) = created?;
        sink.phase(Phase::Create, creating.elapsed()).await?;
        let outcome = async {
            let spec = match fetched {
                None => std::borrow::Cow::Borrowed(spec),
                Some(fetched) => {
                    let dir = match fetched {
                        Ok(dir) => dir,
                        Err(tree) => tokio::select! {
                            biased;
                            () = cancel.cancelled() => return Err(BuildError::CancelledBeforeStart),
                            done = tree => done.map_err(BuildError::SourceUnavailable)?,
                        },
                    };
                    let mount = spec
                        .source
                        .as_ref()
                        .map(|s| s.container_path.clone())
                        .unwrap_or_default();
                    std::borrow::Cow::Owned(spec.clone().source(dir, mount))
                }
            };
            self.drive(&guard, &spec, sink, &mut seq, cancel).await
        }
        .await;
        let id = guard.id().to_string();
        let removed = guard.remove().await;
        let outcome = outcome?;
        removed.map_err(|e| BuildError::docker(format!("remove container {id}"), e))?;
        Ok(outcome)
    }

    /// Creates the build's container, pulling its image first when the
    /// daemon does not have it; returns it with the build's reservation.
    ///
    /// The image is not inspected first: the create call answers 404 when
    /// it is missing, and only then is it pulled (an image present locally
    /// is never pulled, see `image::ensure_image`). That saves a round trip
    /// to the daemon for every build whose image is there, nearly all.
    async fn create(
        &self,
        spec: &BuildSpec,
        sink: &mut dyn LogSink,
        seq: &mut Sequencer,
        cancel: &CancellationToken,
    ) -> Result<(Reservation, ContainerGuard), BuildError> {
        let live = Reservation::new(self.live.clone(), &spec.build_id);
        let options = CreateContainerOptions {
            name: Some(format!("{}{}", self.name_prefix, spec.build_id)),
            ..Default::default()
        };
        let body = container::create_body(spec, &self.instance);
        let create_error = |e| {
            BuildError::docker(
                format!("create the container for build {}", spec.build_id),
                e,
            )
        };
        let mut pulled = false;
        loop {
            // From the check of the cache volumes until the container holds
            // them, no removal of a volume can come in between.
            let volumes = self.volumes.read().await;
            for cache in &spec.cache_volumes {
                volume::ensure(&self.docker, &self.instance, &cache.name).await?;
            }
            match self
                .docker
                .create_container(Some(options.clone()), body.clone())
                .await
            {
                Ok(created) => {
                    drop(volumes);
                    return Ok((live, ContainerGuard::new(self.docker.clone(), created.id)));
                }
                Err(e) if docker_status(&e) == Some(404) && !pulled => {
                    drop(volumes);
                    // A pull can take minutes: it must not outlive a
                    // cancellation.
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(BuildError::CancelledBeforeStart),
                        ready = image::ensure_image(&self.docker, &spec.image, sink, seq) => ready?,
                    }
                    if cancel.is_cancelled() {
                        return Err(BuildError::CancelledBeforeStart);
                    }
                    pulled = true;
                }
                Err(e) => return Err(create_error(e)),
            }
        }
    }

    /// Everything that happens while the container exists.
    async fn drive(
        &self,
        guard: &ContainerGuard,
        spec: &BuildSpec,
        sink: &mut dyn LogSink,
        seq: &mut Sequencer,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let docker = &self.docker;
        let id = guard.id();
        let uploading = Instant::now();
        let mut files = archive::BuildFiles::default();
        if let Some(source) = &spec.source {
            files.tree = Some((source.host_dir.as_path(), source.container_path.as_str()));
            if let Command::ScriptFile(script) = &spec.command {
                let mount = source.container_path.trim_end_matches('/');
                if script
                    .strip_prefix(mount)
                    .is_some_and(|rest| rest.starts_with('/'))
                {
                    files.executable = Some(script.as_str());
                }
            }
        }
        if let Command::Inline { script, .. } = &spec.command {
            files.file = Some((INLINE_SCRIPT_PATH, script.as_bytes().to_vec(), 0o755));
        }
        if files.tree.is_some() || files.file.is_some() {
            archive::upload_build_files(docker, id, files).await?;
            sink.phase(Phase::Upload, uploading.elapsed()).await?;
        }

        // Attach before starting, so that not a byte of output is missed.
        let running = Instant::now();
        let attach = docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stream: true,
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| BuildError::docker(format!("attach to container {id}"), e))?;
        let mut output: Output = attach.output;
        docker
            .start_container(id, None)
            .await
            .map_err(|e| BuildError::docker(format!("start container {id}"), e))?;
        let started = Instant::now();
        sink.container_started(id).await?;

        let mut lines = Lines::new(spec.limits.log_bytes);
        let killed = self
            .stream_output(
                id,
                spec,
                &mut output,
                &mut lines,
                sink,
                seq,
                cancel,
                started,
            )
            .await?;
        lines.finish(seq);
        lines.flush(sink).await?;

        let exit_code = self.exit_code(id).await?;
        let duration = started.elapsed();
        let termination = match killed {
            Some(reason) => reason,
            None if exit_code != Some(0) && self.oom_killed(id).await? => Termination::OutOfMemory,
            None => Termination::Exited,
        };
        sink.phase(Phase::Run, running.elapsed()).await?;
        let mut outcome = BuildOutcome {
            termination,
            exit_code,
            duration,
            log_lines: 0,
            artifacts: Vec::new(),
            committed_image: None,
            container_id: id.to_string(),
        };
        if termination != Termination::Exited {
            let text = format!("[zos-build] {} after {:.1?}", outcome.describe(), duration);
            sink.write(&[seq.event(LogStream::System, text)]).await?;
        }
        if outcome.succeeded() {
            if let Some(dir) = &spec.artifact_dir {
                let extracting = Instant::now();
                for path in &spec.artifacts {
                    outcome
                        .artifacts
                        .push(archive::download(docker, id, path, dir).await?);
                }
                if !spec.artifacts.is_empty() {
                    sink.phase(Phase::Extract, extracting.elapsed()).await?;
                }
            }
            if let Some(image) = &spec.commit {
                sink.committing().await?;
                let options = CommitContainerOptions {
                    container: Some(id.to_string()),
                    repo: Some(image.repository.clone()),
                    tag: Some(image.tag.clone()),
                    pause: false,
                    ..Default::default()
                };
                // The container's labels would be inherited anyway; given
                // here, the image's are ours whatever the daemon merges, and
                // `managed` says image (see `LABEL_MANAGED`).
                let config = bollard::models::ContainerConfig {
                    labels: Some(container::labels(spec, &self.instance, "image")),
                    ..Default::default()
                };
                let committed = docker
                    .commit_container(options, config)
                    .await
                    .map_err(|e| {
                        BuildError::docker(
                            format!(
                                "commit container {id} as {}:{}",
                                image.repository, image.tag
                            ),
                            e,
                        )
                    })?;
                outcome.committed_image = Some(committed.id);
            }
        }
        outcome.log_lines = seq.count() - spec.first_log_line;
        Ok(outcome)
    }

    /// Streams output until the container closes it or a limit is hit; in the
    /// latter case kills the container and returns why.
    #[allow(clippy::too_many_arguments)]
    async fn stream_output(
        &self,
        id: &str,
        spec: &BuildSpec,
        output: &mut Output,
        lines: &mut Lines,
        sink: &mut dyn LogSink,
        seq: &mut Sequencer,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Option<Termination>, BuildError> {
        let limits = &spec.limits;
        let total = tokio::time::sleep_until(started + limits.timeout.unwrap_or(FAR_AWAY));
        let idle_limit = limits.no_output_timeout.unwrap_or(FAR_AWAY);
        let idle = tokio::time::sleep(idle_limit);
        tokio::pin!(total, idle);
        let killed = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break Some(Termination::Cancelled),
                _ = &mut total => break Some(Termination::TimedOut),
                _ = &mut idle => break Some(Termination::NoOutput),
                frame = output.next() => match frame {
                    Some(Ok(frame)) => {
                        lines.push(frame, seq);
                        idle.as_mut().reset(Instant::now() + idle_limit);
                        if lines.exceeded {
                            lines.flush(sink).await?;
                            break Some(Termination::LogLimit);
                        }
                    }
                    Some(Err(e)) => {
                        return Err(BuildError::docker(format!("read the output of container {id}"), e))
                    }
                    None => break None,
                },
            }
            lines.flush(sink).await?;
        };
        if killed.is_some() {
            // Keep reading while the kill is under way: Docker finishes a
            // container only once its output has been read, so a kill
            // waiting on a build that floods its output would never end.
            // Whatever the build printed before it died still belongs in
            // its log (within the log limit).
            let kill = self.kill(id);
            tokio::pin!(kill);
            let mut kill_result = None;
            let drain_until = Instant::now() + DRAIN_AFTER_KILL;
            loop {
                tokio::select! {
                    result = &mut kill, if kill_result.is_none() => kill_result = Some(result),
                    frame = tokio::time::timeout_at(drain_until, output.next()) => match frame {
                        Ok(Some(Ok(frame))) => lines.push(frame, seq),
                        _ => break,
                    },
                }
            }
            match kill_result {
                Some(result) => result?,
                None => kill.await?,
            }
        }
        Ok(killed)
    }

    async fn kill(&self, id: &str) -> Result<(), BuildError> {
        let options = KillContainerOptions {
            signal: "KILL".into(),
        };
        match self.docker.kill_container(id, Some(options)).await {
            // 409: it stopped by itself in the meantime.
            Err(e) if !matches!(docker_status(&e), Some(404 | 409)) => {
                Err(BuildError::docker(format!("kill container {id}"), e))
            }
            _ => Ok(()),
        }
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, BuildError> {
        let mut wait = self.docker.wait_container(id, None).boxed();
        match wait.next().await {
            Some(Ok(response)) => Ok(Some(response.status_code)),
            // bollard turns a non-zero status into an error carrying it.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                Ok(Some(code))
            }
            Some(Err(e)) => Err(BuildError::docker(format!("wait for container {id}"), e)),
            None => Ok(None),
        }
    }

    async fn oom_killed(&self, id: &str) -> Result<bool, BuildError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| BuildError::docker(format!("inspect container {id}"), e))?;
        Ok(info.state.and_then(|s| s.oom_killed).unwrap_or(false))
    }
}

/// The two output streams, split into lines, and the batch waiting for the
/// sink; with a log size limit, nothing beyond it gets into the batch.
struct Lines {
    stdout: LineSplitter,
    stderr: LineSplitter,
    batch: Vec<LogEvent>,
    /// Bytes the log may still take, when limited.
    budget: Option<u64>,
    /// The limit was reached: every later line is discarded.
    exceeded: bool,
}

impl Lines {
    fn new(limit: Option<u64>) -> Self {
        Lines {
            stdout: LineSplitter::new(LogStream::Stdout),
            stderr: LineSplitter::new(LogStream::Stderr),
            batch: Vec::new(),
            budget: limit,
            exceeded: false,
        }
    }

    fn push(&mut self, frame: LogOutput, seq: &mut Sequencer) {
        if self.exceeded {
            return;
        }
        let from = self.batch.len();
        match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.push(&message, seq, &mut self.batch)
            }
            LogOutput::StdErr { message } => self.stderr.push(&message, seq, &mut self.batch),
            LogOutput::StdIn { .. } => {}
        }
        self.charge(from, seq);
    }

    fn finish(&mut self, seq: &mut Sequencer) {
        if self.exceeded {
            return;
        }
        let from = self.batch.len();
        self.stdout.finish(seq, &mut self.batch);
        self.stderr.finish(seq, &mut self.batch);
        self.charge(from, seq);
    }

    /// Counts the lines added from `from` on against the budget; cuts the
    /// batch (and takes their numbers back) at the first that does not fit.
    fn charge(&mut self, from: usize, seq: &mut Sequencer) {
        let Some(budget) = self.budget.as_mut() else {
            return;
        };
        for (index, event) in self.batch.iter().enumerate().skip(from) {
            let size = event.text.len() as u64 + 1;
            if size > *budget {
                self.exceeded = true;
                seq.rewind(event.seq);
                self.batch.truncate(index);
                return;
            }
            *budget -= size;
        }
    }

    async fn flush(&mut self, sink: &mut dyn LogSink) -> Result<(), BuildError> {
        if !self.batch.is_empty() {
            sink.write(&self.batch).await?;
            self.batch.clear();
        }
        Ok(())
    }
}
