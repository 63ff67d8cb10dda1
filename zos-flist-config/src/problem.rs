//! What the loader reports about a file: an error (the branch is rejected) or a
//! warning (the branch is tracked, but something in it is ignored).
//!
//! Every problem carries the file it belongs to and, where the YAML gives one,
//! the line and column of the offending node, so that an editor or a CI log
//! can point at it. The `Display` form is the one compilers use,
//! `FILE:LINE:COL: error: MESSAGE`, which editors and CI annotators parse.

use std::fmt;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// The branch file is rejected: none of its builds are tracked.
    Error,
    /// The branch file stays valid; the problem is only reported.
    Warning,
}

impl Severity {
    /// The lower-case word used in reports: `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error or warning about one file of the configuration repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given to [`parse_branch_file`](crate::parse_branch_file),
    /// or relative to the configuration directory with `/` separators when
    /// the problem comes from [`Catalog::load`](crate::Catalog::load).
    pub file: String,
    /// 1-based line of the offending node, when there is one.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending node, when there is one.
    pub column: Option<usize>,
    /// What is wrong, in one sentence, naming the key or script concerned.
    pub message: String,
}

impl Problem {
    /// A problem at a position (`line` and `column` are 1-based).
    pub fn new(
        severity: Severity,
        file: impl Into<String>,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            severity,
            file: file.into(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            message: message.into(),
        }
    }

    /// Whether this problem rejects its branch file.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The problems of `severity` among `problems`, in their order.
pub(crate) fn of_severity(
    problems: &[Problem],
    severity: Severity,
) -> impl Iterator<Item = &Problem> {
    problems.iter().filter(move |p| p.severity == severity)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{}:{line}:{column}: ", self.file)?,
            (Some(line), None) => write!(f, "{}:{line}: ", self.file)?,
            _ => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}: {}", self.severity, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_position() {
        let p = Problem::new(Severity::Error, "a/b/master.yaml", Some((3, 5)), "bad");
        assert_eq!(p.to_string(), "a/b/master.yaml:3:5: error: bad");
    }

    #[test]
    fn display_without_position() {
        let p = Problem::new(Severity::Warning, "x.yaml", None, "odd");
        assert_eq!(p.to_string(), "x.yaml: warning: odd");
        assert!(!p.is_error());
    }
}
