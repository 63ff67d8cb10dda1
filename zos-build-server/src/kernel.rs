//! The kernel pipeline's settings and names: which repositories build
//! Zero-OS kernels, what their files, links, flists and images are called,
//! and which committed image a dependent build starts from.
//!
//! Half of what the old autobuilder existed for: a push to
//! `threefoldtech/0-initramfs` (or `0-fs`) builds a bootable kernel with the
//! repository's own script, and the kernel becomes a file of
//! `kernel-directory` (what nodes boot), a kernel flist, and (with
//! `commit-image`) a committed image that dependent targets start from. The
//! build itself is an ordinary job of the core pipeline (the scheduler makes
//! it); this module holds what is particular to kernels. The names are the
//! old service's, so that bootstrap URLs keep working:
//!
//! | what | target without `base-from` | target with `base-from` |
//! | --- | --- | --- |
//! | kernel | `zero-os-<branch>-generic-<commit10>.efi` | `zero-os-<branch>-<repo name>-<commit10>.efi` |
//! | its link | `zero-os-<branch>-generic.efi` | `zero-os-<branch>.efi` |
//! | kernel flist | the kernel's name, `.efi` → `.tar.gz` | the same |
//! | committed image | `<repository>:<branch>` | `<repository>:<branch>` |
//!
//! Every `/` of a branch is written `-`, and image names are lower-cased
//! (Docker's rule).

use serde_yaml::Value;

/// Where the build cache volume is mounted, unless `kernel-cache-path` says
/// otherwise.
pub const DEFAULT_CACHE_PATH: &str = "/root/.cache/zos-build";
/// Where the build script leaves the kernel.
pub const KERNEL_ARTIFACT: &str = "/target/vmlinuz.efi";
/// The `tag` of a kernel build made from a git tag (a release), and the
/// build script's third argument then.
pub const RELEASE: &str = "release";
/// The branch whose image a dependent build falls back to.
pub const FALLBACK_BRANCH: &str = "master";

/// One repository whose pushes build a kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTarget {
    /// `owner/name`.
    pub repository: String,
    /// The build script, relative to the repository.
    pub script: String,
    /// The image the build starts from (targets without `base-from`).
    pub baseimage: String,
    /// Whether the finished container is committed as `<repository>:<branch>`.
    pub commit_image: bool,
    /// The target whose committed image this one starts from.
    pub base_from: Option<String>,
}

impl KernelTarget {
    /// The old service's two targets: 0-initramfs and 0-fs, each from
    /// `ubuntu:18.04`, each committed.
    pub fn defaults() -> Vec<KernelTarget> {
        [
            ("threefoldtech/0-initramfs", "autobuild/tf-build.sh"),
            ("threefoldtech/0-fs", "autobuild/tf-build-zfs.sh"),
        ]
        .into_iter()
        .map(|(repository, script)| KernelTarget {
            repository: repository.into(),
            script: script.into(),
            baseimage: "ubuntu:18.04".into(),
            commit_image: true,
            base_from: None,
        })
        .collect()
    }

    /// The repository's name: `0-initramfs`. Also the target's name (in the
    /// cache volume's name and `cache clear`).
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// The Docker volume of its build cache: `zos-build-cache-<name>`.
    pub fn cache_volume(&self) -> String {
        format!("zos-build-cache-{}", self.name())
    }

    /// The image name its builds are committed as (`<repository>`, lower-cased).
    pub fn image(&self) -> String {
        self.repository.to_ascii_lowercase()
    }

    /// The file names of a build of `branch` at `commit`.
    pub fn names(&self, branch: &str, commit: &str) -> KernelNames {
        let branch = branch.replace('/', "-");
        let short: String = commit.chars().take(10).collect();
        let (stem, link) = match self.base_from {
            None => (
                format!("zero-os-{branch}-generic-{short}"),
                format!("zero-os-{branch}-generic"),
            ),
            Some(_) => (
                format!("zero-os-{branch}-{}-{short}", self.name()),
                format!("zero-os-{branch}"),
            ),
        };
        KernelNames {
            kernel: format!("{stem}.efi"),
            kernel_link: format!("{link}.efi"),
            flist: format!("{stem}.tar.gz"),
            flist_link: format!("{link}.flist"),
        }
    }

    /// Parses `kernel-targets`: a list of mappings with the keys
    /// `repository`, `script`, `baseimage`, `commit-image` and `base-from`.
    pub fn parse_list(value: Value) -> Result<Vec<KernelTarget>, String> {
        let value = match value {
            // From the environment: the list as YAML (or JSON) text.
            Value::String(text) => serde_yaml::from_str(&text)
                .map_err(|e| format!("not a YAML list of targets: {e}"))?,
            other => other,
        };
        let Value::Sequence(items) = value else {
            return Err("expected a list of targets".into());
        };
        let mut targets = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let n = index + 1;
            let Value::Mapping(map) = item else {
                return Err(format!("target {n} is not a mapping"));
            };
            let mut target = KernelTarget {
                repository: String::new(),
                script: String::new(),
                baseimage: "ubuntu:18.04".into(),
                commit_image: false,
                base_from: None,
            };
            for (key, value) in map {
                let key = key.as_str().unwrap_or_default().to_string();
                let text = || match &value {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    _ => Err(format!("target {n}: `{key}` must be non-empty text")),
                };
                match key.as_str() {
                    "repository" => target.repository = text()?,
                    "script" => target.script = text()?,
                    "baseimage" => target.baseimage = text()?,
                    "base-from" => target.base_from = Some(text()?),
                    "commit-image" => {
                        target.commit_image = value
                            .as_bool()
                            .ok_or(format!("target {n}: `commit-image` must be true or false"))?
                    }
                    other => {
                        return Err(format!(
                            "target {n}: unknown key `{other}` (repository, script, baseimage, \
                             commit-image, base-from)"
                        ))
                    }
                }
            }
            if zos_build_core::RepositoryName::parse(&target.repository).is_err() {
                return Err(format!(
                    "target {n}: `repository` must be owner/name, found {:?}",
                    target.repository
                ));
            }
            let script_ok = !target.script.is_empty()
                && !target.script.starts_with('/')
                && target
                    .script
                    .split('/')
                    .all(|part| !part.is_empty() && part != "..")
                && !target.script.chars().any(char::is_control);
            if !script_ok {
                return Err(format!(
                    "target {n} ({}): `script` must be a path inside the repository",
                    target.repository
                ));
            }
            targets.push(target);
        }
        for target in &targets {
            if let Some(base) = &target.base_from {
                if !targets
                    .iter()
                    .any(|t| &t.repository == base && t.commit_image)
                {
                    return Err(format!(
                        "{}: base-from {base} is not a target with commit-image: true",
                        target.repository
                    ));
                }
                if base == &target.repository {
                    return Err(format!("{base}: a target cannot start from itself"));
                }
            }
        }
        let mut names: Vec<&str> = targets.iter().map(KernelTarget::name).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("two targets have the same repository name".into());
        }
        Ok(targets)
    }
}

