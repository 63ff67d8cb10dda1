//! The JSON the old service showed of builds, built in one place for the
//! HTTP routes (`/build/status`, `/build/history`, `/build/history/full`,
//! `/api/builds`) and the websocket frames (`status`, `history`), so that
//! they can never disagree.
//!
//! ## `artifact`, in the old service's shape
//!
//! The old monitor page made its artifact links from `artifact` alone: it
//! split it at the first `/`, and a known first part chose a host
//! (`flist/<flist>.md` → the hub's page of the flist, `binary/<file>` → the
//! download host, `kernel/<file>` → the bootstrap host); anything else was
//! linked to the kernel host whole. So `artifact` keeps those prefixes,
//! made from the build's [`ArtifactKind`] ([`ArtifactView`]):
//!
//! | kind | `artifact` |
//! | --- | --- |
//! | `Flist` | `flist/<owner>-<repo>[-<tag>]-<branch>-<commit10>.flist.md` |
//! | `Binary` | `binary/<file>` |
//! | `Kernel` | `kernel/<file>` |
//! | `Local` | `<file>`, bare |
//!
//! A `Local` artifact stays bare because no prefix would make the old page
//! link it right: its hosts are written in the page, and none of them is
//! this server's `/artifacts/` (`binary/` would send it to the download
//! host, where the file is not). Bare is what this server always sent,
//! which its own page and client link to `/artifacts/<file>`, and local
//! files exist only where no hub is configured, which the old service never
//! ran without. Builds recorded before kinds were (`artifact_kind` None)
//! published local files, and show the same.
//!
//! Builds imported from the old service keep the `artifact` it wrote, prefix
//! included; [`old_artifact`] reads it back, so it is shown as it was, never
//! prefixed twice, whether or not the import recorded its kind.
//!
//! Beside it, for everyone else: `artifact_name` (the bare name),
//! `artifact_kind` (`local`, `flist`, `binary`, `kernel`), `artifact_url`
//! (where to fetch it: the hub's URL of a flist, `/artifacts/<file>` for a
//! file this server serves; `null` when unknown, e.g. for what the old
//! service published) and `link` (the moving link the build moved).
//!
//! ## `monitor`
//!
//! The last [`MONITOR_LINES`] lines of the build's log, for running and
//! finished builds alike, read from the end of its file only: at most
//! [`MONITOR_TAIL_BYTES`] of each, and at most [`MONITOR_LIST_BYTES`] for
//! a whole list of finished builds (a page of 500 gets 2 KiB of each log),
//! so that neither the reads nor the answer grow with the logs, and a long
//! page cannot be made large by long lines. [`MONITOR_READS`] logs are
//! read at a time.
//!
//! ## `github`
//!
//! Where the build's latest commit status is on its way to GitHub (the
//! history's outbox, [`History::status_deliveries`]): `null` when the build
//! has none (no `github-token`, or a build of no GitHub commit), else
//! `queued`, `sent`, `retrying (<code>)` or `failed (<code>)`, the code being
//! the sender's short word for the last error (`429`, `502`, `401`,
//! `unavailable`). Every list reads its builds' deliveries in one call, so a
//! page of 500 costs one more query, not 500 ([`deliveries`]).

use crate::config::Config;
use crate::live::{read_log, Live, LiveEvent};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use zos_build_core::history::is_valid_build_id;
use zos_build_core::history::legacy::old_artifact;
use zos_build_core::history::StatusDelivery;
use zos_build_core::{ArtifactKind, BuildRecord, History, HistoryError};
use zos_flist_config::Catalog;

