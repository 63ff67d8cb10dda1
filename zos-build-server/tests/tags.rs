//! Tag pushes: a pushed tag builds the branch file named like it, at the
//! tagged commit, and its artifact carries the tag's name; a tag without a
//! branch file, and a deleted tag, build nothing (see `support`).

use zos_build_testkit::server as support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{git, Harness, DOCKER, REPOSITORY};
use zos_build_core::BuildStatus;

const WIDGET: &str = "#!/bin/sh\nset -e\necho 'widget: building'\n\
mkdir -p /target\nprintf 'widget artifact\\n' > /target/widget.tar.gz\n";

/// The build ids of a `success` answer.
fn builds(status: StatusCode, answer: &Value) -> Vec<String> {
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "success", "{answer}");
    answer["builds"]
        .as_array()
        .unwrap_or_else(|| panic!("no builds in {answer}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_tag_with_a_branch_file_builds_and_its_artifact_carries_the_tag() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    h.add_branch_file("v1.0");
    h.add_branch_file("release/1.0");
    h.restart(true).await;
    let repo = h.repo();
    let on_master = h.commit("#!/bin/sh\necho 'master: not this one'\nexit 1\n");
    // The tagged commits are on no branch: only the tags reach them, so the
    // build fetches a commit no branch advertises.
    git(&repo, &["checkout", "-q", "--detach"]);
    let tagged = h.commit(WIDGET);
    git(&repo, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    git(&repo, &["tag", "release/1.0"]);
    git(&repo, &["checkout", "-q", "master"]);
    let tag_object = git(&repo, &["rev-parse", "v1.0"]);
    assert_ne!(tag_object, tagged, "v1.0 is an annotated tag");
    assert_ne!(on_master, tagged);

    // An annotated tag: `after` is the tag object; the commit is built.
    let (status, answer) = h.push_tag("v1.0", &tag_object, &tagged).await;
    let annotated = builds(status, &answer);
    assert_eq!(annotated.len(), 1, "one build per listed script: {answer}");
    // A lightweight tag with a slash: the whole name is the branch file's.
    let (status, answer) = h.push_tag("release/1.0", &tagged, &tagged).await;
    let nested = builds(status, &answer);
    assert_eq!(nested.len(), 1, "{answer}");

    for (id, tag, name) in [
        (&annotated[0], "v1.0", "acme-widget-v1.0"),
        (&nested[0], "release/1.0", "acme-widget-release-1.0"),
    ] {
        let record = h.finished(id).await;
        let log = h.report(id).await;
        assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");
        assert_eq!(record.branch, tag, "the build's branch is the tag");
        assert_eq!(
            record.commit, tagged,
            "the tagged commit, not the tag object"
        );
        let artifact = format!("{name}-{}.tar.gz", &tagged[..10]);
        assert_eq!(record.artifact.as_deref(), Some(artifact.as_str()));
        let published = h.config.artifacts_directory.join(&artifact);
        assert_eq!(
            std::fs::read_to_string(&published).unwrap(),
            "widget artifact\n",
            "{} holds the script's artifact",
            published.display()
        );
        assert!(log.contains("widget: building"), "{log}");
    }
    // The history names the builds after the tag, as the API lists them.
    let listed: Value = h.get_json("/api/builds?name=acme/widget/v1.0").await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, [annotated[0].as_str()], "{listed}");

    let mut all = annotated;
    all.extend(nested);
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn an_untracked_tag_a_deleted_tag_and_other_refs_build_nothing() {
    // Nothing is built here: the server only records pushes.
    let mut h = Harness::prepare("").await;
    h.add_branch_file("v1.0");
    h.restart(false).await;
    let commit = h.commit(WIDGET);

    // No branch file v2.0: refused as an untracked branch is, naming the tag.
    let (status, answer) = h.push_tag("v2.0", &commit, &commit).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "error", "message": "tag not tracked: v2.0"})
    );
    // The branch answer is the old service's, unchanged.
    let (status, answer) = h
        .send_push(&json!({
            "ref": "refs/heads/v2.0", "after": commit,
            "repository": {"full_name": REPOSITORY}, "head_commit": {"id": commit},
        }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "error", "message": "branch not tracked"})
    );
    // A tag of a repository that is not tracked at all.
    let (status, answer) = h
        .send_push(&json!({
            "ref": "refs/tags/v1.0", "after": commit,
            "repository": {"full_name": "acme/other"}, "head_commit": {"id": commit},
        }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "error", "message": "repository not tracked"})
    );

    // A deleted tag is ignored, as a deleted branch is, even with a branch file.
    let (status, answer) = h.delete_tag("v1.0", &commit).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "ignored", "message": "refs/tags/v1.0 was deleted: nothing to build"})
    );
    // Neither a branch nor a tag.
    let (status, answer) = h
        .send_push(&json!({
            "ref": "refs/pull/7/head", "after": commit,
            "repository": {"full_name": REPOSITORY}, "head_commit": {"id": commit},
        }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "ignored", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("refs/pull/7/head is neither a branch nor a tag"),
        "{answer}"
    );
    // A tag push without head_commit: `after` may be a tag object.
    let (status, answer) = h
        .send_push(&json!({
            "ref": "refs/tags/v1.0", "after": commit,
            "repository": {"full_name": REPOSITORY}, "head_commit": null,
        }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("missing field head_commit.id"),
        "{answer}"
    );

    let recorded: Value = h.get_json("/api/builds").await;
    let pushed: Vec<&Value> = recorded
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["name"] != "Configuration reloader")
        .collect();
    assert!(pushed.is_empty(), "nothing was recorded: {recorded}");

    // The same commit pushed on master and tagged v1.0: two builds, not a
    // replay (a tag is its own branch file); the tag again is a replay.
    let (status, answer) = h
        .send_push(&json!({
            "ref": "refs/heads/master", "after": commit,
            "repository": {"full_name": REPOSITORY}, "head_commit": {"id": commit},
        }))
        .await;
    let master = builds(status, &answer);
    let (status, answer) = h.push_tag("v1.0", &commit, &commit).await;
    let tag = builds(status, &answer);
    assert_eq!(h.record(&master[0]).await.branch, "master");
    let record = h.record(&tag[0]).await;
    assert_eq!(record.branch, "v1.0");
    assert_eq!(record.status, BuildStatus::Queued);
    let (status, answer) = h.push_tag("v1.0", &commit, &commit).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"status": "duplicate"}));
}

