//! How a command ends, and the exit status that says it: 0 when its answer
//! is yes (the build succeeded, the request was done), 1 when it is no (the
//! build failed or was cancelled, the build to cancel had already ended),
//! 2 when there is no answer (a usage error, a server that cannot be
//! reached, an output that cannot be written).

use crate::api::ApiError;
use crate::reference::RefError;
use std::process::ExitCode;

/// The answer of a command that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Yes: exit 0.
    Positive,
    /// No: exit 1.
    Negative,
}

/// A command could not give an answer: exit 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The arguments make no sense.
    #[error("{0}")]
    Usage(String),
    /// A request to the server failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The build named could not be found.
    #[error(transparent)]
    Reference(#[from] RefError),
    /// A followed log's connection broke and could not be made again.
    #[error("lost the log of build {id} at byte {offset} and could not get it back from {server} within {seconds} s: {last}")]
    GaveUp {
        /// The server's URL.
        server: String,
        /// The build followed.
        id: String,
        /// Bytes of the log received.
        offset: u64,
        /// How long the client tried.
        seconds: u64,
        /// The last failure.
        last: Box<ApiError>,
    },
    /// The live websocket failed.
    #[error("the live feed of the server at {server} ({url}) failed while {what}: {cause}")]
    Websocket {
        /// The server's URL.
        server: String,
        /// The websocket URL.
        url: String,
        /// What was being done.
        what: String,
        /// What went wrong.
        cause: String,
    },
    /// Standard output cannot be written (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

impl Failure {
    /// Whether it is only the reader having gone away (`follow | head`),
    /// which is not worth a message.
    fn is_closed_pipe(&self) -> bool {
        matches!(self, Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The exit status of a command's result, after saying on stderr why it
/// failed, if it did.
pub fn exit_code(result: Result<Verdict, Failure>) -> ExitCode {
    match result {
        Ok(Verdict::Positive) => ExitCode::SUCCESS,
        Ok(Verdict::Negative) => ExitCode::from(1),
        Err(failure) => {
            if !failure.is_closed_pipe() {
                eprintln!("zos-build-client: {failure}");
            }
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_0_1_2() {
        assert_eq!(exit_code(Ok(Verdict::Positive)), ExitCode::SUCCESS);
        assert_eq!(exit_code(Ok(Verdict::Negative)), ExitCode::from(1));
        assert_eq!(
            exit_code(Err(Failure::Usage("test: an expected usage error".into()))),
            ExitCode::from(2)
        );
        assert!(Failure::Output(std::io::ErrorKind::BrokenPipe.into()).is_closed_pipe());
    }

    #[test]
    fn giving_up_names_the_server_the_build_and_the_cause() {
        let failure = Failure::GaveUp {
            server: "http://127.0.0.1:5560".into(),
            id: "a1".into(),
            offset: 42,
            seconds: 30,
            last: Box::new(ApiError::Unreachable {
                server: "http://127.0.0.1:5560".into(),
                what: "GET /api/builds/a1/log?follow=1&offset=42".into(),
                cause: "Connection refused (os error 111)".into(),
            }),
        };
        let text = failure.to_string();
        for part in [
            "http://127.0.0.1:5560",
            "build a1",
            "byte 42",
            "30 s",
            "Connection refused",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    }
}
