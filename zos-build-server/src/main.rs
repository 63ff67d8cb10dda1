//! `zos-build-server`: the zos-build daemon. Arguments and wiring only; the
//! work is done by the library half of this crate.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use zos_build_server::Config;

/// GitHub webhooks in, Docker builds, live logs out.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The YAML configuration file; without it the embedded defaults apply.
    /// Every key can also be set as ZOS_BUILD_<KEY> (see docs/server-configuration.md).
    #[arg(long, env = "ZOS_BUILD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Check the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("zos-build-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
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
