//! `zos-build-server`: the zos-build daemon. Arguments and wiring only; the
//! work is done by the library half of this crate.
//!
//! Exit codes: 0 when it ran (an import with skipped rows included), 1 on a
//! fatal error, 2 on bad arguments or configuration.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zos_build_server::Config;

/// GitHub webhooks in, Docker builds, live logs out.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The YAML configuration file; without it the embedded defaults apply.
    /// Every key can also be set as ZOS_BUILD_<KEY> (see docs/server-configuration.md).
    #[arg(long, env = "ZOS_BUILD_CONFIG", value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Check the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import the old autobuilder's history and build logs.
    ///
    /// Its builds go into the history and logs directory of this server's
    /// configuration, with their old ids, so /report/<old id> answers.
    /// Running it again imports only what is new. See docs/upgrading.md.
    ImportLegacy {
        /// The old service's logs-directory: the one holding history.sqlite
        /// and commits/<build id>. Only read.
        #[arg(long, value_name = "DIR")]
        logs_directory: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("zos-build-server: {e}");
            return ExitCode::from(2);
        }
    };
    // The log's form is a setting, so it starts once the settings are read.
    zos_build_server::logging::init(config.log_format);
    if args.check_config {
        if args.command.is_some() {
            Args::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--check-config cannot be used with a command",
                )
                .exit();
        }
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    if let Some(Command::ImportLegacy { logs_directory }) = &args.command {
        return import_legacy(&config, logs_directory).await;
    }
    let server = match zos_build_server::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("zos-build-server: {e}");
            return ExitCode::from(1);
        }
    };
    match stop_signal().await {
        Ok(signal) => tracing::info!(%signal, "stopping"),
        Err(e) => eprintln!("zos-build-server: cannot wait for a stop signal: {e}"),
    }
    server.stop().await;
    ExitCode::SUCCESS
}

/// `import-legacy`: runs the import and prints what it did, row by row
/// where something was skipped, then the counts.
async fn import_legacy(config: &Config, logs_directory: &Path) -> ExitCode {
    match zos_build_server::legacy::import(config, logs_directory).await {
        Ok(report) => {
            for skipped in &report.malformed {
                println!("{skipped}");
            }
            for missing in &report.logs_missing {
                println!("{missing}");
            }
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zos-build-server: import-legacy: {e}");
            ExitCode::from(1)
        }
    }
}

/// Waits for Ctrl-C or, on Unix, SIGTERM (what service managers and
/// `docker stop` send); returns which one came.
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

/// jemalloc, which gives freed memory back after a burst of followers where
/// glibc's allocator kept it (docs/benchmarks.md, "Followers").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
