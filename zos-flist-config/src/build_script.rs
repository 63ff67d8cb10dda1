//! What one listed script of a branch file asks the builder to do.

use std::fmt;

use serde::Serialize;

/// Where the artifact is looked for when a script's settings give no `archives`.
pub const DEFAULT_ARCHIVES: &str = "/target";

/// The image a script runs in when its settings give no `baseimage`.
pub const DEFAULT_BASEIMAGE: &str = "ubuntu:16.04";

/// What happens to the artifact once a build succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// Uploaded to the Zero-OS Hub as an flist (the default).
    #[default]
    Flist,
    /// Copied into the binary directory.
    Binary,
}

impl Format {
    /// The word used in branch files: `flist` or `binary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Flist => "flist",
            Format::Binary => "binary",
        }
    }

    /// The format a branch file names, if it names one we know.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "flist" => Some(Format::Flist),
            "binary" => Some(Format::Binary),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One build of a tracked branch: run `script` from the repository in
/// `baseimage`, then take `artifact` from `archives`.
///
/// Serialises to the JSON object that `zos-build-client config check --json`
/// prints under `builds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct BuildScript {
    /// Path of the script inside the built repository, as listed in `buildscripts`.
    pub script: String,
    /// File name of the archive the script leaves in `archives`.
    pub artifact: String,
    /// Absolute directory, inside the container, where the artifact is left.
    pub archives: String,
    /// Docker image the script runs in.
    pub baseimage: String,
    /// Extra name part of the published artifact, if any.
    pub tag: Option<String>,
    /// What is done with the artifact.
    pub format: Format,
}

impl BuildScript {
    /// A build of `script` producing `artifact`, with every optional setting at
    /// its default. The fields are public: change them after construction.
    pub fn new(script: impl Into<String>, artifact: impl Into<String>) -> BuildScript {
        BuildScript {
            script: script.into(),
            artifact: artifact.into(),
            archives: DEFAULT_ARCHIVES.to_string(),
            baseimage: DEFAULT_BASEIMAGE.to_string(),
            tag: None,
            format: Format::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let build = BuildScript::new("build.sh", "out.tar.gz");
        assert_eq!(build.archives, "/target");
        assert_eq!(build.baseimage, "ubuntu:16.04");
        assert_eq!(build.tag, None);
        assert_eq!(build.format, Format::Flist);
    }

    #[test]
    fn format_names() {
        assert_eq!(Format::from_name("binary"), Some(Format::Binary));
        assert_eq!(Format::from_name("flist"), Some(Format::Flist));
        assert_eq!(Format::from_name("Flist"), None);
        assert_eq!(Format::Binary.to_string(), "binary");
    }
}
