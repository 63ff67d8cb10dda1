//! The publishers against what they publish to: a Zero-OS Hub stand-in and
//! a real directory.
//!
//! The hub cannot be reached from here, so it is the one stand-in:
//! `zos_build_testkit::hub`, a small HTTP server on the loopback that speaks
//! the hub's API as threefoldtech/0-hub's `src/flist-uploader.py` does (the
//! `bearer` token, the `active-user` cookie, the multipart upload whose field
//! `file` becomes `<name>.flist`, the link call, and its `{"status": …}`
//! answers) and records every request it receives. It can be told to fail
//! the next calls with a 500 crash page, to answer the hub's own error, to
//! keep a request waiting, or to hold an upload back, so that the retry
//! rules are tested against a server and not against mocks. Everything else
//! (files, symlinks) is real.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zos_build_core::{
    link_name, BinaryPublisher, HubPublisher, PublishError, PublishRequest, Publisher, RetryPolicy,
};
use zos_build_testkit::hub::{HubStandIn, TOKEN_USER};

/// The token the stand-in accepts, with the dots of a JWT.
const TOKEN: &str = "eyJhbGciOi.eyJ1c2VyIjoiYm90Iiwic2VjcmV0IjoieCJ9.s1gnatur3-S3CRET";
/// The account the publishers act for (the `active-user` cookie).
const MEMBER_OF: &str = "acme";

const ARTIFACT: &str = "acme-widget-master-0123456789.tar.gz";
const FLIST: &str = "acme-widget-master-0123456789.flist";
const LINK: &str = "acme-widget-master.flist";

/// A publisher of `hub` acting for `acme`, retrying quickly.
fn publisher(hub: &HubStandIn, attempts: u32) -> HubPublisher {
    HubPublisher::builder(hub.url(), TOKEN)
        .username(Some(MEMBER_OF.into()))
        .retry(RetryPolicy::new(attempts, Duration::from_millis(5)))
        .build()
        .unwrap()
}

/// An artifact whose bytes include every byte value and multipart-looking
/// lines, large enough to go out in several chunks.
fn write_artifact(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut bytes = Vec::new();
    for round in 0..2000u32 {
        bytes.extend((0..=255u8).map(|b| b.wrapping_add(round as u8)));
        bytes.extend_from_slice(b"\r\n--not-the-boundary\r\n\r\n");
    }
    let path = dir.join("archive.tar.gz");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn an_upload_carries_the_artifact_and_the_token_then_the_link_moves() {
    let hub = HubStandIn::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bytes) = write_artifact(dir.path());
    let publisher: Arc<dyn Publisher> = Arc::new(publisher(&hub, 3));
    let link = link_name("acme/widget", None, "master");
    assert_eq!(link, LINK);

    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(&link);
    let published = publisher.publish(&request).await.unwrap();

    let requests = hub.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let (upload, link_call) = (&requests[0], &requests[1]);
    assert_eq!(
        (upload.method.as_str(), upload.path.as_str()),
        ("POST", "/api/flist/me/upload")
    );
    assert_eq!(upload.parts.len(), 1);
    let part = &upload.parts[0];
    assert_eq!(part.field, "file");
    assert_eq!(part.file_name.as_deref(), Some(ARTIFACT));
    assert!(part.bytes == bytes, "the artifact's bytes, whole");
    assert_eq!(
        (link_call.method.as_str(), link_call.path.as_str()),
        ("GET", format!("/api/flist/me/{FLIST}/link/{LINK}").as_str())
    );
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("bearer {TOKEN}").as_str())
        );
        assert_eq!(request.cookie.as_deref(), Some("active-user=acme"));
    }
    assert!(hub.flists().get(&(MEMBER_OF.into(), FLIST.into())) == Some(&bytes));
    assert_eq!(hub.link_target(MEMBER_OF, LINK).as_deref(), Some(FLIST));

    assert_eq!(published.name, FLIST);
    assert_eq!(published.location, format!("{}/acme/{FLIST}", hub.url()));
    let moved = published.link.expect("the link moved");
    assert_eq!((moved.name.as_str(), moved.target.as_str()), (LINK, FLIST));
    assert_eq!(moved.location, format!("{}/acme/{LINK}", hub.url()));
}

#[tokio::test]
async fn without_a_username_the_tokens_own_account_is_used() {
    let hub = HubStandIn::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(hub.url(), TOKEN).build().unwrap();
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let published = publisher.publish(&request).await.unwrap();
    assert!(hub.requests().iter().all(|r| r.cookie.is_none()));
    assert_eq!(hub.link_target(TOKEN_USER, LINK).as_deref(), Some(FLIST));
    assert_eq!(
        published.location,
        format!("{}/api/flist/me/{FLIST}", hub.url())
    );
}

