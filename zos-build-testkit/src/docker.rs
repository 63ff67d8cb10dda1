//! Shared helpers of the Docker integration tests: a real daemon, and a tiny
//! image made from the host's static busybox (nothing can be pulled here).
//!
//! Formerly `zos-build-core/tests/common/mod.rs`; the server's tests reach it
//! as `support::common` too.

use bollard::query_parameters::{CreateImageOptions, ListContainersOptions};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::OnceCell;
use zos_build_core::docker::LABEL_BUILD_ID;
use zos_build_core::DockerExecutor;

/// The test image; the name can never be mistaken for a real one.
pub const IMAGE: &str = "zos-build-test/busybox:latest";
/// The test image with a `bash` (a wrapper of busybox's `sh`): the kernel
/// pipeline runs `bash <script> …`, as the old service did.
pub const KERNEL_IMAGE: &str = "zos-build-test/kernel-base:latest";

static KERNEL_IMAGE_READY: OnceCell<()> = OnceCell::const_new();

/// An executor connected to the local daemon, with [`KERNEL_IMAGE`] (and
/// [`IMAGE`]) present.
pub async fn kernel_executor() -> DockerExecutor {
    let executor = executor().await;
    KERNEL_IMAGE_READY
        .get_or_init(|| async { import(&executor, KERNEL_IMAGE, true).await })
        .await;
    executor
}

static IMAGE_READY: OnceCell<()> = OnceCell::const_new();

/// An executor connected to the local daemon, with the test image present.
pub async fn executor() -> DockerExecutor {
    let executor = DockerExecutor::connect()
        .await
        .expect("the Docker daemon must run for these tests (scripts/test.sh starts it)");
    IMAGE_READY
        .get_or_init(|| async { import_busybox(&executor).await })
        .await;
    executor
}

/// A build id no other test uses.
pub fn build_id(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails when any container of `build_id` still exists.
pub async fn assert_no_container(executor: &DockerExecutor, build_id: &str) {
    let left = containers_of(executor, build_id).await;
    assert!(
        left.is_empty(),
        "containers left behind by {build_id}: {left:?}"
    );
}

/// Ids of the containers labelled with `build_id`, running or not.
pub async fn containers_of(executor: &DockerExecutor, build_id: &str) -> Vec<String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_BUILD_ID}={build_id}")],
    )]);
    executor
        .docker()
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn import_busybox(executor: &DockerExecutor) {
    import(executor, IMAGE, false).await;
}

/// Imports the busybox root filesystem as `image` (`repo:tag`), with a
/// `/bin/bash` wrapper when `bash`.
async fn import(executor: &DockerExecutor, image: &str, bash: bool) {
    let docker = executor.docker();
    if docker.inspect_image(image).await.is_ok() {
        return;
    }
    let rootfs = tokio::task::spawn_blocking(move || busybox_rootfs(bash))
        .await
        .expect("rootfs task");
    let (repo, tag) = image.rsplit_once(':').expect("repo:tag");
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        changes: vec![r#"CMD ["/bin/sh"]"#.into()],
        ..Default::default()
    };
    let mut import =
        docker.create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
    while let Some(item) = import.next().await {
        item.expect("import the busybox test image");
    }
    docker
        .inspect_image(image)
        .await
        .expect("the imported image is there");
}

/// A root filesystem: `/bin/busybox`, one link per applet, `/tmp`, and
/// with `bash` a `/bin/bash` running busybox's `sh`.
fn busybox_rootfs(bash: bool) -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox (Debian busybox-static) is needed for the test image");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    let mut tar = tar::Builder::new(Vec::new());
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "tmp", "etc", "root",
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        header.set_cksum();
        tar.append_data(&mut header, dir, std::io::empty())
            .expect("tar dir");
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o755);
    header.set_size(busybox.len() as u64);
    header.set_cksum();
    tar.append_data(&mut header, "bin/busybox", busybox.as_slice())
        .expect("tar busybox");
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(passwd.len() as u64);
    header.set_cksum();
    tar.append_data(&mut header, "etc/passwd", passwd.as_slice())
        .expect("tar passwd");
    if bash {
        let wrapper = b"#!/bin/sh\nexec /bin/sh \"$@\"\n";
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(wrapper.len() as u64);
        header.set_cksum();
        tar.append_data(&mut header, "bin/bash", wrapper.as_slice())
            .expect("tar bash");
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, applet, "/bin/busybox")
            .expect("tar link");
    }
    tar.into_inner().expect("tar finish")
}
