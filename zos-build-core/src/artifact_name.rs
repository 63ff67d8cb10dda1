//! The name a published artifact gets.
//!
//! `<owner>-<repo>[-<tag>]-<branch>-<commit10>.tar.gz`, every `/` written
//! `-`: the old service's scheme, kept so that existing links and hub names
//! stay valid (`threefoldfoundation/tfchain`, tag `faucet`, branch `master`
//! gives `threefoldfoundation-tfchain-faucet-master-0123456789.tar.gz`).
//! The "latest" name of a branch drops the commit and the extension.

/// The published name of a build's artifact.
pub fn artifact_name(repository: &str, tag: Option<&str>, branch: &str, commit: &str) -> String {
    let short: String = commit.chars().take(10).collect();
    format!("{}-{short}.tar.gz", latest_name(repository, tag, branch))
}

/// The name shared by every build of a branch (and tag): the old service's
/// moving link, `<owner>-<repo>[-<tag>]-<branch>` (`.flist` is added by the hub).
pub fn latest_name(repository: &str, tag: Option<&str>, branch: &str) -> String {
    let mut name = repository.to_string();
    if let Some(tag) = tag.filter(|t| !t.is_empty()) {
        name.push('-');
        name.push_str(tag);
    }
    name.push('-');
    name.push_str(branch);
    name.replace('/', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_services_example() {
        assert_eq!(
            artifact_name(
                "threefoldfoundation/tfchain",
                Some("faucet"),
                "master",
                "0123456789abcdef0123456789abcdef01234567"
            ),
            "threefoldfoundation-tfchain-faucet-master-0123456789.tar.gz"
        );
    }

    #[test]
    fn slashes_in_branches_and_no_tag() {
        assert_eq!(
            artifact_name("zero-os/hello", None, "release/v1", "abcdef0123456789"),
            "zero-os-hello-release-v1-abcdef0123.tar.gz"
        );
        assert_eq!(
            artifact_name("o/r", Some(""), "m", "abc"),
            "o-r-m-abc.tar.gz",
            "an empty tag is no tag; a short commit is kept whole"
        );
        assert_eq!(latest_name("o/r", Some("t/x"), "a/b"), "o-r-t-x-a-b");
    }
}
