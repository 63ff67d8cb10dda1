//! `zos-build-client`: the terminal client of zos-build.
//!
//! One subcommand per thing a person does from a terminal, each in its own
//! module; `main` only parses the arguments and hands over. Today there is
//! `config check`, the linter that configuration-repository owners run in
//! their own CI; following a build's log, status, history, trigger and
//! cancel will join the [`Command`] enum as they land.
//!
//! Exit status: 0 success, 1 the command's own verdict was negative (a
//! rejected branch file), 2 usage or I/O errors (clap's usage errors exit
//! with 2 too).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod config_check;

/// Command-line client of zos-build, the Zero-OS flist build service.
#[derive(Debug, Parser)]
#[command(name = "zos-build-client", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with a configuration repository (`<org>/<repo>/<branch>.yaml`).
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Subcommands of `config`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check every branch file of a configuration repository checkout, as the
    /// server would load it; exit 1 when any branch file is rejected.
    Check(config_check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_config_check() {
        let cli = Cli::try_parse_from(["zos-build-client", "config", "check", "dir", "--json"])
            .expect("parses");
        let Command::Config(ConfigCommand::Check(args)) = cli.command;
        assert_eq!(args.dir, std::path::PathBuf::from("dir"));
        assert!(args.json);
    }
}