/// What a kernel build's outputs are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNames {
    /// The kernel in `kernel-directory`.
    pub kernel: String,
    /// Its moving link there.
    pub kernel_link: String,
    /// The kernel flist's archive (the hub's flist: `.tar.gz` → `.flist`).
    pub flist: String,
    /// The kernel flist's moving link.
    pub flist_link: String,
}

/// The image tag of `branch`: Docker's tag alphabet (`[A-Za-z0-9_.-]`,
/// every other character `-`), at most 128 characters, never starting with
/// `.` or `-`.
pub fn image_tag(branch: &str) -> String {
    let mut tag: String = branch
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) || tag.is_empty() {
        tag.insert(0, '_');
        tag.truncate(128);
    }
    tag
}

/// The tag of `tags` a dependent build of `branch` starts from: the longest
/// one that is a prefix of the branch's tag (`release-1.2` starts from
/// `release` when there is no `release-1.2`), else `master`; None when
/// there is neither.
pub fn pick_base_tag<'a>(tags: &'a [String], branch: &str) -> Option<&'a str> {
    let wanted = image_tag(branch);
    tags.iter()
        .map(String::as_str)
        .filter(|tag| wanted.starts_with(tag))
        .max_by_key(|tag| tag.len())
        .or_else(|| {
            tags.iter()
                .map(String::as_str)
                .find(|t| *t == FALLBACK_BRANCH)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_old_services() {
        let targets = KernelTarget::defaults();
        let initramfs = &targets[0];
        let names = initramfs.names("release/1.2", "0123456789abcdef");
        assert_eq!(names.kernel, "zero-os-release-1.2-generic-0123456789.efi");
        assert_eq!(names.kernel_link, "zero-os-release-1.2-generic.efi");
        assert_eq!(names.flist, "zero-os-release-1.2-generic-0123456789.tar.gz");
        assert_eq!(names.flist_link, "zero-os-release-1.2-generic.flist");
        let dependent = KernelTarget {
            base_from: Some("threefoldtech/0-initramfs".into()),
            ..targets[1].clone()
        };
        let names = dependent.names("master", "0123456789abcdef");
        assert_eq!(names.kernel, "zero-os-master-0-fs-0123456789.efi");
        assert_eq!(names.kernel_link, "zero-os-master.efi");
        assert_eq!(initramfs.cache_volume(), "zos-build-cache-0-initramfs");
        assert_eq!(initramfs.image(), "threefoldtech/0-initramfs");
    }

    #[test]
    fn the_longest_prefix_wins_then_master() {
        let tags: Vec<String> = ["master", "release", "release-1", "dev"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pick_base_tag(&tags, "release/1.2"), Some("release-1"));
        assert_eq!(pick_base_tag(&tags, "release"), Some("release"));
        assert_eq!(pick_base_tag(&tags, "feature"), Some("master"));
        let none: Vec<String> = vec!["dev".into()];
        assert_eq!(pick_base_tag(&none, "feature"), None);
        assert_eq!(image_tag("a/b c"), "a-b-c");
        assert_eq!(image_tag(".x"), "_.x");
    }

    #[test]
    fn targets_are_checked() {
        let parse = |yaml: &str| KernelTarget::parse_list(serde_yaml::from_str(yaml).unwrap());
        let ok = parse(
            "- {repository: o/base, script: b.sh, commit-image: true}\n\
             - {repository: o/dep, script: d/x.sh, base-from: o/base}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].base_from.as_deref(), Some("o/base"));
        for (yaml, needle) in [
            ("- {repository: nope, script: b.sh}", "owner/name"),
            (
                "- {repository: o/r, script: ../b.sh}",
                "inside the repository",
            ),
            (
                "- {repository: o/r, script: /b.sh}",
                "inside the repository",
            ),
            (
                "- {repository: o/r, script: b.sh, colour: red}",
                "unknown key `colour`",
            ),
            (
                "- {repository: o/r, script: b.sh, base-from: o/x}",
                "not a target",
            ),
            (
                "- {repository: o/r, script: b.sh}\n- {repository: p/r, script: b.sh}",
                "same repository name",
            ),
            ("{repository: o/r}", "a list"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
        let from_env =
            KernelTarget::parse_list(Value::String("[{repository: o/r, script: b.sh}]".into()))
                .unwrap();
        assert_eq!(from_env[0].repository, "o/r");
    }
}
