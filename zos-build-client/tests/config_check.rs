//! `zos-build-client config check`, run as a process, as a CI job would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/flist-builder-config"
    ))
    .to_path_buf()
}

fn check(dir: &Path, json: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zos-build-client"));
    command.args(["config", "check"]).arg(dir);
    if json {
        command.arg("--json");
    }
    command.output().expect("run zos-build-client")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Each needle occurs in `text`, the first occurrences in this order.
fn assert_in_order(text: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match text[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle} missing or out of order in {text}"),
        }
    }
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

#[test]
fn fixture_passes_with_its_one_warning() {
    let output = check(&fixture(), false);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        stdout(&output),
        "jumpscale/sandbox/autobuild.yaml:9:3: warning: script 'jumpscale.sh': unknown key \
         'dependencies' is ignored\n\
         25 branch files: 25 valid, 0 rejected; 0 errors, 1 warning\n"
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn fixture_as_json_has_the_documented_shape() {
    let output = check(&fixture(), true);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    // serde_json's map sorts keys: compare sets here, the order below.
    assert_eq!(keys(&report), ["branches", "problems"]);
    assert_eq!(report["problems"], Value::Array(Vec::new()));

    let branches = report["branches"].as_array().expect("branches array");
    assert_eq!(branches.len(), 25);
    for branch in branches {
        assert_eq!(
            keys(branch),
            [
                "branch",
                "builds",
                "errors",
                "file",
                "ok",
                "repository",
                "warnings"
            ]
        );
        assert_eq!(branch["ok"], Value::Bool(true));
        assert_eq!(branch["errors"], Value::Array(Vec::new()));
        for build in branch["builds"].as_array().expect("builds") {
            assert_eq!(
                keys(build),
                [
                    "archives",
                    "artifact",
                    "baseimage",
                    "format",
                    "script",
                    "tag"
                ]
            );
        }
    }

    // The printed order is the documented one.
    let text = stdout(&output);
    assert_in_order(
        &text,
        &[
            "\"branches\"",
            "\"file\"",
            "\"repository\"",
            "\"branch\"",
            "\"ok\"",
            "\"builds\"",
            "\"script\"",
            "\"artifact\"",
            "\"archives\"",
            "\"baseimage\"",
            "\"tag\"",
            "\"format\"",
            "\"errors\"",
            "\"warnings\"",
        ],
    );
    assert!(text.trim_end().ends_with("\"problems\": []\n}"), "{text}");

    let robot = branches
        .iter()
        .find(|b| b["file"] == "zero-os/0-robot/development.yaml")
        .expect("0-robot development");
    assert_eq!(
        robot,
        &serde_json::json!({
            "file": "zero-os/0-robot/development.yaml",
            "repository": "zero-os/0-robot",
            "branch": "development",
            "ok": true,
            "builds": [
                {"script": "utils/scripts/autobuild/flist.sh", "artifact": "0-robot.tar.gz",
                 "archives": "/tmp/archives", "baseimage": "ubuntu:16.04", "tag": null,
                 "format": "flist"},
                {"script": "utils/scripts/autobuild/flist_autostart.sh",
                 "artifact": "0-robot-autostart.tar.gz", "archives": "/tmp/archives",
                 "baseimage": "ubuntu:16.04", "tag": "autostart", "format": "flist"}
            ],
            "errors": [],
            "warnings": []
        })
    );

    let sandbox = branches
        .iter()
        .find(|b| b["file"] == "jumpscale/sandbox/autobuild.yaml")
        .expect("sandbox");
    assert_eq!(
        sandbox["warnings"],
        serde_json::json!([{"line": 9, "column": 3,
            "message": "script 'jumpscale.sh': unknown key 'dependencies' is ignored"}])
    );
    let bundle = branches
        .iter()
        .find(|b| b["file"] == "zero-os/0-bundle/master.yaml")
        .expect("bundle");
    assert_eq!(bundle["builds"][0]["format"], "binary");
}

/// A copy of the fixture with four kinds of mistake, in four files.
fn broken_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture(), copy.path());
    let write = |file: &str, text: &str| {
        std::fs::write(copy.path().join(file), text).expect("write");
    };
    // A typo in a script name.
    write(
        "zero-os/0-stor/master.yaml",
        "buildscripts:\n - autobuild/0-stor.sh\n\nautobuid/0-stor.sh:\n  archives: /tmp/archives\n  artifact: 0-stor.tar.gz\n",
    );
    // A syntax error.
    write(
        "zero-os/nmap-flist/master.yaml",
        "buildscripts:\n - nmap.sh\n\nnmap.sh:\n  archives: /tmp/archives\n   artifact: nmap.tar.gz\n",
    );
    // A stray key (a warning only: this branch stays valid).
    write(
        "zero-os/mongodb-flist/master.yaml",
        "buildscripts:\n - mongodb.sh\ntag: latest\n\nmongodb.sh:\n  archives: /tmp/archives\n  artifact: mongodb.tar.gz\n",
    );
    // A missing artifact.
    write(
        "zero-os/backdoor-flist/master.yaml",
        "buildscripts:\n - build.sh\n\nbuild.sh:\n  archives: /tmp/archives\n  baseimage: alpine\n",
    );
    // And a stray file at the root.
    write("stray.yaml", "buildscripts: []\n");
    copy
}

