//! The helpers that the test suites of several zos-build crates share.
//!
//! Why a crate: the Docker helpers of `zos-build-core`'s tests were used by
//! the server's tests, and the server's harness by the client's, each
//! pulled in with `#[path = "../../other-crate/tests/..."]`. Such a chain
//! compiles the same file into every test binary under another module path,
//! hides who depends on whom, and breaks when a file moves. Here the helpers
//! are an ordinary library with its own dependencies, taken as a
//! dev-dependency only, and never published.
//!
//! - `browser` (feature `browser`): a real headless Chromium driven by
//!   chromedriver, for the monitor page, with nothing left running.
//! - [`docker`]: a real daemon, the busybox test image (imported when
//!   missing: nothing can be pulled on these machines), unique build ids and
//!   container checks.
//! - `server` (feature `server`): the server started in-process on a
//!   temporary data directory, with its own configuration and source
//!   repositories, signed pushes, and waits on the history.
//! - `hub` (feature `hub`): a Zero-OS Hub stand-in on the loopback that
//!   speaks the hub's upload and link API, records what it receives, and
//!   fails, refuses, stalls or holds uploads on demand.
//! - `github` (feature `github`): a GitHub REST API stand-in on the
//!   loopback that speaks the commit-status and repository-webhook API with
//!   GitHub's answer shapes, records what it receives, and fails,
//!   rate-limits, stalls or goes down on demand.

#[cfg(feature = "browser")]
pub mod browser;
pub mod docker;
#[cfg(feature = "github")]
pub mod github;
#[cfg(feature = "hub")]
pub mod hub;
pub mod measure;
#[cfg(feature = "server")]
pub mod server;
