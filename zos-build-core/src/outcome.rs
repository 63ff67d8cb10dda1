//! How a build ended.

use std::path::PathBuf;
use std::time::Duration;

/// Why the build's process stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Termination {
    /// It exited by itself; see the exit code.
    Exited,
    /// It ran longer than the overall timeout and was killed.
    TimedOut,
    /// It printed nothing for longer than the no-output timeout and was killed.
    NoOutput,
    /// The caller cancelled it.
    Cancelled,
    /// The kernel killed it for exceeding its memory limit.
    OutOfMemory,
    /// It printed more than its log size limit and was killed; the log
    /// holds everything up to the limit.
    LogLimit,
}

/// The result of a build that ran (whether or not it succeeded).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BuildOutcome {
    /// Why it stopped.
    pub termination: Termination,
    /// The process's exit code, when Docker reported one.
    pub exit_code: Option<i64>,
    /// From the container's start to its end.
    pub duration: Duration,
    /// Number of log lines delivered to the sink (system lines included).
    pub log_lines: u64,
    /// Host paths of the extracted artifacts, in the order requested.
    pub artifacts: Vec<PathBuf>,
    /// Id of the image committed from the container, when one was asked for.
    pub committed_image: Option<String>,
    /// The container's id (it no longer exists).
    pub container_id: String,
}

impl BuildOutcome {
    /// True when the process exited by itself with status 0.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited && self.exit_code == Some(0)
    }

    /// A one-line human description: `exited with status 2`, `timed out`, ...
    pub fn describe(&self) -> String {
        match self.termination {
            Termination::Exited => match self.exit_code {
                Some(code) => format!("exited with status {code}"),
                None => "exited with an unknown status".into(),
            },
            Termination::TimedOut => "killed: the time limit was reached".into(),
            Termination::NoOutput => "killed: no output for too long".into(),
            Termination::Cancelled => "cancelled".into(),
            Termination::OutOfMemory => "killed: out of memory".into(),
            Termination::LogLimit => "killed: the log size limit was reached".into(),
        }
    }
}
