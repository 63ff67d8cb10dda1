//! The kernel pipeline for real: signed pushes to kernel targets build with
//! the real Docker daemon and git. A fake kernel script writes a small file
//! as `/target/vmlinuz.efi`; everything else is what a node's bootstrap and
//! a dependent build would see.

use zos_build_testkit::server as support;

use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions,
};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use support::{common, git, Harness, DOCKER, SECRET};
use zos_build_core::{BuildRecord, BuildStatus, DockerExecutor};
use zos_build_server::http::signature;

/// The fake kernel build: `$1` branch, `$2` repository name, `$3` release.
/// It counts its runs in the cache, leaves a marker in the image, and
/// fails or leaves no kernel when its commit says so.
const KERNEL_SCRIPT: &str = r#"set -e
echo "kernel: branch=$1 repo=$2 release=${3:-no}"
mkdir -p /root/.cache/zos-build
runs=$(cat /root/.cache/zos-build/runs 2>/dev/null || echo 0)
runs=$((runs + 1))
echo $runs > /root/.cache/zos-build/runs
echo "cache: run $runs"
if [ -f /base-marker ]; then echo "base: $(cat /base-marker)"; fi
echo "$2 $1" > /base-marker
[ -f /fail ] && exit 3
[ -f /no-kernel ] && exit 0
mkdir -p /target
printf 'EFI kernel %s %s %s' "$1" "$2" "${3:-}" > /target/vmlinuz.efi
echo "kernel: done"
"#;

struct Kernels {
    h: Harness,
    /// `acme/k<pid>`: committed.
    base: String,
    /// `acme/d<pid>`: starts from `base`'s image.
    dependent: String,
}

impl Kernels {
    async fn start() -> Kernels {
        Kernels::start_with("").await
    }

    /// [`Kernels::start`] with more configuration.
    async fn start_with(more: &str) -> Kernels {
        common::kernel_executor().await;
        // Names no other test (or run) uses: images and volumes are the
        // daemon's, shared by every test.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let (base, dependent) = (format!("acme/k{pid}-{n}"), format!("acme/d{pid}-{n}"));
        let extra = format!(
            "kernel-targets:\n\
             \x20 - {{repository: {base}, script: autobuild/build.sh, baseimage: {image}, commit-image: true}}\n\
             \x20 - {{repository: {dependent}, script: autobuild/build.sh, base-from: {base}}}\n",
            image = common::KERNEL_IMAGE
        ) + more;
        let mut h = Harness::prepare(&extra).await;
        for repository in [&base, &dependent] {
            let repo = h.dir.path().join("git").join(repository);
            std::fs::create_dir_all(repo.join("autobuild")).unwrap();
            git(&repo, &["init", "-q", "-b", "master"]);
        }
        h.restart(true).await;
        let kernels = Kernels { h, base, dependent };
        kernels.remove_images().await;
        kernels
    }

    fn repo(&self, repository: &str) -> PathBuf {
        self.h.dir.path().join("git").join(repository)
    }