/// Entries of `/build/history` and of the websocket's `history` frame.
pub const HISTORY_LENGTH: u64 = 25;
/// Lines of output shown in `monitor`.
pub const MONITOR_LINES: usize = 10;
/// The most of a log's end read for `monitor`: a log of any size costs
/// this much at most, and so does each entry's `monitor`.
pub const MONITOR_TAIL_BYTES: u64 = 16 * 1024;
/// The most read of the logs of one list of finished builds, shared by its
/// entries (each gets at most [`MONITOR_TAIL_BYTES`]).
pub const MONITOR_LIST_BYTES: u64 = 1024 * 1024;
/// Logs read at once to fill the `monitor` of a list of builds.
pub const MONITOR_READS: usize = 8;
/// The most characters of the error code shown in `github`.
const GITHUB_CODE_CHARS: usize = 32;

/// What the JSON says of a build's artifact (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactView {
    /// `artifact`: the name with the old service's prefix.
    pub artifact: String,
    /// `artifact_name`: the bare name.
    pub name: String,
    /// `artifact_kind`; None when the recorded name is in no known shape.
    pub kind: Option<ArtifactKind>,
    /// `artifact_url`: where to fetch it, when known.
    pub url: Option<String>,
}

impl ArtifactView {
    /// The view of `record`'s artifact; None when it has none.
    pub fn of(record: &BuildRecord) -> Option<ArtifactView> {
        let stored = record.artifact.as_deref()?;
        let old = old_artifact(stored);
        // Only the old service wrote prefixed names: this server published
        // nothing of them, and does not know where its hosts are.
        let from_old_service = old.is_some();
        let (kind, name) = match old {
            Some((kind, name)) => (Some(record.artifact_kind.unwrap_or(kind)), name),
            // A name in no shape this server makes: shown as it is.
            None if stored.contains('/') => (record.artifact_kind, stored),
            None => (
                Some(record.artifact_kind.unwrap_or(ArtifactKind::Local)),
                stored,
            ),
        };
        let artifact = match kind {
            Some(ArtifactKind::Flist) => format!("flist/{name}.md"),
            Some(ArtifactKind::Binary) => format!("binary/{name}"),
            Some(ArtifactKind::Kernel) => format!("kernel/{name}"),
            _ => name.to_string(),
        };
        let url = match kind {
            Some(ArtifactKind::Flist | ArtifactKind::Kernel) => record
                .artifact_location
                .as_deref()
                .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
                .map(str::to_string),
            // The names `/artifacts/<name>` serves, and nothing else.
            Some(ArtifactKind::Local | ArtifactKind::Binary)
                if !from_old_service && is_served_name(name) =>
            {
                Some(format!("/artifacts/{name}"))
            }
            _ => None,
        };
        Some(ArtifactView {
            artifact,
            name: name.to_string(),
            kind,
            url,
        })
    }
}

/// A name `/artifacts/<name>` serves: `[A-Za-z0-9._-]`, not hidden.
fn is_served_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `github` of a build whose latest commit status is `delivery`: `queued`,
/// `sent`, `retrying (429)`, `failed (401)` (the code is what the last error
/// says before its first `:`).
pub fn github_text(delivery: &StatusDelivery) -> String {
    let code = delivery
        .last_error
        .as_deref()
        .map(|error| error.split(':').next().unwrap_or(error).trim())
        .filter(|code| !code.is_empty())
        .map(|code| code.chars().take(GITHUB_CODE_CHARS).collect::<String>());
    match (delivery.delivery.as_str(), code) {
        (word @ ("retrying" | "failed"), Some(code)) => format!("{word} ({code})"),
        (word, _) => word.to_string(),
    }
}

/// The commit status deliveries of `records`, keyed by build id, read in
/// one call (builds without a status are not in it).
pub async fn deliveries(
    history: &History,
    records: &[BuildRecord],
) -> Result<HashMap<String, StatusDelivery>, HistoryError> {
    if records.is_empty() {
        return Ok(HashMap::new());
    }
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    history.status_deliveries(ids).await
}

