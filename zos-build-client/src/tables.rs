//! The tables of `status` and `history`: one build per line, fitted to the
//! terminal's width.
//!
//! The id, status, start and duration are never cut (an id is what the
//! other commands take); when the line is too long the artifact-or-error
//! column is cut first, then the name, then the tag, each down to a few
//! characters and marked with `…`; on a very narrow terminal whole columns
//! go, least useful first. Every cell is one line of plain text: control
//! characters from the server (an error message with a newline or an escape
//! sequence) are shown as spaces. Widths count characters, which is the
//! terminal's width for the text these fields hold.
//!
//! A build whose GitHub commit status is not sent yet (or was given up)
//! says so after its artifact or error, `github: retrying (429)`, faint on
//! a terminal like the other secondary text; it is part of the last column,
//! so it is cut with it.

use crate::builds::Build;
use crate::clock;
use crate::style;

/// The columns, in order.
const HEADERS: [&str; 7] = [
    "ID",
    "NAME",
    "TAG",
    "STATUS",
    "STARTED (UTC)",
    "DURATION",
    "ARTIFACT / ERROR",
];
const NAME: usize = 1;
const TAG: usize = 2;
const STATUS: usize = 3;
const STARTED: usize = 4;
const DURATION: usize = 5;
const DETAIL: usize = 6;
/// Columns cut when too wide, in that order, with the width each keeps.
const SHRINK: [(usize, usize); 3] = [(DETAIL, 8), (NAME, 12), (TAG, 3)];
/// Columns left out when cutting is not enough, in that order.
const DROP: [usize; 4] = [DETAIL, TAG, DURATION, STARTED];
/// The name's width when nothing else can give.
const NAME_LAST_RESORT: usize = 3;
/// Spaces between two columns.
const GAP: usize = 2;

/// One line of text: control characters become spaces.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn width_of(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `width` characters, the last one `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if width_of(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// One build's line: its cells, and where the note on its commit status
/// begins in the detail cell (in characters), when it has one.
struct Row {
    cells: [String; 7],
    note_at: Option<usize>,
}

/// The cells of one build's line.
fn row(build: &Build, now: f64) -> Row {
    let started = build
        .started
        .map(|t| clock::moment(t, now))
        .unwrap_or_else(|| "-".to_string());
    let duration = match (build.started, build.ended) {
        (Some(started), Some(ended)) => clock::duration(ended - started),
        (Some(started), None) if !build.status.is_finished() => clock::duration(now - started),
        _ => "-".to_string(),
    };
    let detail = build
        .error
        .as_deref()
        .filter(|e| !e.is_empty())
        .or(build.artifact_shown())
        .unwrap_or("");
    let mut detail = cell(detail);
    let mut note_at = None;
    if let Some(github) = build.github_pending().map(cell) {
        if !detail.is_empty() {
            detail.push_str(&" ".repeat(GAP));
        }
        note_at = Some(width_of(&detail));
        detail.push_str(&format!("github: {github}"));
    }
    Row {
        cells: [
            cell(&build.id),
            cell(&build.name),
            cell(build.tag.as_deref().unwrap_or("")),
            cell(build.status.as_str()),
            started,
            duration,
            detail,
        ],
        note_at,
    }
}

/// The width of each shown column, for lines at most `limit` wide (when
/// that can be done at all); `None` for a column left out.
fn layout(natural: [usize; 7], limit: Option<usize>) -> [Option<usize>; 7] {
    let mut widths = natural.map(Some);
    let Some(limit) = limit else {
        return widths;
    };
    let total = |widths: &[Option<usize>; 7]| {
        let shown: Vec<usize> = widths.iter().flatten().copied().collect();
        shown.iter().sum::<usize>() + GAP * shown.len().saturating_sub(1)
    };
    for dropped in 0..=DROP.len() {
        widths = natural.map(Some);
        for column in &DROP[..dropped] {
            widths[*column] = None;
        }
        for (column, keep) in SHRINK {
            let over = total(&widths).saturating_sub(limit);
            if let Some(width) = widths[column].as_mut() {
                let floor = keep.min(*width);
                *width -= over.min(*width - floor);
            }
        }
        if total(&widths) <= limit {
            return widths;
        }
    }
    // Id and status only are still too wide for a cut name: cut it to the
    // bone.
    let over = total(&widths).saturating_sub(limit);
    if let Some(width) = widths[NAME].as_mut() {
        *width -= over.min(width.saturating_sub(NAME_LAST_RESORT));
    }
    widths
}