#[tokio::test]
async fn a_crashing_hub_is_tried_again_until_it_succeeds() {
    let hub = HubStandIn::start(TOKEN).await;
    hub.fail_uploads(2);
    hub.fail_links(1);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bytes) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let published = publisher(&hub, 3).publish(&request).await.unwrap();
    assert_eq!(published.name, FLIST);

    let calls: Vec<_> = hub
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.parts.len()))
        .collect();
    let upload = ("POST".to_string(), 1);
    let link = ("GET".to_string(), 0);
    assert_eq!(
        calls,
        [upload.clone(), upload.clone(), upload, link.clone(), link],
        "three uploads (two crashed), two link calls (one crashed)"
    );
    for request in hub.requests().iter().filter(|r| r.method == "POST") {
        assert!(
            request.parts[0].bytes == bytes,
            "every attempt sends the whole file"
        );
    }
    assert_eq!(hub.link_target(MEMBER_OF, LINK).as_deref(), Some(FLIST));
}

#[tokio::test]
async fn retries_are_bounded() {
    let hub = HubStandIn::start(TOKEN).await;
    hub.fail_uploads(100);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let err = publisher(&hub, 3).publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubUnavailable { attempts: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(
        text.contains(&format!("{}/api/flist/me/upload", hub.url())),
        "{text}"
    );
    assert_eq!(hub.requests().len(), 3, "three uploads, no link call");
}

#[tokio::test]
async fn a_hub_that_keeps_a_request_waiting_is_tried_again() {
    let hub = HubStandIn::start(TOKEN).await;
    hub.stall(1);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(hub.url(), TOKEN)
        .retry(RetryPolicy::new(2, Duration::from_millis(5)))
        .upload_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, ARTIFACT))
        .await
        .unwrap();
    assert_eq!(published.name, FLIST);
    let methods: Vec<_> = hub.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        ["POST", "POST"],
        "the waiting upload was made again"
    );
}

