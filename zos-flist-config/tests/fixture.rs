//! The real configuration repository of the old service, read in place.

use std::path::{Path, PathBuf};

use zos_flist_config::{Catalog, Format, Severity};

fn fixture() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/flist-builder-config"
    ))
    .to_path_buf()
}

#[test]
fn fixture_is_valid_with_one_warning() {
    let catalog = Catalog::load(fixture()).expect("fixture loads");
    assert_eq!(catalog.reports().len(), 25);
    assert_eq!(catalog.branches().count(), 25);
    assert!(!catalog.has_errors());
    let problems: Vec<String> = catalog.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec![
            "jumpscale/sandbox/autobuild.yaml:9:3: warning: script 'jumpscale.sh': \
             unknown key 'dependencies' is ignored"
        ]
    );
    assert_eq!(catalog.problems()[0].severity, Severity::Warning);
}

#[test]
fn fixture_values_are_read_as_written() {
    let catalog = Catalog::load(fixture()).expect("fixture loads");

    let db = catalog.get("rivine/0-db", "master").expect("tracked");
    let scripts: Vec<(&str, &str, Option<&str>)> = db
        .builds
        .iter()
        .map(|b| (b.script.as_str(), b.artifact.as_str(), b.tag.as_deref()))
        .collect();
    assert_eq!(
        scripts,
        [
            ("autobuild/0-db.sh", "0-db.tar.gz", None),
            (
                "autobuild/0-db-release.sh",
                "0-db-release.tar.gz",
                Some("release")
            ),
        ]
    );

    let bundle = catalog.get("zero-os/0-bundle", "master").expect("tracked");
    assert_eq!(bundle.builds[0].format, Format::Binary);

    let orchestrator = catalog
        .get("zero-os/0-orchestrator", "autobuild")
        .expect("tracked");
    assert_eq!(orchestrator.builds[0].archives, "/target", "default");
    assert_eq!(orchestrator.builds[0].baseimage, "ubuntu:16.04", "default");

    let backdoor = catalog
        .get("zero-os/backdoor-flist", "master")
        .expect("tracked");
    assert_eq!(backdoor.builds[0].baseimage, "alpine");

    let robot = catalog.get("zero-os/0-robot", "0.5.0").expect("tracked");
    assert_eq!(robot.builds.len(), 2);
    assert_eq!(robot.builds[1].tag.as_deref(), Some("autostart"));
}

#[test]
fn a_broken_copy_rejects_only_the_broken_branch() {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture(), copy.path());
    std::fs::write(
        copy.path().join("zero-os/0-stor/master.yaml"),
        "buildscripts:\n - autobuild/0-stor.sh\n\nautobuild/0-stor-typo.sh:\n  artifact: 0-stor.tar.gz\n",
    )
    .expect("write");
    let catalog = Catalog::load(copy.path()).expect("loads");
    assert!(catalog.has_errors());
    assert_eq!(catalog.branches().count(), 24);
    assert!(catalog.get("zero-os/0-stor", "master").is_none());
    assert!(catalog.get("zero-os/0-templates", "master").is_some());
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
