//! The test harness of the server's end-to-end tests: the server started
//! in-process on a temporary data directory, a configuration repository and
//! a source repository made by the test (served through a `file://` git base
//! URL), signed pushes over TCP, the real Docker daemon and the busybox test
//! image.
//!
//! Formerly `zos-build-server/tests/support/mod.rs`: test files import it as
//! `use zos_build_testkit::server as support;`, so `support::Harness` and
//! `support::common` (the [`docker`](crate::docker) helpers) keep their
//! names.

pub use crate::docker as common;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zos_build_core::{BuildRecord, History};
use zos_build_server::http::signature;
use zos_build_server::{Config, RunningServer};

/// The webhook secret of the harness's server.
pub const SECRET: &str = "pipeline-secret";
/// The source repository the harness's configuration tracks.
pub const REPOSITORY: &str = "acme/widget";

/// Docker-heavy tests of this binary run one at a time, so that their
/// timings do not depend on each other.
pub static DOCKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `git -C dir args...` with a fixed author; panics when it fails, and
/// returns its trimmed standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A server on a temporary data directory, with the repositories it builds
/// from; see [`Harness::start`].
pub struct Harness {
    /// Everything of this harness: data, configuration and source
    /// repositories; removed when the harness is dropped.
    pub dir: tempfile::TempDir,
    /// The server's configuration (parsed from [`Harness::yaml`]).
    pub config: Config,
    /// The configuration file's text (`http-port: 0`).
    pub yaml: String,
    /// The in-process server, while one runs.
    pub server: Option<RunningServer>,
    /// Where the server listens: the in-process one, or a spawned binary.
    pub address: Option<SocketAddr>,
    /// The HTTP client of the helpers.
    pub client: reqwest::Client,
    /// Pushes sent so far (each gets its own `X-GitHub-Delivery`).
    pub deliveries: u32,
}

impl Harness {
    /// A server tracking `acme/widget` `master` (script `build.sh`, artifact
    /// `/target/widget.tar.gz`), whose source repository is empty so far.
    pub async fn start(extra_config: &str) -> Harness {
        let mut harness = Harness::prepare(extra_config).await;
        harness.restart(true).await;
        harness
    }

