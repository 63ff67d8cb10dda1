//! Starting and stopping the server: open the history, load the catalog,
//! bind the listener, serve until told to stop.
//!
//! Start-up repairs what a crash left behind before anything is accepted:
//! builds recorded as running are marked `error` ("interrupted by restart"),
//! the containers this data directory's server left in Docker are swept, and
//! the builds still `queued` are handed to the scheduler again.

use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::github::{GitHub, Sender, Statuses, Webhooks};
use crate::live::{Frames, Live};
use crate::reloader::Reloader;
use crate::scheduler::{Publishers, Scheduler};
use crate::state::AppState;
use crate::sweeper::{DockerHealth, Sweeper};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zos_build_core::pipeline::{NoStatus, StatusReporter};
use zos_build_core::{BuildError, CancellationToken, DockerExecutor, History, HistoryError};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The history database could not be opened or repaired.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// `configuration-repository` names nothing usable.
    #[error("{0}")]
    Configuration(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `http-listen`:`http-port`.
        address: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The Docker daemon could not be reached, or its leftovers not swept.
    #[error("docker: {0}")]
    Docker(#[from] BuildError),
    /// A publisher's settings are unusable (the Zero-OS Hub's URL).
    #[error(transparent)]
    Publisher(#[from] zos_build_core::PublishError),
    /// A blocking start-up task did not finish.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// A server that is running.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on (with the real port when 0 was asked).
    pub address: SocketAddr,
    /// Its shared state.
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets open connections finish their request, stops
    /// the running builds (their containers removed; queued builds stay
    /// queued for the next start), and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the server task ended abnormally");
        }
        if let Some(scheduler) = &self.state.scheduler {
            scheduler.shutdown(self.state.config.on_shutdown).await;
        }
    }
}