    /// Commits the kernel script (and `extra` files) on `branch` of
    /// `repository`; returns the commit.
    fn commit(&self, repository: &str, branch: &str, extra: &[&str]) -> String {
        let repo = self.repo(repository);
        let _ = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["checkout", "-q", "-B", branch])
            .output();
        std::fs::write(repo.join("autobuild/build.sh"), KERNEL_SCRIPT).unwrap();
        for name in ["fail", "no-kernel"] {
            let _ = std::fs::remove_file(repo.join(name));
        }
        let mut script = KERNEL_SCRIPT.to_string();
        for name in extra {
            // The script looks for /fail and /no-kernel in the container.
            script = script.replace(&format!("[ -f /{name} ]"), "true");
        }
        script.push_str(&format!(
            "# {}\n",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(repo.join("autobuild/build.sh"), script).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "kernel"]);
        git(&repo, &["rev-parse", "HEAD"])
    }

    /// Sends a signed push of `commit` as `git_ref` to `path`; returns the
    /// status and the body.
    async fn push(
        &mut self,
        path: &str,
        repository: &str,
        git_ref: &str,
        commit: &str,
        json: bool,
    ) -> (u16, String) {
        let body = serde_json::json!({
            "ref": git_ref,
            "after": commit,
            "deleted": false,
            "repository": {"full_name": repository},
            "head_commit": {"id": commit, "message": "kernel"},
            "commits": [{"id": commit, "message": "kernel"}],
        });
        self.send(path, &body, json).await
    }

    /// Sends `body` as a signed push event to `path`, asking for JSON when
    /// `json`; returns the status and the body.
    async fn send(&mut self, path: &str, body: &Value, json: bool) -> (u16, String) {
        self.h.deliveries += 1;
        let body = body.to_string().into_bytes();
        let mut request = self
            .h
            .client
            .post(self.h.url(path))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("kernel-{}", self.h.deliveries))
            .header(
                "X-Hub-Signature-256",
                signature::sign(SECRET.as_bytes(), &body),
            );
        if json {
            request = request.header("Accept", "application/json");
        }
        let response = request.body(body).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Pushes and returns the one build it started.
    async fn build(&mut self, repository: &str, git_ref: &str, commit: &str) -> BuildRecord {
        let (status, body) = self
            .push("/hook/kernel", repository, git_ref, commit, true)
            .await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "started", "{answer}");
        let id = answer["builds"][0].as_str().unwrap().to_string();
        self.h.finished(&id).await
    }

    fn kernel_directory(&self) -> &Path {
        &self.h.config.kernel_directory
    }

    /// An executor of the server's own instance (its volumes are its own).
    async fn executor(&self) -> DockerExecutor {
        common::kernel_executor()
            .await
            .with_instance(zos_build_server::server::instance_name(
                &self.h.config.data_directory,
            ))
    }

    /// Removes what the test made in Docker, stops the server and checks
    /// that no container of any of its builds is left.
    async fn finish(self) {
        self.remove_images().await;
        let ids: Vec<String> = self
            .h
            .server()
            .state
            .history
            .recent(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        self.h.stop_and_check_clean(&ids).await;
    }

    /// Removes the images of both targets (a previous run's, or this one's).
    async fn remove_images(&self) {
        let executor = self.executor().await;
        for repository in [&self.base, &self.dependent] {
            for tag in ["master", "feature", "v1.0", "fail", "gone"] {
                let _ = executor
                    .docker()
                    .remove_image(
                        &format!("{repository}:{tag}"),
                        Some(RemoveImageOptions {
                            force: true,
                            ..Default::default()
                        }),
                        None,
                    )
                    .await;
            }
        }
        let _ = executor
            .remove_cache(&format!(
                "zos-build-cache-{}",
                self.base.rsplit('/').next().unwrap()
            ))
            .await;
        let _ = executor
            .remove_cache(&format!(
                "zos-build-cache-{}",
                self.dependent.rsplit('/').next().unwrap()
            ))
            .await;
    }
}

use zos_build_core::Executor;

/// The entries of a `.tar.gz`: (name, content).
fn entries(path: &Path) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            (name, text)
        })
        .collect()
}