    /// The directories and the configuration of [`Harness::start`], with no
    /// server running.
    pub async fn prepare(extra_config: &str) -> Harness {
        // Imports the test image when it is missing.
        common::executor().await;
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("config-repo");
        std::fs::create_dir_all(catalog.join(REPOSITORY)).unwrap();
        for branch in ["master", "dev"] {
            std::fs::write(
                catalog.join(REPOSITORY).join(format!("{branch}.yaml")),
                format!(
                    "buildscripts:\n  - build.sh\nbuild.sh:\n  baseimage: {}\n  archives: /target\n  artifact: widget.tar.gz\n",
                    common::IMAGE
                ),
            )
            .unwrap();
        }
        let repo = dir.path().join("git").join(REPOSITORY);
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "master"]);
        let yaml = format!(
            "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: {catalog}\n\
             webhook-secret: {SECRET}\ngit-base-url: file://{git}\n\
             container-name-prefix: zos-build-pipeline-test-\n{extra_config}",
            data = dir.path().join("data").display(),
            catalog = catalog.display(),
            git = dir.path().join("git").display(),
        );
        let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
        Harness {
            dir,
            config,
            yaml,
            server: None,
            address: None,
            client: reqwest::Client::new(),
            deliveries: 0,
        }
    }

    /// Starts the real `zos-build-server` binary (`binary`, the test's
    /// `env!("CARGO_BIN_EXE_zos-build-server")`) on this harness's
    /// configuration (on a free port, output in `server.out`) and waits until
    /// it answers.
    pub async fn spawn_binary(&mut self, binary: &str) -> std::process::Child {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        self.spawn_binary_on(binary, port).await
    }

    /// [`Harness::spawn_binary`] on `port`. Called again with the port of a
    /// binary that stopped, it brings the server back at the address its
    /// clients (a browser page) knew.
    pub async fn spawn_binary_on(&mut self, binary: &str, port: u16) -> std::process::Child {
        let config_file = self.dir.path().join("zos-build.yaml");
        std::fs::write(
            &config_file,
            self.yaml
                .replace("http-port: 0\n", &format!("http-port: {port}\n")),
        )
        .unwrap();
        let output = std::fs::File::create(self.dir.path().join("server.out")).unwrap();
        let mut child = std::process::Command::new(binary)
            .arg("--config")
            .arg(&config_file)
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        self.address = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        let start = Instant::now();
        while self.client.get(self.url("/healthz")).send().await.is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                // Never leave a half-started server behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not answer: {}", self.server_output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }

    /// What the spawned binary printed.
    pub fn server_output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.out")).unwrap_or_default()
    }

    /// Stops the server if it runs, and starts it again on the same data
    /// directory, running builds or not.
    pub async fn restart(&mut self, run_builds: bool) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let config = self.config.clone();
        let server = if run_builds {
            zos_build_server::start(config).await
        } else {
            zos_build_server::start_without_builds(config).await
        };
        let server = server.unwrap();
        self.address = Some(server.address);
        self.server = Some(server);
    }

    /// `http://<the server's address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address.expect("a server runs"))
    }

    /// The in-process server; panics when none runs.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// The source repository of [`REPOSITORY`].
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("git").join(REPOSITORY)
    }

    /// Commits `script` as `build.sh`; returns the commit.
    pub fn commit(&self, script: &str) -> String {
        let repo = self.repo();
        std::fs::write(repo.join("build.sh"), script).unwrap();
        git(&repo, &["add", "build.sh"]);
        git(&repo, &["commit", "-q", "-m", "build.sh"]);
        git(&repo, &["rev-parse", "HEAD"])
    }

    /// Sends a signed push of `commit` on master; returns the build ids.
    pub async fn push(&mut self, commit: &str) -> Vec<String> {
        self.push_to("master", commit).await
    }

    /// Sends a signed push of `commit` on `branch`; returns the build ids.
    pub async fn push_to(&mut self, branch: &str, commit: &str) -> Vec<String> {
        self.push_with_commits(branch, commit, json!([{"id": commit, "message": "change"}]))
            .await
    }

    /// Sends a signed push of `commit` on `branch` whose `commits` array is
    /// `commits` (GitHub's objects: `id`, `message`, `author`...; the last
    /// one is also sent as `head_commit`, with `commit` as its id); returns
    /// the build ids.
    pub async fn push_with_commits(
        &mut self,
        branch: &str,
        commit: &str,
        commits: Value,
    ) -> Vec<String> {
        self.deliveries += 1;
        let mut head = commits
            .as_array()
            .and_then(|all| all.last())
            .cloned()
            .unwrap_or_else(|| json!({"message": "change"}));
        head["id"] = json!(commit);
        let body = json!({
            "ref": format!("refs/heads/{branch}"),
            "after": commit,
            "deleted": false,
            "repository": {"full_name": REPOSITORY, "name": "widget"},
            "head_commit": head,
            "commits": commits,
        })
        .to_string()
        .into_bytes();
        let response = self
            .client
            .post(self.url("/hook/monitor-watch"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("delivery-{}", self.deliveries))
            .header("Content-Type", "application/json")
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "success", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(!message.contains("does not run builds"), "{answer}");
        answer["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect()
    }

    /// Writes a branch file named `branch` for [`REPOSITORY`] into the
    /// configuration repository, with the settings of `master.yaml` (a
    /// nested name, `release/1.0`, makes its directories). A running server
    /// reads it at its next start ([`Harness::restart`]).
    pub fn add_branch_file(&self, branch: &str) {
        let catalog = self.dir.path().join("config-repo").join(REPOSITORY);
        let file = catalog.join(format!("{branch}.yaml"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::copy(catalog.join("master.yaml"), &file).unwrap();
    }

    /// Sends `payload` to the push endpoint as a signed `push` event with
    /// a delivery id of its own; returns the answer's status and JSON body,
    /// whatever they are.
    pub async fn send_push(&mut self, payload: &Value) -> (reqwest::StatusCode, Value) {
        self.deliveries += 1;
        let body = payload.to_string().into_bytes();
        let response = self
            .client
            .post(self.url("/hook/monitor-watch"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("delivery-{}", self.deliveries))
            .header("Content-Type", "application/json")
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let answer = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the answer ({status}) is not JSON: {e}: {text}"));
        (status, answer)
    }

    /// Sends a signed push of tag `tag` of [`REPOSITORY`] as GitHub does
    /// when a tag is created: `ref` `refs/tags/<tag>`, `after` the tag's own
    /// id (the tag object's for an annotated tag, the commit's for a
    /// lightweight one), `head_commit.id` the tagged `commit`, no `commits`.
    /// Returns the answer's status and JSON body.
    pub async fn push_tag(
        &mut self,
        tag: &str,
        after: &str,
        commit: &str,
    ) -> (reqwest::StatusCode, Value) {
        let payload = json!({
            "ref": format!("refs/tags/{tag}"),
            "before": "0000000000000000000000000000000000000000",
            "after": after,
            "created": true,
            "deleted": false,
            "base_ref": null,
            "repository": {"full_name": REPOSITORY, "name": "widget"},
            "head_commit": {"id": commit, "message": "tagged"},
            "commits": [],
        });
        self.send_push(&payload).await
    }

    /// Sends a signed push deleting tag `tag` of [`REPOSITORY`], as GitHub
    /// sends it (`deleted`, `after` all zeros, no `head_commit`). Returns
    /// the answer's status and JSON body.
    pub async fn delete_tag(&mut self, tag: &str, before: &str) -> (reqwest::StatusCode, Value) {
        let payload = json!({
            "ref": format!("refs/tags/{tag}"),
            "before": before,
            "after": "0000000000000000000000000000000000000000",
            "created": false,
            "deleted": true,
            "base_ref": null,
            "repository": {"full_name": REPOSITORY, "name": "widget"},
            "head_commit": null,
            "commits": [],
        });
        self.send_push(&payload).await
    }

    /// The build's record in the history (of the in-process server, or read
    /// from the database of a spawned one).
    pub async fn record(&self, id: &str) -> BuildRecord {
        let history = match &self.server {
            Some(server) => server.state.history.clone(),
            // The server runs in another process: read its database.
            None => History::open(self.config.history_path()).await.unwrap(),
        };
        history
            .get(id)
            .await
            .unwrap()
            .expect("the build is in the history")
    }

    /// Waits (at most `limit`) until `check` holds for the build's record.
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&BuildRecord) -> bool,
    ) -> BuildRecord {
        let start = Instant::now();
        loop {
            let record = self.record(id).await;
            if check(&record) {
                return record;
            }
            assert!(
                start.elapsed() < limit,
                "build {id} not {what} after {limit:?}: {record:?}\nlog:\n{}",
                self.report(id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the build's log holds `line`.
    pub async fn wait_for_line(&self, id: &str, line: &str) {
        let start = Instant::now();
        while !self.report(id).await.contains(line) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{line:?} never appeared in the log of {id}: {:?}",
                self.record(id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most a minute) until the build has finished.
    pub async fn finished(&self, id: &str) -> BuildRecord {
        self.wait_for(id, Duration::from_secs(60), "finished", |r| {
            r.status.is_finished()
        })
        .await
    }

    /// The JSON answer of `GET path` (a 404 or an error page is not JSON:
    /// the test fails saying which path).
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {status} {text:?}: {e}"))
    }

    /// The text of `GET path` (`/metrics`, a log), whatever its status.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// A guard removing, when dropped, every container of this harness's
    /// server (its instance label): a test or benchmark that fails while
    /// its build runs leaves none behind.
    pub fn build_containers(&self) -> BuildContainers {
        BuildContainers(zos_build_server::server::instance_name(
            &self.config.data_directory,
        ))
    }

    /// `GET /report/<id>`.
    pub async fn report(&self, id: &str) -> String {
        let response = self
            .client
            .get(self.url(&format!("/report/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.text().await.unwrap()
    }

    /// Stops the server, then checks that no container and no work
    /// directory of `ids` remains.
    pub async fn stop_and_check_clean(mut self, ids: &[String]) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let executor = common::executor().await;
        for id in ids {
            common::assert_no_container(&executor, id).await;
            let work = self.config.build_work_directory(id);
            assert!(!work.exists(), "{} was left behind", work.display());
        }
    }
}

/// Removes, when dropped, every container of one server instance (see
/// [`Harness::build_containers`]), through the `docker` command, since a
/// drop cannot wait for the daemon's API.
#[derive(Debug)]
pub struct BuildContainers(String);

impl Drop for BuildContainers {
    fn drop(&mut self) {
        use std::process::{Command, Stdio};
        let label = format!("label=zos-build.instance={}", self.0);
        let Ok(listed) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .stderr(Stdio::null())
            .output()
        else {
            return;
        };
        let ids = String::from_utf8_lossy(&listed.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
