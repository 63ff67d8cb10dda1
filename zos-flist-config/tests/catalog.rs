//! Loading directory trees: the layout rules, on real directories.

use std::fs;
use std::path::Path;

use zos_flist_config::{BuildScript, Catalog, LoadError, Severity};

const VALID: &str = "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: out.tar.gz\n";

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent");
    }
    fs::write(path, text).expect("write file");
}

fn problem_lines(catalog: &Catalog) -> Vec<String> {
    catalog.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn branches_are_named_by_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "zero-os/hello/master.yaml", VALID);
    write(dir.path(), "zero-os/hello/release/v1.yaml", VALID);
    write(dir.path(), "zero-os/hello/feature/a/b.yml", VALID);
    write(dir.path(), "other/repo/dev.yml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert!(
        problem_lines(&catalog).is_empty(),
        "{:#?}",
        problem_lines(&catalog)
    );
    let names: Vec<(String, String, String)> = catalog
        .branches()
        .map(|b| (b.file.clone(), b.repository.clone(), b.name.clone()))
        .collect();
    let expected = [
        ("other/repo/dev.yml", "other/repo", "dev"),
        (
            "zero-os/hello/feature/a/b.yml",
            "zero-os/hello",
            "feature/a/b",
        ),
        ("zero-os/hello/master.yaml", "zero-os/hello", "master"),
        (
            "zero-os/hello/release/v1.yaml",
            "zero-os/hello",
            "release/v1",
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(f, r, b)| (f.to_string(), r.to_string(), b.to_string()))
        .collect();
    assert_eq!(names, expected, "sorted by file path");

    let branch = catalog.get("zero-os/hello", "release/v1").expect("tracked");
    assert_eq!(
        branch.builds,
        vec![BuildScript::new("build.sh", "out.tar.gz")]
    );
    assert!(catalog.get("zero-os/hello", "release").is_none());
    assert!(catalog.get("zero-os", "hello").is_none());
    assert!(catalog.has_repository("other/repo"));
    assert!(!catalog.has_repository("other/none"));
}

#[test]
fn yaml_outside_org_repo_gets_a_warning_and_other_files_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "README.md", "# config\n");
    write(dir.path(), "stray.yaml", VALID);
    write(dir.path(), "zero-os/org-level.yml", VALID);
    write(dir.path(), "zero-os/hello/notes.txt", "not yaml");
    write(dir.path(), "zero-os/hello/master.yaml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert_eq!(catalog.reports().len(), 1);
    assert_eq!(
        problem_lines(&catalog),
        vec![
            "stray.yaml: warning: not a branch file: branch files live at \
             <org>/<repo>/<branch>.yaml; ignored",
            "zero-os/org-level.yml: warning: not a branch file: branch files live at \
             <org>/<repo>/<branch>.yaml; ignored",
        ]
    );
    assert!(!catalog.has_errors());
    assert_eq!(catalog.layout_problems().len(), 2);
}

#[test]
fn hidden_entries_and_git_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), ".git/objects/x.yaml", "not: [valid");
    write(dir.path(), ".github/workflows/ci.yml", "on: push\n");
    write(dir.path(), "zero-os/.hidden/master.yaml", "broken: [");
    write(dir.path(), "zero-os/hello/.draft.yaml", "broken: [");
    write(dir.path(), "zero-os/hello/master.yaml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert!(
        problem_lines(&catalog).is_empty(),
        "{:#?}",
        problem_lines(&catalog)
    );
    assert_eq!(catalog.reports().len(), 1);
}

#[test]
fn one_bad_file_rejects_only_its_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/b/bad.yaml", "buildscripts: [x.sh\n");
    write(dir.path(), "a/b/good.yaml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert!(catalog.has_errors());
    assert!(catalog.get("a/b", "bad").is_none());
    assert!(catalog.get("a/b", "good").is_some());
    let bad = &catalog.reports()[0];
    assert_eq!(bad.file, "a/b/bad.yaml");
    assert!(!bad.is_valid());
    assert!(bad.builds.is_empty());
    assert_eq!(bad.errors().count(), 1);
    let line = bad.problems[0].to_string();
    assert!(line.starts_with("a/b/bad.yaml:"), "{line}");
}

/// Issue 9's alias bomb: 896 KB that aliases would expand to about 50 GB.
fn alias_bomb() -> String {
    let mut text = format!("a: &a \"{}\"\nb: [*a", "A".repeat(500_000));
    text.push_str(&", *a".repeat(98_999));
    text.push_str("]\n");
    text
}

#[test]
fn an_alias_bomb_rejects_its_branch_by_bytes_and_the_others_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = alias_bomb();
    write(dir.path(), "a/b/bomb.yaml", &bomb);
    write(dir.path(), "a/b/good.yaml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert!(catalog.get("a/b", "bomb").is_none());
    assert!(catalog.get("a/b", "good").is_some());
    let limit = zos_flist_config::yaml_expansion_budget(bomb.len());
    assert_eq!(limit, 16 * bomb.len());
    // The 28th alias passes the limit: the anchor and 28 copies of 500,000
    // bytes, against 16 × the file's 896,013 bytes.
    assert_eq!(
        problem_lines(&catalog),
        vec![format!(
            "a/b/bomb.yaml:2:113: error: alias expansion exceeds {limit} bytes (16 × the \
             file's size of {} bytes): anchors and aliases copy too much text",
            bomb.len()
        )]
    );
}

#[test]
fn yaml_and_yml_for_the_same_branch_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/b/master.yaml", VALID);
    write(dir.path(), "a/b/master.yml", VALID);

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert_eq!(
        problem_lines(&catalog),
        vec![
            "a/b/master.yml: error: branch 'master' of 'a/b' is already defined by a/b/master.yaml"
        ]
    );
    assert_eq!(
        catalog.get("a/b", "master").map(|b| b.file.as_str()),
        Some("a/b/master.yaml")
    );
    assert_eq!(catalog.branches().count(), 1);
}

