//! `cache clear TARGET`: empties the build cache of a kernel target (the
//! admin token). Kernel builds keep their cache (`zos-build-cache-<target>`)
//! between builds, which is what makes the second build fast; a cache that
//! went bad (a half-written toolchain) is cleared here, and the next build
//! starts from nothing.

use crate::api::Server;
use crate::outcome::{Failure, Verdict};
use reqwest::StatusCode;
use std::io::Write;

/// Subcommands of `cache`.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Empty a kernel target's build cache (needs the admin token); the
    /// target is its repository's name (`0-initramfs`).
    Clear(ClearArgs),
}

/// Arguments of `cache clear`.
#[derive(Debug, clap::Args)]
pub struct ClearArgs {
    /// The kernel target: its repository's name (`0-initramfs`).
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// `cache clear`.
pub async fn run(server: &Server, command: &CacheCommand) -> Result<Verdict, Failure> {
    let CacheCommand::Clear(args) = command;
    match server.clear_cache(&args.target).await {
        Ok(removed) => {
            let mut out = std::io::stdout().lock();
            if removed {
                writeln!(out, "build cache of {} cleared", args.target)?;
            } else {
                writeln!(out, "build cache of {} was empty", args.target)?;
            }
            out.flush()?;
            Ok(Verdict::Positive)
        }
        // A build uses the cache now: try again once it has ended.
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
            eprintln!(
                "zos-build-client: the cache of {} was not cleared: {e}",
                args.target
            );
            Ok(Verdict::Negative)
        }
        Err(e) => Err(e.into()),
    }
}