#[test]
fn broken_copy_fails_with_every_message() {
    let copy = broken_copy();
    let output = check(copy.path(), false);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        stdout(&output),
        "jumpscale/sandbox/autobuild.yaml:9:3: warning: script 'jumpscale.sh': unknown key 'dependencies' is ignored\n\
         stray.yaml: warning: not a branch file: branch files live at <org>/<repo>/<branch>.yaml; ignored\n\
         zero-os/0-stor/master.yaml:2:4: error: script 'autobuild/0-stor.sh' is listed in 'buildscripts' but has no settings (no top-level key 'autobuild/0-stor.sh'); did you mean 'autobuid/0-stor.sh'?\n\
         zero-os/0-stor/master.yaml:4:1: warning: unknown top-level key 'autobuid/0-stor.sh' is ignored: it is neither 'buildscripts' nor a listed script\n\
         zero-os/backdoor-flist/master.yaml:4:1: error: script 'build.sh': missing required key 'artifact'\n\
         zero-os/mongodb-flist/master.yaml:3:1: warning: unknown top-level key 'tag' is ignored: it is neither 'buildscripts' nor a listed script\n\
         zero-os/nmap-flist/master.yaml:6:12: error: YAML syntax error: mapping values are not allowed in this context\n\
         25 branch files: 22 valid, 3 rejected; 3 errors, 4 warnings\n"
    );
}

#[test]
fn broken_copy_as_json() {
    let copy = broken_copy();
    let output = check(copy.path(), true);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    let branches = report["branches"].as_array().expect("branches");
    let rejected: Vec<&str> = branches
        .iter()
        .filter(|b| b["ok"] == false)
        .map(|b| b["file"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        rejected,
        [
            "zero-os/0-stor/master.yaml",
            "zero-os/backdoor-flist/master.yaml",
            "zero-os/nmap-flist/master.yaml"
        ]
    );
    let nmap = branches
        .iter()
        .find(|b| b["file"] == "zero-os/nmap-flist/master.yaml")
        .expect("nmap");
    assert_eq!(nmap["builds"], serde_json::json!([]));
    assert_eq!(
        nmap["errors"],
        serde_json::json!([{"line": 6, "column": 12,
            "message": "YAML syntax error: mapping values are not allowed in this context"}])
    );
    assert_eq!(
        report["problems"],
        serde_json::json!([{"file": "stray.yaml", "severity": "warning", "line": null,
            "column": null,
            "message": "not a branch file: branch files live at <org>/<repo>/<branch>.yaml; ignored"}])
    );
}

#[test]
fn missing_directory_exits_2_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-config");
    for json in [false, true] {
        let output = check(&missing, json);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!(
                "zos-build-client: config check: configuration directory {} does not exist\n",
                missing.display()
            )
        );
    }
}

#[test]
fn usage_error_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_zos-build-client"))
        .args(["config", "check"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("<DIR>"));
}