/// The Docker instance name of the server of `data_directory`: a short hash
/// of its canonical path, so that two servers sharing a daemon (each with its
/// own data directory) never sweep each other's containers.
pub fn instance_name(data_directory: &Path) -> String {
    let path = std::fs::canonicalize(data_directory)
        .or_else(|_| std::path::absolute(data_directory))
        .unwrap_or_else(|_| data_directory.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("zos-build-{hex}")
}

async fn connect_docker(config: &Config) -> Result<DockerExecutor, StartError> {
    let executor = match &config.docker_host {
        Some(address) => DockerExecutor::connect_to(address).await?,
        None => DockerExecutor::connect().await?,
    };
    let instance = instance_name(&config.data_directory);
    let executor = executor
        .with_instance(instance.clone())
        .with_name_prefix(config.container_name_prefix.clone());
    let removed = executor.sweep().await?;
    tracing::info!(address = %zos_build_core::redact::redact_credentials(executor.address()), %instance, "connected to Docker");
    for id in &removed {
        tracing::warn!(container = %id, "removed a build container left behind by a previous run");
    }
    Ok(executor)
}

/// The commit statuses of builds, when `github-token` is set; says once
/// what is off otherwise.
fn github_statuses(
    config: &Config,
    history: &History,
    wake: &Arc<tokio::sync::Notify>,
) -> Option<Arc<Statuses>> {
    if config.github_token.is_none() {
        tracing::info!("github-token is not set: commit statuses and webhook registration are off");
        return None;
    }
    if config.public_host.is_none() {
        tracing::warn!(
            "public-host is not set: commit statuses carry no link to their build's log"
        );
    }
    Some(Arc::new(Statuses::new(
        history.clone(),
        config.github_status_context.clone(),
        config.public_host.clone(),
        wake.clone(),
    )))
}

/// Says once, at start-up, which webhooks will be refused and why, or that
/// unsigned ones are accepted.
fn announce_webhook_policy(config: &Config) {
    if config.webhook_secret.is_some() {
        return;
    }
    let hooks = format!(
        "{}, {}, /hook/kernel and /build/<project>/hook",
        config.repository_push_endpoint, config.monitor_update_endpoint
    );
    if config.allow_unsigned_webhooks {
        tracing::warn!(
            "allow-unsigned-webhooks is set and webhook-secret is not: anyone who can reach {hooks} can start builds and reload the configuration; use this only on a closed network"
        );
    } else {
        tracing::warn!(
            "webhook-secret is not set: pushes to {hooks} are refused (403); set webhook-secret, or allow-unsigned-webhooks: true on a closed network"
        );
    }
}

/// Opens the history, loads the catalog, connects to Docker (sweeping the
/// containers and work directories a previous run left; not when
/// `run_builds` is false), binds and resumes queued builds: everything but
/// serving requests.
///
/// `frames` makes the renderer of the live feed's `status` and `history`
/// frames, installed before anything can change.
pub async fn prepare(
    config: Config,
    run_builds: bool,
    frames: impl FnOnce(History, Config) -> Arc<dyn Frames>,
) -> Result<Prepared, StartError> {
    announce_webhook_policy(&config);
    let history = History::open(config.history_path()).await?;
    let interrupted = history.mark_interrupted().await?;
    for build in &interrupted {
        tracing::warn!(build = %build.id, name = %build.name, "build interrupted by a restart");
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let statuses = github_statuses(&config, &history, &wake);
    if let Some(statuses) = &statuses {
        statuses.interrupted(&interrupted).await;
    }
    let reporter: Arc<dyn StatusReporter> = match &statuses {
        Some(statuses) => statuses.clone(),
        None => Arc::new(NoStatus),
    };
    let catalog = SharedCatalog::new(None);
    let live = Arc::new(Live::new());
    live.render_with(frames(history.clone(), config.clone()));
    live.changed(true).await;
    let reloader = Reloader::new(
        config.clone(),
        history.clone(),
        catalog.clone(),
        live.clone(),
    )
    .map_err(StartError::Configuration)?
    .map(|reloader| {
        Arc::new(
            reloader
                .with_status(reporter.clone())
                .with_webhooks(Webhooks::from_config(&config)),
        )
    });
    if let Some(reloader) = &reloader {
        reloader.load().await;
    }
    let executor = if run_builds {
        // Work directories of builds a crash interrupted: nothing uses them
        // now (queued builds fetch their source again when they start).
        let work = config.data_directory.join("work");
        match tokio::fs::remove_dir_all(&work).await {
            Ok(()) => {
                tracing::info!(path = %work.display(), "removed work directories left by a previous run")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %work.display(), error = %e, "cannot remove old work directories")
            }
        }
        Some(connect_docker(&config).await?)
    } else {
        None
    };
    let address = SocketAddr::new(config.http_listen, config.http_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| StartError::Bind { address, source })?;
    let publishers = Publishers::from_config(&config, &history)?;
    if publishers.hub.is_none() {
        tracing::info!(
            directory = %config.artifacts_directory.display(),
            "no zerohub-website: flists are published to the local artifacts directory"
        );
    }
    let scheduler = executor.as_ref().map(|executor| {
        Scheduler::new(
            config.clone(),
            history.clone(),
            catalog.clone(),
            Arc::new(executor.clone()),
            publishers,
            reporter.clone(),
            live.clone(),
        )
    });
    if let Some(scheduler) = &scheduler {
        let resumed = scheduler.resume().await?;
        if resumed > 0 {
            tracing::info!(builds = resumed, "queued builds resumed");
        }
    }
    let sweeper = match (&executor, &scheduler) {
        (Some(executor), Some(scheduler)) => Some(Sweeper::new(
            config.clone(),
            history.clone(),
            executor.clone(),
            scheduler.clone(),
            Arc::new(DockerHealth::default()),
        )),
        _ => None,
    };
    let mut state = AppState::new(config, history, catalog, scheduler, live, reloader);
    state.docker = sweeper.as_ref().map(Sweeper::health);
    let state = Arc::new(state);
    if let (Some(token), Some(_)) = (&state.config.github_token, &statuses) {
        let github =
            GitHub::new(&state.config.github_api_url, token).map_err(StartError::Configuration)?;
        Sender::new(
            state.history.clone(),
            github,
            wake,
            state.github_statuses.clone(),
        )
        .announcing(state.live.clone())
        .spawn(state.shutdown.clone());
    }
    if let Some(sweeper) = sweeper {
        sweeper.spawn(state.shutdown.clone());
    }
    Ok(Prepared {
        address,
        listener,
        state,
    })
}

/// A server ready to serve: its state, with builds resumed and background
/// tasks running, and its bound listener. The crate root hands it to the
/// HTTP layer ([`crate::start`]).
#[derive(Debug)]
pub struct Prepared {
    /// The address bound (with the real port when 0 was asked).
    pub address: SocketAddr,
    /// The bound listener.
    pub listener: TcpListener,
    /// The shared state.
    pub state: Arc<AppState>,
}

impl RunningServer {
    /// A server whose requests `task` serves.
    pub fn new(address: SocketAddr, state: Arc<AppState>, task: JoinHandle<()>) -> RunningServer {
        RunningServer {
            address,
            shutdown: state.shutdown.clone(),
            state,
            task,
        }
    }
}
