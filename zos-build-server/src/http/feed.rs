//! The `status` and `history` frames of the live feed, rendered here.
//!
//! The scheduler and the reloader only say that something changed
//! ([`Live::changed`]); the JSON shapes belong to the HTTP layer
//! ([`crate::views`]), whose renderer the crate root installs at start-up.

use crate::config::Config;
use crate::live::{Frames, Live};
use crate::views;
use async_trait::async_trait;
use std::sync::Arc;
use zos_build_core::History;

/// Renders the frames from the history.
struct HistoryFrames {
    history: History,
    config: Config,
}

#[async_trait]
impl Frames for HistoryFrames {
    async fn render(&self, live: &Live, history_changed: bool) {
        views::announce(&self.history, &self.config, live, history_changed).await;
    }
}

/// The renderer of the frames of `history`, for [`Live::render_with`].
pub fn frames(history: History, config: Config) -> Arc<dyn Frames> {
    Arc::new(HistoryFrames { history, config })
}
