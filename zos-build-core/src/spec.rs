//! What to build: the description an [`Executor`](crate::Executor) runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What runs in the container.
///
/// Nothing here ever goes through a shell on the host: arguments are handed to
/// Docker as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Run this argument vector as the container's command.
    Exec(Vec<String>),
    /// Make the script at this path inside the container executable and run
    /// it (the image needs `/bin/sh`). This is how a repository's build script
    /// runs once its source tree was copied in. A script inside the copied
    /// tree arrives executable (its tar entry says so), so the shell only
    /// runs `chmod` for one that is not (a script of the image, a link).
    ScriptFile(String),
    /// Copy `script` into the container and run it with `interpreter`
    /// (for example `["/bin/sh", "-e"]`).
    Inline {
        /// The interpreter and its arguments; the script's path is appended.
        interpreter: Vec<String>,
        /// The script's text.
        script: String,
    },
}

/// Where an inline script is placed inside the container.
pub const INLINE_SCRIPT_PATH: &str = "/.zos-build/script";

impl Command {
    /// The argument vector given to Docker.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(argv) => argv.clone(),
            Command::ScriptFile(path) => vec![
                "/bin/sh".into(),
                "-c".into(),
                r#"[ -x "$0" ] || chmod +x -- "$0" && exec "$0""#.into(),
                path.clone(),
            ],
            Command::Inline { interpreter, .. } => {
                let mut argv = interpreter.clone();
                argv.push(INLINE_SCRIPT_PATH.into());
                argv
            }
        }
    }
}

/// A directory of the host copied into the container before the build starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// The directory on the host.
    pub host_dir: PathBuf,
    /// The absolute path it gets inside the container (not `/`).
    pub container_path: String,
}

/// Longest name of a cache volume, in bytes.
pub const MAX_CACHE_VOLUME_NAME: usize = 64;

/// A Docker named volume that outlives the build and is mounted read-write
/// into every build that names it: the one thing that persists from one
/// build to the next (a kernel build's downloaded archives, say).
///
/// It is a named volume, not a bind mount, so that it works against a
/// remote daemon as well. The executor creates it when it is missing, with
/// its own labels, and refuses to mount a volume of that name that it did
/// not create (see [`DockerExecutor`](crate::DockerExecutor)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheVolume {
    /// The volume's name in Docker: 2 to [`MAX_CACHE_VOLUME_NAME`] letters,
    /// digits, `_`, `.` or `-`, starting with a letter or a digit (Docker's
    /// own rule, bounded).
    pub name: String,
    /// The absolute path it is mounted at inside the container (not `/`,
    /// no `..`).
    pub container_path: String,
}

impl CacheVolume {
    /// Checks the name against Docker's rule for volume names, bounded.
    pub fn validate_name(name: &str) -> Result<(), String> {
        let ok = (2..=MAX_CACHE_VOLUME_NAME).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "cache volume name {name:?} must be 2 to {MAX_CACHE_VOLUME_NAME} letters, digits, '_', '.' or '-', starting with a letter or digit"
            ))
        }
    }
}

/// Resource and time limits of one build.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Memory in bytes (swap is limited to the same figure, so the limit is real).
    pub memory_bytes: Option<i64>,
    /// CPUs, fractional allowed.
    pub cpus: Option<f64>,
    /// Maximum number of processes.
    pub pids: Option<i64>,
    /// Overall wall-clock time, from the container's start.
    pub timeout: Option<Duration>,
    /// Longest time without a byte of output.
    pub no_output_timeout: Option<Duration>,
    /// Bytes of log (line text plus one per newline) the build may print;
    /// at the limit it is killed and later output discarded.
    pub log_bytes: Option<u64>,
}

/// An image reference to commit a finished container as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository, e.g. `zos-build/0-initramfs`.
    pub repository: String,
    /// Tag, e.g. `master`.
    pub tag: String,
}

