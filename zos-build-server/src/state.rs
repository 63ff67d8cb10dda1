//! What every request handler shares: the settings, the history and the
//! catalog of tracked branches.
//!
//! The catalog sits behind a lock holding an `Arc`, so a reload swaps it in
//! one step and a request in flight keeps the catalog it started with.

use crate::config::Config;
use std::sync::{Arc, PoisonError, RwLock};
use zos_build_core::History;
use zos_flist_config::Catalog;

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The settings, fixed for the life of the process.
    pub config: Config,
    /// The build history.
    pub history: History,
    catalog: RwLock<Option<Arc<Catalog>>>,
}

impl AppState {
    /// State over `history`, with `catalog` (None: nothing is tracked).
    pub fn new(config: Config, history: History, catalog: Option<Catalog>) -> AppState {
        AppState {
            config,
            history,
            catalog: RwLock::new(catalog.map(Arc::new)),
        }
    }

    /// The catalog now; None when no configuration repository is loaded.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the catalog.
    pub fn set_catalog(&self, catalog: Catalog) {
        *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(catalog));
    }
}
