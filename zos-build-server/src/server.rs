//! Starting and stopping the server: open the history, load the catalog,
//! bind the listener, serve until told to stop.
//!
//! Start-up repairs what a crash left behind before anything is accepted:
//! builds recorded as running are marked `error` ("interrupted by restart"),
//! the containers this data directory's server left in Docker are swept, and
//! the builds still `queued` are handed to the scheduler again.

use crate::config::Config;
use crate::http;
use crate::live::Live;
use crate::pipeline::Scheduler;
use crate::state::{AppState, SharedCatalog};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zos_build_core::{
    BuildError, CancellationToken, DockerExecutor, History, HistoryError, LocalPublisher,
};
use zos_flist_config::{Catalog, LoadError};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The history database could not be opened or repaired.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The local configuration repository could not be read.
    #[error("configuration-repository: {0}")]
    Catalog(#[from] LoadError),
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
            scheduler.shutdown().await;
        }
    }
}

/// The local directory named by `configuration-repository`, if it names one.
///
/// `owner/name` is fetched from GitHub by a later version; a value holding
/// a `/` that is an existing directory is taken as local.
pub fn local_configuration_directory(config: &Config) -> Option<PathBuf> {
    let value = config.configuration_repository.as_deref()?;
    let path = Path::new(value);
    path.is_dir().then(|| path.to_path_buf())
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

/// Opens the history, loads the catalog, connects to Docker (sweeping what a
/// previous run left there), binds, resumes queued builds and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    start_with(config, true).await
}

/// Like [`start`], but runs no build: pushes are only recorded as `queued`
/// and Docker is never contacted. For tests of the HTTP layer, which drive
/// the history themselves, and for a read-only view of a history.
pub async fn start_without_builds(config: Config) -> Result<RunningServer, StartError> {
    start_with(config, false).await
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
    tracing::info!(address = %executor.address(), %instance, "connected to Docker");
    for id in &removed {
        tracing::warn!(container = %id, "removed a build container left behind by a previous run");
    }
    Ok(executor)
}

async fn start_with(config: Config, run_builds: bool) -> Result<RunningServer, StartError> {
    let history = History::open(config.history_path()).await?;
    let interrupted = history.mark_interrupted().await?;
    for build in &interrupted {
        tracing::warn!(build = %build.id, name = %build.name, "build interrupted by a restart");
    }
    let catalog = match local_configuration_directory(&config) {
        Some(dir) => {
            let catalog = tokio::task::spawn_blocking(move || Catalog::load(dir))
                .await
                .map_err(|e| StartError::Task(e.to_string()))??;
            for problem in catalog.problems() {
                tracing::warn!(%problem, "configuration repository");
            }
            tracing::info!(
                branches = catalog.branches().count(),
                "configuration repository loaded"
            );
            Some(catalog)
        }
        None => {
            if let Some(name) = &config.configuration_repository {
                tracing::warn!(repository = %name, "fetching a configuration repository from git is not implemented yet: nothing is tracked");
            }
            None
        }
    };
    let executor = if run_builds {
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
    let catalog = SharedCatalog::new(catalog);
    let live = Arc::new(Live::new());
    let scheduler = executor.map(|executor| {
        Scheduler::new(
            config.clone(),
            history.clone(),
            catalog.clone(),
            Arc::new(executor),
            Arc::new(LocalPublisher::new(config.artifacts_directory.clone())),
            live.clone(),
        )
    });
    if let Some(scheduler) = &scheduler {
        let resumed = scheduler.resume().await?;
        if resumed > 0 {
            tracing::info!(builds = resumed, "queued builds resumed");
        }
    }
    let state = Arc::new(AppState::new(config, history, catalog, scheduler, live));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(http::serve(listener, state.clone(), shutdown.clone()));
    tracing::info!(%address, "listening");
    Ok(RunningServer {
        address,
        state,
        shutdown,
        task,
    })
}