/// The fields the old service sent for a running build, plus `id` and
/// `baseimage` (which the old one sent in the history only), the
/// artifact's own fields, and `github` from the build's latest commit
/// status (`delivery`; null without one).
pub fn status_entry(
    record: &BuildRecord,
    monitor: String,
    delivery: Option<&StatusDelivery>,
) -> Value {
    let commits: Value = serde_json::from_str(&record.commits).unwrap_or_else(|_| json!([]));
    let docker = match &record.container_id {
        Some(id) => id.chars().take(10).collect::<String>(),
        None => "system".to_string(),
    };
    let artifact = ArtifactView::of(record);
    let artifact = artifact.as_ref();
    json!({
        "id": record.id,
        "status": record.status.as_str(),
        "name": record.name,
        "monitor": monitor,
        "docker": docker,
        "started": record.started,
        "ended": record.ended,
        "error": record.error,
        "commits": commits,
        "artifact": artifact.map(|a| &a.artifact),
        "artifact_name": artifact.map(|a| &a.name),
        "artifact_kind": artifact.and_then(|a| a.kind).map(ArtifactKind::as_str),
        "artifact_url": artifact.and_then(|a| a.url.as_ref()),
        "link": record.link,
        "tag": record.tag,
        "baseimage": record.baseimage,
        "github": delivery.map(github_text),
    })
}

/// A build as the JSON API (`/api/builds`) lists it: the history's shape,
/// with an empty `monitor` (its clients read the log itself).
pub fn history_entry(record: &BuildRecord, delivery: Option<&StatusDelivery>) -> Value {
    status_entry(record, String::new(), delivery)
}

/// One build as `/api/builds/<id>` shows it: [`history_entry`] with its
/// commit status read from `history`, and `phases`: how long each phase of
/// the build took, in seconds (`{"fetch":0.031,"create":0.05,...}`; a phase
/// that did not run is absent, and a build that has not ended, or ended
/// before phases were recorded, has `{}`). Only here, not in the lists,
/// whose shapes are the old service's.
pub async fn build_entry(history: &History, record: &BuildRecord) -> Result<Value, HistoryError> {
    let deliveries = deliveries(history, std::slice::from_ref(record)).await?;
    let mut entry = history_entry(record, deliveries.get(&record.id));
    if let Some(fields) = entry.as_object_mut() {
        fields.insert("phases".into(), record.phases.to_json());
    }
    Ok(entry)
}

/// `records` as a JSON array of [`history_entry`], their commit statuses
/// read from `history` at once.
pub async fn history_list(
    history: &History,
    records: &[BuildRecord],
) -> Result<Value, HistoryError> {
    let deliveries = deliveries(history, records).await?;
    Ok(Value::Array(
        records
            .iter()
            .map(|record| history_entry(record, deliveries.get(&record.id)))
            .collect(),
    ))
}

/// `records` as a JSON array of history entries, each with the last lines
/// of its log in `monitor` (as `/build/history` and the websocket's
/// `history` frame show them), their commit statuses read from `history`
/// at once.
pub async fn history_list_with_monitor(
    history: &History,
    records: &[BuildRecord],
    config: &Config,
) -> Result<Value, HistoryError> {
    let deliveries = deliveries(history, records).await?;
    let share = MONITOR_LIST_BYTES / u64::try_from(records.len().max(1)).unwrap_or(u64::MAX);
    let tail = share.min(MONITOR_TAIL_BYTES);
    // The futures made first, so that the stream's type holds no closure
    // (a closure's lifetimes would keep the spawned tasks from being `Send`).
    let entries: Vec<_> = records
        .iter()
        .map(|record| entry_with_monitor(config, record, tail, deliveries.get(&record.id)))
        .collect();
    let entries = futures_util::stream::iter(entries)
        .buffered(MONITOR_READS)
        .collect()
        .await;
    Ok(Value::Array(entries))
}

