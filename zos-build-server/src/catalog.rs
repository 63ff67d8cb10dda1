//! The catalog of tracked branches, as the running server holds it.
//!
//! The catalog sits behind a lock holding an `Arc`, so a reload swaps it in
//! one step and a request in flight keeps the catalog it started with. The
//! lock is shared by the handlers, the reloader (which replaces it) and the
//! scheduler (which looks a build script's archive and artifact up when the
//! build starts).

use std::sync::{Arc, PoisonError, RwLock};
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