/// Everything needed to run one build in a fresh container.
///
/// Made with [`BuildSpec::new`] and the builder methods; every switch that
/// widens what the build may do (network, capabilities, privileged mode) is
/// off unless asked for, except the network, which build scripts usually need
/// to fetch dependencies.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BuildSpec {
    /// Identifies the build: in the container's name and labels. Letters,
    /// digits, `.`, `_` and `-`.
    pub build_id: String,
    /// The image to run, pulled when not present.
    pub image: String,
    /// What runs.
    pub command: Command,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container.
    pub workdir: Option<String>,
    /// A host directory copied in before the start.
    pub source: Option<SourceTree>,
    /// Absolute paths inside the container to extract after a successful run.
    pub artifacts: Vec<String>,
    /// Host directory the artifacts are extracted into.
    pub artifact_dir: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Whether the container has a network (`false`: loopback only).
    pub network: bool,
    /// Extra `/etc/hosts` entries: `(name, ip)`.
    pub extra_hosts: Vec<(String, String)>,
    /// Linux capabilities to add, e.g. `SYS_ADMIN`.
    pub capabilities: Vec<String>,
    /// Privileged mode.
    pub privileged: bool,
    /// Labels added to the container, beside the engine's own.
    pub labels: BTreeMap<String, String>,
    /// Commit the container as this image when the build succeeded. The
    /// image carries the engine's labels and [`BuildSpec::labels`].
    pub commit: Option<ImageRef>,
    /// Named volumes kept between builds, mounted read-write.
    pub cache_volumes: Vec<CacheVolume>,
    /// The sequence number of the run's first log line: 0 for a log of its
    /// own, the number of lines already written when the run continues the
    /// log of a longer job (a pipeline that fetched the source first), so
    /// that one build's log is numbered from 0 without gaps.
    pub first_log_line: u64,
}

impl BuildSpec {
    /// A build `build_id` running `command` in `image`, with no limits.
    pub fn new(build_id: impl Into<String>, image: impl Into<String>, command: Command) -> Self {
        BuildSpec {
            build_id: build_id.into(),
            image: image.into(),
            command,
            env: Vec::new(),
            workdir: None,
            source: None,
            artifacts: Vec::new(),
            artifact_dir: None,
            limits: Limits::default(),
            network: true,
            extra_hosts: Vec::new(),
            capabilities: Vec::new(),
            privileged: false,
            labels: BTreeMap::new(),
            commit: None,
            cache_volumes: Vec::new(),
            first_log_line: 0,
        }
    }

    /// Numbers the run's log lines from `seq` on (see [`BuildSpec::first_log_line`]).
    pub fn first_log_line(mut self, seq: u64) -> Self {
        self.first_log_line = seq;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Copies `host_dir` to `container_path` before the build starts.
    pub fn source(
        mut self,
        host_dir: impl Into<PathBuf>,
        container_path: impl Into<String>,
    ) -> Self {
        self.source = Some(SourceTree {
            host_dir: host_dir.into(),
            container_path: container_path.into(),
        });
        self
    }

    /// Extracts `container_path` into the artifact directory after success.
    pub fn artifact(mut self, container_path: impl Into<String>) -> Self {
        self.artifacts.push(container_path.into());
        self
    }

    /// Sets the host directory artifacts are extracted into.
    pub fn artifact_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.artifact_dir = Some(dir.into());
        self
    }

    /// Limits memory (and swap) to `bytes`.
    pub fn memory_limit(mut self, bytes: i64) -> Self {
        self.limits.memory_bytes = Some(bytes);
        self
    }

