//! `zos-build-server import-legacy` for real: the binary run on a database
//! written with the old autobuilder's schema and a directory of its logs,
//! then the server started on the data directory it filled and asked over
//! TCP for the old builds and logs.

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zos_build_core::BuildStatus;
use zos_build_server::Config;

const OLD_SCHEMA: &str = "CREATE TABLE history (id integer primary key autoincrement, \
                          created datetime, push text, content text);";

const A: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const B: &str = "6fa459ea-ee8a-3ca4-894e-db77e160355e";
const C: &str = "16fd2706-8baf-433b-82eb-8c7fada847da";
const D: &str = "886313e1-3b8a-5372-9b90-0c9aee199e5d";
const SHA_A: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA_B: &str = "89abcdef0123456789abcdef0123456789abcdef";
const SHA_C: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// A data directory for the server, an old logs directory, and the
/// configuration file naming the first.
struct Setup {
    dir: tempfile::TempDir,
    old: PathBuf,
    config_path: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old-logs");
        std::fs::create_dir_all(old.join("commits")).unwrap();
        let config_path = dir.path().join("server.yaml");
        std::fs::write(
            &config_path,
            format!(
                "data-directory: {}\nhttp-port: 0\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        Connection::open(old.join("history.sqlite"))
            .unwrap()
            .execute_batch(OLD_SCHEMA)
            .unwrap();
        Setup {
            dir,
            old,
            config_path,
        }
    }

    fn config(&self) -> Config {
        Config::load_with_env(Some(&self.config_path), |_| None).unwrap()
    }

    /// Appends a row to the old `history` table.
    fn row(&self, created: &str, push: Option<&Value>, content: &str) {
        Connection::open(self.old.join("history.sqlite"))
            .unwrap()
            .execute(
                "INSERT INTO history (created, push, content) VALUES (?1, ?2, ?3)",
                params![created, push.map(Value::to_string), content],
            )
            .unwrap();
    }

    fn log(&self, id: &str, text: &str) {
        std::fs::write(self.old.join("commits").join(id), text).unwrap();
    }

    /// Runs the binary with `args`, the configuration given by `--config`
    /// (or, with `through_env`, by `ZOS_BUILD_CONFIG`).
    fn run(&self, args: &[&str], through_env: bool) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zos-build-server"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ZOS_BUILD_") {
                command.env_remove(name);
            }
        }
        command.env("RUST_LOG", "warn").args(args);
        if through_env {
            command.env("ZOS_BUILD_CONFIG", &self.config_path);
        } else {
            command.arg("--config").arg(&self.config_path);
        }
        command.output().unwrap()
    }

    fn import(&self, through_env: bool) -> (i32, String) {
        let logs = self.old.to_str().unwrap();
        let output = self.run(&["import-legacy", "--logs-directory", logs], through_env);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "exit {:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap(), stdout)
    }
}

fn push(repository: &str, branch: &str, sha: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "after": sha,
        "head_commit": {"id": sha, "message": "change"},
        "repository": {"full_name": repository},
        "commits": [{"id": sha, "message": "change"}],
    })
}