/// The table of `builds`, each line at most `width` characters when a width
/// is given (and a table fits at all), ending with a newline.
pub fn render(builds: &[Build], width: Option<usize>, now: f64, colour: bool) -> String {
    let rows: Vec<Row> = builds.iter().map(|b| row(b, now)).collect();
    let mut natural = HEADERS.map(width_of);
    for row in &rows {
        for (n, text) in natural.iter_mut().zip(&row.cells) {
            *n = (*n).max(width_of(text));
        }
    }
    let widths = layout(natural, width);
    let last_shown = widths.iter().rposition(Option::is_some).unwrap_or(0);
    let line = |texts: [&str; 7], status: Option<&Build>, note_at: Option<usize>| {
        let mut out = String::new();
        for (column, text) in texts.iter().enumerate() {
            let Some(w) = widths[column] else { continue };
            if !out.is_empty() {
                out.push_str(&" ".repeat(GAP));
            }
            let fitted = fit(text, w);
            let pad = if column == last_shown {
                String::new()
            } else {
                " ".repeat(w - width_of(&fitted))
            };
            match status {
                Some(build) if column == STATUS && colour => {
                    out.push_str(&style::paint(
                        &fitted,
                        style::status_colour(&build.status),
                        true,
                    ));
                }
                // The note on the commit status, faint, as far as it shows.
                Some(_) if column == DETAIL && colour => match note_at {
                    Some(at) if at < width_of(&fitted) => {
                        let split = fitted
                            .char_indices()
                            .nth(at)
                            .map_or(fitted.len(), |(i, _)| i);
                        out.push_str(&fitted[..split]);
                        out.push_str(&style::paint(&fitted[split..], style::DIM, true));
                    }
                    _ => out.push_str(&fitted),
                },
                _ => out.push_str(&fitted),
            }
            out.push_str(&pad);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(HEADERS, None, None);
    for (row, build) in rows.iter().zip(builds) {
        let cells = &row.cells;
        out.push_str(&line(
            [
                &cells[0],
                &cells[NAME],
                &cells[TAG],
                &cells[STATUS],
                &cells[STARTED],
                &cells[DURATION],
                &cells[DETAIL],
            ],
            Some(build),
            row.note_at,
        ));
    }
    out
}

/// The width tables are fitted to: the terminal's when stdout is one, else
/// `COLUMNS` when set, else none (a pipe gets whole lines).
pub fn output_width() -> Option<usize> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
            return Some(usize::from(w));
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_714_566_896.0;

    fn builds() -> Vec<Build> {
        serde_json::from_value(json!([
            {"id": "18f3c2a91b0-5e2d7a10", "status": "success", "name": "threefoldtech/0-core/development",
             "tag": "core", "started": NOW - 400.0, "ended": NOW - 100.0,
             "artifact": "threefoldtech-0-core-development-0123456789.tar.gz", "error": null},
            {"id": "18f3c2a91b1-00000001", "status": "error", "name": "acme/widget/master",
             "tag": null, "started": NOW - 90_000.0, "ended": NOW - 89_990.0,
             "artifact": null, "error": "build script exited with status 3\nand a second line \u{1b}[31m"},
            {"id": "18f3c2a91b2-00000002", "status": "building", "name": "acme/widget/feature/a-much-longer-branch-name",
             "started": NOW - 65.0, "ended": null},
            {"id": "18f3c2a91b3-00000003", "status": "queued", "name": "a/b/c", "started": null},
        ]))
        .expect("stub reads")
    }

    /// Builds whose commit statuses are at every stage of their way.
    fn with_statuses() -> Vec<Build> {
        serde_json::from_value(json!([
            {"id": "b-sent", "status": "success", "name": "o/r/m", "started": NOW - 60.0,
             "ended": NOW - 30.0, "artifact": "o-r-m.tar.gz", "github": "sent"},
            {"id": "b-retrying", "status": "success", "name": "o/r/m", "started": NOW - 60.0,
             "ended": NOW - 30.0, "artifact": "o-r-m.tar.gz", "github": "retrying (429)"},
            {"id": "b-failed", "status": "error", "name": "o/r/m", "started": NOW - 60.0,
             "ended": NOW - 30.0, "error": "exit code 2", "github": "failed (401)"},
            {"id": "b-queued", "status": "queued", "name": "o/r/m", "github": "queued"},
            {"id": "b-none", "status": "success", "name": "o/r/m", "artifact": "x", "github": null},
            {"id": "b-older-server", "status": "success", "name": "o/r/m", "artifact": "y"},
            {"id": "b-odd", "status": "success", "name": "o/r/m", "github": "failed\n(\u{1b}[31m)"},
        ]))
        .expect("stub reads")
    }

    fn widths(table: &str) -> Vec<usize> {
        table.lines().map(width_of).collect()
    }

    #[test]
    fn without_a_width_nothing_is_cut() {
        let table = render(&builds(), None, NOW, false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("ID "), "{table}");
        assert!(table.contains("threefoldtech-0-core-development-0123456789.tar.gz"));
        assert!(table.contains("acme/widget/feature/a-much-longer-branch-name"));
        assert!(
            table.contains("1m05s"),
            "a running build's duration ticks: {table}"
        );
        assert!(table.contains("5m00s"));
        assert!(
            lines[1].contains("12:28:16"),
            "today: the time only: {table}"
        );
        assert!(
            lines[2].contains("2024-04-30"),
            "another day: the date: {table}"
        );
        assert!(!table.contains('…'));
        assert!(
            !table.contains('\u{1b}'),
            "no colour, no escape from the server: {table:?}"
        );
        assert!(
            table.contains("status 3 and a second line"),
            "one line per build: {table}"
        );
        assert!(
            table.lines().all(|l| l == l.trim_end()),
            "no trailing spaces"
        );
    }

    #[test]
    fn every_line_fits_every_width_from_40_columns() {
        let builds = builds();
        for width in 40..=200 {
            let table = render(&builds, Some(width), NOW, false);
            for (n, w) in widths(&table).into_iter().enumerate() {
                assert!(w <= width, "line {n} is {w} wide at {width}:\n{table}");
            }
            // The ids are never cut: they are what the other commands take.
            for build in &builds {
                assert!(table.contains(&build.id), "{width}: {table}");
            }
        }
    }

    #[test]
    fn the_detail_is_cut_first_and_marked() {
        let natural = widths(&render(&builds(), None, NOW, false));
        let widest = natural.iter().copied().max().unwrap_or(0);
        let table = render(&builds(), Some(widest - 10), NOW, false);
        assert!(table.contains("…"), "{table}");
        assert!(
            table.contains("acme/widget/feature/a-much-longer-branch-name"),
            "the name is whole while the detail can give: {table}"
        );
    }

    #[test]
    fn colour_only_tints_the_status_and_keeps_the_columns() {
        let plain = render(&builds(), Some(120), NOW, false);
        let coloured = render(&builds(), Some(120), NOW, true);
        assert!(coloured.contains(&format!("{}success{}", style::GREEN, style::RESET)));
        let stripped = coloured
            .replace(&style::GREEN.to_string(), "")
            .replace(&style::RED.to_string(), "")
            .replace(&style::CYAN.to_string(), "")
            .replace(&style::DIM.to_string(), "")
            .replace(&style::RESET.to_string(), "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn a_commit_status_not_sent_is_said_after_the_detail() {
        let table = render(&with_statuses(), None, NOW, false);
        let line = |id: &str| {
            table
                .lines()
                .find(|l| l.starts_with(id))
                .unwrap_or_else(|| panic!("{id} in {table}"))
                .to_string()
        };
        assert!(
            line("b-retrying").ends_with("o-r-m.tar.gz  github: retrying (429)"),
            "{table}"
        );
        assert!(
            line("b-failed").ends_with("exit code 2  github: failed (401)"),
            "{table}"
        );
        assert!(
            line("b-queued").ends_with("  github: queued"),
            "no detail: the note alone: {table}"
        );
        assert!(line("b-sent").ends_with("o-r-m.tar.gz"), "{table}");
        assert!(line("b-none").ends_with("  x"), "{table}");
        assert!(line("b-older-server").ends_with("  y"), "{table}");
        assert!(
            line("b-odd").ends_with("github: failed ( [31m)"),
            "one line, no escape from the server: {table:?}"
        );
        assert_eq!(table.matches("github:").count(), 4, "{table}");
        assert!(!table.contains('\u{1b}'), "plain without colour: {table:?}");

        // On a terminal the note is faint, the rest as before.
        let coloured = render(&with_statuses(), None, NOW, true);
        assert!(
            coloured.contains(&format!(
                "o-r-m.tar.gz  {}github: retrying (429){}",
                style::DIM,
                style::RESET
            )),
            "{coloured:?}"
        );
        let stripped = coloured
            .replace(&style::GREEN.to_string(), "")
            .replace(&style::RED.to_string(), "")
            .replace(&style::DIM.to_string(), "")
            .replace(&style::RESET.to_string(), "");
        assert_eq!(stripped, table);

        // Cut with the last column, faint as far as it shows, never wider
        // than the terminal.
        for width in 40..=120 {
            let plain = render(&with_statuses(), Some(width), NOW, false);
            let coloured = render(&with_statuses(), Some(width), NOW, true);
            for (n, w) in widths(&plain).into_iter().enumerate() {
                assert!(w <= width, "line {n} is {w} wide at {width}:\n{plain}");
            }
            let stripped = coloured
                .replace(&style::GREEN.to_string(), "")
                .replace(&style::RED.to_string(), "")
                .replace(&style::DIM.to_string(), "")
                .replace(&style::RESET.to_string(), "");
            assert_eq!(stripped, plain, "{width}");
        }
    }

    #[test]
    fn an_empty_list_is_the_header() {
        assert_eq!(
            render(&[], Some(80), NOW, false),
            "ID  NAME  TAG  STATUS  STARTED (UTC)  DURATION  ARTIFACT / ERROR\n"
        );
    }

    #[test]
    fn layout_cuts_then_drops() {
        let natural = [20, 40, 6, 9, 16, 8, 60];
        assert_eq!(layout(natural, None), natural.map(Some));
        let at_120 = layout(natural, Some(120));
        assert_eq!(at_120[0], Some(20));
        assert_eq!(at_120[NAME], Some(40), "the detail gives first");
        let total: usize = at_120.iter().flatten().sum::<usize>() + GAP * 6;
        assert_eq!(total, 120);
        let at_40 = layout(natural, Some(40));
        assert_eq!(
            at_40,
            [Some(20), Some(7), None, Some(9), None, None, None],
            "only the id, a cut name and the status"
        );
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 3), "abc");
    }
}