#[tokio::test]
async fn a_tag_pushed_on_the_configuration_repository_reloads_nothing() {
    use std::time::{Duration, Instant};
    use zos_build_server::http::signature;
    use zos_build_server::reloader::RELOADER_NAME;

    // A git configuration repository whose old commit is tagged: loading the
    // tag's commit would bring back the old configuration.
    let dir = tempfile::tempdir().unwrap();
    let config_repo = dir.path().join("git/acme/config");
    std::fs::create_dir_all(config_repo.join("acme/widget")).unwrap();
    git(&config_repo, &["init", "-q", "-b", "main"]);
    let file = "buildscripts:\n  - build.sh\nbuild.sh:\n  artifact: widget.tar.gz\n";
    std::fs::write(config_repo.join("acme/widget/master.yaml"), file).unwrap();
    git(&config_repo, &["add", "-A"]);
    git(&config_repo, &["commit", "-q", "-m", "master"]);
    let old = git(&config_repo, &["rev-parse", "HEAD"]);
    git(&config_repo, &["tag", "-a", "old", "-m", "old"]);
    std::fs::write(config_repo.join("acme/widget/v1.0.yaml"), file).unwrap();
    git(&config_repo, &["add", "-A"]);
    git(&config_repo, &["commit", "-q", "-m", "v1.0"]);
    let yaml = format!(
        "data-directory: {data}\nhttp-port: 0\nconfiguration-repository: acme/config\n\
         webhook-secret: {secret}\ngit-base-url: file://{git}\n",
        data = dir.path().join("data").display(),
        secret = support::SECRET,
        git = dir.path().join("git").display(),
    );
    let config =
        zos_build_server::Config::from_yaml(&yaml, std::path::Path::new("t.yaml")).unwrap();
    let server = zos_build_server::start_without_builds(config)
        .await
        .unwrap();
    let reloads = || async {
        server
            .state
            .history
            .recent(Some(RELOADER_NAME), 100)
            .await
            .unwrap()
    };
    let start = Instant::now();
    while !reloads()
        .await
        .first()
        .is_some_and(|r| r.status.is_finished())
    {
        assert!(start.elapsed() < Duration::from_secs(30), "no first load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tracked = || {
        let catalog = server.state.catalog().unwrap();
        catalog.get("acme/widget", "v1.0").is_some()
    };
    assert!(tracked(), "the default branch's head is loaded");

    let body = json!({
        "ref": "refs/tags/old", "after": git(&config_repo, &["rev-parse", "old"]),
        "repository": {"full_name": "acme/config"}, "head_commit": {"id": old},
    })
    .to_string()
    .into_bytes();
    let response = reqwest::Client::new()
        .post(format!("http://{}/hook/monitor-update", server.address))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "config-tag")
        .header(
            "X-Hub-Signature-256",
            signature::sign(support::SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"status": "ignored", "message":
            "refs/tags/old is not a branch: the configuration is read from the default branch"})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reloads().await.len(), 1, "no second load");
    assert!(tracked(), "the catalog is still the default branch's");
    server.stop().await;
}