/// The last line of the import's output: the counts.
fn counts(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

async fn get(client: &reqwest::Client, url: String) -> (reqwest::StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn an_old_history_is_imported_once_and_its_reports_answer() {
    let setup = Setup::new();
    setup.row(
        "2019-03-01 10:00:00.123456",
        Some(&push("owner/repo", "master", SHA_A)),
        &json!({
            "id": A, "name": "owner/repo/master", "status": "success",
            "monitor": "done\n", "docker": "0123456789", "started": 1551434400,
            "ended": 1551434460.25, "error": null,
            "commits": [{"id": SHA_A, "message": "change"}],
            "artifact": "owner-repo-tools-master-0123456789.tar.gz", "tag": "tools",
            "baseimage": "ubuntu:16.04",
        })
        .to_string(),
    );
    setup.log(A, "building A\nline 2 été\n");
    setup.row(
        "2019-03-02 10:00:00",
        Some(&push("owner/repo", "master", SHA_B)),
        &json!({
            "id": B, "name": "owner/repo/master", "status": "error",
            "monitor": "", "docker": "", "started": 1551520800.5, "ended": 1551520900,
            "error": "artifact not found", "commits": [], "artifact": null, "tag": null,
            "baseimage": "ubuntu:16.04",
        })
        .to_string(),
    );
    setup.log(B, "building B\nno artifact\n");
    setup.row(
        "2019-03-03 10:00:00",
        Some(&push("owner/config", "master", SHA_C)),
        &json!({
            "id": C, "name": "Configuration reloader", "status": "success",
            "monitor": "", "docker": "system", "started": 1551607200, "ended": 1551607201,
            "error": null, "commits": [], "artifact": null, "tag": null, "baseimage": null,
        })
        .to_string(),
    );
    setup.log(C, "loading the configuration\n");
    // Row 4: cut short.
    setup.row(
        "2019-03-04 10:00:00",
        None,
        &format!("{{\"id\": \"{D}\", \"name\": "),
    );
    // Row 5: a build the old service lost while it ran, whose log is gone.
    setup.row(
        "2019-03-05 10:00:00",
        Some(&push("owner/repo", "dev", SHA_A)),
        &json!({
            "id": D, "name": "owner/repo/dev", "status": "building",
            "started": 1551780000, "ended": null, "error": null, "commits": [],
        })
        .to_string(),
    );
    // Row 6: no id.
    setup.row(
        "2019-03-06 10:00:00",
        None,
        &json!({"name": "owner/repo/master", "status": "success"}).to_string(),
    );
    let old_database = std::fs::read(setup.old.join("history.sqlite")).unwrap();

    let (code, stdout) = setup.import(false);
    assert_eq!(code, 0);
    assert_eq!(
        counts(&stdout),
        "imported: 4, already present: 0, skipped as malformed: 2, logs copied: 3, logs missing: 1",
        "{stdout}"
    );
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{stdout}"))
            .to_string()
    };
    assert!(line("row 4 skipped as malformed:").contains("not valid JSON"));
    assert!(line("row 6 skipped as malformed:").contains("no build id"));
    assert!(line(&format!("row 5, build {D}: log missing")).contains("does not exist"));
    // Told in the old table's order.
    let at = |text: &str| stdout.find(text).unwrap();
    assert!(at("row 4 skipped") < at("row 6 skipped"), "{stdout}");
    assert_eq!(
        std::fs::read(setup.old.join("history.sqlite")).unwrap(),
        old_database,
        "the old database was changed"
    );

    let config = setup.config();
    let server = zos_build_server::start_without_builds(config.clone())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", server.address);

    let (status, body) = get(&client, url(&format!("/report/{A}"))).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "building A\nline 2 été\n")
    );
    let (status, body) = get(&client, url(&format!("/report/{C}"))).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "loading the configuration\n")
    );
    let (status, body) = get(&client, url(&format!("/report/{D}"))).await;
    assert_eq!(status.as_u16(), 200);
    assert!(body.contains("imported from the old service"), "{body}");
    // The latest build of the branch is the newer of the two.
    let (status, body) = get(&client, url("/build/logs/owner/repo/master")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "building B\nno artifact\n")
    );

    let (status, body) = get(&client, url("/build/history")).await;
    assert_eq!(status.as_u16(), 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    let entries: Vec<(&str, &str, &str, Option<&str>)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
                e["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                D,
                "owner/repo/dev",
                "error",
                Some("interrupted (imported from the old service, where it was building)")
            ),
            (C, "Configuration reloader", "success", None),
            (B, "owner/repo/master", "error", Some("artifact not found")),
            (A, "owner/repo/master", "success", None),
        ],
        "{body}"
    );

    // Every field the old row had, where ours has a place for it.
    let a = server.state.history.get(A).await.unwrap().unwrap();
    assert_eq!(a.status, BuildStatus::Success);
    assert_eq!(
        (a.repository.as_str(), a.branch.as_str(), a.commit.as_str()),
        ("owner/repo", "master", SHA_A)
    );
    assert_eq!(
        (a.queued, a.started, a.ended),
        (1551434400, Some(1551434400), Some(1551434460))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&a.commits).unwrap(),
        json!([{"id": SHA_A, "message": "change"}])
    );
    assert_eq!(
        a.artifact.as_deref(),
        Some("owner-repo-tools-master-0123456789.tar.gz")
    );
    assert_eq!(a.tag.as_deref(), Some("tools"));
    assert_eq!(a.baseimage, "ubuntu:16.04");
    let b = server.state.history.get(B).await.unwrap().unwrap();
    assert_eq!((b.commit.as_str(), b.started), (SHA_B, Some(1551520800)));
    let c = server.state.history.get(C).await.unwrap().unwrap();
    assert_eq!(
        (c.repository.as_str(), c.branch.as_str(), c.commit.as_str()),
        ("owner/config", "", SHA_C)
    );
    // Nothing imported is waiting to run.
    assert!(server.state.history.active().await.unwrap().is_empty());
    server.stop().await;

    // Again, the configuration named by the environment this time: nothing new.
    let (code, stdout) = setup.import(true);
    assert_eq!(code, 0);
    assert_eq!(
        counts(&stdout),
        "imported: 0, already present: 4, skipped as malformed: 2, logs copied: 0, logs missing: 0",
        "{stdout}"
    );
    let history = zos_build_core::History::open(config.history_path())
        .await
        .unwrap();
    assert_eq!(history.recent(None, 100).await.unwrap().len(), 4);
    let a_log = std::fs::read_to_string(config.build_log_path(A)).unwrap();
    assert_eq!(a_log, "building A\nline 2 été\n");
}