#[tokio::test]
async fn a_kernel_push_leaves_a_kernel_its_link_a_flist_and_a_base_image_a_dependent_starts_from() {
    let _docker = DOCKER.lock().await;
    let mut k = Kernels::start().await;
    let base = k.base.clone();
    let name = base.rsplit('/').next().unwrap().to_string();

    // A dependent target before any base image: the build says why it cannot start.
    let dependent = k.dependent.clone();
    let early = k.commit(&dependent, "master", &[]);
    let record = k.build(&dependent, "refs/heads/master", &early).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(
        record.error.as_deref(),
        Some("no base image found for branch master")
    );

    // The base target, branch master.
    let first = k.commit(&base, "master", &[]);
    let record = k.build(&base, "refs/heads/master", &first).await;
    let log = k.h.report(&record.id).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");
    assert!(
        log.contains(&format!("kernel: branch=master repo={name} release=no")),
        "{log}"
    );
    assert!(log.contains("cache: run 1"), "{log}");
    // The kernel pipeline's phases are those of a flist build (its commit
    // as an image is in none of them).
    let build = k.h.get_json(&format!("/api/builds/{}", record.id)).await;
    let mut phases: Vec<&str> = build["phases"]
        .as_object()
        .unwrap_or_else(|| panic!("no phases: {build}"))
        .keys()
        .map(String::as_str)
        .collect();
    phases.sort_unstable();
    assert_eq!(
        phases,
        ["create", "extract", "fetch", "publish", "run", "upload"],
        "{build}"
    );
    let kernel = format!("zero-os-master-generic-{}.efi", &first[..10]);
    let file = k.kernel_directory().join(&kernel);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("EFI kernel master {name} ")
    );
    assert_eq!(
        std::fs::read_link(k.kernel_directory().join("zero-os-master-generic.efi")).unwrap(),
        Path::new(&kernel)
    );
    assert_eq!(record.artifact.as_deref(), Some(kernel.as_str()));
    // The kernel flist (no hub here: the local artifacts directory).
    let flist =
        k.h.config
            .artifacts_directory
            .join(format!("zero-os-master-generic-{}.tar.gz", &first[..10]));
    assert_eq!(
        entries(&flist),
        [
            (
                "kernel.efi".to_string(),
                format!("EFI kernel master {name} ")
            ),
            ("boot/".to_string(), String::new()),
            (
                "boot/boot.yaml".to_string(),
                "kernel: /kernel.efi\nnodefault: true\n".to_string()
            ),
        ]
    );
    // The old JSON: `kernel/<name>`.
    let history: Value = k.h.get_json("/build/history").await;
    let entry = history
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == record.id.as_str())
        .unwrap();
    assert_eq!(entry["artifact"], format!("kernel/{kernel}"));
    // Served at /kernels/, through the link too.
    let served =
        k.h.client
            .get(k.h.url("/kernels/zero-os-master-generic.efi"))
            .send()
            .await
            .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.text().await.unwrap(),
        format!("EFI kernel master {name} ")
    );
    // The committed image, with our labels.
    let executor = k.executor().await;
    let image = executor
        .docker()
        .inspect_image(&format!("{base}:master"))
        .await
        .unwrap();
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get(zos_build_core::docker::LABEL_BUILD_ID),
        Some(&record.id),
        "{labels:?}"
    );

    // The dependent target on `feature`: from the base's `master` image
    // (no `feature` image), with its own names.
    let second = k.commit(&dependent, "feature", &[]);
    let record = k.build(&dependent, "refs/heads/feature", &second).await;
    let log = k.h.report(&record.id).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");
    assert!(
        log.contains(&format!("base: {name} master")),
        "started from the base image:\n{log}"
    );
    let dependent_name = dependent.rsplit('/').next().unwrap();
    let kernel = format!("zero-os-feature-{dependent_name}-{}.efi", &second[..10]);
    assert!(k.kernel_directory().join(&kernel).is_file());
    assert_eq!(
        std::fs::read_link(k.kernel_directory().join("zero-os-feature.efi")).unwrap(),
        Path::new(&kernel)
    );

    // A release build (a tag): `release` is the third argument, the names
    // carry the tag.
    git(&k.repo(&base), &["tag", "v1.0", &first]);
    let record = k.build(&base, "refs/tags/v1.0", &first).await;
    let log = k.h.report(&record.id).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}\n{log}");
    assert!(log.contains("release=release"), "{log}");
    assert!(
        log.contains("cache: run 2"),
        "the cache volume persists:\n{log}"
    );
    let kernel = format!("zero-os-v1.0-generic-{}.efi", &first[..10]);
    assert_eq!(
        std::fs::read_to_string(k.kernel_directory().join(&kernel)).unwrap(),
        format!("EFI kernel v1.0 {name} release")
    );

    // A new master commit replaces the image of master: the old one, ours
    // and untagged now, is removed; an unrelated untagged image survives.
    let before = executor
        .docker()
        .inspect_image(&format!("{base}:master"))
        .await
        .unwrap()
        .id
        .unwrap();
    let unrelated = unrelated_untagged_image(&executor).await;
    let third = k.commit(&base, "master", &[]);
    let record = k.build(&base, "refs/heads/master", &third).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let after = executor
        .docker()
        .inspect_image(&format!("{base}:master"))
        .await
        .unwrap()
        .id
        .unwrap();
    assert_ne!(before, after);
    assert!(
        executor.docker().inspect_image(&before).await.is_err(),
        "our untagged image was removed"
    );
    assert!(
        executor.docker().inspect_image(&unrelated).await.is_ok(),
        "an image not ours survives"
    );
    let _ = executor
        .docker()
        .remove_image(
            &unrelated,
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await;
    // The link moved forward to the newest master.
    assert_eq!(
        std::fs::read_link(k.kernel_directory().join("zero-os-master-generic.efi")).unwrap(),
        Path::new(&format!("zero-os-master-generic-{}.efi", &third[..10]))
    );

    // A failing script, and a script that leaves no kernel.
    let failing = k.commit(&base, "fail", &["fail"]);
    let record = k.build(&base, "refs/heads/fail", &failing).await;
    assert_eq!(record.status, BuildStatus::Error);
    assert_eq!(
        record.error.as_deref(),
        Some("build script exited with status 3")
    );
    let empty = k.commit(&base, "gone", &["no-kernel"]);
    let record = k.build(&base, "refs/heads/gone", &empty).await;
    assert_eq!(record.status, BuildStatus::Error);
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or("")
            .contains("/target/vmlinuz.efi"),
        "{record:?}"
    );

    k.finish().await;
}

