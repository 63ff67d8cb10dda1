//! `zos-build-server`: the zos-build daemon, as a library so that its tests
//! can start the real thing in-process.
//!
//! The binary (`main.rs`) only parses arguments and wires these modules:
//!
//! - [`config`]: the settings, from a YAML file, the environment and defaults;
//! - [`logging`]: the server's own log (text or JSON, colours on a terminal);
//! - [`catalog`]: the tracked branches, swapped whole on a reload;
//! - [`server`]: start-up (history, catalog, Docker, listener) and shutdown;
//! - [`scheduler`]: runs queued builds as jobs of the core pipeline
//!   (queueing, superseding, the concurrency limit, resuming) and chooses
//!   their publishers;
//! - [`reloader`]: the configuration repository, loaded at start-up and on push;
//! - [`state`]: what request handlers share;
//! - [`sweeper`]: periodic removal of what no build owns, retention, and
//!   the Docker health check;
//! - [`live`]: the live feed of log lines and changes;
//! - [`metrics`]: the `/metrics` figures;
//! - [`views`]: the JSON shapes of builds, for the routes and the websocket;
//! - [`http`]: the routes: webhooks in; status, history, logs, the
//!   websocket and the monitor page out;
//! - [`legacy`]: `import-legacy`, the old service's history brought in.
//!
//! Imports go one way, `http → state → {scheduler, reloader} → {live,
//! catalog, config}`, and this crate root is the one place where what
//! `server` prepares is handed to `http` (see `tests/layering.rs`).
//!
//! Everything reusable outside HTTP (executing builds, fetching sources,
//! publishing, the history store) lives in `zos-build-core`; this crate adds
//! what is specific to serving it.

pub mod catalog;
pub mod config;
pub mod followers;
pub mod github;
pub mod http;
pub mod kernel;
pub mod legacy;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod reloader;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod sweeper;
pub mod views;

pub use config::{Config, ConfigError};
pub use scheduler::Scheduler;
pub use server::{RunningServer, StartError};

/// Opens the history, loads the catalog, connects to Docker (sweeping the
/// containers and work directories a previous run left), binds, resumes
/// queued builds and starts serving.
///
/// The crate root is where the layers are wired: `server` prepares the
/// state below HTTP, and only here is it handed to `http`.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    Ok(serve(server::prepare(config, true, http::frames).await?))
}

/// Like [`start`], but runs no build: pushes are only recorded as `queued`
/// and Docker is never contacted. For tests of the HTTP layer, which drive
/// the history themselves, and for a read-only view of a history.
pub async fn start_without_builds(config: Config) -> Result<RunningServer, StartError> {
    Ok(serve(server::prepare(config, false, http::frames).await?))
}

fn serve(prepared: server::Prepared) -> RunningServer {
    let server::Prepared {
        address,
        listener,
        state,
    } = prepared;
    let task = tokio::spawn(http::serve(listener, state.clone(), state.shutdown.clone()));
    tracing::info!(%address, "listening");
    RunningServer::new(address, state, task)
}
pub use state::AppState;
