//! `trigger OWNER/REPO BRANCH [--commit SHA] [--follow]`: starts the builds
//! of a tracked branch through the server's API (the admin token), prints
//! their ids, and with `--follow` follows each in turn like `follow` does.
//!
//! A branch has one build per build script, so one trigger may start
//! several: without `--follow` their ids are printed one per line (for
//! scripts); with it, the ids go to stderr and stdout carries the logs, one
//! after the other, and the exit status is 1 when any of them did not
//! succeed.

use crate::api::Server;
use crate::follow::{self, View};
use crate::outcome::{Failure, Verdict};
use std::io::Write;

/// Arguments of `trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The repository, `OWNER/REPO`.
    #[arg(value_name = "OWNER/REPO")]
    pub repository: String,
    /// The branch.
    pub branch: String,
    /// Build this commit instead of the branch's head.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Follow the builds' logs to their end, and exit with their verdict.
    #[arg(long)]
    pub follow: bool,
}

/// Checks the arguments before anything is sent.
pub fn check(args: &TriggerArgs) -> Result<(), Failure> {
    let parts: Vec<&str> = args.repository.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() != 2 || !parts.iter().all(part_ok) {
        return Err(Failure::Usage(format!(
            "{:?} is not a repository: expected OWNER/REPO",
            args.repository
        )));
    }
    if args.branch.is_empty()
        || args
            .branch
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::Usage(format!(
            "{:?} is not a branch name",
            args.branch
        )));
    }
    if let Some(commit) = &args.commit {
        let hex = (4..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(Failure::Usage(format!(
                "{commit:?} is not a commit: expected its hexadecimal SHA"
            )));
        }
    }
    Ok(())
}

/// `trigger`.
pub async fn run(server: &Server, args: &TriggerArgs, view: View) -> Result<Verdict, Failure> {
    check(args)?;
    let ids = server
        .trigger(&args.repository, &args.branch, args.commit.as_deref())
        .await?;
    if !args.follow {
        let mut out = std::io::stdout().lock();
        for id in &ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
        return Ok(Verdict::Positive);
    }
    let mut verdict = Verdict::Positive;
    for (n, id) in ids.iter().enumerate() {
        eprintln!(
            "zos-build-client: following build {id} ({} of {})",
            n + 1,
            ids.len()
        );
        let build = server.build(id).await?;
        let ended = follow::follow_build(server, &build, view).await?;
        if follow::verdict_of(&ended) == Verdict::Negative {
            verdict = Verdict::Negative;
        }
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(repository: &str, branch: &str, commit: Option<&str>) -> TriggerArgs {
        TriggerArgs {
            repository: repository.into(),
            branch: branch.into(),
            commit: commit.map(Into::into),
            follow: false,
        }
    }

    #[test]
    fn arguments_are_checked_before_sending() {
        assert!(check(&args("acme/widget", "master", None)).is_ok());
        assert!(check(&args("acme/widget", "feature/x", Some("0123abcd"))).is_ok());
        for (repository, branch, commit) in [
            ("acme", "master", None),
            ("acme/widget/master", "master", None),
            ("acme/../x", "master", None),
            ("acme/wid get", "master", None),
            ("acme/widget", "", None),
            ("acme/widget", "two words", None),
            ("acme/widget", "master", Some("HEAD")),
            ("acme/widget", "master", Some("abc")),
        ] {
            let error = check(&args(repository, branch, commit)).expect_err(repository);
            assert!(matches!(error, Failure::Usage(_)), "{error}");
        }
    }
}