/// An untagged image that is not ours: a commit without tag of a plain
/// container of the test image.
async fn unrelated_untagged_image(executor: &DockerExecutor) -> String {
    let docker = executor.docker();
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(common::IMAGE.into()),
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let image = docker
        .commit_container(
            CommitContainerOptions {
                container: Some(created.id.clone()),
                ..Default::default()
            },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .unwrap()
        .id;
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    image
}

#[tokio::test]
async fn the_kernel_hook_answers_the_old_words_and_refuses_other_repositories() {
    let _docker = DOCKER.lock().await;
    let mut k = Kernels::start().await;
    let base = k.base.clone();
    let commit = k.commit(&base, "master", &[]);
    // Deleted: DELETED, nothing built.
    let (status, body) = k.push_deleted(&base).await;
    assert_eq!((status, body.as_str()), (200, "DELETED"));
    // Plain answers by default, on the old route too.
    let (status, body) = k
        .push(
            &format!("/build/{}/hook", base.rsplit('/').next().unwrap()),
            &base,
            "refs/heads/master",
            &commit,
            false,
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "STARTED"));
    // A repository that is no kernel target.
    let (status, body) = k
        .push(
            "/hook/kernel",
            "acme/other",
            "refs/heads/master",
            &commit,
            false,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a kernel target"), "{body}");
    // Unsigned: refused before anything runs.
    let response =
        k.h.client
            .post(k.h.url("/hook/kernel"))
            .header("X-GitHub-Event", "push")
            .body("{}")
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 401);
    for build in k.h.server().state.history.recent(None, 100).await.unwrap() {
        k.h.finished(&build.id).await;
    }
    k.finish().await;
}

impl Kernels {
    async fn push_deleted(&mut self, repository: &str) -> (u16, String) {
        let body = serde_json::json!({
            "ref": "refs/heads/gone", "after": "0".repeat(40), "deleted": true,
            "repository": {"full_name": repository},
        });
        self.send("/hook/kernel", &body, false).await
    }
}

const ADMIN: &str = "kernel-admin-token";

#[tokio::test]
async fn the_cache_persists_until_it_is_cleared_and_a_crash_leaves_nothing_behind() {
    let _docker = DOCKER.lock().await;
    let mut k = Kernels::start_with(&format!("admin-token: {ADMIN}\n")).await;
    let base = k.base.clone();
    let target = base.rsplit('/').next().unwrap().to_string();
    let clear = |h: &Harness, token: Option<&str>| {
        let mut request = h
            .client
            .delete(h.url(&format!("/api/kernels/{target}/cache")));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    let first = k.commit(&base, "master", &[]);
    let record = k.build(&base, "refs/heads/master", &first).await;
    assert!(k.h.report(&record.id).await.contains("cache: run 1"));
    let second = k.commit(&base, "master", &[]);
    let record = k.build(&base, "refs/heads/master", &second).await;
    assert!(
        k.h.report(&record.id).await.contains("cache: run 2"),
        "the second build sees the first's cache"
    );

    // Clearing needs the admin token.
    assert_eq!(clear(&k.h, None).await.unwrap().status(), 401);
    assert_eq!(clear(&k.h, Some("wrong")).await.unwrap().status(), 401);
    let response = clear(&k.h, Some(ADMIN)).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "cleared", "{answer}");
    let answer: Value = clear(&k.h, Some(ADMIN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "empty", "{answer}");
    let unknown =
        k.h.client
            .delete(k.h.url("/api/kernels/nope/cache"))
            .header("Authorization", format!("Bearer {ADMIN}"))
            .send()
            .await
            .unwrap();
    assert_eq!(unknown.status(), 404);
    let third = k.commit(&base, "master", &[]);
    let record = k.build(&base, "refs/heads/master", &third).await;
    assert!(
        k.h.report(&record.id).await.contains("cache: run 1"),
        "a cleared cache starts again"
    );

    // kill -9 in the middle of a kernel build: after the restart the build
    // is interrupted, and neither its container nor an image of it is left.
    k.h.server.take().unwrap().stop().await;
    let mut child =
        k.h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server"))
            .await;
    let repo = k.repo(&base);
    std::fs::write(
        repo.join("autobuild/build.sh"),
        "echo 'slow kernel: started'\nsleep 60\n",
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "slow"]);
    let slow = git(&repo, &["rev-parse", "HEAD"]);
    let (status, body) = k
        .push("/hook/kernel", &base, "refs/heads/master", &slow, true)
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let id = answer["builds"][0].as_str().unwrap().to_string();
    k.h.wait_for_line(&id, "slow kernel: started").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let executor = k.executor().await;
    assert_eq!(
        common::containers_of(&executor, &id).await.len(),
        1,
        "the killed server left its container"
    );
    k.h.restart(true).await;
    let record = k.h.record(&id).await;
    assert_eq!(record.status, BuildStatus::Error, "{record:?}");
    assert_eq!(record.error.as_deref(), Some("interrupted by restart"));
    common::assert_no_container(&executor, &id).await;
    let images = executor
        .docker()
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([(
                "label".to_string(),
                vec![format!("{}={id}", zos_build_core::docker::LABEL_BUILD_ID)],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(
        images.is_empty(),
        "no image of the interrupted build: {images:?}"
    );

    k.finish().await;
}
