//! `status` and `history [--full]`: the builds queued and running, and the
//! finished ones, as tables fitted to the terminal ([`crate::tables`]), or
//! with `--json` the server's own JSON, untouched, for scripts.

use crate::api::Server;
use crate::builds::Build;
use crate::clock;
use crate::outcome::{Failure, Verdict};
use crate::style::{self, ColorChoice};
use crate::tables;
use std::io::Write;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the server's JSON (`/build/status`) as it is.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Every finished build (`/build/history/full`), not only the latest 25.
    #[arg(long)]
    pub full: bool,
    /// Print the server's JSON as it is.
    #[arg(long)]
    pub json: bool,
}

/// `status`.
pub async fn status(
    server: &Server,
    args: &StatusArgs,
    colour: ColorChoice,
) -> Result<Verdict, Failure> {
    let (text, builds) = server.status().await?;
    print(
        &text,
        &builds,
        args.json,
        colour,
        "no build is queued or running",
    )
}

/// `history`.
pub async fn history(
    server: &Server,
    args: &HistoryArgs,
    colour: ColorChoice,
) -> Result<Verdict, Failure> {
    let (text, builds) = server.history(args.full).await?;
    print(
        &text,
        &builds,
        args.json,
        colour,
        "no build has finished yet",
    )
}

fn print(
    json: &str,
    builds: &[Build],
    as_json: bool,
    colour: ColorChoice,
    empty: &str,
) -> Result<Verdict, Failure> {
    let mut out = std::io::stdout().lock();
    if as_json {
        out.write_all(json.as_bytes())?;
        // The body is printed as sent; a line ends it on a terminal.
        if !json.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    } else if builds.is_empty() {
        writeln!(out, "{empty}")?;
    } else {
        let table = tables::render(
            builds,
            tables::output_width(),
            clock::now(),
            style::colour_for(colour, false),
        );
        out.write_all(table.as_bytes())?;
    }
    out.flush()?;
    Ok(Verdict::Positive)
}