#[tokio::test]
async fn a_hub_error_fails_at_once_with_the_hubs_message() {
    let hub = HubStandIn::start(TOKEN).await;
    let message = "unauthorized upload, contents is not fully present on backend";
    hub.refuse_with(500, message);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let err = publisher(&hub, 5).publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubRefused { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(message), "{err}");
    assert_eq!(hub.requests().len(), 1, "not retried, no link call");

    // The hub's own refusal of a token: a 4xx, not retried either.
    hub.accept();
    let stranger = HubPublisher::builder(hub.url(), "not.the.token")
        .retry(RetryPolicy::new(5, Duration::from_millis(5)))
        .build()
        .unwrap();
    let err = stranger.publish(&request).await.unwrap_err();
    assert!(
        matches!(err, PublishError::HubRefused { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("invalid token"), "{err}");
    assert_eq!(hub.requests().len(), 2);

    // A link the hub refuses fails the publication after the upload.
    hub.insert_flist(MEMBER_OF, LINK, Vec::new());
    let err = publisher(&hub, 5).publish(&request).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("link destination is already a file"),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_appears_in_no_error_nor_debug_output() {
    let hub = HubStandIn::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let request = PublishRequest::new(&artifact, ARTIFACT).with_link(LINK);
    let publisher = publisher(&hub, 2);
    let secret = "S3CRET";
    assert!(TOKEN.contains(secret));
    let mut shown = vec![format!("{publisher:?}")];

    // A hub that echoes the token in its message.
    hub.refuse_with(403, &format!("token {TOKEN} is not allowed here"));
    let err = publisher.publish(&request).await.unwrap_err();
    assert!(
        err.to_string().contains("token *** is not allowed"),
        "{err}"
    );
    shown.extend([err.to_string(), format!("{err:?}")]);

    // Retries spent on crashes.
    hub.accept();
    hub.fail_uploads(10);
    let err = publisher.publish(&request).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);

    // An unreachable hub.
    let closed = closed_port().await;
    let unreachable = HubPublisher::builder(format!("http://127.0.0.1:{closed}"), TOKEN)
        .retry(RetryPolicy::new(1, Duration::ZERO))
        .build()
        .unwrap();
    shown.push(format!("{unreachable:?}"));
    let err = unreachable.publish(&request).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);

    for text in &shown {
        assert!(!text.contains(secret), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn publishing_without_the_link_makes_no_link_call() {
    let hub = HubStandIn::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let published = publisher(&hub, 3)
        .publish(&PublishRequest::new(&artifact, ARTIFACT))
        .await
        .unwrap();
    assert_eq!(published.name, FLIST);
    assert_eq!(published.link, None);
    let requests = hub.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].path, "/api/flist/me/upload");
    assert!(hub.links().is_empty());
}

#[tokio::test]
async fn an_older_upload_held_back_finishes_after_a_newer_publication() {
    let hub = HubStandIn::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bytes) = write_artifact(dir.path());
    let older = "acme-widget-master-0000000000.tar.gz";
    let older_flist = "acme-widget-master-0000000000.flist";
    let publisher = Arc::new(publisher(&hub, 3));

    // The older build's upload reaches the hub and waits there.
    let hold = hub.hold_uploads_matching("-0000000000.");
    let slow = tokio::spawn({
        let (publisher, artifact) = (publisher.clone(), artifact.clone());
        async move {
            publisher
                .publish(&PublishRequest::new(&artifact, older))
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(30), hold.until_held(1))
        .await
        .expect("the older upload reached the hub");

    // The newer build publishes and moves the link meanwhile.
    let published = publisher
        .publish(&PublishRequest::new(&artifact, ARTIFACT).with_link(LINK))
        .await
        .unwrap();
    assert_eq!(published.name, FLIST);
    assert!(!slow.is_finished(), "the older upload is still held");
    assert!(!hub
        .flists()
        .contains_key(&(MEMBER_OF.into(), older_flist.into())));
    assert_eq!(hub.link_target(MEMBER_OF, LINK).as_deref(), Some(FLIST));

    // Released, the older one completes last, and leaves the link alone.
    hold.release();
    let late = tokio::time::timeout(Duration::from_secs(30), slow)
        .await
        .expect("the released upload was answered")
        .unwrap()
        .unwrap();
    assert_eq!((late.name.as_str(), late.link), (older_flist, None));
    assert!(hub.flists().get(&(MEMBER_OF.into(), older_flist.into())) == Some(&bytes));
    assert_eq!(hub.link_target(MEMBER_OF, LINK).as_deref(), Some(FLIST));
    let calls: Vec<_> = hub
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.upload_file_name().map(str::to_string)))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_string(), Some(older.to_string())),
            ("POST".to_string(), Some(ARTIFACT.to_string())),
            ("GET".to_string(), None),
        ],
        "one upload each, the newer one's link call, nothing retried"
    );
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_hub_fails_after_the_bounded_retries_naming_its_url() {
    let port = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = write_artifact(dir.path());
    let publisher = HubPublisher::builder(format!("http://127.0.0.1:{port}"), TOKEN)
        .retry(RetryPolicy::new(3, Duration::from_millis(5)))
        .build()
        .unwrap();
    let err = publisher
        .publish(&PublishRequest::new(&artifact, ARTIFACT).with_link(LINK))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::HubUnavailable { attempts: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/api/flist/me/upload")),
        "{text}"
    );
    assert!(text.contains("3 attempt"), "{text}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_directory_link_moves_forward_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("binaries");
    let artifact = dir.path().join("out");
    let publisher: Arc<dyn Publisher> = Arc::new(BinaryPublisher::new(&bin));
    let link = link_name("acme/widget", Some("cli"), "release/v1");
    assert_eq!(link, "acme-widget-cli-release-v1.flist");
    let first = "acme-widget-cli-release-v1-1111111111.tar.gz";
    let second = "acme-widget-cli-release-v1-2222222222.tar.gz";
    let older = "acme-widget-cli-release-v1-0000000000.tar.gz";

    std::fs::write(&artifact, b"first build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, first).with_link(&link))
        .await
        .unwrap();
    assert_eq!(published.location, bin.join(first).display().to_string());
    let link_path = bin.join(&link);
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(first));
    assert_eq!(std::fs::read(&link_path).unwrap(), b"first build");
    assert_eq!(
        std::fs::canonicalize(&link_path).unwrap(),
        std::fs::canonicalize(bin.join(first)).unwrap()
    );

    // A newer build moves the link.
    std::fs::write(&artifact, b"second build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, second).with_link(&link))
        .await
        .unwrap();
    assert_eq!(
        published.link.map(|l| (l.name, l.target)),
        Some((link.clone(), second.to_string()))
    );
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(second));
    assert_eq!(std::fs::read(&link_path).unwrap(), b"second build");

    // An older build finishing later publishes its file, not the link.
    std::fs::write(&artifact, b"older build").unwrap();
    let published = publisher
        .publish(&PublishRequest::new(&artifact, older))
        .await
        .unwrap();
    assert_eq!(published.link, None);
    assert_eq!(std::fs::read(bin.join(older)).unwrap(), b"older build");
    assert_eq!(std::fs::read_link(&link_path).unwrap(), Path::new(second));

    // The directory survives a move: the link is relative.
    let moved = dir.path().join("moved");
    std::fs::rename(&bin, &moved).unwrap();
    assert_eq!(std::fs::read(moved.join(&link)).unwrap(), b"second build");
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_directory_refuses_a_symlinked_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("binaries");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"not a build's").unwrap();
    let artifact = dir.path().join("out");
    std::os::unix::fs::symlink(&secret, &artifact).unwrap();
    let err = BinaryPublisher::new(&bin)
        .publish(
            &PublishRequest::new(&artifact, "a-b-m-1111111111.tar.gz").with_link("a-b-m.flist"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::NotRegular(_)), "{err}");
    assert!(!bin.join("a-b-m-1111111111.tar.gz").exists());
    assert!(std::fs::symlink_metadata(bin.join("a-b-m.flist")).is_err());
}
