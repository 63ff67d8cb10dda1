//! The zos-build engine: run a build script in a fresh Docker container,
//! stream every line of its output to whoever listens, and hand back its
//! artifacts with an honest outcome.
//!
//! The whole model, in the order data flows:
//!
//! - a [`BuildSpec`] says what to run: image, [`Command`], source tree,
//!   artifacts, [`Limits`], network and privileges;
//! - an [`Executor`] runs it; [`DockerExecutor`] is the Docker implementation
//!   (no bind mounts: files move through the archive API, so it works against
//!   any daemon the service can reach);
//! - every line of output becomes a [`LogEvent`] delivered to a [`LogSink`];
//!   the [`sink`] module has the file, broadcast, tail, fan-out, masking and
//!   size-cap sinks, and any other crate can add its own;
//! - the run ends in a [`BuildOutcome`] (exit code, [`Termination`], artifacts)
//!   or, when it could not be carried out at all, a [`BuildError`];
//! - a [`History`] records every build in an SQLite file, so that the
//!   history and the queue survive restarts;
//! - each build's [`Phase`]s (fetch, create, upload, run, extract,
//!   publish) are timed where they happen and reach the caller through the
//!   log, as [`PhaseTimings`];
//! - [`git::Git::fetch_commit`] fetches exactly the pushed commit, [`artifact_name()`]
//!   names the result, and a [`Publisher`] puts it where it is served.
//!
//! The parser of the configuration repository (crate `zos-flist-config`) is
//! re-exported as [`flist_config`], so one dependency gives an embedder the
//! whole engine. This crate serves no HTTP and knows nothing of GitHub (the
//! server composes it with those); its one HTTP client is the Zero-OS Hub
//! publisher, the hub being where flists go.

pub mod artifact_name;
pub mod docker;
mod error;
mod executor;
pub mod git;
pub mod history;
pub mod log;
pub mod names;
mod outcome;
pub mod phase;
pub mod pipeline;
pub mod publish;
pub mod redact;
pub mod sink;
mod spec;
pub mod units;

pub use artifact_name::{artifact_name, latest_name};
pub use docker::DockerExecutor;
pub use error::BuildError;
pub use executor::{Executor, PendingTree};
pub use history::{
    ArtifactKind, BuildRecord, BuildStatus, BuildUpdate, Enqueued, History, HistoryError,
    LinkRecord, NewBuild,
};
pub use log::{LogEvent, LogStream};
pub use names::{CommitId, NameError, RepositoryName};
pub use outcome::{BuildOutcome, Termination};
pub use phase::{Phase, PhaseTimings};
pub use publish::{
    link_name, BinaryPublisher, HubPublisher, HubPublisherBuilder, LocalPublisher, PublishError,
    PublishRequest, Published, PublishedLink, Publisher, RetryPolicy,
};
pub use sink::{LogSink, SinkError};
pub use spec::{BuildSpec, Command, ImageRef, Limits, SourceTree};
pub use tokio_util::sync::CancellationToken;
pub use zos_flist_config as flist_config;
