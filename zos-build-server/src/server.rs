//! Starting and stopping the server: open the history, load the catalog,
//! bind the listener, serve until told to stop.
//!
//! Start-up repairs what a crash left behind before anything is accepted:
//! builds recorded as running are marked `error` ("interrupted by restart").

use crate::config::Config;
use crate::http;
use crate::state::AppState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zos_build_core::{CancellationToken, History, HistoryError};
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
    /// Stops accepting, lets open connections finish their request, and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the server task ended abnormally");
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

/// Opens the history, loads the catalog, binds and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
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
    let address = SocketAddr::new(config.http_listen, config.http_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| StartError::Bind { address, source })?;
    let state = Arc::new(AppState::new(config, history, catalog));
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