#[test]
fn non_utf8_and_oversized_files_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let latin1 = dir.path().join("a/b/latin1.yaml");
    fs::create_dir_all(latin1.parent().expect("parent")).expect("mkdir");
    fs::write(&latin1, b"buildscripts: [caf\xe9.sh]\n").expect("write");
    write(dir.path(), "a/b/huge.yaml", &"#".repeat(2 * 1024 * 1024));

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert_eq!(
        problem_lines(&catalog),
        vec![
            "a/b/huge.yaml: error: file is 2097152 bytes; a branch file may be at most \
             1048576 bytes (1 MiB)",
            "a/b/latin1.yaml:1:19: error: file is not valid UTF-8 (byte 0xe9)",
        ]
    );
    assert_eq!(catalog.branches().count(), 0);
}

#[cfg(unix)]
#[test]
fn symbolic_links_leaving_the_directory_are_not_followed() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().expect("tempdir");
    write(outside.path(), "secret.yaml", VALID);
    write(outside.path(), "org/repo/master.yaml", VALID);

    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/b/master.yaml", VALID);
    symlink(
        outside.path().join("secret.yaml"),
        dir.path().join("a/b/escape.yaml"),
    )
    .expect("link");
    symlink(outside.path().join("org"), dir.path().join("org")).expect("link");
    symlink(
        dir.path().join("a/b/master.yaml"),
        dir.path().join("a/b/same.yaml"),
    )
    .expect("link");
    symlink(dir.path().join("a"), dir.path().join("a/b/loop")).expect("link");
    symlink(
        dir.path().join("nowhere.yaml"),
        dir.path().join("a/b/broken.yaml"),
    )
    .expect("link");

    let catalog = Catalog::load(dir.path()).expect("loads");
    assert_eq!(
        problem_lines(&catalog),
        vec![
            "a/b/broken.yaml: warning: broken symbolic link; skipped",
            "a/b/escape.yaml: warning: symbolic link leads outside the configuration directory; \
             not followed",
            "a/b/loop: warning: symbolic link to a directory; not followed",
            "org: warning: symbolic link leads outside the configuration directory; not followed",
        ]
    );
    assert!(!catalog.has_errors());
    let branches: Vec<&str> = catalog.branches().map(|b| b.name.as_str()).collect();
    assert_eq!(
        branches,
        ["master", "same"],
        "a link to a file inside is followed"
    );
    assert!(catalog.get("org/repo", "master").is_none());
}

#[cfg(unix)]
#[test]
fn a_fifo_is_skipped_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/b/master.yaml", VALID);
    let fifo = dir.path().join("a/b/pipe.yaml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let catalog = Catalog::load(dir.path()).expect("loads without blocking");
    assert_eq!(
        problem_lines(&catalog),
        vec!["a/b/pipe.yaml: warning: not a regular file; skipped"]
    );
}

#[test]
fn missing_root_is_a_load_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = Catalog::load(&missing).expect_err("missing");
    assert!(matches!(err, LoadError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "configuration directory {} does not exist",
            missing.display()
        )
    );

    write(dir.path(), "file", "x");
    let err = Catalog::load(dir.path().join("file")).expect_err("not a dir");
    assert!(matches!(err, LoadError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn empty_directory_is_an_empty_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::load(dir.path()).expect("loads");
    assert_eq!(catalog.reports().len(), 0);
    assert!(!catalog.has_errors());
}

#[test]
fn loading_twice_gives_equal_catalogs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..20 {
        write(
            dir.path(),
            &format!("o{}/r{}/b{i}.yaml", i % 3, i % 5),
            VALID,
        );
    }
    write(dir.path(), "o1/r1/bad.yaml", "x");
    let first = Catalog::load(dir.path()).expect("loads");
    let second = Catalog::load(dir.path()).expect("loads");
    assert_eq!(first, second);
    let files: Vec<&str> = first.reports().iter().map(|r| r.file.as_str()).collect();
    let mut sorted = files.clone();
    sorted.sort_unstable();
    assert_eq!(files, sorted);
    assert!(first
        .problems()
        .iter()
        .all(|p| p.severity == Severity::Error));
}

#[test]
fn very_deep_directories_are_not_walked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deep: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    write(dir.path(), &format!("{}/x.yaml", deep.join("/")), VALID);
    write(
        dir.path(),
        &format!("{}/y.yaml", deep[..32].join("/")),
        VALID,
    );

    let catalog = Catalog::load(dir.path()).expect("loads");
    let branches: Vec<&str> = catalog.branches().map(|b| b.name.as_str()).collect();
    assert_eq!(branches, [format!("{}/y", deep[2..32].join("/"))]);
    assert_eq!(
        problem_lines(&catalog),
        vec![format!(
            "{}: warning: directory is more than 32 levels deep; not read",
            deep[..33].join("/")
        )]
    );
}