#[test]
fn example_configuration_is_valid_without_warnings() {
    let example = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/flist-config"
    ));
    let output = check(example, false);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.ends_with("valid, 0 rejected; 0 errors, 0 warnings\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "only the summary: {text}");
}

/// Issue 9's alias bomb: an 896 KB file whose aliases would expand to about
/// 50 GB (99,000 copies of one 500,000-byte string).
fn alias_bomb() -> String {
    let mut text = format!("a: &a \"{}\"\nb: [*a", "A".repeat(500_000));
    text.push_str(&", *a".repeat(98_999));
    text.push_str("]\n");
    text
}

/// Runs `config check` on `dir`, killing it after 20 s (a failure: the
/// bomb used to make it allocate until the kernel killed it).
fn check_within_20_seconds(dir: &Path) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_zos-build-client"))
        .args(["config", "check"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zos-build-client");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("config check still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_alias_bomb_is_refused_naming_file_and_line_and_the_other_branch_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("acme/widget");
    std::fs::create_dir_all(&widget).expect("mkdir");
    let bomb = alias_bomb();
    std::fs::write(widget.join("bomb.yaml"), &bomb).expect("write bomb");
    std::fs::write(
        widget.join("master.yaml"),
        "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: widget.tar.gz\n",
    )
    .expect("write branch file");

    let output = check_within_20_seconds(dir.path());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // The 28th alias of line 2 (column 113) passes 16 × the file's size.
    assert_eq!(
        stdout(&output),
        format!(
            "acme/widget/bomb.yaml:2:113: error: alias expansion exceeds {} bytes (16 × the \
             file's size of {} bytes): anchors and aliases copy too much text\n\
             2 branch files: 1 valid, 1 rejected; 1 error, 0 warnings\n",
            16 * bomb.len(),
            bomb.len()
        )
    );
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn scripts_publishing_the_same_artifact_name_are_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("acme/widget");
    std::fs::create_dir_all(&widget).expect("mkdir");
    std::fs::write(
        widget.join("master.yaml"),
        "buildscripts: [a.sh, b.sh]\na.sh:\n  artifact: a.tar.gz\nb.sh:\n  artifact: b.tar.gz\n",
    )
    .expect("write");
    let output = check(dir.path(), false);
    assert_eq!(output.status.code(), Some(0), "a warning only: {output:?}");
    assert_eq!(
        stdout(&output),
        "acme/widget/master.yaml:4:1: warning: scripts 'a.sh' and 'b.sh' publish the same \
         artifact name; give one a 'tag'\n\
         1 branch file: 1 valid, 0 rejected; 0 errors, 1 warning\n"
    );
}

/// The parser cannot use the core (the core must not depend on it, nor it on
/// the core), so it restates the naming rule: two scripts of a branch collide
/// exactly when their tags are equal. Here the restatement is checked against
/// the core's `artifact_name` itself, for every pair of a set of tags.
#[test]
fn the_collision_warning_agrees_with_the_cores_artifact_names() {
    use zos_build_core::artifact_name;
    let tags = [
        None,
        Some("release"),
        Some("Release"),
        Some("a.b"),
        Some("a-b"),
        Some("a_b"),
        Some("master"),
        Some("1"),
    ];
    let commit = "0123456789abcdef0123456789abcdef01234567";
    for (repository, branch) in [("acme/widget", "master"), ("a/b-c", "release/v1")] {
        for first in tags {
            for second in tags {
                let tag_line =
                    |tag: Option<&str>| tag.map(|t| format!("  tag: '{t}'\n")).unwrap_or_default();
                let text = format!(
                    "buildscripts: [a.sh, b.sh]\na.sh:\n  artifact: a\n{}b.sh:\n  artifact: b\n{}",
                    tag_line(first),
                    tag_line(second)
                );
                let parsed = zos_flist_config::parse_branch_file(&text, "x.yaml");
                assert!(parsed.is_valid(), "{text}: {:?}", parsed.problems);
                let warned = parsed
                    .warnings()
                    .any(|w| w.message.contains("publish the same artifact name"));
                let same = artifact_name(repository, first, branch, commit)
                    == artifact_name(repository, second, branch, commit);
                assert_eq!(warned, same, "{repository} {branch} {first:?} {second:?}");
            }
        }
    }
}
