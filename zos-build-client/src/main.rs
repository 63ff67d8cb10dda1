//! `zos-build-client`: the terminal client of zos-build.
//!
//! One subcommand per thing a person does from a terminal, each in its own
//! module; `main` only parses the arguments, wires the server and hands
//! over:
//!
//! - `config check` ([`config_check`]): the configuration linter, offline;
//! - `follow` ([`follow`], [`follow_all`]): a build's log, live, exiting
//!   with the build's verdict; or every build's lines;
//! - `status`, `history` ([`listing`], [`tables`]);
//! - `trigger` ([`trigger`]), `cancel` ([`cancel`]) and `cache clear`
//!   ([`cache`]), with the admin token.
//!
//! Below them: [`api`] speaks HTTP to the server, [`builds`] reads its
//! build objects, [`reference`](mod@reference) finds the build a command names,
//! [`cursor`] counts a followed log's bytes, [`style`] and [`progress`]
//! decide what a terminal gets.
//!
//! Exit status everywhere ([`outcome`]): 0 yes, 1 no (a failed or cancelled
//! build, a rejected branch file), 2 no answer (usage errors, including
//! clap's, a server that cannot be reached, an output that cannot be
//! written).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod api;
mod builds;
mod cache;
mod cancel;
mod clock;
mod config_check;
mod cursor;
mod follow;
mod follow_all;
mod listing;
mod outcome;
mod progress;
mod reference;
mod style;
mod tables;
mod trigger;

use outcome::{Failure, Verdict};

/// Command-line client of zos-build, the Zero-OS flist build service.
#[derive(Debug, Parser)]
#[command(name = "zos-build-client", version, about)]
struct Cli {
    /// The zos-build server.
    #[arg(
        long,
        global = true,
        env = "ZOS_BUILD_SERVER",
        default_value = "http://127.0.0.1:5560",
        value_name = "URL"
    )]
    server: String,
    /// The server's admin token, for `trigger`, `cancel` and `cache clear`.
    #[arg(long, global = true, env = "ZOS_BUILD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// When to use colours: on a terminal (`auto`, unless NO_COLOR is set),
    /// `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: style::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with a configuration repository (`<org>/<repo>/<branch>.yaml`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a build's log from its first line, live until it ends; exit 0
    /// when it succeeded, 1 when it failed or was cancelled.
    Follow(follow::FollowArgs),
    /// The builds queued and running.
    Status(listing::StatusArgs),
    /// The finished builds, newest first.
    History(listing::HistoryArgs),
    /// Start the builds of a tracked branch (needs the admin token).
    Trigger(trigger::TriggerArgs),
    /// Cancel a queued or running build (needs the admin token).
    Cancel(cancel::CancelArgs),
    /// Kernel build caches (needs the admin token).
    #[command(subcommand)]
    Cache(cache::CacheCommand),
}

/// Subcommands of `config`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check every branch file of a configuration repository checkout, as the
    /// server would load it; exit 1 when any branch file is rejected.
    Check(config_check::CheckArgs),
}

/// Runs a command that talks to the server.
async fn run(cli: Cli) -> Result<Verdict, Failure> {
    let server = api::Server::new(&cli.server, cli.token)?;
    let view = || follow::View::detect(cli.color);
    match cli.command {
        Command::Config(_) => Err(Failure::Usage("config is not a server command".into())),
        Command::Follow(args) => match args.build {
            _ if args.all => follow_all::run(&server, style::colour_for(cli.color, false)).await,
            Some(build) => follow::run(&server, &build, view()).await,
            None => Err(Failure::Usage("follow: name a build, or pass --all".into())),
        },
        Command::Status(args) => listing::status(&server, &args, cli.color).await,
        Command::History(args) => listing::history(&server, &args, cli.color).await,
        Command::Trigger(args) => trigger::run(&server, &args, view()).await,
        Command::Cancel(args) => cancel::run(&server, &args).await,
        Command::Cache(command) => cache::run(&server, &command).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Check(args)) = &cli.command {
        return config_check::run(args);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(Failure::Runtime(e.to_string())),
    };
    outcome::exit_code(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("zos-build-client").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_config_check() {
        let cli = parse(&["config", "check", "dir", "--json"]).expect("parses");
        let Command::Config(ConfigCommand::Check(args)) = cli.command else {
            panic!("not config check: {:?}", cli.command);
        };
        assert_eq!(args.dir, std::path::PathBuf::from("dir"));
        assert!(args.json);
    }

    #[test]
    fn global_options_go_anywhere_and_the_server_has_a_default() {
        // The environment may set ZOS_BUILD_SERVER where the tests run; the
        // flag wins over it.
        let cli = parse(&["status", "--server", "http://h:1", "--token", "t"]).expect("parses");
        assert_eq!(cli.server, "http://h:1");
        assert_eq!(cli.token.as_deref(), Some("t"));
        let cli = parse(&["--color", "never", "history", "--full", "--json"]).expect("parses");
        assert_eq!(cli.color, style::ColorChoice::Never);
        let Command::History(args) = cli.command else {
            panic!("not history");
        };
        assert!(args.full && args.json);
        let default = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "server")
            .and_then(|a| a.get_default_values().first().cloned());
        assert_eq!(
            default.as_ref().and_then(|d| d.to_str()),
            Some("http://127.0.0.1:5560")
        );
    }

    #[test]
    fn follow_takes_a_build_or_all_but_not_both() {
        let cli = parse(&["follow", "acme/widget/master"]).expect("parses");
        let Command::Follow(args) = cli.command else {
            panic!("not follow");
        };
        assert_eq!(args.build.as_deref(), Some("acme/widget/master"));
        assert!(!args.all);
        let cli = parse(&["follow", "--all"]).expect("parses");
        let Command::Follow(args) = cli.command else {
            panic!("not follow");
        };
        assert!(args.all && args.build.is_none());
        for bad in [&["follow"][..], &["follow", "latest", "--all"]] {
            let error = parse(bad).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{bad:?}: {error}");
        }
    }

    #[test]
    fn trigger_and_cancel_arguments() {
        let cli = parse(&[
            "trigger",
            "acme/widget",
            "master",
            "--commit",
            "0123abcd",
            "--follow",
        ])
        .expect("parses");
        let Command::Trigger(args) = cli.command else {
            panic!("not trigger");
        };
        assert_eq!(args.repository, "acme/widget");
        assert_eq!(args.branch, "master");
        assert_eq!(args.commit.as_deref(), Some("0123abcd"));
        assert!(args.follow);
        assert!(
            parse(&["trigger", "acme/widget"]).is_err(),
            "the branch is needed"
        );
        let cli = parse(&["cancel", "18f3-a1"]).expect("parses");
        let Command::Cancel(args) = cli.command else {
            panic!("not cancel");
        };
        assert_eq!(args.build, "18f3-a1");
        assert!(parse(&["cancel"]).is_err());
    }

    #[test]
    fn the_token_is_not_shown_in_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("ZOS_BUILD_TOKEN"), "{help}");
        assert!(help.contains("ZOS_BUILD_SERVER"), "{help}");
    }
}
