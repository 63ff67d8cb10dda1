//! What the kernel pipeline needs from the Docker executor, against the real
//! daemon: a cache volume kept between builds, committed images that carry
//! our labels and that later builds start from, and the removal of the
//! images a new commit left without a tag.
//!
//! Every test runs under an instance of its own, so that one test's cleanup
//! (or another session's tests on the same daemon) never sees another's
//! images; and every test removes what it made, even when it fails.

use zos_build_testkit::docker as common;

use bollard::models::{ContainerConfig, ContainerCreateBody, VolumeCreateRequest};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions,
    RemoveVolumeOptions,
};
use common::{assert_no_container, build_id, containers_of, IMAGE};
use std::collections::HashMap;
use std::time::Duration;
use zos_build_core::docker::{LABEL_BUILD_ID, LABEL_CACHE, LABEL_INSTANCE, LABEL_MANAGED};
use zos_build_core::sink::VecSink;
use zos_build_core::{
    BuildError, BuildOutcome, BuildSpec, CancellationToken, Command, DockerExecutor, Executor,
    LogStream,
};

fn sh(script: &str) -> Command {
    Command::Exec(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

fn stdout(sink: &VecSink) -> Vec<String> {
    sink.events
        .iter()
        .filter(|e| e.stream == LogStream::Stdout)
        .map(|e| e.text.clone())
        .collect()
}

/// An executor of an instance no other test uses.
async fn executor(name: &str) -> DockerExecutor {
    common::executor()
        .await
        .with_instance(build_id(&format!("{name}-instance")))
}

/// A volume name no other test uses.
fn volume_name(name: &str) -> String {
    format!("zos-build-{}", build_id(name))
}

async fn run(
    executor: &DockerExecutor,
    spec: &BuildSpec,
) -> (Result<BuildOutcome, BuildError>, VecSink) {
    let mut sink = VecSink::default();
    let result = executor
        .run(spec, &mut sink, &CancellationToken::new())
        .await;
    assert_no_container(executor, &spec.build_id).await;
    (result, sink)
}

/// Runs a build that must succeed; returns its outcome and its stdout.
async fn succeed(executor: &DockerExecutor, spec: &BuildSpec) -> (BuildOutcome, Vec<String>) {
    let (result, sink) = run(executor, spec).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => panic!("build {} could not run: {e}", spec.build_id),
    };
    assert!(outcome.succeeded(), "{outcome:?}: {:?}", sink.events);
    (outcome, stdout(&sink))
}

/// Runs a build that must succeed and commit; returns the image's id.
async fn commit(executor: &DockerExecutor, spec: &BuildSpec) -> String {
    let (outcome, _) = succeed(executor, spec).await;
    outcome
        .committed_image
        .expect("the build committed an image")
}

async fn image_exists(executor: &DockerExecutor, image: &str) -> bool {
    executor.docker().inspect_image(image).await.is_ok()
}

async fn volume_exists(executor: &DockerExecutor, name: &str) -> bool {
    executor.docker().inspect_volume(name).await.is_ok()
}

/// A container made as anyone would make one, without our labels: `None`
/// labels, not started.
async fn plain_container(executor: &DockerExecutor, image: &str) -> String {
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec!["true".into()]),
        ..Default::default()
    };
    executor
        .docker()
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .expect("create a plain container")
        .id
}

/// What a test made, removed at its end; on a panic, `Drop` removes it on a
/// runtime of its own, so a failing test leaves nothing either.
#[derive(Default)]
struct Leftovers {
    containers: Vec<String>,
    /// Image ids or references, removed in reverse order (children first).
    images: Vec<String>,
    volumes: Vec<String>,
    cleaned: bool,
}

impl Leftovers {
    async fn clean(mut self) {
        let failures = remove_all(
            &common::executor().await,
            &self.containers,
            &self.images,
            &self.volumes,
        )
        .await;
        self.cleaned = true;
        assert!(failures.is_empty(), "cleanup failed: {failures:?}");
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (containers, images, volumes) = (
            std::mem::take(&mut self.containers),
            std::mem::take(&mut self.images),
            std::mem::take(&mut self.volumes),
        );
        let cleaning = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime for the cleanup");
            runtime.block_on(async {
                if let Ok(executor) = DockerExecutor::connect().await {
                    let failures = remove_all(&executor, &containers, &images, &volumes).await;
                    if !failures.is_empty() {
                        eprintln!("cleanup after a failed test failed: {failures:?}");
                    }
                }
            });
        });
        let _ = cleaning.join();
    }
}