#[tokio::test]
async fn hostile_rows_are_refused_and_nothing_is_written_outside_the_logs_directory() {
    let setup = Setup::new();
    let root = setup.dir.path();
    let config = setup.config();
    // Where a path-like id would lead, from the old logs and from ours.
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/x"), "not a log").unwrap();
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").unwrap();
    let build = |id: &str| json!({"id": id, "name": "o/r/b", "status": "success"}).to_string();

    // Row 1: an id that climbs out of both directories.
    setup.row("2020-01-01 00:00:00", None, &build("../../etc/x"));
    // Row 2: an absolute path.
    setup.row(
        "2020-01-01 00:00:00",
        None,
        &build("/tmp/zos-build-legacy-test"),
    );
    // Row 3: a log that is a symlink to a file outside: not followed.
    const LINKED: &str = "11111111-2222-3333-4444-555555555555";
    setup.row("2020-01-01 00:00:00", None, &build(LINKED));
    std::os::unix::fs::symlink(&secret, setup.old.join("commits").join(LINKED)).unwrap();
    // Row 4: a log that is a directory.
    const DIRECTORY: &str = "22222222-2222-3333-4444-555555555555";
    setup.row("2020-01-01 00:00:00", None, &build(DIRECTORY));
    std::fs::create_dir(setup.old.join("commits").join(DIRECTORY)).unwrap();
    // Row 5: terminal escapes in the id.
    setup.row(
        "2020-01-01 00:00:00",
        None,
        &build("\u{1b}]0;owned\u{7}\u{1b}[2J"),
    );
    // Row 6: a content larger than any the old service wrote.
    let huge = json!({"id": "33333333-2222-3333-4444-555555555555", "name": "o/r/b",
                      "status": "success", "monitor": "x".repeat(9 * 1024 * 1024)});
    setup.row("2020-01-01 00:00:00", None, &huge.to_string());
    // Row 7: a large log, copied whole.
    const LARGE: &str = "44444444-2222-3333-4444-555555555555";
    setup.row("2020-01-01 00:00:00", None, &build(LARGE));
    let large_log = "0123456789abcdef\n".repeat(256 * 1024);
    setup.log(LARGE, &large_log);
    let old_database = std::fs::read(setup.old.join("history.sqlite")).unwrap();

    let (code, stdout) = setup.import(false);
    assert_eq!(code, 0);
    assert_eq!(
        counts(&stdout),
        "imported: 3, already present: 0, skipped as malformed: 4, logs copied: 1, logs missing: 2",
        "{stdout}"
    );
    for row in [1, 2, 5, 6] {
        assert!(
            stdout.contains(&format!("row {row} skipped as malformed:")),
            "row {row}: {stdout}"
        );
    }
    assert!(
        stdout.contains(r#"build id "../../etc/x" is not a uuid"#),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );

    // Nothing was written where the ids point.
    assert!(!root.join("etc/x.log").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/x")).unwrap(),
        "not a log"
    );
    assert!(!Path::new("/tmp/zos-build-legacy-test.log").exists());
    // The symlink was not followed: its copy is a plain file without the secret.
    let linked = config.build_log_path(LINKED);
    let metadata = std::fs::symlink_metadata(&linked).unwrap();
    assert!(metadata.file_type().is_file());
    let text = std::fs::read_to_string(&linked).unwrap();
    assert!(
        !text.contains("TOP SECRET") && text.contains("not a regular file"),
        "{text}"
    );
    assert!(std::fs::read_to_string(config.build_log_path(DIRECTORY))
        .unwrap()
        .contains("not a regular file"));
    assert_eq!(
        std::fs::read_to_string(config.build_log_path(LARGE)).unwrap(),
        large_log
    );
    // Only the three imported builds' logs are in the logs directory.
    let mut written: Vec<String> = std::fs::read_dir(&config.logs_directory)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            format!("{LINKED}.log"),
            format!("{DIRECTORY}.log"),
            format!("{LARGE}.log")
        ]
    );
    assert_eq!(
        std::fs::read(setup.old.join("history.sqlite")).unwrap(),
        old_database
    );
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let setup = Setup::new();
    // No database where it is looked for: 1, naming the path.
    let elsewhere = setup.dir.path().join("nothing-here");
    let output = setup.run(
        &[
            "import-legacy",
            "--logs-directory",
            elsewhere.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&elsewhere.join("history.sqlite").display().to_string()),
        "{stderr}"
    );
    assert!(!elsewhere.exists(), "the import created the old directory");
    // A file that is not the old service's database: 1.
    std::fs::write(setup.old.join("history.sqlite"), "not sqlite at all").unwrap();
    let output = setup.run(
        &[
            "import-legacy",
            "--logs-directory",
            setup.old.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // Bad arguments: 2.
    assert_eq!(setup.run(&["import-legacy"], false).status.code(), Some(2));
    let output = setup.run(
        &[
            "--check-config",
            "import-legacy",
            "--logs-directory",
            setup.old.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(output.status.code(), Some(2));
    // --check-config alone is as before.
    let output = setup.run(&["--check-config"], false);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("data_directory"));
}
