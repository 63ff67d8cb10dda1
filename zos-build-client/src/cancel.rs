//! `cancel BUILD_ID`: stops a queued or running build (the admin token).
//! A build that had already ended is a negative answer (exit 1), not an
//! error: the request was understood, there was nothing left to stop.

use crate::api::Server;
use crate::outcome::{Failure, Verdict};
use crate::reference::BuildRef;
use reqwest::StatusCode;
use std::io::Write;

/// Arguments of `cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The build's id (`status` lists them).
    #[arg(value_name = "BUILD_ID")]
    pub build: String,
}

/// `cancel`.
pub async fn run(server: &Server, args: &CancelArgs) -> Result<Verdict, Failure> {
    let BuildRef::Id(id) = BuildRef::parse(&args.build)? else {
        return Err(Failure::Usage(format!(
            "cancel takes a build id, not {:?}: `status` lists them",
            args.build
        )));
    };
    match server.cancel(&id).await {
        Ok(()) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "build {id} cancelled")?;
            out.flush()?;
            Ok(Verdict::Positive)
        }
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
            eprintln!("zos-build-client: build {id} was not cancelled: {e}");
            Ok(Verdict::Negative)
        }
        Err(e) => Err(e.into()),
    }
}