/// Removes everything named, forcibly; what is gone already is no failure.
async fn remove_all(
    executor: &DockerExecutor,
    containers: &[String],
    images: &[String],
    volumes: &[String],
) -> Vec<String> {
    let docker = executor.docker();
    let gone = |e: &bollard::errors::Error| {
        matches!(
            e,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        )
    };
    let mut failures = Vec::new();
    for id in containers {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = docker.remove_container(id, Some(options)).await {
            if !gone(&e) {
                failures.push(format!("container {id}: {e}"));
            }
        }
    }
    for image in images.iter().rev() {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        if let Err(e) = docker.remove_image(image, Some(options), None).await {
            if !gone(&e) {
                failures.push(format!("image {image}: {e}"));
            }
        }
    }
    for name in volumes {
        let options = RemoveVolumeOptions { force: true };
        if let Err(e) = docker.remove_volume(name, Some(options)).await {
            if !gone(&e) {
                failures.push(format!("volume {name}: {e}"));
            }
        }
    }
    failures
}

#[tokio::test]
async fn a_cache_volume_persists_between_builds_until_it_is_removed() {
    let executor = executor("cache").await;
    let volume = volume_name("cache");
    let mut leftovers = Leftovers::default();
    leftovers.volumes.push(volume.clone());

    // The first build finds the volume empty (it is created for it, and
    // none of the image's files are copied in) and leaves a file there.
    let first = BuildSpec::new(
        build_id("cache-1"),
        IMAGE,
        sh("ls -A /var/cache/kernel | wc -l; echo downloaded > /var/cache/kernel/linux.tar.xz"),
    )
    .cache_volume(&volume, "/var/cache/kernel");
    let (_, out) = succeed(&executor, &first).await;
    assert_eq!(out, ["0"], "a new cache volume is empty");
    let labels = executor
        .docker()
        .inspect_volume(&volume)
        .await
        .expect("the volume was created")
        .labels;
    assert_eq!(
        labels.get(LABEL_INSTANCE).map(String::as_str),
        Some(executor.instance())
    );
    assert_eq!(labels.get(LABEL_CACHE), Some(&volume));
    assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));

    // The second build, at another path and beside a second cache volume,
    // sees the file and can change it.
    let other = volume_name("cache-other");
    leftovers.volumes.push(other.clone());
    let second = BuildSpec::new(
        build_id("cache-2"),
        IMAGE,
        sh("cat /cache/linux.tar.xz && echo again >> /cache/linux.tar.xz && ls -A /other | wc -l"),
    )
    .cache_volume(&volume, "/cache")
    .cache_volume(&other, "/other");
    let (_, out) = succeed(&executor, &second).await;
    assert_eq!(out, ["downloaded", "0"]);

    // Removed, it is gone: a third build starts from an empty volume.
    assert!(executor.remove_cache_volume(&volume).await.unwrap());
    assert!(!volume_exists(&executor, &volume).await);
    assert!(
        !executor.remove_cache_volume(&volume).await.unwrap(),
        "a volume that is not there is no error, and reported as such"
    );
    let third = BuildSpec::new(
        build_id("cache-3"),
        IMAGE,
        sh("test -e /cache/linux.tar.xz && echo present || echo absent"),
    )
    .cache_volume(&volume, "/cache");
    let (_, out) = succeed(&executor, &third).await;
    assert_eq!(out, ["absent"]);

    assert!(executor.remove_cache_volume(&volume).await.unwrap());
    assert!(executor.remove_cache_volume(&other).await.unwrap());
    leftovers.clean().await;
}

#[tokio::test]
async fn a_new_cache_volume_holds_none_of_the_images_files() {
    // Docker copies the files of the image at the mount point into a new,
    // empty volume unless told not to; a cache holds what builds wrote only.
    let executor = executor("no-copy").await;
    let volume = volume_name("no-copy");
    let mut leftovers = Leftovers::default();
    leftovers.volumes.push(volume.clone());
    let count = "/bin/busybox ls -A /usr/sbin | /bin/busybox wc -l";
    let (_, out) = succeed(
        &executor,
        &BuildSpec::new(build_id("no-copy-image"), IMAGE, sh(count)),
    )
    .await;
    assert_ne!(out, ["0"], "the image has files in /usr/sbin");
    let spec =
        BuildSpec::new(build_id("no-copy"), IMAGE, sh(count)).cache_volume(&volume, "/usr/sbin");
    let (_, out) = succeed(&executor, &spec).await;
    assert_eq!(out, ["0"]);
    assert!(executor.remove_cache_volume(&volume).await.unwrap());
    leftovers.clean().await;
}

