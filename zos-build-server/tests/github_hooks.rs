//! Webhook registration (`register-webhooks: true`) against the GitHub
//! stand-in: every load of the configuration makes sure each tracked
//! repository has one hook of ours to the push endpoint, and the
//! configuration repository one to the monitor-update endpoint; a stale hook
//! of ours is updated, a foreign one never touched, a second load changes
//! nothing, and every outcome is a line of the load's log. The configuration
//! repository is fetched with git and no build runs, so no Docker is needed.

use zos_build_testkit::server as support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::git;
use zos_build_core::{BuildRecord, BuildStatus};
use zos_build_server::http::signature;
use zos_build_server::reloader::RELOADER_NAME;
use zos_build_server::{Config, RunningServer};
use zos_build_testkit::github::{GitHubStandIn, Hook};

const TOKEN: &str = "ghp_hooksTestToken0123456789";
const SECRET: &str = "hook-secret-4242";
const PUBLIC: &str = "https://builds.example.org";
const PUSH_URL: &str = "https://builds.example.org/hook/monitor-watch";
const MONITOR_URL: &str = "https://builds.example.org/hook/monitor-update";
const WIDGET: &str = "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: widget.tar.gz\n";

struct Setup {
    dir: tempfile::TempDir,
    config_repo: PathBuf,
    github: GitHubStandIn,
    config: Config,
    server: Option<RunningServer>,
    client: reqwest::Client,
    deliveries: u32,
}

