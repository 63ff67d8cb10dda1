//! Publishing for real: signed pushes whose artifacts reach the Zero-OS Hub
//! (a stand-in speaking the hub's contract, the only stand-in) or the
//! binary directory, with links that only move forward. Docker, git and
//! SQLite are real.

use zos_build_testkit::server as support;

use std::time::Duration;
use support::{Harness, DOCKER};
use zos_build_core::{ArtifactKind, BuildStatus};
use zos_build_testkit::hub::HubStandIn;

const TOKEN: &str = "hub-token-3f9a1c-never-in-a-log";

/// A build script whose artifact holds `content`, and which prints the
/// hub's token (as a careless script might): it must be masked.
fn script(content: &str) -> String {
    format!(
        "#!/bin/sh\nset -e\necho 'the token is {TOKEN}'\nmkdir -p /target\n\
         printf '{content}' > /target/widget.tar.gz\necho done\n"
    )
}

async fn with_hub(hub: &HubStandIn) -> Harness {
    Harness::start(&format!(
        "zerohub-website: {}\nzerohub-token: {TOKEN}\nzerohub-username: acme\n",
        hub.url()
    ))
    .await
}

#[tokio::test]
async fn a_push_uploads_the_flist_to_the_hub_and_moves_its_link() {
    let _docker = DOCKER.lock().await;
    let hub = HubStandIn::start(TOKEN).await;
    let mut h = with_hub(&hub).await;
    let commit = h.commit(&script("flist one"));
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    let log = h.report(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");

    let flist = format!("acme-widget-master-{}.flist", &commit[..10]);
    let link = "acme-widget-master.flist";
    let requests = hub.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let upload = &requests[0];
    assert_eq!(
        (upload.method.as_str(), upload.path.as_str()),
        ("POST", "/api/flist/me/upload")
    );
    assert_eq!(
        upload.authorization.as_deref(),
        Some(format!("bearer {TOKEN}").as_str())
    );
    assert_eq!(upload.cookie.as_deref(), Some("active-user=acme"));
    assert_eq!(upload.parts.len(), 1);
    assert_eq!(upload.parts[0].field, "file");
    assert_eq!(
        upload.upload_file_name(),
        Some(format!("acme-widget-master-{}.tar.gz", &commit[..10]).as_str())
    );
    assert_eq!(upload.parts[0].bytes, b"flist one");
    let link_call = &requests[1];
    assert_eq!(
        (link_call.method.as_str(), link_call.path.as_str()),
        ("GET", format!("/api/flist/me/{flist}/link/{link}").as_str())
    );
    assert_eq!(hub.link_target("acme", link), Some(flist.clone()));

    // The history says what went where.
    assert_eq!(record.artifact.as_deref(), Some(flist.as_str()));
    assert_eq!(record.artifact_kind, Some(ArtifactKind::Flist));
    assert_eq!(record.link.as_deref(), Some(link));
    assert_eq!(
        record.artifact_location.as_deref(),
        Some(format!("{}/acme/{flist}", hub.url()).as_str())
    );
    // The token is nowhere in the log, although the script printed it.
    assert!(log.contains("the token is "), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    assert!(
        log.contains(&format!("link {link} now points at {flist}")),
        "{log}"
    );
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_crashing_hub_is_retried_and_a_refusing_hub_fails_the_build_with_its_message() {
    let _docker = DOCKER.lock().await;
    let hub = HubStandIn::start(TOKEN).await;
    let mut h = with_hub(&hub).await;

    hub.fail_uploads(1);
    let commit = h.commit(&script("after a crash"));
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let uploads = hub
        .requests()
        .iter()
        .filter(|r| r.path == "/api/flist/me/upload")
        .count();
    assert_eq!(uploads, 2, "the 500 was tried again");

    hub.refuse_with(500, "this file is not allowed");
    let commit = h.commit(&script("refused"));
    let refused = h.push(&commit).await;
    let record = h.finished(&refused[0]).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    let error = record.error.unwrap();
    assert!(error.contains("this file is not allowed"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
    let log = h.report(&refused[0]).await;
    assert!(log.contains("this file is not allowed"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    // The link still points at the last flist that made it.
    assert_eq!(
        hub.link_target("acme", "acme-widget-master.flist")
            .as_deref(),
        Some(
            format!(
                "acme-widget-master-{}.flist",
                &h.record(&ids[0]).await.commit[..10]
            )
            .as_str()
        )
    );
    let mut all = ids;
    all.extend(refused);
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn an_older_build_that_finishes_last_leaves_the_link_on_the_newer_one() {
    let _docker = DOCKER.lock().await;
    let hub = HubStandIn::start(TOKEN).await;
    let mut h = with_hub(&hub).await;
    let older = h.commit(&script("older"));
    let newer = h.commit(&script("newer"));
    // The older build's upload waits until released.
    let hold = hub.hold_uploads_matching(&older[..10]);
    let first = h.push(&older).await;
    tokio::time::timeout(Duration::from_secs(60), hold.until_held(1))
        .await
        .expect("the older build reaches its upload");
    // The newer push supersedes it, but its container has ended: it is
    // publishing, and publishing is not interrupted.
    let second = h.push(&newer).await;
    let newest = h.finished(&second[0]).await;
    assert_eq!(newest.status, BuildStatus::Success, "{newest:?}");
    let link = "acme-widget-master.flist";
    let newer_flist = format!("acme-widget-master-{}.flist", &newer[..10]);
    assert_eq!(hub.link_target("acme", link), Some(newer_flist.clone()));

    hold.release();
    let oldest = h.finished(&first[0]).await;
    let log = h.report(&first[0]).await;
    assert_eq!(oldest.status, BuildStatus::Success, "{oldest:?}\n{log}");
    assert_eq!(oldest.link, None, "{oldest:?}");
    assert!(
        hub.flists().contains_key(&(
            "acme".into(),
            format!("acme-widget-master-{}.flist", &older[..10])
        )),
        "the older flist is published"
    );
    assert_eq!(hub.link_target("acme", link), Some(newer_flist.clone()));
    assert!(
        log.contains("left alone: a newer push of the branch moved it already"),
        "{log}"
    );
    assert_eq!(newest.link.as_deref(), Some(link));

    // The decision is in the history, so it survives a restart.
    h.restart(true).await;
    let links = h.server().state.history.links().await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].target, newer_flist);
    assert_eq!(links[0].build_id, second[0]);
    let mut all = first;
    all.extend(second);
    h.stop_and_check_clean(&all).await;
}

#[tokio::test]
async fn binary_builds_land_in_the_binary_directory_and_their_link_moves() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    let branch_file = h.dir.path().join("config-repo/acme/widget/master.yaml");
    let text = std::fs::read_to_string(&branch_file).unwrap();
    std::fs::write(&branch_file, format!("{text}  format: binary\n")).unwrap();
    h.restart(true).await;

    let mut ids = Vec::new();
    let mut names = Vec::new();
    for content in ["binary one", "binary two"] {
        let commit = h.commit(&script(content));
        let pushed = h.push(&commit).await;
        let record = h.finished(&pushed[0]).await;
        assert_eq!(record.status, BuildStatus::Success, "{record:?}");
        let name = format!("acme-widget-master-{}.tar.gz", &commit[..10]);
        assert_eq!(record.artifact.as_deref(), Some(name.as_str()));
        assert_eq!(record.artifact_kind, Some(ArtifactKind::Binary));
        assert_eq!(record.link.as_deref(), Some("acme-widget-master.flist"));
        let file = h.config.binary_directory.join(&name);
        assert_eq!(std::fs::read(&file).unwrap(), content.as_bytes());
        let link = h.config.binary_directory.join("acme-widget-master.flist");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::Path::new(&name)
        );
        // Served under /artifacts/, through the link too.
        let body = h
            .client
            .get(h.url("/artifacts/acme-widget-master.flist"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], content.as_bytes());
        ids.extend(pushed);
        names.push(name);
    }
    // Both files stay; the listing shows them and the link.
    let listing: serde_json::Value = h.get_json("/artifacts/").await;
    let files: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in &names {
        assert!(files.contains(&name.as_str()), "{listing}");
    }
    assert_eq!(
        listing["links"],
        serde_json::json!([{"name": "acme-widget-master.flist", "target": names[1]}])
    );
    // Nothing else is reachable through /artifacts/.
    for path in [
        "/artifacts/..%2Fhistory.sqlite3",
        "/artifacts/.hidden",
        "/artifacts/a%2Fb",
    ] {
        let status = h.client.get(h.url(path)).send().await.unwrap().status();
        assert_eq!(status, 404, "{path}");
    }
    h.stop_and_check_clean(&ids).await;
}

#[tokio::test]
async fn a_hub_setting_without_its_token_or_with_a_bad_url_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display();
    for (extra, key) in [
        (
            "zerohub-website: https://hub.example.org\n",
            "zerohub-token",
        ),
        ("zerohub-token: x\n", "zerohub-website"),
        (
            "zerohub-website: ftp://hub\nzerohub-token: x\n",
            "zerohub-website",
        ),
    ] {
        let yaml = format!("data-directory: {data}\n{extra}");
        let err =
            zos_build_server::config::Config::from_yaml(&yaml, std::path::Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
        assert!(err.contains(key), "{extra}: {err}");
        assert!(!err.contains("x\n"), "{err}");
    }
}