#[tokio::test]
async fn a_volume_the_engine_did_not_create_is_neither_mounted_nor_removed() {
    let executor = executor("foreign").await;
    let mut leftovers = Leftovers::default();
    // Someone's volume without any label, and a volume of another instance
    // of zos-build on the same daemon.
    let foreign = volume_name("foreign");
    let elsewhere = volume_name("elsewhere");
    leftovers.volumes.push(foreign.clone());
    leftovers.volumes.push(elsewhere.clone());
    let create = |name: &str, labels: Option<HashMap<String, String>>| VolumeCreateRequest {
        name: Some(name.to_string()),
        labels,
        ..Default::default()
    };
    executor
        .docker()
        .create_volume(create(&foreign, None))
        .await
        .unwrap();
    let other_instance = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_INSTANCE.to_string(), "another-service".to_string()),
        (LABEL_CACHE.to_string(), elsewhere.clone()),
    ]);
    executor
        .docker()
        .create_volume(create(&elsewhere, Some(other_instance)))
        .await
        .unwrap();

    for name in [&foreign, &elsewhere] {
        let spec =
            BuildSpec::new(build_id("foreign"), IMAGE, sh("echo ran")).cache_volume(name, "/cache");
        let (result, sink) = run(&executor, &spec).await;
        match result {
            Err(BuildError::InvalidSpec(message)) => {
                assert!(message.contains(name.as_str()), "{message}");
                assert!(message.contains("refusing to mount"), "{message}");
            }
            other => panic!("{name} must not be mounted: {other:?}"),
        }
        assert!(stdout(&sink).is_empty(), "nothing ran");

        match executor.remove_cache_volume(name).await {
            Err(BuildError::InvalidSpec(message)) => {
                assert!(message.contains("refusing to remove"), "{message}");
                assert!(message.contains(LABEL_INSTANCE), "{message}");
            }
            other => panic!("{name} must not be removed: {other:?}"),
        }
        assert!(
            volume_exists(&executor, name).await,
            "{name} is still there"
        );
    }

    // A name that cannot be a volume's is refused before Docker is asked.
    for bad in ["../x", "a", "-x", ""] {
        let err = executor.remove_cache_volume(bad).await.unwrap_err();
        assert!(matches!(err, BuildError::InvalidSpec(_)), "{bad:?}: {err}");
    }
    leftovers.clean().await;
}

#[tokio::test]
async fn a_cache_volume_in_use_by_a_running_build_is_not_removed() {
    let executor = executor("in-use").await;
    let volume = volume_name("in-use");
    let mut leftovers = Leftovers::default();
    leftovers.volumes.push(volume.clone());
    let id = build_id("in-use");
    let spec = BuildSpec::new(id.clone(), IMAGE, sh("echo started; sleep 60"))
        .cache_volume(&volume, "/cache");
    let cancel = CancellationToken::new();
    let running = {
        let (executor, cancel) = (executor.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut sink = VecSink::default();
            executor.run(&spec, &mut sink, &cancel).await
        })
    };
    let mut started = false;
    for _ in 0..200 {
        if !containers_of(&executor, &id).await.is_empty() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started, "the build's container appeared");

    let err = executor.remove_cache_volume(&volume).await.unwrap_err();
    assert!(matches!(err, BuildError::Docker { .. }), "{err:?}");
    assert!(err.to_string().contains("still uses it"), "{err}");
    assert!(volume_exists(&executor, &volume).await);

    cancel.cancel();
    let outcome = running.await.unwrap().unwrap();
    assert!(!outcome.succeeded());
    assert_no_container(&executor, &id).await;
    assert!(executor.remove_cache_volume(&volume).await.unwrap());
    leftovers.clean().await;
}