    /// Limits CPU time to `cpus` CPUs.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.limits.cpus = Some(cpus);
        self
    }

    /// Limits the number of processes.
    pub fn pids_limit(mut self, pids: i64) -> Self {
        self.limits.pids = Some(pids);
        self
    }

    /// Kills the build after `timeout` of wall-clock time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = Some(timeout);
        self
    }

    /// Kills the build after `timeout` without output.
    pub fn no_output_timeout(mut self, timeout: Duration) -> Self {
        self.limits.no_output_timeout = Some(timeout);
        self
    }

    /// Kills the build once it has printed `bytes` of log.
    pub fn log_size_limit(mut self, bytes: u64) -> Self {
        self.limits.log_bytes = Some(bytes);
        self
    }

    /// Turns the network on or off.
    pub fn network(mut self, enabled: bool) -> Self {
        self.network = enabled;
        self
    }

    /// Adds an `/etc/hosts` entry.
    pub fn extra_host(mut self, name: impl Into<String>, ip: impl Into<String>) -> Self {
        self.extra_hosts.push((name.into(), ip.into()));
        self
    }

    /// Adds a Linux capability (`SYS_ADMIN`, ...).
    pub fn capability(mut self, cap: impl Into<String>) -> Self {
        self.capabilities.push(cap.into());
        self
    }

    /// Runs the container privileged.
    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// Adds a label to the container.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Commits the container as `repository:tag` when the build succeeds.
    pub fn commit_as(mut self, repository: impl Into<String>, tag: impl Into<String>) -> Self {
        self.commit = Some(ImageRef {
            repository: repository.into(),
            tag: tag.into(),
        });
        self
    }

    /// Mounts the named volume `name` read-write at `container_path`,
    /// creating it when it is missing (see [`CacheVolume`]). May be given
    /// several times, at different paths.
    ///
    /// What a build writes there is seen by the next build that names the
    /// volume; it is not part of an image committed with
    /// [`BuildSpec::commit_as`]. Builds running at the same time share it.
    pub fn cache_volume(
        mut self,
        name: impl Into<String>,
        container_path: impl Into<String>,
    ) -> Self {
        self.cache_volumes.push(CacheVolume {
            name: name.into(),
            container_path: container_path.into(),
        });
        self
    }

    /// Checks what Docker would only reject later, or not at all.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.build_id.is_empty()
            && self.build_id.len() <= 128
            && self
                .build_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && self
                .build_id
                .starts_with(|c: char| c.is_ascii_alphanumeric());
        if !id_ok {
            return Err(format!(
                "build id {:?} must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
                self.build_id
            ));
        }
        if self.image.trim().is_empty() {
            return Err("the image is empty".into());
        }
        if self.command.argv().is_empty() {
            return Err("the command is empty".into());
        }
        if let Some(source) = &self.source {
            let path = source.container_path.trim_end_matches('/');
            if !path.starts_with('/') || path.is_empty() || path.split('/').any(|c| c == "..") {
                return Err(format!(
                    "source path {:?} must be an absolute path below / without '..'",
                    source.container_path
                ));
            }
        }
        let mut cache_paths: Vec<&str> = Vec::new();
        for volume in &self.cache_volumes {
            CacheVolume::validate_name(&volume.name)?;
            let path = volume.container_path.trim_end_matches('/');
            let clean = path.starts_with('/')
                && path
                    .split('/')
                    .skip(1)
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if !clean {
                return Err(format!(
                    "cache volume {:?}: path {:?} must be an absolute path below / without '..', '.' or '//'",
                    volume.name, volume.container_path
                ));
            }
            if cache_paths.contains(&path) {
                return Err(format!(
                    "cache volume {:?}: path {:?} is already taken by another cache volume",
                    volume.name, volume.container_path
                ));
            }
            if let Some(source) = &self.source {
                let source_path = source.container_path.trim_end_matches('/');
                if is_within(source_path, path) {
                    return Err(format!(
                        "cache volume {:?} at {:?} would receive the source tree copied to {:?}: the source must not be inside a cache volume",
                        volume.name, volume.container_path, source.container_path
                    ));
                }
            }
            cache_paths.push(path);
        }
        for artifact in &self.artifacts {
            if !artifact.starts_with('/') {
                return Err(format!("artifact path {artifact:?} must be absolute"));
            }
        }
        if !self.artifacts.is_empty() && self.artifact_dir.is_none() {
            return Err("artifacts are listed but no artifact directory is set".into());
        }
        Ok(())
    }
}

