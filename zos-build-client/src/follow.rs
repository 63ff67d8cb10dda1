//! `follow BUILD`: a build's log from its first line, live until the build
//! ends, then its verdict as the exit status.
//!
//! The log comes from `GET /api/builds/<id>/log?follow=1&offset=N`, which
//! the server ends when the build has ended. A connection that breaks (a
//! restarting proxy, a flaky network, a server restart) is made again from
//! the byte offset the [`LogCursor`] counted, within a window of
//! [`RECONNECT_WINDOW`] without progress; the output is the log exactly,
//! whatever happened to the connections. When the answer ends, the build's
//! record decides: finished means done, and anything else (an answer cut
//! cleanly by something in between) means reconnect.
//!
//! What is shown depends on where it goes ([`View`]): on a terminal the
//! service's own lines are faint, a spinner says the build is waiting, a
//! coloured verdict closes; to a file or a pipe, stdout is the log's bytes
//! and nothing else.

use crate::api::{ApiError, Server};
use crate::builds::{Build, BuildStatus};
use crate::cursor::{LogCursor, Retry};
use crate::outcome::{Failure, Verdict};
use crate::progress::{self, Spinner};
use crate::reference::BuildRef;
use crate::style::{self, ColorChoice};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long `follow` keeps trying to get a broken log back.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// How often the status of a waiting build is asked, for the spinner.
const STATUS_POLL: Duration = Duration::from_secs(1);

/// Arguments of `follow`.
#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// A build id, OWNER/REPO/BRANCH (its newest build) or `latest`.
    #[arg(
        value_name = "BUILD_ID | OWNER/REPO/BRANCH | latest",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub build: Option<String>,
    /// Every line of every build, from the live feed, until Ctrl-C.
    #[arg(long)]
    pub all: bool,
}

/// Where the pieces of `follow`'s output go, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Colour the log (the service's lines faint).
    pub colour: bool,
    /// Draw the waiting spinner on stderr.
    pub spinner: bool,
    /// Where the closing verdict goes, if anywhere.
    pub verdict: Option<Stream>,
    /// Colour the verdict.
    pub verdict_colour: bool,
}

/// An output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl View {
    /// The view for outputs that are (or are not) terminals.
    pub fn decide(
        colour_stdout: bool,
        colour_stderr: bool,
        stdout_tty: bool,
        stderr_tty: bool,
    ) -> View {
        // The verdict goes where a person reads: stdout on a terminal,
        // else stderr on a terminal (`follow x > build.log`), else nowhere
        // (the exit status says it).
        let verdict = if stdout_tty {
            Some(Stream::Stdout)
        } else if stderr_tty {
            Some(Stream::Stderr)
        } else {
            None
        };
        View {
            colour: colour_stdout,
            spinner: stderr_tty,
            verdict,
            verdict_colour: match verdict {
                Some(Stream::Stdout) => colour_stdout,
                Some(Stream::Stderr) => colour_stderr,
                None => false,
            },
        }
    }

    /// The view for this process.
    pub fn detect(choice: ColorChoice) -> View {
        View::decide(
            style::colour_for(choice, false),
            style::colour_for(choice, true),
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        )
    }
}

/// `follow BUILD`.
pub async fn run(server: &Server, reference: &str, view: View) -> Result<Verdict, Failure> {
    let reference = BuildRef::parse(reference)?;
    let build = reference.resolve(server).await?;
    let ended = follow_build(server, &build, view).await?;
    Ok(verdict_of(&ended))
}

/// Success is the only positive end.
pub fn verdict_of(build: &Build) -> Verdict {
    if build.status == BuildStatus::Success {
        Verdict::Positive
    } else {
        Verdict::Negative
    }
}

/// Polls the build's status for the spinner, as long as someone listens.
fn watch_status(server: &Server, build: &Build) -> watch::Receiver<BuildStatus> {
    let (sender, receiver) = watch::channel(build.status.clone());
    let server = server.clone();
    let id = build.id.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(STATUS_POLL).await;
            let Ok(build) = server.build(&id).await else {
                continue;
            };
            let waiting = build.status.is_waiting();
            if sender.send(build.status).is_err() || !waiting {
                return;
            }
        }
    });
    receiver
}

/// The status the poller sent since the last look, if any. The poller
/// stops (and drops its end) right after sending a status that is no longer
/// waiting: that last status still counts.
fn news(receiver: &mut watch::Receiver<BuildStatus>) -> Option<BuildStatus> {
    let changed = receiver.has_changed().unwrap_or(true);
    changed.then(|| receiver.borrow_and_update().clone())
}

/// Prints to the terminal or the pipe, keeping the spinner out of the log.
struct Printer {
    view: View,
    spinner: Spinner,
    status: Option<watch::Receiver<BuildStatus>>,
}

impl Printer {
    fn log(&mut self, lines: &[u8]) -> Result<(), Failure> {
        if lines.is_empty() {
            return Ok(());
        }
        self.spinner.stop(&mut std::io::stderr());
        self.status = None;
        let mut out = std::io::stdout().lock();
        if self.view.colour {
            out.write_all(&style::paint_log(lines))?;
        } else {
            out.write_all(lines)?;
        }
        out.flush()?;
        Ok(())
    }

    /// A tick of the spinner, with the latest status known.
    fn tick(&mut self) {
        let mut err = std::io::stderr();
        if let Some(status) = self.status.as_mut().and_then(news) {
            self.spinner.set_status(status, &mut err);
        }
        self.spinner.tick(&mut err);
        if !self.spinner.is_active() {
            self.status = None;
        }
    }