#[tokio::test]
async fn a_tag_without_a_commit_builds_the_commit_it_tags_now() {
    use zos_build_core::{Enqueued, RepositoryName};
    use zos_build_server::catalog::RefKind;
    use zos_build_server::state::{Trigger, TriggerError};

    let mut h = Harness::prepare("").await;
    h.add_branch_file("v1.0");
    h.add_branch_file("v1.1");
    h.restart(false).await;
    let repo = h.repo();
    let first = h.commit(WIDGET);
    git(&repo, &["tag", "-a", "v1.0", "-m", "annotated"]);
    let second = h.commit("#!/bin/sh\necho two\n");
    git(&repo, &["tag", "v1.1"]);
    h.commit("#!/bin/sh\necho three\n");

    let repository = RepositoryName::parse(REPOSITORY).unwrap();
    let state = &h.server().state;
    for (tag, expected) in [("v1.0", &first), ("v1.1", &second)] {
        let mut trigger = Trigger::push_of(
            RefKind::Tag,
            repository.clone(),
            tag,
            zos_build_core::CommitId::parse(&first).unwrap(),
            "[]".to_string(),
            None,
        );
        trigger.commit = None;
        let triggered = state.trigger(trigger).await.unwrap();
        assert_eq!(
            triggered.commit.as_str(),
            expected.as_str(),
            "{tag}: the tagged commit, not the tag object nor master's head"
        );
        let Enqueued::Queued(records) = triggered.enqueued else {
            panic!("{tag} was not recorded");
        };
        assert_eq!(records[0].branch, tag);
    }
    // A request of the API names the branch file; no branch v1.0 exists,
    // so the tag of that name is built.
    let request = Trigger::request(repository.clone(), "v1.0", None);
    let triggered = state.trigger(request).await.unwrap();
    assert_eq!(triggered.commit.as_str(), first.as_str());
    let mut missing = Trigger::push_of(
        RefKind::Tag,
        repository,
        "v1.0",
        zos_build_core::CommitId::parse(&first).unwrap(),
        "[]".to_string(),
        None,
    );
    missing.commit = None;
    missing.branch = "v9".to_string();
    match state.trigger(missing).await {
        Err(TriggerError::TagNotTracked(tag)) => assert_eq!(tag, "v9"),
        other => panic!("expected an untracked tag: {other:?}"),
    }
}