/// Whether the path `inner` is `outer` or below it (both without a
/// trailing `/`).
fn is_within(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_file_runs_through_the_containers_shell_with_the_path_as_argument() {
        let argv = Command::ScriptFile("/repo/build me.sh".into()).argv();
        assert_eq!(argv[0], "/bin/sh");
        assert_eq!(argv[3], "/repo/build me.sh");
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = BuildSpec::new("b-1", "img", Command::Exec(vec!["true".into()]));
        assert!(ok.validate().is_ok());
        let bad_id = BuildSpec::new("../x", "img", Command::Exec(vec!["true".into()]));
        assert!(bad_id.validate().unwrap_err().contains("build id"));
        let no_dir = ok.clone().artifact("/out/a.tar.gz");
        assert!(no_dir
            .validate()
            .unwrap_err()
            .contains("artifact directory"));
        let root = ok.clone().source("/tmp", "/");
        assert!(root.validate().unwrap_err().contains("source path"));
        let empty = BuildSpec::new("b", "img", Command::Exec(vec![]));
        assert!(empty.validate().unwrap_err().contains("command"));
    }

    #[test]
    fn cache_volume_names_follow_dockers_rule_and_are_bounded() {
        let spec = |name: &str| {
            BuildSpec::new("b-1", "img", Command::Exec(vec!["true".into()]))
                .cache_volume(name, "/cache")
        };
        for good in [
            "ab",
            "kernel-cache",
            "0-initramfs_master.v2",
            &"a".repeat(64),
        ] {
            assert!(spec(good).validate().is_ok(), "{good:?} is a valid name");
        }
        for bad in [
            "",
            "a",
            "-cache",
            ".cache",
            "_cache",
            "ca/che",
            "../etc",
            "ca che",
            "cache:/x",
            "caché",
            &"a".repeat(65),
        ] {
            let err = spec(bad).validate().unwrap_err();
            assert!(err.contains("cache volume name"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn cache_volume_paths_are_absolute_distinct_and_apart_from_the_source() {
        let base = BuildSpec::new("b-1", "img", Command::Exec(vec!["true".into()]));
        for bad in [
            "",
            "/",
            "//",
            "cache",
            "./cache",
            "/cache/../etc",
            "/..",
            "/a//b",
            "/a/./b",
        ] {
            let err = base
                .clone()
                .cache_volume("cache", bad)
                .validate()
                .unwrap_err();
            assert!(err.contains("must be an absolute path"), "{bad:?}: {err}");
        }
        let two = base
            .clone()
            .cache_volume("one", "/cache")
            .cache_volume("two", "/cache/");
        assert!(two.validate().unwrap_err().contains("already taken"));
        let apart = base
            .clone()
            .cache_volume("one", "/cache")
            .cache_volume("two", "/cache2")
            .cache_volume("three", "/cache/inner");
        assert!(apart.validate().is_ok());
        // The source copied into the volume would persist: refused.
        for source in ["/cache", "/cache/src"] {
            let inside = base
                .clone()
                .source("/tmp", source)
                .cache_volume("cache", "/cache");
            assert!(inside.validate().unwrap_err().contains("source"));
        }
        // A cache below the source tree (its downloads directory) is fine.
        let below = base
            .clone()
            .source("/tmp", "/0-initramfs")
            .cache_volume("cache", "/0-initramfs/archives");
        assert!(below.validate().is_ok());
        let sibling = base
            .source("/tmp", "/cachex")
            .cache_volume("cache", "/cache");
        assert!(sibling.validate().is_ok());
    }
}
