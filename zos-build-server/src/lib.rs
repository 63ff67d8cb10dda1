//! `zos-build-server`: the zos-build daemon, as a library so that its tests
//! can start the real thing in-process.
//!
//! The binary (`main.rs`) only parses arguments and wires these modules:
//!
//! - [`config`]: the settings, from a YAML file, the environment and defaults;
//! - [`server`]: start-up (history, catalog, Docker, listener) and shutdown;
//! - [`pipeline`]: the scheduler that runs queued builds;
//! - [`state`]: what request handlers share;
//! - [`http`]: the routes: webhooks in, status, history and logs out.
//!
//! Everything reusable outside HTTP (executing builds, fetching sources,
//! publishing, the history store) lives in `zos-build-core`; this crate adds
//! what is specific to serving it.

pub mod config;
pub mod http;
pub mod pipeline;
pub mod server;
pub mod state;

pub use config::{Config, ConfigError};
pub use pipeline::Scheduler;
pub use server::{start, start_without_builds, RunningServer, StartError};
pub use state::AppState;
