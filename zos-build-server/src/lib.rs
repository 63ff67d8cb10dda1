//! `zos-build-server`: the zos-build daemon, as a library so that its tests
//! can start the real thing in-process.
//!
//! The binary (`main.rs`) only parses arguments and wires these modules:
//!
//! - [`config`]: the settings, from a YAML file, the environment and defaults.
//!
//! Everything reusable outside HTTP (executing builds, the history store)
//! lives in `zos-build-core`; this crate adds what is specific to serving it.

pub mod config;

pub use config::{Config, ConfigError};