#[tokio::test]
async fn a_committed_image_carries_our_labels_and_not_the_cache() {
    let executor = executor("labels").await;
    let volume = volume_name("labels");
    let repository = "zos-build-test/kernel-labels";
    let tag = build_id("labels");
    let reference = format!("{repository}:{tag}");
    let mut leftovers = Leftovers::default();
    leftovers.volumes.push(volume.clone());
    leftovers.images.push(reference.clone());

    let id = build_id("labels-build");
    let spec = BuildSpec::new(
        id.clone(),
        IMAGE,
        sh("echo kernel > /built && echo cached > /cache/archive"),
    )
    .cache_volume(&volume, "/cache")
    .label("org.example.pipeline", "kernel")
    .commit_as(repository, &tag);
    let image = commit(&executor, &spec).await;
    leftovers.images.push(image.clone());

    let inspected = executor.docker().inspect_image(&reference).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(image.as_str()));
    let config = inspected.config.expect("an image config");
    let labels = config.labels.clone().unwrap_or_default();
    let label = |key: &str| labels.get(key).map(String::as_str);
    assert_eq!(
        label(LABEL_INSTANCE),
        Some(executor.instance()),
        "{labels:?}"
    );
    assert_eq!(label(LABEL_BUILD_ID), Some(id.as_str()), "{labels:?}");
    assert_eq!(label(LABEL_MANAGED), Some("image"), "{labels:?}");
    assert_eq!(label("org.example.pipeline"), Some("kernel"), "{labels:?}");
    assert!(
        config.volumes.unwrap_or_default().is_empty(),
        "the cache is no volume of the image"
    );

    // The image holds what the build wrote, but not the cache's content.
    let check = BuildSpec::new(
        build_id("labels-check"),
        reference.clone(),
        sh("cat /built; ls -A /cache 2>/dev/null | wc -l"),
    );
    let (_, out) = succeed(&executor, &check).await;
    assert_eq!(out, ["kernel", "0"]);

    // Someone looks into the image: the container inherits the image's
    // labels, instance included, and still the sweep leaves it alone.
    let looking = plain_container(&executor, &reference).await;
    leftovers.containers.push(looking.clone());
    let inherited = executor
        .docker()
        .inspect_container(&looking, None)
        .await
        .unwrap()
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default();
    assert_eq!(
        inherited.get(LABEL_INSTANCE).map(String::as_str),
        Some(executor.instance())
    );
    assert!(executor.list_managed().await.unwrap().is_empty());
    assert!(executor.sweep().await.unwrap().is_empty());
    assert!(executor
        .docker()
        .inspect_container(&looking, None)
        .await
        .is_ok());

    assert!(executor.remove_cache_volume(&volume).await.unwrap());
    leftovers.clean().await;
}

#[tokio::test]
async fn a_build_starts_from_an_image_an_earlier_build_committed_without_pulling() {
    let executor = executor("base").await;
    // The kernel pipeline's `threefoldtech/0-initramfs:master`, under a
    // name that can never be a real image's.
    let repository = "zos-build-test/0-initramfs";
    let branch = build_id("master");
    let reference = format!("{repository}:{branch}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());

    let base = BuildSpec::new(
        build_id("base"),
        IMAGE,
        sh("mkdir -p /0-initramfs/staging && echo initramfs > /0-initramfs/staging/kernel.config"),
    )
    .commit_as(repository, &branch);
    leftovers.images.push(commit(&executor, &base).await);

    let dependent = BuildSpec::new(
        build_id("dependent"),
        reference.clone(),
        sh("cat /0-initramfs/staging/kernel.config"),
    );
    let (result, sink) = run(&executor, &dependent).await;
    let outcome = result.unwrap();
    assert!(outcome.succeeded(), "{:?}", sink.events);
    assert_eq!(stdout(&sink), ["initramfs"]);
    let system: Vec<&str> = sink
        .events
        .iter()
        .filter(|e| e.stream == LogStream::System)
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        system.iter().all(|line| !line.contains("pulling")),
        "a local image is never pulled: {system:?}"
    );
    leftovers.clean().await;
}

