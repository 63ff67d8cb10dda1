//! The rules for one branch file: `<org>/<repo>/<branch>.yaml`.
//!
//! The old service loaded these files with a plain YAML loader and indexed
//! into the result: a syntax error or a missing key raised an exception that
//! took the whole service down, and a script listed under `buildscripts`
//! whose settings were filed under a misspelt name was silently never built.
//! Here every rule is checked, every broken rule becomes a [`Problem`] with
//! its position, and one bad file rejects only its own branch.
//!
//! The checks run to the end even after an error, so that a file's owner
//! sees every problem at once rather than one per push.

use std::collections::HashMap;

use crate::build_script::{BuildScript, Format, DEFAULT_ARCHIVES, DEFAULT_BASEIMAGE};
use crate::problem::{Problem, Severity};
use crate::suggest::closest;
use crate::yaml::{self, Mark, Node, Value};

/// Largest branch file accepted, in bytes (1 MiB).
pub const MAX_FILE_SIZE: usize = 1024 * 1024;

/// The top-level key that lists the scripts.
const BUILDSCRIPTS: &str = "buildscripts";

/// Keys a script's settings may hold.
const SCRIPT_KEYS: [&str; 5] = ["artifact", "archives", "baseimage", "tag", "format"];

/// How far a top-level key may be from a listed script name to be suggested.
const SCRIPT_SUGGESTION_DISTANCE: usize = 3;

/// How far an unknown settings key may be from a known one to be suggested
/// (3 would turn the old `target` into "did you mean 'tag'?").
const KEY_SUGGESTION_DISTANCE: usize = 2;

/// One branch file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchFile {
    /// The file name given to the parser, used in every problem.
    pub file: String,
    /// The builds, in `buildscripts` order; empty when the file has an error.
    pub builds: Vec<BuildScript>,
    /// Errors and warnings, in the order of their position in the file.
    pub problems: Vec<Problem>,
}

impl BranchFile {
    /// Whether the file has no error (warnings allowed): its branch is tracked.
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }

    /// The errors, in file order.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        crate::problem::of_severity(&self.problems, Severity::Error)
    }

    /// The warnings, in file order.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        crate::problem::of_severity(&self.problems, Severity::Warning)
    }
}

/// Check the raw content of a branch file: at most [`MAX_FILE_SIZE`] bytes of
/// UTF-8, then everything [`parse_branch_file`] checks.
///
/// `file` is only used to label problems.
pub fn parse_branch_bytes(bytes: &[u8], file: &str) -> BranchFile {
    if bytes.len() > MAX_FILE_SIZE {
        return rejected(file, None, too_large(bytes.len()));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_branch_file(text, file),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by definition; lossy never changes it.
            let prefix = String::from_utf8_lossy(valid);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
            rejected(
                file,
                Some((line, column)),
                format!("file is not valid UTF-8 (byte 0x{byte:02x})"),
            )
        }
    }
}

