//! What every request handler shares: the settings, the history, the
//! catalog of tracked branches and the scheduler that runs builds.
//!
//! The catalog sits behind a lock holding an `Arc`, so a reload swaps it in
//! one step and a request in flight keeps the catalog it started with. The
//! lock itself is shared ([`SharedCatalog`]) with the scheduler, which looks
//! a build script's archive and artifact up when the build starts.

use crate::config::Config;
use crate::live::Live;
use crate::metrics::WebhookCounter;
use crate::pipeline::Scheduler;
use crate::reloader::Reloader;
use crate::sweeper::DockerHealth;
use std::sync::{Arc, PoisonError, RwLock};
use zos_build_core::{CancellationToken, Enqueued, History, HistoryError, NewBuild};
use zos_flist_config::Catalog;

/// The current catalog, shared by the handlers and the scheduler.
#[derive(Debug, Clone, Default)]
pub struct SharedCatalog {
    inner: Arc<RwLock<Option<Arc<Catalog>>>>,
}

impl SharedCatalog {
    /// A shared catalog holding `catalog` (None: nothing is tracked).
    pub fn new(catalog: Option<Catalog>) -> SharedCatalog {
        SharedCatalog {
            inner: Arc::new(RwLock::new(catalog.map(Arc::new))),
        }
    }

    /// The catalog now; None when no configuration repository is loaded.
    pub fn get(&self) -> Option<Arc<Catalog>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the catalog.
    pub fn set(&self, catalog: Catalog) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(catalog));
    }
}

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The settings, fixed for the life of the process.
    pub config: Config,
    /// The build history.
    pub history: History,
    /// Runs queued builds; None when the server was started without builds
    /// ([`crate::server::start_without_builds`]): pushes are then only recorded.
    pub scheduler: Option<Scheduler>,
    /// Every log line and every change, for the websocket and log followers.
    pub live: Arc<Live>,
    /// Webhook requests by answer, for `/metrics`.
    pub webhooks: WebhookCounter,
    /// Loads the configuration repository again on a push to it; None when
    /// no configuration repository is set.
    pub reloader: Option<Arc<Reloader>>,
    /// Cancelled when the server stops: the listener, the websockets and the
    /// log followers end on it.
    pub shutdown: CancellationToken,
    /// Whether Docker answers; None when the server runs no builds.
    pub docker: Option<Arc<DockerHealth>>,
    catalog: SharedCatalog,
}

impl AppState {
    /// State over `history` and `catalog`, with the scheduler that runs builds (if any).
    pub fn new(
        config: Config,
        history: History,
        catalog: SharedCatalog,
        scheduler: Option<Scheduler>,
        live: Arc<Live>,
        reloader: Option<Arc<Reloader>>,
    ) -> AppState {
        AppState {
            config,
            history,
            scheduler,
            live,
            webhooks: WebhookCounter::default(),
            reloader,
            shutdown: CancellationToken::new(),
            docker: None,
            catalog,
        }
    }

    /// The catalog now; None when no configuration repository is loaded.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.get()
    }

    /// Replaces the catalog.
    pub fn set_catalog(&self, catalog: Catalog) {
        self.catalog.set(catalog);
    }

    /// Records the builds of one webhook push and hands them to the
    /// scheduler, unless the push is a replay (the same repository, branch
    /// and commit queued, running or built within `replay-window`).
    pub async fn enqueue_push(
        &self,
        delivery: Option<String>,
        builds: Vec<NewBuild>,
    ) -> Result<Enqueued, HistoryError> {
        let window = Some(self.config.replay_window);
        match &self.scheduler {
            Some(scheduler) => {
                scheduler
                    .enqueue_unless_replayed(delivery, builds, window)
                    .await
            }
            None => {
                self.history
                    .enqueue_unless_replayed(delivery, builds, window)
                    .await
            }
        }
    }

    /// Records the builds of one push asked for on purpose (the API) and
    /// hands them to the scheduler; without a scheduler they are only
    /// recorded as `queued`.
    pub async fn enqueue(
        &self,
        delivery: Option<String>,
        builds: Vec<NewBuild>,
    ) -> Result<Enqueued, HistoryError> {
        match &self.scheduler {
            Some(scheduler) => scheduler.enqueue(delivery, builds).await,
            None => self.history.enqueue(delivery, builds).await,
        }
    }
}