    fn note(&mut self, text: &str) {
        self.spinner.erase(&mut std::io::stderr());
        eprintln!("zos-build-client: {text}");
    }

    fn verdict(&mut self, build: &Build) -> Result<(), Failure> {
        self.spinner.erase(&mut std::io::stderr());
        let line = style::verdict_line(build, self.view.verdict_colour);
        match self.view.verdict {
            Some(Stream::Stdout) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Some(Stream::Stderr) => eprintln!("{line}"),
            None => {}
        }
        Ok(())
    }
}

/// How one connection to the log ended.
enum Answer {
    /// The server ended it: the build should have ended.
    Ended,
    /// It failed; the error says whether to try again.
    Failed(ApiError),
}

/// Receives one answer of the log route into `cursor`, printing whole lines.
async fn receive(
    server: &Server,
    id: &str,
    cursor: &mut LogCursor,
    retry: &mut Retry,
    printer: &mut Printer,
) -> Result<Answer, Failure> {
    let mut stream = match server.follow_log(id, cursor.offset()).await {
        Ok(stream) => stream,
        Err(e) => return Ok(Answer::Failed(e)),
    };
    retry.connected();
    let mut ticker = tokio::time::interval(progress::TICK);
    loop {
        let chunk = if printer.spinner.is_active() {
            tokio::select! {
                chunk = stream.next_chunk() => chunk,
                _ = ticker.tick() => {
                    printer.tick();
                    continue;
                }
            }
        } else {
            stream.next_chunk().await
        };
        match chunk {
            Ok(Some(bytes)) => {
                if !bytes.is_empty() {
                    retry.progressed();
                }
                printer.log(&cursor.accept(&bytes))?;
            }
            Ok(None) => return Ok(Answer::Ended),
            Err(e) => return Ok(Answer::Failed(e)),
        }
    }
}

/// Follows `build`'s log to its end; returns the build as it ended.
pub async fn follow_build(server: &Server, build: &Build, view: View) -> Result<Build, Failure> {
    let spinner = Spinner::new(&build.id, build.status.clone(), view.spinner);
    let status = spinner.is_active().then(|| watch_status(server, build));
    let mut printer = Printer {
        view,
        spinner,
        status,
    };
    let mut cursor = LogCursor::new();
    let mut retry = Retry::new(RECONNECT_WINDOW);
    loop {
        let failure =
            match receive(server, &build.id, &mut cursor, &mut retry, &mut printer).await? {
                Answer::Ended => match server.build(&build.id).await {
                    Ok(ended) if ended.status.is_finished() => {
                        printer.log(&cursor.finish())?;
                        printer.verdict(&ended)?;
                        return Ok(ended);
                    }
                    Ok(running) => ApiError::Interrupted {
                        server: server.url().to_string(),
                        what: format!("GET /api/builds/{}/log", build.id),
                        cause: format!(
                            "the log ended while the build is still {}",
                            running.status.as_str()
                        ),
                    },
                    Err(e) => e,
                },
                Answer::Failed(e) => e,
            };
        if !failure.is_transient() {
            return Err(failure.into());
        }
        let first = retry.attempts() == 0;
        let Some(delay) = retry.failed(Instant::now()) else {
            return Err(Failure::GaveUp {
                server: server.url().to_string(),
                id: build.id.clone(),
                offset: cursor.offset(),
                seconds: RECONNECT_WINDOW.as_secs(),
                last: Box::new(failure),
            });
        };
        if first {
            printer.note(&format!(
                "{failure}; reconnecting from byte {}",
                cursor.offset()
            ));
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_verdict_goes_where_a_person_reads() {
        let terminal = View::decide(true, true, true, true);
        assert_eq!(terminal.verdict, Some(Stream::Stdout));
        assert!(terminal.colour && terminal.spinner && terminal.verdict_colour);

        let to_file = View::decide(false, true, false, true);
        assert_eq!(to_file.verdict, Some(Stream::Stderr), "`follow x > log`");
        assert!(!to_file.colour, "the file gets the log's bytes");
        assert!(to_file.spinner && to_file.verdict_colour);

        let script = View::decide(false, false, false, false);
        assert_eq!(script.verdict, None, "the exit status says it");
        assert!(!script.colour && !script.spinner);

        let no_color = View::decide(false, false, true, true);
        assert_eq!(no_color.verdict, Some(Stream::Stdout));
        assert!(!no_color.colour && !no_color.verdict_colour, "NO_COLOR");
    }

    #[test]
    fn the_last_status_of_a_finished_poller_is_not_lost() {
        let (sender, mut receiver) = watch::channel(BuildStatus::Queued);
        assert_eq!(news(&mut receiver), None, "nothing new yet");
        sender.send(BuildStatus::Initializing).expect("listened to");
        assert_eq!(news(&mut receiver), Some(BuildStatus::Initializing));
        assert_eq!(news(&mut receiver), None, "seen");
        sender.send(BuildStatus::Building).expect("listened to");
        drop(sender);
        assert_eq!(news(&mut receiver), Some(BuildStatus::Building));
    }

    #[test]
    fn only_success_is_positive() {
        for (status, verdict) in [
            ("success", Verdict::Positive),
            ("error", Verdict::Negative),
            ("cancelled", Verdict::Negative),
        ] {
            let build: Build =
                serde_json::from_value(json!({"id": "a", "status": status})).expect("reads");
            assert_eq!(verdict_of(&build), verdict, "{status}");
        }
    }
}
