//! `zos-build-client config check DIR [--json]`: the configuration linter.
//!
//! It loads DIR with the very [`Catalog`] the server uses, so what passes
//! here is what the server will track. Configuration-repository owners run it
//! in their CI, so a YAML typo is caught before it is pushed, instead of
//! being found when a build silently does not happen.
//!
//! Human output is one `FILE:LINE:COL: error: MESSAGE` line per problem
//! (the form editors and CI annotators understand), then a summary line.
//! `--json` prints one object: `branches` (one entry per branch file) and
//! `problems` (those of no branch file: a stray `.yaml` at the root, a
//! symbolic link not followed, an unreadable directory).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use zos_flist_config::{BuildScript, Catalog, Problem, Severity};

/// Arguments of `config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Checkout of the configuration repository.
    pub dir: PathBuf,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Run the check; the exit status is the verdict.
pub fn run(args: &CheckArgs) -> ExitCode {
    let catalog = match Catalog::load(&args.dir) {
        Ok(catalog) => catalog,
        Err(e) => {
            eprintln!("zos-build-client: config check: {e}");
            return ExitCode::from(2);
        }
    };
    let output = if args.json {
        match serde_json::to_string_pretty(&JsonReport::new(&catalog)) {
            Ok(json) => json + "\n",
            Err(e) => {
                eprintln!("zos-build-client: config check: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        human_report(&catalog)
    };
    if let Err(e) = io::stdout().lock().write_all(output.as_bytes()) {
        eprintln!("zos-build-client: config check: cannot write the report: {e}");
        return ExitCode::from(2);
    }
    if catalog.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// One line per problem, sorted by file and position, then the summary.
fn human_report(catalog: &Catalog) -> String {
    let mut out = String::new();
    let problems = catalog.problems();
    for problem in &problems {
        out.push_str(&problem.to_string());
        out.push('\n');
    }
    let files = catalog.reports().len();
    let valid = catalog.reports().iter().filter(|r| r.is_valid()).count();
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    out.push_str(&format!(
        "{}: {valid} valid, {} rejected; {}, {}\n",
        plural(files, "branch file", "branch files"),
        files - valid,
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
    ));
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    branches: Vec<JsonBranch<'a>>,
    problems: Vec<JsonProblem<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonBranch<'a> {
    file: &'a str,
    repository: &'a str,
    branch: &'a str,
    ok: bool,
    builds: &'a [BuildScript],
    errors: Vec<JsonPosition<'a>>,
    warnings: Vec<JsonPosition<'a>>,
}

/// A problem inside a branch entry: the file is the entry's.
#[derive(Debug, Serialize)]
struct JsonPosition<'a> {
    line: Option<usize>,
    column: Option<usize>,
    message: &'a str,
}

/// A problem of no branch file.
#[derive(Debug, Serialize)]
struct JsonProblem<'a> {
    file: &'a str,
    severity: &'static str,
    line: Option<usize>,
    column: Option<usize>,
    message: &'a str,
}

impl<'a> JsonReport<'a> {
    fn new(catalog: &'a Catalog) -> JsonReport<'a> {
        let positions = |problems: &'a [Problem], severity: Severity| {
            problems
                .iter()
                .filter(|p| p.severity == severity)
                .map(|p| JsonPosition {
                    line: p.line,
                    column: p.column,
                    message: &p.message,
                })
                .collect()
        };
        JsonReport {
            branches: catalog
                .reports()
                .iter()
                .map(|r| JsonBranch {
                    file: &r.file,
                    repository: &r.repository,
                    branch: &r.branch,
                    ok: r.is_valid(),
                    builds: &r.builds,
                    errors: positions(&r.problems, Severity::Error),
                    warnings: positions(&r.problems, Severity::Warning),
                })
                .collect(),
            problems: catalog
                .layout_problems()
                .iter()
                .map(|p| JsonProblem {
                    file: &p.file,
                    severity: p.severity.as_str(),
                    line: p.line,
                    column: p.column,
                    message: &p.message,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "error", "errors"), "1 error");
        assert_eq!(plural(0, "error", "errors"), "0 errors");
        assert_eq!(plural(2, "branch file", "branch files"), "2 branch files");
    }

    #[test]
    fn human_report_of_an_empty_catalog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::load(dir.path()).expect("loads");
        assert_eq!(
            human_report(&catalog),
            "0 branch files: 0 valid, 0 rejected; 0 errors, 0 warnings\n"
        );
    }
}
