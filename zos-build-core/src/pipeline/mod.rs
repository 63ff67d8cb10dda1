//! The job of one build, as a library: what the server runs for every
//! push, and what an embedder runs without a server.
//!
//! A [`BuildJob`] puts together what varies:
//!
//! - a [`Source`] gives the build its tree: one git commit
//!   ([`GitSource`]) or a directory that is already there ([`LocalSource`]);
//! - a [`Step`] does the work on the tree: [`ContainerStep`] runs the build
//!   script with an [`Executor`](crate::Executor) and then its
//!   [`Publication`]s (each a [`Publisher`](crate::Publisher), a name and
//!   maybe a link that only moves forward, [`ForwardLinks`]); the server's
//!   configuration reload is another step;
//! - the caller's [`LogSink`](crate::LogSink)s, behind one [`JobLog`], so
//!   that the whole log (fetching, the container's output, publishing, the
//!   ending) is numbered by one sequencer from 0 without gaps;
//! - a [`StatusReporter`] told when the build starts and ends (GitHub
//!   commit statuses hang there).
//!
//! The job returns one [`JobEnding`], and writes it as the log's last line.
//! Queueing, superseding, the concurrency limit and resuming after a restart
//! are not here: they are the scheduler's (the server's), because they are
//! about many builds, and a job is one.

mod container;
mod job;
mod job_log;
mod kernel_flist;
mod publication;
mod source;
mod status;
mod stop;

pub use container::ContainerStep;
pub use job::{
    BuildJob, FetchContext, FetchingTree, JobEnding, PublishedArtifact, Step, StepContext,
    BRIEF_CHARS,
};
pub use job_log::JobLog;
pub use kernel_flist::{KernelFlist, BOOT_YAML};
pub use publication::{Derive, ForwardLinks, Publication};
pub use source::{GitSource, LocalSource, Source, SourceError};
pub use status::{JobInfo, NoStatus, StatusReporter};
pub use stop::Stop;