/// Check the text of a branch file against every rule, and turn it into its
/// builds. Never panics; bounded in time and memory (see the `yaml` module
/// limits).
///
/// `file` is only used to label problems.
pub fn parse_branch_file(text: &str, file: &str) -> BranchFile {
    if text.len() > MAX_FILE_SIZE {
        return rejected(file, None, too_large(text.len()));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = match yaml::parse(text) {
        Ok(document) => document,
        Err(fatal) => return rejected(file, fatal.mark.map(Mark::position), fatal.message),
    };
    let mut checker = Checker {
        file,
        problems: Vec::new(),
    };
    for issue in document.issues {
        checker.error(Some(issue.mark), issue.message);
    }
    let builds = match &document.root {
        Some(root) => checker.check(root),
        None => {
            checker.error(
                None,
                format!("file is empty: expected a mapping with '{BUILDSCRIPTS}'"),
            );
            Vec::new()
        }
    };
    let mut problems = checker.problems;
    // Stable: problems at the same place keep the order they were found in.
    problems.sort_by_key(|p| (p.line.is_some(), p.line, p.column));
    let valid = !problems.iter().any(Problem::is_error);
    BranchFile {
        file: file.to_string(),
        builds: if valid { builds } else { Vec::new() },
        problems,
    }
}

pub(crate) fn too_large(size: impl std::fmt::Display) -> String {
    format!("file is {size} bytes; a branch file may be at most {MAX_FILE_SIZE} bytes (1 MiB)")
}

fn rejected(file: &str, position: Option<(usize, usize)>, message: String) -> BranchFile {
    BranchFile {
        file: file.to_string(),
        builds: Vec::new(),
        problems: vec![Problem::new(Severity::Error, file, position, message)],
    }
}

struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn error(&mut self, mark: Option<Mark>, message: impl Into<String>) {
        self.problems.push(Problem::new(
            Severity::Error,
            self.file,
            mark.map(Mark::position),
            message,
        ));
    }

    fn warning(&mut self, mark: Mark, message: impl Into<String>) {
        self.problems.push(Problem::new(
            Severity::Warning,
            self.file,
            Some(mark.position()),
            message,
        ));
    }

    /// The whole document: `buildscripts`, then each listed script.
    fn check(&mut self, root: &Node) -> Vec<BuildScript> {
        let Value::Mapping(entries) = &root.value else {
            self.error(
                Some(root.mark),
                format!(
                    "the top level must be a mapping (with '{BUILDSCRIPTS}' and the settings \
                     of each script), found {}",
                    root.describe()
                ),
            );
            return Vec::new();
        };

        let listed = match entries
            .iter()
            .find(|(key, _)| key.scalar_text() == Some(BUILDSCRIPTS))
        {
            Some((key, value)) => self.listed_scripts(key, value),
            None => {
                self.error(
                    Some(root.mark),
                    format!("missing required key '{BUILDSCRIPTS}'"),
                );
                Vec::new()
            }
        };

        // Scalar top-level keys, other than `buildscripts`, in file order.
        let mut settings: Vec<(&str, &Node, &Node)> = Vec::new();
        for (key, value) in entries {
            match key.scalar_text() {
                Some(BUILDSCRIPTS) => {}
                Some(name) => settings.push((name, key, value)),
                None => self.warning(
                    key.mark,
                    format!(
                        "a top-level key that is {} is ignored: it is neither \
                         '{BUILDSCRIPTS}' nor a listed script",
                        key.describe()
                    ),
                ),
            }
        }
        for (name, key, _) in &settings {
            if !listed.iter().any(|(script, _)| script == name) {
                self.warning(
                    key.mark,
                    format!(
                        "unknown top-level key '{name}' is ignored: it is neither \
                         '{BUILDSCRIPTS}' nor a listed script"
                    ),
                );
            }
        }

        let mut builds = Vec::new();
        let mut settings_marks = Vec::new();
        for (script, mark) in &listed {
            match settings.iter().find(|(name, _, _)| name == script) {
                Some((_, key, value)) => {
                    if let Some(build) = self.script_settings(script, key, value) {
                        builds.push(build);
                        settings_marks.push(key.mark);
                    }
                }
                None => {
                    let unlisted = settings
                        .iter()
                        .map(|(name, _, _)| *name)
                        .filter(|name| !listed.iter().any(|(s, _)| s == name));
                    let hint = closest(script, unlisted, SCRIPT_SUGGESTION_DISTANCE)
                        .map(|name| format!("; did you mean '{name}'?"))
                        .unwrap_or_default();
                    self.error(
                        Some(*mark),
                        format!(
                            "script '{script}' is listed in '{BUILDSCRIPTS}' but has no \
                             settings (no top-level key '{script}'){hint}"
                        ),
                    );
                }
            }
        }
        self.same_artifact_names(&builds, &settings_marks);
        builds
    }

    /// Warn about scripts whose artifacts would be published under the same
    /// name, so that the last build to finish silently replaces the others'.
    ///
    /// The published name is `zos_build_core::artifact_name(repository, tag,
    /// branch, commit)`: within one branch file only the tag varies, and
    /// since a tag is never empty and never holds `/` (the rule of `tag`),
    /// two scripts get the same name exactly when their tags are equal, no
    /// tag included. This crate does not depend on the core, so the rule is
    /// restated here; `zos-build-client`'s `tests/config_check.rs` checks it
    /// against the core's function.
    fn same_artifact_names(&mut self, builds: &[BuildScript], marks: &[Mark]) {
        let mut first_with_tag: HashMap<Option<&str>, &str> = HashMap::new();
        for (build, mark) in builds.iter().zip(marks) {
            let tag = build.tag.as_deref();
            let Some(first) = first_with_tag.get(&tag) else {
                first_with_tag.insert(tag, &build.script);
                continue;
            };
            let advice = match tag {
                None => "; give one a 'tag'".to_string(),
                Some(tag) => format!(" (both have tag '{tag}'); give one a different 'tag'"),
            };
            self.warning(
                *mark,
                format!(
                    "scripts '{first}' and '{}' publish the same artifact name{advice}",
                    build.script
                ),
            );
        }
    }

    /// The `buildscripts` sequence: non-empty, of non-empty strings, no duplicates.
    fn listed_scripts(&mut self, key: &Node, value: &Node) -> Vec<(String, Mark)> {
        let Value::Sequence(items) = &value.value else {
            self.error(
                Some(value_mark(key, value)),
                format!(
                    "'{BUILDSCRIPTS}' must be a sequence of script paths, found {}",
                    value.describe()
                ),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                Some(value.mark),
                format!("'{BUILDSCRIPTS}' is empty: list at least one script"),
            );
        }
        let mut listed: Vec<(String, Mark)> = Vec::new();
        let mut first_seen: HashMap<&str, Mark> = HashMap::new();
        for item in items {
            match item.as_str() {
                Some("") => self.error(
                    Some(item.mark),
                    format!(
                        "'{BUILDSCRIPTS}' entries must be non-empty strings, found an empty string"
                    ),
                ),
                Some(script) => {
                    if let Some(first) = first_seen.get(script) {
                        self.error(
                            Some(item.mark),
                            format!(
                                "script '{script}' is listed twice in '{BUILDSCRIPTS}' \
                                 (first at line {}, column {})",
                                first.line, first.column
                            ),
                        );
                    } else {
                        first_seen.insert(script, item.mark);
                        listed.push((script.to_string(), item.mark));
                    }
                }
                None => self.error(
                    Some(item.mark),
                    format!(
                        "'{BUILDSCRIPTS}' entries must be non-empty strings, found {}",
                        item.describe()
                    ),
                ),
            }
        }
        listed
    }

    /// The settings mapping of one listed script.
    fn script_settings(&mut self, script: &str, key: &Node, value: &Node) -> Option<BuildScript> {
        let Value::Mapping(entries) = &value.value else {
            self.error(
                Some(value_mark(key, value)),
                format!(
                    "settings of script '{script}' must be a mapping, found {}",
                    value.describe()
                ),
            );
            return None;
        };
        let mut artifact = None;
        let mut archives = Some(DEFAULT_ARCHIVES.to_string());
        let mut baseimage = Some(DEFAULT_BASEIMAGE.to_string());
        let mut tag = Some(None);
        let mut format = Some(Format::default());
        let mut has_artifact = false;
        for (k, v) in entries {
            let Some(name) = k.scalar_text() else {
                self.warning(
                    k.mark,
                    format!(
                        "script '{script}': a key that is {} is ignored",
                        k.describe()
                    ),
                );
                continue;
            };
            match name {
                "artifact" => {
                    has_artifact = true;
                    artifact = self.artifact(script, k, v);
                }
                "archives" => archives = self.archives(script, k, v),
                "baseimage" => baseimage = self.baseimage(script, k, v),
                "tag" => tag = self.tag(script, k, v),
                "format" => format = self.format(script, k, v),
                unknown => {
                    let hint = closest(unknown, SCRIPT_KEYS, KEY_SUGGESTION_DISTANCE)
                        .map(|known| format!("; did you mean '{known}'?"))
                        .unwrap_or_default();
                    self.warning(
                        k.mark,
                        format!("script '{script}': unknown key '{unknown}' is ignored{hint}"),
                    );
                }
            }
        }
        if !has_artifact {
            self.error(
                Some(key.mark),
                format!("script '{script}': missing required key 'artifact'"),
            );
        }
        Some(BuildScript {
            script: script.to_string(),
            artifact: artifact?,
            archives: archives?,
            baseimage: baseimage?,
            tag: tag?,
            format: format?,
        })
    }

    /// A string value, or an error saying a string was expected.
    fn string<'n>(
        &mut self,
        script: &str,
        key: &Node,
        value: &'n Node,
        default: Option<&str>,
    ) -> Option<&'n str> {
        if let Some(text) = value.as_str() {
            return Some(text);
        }
        let name = key.scalar_text().unwrap_or_default();
        let hint = match default {
            Some(default) if value.is_null() => {
                format!(" (leave the key out to use the default '{default}')")
            }
            _ => String::new(),
        };
        self.error(
            Some(value_mark(key, value)),
            format!(
                "script '{script}': '{name}' must be a string, found {}{hint}",
                value.describe()
            ),
        );
        None
    }

    fn artifact(&mut self, script: &str, key: &Node, value: &Node) -> Option<String> {
        let text = self.string(script, key, value, None)?;
        let problem = if text.is_empty() {
            Some("'artifact' must not be empty".to_string())
        } else if text.contains('/') {
            Some(format!(
                "'artifact' must be a plain file name without '/', found '{text}'"
            ))
        } else if text == "." || text == ".." {
            Some(format!("'artifact' must be a file name, found '{text}'"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                self.error(Some(value.mark), format!("script '{script}': {message}"));
                None
            }
            None => Some(text.to_string()),
        }
    }

    fn archives(&mut self, script: &str, key: &Node, value: &Node) -> Option<String> {
        let text = self.string(script, key, value, Some(DEFAULT_ARCHIVES))?;
        if !text.starts_with('/') {
            self.error(
                Some(value_mark(key, value)),
                format!("script '{script}': 'archives' must be an absolute path, found '{text}'"),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn baseimage(&mut self, script: &str, key: &Node, value: &Node) -> Option<String> {
        let text = self.string(script, key, value, Some(DEFAULT_BASEIMAGE))?;
        if text.is_empty() {
            self.error(
                Some(value.mark),
                format!("script '{script}': 'baseimage' must not be empty"),
            );
            return None;
        }
        Some(text.to_string())
    }

    /// `Some(None)`: no tag; `None`: an error was reported.
    fn tag(&mut self, script: &str, key: &Node, value: &Node) -> Option<Option<String>> {
        if value.is_null() {
            return Some(None);
        }
        let text = self.string(script, key, value, None)?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if text.is_empty() || !text.chars().all(allowed) {
            self.error(
                Some(value.mark),
                format!(
                    "script '{script}': 'tag' must be letters, digits, '.', '_' or '-', \
                     found '{text}'"
                ),
            );
            return None;
        }
        Some(Some(text.to_string()))
    }

    fn format(&mut self, script: &str, key: &Node, value: &Node) -> Option<Format> {
        let text = self.string(script, key, value, Some(Format::default().as_str()))?;
        let format = Format::from_name(text);
        if format.is_none() {
            self.error(
                Some(value.mark),
                format!("script '{script}': 'format' must be 'flist' or 'binary', found '{text}'"),
            );
        }
        format
    }
}

/// Where to point at a value: a null value (`key:` with nothing after it) has
/// no place of its own, so point at its key.
fn value_mark(key: &Node, value: &Node) -> Mark {
    if value.is_null() {
        key.mark
    } else {
        value.mark
    }
}

#[cfg(test)]
mod tests;