/// `record` as the history shows it, with the last lines of its log, read
/// from its last `tail` bytes, and `github` from `delivery`.
async fn entry_with_monitor(
    config: &Config,
    record: &BuildRecord,
    tail: u64,
    delivery: Option<&StatusDelivery>,
) -> Value {
    status_entry(record, monitor(config, record, tail).await, delivery)
}

/// The last lines of `record`'s log, from its last `tail` bytes.
async fn monitor(config: &Config, record: &BuildRecord, tail: u64) -> String {
    if !is_valid_build_id(&record.id) {
        return String::new();
    }
    last_lines(&config.build_log_path(&record.id), MONITOR_LINES, tail).await
}

/// Queued and running builds, keyed by id, with the last lines of each log.
pub async fn status(history: &History, config: &Config) -> Result<Value, HistoryError> {
    let active = history.active().await?;
    let deliveries = deliveries(history, &active).await?;
    let mut object = serde_json::Map::new();
    for record in &active {
        object.insert(
            record.id.clone(),
            status_entry(
                record,
                monitor(config, record, MONITOR_TAIL_BYTES).await,
                deliveries.get(&record.id),
            ),
        );
    }
    Ok(Value::Object(object))
}

/// The latest finished builds, newest first, with their last lines.
pub async fn history(history: &History, config: &Config) -> Result<Value, HistoryError> {
    let records = history.finished(0, HISTORY_LENGTH).await?;
    history_list_with_monitor(history, &records, config).await
}

/// What this server tracks, for the `server` frame of the live feed: the
/// configuration repository (null when none is set), how many repositories
/// and branches its loaded catalog lists, and the kernel targets. The
/// monitor page uses it to tell an idle server from one that tracks nothing.
pub fn server(config: &Config, catalog: Option<&Catalog>) -> Value {
    let branches: Vec<_> = catalog.map_or(Vec::new(), |c| c.branches().collect());
    let repositories: std::collections::HashSet<&str> =
        branches.iter().map(|b| b.repository.as_str()).collect();
    json!({
        "configuration_repository": config.configuration_repository,
        "repositories": repositories.len(),
        "branches": branches.len(),
        "kernel_targets": config
            .kernel_targets
            .iter()
            .map(|target| target.repository.as_str())
            .collect::<Vec<_>>(),
    })
}

/// A websocket frame `{"event": event, "payload": payload}`.
pub fn frame(event: &str, payload: Value) -> String {
    json!({"event": event, "payload": payload}).to_string()
}

