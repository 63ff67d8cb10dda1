//! The configuration repository fetched with git: loaded at start-up from
//! its default branch, reloaded at the pushed commit on a push to it, the
//! catalog swapped at once, and every load recorded as a `Configuration
//! reloader` build. No build runs here, so no Docker is needed.

use zos_build_testkit::server as support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{git, SECRET};
use zos_build_core::{BuildRecord, BuildStatus};
use zos_build_server::http::signature;
use zos_build_server::reloader::{REJECTED, RELOADER_NAME};
use zos_build_server::{Config, RunningServer};

const WIDGET: &str = "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: widget.tar.gz\n";

struct Setup {
    _dir: tempfile::TempDir,
    config_repo: std::path::PathBuf,
    server: RunningServer,
    client: reqwest::Client,
    deliveries: u32,
}

fn commit_all(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config_repo = dir.path().join("git/acme/config");
    std::fs::create_dir_all(config_repo.join("acme/widget")).unwrap();
    git(&config_repo, &["init", "-q", "-b", "main"]);
    std::fs::write(config_repo.join("acme/widget/master.yaml"), WIDGET).unwrap();
    commit_all(&config_repo, "track widget master");
    let yaml = format!(
        "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: acme/config\n\
         webhook-secret: {SECRET}\ngit-base-url: file://{git}\n",
        data = dir.path().join("data").display(),
        git = dir.path().join("git").display(),
    );
    let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
    let server = zos_build_server::start_without_builds(config)
        .await
        .unwrap();
    Setup {
        _dir: dir,
        config_repo,
        server,
        client: reqwest::Client::new(),
        deliveries: 0,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.address)
    }

    async fn push(
        &mut self,
        endpoint: &str,
        repository: &str,
        branch: &str,
        commit: &str,
    ) -> (u16, Value) {
        self.deliveries += 1;
        let body = json!({
            "ref": format!("refs/heads/{branch}"),
            "after": commit,
            "repository": {"full_name": repository},
            "head_commit": {"id": commit},
            "commits": [],
        })
        .to_string()
        .into_bytes();
        let response = self
            .client
            .post(self.url(endpoint))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("reload-{}", self.deliveries))
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn reloads(&self) -> Vec<BuildRecord> {
        self.server
            .state
            .history
            .recent(Some(RELOADER_NAME), 100)
            .await
            .unwrap()
    }

    /// Waits until there are `n` finished reloads; returns the newest.
    async fn reload_number(&self, n: usize) -> BuildRecord {
        let start = Instant::now();
        loop {
            let reloads = self.reloads().await;
            if reloads.len() >= n && reloads[0].status.is_finished() {
                return reloads[0].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{reloads:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn report(&self, id: &str) -> String {
        self.client
            .get(self.url(&format!("/report/{id}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_push_to_the_configuration_reloads_it_and_swaps_the_catalog() {
    let mut s = setup().await;
    let first = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}");
    assert!(s.report(&first.id).await.contains("1 branches tracked"));
    let (status, answer) = s
        .push(
            "/hook/monitor-watch",
            "acme/widget",
            "master",
            &"a".repeat(40),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // Stop tracking master, track dev, and break a third file.
    std::fs::remove_file(s.config_repo.join("acme/widget/master.yaml")).unwrap();
    std::fs::write(s.config_repo.join("acme/widget/dev.yaml"), WIDGET).unwrap();
    std::fs::create_dir_all(s.config_repo.join("acme/gadget")).unwrap();
    std::fs::write(
        s.config_repo.join("acme/gadget/master.yaml"),
        "buildscripts:\n  - build.sh\nbuid.sh:\n  artifact: g.tar.gz\n",
    )
    .unwrap();
    let commit = commit_all(&s.config_repo, "dev instead of master");
    let (status, answer) = s
        .push("/hook/monitor-update", "acme/config", "main", &commit)
        .await;
    assert_eq!((status, answer), (200, json!({"status": "success"})));
    let second = s.reload_number(2).await;
    assert_eq!(second.status, BuildStatus::Error, "{second:?}");
    assert_eq!(second.error.as_deref(), Some(REJECTED));
    assert_eq!(second.commit, commit);
    let log = s.report(&second.id).await;
    assert!(log.contains("acme/gadget/master.yaml:2:5: error:"), "{log}");
    assert!(log.contains("did you mean 'buid.sh'?"), "{log}");
    // The same push again under another delivery id, as a replay would
    // send it: answered, and nothing is loaded (counted below).
    let (status, _) = s
        .push("/hook/monitor-update", "acme/config", "main", &commit)
        .await;
    assert_eq!(status, 200);

    // Removed at once; the new branch is tracked; the broken one is not.
    let (status, answer) = s
        .push(
            "/hook/monitor-watch",
            "acme/widget",
            "master",
            &"b".repeat(40),
        )
        .await;
    assert_eq!(
        (status, answer["message"].clone()),
        (400, json!("branch not tracked"))
    );
    let (status, answer) = s
        .push("/hook/monitor-watch", "acme/widget", "dev", &"c".repeat(40))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = s
        .push(
            "/hook/monitor-watch",
            "acme/gadget",
            "master",
            &"d".repeat(40),
        )
        .await;
    assert_eq!(
        (status, answer["message"].clone()),
        (400, json!("repository not tracked"))
    );

    // A push to another branch of the configuration loads nothing.
    git(&s.config_repo, &["checkout", "-q", "-b", "experiment"]);
    std::fs::remove_dir_all(s.config_repo.join("acme")).unwrap();
    let other = commit_all(&s.config_repo, "track nothing");
    let (status, _) = s
        .push("/hook/monitor-update", "acme/config", "experiment", &other)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.reloads().await.len(),
        2,
        "no reload for a replay, nor for another branch"
    );

    // Not the configuration repository: the old answer.
    let (status, answer) = s
        .push("/hook/monitor-update", "acme/widget", "main", &commit)
        .await;
    assert_eq!(
        (status, answer),
        (
            400,
            json!({"status": "error", "message": "repository not configured as configuration-repository"})
        )
    );
    s.server.stop().await;
}

#[tokio::test]
async fn a_configuration_that_cannot_be_fetched_is_an_error_build_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: acme/missing\ngit-base-url: file://{git}\n",
        data = dir.path().join("data").display(),
        git = dir.path().join("git").display(),
    );
    let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
    let server = zos_build_server::start_without_builds(config)
        .await
        .unwrap();
    let reloads = server
        .state
        .history
        .recent(Some(RELOADER_NAME), 10)
        .await
        .unwrap();
    assert_eq!(reloads.len(), 1);
    assert_eq!(reloads[0].status, BuildStatus::Error);
    let error = reloads[0].error.clone().unwrap();
    assert!(error.contains("acme/missing"), "{error}");
    server.stop().await;

    let yaml = format!(
        "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: not a repository\n",
        data = dir.path().join("data").display(),
    );
    let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
    let err = zos_build_server::start_without_builds(config)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a repository"), "{err}");
}

/// Issue 9's alias bomb: an 896 KB file whose aliases would expand to about
/// 50 GB (99,000 copies of one 500,000-byte string). It used to make the
/// reload allocate until the kernel killed the server.
fn alias_bomb() -> String {
    let mut text = format!("a: &a \"{}\"\nb: [*a", "A".repeat(500_000));
    text.push_str(&", *a".repeat(98_999));
    text.push_str("]\n");
    text
}

#[tokio::test]
async fn an_alias_bomb_in_the_configuration_rejects_its_branch_and_the_others_stay_tracked() {
    let mut s = setup().await;
    let first = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}");

    let bomb = alias_bomb();
    std::fs::write(s.config_repo.join("acme/widget/bomb.yaml"), &bomb).unwrap();
    std::fs::write(s.config_repo.join("acme/widget/dev.yaml"), WIDGET).unwrap();
    let commit = commit_all(&s.config_repo, "an alias bomb beside a new branch");
    let (status, answer) = s
        .push("/hook/monitor-update", "acme/config", "main", &commit)
        .await;
    assert_eq!((status, answer), (200, json!({"status": "success"})));

    // reload_number gives up after 30 s; the bomb is refused far sooner.
    let second = s.reload_number(2).await;
    assert_eq!(second.status, BuildStatus::Error, "{second:?}");
    assert_eq!(second.error.as_deref(), Some(REJECTED));
    assert_eq!(second.commit, commit);
    let log = s.report(&second.id).await;
    let expected = format!(
        "acme/widget/bomb.yaml:2:113: error: alias expansion exceeds {} bytes (16 × the \
         file's size of {} bytes): anchors and aliases copy too much text",
        16 * bomb.len(),
        bomb.len()
    );
    assert!(log.contains(&expected), "{log}");

    // The server is alive, the bomb's branch is not tracked, the others are.
    let (status, answer) = s
        .push(
            "/hook/monitor-watch",
            "acme/widget",
            "bomb",
            &"e".repeat(40),
        )
        .await;
    assert_eq!(
        (status, answer["message"].clone()),
        (400, json!("branch not tracked"))
    );
    for (branch, commit) in [("master", "f"), ("dev", "1")] {
        let (status, answer) = s
            .push(
                "/hook/monitor-watch",
                "acme/widget",
                branch,
                &commit.repeat(40),
            )
            .await;
        assert_eq!(status, 200, "{branch}: {answer}");
    }
    s.server.stop().await;
}