fn commit_all(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The server's configuration: `acme/config` fetched through git, tracking
/// `acme/widget` (two branches) and `acme/gadget`, with GitHub at the
/// stand-in and `register-webhooks: true`.
fn config(
    dir: &Path,
    github: &GitHubStandIn,
    secret: Option<&str>,
    public: Option<&str>,
) -> Config {
    let mut yaml = format!(
        "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: acme/config\n\
         git-base-url: file://{git}\ngithub-api-url: {api}\ngithub-token: {TOKEN}\n\
         register-webhooks: true\n",
        data = dir.join("data").display(),
        git = dir.join("git").display(),
        api = github.url(),
    );
    if let Some(secret) = secret {
        yaml.push_str(&format!("webhook-secret: {secret}\n"));
    }
    if let Some(public) = public {
        yaml.push_str(&format!("public-host: {public}\n"));
    }
    Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap()
}

impl Setup {
    /// The repositories and the stand-in, no server yet. The stand-in knows
    /// every repository.
    async fn new(secret: Option<&str>, public: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config_repo = dir.path().join("git/acme/config");
        for path in [
            "acme/widget/master.yaml",
            "acme/widget/dev.yaml",
            "acme/gadget/master.yaml",
        ] {
            let file = config_repo.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, WIDGET).unwrap();
        }
        git(&config_repo, &["init", "-q", "-b", "main"]);
        commit_all(&config_repo, "track widget and gadget");
        let github = GitHubStandIn::start(TOKEN).await;
        for repository in ["acme/widget", "acme/gadget", "acme/config"] {
            github.add_repository(repository);
        }
        let config = config(dir.path(), &github, secret, public);
        Setup {
            dir,
            config_repo,
            github,
            config,
            server: None,
            client: reqwest::Client::new(),
            deliveries: 0,
        }
    }

    /// Starts (or restarts) the server on `self.config`: its start-up load
    /// runs before this returns.
    async fn start(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let server = zos_build_server::start_without_builds(self.config.clone())
            .await
            .unwrap();
        self.server = Some(server);
    }

    fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("a server runs")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server().address)
    }

    async fn get(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Commits a change to the configuration and pushes it to the
    /// monitor-update endpoint, signed with `SECRET`.
    async fn push_configuration(&mut self) {
        std::fs::write(
            self.config_repo.join("README"),
            format!("change {}", self.deliveries),
        )
        .unwrap();
        let commit = commit_all(&self.config_repo, "a change");
        self.deliveries += 1;
        let body = json!({
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {"full_name": "acme/config"},
            "head_commit": {"id": commit},
            "commits": [],
        })
        .to_string()
        .into_bytes();
        let response = self
            .client
            .post(self.url("/hook/monitor-update"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("hooks-{}", self.deliveries))
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }

    /// Waits until there are `n` finished reloads; returns the newest and
    /// its log.
    async fn reload_number(&self, n: usize) -> (BuildRecord, String) {
        let start = Instant::now();
        loop {
            let reloads = self
                .server()
                .state
                .history
                .recent(Some(RELOADER_NAME), 100)
                .await
                .unwrap();
            if reloads.len() >= n && reloads[0].status.is_finished() {
                let log = self.get(&format!("/report/{}", reloads[0].id)).await;
                return (reloads[0].clone(), log);
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{reloads:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The requests the stand-in received about hooks (not the commit
    /// statuses the reloads also send).
    fn hook_requests(&self) -> Vec<(String, String, Option<String>, Value)> {
        self.github
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/hooks"))
            .map(|r| (r.method, r.path, r.query, r.body))
            .collect()
    }

    /// The hook requests that change something (anything but GET).
    fn hook_writes(&self) -> Vec<(String, String)> {
        self.hook_requests()
            .into_iter()
            .filter(|(method, ..)| method != "GET")
            .map(|(method, path, ..)| (method, path))
            .collect()
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

/// The one hook of `repository`, checked to be ours and right.
fn assert_our_hook(hooks: &[Hook], url: &str, secret: &str) {
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook.config.url, url);
    assert_eq!(hook.config.content_type, "json");
    assert_eq!(hook.config.secret.as_deref(), Some(secret));
    assert_eq!(hook.config.insecure_ssl, "0");
    assert_eq!(hook.events, ["push"]);
    assert!(hook.active);
}

#[tokio::test]
async fn every_tracked_repository_gets_our_hook_and_a_second_load_changes_nothing() {
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    s.start().await;
    let (first, log) = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}\n{log}");
    assert_our_hook(&s.github.hooks("acme/widget"), PUSH_URL, SECRET);
    assert_our_hook(&s.github.hooks("acme/gadget"), PUSH_URL, SECRET);
    assert_our_hook(&s.github.hooks("acme/config"), MONITOR_URL, SECRET);
    for (repository, url) in [
        ("acme/config", MONITOR_URL),
        ("acme/gadget", PUSH_URL),
        ("acme/widget", PUSH_URL),
    ] {
        let id = s.github.hooks(repository)[0].id;
        let line = format!("[zos-build] webhook of {repository}: registered (hook {id}, {url})");
        assert!(log.contains(&line), "{line:?} not in\n{log}");
    }
    // One line per repository (widget's two branches make one), sorted.
    assert_eq!(log.matches("webhook of acme/widget:").count(), 1, "{log}");
    let config_at = log.find("webhook of acme/config").unwrap();
    let widget_at = log.find("webhook of acme/widget").unwrap();
    assert!(config_at < widget_at, "{log}");

    // Listed 100 at a time, then created.
    let requests = s.hook_requests();
    let lists: Vec<_> = requests.iter().filter(|r| r.0 == "GET").collect();
    assert_eq!(lists.len(), 3, "{requests:?}");
    assert!(lists
        .iter()
        .all(|r| r.2.as_deref() == Some("per_page=100&page=1")));
    let posts: Vec<_> = requests.iter().filter(|r| r.0 == "POST").collect();
    assert_eq!(posts.len(), 3, "{requests:?}");
    assert_eq!(posts[0].1, "/repos/acme/config/hooks");
    assert_eq!(
        posts[0].3,
        json!({
            "name": "web",
            "active": true,
            "events": ["push"],
            "config": {"url": MONITOR_URL, "content_type": "json", "insecure_ssl": "0", "secret": SECRET},
        })
    );
    let writes = s.hook_writes().len();
    let before: Vec<Vec<Hook>> = ["acme/widget", "acme/gadget", "acme/config"]
        .iter()
        .map(|r| s.github.hooks(r))
        .collect();

    // A reload by a push: nothing is written, every hook is unchanged.
    s.push_configuration().await;
    let (second, log) = s.reload_number(2).await;
    assert_eq!(second.status, BuildStatus::Success, "{second:?}\n{log}");
    assert_eq!(s.hook_writes().len(), writes, "{:?}", s.hook_writes());
    assert_eq!(log.matches(": unchanged (hook ").count(), 3, "{log}");
    assert!(log.contains("webhook of acme/gadget: unchanged"), "{log}");

    // A restart: the same.
    s.start().await;
    let (third, log) = s.reload_number(3).await;
    assert_eq!(third.status, BuildStatus::Success, "{third:?}");
    assert_eq!(s.hook_writes().len(), writes, "{:?}", s.hook_writes());
    assert_eq!(log.matches(": unchanged (hook ").count(), 3, "{log}");
    let after: Vec<Vec<Hook>> = ["acme/widget", "acme/gadget", "acme/config"]
        .iter()
        .map(|r| s.github.hooks(r))
        .collect();
    assert_eq!(before, after);
    s.stop().await;
}

#[tokio::test]
async fn a_stale_hook_of_ours_is_updated_and_other_hooks_are_never_touched() {
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    let gh = &s.github;
    // Ours, on an old path: updated. Ours too, newer: left alone.
    let stale = gh.insert_hook(
        "acme/widget",
        &format!("{PUBLIC}/old/path"),
        &["push"],
        "json",
    );
    let second = gh.insert_hook(
        "acme/widget",
        &format!("{PUBLIC}/hook/older"),
        &["push"],
        "json",
    );
    // Foreign: another host, another scheme, another port.
    let foreign = [
        gh.insert_hook(
            "acme/widget",
            "https://ci.example.com/hook",
            &["push"],
            "form",
        ),
        gh.insert_hook(
            "acme/gadget",
            "http://builds.example.org/hook/monitor-watch",
            &["push"],
            "json",
        ),
        gh.insert_hook(
            "acme/gadget",
            "https://builds.example.org:8443/hook/monitor-watch",
            &["push"],
            "json",
        ),
        gh.insert_hook(
            "acme/config",
            "https://builds.example.org.evil.example/hook/monitor-update",
            &["push"],
            "json",
        ),
    ];
    // Ours at the right URL, with the wrong events and content type.
    let events = gh.insert_hook("acme/gadget", PUSH_URL, &["pull_request"], "form");
    let untouched = |s: &Setup| -> Vec<Hook> {
        ["acme/widget", "acme/gadget", "acme/config"]
            .iter()
            .flat_map(|r| s.github.hooks(r))
            .filter(|h| foreign.contains(&h.id) || h.id == second)
            .collect()
    };
    let before = untouched(&s);
    assert_eq!(before.len(), 5);

    s.start().await;
    let (first, log) = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}\n{log}");
    let widget = s.github.hooks("acme/widget");
    let hook = widget.iter().find(|h| h.id == stale).unwrap();
    assert_our_hook(std::slice::from_ref(hook), PUSH_URL, SECRET);
    let gadget = s.github.hooks("acme/gadget");
    let hook = gadget.iter().find(|h| h.id == events).unwrap();
    assert_our_hook(std::slice::from_ref(hook), PUSH_URL, SECRET);
    assert_eq!(
        untouched(&s),
        before,
        "foreign hooks and the second one of ours stay as they were"
    );
    assert_eq!(gadget.len(), 3, "nothing was created beside the stale hook");
    assert_eq!(widget.len(), 3);
    // The configuration repository had only a foreign hook: one of ours is created.
    let config_hooks = s.github.hooks("acme/config");
    assert_eq!(config_hooks.len(), 2);
    assert_our_hook(&config_hooks[1..], MONITOR_URL, SECRET);

    let line = format!(
        "webhook of acme/widget: updated (hook {stale}, {PUSH_URL}: url, secret); other hooks of ours left alone: {second}"
    );
    assert!(log.contains(&line), "{line:?} not in\n{log}");
    let line = format!(
        "webhook of acme/gadget: updated (hook {events}, {PUSH_URL}: events, content type, secret)"
    );
    assert!(log.contains(&line), "{line:?} not in\n{log}");
    assert!(log.contains("webhook of acme/config: registered"), "{log}");

    // Only our two stale hooks were patched, each with the whole config
    // (GitHub replaces it), nothing was deleted.
    let writes = s.hook_writes();
    let mut patched: Vec<_> = writes
        .iter()
        .filter(|(m, _)| m == "PATCH")
        .map(|(_, p)| p.clone())
        .collect();
    patched.sort();
    let mut expected = vec![
        format!("/repos/acme/widget/hooks/{stale}"),
        format!("/repos/acme/gadget/hooks/{events}"),
    ];
    expected.sort();
    assert_eq!(patched, expected);
    assert!(
        writes.iter().all(|(m, _)| m == "PATCH" || m == "POST"),
        "{writes:?}"
    );
    let patch = s
        .hook_requests()
        .into_iter()
        .find(|r| r.0 == "PATCH")
        .unwrap();
    assert_eq!(
        patch.3,
        json!({
            "active": true,
            "events": ["push"],
            "config": {"url": PUSH_URL, "content_type": "json", "insecure_ssl": "0", "secret": SECRET},
        })
    );

    // Again: nothing to do.
    let count = writes.len();
    s.start().await;
    let (_, log) = s.reload_number(2).await;
    assert_eq!(s.hook_writes().len(), count, "{:?}", s.hook_writes());
    let line = format!("webhook of acme/widget: unchanged (hook {stale}, {PUSH_URL}); other hooks of ours left alone: {second}");
    assert!(log.contains(&line), "{line:?} not in\n{log}");
    assert_eq!(untouched(&s), before);
    s.stop().await;
}

#[tokio::test]
async fn without_a_webhook_secret_or_a_public_host_nothing_is_registered() {
    for (secret, public, reason) in [
        (None, Some(PUBLIC), "no webhook-secret is set"),
        (Some(SECRET), None, "no public-host is set"),
    ] {
        let mut s = Setup::new(secret, public).await;
        s.start().await;
        let (first, log) = s.reload_number(1).await;
        assert_eq!(first.status, BuildStatus::Success, "{first:?}\n{log}");
        for repository in ["acme/config", "acme/gadget", "acme/widget"] {
            let line = format!("[zos-build] webhook of {repository}: failed: {reason}");
            assert!(log.contains(&line), "{line:?} not in\n{log}");
            assert!(s.github.hooks(repository).is_empty());
        }
        assert!(s.hook_requests().is_empty(), "{:?}", s.hook_requests());
        s.stop().await;
    }
}

#[tokio::test]
async fn a_github_failure_is_a_line_of_the_log_and_the_next_load_tries_again() {
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    // The first call of the start-up load is rate-limited: the round stops
    // there, and the load still succeeds.
    s.github.rate_limit_next(1, 60);
    s.start().await;
    let (first, log) = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}\n{log}");
    assert!(
        log.contains("webhook of acme/config: failed: GitHub's rate limit (HTTP 429): wait 60s"),
        "{log}"
    );
    for repository in ["acme/gadget", "acme/widget"] {
        let line = format!("webhook of {repository}: failed: not tried: GitHub's rate limit");
        assert!(log.contains(&line), "{line:?} not in\n{log}");
    }
    assert_eq!(s.hook_requests().len(), 1, "one call, then nothing");

    // The next load registers every hook.
    s.push_configuration().await;
    let (_, log) = s.reload_number(2).await;
    assert_eq!(log.matches(": registered (hook ").count(), 3, "{log}");
    assert_our_hook(&s.github.hooks("acme/widget"), PUSH_URL, SECRET);

    // A repository the token cannot administer: its own failure, with what
    // to do; the others go on.
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    let github = GitHubStandIn::start(TOKEN).await;
    github.add_repository("acme/widget");
    github.add_repository("acme/config");
    s.github = github;
    s.config = config(s.dir.path(), &s.github, Some(SECRET), Some(PUBLIC));
    s.start().await;
    let (first, log) = s.reload_number(1).await;
    assert_eq!(first.status, BuildStatus::Success, "{first:?}\n{log}");
    assert!(
        log.contains("webhook of acme/gadget: failed: GitHub knows no repos/acme/gadget/hooks for this token (HTTP 404): the token needs admin rights on the repository"),
        "{log}"
    );
    assert!(log.contains("webhook of acme/widget: registered"), "{log}");
    assert!(log.contains("webhook of acme/config: registered"), "{log}");
    s.stop().await;
}

#[tokio::test]
async fn a_new_webhook_secret_updates_every_hook_once() {
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    s.start().await;
    s.reload_number(1).await;
    let writes = s.hook_writes().len();
    assert_eq!(writes, 3);

    let rotated = "rotated-secret-77";
    s.config = config(s.dir.path(), &s.github, Some(rotated), Some(PUBLIC));
    s.start().await;
    let (_, log) = s.reload_number(2).await;
    assert_eq!(log.matches(": secret)").count(), 3, "{log}");
    let new_writes = &s.hook_writes()[writes..];
    assert_eq!(new_writes.len(), 3, "{new_writes:?}");
    assert!(
        new_writes.iter().all(|(m, _)| m == "PATCH"),
        "{new_writes:?}"
    );
    assert_our_hook(&s.github.hooks("acme/widget"), PUSH_URL, rotated);
    assert_our_hook(&s.github.hooks("acme/config"), MONITOR_URL, rotated);

    // What the data directory remembers is no secret.
    let state =
        std::fs::read_to_string(s.config.data_directory.join("github-webhooks.json")).unwrap();
    assert!(
        !state.contains(rotated) && !state.contains(SECRET),
        "{state}"
    );

    s.start().await;
    let (_, log) = s.reload_number(3).await;
    assert_eq!(s.hook_writes().len(), writes + 3);
    assert_eq!(log.matches(": unchanged (hook ").count(), 3, "{log}");
    s.stop().await;
}

#[tokio::test]
async fn the_token_and_the_secret_appear_in_no_log_and_no_answer() {
    let mut s = Setup::new(Some(SECRET), Some(PUBLIC)).await;
    // A branch file that names both: the load's warnings quote them.
    std::fs::write(
        s.config_repo.join("acme/widget/master.yaml"),
        format!("{WIDGET}  {TOKEN}: 1\n  {SECRET}: 2\n"),
    )
    .unwrap();
    commit_all(&s.config_repo, "secrets in keys");
    // And a failure whose answer GitHub writes.
    s.github.fail_next(1, 502);
    s.start().await;
    let (first, log) = s.reload_number(1).await;
    assert!(log.contains("unknown key '***'"), "{log}");
    assert!(
        log.contains("webhook of acme/config: failed: GitHub is unavailable: HTTP 502"),
        "{log}"
    );
    s.push_configuration().await;
    let (second, log) = s.reload_number(2).await;
    assert!(log.contains("registered"), "{log}");

    let mut answers = vec![log];
    for path in [
        format!("/report/{}", first.id),
        format!("/api/builds/{}", first.id),
        format!("/api/builds/{}/log", second.id),
        "/api/builds".to_string(),
        "/build/history/full".to_string(),
        "/build/status".to_string(),
        "/metrics".to_string(),
    ] {
        answers.push(s.get(&path).await);
    }
    for entry in std::fs::read_dir(&s.config.logs_directory).unwrap() {
        answers.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(answers.len() >= 10);
    for answer in &answers {
        assert!(!answer.contains(TOKEN), "the token shows in {answer}");
        assert!(!answer.contains(SECRET), "the secret shows in {answer}");
    }
    s.stop().await;
}
