//! `zos-build-server`: the zos-build daemon, as a library so that its tests
//! can start the real thing in-process.
//!
//! The binary (`main.rs`) only parses arguments and wires these modules:
//!
//! - [`config`]: the settings, from a YAML file, the environment and defaults;
//! - [`server`]: start-up (history, catalog, Docker, listener) and shutdown;
//! - [`pipeline`]: the scheduler that runs queued builds;
//! - [`reloader`]: the configuration repository, loaded at start-up and on push;
//! - [`state`]: what request handlers share;
//! - [`sweeper`]: periodic removal of what no build owns, retention, and
//!   the Docker health check;
//! - [`live`]: the live feed of log lines and changes;
//! - [`metrics`]: the `/metrics` figures;
//! - [`views`]: the JSON shapes of builds, for the routes and the websocket;
//! - [`http`]: the routes: webhooks in; status, history, logs, the
//!   websocket and the monitor page out.
//!
//! Everything reusable outside HTTP (executing builds, fetching sources,
//! publishing, the history store) lives in `zos-build-core`; this crate adds
//! what is specific to serving it.

pub mod config;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod reloader;
pub mod server;
pub mod state;
pub mod sweeper;
pub mod views;

pub use config::{Config, ConfigError};
pub use pipeline::Scheduler;
pub use server::{start, start_without_builds, RunningServer, StartError};
pub use state::AppState;
