//! Housekeeping: what no build owns any more is removed, and Docker is
//! watched.
//!
//! Why it exists: the executor removes each build's container on every path
//! it controls, but three paths escape it: a removal that failed while
//! Docker was unreachable, a build dropped while its container was being
//! created, and a crash. Logs and webhook deliveries also grow without end.
//! Start-up repairs what a crash left; this task repairs the rest while the
//! server runs:
//!
//! - every `sweep-interval` (and as soon as Docker answers again after an
//!   outage): containers of this server's instance that no running build
//!   owns, work directories of builds that are not queued or running, the
//!   logs of builds beyond `keep-builds-per-branch` (replaced by the one
//!   line [`PRUNED_LOG`], so `/report/<id>` says what happened; their
//!   history rows stay), and webhook deliveries older than
//!   [`DELIVERY_RETENTION`];
//! - every [`DOCKER_CHECK_INTERVAL`]: whether Docker answers, for
//!   `/healthz`.
//!
//! Published artifacts are never touched here: the newest build and every
//! "latest" link keep pointing at files that exist.

use crate::config::Config;
use crate::scheduler::Scheduler;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use zos_build_core::redact::redact_credentials;
use zos_build_core::{CancellationToken, DockerExecutor, History};

/// Webhook delivery ids are remembered this long (GitHub redelivers by hand
/// only; the replay check covers the same push under a new id).
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often Docker is asked whether it answers.
pub const DOCKER_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How long one such question may take.
const DOCKER_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the log of a build beyond `keep-builds-per-branch` is replaced with.
pub const PRUNED_LOG: &str =
    "[zos-build] the log of this build was pruned: only the newest builds \
     of each branch keep theirs (keep-builds-per-branch); the build stays in the history\n";

/// Whether the Docker daemon answered the last check.
#[derive(Debug)]
pub struct DockerHealth {
    reachable: AtomicBool,
}

impl Default for DockerHealth {
    fn default() -> Self {
        DockerHealth {
            reachable: AtomicBool::new(true),
        }
    }
}

impl DockerHealth {
    /// True when the daemon answered the last check.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Records a check; returns the previous state.
    fn set(&self, reachable: bool) -> bool {
        self.reachable.swap(reachable, Ordering::Relaxed)
    }
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Containers removed.
    pub containers: Vec<String>,
    /// Work directories removed (build ids).
    pub work_directories: usize,
    /// Log files deleted by retention.
    pub logs: usize,
    /// Webhook delivery ids forgotten.
    pub deliveries: usize,
}

/// Removes what no build owns; see the module documentation.
#[derive(Debug, Clone)]
pub struct Sweeper {
    config: Config,
    history: History,
    executor: DockerExecutor,
    scheduler: Scheduler,
    health: Arc<DockerHealth>,
}

impl Sweeper {
    /// A sweeper of `executor`'s containers and of the files of `config`,
    /// sparing what `scheduler` runs, recording Docker's state in `health`.
    pub fn new(
        config: Config,
        history: History,
        executor: DockerExecutor,
        scheduler: Scheduler,
        health: Arc<DockerHealth>,
    ) -> Sweeper {
        Sweeper {
            config,
            history,
            executor,
            scheduler,
            health,
        }
    }

    /// Docker's state as the checks see it, for `/healthz`.
    pub fn health(&self) -> Arc<DockerHealth> {
        self.health.clone()
    }

    /// Runs the periodic sweep and the Docker checks until `stop`.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(self.config.sweep_interval);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is now: start-up has just swept.
            sweep.tick().await;
            let mut check = tokio::time::interval(DOCKER_CHECK_INTERVAL);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = sweep.tick() => { self.sweep().await; }
                    _ = check.tick() => {
                        if self.check_docker().await {
                            tracing::info!("Docker answers again: sweeping what the outage left");
                            self.sweep().await;
                        }
                    }
                }
            }
        })
    }

    /// Asks Docker whether it answers; true when it does again after a
    /// check that failed.
    async fn check_docker(&self) -> bool {
        let answered = matches!(
            tokio::time::timeout(DOCKER_CHECK_TIMEOUT, self.executor.ping()).await,
            Ok(Ok(()))
        );
        let before = self.health.set(answered);
        if before && !answered {
            tracing::warn!(address = %redact_credentials(self.executor.address()), "Docker does not answer");
        }
        !before && answered
    }

    /// One sweep; failures are logged, and what could be done is done.
    pub async fn sweep(&self) -> Swept {
        let mut swept = Swept::default();
        // Ids taken before listing anything: a build submitted meanwhile
        // has no work directory yet, and its container is reserved.
        let active: HashSet<String> = self.scheduler.active_ids().into_iter().collect();
        match self.executor.sweep().await {
            Ok(removed) => {
                for id in &removed {
                    tracing::warn!(container = %id, "removed a build container that no running build owns");
                }
                swept.containers = removed;
            }
            Err(e) => tracing::warn!(error = %e, "cannot sweep build containers"),
        }
        swept.work_directories = self.sweep_work_directories(&active).await;
        match self
            .history
            .beyond_kept(self.config.keep_builds_per_branch)
            .await
        {
            Ok(ids) => {
                for id in ids.iter().filter(|id| !active.contains(*id)) {
                    if prune_log(&self.config.build_log_path(id)).await {
                        swept.logs += 1;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the builds beyond retention"),
        }
        match self.history.prune_deliveries(DELIVERY_RETENTION).await {
            Ok(n) => swept.deliveries = n,
            Err(e) => tracing::warn!(error = %e, "cannot prune old webhook deliveries"),
        }
        if swept.logs > 0 || swept.work_directories > 0 {
            tracing::info!(
                logs = swept.logs,
                work_directories = swept.work_directories,
                "retention: removed old files"
            );
        }
        swept
    }

    /// Removes the work directories of builds that are neither queued nor
    /// running; returns how many.
    async fn sweep_work_directories(&self, active: &HashSet<String>) -> usize {
        let root = self.config.data_directory.join("work");
        let Ok(mut entries) = tokio::fs::read_dir(&root).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Asked again for each: a build submitted since the sweep began
            // may have made its directory.
            if active.contains(&name) || self.scheduler.is_active(&name) {
                continue;
            }
            match tokio::fs::remove_dir_all(entry.path()).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a leftover work directory")
                }
            }
        }
        removed
    }
}

/// Replaces a build's log with [`PRUNED_LOG`]; true when there was a log
/// to prune (a missing one, or one pruned already, is left as it is).
async fn prune_log(path: &std::path::Path) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.len() != PRUNED_LOG.len() as u64 => {}
        _ => return false,
    }
    // Renamed into place: a reader sees the old log or the marker, whole.
    let partial = path.with_extension("pruning");
    let result = async {
        tokio::fs::write(&partial, PRUNED_LOG).await?;
        tokio::fs::rename(&partial, path).await
    };
    match result.await {
        Ok(()) => true,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            tracing::warn!(path = %path.display(), error = %e, "cannot prune an old log");
            false
        }
    }
}