#[tokio::test]
async fn recommitting_a_tag_leaves_an_untagged_image_that_is_removed_and_nothing_else() {
    let executor = executor("untagged").await;
    let repository = "zos-build-test/kernel-untagged";
    let tag = build_id("master");
    let reference = format!("{repository}:{tag}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());

    let commit_as = |name: &str, tag: &str| {
        BuildSpec::new(
            build_id(name),
            IMAGE,
            sh(&format!("echo {name} > /version")),
        )
        .commit_as(repository, tag)
    };
    let first = commit(&executor, &commit_as("first", &tag)).await;
    leftovers.images.push(first.clone());
    let second = commit(&executor, &commit_as("second", &tag)).await;
    leftovers.images.push(second.clone());
    assert_ne!(first, second);

    // An untagged image nobody labelled: `docker commit` of a plain container.
    let plain = plain_container(&executor, IMAGE).await;
    leftovers.containers.push(plain.clone());
    let unrelated = executor
        .docker()
        .commit_container(
            CommitContainerOptions {
                container: Some(plain.clone()),
                pause: false,
                ..Default::default()
            },
            ContainerConfig::default(),
        )
        .await
        .unwrap()
        .id;
    leftovers.images.push(unrelated.clone());

    // Another instance's untagged image, made the same way as ours.
    let neighbour = executor
        .clone()
        .with_instance(build_id("neighbour-instance"));
    let neighbour_tag = build_id("neighbour");
    leftovers
        .images
        .push(format!("{repository}:{neighbour_tag}"));
    let theirs = commit(&neighbour, &commit_as("theirs-1", &neighbour_tag)).await;
    leftovers.images.push(theirs.clone());
    leftovers
        .images
        .push(commit(&neighbour, &commit_as("theirs-2", &neighbour_tag)).await);

    let removed = executor.remove_untagged_images().await.unwrap();
    assert_eq!(removed, std::slice::from_ref(&first));
    assert!(!image_exists(&executor, &first).await);
    assert!(
        image_exists(&executor, &second).await,
        "the tagged image stays"
    );
    assert!(
        image_exists(&executor, &unrelated).await,
        "an image without our label stays"
    );
    assert!(
        image_exists(&executor, &theirs).await,
        "another instance's image stays"
    );
    assert!(
        executor.remove_untagged_images().await.unwrap().is_empty(),
        "nothing more to remove"
    );
    // The former name does the same.
    assert!(executor.remove_dangling_images().await.unwrap().is_empty());
    assert_eq!(neighbour.remove_untagged_images().await.unwrap(), [theirs]);
    leftovers.clean().await;
}

#[tokio::test]
async fn an_untagged_image_in_use_is_skipped_and_a_chain_of_them_goes_whole() {
    let executor = executor("chain").await;
    let repository = "zos-build-test/kernel-chain";
    let tag = build_id("master");
    let reference = format!("{repository}:{tag}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());
    let spec = |name: &str, image: &str| {
        BuildSpec::new(
            build_id(name),
            image.to_string(),
            sh(&format!("echo {name} >> /versions")),
        )
        .commit_as(repository, &tag)
    };

    // In use: a container made from the image holds it after it lost its tag.
    let used = commit(&executor, &spec("used", IMAGE)).await;
    leftovers.images.push(used.clone());
    let holder = plain_container(&executor, &used).await;
    leftovers.containers.push(holder.clone());
    let replacing = commit(&executor, &spec("replacing", IMAGE)).await;
    leftovers.images.push(replacing.clone());
    let removed = executor.remove_untagged_images().await.unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    assert!(image_exists(&executor, &used).await);
    executor
        .docker()
        .remove_container(&holder, None::<RemoveContainerOptions>)
        .await
        .unwrap();
    assert_eq!(executor.remove_untagged_images().await.unwrap(), [used]);

    // A chain: each build starts from the tag and commits it again, so each
    // older image is the parent of the newer one. An untagged parent cannot
    // go while its child needs it; once the newest loses the tag, all go.
    let mut chain = vec![replacing];
    for name in ["chain-1", "chain-2", "chain-3"] {
        let image = commit(&executor, &spec(name, &reference)).await;
        leftovers.images.push(image.clone());
        chain.push(image);
    }
    let (_, out) = succeed(
        &executor,
        &BuildSpec::new(
            build_id("chain-check"),
            reference.clone(),
            sh("cat /versions"),
        ),
    )
    .await;
    assert_eq!(out, ["replacing", "chain-1", "chain-2", "chain-3"]);
    let removed = executor.remove_untagged_images().await.unwrap();
    assert!(
        removed.is_empty(),
        "the untagged images are the parents of the tagged one: {removed:?}"
    );

    let unrelated = commit(&executor, &spec("unrelated", IMAGE)).await;
    leftovers.images.push(unrelated.clone());
    let mut removed = executor.remove_untagged_images().await.unwrap();
    removed.sort();
    chain.sort();
    assert_eq!(removed, chain, "the whole chain, and nothing else");
    assert!(image_exists(&executor, &unrelated).await);
    leftovers.clean().await;
}
