//! Colours: when to use them, and the few things that get one.
//!
//! Colour is for people: it is used when the output is a terminal, unless
//! `NO_COLOR` is set (non-empty) or `TERM=dumb`, and `--color always|never`
//! overrides the guess. Without colour the output is exactly the server's
//! text, byte for byte, so scripts and tests can compare it. The log's own
//! escape sequences (a build's coloured compiler output) are passed through
//! either way: they are part of the log.
//!
//! The styles are `anstyle` values rather than escape strings, so each says
//! what it is (bold green) instead of what bytes it is. The choice of when to
//! colour stays here, not in `anstream`: its guess reads other variables
//! (`CLICOLOR`, `CLICOLOR_FORCE`) and this rule is documented and tested.

use crate::builds::{Build, BuildStatus};
use anstyle::{AnsiColor, Reset, Style};
use std::ffi::OsStr;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` is set or `TERM=dumb`.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour an output.
pub fn use_colour(
    choice: ColorChoice,
    is_terminal: bool,
    no_color: Option<&OsStr>,
    term: Option<&OsStr>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && no_color.is_none_or(OsStr::is_empty) && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// Whether to colour this process's stdout (`stderr` false) or stderr.
pub fn colour_for(choice: ColorChoice, stderr: bool) -> bool {
    use std::io::IsTerminal;
    let is_terminal = if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    use_colour(
        choice,
        is_terminal,
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// Resets every attribute.
pub const RESET: Reset = Reset;
/// Faint.
pub const DIM: Style = Style::new().dimmed();
/// Bold green.
pub const GREEN: Style = AnsiColor::Green.on_default().bold();
/// Bold red.
pub const RED: Style = AnsiColor::Red.on_default().bold();
/// Yellow.
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
/// Cyan.
pub const CYAN: Style = AnsiColor::Cyan.on_default();

/// `text` in `colour` when `on`, else `text` as is.
pub fn paint(text: &str, colour: Style, on: bool) -> String {
    if on {
        format!("{colour}{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// The colour of a status in tables and verdicts.
pub fn status_colour(status: &BuildStatus) -> Style {
    match status {
        BuildStatus::Success => GREEN,
        BuildStatus::Error => RED,
        BuildStatus::Cancelled => YELLOW,
        BuildStatus::Building | BuildStatus::Committing => CYAN,
        BuildStatus::Queued
        | BuildStatus::Initializing
        | BuildStatus::Preparing
        | BuildStatus::Other(_) => DIM,
    }
}

/// The marker of the service's own lines in a build log.
pub const SYSTEM_PREFIX: &[u8] = b"[zos-build]";

/// Whole log lines as they are shown on a terminal: the service's own lines
/// (`[zos-build] ...`) faint, the build's lines untouched.
pub fn paint_log(lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() + 16);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(SYSTEM_PREFIX) {
            let (text, end) = match line.strip_suffix(b"\n") {
                Some(text) => (text, &b"\n"[..]),
                None => (line, &b""[..]),
            };
            // Reset first: a build line that left a colour open must not
            // tint the service's line.
            out.extend_from_slice(format!("{RESET}{DIM}").as_bytes());
            out.extend_from_slice(text);
            out.extend_from_slice(RESET.to_string().as_bytes());
            out.extend_from_slice(end);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The closing line of `follow` on a terminal: how the build ended.
pub fn verdict_line(build: &Build, colour: bool) -> String {
    let took = match (build.started, build.ended) {
        (Some(started), Some(ended)) => {
            format!(" in {}", crate::clock::duration((ended - started).max(0.0)))
        }
        _ => String::new(),
    };
    let (mark, text) = match &build.status {
        BuildStatus::Success => (
            "✔",
            match build.artifact_shown() {
                Some(artifact) => format!("succeeded{took}: {artifact}"),
                None => format!("succeeded{took}"),
            },
        ),
        BuildStatus::Error => (
            "✘",
            match &build.error {
                Some(error) => format!("failed{took}: {error}"),
                None => format!("failed{took}"),
            },
        ),
        BuildStatus::Cancelled => ("✘", format!("was cancelled{took}")),
        other => ("?", format!("is {}", other.as_str())),
    };
    let name = if build.name.is_empty() {
        String::new()
    } else {
        format!(" ({})", build.name)
    };
    paint(
        &format!("{mark} build {}{name} {text}", build.id),
        status_colour(&build.status),
        colour,
    )
}

/// A colour for a build's name in `follow --all`, the same for the same
/// name on every run.
pub fn name_colour(name: &str) -> Style {
    const PALETTE: [AnsiColor; 6] = [
        AnsiColor::Cyan,
        AnsiColor::Magenta,
        AnsiColor::Blue,
        AnsiColor::Yellow,
        AnsiColor::Green,
        AnsiColor::BrightCyan,
    ];
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    PALETTE[hash as usize % PALETTE.len()].on_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colour_only_on_a_terminal_unless_told() {
        let on = |choice, tty, no_color: Option<&str>, term: Option<&str>| {
            use_colour(choice, tty, no_color.map(OsStr::new), term.map(OsStr::new))
        };
        assert!(on(ColorChoice::Auto, true, None, Some("xterm-256color")));
        assert!(!on(ColorChoice::Auto, false, None, Some("xterm")), "a pipe");
        assert!(!on(ColorChoice::Auto, true, Some("1"), None), "NO_COLOR");
        assert!(
            on(ColorChoice::Auto, true, Some(""), None),
            "an empty NO_COLOR is unset"
        );
        assert!(!on(ColorChoice::Auto, true, None, Some("dumb")));
        assert!(on(ColorChoice::Always, false, Some("1"), Some("dumb")));
        assert!(!on(ColorChoice::Never, true, None, None));
    }

    #[test]
    fn only_the_services_lines_are_dimmed() {
        let log = b"[zos-build] pulling image x\nbuild \x1b[31mred\x1b[0m\n[zos-build] done";
        let painted = paint_log(log);
        assert_eq!(
            painted,
            b"\x1b[0m\x1b[2m[zos-build] pulling image x\x1b[0m\nbuild \x1b[31mred\x1b[0m\n\x1b[0m\x1b[2m[zos-build] done\x1b[0m"
        );
        assert_eq!(paint_log(b"plain\n"), b"plain\n");
        assert_eq!(paint_log(b""), b"");
    }

    #[test]
    fn verdicts_say_how_the_build_ended() {
        let build = |value| serde_json::from_value::<Build>(value).expect("reads");
        let ok = build(json!({"id": "a1", "status": "success", "name": "o/r/m",
            "started": 100, "ended": 165, "artifact": "o-r-m.tar.gz"}));
        assert_eq!(
            verdict_line(&ok, false),
            "✔ build a1 (o/r/m) succeeded in 1m05s: o-r-m.tar.gz"
        );
        assert_eq!(
            verdict_line(&ok, true),
            format!("{GREEN}✔ build a1 (o/r/m) succeeded in 1m05s: o-r-m.tar.gz{RESET}")
        );
        let failed = build(json!({"id": "b2", "status": "error", "name": "o/r/m",
            "error": "build script exited with status 3"}));
        assert_eq!(
            verdict_line(&failed, false),
            "✘ build b2 (o/r/m) failed: build script exited with status 3"
        );
        let cancelled = build(json!({"id": "c3", "status": "cancelled"}));
        assert_eq!(verdict_line(&cancelled, false), "✘ build c3 was cancelled");
        assert!(verdict_line(&failed, true).starts_with(&RED.to_string()));
    }

    #[test]
    fn styles_are_the_plain_ansi_sequences() {
        assert_eq!(RESET.to_string(), "\x1b[0m");
        assert_eq!(DIM.to_string(), "\x1b[2m");
        assert_eq!(GREEN.to_string(), "\x1b[1m\x1b[32m");
        assert_eq!(RED.to_string(), "\x1b[1m\x1b[31m");
        assert_eq!(YELLOW.to_string(), "\x1b[33m");
        assert_eq!(CYAN.to_string(), "\x1b[36m");
        assert_eq!(paint("x", CYAN, true), "\x1b[36mx\x1b[0m");
        assert_eq!(paint("x", CYAN, false), "x");
    }

    #[test]
    fn name_colours_are_stable() {
        assert_eq!(
            name_colour("acme/widget/master"),
            name_colour("acme/widget/master")
        );
        let distinct: std::collections::HashSet<_> = ["a/b/c", "a/b/d", "x/y/z", "q/r/s", "m/n/o"]
            .iter()
            .map(|n| name_colour(n))
            .collect();
        assert!(distinct.len() > 1, "names are told apart");
    }
}