/// The last `n` lines of a file, joined by `\n`, from at most its last
/// `tail` bytes; empty when it cannot be read.
pub async fn last_lines(path: &Path, n: usize, tail: u64) -> String {
    let Ok(length) = tokio::fs::metadata(path).await.map(|m| m.len()) else {
        return String::new();
    };
    let start = length.saturating_sub(tail);
    // From the byte before `start`, when there is one: whether the part
    // read begins with a whole line.
    let before = u64::from(start > 0);
    let Ok(bytes) = read_log(path, start - before, tail + before).await else {
        return String::new();
    };
    let bytes = match bytes.split_first() {
        Some((&previous, rest)) if before == 1 => match rest.iter().position(|&b| b == b'\n') {
            // The first line began before `start`: left out, unless it is
            // all there is.
            Some(end) if previous != b'\n' && end + 1 < rest.len() => &rest[end + 1..],
            _ => rest,
        },
        _ => &bytes[..],
    };
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Publishes the running builds (and, when `history_changed`, the history)
/// to the live feed, as the websocket's `status` and `history` frames.
pub async fn announce(history: &History, config: &Config, live: &Live, history_changed: bool) {
    match status(history, config).await {
        Ok(value) => live.publish(LiveEvent::Status {
            frame: frame("status", value).into(),
        }),
        Err(e) => tracing::error!(error = %e, "cannot read the running builds"),
    }
    if history_changed {
        match self::history(history, config).await {
            Ok(value) => live.publish(LiveEvent::History {
                frame: frame("history", value).into(),
            }),
            Err(e) => tracing::error!(error = %e, "cannot read the history"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_build_core::history::statuses::now_ms;
    use zos_build_core::history::{Enqueued, ImportedBuild, NewBuild, NewStatus, StatusState};
    use zos_build_core::{BuildStatus, BuildUpdate};

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A finished build of acme/widget master, read back from a history.
    async fn finished(history: &History, update: BuildUpdate) -> BuildRecord {
        let build = NewBuild::new("acme/widget", "master", COMMIT, "build.sh", "busybox");
        let Enqueued::Queued(records) = history.enqueue(None, vec![build]).await.unwrap() else {
            panic!("queued")
        };
        history.update(&records[0].id, update).await.unwrap();
        history.get(&records[0].id).await.unwrap().unwrap()
    }

    fn artifact_fields(entry: &Value) -> Value {
        json!([
            entry["artifact"],
            entry["artifact_name"],
            entry["artifact_kind"],
            entry["artifact_url"],
            entry["link"],
        ])
    }

    #[tokio::test]
    async fn each_kind_of_artifact_has_the_old_prefix_and_its_own_fields() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let success = |artifact: &str| {
            BuildUpdate::finished(BuildStatus::Success, None, Some(artifact.into()))
        };
        let flist = "acme-widget-master-0123456789.flist";
        let file = "acme-widget-master-0123456789.tar.gz";
        let kernel = "zero-os-master-generic-0123456789.efi";
        let link = Some("acme-widget-master.flist".to_string());
        let cases = [
            (
                success(flist).published(
                    ArtifactKind::Flist,
                    format!("https://hub.example/acme/{flist}"),
                    link.clone(),
                ),
                json!([
                    format!("flist/{flist}.md"),
                    flist,
                    "flist",
                    format!("https://hub.example/acme/{flist}"),
                    "acme-widget-master.flist",
                ]),
            ),
            (
                success(file).published(
                    ArtifactKind::Binary,
                    format!("/srv/bin/{file}"),
                    link.clone(),
                ),
                json!([
                    format!("binary/{file}"),
                    file,
                    "binary",
                    format!("/artifacts/{file}"),
                    "acme-widget-master.flist",
                ]),
            ),
            (
                success(kernel).published(
                    ArtifactKind::Kernel,
                    format!("/srv/kernel/{kernel}"),
                    None,
                ),
                // A path is no URL: the kernel directory is not served here.
                json!([format!("kernel/{kernel}"), kernel, "kernel", null, null]),
            ),
            (
                success(file).published(
                    ArtifactKind::Local,
                    format!("/srv/artifacts/{file}"),
                    None,
                ),
                json!([file, file, "local", format!("/artifacts/{file}"), null]),
            ),
            // Recorded before kinds were: a local file.
            (
                success(file),
                json!([file, file, "local", format!("/artifacts/{file}"), null]),
            ),
            // No artifact: nothing of it.
            (
                BuildUpdate::finished(BuildStatus::Error, Some("failed".into()), None),
                json!([null, null, null, null, null]),
            ),
        ];
        for (update, expected) in cases {
            let record = finished(&history, update).await;
            let entry = history_entry(&record, None);
            assert_eq!(artifact_fields(&entry), expected, "{record:?}");
            // The same in /build/status's shape.
            assert_eq!(
                artifact_fields(&status_entry(&record, "x".into(), None)),
                expected
            );
        }
    }

    #[tokio::test]
    async fn an_imported_artifact_keeps_its_prefix_and_gets_no_second_one() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let flist = "acme-widget-master-0123456789.flist";
        let cases = [
            (
                format!("flist/{flist}.md"),
                json!([format!("flist/{flist}.md"), flist, "flist", null, null]),
            ),
            (
                "binary/acme-widget-master-0123456789.tar.gz".to_string(),
                json!([
                    "binary/acme-widget-master-0123456789.tar.gz",
                    "acme-widget-master-0123456789.tar.gz",
                    "binary",
                    null,
                    null
                ]),
            ),
            (
                "kernel/zero-os-master-generic-0123456789.efi".to_string(),
                json!([
                    "kernel/zero-os-master-generic-0123456789.efi",
                    "zero-os-master-generic-0123456789.efi",
                    "kernel",
                    null,
                    null
                ]),
            ),
            // Its earliest kernels were bare; its page linked them to the
            // kernel host, as it does `kernel/<name>`.
            (
                "zero-os-master-generic-0123456789.efi".to_string(),
                json!([
                    "kernel/zero-os-master-generic-0123456789.efi",
                    "zero-os-master-generic-0123456789.efi",
                    "kernel",
                    null,
                    null
                ]),
            ),
            // Not a shape of either service: shown as it is, kind unknown.
            (
                "other/a/b".to_string(),
                json!(["other/a/b", "other/a/b", null, null, null]),
            ),
        ];
        for (i, (stored, expected)) in cases.into_iter().enumerate() {
            let id = format!("3f2504e0-4f89-11d3-9a0c-0305e82c330{i}");
            let mut build =
                ImportedBuild::new(id.as_str(), "acme/widget/master", BuildStatus::Success, 1);
            build.artifact = Some(stored.clone());
            assert!(history.import(build).await.unwrap());
            let record = history.get(&id).await.unwrap().unwrap();
            assert_eq!(record.artifact_kind, None);
            assert_eq!(
                artifact_fields(&history_entry(&record, None)),
                expected,
                "{stored}"
            );
            // Were the import to record the kind too, nothing would change
            // but the kind being known.
            let mut with_kind = record.clone();
            with_kind.artifact_kind = old_artifact(&stored).map(|(kind, _)| kind);
            assert_eq!(
                artifact_fields(&history_entry(&with_kind, None)),
                expected,
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn a_hub_location_that_is_no_url_and_names_not_served_give_no_url() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let record =
            finished(
                &history,
                BuildUpdate::finished(BuildStatus::Success, None, Some("x.flist".into()))
                    .published(ArtifactKind::Flist, "javascript:alert(1)", None),
            )
            .await;
        assert_eq!(history_entry(&record, None)["artifact_url"], Value::Null);
        let mut odd = record.clone();
        odd.artifact_kind = Some(ArtifactKind::Local);
        odd.artifact = Some("a b.tar.gz".into());
        let entry = history_entry(&odd, None);
        assert_eq!(entry["artifact"], "a b.tar.gz");
        assert_eq!(entry["artifact_url"], Value::Null);
    }

    #[tokio::test]
    async fn monitor_holds_the_last_lines_of_each_log_read_from_its_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("data-directory: {}\n", dir.path().join("data").display());
        let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
        let history = History::open(config.history_path()).await.unwrap();
        std::fs::create_dir_all(&config.logs_directory).unwrap();
        let short = finished(
            &history,
            BuildUpdate::finished(BuildStatus::Success, None, None),
        )
        .await;
        let log: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(config.build_log_path(&short.id), &log).unwrap();
        // A log far larger than what is read of it, whose lines cross the
        // edge of the part read.
        let long = finished(
            &history,
            BuildUpdate::finished(BuildStatus::Error, None, None),
        )
        .await;
        let big: String = (1..=100_000).map(|i| format!("entry {i:07}\n")).collect();
        std::fs::write(config.build_log_path(&long.id), &big).unwrap();
        let silent = finished(
            &history,
            BuildUpdate::finished(BuildStatus::Error, None, None),
        )
        .await;

        let value = self::history(&history, &config).await.unwrap();
        let ids: Vec<&str> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [&silent.id, &long.id, &short.id], "newest first");
        let monitors: Vec<&str> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["monitor"].as_str().unwrap())
            .collect();
        let last = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len() - MONITOR_LINES..].join("\n")
        };
        assert_eq!(monitors, ["", last(&big).as_str(), last(&log).as_str()]);
        assert!(monitors[1].ends_with("entry 0100000"));
        // Without the log's end, only a short piece was read.
        assert_eq!(
            last_lines(
                &config.build_log_path(&long.id),
                100_000,
                MONITOR_TAIL_BYTES
            )
            .await
            .lines()
            .count(),
            (MONITOR_TAIL_BYTES as usize) / "entry 0000000\n".len(),
            "whole lines of the last {MONITOR_TAIL_BYTES} bytes, the cut one left out"
        );
        // The JSON API's entries and list carry no monitor.
        assert_eq!(history_entry(&short, None)["monitor"], "");
        assert_eq!(
            history_list(&history, &[short]).await.unwrap()[0]["monitor"],
            ""
        );
        // A single line longer than what is read is shown cut, not dropped.
        let one = finished(
            &history,
            BuildUpdate::finished(BuildStatus::Error, None, None),
        )
        .await;
        std::fs::write(
            config.build_log_path(&one.id),
            "y".repeat(3 * MONITOR_TAIL_BYTES as usize) + "\n",
        )
        .unwrap();
        let path = config.build_log_path(&one.id);
        let shown = last_lines(&path, MONITOR_LINES, MONITOR_TAIL_BYTES).await;
        assert_eq!(shown, "y".repeat(MONITOR_TAIL_BYTES as usize - 1));

        // A list shares MONITOR_LIST_BYTES: 25 entries get the whole
        // MONITOR_TAIL_BYTES each, 512 get 2 KiB each.
        for (count, each) in [(25, MONITOR_TAIL_BYTES), (512, 2048)] {
            let records = vec![one.clone(); count];
            let list = history_list_with_monitor(&history, &records, &config)
                .await
                .unwrap();
            let list = list.as_array().unwrap();
            assert_eq!(list.len(), count);
            for entry in list {
                assert_eq!(entry["monitor"], "y".repeat(each as usize - 1), "{count}");
            }
        }
    }

    /// Queues a status of build `id` in `history`'s outbox; its place.
    async fn queue(history: &History, id: &str, state: StatusState) -> i64 {
        let status = NewStatus::new(id, "acme/widget", COMMIT, "zos-build/build.sh", state, "x");
        history.queue_status(status).await.unwrap()
    }

    #[tokio::test]
    async fn github_says_where_the_latest_status_is_in_every_list() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("data-directory: {}\n", dir.path().join("data").display());
        let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
        let history = History::open(config.history_path()).await.unwrap();
        let done = || BuildUpdate::finished(BuildStatus::Success, None, None);
        let later = now_ms() + 60_000;

        // No status at all (no token, or a local build).
        let none = finished(&history, done()).await;
        // Retried, then sent: the old error is not shown.
        let sent = finished(&history, done()).await;
        let seq = queue(&history, &sent.id, StatusState::Pending).await;
        history.status_retry(seq, later, "502").await.unwrap();
        history.status_sent(seq).await.unwrap();
        let seq = queue(&history, &sent.id, StatusState::Success).await;
        history.status_sent(seq).await.unwrap();
        // The latest one waits, an earlier one was sent.
        let queued = finished(&history, done()).await;
        let seq = queue(&history, &queued.id, StatusState::Pending).await;
        history.status_sent(seq).await.unwrap();
        queue(&history, &queued.id, StatusState::Success).await;
        let retrying = finished(&history, done()).await;
        let seq = queue(&history, &retrying.id, StatusState::Success).await;
        history.status_retry(seq, later, "429").await.unwrap();
        let failed = finished(&history, done()).await;
        let seq = queue(&history, &failed.id, StatusState::Failure).await;
        history
            .status_failed(
                seq,
                "401: GitHub refused the token (HTTP 401: Bad credentials)",
            )
            .await
            .unwrap();
        let odd = finished(&history, done()).await;
        let seq = queue(&history, &odd.id, StatusState::Error).await;
        history.status_failed(seq, "not owner/name").await.unwrap();

        let expected = json!({
            none.id.clone(): null,
            sent.id.clone(): "sent",
            queued.id.clone(): "queued",
            retrying.id.clone(): "retrying (429)",
            failed.id.clone(): "failed (401)",
            odd.id.clone(): "failed (not owner/name)",
        });
        let by_id = |list: &Value| -> Value {
            let mut map = serde_json::Map::new();
            for entry in list.as_array().unwrap() {
                assert!(
                    entry.as_object().unwrap().contains_key("github"),
                    "github is always there, null or not: {entry}"
                );
                map.insert(
                    entry["id"].as_str().unwrap().to_string(),
                    entry["github"].clone(),
                );
            }
            Value::Object(map)
        };
        let records = history.finished(0, 100).await.unwrap();
        assert_eq!(records.len(), 6);
        assert_eq!(
            by_id(&self::history(&history, &config).await.unwrap()),
            expected
        );
        assert_eq!(
            by_id(&history_list(&history, &records).await.unwrap()),
            expected
        );
        assert_eq!(
            by_id(
                &history_list_with_monitor(&history, &records, &config)
                    .await
                    .unwrap()
            ),
            expected
        );
        for record in &records {
            assert_eq!(
                build_entry(&history, record).await.unwrap()["github"],
                expected[&record.id]
            );
        }
        // Without the history's word, nothing is claimed.
        assert_eq!(history_entry(&failed, None)["github"], Value::Null);

        // A queued build in /build/status (and so the `status` frame).
        let build = NewBuild::new("acme/widget", "next", COMMIT, "build.sh", "busybox");
        let Enqueued::Queued(active) = history.enqueue(None, vec![build]).await.unwrap() else {
            panic!("queued")
        };
        let other = NewBuild::new("acme/widget", "other", COMMIT, "build.sh", "busybox");
        let Enqueued::Queued(plain) = history.enqueue(None, vec![other]).await.unwrap() else {
            panic!("queued")
        };
        let seq = queue(&history, &active[0].id, StatusState::Pending).await;
        history
            .status_retry(seq, later, "unavailable")
            .await
            .unwrap();
        let value = status(&history, &config).await.unwrap();
        assert_eq!(value[&active[0].id]["github"], "retrying (unavailable)");
        assert_eq!(value[&plain[0].id]["github"], Value::Null);
        assert!(value[&plain[0].id]
            .as_object()
            .unwrap()
            .contains_key("github"));

        // An empty list asks nothing.
        assert_eq!(history_list(&history, &[]).await.unwrap(), json!([]));
    }

    #[tokio::test]
    async fn a_page_of_500_shows_the_status_of_each_build() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path().join("h.db")).await.unwrap();
        let builds: Vec<NewBuild> = (0..500)
            .map(|i| {
                NewBuild::new(
                    "acme/widget",
                    format!("b{i}"),
                    COMMIT,
                    "build.sh",
                    "busybox",
                )
            })
            .collect();
        let Enqueued::Queued(records) = history.enqueue(None, builds).await.unwrap() else {
            panic!("queued")
        };
        for record in records.iter().step_by(2) {
            queue(&history, &record.id, StatusState::Pending).await;
        }
        let found = deliveries(&history, &records).await.unwrap();
        assert_eq!(found.len(), 250);
        let list = history_list(&history, &records).await.unwrap();
        let shown = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["github"] == "queued")
            .count();
        assert_eq!(shown, 250);
        // Duplicates are asked once and shown each time.
        let twice = [records[0].clone(), records[0].clone()];
        let list = history_list(&history, &twice).await.unwrap();
        assert_eq!(list[0]["github"], "queued");
        assert_eq!(list[1]["github"], "queued");
    }
}
